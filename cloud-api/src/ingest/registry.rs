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
    cache: Mutex<HashMap<String, Option<Arc<DeviceAuth>>>>,
}

impl Directory {
    /// The device, or `None` if it is not registered.
    pub async fn get(&self, store: &dyn Store, id: &str) -> StoreResult<Option<Arc<DeviceAuth>>> {
        if let Some(hit) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(hit.clone());
        }
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
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), found.clone());
        Ok(found)
    }

    pub fn invalidate(&self, id: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
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
}
