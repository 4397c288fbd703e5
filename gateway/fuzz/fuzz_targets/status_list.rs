//! Any byte string given as a status list credential or an encodedList: no panic, bounded
//! memory (GZIP bombs are cut off).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tfc_gateway::credential::{CredentialVerifier, StatusList};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    assert!(CredentialVerifier::new().verify_status_list(&text, 1_780_272_000).is_err());
    let _ = StatusList::decode_bits(&text);
});
