//! Transactions on the partition leader: markers, the last stable offset, KIP-890 verification, epoch fencing.

use super::*;

/// Broker 1, the only replica in the ISR of `orders-0`.
pub(super) fn sole_leader(config: BrokerConfig, bugs: Bugs) -> (Broker, Outbox) {
    broker(1, config, bugs, vec![reg(Some(1), &[1], 0, 0)])
}

/// An `acks=1` produce of `batch` from producer 0: its answer.
pub(super) fn produced(
    b: &mut Broker,
    now: Millis,
    correlation_id: u64,
    batch: Bytes,
) -> Option<(ErrorCode, Offset)> {
    send_batch(b, now, correlation_id, Acks::Leader, batch).0
}

pub(super) const TS: i64 = crate::kafka::record::RECORD_TIMESTAMP_BASE;

/// A batch of `values` from `producer_id`, created at `TS + created_ms`, in a
/// transaction when `transactional`.
pub(super) fn batch_at(
    producer_id: i64,
    base_sequence: i32,
    transactional: bool,
    created_ms: i64,
    values: &[u64],
) -> Bytes {
    let (batch, _) =
        RecordBatch::decode(&idempotent_batch(producer_id, 0, base_sequence, values)).unwrap();
    RecordBatch {
        attributes: if transactional {
            record::TRANSACTIONAL_BIT
        } else {
            0
        },
        base_timestamp: TS + created_ms,
        max_timestamp: TS + created_ms,
        ..batch
    }
    .encode()
}

/// A transactional batch of producer `producer_id` at `epoch`.
pub(super) fn txn_batch(producer_id: i64, epoch: i16, base_sequence: i32, values: &[u64]) -> Bytes {
    let (batch, _) =
        RecordBatch::decode(&batch_at(producer_id, base_sequence, true, 0, values)).unwrap();
    RecordBatch {
        producer_epoch: epoch,
        ..batch
    }
    .encode()
}

/// Sends `txn_produce(batch)` from producer 0.
pub(super) fn txn_request(
    b: &mut Broker,
    now: Millis,
    correlation_id: u64,
    batch: Bytes,
) -> Outbox {
    request(
        b,
        now,
        NodeId::Producer(0),
        correlation_id,
        txn_produce(batch),
    )
}

/// An `acks=1` produce of `batch` from the transactional producer `tx`.
pub(super) fn txn_produce(batch: Bytes) -> Request {
    Request::Produce(ProduceRequest {
        transactional_id: Some("tx".into()),
        acks: Acks::Leader,
        timeout_ms: 30_000,
        partitions: vec![(tp(), batch)],
    })
}

/// One marker for each (producer id, epoch, commit, coordinator epoch, partitions).
pub(super) fn write_markers(markers: &[(i64, i16, bool, i32, Vec<TopicPartition>)]) -> Request {
    Request::WriteTxnMarkers(WriteTxnMarkersRequest {
        markers: markers
            .iter()
            .map(
                |(pid, epoch, committed, coordinator_epoch, partitions)| TxnMarker {
                    producer_id: *pid,
                    producer_epoch: *epoch,
                    committed: *committed,
                    partitions: partitions.clone(),
                    coordinator_epoch: *coordinator_epoch,
                },
            )
            .collect(),
    })
}

/// Per producer id, each partition's error.
pub(super) type MarkerErrors = Vec<(i64, Vec<(TopicPartition, ErrorCode)>)>;

pub(super) fn markers_result(r: Option<Response>) -> Option<MarkerErrors> {
    match r {
        Some(Response::WriteTxnMarkers(w)) => Some(w.markers),
        None => None,
        other => panic!("not a WriteTxnMarkers answer: {other:?}"),
    }
}

/// A consumer fetch of `orders-0` with this isolation level.
pub(super) fn isolated_fetch(offset: Offset, isolation_level: IsolationLevel) -> Request {
    let Request::Fetch(f) = consumer_fetch(offset) else {
        unreachable!()
    };
    Request::Fetch(FetchRequest {
        isolation_level,
        ..f
    })
}

