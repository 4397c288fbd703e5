//! Any byte string given as a presentation: no panic, and never accepted.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use tfc_gateway::credential::{Challenge, CredentialVerifier, ReplayCache, StatusLists, VerifyContext};

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    let lists = StatusLists::new();
    let context = VerifyContext { now: 1_780_272_000, trust: None, status_lists: &lists, status_max_age_secs: 86_400 };
    let challenge = Challenge { audience: "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", nonce: "n" };
    let bindings: HashMap<String, String> = HashMap::new();
    let verdict = CredentialVerifier::new().verify_presentation(&token, challenge, &context, &ReplayCache::new(16), &bindings);
    assert!(verdict.is_err());
});
