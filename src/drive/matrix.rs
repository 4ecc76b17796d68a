//! The guarantee matrix: a grid of settings (rows) against fault kinds (columns),
//! each cell a seed sweep of a base scenario with the row's settings and only that
//! fault kind drawn. It says which anomalies each combination shows and on how many
//! seeds, with the command that reproduces the first failing seed of each cell.
//!
//! A matrix file names its tables; a table names a base scenario and rows, each row a
//! JSON merge patch (RFC 7386) over the base (`{"producers": {"config": {"acks": "1"}}}`).
//! Every cell becomes an ordinary scenario file under the output folder, so its repro
//! command is a plain `kafkasim run`.

use crate::check::kinds::{describe, ANOMALY_KINDS};
use crate::drive::sweep::{self, Progress};
use crate::report::html::escape;
use crate::report::repro_command;
use crate::scenario::{Scenario, ScenarioError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The pseudo fault kind of a column without faults.
pub const NO_FAULTS: &str = "none";

/// Most rows, columns and tables a matrix may have (a bound on the work it asks for).
pub const MAX_CELLS: usize = 400;

/// A matrix file.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatrixSpec {
    /// The JSON Schema editors check the file against (`schemas/matrix.schema.json`);
    /// kafkasim itself ignores it.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    /// What the matrix shows.
    pub description: String,
    /// Seeds per cell unless `--seeds` says otherwise (`0..seeds`).
    #[serde(default = "default_seeds")]
    pub seeds: u64,
    /// Fault kinds (columns): `none` or a scenario fault kind.
    pub faults: Vec<String>,
    /// The tables.
    pub tables: Vec<TableSpec>,
}

fn default_seeds() -> u64 {
    10
}

/// One table: a base scenario and the settings varied over it.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// The table's name (a folder name for its cells).
    pub name: String,
    /// The base scenario, relative to the matrix file.
    pub base: PathBuf,
    /// Fault kinds for this table, when they differ from the matrix's.
    #[serde(default)]
    pub faults: Option<Vec<String>>,
    /// Anomaly kinds Kafka's design allows in every cell of this table (such as
    /// Jepsen's `g0` across partitions): counted, shown apart, never a cell's failure.
    #[serde(default)]
    pub allowed: Vec<String>,
    /// The rows.
    pub rows: Vec<RowSpec>,
}

/// One row: a name and the patch that makes it.
#[derive(Clone, Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RowSpec {
    /// What the row sets, as a reader would say it (`acks=1`).
    pub name: String,
    /// A JSON merge patch over the base scenario.
    pub patch: Value,
}

/// A cell ready to run: its scenario (already written to `path`).
#[derive(Clone, Debug)]
pub struct Cell {
    /// Table index.
    pub table: usize,
    /// Row name.
    pub row: String,
    /// Fault kind (column).
    pub fault: String,
    /// The cell's scenario.
    pub scenario: Scenario,
    /// The scenario as a file's text.
    pub text: String,
}

/// What one cell showed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellResult {
    /// Row name.
    pub row: String,
    /// Fault kind.
    pub fault: String,
    /// The cell's scenario file.
    pub scenario: PathBuf,
    /// Seeds run.
    pub seeds: u64,
    /// Anomaly kind -> seeds showing it.
    pub anomalies: BTreeMap<String, u64>,
    /// Client event kind (send-timeout, rebalance...) -> seeds showing it.
    pub events: BTreeMap<String, u64>,
    /// Seeds on which the simulated system panicked.
    pub panics: u64,
    /// The first seed with an anomaly or a panic, and the command that reproduces it.
    pub first_failing: Option<(u64, String)>,
}

/// One table's results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableResult {
    /// The table's name.
    pub name: String,
    /// The base scenario.
    pub base: PathBuf,
    /// Row names, in order.
    pub rows: Vec<String>,
    /// Fault kinds, in order.
    pub faults: Vec<String>,
    /// Anomaly kinds allowed in every cell (see [`TableSpec::allowed`]).
    #[serde(default)]
    pub allowed: Vec<String>,
    /// Cells, row-major.
    pub cells: Vec<CellResult>,
}

impl TableResult {
    /// The cell at (row, fault).
    pub fn cell(&self, row: &str, fault: &str) -> Option<&CellResult> {
        self.cells.iter().find(|c| c.row == row && c.fault == fault)
    }
}

