//! Shrinking a failing run (`kafkasim shrink`): the faults the seed drew are listed
//! explicitly, delta debugging (Zeller's ddmin) removes faults, and greedy passes
//! shorten and move the rest and take away producers, consumers, pipeline instances,
//! keys, records, time, brokers and partitions. A change is kept only if the run, with the same seed, still
//! fails the same way.
//!
//! Deterministic: every step tries its candidates in a fixed order and keeps the first
//! that fails the same way. Candidates run in parallel batches (each seed on its own
//! thread, as always), but they are counted as if tried one by one and results past the
//! kept one are thrown away, so the result and the attempt count depend neither on the
//! thread count nor on timing. The wall-clock bound is the only thing that can end a
//! shrink at a point that depends on timing, and the result says when it did.

use crate::bugs::Bug;
use crate::check;
use crate::drive::runner;
use crate::nemesis::ScheduledFault;
use crate::report::SeedReport;
use crate::scenario::Scenario;
use crate::sim;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

/// What a candidate must keep showing to fail the same way as the original run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An anomaly kind.
    Anomaly(String),
    /// A panic in the simulated system, by the first line of its message.
    Panic(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Anomaly(kind) => write!(f, "{kind}"),
            Target::Panic(line) => write!(f, "panic: {line}"),
        }
    }
}

/// How a candidate must fail: show the target, and violate no invariant that the
/// original run did not violate (so a too-short quiet period that leaves writes
/// `unseen` is not "the same way").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Goal {
    /// The primary kind, kept by every accepted candidate.
    pub target: Target,
    /// Whether the target violates an invariant (else the scenario expects or tolerates
    /// it, and the shrunk run shows it without failing, as the original did).
    pub violation: bool,
    /// The invariants the original run violated: a candidate may violate these only.
    pub allowed: Vec<String>,
}

/// Anomaly kinds judged at the end of the run that a longer quiet period could clear.
pub const LIVENESS_KINDS: &[&str] = &[
    "stuck",
    "unseen",
    "unassigned-partition",
    "hanging-transaction",
];

/// A seed with nothing to shrink: it neither fails nor shows the anomaly asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NothingToShrink(pub String);

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or("")
}

/// Anomaly kinds, then client events: the order in which a primary kind is picked.
fn kinds_in_order() -> impl Iterator<Item = &'static str> {
    check::kinds::ANOMALY_KINDS
        .iter()
        .chain(check::kinds::EVENT_KINDS)
        .copied()
}

