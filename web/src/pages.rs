//! One struct per page (and per fragment), each bound to its template. Fields are strings
//! formatted for display; the templates escape them.

use askama::Template;

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
    pub reports: bool,
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

/// Station board: the batches waiting at the operator's stations.
#[derive(Debug, Template)]
#[template(path = "board.html")]
pub struct BoardPage {
    pub layout: Layout,
    pub stations: Vec<StationBoard>,
    pub flows: Vec<FlowOption>,
    pub can_start: bool,
}

#[derive(Debug, Clone)]
pub struct StationBoard {
    pub station_id: String,
    pub batches: Vec<BatchRow>,
}

#[derive(Debug, Clone)]
pub struct BatchRow {
    pub id: String,
    pub number: String,
    pub flow: String,
    pub status: String,
    pub priority: String,
    pub high: bool,
    pub age: String,
    pub step: String,
}

#[derive(Debug, Clone)]
pub struct FlowOption {
    pub flow_id: String,
    pub label: String,
}

/// The step runner for one batch.
#[derive(Debug, Template)]
#[template(path = "batch.html")]
pub struct BatchPage {
    pub layout: Layout,
    pub id: String,
    pub number: String,
    pub flow: String,
    pub status: String,
    pub priority: String,
    pub version: u64,
    pub progress: String,
    /// The step waiting to be done, when the batch is in progress (or created).
    pub step: Option<StepView>,
    pub can_start: bool,
    pub can_finish: bool,
    /// The last mass check's outcome, when it is the latest news on this batch.
    pub verdict: Option<Verdict>,
    pub flags: Vec<FlagRow>,
    pub history: Vec<HistoryRow>,
    /// Which station's live events this page follows (mass checks).
    pub live_station: Option<String>,
}

/// The current step, flattened so the template can show any of the five types.
#[derive(Debug, Clone, Default)]
pub struct StepView {
    pub step_id: String,
    pub name: String,
    pub station_name: String,
    /// instruction | checklist | mass_check | signature | photo
    pub kind: String,
    pub text: String,
    pub items: Vec<String>,
    pub expected: String,
    pub tolerance: String,
    pub unit: String,
    pub meaning: String,
    pub armed: bool,
    /// Whether the caller may execute this step (role and station).
    pub may_execute: bool,
    /// Whether a photo can be uploaded here.
    pub photo_upload: bool,
    /// Mass checks: the id of an uploaded photo OCR could not read; the weight typed in
    /// by hand is then recorded for it (and flagged for approval).
    pub unreadable_photo: String,
}

#[derive(Debug, Clone)]
pub struct Verdict {
    pub ok: bool,
    /// "148.3 g ✓ within tolerance" or "1012.00 g ✗ outside tolerance".
    pub headline: String,
    /// Expected, tolerance and deviation in words.
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct FlagRow {
    pub kind: String,
    pub step: String,
    pub reason: String,
    pub raised_by: String,
    pub outcome: String,
    pub open: bool,
}

#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub at: String,
    pub who: String,
    pub what: String,
}

/// Supervisor's approval queue.
#[derive(Debug, Template)]
#[template(path = "approvals.html")]
pub struct ApprovalsPage {
    pub layout: Layout,
    pub items: Vec<ApprovalRow>,
}

/// The queue alone, for polling.
#[derive(Debug, Template)]
#[template(path = "approvals_list.html")]
pub struct ApprovalsList {
    pub layout: Layout,
    pub items: Vec<ApprovalRow>,
}

#[derive(Debug, Clone)]
pub struct ApprovalRow {
    pub batch_id: String,
    pub number: String,
    pub version: u64,
    pub flag_id: u64,
    pub kind: String,
    pub station: String,
    pub step: String,
    pub reason: String,
    pub raised_by: String,
    pub raised_at: String,
    /// The evidence of an out-of-tolerance flag.
    pub reading: Option<String>,
    pub expected: Option<String>,
    pub deviation: Option<String>,
    pub source: Option<String>,
}

/// Admin: flows.
#[derive(Debug, Template)]
#[template(path = "flows.html")]
pub struct FlowsPage {
    pub layout: Layout,
    pub flows: Vec<FlowRow>,
    pub new_flow_id: String,
    pub json: String,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone)]
pub struct FlowRow {
    pub flow_id: String,
    pub version: u32,
    pub name: String,
    pub status: String,
    pub steps: usize,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// Admin: one flow version in the JSON editor.
#[derive(Debug, Template)]
#[template(path = "flow_edit.html")]
pub struct FlowEditPage {
    pub layout: Layout,
    pub flow_id: String,
    pub version: u32,
    pub status: String,
    pub editable: bool,
    pub json: String,
    pub problems: Vec<Problem>,
    pub versions: Vec<FlowRow>,
}

/// Admin: devices.
#[derive(Debug, Template)]
#[template(path = "devices.html")]
pub struct DevicesPage {
    pub layout: Layout,
    pub devices: Vec<DeviceRow>,
    /// A just-created enrollment code, shown this once.
    pub code: Option<EnrollmentShown>,
    pub form: DeviceForm,
    /// The scale protocols the edge agent speaks.
    pub protocols: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct DeviceRow {
    pub device_id: String,
    pub name: String,
    pub station: String,
    pub state: String,
    pub online: bool,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct EnrollmentShown {
    pub device_id: String,
    pub code: String,
    pub expires: String,
}

#[derive(Debug, Clone, Default)]
pub struct DeviceForm {
    pub device_id: String,
    pub name: String,
    pub site: String,
    pub station_id: String,
    pub protocol: String,
    pub port: String,
}

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

/// Analyst: the report catalogue.
#[derive(Debug, Template)]
#[template(path = "reports.html")]
pub struct ReportsPage {
    pub layout: Layout,
    pub reports: Vec<ReportLink>,
}

#[derive(Debug, Clone)]
pub struct ReportLink {
    pub name: String,
    pub title: String,
    pub description: String,
}

/// Analyst: one report with its filters, table, chart and CSV link.
#[derive(Debug, Template)]
#[template(path = "report.html")]
pub struct ReportPage {
    pub layout: Layout,
    pub name: String,
    pub title: String,
    pub filters: Vec<FilterField>,
    pub summary: Vec<(String, String)>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub total: u64,
    pub query: String,
    pub can_export: bool,
}

#[derive(Debug, Clone)]
pub struct FilterField {
    pub name: String,
    pub label: String,
    pub value: String,
    /// `date` or `text`.
    pub input: String,
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
            flags: vec![],
            history: vec![],
            live_station: Some("receiving".into()),
        }
        .render()
        .expect("render");
        assert!(html.contains("148 g ± 0.5 g"));
        assert!(html.contains(r#"id="capture""#));
        assert!(html.contains("148.3 g ✓ within tolerance"));
        assert!(html.contains(r#"data-station="receiving""#));
        assert!(html.contains(r#"class="verdict ok""#));
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
