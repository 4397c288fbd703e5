//! Anti-entropy on `/tfc/sync/2`: answering members what they lack, and asking them.

use std::collections::BTreeMap;

use libp2p::PeerId;
use tokio::sync::mpsc;

use super::{Publisher, open_envelope};
use super::{Service, kept_checkpoints};
use crate::credential::now_unix;
use crate::governance::GovCode;
use crate::identity::PublicKey;
use crate::metrics;
use crate::net::{Command, NetError, SyncRequest, SyncResponse, TopicKind, call};
use crate::services::Services;
use crate::services::threats::Origin;

/// Takes items while their sizes fit in `budget`; what does not fit goes in the next round.
pub(super) fn within_budget<T>(
    items: impl Iterator<Item = T>,
    budget: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<T> {
    let mut used = 0;
    items
        .take_while(|item| {
            used += size(item) + 4;
            used <= budget
        })
        .collect()
}

/// Answers to a sync request stop growing at this share of the message limit.
pub(super) const SYNC_FILL_PERCENT: usize = 75;

impl Service {
    pub(super) fn answer_sync(&self, peer: PeerId, request: SyncRequest) -> SyncResponse {
        let field = match &request {
            SyncRequest::StatusLists { field, .. }
            | SyncRequest::Ops { field, .. }
            | SyncRequest::Checkpoints { field, .. }
            | SyncRequest::Report { field, .. }
            | SyncRequest::Members { field } => field,
        };
        // One refusal for "not verified there" and "not a field of ours": no oracle.
        let Some(joined) = self
            .services
            .fields
            .get(field)
            .filter(|_| self.services.peer_verified_in(peer, field))
        else {
            return refused();
        };
        let budget = self.max_message_bytes * SYNC_FILL_PERCENT / 100;
        match request {
            SyncRequest::StatusLists { have, .. } => {
                let held = match self.services.status_lists_for(&joined) {
                    Ok(held) => held,
                    Err(error) => {
                        return SyncResponse::Refused {
                            code: error.code().into(),
                            message: error.to_string(),
                        };
                    }
                };
                let lacking = held
                    .into_iter()
                    .filter(|(id, issued_at, _)| {
                        have.get(id).is_none_or(|theirs| theirs < issued_at)
                    })
                    .map(|(_, _, token)| token);
                SyncResponse::StatusLists {
                    tokens: within_budget(lacking, budget, |token| token.len()),
                }
            }
            SyncRequest::Checkpoints { of, .. } => SyncResponse::Checkpoints {
                tokens: within_budget(
                    kept_checkpoints(&self.services, &of).into_iter(),
                    budget,
                    String::len,
                ),
            },
            SyncRequest::Report { field, token } => self.direct_report(peer, &field, &token),
            // Answered by its own task (it asks the swarm where members listen).
            SyncRequest::Members { .. } => refused(),
            SyncRequest::Ops { field, have } => {
                let lacking = self.services.governance.missing(&field, &have).into_iter();
                SyncResponse::Ops {
                    ops: within_budget(lacking, budget, |op| {
                        serde_json::to_vec(op).map_or(budget, |bytes| bytes.len())
                    }),
                }
            }
        }
    }

    /// Takes a report a member sent us by name: it must be signed by that member.
    pub(super) fn direct_report(&self, peer: PeerId, field: &str, token: &str) -> SyncResponse {
        let refused = |code: &str, message: String| SyncResponse::Refused {
            code: code.into(),
            message,
        };
        let opened = open_envelope(
            &self.verifier,
            token,
            field,
            TopicKind::Threat,
            self.max_message_bytes,
            now_unix(),
        );
        let (publisher, envelope) = match opened {
            Ok(opened) => opened,
            Err(rejection) => return refused(&rejection.code, rejection.message),
        };
        if PublicKey::peer_id_named(&publisher) != Some(peer) {
            return refused(
                "wrong_topic",
                "a direct report is the sender's own threat envelope for this field".into(),
            );
        }
        match self
            .threats
            .receive(field, &publisher, &envelope.body, Origin::Direct)
        {
            Ok(outcome) => SyncResponse::Report {
                taken: outcome.taken,
                unchanged: outcome.unchanged,
            },
            Err(error) => refused(error.code.as_str(), error.message),
        }
    }
}

pub(super) async fn pull_status_lists(
    services: &Services,
    commands: &mpsc::Sender<Command>,
    peer: PeerId,
    field: &crate::field::Field,
) {
    let have: BTreeMap<String, i64> = match services.status_lists_for(field) {
        Ok(held) => held.into_iter().map(|(id, at, _)| (id, at)).collect(),
        Err(error) => {
            tracing::warn!(%error, "status lists unreadable; sync skipped");
            return;
        }
    };
    let request = SyncRequest::StatusLists {
        field: field.charter.field_id(),
        have,
    };
    match sync(commands, peer, request).await {
        Ok(SyncResponse::StatusLists { tokens }) => {
            for token in tokens {
                services.metrics.count(metrics::SYNCED, "status_list");
                if let Err(error) = services.import_status_list(&token) {
                    tracing::info!(%peer, code = error.code(), "synced status list refused");
                }
            }
        }
        Ok(other) => unexpected(peer, other),
        Err(reason) => tracing::info!(%peer, %reason, "sync failed"),
    }
}

/// Pulls the ops a peer holds that we lack, and gossips the ones we took: after a partition
/// heals, the members on our side that are not connected to the other side learn them too.
pub(super) async fn pull_ops(publisher: &Publisher, peer: PeerId, field: &crate::field::Field) {
    let services = &publisher.services;
    let commands = &publisher.commands;
    let id = field.charter.field_id();
    let request = SyncRequest::Ops {
        have: services.governance.digest(&id),
        field: id.clone(),
    };
    match sync(commands, peer, request).await {
        Ok(SyncResponse::Ops { ops }) => {
            for signed in ops {
                services.metrics.count(metrics::SYNCED, "gov_op");
                match services
                    .governance
                    .intake(&field.charter, signed.clone(), now_unix())
                {
                    Ok(intake) => publisher.after_governance(&id, &signed, &intake).await,
                    Err(error) if error.code == GovCode::Replayed => {}
                    Err(error) => tracing::info!(%peer, %error, "synced governance op refused"),
                }
            }
        }
        Ok(other) => unexpected(peer, other),
        Err(reason) => tracing::info!(%peer, %reason, "sync failed"),
    }
}

/// The answer every asker not verified in the field gets, whether or not we belong to it.
pub(super) fn refused() -> SyncResponse {
    SyncResponse::Refused {
        code: crate::services::REFUSED.into(),
        message: crate::services::REFUSED.into(),
    }
}

/// Members asked for at most per answer.
pub(super) const MAX_MEMBERS_ANSWERED: usize = 64;

/// Answers a members request with the members of `field` we are connected to and verified,
/// and where they listen. Who learns what: a member in the registry, or one up for
/// admission, learns of every member; an applicant, of the founders and admins who screen
/// it (the charter names them anyway), never of other members or applicants; anyone else
/// is refused.
pub(super) async fn members(
    services: &Services,
    commands: &mpsc::Sender<Command>,
    asker: PeerId,
    field: &str,
) -> SyncResponse {
    let Some(joined) = services.fields.get(field) else {
        return refused();
    };
    let Some(asker_did) = PublicKey::did_of_peer(&asker) else {
        return refused();
    };
    if !services.peer_verified_in(asker, field) {
        return refused();
    }
    let sees_everyone = services.member_standing(&joined, &asker_did);
    let listed = |peer: &PeerId| {
        PublicKey::did_of_peer(peer).is_some_and(|did| {
            let registered = services
                .governance
                .standing(field, &did)
                .is_some_and(|standing| standing.in_good_standing());
            let screener = joined.charter.is_founder(&did) || joined.charter.is_admin(&did);
            registered && (sees_everyone || screener)
        }) && services.peer_verified_in(*peer, field)
    };
    let Ok(connected) = call_connected(commands).await else {
        return refused();
    };
    let verified: Vec<PeerId> = connected
        .into_iter()
        .filter(|peer| *peer != asker && listed(peer))
        .take(MAX_MEMBERS_ANSWERED)
        .collect();
    let (reply, answer) = tokio::sync::oneshot::channel();
    if commands
        .send(Command::PeerAddresses(verified, reply))
        .await
        .is_err()
    {
        return refused();
    }
    SyncResponse::Members {
        members: answer.await.unwrap_or_default(),
    }
}

/// Asks `peer` where `field`'s members listen and dials those we are not connected to,
/// if they are members in good standing by our own registry.
pub(super) async fn pull_members(
    services: &Services,
    commands: &mpsc::Sender<Command>,
    peer: PeerId,
    field: &str,
) {
    let request = SyncRequest::Members {
        field: field.to_owned(),
    };
    let Some(joined) = services.fields.get(field) else {
        return;
    };
    match sync(commands, peer, request).await {
        Ok(SyncResponse::Members { members }) => {
            for member in members.iter().take(MAX_MEMBERS_ANSWERED) {
                let Some((member, addresses)) = member.parse() else {
                    continue;
                };
                let standing = PublicKey::did_of_peer(&member)
                    .is_some_and(|did| services.member_standing(&joined, &did));
                if standing {
                    let dial = Command::DialPeer {
                        peer: member,
                        addresses,
                    };
                    let _ = commands.send(dial).await;
                }
            }
        }
        Ok(other) => unexpected(peer, other),
        Err(reason) => tracing::info!(%peer, %reason, "members not asked"),
    }
}

/// The peers the swarm has a connection to.
pub(super) async fn call_connected(commands: &mpsc::Sender<Command>) -> Result<Vec<PeerId>, ()> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    commands
        .send(Command::ConnectedPeers(reply))
        .await
        .map_err(drop)?;
    answer.await.map_err(drop)
}

pub(super) fn unexpected(peer: PeerId, response: SyncResponse) {
    match response {
        SyncResponse::Refused { code, message } => {
            tracing::info!(%peer, %code, %message, "sync refused");
        }
        _ => tracing::info!(%peer, "sync answered with another kind"),
    }
}

pub(super) async fn sync(
    commands: &mpsc::Sender<Command>,
    peer: PeerId,
    request: SyncRequest,
) -> Result<SyncResponse, NetError> {
    call(commands, |reply| Command::Sync {
        peer,
        request,
        reply,
    })
    .await
}
