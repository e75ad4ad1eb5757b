//! Live updates for kiosks: the current weight and stable state of each station's scale, the
//! devices' presence, armed and bound mass-check steps, and batch changes.
//!
//! One broadcast channel per replica; each Server-Sent Events stream filters it by station.
//! Weights come from the devices' QoS 0 `live` topic and are for display only, never for
//! decisions. Batch changes made on this replica are published here directly and, through
//! the cloud changes topic, on every other replica (see `ingest`). The hub also remembers the
//! last weight and status of every device, for a stream's first frame and the fleet API.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use metcon_shared::mass::MassUnit;
use metcon_shared::topic::DeviceStatus;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

/// Something a kiosk shows as it happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LiveEvent {
    /// The scale's current weight (display only).
    Weight {
        station_id: String,
        device_id: String,
        net: Decimal,
        unit: MassUnit,
        stable: bool,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The device went online or offline, or its status changed.
    Device {
        station_id: String,
        device_id: String,
        online: bool,
        scale_connected: bool,
        outbox_depth: u64,
    },
    /// A signed reading was stored.
    Reading {
        station_id: String,
        device_id: String,
        seq: u64,
        net: Option<Decimal>,
        unit: Option<MassUnit>,
        stable: bool,
    },
    /// A mass-check step was armed, bound, refused or disarmed.
    Arm {
        station_id: String,
        device_id: String,
        batch_id: Uuid,
        step_id: String,
        state: ArmState,
        reason: Option<String>,
    },
    /// A batch changed; `station_id` is where it is now, `from_station` where it was.
    Batch {
        station_id: Option<String>,
        from_station: Option<String>,
        batch_id: Uuid,
        batch_number: String,
        status: String,
        version: u64,
    },
}

/// What replicas tell each other on the cloud changes topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Show this on your kiosks too.
    Live { event: LiveEvent },
    /// Drop what you cached about this device (revoked, rotated, moved).
    Device { device_id: String },
}

/// A [`Change`] with the replica it came from, so a replica ignores its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudChange {
    pub origin: String,
    #[serde(flatten)]
    pub change: Change,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArmState {
    Armed,
    Bound,
    Refused,
    Disarmed,
}

impl LiveEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            LiveEvent::Weight { .. } => "weight",
            LiveEvent::Device { .. } => "device",
            LiveEvent::Reading { .. } => "reading",
            LiveEvent::Arm { .. } => "arm",
            LiveEvent::Batch { .. } => "batch",
        }
    }

    /// Whether a kiosk at `station` wants it.
    pub fn concerns(&self, station: &str) -> bool {
        match self {
            LiveEvent::Weight { station_id, .. }
            | LiveEvent::Device { station_id, .. }
            | LiveEvent::Reading { station_id, .. }
            | LiveEvent::Arm { station_id, .. } => station_id == station,
            LiveEvent::Batch {
                station_id,
                from_station,
                ..
            } => station_id.as_deref() == Some(station) || from_station.as_deref() == Some(station),
        }
    }
}

/// The last status a device published and when it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub station_id: String,
    pub status: DeviceStatus,
    pub received_at: OffsetDateTime,
}

#[derive(Debug, Default)]
struct Memory {
    weights: HashMap<String, LiveEvent>,
    seen: HashMap<String, Seen>,
    /// Devices with an armed step: only their readings go to the binder.
    armed: HashSet<String>,
}

#[derive(Debug)]
pub struct Hub {
    tx: broadcast::Sender<Arc<LiveEvent>>,
    memory: Mutex<Memory>,
    /// Changes to tell the other replicas (drained by ingest when connected).
    outbound: Mutex<Option<mpsc::Sender<Change>>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tx: broadcast::channel(4096).0,
            memory: Mutex::default(),
            outbound: Mutex::new(None),
        }
    }
}

