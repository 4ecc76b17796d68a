//! Whole-system sweeps: every shipped scenario over a seed range, judged against its
//! own expectation (invariants on every seed, demonstrated anomalies on at least one).
//!
//! `KAFKASIM_SEEDS` sets the number of seeds (default 50, 20 for the transaction scenarios; a nightly job sets more,
//! e.g. `KAFKASIM_SEEDS=1000 cargo test --release --test scenarios`). Every failure
//! prints the command that reproduces it.

use kafkasim::drive::claims;
use kafkasim::drive::sweep::{seed_range_label, sweep};
use kafkasim::scenario::{collect_paths, Scenario};
use std::path::PathBuf;

/// `KAFKASIM_SEEDS` seeds, or `default`.
fn seeds(default: u64) -> Vec<u64> {
    let n: u64 = std::env::var("KAFKASIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (0..n).collect()
}

/// The scenario over 30 seeds (or `KAFKASIM_SEEDS`).
fn check_scenario(file: &str) {
    check_scenario_seeds(file, 30);
}

/// The scenario over `default` seeds (or `KAFKASIM_SEEDS`): the transaction scenarios
/// take 15 by default, their runs being the longest, to keep `cargo test` short.
fn check_scenario_seeds(file: &str, default: u64) {
    check_scenario_on(file, &seeds(default));
}

/// The scenario over `seeds`.
fn check_scenario_on(file: &str, seeds: &[u64]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(file);
    let scenario = Scenario::load(&path).expect("shipped scenarios are valid");
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let s = sweep(&scenario, seeds, jobs, &[], None);
    let mut problems = Vec::new();
    for f in &s.failures {
        problems.push(format!(
            "seed {} violated {:?} {}\n    repro: {}",
            f.seed,
            f.violated,
            f.panic.clone().unwrap_or_default(),
            f.repro
        ));
    }
    for a in &s.not_demonstrated {
        problems.push(format!(
            "expected anomaly `{a}` appeared on none of {} seeds\n    repro: cargo run --release -- check {} --seeds {}",
            s.seeds.len(),
            path.display(),
            seed_range_label(s.seeds.as_slice())
        ));
    }
    assert!(
        problems.is_empty(),
        "{}:\n{}",
        scenario.name,
        problems.join("\n")
    );
}

#[test]
fn acks_all_rf3() {
    check_scenario("acks-all-rf3.json");
}

#[test]
fn acks_1_leader_crash() {
    check_scenario("acks-1-leader-crash.json");
}

#[test]
fn unclean_election() {
    check_scenario("unclean-election.json");
}

#[test]
fn consumer_truncation() {
    check_scenario("consumer-truncation.json");
}

#[test]
fn clean_election() {
    check_scenario("clean-election.json");
}

#[test]
fn same_key_same_partition() {
    check_scenario("same-key-same-partition.json");
}

#[test]
fn retries_in_flight_5() {
    check_scenario("retries-in-flight-5.json");
}

#[test]
fn retries_in_flight_1() {
    check_scenario("retries-in-flight-1.json");
}

#[test]
fn follower_truncation() {
    check_scenario("follower-truncation.json");
}

#[test]
fn fast_leader_failover() {
    check_scenario("fast-leader-failover.json");
}

#[test]
fn idempotence_on() {
    check_scenario("idempotence-on.json");
}

#[test]
fn idempotence_off() {
    check_scenario("idempotence-off.json");
}

#[test]
fn buffer_full_unreachable() {
    check_scenario("buffer-full-unreachable.json");
}

#[test]
fn linger_0() {
    check_scenario("linger-0.json");
}

#[test]
fn linger_50() {
    check_scenario("linger-50.json");
}

/// C8 and C9 side by side: waiting 50 ms fills batches (more records per batch, a
/// better compression rate, fewer bytes sent) and costs send latency.
#[test]
fn linger_trades_latency_for_batch_size_and_compression() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let seeds: Vec<u64> = (0..5).collect();
    let run = |file: &str| {
        let sc = Scenario::load(&dir.join(file)).unwrap();
        let s = sweep(&sc, &seeds, 2, &[], None);
        assert!(s.ok(), "{file}: {:?}", s.seeds_with);
        s.producer.mean()
    };
    let (l0, l50) = (run("linger-0.json"), run("linger-50.json"));
    assert!(
        l50.records_per_batch > 5.0 * l0.records_per_batch,
        "{l0:?}\n{l50:?}"
    );
    assert!(
        l50.compression_rate < l0.compression_rate - 0.1,
        "{l0:?}\n{l50:?}"
    );
    assert!(
        l50.metrics.outgoing_bytes < l0.metrics.outgoing_bytes,
        "{l0:?}\n{l50:?}"
    );
    assert!(l50.latency_p50_ms > l0.latency_p50_ms, "{l0:?}\n{l50:?}");
    assert_eq!(l0.metrics.records, l50.metrics.records, "same workload");
}

