//! What a hostile or broken device can do, and what the cloud does about it: tampered
//! signatures, a wrong key, a replayed sequence number, a revoked device, publishing on another
//! device's topic, an oversized payload and a malformed envelope. Each is rejected and audited
//! with its reason, nothing of it is stored, and the pipeline keeps storing good readings.
//!
//! The "device" here is the test itself: it enrolls through the real API with its own
//! Ed25519 key and speaks MQTT to the real broker (the embedded gate, or Mosquitto with the
//! shipped configuration), so every message crosses the same path a real agent's would.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ed25519_dalek::SigningKey;
use metcon_e2e::api::{Api, Tokens};
use metcon_e2e::mosquitto::{self, Mosquitto};
use metcon_e2e::{sibling_binary, Server};
use metcon_shared::device::EnrollResponse;
use metcon_shared::mass::MassUnit;
use metcon_shared::reading::{sign, Measurement, Reading, FORMAT_VERSION};
use metcon_shared::topic::DeviceId;
use reqwest::Method;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, TlsConfiguration, Transport};
use serde_json::{json, Value};
use time::OffsetDateTime;

struct Device {
    id: String,
    key: SigningKey,
    creds: EnrollResponse,
}

async fn enroll(api: &Api, t: &Tokens, id: &str, seed: u8) -> Device {
    let code = api
        .register_device(&t.admin, id, "mt-sics", "/dev/null")
        .await;
    let key = SigningKey::from_bytes(&[seed; 32]);
    let (s, v) = api
        .call(
            Method::POST,
            "/api/enroll",
            None,
            Some(json!({ "code": code, "public_key": hex::encode(key.verifying_key().to_bytes()), "agent_version": "test" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    Device {
        id: id.into(),
        key,
        creds: serde_json::from_value(v).unwrap(),
    }
}

fn reading(device: &str, seq: u64, net: &str) -> Reading {
    Reading {
        v: FORMAT_VERSION,
        device: DeviceId::parse(device).unwrap(),
        seq,
        measurement: Measurement::Weight {
            net: rust_decimal::Decimal::from_str_exact(net).unwrap(),
            gross: None,
            tare: None,
            unit: MassUnit::G,
            stable: true,
        },
        scale_serial: None,
        raw_line: format!("S S {net} g"),
        device_time: OffsetDateTime::now_utc(),
        frame_sha256: None,
        capture_request: None,
    }
}

fn topic(device: &str) -> String {
    format!("metcon/v1/dev/{device}/reading")
}

/// Connects as `user`, publishes each payload with QoS 1 and waits for the acknowledgements
/// (or for the broker to close the connection). Returns whether the login was accepted.
async fn publish(
    broker: (&str, u16, Option<&std::path::Path>),
    client_id: &str,
    user: &str,
    password: &str,
    messages: &[(String, Vec<u8>)],
) -> bool {
    let mut o = MqttOptions::new(client_id, broker.0, broker.1);
    o.set_credentials(user, password);
    o.set_keep_alive(Duration::from_secs(5));
    o.set_max_packet_size(1 << 20, 1 << 20);
    if let Some(ca) = broker.2 {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca: std::fs::read(ca).unwrap(),
            alpn: None,
            client_auth: None,
        }));
    }
    let (client, mut events) = AsyncClient::new(o, 64);
    let mut acked = 0;
    let accepted = tokio::time::timeout(Duration::from_secs(10), async {
        let mut accepted = false;
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    accepted = true;
                    for (t, p) in messages {
                        client
                            .publish(t.clone(), QoS::AtLeastOnce, false, p.clone())
                            .await
                            .unwrap();
                    }
                    if messages.is_empty() {
                        return accepted;
                    }
                }
                Ok(Event::Incoming(Incoming::PubAck(_))) => {
                    acked += 1;
                    if acked == messages.len() {
                        return accepted;
                    }
                }
                Ok(_) => {}
                Err(_) => return accepted,
            }
        }
    })
    .await
    .unwrap_or(false);
    let _ = client.disconnect().await;
    accepted
}

async fn stored(api: &Api, t: &Tokens, device: &str) -> Vec<Value> {
    api.must(
        Method::GET,
        &format!("/api/devices/{device}/readings?limit=500"),
        &t.admin,
        None,
        200,
    )
    .await
    .as_array()
    .unwrap()
    .clone()
}

