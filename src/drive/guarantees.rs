//! The guarantee table: which anomaly kinds Kafka rules out for a scenario's settings.
//!
//! Each rule names the settings it needs (a condition over [`Facts`], read from the
//! scenario), the anomaly kinds it forbids and the Kafka setting, class or KIP it rests
//! on. [`expect`] turns a scenario into an ordinary `expect` block: the kinds some rule
//! forbids stay invariants, every other kind is tolerated, no kind is required and no
//! client event is forbidden. `kafkasim explore` judges every drawn scenario with it;
//! `kafkasim explore --rules` prints [`table`].
//!
//! The table is deliberately what Kafka promises, not what kafkasim happens to do: a
//! seed that breaks a rule is either a model bug or a rule that promises too much (then
//! the rule is fixed, citing Kafka).

use crate::check::kinds::{ANOMALY_KINDS, EVENT_KINDS};
use crate::history::{History, Op, Sink};
use crate::kafka::config::{Acks, IsolationLevel};
use crate::nemesis::Fault;
use crate::scenario::ProcessingMode;
use crate::scenario::{Expect, PipelineMode, Scenario};
use std::collections::BTreeMap;

/// What the rules look at, read from a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The workload producers' `acks` (`None` without producers).
    pub acks: Option<Acks>,
    /// Their idempotence after Kafka's defaults (`ProducerConfig::idempotence`).
    pub idempotence: bool,
    /// Their `max.in.flight.requests.per.connection`.
    pub max_in_flight: u32,
    /// `min.insync.replicas`.
    pub min_insync_replicas: u32,
    /// `unclean.leader.election.enable`.
    pub unclean: bool,
    /// The group consumers' processing mode and sink, with a group.
    pub group: Option<(ProcessingMode, Sink)>,
    /// The pipelines' mode, with pipelines.
    pub pipeline: Option<PipelineMode>,
    /// Every reader (the scenario's consumers) uses `isolation.level=read_committed`.
    pub readers_read_committed: bool,
    /// Some fault hits a broker or the controller (not only clients).
    pub broker_faults: bool,
    /// The quiet period covers [`liveness_bound_ms`].
    pub quiet_covers_timeouts: bool,
    /// Pipelines re-send outputs of keyless records (after an abort, a rebalance or a
    /// crash), each time to the partition the partitioner picks then.
    pub keyless_resends: bool,
    /// Two live pipeline instances share a `transactional.id`: each one's
    /// `initTransactions` fences the other, over and over.
    pub shared_transactional_id: bool,
    /// Brokers lose power (or a disk fails, `log-dir-failure`, which loses the dirty page
    /// cache too) while some log the scenario writes is not flushed on every append
    /// (`flush.messages` > 1, Kafka's default): acknowledged records below the high
    /// watermark can vanish from every replica.
    pub unflushed_power_loss: bool,
    /// Bits flip in stored batches (`corrupt`): recovery cuts an in-sync replica's log
    /// at a corrupt batch above its recovery point, as a power loss would, flushed or
    /// not; a corrupt batch below it is served, and stops followers and consumers for
    /// good.
    pub corrupt: bool,
    /// Exactly-once pipelines under transaction version 1 with a cut or slow link: a
    /// request held on an old connection can arrive after its retry on a new one, and
    /// a late `EndTxn` ends the next transaction, which shares its epoch (KAFKA-17754).
    pub late_end_txn: bool,
    /// Groups or at-least-once pipelines commit with `OffsetCommit` under a cut or slow
    /// link: a commit whose request timed out is retried on a new connection while the
    /// first request may still arrive, later, and overwrite newer offsets.
    pub late_commits: bool,
    /// Group members are static (KIP-345 `group.instance.id`) and brokers fail: a
    /// coordinator that moves before it stored a rebalance loads the older members, and
    /// a static member rejoining under its newer member id is fenced for good.
    pub static_members_fenced_on_failover: bool,
    /// Producer applications crash and restart (a new producer id) and send again what
    /// their dead process had not seen acknowledged.
    pub producer_resends: bool,
}