/// A `ListOffsets` of `orders-0` for `timestamp`: (error, offset, timestamp).
pub(super) fn list_offsets(
    b: &mut Broker,
    now: Millis,
    isolation_level: IsolationLevel,
    timestamp: i64,
) -> (ErrorCode, Offset, i64) {
    let req = Request::ListOffsets(ListOffsetsRequest {
        isolation_level,
        partitions: vec![(tp(), timestamp, -1)],
    });
    match response_to(&request(b, now, NodeId::Consumer(0), 99, req), 99) {
        Some(Response::ListOffsets(l)) => {
            let p = &l.partitions[0];
            (p.error, p.offset, p.timestamp)
        }
        other => panic!("{other:?}"),
    }
}

/// Transactions without KIP-890 verification (the historic behaviour).
pub(super) fn unverified() -> BrokerConfig {
    BrokerConfig {
        transaction_partition_verification_enable: false,
        transaction_version: 1,
        ..BrokerConfig::default()
    }
}

pub(super) const RC: IsolationLevel = IsolationLevel::ReadCommitted;
pub(super) const RU: IsolationLevel = IsolationLevel::ReadUncommitted;

#[test]
fn markers_wait_for_replication_and_move_the_last_stable_offset() {
    let (mut b, _) = broker(
        1,
        unverified(),
        Bugs::default(),
        vec![reg(Some(1), &[1, 2], 0, 0)],
    );
    let r = produced(&mut b, 10, 1, txn_batch(PID, 0, 0, &[100, 101]));
    assert_eq!(r, Some((ErrorCode::None, 0)));
    let r = produced(&mut b, 11, 2, batch(&[102]));
    assert_eq!(r, Some((ErrorCode::None, 2)));
    request(&mut b, 12, NodeId::Broker(2), 1, follower_fetch(2, 3, 0));
    let p = fetched(&mut b, 13, NodeId::Consumer(0), 2, isolated_fetch(0, RC));
    assert_eq!(
        (p.high_watermark, p.last_stable_offset, p.batches.len()),
        (3, 0, 0),
        "read_committed stops at the open transaction"
    );
    let p = fetched(&mut b, 13, NodeId::Consumer(0), 3, isolated_fetch(0, RU));
    assert_eq!((p.last_stable_offset, p.batches.len()), (0, 2));

    let commit = write_markers(&[(PID, 0, true, 0, vec![tp()])]);
    let out = request(&mut b, 20, NodeId::Broker(3), 4, commit);
    assert_eq!(
        markers_result(response_to(&out, 4)),
        None,
        "parked until replicated"
    );
    assert_eq!(leo(&b), 4, "the marker takes an offset");
    let p = fetched(&mut b, 21, NodeId::Consumer(0), 5, isolated_fetch(0, RC));
    assert_eq!(
        p.last_stable_offset, 0,
        "a marker above the high watermark still holds it"
    );
    let out = request(&mut b, 22, NodeId::Broker(2), 6, follower_fetch(2, 4, 0));
    assert_eq!(
        markers_result(response_to(&out, 4)),
        Some(vec![(PID, vec![(tp(), ErrorCode::None)])])
    );
    let p = fetched(&mut b, 23, NodeId::Consumer(0), 7, isolated_fetch(0, RC));
    assert_eq!((p.last_stable_offset, p.batches.len()), (4, 3));
    assert!(p.aborted_transactions.is_empty());
    let markers = b.disk().logs[&tp()].markers();
    assert_eq!(
        markers[0].timestamp,
        TS + 20,
        "written at the leader's clock"
    );

    // Refusals, answered at once, per producer and partition.
    produced(&mut b, 30, 8, txn_batch(PID + 1, 2, 0, &[103]));
    let out = request(
        &mut b,
        31,
        NodeId::Broker(3),
        9,
        write_markers(&[
            (PID + 1, 1, true, 0, vec![tp()]),
            (
                PID,
                0,
                false,
                -1,
                vec![tp(), TopicPartition::new("orders", 7)],
            ),
        ]),
    );
    assert_eq!(
        markers_result(response_to(&out, 9)),
        Some(vec![
            (PID + 1, vec![(tp(), ErrorCode::InvalidProducerEpoch)]),
            (
                PID,
                vec![
                    (tp(), ErrorCode::TransactionCoordinatorFenced),
                    (
                        TopicPartition::new("orders", 7),
                        ErrorCode::UnknownTopicOrPartition
                    )
                ]
            ),
        ])
    );
    assert_eq!(leo(&b), 5, "nothing appended");
    // Clients may not write control batches.
    let forged = EndTransactionMarker {
        control_type: ControlRecordType::Commit,
        coordinator_epoch: 0,
    }
    .to_batch(PID, 0, 0)
    .encode();
    assert_eq!(
        produced(&mut b, 32, 10, forged),
        Some((ErrorCode::InvalidRequest, -1))
    );
    // A follower is not the place for markers.
    let (mut f, _) = broker(
        2,
        unverified(),
        Bugs::default(),
        vec![reg(Some(1), &[1, 2], 0, 0)],
    );
    let out = request(
        &mut f,
        40,
        NodeId::Broker(3),
        1,
        write_markers(&[(PID, 0, true, 0, vec![tp()])]),
    );
    assert_eq!(
        markers_result(response_to(&out, 1)),
        Some(vec![(PID, vec![(tp(), ErrorCode::NotLeaderOrFollower)])])
    );
}

