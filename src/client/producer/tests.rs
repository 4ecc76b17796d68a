//! Unit tests of `client::producer`.

use super::*;
use crate::kafka::protocol::{PartitionMetadata, ProducePartitionResponse};

fn config() -> ProducerConfig {
    ProducerConfig {
        linger_ms: 0,
        request_timeout_ms: 1_000,
        delivery_timeout_ms: 5_000,
        retry_backoff_ms: 100,
        retry_backoff_max_ms: 1_000,
        enable_idempotence: Some(false),
        ..ProducerConfig::default()
    }
}

fn tp(partition: u32) -> TopicPartition {
    TopicPartition::new("t", partition)
}

/// Metadata for topic `t`: (partition, leader, leader epoch).
fn metadata(partitions: &[(u32, Option<BrokerId>, LeaderEpoch)]) -> MetadataResponse {
    MetadataResponse {
        brokers: vec![1, 2, 3],
        partitions: partitions
            .iter()
            .map(|&(p, leader, leader_epoch)| PartitionMetadata {
                tp: tp(p),
                error: if leader.is_some() {
                    ErrorCode::None
                } else {
                    ErrorCode::LeaderNotAvailable
                },
                leader,
                leader_epoch,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2, 3],
            })
            .collect(),
    }
}

/// Takes the requests sent so far: (broker, correlation id, request).
fn take(out: &mut Outbox) -> Vec<(BrokerId, u64, Request)> {
    out.sends
        .drain(..)
        .map(|(to, m)| match (to, m) {
            (
                NodeId::Broker(b),
                Message::Request {
                    correlation_id,
                    request,
                },
            ) => (b, correlation_id, request),
            other => panic!("unexpected send {other:?}"),
        })
        .collect()
}

fn produces(requests: &[(BrokerId, u64, Request)]) -> Vec<(BrokerId, u64, ProduceRequest)> {
    requests
        .iter()
        .filter_map(|(b, c, r)| match r {
            Request::Produce(p) => Some((*b, *c, p.clone())),
            _ => None,
        })
        .collect()
}

fn metadata_requests(requests: &[(BrokerId, u64, Request)]) -> Vec<(BrokerId, u64)> {
    requests
        .iter()
        .filter(|(_, _, r)| matches!(r, Request::Metadata(_)))
        .map(|(b, c, _)| (*b, *c))
        .collect()
}

fn respond(
    p: &mut Producer,
    now: Millis,
    broker: BrokerId,
    correlation_id: u64,
    response: Response,
    out: &mut Outbox,
) {
    p.on_message(
        now,
        NodeId::Broker(broker),
        Message::Response {
            correlation_id,
            response,
        },
        out,
    );
}

fn produce_response(partitions: &[(TopicPartition, ErrorCode, Offset)]) -> Response {
    Response::Produce(ProduceResponse {
        partitions: partitions
            .iter()
            .map(|(tp, error, base_offset)| ProducePartitionResponse {
                log_start_offset: 0,
                tp: tp.clone(),
                error: *error,
                base_offset: *base_offset,
            })
            .collect(),
    })
}

/// A started producer (bootstrap broker 1) whose first Metadata was answered at 0.
fn started(
    config: ProducerConfig,
    partitions: &[(u32, Option<BrokerId>, LeaderEpoch)],
) -> (Producer, Outbox) {
    let mut p = Producer::new(3, config, Bugs::default(), vec![1], 42);
    let mut out = Outbox::default();
    p.metadata.add_topic(&Arc::from("t"));
    p.on_start(0, &mut out);
    let reqs = take(&mut out);
    let md = metadata_requests(&reqs);
    assert_eq!(md.len(), 1, "one Metadata request at start: {reqs:?}");
    respond(
        &mut p,
        0,
        md[0].0,
        md[0].1,
        Response::Metadata(metadata(partitions)),
        &mut out,
    );
    assert!(out.sends.is_empty() && out.history.is_empty());
    (p, out)
}

