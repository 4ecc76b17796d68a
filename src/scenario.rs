//! Scenario files: what cluster, clients, workload and faults a run has, and what the
//! run is expected to show.
//!
//! Parsing is strict: unknown fields are errors, and every error names the file, the
//! field path and the allowed values, so `kafkasim` can exit with code 2 before
//! anything runs.

use crate::broker::log::Writeback;
use crate::bugs::Bug;
use crate::history::Sink;
use crate::kafka::config::{BrokerConfig, ConsumerConfig, ProducerConfig, TopicConfig};
use crate::nemesis::{Fault, FaultKindName, ScheduledFault, Target};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A scenario file that cannot be used.
#[derive(Debug, Error)]
#[error("{file}: field `{field}`: {message}")]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// The field path (`producers.config.acks`), or `-` for the whole file.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// The brokers.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Number of brokers (ids 1..=brokers), 1 to 9.
    pub brokers: u32,
    /// Broker and topic configuration.
    #[serde(default)]
    pub config: BrokerConfig,
}

/// A topic to create.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partition count (`num.partitions`).
    pub partitions: u32,
    /// `replication.factor`.
    pub replication_factor: u32,
    /// Topic-level configuration (`--config` of `kafka-topics --create`), Kafka's names.
    #[serde(default, skip_serializing_if = "TopicConfig::is_empty")]
    pub config: TopicConfig,
}

/// A set of identical clients.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    rename = "Clients_{C}",
    bound = "C: schemars::JsonSchema + Default + Serialize"
)]
pub struct Clients<C> {
    /// How many.
    pub count: u32,
    /// Their configuration.
    #[serde(default)]
    pub config: C,
    /// When they start (ms); a late consumer reads only what the log still holds.
    #[serde(default)]
    pub start_ms: u64,
    /// Consumers in assign mode only: periodic `offsetsForTimes` lookups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_lookups: Option<TimestampLookups>,
}

impl<C: Default> Default for Clients<C> {
    fn default() -> Self {
        Clients {
            count: 0,
            config: C::default(),
            start_ms: 0,
            timestamp_lookups: None,
        }
    }
}

/// Assign-mode consumers' timestamp probe: every `every_ms`, each consumer looks up on
/// every partition the first offset whose record was created at or after
/// `now - lag_ms` (`offsetsForTimes`, recorded as `offsets_for_times` operations).
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimestampLookups {
    /// The period (ms), at least 1.
    pub every_ms: u64,
    /// How far back from now the looked-up time is (ms).
    pub lag_ms: u64,
}

/// What producers write and for how long.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Records per second per producer.
    pub rate_per_sec: f64,
    /// Distinct keys (`k0`..); 0 sends records without keys.
    pub keys: u32,
    /// Headers per record (KIP-82; `h0`.. with values derived from the record's value,
    /// see `workload::headers_for`); 0 (the default) sends none.
    #[serde(default)]
    pub headers: u32,
    /// When producers start sending (ms), giving the cluster time to form.
    #[serde(default = "default_start_ms")]
    pub start_ms: u64,
    /// How long producers send (ms).
    pub duration_ms: u64,
    /// Quiet period after the last send and the last fault (ms): the cluster heals,
    /// retries finish, consumers catch up.
    pub quiet_ms: u64,
    /// After a `producer-crash`, the restarted application sends again, first, the
    /// records its dead process had not seen acknowledged (an at-least-once source
    /// replaying from its last acknowledged record); `false` sends on from the next
    /// record. Kafka's idempotence is per producer session, so a resent record the
    /// dead process had written is in the log twice (`restart-duplicate`).
    #[serde(default = "yes")]
    pub resend_unacked_after_crash: bool,
}

fn default_start_ms() -> u64 {
    3_000
}

fn yes() -> bool {
    true
}

/// Faults: drawn from the seed, or listed explicitly.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NemesisSpec {
    /// Fault kinds to draw from (empty: none drawn).
    #[serde(default)]
    pub faults: Vec<FaultKindName>,
    /// Mean gap between drawn faults (ms).
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Range of a drawn fault's duration (ms).
    #[serde(default = "default_fault_duration_ms")]
    pub duration_ms: [u64; 2],
    /// Explicit faults, applied in addition to drawn ones.
    #[serde(default)]
    pub schedule: Vec<ScheduledFault>,
}

/// The brokers' machines below Kafka: how the OS writes the page cache back (Linux's
/// `vm.dirty_*` settings) and what a power loss does to a write under way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DiskSpec {
    /// `vm.dirty_expire_centisecs`, in ms (Linux default 30000): a file whose oldest
    /// dirty page is this old is written back at the flusher's next tick.
    pub dirty_expire_ms: u64,
    /// `vm.dirty_writeback_centisecs`, in ms (Linux default 5000): the flusher's period.
    pub dirty_writeback_ms: u64,
    /// The chance that a power loss tears a log's first lost batch: part of it reached
    /// the platter, and recovery must find and cut it (default 0.5).
    pub torn_write_probability: f64,
}

impl Default for DiskSpec {
    fn default() -> Self {
        DiskSpec {
            dirty_expire_ms: 30_000,
            dirty_writeback_ms: 5_000,
            torn_write_probability: 0.5,
        }
    }
}

impl DiskSpec {
    /// Linux's defaults (the section can be left out).
    pub fn is_default(&self) -> bool {
        *self == DiskSpec::default()
    }

    /// The page cache writeback it describes, for a machine whose flusher first wakes
    /// at `phase_ms` (taken modulo the period).
    pub fn writeback(&self, phase_ms: u64) -> Writeback {
        Writeback {
            dirty_expire_ms: self.dirty_expire_ms,
            dirty_writeback_ms: self.dirty_writeback_ms,
            phase_ms: phase_ms % self.dirty_writeback_ms.max(1),
        }
    }
}

