//! Gossip routing: each message judged in the order of the module doc, then taken by its owner.

use libp2p::PeerId;
use serde_json::Value;
use tokio::time::Instant;

use super::{
    Bucket, RATE_BURST, REFUSAL_AUDIT_INTERVAL, Rejection, Service, intrinsic, keep_checkpoint,
};
use super::{Checkpoint, Envelope, Sealed, open_envelopes};
use crate::audit::Event;
use crate::config::EndorseMode;
use crate::credential::{CredentialVerifier, now_unix};
use crate::governance::state::Via;
use crate::governance::{GovCode, GovIntake, OpKind, SignedOp};
use crate::identity::PublicKey;
use crate::metrics;
use crate::net::{Command, MessageId, TopicKind, Verdict, parse_topic};
use crate::services::Services;
use crate::services::status::Intake;
use crate::services::threats::{Origin, PreparedReport, ReportOutcome, Threats};
use crate::threats::{ThreatCode, ThreatError};

/// Puts a taken op into force: a change of standing or of the rules makes the handshake
/// service re-judge every connected peer at once, which gates the revoked and suspended.
pub(super) fn enforce(
    services: &Services,
    threats: &Threats,
    signed: &SignedOp,
    intake: &GovIntake,
) {
    let decision = match intake.progress.committed {
        Some(Via::Admin) => "commit-emergency",
        Some(Via::Quorum) => "commit",
        None => "pending",
    };
    services.audit.record(Event {
        actor: signed.op.proposer.clone(),
        action: format!("governance.{}", signed.op.kind),
        object: signed.op.target.clone(),
        decision: decision.into(),
        reason: format!(
            "op:{} signatures:{} of {} needed",
            intake.id, intake.progress.signatures, intake.progress.required
        ),
        subject: signed
            .op
            .kind
            .is_membership()
            .then(|| signed.op.target.clone()),
        field: Some(signed.op.field.clone()),
        ..Event::default()
    });
    if intake.progress.committed == Some(Via::Admin) {
        tracing::warn!(op = %intake.id, kind = %signed.op.kind, target = %signed.op.target, admin = %signed.op.proposer, "governance op committed on the emergency path (one admin's signature)");
    }
    if !intake.changed.is_empty() || intake.rules_changed {
        tracing::info!(op = %intake.id, kind = %signed.op.kind, changed = ?intake.changed, "governance state changed");
        services.metrics.count(
            metrics::DECISIONS,
            &format!("governance:{}", signed.op.kind),
        );
        if intake.rules_changed {
            services.facts_changed.everyone();
        } else {
            services
                .facts_changed
                .members(intake.changed.iter().cloned());
        }
        // A revoked reporter's reports stop counting; a new admin's start to.
        threats.rejudge_all();
    }
}

impl Service {
    pub(super) async fn validated(
        &self,
        field: String,
        message_id: MessageId,
        source: PeerId,
        verdict: Verdict,
    ) {
        let _ = self
            .commands
            .send(Command::Validated {
                field,
                message_id,
                source,
                verdict,
            })
            .await;
    }

    /// Judges a gossip message that `field`'s gossip carried, in the order of the module
    /// doc: the service's batch path (`Service::gossip_batch`) for one message, on this
    /// thread, for the tests.
    #[cfg(test)]
    pub(super) fn judge_gossip(
        &mut self,
        source: PeerId,
        mesh: &str,
        topic: &str,
        data: &[u8],
    ) -> Result<Verdict, Rejection> {
        let Some(admitted) = self.admit_gossip(source, mesh, topic, data.to_vec())? else {
            return Ok(Verdict::Ignore);
        };
        let opening = open_admitted(
            &self.verifier,
            &self.threats,
            std::slice::from_ref(&admitted),
            self.max_message_bytes,
            now_unix(),
        )
        .pop()
        .ok_or_else(|| Rejection("malformed".into()))?;
        match self.judge_opened(source, &admitted, opening) {
            Judged::Done(verdict) => verdict,
            Judged::Threat(pending) => {
                let report = (pending.publisher.clone(), pending.report);
                let outcome = self.threats.take(vec![report]).pop();
                let outcome = outcome
                    .unwrap_or_else(|| Err(ThreatError::new(ThreatCode::Store, "no outcome")));
                self.threat_verdict(&pending.field, &pending.publisher, pending.relayed, outcome)
            }
        }
    }

