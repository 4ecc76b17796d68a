//! `kafkasim explore`: FoundationDB-style whole-scenario drawing.
//!
//! Every seed draws a whole [`Scenario`] from its own `explore` stream (brokers, topics,
//! replication, producer, consumer, group and pipeline settings, and an explicit fault
//! schedule), derives its expectation from the guarantee table ([`crate::drive::guarantees`]),
//! and runs it with that same seed exactly as `kafkasim run` would. A seed that breaks
//! the table has its scenario written as an ordinary scenario file, so `run`, `repro`
//! and `shrink` work on it.
//!
//! Architecture Invariant: the drawn scenario depends only on the seed (a ChaCha8 stream
//! named `explore`, independent of the simulation's own streams), never on the machine,
//! the thread count or the order seeds finish in.

use crate::bugs::Bug;
use crate::drive::guarantees;
use crate::drive::runner;
use crate::history::Sink;
use crate::kafka::config::{Acks, IsolationLevel};
use crate::kafka::config::{AutoOffsetReset, ConsumerConfig, ProducerConfig, TopicConfig};
use crate::kafka::protocol::{NodeId, TopicPartition};
use crate::kafka::record::CompressionType;
use crate::nemesis::{Fault, ScheduledFault, Target};
use crate::report::SeedReport;
use crate::scenario::ProcessingMode;
use crate::scenario::{
    Clients, ClusterSpec, DiskSpec, Expect, NemesisSpec, NetworkSpec, PipelineInstance,
    PipelineMode, PipelineSpec, ProcessingSpec, Scenario, TopicSpec, WorkloadSpec,
};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The seed's own stream for drawing: FNV-1a of the name mixed into the seed, as the
/// simulation names its streams, so that the draw never shifts a simulation stream.
fn stream(seed: u64) -> ChaCha8Rng {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"explore" {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(seed ^ h)
}

/// The scenario name of a seed's draw.
pub fn scenario_name(seed: u64) -> String {
    format!("explore-seed-{seed}")
}

/// Where a seed's drawn scenario is written under the reports folder.
pub fn scenario_path(reports: &Path, seed: u64) -> PathBuf {
    reports.join("explore").join(format!("seed-{seed}.json"))
}

/// What a seed's scenario is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// Producers and assign-mode consumers.
    Assign,
    /// Producers and a consumer group.
    Group,
    /// Producers, read-process-write pipelines and assign-mode readers of both topics.
    Pipeline,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, weighted: &[(u32, T)]) -> T {
    let total: u32 = weighted.iter().map(|(w, _)| w).sum();
    let mut x = rng.gen_range(0..total);
    for (w, v) in weighted {
        if x < *w {
            return *v;
        }
        x -= w;
    }
    unreachable!("x < total")
}

/// `metadata.max.age.ms`: mostly short, sometimes Kafka's default.
fn metadata_max_age(rng: &mut ChaCha8Rng) -> u64 {
    if rng.gen_bool(0.2) {
        300_000
    } else {
        rng.gen_range(5_000..=30_000)
    }
}

fn draw_producer(rng: &mut ChaCha8Rng) -> ProducerConfig {
    let acks = pick(rng, &[(6, Acks::All), (2, Acks::Leader), (2, Acks::None)]);
    // Kafka refuses an explicit idempotence with acks other than all (C15): only valid
    // combinations are drawn; unset means on for acks=all, quietly off otherwise.
    let enable_idempotence = if acks == Acks::All {
        pick(rng, &[(4, None), (3, Some(true)), (3, Some(false))])
    } else {
        pick(rng, &[(1, None), (1, Some(false))])
    };
    let idempotent = enable_idempotence.unwrap_or(acks == Acks::All);
    // Kafka checks max.in.flight <= 5 whenever idempotence is on by default, before it
    // turns idempotence off for acks (`ProducerConfig.postProcessAndValidateIdempotenceConfigs`):
    // more than 5 needs an explicit enable.idempotence=false.
    let max_in_flight = if enable_idempotence == Some(false) {
        pick(rng, &[(3, 1), (1, 2), (3, 5), (1, 10)])
    } else if idempotent {
        rng.gen_range(1..=5)
    } else {
        pick(rng, &[(3, 1), (1, 2), (3, 5)])
    };
    let linger_ms = pick(rng, &[(2, 0), (4, 5), (2, 20), (1, 100)]);
    let request_timeout_ms = rng.gen_range(2_000..=10_000);
    ProducerConfig {
        acks,
        enable_idempotence,
        compression_type: if rng.gen_bool(0.2) {
            CompressionType::Gzip
        } else {
            CompressionType::None
        },
        linger_ms,
        request_timeout_ms,
        delivery_timeout_ms: linger_ms + request_timeout_ms + rng.gen_range(0..=20_000),
        max_in_flight_requests_per_connection: max_in_flight,
        metadata_max_age_ms: metadata_max_age(rng),
        ..ProducerConfig::default()
    }
}

