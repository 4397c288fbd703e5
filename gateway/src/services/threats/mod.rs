//! The threat book: indicators held, countermeasures judged and applied, all on disk.
//!
//! Every change of an action's state (queued, applied, rejected, lifted) is audited, and
//! stored with the state, so that a restart neither re-applies silently nor forgets to lift
//! what expired while the gateway was down.

mod actions;
pub mod taxii;
#[cfg(test)]
mod tests;

use actions::live_severity;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::audit::Event;
use crate::config::ThreatsConfig;
use crate::identity::PublicKey;
use crate::net::{AddressBlocks, AddressChange};
use crate::services::{PeerRecord, Services};
use crate::store::{StoreTree, Stored, Tree};
use crate::threats::engine::{ActionId, Contribution, Group, Reporter, State, Verdict};
use crate::threats::{
    ActionKind, Indicator, Severity, ThreatCode, ThreatError, Tlp, parse_bundle, pattern_kind,
};

/// Named recipients a TLP:RED report may have.
pub const MAX_RECIPIENTS: usize = 64;

/// How a report reached this gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Gossip on the field's threat topic.
    Gossip,
    /// Sent to this gateway by name (TLP:RED).
    Direct,
    /// Published here.
    Local,
    /// Imported from a file by the operator.
    Import,
}

/// An indicator as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HeldIndicator {
    field: String,
    reporter: String,
    origin: Origin,
    tlp: Tlp,
    recipients: Vec<String>,
    added_ms: i64,
    expires: i64,
    object: Map<String, Value>,
}

impl Stored for HeldIndicator {
    const VERSION: u8 = 1;
}

/// An action's state as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct HeldAction {
    group: Group,
    state: State,
    verdict: Option<Verdict>,
}

impl Stored for HeldAction {
    const VERSION: u8 = 1;
}

/// A TAXII log entry: the indicator key it points at.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LogEntry(String);

impl Stored for LogEntry {
    const VERSION: u8 = 1;
}

/// What a report did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportOutcome {
    /// Indicators taken (new, or newer versions).
    pub taken: usize,
    /// Indicators already held in this version or a newer one.
    pub unchanged: usize,
    /// The actions the report touched, as they stand now.
    pub actions: Vec<ActionView>,
}

/// An action as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionView {
    /// The action id.
    pub id: String,
    /// The field id.
    pub field: String,
    /// `block-peer`, `block-address`, ….
    pub action: ActionKind,
    /// The pattern's kind and target.
    #[schema(value_type = Object)]
    pub target: Value,
    /// The countermeasure's parameter (tier ceiling or credential id), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// Its state.
    pub state: State,
    /// The highest live severity.
    pub severity: Option<Severity>,
    /// Distinct reporting organisations in good standing.
    pub reporters: usize,
    /// Whether a charter admin reported it.
    pub admin_reported: bool,
    /// When it ends (Unix seconds).
    pub expires: Option<i64>,
    /// When its earliest report started to apply (Unix seconds).
    #[serde(default)]
    pub since: Option<i64>,
    /// The indicators behind it.
    pub indicators: Vec<String>,
}

/// A STIX object with where it came from, for listings and TAXII.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldObject {
    /// The STIX object.
    pub object: Map<String, Value>,
    /// The reporter's DID.
    pub reporter: String,
    /// When this gateway took it (Unix ms).
    pub added_ms: i64,
    /// How it arrived.
    pub origin: Origin,
    /// Its marking.
    pub tlp: Tlp,
    /// Its position in the field's log, for paging.
    pub position: Vec<u8>,
}

/// Tokens per reporter.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A 128-bit digest of an indicator key or id: the book holds 100,000s of them, and the
/// text (up to 200 bytes) is on disk.
type Digest16 = [u8; 16];

fn digest16(text: &str) -> Digest16 {
    use sha2::Digest as _;
    let full: [u8; 32] = sha2::Sha256::digest(text.as_bytes()).into();
    let mut short = [0; 16];
    short.copy_from_slice(&full[..16]);
    short
}

