//! Delivery: retries and their backoff, request and delivery timeouts, in-flight limits, acks=0, metadata waits and randomized runs.

use super::*;

#[test]
fn retriable_errors_back_off_exponentially_then_succeed() {
    let md = metadata(&[(0, Some(1), 0)]);
    let (mut p, mut out) = started(config(), &[(0, Some(1), 0)]);
    p.send(0, record(Some("k"), 7), &mut out);
    let first = produces(&take(&mut out));
    assert_eq!(first.len(), 1, "linger.ms=0 sends at once");
    let bytes = first[0].2.partitions[0].1.clone();
    answer_produce(
        &mut p,
        5,
        1,
        first[0].1,
        ErrorCode::NotLeaderOrFollower,
        -1,
        &mut out,
    );
    assert!(
        produces(&take(&mut out)).is_empty(),
        "no resend before the backoff"
    );
    let (t2, second) = until_produce(&mut p, &mut out, &md);
    assert!(
        (5 + 80..=5 + 120).contains(&t2),
        "first backoff 100 ms +/- 20%, resent at {t2}"
    );
    assert_eq!(
        second[0].2.partitions[0].1, bytes,
        "a retry resends the same bytes"
    );
    answer_produce(
        &mut p,
        t2 + 1,
        1,
        second[0].1,
        ErrorCode::RequestTimedOut,
        -1,
        &mut out,
    );
    let (t3, third) = until_produce(&mut p, &mut out, &md);
    assert!(
        (t2 + 1 + 160..=t2 + 1 + 240).contains(&t3),
        "second backoff 200 ms +/- 20%, resent at {t3}"
    );
    answer_produce(&mut p, t3 + 1, 1, third[0].1, ErrorCode::None, 40, &mut out);
    assert_eq!(
        send_ops(&out),
        vec![(7, Some(40), 3, Outcome::Ok, Some(t3 + 1), 0, 0)]
    );
}

#[test]
fn a_timed_out_attempt_makes_the_final_failure_indefinite() {
    let md = metadata(&[(0, Some(1), 0)]);
    let config = ProducerConfig {
        retries: 1,
        ..config()
    };
    let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
    p.send(0, record(None, 9), &mut out);
    let first = produces(&take(&mut out));
    assert_eq!(p.next_timer(), Some(1_000), "wakes at the request deadline");
    p.on_timer(1_000, &mut out);
    let reqs = take(&mut out);
    assert!(produces(&reqs).is_empty());
    assert_eq!(
        metadata_requests(&reqs).len(),
        1,
        "a timeout refreshes metadata"
    );
    respond(
        &mut p,
        1_000,
        1,
        metadata_requests(&reqs)[0].1,
        Response::Metadata(md.clone()),
        &mut out,
    );
    let (_, second) = until_produce(&mut p, &mut out, &md);
    answer_produce(
        &mut p,
        1_200,
        1,
        second[0].1,
        ErrorCode::NotEnoughReplicas,
        -1,
        &mut out,
    );
    let ops = send_ops(&out);
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].2, 2, "two attempts");
    match &ops[0].3 {
        Outcome::Info { reason } => assert!(
            reason.starts_with("NOT_ENOUGH_REPLICAS after 2 attempts"),
            "{reason}"
        ),
        other => panic!("expected info, got {other:?}"),
    }
    // The late answer to the timed-out request is ignored.
    answer_produce(&mut p, 1_300, 1, first[0].1, ErrorCode::None, 0, &mut out);
    assert_eq!(out.history.len(), 1);
    assert_eq!(p.pending(), 0);
}

#[test]
fn only_not_enough_replicas_fails_definitely() {
    let md = metadata(&[(0, Some(1), 0)]);
    let config = ProducerConfig {
        retries: 2,
        ..config()
    };
    let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
    p.send(0, record(None, 1), &mut out);
    let mut reqs = produces(&take(&mut out));
    let mut now = 0;
    for attempt in 1..=3 {
        answer_produce(
            &mut p,
            now + 1,
            1,
            reqs[0].1,
            ErrorCode::NotEnoughReplicas,
            -1,
            &mut out,
        );
        if attempt < 3 {
            (now, reqs) = until_produce(&mut p, &mut out, &md);
        }
    }
    assert_eq!(
        send_ops(&out),
        vec![(
            1,
            None,
            3,
            Outcome::Fail {
                error: "NOT_ENOUGH_REPLICAS".into()
            },
            Some(now + 1),
            0,
            0
        )]
    );
}

