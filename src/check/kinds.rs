//! The kinds the checker reports: anomalies (`ANOMALY_KINDS`) and client events
//! (`EVENT_KINDS`), each with the definition `describe` gives.

use super::*;

/// Every anomaly kind the checker reports, by its kebab-case name.
pub const ANOMALY_KINDS: &[&str] = &[
    "lost-write",
    "unseen",
    "duplicate",
    "restart-duplicate",
    "inconsistent-offsets",
    "reorder",
    "nonmonotonic-poll",
    "poll-skip",
    "phantom-read",
    "read-above-high-watermark",
    "wrong-partition",
    "stuck",
    "replica-divergence",
    "undetected-truncation",
    "processing-loss",
    "reprocessing",
    "duplicate-effect",
    "double-assignment",
    "commit-regression",
    "committed-past-high-watermark",
    "zombie-commit",
    "committed-offset-lost",
    "unassigned-partition",
    // Transactions (`check::txn`).
    "aborted-read",
    "precommitted-read",
    "partial-commit",
    "hanging-transaction",
    "zombie-write",
    "output-duplicate",
    "output-missing",
    "g0",
    "g1c",
    "int-poll-skip",
    "int-nonmonotonic-poll",
    "int-send-skip",
    "int-nonmonotonic-send",
    "lookup-not-earliest",
    "header-mismatch",
];

/// Client events the checker reports beside anomalies: legitimate behaviour a scenario
/// can expect (`expect.anomalies`) to show that a setting works, never an invariant.
pub const EVENT_KINDS: &[&str] = &[
    "send-timeout",
    "expired-after-retries",
    "expired-unsent",
    "rebalance",
    "member-left",
    // Kafka's consumer takes each fetch response's high watermark as it comes
    // (`FetchCollector` -> `SubscriptionState.updateHighWatermark`), and a leader whose
    // high watermark lags (new, or deposed and not yet told) answers Fetch with it.
    "high-watermark-regression",
    // Transactions (`check::txn`).
    "lookup-hit-marker",
    "marker-gap",
    "lso-stall",
    "transaction-aborted",
    // Skewed clocks (`check::clocks`): Kafka's rules go by timestamps, judged here in
    // true time.
    "lookup-early-by-clock",
    "lookup-late-by-clock",
    "retention-early-by-clock",
];

