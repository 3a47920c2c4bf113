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

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ErrorKind, Service, ServiceError};
use crate::records::WorkflowStatus;

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

/// 202 when the request set something going, 200 when it found it done.
fn accepted_if(started: bool) -> StatusCode {
    if started {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    }
}

fn to_json(value: impl serde::Serialize) -> Json<Value> {
    // Reports and rows are plain data: serializing them cannot fail.
    Json(serde_json::to_value(value).unwrap_or_default())
}

async fn submit(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: String,
) -> Result<(StatusCode, Json<Value>), ServiceError> {
    let tenant = service.authenticate(api_key(&headers))?;
    let (row, started) = service.submit(tenant, &body).await?;
    Ok((accepted_if(started), to_json(row)))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
}

async fn list(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ServiceError> {
    let tenant = service.authenticate(api_key(&headers))?;
    let status = query
        .status
        .map(|text| text.parse::<WorkflowStatus>())
        .transpose()
        .map_err(ServiceError::invalid)?;
    Ok(to_json(service.list(tenant, status)?))
}

async fn report(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ServiceError> {
    let tenant = service.authenticate(api_key(&headers))?;
    Ok(to_json(service.report(tenant, &id)?))
}

async fn usage(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ServiceError> {
    let tenant = service.authenticate(api_key(&headers))?;
    Ok(to_json(service.usage(tenant)?))
}

async fn cancel(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ServiceError> {
    let tenant = service.authenticate(api_key(&headers))?;
    let (row, was_running) = service.cancel(tenant, &id).await?;
    Ok((accepted_if(was_running), to_json(row)))
}

async fn resume(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ServiceError> {
    let tenant = service.authenticate(api_key(&headers))?;
    let (row, started) = service.resume(tenant, &id).await?;
    Ok((accepted_if(started), to_json(row)))
}

async fn retry(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ServiceError> {
    let tenant = service.authenticate(api_key(&headers))?;
    let (row, started) = service.retry(tenant, &id).await?;
    Ok((accepted_if(started), to_json(row)))
}
