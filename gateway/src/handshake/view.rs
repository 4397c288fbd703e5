//! The gateway's side of a negotiation: [`PartyView`] answers the negotiation's questions
//! from the [`Services`] (fields, rules, wallet, standing) and signs and verifies with its
//! key; [`judge_in`] turns the credentials a peer presented in a field into a tier.

use std::cell::RefCell;
use std::collections::BTreeSet;

use serde_json::Value;

use super::Services;
use crate::charter::Recipient;
use crate::credential::{
    CLOCK_SKEW_SECS, Challenge, CredentialVerifier, MAX_PRESENTATION_LIFETIME_SECS,
    create_presentation, credential_type, now_unix, sign_message,
};
use crate::field::Field;
use crate::negotiation::{AskClaims, Disclosure, Judgement, Party, Refusal};

/// Presentations made in a handshake live this long.
pub(super) const PRESENTATION_LIFETIME_SECS: i64 = 60;
/// Largest signed ask accepted, in bytes.
const MAX_ASK_LEN: usize = 8 * 1024;

/// What one step of a handshake must make durable before it goes on.
#[derive(Debug, Default)]
pub(super) struct StepWrites {
    /// Presentations sent or received, for the disclosure log.
    pub(super) disclosures: Vec<Disclosure>,
    /// Nonces of presentations accepted, each with when it may be forgotten (Unix seconds):
    /// kept in the `replay` tree so that none is accepted again after a restart.
    pub(super) nonces: Vec<(String, i64)>,
}

impl StepWrites {
    /// Whether there is nothing to write.
    pub(super) fn is_empty(&self) -> bool {
        self.disclosures.is_empty() && self.nonces.is_empty()
    }

    /// Adds `later`'s writes after these.
    pub(super) fn append(&mut self, later: StepWrites) {
        self.disclosures.extend(later.disclosures);
        self.nonces.extend(later.nonces);
    }
}

/// The negotiation's view of this gateway, for one step: what the step must write (the
/// disclosures it makes, the nonces it uses up) is kept for the caller to write at once.
pub(super) struct PartyView<'a> {
    services: &'a Services,
    did: &'a str,
    verifier: &'a CredentialVerifier,
    writes: RefCell<StepWrites>,
}

impl<'a> PartyView<'a> {
    pub(super) fn new(
        services: &'a Services,
        did: &'a str,
        verifier: &'a CredentialVerifier,
    ) -> Self {
        Self {
            services,
            did,
            verifier,
            writes: RefCell::default(),
        }
    }

    /// What the step did since the view was made (or last taken) that must be written.
    pub(super) fn take_writes(&self) -> StepWrites {
        self.writes.take()
    }
}

impl Party for PartyView<'_> {
    fn did(&self) -> &str {
        self.did
    }

    fn fields_to_name(&self, peer: &str) -> Vec<String> {
        self.services.fields_to_name(peer)
    }

    fn answers(&self, peer: &str, field: &str) -> bool {
        self.services.answers(peer, field)
    }

    fn recipient(&self, field: &str, did: &str) -> Recipient {
        match self.services.fields.get(field) {
            Some(joined) => self.services.recipient(&joined, did),
            // Not a field of ours: nobody in it receives anything.
            None => Recipient {
                barred: true,
                ..Recipient::default()
            },
        }
    }

    fn allows(&self, field: &str, type_name: &str, recipient: &Recipient) -> bool {
        self.services
            .fields
            .get(field)
            .is_some_and(|joined| joined.charter.disclosure.allows(type_name, recipient))
    }

    fn presentable(&self, field: &str) -> BTreeSet<String> {
        self.services
            .fields
            .get(field)
            .map(|joined| joined.charter.presentable_types())
            .unwrap_or_default()
    }

    fn credentials(&self, types: &BTreeSet<String>) -> Vec<(String, String)> {
        self.services.wallet.credentials_of(types)
    }

    fn nonce(&self) -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    fn sign_ask(&self, claims: &AskClaims) -> Result<String, Refusal> {
        sign_message(&self.services.key, claims).map_err(|error| Refusal {
            code: "sign_failed".into(),
            message: error.to_string(),
        })
    }

    fn open_ask(&self, token: &str, peer: &str) -> Result<AskClaims, Refusal> {
        let (signer, payload) = self.verifier.open_message(token, MAX_ASK_LEN)?;
        if signer != peer {
            return Err(Refusal::protocol("an ask signed by another key"));
        }
        serde_json::from_value(Value::Object(payload))
            .map_err(|_| Refusal::protocol("an ask of the wrong shape"))
    }

    fn present(&self, audience: &str, nonce: &str, tokens: &[String]) -> Result<String, Refusal> {
        create_presentation(
            &self.services.key,
            Challenge { audience, nonce },
            tokens,
            now_unix(),
            PRESENTATION_LIFETIME_SECS,
        )
        .map_err(|error| Refusal {
            code: "sign_failed".into(),
            message: error.to_string(),
        })
    }

    fn open_presentation(
        &self,
        token: &str,
        peer: &str,
        nonce: &str,
    ) -> Result<Vec<(String, String)>, Refusal> {
        let opened = self
            .verifier
            .open_presentation(
                token,
                Challenge {
                    audience: self.did,
                    nonce,
                },
                now_unix(),
                self.services.peers.replay(),
            )
            .inspect_err(|error| {
                self.services
                    .metrics
                    .count(crate::metrics::VERIFICATIONS, error.code.as_str())
            })?;
        self.services
            .metrics
            .count(crate::metrics::VERIFICATIONS, "ok");
        let forget_after = now_unix() + MAX_PRESENTATION_LIFETIME_SECS + CLOCK_SKEW_SECS;
        self.writes
            .borrow_mut()
            .nonces
            .push((nonce.to_owned(), forget_after));
        if opened.holder != peer {
            return Err(Refusal {
                code: "identity_mismatch".into(),
                message: format!("a presentation by {}, not by {peer}", opened.holder),
            });
        }
        Ok(opened
            .credentials
            .into_iter()
            .map(|token| (credential_type(&token).unwrap_or_default(), token))
            .collect())
    }

    fn judge(&self, field: &str, peer: &str, tokens: &[String]) -> Judgement {
        match self.services.fields.get(field) {
            Some(joined) => judge_in(
                self.services,
                self.verifier,
                &joined,
                peer,
                tokens,
                now_unix(),
            ),
            None => Judgement::default(),
        }
    }

    fn log(&self, disclosure: Disclosure) {
        self.writes.borrow_mut().disclosures.push(disclosure);
    }
}

/// The tier `did`'s `tokens` reach in `field` as of `now` (see
/// [`Services::explain_tier`]).
pub(super) fn judge_in(
    services: &Services,
    verifier: &CredentialVerifier,
    field: &Field,
    did: &str,
    tokens: &[String],
    now: i64,
) -> Judgement {
    services
        .explain_tier(verifier, field, did, tokens, now)
        .judgement()
}
