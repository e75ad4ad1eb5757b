//! Admin: users (list, create; one user's page: details, role and stations, a new
//! password, deactivate and reactivate).
//!
//! Every form calls the JSON API's handler (`http::users::{create, update, reset_password}`),
//! so the API's rules hold here too: its password policy, the last active admin who cannot
//! be demoted or deactivated (409), sessions that end on deactivation and on a new
//! password, and an audit record for each change. A refused form shows its page again with
//! what was entered (never a password) and the API's reason.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use metcon_shared::role::{Permission, Role};
use metcon_web::pages::{Notice, UserEditForm, UserEditPage, UserForm, UserRow, UsersPage};

use crate::auth::password;
use crate::http::error::ApiError;
use crate::http::extract::{Body, PathParams};
use crate::http::users::{self as users_api, CreateUser, ResetPassword, UpdateUser, UserView};
use crate::http::AppState;
use crate::ui::{format, problem, render, Form, UiResult, Viewer};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(users).post(create_user))
        .route("/admin/users/{id}", get(edit).post(save))
        .route("/admin/users/{id}/password", post(reset_password))
        .route("/admin/users/{id}/active", post(set_active))
}

fn role_names() -> Vec<String> {
    Role::ALL.iter().map(|r| r.to_string()).collect()
}

