//! The server-rendered web UI, beside the JSON API: operator station board and step runner,
//! supervisor approvals, admin (flows, devices, users), analyst reports and the audit log.
//!
//! Pages are askama templates from the `metcon-web` crate. Every action goes through the
//! same handler functions as `/api` (called directly, with the same [`Caller`]), so
//! permissions, station scope and the domain's rules are decided in one place; this module
//! only turns forms into requests and results into HTML. Authentication is the session
//! machinery of `/api/auth/login` with its cookies; every form POST carries the CSRF cookie's
//! value in a hidden field (double submit, on top of SameSite=Strict), checked by [`Form`].

mod admin;
mod approvals;
mod audit;
mod batch;
mod board;
mod calibration;
mod evidence;
mod format;
mod reports;
mod session;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use metcon_shared::role::{Permission, Role};
use metcon_web::pages::{ErrorPage, Layout, NavUser, Notice};
use metcon_web::Template;

use crate::http::error::ApiError;
use crate::http::extract::{authenticate, cookie, Caller, ACCESS_COOKIE, CSRF_COOKIE};
use crate::http::AppState;

/// The UI's routes; merged beside `/api` by [`crate::http::router`].
pub fn router() -> Router<AppState> {
    Router::new()
        .route(metcon_web::CSS_PATH, get(css))
        .route(metcon_web::JS_PATH, get(js))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/session/renew", get(session::renew))
        .route("/", get(board::board))
        .route("/batches", post(board::create_batch))
        .route("/batches/{id}", get(batch::page))
        .route("/batches/{id}/photos/{photo_id}", get(evidence::photo))
        .route("/batches/{id}/start", post(batch::start))
        .route("/batches/{id}/complete", post(batch::finish))
        .route(
            "/batches/{id}/steps/{step_id}/photo",
            post(batch::photo).layer(axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024)),
        )
        .route(
            "/batches/{id}/steps/{step_id}/complete",
            post(batch::complete_step),
        )
        .route(
            "/batches/{id}/steps/{step_id}/mass-check",
            post(batch::mass_check),
        )
        .route(
            "/batches/{id}/steps/{step_id}/capture",
            post(batch::capture),
        )
        .route("/approvals", get(approvals::page))
        .route("/approvals/list", get(approvals::list))
        .route("/approvals/{id}/{flag_id}", post(approvals::decide))
        .merge(admin::routes())
        .merge(audit::routes())
        .merge(calibration::routes())
        .route("/reports", get(reports::catalogue))
        .route("/reports/{name}", get(reports::report))
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", metcon_web::CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", metcon_web::JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Assets are embedded: they change only with the binary.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}

/// Renders a page; a template error (a bug) is a logged 500.
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => ApiError::internal(format!("template: {e}")).into_response(),
    }
}

/// The logged-in user of a UI request, with the CSRF token their forms must send back.
///
/// Authentication is [`authenticate`]: the access cookie's token, its session (not revoked,
/// not idle), an active user. Without a valid session the user is sent to the login page;
/// with an expired access token but a live session, GETs go through `/session/renew`.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub caller: Caller,
    pub csrf: String,
}

impl Viewer {
    pub fn can(&self, p: Permission) -> bool {
        self.caller.user.role.allows(p)
    }

    /// Refuses with a 403 page unless the role has `p`.
    pub fn require(&self, p: Permission) -> Result<(), UiError> {
        self.caller.require(p).map_err(|e| self.fail(e))
    }

    /// The page frame for this user.
    pub fn layout(&self, title: &str, notice: Option<Notice>) -> Layout {
        let u = &self.caller.user;
        Layout {
            title: title.to_string(),
            user: Some(NavUser {
                name: u.display_name.clone(),
                role: u.role.to_string(),
                board: u.role.allows(Permission::ViewBatches) && u.role != Role::Analyst,
                approvals: u.role.allows(Permission::ApproveFlags),
                admin: u.role.allows(Permission::ManageFlows),
                scales: u.role.allows(Permission::RecordCalibration)
                    && !u.role.allows(Permission::ManageDevices),
                reports: u.role.allows(Permission::ViewAnalytics),
                audit: u.role.allows(Permission::ViewAudit),
            }),
            csrf: self.csrf.clone(),
            notice,
        }
    }