fn draw_group_consumer(rng: &mut ChaCha8Rng, group: &str) -> ConsumerConfig {
    let session_timeout_ms = rng.gen_range(6_000..=15_000);
    ConsumerConfig {
        auto_offset_reset: AutoOffsetReset::Earliest,
        group_id: Some(group.to_string()),
        session_timeout_ms,
        heartbeat_interval_ms: session_timeout_ms / rng.gen_range(3..=5),
        request_timeout_ms: rng.gen_range(3_000..=10_000),
        max_poll_records: pick(rng, &[(1, 10), (1, 50), (1, 200), (1, 500)]),
        max_poll_interval_ms: pick(rng, &[(3, 300_000), (1, 30_000)]),
        metadata_max_age_ms: metadata_max_age(rng),
        partition_assignment_strategy: vec![pick(
            rng,
            &[
                (1, crate::kafka::config::Assignor::Range),
                (1, crate::kafka::config::Assignor::RoundRobin),
            ],
        )],
        ..ConsumerConfig::default()
    }
}

/// Draws seed `seed`'s scenario, with its expectation from the guarantee table.
pub fn draw(seed: u64) -> Scenario {
    let rng = &mut stream(seed);
    let brokers: u32 = pick(
        rng,
        &[
            (1, 1),
            (2, 2),
            (8, 3),
            (3, 4),
            (2, 5),
            (1, 6),
            (1, 7),
            (1, 9),
        ],
    );
    let shape = pick(
        rng,
        &[(4, Shape::Assign), (3, Shape::Group), (3, Shape::Pipeline)],
    );
    let max_rf = brokers.min(3);
    let names: Vec<&str> = match shape {
        Shape::Pipeline => vec!["in", "out"],
        _ if rng.gen_bool(0.3) => vec!["t0", "t1"],
        _ => vec!["t0"],
    };
    let mut topics = Vec::new();
    for name in names {
        let replication_factor = pick(rng, &[(1, 1), (1, max_rf.min(2)), (4, max_rf)]);
        // A topic-level override now and then (`kafka-topics --config`); the broker
        // caps `min.insync.replicas` at the replica count (KAFKA-15583).
        let config = TopicConfig {
            min_insync_replicas: rng
                .gen_bool(0.2)
                .then(|| rng.gen_range(1..=replication_factor)),
            unclean_leader_election_enable: rng.gen_bool(0.05).then_some(true),
            ..TopicConfig::default()
        };
        topics.push(TopicSpec {
            name: name.to_string(),
            partitions: 0,
            replication_factor,
            config,
        });
    }
    for t in &mut topics {
        t.partitions = rng.gen_range(1..=6);
    }
    let min_rf = topics
        .iter()
        .map(|t| t.replication_factor)
        .min()
        .expect("a topic");
    let mut cluster = ClusterSpec {
        brokers,
        config: Default::default(),
    };
    {
        let c = &mut cluster.config;
        c.min_insync_replicas = rng.gen_range(1..=min_rf);
        c.unclean_leader_election_enable = rng.gen_bool(0.15);
        c.replica_lag_time_max_ms = pick(rng, &[(1, 30_000), (3, 2_000), (3, 5_000), (1, 10_000)]);
        c.broker_session_timeout_ms = pick(rng, &[(3, 9_000), (1, 6_000), (1, 12_000)]);
        // Now and then a cluster that fsyncs every append (power losses then lose
        // nothing acknowledged).
        if rng.gen_bool(0.3) {
            c.log_flush_interval_messages = 1;
        }
        c.offsets_topic_num_partitions = rng.gen_range(1..=8);
        c.transaction_state_log_num_partitions = rng.gen_range(1..=8);
        // Kafka cannot create an internal topic with more replicas than brokers (a
        // scenario asking for it is refused), so a small cluster sets them lower, as its
        // operator would; so is their min ISR here, or a one-broker cluster could never
        // write a transaction's state.
        c.offsets_topic_replication_factor = c.offsets_topic_replication_factor.min(brokers);
        c.transaction_state_log_replication_factor =
            c.transaction_state_log_replication_factor.min(brokers);
        c.transaction_state_log_min_isr = c.transaction_state_log_min_isr.min(brokers);
        c.group_initial_rebalance_delay_ms = pick(rng, &[(1, 0), (1, 500), (2, 3_000)]);
        c.transaction_version = pick(rng, &[(6, 2), (2, 1), (1, 0)]);
        // Kafka 4.0 formats a cluster without eligible leader replicas, 4.1 with them.
        c.eligible_leader_replicas_version = pick(rng, &[(2, 0), (1, 1)]);
    }
    let producers = Clients {
        count: if shape == Shape::Pipeline {
            rng.gen_range(1..=2)
        } else {
            rng.gen_range(1..=3)
        },
        config: draw_producer(rng),
        ..Clients::default()
    };
    let mut consumers: Clients<ConsumerConfig> = Clients::default();
    let mut processing = ProcessingSpec::default();
    let mut pipelines = None;
    match shape {
        Shape::Assign | Shape::Pipeline => {
            consumers.count = rng.gen_range(1..=2);
            consumers.config = ConsumerConfig {
                auto_offset_reset: AutoOffsetReset::Earliest,
                isolation_level: if shape == Shape::Pipeline && rng.gen_bool(0.7) {
                    IsolationLevel::ReadCommitted
                } else {
                    IsolationLevel::ReadUncommitted
                },
                request_timeout_ms: rng.gen_range(3_000..=10_000),
                metadata_max_age_ms: metadata_max_age(rng),
                ..ConsumerConfig::default()
            };
        }
        Shape::Group => {
            consumers.count = rng.gen_range(1..=4);
            let mode = pick(
                rng,
                &[
                    (1, ProcessingMode::AutoCommit),
                    (2, ProcessingMode::AtLeastOnce),
                    (1, ProcessingMode::AtMostOnce),
                ],
            );
            let mut config = draw_group_consumer(rng, "g");
            config.enable_auto_commit = Some(mode == ProcessingMode::AutoCommit);
            if mode == ProcessingMode::AutoCommit {
                config.auto_commit_interval_ms = pick(rng, &[(1, 1_000), (1, 5_000)]);
            }
            if rng.gen_bool(0.4) {
                // KIP-345 static members (the index is appended per consumer).
                config.group_instance_id = Some("m".into());
            }
            consumers.config = config;
            processing = ProcessingSpec {
                mode,
                time_ms: pick(rng, &[(3, [1, 5]), (1, [1, 20])]),
                sink: pick(rng, &[(1, Sink::DedupStore), (1, Sink::ExternalApi)]),
                slow: None,
            };
        }
    }
    if shape == Shape::Pipeline {
        let mode = pick(
            rng,
            &[
                (7, PipelineMode::ExactlyOnce),
                (3, PipelineMode::AtLeastOnce),
            ],
        );
        let count = rng.gen_range(1..=3);
        let mut consumer = draw_group_consumer(rng, "etl");
        consumer.enable_auto_commit = Some(false);
        consumer.isolation_level = if rng.gen_bool(0.8) {
            IsolationLevel::ReadCommitted
        } else {
            IsolationLevel::ReadUncommitted
        };
        let request_timeout_ms = rng.gen_range(3_000..=10_000);
        let mut producer = ProducerConfig {
            request_timeout_ms,
            delivery_timeout_ms: request_timeout_ms + 5 + rng.gen_range(0..=20_000),
            metadata_max_age_ms: metadata_max_age(rng),
            ..ProducerConfig::default()
        };
        let mut instances = Vec::new();
        if mode == PipelineMode::ExactlyOnce {
            producer.transactional_id = Some("etl-txn".into());
            producer.transaction_timeout_ms = rng.gen_range(5_000..=20_000);
            if count >= 2 && rng.gen_bool(0.1) {
                // A zombie and its successor: two instances share a transactional.id
                // (C26).
                instances = (0..count)
                    .map(|i| PipelineInstance {
                        transactional_id: Some(format!("etl-txn-{}", i.min(1))),
                        start_ms: 0,
                    })
                    .collect();
            }
        }
        pipelines = Some(PipelineSpec {
            count: if instances.is_empty() { count } else { 1 },
            instances,
            input: "in".into(),
            output: "out".into(),
            mode,
            consumer,
            producer,
            time_ms: pick(rng, &[(3, [1, 5]), (1, [1, 20])]),
            sink: if rng.gen_bool(0.2) {
                Some(Sink::ExternalApi)
            } else {
                None
            },
        });
    }
    let network = NetworkSpec {
        latency_ms: pick(rng, &[(4, [1, 3]), (1, [1, 20]), (1, [5, 50])]),
    };
    let rate = f64::from(rng.gen_range(10..=80u32));
    let cap = rate_cap(
        producers.count,
        &topics,
        &consumers,
        &processing,
        pipelines.as_ref(),
        network.latency_ms,
    );
    let workload = WorkloadSpec {
        rate_per_sec: rate.min(cap).max(2.0).floor(),
        keys: pick(rng, &[(1, 0), (2, 4), (2, 16)]),
        start_ms: 3_000,
        duration_ms: rng.gen_range(8_000..=20_000),
        quiet_ms: 0,
        headers: pick(rng, &[(4, 0), (1, 2)]),
        resend_unacked_after_crash: true,
    };
    let mut sc = Scenario {
        schema: None,
        name: scenario_name(seed),
        description: String::new(),
        claims: Vec::new(),
        cluster,
        topics,
        producers,
        consumers,
        processing,
        pipelines,
        workload,
        nemesis: NemesisSpec::default(),
        network,
        disk: DiskSpec::default(),
        clocks: Default::default(),
        bugs: Vec::new(),
        expect: Expect::default(),
        path: PathBuf::new(),
    };
    sc.nemesis.schedule = draw_faults(rng, &sc);
    // The quiet period covers the liveness bound, so the liveness rule always applies.
    sc.workload.quiet_ms = guarantees::liveness_bound_ms(&sc) + rng.gen_range(0..=10_000);
    sc.expect = guarantees::expect(&sc);
    sc.description = describe(seed, &sc, shape);
    sc
}

