//! An MQTT subscriber that verifies every signed reading and records status, live weight and
//! photos, and can send commands to the device.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use metcon_shared::reading::{self, Reading};
use metcon_shared::topic::{Channel, DeviceStatus, LiveWeight, Presence, Topic};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};

use super::wait_for;

/// Everything the subscriber saw on `…/reading` and `…/status`.
#[derive(Default)]
pub struct Seen {
    /// (seq, envelope bytes) in arrival order.
    pub readings: Vec<(u64, Vec<u8>)>,
    pub decoded: BTreeMap<u64, Reading>,
    pub bad: Vec<String>,
    pub status: Option<DeviceStatus>,
    pub photos: Vec<Vec<u8>>,
    pub live: Vec<LiveWeight>,
    /// Readings that arrived before the device key was known.
    pending: Vec<Vec<u8>>,
    key: Option<VerifyingKey>,
    subscribed: bool,
}

impl Seen {
    fn reading(&mut self, payload: Vec<u8>) {
        let Some(key) = self.key else {
            self.pending.push(payload);
            return;
        };
        match reading::verify(&payload, &key) {
            Ok(r) => {
                self.readings.push((r.seq, payload));
                self.decoded.insert(r.seq, r);
            }
            Err(e) => self.bad.push(e.to_string()),
        }
    }
}

/// An MQTT subscriber (persistent session) that verifies every reading's signature.
pub struct Subscriber {
    pub seen: Arc<Mutex<Seen>>,
    client: AsyncClient,
    rt: tokio::runtime::Runtime,
}

impl Subscriber {
    /// Connects and subscribes (before the agent starts, so nothing is missed); readings
    /// are verified once [`Subscriber::set_key`] has been called.
    pub fn start(port: u16) -> Subscriber {
        // a worker thread of its own, so the event loop runs while the test thread waits
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut opts = MqttOptions::new(format!("test-sub-{port}"), "127.0.0.1", port);
        opts.set_clean_session(false);
        opts.set_keep_alive(Duration::from_secs(2));
        opts.set_max_packet_size(16 << 20, 16 << 20);
        let (client, mut el) = AsyncClient::new(opts, 64);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s = seen.clone();
        let c = client.clone();
        let _guard = rt.enter();
        rt.spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        for ch in [
                            Channel::Reading,
                            Channel::Status,
                            Channel::Photo,
                            Channel::Live,
                        ] {
                            let _ = c
                                .subscribe(Topic::all_devices_filter(ch), QoS::AtLeastOnce)
                                .await;
                        }
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        s.lock().unwrap_or_else(|e| e.into_inner()).subscribed = true;
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let mut seen = s.lock().unwrap_or_else(|e| e.into_inner());
                        match Topic::parse(&p.topic).map(|t| t.channel) {
                            Ok(Channel::Reading) => seen.reading(p.payload.to_vec()),
                            Ok(Channel::Status) => {
                                seen.status = serde_json::from_slice(&p.payload).ok();
                            }
                            Ok(Channel::Photo) => seen.photos.push(p.payload.to_vec()),
                            Ok(Channel::Live) => {
                                if let Ok(l) = serde_json::from_slice(&p.payload) {
                                    seen.live.push(l);
                                }
                            }
                            _ => {}
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let sub = Subscriber { seen, client, rt };
        wait_for(
            Duration::from_secs(10),
            "the test subscriber to subscribe",
            || sub.with(|s| s.subscribed.then_some(())),
        );
        sub
    }

    /// Sets the device key and verifies what arrived before it.
    pub fn set_key(&self, key: VerifyingKey) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.key = Some(key);
        for payload in std::mem::take(&mut seen.pending) {
            seen.reading(payload);
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn wait_presence(&self, want: Presence, limit: Duration) {
        wait_for(limit, &format!("the device to be {want:?}"), || {
            self.with(|s| {
                s.status
                    .as_ref()
                    .is_some_and(|st| st.presence == want)
                    .then_some(())
            })
        });
    }

    pub fn wait_online(&self) {
        wait_for(Duration::from_secs(15), "the device to be online", || {
            self.with(|s| {
                s.status
                    .as_ref()
                    .is_some_and(|st| st.presence == Presence::Online)
                    .then_some(())
            })
        });
    }

    /// Sends a command on the device's `cmd` topic.
    pub fn command(&self, json: &str) {
        let topic = Topic::new(
            metcon_shared::topic::DeviceId::parse("scale-01").expect("id"),
            Channel::Cmd,
        )
        .to_string();
        let c = self.client.clone();
        let payload = json.as_bytes().to_vec();
        self.rt
            .block_on(async move { c.publish(topic, QoS::AtLeastOnce, false, payload).await })
            .expect("publish command");
    }

    /// Checks every sequence number 1..=last arrived, in order of first arrival, each one
    /// only ever with the same bytes; returns the highest.
    pub fn assert_complete(&self) -> u64 {
        self.with(|s| {
            assert!(
                s.bad.is_empty(),
                "readings failed verification: {:?}",
                s.bad
            );
            let mut first_seen = Vec::new();
            let mut bytes: BTreeMap<u64, &Vec<u8>> = BTreeMap::new();
            for (seq, b) in &s.readings {
                match bytes.get(seq) {
                    Some(prev) => assert_eq!(*prev, b, "seq {seq} arrived with different bytes"),
                    None => {
                        bytes.insert(*seq, b);
                        first_seen.push(*seq);
                    }
                }
            }
            let last = first_seen.iter().copied().max().unwrap_or(0);
            let missing: Vec<u64> = (1..=last).filter(|q| !bytes.contains_key(q)).collect();
            assert!(missing.is_empty(), "sequence gaps: {missing:?}");
            last
        })
    }

    /// Like [`Subscriber::assert_complete`], and also strictly in order (no broker restarts).
    pub fn assert_in_order(&self) -> u64 {
        let last = self.assert_complete();
        self.with(|s| {
            let mut seen = std::collections::BTreeSet::new();
            let mut order = Vec::new();
            for (seq, _) in &s.readings {
                if seen.insert(*seq) {
                    order.push(*seq);
                }
            }
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(order, sorted, "readings arrived out of order");
        });
        last
    }
}
