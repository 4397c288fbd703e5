//! Staged, mutual disclosure in one handshake (docs/PROTOCOL.md, "Handshake"), as pure logic: no
//! network, no disk. The handshake service drives it with the messages of
//! `/tfc/handshake/2`; the property test drives two of them against each other in memory.
//!
//! The order breaks the "who reveals first" cycle as OpenID for Verifiable Presentations
//! does: a side asks for credentials only in fields where the other side has standing (a
//! member in the registry, or an applicant to a field that screens applicants here), and
//! asks only for what the charter's `[disclosure]` rules entitle it to *as the other side
//! sees it*. Each ask is signed and carries its own nonce; the answer is a presentation for
//! that nonce holding exactly the asked types, or a refusal (an over-request is refused,
//! never trimmed). Each side judges what it received and tells the other its verdict; a
//! better verdict entitles the other side to ask again. The exchange ends when a round
//! brings nothing new, which it must: entitlements only grow, and types are finite.
//!
//! A field the other side names where it has no standing, or that this side has not joined,
//! is ignored alike: nothing in an answer tells the two apart.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::charter::Recipient;
use crate::credential::VerificationError;

/// Fields one message may name.
pub const MAX_FIELDS_PER_MESSAGE: usize = 16;
/// Credential types one ask may request.
pub const MAX_TYPES_PER_ASK: usize = 32;
/// Rounds (request and answer) after the hellos; the exchange stops there whatever is left.
pub const MAX_TURNS: u32 = 6;
/// How long an ask stays valid, in seconds.
pub const ASK_LIFETIME_SECS: i64 = 60;
/// The `kind` claim of a signed ask.
pub const ASK_KIND: &str = "tfc-ask";

/// The claims of a signed ask: who asks whom for which credential types in which field, and
/// the nonce the answering presentation must carry. Kept as evidence in the disclosure log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskClaims {
    /// The asker's DID.
    pub iss: String,
    /// The holder's DID.
    pub aud: String,
    /// Always [`ASK_KIND`].
    pub kind: String,
    /// The field id.
    pub field: String,
    /// The credential types asked for (none: the asker names the field and asks nothing yet).
    pub types: BTreeSet<String>,
    /// The nonce the presentation must answer.
    pub nonce: String,
    /// When it was made (Unix seconds).
    pub iat: i64,
    /// When it lapses (Unix seconds).
    pub exp: i64,
}

/// One side's answer to the other's latest ask in a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The field id.
    pub field: String,
    /// A `vp+jwt` for the ask's nonce, holding the asked types the holder has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presentation: Option<String>,
    /// Why the ask was refused (`over_request`), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// One side's judgement of the other in a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldVerdict {
    /// The field id.
    pub field: String,
    /// The tier the other side's credentials reach (0–3).
    pub tier: u8,
    /// Whether the other side is verified in the field (a member, or tier 1 or more).
    pub verified: bool,
    /// The credential types that verified and counted.
    #[serde(default)]
    pub counted: BTreeSet<String>,
}

/// What one message after the hellos carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// The opener's proof of key (an empty `vp+jwt` for the responder's hello nonce): in
    /// its first turn only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    /// Signed asks ([`AskClaims`]), one per field at most.
    #[serde(default)]
    pub asks: Vec<String>,
    /// Answers to the other side's latest asks.
    #[serde(default)]
    pub answers: Vec<Answer>,
    /// Verdicts that changed since last told.
    #[serde(default)]
    pub verdicts: Vec<FieldVerdict>,
}

impl Turn {
    /// Whether the turn tells the other side anything.
    pub fn has_news(&self) -> bool {
        !(self.asks.is_empty() && self.answers.is_empty() && self.verdicts.is_empty())
    }

    /// Whether the turn stays within the per-message bounds.
    pub fn within_bounds(&self) -> bool {
        self.asks.len() <= MAX_FIELDS_PER_MESSAGE
            && self.answers.len() <= MAX_FIELDS_PER_MESSAGE
            && self.verdicts.len() <= MAX_FIELDS_PER_MESSAGE
            && self
                .verdicts
                .iter()
                .all(|verdict| verdict.counted.len() <= MAX_TYPES_PER_ASK)
    }
}

/// A gateway's judgement of the credentials a peer presented in a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judgement {
    /// The tier they reach (after caps and bars).
    pub tier: u8,
    /// The types that verified and counted.
    pub counted: BTreeSet<String>,
    /// When the tier is next due to change (Unix seconds), if ever.
    pub next_change: Option<i64>,
    /// What is missing or failed for the next tier, one line each.
    pub unmet: Vec<String>,
}

