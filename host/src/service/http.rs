//! The JSON API of `wfhost serve`. Every request names its tenant with
//! `Authorization: Bearer KEY`; errors are `{"error": {"kind", "message"}}`
//! with the messages the CLI gives.
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/workflows` (a chain file) | 202 and the workflow's row (200 if the id ran before) |
//! | `GET /v1/workflows[?status=S]` | the tenant's workflows |
//! | `GET /v1/workflows/{id}` | the workflow and every step |
//! | `POST /v1/workflows/{id}/cancel` | 202 and its row if it was running (it stops soon), else 200 |
//! | `POST /v1/workflows/{id}/resume` | 202 if it was cut off and now runs again, else 200 |
//! | `POST /v1/workflows/{id}/retry` | 202: a failed workflow runs again from its failed step |
//! | `GET /v1/usage` | the tenant's workflows, steps, attempts, fuel and time, summed |

use std::future::Future;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{ErrorKind, Service, ServiceError, Tenant};
use crate::records::{Usage, WorkflowReport, WorkflowRow, WorkflowStatus};

/// The routes of the API over `service`.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/v1/workflows", post(submit).get(list))
        .route("/v1/workflows/{id}", get(report))
        .route("/v1/workflows/{id}/cancel", post(cancel))
        .route("/v1/workflows/{id}/resume", post(resume))
        .route("/v1/workflows/{id}/retry", post(retry))
        .route("/v1/usage", get(usage))
        .with_state(service)
}

/// Serves the API on `listener` until `shutdown` completes; then takes no
/// new requests and lets the ones under way finish.
pub async fn serve(
    service: Arc<Service>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(service))
        .with_graceful_shutdown(shutdown)
        .await
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let status = match self.kind {
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorKind::TooManyWorkflows => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Store => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = json!({"error": {"kind": self.kind.as_str(), "message": self.message}});
        (status, Json(body)).into_response()
    }
}

/// The key of `Authorization: Bearer KEY`.
fn api_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// The tenant whose key a request carries; a request without a valid key
/// is answered 401 before its handler runs.
struct Caller(Tenant);

impl FromRequestParts<Arc<Service>> for Caller {
    type Rejection = ServiceError;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<Service>,
    ) -> Result<Self, ServiceError> {
        let tenant = service.authenticate(api_key(&parts.headers))?;
        Ok(Caller(tenant.clone()))
    }
}

/// 202 when the request set something going, 200 when it found it done.
fn accepted_if(started: bool) -> StatusCode {
    if started {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    }
}

/// An answer's JSON body, written straight from the record.
type Answer<T> = Result<(StatusCode, Json<T>), ServiceError>;

async fn submit(
    State(service): State<Arc<Service>>,
    Caller(tenant): Caller,
    body: String,
) -> Answer<WorkflowRow> {
    let (row, started) = service.submit(&tenant, &body).await?;
    Ok((accepted_if(started), Json(row)))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
}

async fn list(
    State(service): State<Arc<Service>>,
    Caller(tenant): Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<WorkflowRow>>, ServiceError> {
    let status = query
        .status
        .map(|text| text.parse::<WorkflowStatus>())
        .transpose()
        .map_err(ServiceError::invalid)?;
    Ok(Json(service.list(&tenant, status)?))
}

async fn report(
    State(service): State<Arc<Service>>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Result<Json<WorkflowReport>, ServiceError> {
    Ok(Json(service.report(&tenant, &id)?))
}

async fn usage(
    State(service): State<Arc<Service>>,
    Caller(tenant): Caller,
) -> Result<Json<Usage>, ServiceError> {
    Ok(Json(service.usage(&tenant)?))
}

async fn cancel(
    State(service): State<Arc<Service>>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Answer<WorkflowRow> {
    let (row, was_running) = service.cancel(&tenant, &id).await?;
    Ok((accepted_if(was_running), Json(row)))
}

async fn resume(
    State(service): State<Arc<Service>>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Answer<WorkflowRow> {
    let (row, started) = service.resume(&tenant, &id).await?;
    Ok((accepted_if(started), Json(row)))
}

async fn retry(
    State(service): State<Arc<Service>>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
) -> Answer<WorkflowRow> {
    let (row, started) = service.retry(&tenant, &id).await?;
    Ok((accepted_if(started), Json(row)))
}