#[derive(Default)]
struct Book {
    groups: HashMap<ActionId, HeldAction>,
    /// Indicator key's digest → (modified ms, action).
    held: HashMap<Digest16, (i64, ActionId)>,
    /// (field, reporter) → indicators held.
    per_reporter: HashMap<(String, String), usize>,
    /// Indicator id's digest → (field, marking) wherever it is held, for the re-sharing
    /// rule.
    by_id: HashMap<Digest16, Vec<(Arc<str>, Tlp)>>,
    /// Field ids and reporter DIDs, one copy each for all the groups that name them.
    names: HashSet<Arc<str>>,
    buckets: HashMap<String, Bucket>,
    /// How reporters stood, by (field, DID), as of a peer-records generation.
    reporters: HashMap<(String, String), Reporter>,
    reporters_generation: u64,
}

impl Book {
    /// The shared copy of a field id or DID.
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.names.get(name) {
            return Arc::clone(known);
        }
        let name: Arc<str> = Arc::from(name);
        self.names.insert(Arc::clone(&name));
        name
    }
}

/// The threat book of one gateway.
pub struct Threats {
    services: Arc<Services>,
    config: ThreatsConfig,
    book: Mutex<Book>,
    addresses: mpsc::UnboundedSender<AddressChange>,
    /// The receiving end, until the network takes it.
    address_changes: Mutex<Option<mpsc::UnboundedReceiver<AddressChange>>>,
    indicators: StoreTree,
    actions: StoreTree,
    log: StoreTree,
}

fn indicator_key(field: &str, reporter: &str, id: &str) -> String {
    format!("{field}/{reporter}/{id}")
}

/// The report body carried in a signed envelope: the bundle and, for TLP:RED, the named
/// recipients.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportBody {
    /// The STIX 2.1 bundle.
    pub bundle: Value,
    /// Recipients' DIDs (TLP:RED only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
}

impl Threats {
    /// Loads the book from the store, lifts what expired meanwhile, and puts the rest in
    /// force.
    pub fn load(services: Arc<Services>, config: ThreatsConfig) -> Result<Self, ThreatError> {
        let (addresses, address_changes) = mpsc::unbounded_channel();
        let threats = Self {
            address_changes: Mutex::new(Some(address_changes)),
            indicators: services.store().tree(Tree::Indicators)?,
            actions: services.store().tree(Tree::ThreatActions)?,
            log: services.store().tree(Tree::ThreatLog)?,
            services,
            config,
            book: Mutex::new(Book::default()),
            addresses,
        };
        let now = crate::credential::now_unix();
        let mut book = threats.lock()?;
        let indicators = &threats.indicators;
        // An entry that no longer reads is dropped with a log line: one bad entry must not
        // keep the gateway from starting, and an indicator is only ever a report.
        for (key, held) in indicators.entries_lossy::<HeldIndicator>()? {
            let key = String::from_utf8_lossy(&key).into_owned();
            match held
                .as_ref()
                .ok()
                .and_then(|held| Some((held, Self::reparse(held)?)))
            {
                Some((held, indicator)) if held.expires > now => {
                    threats.remember(&mut book, digest16(&key), held, &indicator);
                }
                _ => {
                    if let Err(reason) = &held {
                        tracing::error!(%key, %reason, "unreadable indicator dropped");
                    }
                    indicators.remove(key.as_bytes())?;
                }
            }
        }
        for (key, stored) in threats.actions.entries_lossy::<HeldAction>()? {
            let text = String::from_utf8_lossy(&key);
            let (id, stored) = match (ActionId::parse(&text), stored) {
                (Some(id), Ok(stored)) => (id, stored),
                (_, stored) => {
                    let reason = stored.err().unwrap_or_else(|| "not an action id".into());
                    tracing::error!(action = %text, %reason, "unreadable threat action dropped");
                    threats.actions.remove(&key)?;
                    continue;
                }
            };
            let field = book.intern(&stored.group.field);
            let current = book.groups.entry(id).or_insert_with(|| HeldAction {
                // Every indicator behind it is gone: the judgement below lifts it.
                group: Group {
                    field,
                    contributions: Default::default(),
                    ..stored.group
                },
                state: stored.state,
                verdict: None,
            });
            current.state = stored.state;
            current.verdict = stored.verdict;
            if stored.state == State::Applied {
                let severity = live_severity(&current.group, now);
                threats.put_in_force(id, &current.group, severity);
            }
        }
        let ids: Vec<ActionId> = book.groups.keys().copied().collect();
        let mut events = Vec::new();
        threats.rejudge(&mut book, ids, now, &mut events);
        drop(book);
        threats.services.audit.record_all(events);
        Ok(threats)
    }

