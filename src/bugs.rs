//! The registry of bug switches: named safeguards that a scenario (`"bugs": [...]`) or
//! the CLI (`--bug NAME`) can switch off to restore a historic Kafka behaviour and show
//! that the checker notices. A switch is one bit test when off.

use serde::{Deserialize, Serialize};

/// A safeguard that can be switched off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Bug {
    /// Before KIP-101, a replica that became a follower truncated its log to its own
    /// high watermark instead of asking the leader where its last epoch ends.
    TruncateToHighWatermark,
    /// The leader advances the high watermark to its own log end offset without waiting
    /// for the in-sync followers, so `acks=all` acknowledges unreplicated writes.
    HighWatermarkFromLeaderOnly,
    /// The leader moves the high watermark while its ISR is smaller than
    /// `min.insync.replicas` (Kafka before KAFKA-15583): with eligible leader replicas
    /// (KIP-966) the records only the leader has are then read, and an ELR member that
    /// never had them may be elected.
    HighWatermarkUnderMinIsr,
    /// Before KIP-279, a truncating follower cut its log to the end offset the leader
    /// returned, without checking that its own records below it carry the leader's
    /// epochs, so after fast leader changes it kept records the leader never had.
    NoEpochInEndOffset,
    /// The partition leader appends idempotent batches without checking their producer
    /// epoch and sequence, so a retried batch is appended twice.
    NoSequenceCheck,
    /// The idempotent producer re-queues a failed batch at the front of its partition's
    /// queue instead of in sequence order, sends retries without waiting for their turn,
    /// and on an out-of-order error re-sequences its queue as it stands (the client
    /// without KAFKA-5494's in-order retries).
    NoInOrderRetry,
    /// The group coordinator accepts an `OffsetCommit` carrying an older generation,
    /// without checking the member or the generation.
    CommitFromOldGeneration,
    /// The group coordinator never evicts a member whose session timed out.
    NoSessionExpiry,
    /// A transaction coordinator that loads `__transaction_state` after a failover
    /// forgets the transactions it finds prepared (`PrepareCommit`, `PrepareAbort`): it
    /// takes them as completed and never writes their markers.
    ForgetPreparedTxn,
    /// The transaction coordinator takes `AddPartitionsToTxn`, `AddOffsetsToTxn` and
    /// `EndTxn` carrying a stale producer epoch as if it were the current one (and the
    /// partition leader appends transactional batches whose producer epoch is older than
    /// the producer's, unless KIP-890 verification refuses them first).
    NoProducerEpochFencing,
    /// The transaction coordinator writes a transaction's markers to its first partition
    /// only and completes it as if every partition had one.
    PartialMarkers,
    /// The consumer never validates its position after a leader change (the client
    /// before KIP-320): it keeps fetching from its old position on the new leader, even
    /// where the new leader's log diverged below it.
    NoPositionValidation,
    /// The controller takes a broker that registers after an unclean shutdown as if it
    /// had shut down cleanly: it stays in the ISR and eligible leader replicas it was
    /// in, and may be elected with the log it recovered (before KIP-966's
    /// unclean-shutdown detection, KAFKA-15586).
    NoUncleanShutdownDetection,
    /// The partition leader refuses a batch of a producer it has no state for (expired,
    /// or its batches deleted) unless the batch's first sequence is 0:
    /// `UNKNOWN_PRODUCER_ID`, as brokers before KIP-360 (Kafka 2.5) did; Kafka 4.x
    /// appends it at any sequence.
    UnknownProducerIdOnAppend,
    /// Followers' fetches carry no broker epoch (Fetch before v15, AlterPartition before
    /// v3, the broker before KIP-903): a fetch from a follower's previous incarnation,
    /// delivered after it restarted with a shorter log, vouches for the new one, which
    /// joins the ISR as if it held what the old one had.
    NoBrokerEpochInFetch,
    /// Log recovery after an unclean shutdown moves the recovery point to the log end
    /// without a flush (before KAFKA-10101), so a later checkpoint claims unflushed
    /// batches are on the platter and the next recovery skips them.
    RecoveryPointAtLogEnd,
    /// Before KAFKA-7190, a partition forgot the producers whose batches all lay below
    /// a new log start offset (retention, DeleteRecords): a retry of such a producer's
    /// batch is then no longer recognised as a duplicate and is appended again.
    EvictProducersOnLogStart,
    /// The partition leader appends transactional batches of transaction version 1
    /// without asking the transaction coordinator whether their transaction is open
    /// (the broker before KIP-890 part 1's verification, whatever
    /// `transaction.partition.verification.enable` says), so a produce that arrives
    /// late, after its transaction ended, starts a transaction the coordinator never
    /// heard of, and the producer's next marker there ends it.
    LateProduce,
    /// The transaction coordinator of transaction version 2 takes an `EndTxn` carrying
    /// the epoch before the last bump for the open transaction's end, as every end was
    /// under version 1 (one epoch for all of a producer's transactions): a commit held
    /// in the network ends the next transaction early.
    LateEndTxn,
}

