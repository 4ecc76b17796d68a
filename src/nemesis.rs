//! The nemesis: which faults happen when. This module is pure planning: it turns the
//! scenario's fault settings and the seed into an explicit, ordered schedule. The host
//! ([`crate::sim`]) applies the schedule to the simulated network and nodes.

use crate::kafka::protocol::{NodeId, TopicPartition};
use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A fault kind as named in `nemesis.faults`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKindName {
    /// Kill a broker's process, restart it at the end.
    Crash,
    /// Cut a broker's power (one broker, or every broker at once): the process dies
    /// and what was only in the OS page cache is lost; restart it at the end.
    PowerLoss,
    /// A bit flips in a batch on a broker's disk, found at the next cold read: the
    /// process dies, the OS writes back its page cache, one bit of a stored batch
    /// flips; restart it at the end (recovery may or may not catch it).
    Corrupt,
    /// A broker's disk fills up: its next write that needs space fails, its log
    /// directory goes offline and it halts (page cache kept); it restarts when the disk
    /// has room again.
    DiskFull,
    /// A broker's disk fails (pulled out): its log directory goes offline at once and
    /// it halts, the dirty page cache lost; it restarts when the disk is back.
    LogDirFailure,
    /// Pause a broker (a long GC or a stopped VM), resume it at the end.
    Pause,
    /// Cut one node off from every other node.
    Isolate,
    /// Split the brokers and controller into two halves that cannot talk.
    Split,
    /// Drop messages in one direction between two brokers.
    OneWay,
    /// Move a partition's leadership to another in-sync replica.
    MoveLeader,
    /// A link holds what it carries for a while, then delivers it in order (a stalled
    /// switch queue, a VM's NIC frozen): late requests.
    Delay,
    /// A link's latency is a range of its own for a while (a congested path).
    Slow,
    /// Every connection between two nodes is reset, no process dying (a middlebox or
    /// NIC reset).
    Reset,
    /// Kill a producer application's process: it restarts as a new process with a
    /// new producer (a new producer id) and sends on.
    ProducerCrash,
    /// Kill a consumer's process (a group member restarts as a new process).
    ConsumerCrash,
    /// Pause a consumer's whole process, heartbeats included (a long GC).
    ConsumerPause,
    /// Kill a read-process-write pipeline instance (it restarts as a new process with
    /// the same `transactional.id`).
    PipelineCrash,
    /// Pause a pipeline instance (a long GC).
    PipelinePause,
}