impl Hub {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.tx.subscribe()
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers to this replica's streams.
    pub fn publish(&self, event: LiveEvent) {
        match &event {
            LiveEvent::Weight { device_id, .. } => {
                self.memory()
                    .weights
                    .insert(device_id.clone(), event.clone());
            }
            LiveEvent::Arm {
                device_id, state, ..
            } => {
                let mut m = self.memory();
                if *state == ArmState::Armed {
                    m.armed.insert(device_id.clone());
                } else {
                    m.armed.remove(device_id);
                }
            }
            _ => {}
        }
        let _ = self.tx.send(Arc::new(event));
    }

    fn tell_others(&self, change: Change) {
        if let Some(out) = self
            .outbound
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _ = out.try_send(change);
        }
    }

    /// Delivers here and to the other replicas.
    pub fn publish_everywhere(&self, event: LiveEvent) {
        self.tell_others(Change::Live {
            event: event.clone(),
        });
        self.publish(event);
    }

    /// Tells the other replicas to drop what they cached about a device.
    pub fn device_changed(&self, device_id: &str) {
        self.tell_others(Change::Device {
            device_id: device_id.to_string(),
        });
    }

    /// Where changes for other replicas go (set by ingest).
    pub fn set_outbound(&self, tx: mpsc::Sender<Change>) {
        *self.outbound.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    /// Whether the device has a step waiting for its next stable reading.
    pub fn is_armed(&self, device_id: &str) -> bool {
        self.memory().armed.contains(device_id)
    }

    /// The armed devices as stored, at start.
    pub fn load_armed(&self, devices: impl IntoIterator<Item = String>) {
        self.memory().armed.extend(devices);
    }

    pub fn record_status(&self, device_id: &str, seen: Seen) {
        self.memory().seen.insert(device_id.to_string(), seen);
    }

    pub fn seen(&self, device_id: &str) -> Option<Seen> {
        self.memory().seen.get(device_id).cloned()
    }

    /// The device clock's offset from ours (ours − device's), from its last status.
    pub fn clock_skew(&self, device_id: &str) -> Option<time::Duration> {
        let s = self.seen(device_id)?;
        s.status.device_time.map(|t| s.received_at - t)
    }

    /// What a new stream at `station` shows first: the last weights and device states.
    pub fn snapshot(&self, station: &str) -> Vec<LiveEvent> {
        let m = self.memory();
        let mut out: Vec<LiveEvent> = m
            .seen
            .iter()
            .filter(|(_, s)| s.station_id == station)
            .map(|(id, s)| LiveEvent::Device {
                station_id: s.station_id.clone(),
                device_id: id.clone(),
                online: s.status.presence == metcon_shared::topic::Presence::Online,
                scale_connected: s.status.scale_connected,
                outbox_depth: s.status.outbox_depth,
            })
            .collect();
        out.extend(m.weights.values().filter(|w| w.concerns(station)).cloned());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_get_their_stations_events_and_a_snapshot() {
        let hub = Hub::default();
        let mut rx = hub.subscribe();
        let w = |station: &str| LiveEvent::Weight {
            station_id: station.into(),
            device_id: format!("{station}-scale"),
            net: Decimal::new(14830, 2),
            unit: MassUnit::G,
            stable: true,
            at: OffsetDateTime::UNIX_EPOCH,
        };
        hub.publish(w("receiving"));
        hub.publish(w("casting"));
        let first = rx.try_recv().expect("event");
        assert!(first.concerns("receiving") && !first.concerns("casting"));
        assert_eq!(hub.snapshot("receiving"), vec![w("receiving")]);
        let moved = LiveEvent::Batch {
            station_id: Some("refining".into()),
            from_station: Some("receiving".into()),
            batch_id: Uuid::nil(),
            batch_number: "B-2026-0001".into(),
            status: "in_progress".into(),
            version: 9,
        };
        assert!(moved.concerns("receiving") && moved.concerns("refining"));
        assert!(!moved.concerns("casting"));
        assert_eq!(moved.name(), "batch");
    }
}