#[test]
fn group_through_faults() {
    check_scenario("group-through-faults.json");
}

#[test]
fn at_least_once_crash() {
    check_scenario("at-least-once-crash.json");
}

#[test]
fn at_most_once_crash() {
    check_scenario("at-most-once-crash.json");
}

#[test]
fn dedup_store() {
    check_scenario("dedup-store.json");
}

#[test]
fn auto_commit_crash() {
    check_scenario("auto-commit-crash.json");
}

#[test]
fn session_timeout() {
    check_scenario("session-timeout.json");
}

#[test]
fn max_poll_interval() {
    check_scenario("max-poll-interval.json");
}

#[test]
fn coordinator_failover() {
    check_scenario("coordinator-failover.json");
}

#[test]
fn zombie_member() {
    check_scenario("zombie-member.json");
}

#[test]
fn group_chaos() {
    check_scenario("group-chaos.json");
}

#[test]
fn static_member_restart() {
    check_scenario("static-member-restart.json");
}

#[test]
fn static_member_timeout() {
    check_scenario("static-member-timeout.json");
}

/// C18: the paused member is evicted and the group rebalances within
/// session.timeout.ms plus a heartbeat interval (and the rejoin round) of the pause.
#[test]
fn exactly_once_pipeline() {
    check_scenario_seeds("exactly-once-pipeline.json", 15);
}

/// Transaction version 2 adds partitions on the broker whatever
/// `transaction.partition.verification.enable` says (found by the mutation run).
#[test]
fn tv2_verification_off() {
    check_scenario_seeds("tv2-verification-off.json", 15);
}

/// Idempotent producers whose processes crash and whose connections are reset,
/// delayed and slowed: nothing is written twice within a producer session.
#[test]
fn producer_crash_idempotent() {
    check_scenario_seeds("producer-crash-idempotent.json", 8);
    check_scenario_seeds("producer-crash-no-resend.json", 6);
}

/// A produce held in the network past its transaction's abort (the `delay` fault):
/// refused by KIP-890 part 1's verification under transaction version 1, appended and
/// committed with the next transaction without it, refused by the epoch under version 2.
#[test]
fn late_produce() {
    check_scenario_seeds("late-produce.json", 8);
    check_scenario_seeds("late-produce-verification-off.json", 8);
    check_scenario_seeds("late-produce-tv2.json", 8);
}

/// KAFKA-17754: a commit held in the network ends the next transaction under
/// transaction version 1 (torn transactions, inputs processed twice); version 2's
/// epoch bump per transaction fences it.
#[test]
fn late_endtxn() {
    check_scenario_seeds("late-endtxn.json", 6);
    check_scenario_seeds("late-endtxn-tv2.json", 6);
}

/// The coordinator aborts a transaction open past `transaction.timeout.ms` (found by
/// the mutation run: no shipped scenario let one time out).
#[test]
fn txn_timeout_abort() {
    check_scenario_seeds("txn-timeout-abort.json", 15);
}

/// `offsetsForTimes` deep inside the log answers the earliest offset at or after the
/// target (found by the mutation run: lookups near the log end hid a wrong search).
#[test]
fn offsets_for_times() {
    check_scenario("offsets-for-times.json");
}

#[test]
fn at_least_once_pipeline() {
    check_scenario_seeds("at-least-once-pipeline.json", 15);
}

#[test]
fn zombie_fencing() {
    check_scenario_seeds("zombie-fencing.json", 15);
}

#[test]
fn read_committed() {
    check_scenario_seeds("read-committed.json", 15);
}

#[test]
fn read_uncommitted() {
    check_scenario_seeds("read-uncommitted.json", 15);
}

#[test]
fn external_sink() {
    check_scenario_seeds("external-sink.json", 15);
}

#[test]
fn txn_coordinator_failover() {
    check_scenario_seeds("txn-coordinator-failover.json", 15);
}

#[test]
fn hanging_transaction() {
    check_scenario_seeds("hanging-transaction.json", 15);
}

#[test]
fn lso_stall() {
    check_scenario_seeds("lso-stall.json", 15);
}

#[test]
fn transaction_markers() {
    check_scenario_seeds("transaction-markers.json", 15);
}

#[test]
fn session_timeout_rebalances_within_the_timeout_plus_a_heartbeat() {
    let sc = Scenario::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/session-timeout.json"),
    )
    .unwrap();
    let (pause_at, session, heartbeat) = (15_000, 10_000, 3_000);
    for seed in 0..5 {
        let (report, out) = kafkasim::drive::runner::run_seed(&sc, seed, &[]);
        assert_eq!(report.verdict, "pass", "seed {seed}");
        let (out, _) = out.unwrap();
        let rebalanced = out
            .history
            .entries
            .iter()
            .find_map(|e| match &e.op {
                kafkasim::history::Op::Assigned { generation, .. }
                    if *generation > 1 && e.invoke_ms > pause_at =>
                {
                    Some(e.invoke_ms)
                }
                _ => None,
            })
            .expect("a rebalance after the pause");
        let delay = rebalanced - pause_at;
        assert!(
            delay >= session && delay <= session + heartbeat + 1_000,
            "seed {seed}: rebalanced {delay} ms after the pause"
        );
    }
}