/// Which way a presentation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// This gateway presented to the peer.
    Sent,
    /// The peer presented to this gateway.
    Received,
}

/// How a presentation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Presented (and, when received, the presentation verified).
    Completed,
    /// The holder refused the ask.
    Refused,
    /// The presentation did not verify.
    Failed,
}

/// One presentation sent or received, for the disclosure log: never claim values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disclosure {
    /// Which way it went.
    pub direction: Direction,
    /// The peer's DID.
    pub peer: String,
    /// The field id.
    pub field: String,
    /// The types the ask requested.
    pub requested: BTreeSet<String>,
    /// The types the presentation held.
    pub presented: BTreeSet<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The refusal or failure code, if any.
    pub reason: Option<String>,
    /// The signed ask it answered.
    pub evidence: String,
}

/// Why a negotiation stopped with a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// A stable code.
    pub code: String,
    /// Why.
    pub message: String,
}

impl Refusal {
    /// A refusal for a message that breaks the protocol.
    pub fn protocol(message: &str) -> Self {
        Self {
            code: "protocol".into(),
            message: message.into(),
        }
    }
}

impl From<VerificationError> for Refusal {
    fn from(error: VerificationError) -> Self {
        Self {
            code: error.code.to_string(),
            message: error.message,
        }
    }
}

/// What a negotiation needs of its side: the fields, the rules, the wallet, the keys, the
/// verifier, the log. The handshake service implements it over the gateway's party.
pub trait Party {
    /// This side's DID.
    fn did(&self) -> &str;
    /// The fields to name to `peer` before it names any: those where `peer` has standing
    /// here as a member (or is up for admission), and those this side applies to where
    /// `peer` screens applicants.
    fn fields_to_name(&self, peer: &str) -> Vec<String>;
    /// Whether this side answers `peer` in `field` when `peer` names it: this side belongs
    /// to the field and `peer` has standing in it here.
    fn answers(&self, peer: &str, field: &str) -> bool;
    /// What this side knows of `did` in `field` by roles and standing (tier and held types
    /// left at none: the negotiation fills them in).
    fn recipient(&self, field: &str, did: &str) -> Recipient;
    /// Whether `recipient` may receive `type_name` in `field`.
    fn allows(&self, field: &str, type_name: &str, recipient: &Recipient) -> bool;
    /// The credential types a presentation in `field` may carry.
    fn presentable(&self, field: &str) -> BTreeSet<String>;
    /// This side's credentials of `types`, as `(type, token)`.
    fn credentials(&self, types: &BTreeSet<String>) -> Vec<(String, String)>;
    /// A fresh nonce.
    fn nonce(&self) -> String;
    /// Signs `claims` as an ask.
    fn sign_ask(&self, claims: &AskClaims) -> Result<String, Refusal>;
    /// Opens an ask `peer` signed for this side.
    fn open_ask(&self, token: &str, peer: &str) -> Result<AskClaims, Refusal>;
    /// A `vp+jwt` of `tokens` for `audience` and `nonce`.
    fn present(&self, audience: &str, nonce: &str, tokens: &[String]) -> Result<String, Refusal>;
    /// Checks a presentation `peer` made for this side and `nonce`; returns its
    /// credentials, each as `(type, token)` (the type as the token claims it: judging
    /// verifies each).
    fn open_presentation(
        &self,
        token: &str,
        peer: &str,
        nonce: &str,
    ) -> Result<Vec<(String, String)>, Refusal>;
    /// Judges `peer`'s credentials in `field`.
    fn judge(&self, field: &str, peer: &str, tokens: &[String]) -> Judgement;
    /// Records a presentation sent or received.
    fn log(&self, disclosure: Disclosure);
}

/// The state of one field in a negotiation.
#[derive(Debug, Clone, Default)]
struct FieldNegotiation {
    /// Our latest ask: its nonce, types and signed token.
    our_ask: Option<(String, BTreeSet<String>, String)>,
    /// Every type we asked for.
    asked: BTreeSet<String>,
    /// Whether we asked at all (an empty ask names the field).
    named: bool,
    /// Credentials received, as `(type, token)`, only of types we asked for.
    received: Vec<(String, String)>,
    /// Whether the peer spoke in this field (asked, answered or judged): it engaged.
    peer_engaged: bool,
    /// Our judgement of the peer.
    judgement: Option<Judgement>,
    /// The verdict last told.
    told: Option<(u8, bool, BTreeSet<String>)>,
    /// The peer's ask we have not answered: its claims and token.
    their_ask: Option<(AskClaims, String)>,
    /// The peer's judgement of us.
    their_verdict: Option<FieldVerdict>,
    /// The types of our ask the peer refused, with its verdict of us then: asked again once
    /// that verdict changes (it learned of our admission, say), never before.
    refused: Option<(BTreeSet<String>, Option<FieldVerdict>)>,
}

