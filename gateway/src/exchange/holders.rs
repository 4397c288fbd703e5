//! Which members hold a governance op: each connected member is asked, over the sync
//! protocol, for the ops we lack when our digest leaves that one out. A member that holds it
//! sends it back; one that does not answers without it. No new message: the answer is the
//! one anti-entropy gives anyway.

use futures::future::join_all;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::Publisher;
use super::sync::{call_connected, sync};
use crate::identity::PublicKey;
use crate::net::{SyncRequest, SyncResponse};

/// One member's answer about an op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// The member's DID.
    pub did: String,
    /// Its verified legal name, if known.
    pub name: Option<String>,
    /// `holds` (its gateway sent the op back), `lacks` (it answered without it),
    /// `no_answer` (asked, no usable answer) or `not_connected`.
    pub status: String,
    /// What went wrong, for `no_answer`.
    pub detail: Option<String>,
}

impl Publisher {
    /// Asks every member in good standing of `field` (but us and the op's target) whether
    /// it holds op `op_id`, all at once; connected members answer within the sync timeout.
    pub async fn op_holders(&self, field: &str, op_id: &str, target: &str) -> Vec<Holder> {
        let me = self.services.key.did();
        let members: Vec<String> = self
            .services
            .governance
            .state(field)
            .map(|state| state.in_good_standing().cloned().collect())
            .unwrap_or_default();
        let connected = call_connected(&self.commands).await.unwrap_or_default();
        let mut have = self.services.governance.digest(field);
        have.remove(op_id);
        let asks = members
            .into_iter()
            .filter(|did| *did != me && did != target)
            .map(|did| {
                let peer = PublicKey::peer_id_named(&did);
                let have = have.clone();
                let connected = peer.is_some_and(|peer| connected.contains(&peer));
                async move {
                    let status = match peer.filter(|_| connected) {
                        None => ("not_connected", None),
                        Some(peer) => self.ask_holds(peer, field, op_id, have).await,
                    };
                    Holder {
                        name: self.services.name_of(&did),
                        did,
                        status: status.0.to_owned(),
                        detail: status.1,
                    }
                }
            });
        join_all(asks).await
    }

    async fn ask_holds(
        &self,
        peer: PeerId,
        field: &str,
        op_id: &str,
        have: std::collections::BTreeMap<String, usize>,
    ) -> (&'static str, Option<String>) {
        let request = SyncRequest::Ops {
            field: field.to_owned(),
            have,
        };
        match sync(&self.commands, peer, request).await {
            Ok(SyncResponse::Ops { ops }) => {
                let holds = ops
                    .iter()
                    .any(|signed| signed.op.id().is_ok_and(|id| id == op_id));
                (if holds { "holds" } else { "lacks" }, None)
            }
            Ok(SyncResponse::Refused { code, .. }) => {
                ("no_answer", Some(format!("refused: {code}")))
            }
            Ok(_) => ("no_answer", Some("an answer of another kind".into())),
            Err(error) => ("no_answer", Some(error.to_string())),
        }
    }
}
