//! Unit tests of `report::figures`.

use super::*;
use crate::history::Entry;
use crate::kafka::protocol::TopicPartition;

fn send(invoke: u64, done: u64, outcome: Outcome) -> Entry {
    Entry {
        index: 0,
        process: NodeId::Producer(0),
        invoke_ms: invoke,
        complete_ms: Some(done),
        outcome,
        op: Op::Send {
            timestamp: None,
            txn: None,
            timeout: None,
            headers: Vec::new(),
            key: None,
            value: invoke,
            partition: TopicPartition::new("t", 0),
            offset: Some(0),
            attempts: 1,
        },
    }
}

#[test]
fn figures_come_from_metrics_and_acknowledged_sends() {
    let mut h = History::default();
    for i in 0..100 {
        h.push(send(i, i + 1 + i % 10, Outcome::Ok));
    }
    h.push(send(0, 9_999, Outcome::Info { reason: "x".into() }));
    h.push(Entry::instant(
        NodeId::Producer(0),
        200,
        Op::ProducerMetrics(ProducerMetrics {
            batches: 10,
            records: 100,
            batch_bytes: 2_000,
            uncompressed_bytes: 8_000,
            ..ProducerMetrics::default()
        }),
    ));
    let f = producer_figures(&h);
    assert_eq!(f.records_per_batch, 10.0);
    assert_eq!(f.batch_size_avg, 200.0);
    assert_eq!(f.compression_rate, 0.25);
    assert_eq!(
        (f.latency_p50_ms, f.latency_p99_ms, f.latency_max_ms),
        (5, 10, 10)
    );
    let mut sums = FigureSums::default();
    sums.add(&f);
    sums.add(&f);
    let m = sums.mean();
    assert_eq!(m.records_per_batch, 10.0);
    assert_eq!(m.metrics.records, 200);
}

#[test]
fn pipeline_outputs_count_when_their_transaction_commits() {
    let pipe = NodeId::Pipeline(0);
    let tp = TopicPartition::new("out", 0);
    let (t1, t2): (TxnId, TxnId) = (1, 2);
    let mut h = History::default();
    let out = |txn: TxnId, value: u64, at: u64| Entry {
        index: 0,
        process: pipe,
        invoke_ms: at,
        complete_ms: Some(at + 5),
        outcome: Outcome::Ok,
        op: Op::Send {
            timestamp: None,
            txn: Some(txn),
            timeout: None,
            headers: Vec::new(),
            key: None,
            value,
            partition: tp.clone(),
            offset: Some(value as i64),
            attempts: 1,
        },
    };
    for (i, v) in [1, 2, 3].into_iter().enumerate() {
        h.push(out(t1, v, 1_000 + i as u64));
    }
    h.push(out(t2, 4, 1_500));
    let end = |txn: TxnId, commit: bool, at: u64, outcome: Outcome| Entry {
        index: 0,
        process: pipe,
        invoke_ms: at,
        complete_ms: Some(at + 20),
        outcome,
        op: Op::EndTxn {
            transactional_id: "t".into(),
            txn,
            producer_id: 1,
            producer_epoch: 0,
            commit,
            partitions: vec![tp.clone()],
            group: None,
            offsets: Vec::new(),
        },
    };
    h.push(end(t1, true, 1_980, Outcome::Ok));
    h.push(end(t2, false, 1_990, Outcome::Ok));
    let requests: BTreeMap<String, u64> =
        [("Produce".to_string(), 4), ("EndTxn".to_string(), 2)].into();
    let f = pipeline_figures(&h, &requests);
    assert_eq!((f.outputs, f.transactions, f.aborted), (3, 1, 1));
    assert_eq!((f.commit_p50_ms, f.commit_p99_ms), (20, 20));
    assert_eq!(f.outputs_per_txn(), 3.0);
    // Three outputs made durable at the same instant: no span, no rate.
    assert_eq!(f.outputs_per_sec, 0.0);
    assert_eq!(f.requests_per_1000_outputs(), 2000.0);
    assert_eq!(f.txn_requests_per_1000_outputs(), 2000.0 / 3.0);
    let mut sums = PipelineSums::default();
    sums.add(&f);
    sums.add(&f);
    let m = sums.mean();
    assert_eq!((m.outputs, m.broker_requests["EndTxn"]), (3, 2));
}
