//! The users admin pages and the audit log viewer in a real headless Chromium, against the
//! real `metcon-cloud`:
//!
//! - an admin changes a user's name, role and stations, and the user sees it after logging
//!   in; sets an operator's password (a mismatch and a too-short one refused with a readable
//!   message, the password never echoed): the old one stops working, the new one works and
//!   the operator's open browser session goes to the login page on its next action; deactivates
//!   a user (their open session ends, they cannot log in and are told so) and reactivates
//!   them; cannot demote or deactivate the last admin (readable 409);
//! - the audit page lists these actions, newest first, filters by action, actor, target and
//!   day, pages to older entries, and shows the chain intact; after the SQLite file is
//!   tampered with behind the server's back, it shows the chain broken at that entry;
//! - an operator gets the 403 page for a user's page, its POSTs and the audit log, and sees
//!   no link to them.
//!
//! Screenshots of the user edit page and the audit page (intact and broken) at phone and
//! kiosk widths go to `target/ui-screenshots/`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use fantoccini::Locator;
use metcon_e2e::api::{bootstrapped, Api, PASSWORD};
use metcon_e2e::browser::Browser;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const NEW_PASSWORD: &str = "a-brand-new-long-password";

async fn user_id(api: &Api, admin: &str, username: &str) -> String {
    let list = api.must(Method::GET, "/api/users", admin, None, 200).await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn login_status(api: &Api, username: &str, password: &str) -> StatusCode {
    api.call(
        Method::POST,
        "/api/auth/login",
        None,
        Some(json!({ "username": username, "password": password })),
    )
    .await
    .0
}

/// Waits until the browser is on the login page (a revoked session's next request).
async fn wait_login_page(b: &Browser) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !b.path().await.unwrap().starts_with("/login") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still on {}",
            b.path().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The number of rows in the audit table (0 when the page says there are none).
async fn audit_rows(b: &Browser) -> usize {
    b.client
        .find_all(Locator::Css("#audit-table tbody tr"))
        .await
        .unwrap()
        .len()
}

/// A user as the API shows it.
async fn api_user(api: &Api, admin: &str, id: &str) -> Value {
    api.must(Method::GET, &format!("/api/users/{id}"), admin, None, 200)
        .await
}

/// The text of one column (by its `data-label`) of the audit table's rows.
async fn column(b: &Browser, label: &str) -> Vec<String> {
    let mut out = Vec::new();
    for cell in b
        .client
        .find_all(Locator::Css(&format!(
            "#audit-table tbody td[data-label={label}]"
        )))
        .await
        .unwrap()
    {
        out.push(cell.text().await.unwrap().trim().to_string());
    }
    out
}

/// The `#` column of the audit table's rows.
async fn audit_seqs(b: &Browser) -> Vec<u64> {
    let mut out = Vec::new();
    for row in b
        .client
        .find_all(Locator::Css("#audit-table tbody tr"))
        .await
        .unwrap()
    {
        let id = row.attr("id").await.unwrap().unwrap();
        out.push(id.trim_start_matches("audit-").parse().unwrap());
    }
    out
}

/// Edits the server's SQLite file behind its back, as an attacker with the file could
/// (dropping the append-only triggers first).
fn tamper(db: &std::path::Path, sql: &str) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.execute_batch(
        "DROP TRIGGER IF EXISTS audit_append_only_u; DROP TRIGGER IF EXISTS audit_append_only_d;",
    )
    .unwrap();
    c.execute_batch(sql).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_users_and_reads_the_audit_log() {
    let (dir, server, api, t) = bootstrapped(&[]).await;
    api.must(
        Method::POST,
        "/api/users",
        &t.admin,
        Some(json!({ "username": "olga", "password": PASSWORD, "role": "operator", "stations": ["receiving"] })),
        201,
    )
    .await;

    let admin = Browser::start(&server.base).await.unwrap();
    admin.login("admin", PASSWORD).await.unwrap();
    admin.open("/admin/users").await.unwrap();
    admin.wait_text("Create a user", WAIT).await.unwrap();
    admin.click("#user-olga a").await.unwrap();
    admin.wait_text("User olga", WAIT).await.unwrap();
    let olga_page = admin.path().await.unwrap();
    assert!(olga_page.starts_with("/admin/users/"), "{olga_page}");
    admin.screenshots("user-edit").await.unwrap();
    admin
        .screenshots_of("user-edit-lower", "#password-heading")
        .await
        .unwrap();

    // Name, role and stations; the user sees them after logging in.
    admin.fill("#display_name", "Olga Petrova").await.unwrap();
    admin.select("#role", "supervisor").await.unwrap();
    admin.fill("#stations", "receiving, assay").await.unwrap();
    admin.click("#save-user").await.unwrap();
    let page = admin.wait_text("Saved:", WAIT).await.unwrap();
    assert!(
        page.contains("Olga Petrova (supervisor), stations: receiving, assay"),
        "{page}"
    );
    let olga = Browser::start(&server.base).await.unwrap();
    olga.login("olga", PASSWORD).await.unwrap();
    let page = olga
        .wait_text("Olga Petrova (supervisor)", WAIT)
        .await
        .unwrap();
    assert!(
        page.contains("Approvals"),
        "a supervisor's navigation: {page}"
    );
    let id = user_id(&api, &t.admin, "olga").await;
    let v = api_user(&api, &t.admin, &id).await;
    assert_eq!(v["stations"], json!(["receiving", "assay"]), "{v}");

    // A refused details form keeps what was typed and says why.
    admin.fill("#stations", "Receiving Bay").await.unwrap();
    admin.click("#save-user").await.unwrap();
    admin.wait_text("is not a station id", WAIT).await.unwrap();
    let typed = admin.value("#stations").await.unwrap();
    assert_eq!(typed.as_deref(), Some("Receiving Bay"));
    // Nothing was saved.
    let v = api_user(&api, &t.admin, &id).await;
    assert_eq!(v["stations"], json!(["receiving", "assay"]), "{v}");

    // A new password for the operator, whose browser session is open.
    let op = Browser::start(&server.base).await.unwrap();
    op.login("operator", PASSWORD).await.unwrap();
    op.wait_text("Station board", WAIT).await.unwrap();
    let op_id = user_id(&api, &t.admin, "operator").await;
    admin.open(&format!("/admin/users/{op_id}")).await.unwrap();
    admin.wait_text("User operator", WAIT).await.unwrap();
    admin.fill("#new-password", NEW_PASSWORD).await.unwrap();
    admin
        .fill("#confirm-password", "something-else-entirely")
        .await
        .unwrap();
    admin.click("#reset-password").await.unwrap();
    admin
        .wait_text("the two passwords are not the same", WAIT)
        .await
        .unwrap();
    // The API's policy (the browser's own minlength check taken away to reach it).
    admin
        .client
        .execute(
            "for (const id of ['new-password', 'confirm-password']) document.getElementById(id).removeAttribute('minlength');",
            vec![],
        )
        .await
        .unwrap();
    admin.fill("#new-password", "short").await.unwrap();
    admin.fill("#confirm-password", "short").await.unwrap();
    admin.click("#reset-password").await.unwrap();
    // The API's own words (the page's hint says "At least 12 characters" too).
    admin
        .wait_text("a password needs at least 12 characters", WAIT)
        .await
        .unwrap();
    assert_eq!(
        login_status(&api, "operator", PASSWORD).await,
        StatusCode::OK
    );
    admin.fill("#new-password", NEW_PASSWORD).await.unwrap();
    admin.fill("#confirm-password", NEW_PASSWORD).await.unwrap();
    admin.click("#reset-password").await.unwrap();
    admin.wait_text("New password set", WAIT).await.unwrap();
    let html = admin.client.source().await.unwrap();
    assert!(!html.contains(NEW_PASSWORD), "the password is never echoed");
    assert_eq!(
        login_status(&api, "operator", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_status(&api, "operator", NEW_PASSWORD).await,
        StatusCode::OK
    );
    // The operator's open page: its next action leads to the login form.
    op.click("nav a[href='/']").await.unwrap();
    wait_login_page(&op).await;
    op.login("operator", NEW_PASSWORD).await.unwrap();
    op.wait_text("Station board", WAIT).await.unwrap();

    // Deactivate olga: her open session ends, she cannot log in and is told so.
    admin.open(&olga_page).await.unwrap();
    admin.click("#deactivate").await.unwrap();
    admin.wait_text("olga is deactivated", WAIT).await.unwrap();
    assert_eq!(admin.text("#user-state").await.unwrap(), "Deactivated");
    olga.open("/approvals").await.unwrap();
    wait_login_page(&olga).await;
    olga.login("olga", PASSWORD).await.unwrap();
    let refused = olga.text("#login-error").await.unwrap();
    assert!(refused.contains("deactivated"), "{refused}");
    admin.open("/admin/users").await.unwrap();
    let row = admin.text("#user-olga").await.unwrap();
    assert!(row.ends_with("no"), "{row}");
    // … and reactivate her.
    admin.open(&olga_page).await.unwrap();
    admin.click("#reactivate").await.unwrap();
    admin.wait_text("olga is active again", WAIT).await.unwrap();
    olga.login("olga", PASSWORD).await.unwrap();
    olga.wait_text("Olga Petrova (supervisor)", WAIT)
        .await
        .unwrap();

    // The only admin cannot demote or deactivate themselves.
    let me = user_id(&api, &t.admin, "admin").await;
    admin.open(&format!("/admin/users/{me}")).await.unwrap();
    admin
        .wait_text("This is your own account", WAIT)
        .await
        .unwrap();
    admin.select("#role", "operator").await.unwrap();
    admin.click("#save-user").await.unwrap();
    admin.wait_text("last active admin", WAIT).await.unwrap();
    admin.open(&format!("/admin/users/{me}")).await.unwrap();
    admin.click("#deactivate").await.unwrap();
    admin.wait_text("last active admin", WAIT).await.unwrap();
    assert_eq!(admin.text("#user-state").await.unwrap(), "Active");

    // The audit log, from the navigation: every one of these actions, newest first.
    admin.open("/").await.unwrap();
    admin.click("nav a[href='/audit']").await.unwrap();
    let page = admin.wait_text("Chain intact", WAIT).await.unwrap();
    for action in [
        "user_role_changed",
        "user_renamed",
        "password_reset",
        "user_deactivated",
        "user_activated",
    ] {
        assert!(page.contains(action), "{action}: {page}");
    }
    assert!(page.contains("to role"), "details as lines: {page}");
    let seqs = audit_seqs(&admin).await;
    assert!(seqs.windows(2).all(|p| p[0] > p[1]), "{seqs:?}");
    admin.screenshots("audit").await.unwrap();
    admin
        .screenshots_of("audit-entries", "#audit-table")
        .await
        .unwrap();

    // Filters: by the form …
    admin.fill("#f-action", "user_deactivated").await.unwrap();
    admin.click("#apply-filters").await.unwrap();
    admin.wait_text("Clear", WAIT).await.unwrap();
    assert_eq!(audit_rows(&admin).await, 1);
    assert!(admin
        .text("#audit-table")
        .await
        .unwrap()
        .contains("user:olga"));
    // … by a link in a row (the target), combined with an actor …
    admin
        .open("/audit?actor=admin&target=user:olga")
        .await
        .unwrap();
    admin.wait_text("Chain intact", WAIT).await.unwrap();
    let text = admin.text("#audit-table").await.unwrap();
    assert!(
        text.contains("user_role_changed") && !text.contains("password_reset"),
        "{text}"
    );
    let actors = column(&admin, "Actor").await;
    assert!(
        !actors.is_empty() && actors.iter().all(|a| a == "admin"),
        "{actors:?}"
    );
    // A row's target link is that whole target, not every target containing it.
    admin.open("/audit?target=user:olg").await.unwrap();
    admin.wait_text("Chain intact", WAIT).await.unwrap();
    assert!(column(&admin, "Target")
        .await
        .iter()
        .any(|t| t == "user:olga"));
    admin
        .click("#audit-table tbody tr td[data-label=Target] a")
        .await
        .unwrap();
    admin.wait_text("Chain intact", WAIT).await.unwrap();
    assert!(admin.path().await.unwrap().contains("exact=1"));
    let targets = column(&admin, "Target").await;
    assert!(
        !targets.is_empty() && targets.iter().all(|t| t == "user:olga"),
        "{targets:?}"
    );
    admin.open("/audit?target=user:olg&exact=1").await.unwrap();
    admin
        .wait_text("No audit entries match these filters", WAIT)
        .await
        .unwrap();
    // … and by UTC day.
    let today = time::OffsetDateTime::now_utc().date();
    admin
        .open(&format!(
            "/audit?action=password_reset&from={today}&to={today}"
        ))
        .await
        .unwrap();
    admin.wait_text("Chain intact", WAIT).await.unwrap();
    assert_eq!(audit_rows(&admin).await, 1);
    let tomorrow = today.next_day().unwrap();
    admin
        .open(&format!("/audit?from={tomorrow}"))
        .await
        .unwrap();
    admin
        .wait_text("No audit entries match these filters", WAIT)
        .await
        .unwrap();
    admin.open("/audit?from=last-week").await.unwrap();
    admin.wait_text("YYYY-MM-DD", WAIT).await.unwrap();

    // Paging: more than a page of entries, then the older ones.
    for i in 0..55 {
        api.must(
            Method::PATCH,
            &format!("/api/users/{id}"),
            &t.admin,
            Some(json!({ "display_name": format!("Olga {i}") })),
            200,
        )
        .await;
    }
    admin.open("/audit").await.unwrap();
    admin.wait_text("Older entries", WAIT).await.unwrap();
    let first = audit_seqs(&admin).await;
    assert_eq!(first.len(), 50);
    admin.click("#older").await.unwrap();
    admin.wait_text("Newest entries", WAIT).await.unwrap();
    let older = audit_seqs(&admin).await;
    assert!(!older.is_empty());
    // Exactly where the first page stopped: nothing skipped, nothing twice.
    assert_eq!(
        older[0] + 1,
        *first.last().unwrap(),
        "{older:?} after {first:?}"
    );

    // Tampered behind the server's back: the chain shows red at the edited entry.
    tamper(
        &dir.path().join("metcon.db"),
        "UPDATE audit SET details = '{\"tampered\":true}' WHERE seq = 2;",
    );
    admin.open("/audit").await.unwrap();
    let page = admin
        .wait_text("Chain broken at entry 2", WAIT)
        .await
        .unwrap();
    assert!(
        page.contains("Entry 2: its content does not match its hash"),
        "{page}"
    );
    let class = admin
        .client
        .find(Locator::Css("#chain"))
        .await
        .unwrap()
        .attr("class")
        .await
        .unwrap();
    assert_eq!(class.as_deref(), Some("chain bad"));
    admin.screenshots("audit-broken").await.unwrap();

    for b in [admin, olga, op] {
        b.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_cannot_open_or_post_to_user_admin_or_the_audit_log() {
    let (_dir, server, api, t) = bootstrapped(&[]).await;
    let id = user_id(&api, &t.admin, "supervisor").await;
    let b = Browser::start(&server.base).await.unwrap();
    b.login("operator", PASSWORD).await.unwrap();
    b.wait_text("Station board", WAIT).await.unwrap();
    let html = b.client.source().await.unwrap();
    assert!(!html.contains("href=\"/audit\""), "no audit link: {html}");
    for path in [format!("/admin/users/{id}"), "/audit".to_string()] {
        b.open(&path).await.unwrap();
        let page = b.wait_text("Error 403", WAIT).await.unwrap();
        assert!(page.contains("Not allowed"), "{path}: {page}");
    }
    // The POSTs, with the operator's own valid CSRF token: refused by permission.
    for (action, fields) in [
        (format!("/admin/users/{id}"), "role=operator&display_name=x"),
        (format!("/admin/users/{id}/active"), "active=false"),
        (
            format!("/admin/users/{id}/password"),
            "password=aaaaaaaaaaaaaaaa&password_confirm=aaaaaaaaaaaaaaaa",
        ),
    ] {
        b.open("/").await.unwrap();
        b.wait_text("Station board", WAIT).await.unwrap();
        b.client
            .execute(
                "const [action, fields] = arguments;
                 const f = document.createElement('form');
                 f.method = 'post'; f.action = action;
                 const add = (k, v) => { const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); };
                 add('_csrf', document.querySelector('form.logout input[name=_csrf]').value);
                 for (const [k, v] of new URLSearchParams(fields)) add(k, v);
                 document.body.appendChild(f); f.submit();",
                vec![json!(action), json!(fields)],
            )
            .await
            .unwrap();
        let page = b.wait_text("Error 403", WAIT).await.unwrap();
        assert!(page.contains("ManageUsers"), "{action}: {page}");
    }
    // Nothing changed.
    let v = api_user(&api, &t.admin, &id).await;
    assert_eq!(v["role"], "supervisor");
    assert_eq!(v["active"], true);
    assert_eq!(
        login_status(&api, "supervisor", PASSWORD).await,
        StatusCode::OK
    );
    b.close().await.unwrap();
}