impl Goal {
    /// Picks the goal from the original run: `anomaly` if given (the run must show
    /// it); else a panic; else the first violated invariant in
    /// [`check::kinds::ANOMALY_KINDS`] order; else the first anomaly the scenario expects
    /// (`expect.anomalies`) that the run shows.
    pub fn of(
        report: &SeedReport,
        scenario: &Scenario,
        anomaly: Option<&str>,
    ) -> Result<Goal, NothingToShrink> {
        let shown = |kind: &str| report.anomalies.get(kind).is_some_and(|n| *n > 0);
        let listing = || {
            if report.anomalies.is_empty() {
                "no anomaly".to_string()
            } else {
                report
                    .anomalies
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let target = match (anomaly, &report.panic) {
            (Some(kind), _) if shown(kind) => Target::Anomaly(kind.to_string()),
            (Some(kind), _) => {
                return Err(NothingToShrink(format!(
                    "seed {} of `{}` does not show `{kind}` (it shows {}): nothing to shrink",
                    report.seed,
                    scenario.name,
                    listing()
                )))
            }
            (None, Some(message)) => Target::Panic(first_line(message).to_string()),
            (None, None) => {
                let violated = kinds_in_order().find(|k| report.violated.iter().any(|v| v == k));
                let expected = || {
                    kinds_in_order()
                        .find(|k| shown(k) && scenario.expect.anomalies.iter().any(|a| a == k))
                };
                match violated.or_else(expected) {
                    Some(kind) => Target::Anomaly(kind.to_string()),
                    None => {
                        return Err(NothingToShrink(format!(
                            "seed {} of `{}` passes and shows no anomaly the scenario expects \
                             (it shows {}): nothing to shrink",
                            report.seed,
                            scenario.name,
                            listing()
                        )))
                    }
                }
            }
        };
        let violation = match &target {
            Target::Anomaly(kind) => report.violated.contains(kind),
            Target::Panic(_) => true,
        };
        Ok(Goal {
            target,
            violation,
            allowed: report.violated.clone(),
        })
    }

    /// Whether the target is a liveness failure: something that did not happen by the
    /// end of the run (a consumer behind the high watermark, a write never read, a
    /// group not stable, a transaction never ended). Such a failure needs the time the
    /// original run gave the system to recover: with a shorter quiet period a candidate
    /// "fails the same way" merely by ending mid-recovery or mid-rebalance.
    pub fn liveness(&self) -> bool {
        matches!(&self.target, Target::Anomaly(k) if LIVENESS_KINDS.contains(&k.as_str()))
    }

    /// Whether a candidate's run fails the same way.
    pub fn met_by(&self, report: &SeedReport) -> bool {
        let shows = match &self.target {
            Target::Anomaly(kind) => report.anomalies.get(kind).is_some_and(|n| *n > 0),
            Target::Panic(line) => report.panic.as_deref().map(first_line) == Some(line),
        };
        shows && report.violated.iter().all(|v| self.allowed.contains(v))
    }
}

/// How big a run is: what shrinking makes smaller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Size {
    /// Faults (drawn and explicit).
    pub faults: u64,
    /// Their total duration (ms; leader moves count 0).
    pub fault_ms: u64,
    /// Brokers.
    pub brokers: u64,
    /// Partitions over all topics.
    pub partitions: u64,
    /// Producers.
    pub producers: u64,
    /// Consumers.
    pub consumers: u64,
    /// Distinct keys.
    pub keys: u64,
    /// Records the producers sent.
    pub records_sent: u64,
    /// Simulated run length (ms).
    pub sim_ms: u64,
    /// History entries (0 when the run panicked).
    pub history_entries: u64,
}

impl Size {
    fn of(scenario: &Scenario, seed: u64, report: &SeedReport) -> Size {
        let faults = sim::fault_schedule(scenario, seed);
        Size {
            faults: faults.len() as u64,
            fault_ms: faults
                .iter()
                .filter(|f| !f.fault.is_instant())
                .map(|f| f.duration_ms)
                .sum(),
            brokers: u64::from(scenario.cluster.brokers),
            partitions: scenario
                .topics
                .iter()
                .map(|t| u64::from(t.partitions))
                .sum(),
            producers: u64::from(scenario.producers.count),
            consumers: u64::from(scenario.consumers.count),
            keys: u64::from(scenario.workload.keys),
            records_sent: report.stats.records_sent,
            sim_ms: scenario.end_ms(),
            history_entries: report.stats.operations,
        }
    }

    /// Each figure with its label, in print order.
    pub fn rows(&self) -> [(&'static str, u64); 10] {
        [
            ("faults", self.faults),
            ("total fault ms", self.fault_ms),
            ("brokers", self.brokers),
            ("partitions", self.partitions),
            ("producers", self.producers),
            ("consumers", self.consumers),
            ("keys", self.keys),
            ("records sent", self.records_sent),
            ("simulated ms", self.sim_ms),
            ("history entries", self.history_entries),
        ]
    }
}

/// Bounds and choices of a shrink.
#[derive(Clone, Debug)]
pub struct Options {
    /// The anomaly kind to keep (default: see [`Goal::of`]).
    pub anomaly: Option<String>,
    /// At most this many candidate runs (the deterministic bound).
    pub max_attempts: u32,
    /// At most this much wall time (the only bound that depends on timing).
    pub max_wall: Duration,
    /// Candidates run at once (does not change the result).
    pub jobs: usize,
}

/// What ended a shrink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// No candidate of any pass failed the same way: the result is a local minimum.
    Fixpoint,
    /// The attempt bound (deterministic).
    Attempts,
    /// The wall-clock bound (the result depends on the machine's speed).
    WallClock,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stop::Fixpoint => "no smaller candidate fails the same way (fixpoint; deterministic)",
            Stop::Attempts => "the attempt bound (deterministic)",
            Stop::WallClock => {
                "the wall-clock bound (NOT deterministic: a faster machine gets further)"
            }
        })
    }
}

