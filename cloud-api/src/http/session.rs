//! Login, refresh, logout and first-admin setup.

use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::{
    cookie, Body, Caller, ClientInfo, ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE,
};
use super::users::{parse_username, UserView};
use super::AppState;
use crate::auth::password;
use crate::auth::token::{random_token, token_hash, Claims, ISSUER};
use crate::store::{NewAudit, RefreshToken, RotateOutcome, Session, User};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub refresh_token: String,
    /// Echo this in `X-CSRF-Token` on unsafe requests authenticated by cookie.
    pub csrf_token: String,
    pub user: UserView,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// Omit to use the refresh cookie.
    pub refresh_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// The one-time token printed at first start.
    pub token: String,
    pub username: String,
    pub display_name: Option<String>,
    pub password: String,
}

pub(crate) fn audit(
    caller_name: &str,
    action: &str,
    target: String,
    details: serde_json::Value,
    ip: Option<String>,
) -> NewAudit {
    NewAudit {
        at: OffsetDateTime::now_utc(),
        actor: caller_name.to_string(),
        action: action.to_string(),
        target,
        details,
        ip,
    }
}

fn set_cookie(
    headers: &mut HeaderMap,
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
    http_only: bool,
    secure: bool,
) {
    let mut c = format!("{name}={value}; Path={path}; Max-Age={max_age}; SameSite=Strict");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if secure {
        c.push_str("; Secure");
    }
    if let Ok(v) = HeaderValue::from_str(&c) {
        headers.append(header::SET_COOKIE, v);
    }
}

/// Issues an access token for `session` and a response carrying both tokens and cookies.
fn token_response(
    state: &AppState,
    user: &User,
    session_id: &str,
    refresh: &str,
    now: OffsetDateTime,
) -> ApiResult<Response> {
    let ttl = Duration::minutes(state.config.access_token_minutes);
    let claims = Claims {
        sub: user.id.clone(),
        sid: session_id.to_string(),
        iat: now.unix_timestamp(),
        exp: (now + ttl).unix_timestamp(),
        iss: ISSUER.to_string(),
    };
    let access = state.keys.issue(&claims).map_err(ApiError::internal)?;
    let csrf = random_token();
    let secure = state.config.cookie_secure;
    let mut headers = HeaderMap::new();
    set_cookie(
        &mut headers,
        ACCESS_COOKIE,
        &access,
        "/",
        ttl.whole_seconds(),
        true,
        secure,
    );
    set_cookie(
        &mut headers,
        REFRESH_COOKIE,
        refresh,
        "/api/auth",
        state.config.refresh_token_hours * 3600,
        true,
        secure,
    );
    set_cookie(
        &mut headers,
        CSRF_COOKIE,
        &csrf,
        "/",
        state.config.refresh_token_hours * 3600,
        false,
        secure,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let body = TokenResponse {
        access_token: access,
        token_type: "Bearer",
        expires_in: ttl.whole_seconds(),
        refresh_token: refresh.to_string(),
        csrf_token: csrf,
        user: UserView::from(user),
    };
    Ok((headers, Json(body)).into_response())
}

/// Log in with username and password.
#[utoipa::path(post, path = "/api/auth/login", request_body = LoginRequest, tag = "auth",
    responses((status = 200, body = TokenResponse), (status = 401, description = "wrong credentials"), (status = 429, description = "too many failures")))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    Body(req): Body<LoginRequest>,
) -> ApiResult<Response> {
    let name = req.username.trim().to_ascii_lowercase();
    let mut keys = vec![format!("user:{name}")];
    if let Some(ip) = &client.ip {
        keys.push(format!("ip:{ip}"));
    }
    if let Err(wait) = state.throttle.check(&keys, Instant::now()) {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-attempts",
            format!(
                "too many failed logins; try again in {} seconds",
                wait.as_secs().max(1)
            ),
        );
        e.retry_after_secs = Some(wait.as_secs().max(1));
        return Err(e);
    }
    let user = state.store.user_by_username(&name).await?;
    let phc = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| password::dummy_hash().to_string());
    let pw = req.password;
    let ok = tokio::task::spawn_blocking(move || password::verify(&pw, &phc))
        .await
        .map_err(ApiError::internal)?;
    let now = OffsetDateTime::now_utc();
    let user = match user {
        Some(u) if ok && u.active => u,
        other => {
            state.throttle.failure(&keys, Instant::now());
            let reason = match &other {
                None => "unknown user",
                Some(u) if !u.active => "account deactivated",
                Some(_) => "wrong password",
            };
            // A name that is no user's is not written down: it is often a password typed
            // into the username box. The address and the time still show an attack.
            let (actor, target) = match &other {
                Some(_) => (name.as_str(), format!("user:{name}")),
                None => ("anonymous", "user:(unknown)".to_string()),
            };
            state
                .store
                .append_audit(&audit(
                    actor,
                    "login_failed",
                    target,
                    json!({ "reason": reason }),
                    client.ip.clone(),
                ))
                .await?;
            return Err(ApiError::unauthorized(
                "wrong username or password, or the account is deactivated",
            ));
        }
    };
    state.throttle.success(&keys[..1]);
    let session = Session {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        created_at: now,
        last_seen: now,
        revoked_at: None,
    };
    let refresh = random_token();
    state
        .store
        .create_session(
            &session,
            &RefreshToken {
                token_hash: token_hash(&refresh),
                session_id: session.id.clone(),
                user_id: user.id.clone(),
                expires_at: now + Duration::hours(state.config.refresh_token_hours),
            },
        )
        .await?;
    state
        .store
        .append_audit(&audit(
            &user.username,
            "login",
            format!("user:{}", user.username),
            json!({ "session": session.id }),
            client.ip,
        ))
        .await?;
    token_response(&state, &user, &session.id, &refresh, now)
}

