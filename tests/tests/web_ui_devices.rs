//! The admin device pages in a real headless Chromium, against the real `metcon-cloud`, the
//! scale simulator and an enrolled `metcon-edge` with a file camera:
//!
//! - an admin registers a device and sees its one-time code with a QR code, the box enrolls
//!   with what the QR code holds (`metcon-edge enroll --uri`), the admin opens its page, sends tare (the simulated scale takes the tare),
//!   records a calibration (a bad one first: a readable error, nothing stored), captures a
//!   reading from the page (its frame, bound to nothing, is shown to draw on) and — once a
//!   mass check kept a camera frame — drags the display region on that frame; the API's
//!   `camera_region` is what was drawn; a region outside the frame is refused with a reason;
//! - operators get the 403 page on the device page, its frame and every one of its forms;
//!   supervisors cannot open it either, but record calibrations from their scales page.
//!
//! Screenshots go to `target/ui-screenshots/` (`device-*`, `region-editor-*`, `scales-*`).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::Locator;
use metcon_e2e::api::{bootstrapped, Api, PASSWORD};
use metcon_e2e::browser::Browser;
use metcon_e2e::edge::Edge;
use metcon_e2e::scale_sim::Sim;
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// Sets an input's value by script (date inputs do not take typed text the same way in
/// every locale); `as_text` first turns it into a plain text input, as in a browser without
/// date pickers, so that any text can be sent.
async fn set_value(b: &Browser, id: &str, value: &str, as_text: bool) {
    b.client
        .execute(
            "var e = document.getElementById(arguments[0]); if (arguments[2]) { e.type = 'text'; } e.value = arguments[1];",
            vec![json!(id), json!(value), json!(as_text)],
        )
        .await
        .unwrap();
}

/// POSTs a form from the page (with the page's CSRF token, unless `fields` has its own) and
/// returns the status and the answer's text.
async fn post_answer(b: &Browser, path: &str, fields: Value) -> (u64, String) {
    let v = b
        .client
        .execute_async(
            "var done = arguments[2]; var f = new URLSearchParams(arguments[1]);
             if (!f.has('_csrf')) { f.set('_csrf', document.querySelector('input[name=_csrf]').value); }
             fetch(arguments[0], { method: 'POST', body: f, credentials: 'same-origin', redirect: 'manual' })
               .then(function (r) { return r.text().then(function (t) { done([r.status, t]); }); },
                     function () { done([0, '']); });",
            vec![json!(path), fields],
        )
        .await
        .unwrap();
    (
        v[0].as_u64().unwrap(),
        v[1].as_str().unwrap_or_default().to_string(),
    )
}

/// The natural width of the page's frame image once loaded, else 0.
async fn frame_width(b: &Browser) -> f64 {
    b.client
        .execute(
            "var i = document.getElementById('frame-image'); return i && i.complete ? i.naturalWidth : 0;",
            vec![],
        )
        .await
        .unwrap()
        .as_f64()
        .unwrap_or(0.0)
}

/// scale-01's calibration records, through the API.
async fn calibrations(api: &Api, admin: &str) -> Value {
    api.must(
        Method::GET,
        "/api/devices/scale-01/calibrations",
        admin,
        None,
        200,
    )
    .await
}