/// The highest rate per producer that the group or the pipelines process with room to
/// spare (a third of their estimated capacity), so that a drawn run ends caught up: a
/// backlog at the end is a drawing mistake, not a liveness failure.
fn rate_cap(
    producers: u32,
    topics: &[TopicSpec],
    consumers: &Clients<ConsumerConfig>,
    processing: &ProcessingSpec,
    pipelines: Option<&PipelineSpec>,
    latency_ms: [u64; 2],
) -> f64 {
    let mean = |t: [u64; 2]| (t[0] + t[1]) as f64 / 2.0;
    let producers = f64::from(producers.max(1));
    let input_partitions = |skip: Option<&str>| -> u32 {
        topics
            .iter()
            .filter(|t| Some(t.name.as_str()) != skip)
            .map(|t| t.partitions)
            .sum()
    };
    if let Some(p) = pipelines {
        // Instances sharing a transactional.id fence each other: count ids.
        let mut ids: Vec<Option<String>> = (0..p.instance_count())
            .map(|i| p.transactional_id(i))
            .collect();
        ids.dedup();
        let workers = (ids.len() as u32).min(input_partitions(Some(&p.output)));
        // A transaction costs a few round trips (AddPartitions/verification,
        // AddOffsets, TxnOffsetCommit, EndTxn, markers): 30 one-way trips is generous.
        let commit_ms = 20.0 + 30.0 * latency_ms[1] as f64;
        let batch = p.consumer.max_poll_records as f64;
        let per_instance = batch * 1000.0 / (batch * mean(p.time_ms) + commit_ms);
        return per_instance * f64::from(workers) / 3.0 / producers;
    }
    if consumers.config.group_id.is_some() {
        let workers = consumers.count.min(input_partitions(None));
        let commit_ms = 10.0 * latency_ms[1] as f64;
        let batch = consumers.config.max_poll_records as f64;
        let per_member = batch * 1000.0 / (batch * mean(processing.time_ms) + commit_ms);
        return per_member * f64::from(workers) / 3.0 / producers;
    }
    f64::INFINITY
}

