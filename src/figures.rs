//! Producer figures of a run, computed from its history: what batching, `linger.ms`
//! and compression did (claims C8 and C9). Pure functions over plain data, like the
//! checker, so a report can be recomputed from a saved history.

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
            Op::ProducerMetrics(p) => {
                m.batches += p.batches;
                m.records += p.records;
                m.batch_bytes += p.batch_bytes;
                m.uncompressed_bytes += p.uncompressed_bytes;
                m.requests += p.requests;
                m.outgoing_bytes += p.outgoing_bytes;
                m.retried_batches += p.retried_batches;
                m.blocked_on_memory += p.blocked_on_memory;
                m.epoch_bumps += p.epoch_bumps;
            }
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

/// Means of several runs' figures (a sweep's row).
pub fn mean(figures: &[ProducerFigures]) -> ProducerFigures {
    let n = figures.len().max(1) as f64;
    let f = |get: fn(&ProducerFigures) -> f64| figures.iter().map(get).sum::<f64>() / n;
    let mean_u = |get: &dyn Fn(&ProducerFigures) -> u64| {
        (figures.iter().map(|x| get(x) as f64).sum::<f64>() / n).round() as u64
    };
    let mut metrics = ProducerMetrics::default();
    for x in figures {
        metrics.batches += x.metrics.batches;
        metrics.records += x.metrics.records;
        metrics.batch_bytes += x.metrics.batch_bytes;
        metrics.uncompressed_bytes += x.metrics.uncompressed_bytes;
        metrics.requests += x.metrics.requests;
        metrics.outgoing_bytes += x.metrics.outgoing_bytes;
        metrics.retried_batches += x.metrics.retried_batches;
        metrics.blocked_on_memory += x.metrics.blocked_on_memory;
        metrics.epoch_bumps += x.metrics.epoch_bumps;
    }
    ProducerFigures {
        records_per_batch: f(|x| x.records_per_batch),
        batch_size_avg: f(|x| x.batch_size_avg),
        compression_rate: f(|x| x.compression_rate),
        latency_p50_ms: mean_u(&|x| x.latency_p50_ms),
        latency_p99_ms: mean_u(&|x| x.latency_p99_ms),
        latency_max_ms: mean_u(&|x| x.latency_max_ms),
        metrics,
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
        let m = mean(&[f.clone(), f.clone()]);
        assert_eq!(m.records_per_batch, 10.0);
        assert_eq!(m.metrics.records, 200);
    }
}