/// `"a, b,,c "` → `["a", "b", "c"]`; the API checks that each is a station id (its syntax:
/// stations are defined by flows, so a station no flow has yet is allowed).
fn parse_stations(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_role(raw: &str) -> Result<Role, ApiError> {
    raw.parse()
        .map_err(|e: metcon_shared::role::UnknownRole| ApiError::unprocessable(e.to_string()))
}

async fn users_page(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    form: UserForm,
    notice: Option<Notice>,
) -> UiResult {
    viewer.require(Permission::ManageUsers)?;
    let axum::Json(list) = users_api::list(State(state.clone()), viewer.caller.clone())
        .await
        .map_err(|e| viewer.fail(e))?;
    Ok(render(
        status,
        &UsersPage {
            layout: viewer.layout("Users", notice),
            users: list
                .into_iter()
                .map(|u| UserRow {
                    id: u.id,
                    username: u.username,
                    display_name: u.display_name,
                    role: u.role.to_string(),
                    stations: u.stations.join(", "),
                    active: u.active,
                })
                .collect(),
            roles: role_names(),
            form,
        },
    ))
}

pub async fn users(State(state): State<AppState>, viewer: Viewer) -> UiResult {
    let form = UserForm {
        role: "operator".into(),
        ..UserForm::default()
    };
    users_page(&state, &viewer, StatusCode::OK, form, None).await
}

pub async fn create_user(State(state): State<AppState>, viewer: Viewer, form: Form) -> UiResult {
    viewer.require(Permission::ManageUsers)?;
    let f = UserForm {
        username: form.get("username").unwrap_or("").to_string(),
        display_name: form.get("display_name").unwrap_or("").to_string(),
        role: form.get("role").unwrap_or("").to_string(),
        stations: form.get("stations").unwrap_or("").to_string(),
    };
    let role = match parse_role(&f.role) {
        Ok(r) => r,
        Err(e) => return users_page(&state, &viewer, e.status, f, Some(problem(&e))).await,
    };
    let r = users_api::create(
        State(state.clone()),
        viewer.caller.clone(),
        Body(CreateUser {
            username: f.username.clone(),
            display_name: Some(f.display_name.clone()).filter(|d| !d.is_empty()),
            password: form.raw("password").unwrap_or("").to_string(),
            role,
            stations: parse_stations(&f.stations),
        }),
    )
    .await;
    match r {
        Ok(_) => {
            let notice = Notice {
                ok: true,
                text: format!("User {} created.", f.username),
            };
            users_page(
                &state,
                &viewer,
                StatusCode::CREATED,
                UserForm::default(),
                Some(notice),
            )
            .await
        }
        Err(e) => users_page(&state, &viewer, e.status, f, Some(problem(&e))).await,
    }
}

/// One user's page. `form` is what a refused details form sent (else the stored values).
async fn user_page(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    status: StatusCode,
    form: Option<UserEditForm>,
    notice: Option<Notice>,
) -> UiResult {
    viewer.require(Permission::ManageUsers)?;
    let axum::Json(u): axum::Json<UserView> = users_api::get(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(id.to_string()),
    )
    .await
    .map_err(|e| viewer.fail(e))?;
    let form = form.unwrap_or_else(|| UserEditForm {
        display_name: u.display_name.clone(),
        role: u.role.to_string(),
        stations: u.stations.join(", "),
    });
    Ok(render(
        status,
        &UserEditPage {
            layout: viewer.layout(&format!("User {}", u.username), notice),
            is_self: u.id == viewer.caller.user.id,
            id: u.id,
            username: u.username,
            active: u.active,
            created: format::time(u.created_at),
            form,
            roles: role_names(),
            min_password: password::MIN_LENGTH,
        },
    ))
}

fn done(text: String) -> Option<Notice> {
    Some(Notice { ok: true, text })
}

pub async fn edit(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(id): PathParams<String>,
) -> UiResult {
    user_page(&state, &viewer, &id, StatusCode::OK, None, None).await
}

/// Display name, role and stations in one `PATCH`.
pub async fn save(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(id): PathParams<String>,
    form: Form,
) -> UiResult {
    viewer.require(Permission::ManageUsers)?;
    let f = UserEditForm {
        display_name: form.get("display_name").unwrap_or("").to_string(),
        role: form.get("role").unwrap_or("").to_string(),
        stations: form.get("stations").unwrap_or("").to_string(),
    };
    let update = parse_role(&f.role).map(|role| UpdateUser {
        display_name: Some(f.display_name.clone()),
        role: Some(role),
        stations: Some(parse_stations(&f.stations)),
        active: None,
    });
    let r = match update {
        Ok(u) => users_api::update(
            State(state.clone()),
            viewer.caller.clone(),
            PathParams(id.clone()),
            Body(u),
        )
        .await
        .map(|axum::Json(u)| u),
        Err(e) => Err(e),
    };
    match r {
        Ok(u) => {
            let text = format!(
                "Saved: {} is {} ({}), stations: {}.",
                u.username,
                u.display_name,
                u.role,
                if u.stations.is_empty() {
                    "none".to_string()
                } else {
                    u.stations.join(", ")
                }
            );
            user_page(&state, &viewer, &id, StatusCode::OK, None, done(text)).await
        }
        Err(e) => user_page(&state, &viewer, &id, e.status, Some(f), Some(problem(&e))).await,
    }
}

/// Deactivate (`active=false`: their sessions end) or reactivate (`active=true`).
pub async fn set_active(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(id): PathParams<String>,
    form: Form,
) -> UiResult {
    viewer.require(Permission::ManageUsers)?;
    let active = match form.get("active") {
        Some("true") => true,
        Some("false") => false,
        other => {
            let e = ApiError::unprocessable(format!(
                "active must be true or false, not {:?}",
                other.unwrap_or("")
            ));
            return user_page(&state, &viewer, &id, e.status, None, Some(problem(&e))).await;
        }
    };
    let r = users_api::update(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(id.clone()),
        Body(UpdateUser {
            display_name: None,
            role: None,
            stations: None,
            active: Some(active),
        }),
    )
    .await;
    match r {
        Ok(axum::Json(u)) => {
            let text = if u.active {
                format!("{} is active again and can log in.", u.username)
            } else {
                format!(
                    "{} is deactivated: their sessions have ended and they cannot log in.",
                    u.username
                )
            };
            user_page(&state, &viewer, &id, StatusCode::OK, None, done(text)).await
        }
        Err(e) => user_page(&state, &viewer, &id, e.status, None, Some(problem(&e))).await,
    }
}

/// A new password set by the admin; the API checks its policy and ends the user's sessions.
/// The password is never put back into the page.
pub async fn reset_password(
    State(state): State<AppState>,
    viewer: Viewer,
    PathParams(id): PathParams<String>,
    form: Form,
) -> UiResult {
    viewer.require(Permission::ManageUsers)?;
    let pw = form.raw("password").unwrap_or("");
    if form.raw("password_confirm") != Some(pw) {
        let e = ApiError::unprocessable(
            "the two passwords are not the same; nothing was changed. Type the new password twice",
        );
        return user_page(&state, &viewer, &id, e.status, None, Some(problem(&e))).await;
    }
    let r = users_api::reset_password(
        State(state.clone()),
        viewer.caller.clone(),
        PathParams(id.clone()),
        Body(ResetPassword {
            password: pw.to_string(),
        }),
    )
    .await;
    match r {
        Ok(_) => {
            let text = "New password set. The user's sessions have ended; they log in with the new password.".to_string();
            user_page(&state, &viewer, &id, StatusCode::OK, None, done(text)).await
        }
        Err(e) => user_page(&state, &viewer, &id, e.status, None, Some(problem(&e))).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stations_are_split_on_commas_and_trimmed() {
        assert_eq!(
            parse_stations(" receiving, assay,,qc "),
            vec!["receiving", "assay", "qc"]
        );
        assert!(parse_stations("  ").is_empty());
    }

    #[test]
    fn an_unknown_role_is_a_readable_422() {
        let e = parse_role("boss").expect_err("refused");
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            e.detail.contains("operator, supervisor, admin or analyst"),
            "{}",
            e.detail
        );
        assert_eq!(parse_role("analyst").expect("known"), Role::Analyst);
    }
}
