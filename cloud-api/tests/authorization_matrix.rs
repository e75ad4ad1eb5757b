//! The authorization matrix: every endpoint under `/api`, called anonymously, with a garbage
//! bearer token and as each role, checked against the permission table
//! (`metcon_shared::role::Role::allows`). The table below is the specification: a new route
//! without a row fails `the_table_covers_every_route`.
//!
//! Also: an operator is bound to their stations, and a deactivated user's token stops working
//! at once.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeSet, HashMap};

use metcon_shared::role::{Permission, Role};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{App, World, PASSWORD};

/// What an endpoint needs from its caller.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// No token needed; who calls does not change the answer.
    Public,
    /// Any authenticated user, whatever the role.
    Authenticated,
    /// An authenticated user whose role has this permission.
    Perm(Permission),
}

/// A resource made fresh before each call, so that mutating calls cannot break later rows.
#[derive(Debug, Clone, Copy)]
enum Fixture {
    None,
    /// The published gold flow: `{flow_id}` = gold_refining, `{version}` = 1.
    GoldFlow,
    /// A fresh draft flow (version 1).
    DraftFlow,
    /// A fresh published flow (version 1 active, no draft).
    ActiveFlow,
    /// A fresh operator: `{id}`.
    User,
    /// Batches on the gold flow, prepared by supervisor2 (who is never a caller here):
    /// created, started (`{step_id}` = the current step), started with the first step done
    /// (`{step_id}` = receiving-weigh), flagged by supervisor2 (`{flag_id}`), blocked.
    CreatedBatch,
    StartedBatch,
    AdvancedBatch,
    FlaggedBatch,
    BlockedBatch,
    /// A fresh session of the calling role's user, used as the caller's token (for logout).
    OwnSession,
    /// `{refresh_token}` of a fresh session (for refresh).
    RefreshToken,
    /// `{name}` = a report that exists.
    Report,
    /// `{id}` = a fresh registered device at receiving that has not enrolled.
    Device,
    /// `{id}` = a fresh enrolled device at receiving.
    ActiveDevice,
    /// A batch waiting at receiving-weigh (`{id}`, `{step_id}`) and `{device}`, a fresh
    /// enrolled and calibrated scale at receiving.
    WeighBatch,
    /// `{station_id}` = receiving.
    Station,
}

type Ctx = HashMap<&'static str, String>;

struct Row {
    method: Method,
    /// The path template exactly as in the router and the OpenAPI document.
    path: &'static str,
    need: Need,
    fixture: Fixture,
    body: fn(&Ctx) -> Option<Value>,
}

fn row(
    method: Method,
    path: &'static str,
    need: Need,
    fixture: Fixture,
    body: fn(&Ctx) -> Option<Value>,
) -> Row {
    Row {
        method,
        path,
        need,
        fixture,
        body,
    }
}

fn gold() -> Value {
    serde_json::to_value(metcon_cloud::demo::gold_flow()).unwrap()
}

fn no_body(_: &Ctx) -> Option<Value> {
    None
}

fn empty(_: &Ctx) -> Option<Value> {
    Some(json!({}))
}

fn reason(_: &Ctx) -> Option<Value> {
    Some(json!({ "reason": "checked by the authorization matrix" }))
}

fn device_body(id: &str) -> Value {
    json!({
        "device_id": id, "name": format!("Scale {id}"), "site": "Plant A", "station_id": "receiving",
        "scale": { "protocol": "mt-sics", "port": "/dev/ttyUSB0" }
    })
}

fn calibration_body() -> Value {
    json!({
        "kind": "calibration", "outcome": "pass", "performed_at": "2026-01-05T09:00:00Z",
        "next_due": "2099-01-05", "reference": "DKD-K-12345", "performed_by": "Mettler service"
    })
}