/// Who a fault hits, resolved when the fault starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A fixed node.
    Node(NodeId),
    /// Whoever leads the partition when the fault starts.
    LeaderOf(TopicPartition),
    /// The partition's other replicas when the fault starts.
    FollowersOf(TopicPartition),
    /// The group's coordinator when the fault starts: the leader of the
    /// `__consumer_offsets` partition its `group.id` hashes to.
    CoordinatorOf(String),
    /// The transaction coordinator of a `transactional.id` when the fault starts: the
    /// leader of the `__transaction_state` partition it hashes to.
    TxnCoordinatorOf(String),
    /// Every broker (a whole data center losing power).
    AllBrokers,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(n) => write!(f, "{n}"),
            Target::LeaderOf(tp) => write!(f, "leader:{tp}"),
            Target::FollowersOf(tp) => write!(f, "followers:{tp}"),
            Target::CoordinatorOf(group) => write!(f, "coordinator:{group}"),
            Target::TxnCoordinatorOf(id) => write!(f, "txn-coordinator:{id}"),
            Target::AllBrokers => write!(f, "all-brokers"),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let allowed = "allowed: controller, broker-N, all-brokers, producer-N, consumer-N, pipeline-N, leader:<topic>-<partition>, followers:<topic>-<partition>, coordinator:<group.id>, txn-coordinator:<transactional.id>";
        let tp = |t: &str| -> Result<TopicPartition, String> {
            let (topic, p) = t
                .rsplit_once('-')
                .ok_or_else(|| format!("`{s}`: {allowed}"))?;
            let p = p.parse().map_err(|_| format!("`{s}`: {allowed}"))?;
            Ok(TopicPartition::new(topic, p))
        };
        if s == "controller" {
            Ok(Target::Node(NodeId::Controller))
        } else if s == "all-brokers" {
            Ok(Target::AllBrokers)
        } else if let Some(n) = s.strip_prefix("broker-") {
            n.parse()
                .map(|id| Target::Node(NodeId::Broker(id)))
                .map_err(|_| format!("`{s}`: {allowed}"))
        } else if let Some(n) = s.strip_prefix("producer-") {
            n.parse()
                .map(|i| Target::Node(NodeId::Producer(i)))
                .map_err(|_| format!("`{s}`: {allowed}"))
        } else if let Some(n) = s.strip_prefix("consumer-") {
            n.parse()
                .map(|i| Target::Node(NodeId::Consumer(i)))
                .map_err(|_| format!("`{s}`: {allowed}"))
        } else if let Some(n) = s.strip_prefix("pipeline-") {
            n.parse()
                .map(|i| Target::Node(NodeId::Pipeline(i)))
                .map_err(|_| format!("`{s}`: {allowed}"))
        } else if let Some(t) = s.strip_prefix("leader:") {
            tp(t).map(Target::LeaderOf)
        } else if let Some(t) = s.strip_prefix("followers:") {
            tp(t).map(Target::FollowersOf)
        } else if let Some(g) = s.strip_prefix("coordinator:") {
            if g.is_empty() {
                Err(format!("`{s}`: {allowed}"))
            } else {
                Ok(Target::CoordinatorOf(g.to_string()))
            }
        } else if let Some(id) = s.strip_prefix("txn-coordinator:") {
            if id.is_empty() {
                Err(format!("`{s}`: {allowed}"))
            } else {
                Ok(Target::TxnCoordinatorOf(id.to_string()))
            }
        } else {
            Err(format!("unknown target `{s}`; {allowed}"))
        }
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl schemars::JsonSchema for Target {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Target".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Who a fault hits: controller, broker-N, all-brokers, producer-N, \
                consumer-N, pipeline-N, leader:<topic>-<partition>, \
                followers:<topic>-<partition>, coordinator:<group.id>, \
                txn-coordinator:<transactional.id>.",
            "type": "string",
            "pattern": "^(controller|all-brokers|(broker|producer|consumer|pipeline)-[0-9]+|(leader|followers):.*-[0-9]+|(coordinator|txn-coordinator):.+)$"
        })
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A fault with its targets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "fault", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// Kill the node's process; restart it when the fault ends.
    Crash {
        /// The node.
        target: Target,
    },
    /// Cut the power of the node (a broker): kill its process, lose its page cache;
    /// restart it when the fault ends.
    PowerLoss {
        /// The broker(s).
        target: Target,
    },
    /// Corrupt a stored batch of the node (a broker): kill its process, write back its
    /// page cache, flip one bit in a drawn batch of a drawn partition; restart it when
    /// the fault ends.
    Corrupt {
        /// The broker(s).
        target: Target,
    },
    /// Fill the node's (a broker's) disk: the first write that needs new space fails
    /// with `No space left on device`, which takes its log directory offline and halts
    /// it (Kafka's `LogDirFailureChannel`, `Exit.halt(1)`; the page cache is kept); it
    /// cannot start while the disk is full, and restarts when the fault ends.
    DiskFull {
        /// The broker(s).
        target: Target,
    },
    /// Fail the node's (a broker's) disk, as when pulled out: its log directory goes
    /// offline at once and the broker halts; the pages the OS had not written back are
    /// lost (only the platter is left, as in a power loss); it restarts when the fault
    /// ends (the disk back).
    LogDirFailure {
        /// The broker(s).
        target: Target,
    },
    /// Pause the node; resume it when the fault ends.
    Pause {
        /// The node.
        target: Target,
    },
    /// Cut the node off from everyone.
    Isolate {
        /// The node.
        target: Target,
    },
    /// Cut every link between the two groups (nodes in neither keep all links).
    Partition {
        /// The two sides.
        groups: [Vec<Target>; 2],
    },
    /// Drop messages from `from` to `to` (the reverse direction still works).
    OneWay {
        /// Sender side.
        from: Target,
        /// Receiver side.
        to: Target,
    },
    /// Move the partition's leadership to the next in-sync replica (by reordering its
    /// replicas and a preferred election, as `kafka-reassign-partitions` would).
    MoveLeader {
        /// The partition.
        partition: TopicPartition,
    },
    /// What `from` sends `to` while the fault lasts is held, then delivered in order
    /// when it ends (the reverse direction still works).
    Delay {
        /// Sender side.
        from: Target,
        /// Receiver side.
        to: Target,
    },
    /// What `from` sends `to` while the fault lasts takes a one-way latency drawn in
    /// `latency_ms` (inclusive).
    Slow {
        /// Sender side.
        from: Target,
        /// Receiver side.
        to: Target,
        /// The latency range (ms).
        latency_ms: [u64; 2],
    },
    /// Every connection between the two sides is reset when the fault starts: what
    /// they held is gone, requests in flight on them fail, new connections open.
    Reset {
        /// The two sides.
        between: [Target; 2],
    },
    /// Ask the partition's leader to delete its records before `offset`, as
    /// `Admin.deleteRecords` would (`DeleteRecords`, KIP-107).
    DeleteRecords {
        /// The partition.
        partition: TopicPartition,
        /// The new log start offset.
        offset: RecordsBefore,
    },
    /// Step the node's wall clock by `offset_ms` (an NTP step, an operator's `date
    /// -s`), and back when the fault ends: what reads wall time on it (record
    /// timestamps, retention, `offsetsForTimes` targets, transaction timeouts) jumps;
    /// timers run on the monotonic clock, which steps never move.
    Clock {
        /// The node(s).
        target: Target,
        /// The step (ms; negative: back).
        offset_ms: i64,
    },
}

