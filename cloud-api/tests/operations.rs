//! Operating the server: configuration from a TOML file, health/readiness/metrics, graceful
//! shutdown on SIGTERM, and the `user create` command.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use support::{run_cli, App, PASSWORD};

#[tokio::test]
async fn health_ready_metrics_and_openapi() {
    let app = App::spawn().await;
    let r = app
        .client
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .client
        .get(format!("{}/ready", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .client
        .get(format!("{}/api/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: serde_json::Value = r.json().await.unwrap();
    assert!(doc["paths"]["/api/batches/{id}/steps/{step_id}/mass-check"]["post"].is_object());
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let body = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("metcon_http_requests_total"), "{body}");
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() {
    let app = App::spawn().await;
    let pid = app_pid(&app);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match app.client.get(format!("{}/health", app.base)).send().await {
            Err(_) => break,
            Ok(_) if Instant::now() > deadline => panic!("still serving 15 s after SIGTERM"),
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(wait_exit(pid, deadline), "process did not exit");
}

fn app_pid(app: &App) -> u32 {
    app.pid()
}

fn wait_exit(pid: u32, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2) == Some("Z"))
        .unwrap_or(true)
}

#[tokio::test]
async fn a_toml_file_configures_the_server_and_env_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metcon.toml");
    std::fs::write(
        &file,
        "log_format = \"json\"\nmax_body_bytes = 2048\nidle_timeout_seconds = 600\n",
    )
    .unwrap();
    let app = App::spawn_in(
        dir,
        "serve",
        &[
            ("METCON_CONFIG", file.to_str().unwrap()),
            ("METCON_MAX_BODY_BYTES", "4096"),
        ],
    )
    .await;
    // 3000 bytes: over the file's 2048 but under the environment's 4096 → not 413.
    let body = serde_json::json!({ "username": "x".repeat(2900), "password": "y" });
    let (s, _) = app
        .call(reqwest::Method::POST, "/api/auth/login", None, Some(body))
        .await;
    assert_ne!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let body = serde_json::json!({ "username": "x".repeat(5000), "password": "y" });
    let (s, v) = app
        .call(reqwest::Method::POST, "/api/auth/login", None, Some(body))
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");

    // A bad file is refused with a message naming the key.
    let bad = tempfile::tempdir().unwrap();
    let bad_file = bad.path().join("bad.toml");
    std::fs::write(&bad_file, "listen = 12\n").unwrap();
    let (ok, out) = run_cli(
        bad.path(),
        &["--config", bad_file.to_str().unwrap(), "audit", "verify"],
        &[],
    );
    assert!(!ok);
    assert!(out.contains("listen"), "{out}");
}

#[tokio::test]
async fn user_create_on_the_command_line_makes_a_user_who_can_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = run_cli(
        dir.path(),
        &["user", "create", "--username", "Alice", "--role", "admin"],
        &[("METCON_NEW_PASSWORD", PASSWORD)],
    );
    assert!(ok, "{out}");
    let (ok, out) = run_cli(
        dir.path(),
        &["user", "create", "--username", "bob", "--role", "operator"],
        &[("METCON_NEW_PASSWORD", "short")],
    );
    assert!(!ok, "a short password is refused: {out}");
    assert!(out.contains("at least 12"), "{out}");
    let (ok, out) = run_cli(
        dir.path(),
        &["user", "create", "--username", "carol", "--role", "wizard"],
        &[("METCON_NEW_PASSWORD", PASSWORD)],
    );
    assert!(!ok);
    assert!(out.contains("unknown role"), "{out}");
    let app = App::spawn_in(dir, "serve", &[]).await;
    assert!(
        app.setup_token.is_none(),
        "no setup token once a user exists"
    );
    app.login("alice", PASSWORD).await;
}