    /// The book, or an error if a panic left it half-changed: fails closed, nothing is
    /// taken or applied from a book that may be inconsistent.
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Book>, ThreatError> {
        self.book
            .lock()
            .map_err(|_| ThreatError::new(ThreatCode::Store, "the threat book's lock is poisoned"))
    }

    fn reparse(held: &HeldIndicator) -> Option<Indicator> {
        let bundle = serde_json::json!({
            "type": "bundle",
            "id": format!("bundle--{}", uuid::Uuid::nil()),
            "objects": [held.object],
        });
        let mut indicator = parse_bundle(&bundle, held.added_ms / 1000)
            .ok()?
            .indicators
            .pop()?;
        indicator.expires = held.expires;
        Some(indicator)
    }

    /// The changes to the address blocks, from the first, for the network
    /// ([`crate::net::Command::GateAddresses`]); only the first caller gets them.
    pub fn take_address_changes(&self) -> Option<mpsc::UnboundedReceiver<AddressChange>> {
        self.address_changes.lock().ok()?.take()
    }

    /// The addresses, networks and domains blocked now.
    pub fn address_blocks(&self) -> AddressBlocks {
        self.services.threat_effects.address_blocks()
    }

    /// Takes a report from `reporter` in `field`. The caller has checked the reporter's
    /// signature and membership; this checks everything about the report itself.
    pub fn receive(
        &self,
        field: &str,
        reporter: &str,
        body: &Value,
        origin: Origin,
    ) -> Result<ReportOutcome, ThreatError> {
        let report = self.prepare(field, body, origin)?;
        let mut outcomes = self.take(vec![(reporter.to_owned(), report)]);
        outcomes.pop().unwrap_or_else(|| {
            Err(ThreatError::new(
                ThreatCode::Store,
                "a report came back without an outcome",
            ))
        })
    }

    /// Checks a report in itself (its field, shape, bundle and marking), without the book:
    /// the part of taking it that needs no lock, for the caller to run on any core.
    pub fn prepare(
        &self,
        field: &str,
        body: &Value,
        origin: Origin,
    ) -> Result<PreparedReport, ThreatError> {
        if self.services.fields.get(field).is_none() {
            return Err(ThreatError::new(
                ThreatCode::WrongField,
                "this gateway has not joined that field",
            ));
        }
        let malformed = |message: &str| ThreatError::new(ThreatCode::Malformed, message);
        let report = body
            .as_object()
            .filter(|report| {
                report
                    .keys()
                    .all(|key| key == "bundle" || key == "recipients")
            })
            .ok_or_else(|| malformed("a report body is {\"bundle\": …, \"recipients\": […]}"))?;
        let recipients: Vec<String> = match report.get("recipients") {
            Some(recipients) => Vec::<String>::deserialize(recipients)
                .map_err(|_| malformed("recipients is a list of DIDs"))?,
            None => Vec::new(),
        };
        let now = crate::credential::now_unix();
        let bundle = parse_bundle(
            report
                .get("bundle")
                .ok_or_else(|| malformed("a report has a bundle"))?,
            now,
        )?;
        self.check_marking(&bundle, &recipients, origin)?;
        Ok(PreparedReport {
            field: field.to_owned(),
            recipients,
            bundle,
            origin,
        })
    }