/// The disclosure between this side and one peer.
#[derive(Debug, Clone)]
pub struct Negotiation {
    peer: String,
    /// The nonce of our hello: the peer's proof of key answers it.
    hello_nonce: String,
    proven: bool,
    fields: BTreeMap<String, FieldNegotiation>,
}

impl Negotiation {
    /// A negotiation with `peer`; `hello_nonce` is the nonce this side's hello carries.
    pub fn new(peer: &str, hello_nonce: String) -> Self {
        Self {
            peer: peer.to_owned(),
            hello_nonce,
            proven: false,
            fields: BTreeMap::new(),
        }
    }

    /// The peer's DID.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The nonce of this side's hello.
    pub fn hello_nonce(&self) -> &str {
        &self.hello_nonce
    }

    /// Whether the peer proved its key.
    pub fn proven(&self) -> bool {
        self.proven
    }

    /// Takes up the fields this side names to the peer first (see
    /// [`Party::fields_to_name`]); the next turn asks in each.
    pub fn name(&mut self, party: &dyn Party) {
        for field in party.fields_to_name(&self.peer) {
            self.fields.entry(field).or_default();
        }
    }

    /// The opener's first asks: the fields it names, each with what it may ask so far.
    pub fn open(&mut self, party: &dyn Party, now: i64) -> Result<Vec<String>, Refusal> {
        self.name(party);
        Ok(self.next(party, now)?.asks)
    }

    /// Checks the peer's proof of key: an empty presentation for our hello nonce.
    pub fn take_proof(&mut self, party: &dyn Party, proof: &str) -> Result<(), Refusal> {
        party.open_presentation(proof, &self.peer, &self.hello_nonce)?;
        self.proven = true;
        Ok(())
    }

    /// Takes what the peer sent: its asks, answers and verdicts. Fields it names where we
    /// do not answer are ignored without a trace.
    pub fn take(&mut self, party: &dyn Party, turn: &Turn, now: i64) -> Result<(), Refusal> {
        if !turn.within_bounds() {
            return Err(Refusal::protocol("a handshake turn past its bounds"));
        }
        self.take_asks(party, &turn.asks, now)?;
        for answer in &turn.answers {
            self.take_answer(party, answer)?;
        }
        for verdict in &turn.verdicts {
            if let Some(state) = self.fields.get_mut(&verdict.field) {
                state.peer_engaged = true;
                state.their_verdict = Some(verdict.clone());
            }
        }
        Ok(())
    }

    /// Takes the peer's asks: a field it names is engaged if we answer it there.
    pub fn take_asks(
        &mut self,
        party: &dyn Party,
        asks: &[String],
        now: i64,
    ) -> Result<(), Refusal> {
        if asks.len() > MAX_FIELDS_PER_MESSAGE {
            return Err(Refusal::protocol("too many asks in one message"));
        }
        for token in asks {
            let claims = party.open_ask(token, &self.peer)?;
            if claims.kind != ASK_KIND
                || claims.iss != self.peer
                || claims.aud != party.did()
                || claims.types.len() > MAX_TYPES_PER_ASK
                || claims.nonce.is_empty()
                || claims.nonce.len() > 128
                || claims.exp.saturating_sub(claims.iat)
                    > crate::credential::MAX_PRESENTATION_LIFETIME_SECS
            {
                return Err(Refusal::protocol("a malformed ask"));
            }
            let engaged =
                self.fields.contains_key(&claims.field) || party.answers(&self.peer, &claims.field);
            if !engaged {
                continue;
            }
            let state = self.fields.entry(claims.field.clone()).or_default();
            // Engaged before the lifetime is checked: a peer with standing learns why.
            state.peer_engaged = true;
            if claims.exp < now || claims.iat > now + crate::credential::CLOCK_SKEW_SECS {
                return Err(Refusal {
                    code: "presentation_expired".into(),
                    message: "an ask outside its lifetime (if it was fresh, one of the two clocks is off)".into(),
                });
            }
            state.their_ask = Some((claims, token.clone()));
        }
        Ok(())
    }