/// Exchange a refresh token (body or cookie) for new tokens; each refresh token works once.
#[utoipa::path(post, path = "/api/auth/refresh", request_body = RefreshRequest, tag = "auth",
    responses((status = 200, body = TokenResponse), (status = 401, description = "invalid, reused or idle")))]
pub async fn refresh(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    body: Option<Body<RefreshRequest>>,
) -> ApiResult<Response> {
    let given = body
        .and_then(|Body(b)| b.refresh_token)
        .or_else(|| cookie(&headers, REFRESH_COOKIE).map(str::to_string))
        .ok_or_else(|| ApiError::unauthorized("no refresh token was sent"))?;
    let now = OffsetDateTime::now_utc();
    let new_token = random_token();
    let outcome = state
        .store
        .rotate_refresh_token(
            &token_hash(&given),
            &RefreshToken {
                token_hash: token_hash(&new_token),
                session_id: String::new(),
                user_id: String::new(),
                expires_at: now + Duration::hours(state.config.refresh_token_hours),
            },
            now,
        )
        .await?;
    let session = match outcome {
        RotateOutcome::Rotated(s) => s,
        RotateOutcome::Reused => {
            state
                .store
                .append_audit(&audit(
                    "anonymous",
                    "refresh_token_reused",
                    "session".into(),
                    json!({ "action": "session revoked" }),
                    client.ip,
                ))
                .await?;
            return Err(ApiError::unauthorized(
                "this refresh token was already used; the session was ended for safety; log in again",
            ));
        }
        RotateOutcome::Invalid => {
            return Err(ApiError::unauthorized(
                "the refresh token is invalid or expired; log in again",
            ))
        }
    };
    if now - session.last_seen > Duration::seconds(state.config.idle_timeout_seconds) {
        state.store.revoke_session(&session.id, now).await?;
        return Err(ApiError::unauthorized(
            "the session was idle for too long and has ended; log in again",
        ));
    }
    let user = state
        .store
        .user_by_id(&session.user_id)
        .await?
        .filter(|u| u.active)
        .ok_or_else(|| ApiError::unauthorized("this account is deactivated"))?;
    // A page's background poll renewing its token is not the user's activity.
    if !headers.contains_key(super::extract::BACKGROUND_HEADER) {
        state.store.touch_session(&session.id, now).await?;
    }
    token_response(&state, &user, &session.id, &new_token, now)
}

/// End the session: its access and refresh tokens stop working at once.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let now = OffsetDateTime::now_utc();
    state.store.revoke_session(&caller.session_id, now).await?;
    state
        .store
        .append_audit(&audit(
            &caller.user.username,
            "logout",
            format!("user:{}", caller.user.username),
            json!({ "session": caller.session_id }),
            caller.ip.clone(),
        ))
        .await?;
    let mut headers = HeaderMap::new();
    let secure = state.config.cookie_secure;
    set_cookie(&mut headers, ACCESS_COOKIE, "", "/", 0, true, secure);
    set_cookie(
        &mut headers,
        REFRESH_COOKIE,
        "",
        "/api/auth",
        0,
        true,
        secure,
    );
    set_cookie(&mut headers, CSRF_COOKIE, "", "/", 0, false, secure);
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// Who am I?
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", responses((status = 200, body = UserView)))]
pub async fn me(caller: Caller) -> Json<UserView> {
    Json(UserView::from(&caller.user))
}

/// Create the first admin with the one-time setup token printed at first start.
#[utoipa::path(post, path = "/api/setup", request_body = SetupRequest, tag = "auth",
    responses((status = 201, body = UserView), (status = 403, description = "token wrong, used or expired")))]
pub async fn setup(
    State(state): State<AppState>,
    client: ClientInfo,
    Body(req): Body<SetupRequest>,
) -> ApiResult<Response> {
    let username = parse_username(&req.username)?;
    password::check_policy(&req.password).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let pw = req.password;
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let now = OffsetDateTime::now_utc();
    let admin = User {
        id: uuid::Uuid::new_v4().to_string(),
        display_name: req.display_name.unwrap_or_else(|| username.clone()),
        username: username.clone(),
        role: metcon_shared::role::Role::Admin,
        stations: vec![],
        active: true,
        password_hash: hash,
        created_at: now,
        updated_at: now,
    };
    let a = audit(
        &username,
        "user_created",
        format!("user:{username}"),
        json!({ "role": "admin", "via": "setup token" }),
        client.ip,
    );
    state
        .store
        .consume_setup_token(&token_hash(req.token.trim()), now, &admin, &[a])
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound(_) => {
                ApiError::forbidden("the setup token is wrong, expired or already used")
            }
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(UserView::from(&admin))).into_response())
}