#[test]
fn read_committed_fetches_carry_the_aborted_transactions() {
    let (mut b, _) = sole_leader(unverified(), Bugs::default());
    produced(&mut b, 10, 1, txn_batch(PID, 0, 0, &[100, 101]));
    produced(&mut b, 11, 2, txn_batch(PID + 1, 0, 0, &[200]));
    let markers = write_markers(&[
        (PID, 0, false, 0, vec![tp()]),
        (PID + 1, 0, true, 0, vec![tp()]),
    ]);
    let out = request(&mut b, 12, NodeId::Broker(3), 3, markers);
    assert!(markers_result(response_to(&out, 3)).is_some(), "ISR of one");
    let p = fetched(&mut b, 13, NodeId::Consumer(0), 4, isolated_fetch(0, RC));
    assert_eq!(
        (p.high_watermark, p.last_stable_offset, p.batches.len()),
        (5, 5, 4)
    );
    assert_eq!(
        p.aborted_transactions,
        vec![AbortedTransaction {
            producer_id: PID,
            first_offset: 0
        }]
    );
    let p = fetched(&mut b, 14, NodeId::Consumer(0), 5, isolated_fetch(4, RC));
    assert!(
        p.aborted_transactions.is_empty(),
        "ended before the fetched range"
    );
    let p = fetched(&mut b, 15, NodeId::Consumer(0), 6, isolated_fetch(0, RU));
    assert!(
        p.aborted_transactions.is_empty(),
        "read_uncommitted gets none"
    );
    // A restart recovers the transaction state from the log (and checks it).
    let before = b.disk().logs[&tp()].txn_index().to_vec();
    b.restart(2);
    assert_eq!(b.disk().logs[&tp()].txn_index(), &before[..]);
    assert_eq!(before.len(), 2);
}