    fn take_answer(&mut self, party: &dyn Party, answer: &Answer) -> Result<(), Refusal> {
        let peer = self.peer.clone();
        let Some(state) = self.fields.get_mut(&answer.field) else {
            return Ok(());
        };
        let Some((nonce, asked, evidence)) = state.our_ask.take() else {
            return Err(Refusal::protocol("an answer to no ask"));
        };
        state.peer_engaged = true;
        let disclosure =
            |presented: BTreeSet<String>, outcome, reason: Option<String>| Disclosure {
                direction: Direction::Received,
                peer: peer.clone(),
                field: answer.field.clone(),
                requested: asked.clone(),
                presented,
                outcome,
                reason,
                evidence: evidence.clone(),
            };
        if let Some(code) = &answer.refused {
            state.refused = Some((asked.clone(), state.their_verdict.clone()));
            party.log(disclosure(
                BTreeSet::new(),
                Outcome::Refused,
                Some(truncated(code)),
            ));
            let tokens: Vec<String> = state
                .received
                .iter()
                .map(|(_, token)| token.clone())
                .collect();
            state.judgement = Some(party.judge(&answer.field, &peer, &tokens));
            return Ok(());
        }
        let Some(presentation) = &answer.presentation else {
            return Err(Refusal::protocol(
                "an answer with neither presentation nor refusal",
            ));
        };
        let credentials = match party.open_presentation(presentation, &peer, &nonce) {
            Ok(credentials) => credentials,
            Err(refusal) => {
                party.log(disclosure(
                    BTreeSet::new(),
                    Outcome::Failed,
                    Some(refusal.code.clone()),
                ));
                return Err(refusal);
            }
        };
        let presented: BTreeSet<String> =
            credentials.iter().map(|(kind, _)| kind.clone()).collect();
        party.log(disclosure(presented, Outcome::Completed, None));
        // What we did not ask for is not kept: it was not ours to receive.
        state.received.extend(
            credentials
                .into_iter()
                .filter(|(kind, _)| asked.contains(kind)),
        );
        let tokens: Vec<String> = state
            .received
            .iter()
            .map(|(_, token)| token.clone())
            .collect();
        state.judgement = Some(party.judge(&answer.field, &peer, &tokens));
        Ok(())
    }

    /// What this side says next: answers to the peer's asks, new asks, changed verdicts.
    pub fn next(&mut self, party: &dyn Party, now: i64) -> Result<Turn, Refusal> {
        let mut turn = Turn::default();
        let fields: Vec<String> = self.fields.keys().cloned().collect();
        for field in fields {
            if let Some(answer) = self.answer(party, &field)? {
                turn.answers.push(answer);
            }
            if let Some(ask) = self.ask(party, &field, now)? {
                turn.asks.push(ask);
            }
            if let Some(verdict) = self.verdict(party, &field) {
                turn.verdicts.push(verdict);
            }
        }
        Ok(turn)
    }

    /// What the peer is, as a recipient in `field`, by our judgement.
    fn recipient(&self, party: &dyn Party, field: &str) -> Recipient {
        let mut recipient = party.recipient(field, &self.peer);
        if let Some(judgement) = self
            .fields
            .get(field)
            .and_then(|state| state.judgement.as_ref())
        {
            recipient.tier = judgement.tier;
            recipient.held = judgement.counted.clone();
        }
        recipient
    }

    /// What we are, as a recipient in `field`, by the peer's verdict.
    fn ourselves(&self, party: &dyn Party, field: &str) -> Recipient {
        let mut recipient = party.recipient(field, party.did());
        if let Some(verdict) = self
            .fields
            .get(field)
            .and_then(|state| state.their_verdict.as_ref())
        {
            recipient.tier = verdict.tier;
            recipient.held = verdict.counted.clone();
        }
        recipient
    }

    fn answer(&mut self, party: &dyn Party, field: &str) -> Result<Option<Answer>, Refusal> {
        let recipient = self.recipient(party, field);
        let presentable = party.presentable(field);
        let Some(state) = self.fields.get_mut(field) else {
            return Ok(None);
        };
        let Some((claims, evidence)) = state.their_ask.take() else {
            return Ok(None);
        };
        let over: Vec<&String> = claims
            .types
            .iter()
            .filter(|kind| !presentable.contains(*kind) || !party.allows(field, kind, &recipient))
            .collect();
        let mut disclosure = Disclosure {
            direction: Direction::Sent,
            peer: self.peer.clone(),
            field: field.to_owned(),
            requested: claims.types.clone(),
            presented: BTreeSet::new(),
            outcome: Outcome::Refused,
            reason: Some("over_request".into()),
            evidence,
        };
        if !over.is_empty() {
            party.log(disclosure);
            return Ok(Some(Answer {
                field: field.to_owned(),
                presentation: None,
                refused: Some("over_request".into()),
            }));
        }
        let held = party.credentials(&claims.types);
        let tokens: Vec<String> = held.iter().map(|(_, token)| token.clone()).collect();
        let presentation = party.present(&self.peer, &claims.nonce, &tokens)?;
        disclosure.presented = held.into_iter().map(|(kind, _)| kind).collect();
        disclosure.outcome = Outcome::Completed;
        disclosure.reason = None;
        party.log(disclosure);
        Ok(Some(Answer {
            field: field.to_owned(),
            presentation: Some(presentation),
            refused: None,
        }))
    }

