//! A short-lived cache of report documents, keyed by report, filters and page, and stamped
//! with the store's event generation: a new event makes every cached report stale at once,
//! and nothing is kept longer than the time to live either way. Bounded: when full, expired
//! and stale entries go first, then everything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a report stays cached when no event arrives.
pub const TTL: Duration = Duration::from_secs(30);
const CAPACITY: usize = 512;

#[derive(Debug, Default)]
pub struct ReportCache {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    generation: u64,
    at: Instant,
    doc: Arc<Value>,
}

impl ReportCache {
    /// The cached document for `key` if it was computed at `generation` less than [`TTL`] ago.
    pub fn get(&self, key: &str, generation: u64) -> Option<Arc<Value>> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|e| e.generation == generation && e.at.elapsed() < TTL)
            .map(|e| e.doc.clone())
    }

    pub fn put(&self, key: String, generation: u64, doc: Arc<Value>) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CAPACITY {
            map.retain(|_, e| e.generation == generation && e.at.elapsed() < TTL);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(
            key,
            Entry {
                generation,
                at: Instant::now(),
                doc,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_generation_makes_entries_stale() {
        let c = ReportCache::default();
        c.put("k".into(), 1, Arc::new(Value::from(1)));
        assert_eq!(c.get("k", 1).as_deref(), Some(&Value::from(1)));
        assert!(c.get("k", 2).is_none());
        assert!(c.get("other", 1).is_none());
    }

    #[test]
    fn it_stays_bounded() {
        let c = ReportCache::default();
        for i in 0..(CAPACITY * 2) {
            c.put(format!("k{i}"), 1, Arc::new(Value::Null));
        }
        assert!(c.entries.lock().map(|m| m.len()).unwrap_or(0) <= CAPACITY);
    }
}
