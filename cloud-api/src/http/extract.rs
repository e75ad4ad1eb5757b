//! Request extractors that turn outside input into typed values or a problem+json error:
//! JSON bodies (with the path of the bad field), path and query parameters, and the caller.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use metcon_shared::role::{Actor, Permission};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::error::ApiError;
use super::AppState;
use crate::store::User;

/// A JSON request body. Wrong content type → 415; too large → 413; malformed JSON → 400;
/// well-formed JSON of the wrong shape → 422 naming the offending field.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let mime = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload-too-large",
                        "the request body is larger than the server accepts",
                    )
                } else {
                    ApiError::bad_request(format!("could not read the request body: {e}"))
                }
            })?;
        parse_json(&bytes).map(Body)
    }
}

/// An optional JSON body: an empty body is `None`; anything else must be valid JSON of `T`.
impl<S, T> axum::extract::OptionalFromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload-too-large",
                        "the request body is larger than the server accepts",
                    )
                } else {
                    ApiError::bad_request(format!("could not read the request body: {e}"))
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) && !has_type {
            return Ok(None);
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        <Body<T> as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// Parses JSON, naming the path of the first bad field.
///
/// Syntax is checked on its own first: serde_json reports some type mismatches (a number
/// where an enum is expected) as syntax errors, and trailing data after the value is only
/// caught by a full parse. Valid JSON of the wrong shape is a 422 with the field's path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        return Err(ApiError::bad_request(format!(
            "the body is not valid JSON: {e}"
        )));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            // Valid JSON (checked above): serde_json's way of saying "wrong type here".
            "has the wrong type for this field".to_string()
        } else {
            inner.to_string()
        };
        let at = if path == "." {
            "the body".to_string()
        } else {
            format!("field `{path}`")
        };
        ApiError::unprocessable(format!("{at}: {message}"))
            .with_extra(serde_json::json!({ "problems": [{ "path": path, "message": message }] }))
    })
}

/// Path parameters; a malformed one (e.g. not a UUID) is a 404 — no such resource.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| PathParams(v))
            .map_err(|e: PathRejection| ApiError::not_found(format!("no such resource: {e}")))
    }
}

/// Query parameters; malformed ones are a 400 that says which.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| QueryParams(v))
            .map_err(|e: QueryRejection| ApiError::bad_request(e.body_text()))
    }
}

/// Where a request came from, for the audit log.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip().to_string());
        Ok(ClientInfo { ip })
    }
}

pub const ACCESS_COOKIE: &str = "metcon_access";
pub const REFRESH_COOKIE: &str = "metcon_refresh";
pub const CSRF_COOKIE: &str = "metcon_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(parts: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    parts
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The authenticated user behind a request.
///
/// Checks, in order: a token is present (bearer header, else the access cookie); its
/// signature and expiry; its session exists, is not revoked and has not been idle longer than
/// the idle timeout; the user exists and is active. Cookie-authenticated unsafe requests must
/// also echo the CSRF cookie in the `X-CSRF-Token` header (double submit).
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub session_id: String,
    pub ip: Option<String>,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        self.user.actor()
    }

    /// Refuses with 403 unless the caller's role has `p`.
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.user.role.allows(p) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "your role ({}) does not have the permission {:?} this needs",
                self.user.role, p
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let (token, via_cookie) = match bearer {
            Some(t) => (t.to_string(), false),
            None => match cookie(&parts.headers, ACCESS_COOKIE) {
                Some(t) => (t.to_string(), true),
                None => {
                    return Err(ApiError::unauthorized(
                        "log in first: no access token was sent",
                    ))
                }
            },
        };
        if via_cookie && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            let expected = cookie(&parts.headers, CSRF_COOKIE);
            if sent.is_none() || sent != expected {
                return Err(ApiError::forbidden(
                    "missing or wrong CSRF token: send the metcon_csrf cookie's value in the X-CSRF-Token header",
                ));
            }
        }
        authenticate(parts, state, &token).await
    }
}

/// Token → session → idle check → active user, without the CSRF check (which depends on how
/// the token came). The web UI (`crate::ui`) uses it with its own form-field CSRF check.
///
/// A request carrying [`BACKGROUND_HEADER`] (a page polling for fresh data) is checked like
/// any other but does not count as activity: an unattended screen still times out.
/// Sent by the UI's own polling (`app.js`): not a user's action.
pub const BACKGROUND_HEADER: &str = "x-metcon-background";

pub async fn authenticate(
    parts: &Parts,
    state: &AppState,
    token: &str,
) -> Result<Caller, ApiError> {
    let claims = state.keys.verify(token).map_err(|_| {
        ApiError::unauthorized("the access token is invalid or expired; log in or refresh")
    })?;
    let now = OffsetDateTime::now_utc();
    let session = state
        .store
        .session(&claims.sid)
        .await?
        .filter(|s| s.revoked_at.is_none() && s.user_id == claims.sub)
        .ok_or_else(|| ApiError::unauthorized("the session has ended; log in again"))?;
    let idle = time::Duration::seconds(state.config.idle_timeout_seconds);
    if now - session.last_seen > idle {
        state.store.revoke_session(&session.id, now).await?;
        return Err(ApiError::unauthorized(
            "the session was idle for too long and has ended; log in again",
        ));
    }
    let user = state
        .store
        .user_by_id(&claims.sub)
        .await?
        .filter(|u| u.active)
        .ok_or_else(|| ApiError::unauthorized("this account is deactivated or no longer exists"))?;
    // Writing last_seen on every request would serialize reads behind the writer; a
    // granularity of a tenth of the timeout (at most a minute) is plenty.
    let granularity = std::cmp::min(idle / 10i32, time::Duration::seconds(60));
    let background = parts.headers.contains_key(BACKGROUND_HEADER);
    if !background && now - session.last_seen > granularity {
        state.store.touch_session(&session.id, now).await?;
    }
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip().to_string());
    Ok(Caller {
        user,
        session_id: session.id,
        ip,
    })
}