    fn ask(&mut self, party: &dyn Party, field: &str, now: i64) -> Result<Option<String>, Refusal> {
        let ourselves = self.ourselves(party, field);
        let entitled: BTreeSet<String> = party
            .presentable(field)
            .into_iter()
            .filter(|kind| party.allows(field, kind, &ourselves))
            .collect();
        let Some(state) = self.fields.get_mut(field) else {
            return Ok(None);
        };
        // One ask at a time per field: the next waits for the answer to this one.
        if state.our_ask.is_some() {
            return Ok(None);
        }
        if let Some((refused, under)) = &state.refused
            && state.their_verdict != *under
        {
            for kind in refused {
                state.asked.remove(kind);
            }
            state.refused = None;
        }
        let types: BTreeSet<String> = entitled.difference(&state.asked).cloned().collect();
        if types.is_empty() && state.named {
            return Ok(None);
        }
        let claims = AskClaims {
            iss: party.did().to_owned(),
            aud: self.peer.clone(),
            kind: ASK_KIND.into(),
            field: field.to_owned(),
            types: types.clone(),
            nonce: party.nonce(),
            iat: now,
            exp: now + ASK_LIFETIME_SECS,
        };
        let token = party.sign_ask(&claims)?;
        state.named = true;
        state.asked.extend(types.iter().cloned());
        state.our_ask = Some((claims.nonce, types, token.clone()));
        Ok(Some(token))
    }

    fn verdict(&mut self, party: &dyn Party, field: &str) -> Option<FieldVerdict> {
        let recipient = self.recipient(party, field);
        let state = self.fields.get_mut(field)?;
        // Told once we judged what the peer presented for our ask.
        let judgement = state.judgement.clone()?;
        let verified = recipient.verified();
        let current = (judgement.tier, verified, judgement.counted.clone());
        if state.told.as_ref() == Some(&current) {
            return None;
        }
        state.told = Some(current);
        Some(FieldVerdict {
            field: field.to_owned(),
            tier: judgement.tier,
            verified,
            counted: judgement.counted,
        })
    }

    /// The fields both sides engaged in.
    pub fn engaged(&self) -> impl Iterator<Item = &String> {
        self.fields
            .iter()
            .filter(|(_, state)| state.peer_engaged)
            .map(|(field, _)| field)
    }

    /// Whether any field is engaged on both sides.
    pub fn any_engaged(&self) -> bool {
        self.engaged().next().is_some()
    }

    /// Whether we still wait for an answer in some field.
    pub fn awaiting(&self) -> bool {
        self.fields
            .values()
            .any(|state| state.peer_engaged && state.our_ask.is_some())
    }

    /// Our judgement of the peer in every engaged field (no presentation yet: tier 0), with
    /// the credentials it presented there.
    pub fn outcome(&self, party: &dyn Party) -> BTreeMap<String, (Judgement, Vec<String>)> {
        self.fields
            .iter()
            .filter(|(_, state)| state.peer_engaged)
            .map(|(field, state)| {
                let tokens: Vec<String> = state
                    .received
                    .iter()
                    .map(|(_, token)| token.clone())
                    .collect();
                let judgement = state
                    .judgement
                    .clone()
                    .unwrap_or_else(|| party.judge(field, &self.peer, &tokens));
                (field.clone(), (judgement, tokens))
            })
            .collect()
    }

    /// The peer's verdicts of us, by field.
    pub fn their_verdicts(&self) -> BTreeMap<String, FieldVerdict> {
        self.fields
            .iter()
            .filter_map(|(field, state)| {
                state
                    .their_verdict
                    .clone()
                    .map(|verdict| (field.clone(), verdict))
            })
            .collect()
    }

    /// Whether `field` is verified on both sides: we verified the peer, it verified us.
    pub fn mutual_in(&self, party: &dyn Party, field: &str) -> bool {
        let ours = self.recipient(party, field).verified();
        let theirs = self
            .fields
            .get(field)
            .and_then(|state| state.their_verdict.as_ref())
            .is_some_and(|verdict| verdict.verified);
        ours && theirs
    }
}

/// A peer's code, cut to a sane length for the log.
fn truncated(code: &str) -> String {
    code.chars().take(64).collect()
}
