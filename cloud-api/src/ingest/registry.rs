//! What ingest needs to know about each device, cached: its state, its station, and its keys
//! by the sequence number they start at.
//!
//! The cache is filled from the store on first use and dropped for a device whenever it
//! changes (enrollment, revocation, key rotation, a new station): [`Directory::invalidate`]
//! is called by the replica that made the change and, through the cloud changes topic, by
//! every other replica. So a revoked device's next message is refused everywhere.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ed25519_dalek::VerifyingKey;

use crate::store::devices::DeviceState;
use crate::store::{Store, StoreResult};

/// A device as ingest sees it.
#[derive(Debug, Clone)]
pub struct DeviceAuth {
    pub state: DeviceState,
    pub station_id: String,
    /// `(from_seq, key)`, ascending.
    pub keys: Vec<(u64, VerifyingKey)>,
}

impl DeviceAuth {
    /// The key that signs entry `seq`: the newest one starting at or before it.
    pub fn key_for(&self, seq: u64) -> Option<&VerifyingKey> {
        self.keys
            .iter()
            .rev()
            .find(|(from, _)| *from <= seq)
            .map(|(_, k)| k)
    }
}

#[derive(Debug, Default)]
pub struct Directory {
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    devices: HashMap<String, Option<Arc<DeviceAuth>>>,
    /// Counts invalidations. A load that started before one must not fill the cache: it may
    /// have read the device as it was before the change (still active, the old key), and
    /// would otherwise keep that until the next change.
    generation: u64,
}

impl Directory {
    /// The device, or `None` if it is not registered.
    pub async fn get(&self, store: &dyn Store, id: &str) -> StoreResult<Option<Arc<DeviceAuth>>> {
        let started = match self.lock().lookup(id) {
            Ok(hit) => return Ok(hit),
            Err(generation) => generation,
        };
        let found = match store.device(id).await? {
            None => None,
            Some(d) => {
                let keys = store
                    .device_keys(id)
                    .await?
                    .into_iter()
                    .filter_map(|k| k.public_key.verifying_key().ok().map(|vk| (k.from_seq, vk)))
                    .collect();
                Some(Arc::new(DeviceAuth {
                    state: d.state,
                    station_id: d.station_id,
                    keys,
                }))
            }
        };
        self.lock().fill(id, &found, started);
        Ok(found)
    }

    pub fn invalidate(&self, id: &str) {
        self.lock().invalidate(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Cache {
    /// The cached entry, or the generation a load starts at.
    fn lookup(&self, id: &str) -> Result<Option<Arc<DeviceAuth>>, u64> {
        self.devices.get(id).cloned().ok_or(self.generation)
    }

    /// Keeps what a load that started at generation `started` found, unless the cache was
    /// invalidated since.
    fn fill(&mut self, id: &str, found: &Option<Arc<DeviceAuth>>, started: u64) {
        if self.generation == started {
            self.devices.insert(id.to_string(), found.clone());
        }
    }

    fn invalidate(&mut self, id: &str) {
        self.devices.remove(id);
        self.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn the_key_for_a_sequence_is_the_newest_that_started_before_it() {
        let k = |b| SigningKey::from_bytes(&[b; 32]).verifying_key();
        let auth = DeviceAuth {
            state: DeviceState::Active,
            station_id: "receiving".into(),
            keys: vec![(0, k(1)), (10, k(2)), (25, k(3))],
        };
        assert_eq!(auth.key_for(1), Some(&k(1)));
        assert_eq!(auth.key_for(10), Some(&k(2)));
        assert_eq!(auth.key_for(24), Some(&k(2)));
        assert_eq!(auth.key_for(1000), Some(&k(3)));
        let late = DeviceAuth {
            keys: vec![(5, k(1))],
            ..auth
        };
        assert_eq!(late.key_for(4), None);
    }

    #[test]
    fn a_load_that_began_before_an_invalidation_is_not_kept() {
        let auth = |state| {
            Some(Arc::new(DeviceAuth {
                state,
                station_id: "receiving".into(),
                keys: vec![],
            }))
        };
        let mut c = Cache::default();
        // A load starts, the device is revoked (and invalidated) meanwhile, then the load
        // that read it as active finishes: the stale answer must not stay.
        let started = c.lookup("scale-01").expect_err("not cached");
        c.invalidate("scale-01");
        c.fill("scale-01", &auth(DeviceState::Active), started);
        let again = c.lookup("scale-01").expect_err("still not cached");
        c.fill("scale-01", &auth(DeviceState::Revoked), again);
        let hit = c.lookup("scale-01").expect("cached").expect("registered");
        assert_eq!(hit.state, DeviceState::Revoked);
    }
}