impl Facts {
    /// The facts of a scenario.
    pub fn of(sc: &Scenario) -> Facts {
        let p = &sc.producers.config;
        let has_producers = sc.producers.count > 0;
        let group = sc
            .consumers
            .config
            .group_id
            .as_ref()
            .filter(|_| sc.consumers.count > 0)
            .map(|_| (sc.processing.mode, sc.processing.sink));
        let broker_faults = !sc.nemesis.faults.is_empty()
            && sc.nemesis.faults.iter().any(|k| {
                !matches!(
                    k,
                    crate::nemesis::FaultKindName::ProducerCrash
                        | crate::nemesis::FaultKindName::ConsumerCrash
                        | crate::nemesis::FaultKindName::ConsumerPause
                        | crate::nemesis::FaultKindName::PipelineCrash
                        | crate::nemesis::FaultKindName::PipelinePause
                )
            })
            || sc.nemesis.schedule.iter().any(|f| hits_brokers(&f.fault));
        // A failed disk (`log-dir-failure`) loses the page cache as a power loss does;
        // a full one (`disk-full`) halts the broker as a crash does.
        let power_loss = sc.nemesis.faults.iter().any(|k| {
            matches!(
                k,
                crate::nemesis::FaultKindName::PowerLoss
                    | crate::nemesis::FaultKindName::LogDirFailure
            )
        }) || sc.nemesis.schedule.iter().any(|f| {
            matches!(
                f.fault,
                Fault::PowerLoss { .. } | Fault::LogDirFailure { .. }
            )
        });
        let corrupt = sc
            .nemesis
            .faults
            .contains(&crate::nemesis::FaultKindName::Corrupt)
            || sc
                .nemesis
                .schedule
                .iter()
                .any(|f| matches!(f.fault, Fault::Corrupt { .. }));
        let cuts_links = sc.nemesis.faults.iter().any(|k| {
            use crate::nemesis::FaultKindName as K;
            matches!(k, K::Isolate | K::Split | K::OneWay | K::Slow)
        }) || sc.nemesis.schedule.iter().any(|f| {
            matches!(
                f.fault,
                Fault::Isolate { .. }
                    | Fault::Partition { .. }
                    | Fault::OneWay { .. }
                    | Fault::Slow { .. }
            )
        });
        let producer_restarts = sc
            .nemesis
            .faults
            .contains(&crate::nemesis::FaultKindName::ProducerCrash)
            || sc.nemesis.schedule.iter().any(|f| {
                matches!(
                    &f.fault,
                    Fault::Crash {
                        target: crate::nemesis::Target::Node(
                            crate::kafka::protocol::NodeId::Producer(_)
                        )
                    }
                )
            });
        let broker_flush = sc.cluster.config.log_flush_interval_messages;
        let data_flushed = sc
            .topics
            .iter()
            .all(|t| t.config.flush_messages.unwrap_or(broker_flush) == 1);
        // Groups and pipelines also write `__consumer_offsets` and
        // `__transaction_state`, flushed as the broker's default says.
        let internal_used = group.is_some() || sc.pipelines.is_some();
        let flushed = data_flushed && (broker_flush == 1 || !internal_used);
        Facts {
            unflushed_power_loss: power_loss && !flushed,
            corrupt,
            producer_resends: producer_restarts
                && has_producers
                && sc.workload.resend_unacked_after_crash,
            late_end_txn: cuts_links
                && sc.cluster.config.transaction_version < 2
                && sc
                    .pipelines
                    .as_ref()
                    .is_some_and(|p| p.mode == PipelineMode::ExactlyOnce),
            late_commits: cuts_links
                && (group.is_some()
                    || sc
                        .pipelines
                        .as_ref()
                        .is_some_and(|p| p.mode == PipelineMode::AtLeastOnce)),
            static_members_fenced_on_failover: broker_faults
                && ((group.is_some() && sc.consumers.config.group_instance_id.is_some())
                    || sc
                        .pipelines
                        .as_ref()
                        .is_some_and(|p| p.consumer.group_instance_id.is_some())),
            acks: has_producers.then_some(p.acks),
            idempotence: has_producers && p.idempotence(),
            max_in_flight: p.max_in_flight_requests_per_connection,
            min_insync_replicas: effective_min_insync_replicas(sc),
            unclean: sc.cluster.config.unclean_leader_election_enable
                || sc
                    .topics
                    .iter()
                    .any(|t| t.config.unclean_leader_election_enable == Some(true)),
            group,
            pipeline: sc.pipelines.as_ref().map(|p| p.mode),
            readers_read_committed: sc.consumers.config.isolation_level
                == IsolationLevel::ReadCommitted,
            broker_faults,
            quiet_covers_timeouts: sc.workload.quiet_ms >= liveness_bound_ms(sc),
            keyless_resends: sc.pipelines.is_some() && sc.workload.keys == 0,
            shared_transactional_id: sc.pipelines.as_ref().is_some_and(|p| {
                let ids: Vec<_> = p
                    .instances
                    .iter()
                    .filter_map(|i| i.transactional_id.as_deref())
                    .collect();
                ids.iter().enumerate().any(|(i, id)| ids[..i].contains(id))
            }),
        }
    }

