//! User administration (admins only): create, change role and stations, deactivate, reset
//! passwords. Every change is audited in the same transaction as the change.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use metcon_shared::flow::is_slug;
use metcon_shared::role::{Permission, Role};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::{Body, Caller, PathParams};
use super::session::audit;
use super::AppState;
use crate::auth::password;
use crate::store::User;

/// A user as the API shows it: never the password hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    #[schema(value_type = String, example = "operator")]
    pub role: Role,
    pub stations: Vec<String>,
    pub active: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.clone(),
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role,
            stations: u.stations.clone(),
            active: u.active,
            created_at: u.created_at,
        }
    }
}

/// 3–64 characters of `a-z 0-9 . _ -`, lowercased.
pub fn parse_username(raw: &str) -> Result<String, ApiError> {
    let u = raw.trim().to_ascii_lowercase();
    let ok = (3..=64).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(u)
    } else {
        Err(ApiError::unprocessable(
            "a username has 3 to 64 characters: letters, digits, '.', '_' or '-'",
        ))
    }
}

fn parse_stations(stations: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for s in stations {
        if !is_slug(s) {
            return Err(ApiError::unprocessable(format!(
                "station {s:?} is not a station id (lowercase letters, digits, '_' or '-')"
            )));
        }
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    Ok(out)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    pub display_name: Option<String>,
    pub password: String,
    #[schema(value_type = String, example = "operator")]
    pub role: Role,
    #[serde(default)]
    pub stations: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub display_name: Option<String>,
    #[schema(value_type = Option<String>)]
    pub role: Option<Role>,
    pub stations: Option<Vec<String>>,
    pub active: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    pub password: String,
}

/// Hashes on a blocking thread: Argon2id is deliberately slow.
pub async fn hash_password(pw: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::unprocessable(e.to_string()))
}

#[utoipa::path(get, path = "/api/users", tag = "users", responses((status = 200, body = [UserView])))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<UserView>>> {
    caller.require(Permission::ManageUsers)?;
    Ok(Json(
        state
            .store
            .list_users()
            .await?
            .iter()
            .map(UserView::from)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/users", tag = "users", request_body = CreateUser, responses((status = 201, body = UserView)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    caller.require(Permission::ManageUsers)?;
    let username = parse_username(&req.username)?;
    let stations = parse_stations(&req.stations)?;
    let hash = hash_password(req.password).await?;
    let now = OffsetDateTime::now_utc();
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        display_name: req
            .display_name
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| username.clone()),
        username: username.clone(),
        role: req.role,
        stations,
        active: true,
        password_hash: hash,
        created_at: now,
        updated_at: now,
    };
    let a = audit(
        &caller.user.username,
        "user_created",
        format!("user:{username}"),
        json!({ "role": user.role, "stations": user.stations }),
        caller.ip.clone(),
    );
    state.store.create_user(&user, &[a]).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

async fn load(state: &AppState, id: &str) -> ApiResult<User> {
    state
        .store
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id} does not exist")))
}

#[utoipa::path(get, path = "/api/users/{id}", tag = "users", responses((status = 200, body = UserView)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<UserView>> {
    caller.require(Permission::ManageUsers)?;
    Ok(Json(UserView::from(&load(&state, &id).await?)))
}

/// Change display name, role, stations or active flag. The last active admin cannot be
/// demoted or deactivated, so the plant cannot lock itself out: the store checks it inside
/// the write (`StoreError::LastAdmin`, a 409), so that two admins demoting each other at once
/// cannot both succeed.
#[utoipa::path(patch, path = "/api/users/{id}", tag = "users", request_body = UpdateUser, responses((status = 200, body = UserView)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    Body(req): Body<UpdateUser>,
) -> ApiResult<Json<UserView>> {
    caller.require(Permission::ManageUsers)?;
    let before = load(&state, &id).await?;
    let mut user = before.clone();
    if let Some(d) = req.display_name {
        let d = d.trim().to_string();
        if d.is_empty() {
            return Err(ApiError::unprocessable("display_name cannot be empty"));
        }
        user.display_name = d;
    }
    if let Some(r) = req.role {
        user.role = r;
    }
    if let Some(s) = req.stations {
        user.stations = parse_stations(&s)?;
    }
    if let Some(a) = req.active {
        user.active = a;
    }
    let now = OffsetDateTime::now_utc();
    user.updated_at = now;
    let mut entries = Vec::new();
    if user.role != before.role || user.stations != before.stations {
        entries.push(audit(&caller.user.username, "user_role_changed", format!("user:{}", user.username),
            json!({ "from": { "role": before.role, "stations": before.stations }, "to": { "role": user.role, "stations": user.stations } }), caller.ip.clone()));
    }
    if user.active != before.active {
        entries.push(audit(
            &caller.user.username,
            if user.active {
                "user_activated"
            } else {
                "user_deactivated"
            },
            format!("user:{}", user.username),
            json!({}),
            caller.ip.clone(),
        ));
    }
    if user.display_name != before.display_name {
        entries.push(audit(
            &caller.user.username,
            "user_renamed",
            format!("user:{}", user.username),
            json!({ "from": before.display_name, "to": user.display_name }),
            caller.ip.clone(),
        ));
    }
    state
        .store
        .update_user(&user, before.updated_at, &entries)
        .await?;
    Ok(Json(UserView::from(&user)))
}

/// Set a new password; the user's sessions end.
#[utoipa::path(post, path = "/api/users/{id}/password", tag = "users", request_body = ResetPassword, responses((status = 204)))]
pub async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    Body(req): Body<ResetPassword>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageUsers)?;
    let mut user = load(&state, &id).await?;
    let expected = user.updated_at;
    user.password_hash = hash_password(req.password).await?;
    let now = OffsetDateTime::now_utc();
    user.updated_at = now;
    let a = audit(
        &caller.user.username,
        "password_reset",
        format!("user:{}", user.username),
        json!({}),
        caller.ip.clone(),
    );
    // The store ends the sessions in the same write.
    state.store.update_user(&user, expected, &[a]).await?;
    Ok(StatusCode::NO_CONTENT)
}