/// C17: after each crash about one auto.commit.interval.ms of the crashed member's
/// records is processed again, not more.
#[test]
fn auto_commit_reprocessing_is_bounded_by_the_commit_interval() {
    let sc = Scenario::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/auto-commit-crash.json"),
    )
    .unwrap();
    let crashes = 3.0;
    let rate = sc.workload.rate_per_sec;
    let interval_s = 5.0;
    for seed in 0..5 {
        let (report, _) = kafkasim::drive::runner::run_seed(&sc, seed, &[]);
        let again = report.anomalies.get("reprocessing").copied().unwrap_or(0) as f64;
        // A crashed member owns at most half the partitions; allow 1.5 intervals.
        let bound = crashes * rate * 0.5 * interval_s * 1.5;
        assert!(
            again > 0.0 && again <= bound,
            "seed {seed}: {again} records processed again, bound {bound}"
        );
    }
}

/// C29: the pipeline figures of the throughput scenarios, side by side. On a small
/// stream transactions cost no throughput (both modes keep up) but add the transaction
/// APIs' requests; on a busy one, large transactions cost little against at-least-once,
/// and as transactions get smaller and more numerous the broker requests of the
/// transaction APIs per output grow and throughput falls.
#[test]
fn throughput_scenarios_show_what_transactions_cost() {
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let seeds: Vec<u64> = (0..2).collect();
    let figures = |file: &str| {
        let sc = Scenario::load(
            &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("scenarios")
                .join(file),
        )
        .unwrap();
        let s = sweep(&sc, &seeds, jobs, &[], None);
        assert!(s.ok(), "{file}: {:?} {:?}", s.failures, s.seeds_with);
        s.pipeline.mean()
    };
    let small_eos = figures("throughput-small-exactly-once.json");
    let small_alo = figures("throughput-small-at-least-once.json");
    let busy_alo = figures("throughput-busy-at-least-once.json");
    let busy_500 = figures("throughput-busy-exactly-once.json");
    let busy_100 = figures("throughput-busy-exactly-once-100.json");
    let busy_20 = figures("throughput-busy-exactly-once-20.json");
    let within = |a: f64, b: f64, pct: f64| (a - b).abs() <= b * pct / 100.0;
    assert!(
        within(small_eos.outputs_per_sec, small_alo.outputs_per_sec, 5.0),
        "small stream: {small_eos:?} vs {small_alo:?}"
    );
    assert!(
        small_eos.txn_requests_per_1000_outputs()
            > 10.0 * small_alo.txn_requests_per_1000_outputs().max(1.0)
    );
    assert!(
        busy_500.outputs_per_sec >= 0.9 * busy_alo.outputs_per_sec,
        "large transactions: {busy_500:?} vs {busy_alo:?}"
    );
    assert!(busy_100.outputs_per_sec < busy_500.outputs_per_sec);
    assert!(busy_20.outputs_per_sec < 0.5 * busy_100.outputs_per_sec);
    assert!(
        busy_20.transactions > busy_100.transactions
            && busy_100.transactions > busy_500.transactions
    );
    assert!(
        busy_20.txn_requests_per_1000_outputs() > busy_100.txn_requests_per_1000_outputs()
            && busy_100.txn_requests_per_1000_outputs() > busy_500.txn_requests_per_1000_outputs(),
        "{busy_20:?} {busy_100:?} {busy_500:?}"
    );
}

