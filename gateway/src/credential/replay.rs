//! The presentation replay cache: a nonce is accepted once.

use std::collections::HashMap;
use std::sync::Mutex;

use super::error::{ErrorCode, VerificationError, fail};

/// Nonces remembered at most; beyond this (with none expired) new presentations are refused
/// rather than risking a replay.
pub(crate) const DEFAULT_REPLAY_CAPACITY: usize = 1_000_000;

/// Remembers used nonces until the presentations carrying them have expired.
#[derive(Debug)]
pub struct ReplayCache {
    seen: Mutex<HashMap<String, i64>>,
    capacity: usize,
}

impl Default for ReplayCache {
    fn default() -> Self {
        Self::new(DEFAULT_REPLAY_CAPACITY)
    }
}

impl ReplayCache {
    /// An empty cache holding at most `capacity` nonces.
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Whether `nonce` was already used (and is still remembered).
    pub fn contains(&self, nonce: &str) -> bool {
        self.seen
            .lock()
            .map(|seen| seen.contains_key(nonce))
            .unwrap_or(true)
    }

    /// Records `nonce` as used until `forget_after` (Unix seconds). Fails with `replayed` if
    /// it was already used, or if the cache is full of live nonces.
    pub fn record(
        &self,
        nonce: &str,
        forget_after: i64,
        now: i64,
    ) -> Result<(), VerificationError> {
        let Ok(mut seen) = self.seen.lock() else {
            return fail(ErrorCode::Replayed, "replay cache is unavailable");
        };
        if seen.contains_key(nonce) {
            return fail(ErrorCode::Replayed, "this nonce was already used");
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, until| *until >= now);
            if seen.len() >= self.capacity {
                return fail(
                    ErrorCode::Replayed,
                    "replay cache is full of live nonces; try again in a few minutes",
                );
            }
        }
        seen.insert(nonce.to_owned(), forget_after);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once() {
        let cache = ReplayCache::default();
        cache.record("n1", 100, 0).unwrap();
        assert_eq!(
            cache.record("n1", 100, 1).unwrap_err().code,
            ErrorCode::Replayed
        );
        assert!(cache.contains("n1"));
        cache.record("n2", 100, 1).unwrap();
    }

    #[test]
    fn a_full_cache_drops_expired_nonces_and_refuses_when_all_are_live() {
        let cache = ReplayCache::new(2);
        cache.record("a", 10, 0).unwrap();
        cache.record("b", 50, 0).unwrap();
        assert_eq!(
            cache.record("c", 60, 5).unwrap_err().code,
            ErrorCode::Replayed
        );
        cache.record("c", 60, 20).unwrap();
        assert!(!cache.contains("a"));
        assert!(cache.contains("b"));
    }
}