#[test]
fn not_leader_is_indefinite_when_retries_run_out() {
    let config = ProducerConfig {
        retries: 0,
        ..config()
    };
    let (_, out) = first_send_answered(config, ErrorCode::NotLeaderOrFollower);
    assert_eq!(
        send_ops(&out)[0].3,
        Outcome::Info {
            reason: "NOT_LEADER_OR_FOLLOWER after 1 attempts".into()
        }
    );
}

#[test]
fn delivery_timeout_fails_a_batch_that_was_never_sent() {
    let md = metadata(&[(0, None, 0)]);
    let (mut p, mut out) = started(config(), &[(0, None, 0)]);
    p.send(0, record(None, 1), &mut out);
    for _ in 0..200 {
        if !out.history.is_empty() {
            break;
        }
        let now = p.next_timer().unwrap();
        assert!(now <= 5_000);
        p.on_timer(now, &mut out);
        let reqs = take(&mut out);
        assert!(produces(&reqs).is_empty(), "no leader, nothing sent");
        for (b, c) in metadata_requests(&reqs) {
            respond(&mut p, now, b, c, Response::Metadata(md.clone()), &mut out);
        }
    }
    assert_eq!(
        send_ops(&out),
        vec![(
            1,
            None,
            0,
            Outcome::Fail {
                error: "TimeoutException: Expiring 1 record(s) for t-0:5000 ms has passed \
                            since batch creation"
                    .into()
            },
            Some(5_000),
            0,
            0
        )]
    );
    // `RecordAccumulator.expiredBatches`: an expiry, not a blocked send().
    assert_eq!(send_timeouts(&out), vec![Some(SendTimeout::Expired)]);
}

#[test]
fn max_block_fails_a_send_whose_topic_never_appears() {
    let mut p = Producer::new(3, config(), Bugs::default(), vec![1, 2], 1);
    let mut out = Outbox::default();
    p.on_start(0, &mut out);
    p.send(10, record(None, 5), &mut out);
    for _ in 0..1_000 {
        if !out.history.is_empty() {
            break;
        }
        let now = p.next_timer().unwrap();
        p.on_timer(now, &mut out);
        out.sends.clear(); // every Metadata request is lost
    }
    assert_eq!(
        send_ops(&out),
        vec![(
            5,
            None,
            0,
            Outcome::Fail {
                error: "TimeoutException: Topic t not present in metadata after 60000 ms.".into()
            },
            Some(60_010),
            10,
            UNKNOWN_PARTITION
        )]
    );
    // `KafkaProducer.waitOnMetadata`: send() itself blocked.
    assert_eq!(
        send_timeouts(&out),
        vec![Some(SendTimeout::BlockedOnMetadata)]
    );
}

#[test]
fn delivery_timeout_expires_a_batch_in_flight() {
    let md = metadata(&[(0, Some(1), 0)]);
    let config = ProducerConfig {
        request_timeout_ms: 4_000,
        delivery_timeout_ms: 4_000,
        ..config()
    };
    let (mut p, mut out) = first_send_answered(config, ErrorCode::NotEnoughReplicas);
    let (_, second) = until_produce(&mut p, &mut out, &md);
    assert_eq!(
        p.next_timer(),
        Some(4_000),
        "wakes at the delivery deadline"
    );
    p.on_timer(4_000, &mut out);
    assert_eq!(
        send_ops(&out),
        vec![(
            1,
            None,
            2,
            Outcome::Info {
                reason: "delivery.timeout.ms expired after 2 attempts".into()
            },
            Some(4_000),
            0,
            0
        )]
    );
    answer_produce(&mut p, 4_001, 1, second[0].1, ErrorCode::None, 0, &mut out);
    assert_eq!(out.history.len(), 1, "the late success is ignored");
}