/// Waits until an audit record `action` with `reason` exists.
async fn audited(api: &Api, t: &Tokens, action: &str, reason: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let found = api
            .audit(&t.admin, action)
            .await
            .into_iter()
            .find(|r| r["details"]["reason"] == reason);
        if let Some(r) = found {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {action} audit with reason {reason}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_stored(api: &Api, t: &Tokens, device: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let s = stored(api, t, device).await;
        if s.len() == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{device}: expected {n} readings, have {}: {s:?}",
            s.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_are_rejected_audited_and_do_not_stop_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&sibling_binary("metcon-cloud").unwrap(), dir.path(), &[]).unwrap();
    let api = Api::new(&server.base);
    let t = api.bootstrap(server.setup_token.as_deref().unwrap()).await;
    let a = enroll(&api, &t, "scale-a", 1).await;
    let b = enroll(&api, &t, "scale-b", 2).await;
    let gate = server.broker.clone().unwrap();
    let (host, port) = gate.rsplit_once(':').unwrap();
    let broker = (host, port.parse::<u16>().unwrap(), None);
    let login = |d: &Device| {
        (
            format!("metcon-edge-{}", d.id),
            d.creds.username.clone(),
            d.creds.password.clone(),
        )
    };

    // a good reading is stored
    let good = sign(&reading("scale-a", 1, "148.30"), &a.key)
        .unwrap()
        .into_bytes();
    let (cid, u, p) = login(&a);
    assert!(publish(broker, &cid, &u, &p, &[(topic("scale-a"), good.clone())]).await);
    wait_stored(&api, &t, "scale-a", 1).await;

    // tampered signature, wrong key, malformed envelope, replayed sequence, exact re-delivery
    let mut tampered = sign(&reading("scale-a", 2, "148.30"), &a.key)
        .unwrap()
        .into_bytes();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x55;
    let wrong_key = sign(
        &reading("scale-a", 3, "148.30"),
        &SigningKey::from_bytes(&[9; 32]),
    )
    .unwrap()
    .into_bytes();
    let replay = sign(&reading("scale-a", 1, "999.99"), &a.key)
        .unwrap()
        .into_bytes();
    let messages = vec![
        (topic("scale-a"), tampered),
        (topic("scale-a"), wrong_key),
        (topic("scale-a"), b"\xd2\x84 not a COSE envelope".to_vec()),
        (topic("scale-a"), replay),
        (topic("scale-a"), good.clone()),
    ];
    assert!(publish(broker, &cid, &u, &p, &messages).await);
    for reason in ["bad_signature", "malformed", "replayed_sequence"] {
        audited(&api, &t, "reading_rejected", reason).await;
    }
    let rejected_sigs = api
        .audit(&t.admin, "reading_rejected")
        .await
        .into_iter()
        .filter(|r| r["details"]["reason"] == "bad_signature")
        .count();
    assert_eq!(rejected_sigs, 2, "tampered and wrong-key readings");
    let s = stored(&api, &t, "scale-a").await;
    assert_eq!(s.len(), 1, "only the good reading: {s:?}");
    assert_eq!(s[0]["reading"]["measurement"]["weight"]["net"], "148.30");

    // publishing on another device's topic: refused at the gate, audited, connection closed
    let forged = sign(&reading("scale-b", 1, "1.00"), &a.key)
        .unwrap()
        .into_bytes();
    publish(broker, &cid, &u, &p, &[(topic("scale-b"), forged)]).await;
    let r = audited(&api, &t, "broker_access_refused", "acl_violation").await;
    assert_eq!(r["target"], "device:scale-a");
    assert!(stored(&api, &t, "scale-b").await.is_empty());

    // an oversized payload
    publish(
        broker,
        &cid,
        &u,
        &p,
        &[(topic("scale-a"), vec![0u8; 20 * 1024])],
    )
    .await;
    audited(&api, &t, "broker_access_refused", "oversized").await;

    // another device's password, or a wrong client id, do not get in
    assert!(!publish(broker, &cid, &u, &b.creds.password, &[]).await);
    audited(&api, &t, "broker_access_refused", "bad_password").await;
    assert!(!publish(broker, "metcon-edge-scale-b", &u, &p, &[]).await);
    audited(&api, &t, "broker_access_refused", "bad_client_id").await;

    // revocation: B's connection is closed at once and it cannot log in again
    let (bcid, bu, bp) = login(&b);
    let mut o = MqttOptions::new(bcid.clone(), host, broker.1);
    o.set_credentials(bu.clone(), bp.clone());
    let (client_b, mut events_b) = AsyncClient::new(o, 16);
    let connected = async {
        loop {
            if let Ok(Event::Incoming(Incoming::ConnAck(_))) = events_b.poll().await {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), connected)
        .await
        .unwrap();
    api.must(
        Method::POST,
        "/api/devices/scale-b/revoke",
        &t.admin,
        Some(json!({ "reason": "stolen" })),
        200,
    )
    .await;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if events_b.poll().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the revoked device's connection stays open");
    drop(client_b);
    let b_reading = sign(&reading("scale-b", 1, "2.00"), &b.key)
        .unwrap()
        .into_bytes();
    assert!(!publish(broker, &bcid, &bu, &bp, &[(topic("scale-b"), b_reading)]).await);
    audited(&api, &t, "broker_access_refused", "revoked").await;
    assert!(stored(&api, &t, "scale-b").await.is_empty());

    // and the pipeline still stores good readings
    let next = sign(&reading("scale-a", 2, "150.00"), &a.key)
        .unwrap()
        .into_bytes();
    assert!(publish(broker, &cid, &u, &p, &[(topic("scale-a"), next)]).await);
    wait_stored(&api, &t, "scale-a", 2).await;
    let v = api
        .must(Method::GET, "/api/audit/verify", &t.admin, None, 200)
        .await;
    assert_eq!(v["ok"], true, "{v}");
}

/// With Mosquitto the broker's ACL drops another device's topic, and a reading of a revoked
/// device that still reaches the broker (here: published with the cloud's own login) is
/// refused by ingest, because revocation also ends signature acceptance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_acls_and_revoked_signatures() {
    let m = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let env = m.cloud_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start(&sibling_binary("metcon-cloud").unwrap(), dir.path(), &env).unwrap();
    let api = Api::new(&server.base);
    let t = api.bootstrap(server.setup_token.as_deref().unwrap()).await;
    let a = enroll(&api, &t, "scale-a", 1).await;
    let b = enroll(&api, &t, "scale-b", 2).await;
    assert!(a.creds.broker.tls && a.creds.broker.ca_pem.is_some());
    let ca = m.ca_file();
    let broker = ("127.0.0.1", m.port, Some(ca.as_path()));

    let good = sign(&reading("scale-a", 1, "148.30"), &a.key)
        .unwrap()
        .into_bytes();
    assert!(
        publish(
            broker,
            "metcon-edge-scale-a",
            "scale-a",
            &a.creds.password,
            &[(topic("scale-a"), good)]
        )
        .await
    );
    wait_stored(&api, &t, "scale-a", 1).await;

    // A on B's topic: Mosquitto's ACL drops it
    let forged = sign(&reading("scale-b", 1, "1.00"), &a.key)
        .unwrap()
        .into_bytes();
    publish(
        broker,
        "metcon-edge-scale-a",
        "scale-a",
        &a.creds.password,
        &[(topic("scale-b"), forged)],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(stored(&api, &t, "scale-b").await.is_empty());
    // the broker dropped it: had it reached ingest, it would have been rejected and audited
    let reached = api
        .audit(&t.admin, "reading_rejected")
        .await
        .into_iter()
        .any(|r| r["target"] == "device:scale-b");
    assert!(
        !reached,
        "the ACL let a publish on another device's topic through"
    );

    // revoke B, then inject a B-signed reading with the cloud's login
    api.must(
        Method::POST,
        "/api/devices/scale-b/revoke",
        &t.admin,
        Some(json!({ "reason": "stolen" })),
        200,
    )
    .await;
    assert!(
        !publish(
            broker,
            "metcon-edge-scale-b",
            "scale-b",
            &b.creds.password,
            &[]
        )
        .await,
        "B still logs in"
    );
    let b_reading = sign(&reading("scale-b", 1, "2.00"), &b.key)
        .unwrap()
        .into_bytes();
    assert!(
        publish(
            broker,
            "metcon-test-injector",
            mosquitto::CLOUD_USER,
            mosquitto::CLOUD_PASSWORD,
            &[(topic("scale-b"), b_reading)]
        )
        .await
    );
    audited(&api, &t, "reading_rejected", "revoked").await;
    assert!(stored(&api, &t, "scale-b").await.is_empty());
}
