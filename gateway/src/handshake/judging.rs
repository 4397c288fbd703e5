//! What a negotiation leaves: the record, the verdict, and the gate for peers without standing.

use std::collections::BTreeMap;

use libp2p::PeerId;

use super::view::{PartyView, judge_in};
use crate::audit::Event;
use crate::credential::{StatusLists, VerifyContext, now_unix};
use crate::identity::PublicKey;
use crate::metrics;
use crate::negotiation::{Judgement, Negotiation, Refusal};
use crate::net::Command;
use crate::services::Scope;

use super::service::{Gate, Reported, tiers_text};
use super::{GatewayEvent, Progress, Shared};
use crate::services::{PeerRecord, Presented};

impl Shared {
    /// Records and reports the peer once it is verified somewhere, and again whenever its
    /// tiers change; sends the mutual event once both sides verified each other.
    pub(super) async fn progress(
        &self,
        peer: PeerId,
        negotiation: &Negotiation,
        reported: &mut Reported,
    ) -> Result<Progress, Refusal> {
        let view = self.view();
        let record = self.record_of(negotiation, &view, reported.record.as_ref());
        let checked = reported.record.as_ref().is_some_and(|previous| {
            previous.did == record.did && previous.corporate_number == record.corporate_number
        });
        if !checked {
            self.check_identity(peer, &record)?;
        }
        reported.record = Some(record.clone());
        if !self.verified_somewhere(&record) {
            return Ok(Progress::NotYet(record));
        }
        let tiers_changed = reported.tiers.as_ref() != Some(&record.tiers);
        if tiers_changed || reported.presented.as_ref() != Some(&record.presented) {
            reported.presented = Some(record.presented.clone());
            self.services.peers.put(peer, &record)?;
        }
        if tiers_changed {
            reported.tiers = Some(record.tiers.clone());
            self.report(peer, record.clone()).await;
        }
        let mutual = record
            .tiers
            .keys()
            .any(|field| negotiation.mutual_in(&view, field));
        if mutual && !reported.mutual {
            reported.mutual = true;
            let _ = self.events.send(GatewayEvent::Mutual { peer });
        }
        Ok(Progress::Verified(record))
    }

    /// The record a negotiation leaves: our judgement of the peer in every engaged field.
    /// The identity is read again only if the credentials differ from `previous`'s.
    pub(super) fn record_of(
        &self,
        negotiation: &Negotiation,
        view: &PartyView<'_>,
        previous: Option<&PeerRecord>,
    ) -> PeerRecord {
        let now = now_unix();
        let judged = negotiation.outcome(view);
        let mut record = PeerRecord {
            did: negotiation.peer().to_owned(),
            tiers: BTreeMap::new(),
            presented: BTreeMap::new(),
            evaluated_at: now,
            next_change: None,
            corporate_number: None,
            name: None,
        };
        for (field, (judgement, credentials)) in judged {
            record.tiers.insert(field.clone(), judgement.tier);
            record.next_change = [record.next_change, judgement.next_change]
                .into_iter()
                .flatten()
                .min();
            record.presented.insert(
                field,
                Presented {
                    credentials,
                    counted: judgement.counted,
                    unmet: judgement.unmet,
                },
            );
        }
        (record.corporate_number, record.name) = match previous {
            Some(previous) if previous.presented == record.presented => {
                (previous.corporate_number.clone(), previous.name.clone())
            }
            _ => self.identity_of(&record, now),
        };
        record
    }

    /// Whether the record's peer is verified in some field it engaged in.
    pub(super) fn verified_somewhere(&self, record: &PeerRecord) -> bool {
        record
            .tiers
            .keys()
            .any(|field| self.services.verified_in(record, field))
    }

    /// Keeps the record of a peer with standing that is verified nowhere (the operator may
    /// ask why it was refused: its tiers are there), and says why it is refused.
    pub(super) fn refused_record(&self, peer: PeerId, record: &PeerRecord) -> Gate {
        if self.services.peers.put(peer, record).is_err() {
            tracing::warn!(%peer, "could not store the refused peer's record");
        }
        self.why_not(record)
    }

    /// Why a peer is verified nowhere: barred, blocked, or no tier.
    pub(super) fn why_not(&self, record: &PeerRecord) -> Gate {
        if let Some(field) = record
            .tiers
            .keys()
            .find(|field| self.services.is_barred(field, &record.did))
        {
            let message = format!("{} is revoked or suspended in field {field}", record.did);
            return (Some(record.did.clone()), "member_barred".into(), message);
        }
        if let Some(field) = record.tiers.keys().find(|field| {
            self.services
                .threat_effects
                .member_blocked(field, &record.did)
        }) {
            let message = format!(
                "{} is blocked in field {field} by a threat countermeasure",
                record.did
            );
            return (Some(record.did.clone()), "threat_blocked".into(), message);
        }
        let message = format!("{} reaches no tier in any shared field", record.did);
        (None, "no_tier".into(), message)
    }