/// Every claim C1-C31 has a scenario (or a configuration Kafka refuses, for C15),
/// except those on `claims::NOT_YET_COVERED`; and no claim on that list has one, so the
/// list shrinks as scenarios arrive. `kafkasim list` prints the same uncovered claims.
#[test]
fn every_shipped_scenario_has_a_test_and_every_claim_a_scenario_but_the_listed_ones() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("scenarios");
    let tested = include_str!("scenarios.rs");
    let mut covered = Vec::new();
    for p in collect_paths(std::slice::from_ref(&dir)).unwrap() {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            tested.contains(&format!("\"{name}\"")),
            "scenario {name} has no test in tests/scenarios.rs"
        );
        covered.extend(Scenario::load(&p).unwrap().claims);
    }
    // C15 is shown by configurations that must be refused (tests/cli.rs); the fourth,
    // an unknown topic config name, claims nothing.
    let refused = claims::refused_configurations(&root.join("examples/invalid")).unwrap();
    assert_eq!(refused.len(), 4, "{refused:?}");
    for (_, cs) in refused {
        covered.extend(cs);
    }
    let not_yet: Vec<String> = claims::NOT_YET_COVERED
        .iter()
        .map(|(c, _)| c.to_string())
        .collect();
    for c in claims::all() {
        let has = covered.contains(&c);
        let listed = not_yet.contains(&c);
        assert!(
            has || listed,
            "claim {c} has no scenario (add one, or list it in claims::NOT_YET_COVERED)"
        );
        assert!(
            !(has && listed),
            "claim {c} now has a scenario: remove it from claims::NOT_YET_COVERED"
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kafkasim"))
        .arg("list")
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    // `list` prints `-` when every claim is covered.
    let listed = if not_yet.is_empty() {
        "-".to_string()
    } else {
        not_yet.join(" ")
    };
    let line = format!("claims not covered: {listed}");
    assert!(
        stdout.lines().any(|l| l == line),
        "`{line}` not in:\n{stdout}"
    );
}

/// Coordinator failover: the members move to the new coordinator by themselves, the
/// members that rejoin afterwards read committed offsets it loaded from the log (every
/// partition has one), and processing goes on after the second crash.
#[test]
fn coordinator_failover_keeps_committed_offsets() {
    use kafkasim::history::Op;
    let sc = Scenario::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/coordinator-failover.json"),
    )
    .unwrap();
    let (first_crash, second_crash_end) = (12_000, 35_000);
    for seed in 0..3 {
        let (report, out) = kafkasim::drive::runner::run_seed(&sc, seed, &[]);
        assert_eq!(
            report.verdict, "pass",
            "seed {seed}: {:?}",
            report.anomalies
        );
        let history = out.unwrap().0.history;
        let coordinators: std::collections::BTreeSet<&str> = history
            .entries
            .iter()
            .filter_map(|e| match &e.op {
                Op::MemberEvent { event, .. } => {
                    event.strip_prefix("discovered group coordinator ")
                }
                _ => None,
            })
            .collect();
        assert!(coordinators.len() >= 2, "seed {seed}: {coordinators:?}");
        let fetched_after: Vec<_> = history
            .entries
            .iter()
            .filter(|e| e.invoke_ms > first_crash)
            .filter_map(|e| match &e.op {
                Op::FetchCommitted { offsets, .. } => Some(offsets),
                _ => None,
            })
            .collect();
        assert!(
            !fetched_after.is_empty(),
            "seed {seed}: no rejoin read offsets"
        );
        assert!(
            fetched_after
                .iter()
                .all(|o| o.iter().all(|(_, c)| c.is_some_and(|c| c > 0))),
            "seed {seed}: {fetched_after:?}"
        );
        assert!(
            history
                .entries
                .iter()
                .any(|e| matches!(e.op, Op::Processed { .. }) && e.invoke_ms > second_crash_end),
            "seed {seed}: processing went on"
        );
    }
}

/// A pipeline instance that stopped after its last allowed producer was fenced keeps a
/// closed producer: no timers, so the run reaches its end (no host spin).
#[test]
fn stopped_pipeline_timer_spin() {
    check_scenario_seeds("stopped-pipeline-timer-spin.json", 15);
}

/// An answer goes back on the connection of the request: a broker paused while the
/// requester crashed and restarted does not answer the new process.
#[test]
fn stale_response_to_restarted_process() {
    check_scenario_seeds("stale-response-to-restarted-process.json", 15);
}

/// An evicted (zombie) instance's sendOffsetsToTransaction carries its last generation
/// and member id and is refused: its transaction aborts, no output twice.
#[test]
fn eos_zombie_generation() {
    check_scenario_seeds("eos-zombie-generation.json", 15);
}

/// After a transaction end whose outcome is unknown, the instance restarts from the
/// committed offsets, not from its local positions: no output twice.
#[test]
fn pipeline_rewind_after_unknown_commit() {
    check_scenario_seeds("pipeline-rewind-after-unknown-commit.json", 15);
}

/// KIP-279 / KIP-595: three leader moves in 280 ms; followers truncate over as many
/// diverging-epoch rounds as the history needs.
#[test]
fn kip279_three_moves() {
    check_scenario("kip279-three-moves.json");
}

/// A consumer's high watermark going back (a deposed leader answering an old fetch, a
/// new leader whose high watermark lags) is a client event, as in Kafka.
#[test]
fn stale_fetch_from_deposed_leader_hw() {
    check_scenario_seeds("stale-fetch-from-deposed-leader-hw.json", 15);
}

/// A leaderless partition while positions await KIP-320 validation: the client's
/// metadata asks again on LEADER_NOT_AVAILABLE (`Metadata.handleMetadataResponse`), so
/// members validate and catch up once a leader returns.
#[test]
fn leaderless_partition_metadata() {
    check_scenario("leaderless-partition-metadata.json");
}

/// A zombie leader (cut off from the controller and its followers, reachable by
/// producers) keeps leading on stale metadata, as a KRaft broker does: with `acks=1`
/// it acknowledges writes that its truncation later loses (`lost-write` expected).
#[test]
fn zombie_leader_acks_1() {
    check_scenario("zombie-leader-acks-1.json");
}