    /// Takes prepared reports, each from its reporter, in order, under one lock: the actions
    /// they touch are judged once, and each reporter's reports are audited in one entry. One
    /// outcome per report, in order.
    pub fn take(
        &self,
        reports: Vec<(String, PreparedReport)>,
    ) -> Vec<Result<ReportOutcome, ThreatError>> {
        let count = reports.len();
        let mut book = match self.lock() {
            Ok(book) => book,
            Err(error) => return vec![Err(error); count],
        };
        let mut taken = Vec::with_capacity(count);
        for (reporter, report) in reports {
            let mut touched = Vec::new();
            let outcome = self.take_one(&mut book, &reporter, &report, &mut touched);
            taken.push(Taken {
                reporter,
                report,
                outcome,
                touched,
            });
        }
        let now = crate::credential::now_unix();
        let mut events = audit_reports(&taken);
        let mut touched: Vec<ActionId> = taken
            .iter()
            .flat_map(|report| report.touched.iter().copied())
            .collect();
        touched.sort();
        touched.dedup();
        self.rejudge(&mut book, touched, now, &mut events);
        let outcomes = taken
            .into_iter()
            .map(|report| {
                report.outcome.map(|mut outcome| {
                    outcome.actions = (report.touched.iter())
                        .filter_map(|id| self.view(&mut book, *id, now))
                        .collect();
                    outcome
                })
            })
            .collect();
        drop(book);
        // On disk with the indicators, at the commit of whoever acknowledges the report.
        self.services.audit.record_all(events);
        outcomes
    }

    /// One report's indicators into the book and the store; the actions they touch go to
    /// `touched`, also those of indicators taken before a quota stopped the report.
    fn take_one(
        &self,
        book: &mut Book,
        reporter: &str,
        report: &PreparedReport,
        touched: &mut Vec<ActionId>,
    ) -> Result<ReportOutcome, ThreatError> {
        let (field, origin) = (report.field.as_str(), report.origin);
        if matches!(origin, Origin::Gossip | Origin::Direct) {
            self.within_rate(book, reporter, report.bundle.indicators.len())?;
        }
        let mut outcome = ReportOutcome::default();
        let added_ms = crate::audit::now_ms();
        for indicator in &report.bundle.indicators {
            let key = indicator_key(field, reporter, &indicator.id);
            let digest = digest16(&key);
            let previous = book.held.get(&digest).copied();
            if previous
                .as_ref()
                .is_some_and(|(modified, _)| *modified >= indicator.modified_ms)
            {
                outcome.unchanged += 1;
                continue;
            }
            let quota = (field.to_owned(), reporter.to_owned());
            if previous.is_none()
                && book.per_reporter.get(&quota).copied().unwrap_or(0)
                    >= self.config.max_indicators_per_reporter
            {
                return Err(ThreatError::new(
                    ThreatCode::RateLimited,
                    format!(
                        "{reporter} already holds {} indicators in this field",
                        self.config.max_indicators_per_reporter
                    ),
                ));
            }
            let held = HeldIndicator {
                field: field.to_owned(),
                reporter: reporter.to_owned(),
                origin,
                tlp: indicator.tlp,
                recipients: report.recipients.clone(),
                added_ms,
                expires: indicator.expires,
                object: indicator.object.clone(),
            };
            self.indicators.put(key.as_bytes(), &held)?;
            self.log.put(
                format!("{field}/{added_ms:016x}/{key}").as_bytes(),
                &LogEntry(key.clone()),
            )?;
            if let Some((_, old_action)) = previous {
                Self::withdraw(book, &old_action, reporter, &indicator.id);
                touched.push(old_action);
            }
            touched.push(self.remember(book, digest, &held, indicator));
            outcome.taken += 1;
        }
        if outcome.taken == 0 {
            return Err(ThreatError::new(
                ThreatCode::Replayed,
                "every indicator is already held in this version or a newer one",
            ));
        }
        Ok(outcome)
    }

