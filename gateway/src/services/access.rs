//! Deciding another organisation's request for a space this gateway holds: the principal is
//! built from the facts this gateway verified itself (the credentials presented in the last
//! handshake, re-verified now, and governance standing), the resource from the record's
//! labels, and the field's Cedar policy decides. Every decision is audited with its purpose.

use std::sync::Arc;

use libp2p::PeerId;

use crate::audit::Event;
use crate::credential::{CredentialVerifier, VerifiedCredential, VerifyContext, now_unix};
use crate::field::Field;
use crate::net::{DataRequest, DataResponse};
use crate::policy::{AccessRequest, Action, OrgFacts, Resource, SpaceRef};
use crate::services::{PeerRecord, Services};
use crate::spaces::{DataCode, DataError, Record, Spaces};

/// Decides and answers a request from `peer`.
pub fn answer(
    services: &Services,
    spaces: &Spaces,
    peer: PeerId,
    request: DataRequest,
) -> DataResponse {
    let (field, tier, purpose, action, object) = match &request {
        DataRequest::Get {
            field,
            tier,
            id,
            purpose,
        } => (field, *tier, purpose, Action::Read, id.clone()),
        DataRequest::List {
            field,
            tier,
            purpose,
            ..
        } => (field, *tier, purpose, Action::List, format!("space {tier}")),
        DataRequest::Chunk {
            field,
            tier,
            id,
            index,
            purpose,
            ..
        } => (
            field,
            *tier,
            purpose,
            Action::Read,
            format!("{id}#chunk{index}"),
        ),
        DataRequest::Submit { record, purpose } => (
            &record.field,
            record.tier,
            purpose,
            Action::Submit,
            record.id.clone(),
        ),
    };
    // A peer not verified in the field (a stranger, a member of another field, a barred
    // member) reads one refusal, whether or not this gateway belongs to the field.
    if !services.peer_verified_in(peer, field) {
        services.audit.record(Event {
            actor: principal_did(services, peer),
            action: format!("data.{}", action.as_str()),
            object,
            decision: "deny".into(),
            reason: "not_verified".into(),
            purpose: Some(purpose.clone()),
            field: Some(field.clone()),
            ..Event::default()
        });
        return DataResponse::Refused {
            code: crate::services::REFUSED.into(),
            reason: crate::services::REFUSED.into(),
        };
    }
    let outcome = decide(
        services, spaces, peer, &request, field, tier, purpose, action,
    );
    let (decision, code, reason) = match &outcome {
        Ok((_, reason)) => ("allow", "ok".to_owned(), reason.clone()),
        Err(error) => (
            "deny",
            error.code.as_str().to_owned(),
            error.message.clone(),
        ),
    };
    services.audit.record(Event {
        actor: principal_did(services, peer),
        action: format!("data.{}", action.as_str()),
        object,
        decision: decision.into(),
        reason: if code == "ok" {
            reason.clone()
        } else {
            format!("{code}: {reason}")
        },
        purpose: Some(purpose.clone()),
        field: Some(field.clone()),
        ..Event::default()
    });
    match outcome {
        Ok((_, reason)) if matches!(request, DataRequest::Chunk { .. }) => {
            chunk(spaces, &request, reason)
        }
        Ok((records, reason)) => DataResponse::Allowed { records, reason },
        Err(error) => DataResponse::Refused {
            code,
            reason: error.message,
        },
    }
}

/// The chunk an allowed `Chunk` request asked for.
fn chunk(spaces: &Spaces, request: &DataRequest, reason: String) -> DataResponse {
    let DataRequest::Chunk { sha256, index, .. } = request else {
        return DataResponse::Refused {
            code: "internal".into(),
            reason: "not a chunk request".into(),
        };
    };
    match spaces.chunk(sha256, *index) {
        Ok((bytes, last)) => {
            use base64::Engine;
            DataResponse::Chunk {
                data: base64::engine::general_purpose::STANDARD.encode(&*bytes),
                last,
                reason,
            }
        }
        Err(error) => DataResponse::Refused {
            code: error.code.as_str().into(),
            reason: error.message,
        },
    }
}

/// The DID behind `peer`: its record's, else the one its key spells (a stranger's).
fn principal_did(services: &Services, peer: PeerId) -> String {
    services
        .peers
        .get(peer)
        .map(|record| record.did)
        .or_else(|| crate::identity::PublicKey::did_of_peer(&peer))
        .unwrap_or_else(|| peer.to_string())
}