/// The same zombie leader with `acks=all` and `min.insync.replicas=2`: its high
/// watermark cannot move without its followers, so nothing it takes is acknowledged.
#[test]
fn zombie_leader_acks_all() {
    check_scenario("zombie-leader-acks-all.json");
}

/// No send() blocks (32 MiB buffer, cached metadata): accumulator expiries are
/// `expired-unsent`, never `send-timeout` (forbidden).
#[test]
fn send_timeout_without_blocking() {
    check_scenario("send-timeout-without-blocking.json");
}

/// C1: records carry headers end to end (producer, broker log, fetch, consumer): no
/// `header-mismatch` while leaders move and brokers crash.
#[test]
fn record_headers() {
    check_scenario("record-headers.json");
}

/// A fenced instance's `EndTxn` arriving while the fence's abort is written is answered
/// `PRODUCER_FENCED` (Kafka's `TransactionCoordinator.endTransaction`), no panic.
#[test]
fn fenced_endtxn_during_epoch_fence() {
    check_scenario_seeds("fenced-endtxn-during-epoch-fence.json", 15);
}

/// A fenced producer's held `TxnOffsetCommit` is refused (`INVALID_PRODUCER_EPOCH`,
/// Kafka's `ProducerAppendInfo.checkProducerEpoch`): the successor's commit never
/// commits the zombie's offsets.
#[test]
fn zombie_txn_offset_commit_epoch() {
    check_scenario_seeds("zombie-txn-offset-commit-epoch.json", 15);
}

/// Batches behind a transaction's refused first batch get OUT_OF_ORDER_SEQUENCE_NUMBER
/// from the verification's lowest sequence (Kafka 4.x never answers
/// UNKNOWN_PRODUCER_ID on append) and are retried without a bump: no abort.
#[test]
fn unknown_producer_id_spurious_abort() {
    check_scenario_seeds("unknown-producer-id-spurious-abort.json", 15);
}

/// A follower that led an epoch without appending, then appends a batch of the older
/// epoch from a fetch answered before (same fetch offset): the epoch cache drops the
/// newer, empty entry as Kafka's `LeaderEpochFileCache.assign`
/// (`maybeTruncateNonMonotonicEntries`) does, no panic (explore seed 863).
#[test]
fn explore_863_epoch_cache() {
    check_scenario("explore-863-epoch-cache.json");
}

/// A batch that expires while its request is in flight is indefinite, not failed
/// (Kafka's `Sender.getExpiredInflightBatches`: the broker may still append it): the
/// paused leader appends it on resuming and no read is a `phantom-read`.
#[test]
fn expired_in_flight_is_indefinite() {
    check_scenario("expired-in-flight-is-indefinite.json");
}

/// An at-least-once pipeline whose output expired at `delivery.timeout.ms` processes
/// the batch again instead of committing past it: no `output-missing` (explore seed
/// 4872).
#[test]
fn explore_4872_alo_failed_output() {
    check_scenario("explore-4872-alo-failed-output.json");
}

/// A read_uncommitted exactly-once pipeline that replaces its producer while a
/// committed transaction's markers are held waits for stable offsets (KIP-447:
/// `requireStable` whatever the isolation level): no `output-duplicate` (explore seed
/// 40718, and the first seeds of its scenario).
#[test]
fn explore_40718_stable_offsets() {
    let mut on = seeds(15);
    on.push(40718);
    check_scenario_on("explore-40718-stable-offsets.json", &on);
}

/// Explore seed 60377: a restarted broker serves clients only once unfenced, so it
/// appends nothing at its old leader epoch and the consumers see the recovery's cut
/// (the seed itself, and the first seeds of its scenario).
#[test]
fn explore_60377_serve_once_unfenced() {
    let mut on = seeds(15);
    on.push(60377);
    check_scenario_on("explore-60377-serve-once-unfenced.json", &on);
}

/// Explore seed 116980: a transaction coordinator restarted within its broker session
/// completes a `PrepareCommit` only it has, and the coordinator elected after the
/// session expires aborts the same transaction: Kafka 4.x's own behaviour (the
/// scenario's description gives the classes). The seed shows the torn transaction,
/// excused by its own history and not a violation; the first seeds keep exactly-once.
#[test]
fn explore_116980_unreplicated_prepare() {
    use kafkasim::history::Op;
    let file = "explore-116980-unreplicated-prepare.json";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(file);
    let scenario = Scenario::load(&path).expect("a shipped scenario");
    let (report, out) = kafkasim::drive::runner::run_seed(&scenario, 116980, &[]);
    let (out, _) = out.expect("no panic");
    assert!(out.history.entries.iter().any(|e| matches!(
        &e.op,
        Op::TxnLoadedUnreplicated { transactional_id, state, .. }
            if transactional_id == "etl-txn-0" && state == "PrepareCommit"
    )));
    for kind in ["partial-commit", "output-missing"] {
        assert!(report.anomalies.contains_key(kind), "{kind} shown");
        assert!(report.excused.contains_key(kind), "{kind} excused");
    }
    assert!(report.violated.is_empty(), "{:?}", report.violated);
    check_scenario_on(file, &seeds(15));
}

