//! Idempotence: duplicates, sequence gaps, producer state across truncation and restarts, producer ids.

use super::*;

pub(super) const PID: i64 = 4_000;

pub(super) fn leo(b: &Broker) -> Offset {
    b.disk().logs[&tp()].log_end_offset()
}

#[test]
fn duplicate_is_answered_with_the_original_offset_once_committed() {
    let (mut b, _) = replica_of(1, 1, &[1, 2, 3], Bugs::default());
    let first = idempotent_batch(PID, 0, 0, &[100, 101]);
    let (r, _) = send_batch(&mut b, 10, 7, Acks::All, first.clone());
    assert_eq!(r, None, "parked until replicated");
    // The producer's request timed out (or its response was lost): it retries.
    let (r, _) = send_batch(&mut b, 11, 8, Acks::All, first.clone());
    assert_eq!(r, None, "a duplicate is not acknowledged before it commits");
    assert_eq!(leo(&b), 2, "not appended twice");
    request(&mut b, 12, NodeId::Broker(2), 1, follower_fetch(2, 2, 0));
    let out = request(&mut b, 13, NodeId::Broker(3), 2, follower_fetch(3, 1, 0));
    assert!(
        response_to(&out, 7).is_none() && response_to(&out, 8).is_none(),
        "offset 1 not committed yet"
    );
    let out = request(&mut b, 14, NodeId::Broker(3), 3, follower_fetch(3, 2, 0));
    assert_eq!(
        produce_result(response_to(&out, 7)),
        Some((ErrorCode::None, 0))
    );
    let Some(Response::Produce(dup)) = response_to(&out, 8) else {
        panic!("the duplicate is answered once the original commits");
    };
    assert_eq!(
        (
            dup.partitions[0].error,
            dup.partitions[0].base_offset,
            dup.partitions[0].log_start_offset
        ),
        (ErrorCode::None, 0, 0)
    );
    // Committed already: answered at once, with acks=all and acks=1.
    let (r, _) = send_batch(&mut b, 15, 9, Acks::All, first.clone());
    assert_eq!(r, Some((ErrorCode::None, 0)));
    let (r, _) = send_batch(&mut b, 16, 10, Acks::Leader, first);
    assert_eq!(r, Some((ErrorCode::None, 0)));
    // acks=1 answers an uncommitted duplicate at once too; acks=0 not at all.
    let next = idempotent_batch(PID, 0, 2, &[102]);
    let (r, _) = send_batch(&mut b, 17, 11, Acks::Leader, next.clone());
    assert_eq!(r, Some((ErrorCode::None, 2)));
    let (r, _) = send_batch(&mut b, 18, 12, Acks::Leader, next.clone());
    assert_eq!(r, Some((ErrorCode::None, 2)));
    let (_, out) = send_batch(&mut b, 19, 13, Acks::None, next);
    assert!(out.sends.iter().all(|(to, _)| *to != NodeId::Producer(0)));
    assert_eq!(leo(&b), 3);
}

#[test]
fn leader_refuses_gaps_and_stale_epochs_and_takes_unknown_producers() {
    let (mut b, _) = replica_of(1, 1, &[1], Bugs::default());
    let mut corr = 0;
    let mut produce = |b: &mut Broker, pid, epoch, seq, values: &[u64]| {
        corr += 1;
        let out = request(
            b,
            10 + corr,
            NodeId::Producer(0),
            corr,
            produce_batch(Acks::Leader, idempotent_batch(pid, epoch, seq, values)),
        );
        match response_to(&out, corr) {
            Some(Response::Produce(p)) => {
                let p = &p.partitions[0];
                assert_eq!(p.log_start_offset, 0);
                (p.error, p.base_offset)
            }
            other => panic!("no produce response: {other:?}"),
        }
    };
    assert_eq!(
        produce(&mut b, PID, 0, 0, &[100, 101]),
        (ErrorCode::None, 0)
    );
    assert_eq!(
        produce(&mut b, PID, 0, 3, &[103]),
        (ErrorCode::OutOfOrderSequenceNumber, -1),
        "sequence 2 is missing"
    );
    assert_eq!(
        produce(&mut b, PID + 1, 0, 5, &[105]),
        (ErrorCode::None, 2),
        "Kafka 4.x: a producer without state is appended at any sequence"
    );
    assert_eq!(
        produce(&mut b, PID + 2, 0, 0, &[200]),
        (ErrorCode::None, 3),
        "a new producer at sequence 0"
    );
    assert_eq!(
        produce(&mut b, PID, 1, 0, &[102]),
        (ErrorCode::None, 4),
        "a bumped epoch starts again at sequence 0"
    );
    assert_eq!(
        produce(&mut b, PID, 0, 2, &[102]),
        (ErrorCode::InvalidProducerEpoch, -1)
    );
    assert_eq!(
        produce(&mut b, PID, 2, 1, &[104]),
        (ErrorCode::OutOfOrderSequenceNumber, -1),
        "a new epoch must start at sequence 0"
    );
    assert_eq!(leo(&b), 5, "refused batches are not appended");
}