fn describe(seed: u64, sc: &Scenario, shape: Shape) -> String {
    let p = &sc.producers.config;
    let acks = match p.acks {
        Acks::None => "0",
        Acks::Leader => "1",
        Acks::All => "all",
    };
    let what = match shape {
        Shape::Assign => format!("{} assign-mode consumer(s)", sc.consumers.count),
        Shape::Group => format!(
            "a group of {} ({:?}, {:?})",
            sc.consumers.count, sc.processing.mode, sc.processing.sink
        ),
        Shape::Pipeline => {
            let pl = sc.pipelines.as_ref().expect("a pipeline shape");
            format!(
                "{} {:?} pipeline instance(s), readers {:?}",
                pl.instance_count(),
                pl.mode,
                sc.consumers.config.isolation_level
            )
        }
    };
    format!(
        "Drawn by `kafkasim explore` from seed {seed}: {} broker(s), min.insync.replicas \
         {}, unclean {}, {} producer(s) acks={acks} idempotence {} in-flight {}, {what}, {} \
         fault(s); the expectation comes from the guarantee table (`kafkasim explore \
         --rules`).",
        sc.cluster.brokers,
        sc.cluster.config.min_insync_replicas,
        sc.cluster.config.unclean_leader_election_enable,
        sc.producers.count,
        p.idempotence(),
        p.max_in_flight_requests_per_connection,
        sc.nemesis.schedule.len()
    )
}

/// The fault kinds explore draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Crash,
    Pause,
    Isolate,
    Split,
    OneWay,
    /// Two to four leader moves within a few hundred ms.
    MoveBurst,
    /// A broker paused for just about `replica.lag.time.max.ms` or
    /// `broker.session.timeout.ms`.
    PauseAroundLag,
    /// A group member or pipeline instance paused for just about its
    /// `session.timeout.ms`.
    PauseAroundSession,
    ClientCrash,
    ClientPause,
    /// A broker, a partition's leader or followers, or every broker loses power.
    PowerLoss,
    /// A bit flips in a stored batch of a broker, a partition's leader or followers.
    Corrupt,
    /// A link (a client and a leader or transaction coordinator, or two brokers) holds
    /// what it carries, then delivers it in order.
    Delay,
    /// A link takes a latency range of its own.
    Slow,
    /// Every connection between a client and a broker, or two brokers, resets.
    Reset,
    /// A producer application's process dies and restarts.
    ProducerCrash,
    /// A node's wall clock steps (an NTP step), and steps back when the fault ends.
    Clock,
    /// A broker's disk fills up: it halts at its next write, restarts at the end.
    DiskFull,
    /// A broker's disk fails: it halts at once, its dirty pages lost.
    LogDirFailure,
}