/// How listing the seed's drawn faults explicitly went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Explicit {
    /// The scenario draws no faults: its schedule already is explicit.
    AlreadyExplicit,
    /// The explicit schedule gives the same run (same trace hash).
    SameTrace,
    /// It fails the same way, with a different trace.
    SameFailure,
    /// It does not fail the same way: shrinking keeps the drawn faults.
    Differs,
    /// The budget ran out before it was tried.
    NotTried,
}

impl fmt::Display for Explicit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Explicit::AlreadyExplicit => "the scenario draws no faults; its schedule is explicit",
            Explicit::SameTrace => {
                "the seed's drawn faults, listed explicitly, give the same run (same trace hash)"
            }
            Explicit::SameFailure => {
                "the seed's drawn faults, listed explicitly, fail the same way (different trace)"
            }
            Explicit::Differs => {
                "the seed's drawn faults, listed explicitly, do NOT fail the same way: \
                 shrinking from the original scenario, its faults still drawn from the seed"
            }
            Explicit::NotTried => "the budget ran out before the explicit schedule was tried",
        })
    }
}

/// The result of a shrink.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The smallest scenario found: named `<name>-shrunk-<seed>`, explicit schedule in
    /// start order, the original's `expect`.
    pub scenario: Scenario,
    /// What it keeps showing.
    pub goal: Goal,
    /// How listing the drawn faults explicitly went.
    pub explicit: Explicit,
    /// The original run's size.
    pub before: Size,
    /// The shrunk run's size.
    pub after: Size,
    /// The shrunk run's trace hash.
    pub trace_hash: String,
    /// Candidate runs used.
    pub attempts: u32,
    /// What ended it.
    pub stop: Stop,
}

/// Zeller's ddmin: a 1-minimal sublist of `items` that still fails. `first_failing`
/// gets candidate sublists in a fixed order (subsets, then complements, as in Zeller's
/// paper) and returns the index of the first that fails; it may run them in parallel.
/// Assumes `items` fails; returns it unchanged when no part can be removed. The empty
/// list is never tried.
pub fn ddmin<T: Clone>(
    items: &[T],
    mut first_failing: impl FnMut(&[Vec<T>]) -> Option<usize>,
) -> Vec<T> {
    let mut current = items.to_vec();
    let mut n = 2;
    // Each round removes at least one item or doubles n up to the length.
    let rounds_max = items.len() * (items.len().max(2).ilog2() as usize + 2) + 2;
    for _ in 0..rounds_max {
        if current.len() < 2 {
            return current;
        }
        let n_now = n.min(current.len());
        let bounds: Vec<(usize, usize)> = (0..n_now)
            .map(|i| (i * current.len() / n_now, (i + 1) * current.len() / n_now))
            .collect();
        let mut candidates: Vec<Vec<T>> = bounds
            .iter()
            .map(|&(a, b)| current[a..b].to_vec())
            .collect();
        if n_now > 2 {
            // With two parts each complement is the other part, already listed.
            for &(a, b) in &bounds {
                let mut rest = current[..a].to_vec();
                rest.extend_from_slice(&current[b..]);
                candidates.push(rest);
            }
        }
        match first_failing(&candidates) {
            Some(i) if i < n_now => {
                current = candidates.swap_remove(i);
                n = 2;
            }
            Some(i) => {
                current = candidates.swap_remove(i);
                n = (n_now - 1).max(2);
            }
            None if n_now >= current.len() => return current,
            None => n = (2 * n_now).min(current.len()),
        }
    }
    unreachable!("ddmin ends within {rounds_max} rounds")
}

/// Values to try below `n` for a count: the least allowed, half way, one less.
fn fewer(n: u64, least: u64) -> Vec<u64> {
    distinct_below(
        n,
        [
            least,
            least + n.saturating_sub(least) / 2,
            n.saturating_sub(1),
        ],
        least,
    )
}