fn record(key: Option<&str>, value: Value) -> ProducerRecord {
    ProducerRecord {
        topic: Arc::from("t"),
        key: key.map(str::to_string),
        value,
        headers: Vec::new(),
    }
}

fn values(batch: &Bytes) -> Vec<u64> {
    let (decoded, used) = RecordBatch::decode(batch).expect("producer batches decode");
    assert_eq!(used, batch.len());
    decoded
        .records
        .iter()
        .map(|r| {
            std::str::from_utf8(r.value.as_ref().unwrap())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

/// Advances to each timer, answering Metadata with `md`, until a Produce is sent.
fn until_produce(
    p: &mut Producer,
    out: &mut Outbox,
    md: &MetadataResponse,
) -> (Millis, Vec<(BrokerId, u64, ProduceRequest)>) {
    for _ in 0..100 {
        let now = p.next_timer().expect("a timer is armed");
        p.on_timer(now, out);
        let reqs = take(out);
        for (b, c) in metadata_requests(&reqs) {
            respond(p, now, b, c, Response::Metadata(md.clone()), out);
            let more = take(out);
            if !produces(&more).is_empty() {
                return (now, produces(&more));
            }
        }
        if !produces(&reqs).is_empty() {
            return (now, produces(&reqs));
        }
    }
    panic!("no Produce within 100 timers");
}

/// (value, offset, attempts, outcome, complete_ms, invoke_ms, partition) of a send.
type SendOp = (
    Value,
    Option<Offset>,
    u32,
    Outcome,
    Option<Millis>,
    Millis,
    u32,
);

/// The client-side timeout each send recorded.
fn send_timeouts(out: &Outbox) -> Vec<Option<SendTimeout>> {
    out.history
        .iter()
        .filter_map(|e| match &e.op {
            Op::Send { timeout, .. } => Some(*timeout),
            _ => None,
        })
        .collect()
}

fn send_ops(out: &Outbox) -> Vec<SendOp> {
    out.history
        .iter()
        .filter_map(|e| match &e.op {
            Op::ProducerMetrics(_) => None,
            Op::Send {
                value,
                offset,
                attempts,
                partition,
                ..
            } => {
                assert_eq!(e.process, NodeId::Producer(3));
                Some((
                    *value,
                    *offset,
                    *attempts,
                    e.outcome.clone(),
                    e.complete_ms,
                    e.invoke_ms,
                    partition.partition,
                ))
            }
            other => panic!("unexpected op {other:?}"),
        })
        .collect()
}

/// A started idempotent producer whose `InitProducerId` was answered with id 7000,
/// epoch 0 (partition 0 led by broker 1).
fn idempotent(config: ProducerConfig, bugs: Bugs) -> (Producer, Outbox) {
    let mut p = Producer::new(3, config, bugs, vec![1], 42);
    let mut out = Outbox::default();
    p.metadata.add_topic(&Arc::from("t"));
    p.on_start(0, &mut out);
    let reqs = take(&mut out);
    let init: Vec<_> = reqs
        .iter()
        .filter(|(_, _, r)| matches!(r, Request::InitProducerId(_)))
        .collect();
    assert_eq!(init.len(), 1, "InitProducerId first: {reqs:?}");
    for (b, c) in metadata_requests(&reqs) {
        respond(
            &mut p,
            0,
            b,
            c,
            Response::Metadata(metadata(&[(0, Some(1), 0)])),
            &mut out,
        );
    }
    let (b, c) = (init[0].0, init[0].1);
    respond(
        &mut p,
        0,
        b,
        c,
        Response::InitProducerId(crate::kafka::protocol::InitProducerIdResponse {
            error: ErrorCode::None,
            producer_id: 7000,
            producer_epoch: 0,
        }),
        &mut out,
    );
    (p, out)
}

/// Answers every request sent so far as a healthy cluster would (broker 1 leads
/// `t-0` and coordinates the transaction); returns the API names answered.
fn answer_all(p: &mut Producer, now: Millis, out: &mut Outbox) -> Vec<&'static str> {
    let mut answered = Vec::new();
    for _ in 0..20 {
        let reqs = take(out);
        if reqs.is_empty() {
            break;
        }
        for (b, c, r) in reqs {
            answered.push(r.api_name());
            let response = match &r {
                Request::Metadata(_) => Response::Metadata(metadata(&[(0, Some(1), 0)])),
                Request::FindCoordinator(_) => {
                    Response::FindCoordinator(crate::kafka::protocol::FindCoordinatorResponse {
                        error: ErrorCode::None,
                        node_id: Some(1),
                    })
                }
                Request::InitProducerId(_) => {
                    Response::InitProducerId(crate::kafka::protocol::InitProducerIdResponse {
                        error: ErrorCode::None,
                        producer_id: 7000,
                        producer_epoch: 0,
                    })
                }
                Request::Produce(pr) => produce_response(
                    &pr.partitions
                        .iter()
                        .map(|(tp, _)| (tp.clone(), ErrorCode::None, 0))
                        .collect::<Vec<_>>(),
                ),
                Request::EndTxn(e) => Response::EndTxn(crate::kafka::protocol::EndTxnResponse {
                    error: ErrorCode::None,
                    producer_id: e.producer_id,
                    producer_epoch: e.producer_epoch + 1,
                }),
                other => panic!("unexpected request {other:?}"),
            };
            respond(p, now, b, c, response, out);
        }
    }
    answered
}

/// `KafkaProducer.close()` with a transaction open (Kafka 4.x `Sender.run`): the
/// records under way complete, then the transaction is aborted ("Aborting incomplete
/// transaction due to shutdown"), then the producer is closed: no timers, nothing
/// sent, late answers ignored.
#[test]
fn close_completes_the_records_then_aborts_the_open_transaction() {
    let config = ProducerConfig {
        transactional_id: Some("etl-0".into()),
        ..idempotent_config()
    };
    let setup = ProducerSetup {
        process: NodeId::Pipeline(0),
        transaction_version: 2,
        correlation_base: 0,
    };
    let mut p = Producer::with_setup(setup, config, Bugs::default(), vec![1], 42);
    let mut out = Outbox::default();
    p.metadata.add_topic(&Arc::from("t"));
    p.on_start(0, &mut out);
    p.init_transactions(0, &mut out);
    answer_all(&mut p, 1, &mut out);
    assert_eq!(p.drain_txn_events(), vec![TxnEvent::Initialized]);
    p.begin_transaction(2, 1, &mut out);
    p.send(2, record(Some("k"), 5), &mut out);
    p.close(3, &mut out);
    assert!(!p.is_closed(), "the record is under way");
    let answered = answer_all(&mut p, 4, &mut out);
    assert_eq!(answered, vec!["Produce", "EndTxn"]);
    assert!(p.is_closed());
    assert_eq!(p.next_timer(), None);
    assert_eq!(
        p.drain_txn_events(),
        vec![TxnEvent::Ended {
            commit: false,
            result: TxnResult::Done
        }]
    );
    // A closed producer ignores late answers and sends nothing more.
    respond(&mut p, 5, 1, 12345, produce_response(&[]), &mut out);
    assert!(out.sends.is_empty());
}

fn idempotent_config() -> ProducerConfig {
    ProducerConfig {
        enable_idempotence: None,
        delivery_timeout_ms: 60_000,
        ..config()
    }
}

/// (producer id, epoch, base sequence, values) of a produced batch.
fn sequenced(batch: &Bytes) -> (i64, i16, i32, Vec<u64>) {
    let h = crate::kafka::record::BatchHeader::parse(batch).unwrap();
    (
        h.producer_id,
        h.producer_epoch,
        h.base_sequence,
        values(batch),
    )
}

/// Sends one record per millisecond and returns the five Produce requests, each
/// holding one batch of one record.
fn five_in_flight(p: &mut Producer, out: &mut Outbox) -> Vec<(BrokerId, u64, ProduceRequest)> {
    let mut sent = Vec::new();
    for i in 0..5 {
        p.send(i, record(None, i), out);
        sent.extend(produces(&take(out)));
    }
    assert_eq!(sent.len(), 5, "five requests in flight");
    sent
}

#[test]
fn idempotent_batches_carry_producer_id_epoch_and_sequences() {
    let (mut p, mut out) = idempotent(idempotent_config(), Bugs::default());
    let sent = five_in_flight(&mut p, &mut out);
    for (i, (_, _, req)) in sent.iter().enumerate() {
        let (pid, epoch, seq, vals) = sequenced(&req.partitions[0].1);
        assert_eq!((pid, epoch, seq, vals), (7000, 0, i as i32, vec![i as u64]));
    }
}

#[test]
fn nothing_is_sent_before_the_producer_id_arrives() {
    let mut p = Producer::new(3, idempotent_config(), Bugs::default(), vec![1], 42);
    let mut out = Outbox::default();
    p.metadata.add_topic(&Arc::from("t"));
    p.on_start(0, &mut out);
    for (b, c) in metadata_requests(&take(&mut out)) {
        respond(
            &mut p,
            0,
            b,
            c,
            Response::Metadata(metadata(&[(0, Some(1), 0)])),
            &mut out,
        );
    }
    p.send(1, record(None, 1), &mut out);
    p.on_timer(10, &mut out);
    assert!(produces(&take(&mut out)).is_empty());
}

#[test]
fn a_failed_batch_is_retried_in_sequence_order_before_later_ones() {
    let (mut p, mut out) = idempotent(idempotent_config(), Bugs::default());
    let sent = five_in_flight(&mut p, &mut out);
    // The first batch is refused; the broker then sees a gap for the other four.
    respond(
        &mut p,
        10,
        1,
        sent[0].1,
        produce_response(&[(tp(0), ErrorCode::NotEnoughReplicas, -1)]),
        &mut out,
    );
    for (b, c, _) in &sent[1..] {
        respond(
            &mut p,
            10,
            *b,
            *c,
            produce_response(&[(tp(0), ErrorCode::OutOfOrderSequenceNumber, -1)]),
            &mut out,
        );
    }
    // Retries go one at a time, lowest sequence first, without an epoch bump.
    let mut offsets = Vec::new();
    let md = metadata(&[(0, Some(1), 0)]);
    let (mut now, mut reqs) = until_produce(&mut p, &mut out, &md);
    for expected_seq in 0..5 {
        assert_eq!(reqs.len(), 1, "one retry at a time");
        let (_, epoch, seq, _) = sequenced(&reqs[0].2.partitions[0].1);
        assert_eq!((epoch, seq), (0, expected_seq));
        let offset = 100 + i64::from(expected_seq);
        let response = produce_response(&[(tp(0), ErrorCode::None, offset)]);
        respond(&mut p, now, 1, reqs[0].1, response, &mut out);
        offsets.push(offset);
        reqs = produces(&take(&mut out));
        if reqs.is_empty() && expected_seq < 4 {
            (now, reqs) = until_produce(&mut p, &mut out, &md);
        }
    }
    let ops = send_ops(&out);
    assert_eq!(
        ops.iter().map(|o| o.1.unwrap()).collect::<Vec<_>>(),
        offsets
    );
    assert!(ops.iter().all(|o| o.3 == Outcome::Ok));
}

#[test]
fn a_duplicate_is_acknowledged_with_the_original_offset() {
    let (mut p, mut out) = idempotent(idempotent_config(), Bugs::default());
    p.send(0, record(None, 9), &mut out);
    let reqs = produces(&take(&mut out));
    // The response is lost: the request times out and the batch is resent.
    p.on_disconnect(5, NodeId::Broker(1), &mut out);
    let (now, retry) = until_produce(&mut p, &mut out, &metadata(&[(0, Some(1), 0)]));
    assert_eq!(
        retry[0].2.partitions[0].1, reqs[0].2.partitions[0].1,
        "same bytes, same sequence"
    );
    respond(
        &mut p,
        now,
        1,
        retry[0].1,
        produce_response(&[(tp(0), ErrorCode::DuplicateSequenceNumber, 41)]),
        &mut out,
    );
    let ops = send_ops(&out);
    assert_eq!(
        (ops[0].1, ops[0].2, ops[0].3.clone()),
        (Some(41), 2, Outcome::Ok)
    );
}

#[test]
fn a_real_gap_bumps_the_epoch_and_restarts_sequences() {
    let (mut p, mut out) = idempotent(idempotent_config(), Bugs::default());
    let sent = five_in_flight(&mut p, &mut out);
    // Sequence 0 is refused as out of order although it is the next one: the
    // broker lost our state. The producer bumps its epoch locally (KIP-360).
    respond(
        &mut p,
        10,
        1,
        sent[0].1,
        produce_response(&[(tp(0), ErrorCode::OutOfOrderSequenceNumber, -1)]),
        &mut out,
    );
    for (b, c, _) in &sent[1..] {
        respond(
            &mut p,
            10,
            *b,
            *c,
            produce_response(&[(tp(0), ErrorCode::OutOfOrderSequenceNumber, -1)]),
            &mut out,
        );
    }
    let (now, reqs) = until_produce(&mut p, &mut out, &metadata(&[(0, Some(1), 0)]));
    let (pid, epoch, seq, vals) = sequenced(&reqs[0].2.partitions[0].1);
    assert_eq!((pid, epoch, seq, vals), (7000, 1, 0, vec![0]));
    respond(
        &mut p,
        now,
        1,
        reqs[0].1,
        produce_response(&[(tp(0), ErrorCode::None, 0)]),
        &mut out,
    );
    let (_, reqs) = until_produce(&mut p, &mut out, &metadata(&[(0, Some(1), 0)]));
    let (_, epoch, seq, vals) = sequenced(&reqs[0].2.partitions[0].1);
    assert_eq!((epoch, seq, vals), (1, 1, vec![1]));
}

#[test]
fn without_in_order_retry_failed_batches_go_out_of_sequence_order() {
    let bugs = Bugs::of(&[Bug::NoInOrderRetry]);
    let (mut p, mut out) = idempotent(idempotent_config(), bugs);
    let sent = five_in_flight(&mut p, &mut out);
    for (b, c, _) in &sent {
        let response = produce_response(&[(tp(0), ErrorCode::NotLeaderOrFollower, -1)]);
        respond(&mut p, 10, *b, *c, response, &mut out);
    }
    // Re-queued at the front one by one, the batches go again in reverse order,
    // without waiting for the lowest sequence.
    let md = metadata(&[(0, Some(1), 0)]);
    let (now, reqs) = until_produce(&mut p, &mut out, &md);
    let order: Vec<u64> = reqs
        .iter()
        .flat_map(|r| sequenced(&r.2.partitions[0].1).3)
        .collect();
    assert_eq!(order[0], 4, "{order:?}");
    assert!(order.windows(2).all(|w| w[0] > w[1]), "{order:?}");
    // An out-of-order answer counts as lost state: the epoch is bumped and the
    // queue is sequenced afresh in its current order.
    for (b, c, _) in &reqs {
        let response = produce_response(&[(tp(0), ErrorCode::OutOfOrderSequenceNumber, -1)]);
        respond(&mut p, now, *b, *c, response, &mut out);
    }
    let (_, reqs) = until_produce(&mut p, &mut out, &md);
    let (_, epoch, seq, _) = sequenced(&reqs[0].2.partitions[0].1);
    assert_eq!((epoch, seq), (1, 0));
}

/// KIP-82: a record's headers go into its record batch v2 entry, in order, a null
/// value as null (`DefaultRecord.writeTo`), and count in the batch's size estimate.
#[test]
fn headers_are_encoded_into_the_batch() {
    let (mut p, mut out) = started(config(), &[(0, Some(1), 0)]);
    let headers = crate::history::headers_for(42, 3);
    let bare = PendingRecord {
        key: Some("a".into()),
        value: 42,
        invoke_ms: 0,
        txn: None,
        headers: Vec::new(),
    };
    let with = PendingRecord {
        headers: headers.clone(),
        ..bare.clone()
    };
    // Header count 3; each key and value with its length: "h0" "42.0" "h1" "42.1" "h2" null.
    let extra = (1 + 2 + 1 + 4) * 2 + (1 + 2 + 1);
    assert_eq!(with.size_upper_bound(), bare.size_upper_bound() + extra);
    let record = ProducerRecord {
        headers,
        ..record(Some("a"), 42)
    };
    p.send(0, record, &mut out);
    let reqs = produces(&take(&mut out));
    let batch = &reqs[0].2.partitions[0].1;
    let (decoded, _) = RecordBatch::decode(batch).unwrap();
    let got: Vec<(String, Option<Bytes>)> = decoded.records[0]
        .headers
        .iter()
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("h0".to_string(), Some(Bytes::from("42.0"))),
            ("h1".to_string(), Some(Bytes::from("42.1"))),
            ("h2".to_string(), None),
        ]
    );
}