#[test]
fn list_offsets_by_timestamp_can_land_on_a_marker() {
    let (mut b, _) = sole_leader(unverified(), Bugs::default());
    produced(&mut b, 10, 1, batch_at(PID, 0, true, 5, &[100]));
    produced(&mut b, 11, 2, batch_at(-1, -1, false, 8, &[101]));
    request(
        &mut b,
        100,
        NodeId::Broker(3),
        3,
        write_markers(&[(PID, 0, true, 0, vec![tp()])]),
    );
    // Created before the marker was written, appended after it.
    produced(&mut b, 101, 4, batch_at(-1, -1, false, 50, &[102]));
    assert_eq!(
        list_offsets(&mut b, 102, RU, TS + 6),
        (ErrorCode::None, 1, TS + 8)
    );
    assert_eq!(
        list_offsets(&mut b, 102, RU, TS + 9),
        (ErrorCode::None, 2, TS + 100),
        "C28: the first record at or after the time is the marker"
    );
    assert_eq!(
        list_offsets(&mut b, 102, RU, TS + 101),
        (ErrorCode::None, -1, -1)
    );
    assert_eq!(
        list_offsets(&mut b, 102, RC, LATEST_TIMESTAMP),
        (ErrorCode::None, 4, -1)
    );
    // An open transaction: the latest stable offset stays below it, and so do
    // read_committed timestamp lookups.
    produced(&mut b, 200, 5, batch_at(PID, 1, true, 200, &[103]));
    assert_eq!(
        list_offsets(&mut b, 201, RU, LATEST_TIMESTAMP),
        (ErrorCode::None, 5, -1)
    );
    assert_eq!(
        list_offsets(&mut b, 201, RC, LATEST_TIMESTAMP),
        (ErrorCode::None, 4, -1)
    );
    assert_eq!(
        list_offsets(&mut b, 201, RU, TS + 150),
        (ErrorCode::None, 4, TS + 200)
    );
    assert_eq!(
        list_offsets(&mut b, 201, RC, TS + 150),
        (ErrorCode::None, -1, -1)
    );
    assert_eq!(
        list_offsets(&mut b, 201, RU, -7).0,
        ErrorCode::InvalidRequest
    );
}

/// `__transaction_state` (one partition) led by `leader`.
pub(super) fn txn_state(leader: BrokerId) -> Vec<MetadataRecord> {
    vec![
        MetadataRecord::Topic {
            name: TRANSACTION_STATE_TOPIC.into(),
            partitions: 1,
        },
        MetadataRecord::PartitionChange(PartitionRegistration {
            tp: TopicPartition::new(TRANSACTION_STATE_TOPIC, 0),
            replicas: vec![leader],
            isr: vec![leader],
            leader: Some(leader),
            elr: Vec::new(),
            last_known_elr: Vec::new(),
            leader_epoch: 0,
            partition_epoch: 0,
        }),
    ]
}

/// The `AddPartitionsToTxn` in `out`: its correlation id and request.
pub(super) fn verification(out: &Outbox) -> Option<(u64, AddPartitionsToTxnRequest)> {
    out.sends.iter().find_map(|(to, m)| match m {
        Message::Request {
            correlation_id,
            request: Request::AddPartitionsToTxn(r),
        } => {
            assert_eq!(*to, NodeId::Broker(2), "the coordinator");
            Some((*correlation_id, r.clone()))
        }
        _ => None,
    })
}

/// The coordinator's answer to the verification `c`.
pub(super) fn verified(b: &mut Broker, now: Millis, c: u64, error: ErrorCode) -> Outbox {
    deliver_response(
        b,
        now,
        NodeId::Broker(2),
        c,
        Response::AddPartitionsToTxn(AddPartitionsToTxnResponse {
            results: vec![(tp(), error)],
        }),
    )
}

pub(super) fn verifying_broker(transaction_version: i16) -> Broker {
    // A request timeout within the broker's session with the controller.
    let config = BrokerConfig {
        transaction_version,
        request_timeout_ms: 2_000,
        ..BrokerConfig::default()
    };
    let mut records = vec![reg(Some(1), &[1], 0, 0)];
    records.extend(txn_state(2));
    broker(1, config, Bugs::default(), records).0
}

