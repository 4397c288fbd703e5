//! Any byte string given as a credential: no panic, and never accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tfc_gateway::credential::{CredentialVerifier, StatusLists, VerifyContext};

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    let lists = StatusLists::new();
    let context = VerifyContext { now: 1_780_272_000, trust: None, status_lists: &lists, status_max_age_secs: 86_400 };
    // Without a valid signature from a real key nothing can verify.
    assert!(CredentialVerifier::new().verify_credential(&token, &context).is_err());
});