/// Values to try below `n` for an amount: a quarter, a half.
fn halvings(n: u64, least: u64) -> Vec<u64> {
    distinct_below(n, [n / 4, n / 2], least)
}

fn distinct_below<const K: usize>(n: u64, values: [u64; K], least: u64) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for v in values.map(|v| v.max(least)) {
        if v < n && !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// A scenario to try, with its text (the cache key).
#[derive(Clone)]
struct Candidate {
    scenario: Scenario,
    key: String,
}

impl Candidate {
    /// `base` changed by `edit`, without faults whose targets no longer exist, if it
    /// passes the scenario validation (through its JSON text, as a file would).
    fn new(base: &Scenario, edit: impl FnOnce(&mut Scenario)) -> Option<Candidate> {
        let mut s = base.clone();
        edit(&mut s);
        let topics = s.topics_and_partitions();
        let (groups, ids) = (s.groups(), s.transactional_ids());
        let targets = s.targets(&topics, &groups, &ids);
        let schedule: Vec<_> = s
            .nemesis
            .schedule
            .iter()
            .filter(|f| f.validate(&targets).is_ok())
            .cloned()
            .collect();
        s.nemesis.schedule = schedule;
        let key = serde_json::to_string(&s).expect("scenarios serialize");
        let scenario = Scenario::parse("<candidate>", &key, &base.path).ok()?;
        Some(Candidate { scenario, key })
    }
}

/// A candidate's run, as far as shrinking cares.
#[derive(Clone, Debug)]
struct Outcome {
    same: bool,
    trace_hash: String,
    size: Size,
}

/// Runs candidates against the goal within the bounds, remembering every outcome it
/// counted.
struct Evaluator {
    seed: u64,
    bugs: Vec<Bug>,
    goal: Goal,
    jobs: usize,
    max_attempts: u32,
    deadline: Instant,
    attempts: u32,
    stop: Option<Stop>,
    cache: BTreeMap<String, Outcome>,
}

impl Evaluator {
    fn evaluate(&self, scenario: &Scenario) -> Outcome {
        let (report, _) = runner::run_seed(scenario, self.seed, &self.bugs);
        Outcome {
            same: self.goal.met_by(&report),
            size: Size::of(scenario, self.seed, &report),
            trace_hash: report.trace_hash,
        }
    }

    /// The first candidate, in order, that fails the same way, with its outcome. Runs
    /// up to `jobs` uncached candidates at once but counts and remembers only those a
    /// one-by-one search would have run, so the answer and the attempt count never
    /// depend on `jobs`. `None` candidates (invalid) are skipped without a run.
    fn first_failing(&mut self, candidates: &[Option<Candidate>]) -> Option<(usize, Outcome)> {
        let key = |i: usize| candidates[i].as_ref().map(|c| c.key.as_str());
        let mut i = 0;
        while i < candidates.len() {
            let Some(k) = key(i) else {
                i += 1;
                continue;
            };
            if let Some(o) = self.cache.get(k) {
                if o.same {
                    return Some((i, o.clone()));
                }
                i += 1;
                continue;
            }
            if self.stop.is_some() {
                return None;
            }
            if self.attempts >= self.max_attempts {
                self.stop = Some(Stop::Attempts);
                return None;
            }
            if Instant::now() >= self.deadline {
                self.stop = Some(Stop::WallClock);
                return None;
            }
            let room = (self.max_attempts - self.attempts) as usize;
            let mut batch = vec![i];
            for j in i + 1..candidates.len() {
                if batch.len() >= self.jobs.min(room) {
                    break;
                }
                if let Some(kj) = key(j) {
                    if !self.cache.contains_key(kj) && batch.iter().all(|&b| key(b) != Some(kj)) {
                        batch.push(j);
                    }
                }
            }
            let outcomes: Vec<Outcome> = std::thread::scope(|s| {
                let runs: Vec<_> = batch
                    .iter()
                    .map(|&b| {
                        let c = candidates[b].as_ref().expect("batched candidates exist");
                        s.spawn(|| self.evaluate(&c.scenario))
                    })
                    .collect();
                runs.into_iter()
                    .map(|r| r.join().expect("run_seed catches the simulation's panics"))
                    .collect()
            });
            let mut outcomes = outcomes.into_iter();
            let last = *batch.last().expect("a batch has a first candidate");
            // Account in list order, as a one-by-one search would have run them.
            for j in i..=last {
                let Some(kj) = key(j) else { continue };
                if batch.contains(&j) {
                    let o = outcomes.next().expect("one outcome per batched candidate");
                    self.attempts += 1;
                    self.cache.insert(kj.to_string(), o);
                }
                if let Some(o) = self.cache.get(kj).filter(|o| o.same) {
                    return Some((j, o.clone()));
                }
            }
            i = last + 1;
        }
        None
    }
}

/// A number of the workload that shrinking lowers.
struct Knob {
    name: &'static str,
    get: fn(&Scenario) -> u64,
    set: fn(&mut Scenario, u64),
    /// Values to try below the current one, most aggressive first.
    values: fn(u64) -> Vec<u64>,
}

/// The knobs a shrink with `goal` lowers: all of [`KNOBS`], but never the quiet period
/// for a liveness goal ([`Goal::liveness`]): the shrunk run keeps the original's time
/// to recover after the workload and the last fault end.
fn knobs(goal: &Goal) -> impl Iterator<Item = &'static Knob> {
    let liveness = goal.liveness();
    KNOBS
        .iter()
        .filter(move |k| !(liveness && k.name == QUIET_KNOB))
}