#[test]
fn power_loss_all_default_flush() {
    check_scenario("power-loss-all-default-flush.json");
}

#[test]
fn power_loss_all_flush_messages_1() {
    check_scenario("power-loss-all-flush-messages-1.json");
}

#[test]
fn power_loss_drawn_flush_messages_1() {
    check_scenario("power-loss-drawn-flush-messages-1.json");
}

#[test]
fn power_loss_last_replica_standing() {
    check_scenario("power-loss-last-replica-standing.json");
}

#[test]
fn power_loss_last_replica_standing_elr() {
    check_scenario("power-loss-last-replica-standing-elr.json");
}

/// KAFKA-15583: the high watermark stays while the ISR is below `min.insync.replicas`,
/// so an eligible leader replica holds everything a consumer read (the catalogue's
/// `high-watermark-under-min-isr` shows `inconsistent-offsets` here on every seed).
#[test]
fn elr_high_watermark_min_isr() {
    check_scenario("elr-high-watermark-min-isr.json");
}

/// KIP-903: a fetch from a follower's previous incarnation never vouches for the new
/// one (the catalogue's `no-broker-epoch-in-fetch` loses writes here on every seed).
#[test]
fn power_loss_stale_fetch() {
    check_scenario_seeds("power-loss-stale-fetch.json", 10);
}

/// The README's claim, seed by seed: with Kafka's default flush settings a whole-cluster
/// power loss loses acknowledged writes on every seed, and the same run with
/// `flush.messages=1` on none; what each broker lost is in the history.
#[test]
fn a_whole_cluster_power_loss_loses_writes_on_every_seed_unless_flushed() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let lossy = Scenario::load(&root.join("power-loss-all-default-flush.json")).unwrap();
    let flushed = Scenario::load(&root.join("power-loss-all-flush-messages-1.json")).unwrap();
    for seed in 0..5 {
        let (report, out) = kafkasim::drive::runner::run_seed(&lossy, seed, &[]);
        assert!(report.anomalies.contains_key("lost-write"), "seed {seed}");
        let (out, _) = out.expect("no panic");
        let losses = out
            .history
            .entries
            .iter()
            .filter(|e| matches!(e.op, kafkasim::history::Op::LogPowerLoss { .. }))
            .count();
        assert!(losses >= 3, "seed {seed}: every broker lost its page cache");
        // The idempotent producer gets past the brokers' lost producer state: each
        // partition's gap bumps the epoch (KIP-360), and every send is acknowledged in
        // the end (seed 1 once left 190 sends retrying the old epoch for good).
        let unacked = out
            .history
            .entries
            .iter()
            .filter(|e| matches!(e.op, kafkasim::history::Op::Send { .. }))
            .filter(|e| e.outcome != kafkasim::history::Outcome::Ok)
            .count();
        assert_eq!(unacked, 0, "seed {seed}: sends never acknowledged");
        let (report, _) = kafkasim::drive::runner::run_seed(&flushed, seed, &[]);
        assert!(
            report.anomalies.is_empty(),
            "seed {seed}: {:?}",
            report.anomalies
        );
    }
}

/// Segment rolls flush: with 4 KiB segments (`segment.bytes`) a whole-cluster power loss
/// takes only the active segment's unflushed records, never more than with Kafka's 1 GiB
/// and fewer over the seeds (on a seed where the elected replica's page cache was
/// written back recently, its loss already fits in one small segment).
#[test]
fn small_segments_bound_what_a_power_loss_takes() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let lossy = Scenario::load(&root.join("power-loss-all-default-flush.json")).unwrap();
    let mut small = lossy.clone();
    small.topics[0].config.segment_bytes = Some(4096);
    let lost = |sc: &Scenario, seed| {
        let (report, _) = kafkasim::drive::runner::run_seed(sc, seed, &[]);
        report.anomalies.get("lost-write").copied().unwrap_or(0)
    };
    let (mut all_default, mut all_small) = (0, 0);
    for seed in 0..3 {
        let (default, small) = (lost(&lossy, seed), lost(&small, seed));
        assert!(
            0 < small && small <= default,
            "seed {seed}: {small} vs {default}"
        );
        all_default += default;
        all_small += small;
    }
    assert!(all_small < all_default, "{all_small} vs {all_default}");
}

#[test]
fn disk_full_leader() {
    check_scenario_seeds("disk-full-leader.json", 10);
}

#[test]
fn disk_faults_drawn() {
    check_scenario_seeds("disk-faults-drawn.json", 10);
}

#[test]
fn crash_then_disk_failure() {
    check_scenario_seeds("crash-then-disk-failure.json", 5);
}

