//! Any bytes given as a threat report: bundle parsing, pattern parsing and matching never
//! panic, and what parses stays within the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tfc_gateway::threats::parse_bundle;
use tfc_gateway::threats::pattern::Pattern;

const NOW: i64 = 1_780_272_000;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let bundle = value.get("bundle").unwrap_or(&value);
        if let Ok(parsed) = parse_bundle(bundle, NOW) {
            assert!(parsed.indicators.len() <= 100, "at most 100 objects");
        }
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(pattern) = Pattern::parse(&text) {
        let _ = pattern.matches_address("198.51.100.7".parse().expect("a fixed address"));
        let _ = pattern.matches_domain("cdn.example.org");
    }
});