    /// Records below the high watermark are never truncated: only in-sync replicas
    /// become leaders, and a power loss takes nothing they acknowledged (Kafka's
    /// `UnifiedLog.append` flushes every append with `flush.messages=1`).
    fn clean(&self) -> bool {
        !self.unclean && !self.unflushed_power_loss && !self.corrupt
    }

    /// Writes acknowledged to `acks=all` are on at least two replicas and only in-sync
    /// replicas become leaders (offset commits and transaction markers are `acks=all`
    /// writes under the same `min.insync.replicas`).
    fn replicated(&self) -> bool {
        self.clean() && self.min_insync_replicas >= 2
    }

    /// [`Facts::replicated`], and the producers write with `acks=all`.
    fn durable(&self) -> bool {
        self.replicated() && self.acks.is_none_or(|a| a == Acks::All)
    }

    /// Every record is in its partition's log once: idempotent producers (a retry is
    /// never appended twice), clean elections, and no application sending a record
    /// again from a new producer session after a crash.
    fn no_input_duplicates(&self) -> bool {
        self.acks.is_none()
            || (self.idempotence
                && self.max_in_flight <= 5
                && self.clean()
                && !self.producer_resends)
    }

    fn transactions(&self) -> bool {
        self.pipeline == Some(PipelineMode::ExactlyOnce)
    }
}

fn hits_brokers(f: &Fault) -> bool {
    use crate::kafka::protocol::NodeId;
    use crate::nemesis::Target;
    let broker = |t: &Target| {
        !matches!(
            t,
            Target::Node(NodeId::Producer(_) | NodeId::Consumer(_) | NodeId::Pipeline(_))
        )
    };
    match f {
        Fault::Crash { target }
        | Fault::PowerLoss { target }
        | Fault::Corrupt { target }
        | Fault::DiskFull { target }
        | Fault::LogDirFailure { target }
        | Fault::Pause { target }
        | Fault::Isolate { target } => broker(target),
        Fault::Partition { groups } => groups.iter().flatten().any(broker),
        // A producer cut from a leader still leaves the brokers whole, but a broker-to-
        // broker drop does not.
        Fault::OneWay { from, to }
        | Fault::Delay { from, to }
        | Fault::Slow { from, to, .. }
        | Fault::Reset {
            between: [from, to],
        } => broker(from) && broker(to),
        Fault::MoveLeader { .. } => true,
        // An admin request that moves a log start, a clock step: nothing stops or is
        // cut off.
        Fault::DeleteRecords { .. } | Fault::Clock { .. } => false,
    }
}