/// The whole matrix's results (`matrix.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixResult {
    /// The matrix file.
    pub matrix: PathBuf,
    /// Its description.
    pub description: String,
    /// The seeds every cell ran.
    pub seeds: String,
    /// The tables.
    pub tables: Vec<TableResult>,
}

impl MatrixResult {
    /// The table named `name`.
    pub fn table(&self, name: &str) -> Option<&TableResult> {
        self.tables.iter().find(|t| t.name == name)
    }
}

fn err(file: &Path, field: &str, message: String) -> ScenarioError {
    ScenarioError {
        file: file.display().to_string(),
        field: field.to_string(),
        message,
    }
}

/// Reads a matrix file.
pub fn load(path: &Path) -> Result<MatrixSpec, ScenarioError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| err(path, "-", format!("cannot read: {e}")))?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    let spec: MatrixSpec = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        err(path, &field, e.into_inner().to_string())
    })?;
    if spec.tables.is_empty() {
        return Err(err(path, "tables", "no tables; allowed: 1 or more".into()));
    }
    if spec.seeds == 0 {
        return Err(err(path, "seeds", "0; allowed: 1 or more".into()));
    }
    Ok(spec)
}

/// RFC 7386: objects merge key by key, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let t = target.as_object_mut().expect("made an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// A file-name-safe form of a row name (`acks=all, in-flight 5` -> `acks-all-in-flight-5`).
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Builds every cell's scenario (validated: a bad row or fault is an error naming the
/// matrix file and the field), to be written under `out_dir/cells/<table>/`.
pub fn cells(spec: &MatrixSpec, path: &Path, out_dir: &Path) -> Result<Vec<Cell>, ScenarioError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut cells = Vec::new();
    for (ti, table) in spec.tables.iter().enumerate() {
        let field = |f: &str| format!("tables[{ti}].{f}");
        let base_path = dir.join(&table.base);
        let base_text = std::fs::read_to_string(&base_path).map_err(|e| {
            err(
                path,
                &field("base"),
                format!("cannot read {}: {e}", base_path.display()),
            )
        })?;
        let base: Value = serde_json::from_str(&base_text).map_err(|e| {
            err(
                path,
                &field("base"),
                format!("{} is not JSON: {e}", base_path.display()),
            )
        })?;
        if let Some((i, k)) = table
            .allowed
            .iter()
            .enumerate()
            .find(|(_, k)| !ANOMALY_KINDS.contains(&k.as_str()))
        {
            return Err(err(
                path,
                &field(&format!("allowed[{i}]")),
                format!(
                    "unknown anomaly kind `{k}`; allowed: {}",
                    ANOMALY_KINDS.join(", ")
                ),
            ));
        }
        let faults = table.faults.as_ref().unwrap_or(&spec.faults);
        if faults.is_empty() {
            return Err(err(
                path,
                "faults",
                "no fault kinds; allowed: 1 or more".into(),
            ));
        }
        if table.rows.is_empty() {
            return Err(err(
                path,
                &field("rows"),
                "no rows; allowed: 1 or more".into(),
            ));
        }
        let mut slugs = BTreeMap::new();
        for (ri, row) in table.rows.iter().enumerate() {
            if let Some(other) = slugs.insert(slug(&row.name), ri) {
                return Err(err(
                    path,
                    &field(&format!("rows[{ri}].name")),
                    format!("`{}` names the same cells as rows[{other}]", row.name),
                ));
            }
            for fault in faults {
                let mut v = base.clone();
                merge_patch(&mut v, &row.patch);
                let name = format!("{}-{}-{}", slug(&table.name), slug(&row.name), fault);
                let o = v
                    .as_object_mut()
                    .ok_or_else(|| err(path, &field("base"), "is not a JSON object".into()))?;
                o.insert("name".into(), Value::String(name));
                o.insert(
                    "description".into(),
                    Value::String(format!(
                        "Guarantee matrix cell: table {}, row `{}`, faults: {fault}; base {}.",
                        table.name,
                        row.name,
                        table.base.display()
                    )),
                );
                o.remove("claims");
                // Every anomaly is a finding here: nothing expected, nothing tolerated.
                o.insert("expect".into(), serde_json::json!({}));
                let nemesis = o.entry("nemesis").or_insert_with(|| serde_json::json!({}));
                let kinds = if fault == NO_FAULTS {
                    Vec::new()
                } else {
                    vec![Value::String(fault.clone())]
                };
                if let Some(n) = nemesis.as_object_mut() {
                    n.insert("faults".into(), Value::Array(kinds));
                    n.insert("schedule".into(), Value::Array(Vec::new()));
                }
                let text = serde_json::to_string_pretty(&v).expect("JSON values serialize");
                let cell_path = out_dir
                    .join("cells")
                    .join(slug(&table.name))
                    .join(format!("{}--{fault}.json", slug(&row.name)));
                let label = format!(
                    "{} (tables[{ti}].rows[{ri}] `{}` over {}, faults {fault})",
                    path.display(),
                    row.name,
                    table.base.display()
                );
                let scenario = Scenario::parse(&label, &text, &cell_path)?;
                cells.push(Cell {
                    table: ti,
                    row: row.name.clone(),
                    fault: fault.clone(),
                    scenario,
                    text,
                });
            }
        }
    }
    if cells.len() > MAX_CELLS {
        return Err(err(
            path,
            "tables",
            format!("{} cells; allowed: at most {MAX_CELLS}", cells.len()),
        ));
    }
    Ok(cells)
}