/// The largest clock offset or step a scenario may set (ms): one day either way.
pub const MAX_CLOCK_OFFSET_MS: i64 = 86_400_000;

impl Fault {
    /// Whether the fault happens at an instant (its duration is ignored): a leader
    /// move, a records deletion, a reset.
    pub fn is_instant(&self) -> bool {
        matches!(
            self,
            Fault::MoveLeader { .. } | Fault::DeleteRecords { .. } | Fault::Reset { .. }
        )
    }
}

/// Where a `delete-records` entry moves the log start: a whole number of records, or
/// `"high-watermark"` (Kafka's `-1`, `DeleteRecordsRequest.HIGH_WATERMARK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordsBefore {
    /// The partition's high watermark when the leader gets the request.
    HighWatermark,
    /// This offset.
    Offset(u64),
}

impl fmt::Display for RecordsBefore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordsBefore::HighWatermark => write!(f, "high-watermark"),
            RecordsBefore::Offset(o) => write!(f, "{o}"),
        }
    }
}

impl Serialize for RecordsBefore {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RecordsBefore::HighWatermark => s.serialize_str("high-watermark"),
            RecordsBefore::Offset(o) => s.serialize_u64(*o),
        }
    }
}

impl schemars::JsonSchema for RecordsBefore {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RecordsBefore".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Where a records deletion moves the log start: an offset or \
                \"high-watermark\".",
            "anyOf": [
                { "type": "integer", "minimum": 0, "maximum": i64::MAX },
                { "const": "high-watermark" }
            ]
        })
    }
}

impl<'de> Deserialize<'de> for RecordsBefore {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) if s == "high-watermark" => {
                Ok(RecordsBefore::HighWatermark)
            }
            v => v
                .as_u64()
                .filter(|o| i64::try_from(*o).is_ok())
                .map(RecordsBefore::Offset)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "`offset` {v} is not allowed; allowed: a whole number of records \
                         (at least 0) or \"high-watermark\""
                    ))
                }),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[Target]| {
            v.iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Fault::Crash { target } => write!(f, "crash {target}"),
            Fault::PowerLoss { target } => write!(f, "power-loss {target}"),
            Fault::Corrupt { target } => write!(f, "corrupt {target}"),
            Fault::DiskFull { target } => write!(f, "disk-full {target}"),
            Fault::LogDirFailure { target } => write!(f, "log-dir-failure {target}"),
            Fault::Pause { target } => write!(f, "pause {target}"),
            Fault::Isolate { target } => write!(f, "isolate {target}"),
            Fault::Partition { groups } => write!(
                f,
                "partition [{}] | [{}]",
                list(&groups[0]),
                list(&groups[1])
            ),
            Fault::OneWay { from, to } => write!(f, "drop {from} -> {to}"),
            Fault::MoveLeader { partition } => write!(f, "move leader of {partition}"),
            Fault::Delay { from, to } => write!(f, "delay {from} -> {to}"),
            Fault::Slow {
                from,
                to,
                latency_ms: [lo, hi],
            } => write!(f, "slow {from} -> {to} ({lo}..{hi} ms)"),
            Fault::Reset { between: [a, b] } => write!(f, "reset {a} <-> {b}"),
            Fault::DeleteRecords { partition, offset } => {
                write!(f, "delete records of {partition} before {offset}")
            }
            Fault::Clock { target, offset_ms } => write!(f, "clock {target} {offset_ms:+} ms"),
        }
    }
}

