//! One struct per page (and per fragment), each bound to its template, grouped by who uses
//! them. Fields are strings formatted for display; the templates escape them. Everything is
//! re-exported here, so callers name `pages::X` whatever module it lives in.

use askama::Template;

mod admin_devices;
mod admin_flows;
mod admin_users;
mod analyst;
mod audit;
mod evidence;
mod operator;
mod supervisor;

pub use admin_devices::*;
pub use admin_flows::*;
pub use admin_users::*;
pub use analyst::*;
pub use audit::*;
pub use evidence::*;
pub use operator::*;
pub use supervisor::*;

/// What every page's frame needs: title, who is logged in, the CSRF token for its forms and
/// an optional notice.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub title: String,
    pub user: Option<NavUser>,
    /// The value forms send back in the `_csrf` field.
    pub csrf: String,
    pub notice: Option<Notice>,
}

/// The logged-in user and the sections their role may open.
#[derive(Debug, Clone, Default)]
pub struct NavUser {
    pub name: String,
    pub role: String,
    pub board: bool,
    pub approvals: bool,
    pub admin: bool,
    /// May record scale calibrations without managing devices (supervisors): the scales page.
    pub scales: bool,
    pub reports: bool,
    /// May read the audit log (`/audit`).
    pub audit: bool,
}

/// A message at the top of the page: good news or a problem.
#[derive(Debug, Clone)]
pub struct Notice {
    pub ok: bool,
    pub text: String,
}

#[derive(Debug, Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub layout: Layout,
    pub username: String,
    pub next: String,
    pub error: Option<String>,
}

#[derive(Debug, Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub heading: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            title: "T".into(),
            user: Some(NavUser {
                name: "Olga".into(),
                role: "operator".into(),
                board: true,
                ..NavUser::default()
            }),
            csrf: "tok".into(),
            notice: None,
        }
    }

    #[test]
    fn the_login_form_labels_every_field_and_escapes_what_it_echoes() {
        let html = LoginPage {
            layout: Layout::default(),
            username: "<script>x</script>".into(),
            next: "/".into(),
            error: Some("wrong username or password".into()),
        }
        .render()
        .expect("render");
        assert!(html.contains(r#"name="_csrf""#));
        assert!(html.contains(r#"<label for="username">"#));
        assert!(html.contains(r#"<label for="password">"#));
        assert!(html.contains("wrong username or password"));
        assert!(!html.contains("<script>x"));
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
    }

    #[test]
    fn an_operator_sees_no_admin_links_and_every_form_carries_the_csrf_token() {
        let html = BoardPage {
            layout: layout(),
            stations: vec![StationBoard {
                station_id: "receiving".into(),
                batches: vec![],
            }],
            flows: vec![FlowOption {
                flow_id: "gold".into(),
                label: "Gold".into(),
            }],
            can_start: true,
        }
        .render()
        .expect("render");
        assert!(!html.contains("/admin/"));
        assert!(html.contains("No batches waiting here."));
        let forms = html.matches("<form method=\"post\"").count();
        let tokens = html.matches(r#"name="_csrf" value="tok""#).count();
        assert_eq!(forms, tokens, "{html}");
        assert!(forms >= 2);
    }

    #[test]
    fn a_mass_check_shows_expected_tolerance_capture_and_verdict() {
        let html = BatchPage {
            layout: layout(),
            id: "b1".into(),
            number: "B-2026-0001".into(),
            flow: "weigh v1".into(),
            status: "in_progress".into(),
            priority: "normal".into(),
            version: 3,
            progress: "step 1 of 2".into(),
            step: Some(StepView {
                step_id: "weigh".into(),
                name: "Weigh-in".into(),
                kind: "mass_check".into(),
                expected: "148 g".into(),
                tolerance: "0.5 g".into(),
                unit: "g".into(),
                may_execute: true,
                ..StepView::default()
            }),
            can_start: false,
            can_finish: false,
            verdict: Some(Verdict {
                ok: true,
                headline: "148.3 g ✓ within tolerance".into(),
                detail: String::new(),
            }),
            verdict_evidence: Some(EvidenceGroup {
                anchor: "evidence-3".into(),
                title: "Mass check at weigh".into(),
                reading: "148.3 g".into(),
                source: "read from the display (confidence 0.97)".into(),
                at: "2026-12-02 12:55:02 UTC".into(),
                photos: vec![EvidencePhoto {
                    url: "/batches/b1/photos/p1".into(),
                    ..EvidencePhoto::default()
                }],
            }),
            evidence: vec![],
            flags: vec![],
            history: vec![HistoryRow {
                at: "2026-12-02 12:55:02 UTC".into(),
                who: "operator".into(),
                what: "weighed 148.3 g at weigh: within tolerance".into(),
                evidence: Some("evidence-3".into()),
            }],
            live_station: Some("receiving".into()),
        }
        .render()
        .expect("render");
        assert!(html.contains("148 g ± 0.5 g"));
        assert!(html.contains(r#"id="capture""#));
        assert!(html.contains("148.3 g ✓ within tolerance"));
        assert!(html.contains(r#"data-station="receiving""#));
        assert!(html.contains(r#"class="verdict ok""#));
        assert!(html.contains(r#"id="evidence-3""#));
        assert!(html.contains(r#"<img src="/batches/b1/photos/p1""#));
        assert!(html.contains(r##"<a href="#evidence-3" class="evidence-link">evidence</a>"##));
    }

    #[test]
    fn the_error_page_says_what_happened() {
        let html = ErrorPage {
            layout: Layout::default(),
            status: 403,
            heading: "Not allowed".into(),
            message: "your role (operator) does not have the permission".into(),
        }
        .render()
        .expect("render");
        assert!(html.contains("Not allowed"));
        assert!(html.contains("Error 403"));
    }
}