/// Writes every cell's scenario file (before any runs, so every repro command works).
pub fn write_cells(cells: &[Cell]) -> std::io::Result<()> {
    for c in cells {
        if let Some(parent) = c.scenario.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&c.scenario.path, &c.text)?;
    }
    Ok(())
}

/// Writes `matrix.json` and `index.html` into `dir`, each through a temporary file and
/// a rename.
pub fn write_results(m: &MatrixResult, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(m).expect("results serialize") + "\n";
    for (name, data) in [("matrix.json", json), ("index.html", html(m))] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, data)?;
        std::fs::rename(&tmp, dir.join(name))?;
    }
    Ok(())
}

/// Sweeps every cell over `seeds`.
pub fn run(
    spec: &MatrixSpec,
    path: &Path,
    cells: &[Cell],
    seeds: &[u64],
    jobs: usize,
    progress: Option<&Progress>,
) -> MatrixResult {
    let mut tables: Vec<TableResult> = spec
        .tables
        .iter()
        .map(|t| TableResult {
            name: t.name.clone(),
            base: t.base.clone(),
            rows: t.rows.iter().map(|r| r.name.clone()).collect(),
            faults: t.faults.clone().unwrap_or_else(|| spec.faults.clone()),
            allowed: t.allowed.clone(),
            cells: Vec::new(),
        })
        .collect();
    for c in cells {
        let s = sweep::sweep_with_progress(&c.scenario, seeds, jobs, &[], None, progress);
        let mut anomalies = BTreeMap::new();
        let mut events = BTreeMap::new();
        let mut first: Option<u64> = None;
        for (kind, with) in &s.seeds_with {
            let n = with.len();
            if ANOMALY_KINDS.contains(&kind.as_str()) {
                anomalies.insert(kind.clone(), n);
                if spec.tables[c.table].allowed.contains(kind) {
                    continue;
                }
                if let Some(&s0) = with.as_slice().first() {
                    first = Some(first.map_or(s0, |f| f.min(s0)));
                }
            } else {
                events.insert(kind.clone(), n);
            }
        }
        let panicked: Vec<u64> = s
            .failures
            .iter()
            .filter(|f| f.panic.is_some())
            .map(|f| f.seed)
            .collect();
        if let Some(&p) = panicked.first() {
            first = Some(first.map_or(p, |f| f.min(p)));
        }
        tables[c.table].cells.push(CellResult {
            row: c.row.clone(),
            fault: c.fault.clone(),
            scenario: c.scenario.path.clone(),
            seeds: seeds.len() as u64,
            anomalies,
            events,
            panics: panicked.len() as u64,
            first_failing: first.map(|seed| (seed, repro_command(&c.scenario.path, seed, &[]))),
        });
    }
    MatrixResult {
        matrix: path.to_path_buf(),
        description: spec.description.clone(),
        seeds: sweep::seed_range_label(seeds),
        tables,
    }
}

/// A short name for an anomaly kind in the terminal table.
fn short(kind: &str) -> &str {
    match kind {
        "lost-write" => "lost",
        "duplicate" => "dup",
        "reorder" => "reorder",
        "inconsistent-offsets" => "incons",
        "replica-divergence" => "diverge",
        "processing-loss" => "proc-loss",
        "reprocessing" => "reproc",
        "output-duplicate" => "out-dup",
        "duplicate-effect" => "dup-effect",
        "aborted-read" => "aborted-rd",
        other => other,
    }
}

