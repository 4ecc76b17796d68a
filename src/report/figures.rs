//! Figures of a run, computed from its history: what batching, `linger.ms` and
//! compression did for the producers (claims C8 and C9), and what transactions cost the
//! read-process-write pipelines (C29: outputs per second, transactions, commit latency,
//! broker requests per output). Pure functions over plain data, like the checker, so a
//! report can be recomputed from a saved history. A sweep keeps integer sums
//! ([`FigureSums`], [`PipelineSums`]) so that shards of it merge exactly.

use crate::history::{History, Op, Outcome, ProducerMetrics, TxnId};
use crate::kafka::protocol::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One run's producer figures (all producers together).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProducerFigures {
    /// The producers' summed counters.
    pub metrics: ProducerMetrics,
    /// Records per batch (`records / batches`).
    pub records_per_batch: f64,
    /// Mean encoded batch size in bytes (Kafka's `batch-size-avg`).
    pub batch_size_avg: f64,
    /// Encoded over uncompressed bytes (Kafka's `compression-rate-avg`); 1.0 without
    /// compression.
    pub compression_rate: f64,
    /// Send latency (acknowledged sends: `send` call to acknowledgement), 50th
    /// percentile, ms.
    pub latency_p50_ms: u64,
    /// 99th percentile, ms.
    pub latency_p99_ms: u64,
    /// Maximum, ms.
    pub latency_max_ms: u64,
}

/// The `q`-quantile (nearest rank) of sorted values.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Figures of one history.
pub fn producer_figures(history: &History) -> ProducerFigures {
    let mut m = ProducerMetrics::default();
    let mut latencies = Vec::new();
    for e in &history.entries {
        match &e.op {
            Op::ProducerMetrics(p) => add_metrics(&mut m, p),
            Op::Send { .. } if e.outcome == Outcome::Ok => {
                if let Some(done) = e.complete_ms {
                    latencies.push(done - e.invoke_ms);
                }
            }
            _ => {}
        }
    }
    latencies.sort_unstable();
    let per = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    ProducerFigures {
        records_per_batch: per(m.records, m.batches),
        batch_size_avg: per(m.batch_bytes, m.batches),
        compression_rate: if m.uncompressed_bytes == 0 {
            1.0
        } else {
            per(m.batch_bytes, m.uncompressed_bytes)
        },
        latency_p50_ms: quantile(&latencies, 0.50),
        latency_p99_ms: quantile(&latencies, 0.99),
        latency_max_ms: latencies.last().copied().unwrap_or(0),
        metrics: m,
    }
}

/// `into.f += from.f` for each named field: the one way sums are merged here.
macro_rules! add_fields {
    ($into:expr, $from:expr; $($field:ident),+ $(,)?) => {
        $( $into.$field += $from.$field; )+
    };
}

/// Adds one set of producer counters to another.
fn add_metrics(into: &mut ProducerMetrics, p: &ProducerMetrics) {
    add_fields!(into, p; batches, records, batch_bytes, uncompressed_bytes, requests,
        outgoing_bytes, retried_batches, blocked_on_memory, epoch_bumps);
}

/// Per-run ratios are summed in millionths so that sums are integers: adding them is
/// exact and associative, so sweeps merged from shards give the same means, bit for
/// bit, as one sweep (f64 sums would depend on the order of addition).
const MICRO: f64 = 1e6;

fn to_micro(x: f64) -> u64 {
    (x * MICRO).round() as u64
}

/// Sums of several runs' figures, from which a sweep's means are computed; mergeable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FigureSums {
    /// Runs added (seeds that completed).
    pub runs: u64,
    /// The producers' counters, summed over the runs.
    pub metrics: ProducerMetrics,
    /// Sum of the runs' records per batch, in millionths.
    pub records_per_batch_micro: u64,
    /// Sum of the runs' mean batch sizes (bytes), in millionths.
    pub batch_size_avg_micro: u64,
    /// Sum of the runs' compression rates, in millionths.
    pub compression_rate_micro: u64,
    /// Sum of the runs' 50th percentile send latencies, ms.
    pub latency_p50_ms: u64,
    /// Sum of the runs' 99th percentiles, ms.
    pub latency_p99_ms: u64,
    /// Sum of the runs' maxima, ms.
    pub latency_max_ms: u64,
}

