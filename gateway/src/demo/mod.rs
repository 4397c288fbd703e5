//! `tfc-gateway demo`: a real field of gateways on loopback (each with its own data directory,
//! sled store, libp2p and HTTPS sockets) plays a scenario step by step, with narration.
//!
//! Every step states the outcome it expects; the demo reports every step that differs, so it
//! is also a test. The scenarios are the example fields in `config/fields/`, played with fresh
//! keys.

mod cast;
mod housing;
mod supply_chain;

use std::collections::BTreeMap;
use std::fmt::Display;

use serde::Serialize;

use crate::localnet::LocalNetError;

/// A demo scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// A city screens contractors who apply to its housing-subsidy programme.
    HousingSubsidy,
    /// A manufacturer shares restricted design data with certified suppliers.
    SupplyChain,
}

impl Scenario {
    fn summary(self) -> &'static str {
        match self {
            Self::HousingSubsidy => {
                "a city screens the contractors who apply to its housing subsidy"
            }
            Self::SupplyChain => {
                "a manufacturer shares restricted design data with certified suppliers"
            }
        }
    }
}

/// How to play it.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The scenario.
    pub scenario: Scenario,
    /// No narration: the caller prints the report as JSON.
    pub json: bool,
    /// Leave the field up after the last step, until Ctrl-C.
    pub keep_running: bool,
}

/// The demo could not be played (as opposed to a step with an unexpected outcome).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A gateway could not be started or driven.
    #[error(transparent)]
    LocalNet(#[from] LocalNetError),
    /// A step could not be carried out.
    #[error("{what}: {message}")]
    Failed {
        /// The step.
        what: String,
        /// Why.
        message: String,
    },
}

impl DemoError {
    fn failed(what: &str, message: String) -> Self {
        Self::Failed {
            what: what.to_owned(),
            message,
        }
    }

    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::LocalNet(error) => error.code(),
            Self::Failed { .. } => "demo_step_failed",
        }
    }
}

/// One step's expected and actual outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What happened.
    pub step: String,
    /// The outcome the scenario expects.
    pub expected: String,
    /// The outcome observed.
    pub actual: String,
    /// Whether they agree.
    pub ok: bool,
    /// Why, in the gateway's words.
    pub detail: String,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The scenario played.
    pub scenario: Scenario,
    /// Every step, in order.
    pub steps: Vec<Step>,
    /// Measured figures (milliseconds, counts).
    pub figures: BTreeMap<String, f64>,
    /// Whether every step's outcome was the expected one.
    pub all_as_expected: bool,
}

/// The narration and the steps checked so far.
pub struct Story {
    quiet: bool,
    chapter: usize,
    steps: Vec<Step>,
    figures: BTreeMap<String, f64>,
}

/// The width the narration keeps to.
const COLUMNS: usize = 100;

/// Wraps each line of `text` at spaces to `width` columns; a continuation of an indented
/// line is indented two more. A word longer than the width stays whole.
fn wrap(text: &str, width: usize) -> String {
    let mut out = Vec::new();
    for line in text.split('\n') {
        if crate::text::columns(line) <= width {
            out.push(line.to_owned());
            continue;
        }
        let indent = line.len() - line.trim_start_matches(' ').len();
        let continuation = " ".repeat(if indent > 0 { indent + 2 } else { 0 });
        let mut current = " ".repeat(indent);
        let mut fresh = true;
        for word in line.split(' ').filter(|word| !word.is_empty()) {
            if !fresh && crate::text::columns(&current) + 1 + crate::text::columns(word) > width {
                out.push(std::mem::replace(&mut current, continuation.clone()));
                fresh = true;
            }
            if !fresh {
                current.push(' ');
            }
            current.push_str(word);
            fresh = false;
        }
        out.push(current);
    }
    out.join("\n")
}

impl Story {
    fn new(quiet: bool) -> Self {
        Self {
            quiet,
            chapter: 0,
            steps: Vec::new(),
            figures: BTreeMap::new(),
        }
    }

    /// Starts a numbered chapter.
    fn chapter(&mut self, title: &str) {
        self.chapter += 1;
        self.say(&format!("\n{}. {title}", self.chapter));
    }

    /// A line of narration (nothing under `--json`), wrapped to [`COLUMNS`].
    fn say(&self, text: &str) {
        if !self.quiet {
            println!("{}", wrap(text, COLUMNS));
        }
    }

    /// Records a step: its outcome is as expected if `actual` reads as `expected`. The line
    /// says so in words: a refusal the story expects is no failure, and a tick beside
    /// "refused" read as one.
    fn check(&mut self, step: &str, expected: impl Display, actual: impl Display, detail: &str) {
        let (expected, actual) = (expected.to_string(), actual.to_string());
        let ok = expected == actual;
        let mut line = if ok {
            format!("   - {step}: {actual}, as expected")
        } else {
            format!("   ! {step}: {actual}, but {expected} was expected")
        };
        if !detail.is_empty() {
            line.push_str(&format!("\n       {detail}"));
        }
        self.say(&line);
        self.steps.push(Step {
            step: step.to_owned(),
            expected,
            actual,
            ok,
            detail: detail.to_owned(),
        });
    }

