//! Admin: users (the list with the create form, and one user's edit page).

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
    pub id: String,
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

/// Admin: one user: details (name, role, stations), a new password, deactivate/reactivate.
#[derive(Debug, Template)]
#[template(path = "user_edit.html")]
pub struct UserEditPage {
    pub layout: Layout,
    pub id: String,
    pub username: String,
    pub active: bool,
    /// The admin looking at their own account (deactivating it ends their own session).
    pub is_self: bool,
    pub created: String,
    /// The details form as shown: the stored values, or what was sent when it was refused.
    pub form: UserEditForm,
    pub roles: Vec<String>,
    /// The API's minimum password length, shown beside the field.
    pub min_password: usize,
}

#[derive(Debug, Clone, Default)]
pub struct UserEditForm {
    pub display_name: String,
    pub role: String,
    /// Comma separated.
    pub stations: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(active: bool) -> UserEditPage {
        UserEditPage {
            layout: Layout {
                csrf: "tok".into(),
                ..Layout::default()
            },
            id: "u-1".into(),
            username: "olga".into(),
            active,
            is_self: false,
            created: "2026-12-01 08:00:00 UTC".into(),
            form: UserEditForm {
                display_name: "<b>Olga</b>".into(),
                role: "supervisor".into(),
                stations: "receiving, assay".into(),
            },
            roles: vec!["operator".into(), "supervisor".into()],
            min_password: 12,
        }
    }

    #[test]
    fn the_edit_page_labels_its_fields_posts_with_csrf_and_escapes() {
        let html = page(true).render().expect("render");
        for id in [
            "display_name",
            "role",
            "stations",
            "new-password",
            "confirm-password",
        ] {
            assert!(
                html.contains(&format!(r#"<label for="{id}""#)),
                "{id}: {html}"
            );
        }
        assert!(
            html.contains(r#"<option value="supervisor" selected>"#),
            "{html}"
        );
        assert!(html.contains(r#"value="receiving, assay""#));
        assert!(!html.contains("<b>Olga</b>"));
        let forms = html.matches("<form method=\"post\"").count();
        let tokens = html.matches(r#"name="_csrf" value="tok""#).count();
        assert_eq!(forms, tokens);
        assert!(html.contains(r#"action="/admin/users/u-1/password""#));
        assert!(html.contains(r#"id="deactivate""#));
        assert!(!html.contains(r#"id="reactivate""#));
        // A password field is never pre-filled.
        assert!(!html.contains(r#"type="password" value"#));
        assert!(html.contains("At least 12 characters"));
    }

    #[test]
    fn a_deactivated_user_offers_reactivation() {
        let html = page(false).render().expect("render");
        assert!(html.contains(r#"id="reactivate""#));
        assert!(html.contains("Deactivated"));
    }
}