    /// The corporate number and legal name of the holder's identity credential, counted
    /// only when an issuer that field trusts for identities issued it: a self-made claim to
    /// another company's number must not lock that company out.
    pub(super) fn identity_of(
        &self,
        record: &PeerRecord,
        now: i64,
    ) -> (Option<String>, Option<String>) {
        self.services
            .with_status_lists(|status_lists: &StatusLists| {
                let context = VerifyContext {
                    now,
                    trust: None,
                    status_lists,
                    status_max_age_secs: crate::credential::DEFAULT_STATUS_MAX_AGE_SECS,
                };
                record
                    .presented
                    .iter()
                    .filter_map(|(field, presented)| {
                        let joined = self.services.fields.get(field)?;
                        let trust = joined.charter.issuer_trust();
                        presented.credentials.iter().find_map(|token| {
                            let credential =
                                self.verifier.verify_credential(token, &context).ok()?;
                            let trusted =
                                trust.is_trusted(&credential.issuer, &credential.type_name);
                            (credential.type_name == crate::charter::disclosure::IDENTITY_TYPE
                                && credential.subject == record.did
                                && trusted)
                                .then(|| {
                                    let claim = |name: &str| {
                                        credential.claims.get(name)?.as_str().map(str::to_owned)
                                    };
                                    (claim("corporateNumber"), claim("legalName"))
                                })
                        })
                    })
                    .next()
                    .unwrap_or((None, None))
            })
    }

    /// A corporate number already bound to another DID refuses the newcomer.
    pub(super) fn check_identity(&self, peer: PeerId, record: &PeerRecord) -> Result<(), Refusal> {
        let Some(number) = &record.corporate_number else {
            return Ok(());
        };
        for (known_peer, known) in self.services.peers.all()? {
            if known.corporate_number.as_ref() == Some(number)
                && known.did != record.did
                && known_peer != peer
            {
                return Err(Refusal {
                    code: "identity_conflict".into(),
                    message: format!(
                        "corporate number {number} is already bound to {}; {} is refused",
                        known.did, record.did
                    ),
                });
            }
        }
        Ok(())
    }

    /// Reports a peer verified in some field: audit, metrics, the swarm (remember its
    /// addresses, open the gossip of the fields it takes part in) and the subscribers.
    pub(super) async fn report(&self, peer: PeerId, record: PeerRecord) {
        tracing::info!(%peer, did = %record.did, tiers = %tiers_text(&record), "peer verified");
        self.services
            .metrics
            .count(metrics::DECISIONS, "admission:allow");
        // Soon, not flushed: the verdict it records is not durable either (a restart judges
        // the peer again), and a flush per peer would put the disk in every handshake.
        self.services.audit.record(Event {
            actor: record.did.clone(),
            action: "handshake".into(),
            object: peer.to_string(),
            decision: "allow".into(),
            reason: format!("tiers:{}", tiers_text(&record)),
            ..Event::default()
        });
        self.services.metrics.count(metrics::HANDSHAKES, "verified");
        let _ = self.commands.send(Command::Admitted(peer)).await;
        let fields = self.services.gossip_fields(peer);
        let _ = self.commands.send(Command::Gossip { peer, fields }).await;
        let _ = self
            .events
            .send(GatewayEvent::PeerVerified { peer, record });
    }

    /// Refuses and blocks `peer`; `barred` is the member's DID when its standing or a
    /// threat countermeasure is the reason.
    pub(super) async fn gate(&self, peer: PeerId, barred: Option<&str>, code: &str, message: &str) {
        tracing::info!(%peer, %code, %message, "peer refused and gated");
        self.services
            .metrics
            .count(metrics::DECISIONS, "admission:deny");
        // Soon, not flushed: a stranger must not buy a disk flush with every fresh key.
        self.services.audit.record(Event {
            actor: crate::identity::PublicKey::did_of_peer(&peer)
                .unwrap_or_else(|| peer.to_string()),
            action: "handshake".into(),
            object: peer.to_string(),
            decision: "deny".into(),
            reason: code.into(),
            ..Event::default()
        });
        if let Ok(mut gated) = self.gated.lock() {
            gated.insert(peer, barred.map(str::to_owned));
        }
        self.services.metrics.count(metrics::HANDSHAKES, code);
        self.stranger(peer).await;
        let _ = self.commands.send(Command::Block(peer)).await;
        let _ = self.events.send(GatewayEvent::PeerRefused {
            peer,
            code: code.into(),
            message: message.into(),
        });
    }

    /// Judges a peer again from the credentials it presented, as of now.
    pub(super) async fn reevaluate(&self, peer: PeerId, scope: &Scope) -> Option<PeerRecord> {
        // The scope first: a change of one member's standing must not read every record.
        let did = PublicKey::did_of_peer(&peer)?;
        if !scope.includes(&did) {
            return None;
        }
        let previous = self
            .services
            .peers
            .get(peer)
            .filter(|record| record.did == did)?;
        let now = now_unix();
        let mut record = previous.clone();
        record.evaluated_at = now;
        record.next_change = None;
        for (field, tier) in &mut record.tiers {
            let Some(joined) = self.services.fields.get(field) else {
                *tier = 0;
                continue;
            };
            let judgement: Judgement = judge_in(
                &self.services,
                &self.verifier,
                &joined,
                &record.did,
                previous.credentials_in(field),
                now,
            );
            *tier = judgement.tier;
            record.next_change = [record.next_change, judgement.next_change]
                .into_iter()
                .flatten()
                .min();
            if let Some(presented) = record.presented.get_mut(field) {
                presented.counted = judgement.counted;
                presented.unmet = judgement.unmet;
            }
        }
        // Most changes touch one member: a write per unchanged peer cost a field of N
        // gateways N writes per change each.
        let unchanged = record.tiers == previous.tiers
            && record.next_change == previous.next_change
            && record.presented == previous.presented;
        if !unchanged && self.services.peers.put(peer, &record).is_err() {
            tracing::warn!(%peer, "could not store the re-evaluated tiers");
        }
        if self.verified_somewhere(&record) {
            self.report(peer, record.clone()).await;
        } else {
            let (barred, code, message) = self.why_not(&record);
            self.gate(peer, barred.as_deref(), &code, &message).await;
        }
        Some(record)
    }
}