/// An explicit fault schedule inside the workload window: faults one after another
/// (never overlapping), the gap and the mix drawn per seed.
fn draw_faults(rng: &mut ChaCha8Rng, sc: &Scenario) -> Vec<ScheduledFault> {
    let mut out = Vec::new();
    if rng.gen_bool(0.1) {
        return out; // calm
    }
    let group_members = sc.consumers.config.group_id.is_some();
    let pipelines = sc
        .pipelines
        .as_ref()
        .map_or(0, PipelineSpec::instance_count);
    let mut kinds = vec![
        (3, Kind::Crash),
        (3, Kind::Pause),
        (2, Kind::Isolate),
        (1, Kind::Split),
        (2, Kind::OneWay),
        (2, Kind::MoveBurst),
        (2, Kind::PauseAroundLag),
        (1, Kind::PowerLoss),
    ];
    // Not with pipelines: the transaction checks read the final logs' batches and
    // markers, and how a corrupt one should count there is not worked out.
    if pipelines == 0 {
        kinds.push((1, Kind::Corrupt));
    }
    kinds.extend([
        (1, Kind::Delay),
        (1, Kind::Slow),
        (1, Kind::Reset),
        (1, Kind::Clock),
        (1, Kind::DiskFull),
        (1, Kind::LogDirFailure),
    ]);
    if sc.producers.count > 0 {
        kinds.push((1, Kind::ProducerCrash));
    }
    if group_members || pipelines > 0 {
        kinds.extend([
            (2, Kind::PauseAroundSession),
            (2, Kind::ClientCrash),
            (1, Kind::ClientPause),
        ]);
    }
    // Keep only some kinds for this seed: a mix, not always everything.
    kinds.shuffle(rng);
    kinds.truncate(rng.gen_range(1..=kinds.len()));
    let gap_ms: u64 = rng.gen_range(1_000..=6_000);
    let max_duration_ms: u64 = pick(rng, &[(2, 3_000), (2, 8_000), (1, 15_000)]);
    let (start, end) = (sc.workload.start_ms, sc.workload_end_ms());
    let topics = sc.topics_and_partitions();
    let brokers = sc.cluster.brokers;
    let mut t = start;
    for _ in 0..64 {
        t += rng.gen_range(gap_ms / 2..=gap_ms + gap_ms / 2);
        if t >= end {
            break;
        }
        let kind = pick(rng, &kinds);
        let (topic, parts) = &topics[rng.gen_range(0..topics.len())];
        let tp = TopicPartition::new(topic, rng.gen_range(0..*parts));
        let broker_target = |rng: &mut ChaCha8Rng| -> Target {
            let mut choices = vec![
                (3, Target::LeaderOf(tp.clone())),
                (2, Target::Node(NodeId::Broker(rng.gen_range(1..=brokers)))),
                (1, Target::FollowersOf(tp.clone())),
            ];
            for g in sc.groups() {
                choices.push((1, Target::CoordinatorOf(g)));
            }
            for id in sc.transactional_ids() {
                choices.push((1, Target::TxnCoordinatorOf(id)));
            }
            let total: u32 = choices.iter().map(|(w, _)| w).sum();
            let mut x = rng.gen_range(0..total);
            for (w, c) in choices {
                if x < w {
                    return c;
                }
                x -= w;
            }
            unreachable!("x < total")
        };
        let client = |rng: &mut ChaCha8Rng| -> Target {
            let consumers = if group_members { sc.consumers.count } else { 0 };
            let i = rng.gen_range(0..consumers + pipelines);
            if i < consumers {
                Target::Node(NodeId::Consumer(i))
            } else {
                Target::Node(NodeId::Pipeline(i - consumers))
            }
        };
        // A link for delay, slow and reset: a client and the broker it talks to (a
        // partition's leader, or a pipeline's transaction coordinator), or two brokers.
        let link = |rng: &mut ChaCha8Rng| -> (Target, Target) {
            let mut ends = Vec::new();
            if sc.producers.count > 0 {
                let p = rng.gen_range(0..sc.producers.count);
                ends.push((
                    Target::Node(NodeId::Producer(p)),
                    Target::LeaderOf(tp.clone()),
                ));
            }
            if let Some(spec) = sc.pipelines.as_ref().filter(|_| pipelines > 0) {
                let i = rng.gen_range(0..pipelines);
                let server = match spec.transactional_id(i) {
                    Some(id) if rng.gen_bool(0.5) => Target::TxnCoordinatorOf(id),
                    _ => Target::LeaderOf(tp.clone()),
                };
                ends.push((Target::Node(NodeId::Pipeline(i)), server));
            }
            if brokers >= 2 {
                let from = rng.gen_range(1..=brokers);
                let to = (from + rng.gen_range(1..brokers) - 1) % brokers + 1;
                ends.push((
                    Target::Node(NodeId::Broker(from)),
                    Target::Node(NodeId::Broker(to)),
                ));
            }
            if sc.consumers.count > 0 {
                let c = rng.gen_range(0..sc.consumers.count);
                ends.push((
                    Target::Node(NodeId::Consumer(c)),
                    Target::LeaderOf(tp.clone()),
                ));
            }
            if ends.is_empty() {
                ends.push((
                    Target::Node(NodeId::Broker(1)),
                    Target::Node(NodeId::Controller),
                ));
            }
            let (a, b) = ends.swap_remove(rng.gen_range(0..ends.len()));
            if rng.gen_bool(0.5) {
                (a, b)
            } else {
                (b, a)
            }
        };
        let mut duration = rng.gen_range(300..=max_duration_ms);
        let fault = match kind {
            Kind::Delay => {
                let (from, to) = link(rng);
                Fault::Delay { from, to }
            }
            Kind::Slow => {
                let (from, to) = link(rng);
                let latency_ms = pick(rng, &[(2, [20, 200]), (1, [100, 1_500])]);
                Fault::Slow {
                    from,
                    to,
                    latency_ms,
                }
            }
            Kind::Reset => {
                let (a, b) = link(rng);
                duration = 0;
                Fault::Reset { between: [a, b] }
            }
            Kind::Clock => {
                let target = match rng.gen_range(0..3) {
                    0 if sc.producers.count > 0 => {
                        Target::Node(NodeId::Producer(rng.gen_range(0..sc.producers.count)))
                    }
                    1 if pipelines > 0 => {
                        Target::Node(NodeId::Pipeline(rng.gen_range(0..pipelines)))
                    }
                    _ => broker_target(rng),
                };
                let offset_ms = pick(rng, &[(2, 2_000), (2, 30_000), (1, 600_000)]);
                Fault::Clock {
                    target,
                    offset_ms: if rng.gen_bool(0.5) {
                        offset_ms
                    } else {
                        -offset_ms
                    },
                }
            }
            Kind::ProducerCrash => Fault::Crash {
                target: Target::Node(NodeId::Producer(rng.gen_range(0..sc.producers.count))),
            },
            Kind::Crash => Fault::Crash {
                target: broker_target(rng),
            },
            Kind::Pause => Fault::Pause {
                target: broker_target(rng),
            },
            Kind::PowerLoss => Fault::PowerLoss {
                target: if rng.gen_bool(0.25) {
                    Target::AllBrokers
                } else {
                    broker_target(rng)
                },
            },
            Kind::Corrupt => Fault::Corrupt {
                target: broker_target(rng),
            },
            Kind::DiskFull => Fault::DiskFull {
                target: broker_target(rng),
            },
            Kind::LogDirFailure => Fault::LogDirFailure {
                target: broker_target(rng),
            },
            Kind::Isolate => {
                let target = match rng.gen_range(0..6) {
                    0 => Target::Node(NodeId::Controller),
                    1 if sc.producers.count > 0 => {
                        Target::Node(NodeId::Producer(rng.gen_range(0..sc.producers.count)))
                    }
                    2 => Target::Node(NodeId::Consumer(rng.gen_range(0..sc.consumers.count))),
                    3 if pipelines > 0 => {
                        Target::Node(NodeId::Pipeline(rng.gen_range(0..pipelines)))
                    }
                    _ => broker_target(rng),
                };
                Fault::Isolate { target }
            }
            Kind::Split => {
                let mut nodes: Vec<Target> = (1..=brokers)
                    .map(|b| Target::Node(NodeId::Broker(b)))
                    .collect();
                nodes.push(Target::Node(NodeId::Controller));
                nodes.shuffle(rng);
                let cut = rng.gen_range(1..nodes.len());
                let b = nodes.split_off(cut);
                Fault::Partition { groups: [nodes, b] }
            }
            Kind::OneWay if brokers >= 2 && rng.gen_bool(0.5) => {
                let from = rng.gen_range(1..=brokers);
                let to = (from + rng.gen_range(1..brokers) - 1) % brokers + 1;
                Fault::OneWay {
                    from: Target::Node(NodeId::Broker(from)),
                    to: Target::Node(NodeId::Broker(to)),
                }
            }
            Kind::OneWay => {
                let p = Target::Node(NodeId::Producer(rng.gen_range(0..sc.producers.count)));
                let l = Target::LeaderOf(tp.clone());
                if rng.gen_bool(0.5) {
                    Fault::OneWay { from: p, to: l }
                } else {
                    Fault::OneWay { from: l, to: p }
                }
            }
            Kind::MoveBurst => {
                let moves = rng.gen_range(2..=4);
                for _ in 0..moves {
                    let (topic, parts) = &topics[rng.gen_range(0..topics.len())];
                    let partition = if rng.gen_bool(0.6) {
                        tp.clone()
                    } else {
                        TopicPartition::new(topic, rng.gen_range(0..*parts))
                    };
                    out.push(ScheduledFault {
                        at_ms: t,
                        duration_ms: 0,
                        fault: Fault::MoveLeader { partition },
                    });
                    t += rng.gen_range(20..=300);
                }
                continue;
            }
            Kind::PauseAroundLag => {
                let c = &sc.cluster.config;
                let around = if rng.gen_bool(0.5) {
                    c.replica_lag_time_max_ms
                } else {
                    c.broker_session_timeout_ms
                };
                duration = around.saturating_sub(300) + rng.gen_range(0..=600);
                Fault::Pause {
                    target: broker_target(rng),
                }
            }
            Kind::PauseAroundSession => {
                let target = client(rng);
                let session = match target {
                    Target::Node(NodeId::Consumer(_)) => sc.consumers.config.session_timeout_ms,
                    _ => {
                        sc.pipelines
                            .as_ref()
                            .expect("pipelines")
                            .consumer
                            .session_timeout_ms
                    }
                };
                duration = session.saturating_sub(300) + rng.gen_range(0..=600);
                Fault::Pause { target }
            }
            Kind::ClientCrash => Fault::Crash {
                target: client(rng),
            },
            Kind::ClientPause => Fault::Pause {
                target: client(rng),
            },
        };
        if t + duration > end {
            // Faults heal by the end of the workload; a pause whose length matters is
            // not cut short, it is left out.
            if matches!(kind, Kind::PauseAroundLag | Kind::PauseAroundSession) {
                break;
            }
            duration = end - t;
        }
        out.push(ScheduledFault {
            at_ms: t,
            duration_ms: duration,
            fault,
        });
        t += duration;
    }
    out
}

