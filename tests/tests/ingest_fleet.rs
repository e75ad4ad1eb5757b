//! Running a fleet, with the real parts (simulator on a pty, enrolled `metcon-edge`, the
//! cloud's embedded broker, or Mosquitto where replicas share ingest):
//! key rotation (the new key signed by the old), pushed configuration and commands, unbound
//! readings attached by hand with a reason, a scale whose routine test failed, the broker will
//! marking a killed agent offline, and two cloud replicas sharing ingest through a shared
//! subscription.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use metcon_e2e::api::{Api, Tokens};
use metcon_e2e::edge::Edge;
use metcon_e2e::mosquitto::Mosquitto;
use metcon_e2e::poll::wait_for;
use metcon_e2e::scale_sim::Sim;
use metcon_e2e::{sibling_binary, Server};
use reqwest::Method;
use serde_json::{json, Value};

struct Station {
    _dir: tempfile::TempDir,
    server: Server,
    api: Api,
    t: Tokens,
    sim: Sim,
    edge: Edge,
}

async fn station(env: &[(&str, &str)]) -> Station {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&sibling_binary("metcon-cloud").unwrap(), dir.path(), env).unwrap();
    let api = Api::new(&server.base);
    let t = api.bootstrap(server.setup_token.as_deref().unwrap()).await;
    api.publish_weigh_flow(&t.admin, "weigh", "1000", "0.5")
        .await;
    let sim = Sim::start("mt-sics", &["--capacity", "5000"]);
    let code = api
        .register_device(&t.admin, "scale-01", "mt-sics", &sim.pty)
        .await;
    let mut edge = Edge::enroll(&server.base, &code);
    edge.start();
    wait_online(&api, &t, true).await;
    Station {
        _dir: dir,
        server,
        api,
        t,
        sim,
        edge,
    }
}

async fn device(api: &Api, t: &Tokens) -> Value {
    api.must(Method::GET, "/api/devices/scale-01", &t.admin, None, 200)
        .await
}

async fn wait_online(api: &Api, t: &Tokens, online: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = device(api, t).await;
        if v["online"] == online && (!online || v["scale_connected"] == true) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "online != {online}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn readings(api: &Api, t: &Tokens, unbound: bool) -> Vec<Value> {
    let path = format!("/api/devices/scale-01/readings?unbound={unbound}");
    api.must(Method::GET, &path, &t.admin, None, 200)
        .await
        .as_array()
        .unwrap()
        .clone()
}