#[test]
fn one_in_flight_request_mutes_the_partition() {
    let config = ProducerConfig {
        batch_size: 0,
        max_in_flight_requests_per_connection: 1,
        ..config()
    };
    let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
    p.send(0, record(None, 1), &mut out);
    p.send(0, record(None, 2), &mut out);
    let reqs = produces(&take(&mut out));
    assert_eq!(reqs.len(), 1, "the second batch waits for the first");
    assert_eq!(values(&reqs[0].2.partitions[0].1), vec![1]);
    // The leader moves to broker 2 while the first batch is in flight to broker 1:
    // broker 2's connection is free, but the partition stays muted.
    p.metadata.request_update();
    p.on_timer(100, &mut out);
    let md = metadata_requests(&take(&mut out));
    respond(
        &mut p,
        100,
        md[0].0,
        md[0].1,
        Response::Metadata(metadata(&[(0, Some(2), 1)])),
        &mut out,
    );
    assert!(
        produces(&take(&mut out)).is_empty(),
        "muted while a batch is in flight"
    );
    answer_produce(&mut p, 101, 1, reqs[0].1, ErrorCode::None, 0, &mut out);
    let reqs = produces(&take(&mut out));
    assert_eq!(reqs.len(), 1, "unmuted by the response");
    assert_eq!(reqs[0].0, 2);
    assert_eq!(values(&reqs[0].2.partitions[0].1), vec![2]);
}

#[test]
fn five_in_flight_requests_can_reorder_a_partition() {
    let md = metadata(&[(0, Some(1), 0)]);
    let config = ProducerConfig {
        batch_size: 0,
        max_in_flight_requests_per_connection: 5,
        ..config()
    };
    let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
    p.send(0, record(None, 1), &mut out);
    p.send(0, record(None, 2), &mut out);
    let reqs = produces(&take(&mut out));
    assert_eq!(reqs.len(), 2, "two batches of one partition in flight");
    assert!(reqs
        .iter()
        .all(|(b, _, r)| *b == 1 && r.partitions[0].0 == tp(0)));
    answer_produce(
        &mut p,
        1,
        1,
        reqs[0].1,
        ErrorCode::NotLeaderOrFollower,
        -1,
        &mut out,
    );
    answer_produce(&mut p, 2, 1, reqs[1].1, ErrorCode::None, 0, &mut out);
    let (_, retry) = until_produce(&mut p, &mut out, &md);
    assert_eq!(values(&retry[0].2.partitions[0].1), vec![1]);
    answer_produce(&mut p, 300, 1, retry[0].1, ErrorCode::None, 1, &mut out);
    let offsets: Vec<(Value, Option<Offset>)> = send_ops(&out).iter().map(|o| (o.0, o.1)).collect();
    assert_eq!(
        offsets,
        vec![(2, Some(0)), (1, Some(1))],
        "claim C12: reordered"
    );
}

#[test]
fn a_request_timeout_fails_every_request_to_that_broker() {
    let config = ProducerConfig {
        batch_size: 0,
        ..config()
    };
    let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
    p.send(0, record(None, 1), &mut out);
    p.send(10, record(None, 2), &mut out);
    let reqs = produces(&take(&mut out));
    assert_eq!(reqs.len(), 2);
    p.on_timer(1_000, &mut out);
    // Both batches were re-enqueued at the front, the newer one last: reversed.
    assert_eq!(p.accumulator.batch_count(), 2);
    let order: Vec<u64> = p.accumulator.batches[&tp(0)]
        .iter()
        .map(|b| b.records[0].value)
        .collect();
    assert_eq!(order, vec![2, 1]);
    answer_produce(&mut p, 1_001, 1, reqs[1].1, ErrorCode::None, 0, &mut out);
    assert!(
        out.history.is_empty(),
        "responses on the closed connection are ignored"
    );
}

#[test]
fn acks_zero_completes_at_send() {
    let config = ProducerConfig {
        acks: Acks::None,
        ..config()
    };
    let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
    p.send(4, record(Some("a"), 1), &mut out);
    let reqs = produces(&take(&mut out));
    assert_eq!(reqs[0].2.acks, Acks::None);
    assert_eq!(
        send_ops(&out),
        vec![(1, None, 1, Outcome::Ok, Some(4), 4, 0)]
    );
    assert_eq!(p.pending(), 0);
    assert_eq!(
        p.next_timer(),
        Some(300_000),
        "nothing in flight: only metadata.max.age.ms"
    );
}

