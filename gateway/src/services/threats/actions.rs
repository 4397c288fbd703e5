//! Countermeasures: judging each action, putting it in force or lifting it, and what the operator sees.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::pattern_kind;
use super::{
    ActionView, Book, HeldIndicator, HeldObject, LogEntry, Threats, digest16, indicator_key,
};
use crate::audit::Event;
use crate::net::AddressChange;
use crate::threats::effects::Applied;
use crate::threats::engine::{ActionId, Group, Judgement, Reporter, State, Verdict};
use crate::threats::{ActionKind, Severity, ThreatCode, ThreatError};

impl Threats {
    /// Judges a group as of `now`.
    pub(super) fn judge(&self, book: &mut Book, id: ActionId, now: i64) -> Option<Judgement> {
        let held = book.groups.get(&id)?;
        let group = held.group.clone();
        let verdict = held.verdict;
        let mode = self.config.mode(group.countermeasure.action);
        let reporters: HashMap<&str, Reporter> = group
            .contributions
            .iter()
            .map(|c| (&*c.reporter, self.reporter(book, &group.field, &c.reporter)))
            .collect();
        Some(group.judge(now, mode, verdict, |did| {
            reporters.get(did).cloned().unwrap_or(Reporter {
                in_good_standing: false,
                admin: false,
                organisation: did.to_owned(),
            })
        }))
    }

    /// Judges the given actions again and applies what changed; spent actions are dropped.
    pub(super) fn rejudge(
        &self,
        book: &mut Book,
        ids: Vec<ActionId>,
        now: i64,
        events: &mut Vec<Event>,
    ) {
        let mut members_changed = false;
        for id in ids {
            let Some(judgement) = self.judge(book, id, now) else {
                continue;
            };
            let Some(held) = book.groups.get_mut(&id) else {
                continue;
            };
            let previous = held.state;
            let spent = held.group.spent(now);
            if judgement.state != previous {
                members_changed |= held.group.countermeasure.action.against_members();
                self.transition(id, &held.group, previous, &judgement, events);
                held.state = judgement.state;
                if !spent && let Err(error) = self.actions.put(id.to_string().as_bytes(), &*held) {
                    tracing::error!(%error, action = %id, "threat action state not stored");
                }
            }
            if spent && let Some(held) = book.groups.remove(&id) {
                self.forget_spent(book, id, &held.group);
            }
        }
        if members_changed {
            self.services.facts_changed.everyone();
        }
    }

    pub(super) fn transition(
        &self,
        id: ActionId,
        group: &Group,
        previous: State,
        judgement: &Judgement,
        events: &mut Vec<Event>,
    ) {
        let severity = judgement.severity.unwrap_or(Severity::Low);
        if judgement.state == State::Applied {
            self.put_in_force(id, group, severity);
        } else if previous == State::Applied {
            self.lift(id, group);
        }
        let action = match (previous, judgement.state) {
            (_, State::Applied) => "threat.apply",
            (State::Applied, _) => "threat.lift",
            (_, State::Rejected) => "threat.reject",
            (_, State::Inactive) => "threat.expire",
            _ => "threat.queue",
        };
        let reason = format!(
            "{} {} on {}; {:?}; severity {severity:?}; {} reporting organisation(s){}",
            group.countermeasure.action.as_str(),
            judgement_state(judgement.state),
            target_text(group),
            judgement.state,
            judgement.reporters,
            if judgement.admin_reported {
                ", an admin among them"
            } else {
                ""
            },
        );
        tracing::info!(action = %id, %reason, "{action}");
        events.push(Event {
            actor: self.services.key.did(),
            action: action.into(),
            object: id.to_string(),
            decision: judgement_state(judgement.state).into(),
            reason,
            ..Event::default()
        });
    }

    pub(super) fn put_in_force(&self, id: ActionId, group: &Group, severity: Severity) {
        let applied = Applied {
            field: Arc::clone(&group.field),
            pattern: group.pattern.clone(),
            countermeasure: group.countermeasure.clone(),
            severity,
        };
        self.services
            .threat_effects
            .update(|effects| effects.insert(id, applied));
        self.gate(group, true);
    }

    pub(super) fn lift(&self, id: ActionId, group: &Group) {
        self.services
            .threat_effects
            .update(|effects| effects.remove(&id, group.countermeasure.action));
        self.gate(group, false);
    }

    /// Tells the connection gate about an address block put in force or lifted.
    pub(super) fn gate(&self, group: &Group, block: bool) {
        if group.countermeasure.action != ActionKind::BlockAddress {
            return;
        }
        let change = match (&group.pattern, block) {
            (crate::threats::Pattern::Address { net }, true) => AddressChange::BlockNetwork(*net),
            (crate::threats::Pattern::Address { net }, false) => {
                AddressChange::UnblockNetwork(*net)
            }
            (crate::threats::Pattern::Domain { name }, true) => {
                AddressChange::BlockDomain(name.clone())
            }
            (crate::threats::Pattern::Domain { name }, false) => {
                AddressChange::UnblockDomain(name.clone())
            }
            _ => return,
        };
        // Without a network (tools, tests) nobody listens, and nothing needs gating.
        let _ = self.addresses.send(change);
    }

