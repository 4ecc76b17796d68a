//! The JSON Schemas of kafkasim's files, generated from the Rust types that read and
//! write them: scenario and matrix files (what editors check as people type), and the
//! files a run writes (`history.jsonl`, one line; `snapshot.json`; `report.json`), so
//! other harnesses can write them. They are checked in under `schemas/` (a test keeps
//! them equal to what the types generate) and printed by `kafkasim schema NAME`.

use crate::drive::matrix::MatrixSpec;
use crate::history::{HistoryLine, Snapshot, HISTORY_VERSION};
use crate::report::SeedReport;
use crate::scenario::Scenario;
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;

/// The schemas, by name: `schemas/<name>.schema.json`.
pub const NAMES: [&str; 5] = ["scenario", "matrix", "history", "snapshot", "report"];

/// Where the checked-in schemas are, relative to the repository.
pub const DIR: &str = "schemas";

/// The schema called `name` (one of [`NAMES`]) as pretty JSON ending in a newline, or
/// `None` for another name.
pub fn generate(name: &str) -> Option<String> {
    let (schema, title, description) = match name {
        "scenario" => (
            of::<Scenario>(),
            "kafkasim scenario".to_string(),
            "A scenario file (scenarios/*.json): the cluster, clients, workload, faults \
             and the expected verdict."
                .to_string(),
        ),
        "matrix" => (
            of::<MatrixSpec>(),
            "kafkasim matrix".to_string(),
            "A matrix file (matrix/*.json): tables of settings over a base scenario, run \
             under each fault kind."
                .to_string(),
        ),
        "history" => (
            of::<HistoryLine>(),
            format!("kafkasim history.jsonl line, version {HISTORY_VERSION}"),
            format!(
                "One line of history.jsonl: `v` ({HISTORY_VERSION}), `index` (from 0, in \
                 order), the process, the invocation and completion times (ms), the \
                 outcome, and the operation, tagged by `f`."
            ),
        ),
        "snapshot" => (
            of::<Snapshot>(),
            "kafkasim snapshot".to_string(),
            "snapshot.json: the end state of a run per partition and replica, for the \
             white-box checks of `kafkasim analyze --snapshot`."
                .to_string(),
        ),
        "report" => (
            of::<SeedReport>(),
            "kafkasim report".to_string(),
            "report.json: the verdict, anomalies and figures of one seed (`run`, \
             `check`) or of one analyzed history (`analyze`)."
                .to_string(),
        ),
        _ => return None,
    };
    let mut schema = schema;
    schema.insert("title".into(), title.into());
    schema.insert("description".into(), description.into());
    Some(serde_json::to_string_pretty(&schema).expect("schemas serialize") + "\n")
}

/// `T`'s schema, draft-07 (what editors support most widely), describing what the
/// deserializer accepts.
fn of<T: JsonSchema>() -> schemars::Schema {
    SchemaSettings::draft07()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<T>()
}
