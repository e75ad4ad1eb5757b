//! The audit log viewer (`/audit`): filters, a page of entries newest first with a link to
//! older ones, and the chain's verification status.

use askama::Template;

use super::Layout;

#[derive(Debug, Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub layout: Layout,
    pub filters: AuditFilters,
    pub chain: ChainStatus,
    pub entries: Vec<AuditEntry>,
    /// The next page back in time, if there is one.
    pub older: Option<String>,
    /// Back to the newest entries, when this page is an older one.
    pub newest: Option<String>,
}

/// The filter form as shown (what the query asked for).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilters {
    pub actor: String,
    pub action: String,
    pub target: String,
    /// The target is matched whole, not as a part.
    pub exact: bool,
    /// `YYYY-MM-DD`
    pub from: String,
    pub to: String,
}

impl AuditFilters {
    pub fn any(&self) -> bool {
        *self != AuditFilters::default()
    }
}

/// The result of verifying the whole hash chain.
#[derive(Debug, Clone, Default)]
pub struct ChainStatus {
    pub ok: bool,
    /// "Chain intact: 42 entries verified." or "Chain broken at entry 7: …".
    pub headline: String,
    /// Every break found, one line each (empty when intact).
    pub breaks: Vec<String>,
}

/// One audit record, formatted.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    pub seq: u64,
    pub time: String,
    pub actor: String,
    /// A link that filters on this actor.
    pub actor_link: String,
    pub action: String,
    pub action_link: String,
    pub target: String,
    pub target_link: String,
    /// `(what, value)` pairs; an empty `what` is a value on its own.
    pub details: Vec<(String, String)>,
    pub ip: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(chain: ChainStatus) -> AuditPage {
        AuditPage {
            layout: Layout {
                csrf: "tok".into(),
                ..Layout::default()
            },
            filters: AuditFilters {
                actor: "admin\"><script>".into(),
                ..AuditFilters::default()
            },
            chain,
            entries: vec![AuditEntry {
                seq: 7,
                time: "2026-12-02 10:00:00 UTC".into(),
                actor: "admin".into(),
                actor_link: "/audit?actor=admin".into(),
                action: "user_role_changed".into(),
                action_link: "/audit?action=user_role_changed".into(),
                target: "user:<img src=x>".into(),
                target_link: "/audit?target=user%3A".into(),
                details: vec![
                    ("to role".into(), "supervisor".into()),
                    ("reason".into(), "<script>alert(1)</script>".into()),
                ],
                ip: "127.0.0.1".into(),
            }],
            older: Some("/audit?before=7".into()),
            newest: None,
        }
    }

    #[test]
    fn entries_are_a_table_with_headers_and_everything_outside_is_escaped() {
        let html = page(ChainStatus {
            ok: true,
            headline: "Chain intact: 7 entries verified.".into(),
            breaks: vec![],
        })
        .render()
        .expect("render");
        for h in ["Time", "Actor", "Action", "Target", "Details"] {
            assert!(
                html.contains(&format!(r#"<th scope="col">{h}</th>"#)),
                "{h}"
            );
        }
        assert!(html.contains(r#"data-label="Actor""#));
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img src=x>"));
        assert!(html.contains(r#"class="chain ok""#));
        assert!(html.contains("Chain intact: 7 entries verified."));
        assert!(html.contains(r#"href="/audit?before=7""#));
        assert!(html.contains("to role"));
        // The filter form is a GET: a filtered view is a link, no CSRF needed.
        assert!(html.contains(r#"<form method="get" action="/audit""#));
    }

    #[test]
    fn a_broken_chain_is_red_and_lists_its_breaks() {
        let html = page(ChainStatus {
            ok: false,
            headline: "Chain broken at entry 2.".into(),
            breaks: vec!["entry 2: its content does not match its hash".into()],
        })
        .render()
        .expect("render");
        assert!(html.contains(r#"class="chain bad""#));
        assert!(html.contains(r#"role="alert""#));
        assert!(html.contains("entry 2: its content does not match its hash"));
    }
}