/// How long after the last fault and the last send the cluster and its clients need to
/// settle, from the scenario's timeouts: a broker fenced and re-registered
/// (`broker.session.timeout.ms`), a request to a dead connection given up
/// (`request.timeout.ms`), a dead member evicted and the group rebalanced
/// (`session.timeout.ms` + `group.initial.rebalance.delay.ms`), an abandoned transaction
/// aborted (`transaction.timeout.ms` + the coordinator's cleanup interval), plus 10 s
/// for retries, metadata refreshes and catching up. `metadata.max.age.ms` is not in it:
/// Kafka's clients refresh metadata on errors, not only when it ages.
pub fn liveness_bound_ms(sc: &Scenario) -> u64 {
    let b = &sc.cluster.config;
    let mut bound = b
        .broker_session_timeout_ms
        .max(b.request_timeout_ms.min(10_000));
    if sc.producers.count > 0 {
        bound = bound.max(sc.producers.config.request_timeout_ms);
    }
    if sc.consumers.count > 0 {
        let c = &sc.consumers.config;
        bound = bound.max(c.request_timeout_ms);
        if c.group_id.is_some() {
            bound = bound.max(c.session_timeout_ms + b.group_initial_rebalance_delay_ms);
        }
    }
    if let Some(p) = &sc.pipelines {
        bound = bound
            .max(p.consumer.request_timeout_ms)
            .max(p.consumer.session_timeout_ms + b.group_initial_rebalance_delay_ms)
            .max(p.producer.request_timeout_ms);
        if p.mode == PipelineMode::ExactlyOnce {
            bound = bound.max(
                p.producer.transaction_timeout_ms
                    + b.transaction_abort_timed_out_transaction_cleanup_interval_ms,
            );
        }
    }
    bound + 10_000
}

/// One row of the table.
pub struct Rule {
    /// Short name.
    pub name: &'static str,
    /// The settings it needs, in words.
    pub when: &'static str,
    /// The anomaly kinds it rules out.
    pub forbids: &'static [&'static str],
    /// The Kafka setting, class or KIP it rests on.
    pub kafka: &'static str,
    applies: fn(&Facts) -> bool,
}

impl Rule {
    /// Whether the rule holds for these facts.
    pub fn applies(&self, f: &Facts) -> bool {
        (self.applies)(f)
    }
}