/// The name of the quiet-period knob.
const QUIET_KNOB: &str = "quiet_ms";

/// A knob over a field of the scenario: `$from` converts it to a `u64`, `$to` back;
/// `$lower($min)` proposes lower values, down to `$min`.
macro_rules! knob {
    ($name:expr, $($field:ident).+, $from:expr, $to:expr, $lower:ident($min:expr)) => {
        Knob {
            name: $name,
            get: |s| $from(s.$($field).+),
            set: |s, v| s.$($field).+ = $to(v),
            values: |n| $lower(n, $min),
        }
    };
}

/// The workload's numbers, in the order they are lowered: who sends and reads, then
/// what, then for how long.
const KNOBS: [Knob; 7] = [
    knob!("producers", producers.count, u64::from, as_u32, fewer(1)),
    knob!("consumers", consumers.count, u64::from, as_u32, fewer(1)),
    Knob {
        // Instances listed one by one (`instances`) keep their count.
        name: "pipeline instances",
        get: |s| {
            s.pipelines
                .as_ref()
                .filter(|p| p.instances.is_empty())
                .map_or(0, |p| u64::from(p.count))
        },
        set: |s, v| {
            if let Some(p) = &mut s.pipelines {
                p.count = as_u32(v);
            }
        },
        values: |n| fewer(n, 1),
    },
    knob!("keys", workload.keys, u64::from, as_u32, fewer(1)),
    knob!(
        "rate_per_sec",
        workload.rate_per_sec,
        |r: f64| r as u64,
        |v| v as f64,
        halvings(1)
    ),
    knob!(
        "workload duration_ms",
        workload.duration_ms,
        u64::from,
        u64::from,
        halvings(1)
    ),
    knob!(
        QUIET_KNOB,
        workload.quiet_ms,
        u64::from,
        u64::from,
        halvings(0)
    ),
];

/// A lowered count: knobs only lower values that came from a `u32`.
fn as_u32(v: u64) -> u32 {
    u32::try_from(v).expect("a knob lowers a u32 count")
}

/// The shrink in progress: the smallest scenario so far that fails the same way.
struct Shrinker<'p> {
    ev: Evaluator,
    current: Candidate,
    outcome: Outcome,
    progress: &'p mut dyn FnMut(&str),
}