#[test]
fn a_transaction_starts_only_once_the_coordinator_verified_it() {
    let mut b = verifying_broker(1);
    let out = txn_request(&mut b, 10, 1, txn_batch(PID, 0, 0, &[100]));
    assert_eq!(produce_result(response_to(&out, 1)), None, "parked");
    assert_eq!(leo(&b), 0);
    let (c, v) = verification(&out).expect("the coordinator is asked");
    assert_eq!(
        (
            &*v.transactional_id,
            v.producer_id,
            v.producer_epoch,
            v.partitions.clone(),
            v.verify_only
        ),
        ("tx", PID, 0, vec![tp()], true)
    );
    let out = verified(&mut b, 11, c, ErrorCode::None);
    assert_eq!(
        produce_result(response_to(&out, 1)),
        Some((ErrorCode::None, 0))
    );
    // The transaction is open here now: no further verification.
    let out = txn_request(&mut b, 12, 2, txn_batch(PID, 0, 1, &[101]));
    assert!(verification(&out).is_none());
    assert_eq!(
        produce_result(response_to(&out, 2)),
        Some((ErrorCode::None, 1))
    );

    // The coordinator's refusals, as Kafka hands them to the producer.
    for (i, (error, expected)) in [
        (ErrorCode::NotCoordinator, ErrorCode::NotEnoughReplicas),
        (
            ErrorCode::CoordinatorLoadInProgress,
            ErrorCode::NotEnoughReplicas,
        ),
        (
            ErrorCode::ConcurrentTransactions,
            ErrorCode::NotEnoughReplicas,
        ),
        (ErrorCode::ProducerFenced, ErrorCode::InvalidProducerEpoch),
        (ErrorCode::InvalidTxnState, ErrorCode::InvalidTxnState),
    ]
    .into_iter()
    .enumerate()
    {
        let corr = 10 + i as u64;
        let pid = PID + 1 + i as i64;
        let out = txn_request(&mut b, 20, corr, txn_batch(pid, 0, 0, &[1]));
        let (c, _) = verification(&out).unwrap();
        let out = verified(&mut b, 21, c, error);
        assert_eq!(
            produce_result(response_to(&out, corr)),
            Some((expected, -1)),
            "{error}"
        );
    }
    assert_eq!(leo(&b), 2, "none appended");

    // No answer within request.timeout.ms, or a broken connection: NETWORK_EXCEPTION,
    // which the producer sees as NOT_ENOUGH_REPLICAS.
    let out = txn_request(&mut b, 30, 30, txn_batch(PID + 9, 0, 0, &[1]));
    assert!(verification(&out).is_some());
    let timeout = b.config.request_timeout_ms;
    let out = fire(&mut b, 30 + timeout);
    assert_eq!(
        produce_result(response_to(&out, 30)),
        Some((ErrorCode::NotEnoughReplicas, -1))
    );
    let t = 40 + b.config.request_timeout_ms;
    txn_request(&mut b, t, 31, txn_batch(PID + 9, 0, 0, &[1]));
    let mut out = Outbox::default();
    b.on_disconnect(t + 1, NodeId::Broker(2), &mut out);
    assert_eq!(
        produce_result(response_to(&out, 31)),
        Some((ErrorCode::NotEnoughReplicas, -1))
    );
}

/// Kafka's `VerificationStateEntry.lowestSequence` and `ProducerAppendInfo
/// .checkSequence`: the first batch of a transaction was refused after its
/// verification started; the batch behind it is `OUT_OF_ORDER_SEQUENCE_NUMBER`
/// (retried by the client, no epoch bump; never UNKNOWN_PRODUCER_ID) until the
/// first is in.
#[test]
fn batches_behind_a_refused_first_batch_wait_for_it() {
    let mut b = verifying_broker(1);
    let out = txn_request(&mut b, 10, 1, txn_batch(PID, 0, 0, &[100, 101]));
    let (c, _) = verification(&out).expect("verified");
    let out = verified(&mut b, 11, c, ErrorCode::NotCoordinator);
    assert_eq!(
        produce_result(response_to(&out, 1)),
        Some((ErrorCode::NotEnoughReplicas, -1))
    );
    let out = txn_request(&mut b, 12, 2, txn_batch(PID, 0, 2, &[102]));
    let (c, _) = verification(&out).expect("verified again");
    let out = verified(&mut b, 13, c, ErrorCode::None);
    assert_eq!(
        produce_result(response_to(&out, 2)),
        Some((ErrorCode::OutOfOrderSequenceNumber, -1))
    );
    assert_eq!(leo(&b), 0);
    // The first batch again, then the second.
    let out = txn_request(&mut b, 14, 3, txn_batch(PID, 0, 0, &[100, 101]));
    let (c, _) = verification(&out).expect("verified");
    let out = verified(&mut b, 15, c, ErrorCode::None);
    assert_eq!(
        produce_result(response_to(&out, 3)),
        Some((ErrorCode::None, 0))
    );
    let out = txn_request(&mut b, 16, 4, txn_batch(PID, 0, 2, &[102]));
    assert!(verification(&out).is_none(), "the transaction is open here");
    assert_eq!(
        produce_result(response_to(&out, 4)),
        Some((ErrorCode::None, 2))
    );
}

