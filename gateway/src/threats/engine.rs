//! The countermeasure engine: which proposed actions apply, which wait, and why.
//!
//! Indicators that propose the same action on the same target form one [`Group`]. A group's
//! state is a pure function of its live contributions (valid now, from reporters in good
//! standing), the local policy for its kind and the operator's decision, so it is recomputed
//! whenever any of them changes and never drifts.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::{ActionKind, Countermeasure, Pattern, Severity};

/// How this gateway applies one kind of action (`gateway.toml` `[threats]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", untagged)]
pub enum Mode {
    /// `"auto"` or `"manual"`.
    Simple(SimpleMode),
    /// `{ auto_at_or_above = "high" }`: automatic from that severity, manual below it.
    Threshold {
        /// The lowest severity applied without an operator.
        auto_at_or_above: Severity,
    },
}

/// `auto` or `manual`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimpleMode {
    /// Applied as soon as it is corroborated.
    Auto,
    /// Waits for `tfcctl threat apply`.
    Manual,
}

impl Mode {
    /// Whether an action of this severity applies without an operator.
    pub fn automatic_at(self, severity: Severity) -> bool {
        match self {
            Mode::Simple(SimpleMode::Auto) => true,
            Mode::Simple(SimpleMode::Manual) => false,
            Mode::Threshold { auto_at_or_above } => severity >= auto_at_or_above,
        }
    }
}

/// The operator's word on one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Apply it.
    Apply,
    /// Do not apply it, whatever the reports say, until it expires.
    Reject,
}

/// Why an action is not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// In force.
    Applied,
    /// Against a member, reported by one ordinary member so far: waits for a charter admin's
    /// report or a second, independent reporter.
    AwaitingCorroboration,
    /// Waits for the operator (`tfcctl threat apply|reject`).
    AwaitingOperator,
    /// The operator refused it.
    Rejected,
    /// No live report: expired, not yet valid, or its reporters lost their standing.
    Inactive,
}

/// One report's part in a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    /// The reporter's DID (shared among its contributions).
    pub reporter: Arc<str>,
    /// The indicator id.
    pub indicator: String,
    /// Its danger level.
    pub severity: Severity,
    /// When it starts to apply (Unix seconds).
    pub valid_from: i64,
    /// When it ends (Unix seconds).
    pub expires: i64,
}

/// A reporter as the field sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reporter {
    /// A member in good standing (a charter admin or founder counts).
    pub in_good_standing: bool,
    /// A charter admin.
    pub admin: bool,
    /// The organisation behind the DID (its corporate number when verified, else the DID):
    /// two DIDs of one company are one reporter.
    pub organisation: String,
}

/// Indicators proposing one action on one target in one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The field id (shared among the groups of the field).
    pub field: Arc<str>,
    /// The pattern, which names the target.
    pub pattern: Pattern,
    /// The action and its parameter.
    pub countermeasure: Countermeasure,
    /// The reports behind it.
    pub contributions: Contributions,
}

/// A group's contributions, one per (reporter, indicator id), kept sorted by that pair.
///
/// Almost every group has one contribution, so this is a vector searched by bisection: a
/// map would allocate a whole tree node (over a kilobyte) for each of 100,000 indicators.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contributions(Vec<Contribution>);

impl Contributions {
    fn position(&self, reporter: &str, indicator: &str) -> Result<usize, usize> {
        self.0
            .binary_search_by(|c| (&*c.reporter, c.indicator.as_str()).cmp(&(reporter, indicator)))
    }

    /// Adds a contribution, or replaces the one with the same reporter and indicator.
    pub fn insert(&mut self, contribution: Contribution) {
        match self.position(&contribution.reporter, &contribution.indicator) {
            Ok(index) => self.0[index] = contribution,
            Err(index) => {
                if self.0.capacity() == 0 {
                    // The usual single contribution, without room for three more.
                    self.0.reserve_exact(1);
                }
                self.0.insert(index, contribution);
            }
        }
    }