/// Every endpoint of the router under `/api`.
fn table() -> Vec<Row> {
    use Fixture as F;
    use Need::{Authenticated, Perm, Public};
    use Permission as P;
    vec![
        // Session.
        row(Method::POST, "/api/setup", Public, F::None, |_| {
            Some(
                json!({ "token": "not-the-setup-token", "username": "intruder", "password": PASSWORD }),
            )
        }),
        row(Method::POST, "/api/auth/login", Public, F::None, |_| {
            Some(json!({ "username": "analyst", "password": PASSWORD }))
        }),
        row(
            Method::POST,
            "/api/auth/refresh",
            Public,
            F::RefreshToken,
            |c| Some(json!({ "refresh_token": c["refresh_token"] })),
        ),
        row(
            Method::POST,
            "/api/auth/logout",
            Authenticated,
            F::OwnSession,
            no_body,
        ),
        row(Method::GET, "/api/auth/me", Authenticated, F::None, no_body),
        row(Method::GET, "/api/openapi.json", Public, F::None, no_body),
        // Users.
        row(
            Method::GET,
            "/api/users",
            Perm(P::ManageUsers),
            F::None,
            no_body,
        ),
        row(
            Method::POST,
            "/api/users",
            Perm(P::ManageUsers),
            F::None,
            |c| {
                Some(
                    json!({ "username": format!("new-user-{}", c["unique"]), "password": PASSWORD, "role": "analyst" }),
                )
            },
        ),
        row(
            Method::GET,
            "/api/users/{id}",
            Perm(P::ManageUsers),
            F::User,
            no_body,
        ),
        row(
            Method::PATCH,
            "/api/users/{id}",
            Perm(P::ManageUsers),
            F::User,
            |_| Some(json!({ "display_name": "Renamed by the matrix" })),
        ),
        row(
            Method::POST,
            "/api/users/{id}/password",
            Perm(P::ManageUsers),
            F::User,
            |_| Some(json!({ "password": "another-long-enough-password" })),
        ),
        // Flows.
        row(
            Method::GET,
            "/api/flows",
            Perm(P::ViewFlows),
            F::None,
            no_body,
        ),
        row(
            Method::POST,
            "/api/flows",
            Perm(P::ManageFlows),
            F::None,
            |c| Some(json!({ "flow_id": format!("new-flow-{}", c["unique"]), "content": gold() })),
        ),
        row(
            Method::POST,
            "/api/flows/validate",
            Perm(P::ManageFlows),
            F::None,
            |_| Some(json!({ "content": gold() })),
        ),
        row(
            Method::GET,
            "/api/flows/{flow_id}/versions",
            Perm(P::ViewFlows),
            F::GoldFlow,
            no_body,
        ),
        row(
            Method::POST,
            "/api/flows/{flow_id}/versions",
            Perm(P::ManageFlows),
            F::ActiveFlow,
            empty,
        ),
        row(
            Method::GET,
            "/api/flows/{flow_id}/versions/{version}",
            Perm(P::ViewFlows),
            F::GoldFlow,
            no_body,
        ),
        row(
            Method::PUT,
            "/api/flows/{flow_id}/versions/{version}",
            Perm(P::ManageFlows),
            F::DraftFlow,
            |_| Some(json!({ "content": gold() })),
        ),
        row(
            Method::POST,
            "/api/flows/{flow_id}/versions/{version}/publish",
            Perm(P::ManageFlows),
            F::DraftFlow,
            empty,
        ),
        row(
            Method::POST,
            "/api/flows/{flow_id}/versions/{version}/archive",
            Perm(P::ManageFlows),
            F::ActiveFlow,
            no_body,
        ),
        // Batches.
        row(
            Method::GET,
            "/api/batches",
            Perm(P::ViewBatches),
            F::None,
            no_body,
        ),
        row(
            Method::POST,
            "/api/batches",
            Perm(P::CreateBatches),
            F::None,
            |_| Some(json!({ "flow_id": "gold_refining" })),
        ),
        row(
            Method::GET,
            "/api/batches/{id}",
            Perm(P::ViewBatches),
            F::StartedBatch,
            no_body,
        ),
        row(
            Method::POST,
            "/api/batches/{id}/start",
            Perm(P::ExecuteSteps),
            F::CreatedBatch,
            empty,
        ),
        row(
            Method::POST,
            "/api/batches/{id}/steps/{step_id}/complete",
            Perm(P::ExecuteSteps),
            F::StartedBatch,
            |_| Some(json!({ "payload": { "type": "instruction", "acknowledged": true } })),
        ),
        row(
            Method::POST,
            "/api/batches/{id}/steps/{step_id}/mass-check",
            Perm(P::ExecuteSteps),
            F::AdvancedBatch,
            |_| Some(json!({ "actual": { "value": "1000.0", "unit": "g" } })),
        ),
        row(
            Method::POST,
            "/api/batches/{id}/flags",
            Perm(P::RaiseFlag),
            F::StartedBatch,
            reason,
        ),
        row(
            Method::POST,
            "/api/batches/{id}/flags/{flag_id}/approve",
            Perm(P::ApproveFlags),
            F::FlaggedBatch,
            reason,
        ),
        row(
            Method::POST,
            "/api/batches/{id}/flags/{flag_id}/reject",
            Perm(P::ApproveFlags),
            F::FlaggedBatch,
            reason,
        ),
        row(
            Method::POST,
            "/api/batches/{id}/block",
            Perm(P::BlockBatch),
            F::StartedBatch,
            reason,
        ),
        row(
            Method::POST,
            "/api/batches/{id}/unblock",
            Perm(P::UnblockBatch),
            F::BlockedBatch,
            reason,
        ),
        row(
            Method::POST,
            "/api/batches/{id}/override",
            Perm(P::OverrideStep),
            F::AdvancedBatch,
            |_| {
                Some(
                    json!({ "to_step_id": "receiving-inspect", "reason": "checked by the authorization matrix" }),
                )
            },
        ),
        // Steps remain, so a permitted caller gets 409; the point is that it is not 401/403.
        row(
            Method::POST,
            "/api/batches/{id}/complete",
            Perm(P::ExecuteSteps),
            F::StartedBatch,
            empty,
        ),
        row(
            Method::GET,
            "/api/approvals",
            Perm(P::ApproveFlags),
            F::None,
            no_body,
        ),
        row(Method::GET, "/api/wip", Perm(P::ViewWip), F::None, no_body),
        // Weighing and live data.
        row(
            Method::POST,
            "/api/batches/{id}/steps/{step_id}/arm",
            Perm(P::ExecuteSteps),
            F::WeighBatch,
            |c| Some(json!({ "device_id": c["device"] })),
        ),
        row(
            Method::DELETE,
            "/api/batches/{id}/steps/{step_id}/arm",
            Perm(P::ExecuteSteps),
            F::WeighBatch,
            no_body,
        ),
        // No broker client in a test without ingest is fine: permitted callers get a
        // problem document, never 401/403.
        row(
            Method::POST,
            "/api/batches/{id}/steps/{step_id}/capture",
            Perm(P::ExecuteSteps),
            F::WeighBatch,
            |c| Some(json!({ "device_id": c["device"] })),
        ),
        // Photos: a JSON body is not a photo, so permitted callers get 415, never 401/403.
        row(
            Method::POST,
            "/api/batches/{id}/steps/{step_id}/photo",
            Perm(P::ExecuteSteps),
            F::AdvancedBatch,
            empty,
        ),
        row(
            Method::GET,
            "/api/batches/{id}/photos",
            Perm(P::ViewBatches),
            F::StartedBatch,
            no_body,
        ),
        // The signed URL is the credential (here missing: 400, never 401).
        row(
            Method::GET,
            "/api/photos/{sha256}",
            Public,
            F::None,
            no_body,
        ),
        row(
            Method::POST,
            "/api/batches/{id}/steps/{step_id}/attach-reading",
            Perm(P::ExecuteSteps),
            F::WeighBatch,
            |c| {
                Some(
                    json!({ "device_id": c["device"], "seq": 1, "reason": "attached by the matrix" }),
                )
            },
        ),
        row(
            Method::GET,
            "/api/stations/{station_id}/events",
            Perm(P::ExecuteSteps),
            F::Station,
            no_body,
        ),
        // Devices.
        row(
            Method::GET,
            "/api/devices",
            Perm(P::ViewDevices),
            F::None,
            no_body,
        ),
        row(
            Method::POST,
            "/api/devices",
            Perm(P::ManageDevices),
            F::None,
            |c| Some(device_body(&format!("new-dev-{}", c["unique"]))),
        ),
        row(
            Method::GET,
            "/api/devices/{id}",
            Perm(P::ViewDevices),
            F::Device,
            no_body,
        ),
        row(
            Method::PATCH,
            "/api/devices/{id}",
            Perm(P::ManageDevices),
            F::Device,
            |_| Some(json!({ "name": "Renamed by the matrix" })),
        ),
        row(
            Method::POST,
            "/api/devices/{id}/enrollment-code",
            Perm(P::ManageDevices),
            F::Device,
            no_body,
        ),
        // A body without a key is refused (422) before any code is looked at, for everyone.
        row(Method::POST, "/api/enroll", Public, F::None, |_| {
            Some(json!({ "code": "AAAA-BBBB-CCCC-DDDD" }))
        }),
        row(
            Method::POST,
            "/api/devices/{id}/revoke",
            Perm(P::ManageDevices),
            F::ActiveDevice,
            |_| Some(json!({ "reason": "revoked by the matrix" })),
        ),
        row(
            Method::POST,
            "/api/devices/{id}/rotate-key",
            Perm(P::ManageDevices),
            F::ActiveDevice,
            no_body,
        ),
        row(
            Method::PUT,
            "/api/devices/{id}/config",
            Perm(P::ManageDevices),
            F::ActiveDevice,
            |_| Some(json!({ "live_rate_hz": 5.0 })),
        ),
        row(
            Method::POST,
            "/api/devices/{id}/commands",
            Perm(P::ManageDevices),
            F::ActiveDevice,
            |_| Some(json!({ "cmd": "tare" })),
        ),
        row(
            Method::GET,
            "/api/devices/{id}/readings",
            Perm(P::ExecuteSteps),
            F::ActiveDevice,
            no_body,
        ),
        row(
            Method::GET,
            "/api/devices/{id}/calibrations",
            Perm(P::ViewDevices),
            F::ActiveDevice,
            no_body,
        ),
        row(
            Method::POST,
            "/api/devices/{id}/calibrations",
            Perm(P::RecordCalibration),
            F::ActiveDevice,
            |_| Some(calibration_body()),
        ),
        row(
            Method::GET,
            "/api/devices/{id}/keys",
            Perm(P::ViewDevices),
            F::ActiveDevice,
            no_body,
        ),
        // Audit.
        row(
            Method::GET,
            "/api/audit",
            Perm(P::ViewAudit),
            F::None,
            no_body,
        ),
        row(
            Method::GET,
            "/api/audit/verify",
            Perm(P::ViewAudit),
            F::None,
            no_body,
        ),
        // Reports.
        row(
            Method::GET,
            "/api/reports",
            Perm(P::ViewAnalytics),
            F::None,
            no_body,
        ),
        row(
            Method::GET,
            "/api/reports/{name}",
            Perm(P::ViewAnalytics),
            F::Report,
            no_body,
        ),
        row(
            Method::GET,
            "/api/reports/{name}/csv",
            Perm(P::ExportData),
            F::Report,
            no_body,
        ),
        row(
            Method::GET,
            "/api/reports/{name}/chart.svg",
            Perm(P::ViewAnalytics),
            F::Report,
            no_body,
        ),
    ]
}

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    GarbageToken,
    As(Role),
}

