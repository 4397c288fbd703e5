use std::fs;
use std::path::{Path, PathBuf};

use super::*;

fn examples_dir(info: &CredentialType) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(info.kebab_name)
}

fn examples(info: &CredentialType, prefix: &str) -> Vec<(String, Value)> {
    let dir = examples_dir(info);
    let mut found: Vec<(String, Value)> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(".json")
        })
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap();
            let value = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            (path.display().to_string(), value)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[test]
fn every_schema_compiles_with_its_id() {
    let set = SchemaSet::new().unwrap();
    for info in CREDENTIAL_TYPES {
        assert_eq!(set.schema_id(info.name), Some(info.schema_id().as_str()));
    }
}

#[test]
fn valid_examples_pass() {
    let set = SchemaSet::global();
    for info in CREDENTIAL_TYPES {
        let valid = examples(info, "valid-");
        assert!(!valid.is_empty(), "{} has no valid example", info.name);
        for (path, value) in valid {
            if let Some(Err(violation)) = set.validate(info.name, &value) {
                panic!("{path} should be valid: {violation}");
            }
        }
    }
}

#[test]
fn invalid_examples_fail() {
    let set = SchemaSet::global();
    for info in CREDENTIAL_TYPES {
        let invalid = examples(info, "invalid-");
        assert!(
            invalid.len() >= 3,
            "{} needs at least three invalid examples",
            info.name
        );
        for (path, value) in invalid {
            let result = set.validate(info.name, &value).unwrap();
            assert!(result.is_err(), "{path} should be rejected");
        }
    }
}

#[test]
fn wrong_corporate_number_check_digit_is_a_violation() {
    let set = SchemaSet::global();
    let info = set
        .credential_type("OrganizationIdentityCredential")
        .unwrap();
    let (_, mut credential) = examples(info, "valid-").remove(0);
    credential["credentialSubject"]["corporateNumber"] = "7000012050002".into();
    assert_eq!(set.validate(info.name, &credential), Some(Ok(())));
    credential["credentialSubject"]["corporateNumber"] = "6000012050002".into();
    let violation = set.validate(info.name, &credential).unwrap().unwrap_err();
    assert_eq!(violation.path, "/credentialSubject/corporateNumber");
}

#[test]
fn unknown_type_is_none() {
    assert!(
        SchemaSet::global()
            .validate("NoSuchCredential", &Value::Null)
            .is_none()
    );
}

/// A second, independent validator (Python's `jsonschema`) agrees on every example, and
/// each invalid example fails for the reason its name gives (`examples/expected-errors.json`).
#[test]
fn python_jsonschema_agrees_on_every_example() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/check_examples.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .output()
        .expect("python3 is needed: install it and run `pip install -r tests/requirements.txt`");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "did you `pip install -r tests/requirements.txt`?\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}
