//! Audit checkpoints: the heads members publish, kept to detect a rewritten history.

use serde::{Deserialize, Serialize};

use crate::audit::Event;
use crate::metrics;
use crate::services::Services;
use crate::store::Tree;

/// An audit checkpoint: the publisher's chain has entry `seq` with hash `head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The entry's sequence number.
    pub seq: u64,
    /// Its hash.
    pub head: String,
}

/// A checkpoint kept in the `checkpoints` tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct KeptCheckpoint {
    head: String,
    token: String,
}

impl crate::store::Stored for KeptCheckpoint {
    const VERSION: u8 = 1;
}

pub(super) fn checkpoint_key(did: &str, seq: u64) -> Vec<u8> {
    let mut key = format!("{did}/").into_bytes();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Stores a member's checkpoint. `Ok(false)`: already held. `Err("audit_fork")`: the member
/// signed another head for the same position before.
pub(super) fn keep_checkpoint(
    services: &Services,
    did: &str,
    checkpoint: &Checkpoint,
    token: &str,
) -> Result<bool, &'static str> {
    let tree = services
        .store()
        .tree(Tree::Checkpoints)
        .map_err(|_| "store")?;
    let key = checkpoint_key(did, checkpoint.seq);
    match tree.get::<KeptCheckpoint>(&key) {
        Ok(Some(kept)) if kept.head == checkpoint.head => Ok(false),
        Ok(Some(kept)) => {
            tracing::error!(member = %did, seq = checkpoint.seq, kept = %kept.head, new = %checkpoint.head, "a member published two audit heads for one position: its history was rewritten");
            services.metrics.count(metrics::GOSSIP, "audit_fork");
            services.audit.record(Event {
                actor: did.to_owned(),
                action: "audit.fork".into(),
                object: checkpoint.seq.to_string(),
                decision: "alert".into(),
                reason: "audit_fork".into(),
                ..Event::default()
            });
            Err("audit_fork")
        }
        Ok(None) => {
            let kept = KeptCheckpoint {
                head: checkpoint.head.clone(),
                token: token.to_owned(),
            };
            tree.put(&key, &kept).map_err(|_| "store")?;
            Ok(true)
        }
        Err(_) => Err("store"),
    }
}

/// The checkpoints of `did` this gateway keeps (signed envelopes).
pub fn kept_checkpoints(services: &Services, did: &str) -> Vec<String> {
    let prefix = format!("{did}/");
    services
        .store()
        .tree(Tree::Checkpoints)
        .and_then(|tree| tree.entries::<KeptCheckpoint>())
        .map(|entries| {
            entries
                .into_iter()
                .filter(|(key, _)| key.starts_with(prefix.as_bytes()))
                .map(|(_, kept)| kept.token)
                .collect()
        })
        .unwrap_or_default()
}

/// Members asked for our checkpoints in one verification.
pub(super) const MAX_CHECKPOINT_PEERS: usize = 32;
/// Largest checkpoint envelope read back.
pub(super) const MAX_CHECKPOINT_BYTES: usize = 4096;
/// How often the audit head is published when it has moved.
pub(super) const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// What the members hold of our audit checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeerCheckpoints {
    /// Members that answered.
    pub peers: usize,
    /// Checkpoints compared with our chain.
    pub checked: usize,
    /// Checkpoints our chain no longer matches.
    pub mismatches: Vec<CheckpointMismatch>,
}

/// A checkpoint a member keeps that our chain no longer matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckpointMismatch {
    /// The member.
    pub peer: String,
    /// The position.
    pub seq: u64,
}