    /// An API error as a page with this user's navigation.
    pub fn fail(&self, e: ApiError) -> UiError {
        let mut u = UiError::from(e);
        if let UiError::Page { layout, .. } = &mut u {
            **layout = self.layout("Problem", None);
        }
        u
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = UiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        // After logging in again, a GET comes back here; a form goes to the start page.
        let next = if parts.method == Method::GET {
            here
        } else {
            "/".to_string()
        };
        // A page polling in the background cannot follow a redirect to the login form (it
        // would put that form inside itself): it is told 401 and sends the browser there.
        let background = parts
            .headers
            .contains_key(crate::http::extract::BACKGROUND_HEADER);
        let login = |next: String| {
            if background {
                UiError::page(
                    StatusCode::UNAUTHORIZED,
                    "Logged out",
                    "the session has ended; log in again",
                )
            } else {
                UiError::Login { next }
            }
        };
        let Some(token) = cookie(&parts.headers, ACCESS_COOKIE).filter(|t| !t.is_empty()) else {
            return Err(login(next));
        };
        match authenticate(parts, state, token).await {
            Ok(caller) => Ok(Viewer {
                caller,
                csrf: cookie(&parts.headers, CSRF_COOKIE)
                    .unwrap_or_default()
                    .to_string(),
            }),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                let renewable = parts.method == Method::GET
                    && cookie(&parts.headers, crate::http::extract::REFRESH_COOKIE).is_some()
                    && state.keys.verify(token).is_err();
                if renewable {
                    Err(UiError::Renew { next })
                } else {
                    Err(login(next))
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// `?done=…` on the page a form's POST redirected back to (post/redirect/get, so that a
/// reload does not do it again): which success the page says.
#[derive(Debug, Default, serde::Deserialize)]
pub struct DoneQuery {
    pub done: Option<String>,
}

/// A submitted form (`application/x-www-form-urlencoded`) whose `_csrf` field matched the
/// CSRF cookie. Fields keep their order; a name may repeat (checklists).
#[derive(Debug, Default)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// The first value of `name`, trimmed; empty counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name` as given (passwords are not trimmed).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A form with these fields, as a browser would send them (for tests).
    #[cfg(test)]
    pub fn of(pairs: &[(&str, &str)]) -> Form {
        Form(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// `expected_version`, if sent and a number.
    pub fn version(&self) -> Option<u64> {
        self.get("expected_version").and_then(|v| v.parse().ok())
    }
}

/// Compares in time independent of where the strings differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Checks the double-submitted token: the form's `_csrf` against the cookie `cookie_name`.
pub(crate) fn check_csrf(
    headers: &HeaderMap,
    form: &Form,
    cookie_name: &str,
) -> Result<(), UiError> {
    let expected = cookie(headers, cookie_name).unwrap_or("");
    let sent = form.raw(metcon_web::CSRF_FIELD).unwrap_or("");
    if expected.is_empty() || !same_secret(expected, sent) {
        return Err(UiError::page(
            StatusCode::FORBIDDEN,
            "The form could not be accepted",
            "The form's security token is missing or out of date (CSRF check). Reload the page and try again.",
        ));
    }
    Ok(())
}

/// Reads a form body; `_csrf` must match the session's CSRF cookie.
async fn read_form(req: Request) -> Result<(HeaderMap, Form), UiError> {
    let headers = req.headers().clone();
    let axum::Form(pairs) = axum::Form::<Vec<(String, String)>>::from_request(req, &())
        .await
        .map_err(|e| {
            UiError::page(
                StatusCode::BAD_REQUEST,
                "The form could not be read",
                format!("The submitted form is not valid: {}", e.body_text()),
            )
        })?;
    Ok((headers, Form(pairs)))
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = UiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (headers, form) = read_form(req).await?;
        check_csrf(&headers, &form, CSRF_COOKIE)?;
        Ok(form)
    }
}

/// Why a UI request did not get its page.
#[derive(Debug)]
pub enum UiError {
    /// Not logged in (or the session ended): to the login page, then back to `next`.
    Login { next: String },
    /// The access token expired but the session may live: renew it, then `next`.
    Renew { next: String },
    /// A readable error page.
    Page {
        status: StatusCode,
        heading: String,
        message: String,
        layout: Box<Layout>,
    },
}

impl UiError {
    pub fn page(status: StatusCode, heading: &str, message: impl Into<String>) -> UiError {
        UiError::Page {
            status,
            heading: heading.to_string(),
            message: message.into(),
            layout: Box::new(Layout {
                title: heading.to_string(),
                ..Layout::default()
            }),
        }
    }
}

/// Only local paths are followed after login, never another site.
pub(crate) fn local_path(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

pub(crate) fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            UiError::Login { next } => {
                let to = format!("/login?next={}", encode_component(local_path(&next)));
                Redirect::to(&to).into_response()
            }
            UiError::Renew { next } => {
                let to = format!(
                    "/session/renew?next={}",
                    encode_component(local_path(&next))
                );
                Redirect::to(&to).into_response()
            }
            UiError::Page {
                status,
                heading,
                message,
                layout,
            } => render(
                status,
                &ErrorPage {
                    layout: *layout,
                    status: status.as_u16(),
                    heading,
                    message,
                },
            ),
        }
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        if e.status == StatusCode::UNAUTHORIZED {
            return UiError::Login { next: "/".into() };
        }
        let heading = match e.status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::CONFLICT => "Not possible right now",
            StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        UiError::page(e.status, heading, e.detail)
    }
}

pub type UiResult<T = Response> = Result<T, UiError>;

/// What a page says after an action: `ok` (200) when it worked, else the API's reason with
/// its status.
pub(crate) fn outcome<T>(
    r: Result<T, ApiError>,
    ok: impl FnOnce() -> String,
) -> (StatusCode, Notice) {
    match r {
        Ok(_) => (
            StatusCode::OK,
            Notice {
                ok: true,
                text: ok(),
            },
        ),
        Err(e) => (e.status, problem(&e)),
    }
}

/// A notice for a page from an API error (the page is shown again with it).
pub(crate) fn problem(e: &ApiError) -> Notice {
    Notice {
        ok: false,
        text: e.detail.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path("/batches/1"), "/batches/1");
        assert_eq!(local_path("//evil.example/x"), "/");
        assert_eq!(local_path("https://evil.example"), "/");
        assert_eq!(local_path("/\\evil"), "/");
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "x"));
    }

    #[test]
    fn form_fields_repeat_and_trim() {
        let f = Form(vec![
            ("checked".into(), "a".into()),
            ("checked".into(), "b".into()),
            ("note".into(), "  ".into()),
            ("password".into(), " pw ".into()),
            ("expected_version".into(), "7".into()),
        ]);
        assert_eq!(f.all("checked"), vec!["a", "b"]);
        assert_eq!(f.get("note"), None);
        assert_eq!(f.raw("password"), Some(" pw "));
        assert_eq!(f.version(), Some(7));
    }

    #[test]
    fn csrf_needs_the_cookie_value_in_the_form() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("metcon_csrf=tok123"),
        );
        let good = Form(vec![("_csrf".into(), "tok123".into())]);
        let bad = Form(vec![("_csrf".into(), "tok124".into())]);
        assert!(check_csrf(&h, &good, CSRF_COOKIE).is_ok());
        assert!(check_csrf(&h, &bad, CSRF_COOKIE).is_err());
        assert!(check_csrf(&h, &Form::default(), CSRF_COOKIE).is_err());
        assert!(check_csrf(&HeaderMap::new(), &good, CSRF_COOKIE).is_err());
    }

    #[test]
    fn next_is_encoded() {
        assert_eq!(encode_component("/a?b=c&d"), "/a%3Fb%3Dc%26d");
    }
}
