//! End to end, with every real part: the scale simulator on a pty → `metcon-edge`, enrolled
//! with a one-time code → the broker (the cloud's embedded one, or a real Mosquitto started
//! with `deploy/mosquitto/mosquitto.conf`: TLS and dynamic-security ACLs) → `metcon-cloud`.
//! An operator presses Capture on an armed mass-check step; the simulator settles; the step
//! records the signed reading within tolerance. A second batch settles outside tolerance and
//! is flagged. The kiosk's event stream shows the live weight as stable.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::StreamExt;
use metcon_e2e::api::Api;
use metcon_e2e::edge::Edge;
use metcon_e2e::mosquitto::Mosquitto;
use metcon_e2e::scale_sim::Sim;
use metcon_e2e::{sibling_binary, Server};
use reqwest::Method;
use serde_json::{json, Value};

fn mass_checked(v: &Value) -> Option<&Value> {
    v["events"]
        .as_array()?
        .iter()
        .find(|e| e["type"] == "mass_checked")
}

/// Reads the station's event stream until a stable weight of `net` shows up.
async fn stream_shows_stable(base: String, token: String, net: &'static str) {
    let res = reqwest::Client::new()
        .get(format!("{base}/api/stations/receiving/events"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the station's event stream answers");
    let status = res.status();
    let kind = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if status != 200 || kind != "text/event-stream" {
        let text = res.text().await.unwrap_or_default();
        panic!("the event stream answered {status} ({kind}): {text}");
    }
    let mut body = res.bytes_stream();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.unwrap_or_else(|e| panic!("the event stream broke off: {e}; saw:\n{seen}"));
            seen.push_str(&String::from_utf8_lossy(&chunk));
            for frame in seen.split("\n\n") {
                let data = frame
                    .lines()
                    .find_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")));
                let Some(data) = data else { continue };
                let Ok(e) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                if e["event"] == "weight" && e["stable"] == true && e["net"] == net {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(
        found,
        Ok(true),
        "no stable {net} g on the stream; saw:\n{seen}"
    );
}

async fn weigh_twice(env: Vec<(String, String)>, broker_logs: impl Fn() -> String) {
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start(&sibling_binary("metcon-cloud").unwrap(), dir.path(), &env).unwrap();
    let api = Api::new(&server.base);
    let t = api.bootstrap(server.setup_token.as_deref().unwrap()).await;
    api.publish_weigh_flow(&t.admin, "weigh", "1000", "0.5")
        .await;

    let mut sim = Sim::start("mt-sics", &["--capacity", "5000"]);
    let code = api
        .register_device(&t.admin, "scale-01", "mt-sics", &sim.pty)
        .await;
    let mut edge = Edge::enroll(&server.base, &code);
    let config = std::fs::read_to_string(&edge.config).unwrap();
    assert!(config.contains("device_id = \"scale-01\""), "{config}");
    edge.start();

    // the fleet API sees it online
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = api
            .must(Method::GET, "/api/devices/scale-01", &t.admin, None, 200)
            .await;
        if v["online"] == true && v["scale_connected"] == true {
            assert_eq!(v["agent_version"], env!("CARGO_PKG_VERSION"));
            assert!(v["clock_skew_ms"].as_i64().unwrap().abs() < 5_000);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "device never online: {v}\n{}\n{}",
            edge.logs(),
            broker_logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // within tolerance
    let b1 = api.started_batch(&t.operator, "weigh").await;
    sim.set_and_settle("1000.20");
    let streamed = tokio::spawn(stream_shows_stable(
        server.base.clone(),
        t.operator.clone(),
        "1000.20",
    ));
    let armed = api
        .must(
            Method::POST,
            &format!("/api/batches/{b1}/steps/weigh/capture"),
            &t.operator,
            Some(json!({})),
            202,
        )
        .await;
    assert_eq!(armed["device_id"], "scale-01");
    assert_eq!(armed["capture_sent"], true);
    let v = api
        .wait_batch(&t.operator, &b1, Duration::from_secs(30), |v| {
            mass_checked(v).is_some()
        })
        .await
        .unwrap_or_else(|v| {
            panic!(
                "no signed reading bound: {v}\nsim: {}\nagent:\n{}\nbroker:\n{}",
                sim.cmd("status"),
                edge.logs(),
                broker_logs()
            )
        });
    let e = mass_checked(&v).unwrap();
    assert_eq!(e["actual"], json!({ "value": "1000.20", "unit": "g" }));
    assert_eq!(e["source"]["kind"], "device");
    assert_eq!(e["source"]["device_id"], "scale-01");
    assert_eq!(e["check"]["within"], true);
    assert_eq!(v["batch"]["status"], "in_progress");
    assert_eq!(v["current_step"]["step"]["step_id"], "sign");
    streamed.await.unwrap();

    // outside tolerance: flagged, waiting for a supervisor
    let b2 = api.started_batch(&t.operator, "weigh").await;
    sim.set_and_settle("1012.00");
    api.must(
        Method::POST,
        &format!("/api/batches/{b2}/steps/weigh/capture"),
        &t.operator,
        Some(json!({})),
        202,
    )
    .await;
    let v = api
        .wait_batch(&t.operator, &b2, Duration::from_secs(30), |v| {
            v["batch"]["status"] == "flagged"
        })
        .await
        .unwrap_or_else(|v| panic!("not flagged: {v}\nagent:\n{}", edge.logs()));
    let e = mass_checked(&v).unwrap();
    assert_eq!(e["actual"]["value"], "1012.00");
    assert_eq!(e["check"]["within"], false);

    // both readings are stored and bound; none is left unbound
    let readings = api
        .must(
            Method::GET,
            "/api/devices/scale-01/readings",
            &t.admin,
            None,
            200,
        )
        .await;
    let bound: Vec<&Value> = readings
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["binding"].is_null())
        .collect();
    assert_eq!(bound.len(), 2, "{readings}");
    let unbound = api
        .must(
            Method::GET,
            "/api/devices/scale-01/readings?unbound=true",
            &t.admin,
            None,
            200,
        )
        .await;
    assert_eq!(unbound, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_reading_completes_and_flags_mass_checks_through_the_embedded_broker() {
    weigh_twice(Vec::new(), String::new).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_through_mosquitto_with_the_deploy_configuration() {
    let broker = Mosquitto::start();
    weigh_twice(broker.cloud_env(), || broker.logs()).await;
}
