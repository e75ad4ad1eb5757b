//! Login and logout pages on top of the JSON API's session machinery.
//!
//! The login form posts here; this module calls [`crate::http::session::login`] (same
//! throttle, audit, session and cookies) and turns its answer into a redirect. The refresh
//! cookie is widened from `/api/auth` to `/` so that a browser whose 15-minute access token
//! ran out can renew it at `/session/renew` while the session is not idle; after the idle
//! timeout the next request lands on the login page. The login form has its own pre-session
//! CSRF cookie.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use metcon_web::pages::{Layout, LoginPage};
use serde::Deserialize;

use super::{check_csrf, local_path, read_form, render, Form, UiError, UiResult, Viewer};
use crate::auth::token::random_token;
use crate::http::extract::{Body, ClientInfo, REFRESH_COOKIE};
use crate::http::session::{self as api, LoginRequest};
use crate::http::AppState;

/// The login form's CSRF cookie (there is no session yet).
pub const LOGIN_CSRF_COOKIE: &str = "metcon_login_csrf";

#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn login_form(
    state: &AppState,
    status: StatusCode,
    username: &str,
    next: &str,
    error: Option<String>,
) -> Response {
    let token = random_token();
    let page = LoginPage {
        layout: Layout {
            title: "Log in".into(),
            user: None,
            csrf: token.clone(),
            notice: None,
        },
        username: username.to_string(),
        next: local_path(next).to_string(),
        error,
    };
    let mut res = render(status, &page);
    let mut c = format!(
        "{LOGIN_CSRF_COOKIE}={token}; Path=/login; Max-Age=3600; SameSite=Strict; HttpOnly"
    );
    if state.config.cookie_secure {
        c.push_str("; Secure");
    }
    if let Ok(v) = HeaderValue::from_str(&c) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

pub async fn login_page(State(state): State<AppState>, Query(q): Query<NextQuery>) -> Response {
    login_form(
        &state,
        StatusCode::OK,
        "",
        q.next.as_deref().unwrap_or("/"),
        None,
    )
}

/// Copies the session cookies of an API answer onto `res`, with the refresh cookie's path
/// widened to `/` (see the module docs).
fn copy_cookies(from: &HeaderMap, res: &mut Response) {
    for v in from.get_all(header::SET_COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        let s = if s.starts_with(&format!("{REFRESH_COOKIE}=")) {
            s.replace("; Path=/api/auth;", "; Path=/;")
        } else {
            s.to_string()
        };
        if let Ok(v) = HeaderValue::from_str(&s) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
}

pub async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    req: axum::extract::Request,
) -> UiResult {
    let (headers, form) = read_form(req).await?;
    check_csrf(&headers, &form, LOGIN_CSRF_COOKIE)?;
    let username = form.get("username").unwrap_or("").to_string();
    let next = form.get("next").unwrap_or("/").to_string();
    let password = form.raw("password").unwrap_or("").to_string();
    let answer = api::login(
        State(state.clone()),
        client,
        Body(LoginRequest {
            username: username.clone(),
            password,
        }),
    )
    .await;
    match answer {
        Ok(api_res) => {
            let mut res = Redirect::to(local_path(&next)).into_response();
            copy_cookies(api_res.headers(), &mut res);
            Ok(res)
        }
        Err(e) => Ok(login_form(
            &state,
            e.status,
            &username,
            &next,
            Some(e.detail),
        )),
    }
}

pub async fn logout(State(state): State<AppState>, viewer: Viewer, _form: Form) -> UiResult {
    let api_res = api::logout(State(state.clone()), viewer.caller)
        .await
        .map_err(UiError::from)?;
    let mut res = Redirect::to("/login").into_response();
    copy_cookies(api_res.headers(), &mut res);
    let mut c = format!("{REFRESH_COOKIE}=; Path=/; Max-Age=0; SameSite=Strict; HttpOnly");
    if state.config.cookie_secure {
        c.push_str("; Secure");
    }
    if let Ok(v) = HeaderValue::from_str(&c) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// A new access token from the refresh cookie (idle sessions are refused), then back.
pub async fn renew(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> UiResult {
    let next = local_path(q.next.as_deref().unwrap_or("/")).to_string();
    let background = headers.contains_key(crate::http::extract::BACKGROUND_HEADER);
    match api::refresh(State(state), client, headers, None).await {
        Ok(api_res) => {
            let mut res = Redirect::to(&next).into_response();
            copy_cookies(api_res.headers(), &mut res);
            Ok(res)
        }
        // A poll followed the redirect here: it must not get the login form as its fragment.
        Err(_) if background => Err(UiError::page(
            StatusCode::UNAUTHORIZED,
            "Logged out",
            "the session has ended; log in again",
        )),
        Err(_) => Err(UiError::Login { next }),
    }
}