    /// Removes the contribution of `reporter`'s `indicator`, if there is one.
    pub fn remove(&mut self, reporter: &str, indicator: &str) -> Option<Contribution> {
        let index = self.position(reporter, indicator).ok()?;
        Some(self.0.remove(index))
    }

    /// Keeps only the contributions `keep` accepts.
    pub fn retain(&mut self, keep: impl FnMut(&Contribution) -> bool) {
        self.0.retain(keep);
    }

    /// The contributions, by reporter then indicator id.
    pub fn iter(&self) -> std::slice::Iter<'_, Contribution> {
        self.0.iter()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Contribution> for Contributions {
    fn from_iter<I: IntoIterator<Item = Contribution>>(iter: I) -> Self {
        let mut contributions = Self::default();
        for contribution in iter {
            contributions.insert(contribution);
        }
        contributions
    }
}

/// Stored as a plain list, as the map it replaces was.
impl Serialize for Contributions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Contributions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Contribution>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// A group's state now, with what it was judged on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    /// The state.
    pub state: State,
    /// The highest severity among live contributions.
    pub severity: Option<Severity>,
    /// Distinct organisations among live reporters.
    pub reporters: usize,
    /// Whether a charter admin is among them.
    pub admin_reported: bool,
    /// When the last live contribution ends.
    pub expires: Option<i64>,
}

impl Group {
    /// The member DID the pattern names, if it names one.
    pub fn target_member(&self) -> Option<&str> {
        match &self.pattern {
            Pattern::Member { did } => Some(did),
            _ => None,
        }
    }

    /// Judges the group at `now` under `mode`, given the operator's word and how each
    /// reporter stands.
    pub fn judge(
        &self,
        now: i64,
        mode: Mode,
        operator: Option<Verdict>,
        reporter: impl Fn(&str) -> Reporter,
    ) -> Judgement {
        let target = self.target_member();
        let mut organisations = BTreeSet::new();
        let (mut severity, mut expires, mut admin_reported) = (None, None, false);
        for contribution in self.contributions.iter() {
            let live = contribution.valid_from <= now && now < contribution.expires;
            // A member cannot corroborate a report about itself.
            let about_itself = target == Some(&*contribution.reporter);
            let standing = reporter(&contribution.reporter);
            if !live || about_itself || !standing.in_good_standing {
                continue;
            }
            organisations.insert(standing.organisation);
            admin_reported |= standing.admin;
            severity = severity.max(Some(contribution.severity));
            expires = expires.max(Some(contribution.expires));
        }
        let corroborated = !self.countermeasure.action.against_members()
            || admin_reported
            || organisations.len() >= 2;
        let state = match (severity, operator) {
            (None, _) => State::Inactive,
            (Some(_), Some(Verdict::Reject)) => State::Rejected,
            (Some(_), _) if !corroborated => State::AwaitingCorroboration,
            (Some(_), Some(Verdict::Apply)) => State::Applied,
            (Some(severity), None) if mode.automatic_at(severity) => State::Applied,
            (Some(_), None) => State::AwaitingOperator,
        };
        Judgement {
            state,
            severity,
            reporters: organisations.len(),
            admin_reported,
            expires,
        }
    }

    /// When this group's judgement may next change by time alone: a contribution starting
    /// or ending.
    pub fn next_change(&self, now: i64) -> Option<i64> {
        self.contributions
            .iter()
            .flat_map(|c| [c.valid_from, c.expires])
            .filter(|at| *at > now)
            .min()
    }

    /// Whether no contribution can ever be live again.
    pub fn spent(&self, now: i64) -> bool {
        self.contributions.iter().all(|c| c.expires <= now)
    }
}

/// The id of the action a countermeasure proposes on a pattern in a field: indicators that
/// agree on all three are one action. Shown and stored as lower-case hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActionId([u8; 32]);