impl Shrinker<'_> {
    /// Keeps the first candidate, in order, that fails the same way.
    fn try_first(&mut self, candidates: Vec<(String, Option<Candidate>)>) -> Option<usize> {
        let (labels, candidates): (Vec<String>, Vec<Option<Candidate>>) = candidates
            .into_iter()
            .map(|(l, c)| (l, c.filter(|c| c.key != self.current.key)))
            .unzip();
        let (i, outcome) = self.ev.first_failing(&candidates)?;
        self.current = candidates[i].clone().expect("a kept candidate exists");
        self.outcome = outcome;
        (self.progress)(&format!("attempt {:>4}: {}", self.ev.attempts, labels[i]));
        Some(i)
    }

    fn edit(&self, edit: impl FnOnce(&mut Scenario)) -> Option<Candidate> {
        Candidate::new(&self.current.scenario, edit)
    }

    fn schedule(&self) -> &[ScheduledFault] {
        &self.current.scenario.nemesis.schedule
    }

    /// No faults at all, then ddmin over the explicit schedule.
    fn remove_faults(&mut self) {
        let all = self.schedule().to_vec();
        if all.is_empty() {
            return;
        }
        let none = self.edit(|s| s.nemesis.schedule.clear());
        if self
            .try_first(vec![("no faults at all".into(), none)])
            .is_some()
        {
            return;
        }
        ddmin(&all, |subsets| {
            let total = self.schedule().len();
            let candidates = subsets
                .iter()
                .map(|kept| {
                    let label = format!("ddmin: {} of {total} faults kept", kept.len());
                    (label, self.edit(|s| s.nemesis.schedule = kept.clone()))
                })
                .collect();
            self.try_first(candidates)
        });
    }

    /// Each fault shorter (halving), then earlier (halving its distance to the
    /// workload's start).
    fn shorten_faults(&mut self) {
        // Never moved before the producers start (unless it already was): a fault then
        // hits a cluster still forming. Shrinking never changes `workload.start_ms`.
        let start_ms = self.current.scenario.workload.start_ms;
        for i in 0..self.schedule().len() {
            self.lower(
                &format!("fault {i} duration_ms"),
                |s| match s.nemesis.schedule[i].fault.is_instant() {
                    true => 0,
                    false => s.nemesis.schedule[i].duration_ms,
                },
                |s, v| s.nemesis.schedule[i].duration_ms = v,
                |n| halvings(n, 1),
            );
            self.lower(
                &format!("fault {i} at_ms"),
                |s| s.nemesis.schedule[i].at_ms,
                |s, v| s.nemesis.schedule[i].at_ms = v,
                |at| {
                    let least = at.min(start_ms);
                    distinct_below(at, [least + (at - least) / 4, least + (at - least) / 2], 0)
                },
            );
        }
    }

    /// Lowers one number while the run still fails the same way: tries `values(n)` in
    /// order and starts again from the value kept.
    fn lower(
        &mut self,
        name: &str,
        get: impl Fn(&Scenario) -> u64,
        set: impl Fn(&mut Scenario, u64),
        values: impl Fn(u64) -> Vec<u64>,
    ) {
        // A kept value is below the last, so 64 rounds cover any u64.
        for _ in 0..64 {
            let n = get(&self.current.scenario);
            let candidates: Vec<(String, Option<Candidate>)> = values(n)
                .into_iter()
                .map(|v| (format!("{name} {n} -> {v}"), self.edit(|s| set(s, v))))
                .collect();
            if candidates.is_empty() || self.try_first(candidates).is_none() {
                return;
            }
        }
    }

    /// Fewer producers, consumers, keys, records, less time, fewer brokers and
    /// partitions.
    fn shrink_workload(&mut self) {
        for knob in knobs(&self.ev.goal) {
            self.lower(knob.name, knob.get, knob.set, knob.values);
        }
        let rf_max = self
            .current
            .scenario
            .topics
            .iter()
            .map(|t| u64::from(t.replication_factor))
            .max()
            .unwrap_or(1);
        self.lower(
            "brokers",
            |s| u64::from(s.cluster.brokers),
            |s, v| s.cluster.brokers = v as u32,
            |n| fewer(n, rf_max),
        );
        for t in 0..self.current.scenario.topics.len() {
            let name = format!("topic {} partitions", self.current.scenario.topics[t].name);
            self.lower(
                &name,
                |s| u64::from(s.topics[t].partitions),
                |s, v| s.topics[t].partitions = v as u32,
                |n| fewer(n, 1),
            );
        }
    }
}