/// The drawn scenario as a scenario file's text.
pub fn to_json(sc: &Scenario) -> String {
    let mut json = serde_json::to_string_pretty(sc).expect("scenarios serialize");
    json.push('\n');
    json
}

/// Loads the drawn scenario back through the scenario loader, as `run` would read its
/// file: a drawing mistake is an error here, before anything runs.
pub fn reload(sc: &Scenario, path: &Path) -> Result<Scenario, crate::scenario::ScenarioError> {
    Scenario::parse(&path.display().to_string(), &to_json(sc), path)
}

/// One seed's outcome.
#[derive(Debug)]
pub struct SeedOutcome {
    /// The seed.
    pub seed: u64,
    /// Its drawn scenario (with `path` set to where it is written on violation).
    pub scenario: Scenario,
    /// The run's report; `None` when the draw did not validate.
    pub report: Option<SeedReport>,
    /// Why the seed violates: broken rules' kinds, `panic: ...`, or `invalid draw: ...`.
    pub violations: Vec<String>,
}

/// Explore's options.
pub struct Options {
    /// Seeds to draw and run.
    pub seeds: Vec<u64>,
    /// Worker threads.
    pub jobs: usize,
    /// Where violating scenarios (`<reports>/explore/seed-N.json`) and their run
    /// reports go.
    pub reports: PathBuf,
    /// Bug switches turned on in every run.
    pub bugs: Vec<Bug>,
    /// Write every drawn scenario, not only violating ones.
    pub write_all: bool,
}