#[test]
fn records_wait_for_metadata_and_keys_pick_partitions() {
    let mut p = Producer::new(3, config(), Bugs::default(), vec![1], 42);
    let mut out = Outbox::default();
    p.on_start(0, &mut out);
    let md = metadata_requests(&take(&mut out));
    let keys = ["a", "b", "c", "d", "e", "f"];
    for (i, k) in keys.iter().enumerate() {
        p.send(1, record(Some(k), i as u64), &mut out);
    }
    assert!(produces(&take(&mut out)).is_empty(), "no metadata yet");
    // The first Metadata did not name `t`: the new topic asks for another one.
    respond(
        &mut p,
        2,
        1,
        md[0].1,
        Response::Metadata(metadata(&[])),
        &mut out,
    );
    assert_eq!(
        p.next_timer(),
        Some(102),
        "metadata retried retry.backoff.ms after the last answer"
    );
    p.on_timer(102, &mut out);
    let md = metadata_requests(&take(&mut out));
    let partitions = [(0, Some(1), 0), (1, Some(2), 0), (2, Some(3), 0)];
    respond(
        &mut p,
        102,
        1,
        md[0].1,
        Response::Metadata(metadata(&partitions)),
        &mut out,
    );
    let reqs = produces(&take(&mut out));
    let mut sent: Vec<(TopicPartition, Vec<u64>)> = Vec::new();
    for (broker, _, req) in &reqs {
        for (tp, bytes) in &req.partitions {
            assert_eq!(*broker, tp.partition + 1, "sent to the leader");
            sent.push((tp.clone(), values(bytes)));
        }
    }
    sent.sort();
    let mut expected: Vec<(TopicPartition, Vec<u64>)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let tp = tp(partition_for_key(k.as_bytes(), 3));
        match expected.iter_mut().find(|(t, _)| *t == tp) {
            Some((_, v)) => v.push(i as u64),
            None => expected.push((tp, vec![i as u64])),
        }
    }
    expected.sort();
    assert_eq!(sent, expected);
}

#[test]
fn metadata_rotates_bootstrap_brokers_and_ignores_stale_epochs() {
    let mut p = Producer::new(3, config(), Bugs::default(), vec![1, 2, 3], 9);
    let mut out = Outbox::default();
    p.metadata.add_topic(&Arc::from("t"));
    p.on_start(0, &mut out);
    let first = metadata_requests(&take(&mut out));
    assert_eq!(p.next_timer(), Some(1_000));
    p.on_timer(1_000, &mut out);
    assert!(
        take(&mut out).is_empty(),
        "retry.backoff.ms after the failure"
    );
    assert_eq!(p.next_timer(), Some(1_100));
    p.on_timer(1_100, &mut out);
    let second = metadata_requests(&take(&mut out));
    assert_eq!(second[0].0, first[0].0 % 3 + 1, "the next bootstrap broker");
    respond(
        &mut p,
        1_100,
        second[0].0,
        second[0].1,
        Response::Metadata(metadata(&[(0, Some(1), 5)])),
        &mut out,
    );
    // A refresh with an older leader epoch does not move the leader.
    p.metadata.request_update();
    p.on_timer(1_200, &mut out);
    let third = metadata_requests(&take(&mut out));
    respond(
        &mut p,
        1_200,
        third[0].0,
        third[0].1,
        Response::Metadata(metadata(&[(0, Some(2), 4)])),
        &mut out,
    );
    p.send(1_200, record(None, 1), &mut out);
    let reqs = produces(&take(&mut out));
    assert_eq!(reqs[0].0, 1);
    assert_eq!(
        p.metadata.due_at(),
        Some(1_200 + 300_000),
        "metadata.max.age.ms"
    );
}