#[allow(clippy::too_many_arguments)]
fn decide(
    services: &Services,
    spaces: &Spaces,
    peer: PeerId,
    request: &DataRequest,
    field_id: &str,
    tier: u8,
    purpose: &str,
    action: Action,
) -> Result<(Vec<Record>, String), DataError> {
    let denied = |message: String| DataError {
        code: DataCode::Denied,
        message,
    };
    let record = services
        .peers
        .get(peer)
        .ok_or_else(|| denied("this gateway has not verified you".into()))?;
    let field = services
        .fields
        .get(field_id)
        .ok_or_else(|| denied("this gateway has not joined that field".into()))?;
    if services.is_barred(field_id, &record.did) {
        return Err(denied(format!(
            "{} is revoked or suspended in the field",
            record.did
        )));
    }
    let principal = facts(services, &field, &record)?;
    let engine = services.policy_engine(&field);
    let threat_level = services.threat_effects.threat_level(field_id);
    let quarantined = |stored: &Record| {
        stored.attachments.iter().any(|attachment| {
            services
                .threat_effects
                .quarantined(field_id, &attachment.sha256)
        })
    };
    let refuse_quarantined = |stored: &Record| {
        if quarantined(stored) {
            Err(DataError {
                code: DataCode::Quarantined,
                message: format!(
                    "record {} has an attachment under a threat quarantine",
                    stored.id
                ),
            })
        } else {
            Ok(())
        }
    };
    let space = SpaceRef {
        field: field_id.to_owned(),
        tier,
    };
    let decide_on = |resource: Resource| {
        let Some(engine) = &engine else {
            return Err(denied(
                "the field has no policy: every access is denied".into(),
            ));
        };
        let request = AccessRequest {
            principal: principal.clone(),
            action,
            resource,
            purpose: purpose.to_owned(),
            threat_level,
        };
        let decision = engine.decide(&request);
        services.metrics.count(
            crate::metrics::DECISIONS,
            &format!("data:{}", if decision.allowed { "allow" } else { "deny" }),
        );
        if decision.allowed {
            Ok(decision.reason)
        } else {
            Err(denied(decision.refusal_trace(&request)))
        }
    };
    match request {
        DataRequest::Get { id, .. } => {
            let stored = spaces.get(field_id, tier, id)?;
            refuse_quarantined(&stored)?;
            let reason = decide_on(Resource::Record {
                space,
                labels: stored.policy_labels(),
            })?;
            Ok((vec![stored], reason))
        }
        DataRequest::Chunk { id, sha256, .. } => {
            let stored = spaces.get(field_id, tier, id)?;
            refuse_quarantined(&stored)?;
            if !stored
                .attachments
                .iter()
                .any(|attachment| &attachment.sha256 == sha256)
            {
                return Err(DataError {
                    code: DataCode::NotFound,
                    message: format!("record {id} has no attachment {sha256}"),
                });
            }
            let reason = decide_on(Resource::Record {
                space,
                labels: stored.policy_labels(),
            })?;
            Ok((Vec::new(), reason))
        }
        DataRequest::List { filter, .. } => {
            let reason = decide_on(Resource::Space {
                space: space.clone(),
            })?;
            let readable = spaces
                .ids(field_id, tier)?
                .into_iter()
                .filter_map(|id| spaces.get(field_id, tier, &id).ok())
                .filter(|stored| filter.matches(&stored.labels) && !quarantined(stored))
                .filter(|stored| {
                    let resource = Resource::Record {
                        space: space.clone(),
                        labels: stored.policy_labels(),
                    };
                    engine.as_ref().is_some_and(|engine| {
                        engine
                            .decide(&AccessRequest {
                                principal: principal.clone(),
                                action: Action::Read,
                                resource,
                                purpose: purpose.to_owned(),
                                threat_level,
                            })
                            .allowed
                    })
                })
                .collect();
            Ok((readable, reason))
        }
        DataRequest::Submit {
            record: submitted, ..
        } => {
            if submitted.writer != record.did || submitted.owner != record.did {
                return Err(denied(
                    "a submission must be written and owned by its sender".into(),
                ));
            }
            let reason = decide_on(Resource::Record {
                space,
                labels: submitted.policy_labels(),
            })?;
            spaces.keep(submitted)?;
            Ok((Vec::new(), reason))
        }
    }
}

