//! Ingest: what arrives from the devices over MQTT, and what the replicas tell each other.
//!
//! One MQTT connection per replica (persistent session, manual acknowledgements). Signed
//! readings and photos come through shared subscriptions (`$share/{group}/…`), so N replicas
//! split the load and each message is stored once; they go through the [`pipeline`] and are
//! acknowledged only once stored (to an external broker; through the embedded one the
//! devices' PUBACKs wait instead, `broker::receipts`). Live weight, device status and the cloud changes topic are
//! plain subscriptions, so every replica's kiosks see them. Stable readings of armed devices
//! go to the binder ([`binding`]). The connection is re-established with backoff, forever.

pub mod binding;
pub mod cross_check;
pub mod pipeline;
pub mod registry;

use std::time::{Duration, Instant};

use metcon_shared::topic::{Channel, DeviceStatus, LiveWeight, Presence, Topic, CLOUD_CHANGES};
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, Publish, QoS, SubscribeFilter};
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};

use crate::http::AppState;
use crate::live::{Change, CloudChange, LiveEvent, Seen};
use crate::store::devices;

/// Largest live or status message read.
const MAX_SMALL: usize = 4096;

/// Readings and photos through a shared subscription when replicas share an external broker
/// (`group`); a plain one on the embedded broker, where this replica is the only consumer
/// (rumqttd's shared-subscription delivery stalled under a burst in the ingest benchmark).
fn subscriptions(group: Option<&str>) -> Vec<SubscribeFilter> {
    let all = Topic::all_devices_filter;
    let shared = |filter: String| match group {
        Some(g) => format!("$share/{g}/{filter}"),
        None => filter,
    };
    vec![
        SubscribeFilter::new(shared(all(Channel::Reading)), QoS::AtLeastOnce),
        SubscribeFilter::new(shared(all(Channel::Photo)), QoS::AtLeastOnce),
        SubscribeFilter::new(all(Channel::Status), QoS::AtLeastOnce),
        SubscribeFilter::new(all(Channel::Live), QoS::AtMostOnce),
        SubscribeFilter::new(CLOUD_CHANGES.to_string(), QoS::AtMostOnce),
    ]
}

/// Starts the pipeline, the binder and the MQTT loop. `client` is the one `AppState` holds
/// for commands to devices; `eventloop` is its connection.
pub async fn spawn(
    state: AppState,
    client: AsyncClient,
    eventloop: EventLoop,
    shutdown: watch::Receiver<bool>,
) {
    match state.store.list_arms().await {
        Ok(arms) => state.hub.load_armed(arms.into_iter().map(|a| a.device_id)),
        Err(e) => tracing::error!(error = %e, "cannot load armed steps"),
    }
    // Unbounded on purpose: the MQTT loop must never wait on the pipeline, because the
    // pipeline's acknowledgements go out through that same loop (a bounded queue here
    // deadlocks under a burst: loop waits for the pipeline, pipeline waits for its acks to be
    // sent). What can queue is bounded by the broker anyway: it sends at most its in-flight
    // window of QoS 1 messages before our acknowledgements, which come after the commit
    // (external broker), or the gate's backlog limit (embedded, acknowledged on taking).
    let (items_tx, items_rx) = mpsc::unbounded_channel();
    let (bind_tx, bind_rx) = mpsc::channel(1024);
    let (changes_tx, changes_rx) = mpsc::channel(1024);
    state.hub.set_outbound(changes_tx);
    tokio::spawn(pipeline::run(
        state.clone(),
        client.clone(),
        items_rx,
        bind_tx,
    ));
    tokio::spawn(binding::run(state.clone(), bind_rx));
    tokio::spawn(tell_replicas(
        state.config.broker.client_id.clone(),
        client.clone(),
        changes_rx,
    ));
    tokio::spawn(mqtt_loop(state, client, eventloop, items_tx, shutdown));
}

async fn tell_replicas(origin: String, client: AsyncClient, mut rx: mpsc::Receiver<Change>) {
    while let Some(change) = rx.recv().await {
        let msg = CloudChange {
            origin: origin.clone(),
            change,
        };
        if let Ok(bytes) = serde_json::to_vec(&msg) {
            let _ = client.try_publish(CLOUD_CHANGES, QoS::AtMostOnce, false, bytes);
        }
    }
}