#[test]
fn a_marker_during_verification_keeps_a_late_batch_out() {
    let mut b = verifying_broker(1);
    let out = txn_request(&mut b, 10, 1, txn_batch(PID, 0, 0, &[100]));
    let (c, _) = verification(&out).unwrap();
    // The transaction is aborted (a timeout) while the verification is under way.
    request(
        &mut b,
        11,
        NodeId::Broker(2),
        2,
        write_markers(&[(PID, 0, false, 0, vec![tp()])]),
    );
    assert_eq!(leo(&b), 1);
    let out = verified(&mut b, 12, c, ErrorCode::None);
    assert_eq!(
        produce_result(response_to(&out, 1)),
        Some((ErrorCode::InvalidTxnState, -1)),
        "no hanging transaction"
    );
    assert_eq!(leo(&b), 1);
    assert_eq!(b.disk().logs[&tp()].last_stable_offset(1), 1);
}

#[test]
fn transaction_version_2_adds_the_partition_for_the_producer() {
    let mut b = verifying_broker(2);
    let out = txn_request(&mut b, 10, 1, txn_batch(PID, 0, 0, &[100]));
    let (c, v) = verification(&out).unwrap();
    assert!(!v.verify_only);
    // KAFKA-18654: CONCURRENT_TRANSACTIONS is retried by the leader every 20 ms...
    let out = verified(&mut b, 11, c, ErrorCode::ConcurrentTransactions);
    assert!(response_to(&out, 1).is_none(), "retried, not answered");
    let out = fire(&mut b, 30);
    assert!(verification(&out).is_none(), "not before the backoff");
    let out = fire(&mut b, 31);
    let (c, _) = verification(&out).expect("asked again");
    let out = verified(&mut b, 32, c, ErrorCode::None);
    assert_eq!(
        produce_result(response_to(&out, 1)),
        Some((ErrorCode::None, 0))
    );
    // ... for up to 100 ms after the first attempt, then the producer hears it.
    let out = txn_request(&mut b, 200, 2, txn_batch(PID + 1, 0, 0, &[100]));
    let (mut c, _) = verification(&out).unwrap();
    let mut now = 201;
    loop {
        let out = verified(&mut b, now, c, ErrorCode::ConcurrentTransactions);
        if let Some(answer) = response_to(&out, 2) {
            assert_eq!(
                produce_result(Some(answer)),
                Some((ErrorCode::ConcurrentTransactions, -1))
            );
            break;
        }
        now += 20;
        let out = fire(&mut b, now);
        c = verification(&out).expect("asked again").0;
        now += 1;
        assert!(now < 400, "the retries end");
    }
    assert!(now > 280, "retried for about 100 ms: {now}");
    // Without the topic there is no coordinator to ask.
    let (mut b, _) = sole_leader(BrokerConfig::default(), Bugs::default());
    let out = txn_request(&mut b, 10, 1, txn_batch(PID, 0, 0, &[100]));
    assert_eq!(
        produce_result(response_to(&out, 1)),
        Some((ErrorCode::NotEnoughReplicas, -1))
    );
}

#[test]
fn epoch_fencing_keeps_zombies_out_unless_switched_off() {
    let zombie = || txn_batch(PID, 0, 1, &[666]);
    for (bugs, expected) in [
        (Bugs::default(), Some((ErrorCode::InvalidProducerEpoch, -1))),
        (
            Bugs::of(&[Bug::NoProducerEpochFencing]),
            Some((ErrorCode::None, 1)),
        ),
    ] {
        let (mut b, _) = sole_leader(unverified(), bugs);
        produced(&mut b, 10, 1, txn_batch(PID, 1, 0, &[100]));
        let r = produced(&mut b, 11, 2, zombie());
        assert_eq!(r, expected);
    }
    // With verification, the coordinator fences the zombie all the same.
    let mut b = verifying_broker(1);
    b.bugs = Bugs::of(&[Bug::NoProducerEpochFencing]);
    let out = txn_request(&mut b, 10, 1, zombie());
    let (c, _) = verification(&out).unwrap();
    let out = verified(&mut b, 11, c, ErrorCode::ProducerFenced);
    assert_eq!(
        produce_result(response_to(&out, 1)),
        Some((ErrorCode::InvalidProducerEpoch, -1))
    );
}