#[test]
fn no_sequence_check_bug_appends_the_duplicate() {
    let (mut b, _) = replica_of(1, 1, &[1], Bugs::of(&[Bug::NoSequenceCheck]));
    let first = idempotent_batch(PID, 0, 0, &[100, 101]);
    let (r, _) = send_batch(&mut b, 10, 1, Acks::Leader, first.clone());
    assert_eq!(r, Some((ErrorCode::None, 0)));
    let (r, _) = send_batch(&mut b, 11, 2, Acks::Leader, first);
    assert_eq!(r, Some((ErrorCode::None, 2)), "appended twice");
    let (r, _) = send_batch(
        &mut b,
        12,
        3,
        Acks::Leader,
        idempotent_batch(PID, 0, 9, &[1]),
    );
    assert_eq!(r, Some((ErrorCode::None, 4)), "gaps pass too");
    assert_eq!(leo(&b), 5);
}

#[test]
fn follower_that_fetched_the_batches_rejects_duplicates_as_leader() {
    let (mut b, meta) = replica_of(2, 1, &[1, 2], Bugs::default());
    let mut leader = Log::default();
    leader
        .append_as_leader(&idempotent_batch(PID, 0, 0, &[100, 101]), 0)
        .unwrap();
    leader
        .append_as_leader(&idempotent_batch(PID, 0, 2, &[102]), 0)
        .unwrap();
    let fetch = find(&meta, |r| matches!(r, Request::Fetch(_)));
    let resp = Response::Fetch(FetchResponse {
        error: ErrorCode::None,
        partitions: vec![FetchPartitionResponse {
            aborted_transactions: Vec::new(),
            diverging_epoch: None,
            tp: tp(),
            error: ErrorCode::None,
            high_watermark: 3,
            last_stable_offset: 3,
            log_start_offset: 0,
            batches: leader.read(0, 3, 1 << 20),
        }],
    });
    deliver_response(&mut b, 10, NodeId::Broker(1), fetch, resp);
    assert_eq!(leo(&b), 3);
    assert_eq!(
        b.disk().logs[&tp()].producer_state(),
        leader.producer_state()
    );
    deliver_metadata(&mut b, 20, &meta, vec![reg(Some(2), &[2], 1, 1)], 8);
    let (r, _) = send_batch(
        &mut b,
        21,
        7,
        Acks::All,
        idempotent_batch(PID, 0, 2, &[102]),
    );
    assert_eq!(r, Some((ErrorCode::None, 2)));
    let (r, _) = send_batch(
        &mut b,
        22,
        8,
        Acks::All,
        idempotent_batch(PID, 0, 0, &[100, 101]),
    );
    assert_eq!(r, Some((ErrorCode::None, 0)));
    let (r, _) = send_batch(
        &mut b,
        23,
        9,
        Acks::All,
        idempotent_batch(PID, 0, 3, &[103]),
    );
    assert_eq!(r, Some((ErrorCode::None, 3)));
}

#[test]
fn truncation_forgets_the_truncated_batches() {
    // Broker 2 leads epoch 0: sequence 0 commits, sequences 1-2 do not.
    let (mut b, meta) = replica_of(2, 2, &[1, 2], Bugs::default());
    let (r, _) = send_batch(
        &mut b,
        10,
        1,
        Acks::Leader,
        idempotent_batch(PID, 0, 0, &[100]),
    );
    assert_eq!(r, Some((ErrorCode::None, 0)));
    request(&mut b, 11, NodeId::Broker(1), 2, follower_fetch(1, 1, 0));
    let retried = idempotent_batch(PID, 0, 1, &[101, 102]);
    let (r, _) = send_batch(&mut b, 12, 3, Acks::Leader, retried.clone());
    assert_eq!(r, Some((ErrorCode::None, 1)));
    // Broker 1 takes over; broker 2 truncates to where epoch 0 ends on it.
    let out = deliver_metadata(&mut b, 21, &meta, vec![reg(Some(1), &[1], 1, 1)], 8);
    let (c, _, resp) = diverging_answer(&out, 0, 1);
    answer_with(&mut b, 22, 1, c, resp);
    assert_eq!(leo(&b), 1);
    let entry = b.disk().logs[&tp()]
        .producer_state()
        .last_entry(PID)
        .unwrap();
    assert_eq!((entry.last_sequence(), entry.batches().len()), (0, 1));
    // Leader again: the producer's retry of sequences 1-2 is new, not a duplicate.
    deliver_metadata(&mut b, 30, &out, vec![reg(Some(2), &[2], 2, 2)], 9);
    let (r, _) = send_batch(&mut b, 31, 4, Acks::Leader, retried);
    assert_eq!(r, Some((ErrorCode::None, 1)));
}

