//! Unit tests of `client::producer`.

use super::*;
use crate::actor::testing::{respond, take};
use crate::kafka::protocol::{LeaderEpoch, MetadataResponse};
use crate::kafka::protocol::{PartitionMetadata, ProducePartitionResponse};

mod delivery;

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

/// Hands `p` broker `broker`'s Produce answer for `t-0` (`error`, `base_offset`) to
/// the request `correlation_id`; what it sends goes to `out`.
fn answer_produce(
    p: &mut Producer,
    now: Millis,
    broker: BrokerId,
    correlation_id: u64,
    error: ErrorCode,
    base_offset: Offset,
    out: &mut Outbox,
) {
    let response = produce_response(&[(tp(0), error, base_offset)]);
    respond(p, now, broker, correlation_id, response, out);
}

/// A producer with `config` and `t-0` on broker 1 that sent one record at 0, which
/// broker 1 answered at 1 with `error`.
fn first_send_answered(config: ProducerConfig, error: ErrorCode) -> (Producer, Outbox) {
    let (mut p, mut out) = started(config, &[(0, Some(1), 0)]);
    p.send(0, record(None, 1), &mut out);
    let reqs = produces(&take(&mut out));
    answer_produce(&mut p, 1, 1, reqs[0].1, error, -1, &mut out);
    (p, out)
}

/// Answers the five requests `sent` (see `five_in_flight`) at 10: the first with
/// `first`, the others with OUT_OF_ORDER_SEQUENCE_NUMBER.
fn refuse_five(
    p: &mut Producer,
    out: &mut Outbox,
    sent: &[(BrokerId, u64, ProduceRequest)],
    first: ErrorCode,
) {
    answer_produce(p, 10, 1, sent[0].1, first, -1, out);
    for (b, c, _) in &sent[1..] {
        let error = ErrorCode::OutOfOrderSequenceNumber;
        answer_produce(p, 10, *b, *c, error, -1, out);
    }
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
    refuse_five(&mut p, &mut out, &sent, ErrorCode::NotEnoughReplicas);
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
    answer_produce(
        &mut p,
        now,
        1,
        retry[0].1,
        ErrorCode::DuplicateSequenceNumber,
        41,
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
    refuse_five(&mut p, &mut out, &sent, ErrorCode::OutOfOrderSequenceNumber);
    let (now, reqs) = until_produce(&mut p, &mut out, &metadata(&[(0, Some(1), 0)]));
    let (pid, epoch, seq, vals) = sequenced(&reqs[0].2.partitions[0].1);
    assert_eq!((pid, epoch, seq, vals), (7000, 1, 0, vec![0]));
    answer_produce(&mut p, now, 1, reqs[0].1, ErrorCode::None, 0, &mut out);
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
        timestamp: RECORD_TIMESTAMP_BASE,
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
    answer_produce(&mut p, 20, 1, reqs[0].1, ErrorCode::None, 0, &mut out);
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

/// CreateTime is the producer's wall clock at `send` (`KafkaProducer.doSend`): a clock
/// an hour behind and 1,000 ppm fast stamps the batch so, and the history keeps the
/// timestamp beside the (true) invoke time.
#[test]
fn record_timestamps_read_the_producers_wall_clock() {
    let (mut p, mut out) = started(config(), &[(0, Some(1), 0)]);
    p.set_wall_clock(crate::actor::WallClock {
        offset_ms: -3_600_000,
        drift_ppm: 1_000,
    });
    p.send(2_000, record(None, 1), &mut out);
    let reqs = produces(&take(&mut out));
    let (decoded, _) = RecordBatch::decode(&reqs[0].2.partitions[0].1).unwrap();
    let stamped = RECORD_TIMESTAMP_BASE + 2_002 - 3_600_000;
    assert_eq!(decoded.base_timestamp, stamped);
    answer_produce(&mut p, 2_010, 1, reqs[0].1, ErrorCode::None, 0, &mut out);
    let sent = out.history.iter().find_map(|e| match &e.op {
        Op::Send { timestamp, .. } => Some((e.invoke_ms, *timestamp, e.create_time())),
        _ => None,
    });
    assert_eq!(sent, Some((2_000, Some(stamped), Some(stamped))));
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
    answer_produce(&mut p, 12, 1, *cid, ErrorCode::None, 100, &mut out);
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