impl ActionId {
    /// The SHA-256 of `[field, pattern, countermeasure]` as JSON.
    pub fn of(field: &str, pattern: &Pattern, countermeasure: &Countermeasure) -> Self {
        let text = serde_json::json!([field, pattern, countermeasure]).to_string();
        Self(Sha256::digest(text.as_bytes()).into())
    }

    /// Reads an id from its hex form; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        crate::hex::decode(text)?.try_into().ok().map(Self)
    }
}

impl std::fmt::Display for ActionId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&crate::hex::encode(&self.0))
    }
}

/// The per-kind policy, with the defaults documented in `gateway.example.toml`.
pub fn default_mode(kind: ActionKind) -> Mode {
    if kind.against_members() && kind != ActionKind::MarkVulnerable {
        Mode::Simple(SimpleMode::Manual)
    } else {
        Mode::Threshold {
            auto_at_or_above: Severity::High,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn group(action: ActionKind, reports: &[(&str, Severity)]) -> Group {
        let countermeasure = Countermeasure {
            action,
            tier: (action == ActionKind::CapTier).then_some(1),
            credential: None,
        };
        let contributions = reports
            .iter()
            .enumerate()
            .map(|(n, (reporter, severity))| Contribution {
                reporter: (*reporter).into(),
                indicator: format!("indicator-{n}"),
                severity: *severity,
                valid_from: NOW - 10,
                expires: NOW + 100,
            })
            .collect();
        Group {
            field: "f".into(),
            pattern: Pattern::Member {
                did: "target".into(),
            },
            countermeasure,
            contributions,
        }
    }

    fn members(admins: &'static [&'static str]) -> impl Fn(&str) -> Reporter {
        move |did: &str| Reporter {
            in_good_standing: did != "revoked",
            admin: admins.contains(&did),
            organisation: did.trim_end_matches("-second-did").to_owned(),
        }
    }

    const AUTO: Mode = Mode::Simple(SimpleMode::Auto);

    #[test]
    fn one_member_cannot_act_against_another_alone() {
        let one = group(ActionKind::BlockPeer, &[("a", Severity::Critical)]);
        assert_eq!(
            one.judge(NOW, AUTO, None, members(&[])).state,
            State::AwaitingCorroboration
        );
        assert_eq!(
            one.judge(NOW, AUTO, Some(Verdict::Apply), members(&[]))
                .state,
            State::AwaitingCorroboration,
            "not even the operator can skip corroboration"
        );
        let admin = one.judge(NOW, AUTO, None, members(&["a"]));
        assert_eq!(admin.state, State::Applied);
        assert!(admin.admin_reported);
        let two = group(
            ActionKind::BlockPeer,
            &[("a", Severity::High), ("b", Severity::Low)],
        );
        let judged = two.judge(NOW, AUTO, None, members(&[]));
        assert_eq!((judged.state, judged.reporters), (State::Applied, 2));
        assert_eq!(judged.severity, Some(Severity::High));
    }

    #[test]
    fn two_dids_of_one_company_the_target_or_a_revoked_member_do_not_corroborate() {
        for reports in [
            [("a", Severity::High), ("a-second-did", Severity::High)],
            [("a", Severity::High), ("target", Severity::High)],
            [("a", Severity::High), ("revoked", Severity::High)],
        ] {
            let judged = group(ActionKind::CapTier, &reports).judge(NOW, AUTO, None, members(&[]));
            assert_eq!(judged.state, State::AwaitingCorroboration, "{reports:?}");
        }
    }

    #[test]
    fn the_mode_and_the_operator_decide_corroborated_actions() {
        let threshold = Mode::Threshold {
            auto_at_or_above: Severity::High,
        };
        let address = |severity| {
            let mut group = group(ActionKind::BlockAddress, &[("a", severity)]);
            group.pattern = Pattern::parse("[ipv4-addr:value = '192.0.2.1']").unwrap();
            group.countermeasure.tier = None;
            group
        };
        let state =
            |group: &Group, operator| group.judge(NOW, threshold, operator, members(&[])).state;
        assert_eq!(state(&address(Severity::High), None), State::Applied);
        assert_eq!(
            state(&address(Severity::Medium), None),
            State::AwaitingOperator
        );
        assert_eq!(
            state(&address(Severity::Medium), Some(Verdict::Apply)),
            State::Applied
        );
        assert_eq!(
            state(&address(Severity::Critical), Some(Verdict::Reject)),
            State::Rejected
        );
        let manual = Mode::Simple(SimpleMode::Manual);
        assert_eq!(
            address(Severity::Critical)
                .judge(NOW, manual, None, members(&[]))
                .state,
            State::AwaitingOperator
        );
    }

    #[test]
    fn an_action_lives_as_long_as_its_last_live_report() {
        let mut two = group(
            ActionKind::BlockPeer,
            &[("a", Severity::High), ("b", Severity::High)],
        );
        if let Some(first) = two.contributions.0.first_mut() {
            first.expires = NOW + 10;
        }
        assert_eq!(two.next_change(NOW), Some(NOW + 10));
        assert_eq!(
            two.judge(NOW + 5, AUTO, None, members(&[])).state,
            State::Applied
        );
        let later = two.judge(NOW + 50, AUTO, None, members(&[]));
        assert_eq!(later.state, State::AwaitingCorroboration, "one report left");
        assert_eq!(
            two.judge(NOW + 100, AUTO, None, members(&[])).state,
            State::Inactive
        );
        assert!(two.spent(NOW + 100));
        assert!(!two.spent(NOW));
    }

    #[test]
    fn contributions_stay_one_per_reporter_and_indicator_and_store_as_a_list() {
        let report = |reporter: &str, indicator: &str, severity| Contribution {
            reporter: reporter.into(),
            indicator: indicator.into(),
            severity,
            valid_from: NOW,
            expires: NOW + 1,
        };
        let mut contributions: Contributions = [
            report("b", "i-1", Severity::Low),
            report("a", "i-2", Severity::Low),
            report("a", "i-1", Severity::Low),
            report("b", "i-1", Severity::High),
        ]
        .into_iter()
        .collect();
        let pairs = |c: &Contributions| {
            c.iter()
                .map(|c| format!("{}/{}/{:?}", c.reporter, c.indicator, c.severity))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            pairs(&contributions),
            ["a/i-1/Low", "a/i-2/Low", "b/i-1/High"],
            "sorted, and a later report of the same indicator replaces the earlier"
        );
        assert!(contributions.remove("a", "i-2").is_some());
        assert!(contributions.remove("a", "i-2").is_none());
        let stored = serde_json::to_value(&contributions).unwrap();
        assert!(stored.is_array(), "{stored}");
        let mut shuffled = stored.as_array().unwrap().clone();
        shuffled.reverse();
        let read: Contributions = serde_json::from_value(Value::Array(shuffled)).unwrap();
        assert_eq!(
            read, contributions,
            "read back in order whatever the stored order"
        );
    }

    #[test]
    fn modes_read_from_toml() {
        #[derive(Deserialize)]
        struct Modes {
            a: Mode,
            b: Mode,
            c: Mode,
        }
        let modes: Modes =
            toml::from_str("a = \"auto\"\nb = \"manual\"\nc = { auto_at_or_above = \"critical\" }")
                .unwrap();
        assert_eq!(modes.a, AUTO);
        assert_eq!(modes.b, Mode::Simple(SimpleMode::Manual));
        assert!(modes.c.automatic_at(Severity::Critical) && !modes.c.automatic_at(Severity::High));
        assert!(toml::from_str::<Modes>("a = \"sometimes\"\nb = \"auto\"\nc = \"auto\"").is_err());
    }
}
