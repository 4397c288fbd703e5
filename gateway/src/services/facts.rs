//! Changes of the facts peers were judged on, gathered for the handshake service.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Whose judgement a change of facts may alter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every peer's (a status list, a field, the rules).
    Everyone,
    /// Only these members' (their standing changed).
    Members(HashSet<String>),
}

impl Scope {
    /// Whether the change names `did`'s standing (a change for everyone names nobody).
    pub fn names(&self, did: &str) -> bool {
        matches!(self, Scope::Members(dids) if dids.contains(did))
    }

    /// Whether the change may alter `did`'s judgement.
    pub fn includes(&self, did: &str) -> bool {
        match self {
            Scope::Everyone => true,
            Scope::Members(dids) => dids.contains(did),
        }
    }
}

/// Changes of facts waiting for the handshake service, gathered until it takes them.
///
/// Re-judging a peer re-verifies its credentials: a suspension re-judging every connected
/// peer cost a field of 50 gateways about 3.6 core-seconds per revocation.
#[derive(Debug, Default)]
pub struct FactsChanged {
    notify: Notify,
    pending: Mutex<Option<Scope>>,
    /// A field was joined: every peer may now share another field with us.
    fields: AtomicBool,
}

impl FactsChanged {
    /// Facts every peer is judged on changed.
    pub fn everyone(&self) {
        if let Ok(mut pending) = self.pending.lock() {
            *pending = Some(Scope::Everyone);
        }
        self.notify.notify_one();
    }

    /// Only these members' standing changed.
    pub fn members(&self, dids: impl IntoIterator<Item = String>) {
        if let Ok(mut pending) = self.pending.lock() {
            match pending.get_or_insert_with(|| Scope::Members(HashSet::new())) {
                Scope::Everyone => {}
                Scope::Members(known) => known.extend(dids),
            }
        }
        self.notify.notify_one();
    }

    /// A field was joined: every connected peer is asked about it again.
    pub fn fields(&self) {
        self.fields.store(true, Ordering::Release);
        self.everyone();
    }

    /// Whether a field was joined since the last call.
    pub fn take_fields(&self) -> bool {
        self.fields.swap(false, Ordering::AcqRel)
    }

    /// Waits for the next change.
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// The changes gathered since the last call: nobody if none (a wake-up left by a change
    /// already taken), everyone if the lock was poisoned.
    pub fn take(&self) -> Scope {
        match self.pending.lock() {
            Ok(mut pending) => pending
                .take()
                .unwrap_or_else(|| Scope::Members(HashSet::new())),
            Err(_) => Scope::Everyone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dids(scope: &Scope) -> Option<Vec<&str>> {
        match scope {
            Scope::Everyone => None,
            Scope::Members(dids) => {
                let mut dids: Vec<&str> = dids.iter().map(String::as_str).collect();
                dids.sort_unstable();
                Some(dids)
            }
        }
    }

    #[test]
    fn changes_of_standing_gather_until_taken() {
        let facts = FactsChanged::default();
        facts.members(["did:b".to_owned()]);
        facts.members(["did:a".to_owned(), "did:b".to_owned()]);
        let scope = facts.take();
        assert_eq!(dids(&scope), Some(vec!["did:a", "did:b"]));
        assert!(scope.includes("did:a") && !scope.includes("did:c"));
        // A second wake-up for changes already taken re-judges nobody.
        assert_eq!(dids(&facts.take()), Some(vec![]));
    }

    #[test]
    fn a_change_for_everyone_absorbs_changes_of_standing() {
        let facts = FactsChanged::default();
        facts.members(["did:a".to_owned()]);
        facts.everyone();
        facts.members(["did:b".to_owned()]);
        assert_eq!(facts.take(), Scope::Everyone);
        assert!(!facts.take_fields());
        facts.fields();
        assert!(facts.take_fields() && !facts.take_fields());
        assert_eq!(facts.take(), Scope::Everyone);
    }
}
