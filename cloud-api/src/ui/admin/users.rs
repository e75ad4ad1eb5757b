//! Admin: users (list, create).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use metcon_shared::role::{Permission, Role};
use metcon_web::pages::{Notice, UserForm, UserRow, UsersPage};

use crate::http::error::ApiError;
use crate::http::extract::Body;
use crate::http::users::{self as users_api, CreateUser};
use crate::http::AppState;
use crate::ui::{problem, render, Form, UiResult, Viewer};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/admin/users", get(users).post(create_user))
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
                    username: u.username,
                    display_name: u.display_name,
                    role: u.role.to_string(),
                    stations: u.stations.join(", "),
                    active: u.active,
                })
                .collect(),
            roles: [Role::Operator, Role::Supervisor, Role::Admin, Role::Analyst]
                .iter()
                .map(|r| r.to_string())
                .collect(),
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
    let role: Role = match f.role.parse() {
        Ok(r) => r,
        Err(_) => {
            let e = ApiError::unprocessable(format!("{:?} is not a role", f.role));
            return users_page(&state, &viewer, e.status, f, Some(problem(&e))).await;
        }
    };
    let stations: Vec<String> = f
        .stations
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let r = users_api::create(
        State(state.clone()),
        viewer.caller.clone(),
        Body(CreateUser {
            username: f.username.clone(),
            display_name: Some(f.display_name.clone()).filter(|d| !d.is_empty()),
            password: form.raw("password").unwrap_or("").to_string(),
            role,
            stations,
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