/// The guarantee table.
pub const RULES: &[Rule] = &[
    Rule {
        name: "replicas-agree",
        when: "every run",
        forbids: &["replica-divergence"],
        kafka: "KIP-101/KIP-279 (followers truncate to the leader epoch's end offset, \
                `AbstractFetcherThread`)",
        applies: |_| true,
    },
    Rule {
        name: "consumers-detect-truncation",
        when: "unclean.leader.election.enable=false, and no pipeline or no power loss or \
               failed disk (`log-dir-failure`) with unflushed logs and no bit flips",
        forbids: &["undetected-truncation"],
        kafka: "KIP-320: a position carrying a leader epoch (fetched, or the group's \
                committed offset) is validated after a leader change \
                (`OffsetsForLeaderEpoch`, `SubscriptionState.maybeCompleteValidation`), \
                which sees a truncation only when the new leader's log ends the \
                position's epoch below the position; an uncleanly elected replica that \
                appended at an older epoch as a zombie leader (`acks` 0 or 1) carries \
                that epoch past the position (`LeaderEpochFileCache.endOffsetFor`: the \
                floor epoch, ended where the next begins), so the consumer reads on \
                unwarned. `seek(partition, offset)` carries no epoch and skips \
                validation (`KafkaConsumer.seek`), and a pipeline rewinding after an \
                abort seeks so, as Kafka's `ExactlyOnceMessageProcessor` example does; \
                when a log loses acknowledged records and is written again, that seek \
                lands in the new records unwarned",
        applies: |f| !f.unclean && (f.pipeline.is_none() || f.clean()),
    },
    Rule {
        name: "reads-are-writes",
        when: "every run",
        forbids: &["phantom-read", "header-mismatch", "read-above-high-watermark"],
        kafka: "a fetch returns the log's records as they were written, headers \
                included (`Partition.fetchRecords`, KIP-82 `DefaultRecord`), and a \
                consumer's only below the high watermark (`FetchIsolation.HIGH_WATERMARK`)",
        applies: |_| true,
    },
    Rule {
        name: "offsets-for-times",
        when: "every run",
        forbids: &["lookup-not-earliest"],
        kafka: "ListOffsets by timestamp answers the earliest offset whose record's \
                timestamp is at or after the target (KIP-79, \
                `LogSegment.findOffsetByTimestamp`)",
        applies: |_| true,
    },
    Rule {
        name: "partitioner",
        when: "records have keys, or no pipeline re-sends outputs",
        forbids: &["wrong-partition"],
        kafka: "keyed records go to murmur2(key) % partitions (`BuiltInPartitioner`); a \
                keyless record sent again by the application (a pipeline's output after \
                an abort or a rebalance) is a new send the sticky partitioner (KIP-480) \
                may put anywhere",
        applies: |f| !f.keyless_resends,
    },
    Rule {
        name: "group-fencing",
        when: "unclean.leader.election.enable=false, and no power loss or failed disk (`log-dir-failure`) with unflushed logs",
        forbids: &["double-assignment", "zombie-commit"],
        kafka: "one assignment per generation and `ILLEGAL_GENERATION` / \
                `UNKNOWN_MEMBER_ID` / `FENCED_INSTANCE_ID` for stale commits \
                (`GroupCoordinator.handleCommitOffsets`, KIP-345); the generation lives in \
                `__consumer_offsets`, so when its last records are lost from every replica \
                (a power loss of its last in-sync replica, an unclean election) the \
                coordinator loads an older generation and hands out its number again",
        applies: Facts::clean,
    },
    Rule {
        name: "read-committed",
        when: "unclean.leader.election.enable=false, and no power loss or failed disk (`log-dir-failure`) with unflushed logs",
        forbids: &["precommitted-read"],
        kafka: "read_committed reads stop at the last stable offset (KIP-98); only when \
                an unclean election or a power loss takes a COMMIT marker and its records \
                from every replica, and the re-sent records commit again later, does a read \
                of the first, committed copy look early",
        applies: Facts::clean,
    },
    Rule {
        name: "clean-election",
        when: "unclean.leader.election.enable=false",
        forbids: &[
            "nonmonotonic-poll",
            "poll-skip",
            "committed-past-high-watermark",
            "commit-regression",
        ],
        kafka: "only ISR members are elected (`PartitionChangeBuilder`, KIP-966's \
                unclean off), so nothing below the high watermark is truncated and a \
                consumer's position never has to move back",
        applies: Facts::clean,
    },
    Rule {
        name: "acks-all-durable",
        when: "acks=all, min.insync.replicas >= 2, unclean.leader.election.enable=false",
        forbids: &["lost-write", "inconsistent-offsets"],
        kafka: "acks=all answers once every ISR member has the batch and the ISR has at \
                least min.insync.replicas (`Partition.appendRecordsToLeader`, \
                `NOT_ENOUGH_REPLICAS`), KAFKA-15583",
        applies: Facts::durable,
    },
    Rule {
        name: "commits-durable",
        when: "min.insync.replicas >= 2, unclean.leader.election.enable=false, no cut or \
               slow link under committing consumers",
        forbids: &["committed-offset-lost"],
        kafka: "offset commits are acks=all appends to `__consumer_offsets`, answered \
                once replicated (`GroupMetadataManager.storeOffsets`); the last commit of \
                the member's generation wins, in arrival order, and a commit whose request \
                timed out (`NetworkClient` closes the connection, the consumer retries on a \
                new one) can still arrive after its retry and later commits: the closed \
                socket's data is still sent, and the broker's `Selector` processes a \
                request received before the close (`CloseMode.GRACEFUL`)",
        applies: |f| f.replicated() && !f.late_commits,
    },
    Rule {
        name: "idempotence",
        when: "enable.idempotence (acks=all, max.in.flight <= 5), unclean off",
        forbids: &["duplicate", "reorder"],
        kafka: "KIP-98 producer id and sequence numbers, 5 batches cached per producer \
                (`ProducerStateManager`, `ProducerConfig` \
                MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION_FOR_IDEMPOTENCE), KIP-360",
        applies: |f| f.idempotence && f.max_in_flight <= 5 && f.clean(),
    },
    Rule {
        name: "in-flight-1",
        when: "max.in.flight.requests.per.connection=1, acks=all, unclean off",
        forbids: &["reorder"],
        kafka: "`max.in.flight.requests.per.connection` docs: with 1 a retry cannot \
                overtake a later batch (`Sender` mutes the partition); with acks=1 an \
                acknowledged offset can be truncated and reused by later records (acks \
                docs), so the order of acknowledged offsets says nothing",
        applies: |f| f.acks == Some(Acks::All) && f.max_in_flight == 1 && f.clean(),
    },
    Rule {
        name: "at-least-once-group",
        when: "group processing at-least-once or auto-commit, acks=all, min ISR >= 2, \
               unclean off",
        forbids: &["processing-loss"],
        kafka: "commitSync after processing; auto-commit commits in `poll` only what \
                earlier polls returned (`ConsumerCoordinator.maybeAutoCommitOffsetsAsync`)",
        applies: |f| {
            f.durable()
                && matches!(
                    f.group,
                    Some((ProcessingMode::AtLeastOnce | ProcessingMode::AutoCommit, _))
                )
        },
    },
    Rule {
        name: "at-most-once-group",
        when: "group processing at-most-once, idempotent producers resending nothing, min ISR >= 2, \
               unclean off, no cut or slow link (a late commit, as in `commits-durable`, \
               moves the committed offset back)",
        forbids: &["reprocessing", "duplicate-effect"],
        kafka: "commitSync of the polled positions before processing: a record is \
                processed only after its offset is committed (`KafkaConsumer.commitSync`); \
                without idempotence a retried batch is a second record of the same value \
                (KIP-98), processed again",
        applies: |f| {
            f.replicated()
                && !f.late_commits
                && f.no_input_duplicates()
                && matches!(f.group, Some((ProcessingMode::AtMostOnce, _)))
        },
    },
    Rule {
        name: "dedup-store",
        when: "group sink dedup_store, no pipelines",
        forbids: &["duplicate-effect"],
        kafka: "the store keeps each record's id with its result (application-side \
                idempotence, C13); nothing in Kafka",
        applies: |f| f.pipeline.is_none() && matches!(f.group, Some((_, Sink::DedupStore))),
    },
    Rule {
        name: "exactly-once",
        when: "exactly-once pipelines, min ISR >= 2, unclean off, transaction version 2 or \
               no cut or slow link",
        forbids: &[
            "output-missing",
            "partial-commit",
            "zombie-write",
            "g1c",
            "int-poll-skip",
            "int-nonmonotonic-poll",
            "int-nonmonotonic-send",
        ],
        kafka: "KIP-98 transactions with `sendOffsetsToTransaction`, KIP-447 \
                (generation-fenced offsets), KIP-890 (verification, epoch bump per \
                transaction); under version 1 a commit held on a dead connection ends the \
                next transaction (KAFKA-17754)",
        applies: |f| f.transactions() && f.replicated() && !f.late_end_txn,
    },
    Rule {
        name: "exactly-once-input",
        when: "exactly-once pipelines, idempotent input producers resending nothing, min ISR >= 2, \
               unclean off, transaction version 2 or no cut or slow link",
        forbids: &["output-duplicate"],
        kafka: "exactly-once is per input record (offset, KIP-98/KIP-447); a \
                non-idempotent producer's retry writes the input value twice, and each \
                copy rightly gets an output; KAFKA-17754 as in `exactly-once`",
        applies: |f| {
            f.transactions() && f.replicated() && f.no_input_duplicates() && !f.late_end_txn
        },
    },
    Rule {
        name: "at-least-once-pipeline",
        when: "at-least-once pipelines, min ISR >= 2, unclean off",
        forbids: &["output-missing"],
        kafka: "input offsets are committed only after every output is acknowledged \
                (acks=all)",
        applies: |f| f.pipeline == Some(PipelineMode::AtLeastOnce) && f.replicated(),
    },
    Rule {
        name: "no-producer-resends",
        when: "no producer application restarts, or it does not send again what it had \
               not seen acknowledged",
        forbids: &["restart-duplicate"],
        kafka: "only the application sends a value twice; within one producer session \
                idempotence (KIP-98) or its absence decides, and that is `duplicate`",
        applies: |f| !f.producer_resends,
    },
    Rule {
        name: "no-transactions",
        when: "no exactly-once pipeline",
        forbids: &[
            "aborted-read",
            "partial-commit",
            "hanging-transaction",
            "zombie-write",
            "g0",
            "g1c",
            "int-poll-skip",
            "int-nonmonotonic-poll",
            "int-send-skip",
            "int-nonmonotonic-send",
        ],
        kafka: "without a transactional.id nothing writes transactional batches",
        applies: |f| !f.transactions(),
    },
    Rule {
        name: "read-committed",
        when: "readers isolation.level=read_committed",
        forbids: &["aborted-read"],
        kafka: "KIP-98: read_committed fetches stop at the last stable offset and drop \
                aborted transactions (`Fetcher`/`CompletedFetch`)",
        applies: |f| f.readers_read_committed,
    },
    Rule {
        name: "liveness",
        when: "quiet period >= the liveness bound (timeouts + 10 s), no two live instances \
               share a transactional.id, no bit flips in stored batches, no static members \
               under broker faults (as in `group-liveness`), and no transactions over logs \
               that lose acknowledged records (unclean election, power loss or failed disk \
               with unflushed logs)",
        forbids: &["stuck", "unseen", "hanging-transaction"],
        kafka: "after the faults heal: clients retry and refresh metadata on errors \
                (`Metadata.requestUpdate`), the group rebalances within \
                session.timeout.ms, the coordinator aborts transactions older than \
                transaction.timeout.ms (`TransactionCoordinator.abortTimedOutTransactions`); two live producers \
                with one transactional.id fence each other for ever (`ProducerFenced` \
                is fatal: KafkaProducer docs), so Kafka promises no progress there; a \
                corrupt batch below the recovery point is served as stored, and a \
                follower (`AbstractFetcherThread`) or consumer (`check.crcs`) never gets \
                past it; when `__transaction_state` loses a transaction's state from \
                every replica, or a partition loses the marker that ended it, nothing \
                ever writes its marker and the partition's last stable offset stays \
                below it until an operator aborts it (KIP-664, `kafka-transactions.sh \
                abort`)",
        applies: |f| {
            f.quiet_covers_timeouts
                && !f.shared_transactional_id
                && !f.corrupt
                && !f.static_members_fenced_on_failover
                && (!f.transactions() || f.clean())
        },
    },
    Rule {
        name: "group-liveness",
        when: "quiet period >= the liveness bound (timeouts + 10 s), no two live instances \
               share a transactional.id, no bit flips in stored batches, no static members \
               under broker faults",
        forbids: &["unassigned-partition"],
        kafka: "after the faults heal the group rebalances within session.timeout.ms and \
                the coordinator hands every partition to a member \
                (`GroupCoordinator`, `ConsumerPartitionAssignor`); a hanging transaction \
                holds readers, not assignments; a coordinator that moves before it stored \
                a rebalance loads the older static members, and one rejoining under its \
                newer member id gets FENCED_INSTANCE_ID (`ClassicGroup.isStaticMemberFenced`), \
                fatal to the consumer (KIP-345)",
        applies: |f| {
            f.quiet_covers_timeouts
                && !f.shared_transactional_id
                && !f.corrupt
                && !f.static_members_fenced_on_failover
        },
    },
    Rule {
        name: "hw-monotonic",
        when: "no fault on brokers or the controller",
        forbids: &["high-watermark-regression"],
        kafka: "without a deposed leader no fetch answer carries an older high \
                watermark; with one, Kafka's consumer takes it (`FetchCollector`), so \
                faults tolerate it",
        applies: |f| !f.broker_faults,
    },
];