#[test]
fn a_full_buffer_blocks_send_until_max_block_ms() {
    let config = ProducerConfig {
        buffer_memory: 2 * 16_384,
        max_block_ms: 1_000,
        request_timeout_ms: 30_000,
        delivery_timeout_ms: 120_000,
        ..config()
    };
    let (mut p, mut out) = started(config, &[(0, Some(1), 0), (1, Some(1), 0)]);
    // Two keyed records on different partitions take the whole pool.
    let other = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| partition_for_key(k.as_bytes(), 2) != partition_for_key(b"a", 2))
        .unwrap();
    p.send(0, record(Some("a"), 1), &mut out);
    p.send(0, record(Some(&other), 2), &mut out);
    let parts: BTreeSet<u32> = produces(&take(&mut out))
        .iter()
        .map(|(_, _, r)| r.partitions[0].0.partition)
        .collect();
    assert_eq!(parts.len(), 2, "keys a and b land on both partitions");
    assert!(!p.is_blocked());
    p.send(5, record(Some("a"), 3), &mut out);
    assert!(p.is_blocked(), "no memory for a third batch");
    assert_eq!(p.next_timer(), Some(1_005), "max.block.ms deadline armed");
    p.on_timer(1_005, &mut out);
    assert!(!p.is_blocked());
    let ops = send_ops(&out);
    assert_eq!(ops.len(), 1);
    let Outcome::Fail { error } = &ops[0].3 else {
        panic!("{ops:?}")
    };
    assert!(error.starts_with("TimeoutException: Failed to allocate 16384 bytes within the configured max blocking time 1000 ms."), "{error}");
    assert_eq!((ops[0].4, ops[0].5), (Some(1_005), 5));
    // `BufferPool.allocate`: send() itself blocked.
    assert_eq!(
        send_timeouts(&out),
        vec![Some(SendTimeout::BlockedOnMemory)]
    );
}