    /// Records a measured figure.
    fn figure(&mut self, name: &str, value: f64) {
        self.figures.insert(name.to_owned(), value);
    }

    fn report(self, scenario: Scenario) -> Report {
        Report {
            scenario,
            all_as_expected: self.steps.iter().all(|step| step.ok),
            steps: self.steps,
            figures: self.figures,
        }
    }
}

/// A scenario's field, played quietly and still up: for tests that probe it from outside.
pub struct PlayedField {
    /// The field id.
    pub field: String,
    /// Each organisation's name and its running gateway, in cast order.
    pub gateways: Vec<(&'static str, crate::localnet::LocalGateway)>,
    /// How the story went.
    pub report: Report,
}

/// Plays `scenario` without narration on gateways under `root`; the field stays up.
pub async fn play_quietly(
    scenario: Scenario,
    root: &std::path::Path,
) -> Result<PlayedField, DemoError> {
    let mut story = Story::new(true);
    let (cast, field, _) = match scenario {
        Scenario::HousingSubsidy => housing::play(root, &mut story).await?,
        Scenario::SupplyChain => supply_chain::play(root, &mut story).await?,
    };
    Ok(PlayedField {
        field,
        gateways: cast
            .members
            .into_iter()
            .map(|member| (member.name, member.node))
            .collect(),
        report: story.report(scenario),
    })
}

/// Plays the scenario on a fresh field under a temporary directory, removed at the end.
pub async fn run(options: Options) -> Result<Report, DemoError> {
    let root = tempfile::Builder::new()
        .prefix("tfc-demo-")
        .tempdir()
        .map_err(|error| DemoError::failed("making a temporary directory", error.to_string()))?;
    let mut story = Story::new(options.json);
    story.say(&format!(
        "TFC gateway demo: {}. Every gateway below is a real one on 127.0.0.1, with its data under {}.",
        options.scenario.summary(),
        root.path().display()
    ));
    let (cast, field, tour_from) = match options.scenario {
        Scenario::HousingSubsidy => housing::play(root.path(), &mut story).await?,
        Scenario::SupplyChain => supply_chain::play(root.path(), &mut story).await?,
    };
    let report = story.report(options.scenario);
    if !options.json {
        print_summary(&report);
    }
    if options.keep_running {
        cast.print_tour(tour_from, &field);
        tokio::signal::ctrl_c()
            .await
            .map_err(|error| DemoError::failed("waiting for Ctrl-C", error.to_string()))?;
    }
    cast.shutdown().await?;
    Ok(report)
}

fn print_summary(report: &Report) {
    let width = report
        .steps
        .iter()
        .map(|step| step.step.chars().count())
        .max()
        .unwrap_or(4);
    println!("\nSummary\n");
    println!("  {:<width$}  {:<28}  result", "step", "outcome");
    for step in &report.steps {
        let result = if step.ok {
            "as expected".to_owned()
        } else {
            format!("UNEXPECTED (expected {})", step.expected)
        };
        println!("  {:<width$}  {:<28}  {result}", step.step, step.actual);
    }
    for (name, value) in &report.figures {
        println!("  {name}: {value:.1}");
    }
    let failed = report.steps.iter().filter(|step| !step.ok).count();
    if failed == 0 {
        println!("\nEvery step went as expected.");
    } else {
        println!("\n{failed} step(s) did not go as expected.");
    }
}

#[cfg(test)]
mod tests {
    use super::wrap;
    use crate::text::columns;

    #[test]
    fn narration_is_wrapped_to_the_width_keeping_words_and_indentation() {
        let detail = format!(
            "       certification not reached: {} BusinessLicenseCredential.trades contains '建築工事業'",
            "no BusinessLicenseCredential was presented; ".repeat(4)
        );
        let wrapped = wrap(&format!("   - a step: done, as expected\n{detail}"), 100);
        let lines: Vec<&str> = wrapped.lines().collect();
        assert_eq!(lines[0], "   - a step: done, as expected");
        assert!(lines.len() > 3, "{wrapped}");
        for line in &lines {
            assert!(columns(line) <= 100, "{} columns: {line}", columns(line));
        }
        assert!(lines[1].starts_with("       certification"));
        assert!(lines[2].starts_with("         ") && !lines[2].starts_with("          "));
        let words = |text: &str| {
            text.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            words(&wrapped),
            words(&format!("   - a step: done, as expected\n{detail}"))
        );
        // Wide characters count double; a word longer than the width stays whole.
        assert_eq!(columns("建築"), 4);
        let long = "x".repeat(120);
        assert_eq!(wrap(&long, 100), long);
    }
}
