//! End to end, the OCR cross-check: the scale simulator on a pty → `metcon-edge` with a file
//! camera (a held-out photo of a scale display) and the display region an admin drew for it
//! → the embedded broker → `metcon-cloud` with the built-in reader. The signed serial reading
//! completes the mass check; the frame published with it shows a different value, so the
//! cloud raises an OCR-mismatch flag while the signed value stands. The frame is kept as the
//! mass check's evidence with what OCR read. The supervisor's approval queue, in a real
//! headless Chromium, shows the signed and the displayed value side by side with the frame.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use metcon_e2e::api::{Api, PASSWORD};
use metcon_e2e::browser::Browser;
use metcon_e2e::edge::Edge;
use metcon_e2e::scale_sim::Sim;
use metcon_e2e::{sibling_binary, Server};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_showing_another_value_raises_an_ocr_mismatch_and_the_signed_value_stands() {
    let (frame, shown, region) = metcon_e2e::scenes::readable_scene(true);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&sibling_binary("metcon-cloud").unwrap(), dir.path(), &[]).unwrap();
    let api = Api::new(&server.base);
    let t = api.bootstrap(server.setup_token.as_deref().unwrap()).await;
    api.publish_weigh_flow(&t.admin, "weigh", "1000", "0.5")
        .await;
    let mut sim = Sim::start("mt-sics", &["--capacity", "5000"]);
    api.must(
        Method::POST,
        "/api/devices",
        &t.admin,
        Some(json!({
            "device_id": "scale-01", "name": "Scale 1", "site": "Plant A", "station_id": "receiving",
            "scale": { "protocol": "mt-sics", "port": sim.pty },
            "camera": { "kind": "file", "path": frame.to_str().unwrap() },
            "camera_region": { "x": region[0], "y": region[1], "w": region[2], "h": region[3] },
        })),
        201,
    )
    .await;
    api.must(
        Method::POST,
        "/api/devices/scale-01/calibrations",
        &t.admin,
        Some(json!({ "kind": "calibration", "outcome": "pass", "performed_at": "2026-01-05T09:00:00Z",
                      "next_due": "2099-01-05", "reference": "DKD-K-12345", "performed_by": "Mettler service" })),
        201,
    )
    .await;
    let code = api
        .must(
            Method::POST,
            "/api/devices/scale-01/enrollment-code",
            &t.admin,
            None,
            201,
        )
        .await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let mut edge = Edge::enroll(&server.base, &code);
    edge.start();

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
    let v = api
        .wait_batch(&t.operator, &b, Duration::from_secs(60), |v| {
            v["batch"]["status"] == "flagged"
        })
        .await
        .unwrap_or_else(|v| {
            panic!(
                "no OCR-mismatch flag: {v}\nagent:\n{}\nsim: {}",
                edge.logs(),
                sim.cmd("status")
            )
        });
    let events = v["events"].as_array().unwrap();
    let checked = events.iter().find(|e| e["type"] == "mass_checked").unwrap();
    // The signed serial value decided the mass check; the step is done.
    assert_eq!(
        checked["actual"],
        json!({ "value": "1000.20", "unit": "g" })
    );
    assert_eq!(checked["source"]["kind"], "device");
    assert_eq!(checked["check"]["within"], true);
    assert_eq!(v["current_step"]["step"]["step_id"], "sign");
    let flag = events.iter().find(|e| e["type"] == "flag_raised").unwrap();
    assert_eq!(flag["kind"], "ocr_mismatch");
    let reason = flag["reason"].as_str().unwrap();
    let shown_value: rust_decimal::Decimal = shown.parse().unwrap();
    assert!(
        reason.contains("1000.20 g") && reason.contains(&format!("{shown_value} g")),
        "{reason}"
    );
    // The frame is the evidence, read inside the admin's region.
    let photos = api
        .must(
            Method::GET,
            &format!("/api/batches/{b}/photos"),
            &t.operator,
            None,
            200,
        )
        .await;
    let p: &Value = &photos[0]["photo"];
    assert_eq!(
        p["source"],
        json!({ "kind": "device", "device_id": "scale-01", "seq": checked["source"]["sequence"] })
    );
    assert_eq!(p["event_seq"], checked["seq"]);
    assert_eq!(p["ocr"]["outcome"], "accepted");
    assert_eq!(p["ocr"]["raw_text"], shown.as_str());
    assert_eq!(p["ocr"]["region"]["x"], region[0]);
    assert_eq!(
        std::fs::metadata(&frame).unwrap().len(),
        p["size_bytes"].as_u64().unwrap()
    );
    // The supervisor's approval queue, in a real Chromium: the signed reading and what the
    // display showed, side by side, with the frame; the step runner says the same.
    let sup = Browser::start(&server.base).await.unwrap();
    sup.login("supervisor", PASSWORD).await.unwrap();
    sup.open("/approvals").await.unwrap();
    sup.wait_text("OCR mismatch", WAIT).await.unwrap();
    let card = "#queue article";
    assert_eq!(
        sup.text(&format!("{card} .signed-value")).await.unwrap(),
        "1000.20 g"
    );
    assert_eq!(
        sup.text(&format!("{card} .displayed-value")).await.unwrap(),
        format!("{shown_value} g")
    );
    assert!(sup
        .text(&format!("{card} .ocr-cross-check"))
        .await
        .unwrap()
        .starts_with("differs from the signed reading"));
    let loaded = sup
        .client
        .execute(
            "const i = document.querySelector(arguments[0]); i.scrollIntoView(); return new Promise(r => { const t = () => (i.complete && i.naturalWidth > 0) ? r(i.naturalWidth) : setTimeout(t, 50); t(); });",
            vec![json!(format!("{card} img.photo"))],
        )
        .await
        .unwrap();
    assert!(
        loaded.as_u64().unwrap_or(0) > 0,
        "the frame loads: {loaded}"
    );
    sup.screenshots("approval-ocr-mismatch").await.unwrap();
    sup.open(&format!("/batches/{b}")).await.unwrap();
    let page = sup.wait_text("OCR mismatch flagged", WAIT).await.unwrap();
    assert!(page.contains("the signed value stands"), "{page}");
    sup.close().await.unwrap();

    // A supervisor clears it; the batch goes on with the signed value.
    let v = api
        .must(
            Method::POST,
            &format!("/api/batches/{b}/flags/{}/approve", flag["flag_id"]),
            &t.supervisor,
            Some(json!({ "reason": "display photo was of the neighbouring scale" })),
            200,
        )
        .await;
    assert_eq!(v["batch"]["status"], "in_progress");
    let audit = api.audit(&t.admin, "ocr_mismatch").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
}