impl FigureSums {
    /// Adds one run's figures.
    pub fn add(&mut self, f: &ProducerFigures) {
        self.merge(&FigureSums {
            runs: 1,
            metrics: f.metrics.clone(),
            records_per_batch_micro: to_micro(f.records_per_batch),
            batch_size_avg_micro: to_micro(f.batch_size_avg),
            compression_rate_micro: to_micro(f.compression_rate),
            latency_p50_ms: f.latency_p50_ms,
            latency_p99_ms: f.latency_p99_ms,
            latency_max_ms: f.latency_max_ms,
        });
    }

    /// Adds another sweep's sums (a shard of the same sweep).
    pub fn merge(&mut self, o: &FigureSums) {
        add_metrics(&mut self.metrics, &o.metrics);
        add_fields!(self, o; runs, records_per_batch_micro, batch_size_avg_micro,
            compression_rate_micro, latency_p50_ms, latency_p99_ms, latency_max_ms);
    }

    /// The means per run (a sweep's row); `metrics` stay summed over the runs.
    pub fn mean(&self) -> ProducerFigures {
        let n = self.runs.max(1) as f64;
        let ratio = |micro: u64| micro as f64 / MICRO / n;
        let ms = |sum: u64| (sum as f64 / n).round() as u64;
        ProducerFigures {
            metrics: self.metrics.clone(),
            records_per_batch: ratio(self.records_per_batch_micro),
            batch_size_avg: ratio(self.batch_size_avg_micro),
            compression_rate: ratio(self.compression_rate_micro),
            latency_p50_ms: ms(self.latency_p50_ms),
            latency_p99_ms: ms(self.latency_p99_ms),
            latency_max_ms: ms(self.latency_max_ms),
        }
    }
}

/// The broker APIs that exist for transactions (C29's "broker load grows with the number
/// of transactions").
pub const TXN_APIS: &[&str] = &[
    "InitProducerId",
    "AddPartitionsToTxn",
    "AddOffsetsToTxn",
    "EndTxn",
    "WriteTxnMarkers",
    "TxnOffsetCommit",
];

/// One run's read-process-write figures (all pipeline instances together, C29).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PipelineFigures {
    /// Outputs made durable: sent in a committed transaction (exactly-once) or
    /// acknowledged (at-least-once).
    pub outputs: u64,
    /// Outputs per simulated second, from the first output made durable to the last.
    pub outputs_per_sec: f64,
    /// Transactions committed.
    pub transactions: u64,
    /// Transactions aborted (by their client or, for it, by the coordinator).
    pub aborted: u64,
    /// Commits (`commitTransaction`, or `commitSync` without transactions): 50th
    /// percentile latency, ms.
    pub commit_p50_ms: u64,
    /// 99th percentile, ms.
    pub commit_p99_ms: u64,
    /// Requests the brokers received, by Kafka API name (every client and replica).
    pub broker_requests: BTreeMap<String, u64>,
}

impl PipelineFigures {
    /// Outputs per committed transaction (0 without transactions).
    pub fn outputs_per_txn(&self) -> f64 {
        ratio(self.outputs, self.transactions)
    }

    /// Broker requests (all APIs) per 1000 outputs.
    pub fn requests_per_1000_outputs(&self) -> f64 {
        1000.0 * ratio(self.broker_requests.values().sum(), self.outputs)
    }

