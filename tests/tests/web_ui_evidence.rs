//! Photo evidence in the web UI, in a real headless Chromium against the real `metcon-cloud`:
//!
//! - an operator weighs from a photo of the display (a held-out scene the built-in reader
//!   reads): the step runner shows the photo (loaded under the page's CSP) with what OCR
//!   read, the source and the time; the photo step's photo shows too, and history rows link
//!   to their evidence;
//! - with the OCR provider down, the photo is unreadable: the step runner shows it while the
//!   operator types the weight, the entry is flagged, and the supervisor's approval queue
//!   shows the photo, the OCR result and the deviation; approving works;
//! - the image route (`/batches/{id}/photos/{photo_id}`) gives the bytes only to who may see
//!   the batch: logged out → the login page, an operator of another station → 403, an
//!   unknown photo → 404; with its content type, `nosniff`, a private cache and an ETag;
//! - with the S3 backend (s3s-fs, `METCON_TEST_S3S_FS`), the images still load: they come
//!   through the same-origin route, so the CSP needs no bucket origin; an out-of-tolerance
//!   reading from a photo shows in the queue with its thumbnail.
//!
//! Screenshots (phone and kiosk) of the step runner and the queue with evidence go to
//! `target/ui-screenshots/`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use fantoccini::Locator;
use metcon_e2e::api::{bootstrapped, Api, PASSWORD};
use metcon_e2e::browser::Browser;
use metcon_e2e::s3::{self, S3Server};
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// A flow at receiving: a mass check of `expected` g ± 0.5 g (by photo, no scale), then a
/// photo step.
async fn publish_photo_flow(api: &Api, admin: &str, expected: &str) {
    let content = json!({
        "name": "Receiving by photo", "pipeline": "gold",
        "stations": [{ "station_id": "receiving", "name": "Receiving", "steps": [
            { "step_id": "weigh", "name": "Weigh-in", "type": "mass_check",
              "expected_mass": expected, "unit": "g",
              "tolerance": { "kind": "absolute", "value": "0.5", "unit": "g" } },
            { "step_id": "lot-photo", "name": "Photograph the lot", "type": "photo",
              "prompt": "Photograph the lot with its label." }
        ]}]
    });
    api.publish_flow(admin, "by-photo", content).await;
}

