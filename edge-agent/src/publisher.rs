//! The MQTT side of the agent: drains the outbox, publishes live weight and status, and
//! receives commands and configuration.
//!
//! Readings (and their frames) go out QoS 1 in sequence order and leave the outbox only
//! when the broker's PUBACK for every part has arrived. rumqttc reports which packet id each
//! publish got (`Outgoing::Publish`) in the order the requests were made, so a FIFO of tags
//! maps packet ids back to sequence numbers. Each connection gets a fresh client and event
//! loop: after a disconnect everything not acknowledged is simply sent again from the
//! outbox (the cloud de-duplicates on (device, seq)), so no hidden retransmission state is
//! needed. Reconnects back off exponentially up to 10 s. The broker will marks the device
//! offline; a retained status marks it online.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metcon_shared::topic::{
    Channel, DeviceCommand, DeviceConfig, DeviceId, DeviceStatus, LiveWeight, Topic,
    STATUS_HEARTBEAT_SECS,
};
use rumqttc::{
    AsyncClient, Event, EventLoop, Incoming, LastWill, MqttOptions, Outgoing, QoS,
    TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch, Notify};

use crate::config::MqttConfig;
use crate::outbox::{Entry, Outbox};

/// Readings in flight at once.
const WINDOW: usize = 64;

/// What the publisher shares with the rest of the agent.
#[derive(Debug)]
pub struct Channels {
    pub outbox: Arc<Mutex<Outbox>>,
    /// Signalled after each append.
    pub appended: Arc<Notify>,
    pub live: watch::Receiver<Option<LiveWeight>>,
    pub status: watch::Receiver<DeviceStatus>,
    pub commands: mpsc::Sender<DeviceCommand>,
    pub connected: watch::Sender<bool>,
    pub shutdown: watch::Receiver<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Part(u64),
    Untracked,
}

fn lock(o: &Mutex<Outbox>) -> std::sync::MutexGuard<'_, Outbox> {
    o.lock().unwrap_or_else(|p| p.into_inner())
}

/// Builds the client options; fails on unreadable TLS files, so call it at start.
pub fn options(device: &DeviceId, cfg: &MqttConfig) -> anyhow::Result<MqttOptions> {
    let mut o = MqttOptions::new(format!("metcon-edge-{device}"), cfg.host.clone(), cfg.port);
    o.set_keep_alive(cfg.keepalive);
    o.set_clean_session(false);
    o.set_inflight(WINDOW as u16 * 2 + 16);
    o.set_max_packet_size(256 * 1024, 16 * 1024 * 1024);
    o.set_last_will(LastWill::new(
        Topic::new(device.clone(), Channel::Status).to_string(),
        serde_json::to_vec(&DeviceStatus::offline())?,
        QoS::AtLeastOnce,
        true,
    ));
    if let Some((u, p)) = &cfg.credentials {
        o.set_credentials(u.clone(), p.clone());
    }
    if let Some(tls) = &cfg.tls {
        use anyhow::Context;
        let ca = std::fs::read(&tls.ca_file)
            .with_context(|| format!("while reading the broker CA {}", tls.ca_file.display()))?;
        let client_auth = match &tls.client_auth {
            Some((cert, key)) => Some((
                std::fs::read(cert).with_context(|| format!("while reading {}", cert.display()))?,
                std::fs::read(key).with_context(|| format!("while reading {}", key.display()))?,
            )),
            None => None,
        };
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth,
        }));
    }
    Ok(o)
}