#[test]
fn a_blocked_send_proceeds_when_a_batch_frees_memory() {
    let config = ProducerConfig {
        buffer_memory: 16_384,
        max_block_ms: 1_000,
        ..config()
    };
    let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
    p.send(0, record(Some("a"), 1), &mut out);
    let reqs = produces(&take(&mut out));
    p.send(1, record(Some("a"), 2), &mut out);
    assert!(p.is_blocked());
    respond(
        &mut p,
        20,
        1,
        reqs[0].1,
        produce_response(&[(tp(0), ErrorCode::None, 0)]),
        &mut out,
    );
    assert!(
        !p.is_blocked(),
        "the acknowledged batch returned its memory"
    );
    let reqs = produces(&take(&mut out));
    assert_eq!(values(&reqs[0].2.partitions[0].1), vec![2]);
}

#[test]
fn gzip_batches_compress_and_are_counted() {
    let config = ProducerConfig {
        compression_type: CompressionType::Gzip,
        linger_ms: 50,
        ..config()
    };
    let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
    for i in 0..200 {
        p.send(i / 10, record(Some("k"), 1_000_000 + i), &mut out);
    }
    let (_, reqs) = until_produce(&mut p, &mut out, &metadata(&[(0, Some(1), 0)]));
    let batch = &reqs[0].2.partitions[0].1;
    let h = crate::kafka::record::BatchHeader::parse(batch).unwrap();
    assert_eq!(
        h.attributes & crate::kafka::record::COMPRESSION_MASK,
        1,
        "gzip"
    );
    assert_eq!(values(batch), (1_000_000..1_000_200).collect::<Vec<_>>());
    p.finish(100, &mut out);
    let Some(Op::ProducerMetrics(m)) = out.history.last().map(|e| &e.op) else {
        panic!("metrics last")
    };
    assert_eq!((m.batches, m.records), (1, 200));
    assert!(m.batch_bytes * 3 < m.uncompressed_bytes, "{m:?}");
}