/// Opens the display-photo form, picks `file` and sends it.
async fn send_display_photo(b: &Browser, file: &Path, note: Option<&str>) {
    b.click("summary").await.unwrap();
    b.client
        .find(Locator::Css("#display-photo"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    if let Some(n) = note {
        b.fill("#photo-note", n).await.unwrap();
    }
    b.click("#upload-display-photo").await.unwrap();
}

/// Waits until every `<img>` matching `css` (at least one) has loaded a real image: scrolled
/// into view first, since the evidence images load lazily. Returns how many there are.
async fn images_load(b: &Browser, css: &str) -> usize {
    let script = r#"
        const imgs = Array.from(document.querySelectorAll(arguments[0]));
        imgs.forEach(i => i.scrollIntoView({ block: 'center' }));
        return imgs.map(i => i.complete && i.naturalWidth > 0);
    "#;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = b.client.execute(script, vec![json!(css)]).await.unwrap();
        let loaded: Vec<bool> = serde_json::from_value(v).unwrap();
        if !loaded.is_empty() && loaded.iter().all(|l| *l) {
            return loaded.len();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css}: not every image loaded: {loaded:?}\n{}",
            b.client.source().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `src` of the first `<img>` matching `css`.
async fn src(b: &Browser, css: &str) -> String {
    b.client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .prop("src")
        .await
        .unwrap()
        .unwrap()
}

/// Scrolls `css` to the top of the window (for a screenshot of it).
/// The value OCR reads from a display showing `shown` ("0148.30" → "148.30 g").
fn grams(shown: &str) -> String {
    format!("{} g", Decimal::from_str(shown).unwrap())
}

/// The operator's browser on a new batch of the `by-photo` flow, at its photo mass check.
async fn photo_batch(base: &str) -> (Browser, String) {
    let op = Browser::start(base).await.unwrap();
    op.login("operator", PASSWORD).await.unwrap();
    let id = op
        .start_batch("by-photo", "Photograph the display")
        .await
        .unwrap();
    (op, id)
}

/// A client that sends `cookie` (none: logged out) and follows no redirects.
fn cookie_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get_image(base: &str, path: &str, access: Option<&str>) -> reqwest::Response {
    let mut req = cookie_client().get(format!("{base}{path}"));
    if let Some(t) = access {
        req = req.header("cookie", format!("metcon_access={t}"));
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_step_runner_shows_the_display_photo_with_what_ocr_read() {
    let (file, shown, _) = metcon_e2e::scenes::readable_scene(false);
    let (_dir, server, api, t) = bootstrapped(&[]).await;
    publish_photo_flow(&api, &t.admin, &shown).await;
    let (op, id) = photo_batch(&server.base).await;

    send_display_photo(&op, &file, None).await;
    let page = op.wait_text("within tolerance", WAIT).await.unwrap();
    // Beside the verdict: the photo, what OCR read, where the weight came from, when.
    let group = "#verdict + .evidence-group";
    assert_eq!(images_load(&op, &format!("{group} img.photo")).await, 1);
    assert_eq!(
        op.text(&format!("{group} .ocr-value")).await.unwrap(),
        grams(&shown),
        "{page}"
    );
    assert_eq!(
        op.text(&format!("{group} .ocr-outcome")).await.unwrap(),
        "accepted"
    );
    let confidence = op.text(&format!("{group} .ocr-confidence")).await.unwrap();
    assert!(Decimal::from_str(&confidence).unwrap() >= Decimal::new(85, 2));
    assert!(op
        .text(&format!("{group} .reading-source"))
        .await
        .unwrap()
        .starts_with("read from the display"));
    assert_eq!(
        op.text(&format!("{group} .photo-origin")).await.unwrap(),
        "uploaded by operator"
    );
    assert!(op
        .text(&format!("{group} .photo-time"))
        .await
        .unwrap()
        .starts_with("received "));
    let url = src(&op, &format!("{group} img.photo")).await;
    let v = api.batch(&t.operator, &id).await;
    let photos = api
        .must(
            Method::GET,
            &format!("/api/batches/{id}/photos"),
            &t.operator,
            None,
            200,
        )
        .await;
    let photo_id = photos[0]["photo"]["id"].as_str().unwrap();
    // Same origin, through the UI's route (the page's CSP is `default-src 'self'`).
    assert_eq!(
        url,
        format!("{}/batches/{id}/photos/{photo_id}", server.base),
        "{v}"
    );
    op.scroll_to("#verdict").await.unwrap();
    op.screenshots("evidence-step-runner").await.unwrap();

    // The photo step: its photo is evidence too; history rows link to both.
    op.wait_text("Photograph the lot with its label.", WAIT)
        .await
        .unwrap();
    op.client
        .find(Locator::Css("#photo"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    op.click("#upload-photo").await.unwrap();
    op.wait_text("All steps are done", WAIT).await.unwrap();
    assert_eq!(images_load(&op, ".evidence-group img.photo").await, 2);
    let links = op
        .client
        .find_all(Locator::Css(".history a.evidence-link"))
        .await
        .unwrap();
    assert_eq!(links.len(), 2);
    let target = links[0].attr("href").await.unwrap().unwrap();
    let heading = op
        .text(&format!("{target} h3"))
        .await
        .unwrap_or_else(|e| panic!("{target}: {e}"));
    assert_eq!(heading, "Photo at lot-photo");
    op.scroll_to("#evidence-h").await.unwrap();
    op.screenshots("evidence-history").await.unwrap();

    // The route's answer: the bytes as stored, typed from the record, privately cached.
    let access = op
        .client
        .get_named_cookie("metcon_access")
        .await
        .unwrap()
        .value()
        .to_string();
    let path = format!("/batches/{id}/photos/{photo_id}");
    let res = get_image(&server.base, &path, Some(&access)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(
        h["content-type"],
        photos[0]["photo"]["content_type"].as_str().unwrap()
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["cache-control"].to_str().unwrap().starts_with("private"));
    let etag = h["etag"].to_str().unwrap().to_string();
    assert_eq!(
        res.bytes().await.unwrap().to_vec(),
        std::fs::read(&file).unwrap()
    );
    let again = cookie_client()
        .get(format!("{}{path}", server.base))
        .header("cookie", format!("metcon_access={access}"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    op.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_photo_typed_in_shows_in_the_approval_queue_with_its_photo() {
    let (file, shown, _) = metcon_e2e::scenes::readable_scene(false);
    // The OCR endpoint is down: every display photo counts as unreadable.
    let (_dir, server, api, t) = bootstrapped(&[
        ("METCON_OCR__PROVIDER", "http"),
        ("METCON_OCR__URL", "http://127.0.0.1:9/read"),
        ("METCON_OCR__TIMEOUT_MS", "1000"),
    ])
    .await;
    publish_photo_flow(&api, &t.admin, &shown).await;
    let (op, id) = photo_batch(&server.base).await;
    send_display_photo(&op, &file, None).await;
    op.wait_text("could not be read", WAIT).await.unwrap();
    // The photo the operator types from is on the step runner.
    assert_eq!(images_load(&op, "#pending-photos img.photo").await, 1);
    let outcome = op.text("#pending-photos .ocr-outcome").await.unwrap();
    assert!(outcome.starts_with("OCR failed"), "{outcome}");
    op.screenshots("evidence-unreadable").await.unwrap();
    op.fill("#actual", &shown).await.unwrap();
    op.fill("#note", "display read by eye").await.unwrap();
    op.click("#record-mass").await.unwrap();
    op.wait_text("Entered by hand: the photo was unreadable", WAIT)
        .await
        .unwrap();
    let v = api.batch(&t.operator, &id).await;
    assert_eq!(v["batch"]["status"], "flagged", "{v}");
    assert_eq!(v["batch"]["flags"][0]["kind"], "manual_entry", "{v}");
    let number = v["batch"]["batch_number"].as_str().unwrap().to_string();
    // The photo stays beside the flagged verdict.
    assert_eq!(
        images_load(&op, "#verdict + .evidence-group img.photo").await,
        1
    );

    let sup = Browser::start(&server.base).await.unwrap();
    sup.login("supervisor", PASSWORD).await.unwrap();
    sup.open("/approvals").await.unwrap();
    let page = sup.wait_text(&number, WAIT).await.unwrap();
    assert!(
        page.contains("entered by hand (photo unreadable)"),
        "{page}"
    );
    assert_eq!(images_load(&sup, "#queue article img.photo").await, 1);
    let card = "#queue article";
    assert_eq!(
        sup.text(&format!("{card} .reading")).await.unwrap(),
        grams(&shown)
    );
    // Typed in as the expected mass: no deviation at all (e.g. "0.00 g (0 %)").
    let deviation = sup.text(&format!("{card} .deviation")).await.unwrap();
    let amount = deviation.split(' ').next().unwrap_or_default();
    assert_eq!(
        Decimal::from_str(amount).map(|d| d.is_zero()),
        Ok(true),
        "{deviation}"
    );
    assert!(sup
        .text(&format!("{card} .ocr-outcome"))
        .await
        .unwrap()
        .starts_with("OCR failed"));
    assert_eq!(
        sup.text(&format!("{card} .reading-source")).await.unwrap(),
        "entered by hand (the display photo was unreadable)"
    );
    // The thumbnail opens the full-size photo.
    let full = sup
        .client
        .find(Locator::Css(&format!("{card} a.photo-link")))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(full.contains(&format!("/batches/{id}/photos/")), "{full}");
    // The polled fragment keeps the image (same URL, no expiring signature).
    let before = src(&sup, &format!("{card} img.photo")).await;
    let res = cookie_client()
        .get(format!("{}/approvals/list", server.base))
        .header(
            "cookie",
            format!(
                "metcon_access={}",
                sup.client
                    .get_named_cookie("metcon_access")
                    .await
                    .unwrap()
                    .value()
            ),
        )
        .send()
        .await
        .unwrap();
    let fragment = res.text().await.unwrap();
    assert!(
        fragment.contains(before.trim_start_matches(&server.base)),
        "{fragment}"
    );
    assert!(fragment.contains(r#"loading="lazy""#), "{fragment}");
    sup.scroll_to("#queue").await.unwrap();
    sup.screenshots("evidence-approvals").await.unwrap();

    sup.approve_first(
        "Photo checked: the display shows it",
        PASSWORD,
        "Approved and signed.",
    )
    .await
    .unwrap();
    let v = api.batch(&t.operator, &id).await;
    assert_eq!(
        v["batch"]["flags"][0]["resolution"]["approved"], true,
        "{v}"
    );
    assert_eq!(v["current_step"]["step"]["step_id"], "lot-photo", "{v}");
    op.close().await.unwrap();
    sup.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_route_serves_only_who_may_see_the_batch() {
    let (file, shown, _) = metcon_e2e::scenes::readable_scene(false);
    let (_dir, server, api, t) = bootstrapped(&[]).await;
    publish_photo_flow(&api, &t.admin, &shown).await;
    let id = api.started_batch(&t.operator, "by-photo").await;
    let res = reqwest::Client::new()
        .post(format!(
            "{}/api/batches/{id}/steps/weigh/photo",
            server.base
        ))
        .bearer_auth(&t.operator)
        .body(std::fs::read(&file).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    let photo_id = v["photo"]["photo"]["id"].as_str().unwrap().to_string();
    let path = format!("/batches/{id}/photos/{photo_id}");

    // Operators of the station and supervisors get the bytes.
    for token in [&t.operator, &t.supervisor] {
        let res = get_image(&server.base, &path, Some(token)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("image/"));
    }
    // Logged out: to the login page, and back here after it.
    let res = get_image(&server.base, &path, None).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = res.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with("/login?next="), "{to}");
    let kind = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(!kind.unwrap_or_default().starts_with("image/"));
    // An operator of another station: a 403 page, not the bytes.
    api.must(
        Method::POST,
        "/api/users",
        &t.admin,
        Some(json!({ "username": "olga", "password": PASSWORD, "role": "operator", "stations": ["casting"] })),
        201,
    )
    .await;
    let olga = api.login("olga").await;
    let res = get_image(&server.base, &path, Some(&olga)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let body = res.text().await.unwrap();
    assert!(body.contains("Not allowed"), "{body}");
    // An unknown photo, a photo of another batch, or no id at all: a 404 page.
    let other = api.started_batch(&t.operator, "by-photo").await;
    for missing in [
        format!(
            "/batches/{id}/photos/{}",
            "0190a0b0-0000-7000-8000-000000000000"
        ),
        format!("/batches/{other}/photos/{photo_id}"),
        format!("/batches/{id}/photos/not-a-photo"),
    ] {
        let res = get_image(&server.base, &missing, Some(&t.operator)).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{missing}");
        let body = res.text().await.unwrap();
        assert!(body.contains("Not found"), "{missing}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_s3_the_evidence_images_load_under_the_csp() {
    let Some(s3) = S3Server::start(&["evidence"]) else {
        return;
    };
    let (file, shown, _) = metcon_e2e::scenes::readable_scene(false);
    let (_dir, server, api, t) = bootstrapped(&[
        ("METCON_PHOTOS__BACKEND", "s3"),
        ("METCON_PHOTOS__S3__BUCKET", "evidence"),
        ("METCON_PHOTOS__S3__ENDPOINT", &s3.endpoint),
        ("METCON_PHOTOS__S3__PREFIX", "plant-1/"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", s3::KEY),
        ("AWS_SECRET_ACCESS_KEY", s3::SECRET),
    ])
    .await;
    // Expected 10 g above what the display shows: the reading from the photo is flagged.
    let expected = (Decimal::from_str(&shown).unwrap() + Decimal::TEN).to_string();
    publish_photo_flow(&api, &t.admin, &expected).await;
    let (op, id) = photo_batch(&server.base).await;
    send_display_photo(&op, &file, Some("lid still on the crucible")).await;
    op.wait_text("outside tolerance", WAIT).await.unwrap();
    assert_eq!(
        images_load(&op, "#verdict + .evidence-group img.photo").await,
        1
    );
    // The API hands out presigned S3 URLs; the page does not use them.
    let photos = api
        .must(
            Method::GET,
            &format!("/api/batches/{id}/photos"),
            &t.operator,
            None,
            200,
        )
        .await;
    let presigned = photos[0]["url"].as_str().unwrap();
    assert!(presigned.starts_with(&s3.endpoint), "{presigned}");
    let url = src(&op, "#verdict + .evidence-group img.photo").await;
    assert!(
        url.starts_with(&format!("{}/batches/{id}/photos/", server.base)),
        "{url}"
    );
    let res = reqwest::get(format!("{}/batches/{id}", server.base))
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(!csp.contains("127.0.0.1"), "{csp}");

    let sup = Browser::start(&server.base).await.unwrap();
    sup.login("supervisor", PASSWORD).await.unwrap();
    sup.open("/approvals").await.unwrap();
    sup.wait_text("out of tolerance", WAIT).await.unwrap();
    assert_eq!(images_load(&sup, "#queue article img.photo").await, 1);
    assert_eq!(
        sup.text("#queue article .ocr-value").await.unwrap(),
        grams(&shown)
    );
    assert!(sup
        .text("#queue article .deviation")
        .await
        .unwrap()
        .starts_with("-10"));
    op.close().await.unwrap();
    sup.close().await.unwrap();
}
