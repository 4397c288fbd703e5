//! Any bytes received on the wire: every protocol message decodes or is refused without a
//! panic, and a gossip envelope never opens without a valid signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tfc_gateway::credential::CredentialVerifier;
use tfc_gateway::net::{
    DataRequest, DataResponse, HandshakeRequest, HandshakeResponse, SyncRequest, SyncResponse,
    parse_topic,
};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<HandshakeRequest>(data);
    let _ = serde_json::from_slice::<HandshakeResponse>(data);
    let _ = serde_json::from_slice::<SyncRequest>(data);
    let _ = serde_json::from_slice::<SyncResponse>(data);
    if let Ok(DataRequest::Submit { record, .. }) = serde_json::from_slice::<DataRequest>(data) {
        let _ = record.digest();
        assert!(!record.signature_holds() || !record.signature.is_empty());
    }
    let _ = serde_json::from_slice::<DataResponse>(data);
    let text = String::from_utf8_lossy(data);
    let _ = parse_topic(&text);
    let _ = CredentialVerifier::new().open_message(&text, 1024 * 1024);
});