#[test]
fn offsets_partitions_take_markers_and_reload_past_them() {
    let (mut b, meta) = broker(
        1,
        group_config(),
        Bugs::default(),
        offsets_records(1, &[1], 0),
    );
    let offsets = TopicPartition::new(OFFSETS_TOPIC, 12);
    let out = request(
        &mut b,
        10,
        NodeId::Broker(2),
        1,
        write_markers(&[(PID, 0, true, 0, vec![offsets.clone()])]),
    );
    assert_eq!(
        markers_result(response_to(&out, 1)),
        Some(vec![(PID, vec![(offsets.clone(), ErrorCode::None)])])
    );
    // A new leader epoch reloads the groups from the log, marker included.
    deliver_metadata(&mut b, 20, &meta, offsets_records(1, &[1], 1), 9);
    assert_eq!(b.disk().logs[&offsets].markers().len(), 1);
    assert!(b.coordinator.is_loaded(12));
}
/// Kafka's `ProducerAppendInfo.checkProducerEpoch` for the group coordinator's
/// append (origin COORDINATOR): once a marker of a newer epoch is in the offsets
/// partition, a fenced producer's `TxnOffsetCommit` is `INVALID_PRODUCER_EPOCH`
/// and nothing waits for the successor's marker; the current epoch is written.
#[test]
fn a_fenced_producers_txn_offset_commit_is_refused() {
    for bugs in [Bugs::default(), Bugs::of(&[Bug::NoProducerEpochFencing])] {
        let (mut b, _) = broker(1, group_config(), bugs, offsets_records(1, &[1], 0));
        let offsets = TopicPartition::new(OFFSETS_TOPIC, 12);
        let out = request(
            &mut b,
            10,
            NodeId::Broker(2),
            1,
            write_markers(&[(PID, 5, false, 0, vec![offsets.clone()])]),
        );
        assert_eq!(
            markers_result(response_to(&out, 1)),
            Some(vec![(PID, vec![(offsets.clone(), ErrorCode::None)])])
        );
        let commit = |epoch: i16| {
            Request::TxnOffsetCommit(TxnOffsetCommitRequest {
                transactional_id: Arc::from("etl-0"),
                group_id: Arc::from(GROUP),
                producer_id: PID,
                producer_epoch: epoch,
                generation_id: -1,
                member_id: Arc::from(""),
                group_instance_id: None,
                offsets: vec![CommittedOffset {
                    tp: TopicPartition::new("orders", 0),
                    offset: 7,
                    leader_epoch: -1,
                }],
            })
        };
        let log_end = b.disk().logs[&offsets].log_end_offset();
        let c = NodeId::Producer(0);
        let error = |out: &Outbox, correlation| match response_to(out, correlation) {
            Some(Response::TxnOffsetCommit(r)) => r.partitions[0].1,
            other => panic!("{other:?}"),
        };
        let stale = request(&mut b, 20, c, 2, commit(4));
        if bugs == Bugs::default() {
            assert_eq!(error(&stale, 2), ErrorCode::InvalidProducerEpoch);
            assert_eq!(
                b.disk().logs[&offsets].log_end_offset(),
                log_end,
                "nothing written"
            );
        } else {
            assert_eq!(error(&stale, 2), ErrorCode::None, "the bug lets it in");
            assert_eq!(b.disk().logs[&offsets].log_end_offset(), log_end + 1);
        }
        let log_end = b.disk().logs[&offsets].log_end_offset();
        let current = request(&mut b, 30, c, 3, commit(5));
        assert_eq!(error(&current, 3), ErrorCode::None);
        assert_eq!(b.disk().logs[&offsets].log_end_offset(), log_end + 1);
    }
}