    /// The checks before a message is opened: its topic is the mesh's field's, the field is
    /// joined (else `None`: ignored), and the peer that forwarded it gossips there.
    pub(super) fn admit_gossip(
        &self,
        source: PeerId,
        mesh: &str,
        topic: &str,
        data: Vec<u8>,
    ) -> Result<Option<Admitted>, Rejection> {
        let reject = |code: &str| Rejection(code.to_owned());
        let (field, kind) = parse_topic(topic).ok_or_else(|| reject("unknown_topic"))?;
        if field != mesh {
            return Err(reject("wrong_topic"));
        }
        if self.services.fields.get(&field).is_none() {
            return Ok(None);
        }
        // The mesh lets in only peers verified in the field; a peer that lost its standing
        // since is refused here before its mesh slot is taken back.
        let source_gossips = self
            .services
            .peers
            .get(source)
            .is_some_and(|record| self.services.gossips_in(&record, &field));
        if !source_gossips {
            return Err(reject("not_member"));
        }
        let token = String::from_utf8(data).map_err(|_| reject("malformed"))?;
        Ok(Some(Admitted { field, kind, token }))
    }

    /// The checks after a message is opened, in the module doc's order. A threat report
    /// comes back to be taken with others ([`Threats::take`]).
    pub(super) fn judge_opened(
        &mut self,
        source: PeerId,
        admitted: &Admitted,
        opening: Opening,
    ) -> Judged {
        let reject = |code: &str| Rejection(code.to_owned());
        let (field, kind) = (admitted.field.as_str(), admitted.kind);
        let (publisher, envelope, report) = match opening {
            Ok(opened) => opened,
            Err(rejection) => return Judged::Done(Err(rejection)),
        };
        let Some(publisher_peer) = PublicKey::peer_id_of(&publisher) else {
            return Judged::Done(Err(reject("malformed")));
        };
        // What only this gateway's own state can refuse (a standing it learnt of first, a
        // rate, a quota) punishes the publisher, never a relay: the relay judged by its own
        // state, and a penalised relay would be cut off from every later alert.
        let relayed = source != publisher_peer;
        let refuse = |code: &str| {
            Judged::Done(if relayed {
                Ok(Verdict::Ignore)
            } else {
                Err(reject(code))
            })
        };
        if !self.services.in_good_standing(field, &publisher)
            || (kind == TopicKind::Gov && !self.votes(field, &publisher))
        {
            return refuse("not_member");
        }
        if !self.within_rate(&publisher) {
            return refuse("rate_limited");
        }
        let verdict = match (kind, report) {
            (TopicKind::Threat, Some(Ok(report))) => {
                return Judged::Threat(PendingThreat {
                    field: field.to_owned(),
                    publisher,
                    relayed,
                    report,
                });
            }
            (TopicKind::Threat, Some(Err(error))) => {
                self.threat_verdict(field, &publisher, relayed, Err(error))
            }
            (TopicKind::Threat, None) => Err(reject("malformed")),
            (TopicKind::Status, _) => self.status_message(&envelope.body),
            (TopicKind::Gov, _) => self.governance_message(field, envelope.body),
            (TopicKind::Audit, _) => {
                self.checkpoint_message(&publisher, &envelope.body, &admitted.token)
            }
        };
        Judged::Done(unless_relayed(verdict, relayed))
    }