async fn get_status(b: &Browser, path: &str) -> u64 {
    b.client
        .execute_async(
            "var done = arguments[1]; fetch(arguments[0], { credentials: 'same-origin', redirect: 'manual' })
               .then(function (r) { done(r.status); }, function () { done(0); });",
            vec![json!(path)],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap()
}

async fn device(api: &Api, token: &str) -> Value {
    api.must(Method::GET, "/api/devices/scale-01", token, None, 200)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_enrolls_commands_calibrates_and_draws_the_display_region() {
    let (frame, _shown, _region) = metcon_e2e::scenes::readable_scene(true);
    let (_dir, server, api, t) = bootstrapped(&[]).await;
    api.publish_weigh_flow(&t.admin, "weigh", "1000", "0.5")
        .await;
    let mut sim = Sim::start("mt-sics", &["--capacity", "5000"]);

    // Register through the form: the one-time code comes with its QR code.
    let admin = Browser::start(&server.base).await.unwrap();
    admin.login("admin", PASSWORD).await.unwrap();
    admin.open("/admin/devices").await.unwrap();
    admin.fill("#device_id", "scale-01").await.unwrap();
    admin.fill("#name", "Receiving scale").await.unwrap();
    admin.fill("#site", "Plant A").await.unwrap();
    admin.fill("#station_id", "receiving").await.unwrap();
    admin.fill("#port", &sim.pty).await.unwrap();
    admin.click("#create-device").await.unwrap();
    admin.wait_text("Enrollment code for", WAIT).await.unwrap();
    admin
        .client
        .find(Locator::Css("#enrollment svg path"))
        .await
        .expect("a QR code inside the enrollment block");
    let code = admin.text("#enrollment-code").await.unwrap();
    let uri = admin.text("#enroll-uri").await.unwrap();
    assert!(
        uri.starts_with("metcon-enroll:?url=http%3A%2F%2F127.0.0.1%3A")
            && uri.ends_with(&format!("&code={code}")),
        "{uri}"
    );
    admin.screenshots("device-enrollment").await.unwrap();

    // The box has a fixed camera (a file of a display photo); then it enrolls with the code.
    api.must(
        Method::PATCH,
        "/api/devices/scale-01",
        &t.admin,
        Some(json!({ "camera": { "kind": "file", "path": frame.to_str().unwrap() } })),
        200,
    )
    .await;
    // The installer scans the QR code: the box enrolls with what it holds.
    let mut edge = Edge::enroll_uri(&uri);
    edge.start();

    // The device's page, from its row; it comes online.
    admin.open("/admin/devices").await.unwrap();
    admin.click("#device-scale-01 a").await.unwrap();
    admin.wait_text("Latest readings", WAIT).await.unwrap();
    assert_eq!(admin.path().await.unwrap(), "/admin/devices/scale-01");
    let deadline = tokio::time::Instant::now() + WAIT;
    while admin.text("#online").await.unwrap() != "online" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never online\nagent:\n{}",
            edge.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        admin.open("/admin/devices/scale-01").await.unwrap();
    }
    let page = admin.body().await.unwrap();
    assert!(page.contains("mt-sics on /dev/pts/"), "{page}");
    assert!(page.contains("from reading"), "the key: {page}");

    // Tare: the simulated scale takes the load on the pan as its tare.
    sim.set_and_settle("250.00");
    admin.click("#cmd-tare").await.unwrap();
    admin
        .wait_text("Tare sent to scale-01.", WAIT)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = sim.cmd("status");
        if status.contains("tare=250") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the scale never tared: {status}\nagent:\n{}",
            edge.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The page was reached by a redirect: reloading it does not tare again.
    admin.client.refresh().await.unwrap();
    admin
        .wait_text("Tare sent to scale-01.", WAIT)
        .await
        .unwrap();
    assert_eq!(api.audit(&t.admin, "device_command_sent").await.len(), 1);
    // Back to an empty pan without the tare, for the mass check below.
    sim.set_and_settle("0");
    sim.cmd("zero");

    // A calibration with an impossible due date is refused in words; nothing is stored.
    assert!(admin
        .body()
        .await
        .unwrap()
        .contains("may not decide mass checks"));
    admin.scroll_to("#calibration").await.unwrap();
    set_value(&admin, "cal-performed", "2026-03-01T09:30", false).await;
    set_value(&admin, "cal-due", "2027-02-30", true).await;
    // The outcome has no default: it must be said.
    assert_eq!(
        admin.value("#cal-outcome").await.unwrap().as_deref(),
        Some("")
    );
    admin.select("#cal-outcome", "pass").await.unwrap();
    admin.fill("#cal-reference", "DKD-K-12345").await.unwrap();
    admin.fill("#cal-by", "Mettler service").await.unwrap();
    admin.click("#add-calibration").await.unwrap();
    let page = admin
        .wait_text("The record was not saved", WAIT)
        .await
        .unwrap();
    assert!(
        page.contains("Next due: \"2027-02-30\" is not a date"),
        "{page}"
    );
    let cals = calibrations(&api, &t.admin).await;
    assert_eq!(cals.as_array().unwrap().len(), 0, "{cals}");
    // What was typed is still there; the right date now.
    assert_eq!(
        admin.value("#cal-reference").await.unwrap().as_deref(),
        Some("DKD-K-12345")
    );
    set_value(&admin, "cal-due", "2099-03-01", false).await;
    admin.click("#add-calibration").await.unwrap();
    let page = admin
        .wait_text("Calibration recorded for scale-01", WAIT)
        .await
        .unwrap();
    assert!(page.contains("The scale may decide mass checks."), "{page}");
    assert!(page.contains("DKD-K-12345"), "{page}");
    let cals = calibrations(&api, &t.admin).await;
    assert_eq!(cals[0]["next_due"], "2099-03-01", "{cals}");
    assert_eq!(cals[0]["performed_at"], "2026-03-01T09:30:00Z", "{cals}");

    // No frame yet: the page says so, and the numbers can still be typed.
    assert!(page.contains("No frame from this device yet"), "{page}");

    // A capture from this page, with nothing armed: its reading binds to nothing, and the
    // frame taken with it is the one to draw on, before any mass check kept one.
    sim.set_and_settle("12.34");
    admin.click("#cmd-capture").await.unwrap();
    admin
        .wait_text("Capture sent to scale-01", WAIT)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        admin.open("/admin/devices/scale-01").await.unwrap();
        admin.wait_text("Display region", WAIT).await.unwrap();
        let w = frame_width(&admin).await;
        if w > 0.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the captured frame never showed\nagent:\n{}",
            edge.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let page = admin.body().await.unwrap();
    assert!(!page.contains("No frame from this device yet"), "{page}");
    assert!(
        page.contains("12.34 g"),
        "the unbound reading is listed: {page}"
    );
    // It is served without a photo id (it is not kept as evidence of anything).
    let src = admin
        .client
        .find(Locator::Css("#frame-image"))
        .await
        .unwrap()
        .attr("src")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(src, "/admin/devices/scale-01/frame", "{src}");
    sim.set_and_settle("0");

    // A mass check keeps the camera frame taken with its reading.
    let b = api.started_batch(&t.operator, "weigh").await;
    sim.set_and_settle("1000.20");
    api.must(
        Method::POST,
        &format!("/api/batches/{b}/steps/weigh/capture"),
        &t.operator,
        Some(json!({})),
        202,
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let photo = loop {
        let (_, v) = api
            .call(
                Method::GET,
                &format!("/api/batches/{b}/photos"),
                Some(&t.operator),
                None,
            )
            .await;
        if let Some(p) = v.get(0) {
            break p["photo"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no frame kept: {v}\nagent:\n{}",
            edge.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (fw, fh) = (
        photo["width"].as_f64().unwrap(),
        photo["height"].as_f64().unwrap(),
    );

    // The frame is on the page (from this origin), with the readings above it.
    admin.open("/admin/devices/scale-01").await.unwrap();
    admin.wait_text("Display region", WAIT).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let w = frame_width(&admin).await;
        if w == fw {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the frame never loaded: {w}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admin.body().await.unwrap().contains("1000.20 g"));
    // Only a device's own frames are served: scale-01's frame is not another scale's, and
    // a photo id that names nothing is nobody's.
    let kept = format!(
        "/admin/devices/scale-01/frame?photo={}",
        photo["id"].as_str().unwrap()
    );
    assert_eq!(get_status(&admin, &kept).await, 200);
    api.register_device(&t.admin, "scale-02", "mt-sics", "/dev/ttyUSB9")
        .await;
    let elsewhere = kept.replace("scale-01", "scale-02");
    assert_eq!(get_status(&admin, &elsewhere).await, 404);
    let nothing = "/admin/devices/scale-01/frame?photo=00000000-0000-4000-8000-000000000000";
    assert_eq!(get_status(&admin, nothing).await, 404);
    admin.screenshots("device-page").await.unwrap();

    // Drag a rectangle on the frame with the mouse.
    admin.scroll_to("#region").await.unwrap();
    let r = admin
        .client
        .execute(
            "var b = document.getElementById('region-overlay').getBoundingClientRect(); return [b.left, b.top, b.width, b.height];",
            vec![],
        )
        .await
        .unwrap();
    let r: Vec<f64> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let (left, top, bw, bh) = (r[0], r[1], r[2], r[3]);
    let (from, to) = ((0.2, 0.3), (0.7, 0.6));
    let at = |f: (f64, f64)| ((left + f.0 * bw).round(), (top + f.1 * bh).round());
    let (a, z) = (at(from), at(to));
    let drag = MouseActions::new("mouse".into())
        .then(PointerAction::MoveTo {
            duration: None,
            x: a.0,
            y: a.1,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::MoveTo {
            duration: Some(Duration::from_millis(200)),
            x: (a.0 + z.0) / 2.0,
            y: (a.1 + z.1) / 2.0,
        })
        .then(PointerAction::MoveTo {
            duration: Some(Duration::from_millis(200)),
            x: z.0,
            y: z.1,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    admin.client.perform_actions(drag).await.unwrap();
    // What was drawn, in the frame's pixels (the pointer lands on whole CSS pixels).
    let to_frame = |css: f64, origin: f64, size: f64, frame: f64| (css - origin) * frame / size;
    let want = [
        to_frame(a.0, left, bw, fw),
        to_frame(a.1, top, bh, fh),
        to_frame(z.0, left, bw, fw) - to_frame(a.0, left, bw, fw),
        to_frame(z.1, top, bh, fh) - to_frame(a.1, top, bh, fh),
    ];
    let mut typed = Vec::new();
    for id in ["#region-x", "#region-y", "#region-w", "#region-h"] {
        let v = admin.value(id).await.unwrap().unwrap_or_default();
        typed.push(v.parse::<f64>().unwrap_or_else(|_| panic!("{id} = {v:?}")));
    }
    // One CSS pixel of the pointer is up to frame/size frame pixels, plus rounding.
    let slack = (fw / bw).max(fh / bh) + 1.0;
    for (got, want) in typed.iter().zip(want) {
        assert!(
            (got - want).abs() <= slack,
            "drawn {typed:?}, expected {want:?}"
        );
    }
    // The overlay covers exactly the image, at both widths (so a drag lands where it looks).
    for (w, h) in [metcon_e2e::browser::PHONE, metcon_e2e::browser::KIOSK] {
        admin.client.set_window_size(w, h).await.unwrap();
        let boxes = admin
            .client
            .execute(
                "var a = document.getElementById('frame-image').getBoundingClientRect();
                 var b = document.getElementById('region-overlay').getBoundingClientRect();
                 return [a.left - b.left, a.top - b.top, a.width - b.width, a.height - b.height, a.width];",
                vec![],
            )
            .await
            .unwrap();
        let d: Vec<f64> = boxes
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(
            d[..4].iter().all(|v| v.abs() < 1.0) && d[4] > 100.0,
            "at {w}×{h}: {d:?}"
        );
    }
    admin
        .screenshots_of("region-editor", "#region")
        .await
        .unwrap();
    admin
        .screenshots_of("device-calibration", "#calibration")
        .await
        .unwrap();
    admin.click("#save-region").await.unwrap();
    admin.wait_text("Display region saved", WAIT).await.unwrap();
    let saved = device(&api, &t.admin).await["camera_region"].clone();
    assert_eq!(
        saved,
        json!({ "x": typed[0] as u64, "y": typed[1] as u64, "w": typed[2] as u64, "h": typed[3] as u64 }),
        "saved what was drawn"
    );

    // A region outside the frame is refused with the reason; the saved one stays.
    admin.fill("#region-w", "99999").await.unwrap();
    admin.click("#save-region").await.unwrap();
    let page = admin
        .wait_text("The region was not saved", WAIT)
        .await
        .unwrap();
    assert!(page.contains("reaches outside the"), "{page}");
    assert_eq!(device(&api, &t.admin).await["camera_region"], saved);

    admin.close().await.unwrap();
    drop(edge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_are_refused_and_supervisors_record_calibrations_from_their_scales_page() {
    let (_dir, server, api, t) = bootstrapped(&[]).await;
    api.register_device(&t.admin, "scale-01", "mt-sics", "/dev/ttyUSB0")
        .await;

    // Operators: the page, its frame and every form of it are refused.
    let op = Browser::start(&server.base).await.unwrap();
    op.login("operator", PASSWORD).await.unwrap();
    op.open("/admin/devices/scale-01").await.unwrap();
    let page = op.wait_text("Not allowed", WAIT).await.unwrap();
    assert!(page.contains("Error 403"), "{page}");
    assert_eq!(get_status(&op, "/admin/devices/scale-01/frame").await, 403);
    assert_eq!(get_status(&op, "/scales").await, 403);
    assert_eq!(get_status(&op, "/devices/scale-01/calibrations").await, 403);
    let cal = json!({ "kind": "calibration", "outcome": "pass", "performed_at": "2026-03-01T09:30",
                      "next_due": "2099-03-01", "reference": "x", "performed_by": "y" });
    let forms = [
        ("/admin/devices/scale-01/commands", json!({ "cmd": "tare" })),
        ("/admin/devices/scale-01/rotate-key", json!({})),
        (
            "/admin/devices/scale-01/region",
            json!({ "x": "1", "y": "1", "w": "5", "h": "5" }),
        ),
        ("/admin/devices/scale-01/calibrations", cal.clone()),
        (
            "/admin/devices/scale-01/enrollment-code",
            json!({ "return": "device" }),
        ),
        (
            "/admin/devices/scale-01/revoke",
            json!({ "reason": "x", "return": "device" }),
        ),
        ("/devices/scale-01/calibrations", cal.clone()),
    ];
    for (path, fields) in &forms {
        let (status, text) = post_answer(&op, path, fields.clone()).await;
        assert_eq!(status, 403, "{path}");
        // Refused for the role (the CSRF token was right), naming what is missing.
        assert!(text.contains("Not allowed"), "{path}: {text}");
        assert!(
            text.contains("ManageDevices") || text.contains("RecordCalibration"),
            "{path}: {text}"
        );
    }
    op.close().await.unwrap();
    // An admin's browser with a forged CSRF token: every form is refused before it acts.
    let adm = Browser::start(&server.base).await.unwrap();
    adm.login("admin", PASSWORD).await.unwrap();
    adm.open("/admin/devices/scale-01").await.unwrap();
    adm.wait_text("Latest readings", WAIT).await.unwrap();
    for (path, fields) in &forms {
        let mut forged = fields.clone();
        forged["_csrf"] = json!("forged-token");
        let (status, text) = post_answer(&adm, path, forged).await;
        assert_eq!(status, 403, "{path}");
        assert!(text.contains("CSRF check"), "{path}: {text}");
    }
    adm.close().await.unwrap();
    let d = device(&api, &t.admin).await;
    assert_eq!(d["state"], "pending");
    assert_eq!(d["camera_region"], Value::Null);
    assert!(api.audit(&t.admin, "device_command_sent").await.is_empty());
    let cals = calibrations(&api, &t.admin).await;
    assert_eq!(cals.as_array().unwrap().len(), 1, "only the API's: {cals}");

    // Supervisors may not manage the device, but record calibrations from "Scales".
    let sup = Browser::start(&server.base).await.unwrap();
    sup.login("supervisor", PASSWORD).await.unwrap();
    sup.open("/admin/devices/scale-01").await.unwrap();
    sup.wait_text("Not allowed", WAIT).await.unwrap();
    sup.click("nav a[href='/scales']").await.unwrap();
    sup.wait_text("Calibration status of the scales at your stations", WAIT)
        .await
        .unwrap();
    sup.click("#scale-scale-01 a").await.unwrap();
    sup.wait_text("Record a calibration or routine test", WAIT)
        .await
        .unwrap();
    assert!(sup
        .body()
        .await
        .unwrap()
        .contains("The scale may decide mass checks."));
    sup.select("#cal-kind", "routine_test").await.unwrap();
    sup.select("#cal-outcome", "fail").await.unwrap();
    set_value(&sup, "cal-performed", "2026-03-02T08:00", false).await;
    set_value(&sup, "cal-due", "2026-04-02", false).await;
    sup.fill("#cal-reference", "E2 set, 1 kg").await.unwrap();
    sup.fill("#cal-by", "QC lab").await.unwrap();
    sup.click("#add-calibration").await.unwrap();
    let page = sup
        .wait_text("Routine test recorded for scale-01", WAIT)
        .await
        .unwrap();
    assert!(
        page.contains("The scale may not decide mass checks: the scale failed its last routine test on 2026-03-02"),
        "{page}"
    );
    sup.screenshots("scales-calibration").await.unwrap();
    let cals = calibrations(&api, &t.admin).await;
    assert_eq!(cals.as_array().unwrap().len(), 2, "{cals}");
    assert!(cals
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["recorded_by"] == "supervisor" && c["outcome"] == "fail"));
    sup.close().await.unwrap();
}
