//! Any bytes given as a governance op: decoding, hashing, verifying and folding never panic,
//! and an unsigned or forged op never verifies.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tfc_gateway::charter::Charter;
use tfc_gateway::governance::{FieldState, SignedOp};

static CHARTER: LazyLock<Charter> = LazyLock::new(|| {
    let text = "name = \"fuzz\"\nfounders = [\"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK\"]\nquorum = \"2/3\"\n";
    Charter::parse(text, Path::new(".")).expect("the fixed charter parses")
});

fuzz_target!(|data: &[u8]| {
    let Ok(signed) = serde_json::from_slice::<SignedOp>(data) else {
        return;
    };
    let _ = signed.op.id();
    let _ = signed.op.quorum();
    if let Ok(id) = signed.verify(1_780_272_000) {
        let ops: BTreeMap<String, SignedOp> = [(id, signed)].into();
        let _ = FieldState::derive(&CHARTER, &ops);
    }
});
