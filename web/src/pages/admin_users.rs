//! Admin: users.

use askama::Template;

use super::Layout;

/// Admin: users.
#[derive(Debug, Template)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub layout: Layout,
    pub users: Vec<UserRow>,
    pub roles: Vec<String>,
    pub form: UserForm,
}

#[derive(Debug, Clone)]
pub struct UserRow {
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub stations: String,
    pub active: bool,
}

#[derive(Debug, Clone, Default)]
pub struct UserForm {
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub stations: String,
}
