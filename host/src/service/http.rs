//! The JSON API of `wfhost serve`. Every request names its tenant with
//! `Authorization: Bearer KEY`; the operator's key (the policy's `[admin]`)
//! names one with `?tenant=NAME`, and without one lists every tenant's
//! workflows (rows after `TENANT/ID`) and usage; errors are `{"error": {"kind", "message"}}`
//! with the messages the CLI gives.
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/workflows[?wait=30s]` (a chain file) | 202 and the workflow's row (200 if the id ran before); with `wait`, 200 and its report once it ends or the wait is over |
//! | `GET /v1/workflows[?status=S&q=TEXT&after=ID&limit=N]` | the tenant's workflows, oldest first, a page at a time (`q`: an id or a step's task holds TEXT) |
//! | `GET /v1/workflows/{id}[?wait=30s]` | the workflow and every step (once it ends, or the wait is over) |
//! | `GET /v1/workflows/{id}/events[?follow=1]` | its event log; with `follow`, server-sent events until it ends |
//! | `POST /v1/workflows/{id}/cancel` | 202 and its row if it was running (it stops soon), else 200 |
//! | `POST /v1/workflows/{id}/resume` | 202 if it was cut off and now runs again, else 200 |
//! | `POST /v1/workflows/{id}/retry` | 202: a failed workflow runs again from its failed step |
//! | `GET /v1/usage` | the tenant's workflows, steps, attempts, fuel and time, summed (the operator: a list, one per tenant) |
//! | `GET /v1/whoami` | `{"tenant": NAME}`, or `{"admin": true}` for the operator's key |
//! | `GET /v1/check` | the operator's key only: whether the state file is whole, as `wfhost check --json` says, with `"clean"` (403 for a tenant's key) |
//! | `GET /metrics` | Prometheus' text: the caller's tenant, or every tenant for the `[admin]` key |
//! | `GET /health` | 200 while the process answers (no key needed) |
//! | `GET /ready` | 200 when it takes work, 503 while it stops (no key needed) |
//! | `GET /` | the dashboard (see `dashboard`), which logs in with a tenant's key |
//!
//! Every error is JSON, those of the HTTP layer too: an unknown route (404),
//! a method a route does not take (405), a body over [`MAX_BODY_BYTES`]
//! (413), a body that is not UTF-8 or a query that does not parse (400).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::json;

use super::extract::{Caller, Text, Viewer, api_key, query_of};
use super::{ErrorKind, ListFilter, Scope, Service, ServiceError};
use crate::records::{WorkflowReport, WorkflowRow, WorkflowStatus};

/// The largest request body the service reads: a chain file of some
/// hundred thousand steps.
pub const MAX_BODY_BYTES: usize = 64 << 20;

/// The routes of the API over `service`.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/v1/workflows", post(submit).get(list))
        .route("/v1/workflows/{id}", get(report))
        .route("/v1/workflows/{id}/events", get(events))
        .route("/v1/workflows/{id}/cancel", post(cancel))
        .route("/v1/workflows/{id}/resume", post(resume))
        .route("/v1/workflows/{id}/retry", post(retry))
        .route("/v1/workflows/{id}/signals/{name}", post(signal))
        .route("/v1/schedules", post(add_schedule).get(schedules))
        .route(
            "/v1/schedules/{name}",
            get(schedule).delete(remove_schedule),
        )
        .route("/v1/schedules/{name}/{action}", post(act_on_schedule))
        .route("/v1/usage", get(usage))
        .route("/v1/whoami", get(whoami))
        .route("/v1/check", get(check))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(super::dashboard::routes())
        .fallback(|| async { ServiceError::new(ErrorKind::NoRoute, "no such route") })
        .method_not_allowed_fallback(|| async {
            ServiceError::new(
                ErrorKind::MethodNotAllowed,
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&service),
            log_request,
        ))
        .with_state(service)
}

/// Logs each request once answered: method, path, tenant (`-` without a
/// valid key), status and latency.
async fn log_request(
    State(service): State<Arc<Service>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let tenant = service
        .authenticate(api_key(request.headers()))
        .map_or_else(|_| "-".to_string(), |tenant| tenant.name.clone());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        %path,
        %tenant,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// Serves the API on `listener` until `shutdown` completes; then takes no
/// new requests and lets the ones under way finish. A connection that
/// sends no whole request head within `header_timeout` (a client that
/// connects and waits, or sends half a request, or sits idle between
/// requests) is closed, so that such connections cannot hold the service's
/// file descriptors for good.
pub async fn serve(
    service: Arc<Service>,
    listener: tokio::net::TcpListener,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(router(service), listener, header_timeout, shutdown).await
}

/// Serves `router` on `listener` as [`serve`] serves the API (a worker's
/// `/metrics` too): HTTP/1.1, connections closed that send no request
/// head within `header_timeout`, until `shutdown` completes.
pub(crate) async fn serve_router(
    router: Router,
    listener: tokio::net::TcpListener,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // Out of file descriptors, say: the connections that hold them
            // time out; try again shortly rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .keep_alive(true);
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            // A connection ending badly (a timeout, a reset) concerns no
            // one but its client.
            let _ = connection.await;
        });
    }
    connections.shutdown().await;
    Ok(())
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let status = match self.kind {
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorKind::TooManyWorkflows | ErrorKind::TooManySchedules => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::NoRoute => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Store => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        };
        let body = json!({"error": {"kind": self.kind.as_str(), "message": self.message}});
        (status, Json(body)).into_response()
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
    query: Result<Query<ReportQuery>, QueryRejection>,
    Text(body): Text,
) -> Result<Response, ServiceError> {
    let wait = query_of(query)?
        .wait
        .map(|wait| parse_wait(&wait))
        .transpose()?;
    let Some(wait) = wait else {
        let (row, started) = service.submit(&tenant, &body).await?;
        return Ok((accepted_if(started), Json(row)).into_response());
    };
    // As Celery's `apply_async().get(timeout)`: the report once it ends.
    let report = service.submit_and_wait(&tenant, &body, wait).await?;
    Ok((StatusCode::OK, Json(report)).into_response())
}

/// The most rows one page of `GET /v1/workflows` holds.
pub const MAX_PAGE: usize = 1000;

/// The longest `?wait=` a request may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    /// Only workflows whose id, or a step's task, holds this text.
    q: Option<String>,
    /// Rows after the workflow with this id.
    after: Option<String>,
    limit: Option<String>,
}

async fn list(
    State(service): State<Arc<Service>>,
    Viewer(scope): Viewer,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<WorkflowRow>>, ServiceError> {
    let query = query_of(query)?;
    let status = query
        .status
        .map(|text| text.parse::<WorkflowStatus>())
        .transpose()
        .map_err(ServiceError::invalid)?;
    let limit = query
        .limit
        .map(|text| match text.parse::<usize>() {
            Ok(limit) if (1..=MAX_PAGE).contains(&limit) => Ok(limit),
            _ => Err(ServiceError::invalid(format!(
                "limit: expected a number from 1 to {MAX_PAGE}, found `{text}`"
            ))),
        })
        .transpose()?;
    let filter = ListFilter {
        status,
        search: query.q,
    };
    Ok(Json(service.list(
        scope.tenant(),
        &filter,
        query.after.as_deref(),
        limit,
    )?))
}

#[derive(Deserialize)]
struct ReportQuery {
    /// Wait this long for the workflow to end (`30s`, `500ms`, `2`).
    wait: Option<String>,
}

/// A wait of at most [`MAX_WAIT`]: seconds, or a number with `ms` or `s`.
fn parse_wait(text: &str) -> Result<Duration, ServiceError> {
    let (number, scale) = match text.strip_suffix("ms") {
        Some(ms) => (ms, 1e-3),
        None => (text.strip_suffix('s').unwrap_or(text), 1.0),
    };
    number
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|seconds| (0.0..=MAX_WAIT.as_secs_f64()).contains(seconds))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            ServiceError::invalid(format!(
                "wait: expected a time up to {} s (`30s`, `500ms`), found `{text}`",
                MAX_WAIT.as_secs()
            ))
        })
}

async fn report(
    State(service): State<Arc<Service>>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Json<WorkflowReport>, ServiceError> {
    match query_of(query)?.wait {
        Some(wait) => Ok(Json(
            service
                .report_when_done(&tenant, &id, parse_wait(&wait)?)
                .await?,
        )),
        None => Ok(Json(service.report(&tenant, &id)?)),
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    /// `1` or `true`: stream events as server-sent events until the
    /// workflow no longer runs.
    follow: Option<String>,
}

async fn events(
    State(service): State<Arc<Service>>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ServiceError> {
    let follow = match query_of(query)?.follow.as_deref() {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(other) => {
            return Err(ServiceError::invalid(format!(
                "follow: expected 1 or 0, found `{other}`"
            )));
        }
    };
    let (row, events) = service.events_from(&tenant, &id, 0)?;
    if !follow {
        return Ok(Json(events).into_response());
    }
    Ok(super::events::stream(service, tenant, id, row, events).into_response())
}

async fn usage(
    State(service): State<Arc<Service>>,
    Viewer(scope): Viewer,
) -> Result<Response, ServiceError> {
    Ok(match scope {
        Scope::Tenant(tenant) => Json(service.usage(&tenant)?).into_response(),
        Scope::All => Json(service.usage_of_all()?).into_response(),
    })
}

/// Whether the state file is whole, for the operator.
async fn check(
    State(service): State<Arc<Service>>,
    Viewer(scope): Viewer,
) -> Result<Json<serde_json::Value>, ServiceError> {
    let report = service.check(&scope).await?;
    let clean = report.is_clean();
    let mut body = serde_json::to_value(report).unwrap_or_default();
    body["clean"] = json!(clean);
    Ok(Json(body))
}

/// Who the key is: `{"tenant": NAME}`, or `{"admin": true}` for the
/// operator's.
async fn whoami(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ServiceError> {
    Ok(Json(match service.caller(api_key(&headers), None)? {
        Scope::Tenant(tenant) => json!({"tenant": tenant.name}),
        Scope::All => json!({"admin": true}),
    }))
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

/// Sends a signal; its body, JSON, is the payload (an empty body is
/// `null`). 202 once it is on the disk.
async fn signal(
    State(service): State<Arc<Service>>,
    Caller(tenant): Caller,
    Path((id, name)): Path<(String, String)>,
    Text(body): Text,
) -> Answer<WorkflowRow> {
    let payload = if body.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&body).map_err(|err| {
            ServiceError::invalid(format!("the signal's payload is not JSON: {err}"))
        })?
    };
    let row = service.signal(&tenant, &id, &name, payload).await?;
    Ok((StatusCode::ACCEPTED, Json(row)))
}

async fn add_schedule(
    State(service): State<Arc<Service>>,
    Caller(tenant): Caller,
    Text(body): Text,
) -> Answer<serde_json::Value> {
    let schedule = service.add_schedule(&tenant, &body).await?;
    Ok((StatusCode::CREATED, Json(schedule)))
}

async fn schedules(
    State(service): State<Arc<Service>>,
    Caller(tenant): Caller,
) -> Result<Json<Vec<serde_json::Value>>, ServiceError> {
    Ok(Json(service.schedules(&tenant)?))
}

async fn schedule(
    State(service): State<Arc<Service>>,
    Caller(tenant): Caller,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ServiceError> {
    Ok(Json(service.schedule(&tenant, &name)?))
}

async fn remove_schedule(
    State(service): State<Arc<Service>>,
    Caller(tenant): Caller,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ServiceError> {
    Ok(Json(service.remove_schedule(&tenant, &name)?))
}

/// `pause`, `resume` or `trigger`: the schedule as it then is, or, for
/// `trigger`, the row of the workflow it started (202).
async fn act_on_schedule(
    State(service): State<Arc<Service>>,
    Caller(tenant): Caller,
    Path((name, action)): Path<(String, String)>,
) -> Result<Response, ServiceError> {
    let schedule = match action.as_str() {
        "pause" => service.pause_schedule(&tenant, &name, true)?,
        "resume" => service.pause_schedule(&tenant, &name, false)?,
        "trigger" => {
            let row = service.trigger_schedule(&tenant, &name).await?;
            return Ok((StatusCode::ACCEPTED, Json(row)).into_response());
        }
        other => {
            return Err(ServiceError::new(
                ErrorKind::NoRoute,
                format!("a schedule takes pause, resume or trigger, not `{other}`"),
            ));
        }
    };
    Ok((StatusCode::OK, Json(schedule)).into_response())
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(
    State(service): State<Arc<Service>>,
) -> Result<Json<serde_json::Value>, ServiceError> {
    service.ready()?;
    Ok(Json(json!({"status": "ready"})))
}

async fn metrics(
    State(service): State<Arc<Service>>,
    Viewer(scope): Viewer,
) -> Result<Response, ServiceError> {
    let text = service.metrics(&scope)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
