//! Talking to a running `metcon-cloud` over HTTP as its users do.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub const PASSWORD: &str = "correct-horse-battery-staple";

/// A fresh `metcon-cloud` (embedded store in a temporary folder, `env` added to its
/// environment), set up with the users of [`Api::bootstrap`]: what most end-to-end tests
/// start from. Keep the folder alive as long as the server.
pub async fn bootstrapped(env: &[(&str, &str)]) -> (tempfile::TempDir, crate::Server, Api, Tokens) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let bin = crate::sibling_binary("metcon-cloud").expect("metcon-cloud is built");
    let server = crate::Server::start(&bin, dir.path(), env).expect("metcon-cloud starts");
    let api = Api::new(&server.base);
    let setup = server
        .setup_token
        .as_deref()
        .expect("a fresh server prints a setup token");
    let t = api.bootstrap(setup).await;
    (dir, server, api, t)
}

/// A JSON client for one server.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.to_string(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        }
    }

    /// Any call; returns the status and the JSON body (or the text as a JSON string).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A call that must answer `status`.
    pub async fn must(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let (s, v) = self.call(method.clone(), path, Some(token), body).await;
        assert_eq!(s.as_u16(), status, "{method} {path}: {v}");
        v
    }

    pub async fn login(&self, username: &str) -> String {
        self.login_with(username, PASSWORD).await
    }

    /// Logs in with a given password; returns the access token.
    pub async fn login_with(&self, username: &str, password: &str) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({ "username": username, "password": password })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "login {username}: {v}");
        v["access_token"].as_str().expect("token").to_string()
    }

    /// Creates the first admin with the setup token, then one user per role (all stations).
    pub async fn bootstrap(&self, setup_token: &str) -> Tokens {
        let (s, v) = self
            .call(
                Method::POST,
                "/api/setup",
                None,
                Some(json!({ "token": setup_token, "username": "admin", "password": PASSWORD })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "setup: {v}");
        let admin = self.login("admin").await;
        let all = ["receiving", "refining", "assay", "casting", "qc"];
        for (name, role) in [
            ("supervisor", "supervisor"),
            ("operator", "operator"),
            ("analyst", "analyst"),
        ] {
            let stations: &[&str] = if role == "analyst" { &[] } else { &all };
            self.must(
                Method::POST,
                "/api/users",
                &admin,
                Some(json!({ "username": name, "password": PASSWORD, "role": role, "stations": stations })),
                201,
            )
            .await;
        }
        Tokens {
            supervisor: self.login("supervisor").await,
            operator: self.login("operator").await,
            analyst: self.login("analyst").await,
            admin,
        }
    }

    /// Creates `flow_id` with `content` as draft 1 and publishes it.
    pub async fn publish_flow(&self, admin: &str, flow_id: &str, content: Value) {
        self.must(
            Method::POST,
            "/api/flows",
            admin,
            Some(json!({ "flow_id": flow_id, "content": content })),
            201,
        )
        .await;
        self.must(
            Method::POST,
            &format!("/api/flows/{flow_id}/versions/1/publish"),
            admin,
            Some(json!({})),
            200,
        )
        .await;
    }

    /// The batch as `GET /api/batches/{id}` answers it.
    pub async fn batch(&self, token: &str, id: &str) -> Value {
        self.must(Method::GET, &format!("/api/batches/{id}"), token, None, 200)
            .await
    }

    /// Publishes a one-station flow whose only step weighs `expected` g ± `tolerance` g.
    pub async fn publish_weigh_flow(
        &self,
        admin: &str,
        flow_id: &str,
        expected: &str,
        tolerance: &str,
    ) {
        let content = json!({
            "name": format!("Weigh {flow_id}"), "pipeline": "gold",
            "stations": [{ "station_id": "receiving", "name": "Receiving", "steps": [
                { "step_id": "weigh", "name": "Weigh-in", "type": "mass_check",
                  "expected_mass": expected, "unit": "g",
                  "tolerance": { "kind": "absolute", "value": tolerance, "unit": "g" } },
                { "step_id": "sign", "name": "Receipt", "type": "signature", "meaning": "Received by" }
            ]}]
        });
        self.publish_flow(admin, flow_id, content).await;
    }

    /// Registers a device at receiving for a scale on `port`, with a valid calibration, and
    /// returns a one-time enrollment code.
    pub async fn register_device(
        &self,
        admin: &str,
        id: &str,
        protocol: &str,
        port: &str,
    ) -> String {
        self.must(
            Method::POST,
            "/api/devices",
            admin,
            Some(json!({ "device_id": id, "name": format!("Scale {id}"), "site": "Plant A",
                          "station_id": "receiving", "scale": { "protocol": protocol, "port": port } })),
            201,
        )
        .await;
        self.must(
            Method::POST,
            &format!("/api/devices/{id}/calibrations"),
            admin,
            Some(json!({ "kind": "calibration", "outcome": "pass", "performed_at": "2026-01-05T09:00:00Z",
                          "next_due": "2099-01-05", "reference": "DKD-K-12345", "performed_by": "Mettler service" })),
            201,
        )
        .await;
        let v = self
            .must(
                Method::POST,
                &format!("/api/devices/{id}/enrollment-code"),
                admin,
                None,
                201,
            )
            .await;
        v["code"].as_str().expect("code").to_string()
    }

    /// Creates and starts a batch on `flow_id`; returns its id.
    pub async fn started_batch(&self, operator: &str, flow_id: &str) -> String {
        let v = self
            .must(
                Method::POST,
                "/api/batches",
                operator,
                Some(json!({ "flow_id": flow_id })),
                201,
            )
            .await;
        let id = v["batch"]["batch_id"].as_str().expect("id").to_string();
        self.must(
            Method::POST,
            &format!("/api/batches/{id}/start"),
            operator,
            Some(json!({})),
            200,
        )
        .await;
        id
    }

    /// Polls the batch until `f` accepts it; `Err` with the last state after `limit`.
    pub async fn wait_batch(
        &self,
        token: &str,
        id: &str,
        limit: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Result<Value, Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let path = format!("/api/batches/{id}");
            let (_, v) = self.call(Method::GET, &path, Some(token), None).await;
            if f(&v) {
                return Ok(v);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(v);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Audit records whose action is `action`.
    pub async fn audit(&self, admin: &str, action: &str) -> Vec<Value> {
        let v = self
            .must(Method::GET, "/api/audit?limit=1000", admin, None, 200)
            .await;
        let items = v
            .get("items")
            .and_then(Value::as_array)
            .or_else(|| v.as_array())
            .cloned()
            .unwrap_or_default();
        items
            .into_iter()
            .filter(|r| r["action"] == action)
            .collect()
    }
}

/// Tokens of the users [`Api::bootstrap`] creates.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub admin: String,
    pub supervisor: String,
    pub operator: String,
    pub analyst: String,
}
