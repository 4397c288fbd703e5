//! Credential and presentation verification beside raw signature verification of the same
//! signing inputs, measured in the same run.
//!
//! `cargo bench -p tfc-gateway --bench credential` runs the criterion groups, then an
//! interleaved comparison that prints each figure beside its baseline and their ratio
//! (target: credential verification at ≥ 70% of the raw Ed25519 rate).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::Criterion;
use tfc_gateway::credential::{
    Challenge, CredentialDraft, CredentialVerifier, ReplayCache, StatusLists, VerifyContext,
    create_presentation, issue_credential, now_unix,
};
use tfc_gateway::identity::{KeyAlgorithm, KeyPair, PublicKey};

/// One signed token and what a raw verifier needs for the same signature.
struct Signed {
    token: String,
    key: PublicKey,
}

impl Signed {
    fn raw_parts(&self) -> (String, Vec<u8>) {
        let (signing_input, signature) = self.token.rsplit_once('.').unwrap_or_default();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap_or_default();
        (signing_input.to_owned(), signature)
    }
}

/// Raw verification of one signature: the physical limit of any credential check.
struct RawCheck {
    signing_input: String,
    signature: Vec<u8>,
    key: PublicKey,
}

impl RawCheck {
    fn new(signed: &Signed) -> Self {
        let (signing_input, signature) = signed.raw_parts();
        Self {
            signing_input,
            signature,
            key: signed.key.clone(),
        }
    }

    fn verify(&self) -> bool {
        self.key
            .verify(self.signing_input.as_bytes(), &self.signature)
    }
}

struct Fixture {
    now: i64,
    verifier: CredentialVerifier,
    lists: StatusLists,
    audience: String,
    ed25519_credential: Signed,
    es256_credential: Signed,
    presentation: Signed,
    presentation_raw: Vec<RawCheck>,
}

fn credential(
    issuer: &KeyPair,
    holder: &KeyPair,
    type_name: &str,
    claims: serde_json::Value,
    now: i64,
) -> Signed {
    let draft = CredentialDraft {
        type_name: type_name.into(),
        subject: holder.did(),
        claims: claims.as_object().cloned().unwrap_or_default(),
        valid_from: now - 86_400,
        valid_until: Some(now + 365 * 86_400),
        status: vec![],
    };
    Signed {
        token: issue_credential(issuer, &draft, now).expect("issue"),
        key: issuer.public_key(),
    }
}

impl Fixture {
    fn new() -> Self {
        let now = now_unix();
        let ed = || KeyPair::generate(KeyAlgorithm::Ed25519);
        let (registrar, bureau, screener, holder, verifier_key) = (ed(), ed(), ed(), ed(), ed());
        let p256_bureau = KeyPair::generate(KeyAlgorithm::P256);
        let identity = serde_json::json!({
            "corporateNumber": "7000012050002", "legalName": "株式会社テスト建設",
            "address": "東京都千代田区霞が関3-1-1", "representative": "山田 太郎",
        });
        let credit = serde_json::json!({"grade": "B", "score": 72, "assessedOn": "2026-04-01"});
        let screening = serde_json::json!({"result": "clear", "screenedOn": "2026-04-02", "method": "database"});
        let tax = serde_json::json!({"noArrears": true, "period": "2025"});
        let four = [
            credential(
                &registrar,
                &holder,
                "OrganizationIdentityCredential",
                identity,
                now,
            ),
            credential(
                &bureau,
                &holder,
                "CreditRatingCredential",
                credit.clone(),
                now,
            ),
            credential(
                &screener,
                &holder,
                "AntisocialForcesScreeningCredential",
                screening,
                now,
            ),
            credential(&registrar, &holder, "TaxComplianceCredential", tax, now),
        ];
        let audience = verifier_key.did();
        let tokens: Vec<String> = four.iter().map(|signed| signed.token.clone()).collect();
        let challenge = Challenge {
            audience: &audience,
            nonce: "bench-nonce",
        };
        let presentation = Signed {
            token: create_presentation(&holder, challenge, &tokens, now, 300).expect("present"),
            key: holder.public_key(),
        };
        let mut presentation_raw: Vec<RawCheck> = four.iter().map(RawCheck::new).collect();
        presentation_raw.push(RawCheck::new(&presentation));
        Self {
            now,
            verifier: CredentialVerifier::new(),
            lists: StatusLists::new(),
            audience,
            ed25519_credential: credential(
                &bureau,
                &holder,
                "CreditRatingCredential",
                credit.clone(),
                now,
            ),
            es256_credential: credential(
                &p256_bureau,
                &holder,
                "CreditRatingCredential",
                credit,
                now,
            ),
            presentation,
            presentation_raw,
        }
    }