/// The anomaly kinds and client events the rules forbid for these facts, in
/// `ANOMALY_KINDS` then `EVENT_KINDS` order.
pub fn forbidden(f: &Facts) -> Vec<&'static str> {
    ANOMALY_KINDS
        .iter()
        .chain(EVENT_KINDS)
        .copied()
        .filter(|k| RULES.iter().any(|r| r.applies(f) && r.forbids.contains(k)))
        .collect()
}

/// The scenario's derived expectation: forbidden anomaly kinds stay invariants, the
/// rest is tolerated; forbidden client events go to `forbid`; nothing is required.
pub fn expect(sc: &Scenario) -> Expect {
    let forbidden = forbidden(&Facts::of(sc));
    Expect {
        anomalies: Vec::new(),
        tolerate: ANOMALY_KINDS
            .iter()
            .filter(|k| !forbidden.contains(k))
            .map(|k| k.to_string())
            .collect(),
        forbid: EVENT_KINDS
            .iter()
            .filter(|k| forbidden.contains(k))
            .map(|k| k.to_string())
            .collect(),
    }
}

/// The anomaly kinds a transaction torn by a coordinator acting on its own unreplicated
/// log can show: one partition got the markers of a decision the next coordinator never
/// saw, the others the opposite decision.
pub const TORN_BY_UNREPLICATED_PREPARE: &[&str] =
    &["partial-commit", "output-missing", "output-duplicate"];