/// One cell as terminal text: `dup 7 reorder 3`, `-` when clean (allowed kinds left out).
fn cell_text(c: &CellResult, allowed: &[String]) -> String {
    let mut parts: Vec<String> = c
        .anomalies
        .iter()
        .filter(|(k, _)| !allowed.contains(k))
        .map(|(k, n)| format!("{} {n}", short(k)))
        .collect();
    if c.panics > 0 {
        parts.push(format!("PANIC {}", c.panics));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

/// The plain-text tables: seeds showing each anomaly per cell, and the repro command
/// of every failing cell's first seed.
pub fn text(m: &MatrixResult) -> String {
    let mut out = String::new();
    for t in &m.tables {
        out.push_str(&format!(
            "\n{} (base {}; seeds {}; a cell lists anomaly: seeds showing it)\n",
            t.name,
            t.base.display(),
            m.seeds
        ));
        if !t.allowed.is_empty() {
            out.push_str(&format!(
                "(allowed by Kafka's design in every cell, not shown: {})\n",
                t.allowed.join(", ")
            ));
        }
        let row_w = t.rows.iter().map(|r| r.len()).max().unwrap_or(0).max(8);
        let widths: Vec<usize> = t
            .faults
            .iter()
            .map(|f| {
                t.cells
                    .iter()
                    .filter(|c| &c.fault == f)
                    .map(|c| cell_text(c, &t.allowed).len())
                    .max()
                    .unwrap_or(1)
                    .max(f.len())
            })
            .collect();
        out.push_str(&format!("{:<row_w$}", "settings"));
        for (f, w) in t.faults.iter().zip(&widths) {
            out.push_str(&format!("  {f:<w$}"));
        }
        out.push('\n');
        for r in &t.rows {
            out.push_str(&format!("{r:<row_w$}"));
            for (f, w) in t.faults.iter().zip(&widths) {
                let s = t
                    .cell(r, f)
                    .map_or_else(|| "?".into(), |c| cell_text(c, &t.allowed));
                out.push_str(&format!("  {s:<w$}"));
            }
            out.push('\n');
        }
    }
    out.push_str("\nfirst failing seed of each cell:\n");
    for t in &m.tables {
        for c in &t.cells {
            if let Some((_, cmd)) = &c.first_failing {
                out.push_str(&format!("  {} / {} / {}: {cmd}\n", t.name, c.row, c.fault));
            }
        }
    }
    out
}

/// The matrix as one self-contained HTML page (no scripts, no network): a table per
/// settings table, cells shaded by how many seeds showed an anomaly, each failing
/// cell with its repro command.
pub fn html(m: &MatrixResult) -> String {
    let mut h = String::new();
    h.push_str(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>kafkasim guarantee matrix</title>\n<style>\n\
         body{font:14px system-ui,sans-serif;margin:24px;color:#222}\n\
         table{border-collapse:collapse;margin:12px 0 28px}\n\
         th,td{border:1px solid #ccc;padding:6px 8px;vertical-align:top;text-align:left}\n\
         th{background:#f3f3f3}\n\
         td.clean{background:#e8f5e9}\n\
         td.some{background:#fff3e0}\n\
         td.all{background:#ffcdd2}\n\
         .ev{color:#777;font-size:12px}\n\
         code{font-size:11px;word-break:break-all}\n\
         </style></head><body>\n",
    );
    h.push_str(&format!(
        "<h1>Guarantee matrix</h1><p>{}</p><p>Matrix file <code>{}</code>, seeds {} per cell. \
         A cell lists each anomaly with the number of seeds that showed it; grey lines are \
         client events (legitimate behaviour, such as sends that failed).</p>\n",
        escape(&m.description),
        escape(&m.matrix.display().to_string()),
        escape(&m.seeds)
    ));
    let mut kinds = std::collections::BTreeSet::new();
    for t in &m.tables {
        h.push_str(&format!(
            "<h2 id=\"{}\">{}</h2><p>Base scenario <code>{}</code>.{}</p>\n<table><tr><th>settings</th>",
            escape(&slug(&t.name)),
            escape(&t.name),
            escape(&t.base.display().to_string()),
            if t.allowed.is_empty() {
                String::new()
            } else {
                format!(
                    " Allowed by Kafka's design in every cell (grey): {}.",
                    escape(&t.allowed.join(", "))
                )
            }
        ));
        for f in &t.faults {
            h.push_str(&format!("<th>{}</th>", escape(f)));
        }
        h.push_str("</tr>\n");
        for r in &t.rows {
            h.push_str(&format!("<tr><th>{}</th>", escape(r)));
            for f in &t.faults {
                let Some(c) = t.cell(r, f) else {
                    h.push_str("<td>?</td>");
                    continue;
                };
                let worst = c
                    .anomalies
                    .iter()
                    .filter(|(k, _)| !t.allowed.contains(k))
                    .map(|(_, n)| *n)
                    .max()
                    .unwrap_or(0)
                    .max(c.panics);
                let class = if worst == 0 {
                    "clean"
                } else if worst == c.seeds {
                    "all"
                } else {
                    "some"
                };
                h.push_str(&format!("<td class=\"{class}\">"));
                if worst == 0 {
                    h.push_str("no anomaly");
                }
                for (k, n) in &c.anomalies {
                    kinds.insert(k.clone());
                    let class = if t.allowed.contains(k) {
                        " class=\"ev\""
                    } else {
                        ""
                    };
                    h.push_str(&format!(
                        "<div{class}><a href=\"#kind-{k}\">{}</a> {n}/{}</div>",
                        escape(k),
                        c.seeds
                    ));
                }
                if c.panics > 0 {
                    h.push_str(&format!("<div><b>panic</b> {}/{}</div>", c.panics, c.seeds));
                }
                for (k, n) in &c.events {
                    h.push_str(&format!(
                        "<div class=\"ev\">{} {n}/{}</div>",
                        escape(k),
                        c.seeds
                    ));
                }
                if let Some((seed, cmd)) = &c.first_failing {
                    h.push_str(&format!(
                        "<div>first: seed {seed}<br><code>{}</code></div>",
                        escape(cmd)
                    ));
                }
                h.push_str("</td>");
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    if !kinds.is_empty() {
        h.push_str("<h2>Anomalies</h2><dl>\n");
        for k in &kinds {
            h.push_str(&format!(
                "<dt id=\"kind-{k}\"><b>{}</b></dt><dd>{}</dd>\n",
                escape(k),
                escape(describe(k))
            ));
        }
        h.push_str("</dl>\n");
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_merges_objects_replaces_values_and_deletes_nulls() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "d": [1], "e": 5});
        merge_patch(
            &mut v,
            &json!({"a": {"b": 9, "c": null}, "d": [2, 3], "f": "x"}),
        );
        assert_eq!(v, json!({"a": {"b": 9}, "d": [2, 3], "e": 5, "f": "x"}));
    }

    fn one_cell(anomalies: &[(&str, u64)], allowed: &[&str]) -> MatrixResult {
        MatrixResult {
            matrix: "m.json".into(),
            description: "d".into(),
            seeds: "0..10".into(),
            tables: vec![TableResult {
                name: "t".into(),
                base: "b.json".into(),
                rows: vec!["r".into()],
                faults: vec!["crash".into()],
                allowed: allowed.iter().map(|k| k.to_string()).collect(),
                cells: vec![CellResult {
                    row: "r".into(),
                    fault: "crash".into(),
                    scenario: "c.json".into(),
                    seeds: 10,
                    anomalies: anomalies.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
                    events: BTreeMap::new(),
                    panics: 0,
                    first_failing: None,
                }],
            }],
        }
    }

    #[test]
    fn allowed_kinds_are_shown_apart_and_never_shade_a_cell() {
        let m = one_cell(&[("g0", 10)], &["g0"]);
        assert!(text(&m).contains("\nr         -"), "{}", text(&m));
        let h = html(&m);
        assert!(h.contains("<td class=\"clean\">no anomaly"), "{h}");
        assert!(h.contains("<div class=\"ev\"><a href=\"#kind-g0\">g0</a> 10/10</div>"));
        let m = one_cell(&[("g0", 10), ("duplicate", 3)], &["g0"]);
        assert!(text(&m).contains("dup 3") && !text(&m).contains("g0 10"));
        assert!(html(&m).contains("<td class=\"some\">"));
        let m = one_cell(&[("duplicate", 10)], &[]);
        assert!(html(&m).contains("<td class=\"all\">"));
    }

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(slug("acks=all, in-flight 5"), "acks-all-in-flight-5");
        assert_eq!(slug("min.insync.replicas=1"), "min.insync.replicas-1");
    }
}