/// Kafka's `Metadata.handleMetadataResponse`: a partition without a leader
/// (LEADER_NOT_AVAILABLE, an `InvalidMetadataException`) asks again after
/// `retry.backoff.ms`, not after `metadata.max.age.ms`, until the partition has one.
#[test]
fn a_leaderless_partition_asks_for_metadata_again_after_the_backoff() {
    let mut cache = MetadataCache::new(vec![1, 2, 3], 0, 300_000, 100);
    let mut net: NetworkClient<()> = NetworkClient::new(crate::actor::Channel::Producer, 1_000);
    let mut out = Outbox::default();
    cache.add_topic(&Arc::from("t"));
    cache.poll(0, &mut net, (), &mut out);
    cache.on_response(10, &metadata(&[(0, Some(1), 3), (1, None, 4)]));
    assert_eq!(cache.leader(&tp(1)), None);
    assert_eq!(
        cache.due_at(),
        Some(110),
        "retry.backoff.ms, not the max age"
    );
    cache.poll(110, &mut net, (), &mut out);
    assert_eq!(cache.due_at(), None, "in flight");
    cache.on_response(120, &metadata(&[(0, Some(1), 3), (1, Some(2), 5)]));
    assert_eq!(cache.leader(&tp(1)), Some((2, 5)));
    assert_eq!(
        cache.due_at(),
        Some(120 + 300_000),
        "every partition led: metadata.max.age.ms"
    );
    // Other partition-level errors that are not InvalidMetadataException do not.
    let mut answer = metadata(&[(0, Some(1), 3), (1, Some(2), 5)]);
    answer.partitions[1].error = ErrorCode::UnknownLeaderEpoch;
    cache.request_update();
    cache.poll(300_120, &mut net, (), &mut out);
    cache.on_response(300_130, &answer);
    assert_eq!(cache.due_at(), Some(300_130 + 300_000));
}

#[test]
fn metadata_avoids_a_broker_with_a_hung_request() {
    let (mut p, mut out) = started(config(), &[(0, Some(1), 0)]);
    p.metadata.bootstrap = vec![1, 2];
    p.send(0, record(None, 1), &mut out);
    assert_eq!(produces(&take(&mut out))[0].0, 1, "in flight to broker 1");
    for next_node in 0..2 {
        p.metadata.next_node = next_node;
        p.metadata.request_update();
        let now = p.next_timer().unwrap();
        assert!(now < 1_000, "before the produce times out");
        p.on_timer(now, &mut out);
        let md = metadata_requests(&take(&mut out));
        assert_eq!(md[0].0, 2, "the least loaded bootstrap broker");
        respond(
            &mut p,
            now,
            2,
            md[0].1,
            Response::Metadata(metadata(&[(0, Some(1), 0)])),
            &mut out,
        );
    }
}

#[test]
fn finish_reports_pending_records() {
    let (mut p, mut out) = started(config(), &[(0, Some(1), 0)]);
    p.send(0, record(None, 1), &mut out);
    p.finish(50, &mut out);
    assert_eq!(
        send_ops(&out),
        vec![(
            1,
            None,
            1,
            Outcome::Info {
                reason: "pending at end of run".into()
            },
            None,
            0,
            0
        )]
    );
    assert_eq!(p.pending(), 0);
}