    /// Drops a spent action and the indicators behind it from memory and disk.
    pub(super) fn forget_spent(&self, book: &mut Book, id: ActionId, group: &Group) {
        if let Err(error) = self.actions.remove(id.to_string().as_bytes()) {
            tracing::warn!(%error, action = %id, "spent threat action not removed");
        }
        for contribution in group.contributions.iter() {
            self.forget_indicator(
                book,
                &group.field,
                &contribution.reporter,
                &contribution.indicator,
            );
        }
    }

    /// Drops an expired indicator from memory and disk.
    pub(super) fn forget_indicator(
        &self,
        book: &mut Book,
        field: &str,
        reporter: &str,
        indicator: &str,
    ) {
        let key = indicator_key(field, reporter, indicator);
        if book.held.remove(&digest16(&key)).is_none() {
            return;
        }
        if let Some(count) = book
            .per_reporter
            .get_mut(&(field.to_owned(), reporter.to_owned()))
        {
            *count = count.saturating_sub(1);
        }
        let id = digest16(indicator);
        if let Some(places) = book.by_id.get_mut(&id) {
            places.retain(|(held_in, _)| &**held_in != field);
            if places.is_empty() {
                book.by_id.remove(&id);
            }
        }
        if let Err(error) = self.indicators.remove(key.as_bytes()) {
            tracing::warn!(%error, "expired indicator not removed");
        }
    }

    /// Lifts what expired and applies what became valid. Returns when to sweep next.
    pub fn sweep(&self) -> Option<i64> {
        self.sweep_at(crate::credential::now_unix())
    }

    /// [`Threats::sweep`] as of `now` (Unix seconds).
    pub fn sweep_at(&self, now: i64) -> Option<i64> {
        let mut book = self.lock().ok()?;
        let mut due = Vec::new();
        let mut expired = Vec::new();
        for (id, held) in &mut book.groups {
            let before = held.group.contributions.len();
            let field = &held.group.field;
            held.group.contributions.retain(|contribution| {
                let live = contribution.expires > now;
                if !live {
                    expired.push((
                        Arc::clone(field),
                        Arc::clone(&contribution.reporter),
                        contribution.indicator.clone(),
                    ));
                }
                live
            });
            let woke = held.state == State::Inactive
                && held.group.contributions.iter().any(|c| c.valid_from <= now);
            if held.group.contributions.len() != before || woke || before == 0 {
                due.push(*id);
            }
        }
        for (field, reporter, indicator) in expired {
            self.forget_indicator(&mut book, &field, &reporter, &indicator);
        }
        let mut events = Vec::new();
        self.rejudge(&mut book, due, now, &mut events);
        // Names no group holds any more (a reporter whose indicators all expired).
        book.names.retain(|name| Arc::strong_count(name) > 1);
        let next = book
            .groups
            .values()
            .filter_map(|held| held.group.next_change(now))
            .min();
        drop(book);
        self.services.audit.record_all(events);
        next
    }

    /// Judges every action again: after a change of standing (a revoked reporter's reports
    /// stop counting) or of the charter's admins.
    pub fn rejudge_all(&self) {
        let now = crate::credential::now_unix();
        let Ok(mut book) = self.lock() else {
            return;
        };
        book.reporters.clear();
        let ids: Vec<ActionId> = book.groups.keys().copied().collect();
        let mut events = Vec::new();
        self.rejudge(&mut book, ids, now, &mut events);
        drop(book);
        self.services.audit.record_all(events);
    }

    /// Records the operator's word on an action and applies what follows.
    pub fn decide(
        &self,
        id: &str,
        verdict: Verdict,
        operator: &str,
    ) -> Result<ActionView, ThreatError> {
        let now = crate::credential::now_unix();
        let mut book = self.lock()?;
        let unknown =
            || ThreatError::new(ThreatCode::UnknownAction, format!("no live action {id}"));
        let id = ActionId::parse(id).ok_or_else(unknown)?;
        let held = book
            .groups
            .get_mut(&id)
            .filter(|held| held.state != State::Inactive)
            .ok_or_else(unknown)?;
        held.verdict = Some(verdict);
        self.actions.put(id.to_string().as_bytes(), &*held)?;
        let mut events = vec![Event {
            actor: operator.to_owned(),
            action: match verdict {
                Verdict::Apply => "threat.operator-apply".into(),
                Verdict::Reject => "threat.operator-reject".into(),
            },
            object: id.to_string(),
            decision: format!("{verdict:?}").to_lowercase(),
            reason: "operator".into(),
            ..Event::default()
        }];
        self.rejudge(&mut book, vec![id], now, &mut events);
        let view = self.view(&mut book, id, now);
        drop(book);
        self.services.audit.append_all(events)?;
        view.ok_or_else(|| ThreatError::new(ThreatCode::UnknownAction, format!("{id} expired")))
    }

