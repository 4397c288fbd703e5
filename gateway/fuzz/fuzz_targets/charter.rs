//! Any text given as a field charter (they arrive from other organisations): parsing,
//! hashing and trust extraction never panic, whatever the text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tfc_gateway::charter::Charter;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // An empty base: a relative `policy` path finds nothing to read.
    if let Ok(charter) = Charter::parse(text, Path::new("/nonexistent-fuzz-base")) {
        let _ = charter.field_id();
        let _ = charter.issuer_trust();
        let _ = charter.unsigned_founders();
    }
});