/// On every seed the leader on a full disk halts at its next write (`log_dir_failure`
/// on its lane, `No space left on device`) and the one whose disk fails halts at once
/// (`Input/output error`), each after the fault started; each partition it led gets a
/// new leader from the ISR (a clean election), and the halted broker comes back into
/// the ISR.
#[test]
fn disk_faults_halt_the_broker_and_move_leadership_visibly() {
    use kafkasim::history::Op;
    use kafkasim::kafka::protocol::NodeId;
    for (seed, history) in clean_histories("disk-full-leader.json", 3)
        .iter()
        .enumerate()
    {
        let halts: Vec<(NodeId, u64, &str)> = history
            .entries
            .iter()
            .filter_map(|e| match &e.op {
                Op::LogDirFailure { error } => Some((e.process, e.invoke_ms, error.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(halts.len(), 2, "seed {seed}: {halts:?}");
        let (full, failed) = (halts[0], halts[1]);
        assert!(
            full.2.contains("No space left on device") && full.1 >= 15_500,
            "seed {seed}: {full:?}"
        );
        assert!(
            failed.2.contains("Input/output error") && failed.1 == 35_000,
            "seed {seed}: {failed:?}"
        );
        for (broker, at, _) in [full, failed] {
            let NodeId::Broker(b) = broker else {
                panic!("seed {seed}: {broker} halted");
            };
            let changes: Vec<(bool, bool)> = history
                .entries
                .iter()
                .filter(|e| e.invoke_ms > at)
                .filter_map(|e| match &e.op {
                    Op::PartitionChange { isr, unclean, .. } => Some((isr.contains(&b), *unclean)),
                    _ => None,
                })
                .collect();
            assert!(
                changes.iter().any(|(in_isr, _)| !in_isr),
                "seed {seed}: broker {b} never left an ISR"
            );
            assert!(
                changes.iter().any(|(in_isr, _)| *in_isr),
                "seed {seed}: broker {b} never came back"
            );
            assert!(
                changes.iter().all(|c| !c.1),
                "seed {seed}: unclean election"
            );
        }
    }
}

#[test]
fn corrupt_on_recovery() {
    check_scenario_seeds("corrupt-on-recovery.json", 10);
}

#[test]
fn corrupt_below_recovery_point() {
    check_scenario_seeds("corrupt-below-recovery-point.json", 10);
}

/// A bit flip recovery validates is found by its CRC-32C and cut (history
/// `log_recovered`); one below the recovery point is served, and a consumer's poll
/// fails on it (`check.crcs`) without any divergence or loss being counted.
#[test]
fn corruption_is_detected_on_recovery_or_met_by_readers() {
    use kafkasim::history::{Op, Outcome};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let on_recovery = Scenario::load(&root.join("corrupt-on-recovery.json")).unwrap();
    for seed in 0..3 {
        let (_, out) = kafkasim::drive::runner::run_seed(&on_recovery, seed, &[]);
        let (out, _) = out.expect("no panic");
        let ops = &out.history.entries;
        let corrupted = ops
            .iter()
            .filter(|e| matches!(e.op, Op::LogCorrupted { .. }))
            .count();
        let detected = ops
            .iter()
            .filter(|e| matches!(&e.op, Op::LogRecovered { reason, .. } if reason.contains("CRC mismatch")))
            .count();
        assert!(corrupted > 0, "seed {seed}: no bit flipped");
        assert_eq!(
            detected, corrupted,
            "seed {seed}: every flip is found on recovery"
        );
    }
    let below = Scenario::load(&root.join("corrupt-below-recovery-point.json")).unwrap();
    let mut failed_polls = 0;
    for seed in 0..5 {
        let (report, out) = kafkasim::drive::runner::run_seed(&below, seed, &[]);
        for kind in ["replica-divergence", "lost-write", "undetected-truncation"] {
            assert!(!report.anomalies.contains_key(kind), "seed {seed}: {kind}");
        }
        let (out, _) = out.expect("no panic");
        failed_polls += out
            .history
            .entries
            .iter()
            .filter(|e| {
                matches!(e.op, Op::Poll { .. })
                    && matches!(&e.outcome, Outcome::Fail { error } if error.contains("CorruptRecordException"))
            })
            .count();
    }
    assert!(failed_polls > 0, "no consumer met the corrupt batch");
}

#[test]
fn crash_then_power_loss() {
    check_scenario_seeds("crash-then-power-loss.json", 10);
}

/// Runs the shipped scenario `file` on seeds `0..n`, asserts that none shows an
/// anomaly, and returns each run's history.
fn clean_histories(file: &str, n: u64) -> Vec<kafkasim::history::History> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let sc = Scenario::load(&root.join(file)).unwrap();
    (0..n)
        .map(|seed| {
            let (report, out) = kafkasim::drive::runner::run_seed(&sc, seed, &[]);
            assert!(
                report.anomalies.is_empty(),
                "seed {seed}: {:?}",
                report.anomalies
            );
            out.expect("no panic").0.history
        })
        .collect()
}

#[test]
fn retention_slow_consumer() {
    check_scenario_seeds("retention-slow-consumer.json", 10);
}

/// Retention overtakes the paused consumer on every seed: a replica's log start moves
/// (recorded), the consumer's next fetch is OFFSET_OUT_OF_RANGE and it resets to the
/// log start, visibly (a Seek), and nothing is counted lost.
#[test]
fn retention_resets_a_lagging_consumer_visibly() {
    for (seed, history) in clean_histories("retention-slow-consumer.json", 3)
        .iter()
        .enumerate()
    {
        let resets = history
            .entries
            .iter()
            .filter(|e| {
                matches!(&e.op, kafkasim::history::Op::Seek { reason, .. }
                    if reason.starts_with("OFFSET_OUT_OF_RANGE"))
            })
            .count();
        assert!(resets >= 1, "seed {seed}: no OFFSET_OUT_OF_RANGE reset");
        assert!(history.entries.iter().any(|e| matches!(
            &e.op,
            kafkasim::history::Op::LogStartOffsetIncremented { reason, .. }
                if reason == "segment-deletion"
        )));
    }
}

#[test]
fn delete_records_slow_consumer() {
    check_scenario_seeds("delete-records-slow-consumer.json", 10);
}

/// `DeleteRecords` overtakes the paused consumer on both partitions on every seed: each
/// leader moves its log start (`client-record-deletion`), its followers copy it, the
/// consumer's next fetches are OFFSET_OUT_OF_RANGE and it resets to the new log
/// starts, visibly, and nothing is counted lost.
#[test]
fn delete_records_resets_a_lagging_consumer_visibly() {
    use kafkasim::history::Op;
    for (seed, history) in clean_histories("delete-records-slow-consumer.json", 3)
        .iter()
        .enumerate()
    {
        let resets: std::collections::BTreeSet<String> = history
            .entries
            .iter()
            .filter_map(|e| match &e.op {
                Op::Seek {
                    partition, reason, ..
                } if reason.starts_with("OFFSET_OUT_OF_RANGE") => Some(partition.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(resets.len(), 2, "seed {seed}: resets on {resets:?}");
        for reason in ["client-record-deletion", "leader-offset-incremented"] {
            assert!(
                history.entries.iter().any(|e| matches!(
                    &e.op,
                    Op::LogStartOffsetIncremented { reason: r, .. } if r == reason
                )),
                "seed {seed}: no {reason}"
            );
        }
    }
}

/// KIP-360: a transactional producer whose state a partition expired between two of
/// its transactions goes on at its next sequence there, and nothing aborts (the
/// catalogue's `unknown-producer-id-on-append` aborts on every seed).
#[test]
fn producer_id_expiry_transactional() {
    check_scenario_seeds("producer-id-expiry-transactional.json", 6);
}

#[test]
fn producer_id_expiry() {
    check_scenario_seeds("producer-id-expiry.json", 10);
}

#[test]
fn producer_id_expiry_duplicate() {
    check_scenario_seeds("producer-id-expiry-duplicate.json", 5);
}

#[test]
fn retention_evicts_producer() {
    check_scenario_seeds("retention-evicts-producer.json", 10);
}

/// An assign-mode consumer's process crashes: the new consumer starts again from
/// `auto.offset.reset`, and re-reading from there is no anomaly.
#[test]
fn assign_consumer_crash() {
    check_scenario_seeds("assign-consumer-crash.json", 5);
}

/// A producer clock behind, then stepped ahead: offsetsForTimes answers skip records
/// sent after the target and land on records sent before it, by Kafka's rule.
#[test]
fn clock_skew_offsets_for_times() {
    check_scenario_seeds("clock-skew-offsets-for-times.json", 6);
}

#[test]
fn clock_skew_retention() {
    check_scenario_seeds("clock-skew-retention.json", 6);
}

/// Brokers' clocks ahead: retention deletes records younger than retention.ms in true
/// time on every seed, and the paused consumer's reset to the log start is visible.
#[test]
fn clock_skew_retention_deletes_early_and_resets_visibly() {
    use kafkasim::history::Op;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let sc = Scenario::load(&root.join("clock-skew-retention.json")).unwrap();
    for seed in 0..2 {
        let (report, out) = kafkasim::drive::runner::run_seed(&sc, seed, &[]);
        let kinds: Vec<&String> = report.anomalies.keys().collect();
        assert_eq!(kinds, ["retention-early-by-clock"], "seed {seed}");
        let history = out.expect("no panic").0.history;
        assert!(history.entries.iter().any(|e| matches!(
            &e.op,
            Op::Seek { reason, .. } if reason.starts_with("OFFSET_OUT_OF_RANGE")
        )));
    }
}

/// Clock offsets, drifts and steps on every kind of node of an exactly-once pipeline
/// run: nothing but what reads wall time changes.
#[test]
fn clock_skew_everywhere() {
    check_scenario_seeds("clock-skew-everywhere.json", 6);
}