    /// Requests of the transaction APIs ([`TXN_APIS`]) per 1000 outputs.
    pub fn txn_requests_per_1000_outputs(&self) -> f64 {
        let txn = TXN_APIS
            .iter()
            .filter_map(|api| self.broker_requests.get(*api))
            .sum();
        1000.0 * ratio(txn, self.outputs)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The pipelines' figures of one history, with the brokers' request counts.
pub fn pipeline_figures(
    history: &History,
    broker_requests: &BTreeMap<String, u64>,
) -> PipelineFigures {
    let is_pipeline = |n: &NodeId| matches!(n, NodeId::Pipeline(_));
    // Each committed transaction's end (the completion of its `commitTransaction`).
    let mut committed: BTreeMap<TxnId, u64> = BTreeMap::new();
    let mut aborted = 0;
    let mut commits = Vec::new();
    for e in history.entries.iter().filter(|e| is_pipeline(&e.process)) {
        match (&e.op, &e.outcome, e.complete_ms) {
            (Op::EndTxn { txn, commit, .. }, Outcome::Ok, Some(done)) => {
                if *commit {
                    committed.insert(*txn, done);
                    commits.push(done - e.invoke_ms);
                } else {
                    aborted += 1;
                }
            }
            (Op::EndTxn { .. }, Outcome::Fail { .. }, _) => aborted += 1,
            (Op::Committed { .. }, Outcome::Ok, Some(done)) => commits.push(done - e.invoke_ms),
            _ => {}
        }
    }
    let mut durable = Vec::new();
    for e in history.entries.iter().filter(|e| is_pipeline(&e.process)) {
        if let (Op::Send { txn, .. }, Outcome::Ok) = (&e.op, &e.outcome) {
            match txn {
                Some(t) => durable.extend(committed.get(t).copied()),
                None => durable.extend(e.complete_ms),
            }
        }
    }
    durable.sort_unstable();
    commits.sort_unstable();
    let span_ms = match (durable.first(), durable.last()) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => 0,
    };
    PipelineFigures {
        outputs: durable.len() as u64,
        outputs_per_sec: 1000.0 * ratio(durable.len() as u64, span_ms),
        transactions: committed.len() as u64,
        aborted,
        commit_p50_ms: quantile(&commits, 0.50),
        commit_p99_ms: quantile(&commits, 0.99),
        broker_requests: broker_requests.clone(),
    }
}

/// Sums of several runs' pipeline figures (integers, mergeable like [`FigureSums`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PipelineSums {
    /// Runs added.
    pub runs: u64,
    /// Outputs, summed.
    pub outputs: u64,
    /// Sum of the runs' outputs per second, in millionths.
    pub outputs_per_sec_micro: u64,
    /// Committed transactions, summed.
    pub transactions: u64,
    /// Aborted transactions, summed.
    pub aborted: u64,
    /// Sum of the runs' 50th percentile commit latencies, ms.
    pub commit_p50_ms: u64,
    /// Sum of the runs' 99th percentiles, ms.
    pub commit_p99_ms: u64,
    /// Broker requests by API, summed.
    pub broker_requests: BTreeMap<String, u64>,
}

impl PipelineSums {
    /// Adds one run's figures.
    pub fn add(&mut self, f: &PipelineFigures) {
        self.merge(&PipelineSums {
            runs: 1,
            outputs: f.outputs,
            outputs_per_sec_micro: to_micro(f.outputs_per_sec),
            transactions: f.transactions,
            aborted: f.aborted,
            commit_p50_ms: f.commit_p50_ms,
            commit_p99_ms: f.commit_p99_ms,
            broker_requests: f.broker_requests.clone(),
        });
    }

    /// Adds another shard's sums.
    pub fn merge(&mut self, o: &PipelineSums) {
        add_fields!(self, o; runs, outputs, outputs_per_sec_micro, transactions, aborted,
            commit_p50_ms, commit_p99_ms);
        for (api, n) in &o.broker_requests {
            *self.broker_requests.entry(api.clone()).or_insert(0) += n;
        }
    }

    /// The means per run (counts too: outputs, transactions and requests per seed).
    pub fn mean(&self) -> PipelineFigures {
        let n = self.runs.max(1);
        let per = |sum: u64| (sum as f64 / n as f64).round() as u64;
        PipelineFigures {
            outputs: per(self.outputs),
            outputs_per_sec: self.outputs_per_sec_micro as f64 / MICRO / n as f64,
            transactions: per(self.transactions),
            aborted: per(self.aborted),
            commit_p50_ms: per(self.commit_p50_ms),
            commit_p99_ms: per(self.commit_p99_ms),
            broker_requests: self
                .broker_requests
                .iter()
                .map(|(api, sum)| (api.clone(), per(*sum)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests;