    fn context(&self) -> VerifyContext<'_> {
        VerifyContext {
            now: self.now,
            trust: None,
            status_lists: &self.lists,
            status_max_age_secs: 86_400,
        }
    }

    fn verify_credential(&self, signed: &Signed) -> bool {
        self.verifier
            .verify_credential(&signed.token, &self.context())
            .is_ok()
    }

    fn verify_presentation(&self) -> bool {
        let challenge = Challenge {
            audience: &self.audience,
            nonce: "bench-nonce",
        };
        // A fresh cache per call: the nonce would otherwise be a replay the second time.
        let replay = ReplayCache::new(4);
        let bindings: HashMap<String, String> = HashMap::new();
        self.verifier
            .verify_presentation(
                &self.presentation.token,
                challenge,
                &self.context(),
                &replay,
                &bindings,
            )
            .is_ok()
    }
}

fn criterion_groups(criterion: &mut Criterion, fixture: &Fixture) {
    let mut group = criterion.benchmark_group("credential");
    let raw_ed = RawCheck::new(&fixture.ed25519_credential);
    let raw_es = RawCheck::new(&fixture.es256_credential);
    group.bench_function("verify EdDSA", |b| {
        b.iter(|| black_box(fixture.verify_credential(&fixture.ed25519_credential)))
    });
    group.bench_function("raw ed25519 verify", |b| {
        b.iter(|| black_box(raw_ed.verify()))
    });
    group.bench_function("verify ES256", |b| {
        b.iter(|| black_box(fixture.verify_credential(&fixture.es256_credential)))
    });
    group.bench_function("raw p256 verify", |b| b.iter(|| black_box(raw_es.verify())));
    group.finish();
    let mut group = criterion.benchmark_group("presentation");
    group.bench_function("verify (4 credentials)", |b| {
        b.iter(|| black_box(fixture.verify_presentation()))
    });
    group.bench_function("raw ed25519 verify x5", |b| {
        b.iter(|| black_box(fixture.presentation_raw.iter().all(RawCheck::verify)))
    });
    group.finish();
}

/// Median time per call of `subject` and `baseline`, measured in alternating rounds so that
/// drift in machine speed hits both alike.
fn interleaved(subject: impl Fn() -> bool, baseline: impl Fn() -> bool) -> (Duration, Duration) {
    const ROUNDS: usize = 15;
    const CALLS: u32 = 400;
    let time = |f: &dyn Fn() -> bool| {
        let start = Instant::now();
        for _ in 0..CALLS {
            assert!(black_box(f()), "benchmark input failed to verify");
        }
        start.elapsed() / CALLS
    };
    let (mut subject_times, mut baseline_times) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        subject_times.push(time(&subject));
        baseline_times.push(time(&baseline));
    }
    subject_times.sort();
    baseline_times.sort();
    (subject_times[ROUNDS / 2], baseline_times[ROUNDS / 2])
}

fn report(
    name: &str,
    baseline_name: &str,
    (subject, baseline): (Duration, Duration),
    target: Option<f64>,
) {
    let per_sec = |d: Duration| 1.0 / d.as_secs_f64();
    let ratio = baseline.as_secs_f64() / subject.as_secs_f64();
    println!(
        "{name:<42} {:>9.1} µs {:>9.0}/s",
        subject.as_secs_f64() * 1e6,
        per_sec(subject)
    );
    println!(
        "{baseline_name:<42} {:>9.1} µs {:>9.0}/s",
        baseline.as_secs_f64() * 1e6,
        per_sec(baseline)
    );
    match target {
        Some(target) => {
            let verdict = if ratio >= target { "meets" } else { "MISSES" };
            println!(
                "  ratio {:.1}% of raw ({verdict} the target of ≥ {:.0}%)\n",
                ratio * 100.0,
                target * 100.0
            );
        }
        None => println!("  ratio {:.1}% of raw\n", ratio * 100.0),
    }
}

fn main() {
    let fixture = Fixture::new();
    assert!(fixture.verify_credential(&fixture.ed25519_credential));
    assert!(fixture.verify_credential(&fixture.es256_credential));
    assert!(fixture.verify_presentation());
    let mut criterion = Criterion::default().configure_from_args();
    criterion_groups(&mut criterion, &fixture);
    criterion.final_summary();
    // Under `cargo test --benches` each benchmark runs once; the comparison needs `--bench`.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    println!("\n== same-run comparison (median of 15 interleaved rounds) ==");
    let raw_ed = RawCheck::new(&fixture.ed25519_credential);
    let raw_es = RawCheck::new(&fixture.es256_credential);
    report(
        "credential verify, EdDSA",
        "raw ed25519-dalek verify, same input",
        interleaved(
            || fixture.verify_credential(&fixture.ed25519_credential),
            || raw_ed.verify(),
        ),
        Some(0.70),
    );
    report(
        "credential verify, ES256",
        "raw p256 verify, same input",
        interleaved(
            || fixture.verify_credential(&fixture.es256_credential),
            || raw_es.verify(),
        ),
        Some(0.70),
    );
    report(
        "presentation verify, 4 credentials",
        "raw ed25519-dalek verify x5, same inputs",
        interleaved(
            || fixture.verify_presentation(),
            || fixture.presentation_raw.iter().all(RawCheck::verify),
        ),
        Some(0.70),
    );
}
