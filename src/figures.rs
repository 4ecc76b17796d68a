//! Producer figures of a run, computed from its history: what batching, `linger.ms`
//! and compression did (claims C8 and C9). Pure functions over plain data, like the
//! checker, so a report can be recomputed from a saved history. A sweep keeps integer
//! sums ([`FigureSums`]) so that shards of it merge exactly.

use crate::history::{History, Op, Outcome, ProducerMetrics};
use serde::{Deserialize, Serialize};

/// One run's producer figures (all producers together).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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

/// Adds one set of producer counters to another.
fn add_metrics(into: &mut ProducerMetrics, p: &ProducerMetrics) {
    into.batches += p.batches;
    into.records += p.records;
    into.batch_bytes += p.batch_bytes;
    into.uncompressed_bytes += p.uncompressed_bytes;
    into.requests += p.requests;
    into.outgoing_bytes += p.outgoing_bytes;
    into.retried_batches += p.retried_batches;
    into.blocked_on_memory += p.blocked_on_memory;
    into.epoch_bumps += p.epoch_bumps;
}

/// Per-run ratios are summed in millionths so that sums are integers: adding them is
/// exact and associative, so sweeps merged from shards give the same means, bit for
/// bit, as one sweep (f64 sums would depend on the order of addition).
const MICRO: f64 = 1e6;

fn to_micro(x: f64) -> u64 {
    (x * MICRO).round() as u64
}

/// Sums of several runs' figures, from which a sweep's means are computed; mergeable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
        self.runs += o.runs;
        add_metrics(&mut self.metrics, &o.metrics);
        self.records_per_batch_micro += o.records_per_batch_micro;
        self.batch_size_avg_micro += o.batch_size_avg_micro;
        self.compression_rate_micro += o.compression_rate_micro;
        self.latency_p50_ms += o.latency_p50_ms;
        self.latency_p99_ms += o.latency_p99_ms;
        self.latency_max_ms += o.latency_max_ms;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Entry;
    use crate::protocol::{NodeId, TopicPartition};

    fn send(invoke: u64, done: u64, outcome: Outcome) -> Entry {
        Entry {
            index: 0,
            process: NodeId::Producer(0),
            invoke_ms: invoke,
            complete_ms: Some(done),
            outcome,
            op: Op::Send {
                txn: None,
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
}