/// A fault at a time, for a duration. In a scenario file:
/// `{"at_ms": 8000, "duration_ms": 5000, "fault": "crash", "target": "leader:orders-0"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScheduledFault {
    /// Start (ms).
    pub at_ms: u64,
    /// Duration (ms); ignored for instant faults (leader moves, records deletions,
    /// resets).
    #[serde(default)]
    pub duration_ms: u64,
    /// The fault.
    #[serde(flatten)]
    pub fault: Fault,
}

/// The schema of what [`ScheduledFault`]'s deserializer accepts: `at_ms`, an optional
/// `duration_ms` and one [`Fault`]'s fields, nothing else.
impl schemars::JsonSchema for ScheduledFault {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ScheduledFault".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // Each variant of `Fault` (a `oneOf` of closed objects tagged by `fault`) with
        // the two timing fields added to it.
        let mut fault = <Fault as schemars::JsonSchema>::json_schema(generator).to_value();
        let timing = serde_json::json!({
            "at_ms": { "description": "Start (ms).", "type": "integer", "minimum": 0 },
            "duration_ms": {
                "description": "Duration (ms); ignored for instant faults (leader moves, \
                    records deletions, resets).",
                "type": "integer",
                "minimum": 0,
                "default": 0
            }
        });
        if let Some(variants) = fault.get_mut("oneOf").and_then(|v| v.as_array_mut()) {
            for v in variants {
                if let Some(props) = v.get_mut("properties").and_then(|p| p.as_object_mut()) {
                    props.extend(timing.as_object().cloned().unwrap_or_default());
                }
                if let Some(req) = v.get_mut("required").and_then(|r| r.as_array_mut()) {
                    req.push("at_ms".into());
                }
            }
        }
        let mut schema = serde_json::json!({
            "description": "A fault at a time, for a duration: `at_ms`, `duration_ms` and \
                the fault's fields (`fault` names it)."
        });
        schema["oneOf"] = fault["oneOf"].take();
        schemars::Schema::try_from(schema).expect("an object is a schema")
    }
}

impl<'de> Deserialize<'de> for ScheduledFault {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // serde's `flatten` cannot reject unknown fields, so split the object by hand.
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let num = |v: serde_json::Value, name: &str| {
            v.as_u64().ok_or_else(|| {
                D::Error::custom(format!("`{name}` must be a whole number of milliseconds"))
            })
        };
        let at_ms = num(
            map.remove("at_ms")
                .ok_or_else(|| D::Error::missing_field("at_ms"))?,
            "at_ms",
        )?;
        let duration_ms = match map.remove("duration_ms") {
            Some(v) => num(v, "duration_ms")?,
            None => 0,
        };
        let fault =
            serde_json::from_value(serde_json::Value::Object(map)).map_err(D::Error::custom)?;
        Ok(ScheduledFault {
            at_ms,
            duration_ms,
            fault,
        })
    }
}

