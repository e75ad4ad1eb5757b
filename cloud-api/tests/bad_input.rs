//! Bad input gets a 4xx problem+json and leaves the store as it was; sessions end when they
//! should (throttling, refresh-token reuse, logout, idle timeout); cookie authentication needs
//! the CSRF header; responses carry the security headers.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{App, World, PASSWORD};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or("")
    }
}

/// What to send: the body as raw bytes with an optional content type, plus extra headers.
#[derive(Default)]
struct Req<'a> {
    token: Option<&'a str>,
    content_type: Option<&'a str>,
    body: Option<Vec<u8>>,
    headers: Vec<(&'a str, String)>,
}

impl<'a> Req<'a> {
    fn token(t: &'a str) -> Req<'a> {
        Req {
            token: Some(t),
            ..Req::default()
        }
    }
    fn json(mut self, v: &Value) -> Self {
        self.content_type = Some("application/json");
        self.body = Some(serde_json::to_vec(v).unwrap());
        self
    }
    fn raw(mut self, content_type: Option<&'a str>, body: &str) -> Self {
        self.content_type = content_type;
        self.body = Some(body.as_bytes().to_vec());
        self
    }
    fn header(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

async fn send(app: &App, method: Method, path: &str, r: Req<'_>) -> Reply {
    let mut req = app.client.request(method, format!("{}{}", app.base, path));
    if let Some(t) = r.token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = r.content_type {
        req = req.header("content-type", ct);
    }
    for (k, v) in r.headers {
        req = req.header(k, v);
    }
    if let Some(b) = r.body {
        req = req.body(b);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// Why `r` is not an RFC 9457 problem document with `status`, if it is not.
fn problem_error(r: &Reply, status: u16) -> Option<String> {
    let ct = r.header("content-type").unwrap_or("");
    if r.status.as_u16() != status {
        Some(format!("expected {status}, got {}: {}", r.status, r.body))
    } else if !ct.starts_with("application/problem+json") {
        Some(format!("content-type {ct:?}, body {}", r.body))
    } else if let Some(m) = ["type", "title", "detail"]
        .into_iter()
        .find(|m| !r.body[*m].is_string())
    {
        Some(format!("no `{m}` in {}", r.body))
    } else if r.body["status"] != status {
        Some(format!("`status` is not {status}: {}", r.body))
    } else {
        None
    }
}

/// Asserts an RFC 9457 problem document with `status`.
#[track_caller]
fn assert_problem(r: &Reply, status: u16, what: &str) {
    if let Some(e) = problem_error(r, status) {
        panic!("{what}: {e}");
    }
}

/// What must not change when a request is refused.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Store {
    /// (version, event count) of each watched batch.
    batches: Vec<(u64, usize)>,
    batch_total: u64,
    audit: usize,
}

async fn store(w: &World, ids: &[&str]) -> Store {
    let mut batches = Vec::new();
    for id in ids {
        let (s, v) = w.app.get(&format!("/api/batches/{id}"), &w.admin).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        batches.push((
            v["batch"]["version"].as_u64().unwrap(),
            v["events"].as_array().unwrap().len(),
        ));
    }
    let (s, page) = w.app.get("/api/batches", &w.admin).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    Store {
        batches,
        batch_total: page["total"].as_u64().unwrap(),
        audit: audit_log(w).await.len(),
    }
}

async fn audit_log(w: &World) -> Vec<Value> {
    let (s, log) = w.app.get("/api/audit?limit=1000", &w.admin).await;
    assert_eq!(s, StatusCode::OK, "{log}");
    let log = log.as_array().unwrap().clone();
    assert!(log.len() < 1000, "the audit log outgrew one page");
    log
}

const PHOTO: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn ack() -> Value {
    json!({ "payload": { "type": "instruction", "acknowledged": true } })
}

/// A started batch whose current step is `receiving-weigh`.
async fn batch_at_weigh(w: &World) -> String {
    let id = w.started_batch().await;
    let (s, v) = w
        .app
        .post(
            &format!("/api/batches/{id}/steps/receiving-inspect/complete"),
            &w.operator,
            ack(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    id
}

async fn login_full(app: &App, username: &str, password: &str) -> Reply {
    send(
        app,
        Method::POST,
        "/api/auth/login",
        Req::default().json(&json!({ "username": username, "password": password })),
    )
    .await
}

async fn me(app: &App, token: &str) -> Reply {
    send(app, Method::GET, "/api/auth/me", Req::token(token)).await
}

// ---------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------

/// (what, token, path, content type, body, expected status, the field path a 422 must name)
type BodyCase<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    String,
    u16,
    Option<&'a str>,
);

#[tokio::test]
async fn bodies_that_do_not_parse_are_refused_and_change_nothing() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let inspect = w.started_batch().await; // current step: receiving-inspect
    let weigh = batch_at_weigh(&w).await; // current step: receiving-weigh
    let complete = format!("/api/batches/{inspect}/steps/receiving-inspect/complete");
    let mass = format!("/api/batches/{weigh}/steps/receiving-weigh/mass-check");
    let start = format!("/api/batches/{inspect}/start");
    let block = format!("/api/batches/{inspect}/block");
    let before = store(&w, &[&inspect, &weigh]).await;

    let json_ct = Some("application/json");
    let op = w.operator.as_str();
    let sup = w.supervisor.as_str();
    let cases: Vec<BodyCase> = vec![
        // Malformed JSON.
        ("truncated JSON", op, &complete, json_ct, r#"{"payload": {"type": "instruction", "acknowledged": true}"#.into(), 400, None),
        ("not JSON at all", op, &complete, json_ct, "acknowledged=true".into(), 400, None),
        ("empty body", op, &complete, json_ct, String::new(), 400, None),
        ("single quotes", op, &mass, json_ct, "{'actual': {'value': '1000', 'unit': 'g'}}".into(), 400, None),
        // Wrong JSON types.
        ("mass value is a boolean", op, &mass, json_ct, json!({ "actual": { "value": true, "unit": "g" } }).to_string(), 422, Some("actual.value")),
        ("actual is a string", op, &mass, json_ct, json!({ "actual": "1000 g" }).to_string(), 422, Some("actual")),
        ("note is a number", op, &mass, json_ct, json!({ "actual": { "value": "1000", "unit": "g" }, "note": 7 }).to_string(), 422, Some("note")),
        ("acknowledged is a string", op, &complete, json_ct, json!({ "payload": { "type": "instruction", "acknowledged": "yes" } }).to_string(), 422, Some("payload")),
        ("unknown payload type", op, &complete, json_ct, json!({ "payload": { "type": "vibes" } }).to_string(), 422, Some("payload.type")),
        ("payload missing", op, &complete, json_ct, json!({ "expected_version": 2 }).to_string(), 422, None),
        ("expected_version is a string", op, &complete, json_ct, json!({ "payload": { "type": "instruction", "acknowledged": true }, "expected_version": "two" }).to_string(), 422, Some("expected_version")),
        ("expected_version is negative", op, &start, json_ct, json!({ "expected_version": -1 }).to_string(), 422, Some("expected_version")),
        ("reason is a number", sup, &block, json_ct, json!({ "reason": 42 }).to_string(), 422, Some("reason")),
        ("flow_id is a list", op, "/api/batches", json_ct, json!({ "flow_id": ["gold_refining"] }).to_string(), 422, Some("flow_id")),
        ("priority unknown", op, "/api/batches", json_ct, json!({ "flow_id": "gold_refining", "priority": "asap" }).to_string(), 422, Some("priority")),
        ("body is an array", op, &complete, json_ct, "[]".into(), 422, None),
        // Unknown fields.
        ("unknown top-level field", op, &complete, json_ct, json!({ "payload": { "type": "instruction", "acknowledged": true }, "colour": "red" }).to_string(), 422, None),
        ("unknown payload field", op, &complete, json_ct, json!({ "payload": { "type": "instruction", "acknowledged": true, "skip": true } }).to_string(), 422, None),
        ("unknown mass-check field", op, &mass, json_ct, json!({ "actual": { "value": "1000", "unit": "g" }, "tare": "5" }).to_string(), 422, None),
        ("unknown batch field", op, "/api/batches", json_ct, json!({ "flow_id": "gold_refining", "colour": "red" }).to_string(), 422, None),
        ("unknown field in an optional body", op, &start, json_ct, json!({ "expected_version": 1, "force": true }).to_string(), 422, None),
        // Missing or wrong content type.
        ("no content type", op, &complete, None, ack().to_string(), 415, None),
        ("text/plain", op, &complete, Some("text/plain"), ack().to_string(), 415, None),
        ("form encoded", op, &mass, Some("application/x-www-form-urlencoded"), "value=1000&unit=g".into(), 415, None),
        ("no content type on create", op, "/api/batches", None, json!({ "flow_id": "gold_refining" }).to_string(), 415, None),
        ("no content type on an optional body", op, &start, None, json!({ "expected_version": 1 }).to_string(), 415, None),
    ];
    for (what, token, path, ct, body, status, field) in cases {
        let r = send(&w.app, Method::POST, path, Req::token(token).raw(ct, &body)).await;
        assert_problem(&r, status, what);
        if let Some(field) = field {
            assert!(
                r.detail().contains(field),
                "{what}: the detail should name `{field}`: {}",
                r.body
            );
            let named = r.body["problems"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["path"] == field));
            assert!(
                named,
                "{what}: problems[].path should be `{field}`: {}",
                r.body
            );
        }
        assert_eq!(
            store(&w, &[&inspect, &weigh]).await,
            before,
            "{what} changed the store"
        );
    }

    // The same requests, well-formed, do go through: the refusals above were about the input.
    let r = send(&w.app, Method::POST, &complete, Req::token(op).json(&ack())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ok = json!({ "actual": { "value": "1000", "unit": "g" } });
    let r = send(&w.app, Method::POST, &mass, Req::token(op).json(&ok)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// A JSON document followed by more bytes is not valid JSON: the request is refused, not
/// executed on the first document.
#[tokio::test]
async fn json_followed_by_trailing_data_is_400_and_changes_nothing() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let mut failures = Vec::new();
    for body in [
        format!("{} x", ack()),
        format!("{}{}", ack(), ack()),
        format!("{} {{\"payload\": null}}", ack()),
    ] {
        let id = w.started_batch().await;
        let path = format!("/api/batches/{id}/steps/receiving-inspect/complete");
        let before = store(&w, &[&id]).await;
        let r = send(
            &w.app,
            Method::POST,
            &path,
            Req::token(&w.operator).raw(Some("application/json"), &body),
        )
        .await;
        if let Some(e) = problem_error(&r, 400) {
            failures.push(format!("body {body:?}: {e}"));
        }
        if store(&w, &[&id]).await != before {
            failures.push(format!("body {body:?} changed the store"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// JSON that parses but has a number, null or boolean where an enum (a unit, a priority, a
/// role) is expected is a wrong type like any other: 422 naming the field, not "not valid JSON".
#[tokio::test]
async fn a_number_where_an_enum_is_expected_is_422_naming_the_field() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let id = batch_at_weigh(&w).await;
    let before = store(&w, &[&id]).await;
    let mass = format!("/api/batches/{id}/steps/receiving-weigh/mass-check");
    let mut failures = Vec::new();
    for (what, token, path, body, field) in [
        (
            "unit",
            &w.operator,
            mass.as_str(),
            json!({ "actual": { "value": "1000", "unit": 5 } }),
            "actual.unit",
        ),
        (
            "priority",
            &w.operator,
            "/api/batches",
            json!({ "flow_id": "gold_refining", "priority": 1 }),
            "priority",
        ),
        (
            "role",
            &w.admin,
            "/api/users",
            json!({ "username": "newbie", "password": PASSWORD, "role": 3 }),
            "role",
        ),
        (
            "null role",
            &w.admin,
            "/api/users",
            json!({ "username": "newbie", "password": PASSWORD, "role": null }),
            "role",
        ),
        (
            "boolean unit",
            &w.operator,
            mass.as_str(),
            json!({ "actual": { "value": "1000", "unit": true } }),
            "actual.unit",
        ),
    ] {
        let r = send(&w.app, Method::POST, path, Req::token(token).json(&body)).await;
        if r.status != StatusCode::UNPROCESSABLE_ENTITY || !r.detail().contains(field) {
            failures.push(format!("{what}: {} {}", r.status, r.body));
        }
        assert_eq!(store(&w, &[&id]).await, before, "{what} changed the store");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A mass's own object is as strict as the request around it: a field the server does not
/// know (here a tare the operator believes was subtracted) is refused, not silently dropped.
#[tokio::test]
async fn an_unknown_field_inside_a_mass_is_refused() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let id = batch_at_weigh(&w).await;
    let before = store(&w, &[&id]).await;
    let body = json!({ "actual": { "value": "1012", "unit": "g", "tare": "12" } });
    let r = send(
        &w.app,
        Method::POST,
        &format!("/api/batches/{id}/steps/receiving-weigh/mass-check"),
        Req::token(&w.operator).json(&body),
    )
    .await;
    assert_problem(&r, 422, "unknown field in actual");
    assert_eq!(store(&w, &[&id]).await, before);
}

#[tokio::test]
async fn an_oversized_body_is_413_and_changes_nothing() {
    let w = World::with_env(&[("METCON_MAX_BODY_BYTES", "4096")]).await;
    w.publish_gold_flow().await;
    let id = w.started_batch().await;
    let before = store(&w, &[&id]).await;
    let items: Vec<String> = (0..400).map(|i| format!("item number {i:04}")).collect();
    let big = json!({ "payload": { "type": "checklist", "checked": items } });
    assert!(big.to_string().len() > 4096);
    let complete = format!("/api/batches/{id}/steps/receiving-inspect/complete");
    let r = send(
        &w.app,
        Method::POST,
        &complete,
        Req::token(&w.operator).json(&big),
    )
    .await;
    assert_problem(&r, 413, "oversized step completion");
    assert_eq!(store(&w, &[&id]).await, before);

    // An optional body is limited too.
    let padding = "x".repeat(5000);
    let r = send(
        &w.app,
        Method::POST,
        &format!("/api/batches/{id}/complete"),
        Req::token(&w.operator).raw(
            Some("application/json"),
            &format!("{{\"expected_version\": 2, \"pad\": \"{padding}\"}}"),
        ),
    )
    .await;
    assert_problem(&r, 413, "oversized optional body");
    // And logging in: the body limit comes before any password hashing.
    let r = send(
        &w.app,
        Method::POST,
        "/api/auth/login",
        Req::default().json(&json!({ "username": "admin", "password": padding })),
    )
    .await;
    assert_problem(&r, 413, "oversized login");
    assert_eq!(store(&w, &[&id]).await, before);

    // Under the limit, the same endpoint works.
    let r = send(
        &w.app,
        Method::POST,
        &complete,
        Req::token(&w.operator).json(&ack()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

// ---------------------------------------------------------------------------------------------
// Unknown resources and illegal transitions
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_ids_are_404_and_change_nothing() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let id = w.started_batch().await;
    let flagged = w.started_batch().await;
    let (s, v) = w
        .app
        .post(
            &format!("/api/batches/{flagged}/flags"),
            &w.operator,
            json!({ "reason": "seal" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let flag_id = v["events"][0]["flag_id"].as_u64().unwrap();
    let before = store(&w, &[&id, &flagged]).await;
    let random = uuid::Uuid::new_v4();
    let reason = json!({ "reason": "because" });
    let (op, sup, admin) = (w.operator.as_str(), w.supervisor.as_str(), w.admin.as_str());
    let cases: Vec<(&str, Method, String, &str, Option<Value>)> = vec![
        (
            "random batch uuid",
            Method::GET,
            format!("/api/batches/{random}"),
            op,
            None,
        ),
        (
            "start a random batch",
            Method::POST,
            format!("/api/batches/{random}/start"),
            op,
            Some(json!({})),
        ),
        (
            "complete a step of a random batch",
            Method::POST,
            format!("/api/batches/{random}/steps/receiving-inspect/complete"),
            op,
            Some(ack()),
        ),
        (
            "block a random batch",
            Method::POST,
            format!("/api/batches/{random}/block"),
            sup,
            Some(reason.clone()),
        ),
        (
            "non-uuid batch id",
            Method::GET,
            "/api/batches/B-2025-0001".into(),
            op,
            None,
        ),
        (
            "non-uuid batch id on a command",
            Method::POST,
            "/api/batches/not-a-uuid/start".into(),
            op,
            Some(json!({})),
        ),
        (
            "unknown flow",
            Method::GET,
            "/api/flows/no_such_flow/versions".into(),
            op,
            None,
        ),
        (
            "unknown flow version",
            Method::GET,
            "/api/flows/no_such_flow/versions/1".into(),
            op,
            None,
        ),
        (
            "unknown version of a known flow",
            Method::GET,
            "/api/flows/gold_refining/versions/99".into(),
            op,
            None,
        ),
        (
            "non-numeric version",
            Method::GET,
            "/api/flows/gold_refining/versions/latest".into(),
            op,
            None,
        ),
        (
            "new version of an unknown flow",
            Method::POST,
            "/api/flows/no_such_flow/versions".into(),
            admin,
            Some(json!({})),
        ),
        (
            "publish an unknown flow",
            Method::POST,
            "/api/flows/no_such_flow/versions/1/publish".into(),
            admin,
            Some(json!({})),
        ),
        (
            "archive an unknown version",
            Method::POST,
            "/api/flows/gold_refining/versions/7/archive".into(),
            admin,
            None,
        ),
        (
            "unknown step id",
            Method::POST,
            format!("/api/batches/{id}/steps/no-such-step/complete"),
            op,
            Some(ack()),
        ),
        (
            "unknown mass-check step",
            Method::POST,
            format!("/api/batches/{id}/steps/no-such-step/mass-check"),
            op,
            Some(json!({ "actual": { "value": "1", "unit": "g" } })),
        ),
        (
            "override to an unknown step",
            Method::POST,
            format!("/api/batches/{id}/override"),
            admin,
            Some(json!({ "to_step_id": "no-such-step", "reason": "x" })),
        ),
        (
            "unknown flag id",
            Method::POST,
            format!("/api/batches/{flagged}/flags/{}/approve", flag_id + 100),
            sup,
            Some(reason.clone()),
        ),
        (
            "unknown flag id on reject",
            Method::POST,
            format!("/api/batches/{flagged}/flags/{}/reject", flag_id + 100),
            sup,
            Some(reason.clone()),
        ),
        (
            "non-numeric flag id",
            Method::POST,
            format!("/api/batches/{flagged}/flags/first/approve"),
            sup,
            Some(reason.clone()),
        ),
        (
            "unknown user",
            Method::GET,
            format!("/api/users/{random}"),
            admin,
            None,
        ),
        (
            "update an unknown user",
            Method::PATCH,
            format!("/api/users/{random}"),
            admin,
            Some(json!({ "active": false })),
        ),
        (
            "reset an unknown user's password",
            Method::POST,
            format!("/api/users/{random}/password"),
            admin,
            Some(json!({ "password": "long-enough-password" })),
        ),
    ];
    for (what, method, path, token, body) in cases {
        let mut req = Req::token(token);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let r = send(&w.app, method, &path, req).await;
        assert_problem(&r, 404, what);
        assert_eq!(
            store(&w, &[&id, &flagged]).await,
            before,
            "{what} changed the store"
        );
    }
    // A batch on a flow that does not exist is a bad request body rather than a missing resource.
    let r = send(
        &w.app,
        Method::POST,
        "/api/batches",
        Req::token(op).json(&json!({ "flow_id": "no_such_flow" })),
    )
    .await;
    assert_problem(&r, 422, "batch on an unknown flow");
    assert_eq!(store(&w, &[&id, &flagged]).await, before);
}

#[tokio::test]
async fn illegal_transitions_and_stale_versions_are_409_and_change_nothing() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let (s, v) = w
        .app
        .post(
            "/api/batches",
            &w.operator,
            json!({ "flow_id": "gold_refining" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let created = v["batch"]["batch_id"].as_str().unwrap().to_string();
    let started = batch_at_weigh(&w).await; // version 3, current step receiving-weigh
    let c = |p: &str| format!("/api/batches/{created}{p}");
    let b = |p: &str| format!("/api/batches/{started}{p}");
    let reason = json!({ "reason": "because" });
    let (op, sup, admin) = (w.operator.as_str(), w.supervisor.as_str(), w.admin.as_str());
    let with_version = |mut body: Value, v: u64| {
        body["expected_version"] = json!(v);
        body
    };
    let before = store(&w, &[&created, &started]).await;
    assert_eq!(before.batches[1].0, 3);
    let cases: Vec<(&str, String, &str, Value)> = vec![
        (
            "complete a step before start",
            c("/steps/receiving-inspect/complete"),
            op,
            ack(),
        ),
        (
            "mass check before start",
            c("/steps/receiving-weigh/mass-check"),
            op,
            json!({ "actual": { "value": "1000", "unit": "g" } }),
        ),
        ("flag before start", c("/flags"), op, reason.clone()),
        (
            "complete a batch before start",
            c("/complete"),
            op,
            json!({}),
        ),
        ("start twice", b("/start"), op, json!({})),
        (
            "complete a step already done",
            b("/steps/receiving-inspect/complete"),
            op,
            ack(),
        ),
        (
            "skip ahead",
            b("/steps/receiving-photo/complete"),
            op,
            json!({ "payload": { "type": "photo", "photo_sha256": PHOTO } }),
        ),
        (
            "approve when not flagged",
            b("/flags/1/approve"),
            sup,
            reason.clone(),
        ),
        (
            "reject when not flagged",
            b("/flags/1/reject"),
            sup,
            reason.clone(),
        ),
        (
            "unblock when not blocked",
            b("/unblock"),
            admin,
            reason.clone(),
        ),
        (
            "override forward",
            b("/override"),
            admin,
            json!({ "to_step_id": "qc-release", "reason": "skip" }),
        ),
        ("complete with steps left", b("/complete"), op, json!({})),
        (
            "stale expected_version on a step",
            b("/steps/receiving-weigh/mass-check"),
            op,
            with_version(json!({ "actual": { "value": "1000", "unit": "g" } }), 2),
        ),
        (
            "future expected_version on a step",
            b("/steps/receiving-weigh/mass-check"),
            op,
            with_version(json!({ "actual": { "value": "1000", "unit": "g" } }), 4),
        ),
        (
            "stale expected_version on block",
            b("/block"),
            sup,
            with_version(reason.clone(), 1),
        ),
        (
            "stale expected_version on a flag",
            b("/flags"),
            op,
            with_version(reason.clone(), 2),
        ),
        (
            "stale expected_version on start",
            c("/start"),
            op,
            json!({ "expected_version": 5 }),
        ),
    ];
    for (what, path, token, body) in cases {
        let r = send(&w.app, Method::POST, &path, Req::token(token).json(&body)).await;
        assert_problem(&r, 409, what);
        assert_eq!(
            store(&w, &[&created, &started]).await,
            before,
            "{what} changed the store"
        );
    }
    // With the right version the same command goes through.
    let r = send(
        &w.app,
        Method::POST,
        &b("/steps/receiving-weigh/mass-check"),
        Req::token(op)
            .json(&json!({ "actual": { "value": "1000", "unit": "g" }, "expected_version": 3 })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn negative_masses_and_unknown_units_are_422_and_change_nothing() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let id = batch_at_weigh(&w).await;
    let path = format!("/api/batches/{id}/steps/receiving-weigh/mass-check");
    let before = store(&w, &[&id]).await;
    for (what, actual, needle) in [
        (
            "negative string",
            json!({ "value": "-1000", "unit": "g" }),
            "negative",
        ),
        (
            "negative number",
            json!({ "value": -0.5, "unit": "kg" }),
            "negative",
        ),
        (
            "unknown unit",
            json!({ "value": "1000", "unit": "lb" }),
            "lb",
        ),
        ("empty unit", json!({ "value": "1000", "unit": "" }), "unit"),
        (
            "not a number",
            json!({ "value": "a lot", "unit": "g" }),
            "value",
        ),
        ("missing unit", json!({ "value": "1000" }), "unit"),
        ("missing value", json!({ "unit": "g" }), "value"),
    ] {
        let r = send(
            &w.app,
            Method::POST,
            &path,
            Req::token(&w.operator).json(&json!({ "actual": actual })),
        )
        .await;
        assert_problem(&r, 422, what);
        assert!(r.detail().contains(needle), "{what}: {}", r.body);
        assert!(
            r.detail().contains("actual"),
            "{what} names the field: {}",
            r.body
        );
        assert_eq!(store(&w, &[&id]).await, before, "{what} changed the store");
    }
    let r = send(
        &w.app,
        Method::POST,
        &path,
        Req::token(&w.operator).json(&json!({ "actual": { "value": "1", "unit": "kg" } })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn an_invalid_flow_draft_is_not_published() {
    let w = World::new().await;
    let content = json!({
        "name": " ",
        "pipeline": "Gold!",
        "stations": [{
            "station_id": "melt",
            "name": "Melting",
            "steps": [
                { "step_id": "melt-read", "name": "Read", "type": "instruction", "text": "" },
                { "step_id": "melt-read", "name": "Again", "type": "photo", "prompt": "Photo" }
            ]
        }]
    });
    // An invalid draft may be saved; it lists its problems.
    let (s, v) = w
        .app
        .post(
            "/api/flows",
            &w.admin,
            json!({ "flow_id": "broken", "content": content }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(!v["problems"].as_array().unwrap().is_empty(), "{v}");
    let audit_before = audit_log(&w).await.len();

    for body in [
        json!({}),
        json!({ "effective_date": "2020-01-01T00:00:00Z" }),
    ] {
        let r = send(
            &w.app,
            Method::POST,
            "/api/flows/broken/versions/1/publish",
            Req::token(&w.admin).json(&body),
        )
        .await;
        assert_problem(&r, 422, "publish an invalid draft");
        let problems = r.body["problems"].as_array().expect("a problems array");
        let paths: Vec<&str> = problems
            .iter()
            .map(|p| p["path"].as_str().unwrap())
            .collect();
        for p in problems {
            assert!(p["message"].as_str().is_some_and(|m| !m.is_empty()), "{p}");
        }
        for expected in [
            "name",
            "pipeline",
            "stations[0].steps[0].text",
            "stations[0].steps[1].step_id",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {paths:?}"
            );
        }
    }
    // A malformed effective date is refused before anything else.
    let r = send(
        &w.app,
        Method::POST,
        "/api/flows/broken/versions/1/publish",
        Req::token(&w.admin).json(&json!({ "effective_date": "tomorrow" })),
    )
    .await;
    assert_problem(&r, 422, "a malformed effective date");

    // Still a draft, nothing audited, and no batch can start on it.
    let (s, v) = w.app.get("/api/flows/broken/versions/1", &w.admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "draft", "{v}");
    assert_eq!(audit_log(&w).await.len(), audit_before);
    let r = send(
        &w.app,
        Method::POST,
        "/api/batches",
        Req::token(&w.operator).json(&json!({ "flow_id": "broken" })),
    )
    .await;
    assert_problem(&r, 422, "a batch on a draft");
    // Validation without saving says the same.
    let (s, v) = w
        .app
        .post(
            "/api/flows/validate",
            &w.admin,
            json!({ "content": content }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["valid"], false);
    // Wrong types inside the content name their path.
    let mut bad = content.clone();
    bad["stations"][0]["steps"] = json!("none");
    let r = send(
        &w.app,
        Method::PUT,
        "/api/flows/broken/versions/1",
        Req::token(&w.admin).json(&json!({ "content": bad })),
    )
    .await;
    assert_problem(&r, 422, "steps is a string");
    assert!(
        r.detail().contains("content.stations[0].steps"),
        "{}",
        r.body
    );
    assert_eq!(audit_log(&w).await.len(), audit_before);
}

#[tokio::test]
async fn unknown_endpoints_and_wrong_methods_are_problem_json() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let id = w.started_batch().await;
    let before = store(&w, &[&id]).await;
    for (method, path, token) in [
        (Method::GET, "/api/nope".to_string(), Some(w.admin.as_str())),
        (Method::GET, "/api/nope".to_string(), None),
        (
            Method::POST,
            "/api/batches/x/y/z".to_string(),
            Some(w.operator.as_str()),
        ),
        (
            Method::POST,
            format!("/api/batches/{id}/teleport"),
            Some(w.operator.as_str()),
        ),
        (Method::GET, "/nope".to_string(), None),
        (Method::GET, "/api".to_string(), None),
    ] {
        let req = Req {
            token,
            ..Req::default()
        };
        let r = send(&w.app, method.clone(), &path, req).await;
        assert_problem(&r, 404, &format!("{method} {path}"));
    }
    for (method, path) in [
        (Method::DELETE, "/api/batches".to_string()),
        (Method::DELETE, format!("/api/batches/{id}")),
        (Method::PUT, "/api/auth/login".to_string()),
        (Method::GET, "/api/auth/logout".to_string()),
        (Method::PATCH, "/api/flows".to_string()),
        (Method::DELETE, "/api/audit".to_string()),
    ] {
        let r = send(&w.app, method.clone(), &path, Req::token(&w.admin)).await;
        let what = format!("{method} {path}");
        assert_problem(&r, 405, &what);
        // RFC 9110 §15.5.6: a 405 lists the methods the resource does support.
        assert!(r.header("allow").is_some(), "{what}: no Allow header");
    }
    assert_eq!(store(&w, &[&id]).await, before);
}

/// Outside `/api` (health, readiness, metrics) a wrong method is a problem document too.
#[tokio::test]
async fn wrong_methods_outside_the_api_are_problem_json_too() {
    let app = App::spawn().await;
    let mut failures = Vec::new();
    for (method, path) in [
        (Method::POST, "/health"),
        (Method::PUT, "/ready"),
        (Method::DELETE, "/metrics"),
    ] {
        let r = send(&app, method.clone(), path, Req::default()).await;
        if let Some(e) = problem_error(&r, 405) {
            failures.push(format!("{method} {path}: {e}"));
        }
        if r.header("allow").is_none() {
            failures.push(format!("{method} {path}: no Allow header"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------

/// A name that is no user's is often a password typed into the username box: the failed
/// login is audited without it.
#[tokio::test]
async fn a_failed_login_under_an_unknown_name_does_not_record_the_name() {
    let w = World::new().await;
    let typed = "Tr0ub4dor&3-in-the-wrong-box";
    let r = login_full(&w.app, typed, PASSWORD).await;
    assert_problem(&r, 401, "unknown user");
    let log = audit_log(&w).await;
    let unknown = log
        .iter()
        .rfind(|r| r["action"] == "login_failed")
        .expect("the unknown user's attempt is audited");
    assert_eq!(unknown["target"], "user:(unknown)", "{unknown}");
    assert_eq!(unknown["actor"], "anonymous", "{unknown}");
    assert_eq!(unknown["details"]["reason"], "unknown user", "{unknown}");
    let whole = serde_json::to_string(&log).expect("json");
    assert!(
        !whole
            .to_ascii_lowercase()
            .contains(&typed.to_ascii_lowercase()),
        "the typed name is in the audit log"
    );
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled_and_audited() {
    let w = World::new().await;
    let failed_before = audit_log(&w)
        .await
        .iter()
        .filter(|r| r["action"] == "login_failed")
        .count();
    for attempt in 1..=5 {
        let r = login_full(&w.app, "analyst", "not-the-password-at-all").await;
        assert_problem(&r, 401, &format!("wrong password #{attempt}"));
    }
    let log = audit_log(&w).await;
    let failed: Vec<&Value> = log
        .iter()
        .filter(|r| r["action"] == "login_failed")
        .collect();
    assert_eq!(failed.len() - failed_before, 5, "{failed:?}");
    for r in &failed {
        assert_eq!(r["target"], "user:analyst", "{r}");
        assert_eq!(r["details"]["reason"], "wrong password", "{r}");
    }
    // The sixth attempt is refused even with the right password.
    let r = login_full(&w.app, "analyst", PASSWORD).await;
    assert_problem(&r, 429, "sixth attempt");
    let retry: u64 = r
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
    assert!(r.body["access_token"].is_null());
    // The existing session is not affected.
    assert_eq!(me(&w.app, &w.analyst).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_reused_refresh_token_ends_the_session() {
    let w = World::new().await;
    let first = login_full(&w.app, "analyst", PASSWORD).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let access1 = first.body["access_token"].as_str().unwrap().to_string();
    let refresh1 = first.body["refresh_token"].as_str().unwrap().to_string();

    let refresh = |token: &str| Req::default().json(&json!({ "refresh_token": token }));
    let second = send(
        &w.app,
        Method::POST,
        "/api/auth/refresh",
        refresh(&refresh1),
    )
    .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    let access2 = second.body["access_token"].as_str().unwrap().to_string();
    let refresh2 = second.body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(refresh1, refresh2, "the refresh token rotates");
    assert_eq!(me(&w.app, &access2).await.status, StatusCode::OK);

    // The old refresh token again: refused, and the whole session ends.
    let r = send(
        &w.app,
        Method::POST,
        "/api/auth/refresh",
        refresh(&refresh1),
    )
    .await;
    assert_problem(&r, 401, "reused refresh token");
    for (what, token) in [
        ("new access token", &access2),
        ("old access token", &access1),
    ] {
        let r = me(&w.app, token).await;
        assert_problem(&r, 401, what);
    }
    let r = send(
        &w.app,
        Method::POST,
        "/api/auth/refresh",
        refresh(&refresh2),
    )
    .await;
    assert_problem(&r, 401, "the rotated refresh token of the ended session");
    assert!(
        audit_log(&w)
            .await
            .iter()
            .any(|r| r["action"] == "refresh_token_reused"),
        "the reuse is audited"
    );
    // Garbage or nothing at all.
    let r = send(
        &w.app,
        Method::POST,
        "/api/auth/refresh",
        refresh("garbage"),
    )
    .await;
    assert_problem(&r, 401, "garbage refresh token");
    let r = send(&w.app, Method::POST, "/api/auth/refresh", Req::default()).await;
    assert_problem(&r, 401, "no refresh token");
    // Other sessions of the same user go on.
    assert_eq!(me(&w.app, &w.analyst).await.status, StatusCode::OK);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let w = World::new().await;
    let login = login_full(&w.app, "operator", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK);
    let access = login.body["access_token"].as_str().unwrap();
    let refresh = login.body["refresh_token"].as_str().unwrap();
    let r = send(&w.app, Method::POST, "/api/auth/logout", Req::token(access)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let cleared: Vec<&str> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("metcon_access=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    let r = me(&w.app, access).await;
    assert_problem(&r, 401, "access token after logout");
    let r = send(&w.app, Method::POST, "/api/auth/logout", Req::token(access)).await;
    assert_problem(&r, 401, "logout twice");
    let r = send(
        &w.app,
        Method::POST,
        "/api/auth/refresh",
        Req::default().json(&json!({ "refresh_token": refresh })),
    )
    .await;
    assert_problem(&r, 401, "refresh after logout");
    assert!(audit_log(&w).await.iter().any(|r| r["action"] == "logout"));
    // The World's own operator session is a different session.
    assert_eq!(me(&w.app, &w.operator).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_idle_session_ends_and_a_busy_one_does_not() {
    let w = World::with_env(&[("METCON_IDLE_TIMEOUT_SECONDS", "2")]).await;
    let idle_login = login_full(&w.app, "analyst", PASSWORD).await;
    let idle = idle_login.body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut idle_last_used = Instant::now();
    let busy_login = login_full(&w.app, "operator", PASSWORD).await;
    let busy = busy_login.body["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    let deadline = Instant::now() + Duration::from_secs(10);
    let step = Duration::from_millis(150);
    let ended = loop {
        assert!(Instant::now() < deadline, "the idle session never ended");
        // The busy token, used every 0.15 s, stays valid throughout.
        let r = me(&w.app, &busy).await;
        assert_eq!(r.status, StatusCode::OK, "busy session: {}", r.body);
        // Touch the idle token only once it has been unused for longer than the timeout:
        // every use would count as activity.
        if idle_last_used.elapsed() > Duration::from_millis(2300) {
            let r = me(&w.app, &idle).await;
            idle_last_used = Instant::now();
            if r.status == StatusCode::UNAUTHORIZED {
                break r;
            }
        }
        tokio::time::sleep(step).await;
    };
    assert_problem(&ended, 401, "idle session");
    assert!(ended.detail().contains("idle"), "{}", ended.body);
    // Ended for good, while the busy session carries on.
    assert_problem(&me(&w.app, &idle).await, 401, "idle session, again");
    assert_eq!(me(&w.app, &busy).await.status, StatusCode::OK);
    let refresh = idle_login.body["refresh_token"].as_str().unwrap();
    let r = send(
        &w.app,
        Method::POST,
        "/api/auth/refresh",
        Req::default().json(&json!({ "refresh_token": refresh })),
    )
    .await;
    assert_problem(&r, 401, "refresh of an idle session");
}

// ---------------------------------------------------------------------------------------------
// Cookies, CSRF and headers
// ---------------------------------------------------------------------------------------------

fn set_cookie<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", r.headers))
}

fn cookie_value(set_cookie: &str) -> &str {
    let pair = set_cookie.split(';').next().unwrap();
    pair.split_once('=').unwrap().1
}

fn has_attr(set_cookie: &str, attr: &str) -> bool {
    set_cookie
        .split(';')
        .skip(1)
        .any(|a| a.trim().eq_ignore_ascii_case(attr))
}

#[tokio::test]
async fn cookie_authentication_needs_the_csrf_header() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let login = login_full(&w.app, "operator", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK);
    let access = set_cookie(&login, "metcon_access");
    let csrf = set_cookie(&login, "metcon_csrf");
    let refresh = set_cookie(&login, "metcon_refresh");
    assert!(has_attr(access, "HttpOnly"), "{access}");
    assert!(has_attr(access, "SameSite=Strict"), "{access}");
    assert!(has_attr(refresh, "HttpOnly"), "{refresh}");
    assert!(has_attr(refresh, "SameSite=Strict"), "{refresh}");
    assert!(
        !has_attr(csrf, "HttpOnly"),
        "the page must read the CSRF cookie: {csrf}"
    );
    assert!(has_attr(csrf, "SameSite=Strict"), "{csrf}");
    assert_eq!(
        cookie_value(access),
        login.body["access_token"].as_str().unwrap()
    );
    let csrf_value = cookie_value(csrf).to_string();
    assert_eq!(csrf_value, login.body["csrf_token"].as_str().unwrap());
    assert!(login
        .header("cache-control")
        .is_some_and(|c| c.contains("no-store")));
    let cookies = format!(
        "metcon_access={}; metcon_csrf={csrf_value}",
        cookie_value(access)
    );
    let create = json!({ "flow_id": "gold_refining" });
    let before = store(&w, &[]).await;

    // Safe methods need no CSRF token.
    let r = send(
        &w.app,
        Method::GET,
        "/api/auth/me",
        Req::default().header("cookie", cookies.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["username"], "operator");

    for (what, cookie, header) in [
        ("no X-CSRF-Token", cookies.clone(), None),
        (
            "a wrong X-CSRF-Token",
            cookies.clone(),
            Some("not-the-token".to_string()),
        ),
        (
            "an empty X-CSRF-Token",
            cookies.clone(),
            Some(String::new()),
        ),
        (
            "a header but no CSRF cookie",
            format!("metcon_access={}", cookie_value(access)),
            Some(csrf_value.clone()),
        ),
    ] {
        let mut req = Req::default().json(&create).header("cookie", cookie);
        if let Some(h) = header {
            req = req.header("x-csrf-token", h);
        }
        let r = send(&w.app, Method::POST, "/api/batches", req).await;
        assert_problem(&r, 403, what);
        assert!(r.detail().contains("CSRF"), "{what}: {}", r.body);
        assert_eq!(store(&w, &[]).await, before, "{what} changed the store");
    }
    let r = send(
        &w.app,
        Method::POST,
        "/api/batches",
        Req::default()
            .json(&create)
            .header("cookie", cookies.clone())
            .header("x-csrf-token", csrf_value.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Logout by cookie needs it too.
    let r = send(
        &w.app,
        Method::POST,
        "/api/auth/logout",
        Req::default().header("cookie", cookies.clone()),
    )
    .await;
    assert_problem(&r, 403, "logout without CSRF");
}

#[tokio::test]
async fn responses_carry_the_security_headers() {
    let w = World::new().await;
    for (what, method, path, token) in [
        ("JSON", Method::GET, "/api/auth/me", Some(w.admin.as_str())),
        ("401", Method::GET, "/api/auth/me", None),
        ("403", Method::GET, "/api/users", Some(w.analyst.as_str())),
        ("404", Method::GET, "/api/nope", None),
        (
            "405",
            Method::DELETE,
            "/api/batches",
            Some(w.admin.as_str()),
        ),
        ("health", Method::GET, "/health", None),
        ("openapi", Method::GET, "/api/openapi.json", None),
    ] {
        let req = Req {
            token,
            ..Req::default()
        };
        let r = send(&w.app, method, path, req).await;
        let csp = r
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("{what}: no CSP"));
        assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
        assert!(r.header("cache-control").is_some(), "{what}");
    }
}