/// Anomaly kinds that a run's own history shows to be Kafka's behaviour in that run,
/// whatever the scenario (or the table) forbids, each with the reason and the history
/// line. One case so far: a transaction coordinator restarted before its broker
/// session expired loaded a transaction prepared above its high watermark
/// ([`Op::TxnLoadedUnreplicated`]). Kafka's `BrokerMetadataPublisher` elects it from
/// the first metadata image, before the controller accepts its registration
/// (`ClusterControlManager.registerBroker`: `DuplicateBrokerRegistrationException`
/// while the old session lives); `TransactionStateManager.loadTransactionMetadata`
/// reads to `LOG_END` and completes the prepared transaction with markers; its
/// listeners stay closed until it is unfenced (`BrokerServer.startup`), so no follower
/// copies the record, and the replica elected when the controller fences it finds the
/// transaction `Ongoing` and aborts it, or has it prepared the other way.
pub fn excused(history: &History) -> BTreeMap<&'static str, String> {
    let mut excused = BTreeMap::new();
    let first = history.entries.iter().find_map(|e| match &e.op {
        Op::TxnLoadedUnreplicated {
            transactional_id,
            state,
            partition,
            high_watermark,
            log_end_offset,
            ..
        } => Some(format!(
            "Kafka's own here: a transaction coordinator restarted within its broker \
             session loaded {transactional_id} in {state} from {partition} above its high \
             watermark {high_watermark} (log end {log_end_offset}) and wrote its markers; \
             no other replica had that record (history line {}; \
             `TransactionStateManager.loadTransactionMetadata` reads to LOG_END, \
             `BrokerServer.startup` opens listeners once unfenced)",
            e.index
        )),
        _ => None,
    });
    if let Some(reason) = first {
        for kind in TORN_BY_UNREPLICATED_PREPARE {
            excused.insert(*kind, reason.clone());
        }
    }
    excused
}

