//! `tfc-gateway demo`: an offline walkthrough of the credential layer, played step by step.
//!
//! Every step states the outcome it expects; the demo exits non-zero if any differs, so it
//! is also a test. (The networked field of several gateways comes with the daemon.)

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};
use tfc_gateway::charter::IssuerTrust;
use tfc_gateway::credential::{
    Challenge, CredentialDraft, CredentialVerifier, ErrorCode, ReplayCache, StatusEntry,
    StatusList, StatusLists, StatusPurpose, VerificationError, VerifyContext, create_presentation,
    issue_credential, now_unix, unverified_payload,
};
use tfc_gateway::identity::{KeyAlgorithm, KeyPair};

const DAY: i64 = 86_400;
const STATUS_LIST_ID: &str = "https://credit-bureau.example/status/revocation/1";

/// One step's expectation and outcome.
#[derive(Serialize)]
struct Step {
    step: String,
    expected: String,
    actual: String,
    ok: bool,
}

struct Org {
    name: &'static str,
    key: KeyPair,
}

impl Org {
    fn new(name: &'static str, algorithm: KeyAlgorithm) -> Self {
        Self {
            name,
            key: KeyPair::generate(algorithm),
        }
    }
}

struct Story {
    now: i64,
    verifier: CredentialVerifier,
    trust: IssuerTrust,
    lists: StatusLists,
    replay: ReplayCache,
    steps: Vec<Step>,
    quiet: bool,
}

impl Story {
    fn say(&self, text: &str) {
        if !self.quiet {
            println!("{text}");
        }
    }

    fn record(
        &mut self,
        step: &str,
        expected: Option<ErrorCode>,
        result: Result<String, VerificationError>,
    ) {
        let expected_text = expected.map_or_else(|| "accepted".to_owned(), |code| code.to_string());
        let (actual, detail) = match &result {
            Ok(detail) => ("accepted".to_owned(), detail.clone()),
            Err(error) => (error.code.to_string(), error.message.clone()),
        };
        let ok = actual == expected_text;
        let mark = if ok { "✓" } else { "✗ UNEXPECTED" };
        self.say(&format!("   {mark} {actual}: {detail}\n"));
        self.steps.push(Step {
            step: step.into(),
            expected: expected_text,
            actual,
            ok,
        });
    }

    fn context(&self) -> VerifyContext<'_> {
        VerifyContext {
            now: self.now,
            trust: Some(&self.trust),
            status_lists: &self.lists,
            status_max_age_secs: DAY,
        }
    }

    fn issue(
        &self,
        issuer: &Org,
        holder: &Org,
        type_name: &str,
        claims: Value,
        status: Option<usize>,
    ) -> anyhow::Result<String> {
        let draft = CredentialDraft {
            type_name: type_name.into(),
            subject: holder.key.did(),
            claims: claims.as_object().cloned().unwrap_or_default(),
            valid_from: self.now - 30 * DAY,
            valid_until: Some(self.now + 365 * DAY),
            status: status
                .map(|index| {
                    vec![StatusEntry::new(
                        STATUS_LIST_ID,
                        StatusPurpose::Revocation,
                        index,
                    )]
                })
                .unwrap_or_default(),
        };
        Ok(issue_credential(&issuer.key, &draft, self.now)?)
    }

    /// The verifier challenges the holder, the holder presents, the verifier checks.
    /// Returns the presentation and the nonce it answered.
    fn present(
        &mut self,
        step: &str,
        holder: &Org,
        verifier: &Org,
        credentials: &[String],
        expected: Option<ErrorCode>,
    ) -> anyhow::Result<(String, String)> {
        let nonce = uuid_nonce();
        let audience = verifier.key.did();
        let challenge = Challenge {
            audience: &audience,
            nonce: &nonce,
        };
        let token = create_presentation(&holder.key, challenge, credentials, self.now, 120)?;
        self.say(&format!("→ {step}"));
        let bindings: HashMap<String, String> = HashMap::new();
        let result = self
            .verifier
            .verify_presentation(&token, challenge, &self.context(), &self.replay, &bindings)
            .map(|presentation| {
                let types: Vec<&str> = presentation
                    .credentials
                    .iter()
                    .map(|c| c.type_name.as_str())
                    .collect();
                format!("{} proved {}", holder.name, types.join(", "))
            });
        self.record(step, expected, result);
        Ok((token, nonce))
    }
}