async fn wait_readings(api: &Api, t: &Tokens, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = readings(api, t, false).await;
        if r.len() >= n {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} readings expected: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_config_commands_attach_calibration_and_the_will() {
    let mut s = station(&[]).await;
    let (api, t) = (&s.api, &s.t);

    // A capture with nothing armed (an admin's, from the fleet page): the reading is kept
    // unbound.
    s.sim.set_and_settle("999.80");
    api.must(
        Method::POST,
        "/api/devices/scale-01/commands",
        &t.admin,
        Some(json!({ "cmd": "capture" })),
        202,
    )
    .await;
    let r = wait_readings(api, t, 1).await;
    assert!(r[0]["binding"].is_null());
    assert_eq!(readings(api, t, true).await.len(), 1);
    let seq = r[0]["reading"]["seq"].as_u64().unwrap();

    // The operator attaches it to a waiting step, with a reason (audited).
    let b1 = api.started_batch(&t.operator, "weigh").await;
    let (st, v) = api
        .call(
            Method::POST,
            &format!("/api/batches/{b1}/steps/weigh/attach-reading"),
            Some(&t.operator),
            Some(json!({ "device_id": "scale-01", "seq": seq, "reason": "" })),
        )
        .await;
    assert_eq!(st, 422, "a reason is required: {v}");
    let v = api
        .must(
            Method::POST,
            &format!("/api/batches/{b1}/steps/weigh/attach-reading"),
            &t.operator,
            Some(json!({ "device_id": "scale-01", "seq": seq, "reason": "weighed before the step was opened" })),
            200,
        )
        .await;
    assert_eq!(v["events"][0]["type"], "mass_checked");
    assert_eq!(v["events"][0]["source"]["sequence"], seq);
    assert_eq!(v["events"][0]["note"], "weighed before the step was opened");
    assert!(readings(api, t, true).await.is_empty());
    let a = api.audit(&t.admin, "reading_attached").await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["details"]["seq"], seq);

    // Key rotation: the agent announces the new key signed with the old one; the next
    // reading verifies with the new key.
    api.must(
        Method::POST,
        "/api/devices/scale-01/rotate-key",
        &t.admin,
        None,
        202,
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let keys = loop {
        let v = api
            .must(
                Method::GET,
                "/api/devices/scale-01/keys",
                &t.admin,
                None,
                200,
            )
            .await;
        if v.as_array().unwrap().len() == 2 {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no rotated key: {v}\n{}",
            s.edge.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(keys[0]["from_seq"], 0);
    assert_eq!(
        keys[1]["from_seq"],
        seq + 2,
        "the rotation took seq {}",
        seq + 1
    );
    assert!(!api.audit(&t.admin, "device_key_rotated").await.is_empty());
    let b2 = api.started_batch(&t.operator, "weigh").await;
    s.sim.set_and_settle("1000.10");
    api.must(
        Method::POST,
        &format!("/api/batches/{b2}/steps/weigh/capture"),
        &t.operator,
        Some(json!({})),
        202,
    )
    .await;
    let v = api
        .wait_batch(&t.operator, &b2, Duration::from_secs(20), |v| {
            v["batch"]["cursor"] == 1
        })
        .await
        .unwrap_or_else(|v| panic!("not bound after the rotation: {v}\n{}", s.edge.logs()));
    let e = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "mass_checked")
        .unwrap();
    assert_eq!(e["source"]["sequence"], seq + 2);

    // Configuration and commands reach the agent and the scale.
    api.must(
        Method::PUT,
        "/api/devices/scale-01/config",
        &t.admin,
        Some(json!({ "live_rate_hz": 5.0 })),
        200,
    )
    .await;
    let (st, _) = api
        .call(
            Method::PUT,
            "/api/devices/scale-01/config",
            Some(&t.admin),
            Some(json!({ "live_rate_hz": 500.0 })),
        )
        .await;
    assert_eq!(st, 422);
    wait_for(
        Duration::from_secs(10),
        "the configuration at the agent",
        || {
            s.edge
                .logs()
                .contains("configuration from the cloud")
                .then_some(())
        },
    );
    api.must(
        Method::POST,
        "/api/devices/scale-01/commands",
        &t.admin,
        Some(json!({ "cmd": "tare" })),
        202,
    )
    .await;
    wait_for(Duration::from_secs(10), "the tare at the scale", || {
        s.sim.cmd("status").contains("tare=1000.10").then_some(())
    });
    assert!(!api.audit(&t.admin, "device_command_sent").await.is_empty());
    let (st, _) = api
        .call(
            Method::POST,
            "/api/devices/scale-01/commands",
            Some(&t.operator),
            Some(json!({ "cmd": "zero" })),
        )
        .await;
    assert_eq!(st, 403, "operators do not command devices");

    // A failed routine test: the scale may not decide mass checks; arming says why.
    api.must(
        Method::POST,
        "/api/devices/scale-01/calibrations",
        &t.supervisor,
        Some(json!({ "kind": "routine_test", "outcome": "fail", "performed_at": "2026-11-30T08:00:00Z",
                     "next_due": "2026-12-07", "reference": "E2 weights 1 kg", "performed_by": "QA" })),
        201,
    )
    .await;
    let b3 = api.started_batch(&t.operator, "weigh").await;
    let (st, v) = api
        .call(
            Method::POST,
            &format!("/api/batches/{b3}/steps/weigh/capture"),
            Some(&t.operator),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 409, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("failed its last routine test"),
        "{v}"
    );
    let refused = api.audit(&t.admin, "mass_check_refused").await;
    assert!(!refused.is_empty());
    assert!(device(api, t).await["calibration_problem"]
        .as_str()
        .is_some());

    // The broker will: a killed agent is offline.
    s.edge.stop();
    wait_online(api, t, false).await;
    drop(s.server);
}

/// Two replicas on one database and one Mosquitto share ingest through `$share/…`: every
/// reading is stored once, both replicas take part, and a batch change made on one reaches
/// the other's kiosk stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_ingest_through_a_shared_subscription() {
    let m = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let mut env1 = m.cloud_env();
    env1.push(("METCON_BROKER__CLIENT_ID".into(), "metcon-cloud-1".into()));
    env1.push((
        "METCON_TOKEN_SECRET".into(),
        "a-shared-token-secret-of-32-chars-min".into(),
    ));
    let mut env2 = env1.clone();
    env2[env1.len() - 2].1 = "metcon-cloud-2".into();
    let e1: Vec<(&str, &str)> = env1.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let e2: Vec<(&str, &str)> = env2.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let one = Server::start(&sibling_binary("metcon-cloud").unwrap(), dir.path(), &e1).unwrap();
    let api1 = Api::new(&one.base);
    let t = api1.bootstrap(one.setup_token.as_deref().unwrap()).await;
    // the second replica starts on the same database once it has users
    let two = Server::start(&sibling_binary("metcon-cloud").unwrap(), dir.path(), &e2).unwrap();
    let api2 = Api::new(&two.base);
    let mut sim = Sim::start("mt-sics", &["--capacity", "5000", "--rate", "50"]);
    let code = api1
        .register_device(&t.admin, "scale-01", "mt-sics", &sim.pty)
        .await;
    let mut edge = Edge::enroll(&one.base, &code);
    edge.amend("unit = \"g\"", "unit = \"g\"\npoll_ms = 20");
    let text = std::fs::read_to_string(&edge.config).unwrap();
    std::fs::write(
        &edge.config,
        format!("{text}\n[capture]\nauto_interval_ms = 20\n"),
    )
    .unwrap();
    sim.set_and_settle("500.00");
    edge.start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = api2
            .must(Method::GET, "/api/devices/scale-01", &t.admin, None, 200)
            .await;
        if v["readings"].as_u64().unwrap_or(0) >= 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{v}\n{}",
            edge.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    edge.stop();
    // let what is in flight land
    let mut last = (0, 0);
    for _ in 0..50 {
        let v = api1
            .must(Method::GET, "/api/devices/scale-01", &t.admin, None, 200)
            .await;
        let now = (
            v["readings"].as_u64().unwrap(),
            v["last_seq"].as_u64().unwrap(),
        );
        if now == last {
            break;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (n, last_seq) = last;
    assert_eq!(
        n, last_seq,
        "every sequence number stored once, none missing"
    );
    let s1 = stored(&one.base).await;
    let s2 = stored(&two.base).await;
    assert!(s1 > 0 && s2 > 0, "both replicas store: {s1} and {s2}");
    assert_eq!(s1 + s2, n, "each reading stored by exactly one replica");
}

/// The `stored` count of a replica's ingest, from its Prometheus metrics.
async fn stored(base: &str) -> u64 {
    let body = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .find(|l| l.starts_with("metcon_ingest_readings_total") && l.contains("\"stored\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .map_or(0, |n| n as u64)
}
