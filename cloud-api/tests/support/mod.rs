//! Starts the real `metcon-cloud` binary on a free port with a temporary data folder, and
//! talks to it over HTTP (the zero-to-production `spawn_app` pattern).
//!
//! The store is SQLite in the data folder; with `METCON_TEST_STORE=mongodb` it is a fresh
//! MongoDB database instead (`METCON_TEST_MONGODB_URI`, or a private `secantusd-rs`; see
//! `metcon_e2e::mongo`), so the API tests that do not open the SQLite file themselves run
//! unchanged on MongoDB.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub const PASSWORD: &str = "correct-horse-battery-staple";

pub struct App {
    pub base: String,
    /// The embedded broker's device gate, `host:port`.
    pub broker: Option<String>,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    pub setup_token: Option<String>,
    pub stdout: mpsc::Receiver<String>,
    /// Environment selecting the store (empty for SQLite in `dir`); CLI runs need it too.
    pub store_env: Vec<(&'static str, String)>,
    child: Child,
    /// Kept alive while the server runs (a private MongoDB stand-in, or a database to drop).
    _mongo: Option<metcon_e2e::mongo::MongoTarget>,
}

/// A MongoDB database for this test if `METCON_TEST_STORE=mongodb`.
pub fn test_mongo() -> Option<metcon_e2e::mongo::MongoTarget> {
    if std::env::var("METCON_TEST_STORE").ok().as_deref() != Some("mongodb") {
        return None;
    }
    Some(
        metcon_e2e::mongo::MongoTarget::from_env("app")
            .expect("a MongoDB for the test")
            .expect("METCON_TEST_STORE=mongodb needs METCON_TEST_MONGODB_URI or secantusd-rs"),
    )
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_metcon-cloud")
}

/// Runs a `metcon-cloud` subcommand against a data folder and returns (exit ok, stdout+stderr).
pub fn run_cli(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("METCON_DATA_DIR", dir)
        .env("METCON_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run metcon-cloud");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

impl App {
    pub async fn spawn() -> App {
        App::spawn_with("serve", &[]).await
    }

    /// Starts `metcon-cloud <command>` and waits (with a deadline) for it to listen.
    pub async fn spawn_with(command: &str, env: &[(&str, &str)]) -> App {
        let dir = tempfile::tempdir().expect("temp dir");
        App::spawn_in(dir, command, env).await
    }

    pub async fn spawn_in(dir: tempfile::TempDir, command: &str, env: &[(&str, &str)]) -> App {
        // An explicit database in `env` wins over METCON_TEST_STORE.
        let mongo = if env.iter().any(|(k, _)| *k == "METCON_DATABASE") {
            None
        } else {
            test_mongo()
        };
        let store_env = mongo.as_ref().map(|m| m.env()).unwrap_or_default();
        let mut cmd = Command::new(bin());
        for (k, v) in &store_env {
            cmd.env(k, v);
        }
        cmd.arg(command)
            .env("METCON_LISTEN", "127.0.0.1:0")
            .env("METCON_DATA_DIR", dir.path())
            .env("METCON_COOKIE_SECURE", "false")
            .env("METCON_LOG", "warn")
            .env("METCON_BROKER__LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start metcon-cloud");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut setup_token = None;
        let mut broker = None;
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("metcon-cloud did not start listening within 60 s");
            if let Some(t) = line.trim().strip_prefix("SETUP TOKEN: ") {
                setup_token = Some(t.to_string());
            }
            if let Some(addr) = line.strip_prefix("METCON broker listening on mqtt://") {
                broker = Some(addr.trim().to_string());
            }
            if let Some(addr) = line.strip_prefix("METCON listening on ") {
                break addr.trim().to_string();
            }
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        App {
            base,
            broker,
            dir,
            client,
            setup_token,
            stdout: rx,
            store_env,
            child,
            _mongo: mongo,
        }
    }

    /// Runs a `metcon-cloud` subcommand against this server's data folder and store.
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let env: Vec<(&str, &str)> = self
            .store_env
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        run_cli(self.dir.path(), args, &env)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("metcon.db")
    }

    /// Sends a request; returns status, JSON body (Null if none) and content type.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, v, _) = self.call_full(method, path, token, body).await;
        (s, v)
    }

    pub async fn call_full(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let ct = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = res.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value, ct)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({ "username": username, "password": password })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "login {username}: {v}");
        v["access_token"].as_str().unwrap().to_string()
    }
}

/// Tokens for one user of each role, on a server whose admin came from the setup token.
pub struct World {
    pub app: App,
    pub admin: String,
    pub supervisor: String,
    pub supervisor2: String,
    pub operator: String,
    /// An operator assigned to `receiving` only.
    pub receiver: String,
    pub analyst: String,
}

impl World {
    pub async fn new() -> World {
        World::with_env(&[]).await
    }

    pub async fn with_env(env: &[(&str, &str)]) -> World {
        let app = App::spawn_with("serve", env).await;
        let token = app
            .setup_token
            .clone()
            .expect("a fresh server prints a setup token");
        let (s, v) = app
            .call(
                Method::POST,
                "/api/setup",
                None,
                Some(json!({ "token": token, "username": "admin", "password": PASSWORD })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let admin = app.login("admin", PASSWORD).await;
        let all = ["receiving", "refining", "assay", "casting", "qc"];
        for (name, role, stations) in [
            ("supervisor", "supervisor", &all[..]),
            ("supervisor2", "supervisor", &all[..]),
            ("operator", "operator", &all[..]),
            ("receiver", "operator", &all[..1]),
            ("analyst", "analyst", &[][..]),
        ] {
            let (s, v) = app
                .post("/api/users", &admin, json!({ "username": name, "password": PASSWORD, "role": role, "stations": stations }))
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
        }
        let supervisor = app.login("supervisor", PASSWORD).await;
        let supervisor2 = app.login("supervisor2", PASSWORD).await;
        let operator = app.login("operator", PASSWORD).await;
        let receiver = app.login("receiver", PASSWORD).await;
        let analyst = app.login("analyst", PASSWORD).await;
        World {
            app,
            admin,
            supervisor,
            supervisor2,
            operator,
            receiver,
            analyst,
        }
    }

    /// Creates and publishes the gold refining flow through the API.
    pub async fn publish_gold_flow(&self) {
        let content = serde_json::to_value(metcon_cloud::demo::gold_flow()).unwrap();
        let (s, v) = self
            .app
            .post(
                "/api/flows",
                &self.admin,
                json!({ "flow_id": "gold_refining", "content": content }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = self
            .app
            .post(
                "/api/flows/gold_refining/versions/1/publish",
                &self.admin,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    /// A started batch on the gold flow; returns its id.
    pub async fn started_batch(&self) -> String {
        let (s, v) = self
            .app
            .post(
                "/api/batches",
                &self.operator,
                json!({ "flow_id": "gold_refining" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["batch"]["batch_id"].as_str().unwrap().to_string();
        let (s, v) = self
            .app
            .post(
                &format!("/api/batches/{id}/start"),
                &self.operator,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        id
    }
}