    /// The verdict on a threat report once the book took it or refused it; a refused one is
    /// also reported locally. A report over its publisher's rate or quota here penalises
    /// only the publisher: a relay that forwarded it could not know.
    pub(super) fn threat_verdict(
        &mut self,
        field: &str,
        publisher: &str,
        relayed: bool,
        outcome: Result<ReportOutcome, ThreatError>,
    ) -> Result<Verdict, Rejection> {
        let verdict = match outcome {
            Ok(_) => Ok(Verdict::Accept),
            Err(error) if error.code == ThreatCode::Replayed => Ok(Verdict::Ignore),
            Err(error) => {
                self.report_refusal(field, publisher, &error);
                Err(Rejection(error.code.as_str().to_owned()))
            }
        };
        unless_relayed(verdict, relayed)
    }

    pub(super) fn report_refusal(&mut self, field: &str, publisher: &str, error: &ThreatError) {
        tracing::warn!(%publisher, code = error.code.as_str(), %error, "threat report refused");
        let now = Instant::now();
        let due = self
            .refusals_audited
            .get(publisher)
            .is_none_or(|at| now.duration_since(*at) >= REFUSAL_AUDIT_INTERVAL);
        if due {
            self.refusals_audited.insert(publisher.to_owned(), now);
            self.services.audit.record(Event {
                actor: publisher.to_owned(),
                action: "threat.report".into(),
                object: field.to_owned(),
                decision: "refused".into(),
                reason: error.code.as_str().into(),
                field: Some(field.to_owned()),
                ..Event::default()
            });
        }
    }

    /// Keeps a member's audit checkpoint; a second, different head for the same position
    /// means the member rewrote its history: alert, and refuse the message.
    pub(super) fn checkpoint_message(
        &self,
        publisher: &str,
        body: &Value,
        token: &str,
    ) -> Result<Verdict, Rejection> {
        let checkpoint: Checkpoint =
            serde_json::from_value(body.clone()).map_err(|_| Rejection("malformed".into()))?;
        match keep_checkpoint(&self.services, publisher, &checkpoint, token) {
            Ok(true) => Ok(Verdict::Accept),
            Ok(false) => Ok(Verdict::Ignore),
            Err(error) => Err(Rejection(error.into())),
        }
    }

    pub(super) fn governance_message(
        &mut self,
        field: &str,
        body: Value,
    ) -> Result<Verdict, Rejection> {
        let signed: SignedOp =
            serde_json::from_value(body).map_err(|_| Rejection("gov_malformed".into()))?;
        let Some(joined) = self.services.fields.get(field) else {
            return Ok(Verdict::Ignore);
        };
        match self
            .services
            .governance
            .intake(&joined.charter, signed.clone(), now_unix())
        {
            Ok(intake) => {
                enforce(&self.services, &self.threats, &signed, &intake);
                self.admission_taken = signed.op.kind == OpKind::Admit;
                Ok(Verdict::Accept)
            }
            Err(error) if error.code == GovCode::Replayed => Ok(Verdict::Ignore),
            Err(error) => Err(Rejection(error.code.as_str().to_owned())),
        }
    }

    /// Whether `did` is a voting member of `field` (founder, admin or admitted, in good
    /// standing).
    pub(super) fn votes(&self, field: &str, did: &str) -> bool {
        self.services
            .governance
            .standing(field, did)
            .is_some_and(|standing| standing.in_good_standing())
    }

    /// Endorses, in every field, the pending admissions of `did`.
    pub(super) async fn endorse_pending(&self, did: &str) {
        for field in self.services.fields.all() {
            self.endorse_pending_where(&field.charter.field_id(), |target| target == did)
                .await;
        }
    }

    /// Endorses the pending admissions of a field.
    pub(super) async fn endorse_pending_in(&self, field: &str) {
        self.endorse_pending_where(field, |_| true).await;
    }

