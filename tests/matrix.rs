//! The guarantee matrix shows what the seed text says each setting guarantees:
//! idempotence removes duplicates, several requests in flight without it reorder,
//! acks=1 loses acknowledged writes; bad matrix files exit 2 before anything is written.

mod common;

use common::kafkasim;
use kafkasim::drive::matrix::{self, MatrixResult};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A matrix over `idempotence-on.json` with the four producer rows and crashes only.
fn producer_matrix(dir: &Path) -> PathBuf {
    let spec = serde_json::json!({
        "description": "producer settings under broker crashes",
        "seeds": 3,
        "faults": ["crash"],
        "tables": [{
            "name": "producer",
            "base": root().join("scenarios/idempotence-on.json"),
            "rows": [
                { "name": "acks=1", "patch": { "producers": { "config": { "acks": "1", "enable.idempotence": false } } } },
                { "name": "in-flight 1", "patch": { "producers": { "config": { "enable.idempotence": false, "max.in.flight.requests.per.connection": 1 } } } },
                { "name": "in-flight 5", "patch": { "producers": { "config": { "enable.idempotence": false } } } },
                { "name": "idempotent", "patch": {} }
            ]
        }]
    });
    let path = dir.join("producer.json");
    std::fs::write(&path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    path
}

fn seeds_with(m: &MatrixResult, row: &str, kind: &str) -> u64 {
    let cell = m.table("producer").unwrap().cell(row, "crash").unwrap();
    cell.anomalies.get(kind).copied().unwrap_or(0)
}

#[test]
fn the_matrix_shows_what_each_producer_setting_guarantees() {
    let dir = common::tmp("matrix-producer");
    let path = producer_matrix(&dir);
    let spec = matrix::load(&path).unwrap();
    let cells = matrix::cells(&spec, &path, &dir.join("out")).unwrap();
    matrix::write_cells(&cells).unwrap();
    let seeds: Vec<u64> = (0..spec.seeds).collect();
    let m = matrix::run(&spec, &path, &cells, &seeds, 2, None);
    // Idempotence: no duplicate, no reordering, nothing lost.
    let clean = m
        .table("producer")
        .unwrap()
        .cell("idempotent", "crash")
        .unwrap();
    assert!(clean.anomalies.is_empty(), "{:?}", clean.anomalies);
    assert!(clean.first_failing.is_none());
    // Without it, retries duplicate; with 5 in flight they also reorder, with 1 never.
    assert!(seeds_with(&m, "in-flight 1", "duplicate") > 0);
    assert_eq!(seeds_with(&m, "in-flight 1", "reorder"), 0);
    assert!(seeds_with(&m, "in-flight 5", "duplicate") > 0);
    assert!(seeds_with(&m, "in-flight 5", "reorder") > 0);
    // acks=1 acknowledges what a crash of the leader then loses.
    assert!(seeds_with(&m, "acks=1", "lost-write") > 0);
    // Each failing cell's repro command runs a written cell file and fails the same way.
    let cell = m
        .table("producer")
        .unwrap()
        .cell("acks=1", "crash")
        .unwrap();
    let (seed, cmd) = cell.first_failing.clone().unwrap();
    assert!(cmd.ends_with(&format!("--seed {seed}")), "{cmd}");
    let file = cell.scenario.display().to_string();
    let (code, out, err) = kafkasim(&["run", &file, "--seed", &seed.to_string()], &dir);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("VIOLATES INVARIANT"), "{out}");
    // The outputs render: every cell in the text table and the HTML page.
    matrix::write_results(&m, &dir.join("out")).unwrap();
    let html = std::fs::read_to_string(dir.join("out/index.html")).unwrap();
    assert!(html.contains("acks=1") && html.contains("lost-write"));
    assert!(matrix::text(&m).contains("in-flight 5"));
}

#[test]
fn the_shipped_matrix_builds_every_cell() {
    let path = root().join("matrix/guarantees.json");
    let spec = matrix::load(&path).unwrap();
    let cells = matrix::cells(&spec, &path, &common::tmp("matrix-shipped")).unwrap();
    let expected: usize = spec
        .tables
        .iter()
        .map(|t| t.rows.len() * t.faults.as_ref().unwrap_or(&spec.faults).len())
        .sum();
    assert_eq!(cells.len(), expected);
}

#[test]
fn a_bad_matrix_exits_2_naming_the_row_and_writes_nothing() {
    let dir = common::tmp("matrix-bad");
    let path = producer_matrix(&dir);
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Idempotence asked for explicitly with acks=1 is a configuration error (C15).
    spec["tables"][0]["rows"][0]["patch"]["producers"]["config"]["enable.idempotence"] =
        serde_json::json!(true);
    std::fs::write(&path, spec.to_string()).unwrap();
    let (code, _, err) = kafkasim(&["matrix", "producer.json"], &dir);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("producer.json") && err.contains("rows[0]"),
        "{err}"
    );
    assert!(err.contains("acks"), "{err}");
    spec["faults"] = serde_json::json!(["earthquake"]);
    spec["tables"][0]["rows"][0]["patch"] = serde_json::json!({});
    std::fs::write(&path, spec.to_string()).unwrap();
    let (code, _, err) = kafkasim(&["matrix", "producer.json"], &dir);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("earthquake") && err.contains("crash"), "{err}");
    assert!(!dir.join("reports").exists(), "nothing written");
}