impl ScheduledFault {
    /// Checks that targets exist among `targets`.
    pub fn validate(&self, targets: &Targets) -> Result<(), String> {
        let Targets {
            topics,
            brokers,
            producers,
            consumers,
            pipelines,
            groups,
            transactional_ids,
        } = *targets;
        let check = |t: &Target| -> Result<(), String> {
            match t {
                Target::Node(NodeId::Broker(b)) if *b == 0 || *b > brokers => Err(format!(
                    "target broker-{b} does not exist; allowed: broker-1 to broker-{brokers}"
                )),
                Target::Node(NodeId::Producer(i)) if *i >= producers => Err(format!(
                    "target producer-{i} does not exist; allowed: producer-0 to producer-{}",
                    producers.saturating_sub(1)
                )),
                Target::Node(NodeId::Consumer(i)) if *i >= consumers => Err(format!(
                    "target consumer-{i} does not exist; allowed: consumer-0 to consumer-{}",
                    consumers.saturating_sub(1)
                )),
                Target::Node(NodeId::Pipeline(i)) if *i >= pipelines => Err(format!(
                    "target pipeline-{i} does not exist; allowed: pipeline-0 to pipeline-{}",
                    pipelines.saturating_sub(1)
                )),
                Target::LeaderOf(tp) | Target::FollowersOf(tp) => check_tp(tp, topics),
                Target::CoordinatorOf(g) if !groups.contains(g) => Err(format!(
                    "target coordinator:{g} names an unknown group; allowed: {}",
                    one_of("coordinator", groups, "consumers.config.group.id")
                )),
                Target::TxnCoordinatorOf(id) if !transactional_ids.contains(id) => Err(format!(
                    "target txn-coordinator:{id} names an unknown transactional.id; \
                         allowed: {}",
                    one_of("txn-coordinator", transactional_ids, "a pipeline")
                )),
                _ => Ok(()),
            }
        };
        match &self.fault {
            Fault::Crash { target } | Fault::Pause { target } => {
                if !matches!(
                    target,
                    Target::Node(
                        NodeId::Broker(_)
                            | NodeId::Producer(_)
                            | NodeId::Consumer(_)
                            | NodeId::Pipeline(_)
                    ) | Target::AllBrokers
                        | Target::LeaderOf(_)
                        | Target::FollowersOf(_)
                        | Target::CoordinatorOf(_)
                        | Target::TxnCoordinatorOf(_)
                ) {
                    return Err(format!("`{target}` cannot be crashed or paused; allowed: broker-N, all-brokers, producer-N, consumer-N, pipeline-N, leader:<partition>, followers:<partition>, coordinator:<group.id>, txn-coordinator:<transactional.id> (controller crashes come later)"));
                }
                check(target)
            }
            Fault::PowerLoss { target }
            | Fault::Corrupt { target }
            | Fault::DiskFull { target }
            | Fault::LogDirFailure { target } => {
                if matches!(
                    target,
                    Target::Node(
                        NodeId::Controller
                            | NodeId::Producer(_)
                            | NodeId::Consumer(_)
                            | NodeId::Pipeline(_)
                            | NodeId::Nemesis
                    )
                ) {
                    return Err(format!("`{target}` has no disk kafkasim models; allowed: broker-N, all-brokers, leader:<partition>, followers:<partition>, coordinator:<group.id>, txn-coordinator:<transactional.id>"));
                }
                check(target)
            }
            Fault::Isolate { target } => check(target),
            Fault::Partition { groups } => groups.iter().flatten().try_for_each(check),
            Fault::OneWay { from, to } | Fault::Delay { from, to } => {
                check(from).and_then(|_| check(to))
            }
            Fault::Slow {
                from,
                to,
                latency_ms: [lo, hi],
            } => {
                if lo > hi || *hi > 600_000 {
                    return Err(format!(
                        "`latency_ms` [{lo}, {hi}]: allowed: [low, high] with low <= high <= 600000"
                    ));
                }
                check(from).and_then(|_| check(to))
            }
            Fault::Reset { between: [a, b] } => check(a).and_then(|_| check(b)),
            Fault::MoveLeader { partition } | Fault::DeleteRecords { partition, .. } => {
                check_tp(partition, topics)
            }
            Fault::Clock { target, offset_ms } => {
                if offset_ms.abs() > MAX_CLOCK_OFFSET_MS {
                    return Err(format!(
                        "`offset_ms` {offset_ms}: allowed: -{MAX_CLOCK_OFFSET_MS} to \
                         {MAX_CLOCK_OFFSET_MS} (one day either way)"
                    ));
                }
                check(target)
            }
        }
    }
}

/// What fault targets can name in a scenario.
#[derive(Clone, Copy, Debug)]
pub struct Targets<'a> {
    /// Topics and partition counts.
    pub topics: &'a [(String, u32)],
    /// Broker count (ids 1..=brokers).
    pub brokers: u32,
    /// Producer count.
    pub producers: u32,
    /// Consumer count.
    pub consumers: u32,
    /// Pipeline instance count.
    pub pipelines: u32,
    /// The scenario's consumer groups.
    pub groups: &'a [String],
    /// The scenario's `transactional.id`s.
    pub transactional_ids: &'a [String],
}