    fn check_marking(
        &self,
        bundle: &crate::threats::Bundle,
        recipients: &[String],
        origin: Origin,
    ) -> Result<(), ThreatError> {
        let violation = |message: &str| ThreatError::new(ThreatCode::TlpViolation, message);
        if recipients.len() > MAX_RECIPIENTS {
            return Err(violation("too many recipients"));
        }
        let red = bundle.tlp() == Tlp::Red;
        match (red, origin) {
            (true, Origin::Gossip) => Err(violation("TLP:RED is never gossiped")),
            (true, Origin::Local) if recipients.is_empty() => {
                Err(violation("TLP:RED goes to named recipients: name them"))
            }
            (true, Origin::Direct) if !recipients.contains(&self.services.key.did()) => {
                Err(violation("this gateway is not a named recipient"))
            }
            (false, _) if !recipients.is_empty() => Err(violation(
                "recipients are named only for TLP:RED; other markings go to the field",
            )),
            _ => Ok(()),
        }
    }

    /// Refuses to publish into `field` an indicator held from another field whose marking
    /// keeps it there (AMBER, AMBER+STRICT, RED).
    pub fn check_resharing(&self, field: &str, bundle: &Value) -> Result<(), ThreatError> {
        let now = crate::credential::now_unix();
        let bundle = parse_bundle(bundle, now)?;
        let book = self.lock()?;
        for indicator in &bundle.indicators {
            let restricted = book
                .by_id
                .get(&digest16(&indicator.id))
                .into_iter()
                .flatten()
                .find(|(held_in, tlp)| &**held_in != field && !tlp.may_leave_field());
            if let Some((held_in, tlp)) = restricted {
                return Err(ThreatError::new(
                    ThreatCode::TlpViolation,
                    format!(
                        "{} came from field {held_in} marked {tlp:?}: it may not leave that field",
                        indicator.id
                    ),
                ));
            }
        }
        Ok(())
    }

