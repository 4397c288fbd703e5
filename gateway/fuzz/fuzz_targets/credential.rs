//! Any byte string given as a credential: no panic, and never accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tfc_gateway::charter::IssuerTrust;
use tfc_gateway::credential::{CredentialVerifier, StatusLists, VerifyContext};

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    let lists = StatusLists::new();
    // The seeds include well-signed credentials that are bad only in what they claim, so the
    // oracle trusts no issuer: then nothing, signed or not, may verify.
    let nobody = IssuerTrust::default();
    let context = VerifyContext { now: 1_780_272_000, trust: Some(&nobody), status_lists: &lists, status_max_age_secs: 86_400 };
    assert!(CredentialVerifier::new().verify_credential(&token, &context).is_err());
});