/// A fake cluster answering at random (success, errors, lost requests, leader moves):
/// every record gets exactly one outcome, acknowledged offsets are unique, and the
/// timer never points at the past.
#[test]
fn randomized_runs_complete_every_record_exactly_once() {
    for seed in 0..30 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let config = ProducerConfig {
            acks: [Acks::None, Acks::Leader, Acks::All][rng.gen_range(0..3)],
            linger_ms: rng.gen_range(0..20),
            batch_size: rng.gen_range(0..300),
            max_in_flight_requests_per_connection: rng.gen_range(1..=5),
            retries: rng.gen_range(0..6),
            ..config()
        };
        let mut p = Producer::new(0, config.clone(), Bugs::default(), vec![1, 2, 3], seed);
        let mut out = Outbox::default();
        let mut leaders: [(BrokerId, LeaderEpoch); 3] = [(1, 0), (2, 0), (3, 0)];
        let mut next_offset = [0i64; 3];
        let mut queue: Vec<(BrokerId, u64, Response)> = Vec::new();
        // value -> (partition, offset) of its last append
        let mut log: BTreeMap<Value, (u32, Offset)> = BTreeMap::new();
        let mut now = 0;
        let mut sent = 0u64;
        p.on_start(now, &mut out);
        for _ in 0..4_000 {
            for (broker, cid, request) in take(&mut out) {
                match request {
                    Request::Metadata(_) => {
                        let parts: Vec<_> = (0..3)
                            .map(|i| (i as u32, Some(leaders[i].0), leaders[i].1))
                            .collect();
                        queue.push((broker, cid, Response::Metadata(metadata(&parts))));
                    }
                    Request::Produce(req) => {
                        // A lost request or response (appended or not).
                        let lost = config.acks == Acks::None || rng.gen_bool(0.1);
                        let mut answers = Vec::new();
                        for (tp, bytes) in &req.partitions {
                            let i = tp.partition as usize;
                            let batch_values = values(bytes);
                            let n = batch_values.len() as i64;
                            let error = if lost {
                                [ErrorCode::None, ErrorCode::NotEnoughReplicas][rng.gen_range(0..2)]
                            } else if leaders[i].0 != broker {
                                ErrorCode::NotLeaderOrFollower
                            } else {
                                [
                                    ErrorCode::None,
                                    ErrorCode::None,
                                    ErrorCode::None,
                                    ErrorCode::NotEnoughReplicas,
                                    ErrorCode::NotEnoughReplicasAfterAppend,
                                    ErrorCode::RequestTimedOut,
                                ][rng.gen_range(0..6)]
                            };
                            let base = next_offset[i];
                            if matches!(
                                error,
                                ErrorCode::None | ErrorCode::NotEnoughReplicasAfterAppend
                            ) {
                                for (j, v) in batch_values.iter().enumerate() {
                                    log.insert(*v, (tp.partition, base + j as i64));
                                }
                                next_offset[i] += n;
                            }
                            answers.push((
                                tp.clone(),
                                error,
                                if error == ErrorCode::None { base } else { -1 },
                            ));
                        }
                        if !lost {
                            queue.push((broker, cid, produce_response(&answers)));
                        }
                    }
                    other => panic!("unexpected request {other:?}"),
                }
            }
            if rng.gen_bool(0.01) {
                let i = rng.gen_range(0..3);
                leaders[i] = (rng.gen_range(1..=3), leaders[i].1 + 1);
            }
            match rng.gen_range(0..10) {
                0..=2 if sent < 300 => {
                    let key = rng
                        .gen_bool(0.5)
                        .then(|| format!("k{}", rng.gen_range(0..10)));
                    p.send(
                        now,
                        ProducerRecord {
                            topic: Arc::from("t"),
                            key,
                            value: sent,
                            headers: Vec::new(),
                        },
                        &mut out,
                    );
                    sent += 1;
                }
                3..=6 if !queue.is_empty() => {
                    let (broker, cid, response) = queue.remove(rng.gen_range(0..queue.len()));
                    respond(&mut p, now, broker, cid, response, &mut out);
                }
                _ => {
                    // Time passes in steps of at most 200 ms; the host fires
                    // the timer once it is due.
                    match p.next_timer() {
                        Some(t) if t <= now + 200 => {
                            now = now.max(t);
                            p.on_timer(now, &mut out);
                        }
                        _ => now += 200,
                    }
                }
            }
            assert!(
                p.next_timer().is_none_or(|t| t > now),
                "seed {seed}: timer in the past"
            );
            now += rng.gen_range(0..3);
        }
        p.finish(now, &mut out);
        let mut seen = vec![0; sent as usize];
        let mut offsets = BTreeSet::new();
        for e in &out.history {
            let Op::Send {
                value,
                offset,
                partition,
                ..
            } = &e.op
            else {
                assert!(matches!(e.op, Op::ProducerMetrics(_)), "{e:?}");
                continue;
            };
            seen[*value as usize] += 1;
            if let Some(o) = offset {
                assert!(
                    offsets.insert((partition.partition, *o)),
                    "seed {seed}: offset {o} twice"
                );
            }
            match &e.outcome {
                Outcome::Ok if config.acks != Acks::None => {
                    assert_eq!(
                        log.get(value),
                        Some(&(partition.partition, offset.unwrap()))
                    );
                }
                Outcome::Fail { error } => {
                    assert!(
                        !log.contains_key(value),
                        "seed {seed}: {value} failed ({error}) but was appended"
                    );
                }
                _ => {}
            }
        }
        assert!(
            seen.iter().all(|n| *n == 1),
            "seed {seed}: every record exactly once"
        );
        assert_eq!(p.pending(), 0);
    }
}