async fn mqtt_loop(
    state: AppState,
    client: AsyncClient,
    mut eventloop: EventLoop,
    items: mpsc::UnboundedSender<pipeline::Item>,
    mut shutdown: watch::Receiver<bool>,
) {
    let group = state.config.broker.share_group.clone();
    let mut backoff = Duration::from_millis(100);
    loop {
        let ev = tokio::select! {
            ev = eventloop.poll() => ev,
            _ = shutdown.changed() => {
                let _ = client.try_disconnect();
                return;
            }
        };
        match ev {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                backoff = Duration::from_millis(100);
                tracing::info!(
                    session_present = ack.session_present,
                    "ingest connected to the broker"
                );
                let shared = (state.config.broker.mode == crate::config::BrokerMode::External)
                    .then_some(group.as_str());
                if let Err(e) = client.subscribe_many(subscriptions(shared)).await {
                    tracing::error!(error = %e, "cannot subscribe");
                }
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => dispatch(&state, &client, &items, p).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "ingest lost the broker");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn dispatch(
    state: &AppState,
    client: &AsyncClient,
    items: &mpsc::UnboundedSender<pipeline::Item>,
    p: Publish,
) {
    if p.topic == CLOUD_CHANGES {
        on_change(state, &p.payload);
        return;
    }
    let channel = Topic::parse(&p.topic).map(|t| (t.device, t.channel));
    match channel {
        Ok((_, Channel::Reading | Channel::Photo)) => {
            let item = pipeline::Item {
                publish: p,
                received: Instant::now(),
                received_at: OffsetDateTime::now_utc(),
            };
            if items.send(item).is_err() {
                tracing::error!("the ingest pipeline stopped");
            }
        }
        Ok((device, Channel::Live)) => {
            if p.payload.len() <= MAX_SMALL {
                on_live(state, device.as_str(), &p.payload).await;
            }
        }
        Ok((device, Channel::Status)) => {
            if p.payload.len() <= MAX_SMALL {
                on_status(state, device.as_str(), &p.payload).await;
            }
            let _ = client.ack(&p).await;
        }
        _ => {
            tracing::debug!(topic = %p.topic, "message on an unexpected topic ignored");
            if p.qos != QoS::AtMostOnce {
                let _ = client.ack(&p).await;
            }
        }
    }
}

fn on_change(state: &AppState, payload: &[u8]) {
    let Ok(msg) = serde_json::from_slice::<CloudChange>(payload) else {
        return;
    };
    if msg.origin == state.config.broker.client_id {
        return;
    }
    match msg.change {
        Change::Live { event } => state.hub.publish(event),
        Change::Device { device_id } => state.directory.invalidate(&device_id),
    }
}

async fn station_of(state: &AppState, device: &str) -> Option<String> {
    match state.directory.get(state.store.as_ref(), device).await {
        Ok(Some(a)) if a.state == devices::DeviceState::Active => Some(a.station_id.clone()),
        _ => None,
    }
}

async fn on_live(state: &AppState, device: &str, payload: &[u8]) {
    let Ok(w) = serde_json::from_slice::<LiveWeight>(payload) else {
        metrics::counter!("metcon_ingest_live_malformed_total").increment(1);
        return;
    };
    let Some(station_id) = station_of(state, device).await else {
        return;
    };
    state.hub.publish(LiveEvent::Weight {
        station_id,
        device_id: device.to_string(),
        net: w.net,
        unit: w.unit,
        stable: w.stable,
        at: OffsetDateTime::now_utc(),
    });
}

async fn on_status(state: &AppState, device: &str, payload: &[u8]) {
    let Ok(status) = serde_json::from_slice::<DeviceStatus>(payload) else {
        metrics::counter!("metcon_ingest_status_malformed_total").increment(1);
        return;
    };
    let Some(station_id) = station_of(state, device).await else {
        return;
    };
    let now = OffsetDateTime::now_utc();
    state.hub.record_status(
        device,
        Seen {
            station_id: station_id.clone(),
            status: status.clone(),
            received_at: now,
        },
    );
    state.hub.publish(LiveEvent::Device {
        station_id,
        device_id: device.to_string(),
        online: status.presence == Presence::Online,
        scale_connected: status.scale_connected,
        outbox_depth: status.outbox_depth,
    });
    let presence = devices::Presence {
        device_id: device.to_string(),
        status,
        received_at: now,
    };
    if let Err(e) = state.store.record_presence(&presence).await {
        tracing::warn!(error = %e, device, "cannot record presence");
    }
}
