//! Login throttling: after repeated failures for a username or from an address, further
//! attempts are refused for a growing delay.
//!
//! Kept in memory per replica: an attacker spreading attempts over N replicas gets at most N
//! times the budget, still far too little for online guessing against 12-character passwords.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before the lockout starts.
pub const FREE_ATTEMPTS: u32 = 5;
/// Failures older than this are forgotten.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
const BASE_DELAY: Duration = Duration::from_secs(30);
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Default)]
pub struct LoginThrottle {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
}

impl LoginThrottle {
    /// `Err(retry_after)` while `keys` (e.g. `user:alice`, `ip:10.0.0.9`) are locked out.
    pub fn check(&self, keys: &[String], now: Instant) -> Result<(), Duration> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = Duration::ZERO;
        for k in keys {
            if let Some(e) = map.get(k) {
                if now.duration_since(e.last) > WINDOW || e.failures < FREE_ATTEMPTS {
                    continue;
                }
                let over = e.failures - FREE_ATTEMPTS;
                let delay = BASE_DELAY
                    .saturating_mul(1u32.checked_shl(over.min(10)).unwrap_or(u32::MAX))
                    .min(MAX_DELAY);
                let until = e.last + delay;
                if until > now {
                    wait = wait.max(until - now);
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    pub fn failure(&self, keys: &[String], now: Instant) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, e| now.duration_since(e.last) <= WINDOW);
        }
        for k in keys {
            let e = map.entry(k.clone()).or_insert(Entry {
                failures: 0,
                last: now,
            });
            if now.duration_since(e.last) > WINDOW {
                e.failures = 0;
            }
            e.failures += 1;
            e.last = now;
        }
    }

    pub fn success(&self, keys: &[String]) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            map.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_free_attempts_and_releases_later() {
        let t = LoginThrottle::default();
        let keys = vec!["user:alice".to_string()];
        let start = Instant::now();
        for _ in 0..FREE_ATTEMPTS - 1 {
            t.failure(&keys, start);
            assert!(t.check(&keys, start).is_ok());
        }
        t.failure(&keys, start);
        let wait = t.check(&keys, start).expect_err("locked");
        assert!(wait >= Duration::from_secs(29));
        assert!(t.check(&keys, start + Duration::from_secs(31)).is_ok());
        // another user is not affected
        assert!(t.check(&["user:bob".to_string()], start).is_ok());
        t.success(&keys);
        assert!(t.check(&keys, start).is_ok());
    }
}