    /// Signs each pending `admit` in `field` whose target `wanted` accepts, when endorsing is
    /// automatic, this gateway votes there, has not signed yet, and its own judgement of the
    /// newcomer gives it a tier in the field: admission is members' independent agreement.
    pub(super) async fn endorse_pending_where(&self, field: &str, wanted: impl Fn(&str) -> bool) {
        let me = self.services.key.did();
        if self.endorse != EndorseMode::Auto || !self.votes(field, &me) {
            return;
        }
        for (id, signed, progress) in self.services.governance.ops(field) {
            let op = &signed.op;
            if op.kind != OpKind::Admit
                || progress.committed.is_some()
                || signed.signatures.contains_key(&me)
                || !wanted(&op.target)
                || !self.verified_in(&op.target, field)
            {
                continue;
            }
            match self.publisher.endorse(field, &id).await {
                Ok(intake) => {
                    tracing::info!(op = %id, target = %op.target, signatures = intake.progress.signatures, required = intake.progress.required, "admission endorsed")
                }
                Err(error) => tracing::warn!(op = %id, %error, "admission not endorsed"),
            }
        }
    }

    /// Whether our own last judgement gives `did` a tier in `field`.
    pub(super) fn verified_in(&self, did: &str, field: &str) -> bool {
        self.services
            .peers
            .judged_tier(did, field)
            .is_some_and(|tier| tier >= 1)
    }

    pub(super) fn status_message(&self, body: &Value) -> Result<Verdict, Rejection> {
        let token = body.as_str().ok_or_else(|| Rejection("malformed".into()))?;
        match self.services.import_status_list(token) {
            Ok(Intake::Taken(_)) => Ok(Verdict::Accept),
            Ok(Intake::Unchanged(_)) => Ok(Verdict::Ignore),
            Err(error) => Err(Rejection(error.code().to_owned())),
        }
    }

    pub(super) fn within_rate(&mut self, publisher: &str) -> bool {
        let now = Instant::now();
        self.buckets
            .entry(publisher.to_owned())
            .or_insert(Bucket {
                tokens: RATE_BURST,
                at: now,
            })
            .take(now)
    }
}

/// A refusal that lies in our own state, not in the message, only ignores a relayed copy.
fn unless_relayed(
    verdict: Result<Verdict, Rejection>,
    relayed: bool,
) -> Result<Verdict, Rejection> {
    match verdict {
        Err(Rejection(code)) if relayed && !intrinsic(&code) => Ok(Verdict::Ignore),
        verdict => verdict,
    }
}

/// A gossip message past the checks that need no opening.
pub(super) struct Admitted {
    pub(super) field: String,
    pub(super) kind: TopicKind,
    pub(super) token: String,
}

/// A message opened: its publisher, its envelope and, for a threat report, the report
/// checked in itself.
pub(super) type Opening = Result<
    (
        String,
        Envelope,
        Option<Result<PreparedReport, ThreatError>>,
    ),
    Rejection,
>;

/// Opens admitted messages: their signatures in one batch, and threat reports checked in
/// themselves. Pure work, for any thread.
pub(super) fn open_admitted(
    verifier: &CredentialVerifier,
    threats: &Threats,
    admitted: &[Admitted],
    max_bytes: usize,
    now: i64,
) -> Vec<Opening> {
    let sealed: Vec<Sealed<'_>> = admitted
        .iter()
        .map(|message| Sealed {
            token: &message.token,
            field: &message.field,
            kind: message.kind,
        })
        .collect();
    open_envelopes(verifier, &sealed, max_bytes, now)
        .into_iter()
        .zip(admitted)
        .map(|(opened, message)| {
            let (publisher, envelope) = opened.map_err(|rejection| Rejection(rejection.code))?;
            let report = (message.kind == TopicKind::Threat)
                .then(|| threats.prepare(&message.field, &envelope.body, Origin::Gossip));
            Ok((publisher, envelope, report))
        })
        .collect()
}

/// What judging an opened message came to.
pub(super) enum Judged {
    /// A verdict.
    Done(Result<Verdict, Rejection>),
    /// A threat report to take with the others.
    Threat(PendingThreat),
}

/// A threat report judged so far, waiting for the book.
pub(super) struct PendingThreat {
    pub(super) field: String,
    pub(super) publisher: String,
    pub(super) relayed: bool,
    pub(super) report: PreparedReport,
}
