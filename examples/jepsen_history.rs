//! Writes a synthetic, valid Jepsen Kafka workload history of N completed operations
//! to stdout, for timing `kafkasim analyze` on long histories:
//!
//! ```text
//! cargo run --release --example jepsen_history -- 1000000 > history.edn
//! cargo run --release --example jepsen_history -- 1000000 --jsonl > history.jsonl
//! ```
//!
//! Ten processes; each sends one to three records to its own key and then polls that
//! key's records from where it left off (ok operations, each its own transaction), the
//! way Jepsen's `:send` and `:poll` operations look in `history.edn`. With `--jsonl`
//! the same history is written as kafkasim's `history.jsonl` (as `analyze` converts
//! it: a transaction per operation).

use kafkasim::drive::analyze::{jepsen, KeyMap};
use std::io::{BufWriter, Write};
use std::path::Path;

const PROCESSES: u64 = 10;
const KEYS: u64 = 8;

/// Writes the history of `n` operations in Jepsen's EDN to `out`.
fn write_edn(n: u64, out: &mut impl Write) -> std::io::Result<()> {
    // Per key: its values by offset; per process: the next offset it polls.
    let mut log: Vec<Vec<u64>> = vec![Vec::new(); KEYS as usize];
    let mut pos = [0usize; PROCESSES as usize];
    let mut value = 0u64;
    let mut t = 0u64;
    for i in 0..n {
        let p = i % PROCESSES;
        let k = p % KEYS;
        let values = &mut log[k as usize];
        t += 1000;
        let (invoke, ok);
        if (i / PROCESSES).is_multiple_of(2) {
            let (mut inv, mut done) = (String::new(), String::new());
            for _ in 0..1 + i % 3 {
                value += 1;
                let offset = values.len();
                values.push(value);
                let sep = if inv.is_empty() { "" } else { " " };
                inv += &format!("{sep}[:send {k} {value}]");
                done += &format!("{sep}[:send {k} [{offset} {value}]]");
            }
            invoke = format!(":f :send, :value [{inv}]");
            ok = format!(":f :send, :value [{done}]");
        } else {
            let start = pos[p as usize];
            let stop = values.len().min(start + 5);
            let pairs: Vec<String> = (start..stop)
                .map(|o| format!("[{o} {}]", values[o]))
                .collect();
            pos[p as usize] = stop;
            invoke = ":f :poll, :value [[:poll]]".to_string();
            ok = format!(":f :poll, :value [[:poll {{{k} [{}]}}]]", pairs.join(" "));
        }
        writeln!(out, "{{:type :invoke, {invoke}, :time {t}, :process {p}}}")?;
        writeln!(out, "{{:type :ok, {ok}, :time {}, :process {p}}}", t + 500)?;
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = match args.first().map(|a| a.parse::<u64>()) {
        None => 1_000_000,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("usage: jepsen_history [OPERATIONS] [--jsonl]");
            std::process::exit(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if args.iter().any(|a| a == "--jsonl") {
        let mut edn = Vec::new();
        write_edn(n, &mut edn)?;
        let keys = KeyMap::PerTopic(2);
        let history = jepsen::read(Path::new("history.edn"), edn.as_slice(), &keys)
            .expect("the generated history is valid");
        out.write_all(history.to_jsonl().as_bytes())?;
    } else {
        write_edn(n, &mut out)?;
    }
    out.flush()
}