#[test]
fn producer_state_is_rebuilt_after_a_restart() {
    let (mut b, _) = replica_of(1, 1, &[1], Bugs::default());
    let first = idempotent_batch(PID, 0, 0, &[100, 101]);
    send_batch(&mut b, 10, 1, Acks::Leader, first.clone());
    send_batch(&mut b, 11, 2, Acks::Leader, batch(&[7]));
    let before = b.disk().logs[&tp()].producer_state().clone();
    b.restart(2);
    assert_eq!(b.disk().logs[&tp()].producer_state(), &before);
    let (mut b, _) = bring_up(b, vec![reg(Some(1), &[1], 0, 0)]);
    let (r, _) = send_batch(&mut b, 20, 3, Acks::Leader, first);
    assert_eq!(r, Some((ErrorCode::None, 0)));
    let (r, _) = send_batch(
        &mut b,
        21,
        4,
        Acks::Leader,
        idempotent_batch(PID, 0, 2, &[1]),
    );
    assert_eq!(r, Some((ErrorCode::None, 3)));
}

pub(super) fn init_producer_id(
    b: &mut Broker,
    now: Millis,
    producer_id: i64,
) -> (InitProducerIdResponse, Outbox) {
    let out = request(
        b,
        now,
        NodeId::Producer(0),
        77,
        Request::InitProducerId(InitProducerIdRequest {
            transactional_id: None,
            transaction_timeout_ms: 60_000,
            producer_id,
            producer_epoch: if producer_id < 0 { -1 } else { 0 },
        }),
    );
    match response_to(&out, 77) {
        Some(Response::InitProducerId(r)) => (r, out),
        other => panic!("no InitProducerId response: {other:?}"),
    }
}

/// The `AllocateProducerIds` requests in `out`: (correlation id, broker id, epoch).
pub(super) fn allocations(out: &Outbox) -> Vec<(u64, BrokerId, i64)> {
    out.sends
        .iter()
        .filter_map(|(to, m)| match m {
            Message::Request {
                correlation_id,
                request: Request::AllocateProducerIds(r),
            } => {
                assert_eq!(*to, NodeId::Controller);
                Some((*correlation_id, r.broker_id, r.broker_epoch))
            }
            _ => None,
        })
        .collect()
}

pub(super) fn allocated(
    b: &mut Broker,
    now: Millis,
    correlation_id: u64,
    error: ErrorCode,
    start: i64,
) -> Outbox {
    deliver_response(
        b,
        now,
        NodeId::Controller,
        correlation_id,
        Response::AllocateProducerIds(AllocateProducerIdsResponse {
            error,
            producer_id_start: start,
            producer_id_len: if error == ErrorCode::None { 1_000 } else { 0 },
        }),
    )
}