const CALLERS: [Who; 6] = [
    Who::Anonymous,
    Who::GarbageToken,
    Who::As(Role::Admin),
    Who::As(Role::Supervisor),
    Who::As(Role::Operator),
    Who::As(Role::Analyst),
];

const GARBAGE: &str = "eyJhbGciOiJIUzI1NiJ9.bm90LWEtcmVhbC10b2tlbg.c2lnbmF0dXJl";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Unauthorized,
    Forbidden,
    Allowed,
    Public,
}

fn expect(need: Need, who: Who) -> Expect {
    match (need, who) {
        (Need::Public, _) => Expect::Public,
        (_, Who::Anonymous | Who::GarbageToken) => Expect::Unauthorized,
        (Need::Authenticated, Who::As(_)) => Expect::Allowed,
        (Need::Perm(p), Who::As(role)) if role.allows(p) => Expect::Allowed,
        (Need::Perm(_), Who::As(_)) => Expect::Forbidden,
    }
}

fn username(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Supervisor => "supervisor",
        Role::Operator => "operator",
        Role::Analyst => "analyst",
    }
}

fn token(w: &World, role: Role) -> &str {
    match role {
        Role::Admin => &w.admin,
        Role::Supervisor => &w.supervisor,
        Role::Operator => &w.operator,
        Role::Analyst => &w.analyst,
    }
}