/// Runs until shutdown.
pub async fn run(
    device: DeviceId,
    cfg: MqttConfig,
    opts: MqttOptions,
    mut ch: Channels,
) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(100);
    let mut live_rate = cfg.live_rate_hz;
    loop {
        if *ch.shutdown.borrow() {
            return Ok(());
        }
        let (client, eventloop) = AsyncClient::new(opts.clone(), 1024);
        let (ev_tx, ev_rx) = mpsc::channel(1024);
        let pump = tokio::spawn(pump_events(eventloop, ev_tx));
        let outcome = session(&device, &client, ev_rx, &mut ch, &mut live_rate).await;
        pump.abort();
        let _ = ch.connected.send(false);
        match outcome {
            Session::Shutdown => return Ok(()),
            Session::Lost { was_up, reason } => {
                if was_up {
                    backoff = Duration::from_millis(100);
                }
                tracing::warn!(%reason, retry_in = ?backoff, "broker connection lost");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = ch.shutdown.changed() => return Ok(()),
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Forwards event-loop events in order; ends at the first connection error.
async fn pump_events(mut el: EventLoop, tx: mpsc::Sender<Result<Event, String>>) {
    loop {
        match el.poll().await {
            Ok(ev) => {
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e.to_string())).await;
                return;
            }
        }
    }
}

enum Session {
    Shutdown,
    Lost { was_up: bool, reason: String },
}

struct Flight {
    fifo: VecDeque<Tag>,
    by_pkid: HashMap<u16, Tag>,
    /// seq → parts not yet acknowledged
    parts: HashMap<u64, u8>,
    cursor: u64,
}

async fn read_entries(outbox: &Arc<Mutex<Outbox>>, from: u64, limit: usize) -> Vec<Entry> {
    let outbox = outbox.clone();
    tokio::task::spawn_blocking(move || {
        let o = lock(&outbox);
        o.seqs_from(from, limit)
            .into_iter()
            .filter_map(|seq| match o.read(seq) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read outbox entry");
                    None
                }
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

async fn session(
    device: &DeviceId,
    client: &AsyncClient,
    mut events: mpsc::Receiver<Result<Event, String>>,
    ch: &mut Channels,
    live_rate: &mut f64,
) -> Session {
    let topic = |c| Topic::new(device.clone(), c).to_string();
    let reading_topic = topic(Channel::Reading);
    let photo_topic = topic(Channel::Photo);
    let mut up = false;
    let mut f = Flight {
        fifo: VecDeque::new(),
        by_pkid: HashMap::new(),
        parts: HashMap::new(),
        cursor: 0,
    };
    let mut live_tick = tokio::time::interval(live_period(*live_rate));
    let mut status_tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_status: Option<DeviceStatus> = None;
    let mut last_status_at = tokio::time::Instant::now();
    let mut live_open = true;
    let mut last_live: Option<LiveWeight> = None;
    let mut dirty = true;
    loop {
        // fill the window from the outbox, oldest first
        if up && dirty && f.parts.len() < WINDOW {
            let room = WINDOW - f.parts.len();
            let entries = read_entries(&ch.outbox, f.cursor, room).await;
            dirty = entries.len() == room;
            for e in entries {
                let mut n = 1u8;
                if let Some(frame) = e.frame {
                    if client
                        .try_publish(&photo_topic, QoS::AtLeastOnce, false, frame)
                        .is_err()
                    {
                        return Session::Lost {
                            was_up: up,
                            reason: "request queue full".into(),
                        };
                    }
                    f.fifo.push_back(Tag::Part(e.seq));
                    n += 1;
                }
                if client
                    .try_publish(&reading_topic, QoS::AtLeastOnce, false, e.reading)
                    .is_err()
                {
                    return Session::Lost {
                        was_up: up,
                        reason: "request queue full".into(),
                    };
                }
                f.fifo.push_back(Tag::Part(e.seq));
                f.parts.insert(e.seq, n);
                f.cursor = e.seq + 1;
            }
        }
        tokio::select! {
            ev = events.recv() => {
                let ev = match ev {
                    Some(Ok(ev)) => ev,
                    Some(Err(reason)) => return Session::Lost { was_up: up, reason },
                    None => return Session::Lost { was_up: up, reason: "event loop ended".into() },
                };
                match ev {
                    Event::Incoming(Incoming::ConnAck(ack)) => {
                        tracing::info!(session_present = ack.session_present, "connected to the broker");
                        up = true;
                        dirty = true;
                        let _ = ch.connected.send(true);
                        let _ = client.try_subscribe(topic(Channel::Cmd), QoS::AtLeastOnce);
                        let _ = client.try_subscribe(topic(Channel::Config), QoS::AtLeastOnce);
                        let status = ch.status.borrow().clone();
                        if let Ok(bytes) = serde_json::to_vec(&stamped(&status)) {
                            if client.try_publish(topic(Channel::Status), QoS::AtLeastOnce, true, bytes).is_ok() {
                                f.fifo.push_back(Tag::Untracked);
                                last_status = Some(status);
                                last_status_at = tokio::time::Instant::now();
                            }
                        }
                    }
                    Event::Outgoing(Outgoing::Publish(pkid)) => {
                        if let Some(tag) = f.fifo.pop_front() {
                            if pkid != 0 {
                                f.by_pkid.insert(pkid, tag);
                            }
                        }
                    }
                    Event::Incoming(Incoming::PubAck(ack)) => {
                        if let Some(Tag::Part(seq)) = f.by_pkid.remove(&ack.pkid) {
                            let done = match f.parts.get_mut(&seq) {
                                Some(n) => {
                                    *n = n.saturating_sub(1);
                                    *n == 0
                                }
                                None => false,
                            };
                            if done {
                                f.parts.remove(&seq);
                                dirty = true;
                                let outbox = ch.outbox.clone();
                                let removed = tokio::task::spawn_blocking(move || lock(&outbox).remove(seq)).await;
                                match removed {
                                    Ok(Ok(())) => {}
                                    Ok(Err(e)) => tracing::error!(error = %e, seq, "cannot remove acknowledged reading"),
                                    Err(e) => tracing::error!(error = %e, "outbox task failed"),
                                }
                            }
                        }
                    }
                    Event::Incoming(Incoming::Publish(p)) => {
                        match Topic::parse(&p.topic) {
                            Ok(t) if t.device == *device && t.channel == Channel::Cmd => {
                                match serde_json::from_slice::<DeviceCommand>(&p.payload) {
                                    Ok(cmd) => {
                                        tracing::info!(?cmd, "command from the cloud");
                                        if ch.commands.try_send(cmd).is_err() {
                                            tracing::warn!("command dropped: agent busy");
                                        }
                                    }
                                    Err(e) => tracing::warn!(error = %e, "malformed command ignored"),
                                }
                            }
                            Ok(t) if t.device == *device && t.channel == Channel::Config => {
                                match serde_json::from_slice::<DeviceConfig>(&p.payload) {
                                    Ok(rc) if rc.problems().is_empty() => {
                                        if let Some(r) = rc.live_rate_hz {
                                            *live_rate = r;
                                            live_tick = tokio::time::interval(live_period(r));
                                        }
                                        tracing::info!(?rc, "configuration from the cloud");
                                    }
                                    Ok(rc) => tracing::warn!(problems = ?rc.problems(), "configuration ignored"),
                                    Err(e) => tracing::warn!(error = %e, "malformed configuration ignored"),
                                }
                            }
                            _ => tracing::debug!(topic = %p.topic, "message on an unexpected topic ignored"),
                        }
                    }
                    _ => {}
                }
            }
            _ = ch.appended.notified() => dirty = true,
            _ = live_tick.tick(), if up && *live_rate > 0.0 => {
                let live = ch.live.borrow().clone();
                if live.is_some() && live != last_live {
                    if let Some(bytes) = live.as_ref().and_then(|l| serde_json::to_vec(l).ok()) {
                        if client.try_publish(topic(Channel::Live), QoS::AtMostOnce, false, bytes).is_ok() {
                            f.fifo.push_back(Tag::Untracked);
                            last_live = live;
                        }
                    }
                }
            }
            _ = status_tick.tick(), if up => {
                let status = ch.status.borrow().clone();
                let heartbeat = last_status_at.elapsed() >= Duration::from_secs(STATUS_HEARTBEAT_SECS);
                if Some(&status) != last_status.as_ref() || heartbeat {
                    if let Ok(bytes) = serde_json::to_vec(&stamped(&status)) {
                        if client.try_publish(topic(Channel::Status), QoS::AtLeastOnce, true, bytes).is_ok() {
                            f.fifo.push_back(Tag::Untracked);
                            last_status = Some(status);
                            last_status_at = tokio::time::Instant::now();
                        }
                    }
                }
            }
            // a change of the stable flag goes out at once: the kiosk shows "stable" when the
            // scale is, not at the next tick
            changed = ch.live.changed(), if up && live_open && *live_rate > 0.0 => {
                if changed.is_err() {
                    live_open = false;
                    continue;
                }
                let live = ch.live.borrow().clone();
                let flipped = match (&live, &last_live) {
                    (Some(a), Some(b)) => a.stable != b.stable,
                    (Some(_), None) => true,
                    _ => false,
                };
                if flipped {
                    if let Some(bytes) = live.as_ref().and_then(|l| serde_json::to_vec(l).ok()) {
                        if client.try_publish(topic(Channel::Live), QoS::AtMostOnce, false, bytes).is_ok() {
                            f.fifo.push_back(Tag::Untracked);
                            last_live = live;
                        }
                    }
                }
            }
            _ = ch.shutdown.changed() => {
                // say goodbye properly so the retained status is "offline" without the will
                if up {
                    if let Ok(bytes) = serde_json::to_vec(&DeviceStatus::offline()) {
                        let _ = client.try_publish(topic(Channel::Status), QoS::AtLeastOnce, true, bytes);
                    }
                    let _ = client.try_disconnect();
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                    while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, events.recv()).await {}
                }
                return Session::Shutdown;
            }
        }
    }
}

/// The status as published: with the agent's version and its clock at this moment.
fn stamped(status: &DeviceStatus) -> DeviceStatus {
    DeviceStatus {
        agent_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        device_time: Some(time::OffsetDateTime::now_utc()),
        ..status.clone()
    }
}

fn live_period(rate: f64) -> Duration {
    if rate > 0.0 {
        Duration::from_secs_f64(1.0 / rate)
    } else {
        Duration::from_secs(3600)
    }
}