/// Shrinks the run of `scenario` with `seed` (and the extra `bugs`): see the module
/// documentation. `progress` gets a line for each kept candidate.
pub fn shrink(
    scenario: &Scenario,
    seed: u64,
    bugs: &[Bug],
    options: &Options,
    progress: &mut dyn FnMut(&str),
) -> Result<Shrunk, NothingToShrink> {
    let deadline = Instant::now() + options.max_wall;
    let (report, _) = runner::run_seed(scenario, seed, bugs);
    let goal = Goal::of(&report, scenario, options.anomaly.as_deref())?;
    let before = Size::of(scenario, seed, &report);
    let original = Candidate::new(scenario, |_| {}).unwrap_or_else(|| {
        panic!(
            "scenario `{}` does not survive its own JSON round trip",
            scenario.name
        )
    });
    let outcome = Outcome {
        same: true,
        trace_hash: report.trace_hash.clone(),
        size: before.clone(),
    };
    let mut ev = Evaluator {
        seed,
        bugs: bugs.to_vec(),
        goal: goal.clone(),
        jobs: options.jobs.max(1),
        max_attempts: options.max_attempts,
        deadline,
        attempts: 0,
        stop: None,
        cache: BTreeMap::new(),
    };
    ev.cache.insert(original.key.clone(), outcome.clone());
    let mut sh = Shrinker {
        ev,
        current: original,
        outcome,
        progress,
    };
    let explicit = if scenario.nemesis.faults.is_empty() {
        Explicit::AlreadyExplicit
    } else {
        let faults = sim::fault_schedule(scenario, seed);
        let listed = sh.edit(|s| {
            s.nemesis.faults.clear();
            s.nemesis.schedule = faults;
        });
        let label = "the seed's faults listed explicitly".to_string();
        if sh.try_first(vec![(label, listed)]).is_some() {
            if sh.outcome.trace_hash == report.trace_hash {
                Explicit::SameTrace
            } else {
                Explicit::SameFailure
            }
        } else if sh.ev.stop.is_some() {
            Explicit::NotTried
        } else {
            Explicit::Differs
        }
    };
    let faults_editable = matches!(
        explicit,
        Explicit::AlreadyExplicit | Explicit::SameTrace | Explicit::SameFailure
    );
    // Every kept candidate is smaller in one number and larger in none, so the rounds
    // end; the bound is a backstop.
    let mut stop = Stop::Fixpoint;
    for _ in 0..ROUNDS_MAX {
        let key = sh.current.key.clone();
        if faults_editable {
            sh.remove_faults();
            sh.shorten_faults();
        }
        sh.shrink_workload();
        if let Some(s) = sh.ev.stop {
            stop = s;
            break;
        }
        if sh.current.key == key {
            break;
        }
    }
    let mut shrunk = sh.current.scenario.clone();
    shrunk.name = format!("{}-shrunk-{seed}", scenario.name);
    shrunk.description = format!(
        "Shrunk by `kafkasim shrink` from {} with seed {seed}{}, keeping `{}`. {}",
        scenario.path.display(),
        bugs.iter()
            .map(|b| format!(" --bug {}", b.name()))
            .collect::<String>(),
        goal.target,
        scenario.description
    );
    // A stable sort, like the host's: the same schedule, easier to read.
    shrunk.nemesis.schedule.sort_by_key(|f| f.at_ms);
    Ok(Shrunk {
        scenario: shrunk,
        goal,
        explicit,
        before,
        after: sh.outcome.size.clone(),
        trace_hash: sh.outcome.trace_hash.clone(),
        attempts: sh.ev.attempts,
        stop,
    })
}

/// Backstop on shrink rounds (each kept candidate makes a round repeat).
const ROUNDS_MAX: usize = 10_000;

/// Writes a scenario as a JSON file through a temporary file and a rename, so nothing
/// is left half-written.
pub fn write_scenario(path: &Path, scenario: &Scenario) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut json = serde_json::to_string_pretty(scenario).expect("scenarios serialize");
    json.push('\n');
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "shrunk.json".into());
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests;