#[test]
fn records_within_linger_share_one_produce() {
    let config = ProducerConfig {
        linger_ms: 10,
        ..config()
    };
    let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
    for (t, v) in [(0, 1), (3, 2), (6, 3)] {
        p.send(t, record(None, v), &mut out);
        assert!(take(&mut out).is_empty(), "nothing sent before linger.ms");
    }
    assert_eq!(p.pending(), 3);
    assert_eq!(p.next_timer(), Some(10), "wakes exactly at linger expiry");
    p.on_timer(10, &mut out);
    let reqs = produces(&take(&mut out));
    assert_eq!(reqs.len(), 1);
    let (broker, cid, req) = &reqs[0];
    assert_eq!((*broker, req.acks, req.timeout_ms), (1, Acks::All, 1_000));
    assert_eq!(req.partitions.len(), 1);
    assert_eq!(req.partitions[0].0, tp(0));
    assert_eq!(values(&req.partitions[0].1), vec![1, 2, 3]);
    let (decoded, _) = RecordBatch::decode(&req.partitions[0].1).unwrap();
    assert_eq!(decoded.base_timestamp, RECORD_TIMESTAMP_BASE);
    assert_eq!(decoded.max_timestamp, RECORD_TIMESTAMP_BASE + 6);
    assert_eq!((decoded.producer_id, decoded.base_sequence), (-1, -1));
    respond(
        &mut p,
        12,
        1,
        *cid,
        produce_response(&[(tp(0), ErrorCode::None, 100)]),
        &mut out,
    );
    assert_eq!(
        send_ops(&out),
        vec![
            (1, Some(100), 1, Outcome::Ok, Some(12), 0, 0),
            (2, Some(101), 1, Outcome::Ok, Some(12), 3, 0),
            (3, Some(102), 1, Outcome::Ok, Some(12), 6, 0),
        ]
    );
    assert_eq!(p.pending(), 0);
}

