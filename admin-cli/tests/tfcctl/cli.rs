//! `tfcctl` end to end: real binary, real files, exit statuses and JSON of the contract.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tfcctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tfcctl"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// Runs tfcctl, asserting its exit status; returns stdout.
    fn expect(&self, status: i32, args: &[&str]) -> String {
        let output = self.tfcctl(args);
        assert_eq!(
            output.status.code(),
            Some(status),
            "tfcctl {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn json(&self, status: i32, args: &[&str]) -> Value {
        serde_json::from_str(&self.expect(status, args)).unwrap()
    }

    fn key(&self, name: &str, alg: &str) -> String {
        let file = format!("{name}.pem");
        self.expect(0, &["key", "generate", "--out", &file, "--alg", alg])
            .trim()
            .to_owned()
    }

    fn write(&self, name: &str, text: &str) -> String {
        fs::write(self.path(name), text).unwrap();
        name.to_owned()
    }

    fn credit_credential(&self, issuer_key: &str, subject: &str, out: &str, extra: &[&str]) {
        let claims = self.write(
            "claims.json",
            r#"{"grade":"A","score":88,"assessedOn":"2026-03-01"}"#,
        );
        let mut args = vec![
            "credential",
            "issue",
            "--issuer-key",
            issuer_key,
            "--type",
            "CreditRatingCredential",
            "--subject",
            subject,
            "--claims",
            &claims,
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        self.expect(0, &args);
    }
}

#[test]
fn key_generate_writes_0600_prints_the_did_and_never_overwrites() {
    let ws = Workspace::new();
    let did = ws.key("org", "ed25519");
    assert!(did.starts_with("did:key:z6Mk"), "{did}");
    let mode = fs::metadata(ws.path("org.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        ws.expect(0, &["key", "did", "--key", "org.pem"]).trim(),
        did
    );
    ws.expect(2, &["key", "generate", "--out", "org.pem"]);
    assert!(ws.key("issuer", "p256").starts_with("did:key:zDn"));
    fs::set_permissions(ws.path("org.pem"), fs::Permissions::from_mode(0o644)).unwrap();
    let output = ws.tfcctl(&["key", "did", "--key", "org.pem"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("chmod 600"));
}

#[test]
fn issue_then_verify_in_human_and_json_forms() {
    let ws = Workspace::new();
    let bureau = ws.key("bureau", "p256");
    let holder = ws.key("holder", "ed25519");
    ws.credit_credential("bureau.pem", &holder, "credit.jwt", &[]);
    let human = ws.expect(0, &["credential", "verify", "credit.jwt"]);
    assert!(
        human.starts_with("VALID  CreditRatingCredential"),
        "{human}"
    );
    assert!(human.contains("issuer trust was not checked"), "{human}");
    let report = ws.json(0, &["credential", "verify", "credit.jwt", "--json"]);
    assert_eq!(report["valid"], true);
    assert_eq!(report["trustChecked"], false);
    assert_eq!(report["credential"]["issuer"], bureau);
    assert_eq!(report["credential"]["claims"]["score"], 88);
}

#[test]
fn invalid_credentials_exit_1_with_their_code() {
    let ws = Workspace::new();
    ws.key("bureau", "ed25519");
    let holder = ws.key("holder", "ed25519");
    ws.credit_credential("bureau.pem", &holder, "credit.jwt", &["--valid-days", "30"]);
    let later = ws.json(
        1,
        &[
            "credential",
            "verify",
            "credit.jwt",
            "--json",
            "--at",
            "2099-01-01T00:00:00Z",
        ],
    );
    assert_eq!(later["valid"], false);
    assert_eq!(later["code"], "expired");
    ws.write("garbage.jwt", "\u{0}\u{1}not a token");
    assert_eq!(
        ws.json(1, &["credential", "verify", "garbage.jwt", "--json"])["code"],
        "malformed"
    );
    let output = ws.tfcctl(&["credential", "verify", "garbage.jwt"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("INVALID  malformed:"));
}

#[test]
fn usage_and_io_errors_exit_2() {
    let ws = Workspace::new();
    ws.expect(2, &["credential", "verify", "missing.jwt"]);
    ws.expect(
        2,
        &["credential", "verify", "missing.jwt", "--at", "tomorrow"],
    );
    ws.expect(2, &["credential", "frobnicate"]);
    let holder = ws.key("holder", "ed25519");
    ws.write("bad-claims.json", "[1, 2]");
    ws.expect(
        2,
        &[
            "credential",
            "issue",
            "--issuer-key",
            "holder.pem",
            "--type",
            "CreditRatingCredential",
            "--subject",
            &holder,
            "--claims",
            "bad-claims.json",
        ],
    );
    // Claims that break the schema are refused before signing.
    ws.write(
        "weak.json",
        r#"{"grade":"A","score":250,"assessedOn":"2026-03-01"}"#,
    );
    ws.expect(
        2,
        &[
            "credential",
            "issue",
            "--issuer-key",
            "holder.pem",
            "--type",
            "CreditRatingCredential",
            "--subject",
            &holder,
            "--claims",
            "weak.json",
        ],
    );
}

fn charter(ws: &Workspace, founder: &str, issuer: &str) -> String {
    ws.write(
        "charter.toml",
        &format!(
            r#"name = "test field"
founders = ["{founder}"]
quorum = 1
[[issuers]]
did = "{issuer}"
name = "Credit bureau"
types = ["CreditRatingCredential"]
"#
        ),
    )
}

#[test]
fn charter_decides_issuer_trust() {
    let ws = Workspace::new();
    let bureau = ws.key("bureau", "ed25519");
    let stranger = ws.key("stranger", "ed25519");
    let holder = ws.key("holder", "ed25519");
    let charter = charter(&ws, &holder, &bureau);
    // An unsigned charter is refused.
    assert_eq!(
        ws.tfcctl(&["credential", "verify", "x.jwt", "--charter", &charter])
            .status
            .code(),
        Some(2)
    );
    ws.expect(
        0,
        &["field", "charter", "sign", &charter, "--key", "holder.pem"],
    );
    ws.credit_credential("bureau.pem", &holder, "trusted.jwt", &[]);
    ws.credit_credential("stranger.pem", &holder, "untrusted.jwt", &[]);
    ws.credit_credential("holder.pem", &holder, "self.jwt", &[]);
    let trusted = ws.json(
        0,
        &[
            "credential",
            "verify",
            "trusted.jwt",
            "--charter",
            &charter,
            "--json",
        ],
    );
    assert_eq!(trusted["trustChecked"], true);
    let untrusted = ws.json(
        1,
        &[
            "credential",
            "verify",
            "untrusted.jwt",
            "--charter",
            &charter,
            "--json",
        ],
    );
    assert_eq!(untrusted["code"], "untrusted_issuer");
    assert!(untrusted["message"].as_str().unwrap().contains(&stranger));
    let self_issued = ws.json(
        1,
        &[
            "credential",
            "verify",
            "self.jwt",
            "--charter",
            &charter,
            "--json",
        ],
    );
    assert_eq!(self_issued["code"], "self_declared_not_accepted");
    ws.write("broken.toml", "name = ");
    ws.expect(
        2,
        &[
            "credential",
            "verify",
            "trusted.jwt",
            "--charter",
            "broken.toml",
        ],
    );
}

#[test]
fn status_list_revokes_and_suspends() {
    let ws = Workspace::new();
    ws.key("bureau", "ed25519");
    let holder = ws.key("holder", "ed25519");
    let revocations = "https://bureau.example/status/revocation";
    let suspensions = "https://bureau.example/status/suspension";
    ws.expect(
        0,
        &[
            "status-list",
            "create",
            "--issuer-key",
            "bureau.pem",
            "--id",
            revocations,
            "--out",
            "revocation.jwt",
        ],
    );
    ws.expect(
        0,
        &[
            "status-list",
            "create",
            "--issuer-key",
            "bureau.pem",
            "--id",
            suspensions,
            "--purpose",
            "suspension",
            "--out",
            "suspension.jwt",
        ],
    );
    ws.credit_credential(
        "bureau.pem",
        &holder,
        "r.jwt",
        &["--status-list", revocations, "--status-index", "17"],
    );
    ws.credit_credential(
        "bureau.pem",
        &holder,
        "s.jwt",
        &[
            "--status-list",
            suspensions,
            "--status-index",
            "3",
            "--status-purpose",
            "suspension",
        ],
    );
    let verify = |file: &str, list: &str, status: i32| {
        ws.json(
            status,
            &[
                "credential",
                "verify",
                file,
                "--status-list",
                list,
                "--json",
            ],
        )
    };
    assert_eq!(
        ws.json(1, &["credential", "verify", "r.jwt", "--json"])["code"],
        "status_unavailable"
    );
    verify("r.jwt", "revocation.jwt", 0);
    ws.expect(
        0,
        &[
            "status-list",
            "set",
            "revocation.jwt",
            "--issuer-key",
            "bureau.pem",
            "--index",
            "17",
        ],
    );
    assert_eq!(verify("r.jwt", "revocation.jwt", 1)["code"], "revoked");
    ws.expect(
        0,
        &[
            "status-list",
            "set",
            "suspension.jwt",
            "--issuer-key",
            "bureau.pem",
            "--index",
            "3",
        ],
    );
    assert_eq!(verify("s.jwt", "suspension.jwt", 1)["code"], "suspended");
    ws.expect(
        0,
        &[
            "status-list",
            "set",
            "suspension.jwt",
            "--issuer-key",
            "bureau.pem",
            "--index",
            "3",
            "--clear",
        ],
    );
    verify("s.jwt", "suspension.jwt", 0);
    let shown = ws.json(
        0,
        &[
            "status-list",
            "show",
            "revocation.jwt",
            "--index",
            "17",
            "--json",
        ],
    );
    assert_eq!(shown["set"], serde_json::json!([17]));
    assert_eq!(shown["isSet"], true);
    assert_eq!(shown["purpose"], "revocation");
    // Only the list's issuer may change it.
    ws.expect(
        2,
        &[
            "status-list",
            "set",
            "revocation.jwt",
            "--issuer-key",
            "holder.pem",
            "--index",
            "1",
        ],
    );
    // A stale list does not count.
    let stale = ws.json(
        1,
        &[
            "credential",
            "verify",
            "r.jwt",
            "--status-list",
            "revocation.jwt",
            "--json",
            "--at",
            &in_days(2),
        ],
    );
    assert_eq!(stale["code"], "status_unavailable");
}

fn in_days(days: i64) -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn presentation_round_trip_and_challenge_checks() {
    let ws = Workspace::new();
    ws.key("bureau", "ed25519");
    let holder = ws.key("holder", "ed25519");
    let verifier = ws.key("verifier", "ed25519");
    ws.credit_credential("bureau.pem", &holder, "credit.jwt", &[]);
    let present = |nonce: &str, credential: &str, out: &str| {
        let nonce = format!("--nonce={nonce}");
        ws.expect(
            0,
            &[
                "presentation",
                "create",
                "--holder-key",
                "holder.pem",
                "--audience",
                &verifier,
                &nonce,
                credential,
                "--out",
                out,
            ],
        );
    };
    let verify = |status: i32, file: &str, audience: &str, nonce: &str, extra: &[&str]| {
        let nonce = format!("--nonce={nonce}");
        let mut args = vec![
            "presentation",
            "verify",
            file,
            "--audience",
            audience,
            &nonce,
            "--json",
        ];
        args.extend_from_slice(extra);
        ws.json(status, &args)
    };
    present("abc123", "credit.jwt", "vp.jwt");
    let report = verify(0, "vp.jwt", &verifier, "abc123", &[]);
    assert_eq!(report["presentation"]["holder"], holder);
    assert_eq!(
        report["presentation"]["credentials"][0]["type"],
        "CreditRatingCredential"
    );
    assert_eq!(
        verify(1, "vp.jwt", &verifier, "zzz", &[])["code"],
        "nonce_mismatch"
    );
    assert_eq!(
        verify(1, "vp.jwt", &holder, "abc123", &[])["code"],
        "wrong_audience"
    );
    let tomorrow = in_days(1);
    assert_eq!(
        verify(1, "vp.jwt", &verifier, "abc123", &["--at", &tomorrow])["code"],
        "presentation_expired"
    );
    // A credential of someone else's, presented by the holder.
    let other = ws.key("other", "ed25519");
    ws.credit_credential("bureau.pem", &other, "theirs.jwt", &[]);
    present("n2", "theirs.jwt", "stolen.jwt");
    assert_eq!(
        verify(1, "stolen.jwt", &verifier, "n2", &[])["code"],
        "holder_mismatch"
    );
    // Nonces drawn from base64url may begin with '-', even as a separate argument.
    ws.expect(
        0,
        &[
            "presentation",
            "create",
            "--holder-key",
            "holder.pem",
            "--audience",
            &verifier,
            "--nonce",
            "-Xy_3",
            "credit.jwt",
            "--out",
            "dash.jwt",
        ],
    );
    ws.json(
        0,
        &[
            "presentation",
            "verify",
            "dash.jwt",
            "--audience",
            &verifier,
            "--nonce",
            "-Xy_3",
            "--json",
        ],
    );
}
/// The independent implementation: Python's jwcrypto mints and checks tokens both ways.
#[test]
fn interoperates_with_jwcrypto_both_ways() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/jwcrypto_interop.py");
    let output = Command::new("python3")
        .arg(&script)
        .args(["--tfcctl", env!("CARGO_BIN_EXE_tfcctl")])
        .output()
        .expect("python3 is needed: install it and run `pip install -r tests/requirements.txt`");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "interop failed (did you `pip install -r tests/requirements.txt`?)\n{stdout}\n{stderr}"
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.ends_with(" 0 failed") && !summary.starts_with("0 passed"),
        "{summary}"
    );
}

#[test]
fn charter_hash_sign_verify_offline() {
    let ws = Workspace::new();
    let founder = ws.key("founder", "ed25519");
    let cofounder = ws.key("cofounder", "ed25519");
    let bureau = ws.key("bureau", "ed25519");
    ws.write(
        "field.toml",
        &format!("name = \"f\"\nfounders = [\"{founder}\", \"{cofounder}\"]\nquorum = 2\n[[issuers]]\ndid = \"{bureau}\"\nname = \"B\"\ntypes = [\"CreditRatingCredential\"]\n"),
    );
    let id = ws
        .expect(0, &["field", "charter", "hash", "field.toml"])
        .trim()
        .to_owned();
    assert_eq!(id.len(), 64);
    let unsigned = ws.json(1, &["field", "charter", "verify", "field.toml", "--json"]);
    assert_eq!(unsigned["code"], "charter_signature");
    let signed = ws.expect(
        0,
        &[
            "field",
            "charter",
            "sign",
            "field.toml",
            "--key",
            "founder.pem",
        ],
    );
    assert!(signed.contains("1 of 2 founders"), "{signed}");
    ws.expect(
        1,
        &[
            "field",
            "charter",
            "sign",
            "field.toml",
            "--key",
            "founder.pem",
        ],
    );
    ws.expect(
        1,
        &[
            "field",
            "charter",
            "sign",
            "field.toml",
            "--key",
            "bureau.pem",
        ],
    );
    ws.expect(
        0,
        &[
            "field",
            "charter",
            "sign",
            "field.toml",
            "--key",
            "cofounder.pem",
        ],
    );
    let verified = ws.json(0, &["field", "charter", "verify", "field.toml", "--json"]);
    assert_eq!(verified["fieldId"], id);
    // Who receives what: the fail-closed defaults, as the charter sets no rule.
    let matrix = ws.json(
        0,
        &["field", "charter", "disclosure", "field.toml", "--json"],
    );
    assert_eq!(matrix["applications"], "closed");
    let rows = matrix["rows"].as_array().unwrap();
    let credit = rows
        .iter()
        .find(|row| row["subject"] == "CreditRatingCredential");
    // The charter's tiers require nothing: no type is presentable, only the gossip row.
    assert!(credit.is_none(), "{matrix}");
    let gossip = rows.iter().find(|row| row["subject"] == "gossip").unwrap();
    assert_eq!(gossip["default"], true);
    assert_eq!(
        gossip["receives"][6], false,
        "applicants take no part in the gossip"
    );
    // An edit after signing is detected.
    let text = fs::read_to_string(ws.path("field.toml")).unwrap();
    ws.write("field.toml", &text.replace("quorum = 2", "quorum = 1"));
    assert_eq!(
        ws.json(1, &["field", "charter", "verify", "field.toml", "--json"])["code"],
        "charter_signature"
    );
    // A bad constraint names its line.
    ws.write("bad.toml", &format!("name = \"f\"\nfounders = [\"{founder}\"]\nquorum = 1\n[tiers.prescreening]\nrequire = [\"CreditRatingCredential\"]\nconstraints = [\"CreditRatingCredential.score >> 3\"]\n"));
    let output = ws.tfcctl(&["field", "charter", "verify", "bad.toml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("line 6"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    ws.expect(2, &["field", "charter", "hash", "missing.toml"]);
}

fn example_charter(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../config/fields/{name}.toml"))
        .display()
        .to_string()
}

#[test]
fn tier_evaluate_explains_the_tier() {
    let ws = Workspace::new();
    // The example field trusts example issuers whose keys the CLI cannot hold: a credential
    // from a fresh key is untrusted, so the contractor reaches no tier, and the report says why.
    ws.key("bureau", "ed25519");
    let holder = ws.key("holder", "ed25519");
    ws.credit_credential("bureau.pem", &holder, "credit.jwt", &[]);
    let charter = example_charter("housing-subsidy");
    let output = ws.tfcctl(&["tier", "evaluate", "--charter", &charter, "credit.jwt"]);
    assert_eq!(output.status.code(), Some(1));
    let human = String::from_utf8_lossy(&output.stdout);
    assert!(human.contains("TIER 0"), "{human}");
    assert!(
        human.contains(
            "OrganizationIdentityCredential: no OrganizationIdentityCredential was presented"
        ),
        "{human}"
    );
    assert!(human.contains("[untrusted_issuer]"), "{human}");
    let report = ws.json(
        1,
        &[
            "tier",
            "evaluate",
            "--charter",
            &charter,
            "credit.jwt",
            "--json",
        ],
    );
    assert_eq!(report["report"]["tier"], 0);
    assert_eq!(report["report"]["holder"], holder);
    ws.expect(2, &["tier", "evaluate", "credit.jwt"]);
}

#[test]
fn policy_check_decides_one_request() {
    let ws = Workspace::new();
    let charter = example_charter("housing-subsidy");
    let request = |principal: &str, purpose: &str| {
        format!(
            r#"{{"principal": {{"did": "{principal}", "tier": 3, "roles": []}},
               "action": "read",
               "resource": {{"kind": "record", "space": {{"field": "f", "tier": 3}},
                             "labels": {{"id": "app-1", "owner": "did:key:zOwner", "category": "personal-related",
                                         "valueLevel": "high", "rightsHolders": [], "allowedPurposes": ["subsidy-review"],
                                         "disclosure": ["did:key:zReviewer"]}}}},
               "purpose": "{purpose}"}}"#
        )
    };
    ws.write(
        "allowed.json",
        &request("did:key:zReviewer", "subsidy-review"),
    );
    let decision = ws.json(
        0,
        &[
            "policy",
            "check",
            "--charter",
            &charter,
            "--request",
            "allowed.json",
            "--json",
        ],
    );
    assert_eq!(decision["allowed"], true);
    assert_eq!(decision["policies"], serde_json::json!(["disclosed-read"]));
    ws.write("denied.json", &request("did:key:zReviewer", "marketing"));
    let human = ws.expect(
        1,
        &[
            "policy",
            "check",
            "--charter",
            &charter,
            "--request",
            "denied.json",
        ],
    );
    assert!(human.starts_with("DENY"), "{human}");
    ws.write("broken.json", r#"{"principal": {}, "action": "steal"}"#);
    ws.expect(
        2,
        &[
            "policy",
            "check",
            "--charter",
            &charter,
            "--request",
            "broken.json",
        ],
    );
}

#[test]
fn gateway_flags_go_anywhere_and_bad_urls_say_what_to_do() {
    let ws = Workspace::new();
    let cases = [
        ("http://localhost:7443", "speaks only HTTPS"),
        ("localhost:7443", "https://HOST:PORT"),
        ("https://localhost:7443/v1", "nothing after the port"),
        ("https://", "is not a URL"),
    ];
    for (url, says) in cases {
        // The flags after the subcommand.
        let output = ws.tfcctl(&["status", "--gateway", url, "--data-dir", "."]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{url}: {stderr}");
        assert!(stderr.contains(says), "{url}: {stderr}");
        assert!(stderr.contains("https://localhost:7443"), "{url}: {stderr}");
    }
    // The same from the environment.
    let output = Command::new(env!("CARGO_BIN_EXE_tfcctl"))
        .arg("peers")
        .env("TFC_GATEWAY", "http://localhost:7443")
        .env("TFC_DATA_DIR", ws.dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("speaks only HTTPS"), "{stderr}");
    // Without any, the error names both ways to give one.
    let output = ws.tfcctl(&["peers"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--gateway") && stderr.contains("TFC_GATEWAY"),
        "{stderr}"
    );
}