    pub(super) fn view(&self, book: &mut Book, id: ActionId, now: i64) -> Option<ActionView> {
        let judgement = self.judge(book, id, now)?;
        let held = book.groups.get(&id)?;
        let group = &held.group;
        Some(ActionView {
            id: id.to_string(),
            field: group.field.to_string(),
            action: group.countermeasure.action,
            target: serde_json::to_value(&group.pattern).unwrap_or(Value::Null),
            parameter: group
                .countermeasure
                .tier
                .map(|tier| tier.to_string())
                .or_else(|| group.countermeasure.credential.clone()),
            state: held.state,
            severity: judgement.severity,
            reporters: judgement.reporters,
            admin_reported: judgement.admin_reported,
            expires: judgement.expires,
            since: group.contributions.iter().map(|c| c.valid_from).min(),
            indicators: group
                .contributions
                .iter()
                .map(|c| c.indicator.clone())
                .collect(),
        })
    }

    /// Every action held, optionally only those in `state`, newest expiry first.
    pub fn actions(&self, state: Option<State>) -> Vec<ActionView> {
        let now = crate::credential::now_unix();
        let Ok(mut book) = self.lock() else {
            return Vec::new();
        };
        let ids: Vec<ActionId> = book.groups.keys().copied().collect();
        let mut views: Vec<ActionView> = ids
            .into_iter()
            .filter_map(|id| self.view(&mut book, id, now))
            .filter(|view| state.is_none_or(|state| view.state == state))
            .collect();
        views.sort_by(|a, b| b.expires.cmp(&a.expires).then(a.id.cmp(&b.id)));
        views
    }

    /// Up to `limit` indicators of `field` added after the log position `after`, in the
    /// order they were added, each with its own position.
    pub fn objects(
        &self,
        field: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<HeldObject>, ThreatError> {
        let prefix = format!("{field}/");
        let (log, indicators) = (&self.log, &self.indicators);
        let mut objects = Vec::with_capacity(limit.min(1024));
        let mut position = after.map(<[u8]>::to_vec);
        while objects.len() < limit {
            let batch = log.scan::<LogEntry>(
                prefix.as_bytes(),
                position.as_deref(),
                limit - objects.len(),
            )?;
            let Some((last, _)) = batch.last() else {
                break;
            };
            position = Some(last.clone());
            for (log_key, LogEntry(key)) in batch {
                // A log entry outlives the version it pointed at: skip superseded ones.
                let Some(held) = indicators.get::<HeldIndicator>(key.as_bytes())? else {
                    continue;
                };
                if !log_key.ends_with(format!("{:016x}/{key}", held.added_ms).as_bytes()) {
                    continue;
                }
                objects.push(HeldObject {
                    object: held.object,
                    reporter: held.reporter,
                    added_ms: held.added_ms,
                    origin: held.origin,
                    tlp: held.tlp,
                    position: log_key,
                });
            }
        }
        Ok(objects)
    }

    /// How many indicators and actions are held.
    pub fn counts(&self) -> (usize, usize) {
        self.lock()
            .map_or((0, 0), |book| (book.held.len(), book.groups.len()))
    }
}

/// The highest severity among a group's live contributions.
pub(super) fn live_severity(group: &Group, now: i64) -> Severity {
    group
        .contributions
        .iter()
        .filter(|c| c.valid_from <= now && now < c.expires)
        .map(|c| c.severity)
        .max()
        .unwrap_or(Severity::Low)
}

pub(super) fn judgement_state(state: State) -> &'static str {
    match state {
        State::Applied => "applied",
        State::AwaitingCorroboration => "awaiting_corroboration",
        State::AwaitingOperator => "awaiting_operator",
        State::Rejected => "rejected",
        State::Inactive => "inactive",
    }
}

pub(super) fn target_text(group: &Group) -> String {
    let kind = pattern_kind(&group.pattern);
    match &group.pattern {
        crate::threats::Pattern::Address { net } => format!("{kind} {net}"),
        crate::threats::Pattern::Domain { name } => format!("{kind} {name}"),
        crate::threats::Pattern::FileSha256 { sha256 } => format!("{kind} {sha256}"),
        crate::threats::Pattern::Software(software) => format!(
            "{kind} {}",
            software
                .name
                .as_deref()
                .or(software.cpe.as_deref())
                .unwrap_or("?")
        ),
        crate::threats::Pattern::Member { did } => format!("{kind} {did}"),
    }
}