/// Draws, validates and runs one seed; writes its scenario file and run report when it
/// violates the table (or `write_all`). A panic in the simulation or the checker is a
/// violation, never a crash of explore.
pub fn run_one(seed: u64, opts: &Options) -> SeedOutcome {
    let path = scenario_path(&opts.reports, seed);
    let drawn = std::panic::catch_unwind(|| draw(seed));
    let mut scenario = match drawn {
        Ok(s) => s,
        Err(payload) => {
            return SeedOutcome {
                seed,
                scenario: placeholder(seed),
                report: None,
                violations: vec![format!("panic while drawing: {}", panic_text(&*payload))],
            }
        }
    };
    scenario.path = path.clone();
    let loaded = match reload(&scenario, &path) {
        Ok(s) => s,
        Err(e) => {
            let _ = write_scenario(&path, &scenario);
            return SeedOutcome {
                seed,
                scenario,
                report: None,
                violations: vec![format!("invalid draw: {e}")],
            };
        }
    };
    let bugs = opts.bugs.clone();
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runner::run_seed(&loaded, seed, &bugs)
    }));
    let (report, history) = match ran {
        Ok((report, out)) => (report, out.map(|(o, _)| (o.history, o.snapshot))),
        Err(payload) => {
            return SeedOutcome {
                seed,
                scenario,
                report: None,
                violations: vec![format!(
                    "panic outside the simulation: {}",
                    panic_text(&*payload)
                )],
            }
        }
    };
    let mut violations = report.violated.clone();
    if let Some(p) = &report.panic {
        violations = vec![format!("panic: {}", first_line(p))];
    }
    if !violations.is_empty() || opts.write_all {
        let _ = write_scenario(&path, &scenario);
    }
    if !violations.is_empty() {
        let _ = runner::write_report(
            &opts.reports,
            &report,
            history.as_ref().map(|(h, s)| (h, s)),
        );
    }
    SeedOutcome {
        seed,
        scenario,
        report: Some(report),
        violations,
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "non-string panic".into())
}