/// A missing `nemesis` section means no faults, with the same defaults as an empty one.
impl Default for NemesisSpec {
    fn default() -> Self {
        NemesisSpec {
            faults: Vec::new(),
            interval_ms: default_interval_ms(),
            duration_ms: default_fault_duration_ms(),
            schedule: Vec::new(),
        }
    }
}

fn default_interval_ms() -> u64 {
    5_000
}

fn default_fault_duration_ms() -> [u64; 2] {
    [1_000, 8_000]
}

/// The simulated network.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// One-way latency range in ms, `[min, max]`.
    pub latency_ms: [u64; 2],
}

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec { latency_ms: [1, 3] }
    }
}

/// How group consumers' applications process what they poll (Jepsen's workload for
/// delivery semantics).
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessingSpec {
    /// When offsets are committed relative to processing.
    pub mode: ProcessingMode,
    /// Time to process one record, ms, `[min, max]`, drawn from the seed.
    #[serde(default = "default_processing_time")]
    pub time_ms: [u64; 2],
    /// Where each record's effect goes.
    #[serde(default = "default_sink")]
    pub sink: Sink,
    /// One member's application slowed down for a while (C19).
    #[serde(default)]
    pub slow: Option<SlowSpec>,
}

/// A slow phase of one group member's processing.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlowSpec {
    /// The consumer's index.
    pub consumer: u32,
    /// Time per record during the phase, ms, `[min, max]`.
    pub time_ms: [u64; 2],
    /// When the phase starts (ms).
    pub from_ms: u64,
    /// When it ends (ms).
    pub to_ms: u64,
}

fn default_processing_time() -> [u64; 2] {
    [1, 5]
}

fn default_sink() -> Sink {
    Sink::ExternalApi
}

impl Default for ProcessingSpec {
    fn default() -> Self {
        ProcessingSpec {
            mode: ProcessingMode::AutoCommit,
            time_ms: default_processing_time(),
            sink: default_sink(),
            slow: None,
        }
    }
}

/// How a read-process-write pipeline writes its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PipelineMode {
    /// Kafka's exactly-once: each poll's outputs and input offsets commit in one
    /// transaction (`sendOffsetsToTransaction`), aborted and rewound on failure.
    ExactlyOnce,
    /// No transactions: outputs are sent, then the input offsets `commitSync`ed once
    /// every output is acknowledged; a crash in between writes outputs again.
    AtLeastOnce,
}

/// One pipeline instance's overrides.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineInstance {
    /// Its `transactional.id` (default: `<producer transactional.id>-<index>`); two
    /// instances with the same one are a zombie and its successor (C26).
    #[serde(
        rename = "transactional.id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub transactional_id: Option<String>,
    /// When its process starts (ms).
    #[serde(default)]
    pub start_ms: u64,
}

/// Read-process-write pipelines (C21, C24-C26, C31): each instance is one process with
/// a consumer (a member of `consumer.group.id`, subscribed to `input`) and a producer
/// writing `output`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Instances (default 1; `instances`, when given, sets the count).
    #[serde(default = "default_pipeline_count")]
    pub count: u32,
    /// Per-instance `transactional.id` and start time.
    #[serde(default)]
    pub instances: Vec<PipelineInstance>,
    /// The topic read.
    pub input: String,
    /// The topic written (each input value `v` becomes `workload::output_value(v)`
    /// with the same key).
    pub output: String,
    /// Exactly-once (transactions) or at-least-once.
    pub mode: PipelineMode,
    /// The consumer's configuration (`group.id` required).
    #[serde(default)]
    pub consumer: ConsumerConfig,
    /// The producer's configuration (`transactional.id` is the base of the instances'
    /// ids in exactly-once mode).
    #[serde(default)]
    pub producer: ProducerConfig,
    /// Time to process one record, ms, `[min, max]`.
    #[serde(default = "default_processing_time")]
    pub time_ms: [u64; 2],
    /// An external side effect per processed record (`external_api`: C31), if any.
    #[serde(default)]
    pub sink: Option<Sink>,
}

fn default_pipeline_count() -> u32 {
    1
}

impl PipelineSpec {
    /// Instance count.
    pub fn instance_count(&self) -> u32 {
        if self.instances.is_empty() {
            self.count
        } else {
            self.instances.len() as u32
        }
    }

    /// Instance `i`'s `transactional.id` (exactly-once mode only).
    pub fn transactional_id(&self, i: u32) -> Option<String> {
        if self.mode != PipelineMode::ExactlyOnce {
            return None;
        }
        let own = self
            .instances
            .get(i as usize)
            .and_then(|x| x.transactional_id.clone());
        Some(own.unwrap_or_else(|| {
            let base = self.producer.transactional_id.clone().unwrap_or_else(|| {
                format!(
                    "{}-txn",
                    self.consumer.group_id.as_deref().unwrap_or("pipeline")
                )
            });
            format!("{base}-{i}")
        }))
    }

    /// Instance `i`'s start time (ms).
    pub fn start_ms(&self, i: u32) -> u64 {
        self.instances.get(i as usize).map_or(0, |x| x.start_ms)
    }
}

/// What the run is expected to show.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Anomalies that must appear on at least one seed of a sweep (the claim).
    #[serde(default)]
    pub anomalies: Vec<String>,
    /// Anomalies allowed but not required; every other kind is an invariant that must
    /// hold on every seed.
    #[serde(default)]
    pub tolerate: Vec<String>,
    /// Client events (never invariants otherwise) that must not appear on any seed,
    /// such as `rebalance` for a static member restarting within its session.
    #[serde(default)]
    pub forbid: Vec<String>,
}

