//! Gossipsub settings and topic names. Each field runs its own gossipsub on a protocol of its
//! own, among its verified members only (`mesh/`).
//!
//! Messages are published anonymously (no libp2p author or signature) and identified by the
//! SHA-256 of their bytes: every payload carries its own organisation signature, which the
//! application checks once per message after deduplication, instead of gossipsub checking a
//! second signature on every copy, which measured slower. Validation is left to the application
//! (`validate_messages`), and the score parameters only punish invalid messages: a quiet
//! field must not push honest members out, and members behind one address (NAT, loopback
//! tests) are not penalised for sharing it.

use std::time::Duration;

use libp2p::gossipsub::{
    self, MessageAuthenticity, MessageId, PeerScoreParams, PeerScoreThresholds, TopicScoreParams,
    ValidationMode,
};
use sha2::{Digest, Sha256};

/// The kinds of topic every field has (docs/PROTOCOL.md, "Wire protocol").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// Governance ops and endorsements.
    Gov,
    /// Threat indicators.
    Threat,
    /// Status list credentials.
    Status,
    /// Audit checkpoints (an extension of the three original topics).
    Audit,
}

impl TopicKind {
    /// Every kind.
    pub const ALL: [TopicKind; 4] = [
        TopicKind::Gov,
        TopicKind::Threat,
        TopicKind::Status,
        TopicKind::Audit,
    ];

    /// The kind's name in topic names and envelopes.
    pub fn as_str(self) -> &'static str {
        match self {
            TopicKind::Gov => "gov",
            TopicKind::Threat => "threat",
            TopicKind::Status => "status",
            TopicKind::Audit => "audit",
        }
    }
}

/// The topic `tfc/<field-id>/<kind>`.
pub fn topic_name(field_id: &str, kind: TopicKind) -> String {
    format!("tfc/{field_id}/{}", kind.as_str())
}

/// The field id and kind of a topic name, if it is one of ours.
pub fn parse_topic(name: &str) -> Option<(String, TopicKind)> {
    let rest = name.strip_prefix("tfc/")?;
    let (field, kind) = rest.rsplit_once('/')?;
    let kind = TopicKind::ALL
        .into_iter()
        .find(|known| known.as_str() == kind)?;
    Some((field.to_owned(), kind))
}

/// The penalty per message a peer was too slow to take (gossipsub's default is -0.2).
const SLOW_PEER_WEIGHT: f64 = -0.01;
/// The penalty per broken IWANT promise or early GRAFT, squared past the threshold
/// (gossipsub's defaults are -10 and 0).
const BEHAVIOUR_PENALTY_WEIGHT: f64 = -1.0;
const BEHAVIOUR_PENALTY_THRESHOLD: f64 = 6.0;

/// A gossipsub behaviour with our settings on `protocol`; `max_bytes` bounds every message.
pub(super) fn behaviour(max_bytes: usize, protocol: &str) -> Result<gossipsub::Behaviour, String> {
    let config = gossipsub::ConfigBuilder::default()
        .protocol_id(protocol.to_owned(), gossipsub::Version::V1_1)
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|message| MessageId::new(&Sha256::digest(&message.data)))
        .max_transmit_size(max_bytes)
        // The default 5 s delays mesh formation after start-up.
        .heartbeat_initial_delay(Duration::from_millis(100))
        .heartbeat_interval(Duration::from_millis(500))
        .build()
        .map_err(|error| error.to_string())?;
    let mut behaviour = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config)?;
    let score = PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        // Every peer in a field's mesh is a verified member. A busy one (a flood to relay, a
        // slow disk) drops forwards and breaks IWANT promises; at the defaults, one flood of
        // a few hundred messages put every honest relay under the publish threshold, and a
        // revocation or an alert then reached nobody. Kept as a tie-breaker, not a verdict.
        slow_peer_weight: SLOW_PEER_WEIGHT,
        behaviour_penalty_weight: BEHAVIOUR_PENALTY_WEIGHT,
        behaviour_penalty_threshold: BEHAVIOUR_PENALTY_THRESHOLD,
        ..PeerScoreParams::default()
    };
    behaviour.with_peer_score(score, PeerScoreThresholds::default())?;
    Ok(behaviour)
}

/// Per-topic scores: a little credit for time in the mesh and first deliveries, and a steep,
/// slowly forgiven penalty for invalid messages: three put a peer past the graylist threshold
/// whatever credit it had earned.
pub(super) fn topic_score() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 0.1,
        first_message_deliveries_cap: 100.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -12.0,
        invalid_message_deliveries_decay: 0.9,
        ..TopicScoreParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_round_trip() {
        for kind in TopicKind::ALL {
            let name = topic_name("abc123", kind);
            assert_eq!(parse_topic(&name), Some(("abc123".to_owned(), kind)));
        }
        assert_eq!(topic_name("f", TopicKind::Gov), "tfc/f/gov");
        for foreign in ["tfc/f/other", "x/f/gov", "tfc/gov", ""] {
            assert_eq!(parse_topic(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn a_busy_member_stays_above_the_publish_threshold() {
        let thresholds = PeerScoreThresholds::default();
        // A thousand forwards dropped and ten broken promises, all at once, with no credit.
        let slow = 1000.0 * SLOW_PEER_WEIGHT;
        let broken = (10.0 - BEHAVIOUR_PENALTY_THRESHOLD).powi(2) * BEHAVIOUR_PENALTY_WEIGHT;
        assert!(slow + broken > thresholds.publish_threshold);
        // At gossipsub's defaults the same member is cut off.
        let defaults = PeerScoreParams::default();
        let slow_default = 1000.0 * defaults.slow_peer_weight;
        assert!(slow_default < thresholds.publish_threshold);
    }

    #[test]
    fn three_invalid_messages_cross_the_graylist_threshold() {
        let params = topic_score();
        let thresholds = PeerScoreThresholds::default();
        let penalty = |count: f64| count * count * params.invalid_message_deliveries_weight;
        let most_credit = params.time_in_mesh_cap * params.time_in_mesh_weight
            + params.first_message_deliveries_cap * params.first_message_deliveries_weight;
        assert!(penalty(2.0) > thresholds.graylist_threshold);
        assert!(penalty(3.0) + most_credit < thresholds.graylist_threshold);
        assert!(behaviour(1024, "/tfc/mesh/00/1.1.0").is_ok());
    }
}