/// The table as text (`kafkasim explore --rules`), one rule per paragraph.
pub fn table() -> String {
    let mut out = String::new();
    for r in RULES {
        out.push_str(&format!(
            "{}\n  when     {}\n  forbids  {}\n  kafka    {}\n",
            r.name,
            r.when,
            r.forbids.join(", "),
            r.kafka.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    let never: Vec<&str> = ANOMALY_KINDS
        .iter()
        .copied()
        .filter(|k| !RULES.iter().any(|r| r.forbids.contains(k)))
        .collect();
    out.push_str(
        "\"unclean off\" and \"unclean.leader.election.enable=false\" also mean: no power \
         loss of logs not flushed on every append (flush.messages=1)\n",
    );
    out.push_str(&format!(
        "excused by the run itself: {} in a run whose history records \
         txn_loaded_unreplicated (a transaction coordinator restarted within its broker \
         session completed a transaction prepared above its high watermark)\n",
        TORN_BY_UNREPLICATED_PREPARE.join(", ")
    ));
    out.push_str(&format!(
        "every other kind is tolerated{}; client events ({}) only where a rule says\n",
        if never.is_empty() {
            String::new()
        } else {
            format!(" (always: {})", never.join(", "))
        },
        EVENT_KINDS.join(", ")
    ));
    out
}

/// The smallest minimum ISR any workload topic runs with: its `min.insync.replicas`
/// (topic override, else the broker's) capped at its replica count, as Kafka's
/// `Partition.effectiveMinIsr` does (KAFKA-15583); the broker's own value for the
/// internal topics when there are no workload topics.
fn effective_min_insync_replicas(sc: &Scenario) -> u32 {
    let broker = sc.cluster.config.min_insync_replicas;
    sc.topics
        .iter()
        .map(|t| {
            t.config
                .min_insync_replicas
                .unwrap_or(broker)
                .min(t.replication_factor)
        })
        .min()
        .unwrap_or(broker)
}

#[cfg(test)]
mod tests;