/// A node's wall clock (an entry of a scenario's `clocks`): its offset from true time
/// at the start and how fast it runs (see `actor::WallClock`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ClockSpec {
    /// Offset from true time (ms; negative: behind).
    #[serde(default)]
    pub offset_ms: i64,
    /// Rate against true time, in parts per million (negative: slow).
    #[serde(default)]
    pub drift_ppm: i64,
}

/// The largest clock drift a scenario may set (ppm): 10%, far beyond a real
/// oscillator's tens of ppm, to make drift visible in short runs.
pub const MAX_DRIFT_PPM: i64 = 100_000;

/// A scenario file.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The JSON Schema editors check the file against
    /// (`schemas/scenario.schema.json`); kafkasim itself ignores it.
    #[serde(rename = "$schema", default, skip_serializing)]
    pub schema: Option<String>,
    /// Name (defaults to the file stem); reports go to `reports/<name>/<seed>/`.
    #[serde(default)]
    pub name: String,
    /// One sentence on what the scenario shows.
    pub description: String,
    /// Seed claims demonstrated (`C1`..`C31`).
    #[serde(default)]
    pub claims: Vec<String>,
    /// The brokers.
    pub cluster: ClusterSpec,
    /// Topics to create.
    pub topics: Vec<TopicSpec>,
    /// Producers.
    #[serde(default)]
    pub producers: Clients<ProducerConfig>,
    /// Consumers: each assigned every partition, or, with `group.id`, members of that
    /// group (a `group.instance.id` gets the consumer's index appended).
    #[serde(default)]
    pub consumers: Clients<ConsumerConfig>,
    /// How group members process records (used with `group.id`).
    #[serde(default)]
    pub processing: ProcessingSpec,
    /// Read-process-write pipelines, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipelines: Option<PipelineSpec>,
    /// The workload.
    pub workload: WorkloadSpec,
    /// Faults.
    #[serde(default)]
    pub nemesis: NemesisSpec,
    /// The network.
    #[serde(default)]
    pub network: NetworkSpec,
    /// The brokers' disks: the OS page cache in front of them.
    #[serde(default, skip_serializing_if = "DiskSpec::is_default")]
    pub disk: DiskSpec,
    /// Nodes whose wall clock is not true time, by name (`broker-1`, `controller`,
    /// `producer-0`, `consumer-0`, `pipeline-0`); the others keep true time.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub clocks: std::collections::BTreeMap<String, ClockSpec>,
    /// Safeguards switched off (see `kafkasim bugs`).
    #[serde(default)]
    pub bugs: Vec<String>,
    /// The expected verdict.
    pub expect: Expect,
    /// Where it was read from (not part of the file).
    #[serde(skip)]
    pub path: PathBuf,
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: file.clone(),
            field: "-".into(),
            message: format!("cannot read: {e}"),
        })?;
        Scenario::parse(&file, &text, path)
    }

    /// Parses and validates scenario text; `file` names it in errors.
    pub fn parse(file: &str, text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let mut s: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            ScenarioError {
                file: file.to_string(),
                field: if field == "." { "-".into() } else { field },
                message: e.into_inner().to_string(),
            }
        })?;
        s.path = path.to_path_buf();
        if s.name.is_empty() {
            s.name = path
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scenario".into());
        }
        s.validate(file)?;
        Ok(s)
    }

    /// The bug switches this scenario turns on.
    pub fn bug_switches(&self) -> Vec<Bug> {
        self.bugs
            .iter()
            .map(|b| Bug::from_name(b).expect("validated"))
            .collect()
    }

    fn validate(&self, file: &str) -> Result<(), ScenarioError> {
        let err = |field: &str, message: String| ScenarioError {
            file: file.to_string(),
            field: field.to_string(),
            message,
        };
        if !(1..=9).contains(&self.cluster.brokers) {
            return Err(err(
                "cluster.brokers",
                format!("{} is out of range; allowed: 1 to 9", self.cluster.brokers),
            ));
        }
        if self.topics.is_empty() {
            return Err(err("topics", "at least one topic is required".into()));
        }
        for (i, t) in self.topics.iter().enumerate() {
            let ok_name = !t.name.is_empty()
                && !t.name.starts_with("__")
                && t.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
            if !ok_name {
                return Err(err(&format!("topics[{i}].name"), format!("`{}` is not a legal topic name; allowed: [a-zA-Z0-9._-]+, not starting with `__`", t.name)));
            }
            if self.topics[..i].iter().any(|o| o.name == t.name) {
                return Err(err(
                    &format!("topics[{i}].name"),
                    format!(
                        "topic `{}` is listed twice; allowed: distinct names",
                        t.name
                    ),
                ));
            }
            if !(1..=64).contains(&t.partitions) {
                return Err(err(
                    &format!("topics[{i}].partitions"),
                    format!("{} is out of range; allowed: 1 to 64", t.partitions),
                ));
            }
            if t.replication_factor < 1 || t.replication_factor > self.cluster.brokers {
                return Err(err(
                    &format!("topics[{i}].replication_factor"),
                    format!(
                        "{} is out of range; allowed: 1 to cluster.brokers ({})",
                        t.replication_factor, self.cluster.brokers
                    ),
                ));
            }
            // Kafka's TopicConfig: `min.insync.replicas` and `flush.messages` are at
            // least 1, `flush.ms` at least 0, `segment.ms` at least 1, `retention.ms` at
            // least -1
            // (`retention.bytes` has no bound: any negative value is no limit).
            if t.config.min_insync_replicas == Some(0) {
                return Err(err(
                    &format!("topics[{i}].config.min.insync.replicas"),
                    "0 is out of range; allowed: at least 1".into(),
                ));
            }
            let segment_bytes = t
                .config
                .segment_bytes
                .map(|b| i64::try_from(b).unwrap_or(i64::MAX));
            for (name, value, min) in [
                ("flush.messages", t.config.flush_messages, 1),
                ("flush.ms", t.config.flush_ms, 0),
                ("segment.bytes", segment_bytes, 14),
                ("segment.ms", t.config.segment_ms, 1),
                ("retention.ms", t.config.retention_ms, -1),
            ] {
                if let Some(v) = value.filter(|v| *v < min) {
                    return Err(err(
                        &format!("topics[{i}].config.{name}"),
                        format!("{v} is out of range; allowed: at least {min}"),
                    ));
                }
            }
        }
        if self.disk.dirty_writeback_ms == 0 {
            return Err(err(
                "disk.dirty_writeback_ms",
                "0 is out of range; allowed: at least 1".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.disk.torn_write_probability) {
            return Err(err(
                "disk.torn_write_probability",
                format!(
                    "{} is out of range; allowed: 0 to 1",
                    self.disk.torn_write_probability
                ),
            ));
        }
        if self.cluster.config.min_insync_replicas < 1 {
            return Err(err(
                "cluster.config.min.insync.replicas",
                "0 is out of range; allowed: at least 1".into(),
            ));
        }
        if let Err((property, message)) = self.cluster.config.validate() {
            return Err(err(&format!("cluster.config.{property}"), message));
        }
        // Kafka creates `__consumer_offsets` and `__transaction_state` when first needed
        // and refuses while the cluster has fewer brokers than their replication factor
        // (the properties' docs: "internal topic creation will fail until the cluster
        // size meets this replication factor requirement"): no coordinator, ever.
        let brokers = self.cluster.brokers;
        let config = &self.cluster.config;
        for (needed, property, rf, topic, who) in [
            (
                !self.groups().is_empty(),
                "offsets.topic.replication.factor",
                config.offsets_topic_replication_factor,
                "__consumer_offsets",
                "consumer group",
            ),
            (
                !self.transactional_ids().is_empty(),
                "transaction.state.log.replication.factor",
                config.transaction_state_log_replication_factor,
                "__transaction_state",
                "transactional producer",
            ),
        ] {
            if needed && rf > brokers {
                return Err(err(
                    &format!("cluster.config.{property}"),
                    format!(
                        "{rf} is more than the cluster's {brokers} broker(s): Kafka cannot \
                         create {topic} (INVALID_REPLICATION_FACTOR), so no {who} would ever \
                         find its coordinator; allowed: 1 to {brokers}"
                    ),
                ));
            }
        }
        if let Err((property, message)) = self.producers.config.validate() {
            return Err(err(&format!("producers.config.{property}"), message));
        }
        if let Err((property, message)) = self.consumers.config.validate() {
            return Err(err(&format!("consumers.config.{property}"), message));
        }
        if self.producers.timestamp_lookups.is_some() {
            return Err(err(
                "producers.timestamp_lookups",
                "timestamp lookups are a consumer probe; allowed: under consumers only".into(),
            ));
        }
        if let Some(lookups) = &self.consumers.timestamp_lookups {
            if self.consumers.config.group_id.is_some() {
                return Err(err(
                    "consumers.timestamp_lookups",
                    "lookups are made by assign-mode consumers; allowed: consumers without \
                     group.id"
                        .into(),
                ));
            }
            if lookups.every_ms == 0 {
                return Err(err(
                    "consumers.timestamp_lookups.every_ms",
                    "0 is out of range; allowed: at least 1".into(),
                ));
            }
        }
        if let Some(slow) = &self.processing.slow {
            let [lo, hi] = slow.time_ms;
            if lo > hi || slow.from_ms > slow.to_ms {
                return Err(err(
                    "processing.slow",
                    "time_ms must be [min, max] with min <= max and from_ms <= to_ms".into(),
                ));
            }
            if slow.consumer >= self.consumers.count {
                return Err(err(
                    "processing.slow.consumer",
                    format!(
                        "consumer {} does not exist; allowed: 0 to {}",
                        slow.consumer,
                        self.consumers.count.saturating_sub(1)
                    ),
                ));
            }
        }
        let [lo, hi] = self.processing.time_ms;
        if lo > hi {
            return Err(err(
                "processing.time_ms",
                format!("[{lo}, {hi}] is not a range; allowed: [min, max] with min <= max"),
            ));
        }
        if self.producers.start_ms != 0 {
            return Err(err(
                "producers.start_ms",
                "producers start at workload.start_ms; allowed: 0 or absent".into(),
            ));
        }
        if self.consumers.start_ms >= self.end_ms() {
            return Err(err(
                "consumers.start_ms",
                format!(
                    "{} is past the end of the run; allowed: below {}",
                    self.consumers.start_ms,
                    self.end_ms()
                ),
            ));
        }
        if self.producers.count > 16 || self.consumers.count > 16 {
            return Err(err(
                "producers.count",
                "allowed: 0 to 16 producers and 0 to 16 consumers".into(),
            ));
        }
        if !(self.workload.rate_per_sec > 0.0 && self.workload.rate_per_sec <= 10_000.0) {
            return Err(err(
                "workload.rate_per_sec",
                format!(
                    "{} is out of range; allowed: above 0 up to 10000",
                    self.workload.rate_per_sec
                ),
            ));
        }
        if self.workload.headers > 16 {
            return Err(err("workload.headers", "allowed: 0 to 16".into()));
        }
        if self.workload.duration_ms == 0 || self.workload.duration_ms > 3_600_000 {
            return Err(err("workload.duration_ms", "allowed: 1 to 3600000".into()));
        }
        let [lo, hi] = self.network.latency_ms;
        if lo == 0 || lo > hi || hi > 1_000 {
            return Err(err(
                "network.latency_ms",
                format!(
                    "[{lo}, {hi}] is not a range; allowed: [min, max] with 1 <= min <= max <= 1000"
                ),
            ));
        }
        let [dlo, dhi] = self.nemesis.duration_ms;
        if dlo == 0 || dlo > dhi {
            return Err(err(
                "nemesis.duration_ms",
                format!("[{dlo}, {dhi}] is not a range; allowed: [min, max] with 1 <= min <= max"),
            ));
        }
        let consumer_faults = self.nemesis.faults.iter().any(|k| {
            matches!(
                k,
                FaultKindName::ConsumerCrash | FaultKindName::ConsumerPause
            )
        });
        if self.nemesis.faults.contains(&FaultKindName::ProducerCrash) && self.producers.count == 0
        {
            return Err(err(
                "nemesis.faults",
                "producer-crash needs producers; allowed: producers.count of at least 1, or \
                 other fault kinds"
                    .into(),
            ));
        }
        if consumer_faults && self.consumers.count == 0 {
            return Err(err(
                "nemesis.faults",
                "consumer-crash and consumer-pause need consumers; allowed: consumers.count \
                 of at least 1, or other fault kinds"
                    .into(),
            ));
        }
        if !self.nemesis.faults.is_empty() && self.nemesis.interval_ms == 0 {
            return Err(err("nemesis.interval_ms", "allowed: at least 1".into()));
        }
        self.validate_pipelines(file)?;
        let topics = self.topics_and_partitions();
        let (groups, transactional_ids) = (self.groups(), self.transactional_ids());
        let targets = self.targets(&topics, &groups, &transactional_ids);
        for (i, f) in self.nemesis.schedule.iter().enumerate() {
            f.validate(&targets)
                .map_err(|m| err(&format!("nemesis.schedule[{i}]"), m))?;
        }
        for (name, c) in &self.clocks {
            let field = format!("clocks.{name}");
            let target = match name.parse() {
                Ok(t @ Target::Node(_)) => t,
                _ => {
                    return Err(err(
                        &field,
                        format!(
                            "`{name}` is not a node; allowed: controller, broker-N, \
                             producer-N, consumer-N, pipeline-N"
                        ),
                    ))
                }
            };
            let fault = Fault::Clock {
                target,
                offset_ms: c.offset_ms,
            };
            (ScheduledFault {
                at_ms: 0,
                duration_ms: 0,
                fault,
            })
            .validate(&targets)
            .map_err(|m| match m.starts_with("`offset_ms`") {
                true => err(&format!("{field}.offset_ms"), m),
                false => err(&field, m),
            })?;
            if c.drift_ppm.abs() > MAX_DRIFT_PPM {
                return Err(err(
                    &format!("{field}.drift_ppm"),
                    format!(
                        "{} is out of range; allowed: -{MAX_DRIFT_PPM} to {MAX_DRIFT_PPM}",
                        c.drift_ppm
                    ),
                ));
            }
        }
        for (i, c) in self.claims.iter().enumerate() {
            if !is_claim(c) {
                return Err(err(
                    &format!("claims[{i}]"),
                    format!("`{c}` is not a seed claim; allowed: C1 to C31"),
                ));
            }
        }
        for (i, b) in self.bugs.iter().enumerate() {
            if Bug::from_name(b).is_none() {
                return Err(err(
                    &format!("bugs[{i}]"),
                    format!(
                        "unknown bug switch `{b}`; allowed: {}",
                        Bug::names().join(", ")
                    ),
                ));
            }
        }
        for (field, list) in [
            ("expect.anomalies", &self.expect.anomalies),
            ("expect.tolerate", &self.expect.tolerate),
            ("expect.forbid", &self.expect.forbid),
        ] {
            for (i, a) in list.iter().enumerate() {
                let known = crate::check::kinds::ANOMALY_KINDS
                    .iter()
                    .chain(crate::check::kinds::EVENT_KINDS)
                    .any(|k| k == a);
                if !known {
                    return Err(err(
                        &format!("{field}[{i}]"),
                        format!(
                            "unknown anomaly `{a}`; allowed: {}, {}",
                            crate::check::kinds::ANOMALY_KINDS.join(", "),
                            crate::check::kinds::EVENT_KINDS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The consumer groups of the scenario (its consumers' and its pipelines').
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self.consumers.config.group_id.iter().cloned().collect();
        if let Some(g) = self
            .pipelines
            .as_ref()
            .and_then(|p| p.consumer.group_id.clone())
        {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        groups
    }

    /// The pipelines' `transactional.id`s, each once.
    pub fn transactional_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        if let Some(p) = &self.pipelines {
            for i in 0..p.instance_count() {
                if let Some(id) = p.transactional_id(i).filter(|id| !ids.contains(id)) {
                    ids.push(id);
                }
            }
        }
        ids
    }

    /// What fault targets can name (the slices come from the methods above).
    pub fn targets<'a>(
        &self,
        topics: &'a [(String, u32)],
        groups: &'a [String],
        transactional_ids: &'a [String],
    ) -> crate::nemesis::Targets<'a> {
        crate::nemesis::Targets {
            topics,
            brokers: self.cluster.brokers,
            producers: self.producers.count,
            consumers: self.consumers.count,
            pipelines: self
                .pipelines
                .as_ref()
                .map_or(0, PipelineSpec::instance_count),
            groups,
            transactional_ids,
        }
    }

    fn validate_pipelines(&self, file: &str) -> Result<(), ScenarioError> {
        let err = |field: &str, message: String| ScenarioError {
            file: file.to_string(),
            field: format!("pipelines.{field}"),
            message,
        };
        let drawn_pipeline_faults = self.nemesis.faults.iter().any(|k| {
            matches!(
                k,
                FaultKindName::PipelineCrash | FaultKindName::PipelinePause
            )
        });
        let Some(p) = &self.pipelines else {
            if drawn_pipeline_faults {
                return Err(ScenarioError {
                    file: file.to_string(),
                    field: "nemesis.faults".into(),
                    message: "pipeline-crash and pipeline-pause need pipelines; allowed: a \
                              `pipelines` section, or other fault kinds"
                        .into(),
                });
            }
            return Ok(());
        };
        let count = p.instance_count();
        if !(1..=16).contains(&count) {
            return Err(err(
                "count",
                format!("{count} is out of range; allowed: 1 to 16"),
            ));
        }
        if !p.instances.is_empty() && p.count != default_pipeline_count() && p.count != count {
            return Err(err(
                "count",
                format!(
                    "{} disagrees with the {count} instances listed; allowed: leave it out",
                    p.count
                ),
            ));
        }
        let names: Vec<&str> = self.topics.iter().map(|t| t.name.as_str()).collect();
        for (field, topic) in [("input", &p.input), ("output", &p.output)] {
            if !names.contains(&topic.as_str()) {
                return Err(err(
                    field,
                    format!(
                        "topic `{topic}` is not in `topics`; allowed: {}",
                        names.join(", ")
                    ),
                ));
            }
        }
        if p.input == p.output {
            return Err(err(
                "output",
                "the output topic must differ from the input topic".into(),
            ));
        }
        if p.consumer.group_id.is_none() {
            return Err(err(
                "consumer.group.id",
                "a pipeline's consumer needs a group.id (sendOffsetsToTransaction and \
                 commits are per group)"
                    .into(),
            ));
        }
        if let Err((property, message)) = p.consumer.validate() {
            return Err(err(&format!("consumer.{property}"), message));
        }
        if let Err((property, message)) = p.producer.validate() {
            return Err(err(&format!("producer.{property}"), message));
        }
        if p.mode == PipelineMode::AtLeastOnce && p.producer.transactional_id.is_some() {
            return Err(err(
                "producer.transactional.id",
                "at-least-once pipelines do not use transactions; allowed: leave it out, or \
                 mode exactly-once"
                    .into(),
            ));
        }
        if p.mode == PipelineMode::AtLeastOnce
            && p.instances.iter().any(|i| i.transactional_id.is_some())
        {
            return Err(err(
                "instances",
                "transactional.id is for exactly-once pipelines; allowed: leave it out".into(),
            ));
        }
        if p.mode == PipelineMode::ExactlyOnce && p.producer.enable_idempotence == Some(false) {
            return Err(err(
                "producer.enable.idempotence",
                "Cannot set a transactional.id without also enabling idempotence.".into(),
            ));
        }
        let [lo, hi] = p.time_ms;
        if lo > hi {
            return Err(err(
                "time_ms",
                format!("[{lo}, {hi}] is not a range; allowed: [min, max] with min <= max"),
            ));
        }
        if let Some(late) = (0..count).find(|i| p.start_ms(*i) >= self.end_ms()) {
            return Err(err(
                &format!("instances[{late}].start_ms"),
                format!("past the end of the run; allowed: below {}", self.end_ms()),
            ));
        }
        Ok(())
    }

    /// Every (topic, partition count).
    pub fn topics_and_partitions(&self) -> Vec<(String, u32)> {
        self.topics
            .iter()
            .map(|t| (t.name.clone(), t.partitions))
            .collect()
    }

    /// When producers stop and the nemesis heals everything.
    pub fn workload_end_ms(&self) -> u64 {
        self.workload.start_ms + self.workload.duration_ms
    }

    /// When the run ends.
    pub fn end_ms(&self) -> u64 {
        let last_fault = self
            .nemesis
            .schedule
            .iter()
            .map(|f| f.at_ms + f.duration_ms)
            .max()
            .unwrap_or(0);
        self.workload_end_ms().max(last_fault) + self.workload.quiet_ms
    }

    /// Whether an anomaly kind must stay absent on every seed (client events never are).
    pub fn is_invariant(&self, kind: &str) -> bool {
        if crate::check::kinds::EVENT_KINDS.contains(&kind) {
            return self.expect.forbid.iter().any(|a| a == kind);
        }
        !self.expect.anomalies.iter().any(|a| a == kind)
            && !self.expect.tolerate.iter().any(|a| a == kind)
    }
}

/// Collects scenario files from files and folders (folders: every `*.json`, sorted).
pub fn collect_paths(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| ScenarioError {
                    file: p.display().to_string(),
                    field: "-".into(),
                    message: format!("cannot read folder: {e}"),
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            out.extend(files);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(ScenarioError {
                file: p.display().to_string(),
                field: "-".into(),
                message: "no such file or folder".into(),
            });
        }
    }
    if out.is_empty() {
        return Err(ScenarioError {
            file: inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            field: "-".into(),
            message: "no scenario files (*.json) found".into(),
        });
    }
    Ok(out)
}

/// The number of seed claims.
pub const CLAIMS: u32 = 31;

/// Whether `c` names a seed claim (`C1` to `C31`).
pub fn is_claim(c: &str) -> bool {
    c.strip_prefix('C')
        .filter(|n| !n.starts_with('0'))
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| (1..=CLAIMS).contains(&n))
}

/// When a group member's application commits offsets relative to processing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessingMode {
    /// `enable.auto.commit`: `poll` commits what the previous polls returned.
    AutoCommit,
    /// Process the polled records, then `commitSync` (C22: a crash reprocesses).
    AtLeastOnce,
    /// `commitSync` the polled positions, then process (C23: a crash loses records).
    AtMostOnce,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `clean-election.json` (one assign-mode consumer) after `edit`.
    fn parse(edit: impl FnOnce(&mut serde_json::Value)) -> Result<Scenario, ScenarioError> {
        let mut v: serde_json::Value =
            serde_json::from_str(include_str!("../scenarios/clean-election.json")).unwrap();
        edit(&mut v);
        Scenario::parse("s.json", &v.to_string(), Path::new("s.json"))
    }

    fn refusal(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        parse(edit).expect_err("refused").to_string()
    }

    /// Kafka cannot create `__consumer_offsets` with more replicas than brokers, so a
    /// two-broker cluster with a group and the default (3) is refused, naming the
    /// property; without a group the topic is never needed.
    #[test]
    fn internal_topics_need_as_many_brokers_as_replicas() {
        let two_brokers = |v: &mut serde_json::Value| {
            v["cluster"]["brokers"] = 2.into();
            v["topics"][0]["replication_factor"] = 2.into();
            v["cluster"]["config"]["min.insync.replicas"] = 1.into();
        };
        assert!(parse(two_brokers).is_ok());
        let refused = refusal(|v| {
            two_brokers(v);
            v["consumers"]["config"]["group.id"] = "g".into();
        });
        assert_eq!(
            refused,
            "s.json: field `cluster.config.offsets.topic.replication.factor`: 3 is more than \
             the cluster's 2 broker(s): Kafka cannot create __consumer_offsets \
             (INVALID_REPLICATION_FACTOR), so no consumer group would ever find its \
             coordinator; allowed: 1 to 2"
        );
        assert!(parse(|v| {
            two_brokers(v);
            v["consumers"]["config"]["group.id"] = "g".into();
            v["cluster"]["config"]["offsets.topic.replication.factor"] = 2.into();
        })
        .is_ok());
    }

    #[test]
    fn clocks_name_nodes_with_offsets_and_drifts_in_range() {
        let clock = |o: i64, d: i64| serde_json::json!({ "offset_ms": o, "drift_ppm": d });
        let s = parse(|v| v["clocks"]["producer-0"] = clock(-60_000, 500)).unwrap();
        assert_eq!(
            s.clocks["producer-0"],
            ClockSpec {
                offset_ms: -60_000,
                drift_ppm: 500
            }
        );
        assert_eq!(
            refusal(|v| v["clocks"]["broker-7"] = clock(0, 0)),
            "s.json: field `clocks.broker-7`: target broker-7 does not exist; allowed: \
             broker-1 to broker-3"
        );
        assert!(refusal(|v| v["clocks"]["leader:orders-0"] = clock(0, 0))
            .contains("field `clocks.leader:orders-0`: `leader:orders-0` is not a node"));
        assert_eq!(
            refusal(|v| v["clocks"]["controller"] = clock(86_400_001, 0)),
            "s.json: field `clocks.controller.offset_ms`: `offset_ms` 86400001: allowed: \
             -86400000 to 86400000 (one day either way)"
        );
        assert_eq!(
            refusal(|v| v["clocks"]["controller"] = clock(0, -100_001)),
            "s.json: field `clocks.controller.drift_ppm`: -100001 is out of range; \
             allowed: -100000 to 100000"
        );
        assert!(refusal(|v| v["clocks"]["controller"]["skew"] = 1.into()).contains("clocks"));
        let step = serde_json::json!([{ "at_ms": 1000, "duration_ms": 500, "fault": "clock",
            "target": "producer-0", "offset_ms": 3_600_000 }]);
        let s = parse(|v| v["nemesis"]["schedule"] = step).unwrap();
        assert_eq!(
            s.nemesis.schedule[0].fault.to_string(),
            "clock producer-0 +3600000 ms"
        );
    }

    #[test]
    fn timestamp_lookups_are_an_assign_mode_consumer_probe() {
        let lookups = serde_json::json!({ "every_ms": 1000, "lag_ms": 500 });
        let s = parse(|v| v["consumers"]["timestamp_lookups"] = lookups.clone()).unwrap();
        let t = s.consumers.timestamp_lookups.expect("parsed");
        assert_eq!((t.every_ms, t.lag_ms), (1000, 500));
        assert!(parse(|_| {}).unwrap().consumers.timestamp_lookups.is_none());
        assert_eq!(
            refusal(|v| {
                v["consumers"]["timestamp_lookups"] =
                    serde_json::json!({ "every_ms": 0, "lag_ms": 500 })
            }),
            "s.json: field `consumers.timestamp_lookups.every_ms`: 0 is out of range; \
             allowed: at least 1"
        );
        assert!(
            refusal(|v| v["consumers"]["timestamp_lookups"]["every"] = 1.into())
                .contains("consumers.timestamp_lookups")
        );
        assert!(refusal(|v| {
            v["consumers"]["timestamp_lookups"] = lookups.clone();
            v["consumers"]["config"]["group.id"] = "g".into();
        })
        .contains("field `consumers.timestamp_lookups`: lookups are made by assign-mode"));
        assert!(
            refusal(|v| v["producers"]["timestamp_lookups"] = lookups.clone())
                .contains("field `producers.timestamp_lookups`")
        );
    }

    /// `disk` (the OS below Kafka), the flush settings and power-loss targets: bad
    /// values are refused naming the field and what is allowed.
    #[test]
    fn disk_flush_and_power_loss_settings_are_checked() {
        let s = parse(|v| {
            v["disk"] = serde_json::json!({ "dirty_expire_ms": 10000 });
            v["topics"][0]["config"] = serde_json::json!({ "flush.messages": 1 });
        })
        .unwrap();
        assert_eq!(
            (s.disk.dirty_expire_ms, s.disk.dirty_writeback_ms),
            (10_000, 5_000)
        );
        assert_eq!(s.topics[0].config.flush_messages, Some(1));
        assert_eq!(s.disk.writeback(7_300).phase_ms, 2_300);
        assert_eq!(
            refusal(|v| v["disk"] = serde_json::json!({ "torn_write_probability": 2.0 })),
            "s.json: field `disk.torn_write_probability`: 2 is out of range; allowed: 0 to 1"
        );
        assert!(refusal(|v| v["disk"] = serde_json::json!({ "dirty": 1 })).contains("disk"));
        assert_eq!(
            refusal(|v| v["topics"][0]["config"] = serde_json::json!({ "flush.messages": 0 })),
            "s.json: field `topics[0].config.flush.messages`: 0 is out of range; allowed: at \
             least 1"
        );
        assert!(refusal(|v| {
            v["cluster"]["config"]["log.flush.interval.messages"] = 0.into();
        })
        .contains("cluster.config.log.flush.interval.messages"));
        assert!(
            refusal(|v| v["topics"][0]["config"] = serde_json::json!({ "segment.bytes": 10 }))
                .contains(
                    "topics[0].config.segment.bytes`: 10 is out of range; allowed: at least 14"
                )
        );
        assert!(
            refusal(|v| v["topics"][0]["config"] = serde_json::json!({ "segment.ms": 0 }))
                .contains("topics[0].config.segment.ms`: 0 is out of range; allowed: at least 1")
        );
        assert!(
            refusal(|v| v["cluster"]["config"]["log.segment.bytes"] = 13.into())
                .contains("log.segment.bytes: Value must be at least 14")
        );
        assert!(refusal(|v| {
            v["topics"][0]["config"] = serde_json::json!({ "retention.ms": -2 });
        })
        .contains("topics[0].config.retention.ms`: -2 is out of range; allowed: at least -1"));
        for (name, bad, says) in [
            ("producer.id.expiration.ms", 0, "Value must be at least 1"),
            (
                "log.retention.check.interval.ms",
                0,
                "Value must be at least 1",
            ),
            ("log.retention.ms", -2, "Value must be at least -1"),
        ] {
            let refused = refusal(|v| v["cluster"]["config"][name] = bad.into());
            assert!(
                refused.contains(&format!("cluster.config.{name}")) && refused.contains(says),
                "{refused}"
            );
        }
        let power_loss = |target: &str| {
            serde_json::json!([{ "at_ms": 1000, "duration_ms": 1000, "fault": "power-loss",
                                 "target": target }])
        };
        assert!(parse(|v| v["nemesis"]["schedule"] = power_loss("all-brokers")).is_ok());
        assert!(
            refusal(|v| v["nemesis"]["schedule"] = power_loss("consumer-0"))
                .contains("has no disk kafkasim models; allowed: broker-N, all-brokers")
        );
        let corrupt = |target: &str| {
            serde_json::json!([{ "at_ms": 1000, "duration_ms": 1000, "fault": "corrupt",
                                 "target": target }])
        };
        assert!(parse(|v| v["nemesis"]["schedule"] = corrupt("leader:orders-0")).is_ok());
        assert!(
            refusal(|v| v["nemesis"]["schedule"] = corrupt("controller"))
                .contains("has no disk kafkasim models")
        );
        assert!(parse(|v| v["nemesis"]["faults"] = serde_json::json!(["corrupt"])).is_ok());
        for fault in ["disk-full", "log-dir-failure"] {
            let entry = |target: &str| {
                serde_json::json!([{ "at_ms": 1000, "duration_ms": 1000, "fault": fault,
                                     "target": target }])
            };
            assert!(parse(|v| v["nemesis"]["schedule"] = entry("leader:orders-0")).is_ok());
            assert!(refusal(|v| v["nemesis"]["schedule"] = entry("producer-0"))
                .contains("has no disk kafkasim models; allowed: broker-N"));
            assert!(parse(|v| v["nemesis"]["faults"] = serde_json::json!([fault])).is_ok());
        }
        assert!(
            refusal(|v| v["nemesis"]["faults"] = serde_json::json!(["disk-ful"])).contains(
                "expected one of `crash`, `power-loss`, `corrupt`, `disk-full`, `log-dir-failure`"
            )
        );
    }

    /// `topics[].config`: Kafka's topic-level names; unknown names and a
    /// `min.insync.replicas` of 0 are refused naming the field and what is allowed.
    #[test]
    fn topic_configs_take_kafkas_names_only() {
        let config = serde_json::json!({
            "min.insync.replicas": 2,
            "unclean.leader.election.enable": true
        });
        let s = parse(|v| v["topics"][0]["config"] = config.clone()).unwrap();
        assert_eq!(
            s.topics[0].config,
            TopicConfig {
                min_insync_replicas: Some(2),
                unclean_leader_election_enable: Some(true),
                ..TopicConfig::default()
            }
        );
        assert!(parse(|_| {}).unwrap().topics[0].config.is_empty());
        let unknown = refusal(|v| {
            v["topics"][0]["config"] = serde_json::json!({ "min.isr": 2 });
        });
        assert!(
            unknown.starts_with("s.json: field `topics[0].config"),
            "{unknown}"
        );
        assert!(
            unknown.contains("unknown field `min.isr`")
                && unknown.contains("`min.insync.replicas`")
                && unknown.contains("`unclean.leader.election.enable`"),
            "{unknown}"
        );
        assert_eq!(
            refusal(|v| v["topics"][0]["config"] = serde_json::json!({ "min.insync.replicas": 0 })),
            "s.json: field `topics[0].config.min.insync.replicas`: 0 is out of range; \
             allowed: at least 1"
        );
    }

    #[test]
    fn transaction_version_is_0_to_2() {
        let set = |n: u64| {
            move |v: &mut serde_json::Value| {
                v["cluster"]["config"]["transaction.version"] = n.into()
            }
        };
        assert_eq!(parse(set(1)).unwrap().cluster.config.transaction_version, 1);
        assert_eq!(
            refusal(set(3)),
            "s.json: field `cluster.config.transaction.version`: No \
             feature:transaction.version with feature level 3 (supported levels: 0 to 2)"
        );
    }

    #[test]
    fn a_missing_nemesis_section_means_no_faults() {
        let s = parse(|v| {
            v.as_object_mut().unwrap().remove("nemesis");
        })
        .expect("a scenario without faults is valid");
        assert!(s.nemesis.faults.is_empty() && s.nemesis.schedule.is_empty());
    }
}
