//! Durable acknowledgements through the embedded broker: a device's PUBACK means "stored".
//!
//! rumqttd acknowledges a QoS 1 PUBLISH as soon as the message is in its log, and that log
//! is memory. A device deletes a reading from its outbox on the PUBACK, so a crash of this
//! process between rumqttd's acknowledgement and ingest's commit lost readings the devices
//! considered delivered (a crash test lost 7,671 of 20,000). So the gate holds the PUBACK of
//! every reading and photo until ingest has finished with that very message (stored, or
//! refused and audited, or recognised as a duplicate). Until then the device keeps it, and
//! after a crash it sends it again, as MQTT's at-least-once delivery intends.
//!
//! With the guarantee at the device, ingest acknowledges rumqttd as soon as it takes a
//! message, so rumqttd's fixed window of 100 unacknowledged messages per subscriber no longer
//! paces ingest to one group per commit.
//!
//! A message is known by a keyed 64-bit hash of its topic and payload: the gate sees the raw
//! PUBLISH and ingest the decoded one, and both have exactly these bytes. The key is random
//! per process, so a device cannot make two of its messages collide on purpose; a chance
//! collision would release one PUBACK early, which is what every PUBACK did before.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use tokio::sync::oneshot;

/// What identifies one message between the gate and ingest.
pub type Key = u64;

#[derive(Debug, Default)]
pub struct Receipts {
    hasher: RandomState,
    waiting: Mutex<HashMap<Key, Vec<oneshot::Sender<()>>>>,
}

impl Receipts {
    pub fn new() -> Receipts {
        Receipts::default()
    }

    pub fn key(&self, topic: &str, payload: &[u8]) -> Key {
        self.hasher.hash_one((topic, payload))
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Vec<oneshot::Sender<()>>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The gate is about to relay this message: the receiver resolves once ingest has
    /// finished with it. Call before relaying, so ingest cannot finish first.
    pub fn expect(&self, key: Key) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.waiting().entry(key).or_default().push(tx);
        metrics::gauge!("metcon_broker_receipts_waiting").increment(1.0);
        rx
    }

    /// Ingest has committed the message (or its refusal): its PUBACKs may go.
    pub fn done(&self, key: Key) {
        let Some(senders) = self.waiting().remove(&key) else {
            return;
        };
        metrics::gauge!("metcon_broker_receipts_waiting").decrement(senders.len() as f64);
        for tx in senders {
            let _ = tx.send(());
        }
    }

    /// The gate stopped waiting (its connection ended): drops the waits nobody listens to.
    pub fn forget(&self, key: Key) {
        let mut waiting = self.waiting();
        if let Some(senders) = waiting.get_mut(&key) {
            let before = senders.len();
            senders.retain(|tx| !tx.is_closed());
            metrics::gauge!("metcon_broker_receipts_waiting")
                .decrement((before - senders.len()) as f64);
            if senders.is_empty() {
                waiting.remove(&key);
            }
        }
    }

    /// Waits not yet resolved (operators see the gauge `metcon_broker_receipts_waiting`).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting().values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_resolves_its_waits_only() {
        let r = Receipts::new();
        let a = r.key("metcon/v1/dev/a/reading", b"one");
        let b = r.key("metcon/v1/dev/a/reading", b"two");
        assert_ne!(a, b);
        assert_eq!(a, r.key("metcon/v1/dev/a/reading", b"one"));
        assert_ne!(a, r.key("metcon/v1/dev/b/reading", b"one"));
        let mut wa = r.expect(a);
        let mut wa2 = r.expect(a);
        let mut wb = r.expect(b);
        r.done(a);
        assert!(wa.try_recv().is_ok());
        assert!(
            wa2.try_recv().is_ok(),
            "a message sent twice is released twice"
        );
        assert!(wb.try_recv().is_err());
        assert_eq!(r.len(), 1);
        // done before anyone waits (another replica's message) is a no-op
        r.done(r.key("x", b"y"));
        drop(wb);
        r.forget(b);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn forgetting_keeps_the_waits_someone_still_listens_to() {
        let r = Receipts::new();
        let k = r.key("t", b"p");
        let gone = r.expect(k);
        let mut kept = r.expect(k);
        drop(gone);
        r.forget(k);
        assert_eq!(r.len(), 1);
        r.done(k);
        assert!(kept.try_recv().is_ok());
    }
}
