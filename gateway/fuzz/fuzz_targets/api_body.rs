//! Any bytes as the body of an admin API request: every request type decodes or is refused
//! without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tfc_gateway::api::threats::{ImportThreat, PublishThreat};
use tfc_gateway::api::types::{
    AskData, Dial, JoinField, ProposeOp, PutRecord, StatusListImport, SubmitRecord, WalletImport,
};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<WalletImport>(data);
    let _ = serde_json::from_slice::<JoinField>(data);
    let _ = serde_json::from_slice::<Dial>(data);
    let _ = serde_json::from_slice::<StatusListImport>(data);
    let _ = serde_json::from_slice::<ProposeOp>(data);
    let _ = serde_json::from_slice::<PutRecord>(data);
    let _ = serde_json::from_slice::<SubmitRecord>(data);
    let _ = serde_json::from_slice::<AskData>(data);
    let _ = serde_json::from_slice::<PublishThreat>(data);
    let _ = serde_json::from_slice::<ImportThreat>(data);
});