#[test]
fn init_producer_id_hands_out_ids_from_controller_blocks() {
    let (mut b, _) = broker(1, BrokerConfig::default(), Bugs::default(), vec![]);
    let (r, out) = init_producer_id(&mut b, 10, -1);
    assert_eq!(
        (r.error, r.producer_id, r.producer_epoch),
        (ErrorCode::CoordinatorLoadInProgress, -1, -1)
    );
    let asked = allocations(&out);
    assert_eq!(asked.len(), 1);
    assert_eq!((asked[0].1, asked[0].2), (1, 0), "broker id and epoch");
    let (r, out) = init_producer_id(&mut b, 11, -1);
    assert_eq!(r.error, ErrorCode::CoordinatorLoadInProgress);
    assert!(allocations(&out).is_empty(), "one request in flight");

    allocated(&mut b, 12, asked[0].0, ErrorCode::None, 0);
    let (r, _) = init_producer_id(&mut b, 13, -1);
    assert_eq!(
        (r.error, r.producer_id, r.producer_epoch),
        (ErrorCode::None, 0, 0)
    );
    // An idempotent producer that sends its id gets a new one all the same.
    let (r, _) = init_producer_id(&mut b, 14, 0);
    assert_eq!(
        (r.error, r.producer_id, r.producer_epoch),
        (ErrorCode::None, 1, 0)
    );

    // A transactional.id goes to its transaction coordinator; this broker leads no
    // `__transaction_state` partition.
    let out = request(
        &mut b,
        15,
        NodeId::Producer(0),
        78,
        Request::InitProducerId(InitProducerIdRequest {
            transactional_id: Some("tx".into()),
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
        }),
    );
    let Some(Response::InitProducerId(r)) = response_to(&out, 78) else {
        panic!("no response");
    };
    assert_eq!((r.error, r.producer_id), (ErrorCode::NotCoordinator, -1));

    // At 90% of the block the next one is prefetched; a failure is retried after
    // the backoff.
    let mut ids = vec![0, 1];
    let mut prefetch = Vec::new();
    for i in 0..898 {
        let (r, out) = init_producer_id(&mut b, 20, -1);
        ids.push(r.producer_id);
        if !allocations(&out).is_empty() {
            prefetch.push((i, allocations(&out)));
        }
    }
    assert_eq!(ids.last(), Some(&899));
    assert!(prefetch.is_empty());
    let (r, out) = init_producer_id(&mut b, 20, -1);
    assert_eq!(r.producer_id, 900);
    let asked = allocations(&out);
    assert_eq!(asked.len(), 1, "prefetch at 90%");
    let out = allocated(&mut b, 21, asked[0].0, ErrorCode::StaleBrokerEpoch, -1);
    assert!(allocations(&out).is_empty(), "not before the backoff");
    assert_eq!(b.next_timer(), Some(21 + PRODUCER_ID_RETRY_BACKOFF_MS));
    let out = fire(&mut b, 21 + PRODUCER_ID_RETRY_BACKOFF_MS);
    let asked = allocations(&out);
    assert_eq!(asked.len(), 1, "retried");
    // The retry times out (the controller is unreachable), and is retried again.
    let timeout = BrokerConfig::default().request_timeout_ms;
    let t = 21 + PRODUCER_ID_RETRY_BACKOFF_MS + timeout;
    let out = fire(&mut b, t);
    assert!(allocations(&out).is_empty());
    let out = fire(&mut b, t + PRODUCER_ID_RETRY_BACKOFF_MS);
    let asked = allocations(&out);
    assert_eq!(asked.len(), 1);
    // Another broker got 1000..2000 meanwhile.
    allocated(&mut b, t + 60, asked[0].0, ErrorCode::None, 2_000);
    for _ in 901..1_000 {
        let (r, _) = init_producer_id(&mut b, t + 61, -1);
        ids.push(r.producer_id);
    }
    assert_eq!(ids.last(), Some(&999));
    let (r, out) = init_producer_id(&mut b, t + 62, -1);
    assert_eq!(r.producer_id, 2_000, "the prefetched block");
    assert!(allocations(&out).is_empty());
    ids.push(900);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1_000, "every id handed out once");
}

#[test]
fn producer_ids_are_asked_for_only_once_registered() {
    let mut b = Broker::new(
        1,
        BrokerConfig::default(),
        Bugs::default(),
        1,
        Disk::default(),
    );
    let mut start = Outbox::default();
    b.on_start(0, &mut start);
    assert!(allocations(&start).is_empty(), "no broker epoch yet");
    let c = find(&start, |r| matches!(r, Request::BrokerRegistration(_)));
    let out = deliver_response(
        &mut b,
        2,
        NodeId::Controller,
        c,
        Response::BrokerRegistration(BrokerRegistrationResponse {
            error: ErrorCode::None,
            broker_epoch: 5,
        }),
    );
    assert!(allocations(&out).is_empty(), "nothing asked for ids yet");
    // Clients reach it once the controller unfences it.
    let c = find(&out, |r| matches!(r, Request::BrokerHeartbeat(_)));
    let unfenced = Response::BrokerHeartbeat(BrokerHeartbeatResponse {
        error: ErrorCode::None,
        is_fenced: false,
    });
    deliver_response(&mut b, 3, NodeId::Controller, c, unfenced);
    let (r, out) = init_producer_id(&mut b, 4, -1);
    assert_eq!(r.error, ErrorCode::CoordinatorLoadInProgress);
    let asked = allocations(&out);
    assert_eq!(asked.len(), 1);
    assert_eq!((asked[0].1, asked[0].2), (1, 5), "with its broker epoch");
    allocated(&mut b, 5, asked[0].0, ErrorCode::None, 0);
    assert_eq!(init_producer_id(&mut b, 6, -1).0.producer_id, 0);
    // A restarted process forgets its block, and no client reaches it before it is
    // registered and unfenced anew.
    b.restart(2);
    let mut start = Outbox::default();
    b.on_start(7, &mut start);
    assert!(allocations(&start).is_empty(), "no broker epoch yet");
    assert!(!b.listening());
}