/// `prefix:<name>` for each name, or what to set when there is none.
fn one_of(prefix: &str, names: &[String], set: &str) -> String {
    if names.is_empty() {
        format!("none: the scenario has none (set {set})")
    } else {
        names
            .iter()
            .map(|n| format!("{prefix}:{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn check_tp(tp: &TopicPartition, topics: &[(String, u32)]) -> Result<(), String> {
    match topics.iter().find(|(n, _)| **n == *tp.topic) {
        Some((_, p)) if tp.partition < *p => Ok(()),
        _ => Err(format!(
            "partition {tp} does not exist; allowed: {}",
            topics
                .iter()
                .map(|(n, p)| format!("{n}-0..{n}-{}", p - 1))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// What to draw faults from.
pub struct DrawSpec<'a> {
    /// Fault kinds to choose from.
    pub kinds: &'a [FaultKindName],
    /// Broker count (ids 1..=brokers).
    pub brokers: u32,
    /// Producer count (targets of one-way drops).
    pub producers: u32,
    /// Consumer count (targets of consumer crashes and pauses).
    pub consumers: u32,
    /// Pipeline instance count (targets of pipeline crashes and pauses).
    pub pipelines: u32,
    /// Topics and partition counts.
    pub topics: &'a [(String, u32)],
    /// Faults start at or after the first and end by the second (ms).
    pub window_ms: (u64, u64),
    /// Mean gap between faults (ms).
    pub interval_ms: u64,
    /// Range of a fault's duration (ms).
    pub duration_ms: [u64; 2],
}

/// Draws faults one after another inside the window: a gap uniform in
/// [interval/2, 3*interval/2], then a fault of a random kind with a random duration.
pub fn draw(rng: &mut impl Rng, spec: &DrawSpec) -> Vec<ScheduledFault> {
    let DrawSpec {
        kinds,
        brokers,
        producers,
        consumers,
        pipelines,
        topics,
        window_ms: (start_ms, end_ms),
        interval_ms,
        duration_ms: duration,
    } = *spec;
    let mut out = Vec::new();
    if kinds.is_empty() {
        return out;
    }
    let mut t = start_ms;
    loop {
        t += rng.gen_range(interval_ms / 2..=interval_ms + interval_ms / 2);
        if t >= end_ms {
            break;
        }
        assert!(out.len() < 100_000, "too many faults drawn");
        let kind = kinds[rng.gen_range(0..kinds.len())];
        let d = rng.gen_range(duration[0]..=duration[1]).min(end_ms - t);
        let broker = Target::Node(NodeId::Broker(rng.gen_range(1..=brokers)));
        let (topic, parts) = &topics[rng.gen_range(0..topics.len())];
        let tp = TopicPartition::new(topic, rng.gen_range(0..*parts));
        let fault = match kind {
            FaultKindName::Crash => Fault::Crash {
                target: pick(rng, broker.clone(), &tp),
            },
            FaultKindName::PowerLoss => Fault::PowerLoss {
                // Now and then the whole cluster (one power feed), else one broker.
                target: if rng.gen_bool(0.25) {
                    Target::AllBrokers
                } else {
                    pick(rng, broker.clone(), &tp)
                },
            },
            FaultKindName::Corrupt => Fault::Corrupt {
                target: pick(rng, broker.clone(), &tp),
            },
            FaultKindName::DiskFull => Fault::DiskFull {
                target: pick(rng, broker.clone(), &tp),
            },
            FaultKindName::LogDirFailure => Fault::LogDirFailure {
                target: pick(rng, broker.clone(), &tp),
            },
            FaultKindName::Pause => Fault::Pause {
                target: pick(rng, broker.clone(), &tp),
            },
            FaultKindName::Isolate => Fault::Isolate {
                target: pick(rng, broker.clone(), &tp),
            },
            FaultKindName::Split => {
                let mut nodes: Vec<Target> = (1..=brokers)
                    .map(|b| Target::Node(NodeId::Broker(b)))
                    .collect();
                nodes.push(Target::Node(NodeId::Controller));
                let mut a = Vec::new();
                let mut b = Vec::new();
                for n in nodes {
                    if rng.gen_bool(0.5) {
                        a.push(n)
                    } else {
                        b.push(n)
                    }
                }
                if a.is_empty() || b.is_empty() {
                    let (from, to) = if a.is_empty() {
                        (&mut b, &mut a)
                    } else {
                        (&mut a, &mut b)
                    };
                    to.push(from.pop().expect("at least two nodes"));
                }
                Fault::Partition { groups: [a, b] }
            }
            FaultKindName::OneWay if producers > 0 && rng.gen_bool(0.5) => {
                // Lost produce requests (or lost responses) between a producer and a leader.
                let p = Target::Node(NodeId::Producer(rng.gen_range(0..producers)));
                let l = Target::LeaderOf(tp);
                if rng.gen_bool(0.5) {
                    Fault::OneWay { from: p, to: l }
                } else {
                    Fault::OneWay { from: l, to: p }
                }
            }
            FaultKindName::OneWay => {
                let from = rng.gen_range(1..=brokers);
                let mut to = rng.gen_range(1..=brokers);
                if to == from {
                    to = to % brokers + 1;
                }
                Fault::OneWay {
                    from: Target::Node(NodeId::Broker(from)),
                    to: Target::Node(NodeId::Broker(to)),
                }
            }
            FaultKindName::MoveLeader => Fault::MoveLeader { partition: tp },
            FaultKindName::Delay | FaultKindName::Slow | FaultKindName::Reset => {
                // Between a producer and a leader (late produce requests) or two brokers
                // (late fetches and markers).
                let (from, to) = if producers > 0 && rng.gen_bool(0.5) {
                    let p = Target::Node(NodeId::Producer(rng.gen_range(0..producers)));
                    (p, Target::LeaderOf(tp))
                } else {
                    let from = rng.gen_range(1..=brokers);
                    let mut to = rng.gen_range(1..=brokers);
                    if to == from {
                        to = to % brokers + 1;
                    }
                    (
                        Target::Node(NodeId::Broker(from)),
                        Target::Node(NodeId::Broker(to)),
                    )
                };
                match kind {
                    FaultKindName::Delay => Fault::Delay { from, to },
                    FaultKindName::Slow => {
                        let lo = rng.gen_range(20..=200);
                        Fault::Slow {
                            from,
                            to,
                            latency_ms: [lo, lo * rng.gen_range(2..=10)],
                        }
                    }
                    _ => Fault::Reset {
                        between: [from, to],
                    },
                }
            }
            FaultKindName::ProducerCrash => {
                assert!(producers > 0, "producer crashes need producers (validated)");
                Fault::Crash {
                    target: Target::Node(NodeId::Producer(rng.gen_range(0..producers))),
                }
            }
            FaultKindName::ConsumerCrash | FaultKindName::ConsumerPause => {
                assert!(consumers > 0, "consumer faults need consumers (validated)");
                let target = Target::Node(NodeId::Consumer(rng.gen_range(0..consumers)));
                if kind == FaultKindName::ConsumerCrash {
                    Fault::Crash { target }
                } else {
                    Fault::Pause { target }
                }
            }
            FaultKindName::PipelineCrash | FaultKindName::PipelinePause => {
                assert!(pipelines > 0, "pipeline faults need pipelines (validated)");
                let target = Target::Node(NodeId::Pipeline(rng.gen_range(0..pipelines)));
                if kind == FaultKindName::PipelineCrash {
                    Fault::Crash { target }
                } else {
                    Fault::Pause { target }
                }
            }
        };
        out.push(ScheduledFault {
            at_ms: t,
            duration_ms: if fault.is_instant() { 0 } else { d },
            fault,
        });
        t += d;
    }
    out
}

/// Half the time a fault aims at a partition's current leader, where it hurts most.
fn pick(rng: &mut impl Rng, broker: Target, tp: &TopicPartition) -> Target {
    if rng.gen_bool(0.5) {
        Target::LeaderOf(tp.clone())
    } else {
        broker
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn targets_parse_and_print() {
        for s in [
            "controller",
            "broker-2",
            "all-brokers",
            "producer-0",
            "leader:orders-3",
            "followers:a.b-0",
        ] {
            assert_eq!(s.parse::<Target>().unwrap().to_string(), s);
        }
        assert!("broker-x".parse::<Target>().is_err());
        assert!("leader:orders".parse::<Target>().is_err());
    }

    #[test]
    fn drawn_faults_do_not_overlap_and_stay_in_window() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let kinds = [
            FaultKindName::Crash,
            FaultKindName::Split,
            FaultKindName::MoveLeader,
            FaultKindName::OneWay,
        ];
        let topics = [("orders".to_string(), 6)];
        let spec = DrawSpec {
            kinds: &kinds,
            brokers: 3,
            producers: 2,
            consumers: 0,
            pipelines: 0,
            topics: &topics,
            window_ms: (3_000, 63_000),
            interval_ms: 5_000,
            duration_ms: [1_000, 8_000],
        };
        let faults = draw(&mut rng, &spec);
        assert!(faults.len() >= 4);
        for w in faults.windows(2) {
            assert!(w[0].at_ms + w[0].duration_ms <= w[1].at_ms);
        }
        assert!(faults
            .iter()
            .all(|f| f.at_ms >= 3_000 && f.at_ms + f.duration_ms <= 63_000));
        let json = serde_json::to_string(&faults).unwrap();
        let back: Vec<ScheduledFault> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, faults);
    }

    #[test]
    fn drawn_disk_faults_hit_brokers_and_last() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let kinds = [FaultKindName::DiskFull, FaultKindName::LogDirFailure];
        let topics = [("orders".to_string(), 3)];
        let spec = DrawSpec {
            kinds: &kinds,
            brokers: 3,
            producers: 1,
            consumers: 0,
            pipelines: 0,
            topics: &topics,
            window_ms: (0, 100_000),
            interval_ms: 5_000,
            duration_ms: [1_000, 8_000],
        };
        let faults = draw(&mut rng, &spec);
        let names: Vec<String> = faults.iter().map(|f| f.fault.to_string()).collect();
        for prefix in ["disk-full ", "log-dir-failure "] {
            assert!(names.iter().any(|n| n.starts_with(prefix)), "{names:?}");
        }
        for f in &faults {
            assert!(!f.fault.is_instant() && f.duration_ms >= 1_000, "{f:?}");
            let (Fault::DiskFull { target } | Fault::LogDirFailure { target }) = &f.fault else {
                panic!("{f:?}");
            };
            assert!(
                matches!(
                    target,
                    Target::Node(NodeId::Broker(_)) | Target::LeaderOf(_)
                ),
                "{target}"
            );
        }
    }

    #[test]
    fn schedule_entries_reject_unknown_fields() {
        let ok: ScheduledFault = serde_json::from_str(
            r#"{"at_ms": 5, "duration_ms": 2, "fault": "crash", "target": "broker-1"}"#,
        )
        .unwrap();
        assert_eq!(
            ok.fault,
            Fault::Crash {
                target: Target::Node(NodeId::Broker(1))
            }
        );
        let typo = serde_json::from_str::<ScheduledFault>(
            r#"{"at_ms": 5, "fault": "crash", "traget": "broker-1"}"#,
        );
        assert!(typo.unwrap_err().to_string().contains("traget"));
        let kind = serde_json::from_str::<ScheduledFault>(
            r#"{"at_ms": 5, "fault": "explode", "target": "broker-1"}"#,
        );
        assert!(kind.unwrap_err().to_string().contains("explode"));
    }

    #[test]
    fn delete_records_entries_take_an_offset_or_the_high_watermark() {
        let parse = |json: &str| serde_json::from_str::<ScheduledFault>(json);
        let hw = parse(
            r#"{"at_ms": 5, "fault": "delete-records", "partition": "orders-0", "offset": "high-watermark"}"#,
        )
        .unwrap();
        assert!(hw.fault.is_instant());
        assert_eq!(
            hw.fault.to_string(),
            "delete records of orders-0 before high-watermark"
        );
        let at = parse(
            r#"{"at_ms": 5, "fault": "delete-records", "partition": "orders-1", "offset": 40}"#,
        )
        .unwrap();
        assert_eq!(
            at.fault,
            Fault::DeleteRecords {
                partition: TopicPartition::new("orders", 1),
                offset: RecordsBefore::Offset(40)
            }
        );
        let back: ScheduledFault =
            serde_json::from_str(&serde_json::to_string(&at).unwrap()).unwrap();
        assert_eq!(back, at);
        for bad in ["-1", "\"latest\"", "1.5"] {
            let json = format!(
                r#"{{"at_ms": 5, "fault": "delete-records", "partition": "orders-0", "offset": {bad}}}"#
            );
            let e = parse(&json).unwrap_err().to_string();
            assert!(
                e.contains("allowed: a whole number of records (at least 0) or \"high-watermark\""),
                "{e}"
            );
        }
        let topics = [("orders".to_string(), 2)];
        let targets = Targets {
            topics: &topics,
            brokers: 3,
            producers: 1,
            consumers: 1,
            pipelines: 0,
            groups: &[],
            transactional_ids: &[],
        };
        let unknown = parse(
            r#"{"at_ms": 5, "fault": "delete-records", "partition": "orders-2", "offset": 1}"#,
        )
        .unwrap();
        assert!(unknown
            .validate(&targets)
            .unwrap_err()
            .contains("partition orders-2 does not exist"));
    }
}
