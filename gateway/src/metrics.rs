//! Counters for Prometheus (`/metrics`): every module counts what it does here, by a label
//! such as a verification code, and the API renders them in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// A counter family: its name and help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Family {
    /// The metric name.
    pub name: &'static str,
    /// The label the family is split by.
    pub label: &'static str,
    /// One line of help.
    pub help: &'static str,
}

/// Handshake outcomes: `verified` or the refusal code.
pub const HANDSHAKES: Family = Family {
    name: "tfc_handshakes_total",
    label: "outcome",
    help: "Handshakes by outcome (verified or the refusal code).",
};
/// Presentations and credentials verified, by result code (`ok` or a code of docs/ERRORS.md).
pub const VERIFICATIONS: Family = Family {
    name: "tfc_verifications_total",
    label: "code",
    help: "Presentations and credentials verified, by result code.",
};
/// Decisions, by `<kind>:<allow|deny>` (kind: admission, data, …).
pub const DECISIONS: Family = Family {
    name: "tfc_decisions_total",
    label: "decision",
    help: "Decisions taken, by kind and outcome.",
};
/// Gossip messages judged, by verdict (`accept`, `ignore` or the rejection code).
pub const GOSSIP: Family = Family {
    name: "tfc_gossip_messages_total",
    label: "verdict",
    help: "Gossip messages judged, by verdict.",
};

/// Items received by anti-entropy, by kind.
pub const SYNCED: Family = Family {
    name: "tfc_sync_items_total",
    label: "kind",
    help: "Items received by anti-entropy, by kind.",
};

/// The counters of one gateway.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(Family, String), u64>>,
}

impl Metrics {
    /// Adds one to `family{label=value}`.
    pub fn count(&self, family: Family, value: &str) {
        if let Ok(mut counters) = self.counters.lock() {
            *counters.entry((family, value.to_owned())).or_default() += 1;
        }
    }

    /// The current value of `family{label=value}`.
    pub fn get(&self, family: Family, value: &str) -> u64 {
        self.counters
            .lock()
            .ok()
            .and_then(|counters| counters.get(&(family, value.to_owned())).copied())
            .unwrap_or(0)
    }

    /// Every counter in the Prometheus text format, each family with its HELP and TYPE.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let Ok(counters) = self.counters.lock() else {
            return text;
        };
        let mut current: Option<Family> = None;
        for ((family, value), count) in counters.iter() {
            if current != Some(*family) {
                let _ = writeln!(text, "# HELP {} {}", family.name, family.help);
                let _ = writeln!(text, "# TYPE {} counter", family.name);
                current = Some(*family);
            }
            let _ = writeln!(
                text,
                "{}{{{}=\"{}\"}} {count}",
                family.name,
                family.label,
                escape(value)
            );
        }
        text
    }
}

/// Escapes a label value as the exposition format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_grouped_by_family() {
        let metrics = Metrics::default();
        metrics.count(VERIFICATIONS, "ok");
        metrics.count(VERIFICATIONS, "ok");
        metrics.count(VERIFICATIONS, "expired");
        metrics.count(DECISIONS, "admission:deny");
        assert_eq!(metrics.get(VERIFICATIONS, "ok"), 2);
        let text = metrics.render();
        assert_eq!(
            text.matches("# TYPE tfc_verifications_total counter")
                .count(),
            1
        );
        assert!(text.contains("tfc_verifications_total{code=\"ok\"} 2\n"));
        assert!(text.contains("tfc_verifications_total{code=\"expired\"} 1\n"));
        assert!(text.contains("tfc_decisions_total{decision=\"admission:deny\"} 1\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::default();
        metrics.count(GOSSIP, "a\"b\\c\nd");
        assert!(metrics.render().contains(r#"verdict="a\"b\\c\nd""#));
    }
}