/// A stand-in when drawing itself panicked (never expected: a bug in explore).
fn placeholder(seed: u64) -> Scenario {
    Scenario {
        schema: None,
        name: scenario_name(seed),
        description: String::new(),
        claims: Vec::new(),
        cluster: ClusterSpec {
            brokers: 1,
            config: Default::default(),
        },
        topics: Vec::new(),
        producers: Clients::default(),
        consumers: Clients::default(),
        processing: ProcessingSpec::default(),
        pipelines: None,
        workload: WorkloadSpec {
            rate_per_sec: 1.0,
            keys: 0,
            start_ms: 0,
            duration_ms: 1,
            quiet_ms: 0,
            headers: 0,
            resend_unacked_after_crash: true,
        },
        nemesis: NemesisSpec::default(),
        network: NetworkSpec::default(),
        disk: DiskSpec::default(),
        bugs: Vec::new(),
        clocks: Default::default(),
        expect: Expect::default(),
        path: PathBuf::new(),
    }
}

fn write_scenario(path: &Path, sc: &Scenario) -> std::io::Result<()> {
    crate::drive::shrink::write_scenario(path, sc)
}

/// Runs every seed on `opts.jobs` threads, calling `done` as each finishes (in finishing
/// order); returns the outcomes in seed order.
pub fn explore(opts: &Options, done: &(dyn Fn(&SeedOutcome) + Sync)) -> Vec<SeedOutcome> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(opts.seeds.len()));
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = opts.seeds.get(i) else {
                    break;
                };
                let outcome = run_one(seed, opts);
                done(&outcome);
                results.lock().expect("no poisoned locks").push(outcome);
            });
        }
    });
    let mut results = results.into_inner().expect("no poisoned locks");
    results.sort_by_key(|o| o.seed);
    results
}

/// The command that reruns a violating seed.
pub fn repro_command(o: &SeedOutcome, bugs: &[Bug]) -> String {
    let names: Vec<String> = bugs.iter().map(|b| b.name().to_string()).collect();
    crate::report::repro_command(&o.scenario.path, o.seed, &names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_scenario() {
        for seed in [0, 1, 7, 12_345, u64::MAX] {
            assert_eq!(to_json(&draw(seed)), to_json(&draw(seed)), "seed {seed}");
        }
        assert_ne!(to_json(&draw(1)), to_json(&draw(2)));
    }

    #[test]
    fn drawn_scenarios_always_validate_and_round_trip() {
        let path = Path::new("reports/explore/seed.json");
        let mut shapes = [0u32; 3];
        let mut faults = 0;
        for seed in 0..2_000 {
            let sc = draw(seed);
            let back = reload(&sc, path).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert_eq!(to_json(&back), to_json(&sc), "seed {seed} round-trips");
            // The derived expectation survives the loader.
            assert_eq!(back.expect.tolerate, guarantees::expect(&back).tolerate);
            assert!(
                guarantees::Facts::of(&back).quiet_covers_timeouts,
                "seed {seed}"
            );
            match (&sc.pipelines, &sc.consumers.config.group_id) {
                (Some(_), _) => shapes[2] += 1,
                (None, Some(_)) => shapes[1] += 1,
                (None, None) => shapes[0] += 1,
            }
            faults += sc.nemesis.schedule.len();
        }
        assert!(shapes.iter().all(|n| *n > 300), "{shapes:?}");
        assert!(faults > 4_000, "{faults} faults in 2000 draws");
    }

    #[test]
    fn drawn_idempotence_is_only_asked_for_with_acks_all() {
        for seed in 0..500 {
            let p = draw(seed).producers.config;
            if p.enable_idempotence == Some(true) {
                assert_eq!(p.acks, Acks::All, "seed {seed}");
            }
            assert!(p.validate().is_ok(), "seed {seed}");
        }
    }
}
