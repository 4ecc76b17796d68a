//! Golden trace hashes: every shipped scenario on seeds 0..5 must hash as recorded in
//! `tests/golden/trace-hashes.txt`. The file pins behaviour, so that a refactoring can
//! prove it changed nothing. A change of the model changes hashes on purpose; then, and
//! only then, re-record the file with
//!
//! ```text
//! KAFKASIM_BLESS=1 cargo test --test golden
//! ```
//!
//! and say in the commit message why the hashes moved.

use kafkasim::drive::runner::run_seed;
use kafkasim::scenario::{collect_paths, Scenario};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Seeds pinned per scenario.
const SEEDS: std::ops::Range<u64> = 0..5;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden_file() -> PathBuf {
    root().join("tests").join("golden").join("trace-hashes.txt")
}

/// `scenarios/<file> <seed> <trace hash>` for every shipped scenario and pinned seed,
/// in file then seed order.
fn current_lines() -> Vec<String> {
    let paths = collect_paths(&[root().join("scenarios")]).expect("shipped scenarios");
    let jobs: Vec<(String, Scenario, u64)> = paths
        .iter()
        .flat_map(|p| {
            let sc = Scenario::load(p).expect("shipped scenarios are valid");
            let name = relative(p);
            SEEDS.map(move |s| (name.clone(), sc.clone(), s))
        })
        .collect();
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::with_capacity(jobs.len()));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((name, sc, seed)) = jobs.get(i) else {
                    break;
                };
                let (report, _) = run_seed(sc, *seed, &[]);
                let line = format!("{name} {seed} {}", report.trace_hash);
                out.lock().expect("no poisoned locks").push((i, line));
            });
        }
    });
    let mut lines = out.into_inner().expect("no poisoned locks");
    lines.sort();
    lines.into_iter().map(|(_, l)| l).collect()
}

fn relative(p: &Path) -> String {
    let rel = p.strip_prefix(root()).unwrap_or(p);
    rel.to_string_lossy().replace('\\', "/")
}

#[test]
fn trace_hashes_match_the_golden_file() {
    let lines = current_lines();
    let path = golden_file();
    if std::env::var("KAFKASIM_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        let tmp = path.with_extension("txt.tmp");
        std::fs::write(&tmp, lines.join("\n") + "\n").expect("write golden file");
        std::fs::rename(&tmp, &path).expect("rename golden file");
        return;
    }
    let recorded = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; record it with `KAFKASIM_BLESS=1 cargo test --test golden`",
            path.display()
        )
    });
    let recorded: Vec<&str> = recorded.lines().collect();
    let mut diffs = Vec::new();
    for line in &lines {
        if !recorded.contains(&line.as_str()) {
            let mut f = line.split(' ');
            let (file, seed) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
            diffs.push(format!(
                "changed or new: {line}\n    repro: cargo run --release -- run {file} --seed {seed}"
            ));
        }
    }
    for line in &recorded {
        let key: Vec<&str> = line.split(' ').take(2).collect();
        if !lines
            .iter()
            .any(|l| l.split(' ').take(2).eq(key.iter().copied()))
        {
            diffs.push(format!("gone: {line}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} trace hashes differ from {} (behaviour changed; if on purpose, re-record with \
         `KAFKASIM_BLESS=1 cargo test --test golden` and say why in the commit message):\n{}",
        diffs.len(),
        path.display(),
        diffs.join("\n")
    );
}
