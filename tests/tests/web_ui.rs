//! The web UI in a real headless Chromium, against the real `metcon-cloud` (and, for the
//! mass check, the scale simulator → enrolled `metcon-edge` → embedded broker → ingest).
//!
//! - an operator logs in, starts a batch, completes instruction and checklist steps, watches
//!   the live weight turn stable, presses Capture and sees the green verdict, signs (with a
//!   wrong password first) and completes the batch; a second batch weighs out of tolerance,
//!   shows the red verdict with the deviation, and appears by itself in the supervisor's open
//!   approval queue, where it is approved with an e-signature;
//! - an operator cannot open admin or analyst pages (403 page); a form with a wrong CSRF
//!   token is refused; a user logs in with the keyboard alone; without a session every page
//!   leads to the login form;
//! - an admin sees every problem of a draft with its path, publishes it, registers a device
//!   and sees its one-time enrollment code, and creates a user;
//! - an admin builds a flow in the builder (a step added, a bad number kept and marked, a step
//!   moved), previews it on a dummy batch with a weight to try, publishes it, publishes a
//!   second version with a tighter tolerance and reads the diff; the next batch uses it;
//! - an analyst opens a report with filters, its chart and its CSV link, then the audit log.
//!
//! Screenshots of each main screen at phone and kiosk widths go to `target/ui-screenshots/`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::Locator;
use metcon_e2e::api::{bootstrapped, Api, PASSWORD};
use metcon_e2e::browser::Browser;
use metcon_e2e::edge::Edge;
use metcon_e2e::scale_sim::Sim;
use metcon_e2e::{sibling_binary, Server};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// A flow with four of the five step types at receiving (photo steps: see
/// `an_operator_completes_a_mass_check_and_a_photo_step_from_photos`).
async fn publish_receiving_flow(api: &Api, admin: &str) {
    let content = json!({
        "name": "Gold receiving", "pipeline": "gold",
        "stations": [{ "station_id": "receiving", "name": "Receiving", "steps": [
            { "step_id": "read", "name": "Read the delivery note", "type": "instruction",
              "text": "Compare the delivery note with the seal number." },
            { "step_id": "inspect", "name": "Inspect", "type": "checklist",
              "items": ["Seal intact", "Label matches"] },
            { "step_id": "weigh", "name": "Weigh-in", "type": "mass_check",
              "expected_mass": "1000", "unit": "g",
              "tolerance": { "kind": "absolute", "value": "0.5", "unit": "g" } },
            { "step_id": "sign", "name": "Receipt", "type": "signature", "meaning": "Received by" }
        ]}]
    });
    api.publish_flow(admin, "receiving", content).await;
}

