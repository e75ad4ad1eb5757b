//! Photo evidence and OCR through the real server: uploads at photo and mass-check steps,
//! the quality check, the acceptance rules, manual entry for an unreadable photo, signed
//! URLs, the private HTTP OCR provider (a real HTTP server implementing the contract), the
//! built-in reader on a held-out display photo, and the S3 backend against s3s-fs.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use metcon_e2e::s3::{self, S3Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::World;

const OCR_TOKEN: &str = "Bearer ocr-test-token-5f2a";

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ocr/testdata")
}

fn scene(name: &str) -> Vec<u8> {
    std::fs::read(testdata().join("scenes").join(name)).unwrap()
}

/// A private OCR endpoint implementing `docs/ocr-http.md`: it checks the auth header and
/// the request, and answers what the test scripted, in order.
#[derive(Clone, Default)]
struct OcrServer {
    /// Status, body and how long to wait before answering.
    answers: Arc<Mutex<VecDeque<(u16, Value, u64)>>>,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl OcrServer {
    async fn start() -> (OcrServer, String) {
        let server = OcrServer::default();
        let s = server.clone();
        let app = axum::Router::new().route(
            "/read",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let s = s.clone();
                async move {
                    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                    if auth != Some(OCR_TOKEN) {
                        return (axum::http::StatusCode::UNAUTHORIZED, "no".to_string());
                    }
                    let req: Value = match serde_json::from_slice(&body) {
                        Ok(v) => v,
                        Err(_) => return (axum::http::StatusCode::BAD_REQUEST, "json".into()),
                    };
                    use base64::Engine;
                    let image = base64::engine::general_purpose::STANDARD
                        .decode(req["image_base64"].as_str().unwrap_or(""))
                        .unwrap_or_default();
                    if image::guess_format(&image).is_err() {
                        return (axum::http::StatusCode::BAD_REQUEST, "image".into());
                    }
                    s.seen.lock().unwrap().push(json!({
                        "content_type": req["content_type"], "roi": req["roi"], "bytes": image.len()
                    }));
                    let (status, answer, delay_ms) = s
                        .answers
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or((200, json!({ "text": "", "confidence": 0.0 }), 0));
                    tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        answer.to_string(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (server, format!("http://{addr}/read"))
    }

    fn script(&self, status: u16, answer: Value) {
        self.script_after(0, status, answer);
    }

    fn script_after(&self, delay_ms: u64, status: u16, answer: Value) {
        self.answers
            .lock()
            .unwrap()
            .push_back((status, answer, delay_ms));
    }
}

async fn world_with_http_ocr() -> (World, OcrServer) {
    let (ocr, url) = OcrServer::start().await;
    let w = World::with_env(&[
        ("METCON_OCR__PROVIDER", "http"),
        ("METCON_OCR__URL", &url),
        (
            "METCON_OCR__AUTH_HEADER",
            &format!("Authorization: {OCR_TOKEN}"),
        ),
        ("METCON_OCR__TIMEOUT_MS", "3000"),
    ])
    .await;
    (w, ocr)
}

/// A started gold batch at its mass check (`receiving-weigh`, 1000 g ± 0.5 g).
async fn at_weigh(w: &World) -> String {
    w.publish_gold_flow().await;
    let id = w.started_batch().await;
    let (s, v) = w
        .app
        .post(
            &format!("/api/batches/{id}/steps/receiving-inspect/complete"),
            &w.operator,
            json!({ "payload": { "type": "instruction", "acknowledged": true } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    id
}

async fn upload(w: &World, token: &str, path: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let resp = w
        .app
        .client
        .post(format!("{}{path}", w.app.base))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.unwrap();
    if !status.is_success() {
        assert_eq!(ct, "application/problem+json", "{status} {text}");
    }
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn fetch(w: &World, url: &str) -> (StatusCode, Vec<u8>) {
    let full = if url.starts_with('/') {
        format!("{}{url}", w.app.base)
    } else {
        url.to_string()
    };
    let resp = reqwest::get(full).await.unwrap();
    (resp.status(), resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_mass_check_without_a_serial_reading_is_completed_from_an_uploaded_photo() {
    let (w, ocr) = world_with_http_ocr().await;
    let id = at_weigh(&w).await;
    let photo = scene("scene_004.jpg");
    ocr.script(200, json!({ "text": "1000.2", "confidence": 0.97 }));
    let (s, v) = upload(
        &w,
        &w.operator,
        &format!("/api/batches/{id}/steps/receiving-weigh/photo"),
        photo.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The mass was recorded from the display, with the photo named in the event.
    let events = v["batch"]["events"].as_array().unwrap();
    let checked = events.iter().find(|e| e["type"] == "mass_checked").unwrap();
    assert_eq!(checked["actual"]["value"], "1000.2");
    assert_eq!(checked["source"]["kind"], "ocr");
    assert_eq!(checked["source"]["confidence"], "0.97");
    let sha = v["photo"]["photo"]["sha256"].as_str().unwrap().to_string();
    assert_eq!(checked["source"]["photo_sha256"], sha.as_str());
    assert_eq!(
        v["batch"]["current_step"]["step"]["step_id"],
        "receiving-photo"
    );
    let meta = &v["photo"]["photo"];
    assert_eq!(meta["event_seq"], checked["seq"]);
    assert_eq!(meta["content_type"], "image/jpeg");
    assert_eq!(meta["size_bytes"], photo.len());
    assert_eq!(meta["source"]["username"], "operator");
    assert_eq!(meta["ocr"]["provider"], "http");
    assert_eq!(meta["ocr"]["outcome"], "accepted");
    assert_eq!(meta["ocr"]["raw_text"], "1000.2");
    // The provider got the photo with the auth header, and no region (a phone photo).
    let seen = ocr.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["content_type"], "image/jpeg");
    assert_eq!(seen[0]["bytes"], photo.len());
    assert_eq!(seen[0]["roi"], Value::Null);

    // The photo step takes a photo too, and OCR is not asked.
    let (s, v) = upload(
        &w,
        &w.operator,
        &format!("/api/batches/{id}/steps/receiving-photo/photo"),
        scene("scene_010.jpg"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["photo"]["photo"]["ocr"], Value::Null);
    assert_eq!(ocr.seen.lock().unwrap().len(), 1);
    let done = v["batch"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "step_completed")
        .unwrap()
        .clone();
    assert_eq!(done["payload"]["type"], "photo");
    assert_eq!(
        done["payload"]["photo_sha256"],
        v["photo"]["photo"]["sha256"]
    );

    // Both photos are listed with URLs that open them; a forged or foreign link does not.
    let (s, list) = w
        .app
        .get(&format!("/api/batches/{id}/photos"), &w.analyst)
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let url = list[0]["url"].as_str().unwrap();
    let (s, body) = fetch(&w, url).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, photo);
    let forged = url.replace(&sha, &"0".repeat(64));
    assert_eq!(fetch(&w, &forged).await.0, StatusCode::FORBIDDEN);
    // The last character of the signature changed (to another one: a signature that ends
    // in `0` must not be "changed" to itself, which made this check flaky).
    let last = if url.ends_with('0') { '1' } else { '0' };
    let bad_sig = format!("{}{last}", &url[..url.len() - 1]);
    assert_eq!(fetch(&w, &bad_sig).await.0, StatusCode::FORBIDDEN);
    let unsigned = format!("/api/photos/{sha}");
    assert_eq!(fetch(&w, &unsigned).await.0, StatusCode::BAD_REQUEST);
    // Listing needs a session.
    let (s, _) = w
        .app
        .call(
            Method::GET,
            &format!("/api/batches/{id}/photos"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The uploads are audited.
    let (s, audit) = w.app.get("/api/audit?limit=1000", &w.admin).await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "photo_uploaded" && a["details"]["sha256"] == sha.as_str()),
        "{audit}"
    );
}

#[tokio::test]
async fn low_confidence_asks_for_a_retake_and_an_unreadable_display_allows_a_flagged_manual_entry()
{
    let (w, ocr) = world_with_http_ocr().await;
    let id = at_weigh(&w).await;
    let path = format!("/api/batches/{id}/steps/receiving-weigh/photo");
    // Below 0.85: retake, nothing recorded.
    ocr.script(200, json!({ "text": "1000.2", "confidence": 0.61 }));
    let (s, v) = upload(&w, &w.operator, &path, scene("scene_004.jpg")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["retake"], true);
    assert_eq!(v["reason"], "low_confidence");
    assert!(v["detail"].as_str().unwrap().contains("0.61"), "{v}");
    let low_photo = v["photo_id"].as_str().unwrap().to_string();
    // A low-confidence photo does not open the manual entry.
    let (s, v) = w
        .app
        .post(
            &format!("/api/batches/{id}/steps/receiving-weigh/mass-check"),
            &w.operator,
            json!({ "actual": { "value": "1000.1", "unit": "g" }, "photo_id": low_photo }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // The provider failing (500) or reading nothing: unreadable, manual entry allowed.
    ocr.script(500, json!({ "error": "model crashed" }));
    let (s, v) = upload(&w, &w.operator, &path, scene("scene_005.jpg")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["manual_entry_allowed"], true, "{v}");
    assert_eq!(v["reason"], "failed");
    // An endpoint slower than the configured 3 s timeout: failed, manual entry allowed.
    ocr.script_after(4_000, 200, json!({ "text": "1000.2", "confidence": 0.99 }));
    let (s, v) = upload(&w, &w.operator, &path, scene("scene_007.jpg")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["reason"], "failed", "{v}");
    assert_eq!(v["manual_entry_allowed"], true);
    assert!(
        v["ocr"]["error"]
            .as_str()
            .unwrap()
            .contains("within 3000 ms"),
        "{v}"
    );
    ocr.script(200, json!({ "text": "", "confidence": 0.99 }));
    let (s, v) = upload(&w, &w.operator, &path, scene("scene_006.jpg")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["reason"], "unreadable");
    assert_eq!(v["manual_entry_allowed"], true);
    let photo_id = v["photo_id"].as_str().unwrap().to_string();
    let (_, batch) = w.app.get(&format!("/api/batches/{id}"), &w.operator).await;
    assert_eq!(batch["batch"]["cursor"], 1, "nothing was recorded");
    // The photo of another step cannot be used.
    let (s, v) = w
        .app
        .post(
            &format!("/api/batches/{id}/steps/receiving-photo/mass-check"),
            &w.operator,
            json!({ "actual": { "value": "1000.1", "unit": "g" }, "photo_id": photo_id }),
        )
        .await;
    assert!(s.is_client_error(), "{s} {v}");
    // Typed in for the unreadable photo, within tolerance: recorded and flagged.
    let (s, v) = w
        .app
        .post(
            &format!("/api/batches/{id}/steps/receiving-weigh/mass-check"),
            &w.operator,
            json!({ "actual": { "value": "1000.1", "unit": "g" }, "photo_id": photo_id, "note": "display fogged" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["batch"]["status"], "flagged");
    let events = v["events"].as_array().unwrap();
    assert_eq!(events[0]["source"]["kind"], "manual_unreadable_photo");
    let flag = events.iter().find(|e| e["type"] == "flag_raised").unwrap();
    assert_eq!(flag["kind"], "manual_entry");
    // The photo now names the event and cannot be used again.
    let (_, photos) = w
        .app
        .get(&format!("/api/batches/{id}/photos"), &w.operator)
        .await;
    let used = photos
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["photo"]["id"] == photo_id.as_str())
        .unwrap();
    assert_eq!(used["photo"]["event_seq"], events[0]["seq"]);
    assert_eq!(used["photo"]["ocr"]["outcome"], "unreadable");
    // The supervisor approves; the step is done.
    let flag_id = flag["flag_id"].as_u64().unwrap();
    let (s, v) = w
        .app
        .post(
            &format!("/api/batches/{id}/flags/{flag_id}/approve"),
            &w.supervisor,
            json!({ "reason": "checked the lot on the bench scale" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["batch"]["status"], "in_progress");
    assert_eq!(v["current_step"]["step"]["step_id"], "receiving-photo");
    // The exceptions report lists it.
    let (s, r) = w
        .app
        .get("/api/reports/exceptions?kind=unreadable_photo", &w.analyst)
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert!(r.to_string().contains("approved"), "{r}");
}

#[tokio::test]
async fn bad_uploads_get_a_clear_problem_and_leave_nothing_behind() {
    let (w, ocr) = world_with_http_ocr().await;
    let id = at_weigh(&w).await;
    let path = format!("/api/batches/{id}/steps/receiving-weigh/photo");
    let good = scene("scene_004.jpg");
    // Not an image (whatever the client says it is).
    let (s, v) = upload(&w, &w.operator, &path, b"<svg onload=alert(1)>".to_vec()).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    let (s, _) = upload(&w, &w.operator, &path, Vec::new()).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A JPEG cut in half does not decode.
    let (s, v) = upload(&w, &w.operator, &path, good[..good.len() / 3].to_vec()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Blurred beyond reading: retake, with the reason.
    let img = image::load_from_memory(&good).unwrap();
    let blurred = image::DynamicImage::ImageRgb8(image::imageops::blur(&img.to_rgb8(), 16.0));
    let mut jpeg = std::io::Cursor::new(Vec::new());
    blurred
        .write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .unwrap();
    let (s, v) = upload(&w, &w.operator, &path, jpeg.into_inner()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["retake"], true);
    assert_eq!(v["reason"], "blurry");
    assert!(v["detail"].as_str().unwrap().starts_with("retake:"), "{v}");
    // Too dark.
    let dark = img.brighten(-240);
    let mut jpeg = std::io::Cursor::new(Vec::new());
    dark.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
    let (s, v) = upload(&w, &w.operator, &path, jpeg.into_inner()).await;
    assert_eq!(
        (s, v["reason"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("too_dark"))
    );
    // Over the size limit.
    let (s, v) = upload(&w, &w.operator, &path, vec![0xFF; 11 * 1024 * 1024]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    // Not allowed: an analyst (no session: below).
    let (s, _) = upload(&w, &w.analyst, &path, good.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A step that takes no photo.
    let (s, v) = upload(
        &w,
        &w.operator,
        &format!("/api/batches/{id}/steps/receiving-inspect/photo"),
        good.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // Without a session: 401. The server answers before reading the body and closes the
    // connection, so this goes on a client of its own (a pooled connection would break)
    // with a body small enough to be sent whole before the answer.
    let (s, _) = reqwest::Client::new()
        .post(format!("{}{path}", w.app.base))
        .body(good[..1024].to_vec())
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // None of it reached OCR, the store or the batch.
    assert!(ocr.seen.lock().unwrap().is_empty());
    let (_, photos) = w
        .app
        .get(&format!("/api/batches/{id}/photos"), &w.operator)
        .await;
    assert_eq!(photos, json!([]));
    let (_, batch) = w.app.get(&format!("/api/batches/{id}"), &w.operator).await;
    assert_eq!(batch["batch"]["cursor"], 1);
}

/// The first held-out display photo the built-in reader reads correctly and confidently.
fn confidently_read_scene() -> (String, String) {
    let reader = metcon_ocr::Reader::builtin().unwrap();
    let labels = std::fs::read_to_string(testdata().join("scenes/labels.csv")).unwrap();
    for line in labels.lines().skip(1) {
        let mut cols = line.split(',');
        let (Some(file), Some(text)) = (cols.next(), cols.next()) else {
            continue;
        };
        if text.starts_with('-') || text.is_empty() {
            continue;
        }
        let img = image::open(testdata().join("scenes").join(file)).unwrap();
        if let Ok(r) = reader.read(&img, None) {
            if r.text == text && r.confidence >= metcon_ocr::ACCEPT_THRESHOLD {
                return (file.to_string(), text.to_string());
            }
        }
    }
    panic!("the built-in reader accepts none of the held-out scenes");
}

#[tokio::test]
async fn the_built_in_reader_completes_a_mass_check_from_a_display_photo() {
    let (file, text) = confidently_read_scene();
    let w = World::new().await;
    let value: rust_decimal::Decimal = text.parse().unwrap();
    let content = json!({
        "name": "Weigh by photo", "pipeline": "gold",
        "stations": [{ "station_id": "receiving", "name": "Receiving", "steps": [
            { "step_id": "weigh", "name": "Weigh-in", "type": "mass_check",
              "expected_mass": value.to_string(), "unit": "g",
              "tolerance": { "kind": "absolute", "value": "0.5", "unit": "g" } }
        ]}]
    });
    let (s, v) = w
        .app
        .post(
            "/api/flows",
            &w.admin,
            json!({ "flow_id": "by_photo", "content": content }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = w
        .app
        .post(
            "/api/flows/by_photo/versions/1/publish",
            &w.admin,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = w
        .app
        .post(
            "/api/batches",
            &w.operator,
            json!({ "flow_id": "by_photo" }),
        )
        .await;
    let id = v["batch"]["batch_id"].as_str().unwrap().to_string();
    w.app
        .post(&format!("/api/batches/{id}/start"), &w.operator, json!({}))
        .await;
    let (s, v) = upload(
        &w,
        &w.operator,
        &format!("/api/batches/{id}/steps/weigh/photo"),
        scene(&file),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{file}: {v}");
    let checked = v["batch"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "mass_checked")
        .unwrap()
        .clone();
    let actual: rust_decimal::Decimal = checked["actual"]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(actual, value, "{file}");
    assert_eq!(checked["check"]["within"], true);
    assert_eq!(v["photo"]["photo"]["ocr"]["provider"], "builtin");
    assert_eq!(v["photo"]["photo"]["ocr"]["outcome"], "accepted");
    assert_eq!(v["batch"]["batch"]["cursor"], 1);
}

// --- S3 --------------------------------------------------------------------------------

fn s3_config(endpoint: &str, secret: &str) -> metcon_cloud::config::S3Config {
    metcon_cloud::config::S3Config {
        bucket: "evidence".into(),
        endpoint: Some(endpoint.into()),
        region: Some("us-east-1".into()),
        access_key_id: Some(s3::KEY.into()),
        secret_access_key: Some(secret.into()),
        session_token: None,
        path_style: true,
        prefix: "metcon/".into(),
    }
}

#[tokio::test]
async fn the_s3_backend_stores_checks_and_presigns_against_a_real_s3_server() {
    use metcon_cloud::blobs::{s3::S3Blobs, sha256_hex, BlobError, BlobStore};
    let Some(s3) = S3Server::start(&["evidence"]) else {
        return;
    };
    let store = S3Blobs::new(&s3_config(&s3.endpoint, s3::SECRET)).unwrap();
    let bytes = scene("scene_004.jpg");
    let sha = sha256_hex(&bytes);
    assert!(!store.exists(&sha).await.unwrap());
    assert_eq!(store.get(&sha).await.unwrap(), None);
    store.put(&sha, &bytes, "image/jpeg").await.unwrap();
    store.put(&sha, &bytes, "image/jpeg").await.unwrap();
    assert!(store.exists(&sha).await.unwrap());
    assert_eq!(store.get(&sha).await.unwrap(), Some(bytes.clone()));
    assert!(matches!(
        store.put(&sha, b"other bytes", "image/jpeg").await,
        Err(BlobError::DigestMismatch(_))
    ));
    // A presigned URL opens it without credentials; a tampered one is refused by S3.
    let url = store
        .presigned_url(&sha, std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), bytes);
    let tampered = url.replace("X-Amz-Expires=60", "X-Amz-Expires=6000");
    assert!(reqwest::get(&tampered)
        .await
        .unwrap()
        .status()
        .is_client_error());
    // The server checks signatures: a wrong secret is refused.
    let wrong = S3Blobs::new(&s3_config(&s3.endpoint, "not-the-secret")).unwrap();
    assert!(matches!(
        wrong.exists(&sha).await,
        Err(BlobError::Backend(_))
    ));
}

#[tokio::test]
async fn with_the_s3_backend_uploads_land_in_the_bucket_and_are_served_presigned() {
    let Some(s3) = S3Server::start(&["evidence"]) else {
        return;
    };
    let (ocr, url) = OcrServer::start().await;
    let w = World::with_env(&[
        ("METCON_OCR__PROVIDER", "http"),
        ("METCON_OCR__URL", &url),
        (
            "METCON_OCR__AUTH_HEADER",
            &format!("Authorization: {OCR_TOKEN}"),
        ),
        ("METCON_PHOTOS__BACKEND", "s3"),
        ("METCON_PHOTOS__S3__BUCKET", "evidence"),
        ("METCON_PHOTOS__S3__ENDPOINT", &s3.endpoint),
        ("METCON_PHOTOS__S3__PREFIX", "plant-1/"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", s3::KEY),
        ("AWS_SECRET_ACCESS_KEY", s3::SECRET),
    ])
    .await;
    let id = at_weigh(&w).await;
    ocr.script(200, json!({ "text": "999.8", "confidence": 0.9 }));
    let photo = scene("scene_004.jpg");
    let (s, v) = upload(
        &w,
        &w.operator,
        &format!("/api/batches/{id}/steps/receiving-weigh/photo"),
        photo.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let sha = v["photo"]["photo"]["sha256"].as_str().unwrap();
    // In the bucket under the prefix, nothing in the local folder.
    let object = s3.root().join("evidence/plant-1").join(&sha[..2]).join(sha);
    assert_eq!(std::fs::read(&object).unwrap(), photo);
    assert!(!w.app.dir.path().join("photos").exists());
    let url = v["photo"]["url"].as_str().unwrap();
    assert!(url.starts_with(&s3.endpoint), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let (s, body) = fetch(&w, url).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, photo);
}

#[test]
fn the_ocr_command_reads_a_photo_and_says_clearly_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (file, text) = confidently_read_scene();
    let path = testdata().join("scenes").join(&file);
    let (ok, out) = support::run_cli(dir.path(), &["ocr", path.to_str().unwrap(), "--json"], &[]);
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["raw_text"], text.as_str());
    assert_eq!(v["outcome"], "accepted");
    assert_eq!(v["provider"], "builtin");
    assert!(v["elapsed_ms"].is_u64());
    // Text output names the value, the confidence and the time.
    let (ok, out) = support::run_cli(dir.path(), &["ocr", path.to_str().unwrap()], &[]);
    assert!(ok, "{out}");
    assert!(out.contains("confidence") && out.contains(" ms "), "{out}");
    // A fixed camera's region: the labelled display region of that scene.
    let regions = std::fs::read_to_string(testdata().join("scenes/regions.csv")).unwrap();
    let roi = regions
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{file},")))
        .unwrap()
        .to_string();
    let (ok, out) = support::run_cli(
        dir.path(),
        &["ocr", path.to_str().unwrap(), "--roi", &roi, "--json"],
        &[],
    );
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        v["region"]["x"].as_u64().unwrap().to_string(),
        roi.split(',').next().unwrap()
    );
    // Bad input: a readable message and a failing exit code, no panic.
    let not_image = dir.path().join("notes.txt");
    std::fs::write(&not_image, "148.30 g").unwrap();
    let (ok, out) = support::run_cli(dir.path(), &["ocr", not_image.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(out.contains("not a JPEG or PNG"), "{out}");
    let (ok, out) = support::run_cli(
        dir.path(),
        &["ocr", path.to_str().unwrap(), "--roi", "1,2,3"],
        &[],
    );
    assert!(!ok);
    assert!(out.contains("x,y,w,h"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}