fn uuid_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Runs the walkthrough; returns whether every step went as expected.
pub(crate) fn run(json_output: bool) -> anyhow::Result<bool> {
    let now = now_unix();
    let registrar = Org::new("Legal Affairs Bureau (registrar)", KeyAlgorithm::Ed25519);
    let bureau = Org::new("Teikoku Credit Bureau", KeyAlgorithm::P256);
    let screener = Org::new("Screening agency", KeyAlgorithm::Ed25519);
    let city = Org::new("Example City", KeyAlgorithm::Ed25519);
    let contractor_a = Org::new("Contractor A (qualified)", KeyAlgorithm::Ed25519);
    let contractor_b = Org::new("Contractor B (self-rated)", KeyAlgorithm::Ed25519);
    let mut trust = IssuerTrust::default();
    trust.trust(
        &registrar.key.did(),
        ["OrganizationIdentityCredential".to_owned()],
    );
    trust.trust(&bureau.key.did(), ["CreditRatingCredential".to_owned()]);
    trust.trust(
        &screener.key.did(),
        ["AntisocialForcesScreeningCredential".to_owned()],
    );
    let mut story = Story {
        now,
        verifier: CredentialVerifier::new(),
        trust,
        lists: StatusLists::new(),
        replay: ReplayCache::default(),
        steps: Vec::new(),
        quiet: json_output,
    };
    story.say("TFC credential walkthrough (offline): Example City screens contractors for a subsidy programme.\n");
    for org in [
        &registrar,
        &bureau,
        &screener,
        &city,
        &contractor_a,
        &contractor_b,
    ] {
        story.say(&format!("  {:<34} {}", org.name, org.key.did()));
    }
    story.say("");

    let identity = |number: &str, name: &str| json!({"corporateNumber": number, "legalName": name, "address": "東京都千代田区霞が関3-1-1", "representative": "山田 太郎"});
    let a_credentials = vec![
        story.issue(&registrar, &contractor_a, "OrganizationIdentityCredential", identity("7000012050002", "株式会社エー建設"), None)?,
        story.issue(&bureau, &contractor_a, "CreditRatingCredential", json!({"grade": "B", "score": 78, "assessedOn": "2026-04-01"}), Some(12))?,
        story.issue(&screener, &contractor_a, "AntisocialForcesScreeningCredential", json!({"result": "clear", "screenedOn": "2026-04-02", "method": "database and interview"}), None)?,
    ];
    let b_credentials = vec![
        story.issue(
            &registrar,
            &contractor_b,
            "OrganizationIdentityCredential",
            identity("9010401123456", "株式会社ビー工務店"),
            None,
        )?,
        story.issue(
            &contractor_b,
            &contractor_b,
            "CreditRatingCredential",
            json!({"grade": "A", "score": 99, "assessedOn": "2026-04-01"}),
            None,
        )?,
    ];
    story.say("Issuers signed 5 credentials; the credit bureau (P-256 key) publishes a revocation status list.\n");
    let mut list = StatusList::new(
        STATUS_LIST_ID,
        &bureau.key.did(),
        StatusPurpose::Revocation,
        0,
        now - 60,
    );
    story.lists.insert(
        story
            .verifier
            .verify_status_list(&list.issue(&bureau.key)?, now)?,
    );

    let (token, nonce) = story.present(
        "A presents identity, credit and screening to the city",
        &contractor_a,
        &city,
        &a_credentials,
        None,
    )?;
    story.say("→ Someone replays A's presentation");
    let bindings: HashMap<String, String> = HashMap::new();
    let audience = city.key.did();
    let challenge = Challenge {
        audience: &audience,
        nonce: &nonce,
    };
    let replay_result = story
        .verifier
        .verify_presentation(
            &token,
            challenge,
            &story.context(),
            &story.replay,
            &bindings,
        )
        .map(|_| String::new());
    story.record(
        "A's presentation is replayed",
        Some(ErrorCode::Replayed),
        replay_result,
    );
    story.present(
        "B presents a credit rating it issued to itself",
        &contractor_b,
        &city,
        &b_credentials,
        Some(ErrorCode::SelfDeclaredNotAccepted),
    )?;
    let mut forged = a_credentials.clone();
    forged[1] = tamper_score(&forged[1]);
    story.present(
        "A's credit score is edited from 78 to 95 after signing",
        &contractor_a,
        &city,
        &forged,
        Some(ErrorCode::BadSignature),
    )?;
    story.present(
        "B presents A's credentials as its own",
        &contractor_b,
        &city,
        &a_credentials,
        Some(ErrorCode::HolderMismatch),
    )?;
    list.set(12, true)?;
    list.issued_at = now;
    story.lists.insert(
        story
            .verifier
            .verify_status_list(&list.issue(&bureau.key)?, now)?,
    );
    story.say(
        "The credit bureau revokes A's credit rating (bit 12) and re-publishes its status list.\n",
    );
    story.present(
        "A presents again after the revocation",
        &contractor_a,
        &city,
        &a_credentials,
        Some(ErrorCode::Revoked),
    )?;

    let all_ok = story.steps.iter().all(|step| step.ok);
    if json_output {
        println!("{}", json!({"ok": all_ok, "steps": story.steps}));
    } else {
        println!("{:<58} {:<28} {:<28}", "step", "expected", "actual");
        for step in &story.steps {
            let mark = if step.ok { "ok" } else { "UNEXPECTED" };
            println!(
                "{:<58} {:<28} {:<28} {mark}",
                step.step, step.expected, step.actual
            );
        }
        let passed = story.steps.iter().filter(|step| step.ok).count();
        println!(
            "\n{passed} of {} steps went as expected.",
            story.steps.len()
        );
    }
    Ok(all_ok)
}

/// Re-encodes a credential's payload with a better score, keeping the original signature.
fn tamper_score(token: &str) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    if let Some(mut payload) = unverified_payload(token) {
        if let Some(Value::Object(subject)) = payload.get_mut("credentialSubject") {
            subject.insert("score".into(), 95.into());
        }
        parts[1] = engine.encode(Value::Object(payload).to_string());
    }
    parts.join(".")
}