struct Reply {
    status: StatusCode,
    content_type: String,
    www_authenticate: Option<String>,
    body: Value,
}

async fn send(
    app: &App,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = app.client.request(method, format!("{}{}", app.base, path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    let www_authenticate = header("www-authenticate");
    let status = res.status();
    if content_type.starts_with("text/event-stream") {
        // an endless stream: the status and type are the answer
        return Reply {
            status,
            content_type,
            www_authenticate,
            body: Value::Null,
        };
    }
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        content_type,
        www_authenticate,
        body,
    }
}

/// `Err` unless the reply is problem+json with the members RFC 9457 asks for.
fn check_problem(r: &Reply, status: StatusCode) -> Result<(), String> {
    if r.status != status {
        return Err(format!("expected {status}, got {} {}", r.status, r.body));
    }
    if !r.content_type.starts_with("application/problem+json") {
        return Err(format!(
            "{status} without problem+json (content-type {:?}): {}",
            r.content_type, r.body
        ));
    }
    if r.body["status"] != status.as_u16()
        || !r.body["type"].is_string()
        || !r.body["title"].is_string()
        || !r.body["detail"].is_string()
    {
        return Err(format!("incomplete problem document: {}", r.body));
    }
    Ok(())
}

/// Posts as `token` and returns the JSON body, insisting on `status`.
async fn must(
    w: &World,
    method: Method,
    path: &str,
    token: &str,
    body: Value,
    status: u16,
) -> Value {
    let (s, v) = w.app.call(method, path, Some(token), Some(body)).await;
    assert_eq!(s.as_u16(), status, "{path}: {v}");
    v
}

async fn fresh_login(w: &World, username: &str) -> Value {
    let body = json!({ "username": username, "password": PASSWORD });
    let (s, v) = w
        .app
        .call(Method::POST, "/api/auth/login", None, Some(body))
        .await;
    assert_eq!(s, StatusCode::OK, "login {username}: {v}");
    v
}

async fn new_batch(w: &World, started: bool) -> String {
    let v = must(
        w,
        Method::POST,
        "/api/batches",
        &w.supervisor2,
        json!({ "flow_id": "gold_refining" }),
        201,
    )
    .await;
    let id = v["batch"]["batch_id"].as_str().unwrap().to_string();
    if started {
        let path = format!("/api/batches/{id}/start");
        must(w, Method::POST, &path, &w.supervisor2, json!({}), 200).await;
    }
    id
}

async fn new_flow(w: &World, n: usize, publish: bool) -> String {
    let flow_id = format!("tmp-flow-{n}");
    must(
        w,
        Method::POST,
        "/api/flows",
        &w.admin,
        json!({ "flow_id": flow_id, "content": gold() }),
        201,
    )
    .await;
    if publish {
        let path = format!("/api/flows/{flow_id}/versions/1/publish");
        must(w, Method::POST, &path, &w.admin, json!({}), 200).await;
    }
    flow_id
}

/// A fresh device at receiving; enrolled (with a throwaway key) when `enrolled`.
async fn new_device(w: &World, n: usize, enrolled: bool) -> String {
    let id = format!("dev-{n}");
    must(
        w,
        Method::POST,
        "/api/devices",
        &w.admin,
        device_body(&id),
        201,
    )
    .await;
    if enrolled {
        let path = format!("/api/devices/{id}/enrollment-code");
        let code = must(w, Method::POST, &path, &w.admin, json!({}), 201).await;
        let key = ed25519_dalek::SigningKey::from_bytes(&[n as u8; 32]);
        let body = json!({
            "code": code["code"], "agent_version": "test",
            "public_key": hex::encode(key.verifying_key().to_bytes()),
        });
        let (s, v) = w
            .app
            .call(Method::POST, "/api/enroll", None, Some(body))
            .await;
        assert_eq!(s, StatusCode::OK, "enroll {id}: {v}");
    }
    id
}

/// Makes the row's fixture; returns the placeholders and, for `OwnSession`, the token to use.
async fn prepare(w: &World, fixture: Fixture, who: Who, n: usize) -> (Ctx, Option<String>) {
    let mut c = Ctx::new();
    c.insert("unique", n.to_string());
    let mut own_token = None;
    match fixture {
        Fixture::None => {}
        Fixture::GoldFlow => {
            c.insert("flow_id", "gold_refining".into());
            c.insert("version", "1".into());
        }
        Fixture::DraftFlow | Fixture::ActiveFlow => {
            let publish = matches!(fixture, Fixture::ActiveFlow);
            c.insert("flow_id", new_flow(w, n, publish).await);
            c.insert("version", "1".into());
        }
        Fixture::User => {
            let v = must(
                w,
                Method::POST,
                "/api/users",
                &w.admin,
                json!({ "username": format!("tmp-user-{n}"), "password": PASSWORD, "role": "operator", "stations": ["receiving"] }),
                201,
            )
            .await;
            c.insert("id", v["id"].as_str().unwrap().to_string());
        }
        Fixture::CreatedBatch => {
            c.insert("id", new_batch(w, false).await);
        }
        Fixture::StartedBatch => {
            c.insert("id", new_batch(w, true).await);
            c.insert("step_id", "receiving-inspect".into());
        }
        Fixture::AdvancedBatch => {
            let id = new_batch(w, true).await;
            let path = format!("/api/batches/{id}/steps/receiving-inspect/complete");
            let ack = json!({ "payload": { "type": "instruction", "acknowledged": true } });
            must(w, Method::POST, &path, &w.supervisor2, ack, 200).await;
            c.insert("id", id);
            c.insert("step_id", "receiving-weigh".into());
        }
        Fixture::FlaggedBatch => {
            let id = new_batch(w, true).await;
            let path = format!("/api/batches/{id}/flags");
            let v = must(
                w,
                Method::POST,
                &path,
                &w.supervisor2,
                json!({ "reason": "seal looks tampered with" }),
                200,
            )
            .await;
            let flag_id = v["events"][0]["flag_id"].as_u64().unwrap();
            c.insert("id", id);
            c.insert("flag_id", flag_id.to_string());
        }
        Fixture::BlockedBatch => {
            let id = new_batch(w, true).await;
            let path = format!("/api/batches/{id}/block");
            let body = json!({ "reason": "seal broken" });
            must(w, Method::POST, &path, &w.supervisor2, body, 200).await;
            c.insert("id", id);
        }
        Fixture::OwnSession => {
            if let Who::As(role) = who {
                let v = fresh_login(w, username(role)).await;
                own_token = Some(v["access_token"].as_str().unwrap().to_string());
            }
        }
        Fixture::Report => {
            c.insert("name", "mass-checks".into());
        }
        Fixture::Device => {
            c.insert("id", new_device(w, n, false).await);
        }
        Fixture::ActiveDevice => {
            c.insert("id", new_device(w, n, true).await);
        }
        Fixture::WeighBatch => {
            let id = new_batch(w, true).await;
            let path = format!("/api/batches/{id}/steps/receiving-inspect/complete");
            let ack = json!({ "payload": { "type": "instruction", "acknowledged": true } });
            must(w, Method::POST, &path, &w.supervisor2, ack, 200).await;
            let device = new_device(w, n, true).await;
            let path = format!("/api/devices/{device}/calibrations");
            must(w, Method::POST, &path, &w.admin, calibration_body(), 201).await;
            c.insert("id", id);
            c.insert("step_id", "receiving-weigh".into());
            c.insert("device", device);
        }
        Fixture::Station => {
            c.insert("station_id", "receiving".into());
        }
        Fixture::RefreshToken => {
            let v = fresh_login(w, "operator").await;
            c.insert(
                "refresh_token",
                v["refresh_token"].as_str().unwrap().to_string(),
            );
        }
    }
    (c, own_token)
}

fn fill(template: &str, c: &Ctx) -> String {
    let mut path = template.to_string();
    for key in [
        "id",
        "flow_id",
        "version",
        "step_id",
        "flag_id",
        "name",
        "station_id",
    ] {
        if let Some(v) = c.get(key) {
            path = path.replace(&format!("{{{key}}}"), v);
        }
    }
    // A photo digest that is stored nowhere.
    path = path.replace("{sha256}", &"a".repeat(64));
    assert!(!path.contains('{'), "unfilled placeholder in {path}");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_each_caller_as_the_permission_table_says() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let mut failures = Vec::new();
    let mut n = 0;
    for r in table() {
        let mut public_statuses = BTreeSet::new();
        for who in CALLERS {
            n += 1;
            let (ctx, own_token) = prepare(&w, r.fixture, who, n).await;
            let path = fill(r.path, &ctx);
            let token = match who {
                Who::Anonymous => None,
                Who::GarbageToken => Some(GARBAGE.to_string()),
                Who::As(role) => Some(own_token.unwrap_or_else(|| token(&w, role).to_string())),
            };
            let reply = send(
                &w.app,
                r.method.clone(),
                &path,
                token.as_deref(),
                (r.body)(&ctx),
            )
            .await;
            let exp = expect(r.need, who);
            let outcome =
                match exp {
                    Expect::Unauthorized => check_problem(&reply, StatusCode::UNAUTHORIZED)
                        .and_then(|()| match reply.www_authenticate.as_deref() {
                            Some(h) if h.starts_with("Bearer") => Ok(()),
                            other => Err(format!("401 with WWW-Authenticate {other:?}")),
                        }),
                    Expect::Forbidden => check_problem(&reply, StatusCode::FORBIDDEN),
                    Expect::Allowed | Expect::Public => {
                        let s = reply.status;
                        let fallback = reply.body["detail"]
                            .as_str()
                            .is_some_and(|d| d.contains("no such endpoint"));
                        if (exp == Expect::Allowed
                            && (s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN))
                            || (exp == Expect::Public && s == StatusCode::UNAUTHORIZED)
                        {
                            Err(format!("refused with {s}: {}", reply.body))
                        } else if s.is_server_error() {
                            Err(format!("server error {s}: {}", reply.body))
                        } else if s == StatusCode::METHOD_NOT_ALLOWED || fallback {
                            Err(format!("the route does not exist ({s}): {}", reply.body))
                        } else if s.is_client_error() && check_problem(&reply, s).is_err() {
                            Err(format!("{s} without a problem document: {}", reply.body))
                        } else {
                            public_statuses.insert(s.as_u16());
                            Ok(())
                        }
                    }
                };
            if let Err(e) = outcome {
                failures.push(format!(
                    "{} {} as {who:?} (expected {exp:?}): {e}",
                    r.method, r.path
                ));
            }
        }
        if matches!(r.need, Need::Public) && public_statuses.len() > 1 {
            failures.push(format!(
                "{} {} is public but answers differently by caller: {public_statuses:?}",
                r.method, r.path
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn table_routes() -> BTreeSet<(String, String)> {
    let mut set = BTreeSet::new();
    for r in table() {
        let key = (r.method.to_string(), r.path.to_string());
        assert!(set.insert(key.clone()), "{key:?} is in the table twice");
    }
    set
}

/// Every operation of the OpenAPI document has a row, and every row (but the document itself)
/// is documented.
#[tokio::test]
async fn the_table_covers_every_route_in_the_openapi_document() {
    let app = App::spawn().await;
    let (s, doc) = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().expect("path item") {
            if [
                "get", "post", "put", "patch", "delete", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                documented.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    assert!(documented.len() > 30, "{documented:?}");
    let table = table_routes();
    let missing: Vec<_> = documented.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "endpoints without a matrix row: {missing:?}"
    );
    let undocumented: Vec<_> = table
        .difference(&documented)
        .filter(|(_, p)| p != "/api/openapi.json")
        .collect();
    assert!(
        undocumented.is_empty(),
        "rows missing from /api/openapi.json: {undocumented:?}"
    );
}

/// The `/api` routes as written in the router (`src/http/mod.rs`): a route added without an
/// OpenAPI annotation is caught here.
fn router_routes() -> BTreeSet<(String, String)> {
    let src = include_str!("../src/http/mod.rs");
    let start = src
        .find("let api = Router::new()")
        .expect("the /api router");
    let end = start + src[start..].find(".fallback(").expect("the /api fallback");
    let api = &src[start..end];
    let mut out = BTreeSet::new();
    let mut rest = api;
    while let Some(i) = rest.find(".route(") {
        let args_start = i + ".route(".len();
        let mut depth = 1;
        let mut args_end = args_start;
        for (j, ch) in rest[args_start..].char_indices() {
            match ch {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                args_end = args_start + j;
                break;
            }
        }
        let args = &rest[args_start..args_end];
        let q1 = args.find('"').expect("route path literal");
        let q2 = q1 + 1 + args[q1 + 1..].find('"').expect("closing quote");
        let path = format!("/api{}", &args[q1 + 1..q2]);
        let methods = &args[q2 + 1..];
        for m in ["get", "post", "put", "patch", "delete"] {
            let call = format!("{m}(");
            let mut from = 0;
            while let Some(k) = methods[from..].find(&call) {
                let at = from + k;
                let before = methods[..at].chars().next_back();
                if !before.is_some_and(|b| b.is_alphanumeric() || b == '_' || b == ':') {
                    out.insert((m.to_ascii_uppercase(), path.clone()));
                }
                from = at + call.len();
            }
        }
        rest = &rest[args_end..];
    }
    out
}

#[test]
fn the_table_covers_every_route_in_the_router() {
    let routes = router_routes();
    assert!(routes.len() > 30, "could not read the router: {routes:?}");
    let table = table_routes();
    let missing: Vec<_> = routes.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "routes without a matrix row: {missing:?}"
    );
    let stale: Vec<_> = table.difference(&routes).collect();
    assert!(
        stale.is_empty(),
        "matrix rows for routes that do not exist: {stale:?}"
    );
}

async fn snapshot(w: &World, id: &str) -> (u64, usize) {
    let (s, v) = w.app.get(&format!("/api/batches/{id}"), &w.admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (
        v["batch"]["version"].as_u64().unwrap(),
        v["events"].as_array().unwrap().len(),
    )
}

#[tokio::test]
async fn a_supervisor_calibrates_only_the_scales_of_their_own_stations() {
    let w = World::new().await;
    let device = new_device(&w, 1, false).await;
    must(
        &w,
        Method::POST,
        "/api/users",
        &w.admin,
        json!({ "username": "lab-sup", "password": PASSWORD, "role": "supervisor", "stations": ["lab"] }),
        201,
    )
    .await;
    let outsider = w.app.login("lab-sup", PASSWORD).await;
    let path = format!("/api/devices/{device}/calibrations");
    let r = send(
        &w.app,
        Method::POST,
        &path,
        Some(&outsider),
        Some(calibration_body()),
    )
    .await;
    check_problem(&r, StatusCode::FORBIDDEN).unwrap();
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("not one of yours"),
        "{}",
        r.body
    );
    let (_, list) = w.app.get(&path, &w.admin).await;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(0),
        "nothing stored: {list}"
    );
    // The supervisor of every station may.
    must(
        &w,
        Method::POST,
        &path,
        &w.supervisor,
        calibration_body(),
        201,
    )
    .await;
    // The Scales page lists the scales of one's own stations only.
    let scales = |token: String| {
        let app = &w.app;
        async move {
            let res = app
                .client
                .get(format!("{}/scales", app.base))
                .header("cookie", format!("metcon_access={token}"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.text().await.unwrap()
        }
    };
    assert!(!scales(outsider).await.contains(&device));
    assert!(scales(w.supervisor.clone()).await.contains(&device));
}

#[tokio::test]
async fn an_operator_sees_only_the_batches_of_pipelines_through_their_stations() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let id = w.started_batch().await;
    must(
        &w,
        Method::POST,
        "/api/users",
        &w.admin,
        json!({ "username": "lab-op", "password": PASSWORD, "role": "operator", "stations": ["lab"] }),
        201,
    )
    .await;
    let outsider = w.app.login("lab-op", PASSWORD).await;
    for path in [
        format!("/api/batches/{id}"),
        format!("/api/batches/{id}/photos"),
    ] {
        let r = send(&w.app, Method::GET, &path, Some(&outsider), None).await;
        check_problem(&r, StatusCode::FORBIDDEN).unwrap();
        assert!(
            r.body["detail"]
                .as_str()
                .unwrap()
                .contains("none of your stations"),
            "{path}: {}",
            r.body
        );
        // The receiver works at receiving, a station of the gold flow, and so do the other
        // roles that see batches, wherever they work.
        for token in [&w.receiver, &w.supervisor, &w.analyst] {
            let r = send(&w.app, Method::GET, &path, Some(token), None).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        }
    }
}

#[tokio::test]
async fn an_operator_cannot_work_at_a_station_that_is_not_theirs() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let id = w.started_batch().await;
    let b = |p: &str| format!("/api/batches/{id}{p}");
    let ack = json!({ "payload": { "type": "instruction", "acknowledged": true } });
    let photo = json!({ "payload": { "type": "photo", "photo_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" } });
    // The receiver works at receiving.
    must(
        &w,
        Method::POST,
        &b("/steps/receiving-inspect/complete"),
        &w.receiver,
        ack,
        200,
    )
    .await;
    let weigh = json!({ "actual": { "value": "1000", "unit": "g" } });
    must(
        &w,
        Method::POST,
        &b("/steps/receiving-weigh/mass-check"),
        &w.receiver,
        weigh,
        200,
    )
    .await;
    must(
        &w,
        Method::POST,
        &b("/steps/receiving-photo/complete"),
        &w.receiver,
        photo,
        200,
    )
    .await;

    // The batch is now at refining, which is not the receiver's station.
    let before = snapshot(&w, &id).await;
    let items = json!([
        "Fume hood running",
        "Acid-resistant PPE worn",
        "Spill kit at hand"
    ]);
    let checklist = json!({ "payload": { "type": "checklist", "checked": items } });
    for (path, body) in [
        (b("/steps/refining-safety/complete"), checklist.clone()),
        (b("/flags"), json!({ "reason": "not my station" })),
    ] {
        let r = send(&w.app, Method::POST, &path, Some(&w.receiver), Some(body)).await;
        check_problem(&r, StatusCode::FORBIDDEN).unwrap();
        assert!(
            r.body["detail"].as_str().unwrap().contains("refining"),
            "the refusal names the station: {}",
            r.body
        );
        assert_eq!(snapshot(&w, &id).await, before, "{path} changed the batch");
    }
    // An operator of every station may.
    must(
        &w,
        Method::POST,
        &b("/steps/refining-safety/complete"),
        &w.operator,
        checklist,
        200,
    )
    .await;
    let weigh = json!({ "actual": { "value": "995", "unit": "g" } });
    let r = send(
        &w.app,
        Method::POST,
        &b("/steps/refining-weigh/mass-check"),
        Some(&w.receiver),
        Some(weigh.clone()),
    )
    .await;
    check_problem(&r, StatusCode::FORBIDDEN).unwrap();
    must(
        &w,
        Method::POST,
        &b("/steps/refining-weigh/mass-check"),
        &w.operator,
        weigh,
        200,
    )
    .await;
}

#[tokio::test]
async fn a_deactivated_users_token_stops_working_at_once() {
    let w = World::new().await;
    w.publish_gold_flow().await;
    let user = must(
        &w,
        Method::POST,
        "/api/users",
        &w.admin,
        json!({ "username": "leaver", "password": PASSWORD, "role": "operator", "stations": ["receiving"] }),
        201,
    )
    .await;
    let user_id = user["id"].as_str().unwrap();
    let login = fresh_login(&w, "leaver").await;
    let access = login["access_token"].as_str().unwrap();
    let refresh = login["refresh_token"].as_str().unwrap();
    let (s, me) = w.app.get("/api/auth/me", access).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["username"], "leaver");

    let v = must(
        &w,
        Method::PATCH,
        &format!("/api/users/{user_id}"),
        &w.admin,
        json!({ "active": false }),
        200,
    )
    .await;
    assert_eq!(v["active"], false);

    // The very next call is refused, reads and writes alike, and the session cannot be renewed.
    let r = send(&w.app, Method::GET, "/api/auth/me", Some(access), None).await;
    check_problem(&r, StatusCode::UNAUTHORIZED).unwrap();
    let r = send(
        &w.app,
        Method::POST,
        "/api/batches",
        Some(access),
        Some(json!({ "flow_id": "gold_refining" })),
    )
    .await;
    check_problem(&r, StatusCode::UNAUTHORIZED).unwrap();
    let r = send(
        &w.app,
        Method::POST,
        "/api/auth/refresh",
        None,
        Some(json!({ "refresh_token": refresh })),
    )
    .await;
    check_problem(&r, StatusCode::UNAUTHORIZED).unwrap();
    let r = send(
        &w.app,
        Method::POST,
        "/api/auth/login",
        None,
        Some(json!({ "username": "leaver", "password": PASSWORD })),
    )
    .await;
    check_problem(&r, StatusCode::UNAUTHORIZED).unwrap();
    let (_, page) = w.app.get("/api/batches", &w.admin).await;
    assert_eq!(page["total"], 0, "the refused create left nothing behind");

    // Everyone else is unaffected; the deactivation is audited.
    let (s, _) = w.app.get("/api/auth/me", &w.operator).await;
    assert_eq!(s, StatusCode::OK);
    let (_, log) = w.app.get("/api/audit?limit=1000", &w.admin).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "user_deactivated" && r["target"] == "user:leaver"),
        "{log}"
    );
}