    fn within_rate(
        &self,
        book: &mut Book,
        reporter: &str,
        count: usize,
    ) -> Result<(), ThreatError> {
        let now = Instant::now();
        let burst = f64::from(self.config.reporter_burst);
        let bucket = book.buckets.entry(reporter.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.config.reporter_rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        let wanted = count as f64;
        if bucket.tokens < wanted {
            return Err(ThreatError::new(
                ThreatCode::RateLimited,
                format!(
                    "{reporter} sent indicators faster than {} per second",
                    self.config.reporter_rate
                ),
            ));
        }
        bucket.tokens -= wanted;
        Ok(())
    }

    /// Records an indicator, by its key's digest, in memory: its contribution to its
    /// action's group. Returns the action id.
    fn remember(
        &self,
        book: &mut Book,
        key: Digest16,
        held: &HeldIndicator,
        indicator: &Indicator,
    ) -> ActionId {
        let id = ActionId::of(&held.field, &indicator.pattern, &indicator.countermeasure);
        let (field, reporter) = (book.intern(&held.field), book.intern(&held.reporter));
        let contribution = Contribution {
            reporter,
            indicator: indicator.id.clone(),
            severity: indicator.severity,
            valid_from: indicator.valid_from,
            expires: held.expires,
        };
        book.groups
            .entry(id)
            .or_insert_with(|| HeldAction {
                group: Group {
                    field: Arc::clone(&field),
                    pattern: indicator.pattern.clone(),
                    countermeasure: indicator.countermeasure.clone(),
                    contributions: Default::default(),
                },
                state: State::Inactive,
                verdict: None,
            })
            .group
            .contributions
            .insert(contribution);
        if book.held.insert(key, (indicator.modified_ms, id)).is_none() {
            *book
                .per_reporter
                .entry((held.field.clone(), held.reporter.clone()))
                .or_default() += 1;
        }
        let places = book
            .by_id
            .entry(digest16(&indicator.id))
            .or_insert_with(|| Vec::with_capacity(1));
        if !places.contains(&(Arc::clone(&field), held.tlp)) {
            places.push((field, held.tlp));
        }
        id
    }

    fn withdraw(book: &mut Book, action: &ActionId, reporter: &str, indicator: &str) {
        if let Some(held) = book.groups.get_mut(action) {
            held.group.contributions.remove(reporter, indicator);
        }
    }

    /// How `did` stands as a reporter in `field` now: remembered until a peer record or
    /// the governance state changes.
    fn reporter(&self, book: &mut Book, field: &str, did: &str) -> Reporter {
        let generation = self.services.peers.generation();
        if generation != book.reporters_generation {
            book.reporters.clear();
            book.reporters_generation = generation;
        }
        let key = (field.to_owned(), did.to_owned());
        if let Some(known) = book.reporters.get(&key) {
            return known.clone();
        }
        let reporter = self.look_up_reporter(field, did);
        book.reporters.insert(key, reporter.clone());
        reporter
    }

    fn look_up_reporter(&self, field: &str, did: &str) -> Reporter {
        let record: Option<PeerRecord> =
            PublicKey::peer_id_of(did).and_then(|peer| self.services.peers.get(peer));
        let in_good_standing = if did == self.services.key.did() {
            !self.services.is_barred(field, did)
        } else {
            self.services.in_good_standing(field, did)
        };
        // Admins are the charter's: governance amends issuers and quorum, not admins.
        let admin = self
            .services
            .fields
            .get(field)
            .is_some_and(|joined| joined.charter.admins.iter().any(|admin| admin == did));
        Reporter {
            in_good_standing,
            admin,
            organisation: record
                .and_then(|record| record.corporate_number)
                .unwrap_or_else(|| did.to_owned()),
        }
    }
}

/// A report checked in itself, ready for [`Threats::take`].
#[derive(Debug)]
pub struct PreparedReport {
    field: String,
    recipients: Vec<String>,
    bundle: crate::threats::Bundle,
    origin: Origin,
}

/// A report taken: who sent it, what it was, how it went, and the actions it touched.
struct Taken {
    reporter: String,
    report: PreparedReport,
    outcome: Result<ReportOutcome, ThreatError>,
    touched: Vec<ActionId>,
}

/// One audit entry per reporter for the reports taken in a batch, in the order of each
/// reporter's first report.
fn audit_reports(taken: &[Taken]) -> Vec<Event> {
    let mut tallies: Vec<(&str, &str, Origin, usize, usize, usize)> = Vec::new();
    for Taken {
        reporter,
        report,
        outcome,
        ..
    } in taken
    {
        let Ok(outcome) = outcome else { continue };
        let at = tallies
            .iter()
            .position(|tally| tally.0 == reporter && tally.1 == report.field)
            .unwrap_or_else(|| {
                tallies.push((reporter, &report.field, report.origin, 0, 0, 0));
                tallies.len() - 1
            });
        let tally = &mut tallies[at];
        tally.3 += 1;
        tally.4 += outcome.taken;
        tally.5 += outcome.unchanged;
    }
    tallies
        .into_iter()
        .map(|(reporter, field, origin, reports, taken, unchanged)| Event {
            actor: reporter.to_owned(),
            action: "threat.report".into(),
            object: field.to_owned(),
            decision: "taken".into(),
            reason: if reports == 1 {
                format!("{taken} indicators taken, {unchanged} unchanged, by {origin:?}")
            } else {
                format!(
                    "{reports} reports: {taken} indicators taken, {unchanged} unchanged, by {origin:?}"
                )
            },
            field: Some(field.to_owned()),
            ..Event::default()
        })
        .collect()
}
