//! Back-pressure between the embedded broker's gate and this replica's ingest.
//!
//! rumqttd acknowledges a QoS 1 PUBLISH once the message is in its in-memory log, and that
//! log is bounded: when the consumer (ingest) falls further behind than the log holds, the
//! oldest segment is dropped, and with it readings the devices already deleted from their
//! outboxes. So the gate counts the readings and photos it relays, ingest counts the ones it
//! has stored and acknowledged, and the gate stops reading from device sockets while the
//! difference is at the limit. TCP then pushes back to the devices, whose durable outboxes
//! hold the readings until there is room: nothing is lost, a burst (every device draining a
//! backlog after an outage) is only spread out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Units in flight between the gate and a stored commit: a reading is one unit, a photo
/// [`PHOTO_WEIGHT`]. Together with the embedded broker's log size (`embedded::start`) this
/// keeps what is in flight well inside the log: 8,192 readings (~4 MiB) or 8 photos.
pub const DEFAULT_LIMIT: u64 = 8_192;

/// A photo weighs as much as this many readings (it may be megabytes).
pub const PHOTO_WEIGHT: u64 = 1_024;

/// The weight of one message on a device channel, the same on both sides of the broker.
pub fn weight(channel: metcon_shared::topic::Channel) -> u64 {
    use metcon_shared::topic::Channel;
    match channel {
        Channel::Reading => 1,
        Channel::Photo => PHOTO_WEIGHT,
        _ => 0,
    }
}

/// How long the gate waits for room before it lets a message through anyway: a counting
/// error (a message ingest never saw, e.g. after a restart) must not stall devices for ever.
const MAX_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Backlog {
    relayed: AtomicU64,
    stored: AtomicU64,
    limit: u64,
    max_wait: Duration,
    room: Notify,
}

impl Backlog {
    pub fn new(limit: u64) -> Backlog {
        Backlog::with_max_wait(limit, MAX_WAIT)
    }

    fn with_max_wait(limit: u64, max_wait: Duration) -> Backlog {
        Backlog {
            relayed: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            limit: limit.max(1),
            max_wait,
            room: Notify::new(),
        }
    }

    /// Messages relayed and not yet stored.
    pub fn in_flight(&self) -> u64 {
        self.relayed
            .load(Ordering::Acquire)
            .saturating_sub(self.stored.load(Ordering::Acquire))
    }

    /// Waits until `n` more messages fit, then counts them as relayed.
    pub async fn admit(&self, n: u64) {
        if n == 0 {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.max_wait;
        if self.in_flight() + n > self.limit {
            // How often a device's socket was held back: operators see ingest falling behind.
            metrics::counter!("metcon_broker_backlog_waits_total").increment(1);
        }
        while self.in_flight() + n > self.limit {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.in_flight() + n <= self.limit {
                break;
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                metrics::counter!("metcon_broker_backlog_timeouts_total").increment(1);
                tracing::warn!(
                    in_flight = self.in_flight(),
                    limit = self.limit,
                    "ingest has not caught up in time; relaying anyway"
                );
                break;
            }
        }
        self.relayed.fetch_add(n, Ordering::AcqRel);
        metrics::gauge!("metcon_broker_backlog").set(self.in_flight() as f64);
    }

    /// Ingest stored (or refused, or found duplicate) `n` messages and acknowledged them.
    pub fn stored(&self, n: u64) {
        self.stored.fetch_add(n, Ordering::AcqRel);
        self.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn admits_up_to_the_limit_then_waits_for_stored_messages() {
        let b = Arc::new(Backlog::new(3));
        b.admit(3).await;
        assert_eq!(b.in_flight(), 3);
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.admit(2).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "no room yet");
        b.stored(1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "room for one, two asked");
        b.stored(1);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("admitted once there is room")
            .expect("no panic");
        assert_eq!(b.in_flight(), 3);
    }

    #[tokio::test]
    async fn a_miscount_delays_but_never_stalls() {
        let wait = Duration::from_millis(200);
        let b = Backlog::with_max_wait(1, wait);
        b.admit(1).await;
        let t = tokio::time::Instant::now();
        b.admit(1).await;
        assert!(t.elapsed() >= wait);
        assert_eq!(b.in_flight(), 2);
    }
}