/// The principal's facts: its presented credentials, verified again now against the field's
/// issuers and the status lists held, and its tier and standing in the field.
fn facts(
    services: &Services,
    field: &Arc<Field>,
    record: &PeerRecord,
) -> Result<OrgFacts, DataError> {
    let charter = services.effective_charter(field);
    let trust = charter.issuer_trust();
    let verifier = CredentialVerifier::new();
    let credentials: Vec<VerifiedCredential> = services.with_status_lists(|status_lists| {
        let context = VerifyContext {
            now: now_unix(),
            trust: Some(&trust),
            status_lists,
            status_max_age_secs: charter.status_max_age_secs,
        };
        record
            .credentials_in(&charter.field_id())
            .iter()
            .filter_map(|token| verifier.verify_credential(token, &context).ok())
            .collect()
    });
    let tier = record.tiers.get(&charter.field_id()).copied().unwrap_or(0);
    let mut facts = OrgFacts::from_verified(&record.did, tier, &credentials, &charter);
    facts.suspended = services.is_barred(&charter.field_id(), &record.did);
    facts.vulnerable = services.vulnerable(
        &charter.field_id(),
        &record.did,
        record.credentials_in(&charter.field_id()),
    );
    Ok(facts)
}

/// Why this gateway would decide a request from `did` as it would, now: for the operator
/// (`tfcctl data why`), who may see everything the decision rests on, labels included.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhyAnswer {
    /// Whether the request would be allowed.
    pub allowed: bool,
    /// `ok`, or the refusal code.
    pub code: String,
    /// The reason, with the policies that decided.
    pub reason: String,
    /// The `@id`s of the policies that decided (empty when none permits it, or before Cedar).
    pub policies: Vec<String>,
    /// The request as Cedar saw it: the asker's verified facts, the action, the resource and
    /// its labels, the purpose and the threat level; absent when refused before Cedar.
    #[schema(value_type = Option<Object>)]
    pub request: Option<AccessRequest>,
}

/// Decides, without acting or answering anyone, the request `did` would make: `action` on
/// record `id` (or on the space) of `field`'s tier-`tier` space, for `purpose`.
#[allow(clippy::too_many_arguments)]
pub fn why(
    services: &Services,
    spaces: &Spaces,
    did: &str,
    field_id: &str,
    tier: u8,
    id: Option<&str>,
    action: Action,
    purpose: &str,
) -> WhyAnswer {
    let refused = |code: &str, reason: String| WhyAnswer {
        allowed: false,
        code: code.to_owned(),
        reason,
        policies: Vec::new(),
        request: None,
    };
    let Some(record) = services.peers.of_did(did) else {
        return refused(
            "not_verified",
            format!("this gateway has not verified {did}"),
        );
    };
    if !services.verified_in(&record, field_id) {
        return refused(
            "not_verified",
            format!(
                "{did} is not verified in this field: its peers get one refusal, whatever they ask"
            ),
        );
    }
    let Some(field) = services.fields.get(field_id) else {
        return refused(
            DataCode::Denied.as_str(),
            "this gateway has not joined that field".into(),
        );
    };
    let principal = match facts(services, &field, &record) {
        Ok(principal) => principal,
        Err(error) => return refused(error.code.as_str(), error.message),
    };
    let Some(engine) = services.policy_engine(&field) else {
        return refused(
            DataCode::Denied.as_str(),
            "the field has no policy: every access is denied".into(),
        );
    };
    let space = SpaceRef {
        field: field_id.to_owned(),
        tier,
    };
    let resource = match id {
        Some(id) => match spaces.get(field_id, tier, id) {
            Ok(stored) => Resource::Record {
                space,
                labels: stored.policy_labels(),
            },
            Err(error) => return refused(error.code.as_str(), error.message),
        },
        None => Resource::Space { space },
    };
    let request = AccessRequest {
        principal,
        action,
        resource,
        purpose: purpose.to_owned(),
        threat_level: services.threat_effects.threat_level(field_id),
    };
    let decision = engine.decide(&request);
    WhyAnswer {
        allowed: decision.allowed,
        code: if decision.allowed {
            "ok"
        } else {
            DataCode::Denied.as_str()
        }
        .to_owned(),
        reason: if decision.allowed {
            decision.reason.clone()
        } else {
            decision.refusal_trace(&request)
        },
        policies: decision.policies,
        request: Some(request),
    }
}
