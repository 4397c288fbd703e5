use super::*;
use crate::identity::KeyAlgorithm;

struct Founders {
    keys: Vec<KeyPair>,
    bureau: String,
}

impl Founders {
    fn new(count: usize) -> Self {
        Self {
            keys: (0..count)
                .map(|_| KeyPair::generate(KeyAlgorithm::Ed25519))
                .collect(),
            bureau: KeyPair::generate(KeyAlgorithm::P256).did(),
        }
    }

    fn dids(&self) -> String {
        self.keys
            .iter()
            .map(|key| format!("\"{}\"", key.did()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn charter(&self, extra: &str) -> String {
        format!(
            r#"# test charter
name = "test field"
founders = [{founders}]
admins = ["{admin}"]
quorum = "2/3"
status_max_age = "12h"

[[issuers]]
did = "{bureau}"
name = "Credit bureau"
types = ["CreditRatingCredential"]

[tiers.prescreening]
require = ["OrganizationIdentityCredential", "CreditRatingCredential"]
constraints = [
  "CreditRatingCredential.score >= 60",
]
{extra}
"#,
            founders = self.dids(),
            admin = self.keys[0].did(),
            bureau = self.bureau,
        )
    }

    /// The charter with every founder's signature appended.
    fn signed(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for key in &self.keys {
            let charter = Charter::parse(&text, Path::new(".")).unwrap();
            text.push_str(&charter.sign(key).unwrap());
        }
        text
    }
}

fn parse(text: &str) -> Result<Charter, CharterError> {
    Charter::parse(text, Path::new("."))
}

#[test]
fn a_charter_parses_into_tiers_trust_and_quorum() {
    let founders = Founders::new(3);
    let charter = parse(&founders.charter("")).unwrap();
    assert_eq!(charter.quorum.required(3), 2);
    assert_eq!(charter.quorum.required(10), 7);
    assert_eq!(charter.status_max_age_secs, 12 * 3600);
    assert_eq!(charter.tiers[0].require.len(), 2);
    assert_eq!(charter.tiers[0].constraints.len(), 1);
    assert_eq!(charter.tiers[1].name, "certification");
    assert!(
        charter
            .issuer_trust()
            .is_trusted(&founders.bureau, "CreditRatingCredential")
    );
    assert_eq!(charter.field_id().len(), 64);
}

#[test]
fn field_id_ignores_layout_and_signatures_but_not_content() {
    let founders = Founders::new(2);
    let text = founders.charter("");
    let id = parse(&text).unwrap().field_id();
    // Comments, blank lines and key order do not change the canonical JSON.
    let shuffled = text.replace("# test charter\n", "").replace(
        "quorum = \"2/3\"\nstatus_max_age = \"12h\"",
        "status_max_age = \"12h\"   # fresh\nquorum = \"2/3\"",
    );
    assert_ne!(shuffled, text);
    assert_eq!(parse(&shuffled).unwrap().field_id(), id);
    assert_eq!(parse(&founders.signed(&text)).unwrap().field_id(), id);
    let edited = text.replace("score >= 60", "score >= 50");
    assert_ne!(parse(&edited).unwrap().field_id(), id);
}

#[test]
fn the_policy_file_is_part_of_the_field_id() {
    let dir = tempfile::tempdir().unwrap();
    let founders = Founders::new(1);
    let text = format!("policy = \"field.cedar\"\n{}", founders.charter(""));
    std::fs::write(
        dir.path().join("field.cedar"),
        "permit(principal, action, resource);",
    )
    .unwrap();
    let first = Charter::parse(&text, dir.path()).unwrap();
    assert!(first.policy.as_ref().unwrap().1.starts_with("permit"));
    std::fs::write(
        dir.path().join("field.cedar"),
        "forbid(principal, action, resource);",
    )
    .unwrap();
    assert_ne!(
        Charter::parse(&text, dir.path()).unwrap().field_id(),
        first.field_id()
    );
    std::fs::remove_file(dir.path().join("field.cedar")).unwrap();
    assert_eq!(Charter::parse(&text, dir.path()).unwrap_err().code(), "io");
}

#[test]
fn a_policy_that_is_not_a_regular_file_is_refused_without_reading_it() {
    let founders = Founders::new(1);
    // /dev/zero reports no length and never ends: reading it would never return.
    for policy in ["/dev/zero", "/tmp"] {
        let text = format!("policy = \"{policy}\"\n{}", founders.charter(""));
        let error = Charter::parse(&text, std::path::Path::new(".")).unwrap_err();
        assert!(
            error.to_string().contains("not a regular file"),
            "{policy}: {error}"
        );
    }
}

#[test]
fn every_founder_must_sign() {
    let dir = tempfile::tempdir().unwrap();
    let founders = Founders::new(2);
    let text = founders.charter("");
    let path = dir.path().join("field.toml");
    std::fs::write(&path, &text).unwrap();
    let error = Charter::load(&path).unwrap_err();
    assert_eq!(error.code(), "charter_signature");
    assert!(error.to_string().contains(&founders.keys[0].did()));
    let half = format!(
        "{text}{}",
        parse(&text).unwrap().sign(&founders.keys[0]).unwrap()
    );
    std::fs::write(&path, &half).unwrap();
    assert_eq!(
        Charter::load(&path).unwrap_err().code(),
        "charter_signature"
    );
    assert_eq!(
        Charter::load_unsigned(&path).unwrap().unsigned_founders(),
        [founders.keys[1].did()]
    );
    std::fs::write(&path, founders.signed(&text)).unwrap();
    assert_eq!(Charter::load(&path).unwrap().signed_by().len(), 2);
}

#[test]
fn an_edit_after_signing_breaks_the_signatures() {
    let founders = Founders::new(1);
    let signed = founders.signed(&founders.charter(""));
    let tampered = signed.replace("score >= 60", "score >= 10");
    let error = parse(&tampered).unwrap_err();
    assert_eq!(error.code(), "charter_signature");
    assert!(error.to_string().contains("edited after signing"));
}

#[test]
fn only_founders_sign_and_only_once() {
    let founders = Founders::new(1);
    let outsider = KeyPair::generate(KeyAlgorithm::Ed25519);
    let text = founders.charter("");
    assert_eq!(
        parse(&text).unwrap().sign(&outsider).unwrap_err().code(),
        "charter_signature"
    );
    let signed = founders.signed(&text);
    assert!(parse(&signed).unwrap().sign(&founders.keys[0]).is_err());
    let forged = format!(
        "{text}\n[[signatures]]\nfounder = \"{}\"\nsignature = \"AAAA\"\n",
        outsider.did()
    );
    assert_eq!(parse(&forged).unwrap_err().code(), "charter_signature");
}

#[test]
fn a_bad_constraint_is_reported_with_its_line() {
    let founders = Founders::new(1);
    let text = founders.charter("").replace(
        "\"CreditRatingCredential.score >= 60\",",
        "\"CreditRatingCredential.score => 60\",",
    );
    match parse(&text).unwrap_err() {
        CharterError::Constraint { line, message, .. } => {
            assert_eq!(line, 16);
            assert!(message.contains("column 30"), "{message}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_constraint_may_only_read_types_its_tier_can_see() {
    let founders = Founders::new(1);
    let extra = "[tiers.certification]\nrequire = [\"BusinessLicenseCredential\"]\nconstraints = [\"ProgramQualificationCredential.program == 'x'\"]";
    match parse(&founders.charter(extra)).unwrap_err() {
        CharterError::Constraint { line, message, .. } => {
            assert_eq!(line, 20);
            assert!(
                message.contains("ProgramQualificationCredential"),
                "{message}"
            );
        }
        other => panic!("{other}"),
    }
    // A higher tier may read a lower tier's credentials.
    let extra = "[tiers.certification]\nrequire = [\"BusinessLicenseCredential\"]\nconstraints = [\"CreditRatingCredential.grade in ['A', 'B']\"]";
    assert!(parse(&founders.charter(extra)).is_ok());
}

#[test]
fn invalid_values_are_named() {
    let founders = Founders::new(2);
    let base = founders.charter("");
    let cases = [
        (
            base.replace("quorum = \"2/3\"", "quorum = 3"),
            "charter_invalid",
            "quorum 3",
        ),
        (
            base.replace("quorum = \"2/3\"", "quorum = \"3/2\""),
            "charter_invalid",
            "3/2",
        ),
        (
            base.replace("quorum = \"2/3\"", "quorum = \"most\""),
            "charter_syntax",
            "quorum",
        ),
        (
            base.replace("\"12h\"", "\"soon\""),
            "charter_invalid",
            "status_max_age",
        ),
        (
            base.replace(
                "types = [\"CreditRatingCredential\"]",
                "types = [\"GoldStarCredential\"]",
            ),
            "charter_invalid",
            "GoldStarCredential",
        ),
        (
            base.replace(
                "\"OrganizationIdentityCredential\", ",
                "\"PassportCredential\", ",
            ),
            "charter_invalid",
            "PassportCredential",
        ),
        (format!("{base}typo = 1\n"), "charter_syntax", "typo"),
        (
            base.replace(
                "name = \"Credit bureau\"",
                "name = \"Credit bureau\"\nweight = 3",
            ),
            "charter_syntax",
            "weight",
        ),
        (
            format!(
                "{base}[tiers.certification]\nrequire = []\nself_declared_ok = [\"ServiceOfferingCredential\"]\n"
            ),
            "charter_invalid",
            "self_declared_ok",
        ),
        (
            base.replace(&founders.bureau, "did:web:bureau.example"),
            "charter_invalid",
            "did:web",
        ),
        (
            base.replace(
                "status_max_age",
                "applications = \"sometimes\"\nstatus_max_age",
            ),
            "charter_invalid",
            "applications",
        ),
        (
            format!("{base}[disclosure]\nCreditRatingCredential = [\"everyone\"]\n"),
            "charter_invalid",
            "everyone",
        ),
        (
            format!("{base}[disclosure]\nGoldStarCredential = [\"admins\"]\n"),
            "charter_invalid",
            "GoldStarCredential",
        ),
        (
            format!("{base}[disclosure]\nCreditRatingCredential = [\"tier>=1\"]\n"),
            "charter_invalid",
            "never be disclosed",
        ),
        (
            format!("{base}[disclosure]\ngossip = \"verified\"\n"),
            "charter_syntax",
            "expected a sequence",
        ),
    ];
    for (text, code, mention) in cases {
        let error = parse(&text).unwrap_err();
        assert_eq!(error.code(), code, "{error}");
        assert!(
            error.to_string().contains(mention),
            "{error} should mention {mention}"
        );
    }
}

#[test]
fn disclosure_rules_and_applications_are_part_of_the_charter() {
    let founders = Founders::new(1);
    let closed = parse(&founders.charter("")).unwrap();
    assert_eq!(
        closed.applications,
        Applications::Closed,
        "closed by default"
    );
    let open_text = founders
        .charter("[disclosure]\nCreditRatingCredential = [\"admins\", \"tier>=2\"]\n")
        .replace("status_max_age", "applications = \"open\"\nstatus_max_age");
    let open = parse(&open_text).unwrap();
    assert_eq!(open.applications, Applications::Open);
    assert_ne!(
        open.field_id(),
        closed.field_id(),
        "the rules are part of the field id"
    );
    let member = Recipient {
        member: true,
        tier: 2,
        ..Recipient::default()
    };
    assert!(open.disclosure.allows("CreditRatingCredential", &member));
    assert!(!closed.disclosure.allows("CreditRatingCredential", &member));
    assert_eq!(
        open.presentable_types(),
        ["CreditRatingCredential", "OrganizationIdentityCredential"]
            .map(str::to_owned)
            .into()
    );
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration_secs("24h"), Some(86_400));
    assert_eq!(parse_duration_secs("90m"), Some(5400));
    assert_eq!(parse_duration_secs("7d"), Some(604_800));
    for bad in ["", "h", "0h", "-1h", "1y", "1.5h", "9999999999999999999d"] {
        assert_eq!(parse_duration_secs(bad), None, "{bad}");
    }
}

#[test]
fn bootstrap_addresses_must_name_their_peer() {
    let founders = Founders::new(1);
    let peer = founders.keys[0].peer_id().unwrap();
    let good = format!("/ip4/192.0.2.1/tcp/7400/p2p/{peer}");
    let with = |line: &str| {
        founders.charter("").replace(
            "status_max_age = \"12h\"",
            &format!("status_max_age = \"12h\"\n{line}"),
        )
    };
    let charter = parse(&with(&format!("bootstrap = [\"{good}\"]"))).unwrap();
    assert_eq!(charter.bootstrap.len(), 1);
    assert_eq!(charter.bootstrap[0].to_string(), good);
    assert_ne!(
        charter.field_id(),
        parse(&founders.charter("")).unwrap().field_id()
    );
    for (line, needle) in [
        ("bootstrap = [\"/ip4/192.0.2.1/tcp/7400\"]", "/p2p/"),
        ("bootstrap = [\"not an address\"]", "not an address"),
    ] {
        let error = parse(&with(line)).unwrap_err();
        assert_eq!(error.code(), "charter_invalid");
        assert!(error.to_string().contains(needle), "{error}");
    }
}