#[test]
fn batch_size_closes_a_batch() {
    // Header 61 + 8 bytes per keyless one-digit record sent at the same time: two
    // records make 77 bytes, a third would make 85 > 80.
    let config = ProducerConfig {
        batch_size: 80,
        linger_ms: 1_000,
        request_timeout_ms: 2_000,
        ..config()
    };
    let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
    p.send(0, record(None, 1), &mut out);
    p.send(0, record(None, 2), &mut out);
    assert!(
        take(&mut out).is_empty(),
        "77 <= 80: the batch is still open"
    );
    p.send(0, record(None, 3), &mut out);
    let reqs = produces(&take(&mut out));
    assert_eq!(reqs.len(), 1, "the closed batch is sent at once");
    assert_eq!(values(&reqs[0].2.partitions[0].1), vec![1, 2]);
    assert_eq!(reqs[0].2.partitions[0].1.len(), 77);
    assert_eq!(p.next_timer(), Some(1_000), "the new batch lingers");
    p.on_timer(1_000, &mut out);
    let reqs = produces(&take(&mut out));
    assert_eq!(values(&reqs[0].2.partitions[0].1), vec![3]);
}

#[test]
fn retriable_errors_back_off_exponentially_then_succeed() {
    let md = metadata(&[(0, Some(1), 0)]);
    let (mut p, mut out) = started(config(), &[(0, Some(1), 0)]);
    p.send(0, record(Some("k"), 7), &mut out);
    let first = produces(&take(&mut out));
    assert_eq!(first.len(), 1, "linger.ms=0 sends at once");
    let bytes = first[0].2.partitions[0].1.clone();
    respond(
        &mut p,
        5,
        1,
        first[0].1,
        produce_response(&[(tp(0), ErrorCode::NotLeaderOrFollower, -1)]),
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
    respond(
        &mut p,
        t2 + 1,
        1,
        second[0].1,
        produce_response(&[(tp(0), ErrorCode::RequestTimedOut, -1)]),
        &mut out,
    );
    let (t3, third) = until_produce(&mut p, &mut out, &md);
    assert!(
        (t2 + 1 + 160..=t2 + 1 + 240).contains(&t3),
        "second backoff 200 ms +/- 20%, resent at {t3}"
    );
    respond(
        &mut p,
        t3 + 1,
        1,
        third[0].1,
        produce_response(&[(tp(0), ErrorCode::None, 40)]),
        &mut out,
    );
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
    respond(
        &mut p,
        1_200,
        1,
        second[0].1,
        produce_response(&[(tp(0), ErrorCode::NotEnoughReplicas, -1)]),
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
    respond(
        &mut p,
        1_300,
        1,
        first[0].1,
        produce_response(&[(tp(0), ErrorCode::None, 0)]),
        &mut out,
    );
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
        respond(
            &mut p,
            now + 1,
            1,
            reqs[0].1,
            produce_response(&[(tp(0), ErrorCode::NotEnoughReplicas, -1)]),
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
    let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
    p.send(0, record(None, 1), &mut out);
    let reqs = produces(&take(&mut out));
    respond(
        &mut p,
        1,
        1,
        reqs[0].1,
        produce_response(&[(tp(0), ErrorCode::NotLeaderOrFollower, -1)]),
        &mut out,
    );
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
    let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
    p.send(0, record(None, 1), &mut out);
    let reqs = produces(&take(&mut out));
    respond(
        &mut p,
        1,
        1,
        reqs[0].1,
        produce_response(&[(tp(0), ErrorCode::NotEnoughReplicas, -1)]),
        &mut out,
    );
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
    respond(
        &mut p,
        4_001,
        1,
        second[0].1,
        produce_response(&[(tp(0), ErrorCode::None, 0)]),
        &mut out,
    );
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
    respond(
        &mut p,
        101,
        1,
        reqs[0].1,
        produce_response(&[(tp(0), ErrorCode::None, 0)]),
        &mut out,
    );
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
    respond(
        &mut p,
        1,
        1,
        reqs[0].1,
        produce_response(&[(tp(0), ErrorCode::NotLeaderOrFollower, -1)]),
        &mut out,
    );
    respond(
        &mut p,
        2,
        1,
        reqs[1].1,
        produce_response(&[(tp(0), ErrorCode::None, 0)]),
        &mut out,
    );
    let (_, retry) = until_produce(&mut p, &mut out, &md);
    assert_eq!(values(&retry[0].2.partitions[0].1), vec![1]);
    respond(
        &mut p,
        300,
        1,
        retry[0].1,
        produce_response(&[(tp(0), ErrorCode::None, 1)]),
        &mut out,
    );
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
    respond(
        &mut p,
        1_001,
        1,
        reqs[1].1,
        produce_response(&[(tp(0), ErrorCode::None, 0)]),
        &mut out,
    );
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
    let mut net: NetworkClient<()> = NetworkClient::new(1_000);
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