/// A one-sentence definition of an anomaly kind (for `kafkasim list` and reports).
pub fn describe(kind: &str) -> &'static str {
    match kind {
        "lost-write" => {
            "An acknowledged write that no consumer ever read, although some consumer \
             read an offset at or past the acknowledged one in its partition; or one, read \
             or not, that the partition leader's final log no longer holds."
        }
        "unseen" => {
            "An acknowledged write that no consumer ever read, where no consumer read \
             as far as its offset (a liveness failure after the quiet period)."
        }
        "duplicate" => {
            "A value observed (read, or acknowledged) at two or more distinct offsets of \
             one partition; counted once per value."
        }
        "restart-duplicate" => {
            "A value at two offsets of one partition because its producer application, \
             restarted after a crash, sent again what its dead process had not seen \
             acknowledged: one copy per producer session. Idempotence is per producer id \
             (KIP-98), so Kafka allows it; a stable transactional.id is what fences the \
             old session."
        }
        "inconsistent-offsets" => {
            "Two or more distinct values observed (read, or acknowledged) at one offset of \
             one partition; counted once per offset."
        }
        "reorder" => {
            "A value acknowledged to a producer that landed in a partition before a value \
             the same producer sent earlier to that partition; counted once per later value."
        }
        "nonmonotonic-poll" => {
            "A consumer read a record of a partition whose offset is not above that of \
             the record it read just before from that partition, with no seek in between."
        }
        "poll-skip" => {
            "A consumer jumped over offsets of a partition between two consecutive reads, \
             with no seek in between, although a value is known at a skipped offset."
        }
        "phantom-read" => {
            "A consumer read a value that no producer sent, or whose send definitely failed."
        }
        "read-above-high-watermark" => {
            "A consumer poll returned a record at or above the high watermark of the fetch \
             response that carried it: a record not yet on every in-sync replica, which a \
             leader change may erase (Kafka's leader serves consumers only below the high \
             watermark, or the last stable offset)."
        }
        "wrong-partition" => {
            "Records with one key were sent to two partitions (counted once per key), or a \
             value was read from a partition other than the one it was sent to (once per value)."
        }
        "stuck" => {
            "At the end of the run a consumer's position on a partition is below the \
             leader's high watermark, or a partition has no leader."
        }
        "replica-divergence" => {
            "At the end of the run two in-sync replicas of a partition hold different \
             records below the leader's high watermark; counted once per offset."
        }
        "processing-loss" => {
            "An acknowledged record that a consumer group never processed, although the \
             group processed a later offset of its partition or committed past it; counted \
             once per record and group."
        }
        "reprocessing" => {
            "A record a consumer group processed more than once (by one member or after a \
             rebalance); counted once per record and group."
        }
        "duplicate-effect" => {
            "A record whose side effect reached a non-idempotent external API more than once \
             (a deduplicating store applies it once); counted once per record and group."
        }
        "double-assignment" => {
            "A partition assigned to two members of one group in the same generation."
        }
        "commit-regression" => {
            "A group's committed offset for a partition went back within one generation."
        }
        "committed-past-high-watermark" => {
            "At the end of the run a group's committed offset is above its partition's high \
             watermark."
        }
        "zombie-commit" => {
            "The coordinator accepted a commit carrying an older generation than one it had \
             already accepted or assigned for the group (generation fencing failed)."
        }
        "committed-offset-lost" => {
            "An offset commit the coordinator acknowledged that a later read of the group's \
             committed offsets did not find: a member's OffsetFetch sent after the \
             acknowledgement, or the coordinator's state at the end of the run, holds an \
             older offset or none."
        }
        "unassigned-partition" => {
            "At the end of the run a partition is assigned to no member of a consumer group \
             that consumed, or the group is not Stable (or not loaded by any coordinator)."
        }
        "rebalance" => {
            "A consumer group moved to a new generation after its first one (a member \
             joined, left, was evicted or restarted); counted once per generation."
        }
        "member-left" => "A group member left the group by itself (max.poll.interval.ms expired).",
        "send-timeout" => {
            "A `send` call blocked (waiting for buffer memory or topic metadata) for \
             max.block.ms and failed with a TimeoutException; the record was never sent."
        }
        "expired-after-retries" => {
            "A record whose batch was sent and retried (two attempts or more) failed when \
             delivery.timeout.ms ran out."
        }
        "expired-unsent" => {
            "A record whose batch was never sent (it waited in the producer's accumulator, \
             send() having returned) failed when delivery.timeout.ms ran out; not a \
             blocked send."
        }
        "header-mismatch" => {
            "A consumer read a record whose headers (keys, values, order) differ from the \
             headers its producer sent with it; counted once per value."
        }
        "high-watermark-regression" => {
            "A consumer saw a partition's high watermark go down between two successive \
             fetch responses (a new leader whose high watermark lags, or a deposed leader \
             answering a fetch sent before the change); Kafka's consumer takes it as it \
             comes, no record is read twice or skipped."
        }
        "undetected-truncation" => {
            "A consumer read a record at an offset of a partition where the partition's \
             final log holds another record (or none), then read a record the final log \
             does hold at a higher offset, without seeking back to or below the first \
             offset or being assigned the partition anew (it went on from a truncated log: \
             KIP-320's validation failed); counted once per consumer and partition. Where \
             the history records leader changes and log truncations, the second read counts \
             only after one of them or from another broker (before, it was of the same old \
             log, holding the same record there by a retried send)."
        }
        _ => txn::describe(kind)
            .or_else(|| clocks::describe(kind))
            .unwrap_or("Not an anomaly kind kafkasim checks."),
    }
}