/// Starts a batch of the receiving flow from the board and does its first two steps.
async fn start_and_prepare(b: &Browser) -> String {
    let id = b
        .start_batch("receiving", "Read the delivery note")
        .await
        .unwrap();
    b.click("input[name=acknowledged]").await.unwrap();
    b.click("#complete-step").await.unwrap();
    b.wait_text("Seal intact", WAIT).await.unwrap();
    for cb in b
        .client
        .find_all(Locator::Css("input[name=checked]"))
        .await
        .unwrap()
    {
        cb.click().await.unwrap();
    }
    b.click("#complete-step").await.unwrap();
    b.wait_text("1000 g ± 0.5 g", WAIT).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_a_batch_and_a_supervisor_approves_the_flag() {
    let (_dir, server, api, t) = bootstrapped(&[]).await;
    publish_receiving_flow(&api, &t.admin).await;
    let mut sim = Sim::start("mt-sics", &["--capacity", "5000"]);
    let code = api
        .register_device(&t.admin, "scale-01", "mt-sics", &sim.pty)
        .await;
    let mut edge = Edge::enroll(&server.base, &code);
    edge.start();

    let op = Browser::start(&server.base).await.unwrap();
    op.login("operator", PASSWORD).await.unwrap();
    op.wait_text("Station board", WAIT).await.unwrap();
    op.screenshots("board").await.unwrap();

    // Batch 1: within tolerance.
    let b1 = start_and_prepare(&op).await;
    sim.set_and_settle("1000.20");
    // The live weight arrives over the station's event stream and turns stable.
    op.wait_text("1000.20 g", WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\nagent:\n{}", edge.logs()));
    let deadline = tokio::time::Instant::now() + WAIT;
    while op.text("#stable").await.unwrap() != "stable" {
        assert!(tokio::time::Instant::now() < deadline, "never stable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    op.screenshots("mass-check").await.unwrap();
    op.click("#capture").await.unwrap();
    let page = op
        .wait_text("1000.20 g ✓ within tolerance", WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\nagent:\n{}", edge.logs()));
    assert!(page.contains("Received by"), "{page}");
    op.screenshots("verdict-ok").await.unwrap();
    let v = api.batch(&t.operator, &b1).await;
    assert_eq!(v["current_step"]["step"]["step_id"], "sign", "{v}");

    // The signature re-authenticates: a wrong password is refused with a message.
    op.fill("#sig-password", "not-my-password").await.unwrap();
    op.click("#sign").await.unwrap();
    op.wait_text("re-authentication failed", WAIT)
        .await
        .unwrap();
    op.fill("#sig-password", PASSWORD).await.unwrap();
    op.click("#sign").await.unwrap();
    op.wait_text("All steps are done", WAIT).await.unwrap();
    op.click("#finish").await.unwrap();
    op.wait_text("completed the batch", WAIT).await.unwrap();
    let v = api.batch(&t.operator, &b1).await;
    assert_eq!(v["batch"]["status"], "completed", "{v}");
    let signed = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "step_completed" && e["step_id"] == "sign")
        .cloned()
        .unwrap();
    assert_eq!(signed["payload"]["meaning"], "Received by");

    // The supervisor's queue is open and empty before the flag exists.
    let sup = Browser::start(&server.base).await.unwrap();
    sup.login("supervisor", PASSWORD).await.unwrap();
    sup.open("/approvals").await.unwrap();
    sup.wait_text("Nothing waits for approval", WAIT)
        .await
        .unwrap();

    // Batch 2: out of tolerance → red verdict with the deviation, flagged.
    let b2 = start_and_prepare(&op).await;
    sim.set_and_settle("1012.00");
    op.wait_text("1012.00 g", WAIT).await.unwrap();
    op.click("#capture").await.unwrap();
    let page = op
        .wait_text("1012.00 g ✗ outside tolerance", WAIT)
        .await
        .unwrap();
    assert!(page.contains("+12.00 g"), "{page}");
    assert!(page.contains("a supervisor must approve"), "{page}");
    op.screenshots("verdict-flagged").await.unwrap();
    let v = api.batch(&t.operator, &b2).await;
    assert_eq!(v["batch"]["status"], "flagged", "{v}");
    let number = v["batch"]["batch_number"].as_str().unwrap().to_string();

    // The request appears in the open queue by itself, with its evidence.
    let page = sup.wait_text(&number, WAIT).await.unwrap();
    assert!(page.contains("1012.00 g"), "{page}");
    assert!(page.contains("+12.00 g"), "{page}");
    sup.screenshots("approvals").await.unwrap();
    let reason = sup
        .client
        .find(Locator::Css("textarea[name=reason]"))
        .await
        .unwrap();
    reason
        .send_keys("Scale re-checked; sample includes the crucible lid")
        .await
        .unwrap();
    sup.fill("input[name=password]", "wrong-password")
        .await
        .unwrap();
    sup.click("button.approve").await.unwrap();
    sup.wait_text("re-authentication failed", WAIT)
        .await
        .unwrap();
    sup.approve_first(
        "Scale re-checked; sample includes the crucible lid",
        PASSWORD,
        "Approved and signed.",
    )
    .await
    .unwrap();
    let v = api.batch(&t.operator, &b2).await;
    assert_eq!(v["batch"]["status"], "in_progress", "{v}");
    let flag = &v["batch"]["flags"][0];
    assert_eq!(flag["resolution"]["approved"], true, "{v}");
    assert_eq!(flag["resolution"]["by"]["username"], "supervisor");
    assert_eq!(v["current_step"]["step"]["step_id"], "sign", "{v}");

    op.logout().await.unwrap();
    op.wait_text("Log in", WAIT).await.unwrap();
    op.close().await.unwrap();
    sup.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_refuse_the_wrong_role_a_forged_form_and_no_session() {
    let (_dir, server, api, t) = bootstrapped(&[]).await;
    publish_receiving_flow(&api, &t.admin).await;
    let b = Browser::start(&server.base).await.unwrap();

    // No session: to the login page, and back after logging in.
    b.open("/admin/flows").await.unwrap();
    b.wait_text("Log in", WAIT).await.unwrap();
    assert!(b.path().await.unwrap().starts_with("/login?next="));
    b.screenshots("login").await.unwrap();

    // Keyboard only: the username field has focus; Tab to the password; Enter submits.
    let focused = b.client.active_element().await.unwrap();
    assert_eq!(
        focused.attr("id").await.unwrap().as_deref(),
        Some("username")
    );
    focused.send_keys("operator").await.unwrap();
    focused
        .send_keys(&char::from(Key::Tab).to_string())
        .await
        .unwrap();
    let pw = b.client.active_element().await.unwrap();
    assert_eq!(pw.attr("id").await.unwrap().as_deref(), Some("password"));
    pw.send_keys(&format!("{PASSWORD}{}", char::from(Key::Enter)))
        .await
        .unwrap();

    // Back to where it wanted to go, which an operator may not open.
    let page = b.wait_text("Not allowed", WAIT).await.unwrap();
    assert!(page.contains("Error 403"), "{page}");
    assert!(page.contains("ManageFlows"), "{page}");
    b.screenshots("forbidden").await.unwrap();
    for path in [
        "/admin/devices",
        "/admin/users",
        "/reports",
        "/reports/mass-checks",
        "/audit",
    ] {
        b.open(path).await.unwrap();
        let page = b.wait_text("Error 403", WAIT).await.unwrap();
        assert!(page.contains("Not allowed"), "{path}: {page}");
    }
    // And the navigation offers none of them.
    b.open("/").await.unwrap();
    let html = b.client.source().await.unwrap();
    assert!(!html.contains("/admin/"), "{html}");
    assert!(!html.contains("href=\"/reports\""), "{html}");

    // A form whose CSRF token does not match the session's is refused; nothing is created.
    b.client
        .execute(
            "document.querySelector('form[action=\"/batches\"] input[name=_csrf]').value = 'forged';",
            vec![],
        )
        .await
        .unwrap();
    b.click("#start-batch").await.unwrap();
    let page = b.wait_text("CSRF", WAIT).await.unwrap();
    assert!(page.contains("Error 403"), "{page}");
    let list = api
        .must(Method::GET, "/api/batches", &t.admin, None, 200)
        .await;
    assert_eq!(list["total"], 0, "{list}");

    // The same form posted from elsewhere without the token: refused too.
    let res = reqwest::Client::new()
        .post(format!("{}/batches", server.base))
        .form(&[("flow_id", "receiving")])
        .send()
        .await
        .unwrap();
    assert_ne!(res.status(), reqwest::StatusCode::SEE_OTHER);
    let list = api
        .must(Method::GET, "/api/batches", &t.admin, None, 200)
        .await;
    assert_eq!(list["total"], 0, "{list}");

    // Security headers and cookie flags on the UI.
    let res = reqwest::Client::new()
        .get(format!("{}/login", server.base))
        .send()
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    let cookies: Vec<String> = b
        .client
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|c| format!("{} {:?} {:?}", c.name(), c.http_only(), c.same_site()))
        .collect();
    let access = cookies
        .iter()
        .find(|c| c.starts_with("metcon_access"))
        .unwrap();
    assert!(
        access.contains("Some(true)") && access.contains("Strict"),
        "{cookies:?}"
    );

    // Logging out ends the session: the board leads to the login page again.
    b.open("/").await.unwrap();
    b.logout().await.unwrap();
    b.wait_text("Log in", WAIT).await.unwrap();
    b.open("/").await.unwrap();
    b.wait_text("Log in", WAIT).await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_edits_and_publishes_a_flow_registers_a_device_and_creates_a_user() {
    let (_dir, server, api, t) = bootstrapped(&[]).await;
    let b = Browser::start(&server.base).await.unwrap();
    b.login("admin", PASSWORD).await.unwrap();
    b.open("/admin/flows").await.unwrap();
    b.wait_text("New flow (draft)", WAIT).await.unwrap();

    // A draft with problems is saved; every problem is listed with its path.
    let bad = json!({ "name": "Silver", "pipeline": "silver", "stations": [
        { "station_id": "receiving", "name": "Receiving", "steps": [
            { "step_id": "weigh", "name": "Weigh", "type": "mass_check", "expected_mass": "-5", "unit": "g",
              "tolerance": { "kind": "relative", "percent": "150" } },
            { "step_id": "weigh", "name": "Again", "type": "instruction", "text": "" }
        ] } ] });
    b.click("#json-create").await.unwrap();
    b.fill("#json_flow_id", "silver").await.unwrap();
    b.fill("#content", &bad.to_string()).await.unwrap();
    b.click("#create-flow").await.unwrap();
    let page = b.wait_text("problem(s)", WAIT).await.unwrap();
    assert!(page.contains("station 1, step 2: step id"), "{page}");
    b.screenshots("flow-editor").await.unwrap();
    // Publishing it is refused, with the problems.
    b.click("#publish").await.unwrap();
    b.wait_text("problem(s)", WAIT).await.unwrap();
    // JSON of the wrong shape names the field.
    b.click("#json-editor").await.unwrap();
    b.fill(
        "#content",
        r#"{"name": "Silver", "pipeline": "silver", "stations": 3}"#,
    )
    .await
    .unwrap();
    b.click("#save-json").await.unwrap();
    let page = b.wait_text("problem(s)", WAIT).await.unwrap();
    assert!(page.contains("stations"), "{page}");
    // Fixed, saved and published.
    let good = json!({ "name": "Silver", "pipeline": "silver", "stations": [
        { "station_id": "receiving", "name": "Receiving", "steps": [
            { "step_id": "weigh", "name": "Weigh", "type": "mass_check", "expected_mass": "500", "unit": "g",
              "tolerance": { "kind": "relative", "percent": "0.2" } }
        ] } ] });
    b.fill("#content", &good.to_string()).await.unwrap();
    b.click("#save-json").await.unwrap();
    b.wait_text("ready to publish", WAIT).await.unwrap();
    b.click("#publish").await.unwrap();
    b.wait_text("is published", WAIT).await.unwrap();
    let v = api
        .must(
            Method::GET,
            "/api/flows/silver/versions/1",
            &t.admin,
            None,
            200,
        )
        .await;
    assert_eq!(v["status"], "active", "{v}");
    // The operator's next batch can use it.
    let id = api.started_batch(&t.operator, "silver").await;
    let v = api.batch(&t.operator, &id).await;
    assert_eq!(v["batch"]["flow_version"], 1);

    // Devices: registering shows the one-time code once.
    b.open("/admin/devices").await.unwrap();
    b.fill("#device_id", "scale-07").await.unwrap();
    b.fill("#name", "Casting scale").await.unwrap();
    b.fill("#site", "Plant A").await.unwrap();
    b.fill("#station_id", "casting").await.unwrap();
    b.fill("#port", "/dev/ttyUSB0").await.unwrap();
    b.click("#create-device").await.unwrap();
    b.wait_text("Enrollment code for", WAIT).await.unwrap();
    let code = b.text("#enrollment-code").await.unwrap();
    assert!(code.len() >= 16, "{code}");
    b.screenshots("devices").await.unwrap();
    b.open("/admin/devices").await.unwrap();
    let page = b.wait_text("scale-07", WAIT).await.unwrap();
    assert!(!page.contains(&code), "the code is shown only once");
    b.fill("#rv-scale-07", "Lost in transit").await.unwrap();
    b.click("#device-scale-07 button.reject").await.unwrap();
    b.wait_text("is revoked", WAIT).await.unwrap();
    let v = api
        .must(Method::GET, "/api/devices/scale-07", &t.admin, None, 200)
        .await;
    assert_eq!(v["state"], "revoked", "{v}");

    // Users.
    b.open("/admin/users").await.unwrap();
    b.fill("#username", "olga").await.unwrap();
    b.fill("#display_name", "Olga K").await.unwrap();
    b.fill("#stations", "casting, qc").await.unwrap();
    b.fill("#new-password", "a-long-enough-password-1")
        .await
        .unwrap();
    b.click("#create-user").await.unwrap();
    let page = b.wait_text("User olga created", WAIT).await.unwrap();
    assert!(page.contains("casting, qc"), "{page}");
    b.screenshots("users").await.unwrap();
    api.login_with("olga", "a-long-enough-password-1").await;
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_reads_a_report_with_filters_chart_and_csv() {
    let (_dir, server, api, t) = bootstrapped(&[]).await;
    api.publish_weigh_flow(&t.admin, "weigh", "1000", "0.5")
        .await;
    for actual in ["1000.1", "1003"] {
        let id = api.started_batch(&t.operator, "weigh").await;
        api.must(
            Method::POST,
            &format!("/api/batches/{id}/steps/weigh/mass-check"),
            &t.operator,
            Some(json!({ "actual": { "value": actual, "unit": "g" }, "note": "by hand" })),
            200,
        )
        .await;
    }
    let b = Browser::start(&server.base).await.unwrap();
    b.login("analyst", PASSWORD).await.unwrap();
    b.wait_text("Reports", WAIT).await.unwrap();
    b.click("a[href='/reports/mass-checks']").await.unwrap();
    let page = b.wait_text("2 rows", WAIT).await.unwrap();
    assert!(page.contains("1003"), "{page}");
    b.fill("#f-status", "out").await.unwrap();
    b.click("#apply-filters").await.unwrap();
    let page = b.wait_text("1 rows", WAIT).await.unwrap();
    assert!(!page.contains("1000.1"), "{page}");
    assert!(b.path().await.unwrap().contains("status=out"));
    // The chart is an SVG the browser could load.
    let loaded = b
        .client
        .execute(
            "const i = document.getElementById('chart'); return i.complete && i.naturalWidth > 0;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(loaded, json!(true));
    let href = b
        .client
        .find(Locator::Css("#csv"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(href.starts_with("/api/reports/mass-checks/csv?"), "{href}");
    assert!(href.contains("status=out"), "{href}");
    b.screenshots("report").await.unwrap();
    // An analyst does not run batches: the board sends them to the reports.
    b.open("/").await.unwrap();
    assert_eq!(b.path().await.unwrap(), "/reports");
    // The audit log is in the analyst's navigation: the mass checks above are in it, and
    // the chain is intact.
    b.click("nav a[href='/audit']").await.unwrap();
    let page = b.wait_text("Chain intact", WAIT).await.unwrap();
    assert!(page.contains("flow_published"), "{page}");
    assert!(page.contains("flag_raised"), "{page}");
    // Reading is all: the admin pages stay closed.
    b.open("/admin/users").await.unwrap();
    b.wait_text("Error 403", WAIT).await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_idle_timeout_the_next_page_is_the_login_form() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &sibling_binary("metcon-cloud").unwrap(),
        dir.path(),
        &[("METCON_IDLE_TIMEOUT_SECONDS", "2")],
    )
    .unwrap();
    let api = Api::new(&server.base);
    api.bootstrap(server.setup_token.as_deref().unwrap()).await;
    let b = Browser::start(&server.base).await.unwrap();
    b.login("operator", PASSWORD).await.unwrap();
    b.wait_text("Station board", WAIT).await.unwrap();
    // Idle for longer than the timeout (the server's clock decides; nothing to poll for).
    tokio::time::sleep(Duration::from_secs(3)).await;
    b.open("/").await.unwrap();
    b.wait_text("Log in", WAIT).await.unwrap();
    assert!(b.path().await.unwrap().starts_with("/login"));
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unattended_approval_queue_goes_to_the_login_form_when_the_session_idles_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &sibling_binary("metcon-cloud").unwrap(),
        dir.path(),
        &[("METCON_IDLE_TIMEOUT_SECONDS", "8")],
    )
    .unwrap();
    let api = Api::new(&server.base);
    api.bootstrap(server.setup_token.as_deref().unwrap()).await;
    let b = Browser::start(&server.base).await.unwrap();
    b.login("supervisor", PASSWORD).await.unwrap();
    b.open("/approvals").await.unwrap();
    b.wait_text("Approvals", WAIT).await.unwrap();
    // The queue polls every 3 s. None of that is the supervisor's doing, so it does not keep
    // the session alive: once idle for longer than the timeout, the screen logs itself out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let path = b.path().await.unwrap();
        if path.starts_with("/login") {
            assert!(path.contains("next=%2Fapprovals"), "{path}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still at {path} after 40 s: the polling kept the session alive"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    b.wait_text("Log in", WAIT).await.unwrap();
    // Logging in again, on that form, comes back to the queue.
    b.fill("#username", "supervisor").await.unwrap();
    b.fill("#password", PASSWORD).await.unwrap();
    b.click("form button[type=submit]").await.unwrap();
    b.wait_text("New requests appear here", WAIT).await.unwrap();
    assert_eq!(b.path().await.unwrap(), "/approvals");
    b.close().await.unwrap();
}

/// Picks `file` in the file input `input` and presses `button`.
async fn choose_and_send(b: &Browser, input: &str, file: &std::path::Path, button: &str) {
    b.client
        .find(Locator::Css(input))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    b.click(button).await.unwrap();
}

/// A station without a serial scale: the operator photographs the display, the built-in
/// reader reads it and the mass check is recorded from the photo; the photo step takes its
/// photo through the same form. A file that is not a photo gets a readable message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_completes_a_mass_check_and_a_photo_step_from_photos() {
    let (file, shown, _) = metcon_e2e::scenes::readable_scene(false);
    let (_dir, server, api, t) = bootstrapped(&[]).await;
    let content = json!({
        "name": "Receiving by photo", "pipeline": "gold",
        "stations": [{ "station_id": "receiving", "name": "Receiving", "steps": [
            { "step_id": "weigh", "name": "Weigh-in", "type": "mass_check",
              "expected_mass": shown, "unit": "g",
              "tolerance": { "kind": "absolute", "value": "0.5", "unit": "g" } },
            { "step_id": "lot-photo", "name": "Photograph the lot", "type": "photo",
              "prompt": "Photograph the lot with its label." }
        ]}]
    });
    api.publish_flow(&t.admin, "by-photo", content).await;
    let op = Browser::start(&server.base).await.unwrap();
    op.login("operator", PASSWORD).await.unwrap();
    let id = op
        .start_batch("by-photo", "Photograph the display")
        .await
        .unwrap();

    // Not a photo: a readable refusal, nothing recorded.
    let not_photo = _dir.path().join("delivery-note.png");
    std::fs::write(&not_photo, "this is not an image").unwrap();
    op.click("summary").await.unwrap();
    choose_and_send(&op, "#display-photo", &not_photo, "#upload-display-photo").await;
    op.wait_text("not a JPEG or PNG", WAIT).await.unwrap();
    assert_eq!(api.batch(&t.operator, &id).await["batch"]["cursor"], 0);

    // The display photo: read, recorded, green.
    op.click("summary").await.unwrap();
    choose_and_send(&op, "#display-photo", &file, "#upload-display-photo").await;
    op.wait_text("within tolerance", WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    op.screenshots("mass-check-from-photo").await.unwrap();
    let v = api.batch(&t.operator, &id).await;
    let checked = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "mass_checked")
        .cloned()
        .unwrap();
    assert_eq!(checked["source"]["kind"], "ocr", "{v}");
    assert_eq!(v["current_step"]["step"]["step_id"], "lot-photo", "{v}");

    // The photo step.
    op.wait_text("Photograph the lot with its label.", WAIT)
        .await
        .unwrap();
    choose_and_send(&op, "#photo", &file, "#upload-photo").await;
    op.wait_text("All steps are done", WAIT).await.unwrap();
    let photos = api
        .must(
            Method::GET,
            &format!("/api/batches/{id}/photos"),
            &t.operator,
            None,
            200,
        )
        .await;
    assert_eq!(photos.as_array().unwrap().len(), 2, "{photos}");
    op.close().await.unwrap();
}

/// The flow's stored content, polled until `ok` holds (a click only dispatches the submit).
async fn flow_until(api: &Api, token: &str, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = api.must(Method::GET, path, token, None, 200).await;
        if ok(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_builds_a_flow_previews_publishes_and_compares_versions() {
    let (_dir, server, api, t) = bootstrapped(&[]).await;
    let b = Browser::start(&server.base).await.unwrap();
    b.login("admin", PASSWORD).await.unwrap();
    b.open("/admin/flows").await.unwrap();
    b.fill("#new_flow_id", "platinum").await.unwrap();
    b.fill("#new_name", "Platinum sponge").await.unwrap();
    b.fill("#new_pipeline", "pgm").await.unwrap();
    b.click("#create-flow-builder").await.unwrap();
    // The builder opens with what is left to fill in, beside its field.
    b.wait_text("Flow platinum · version 1", WAIT)
        .await
        .unwrap();
    assert!(b
        .text("#e-s0-t0-name")
        .await
        .unwrap()
        .contains("needs a name"));
    b.fill("#f-s0-t0-name", "Read the SOP").await.unwrap();
    b.fill("#f-s0-t0-text", "Gloves on; sponge stays in its tray.")
        .await
        .unwrap();
    b.select("#f-s0-new_type", "mass_check").await.unwrap();
    b.click("#add-step-0").await.unwrap();
    b.client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#f-s0-t1-expected_mass"))
        .await
        .unwrap();
    // A number that does not parse is kept as typed, marked, and nothing is saved.
    b.fill("#f-s0-t1-name", "Weigh in").await.unwrap();
    b.fill("#f-s0-t1-expected_mass", "2500,0x").await.unwrap();
    b.fill("#f-s0-t1-tolerance_value", "0.5").await.unwrap();
    b.click("#save-draft").await.unwrap();
    b.wait_text("Not saved: fix the marked fields", WAIT)
        .await
        .unwrap();
    assert!(b
        .text("#e-s0-t1-expected_mass")
        .await
        .unwrap()
        .contains("2500,0x"));
    let typed = b.value("#f-s0-t1-expected_mass").await.unwrap();
    assert_eq!(typed.as_deref(), Some("2500,0x"));
    b.screenshots_of("flow-builder", "#f-s0-t1").await.unwrap();
    // Fixed (a decimal comma is fine) and moved first: the button saves too.
    b.fill("#f-s0-t1-expected_mass", "2500,00").await.unwrap();
    b.click("button[value='step_up:0:1']").await.unwrap();
    let path = "/api/flows/platinum/versions/1";
    let v = flow_until(&api, &t.admin, path, |v| {
        v["stations"][0]["steps"][0]["type"] == "mass_check"
    })
    .await;
    assert_eq!(v["stations"][0]["steps"][0]["expected_mass"], "2500.00");
    assert_eq!(v["problems"], json!([]), "{v}");
    b.wait_text("ready to publish", WAIT).await.unwrap();

    // Preview: the dummy batch shows the window and decides a weight like a real batch.
    b.click("#preview").await.unwrap();
    b.wait_text("dummy batch", WAIT).await.unwrap();
    assert_eq!(b.text("#window").await.unwrap(), "2499.50 g – 2500.50 g");
    b.fill("#try-weight", "2500.7").await.unwrap();
    b.click("#try").await.unwrap();
    b.wait_text("outside tolerance", WAIT).await.unwrap();
    let verdict = b.text("#verdict").await.unwrap();
    assert!(verdict.contains("+0.7 g (+0.028 %)"), "{verdict}");
    b.screenshots("flow-preview").await.unwrap();
    b.click("#next").await.unwrap();
    b.wait_text("Gloves on", WAIT).await.unwrap();

    // Publish v1; the operator's next batch uses it.
    b.open("/admin/flows/platinum/1").await.unwrap();
    b.click("#publish").await.unwrap();
    b.wait_text("is published", WAIT).await.unwrap();
    let id = api.started_batch(&t.operator, "platinum").await;
    assert_eq!(
        api.batch(&t.operator, &id).await["batch"]["flow_version"],
        1
    );

    // Version 2 tightens the tolerance; the diff names it with both values.
    b.click("#new-version").await.unwrap();
    b.wait_text("Flow platinum · version 2", WAIT)
        .await
        .unwrap();
    b.fill("#f-s0-t0-tolerance_value", "0.25").await.unwrap();
    b.click("#save-draft").await.unwrap();
    flow_until(&api, &t.admin, "/api/flows/platinum/versions/2", |v| {
        v["stations"][0]["steps"][0]["tolerance"]["value"] == "0.25"
    })
    .await;
    b.click("#publish").await.unwrap();
    b.wait_text("Version 2 is published", WAIT).await.unwrap();
    b.click("#diff-2").await.unwrap();
    let page = b.wait_text("changes from v1 to v2", WAIT).await.unwrap();
    assert!(page.contains("1 change(s)"), "{page}");
    let row = b.text("#changes tbody tr").await.unwrap();
    assert!(
        row.contains("tolerance") && row.contains("±0.5 g") && row.contains("±0.25 g"),
        "{row}"
    );
    b.screenshots("flow-diff").await.unwrap();
    let id = api.started_batch(&t.operator, "platinum").await;
    assert_eq!(
        api.batch(&t.operator, &id).await["batch"]["flow_version"],
        2
    );

    // An operator cannot open the builder, the preview or the diff.
    let op = Browser::start(&server.base).await.unwrap();
    op.login("operator", PASSWORD).await.unwrap();
    for page in [
        "/admin/flows/platinum/2",
        "/admin/flows/platinum/2/preview",
        "/admin/flows/platinum/diff?from=1&to=2",
    ] {
        op.open(page).await.unwrap();
        op.wait_text("Not allowed", WAIT).await.unwrap();
    }
    op.close().await.unwrap();
    b.close().await.unwrap();
}