/// One catalogue entry.
pub struct BugInfo {
    /// The bug.
    pub bug: Bug,
    /// Its name on the command line and in scenarios.
    pub name: &'static str,
    /// The Kafka issue or KIP that fixed it.
    pub reference: &'static str,
    /// What goes wrong, in two lines at most.
    pub summary: &'static str,
    /// The shipped scenario (file under `scenarios/`) whose sweep finds it.
    pub scenario: &'static str,
    /// The anomaly kind that sweep reports with the switch on.
    pub finds: &'static str,
    /// Seeds `0..budget`: at least one of them must show `finds` (a test holds it).
    pub budget: u64,
}

/// Every switch, in a fixed order.
pub const CATALOGUE: &[BugInfo] = &[
    BugInfo {
        bug: Bug::TruncateToHighWatermark,
        name: "truncate-to-high-watermark",
        reference: "KIP-101 (KAFKA-1211)",
        summary: "A new follower truncates to its local high watermark instead of the leader's \
                  epoch end offset; if it is then elected it has lost committed records.",
        scenario: "follower-truncation.json",
        finds: "lost-write",
        budget: 10,
    },
    BugInfo {
        bug: Bug::HighWatermarkFromLeaderOnly,
        name: "high-watermark-from-leader-only",
        reference: "replication protocol (acks=all safeguard)",
        summary: "The leader moves the high watermark to its own log end offset, so acks=all \
                  acknowledges writes no follower has; a leader change then loses them.",
        scenario: "follower-truncation.json",
        finds: "lost-write",
        budget: 5,
    },
    BugInfo {
        bug: Bug::HighWatermarkUnderMinIsr,
        name: "high-watermark-under-min-isr",
        reference: "KAFKA-15583 (KIP-966)",
        summary: "The leader moves the high watermark while the ISR is below \
                  min.insync.replicas: consumers read records only the leader has, and an \
                  eligible leader replica elected after it holds other records at their offsets.",
        scenario: "elr-high-watermark-min-isr.json",
        finds: "inconsistent-offsets",
        budget: 5,
    },
    BugInfo {
        bug: Bug::NoEpochInEndOffset,
        name: "no-epoch-in-end-offset",
        reference: "KIP-279 (KAFKA-6361)",
        summary: "A truncating follower cuts its log to the leader's end offset for its epoch \
                  without matching its own epochs below it; after two quick leader changes it \
                  keeps records the leader never had and the replicas diverge.",
        scenario: "fast-leader-failover.json",
        finds: "replica-divergence",
        budget: 10,
    },
    BugInfo {
        bug: Bug::NoSequenceCheck,
        name: "no-sequence-check",
        reference: "KIP-98 (KAFKA-4815)",
        summary: "The leader skips the idempotent producer's epoch and sequence check, so a \
                  batch retried after a lost response is appended twice.",
        scenario: "idempotence-on.json",
        finds: "duplicate",
        budget: 10,
    },
    BugInfo {
        bug: Bug::NoInOrderRetry,
        name: "no-in-order-retry",
        reference: "KAFKA-5494",
        summary: "The idempotent producer re-queues failed batches out of sequence order and, \
                  on OUT_OF_ORDER_SEQUENCE_NUMBER, re-sequences its queue as it stands; with \
                  5 requests in flight records land out of order.",
        scenario: "idempotence-on.json",
        finds: "reorder",
        budget: 10,
    },
    BugInfo {
        bug: Bug::CommitFromOldGeneration,
        name: "commit-from-old-generation",
        reference: "classic group protocol generation fencing (KIP-62 era)",
        summary: "The group coordinator accepts offset commits from an older generation, so a \
                  zombie member that lost its partitions can move their committed offsets back.",
        scenario: "zombie-member.json",
        finds: "zombie-commit",
        budget: 5,
    },
    BugInfo {
        bug: Bug::NoSessionExpiry,
        name: "no-session-expiry",
        reference: "KIP-62 (session.timeout.ms)",
        summary: "The group coordinator never evicts a member silent for session.timeout.ms, so \
                  a dead consumer keeps its partitions and nobody consumes them.",
        scenario: "coordinator-failover.json",
        finds: "unassigned-partition",
        budget: 5,
    },
    BugInfo {
        bug: Bug::ForgetPreparedTxn,
        name: "forget-prepared-txn",
        reference: "KIP-890 (hanging transactions)",
        summary: "A new transaction coordinator drops the prepared transactions it loads: no \
                  markers, the partition's transaction stays open until the producer's next \
                  marker there ends it with the wrong outcome (aborted records committed), or \
                  hangs for good (its pending offsets also hold the group's stable \
                  OffsetFetch, so a pipeline re-initializing from committed offsets waits).",
        scenario: "hanging-transaction.json",
        finds: "hanging-transaction",
        budget: 20,
    },
    BugInfo {
        bug: Bug::NoProducerEpochFencing,
        name: "no-producer-epoch-fencing",
        reference: "KIP-98 / KIP-588 epoch fencing",
        summary: "Transactional requests and batches with a stale producer epoch are taken as \
                  current (coordinator and partition leaders), so a fenced zombie producer still \
                  writes, and adds to and ends its successor's transaction.",
        scenario: "zombie-fencing.json",
        finds: "zombie-write",
        budget: 10,
    },
    BugInfo {
        bug: Bug::PartialMarkers,
        name: "partial-markers",
        reference: "KIP-98 (markers to every partition of a transaction)",
        summary: "The transaction coordinator writes the commit or abort marker to one partition \
                  of a transaction only: the others' records stay open, so the commit is torn \
                  and their last stable offset never moves.",
        scenario: "exactly-once-pipeline.json",
        finds: "hanging-transaction",
        budget: 3,
    },
    BugInfo {
        bug: Bug::NoPositionValidation,
        name: "no-position-validation",
        reference: "KIP-320 (KAFKA-6880)",
        summary: "After a leader change the consumer fetches on from its position without asking \
                  OffsetsForLeaderEpoch where its epoch ends: after an unclean election it skips \
                  the new leader's records below that position.",
        scenario: "consumer-truncation.json",
        finds: "undetected-truncation",
        budget: 3,
    },
    BugInfo {
        bug: Bug::NoUncleanShutdownDetection,
        name: "no-unclean-shutdown-detection",
        reference: "KIP-966 (KAFKA-15586)",
        summary: "The controller takes a broker back after a power loss as if it had shut down \
                  cleanly: as the last eligible replica it is elected with the log it recovered, \
                  and the followers that held the acknowledged tail truncate to it.",
        scenario: "power-loss-last-replica-standing-elr.json",
        finds: "lost-write",
        budget: 5,
    },
    BugInfo {
        bug: Bug::UnknownProducerIdOnAppend,
        name: "unknown-producer-id-on-append",
        reference: "KIP-360 (Kafka 2.5)",
        summary: "A leader with no state for a producer (expired) refuses its batches that do \
                  not start at sequence 0 with UNKNOWN_PRODUCER_ID: under transaction version 1 \
                  the client takes it for lost producer state, bumps its epoch and aborts a \
                  healthy transaction.",
        scenario: "producer-id-expiry-transactional.json",
        finds: "transaction-aborted",
        budget: 3,
    },
    BugInfo {
        bug: Bug::NoBrokerEpochInFetch,
        name: "no-broker-epoch-in-fetch",
        reference: "KIP-903 (KAFKA-14617)",
        summary: "A fetch sent by a follower just before it lost power reaches the leader after \
                  the follower restarted with a shorter log: without the broker epoch in the \
                  fetch the leader takes it for the new incarnation's, adds it to the ISR, and \
                  a leader move elects it with the lost tail.",
        scenario: "power-loss-stale-fetch.json",
        finds: "lost-write",
        budget: 5,
    },
    BugInfo {
        bug: Bug::RecoveryPointAtLogEnd,
        name: "recovery-point-at-log-end",
        reference: "KAFKA-10101",
        summary: "Recovery after a crash sets the recovery point to the log end without a flush; \
                  after a power loss the next recovery skips a torn batch below it, which is \
                  kept and served corrupt.",
        scenario: "crash-then-power-loss.json",
        finds: "stuck",
        budget: 10,
    },
    BugInfo {
        bug: Bug::EvictProducersOnLogStart,
        name: "evict-producers-on-log-start",
        reference: "KAFKA-7190",
        summary: "When retention moves the log start past a producer's last batch the partition \
                  forgets the producer, so a late retry of that batch is appended again.",
        scenario: "retention-evicts-producer.json",
        finds: "duplicate",
        budget: 3,
    },
    BugInfo {
        bug: Bug::LateProduce,
        name: "late-produce",
        reference: "KIP-890 part 1 (KAFKA-14402); the late-request family Jepsen reported as \
                    KAFKA-17754",
        summary: "A produce held in the network past its transaction's abort is appended \
                  unverified: it opens a transaction at the partition that the producer's next \
                  commit marker there closes, so aborted output is committed with the next \
                  transaction.",
        scenario: "late-produce.json",
        finds: "partial-commit",
        budget: 10,
    },
    BugInfo {
        bug: Bug::LateEndTxn,
        name: "late-end-txn",
        reference: "KAFKA-17754, fixed by KIP-890 part 2's epoch bump per transaction \
                    (KAFKA-14562)",
        summary: "An EndTxn held in the network past its transaction's end reaches the \
                  coordinator during the next transaction and commits it early: a torn \
                  transaction whose inputs are processed again.",
        scenario: "late-endtxn-tv2.json",
        finds: "output-duplicate",
        budget: 10,
    },
];

impl Bug {
    /// Looks a switch up by name.
    pub fn from_name(name: &str) -> Option<Bug> {
        CATALOGUE.iter().find(|b| b.name == name).map(|b| b.bug)
    }

    /// The switch's name.
    pub fn name(self) -> &'static str {
        CATALOGUE
            .iter()
            .find(|b| b.bug == self)
            .map(|b| b.name)
            .expect("every bug is catalogued")
    }

    /// Every name, for error messages.
    pub fn names() -> Vec<&'static str> {
        CATALOGUE.iter().map(|b| b.name).collect()
    }
}

/// A set of switched-off safeguards (a bit set: testing it costs one AND).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs(u32);

impl Bugs {
    /// The set with the given bugs switched on.
    pub fn of(bugs: &[Bug]) -> Bugs {
        Bugs(bugs.iter().fold(0, |acc, b| acc | (1 << *b as u32)))
    }

    /// Whether the bug is switched on.
    pub fn on(self, bug: Bug) -> bool {
        self.0 & (1 << bug as u32) != 0
    }
}
