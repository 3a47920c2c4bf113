//! Who a request to the API is and what it sent, read before a handler
//! runs: its key's tenant or the operator's scope, its body as bounded
//! text, its query; what the HTTP layer cannot read is answered as every
//! error is.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;

use super::http::MAX_BODY_BYTES;
use super::{ErrorKind, Scope, Service, ServiceError, Tenant};

/// A request the HTTP layer could not read (a body too large or not
/// UTF-8, a query that does not parse), answered as every error is.
fn unreadable(status: StatusCode, text: String) -> ServiceError {
    let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
        ErrorKind::TooLarge
    } else {
        ErrorKind::InvalidInput
    };
    ServiceError::new(kind, text)
}

/// The key of `Authorization: Bearer KEY`.
pub(super) fn api_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

#[derive(Deserialize)]
struct TenantParam {
    tenant: Option<String>,
}

/// Whose workflows a request addresses: its key's tenant, or, with the
/// operator's key, the tenant `?tenant=` names (or every tenant).
fn scope_of(parts: &Parts, service: &Service) -> Result<Scope, ServiceError> {
    let tenant = Query::<TenantParam>::try_from_uri(&parts.uri)
        .ok()
        .and_then(|Query(param)| param.tenant);
    service.caller(api_key(&parts.headers), tenant.as_deref())
}

/// The tenant a request acts for; a request without a valid key is
/// answered 401 before its handler runs.
pub(super) struct Caller(pub(super) Tenant);

impl FromRequestParts<Arc<Service>> for Caller {
    type Rejection = ServiceError;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<Service>,
    ) -> Result<Self, ServiceError> {
        match scope_of(parts, service)? {
            Scope::Tenant(tenant) => Ok(Caller(*tenant)),
            Scope::All => Err(ServiceError::invalid(
                "the operator's key acts for a tenant it names: add ?tenant=NAME",
            )),
        }
    }
}

/// A request that may look at every tenant's workflows (the operator's
/// key naming no tenant).
pub(super) struct Viewer(pub(super) Scope);

impl FromRequestParts<Arc<Service>> for Viewer {
    type Rejection = ServiceError;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<Service>,
    ) -> Result<Self, ServiceError> {
        Ok(Viewer(scope_of(parts, service)?))
    }
}

/// A request's body as text, within [`MAX_BODY_BYTES`]. A body declared
/// larger is refused before any of it is read.
pub(super) struct Text(pub(super) String);

impl<S: Send + Sync> FromRequest<S> for Text {
    type Rejection = ServiceError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ServiceError> {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Err(unreadable(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than the {} MiB the service reads",
                    MAX_BODY_BYTES >> 20
                ),
            ));
        }
        String::from_request(request, state)
            .await
            .map(Text)
            .map_err(|rejected| unreadable(rejected.status(), rejected.body_text()))
    }
}

/// A query the HTTP layer parsed, or the 400 it could not.
pub(super) fn query_of<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ServiceError> {
    query
        .map(|Query(query)| query)
        .map_err(|rejected| unreadable(rejected.status(), rejected.body_text()))
}
