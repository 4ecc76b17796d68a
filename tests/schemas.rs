//! The JSON Schemas under `schemas/`: each equals what the Rust types generate
//! (`kafkasim schema NAME`; after a deliberate change of a file format, re-record them
//! with `KAFKASIM_BLESS=1 cargo test --test schemas`), and every shipped scenario and
//! matrix file, and the files a run and an analysis write, validate against theirs.
//!
//! The validator here is a compact one for the draft-07 subset that schemars emits
//! (`type`, `enum`, `const`, `properties`, `required`, `additionalProperties`, `items`,
//! `minItems`, `maxItems`, `minimum`, `maximum`, `allOf`, `anyOf`, `oneOf`, `$ref` into
//! `definitions`, and the few `pattern`s the hand-written schemas use); a keyword
//! outside it fails the test rather than being skipped.

use kafkasim::schema;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn checked_in(name: &str) -> Value {
    read_json(&root().join(schema::DIR).join(format!("{name}.schema.json")))
}

fn kafkasim(args: &[&str], cwd: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kafkasim"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("kafkasim runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

// ---------------------------------------------------------------- the validator

/// Annotations: they say nothing about validity.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "title",
    "description",
    "default",
    "format",
    "writeOnly",
    "readOnly",
    "definitions",
    "examples",
];

/// Whether `s` matches `pattern`, for each pattern the schemas use.
fn matches_pattern(pattern: &str, s: &str) -> bool {
    let topic_partition = |s: &str| {
        s.rsplit_once('-')
            .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let numbered = |s: &str, prefixes: &[&str]| {
        prefixes.iter().any(|p| {
            s.strip_prefix(p)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    match pattern {
        "^.*-[0-9]+$" => topic_partition(s),
        "^(controller|all-brokers|(broker|producer|consumer|pipeline)-[0-9]+|(leader|followers):.*-[0-9]+|(coordinator|txn-coordinator):.+)$" => {
            s == "controller"
                || s == "all-brokers"
                || numbered(s, &["broker-", "producer-", "consumer-", "pipeline-"])
                || ["leader:", "followers:"]
                    .iter()
                    .any(|p| s.strip_prefix(p).is_some_and(topic_partition))
                || ["coordinator:", "txn-coordinator:"]
                    .iter()
                    .any(|p| s.strip_prefix(p).is_some_and(|g| !g.is_empty()))
        }
        other => panic!("pattern {other} is new: teach tests/schemas.rs to check it"),
    }
}

fn is_type(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        other => panic!("unknown type {other}"),
    }
}

/// `a <= b` for two JSON numbers, exactly when both are integers.
fn at_most(a: &Value, b: &Value) -> bool {
    let int = |v: &Value| {
        v.as_i64()
            .map(i128::from)
            .or_else(|| v.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(x), Some(y)) => x <= y,
        _ => a.as_f64().unwrap_or(f64::NAN) <= b.as_f64().unwrap_or(f64::NAN),
    }
}

/// The errors of `v` against `schema` (a part of `root`), each with its JSON path.
fn validate(root: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let s = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => return errors.push(format!("{at}: nothing is allowed here")),
        Value::Object(s) => s,
        other => panic!("{at}: a schema is an object or a boolean, not {other}"),
    };
    for (keyword, arg) in s {
        match keyword.as_str() {
            k if ANNOTATIONS.contains(&k) => {}
            "$ref" => {
                let name = arg
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/definitions/"))
                    .unwrap_or_else(|| panic!("{at}: $ref {arg} is not into #/definitions"));
                let target = &root["definitions"][name];
                assert!(!target.is_null(), "{at}: $ref {name} is not defined");
                validate(root, target, v, at, errors);
            }
            "type" => {
                let types: Vec<&str> = match arg {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    other => panic!("{at}: type {other}"),
                };
                if !types.iter().any(|t| is_type(t, v)) {
                    errors.push(format!("{at}: {v} is not of type {arg}"));
                }
            }
            "enum" => {
                let allowed = arg.as_array().expect("enum is an array");
                if !allowed.contains(v) {
                    errors.push(format!("{at}: {v} is not one of {arg}"));
                }
            }
            "const" => {
                if v != arg {
                    errors.push(format!("{at}: {v} is not {arg}"));
                }
            }
            "minimum" => {
                if v.is_number() && !at_most(arg, v) {
                    errors.push(format!("{at}: {v} is below {arg}"));
                }
            }
            "maximum" => {
                if v.is_number() && !at_most(v, arg) {
                    errors.push(format!("{at}: {v} is above {arg}"));
                }
            }
            "pattern" => {
                let pattern = arg.as_str().expect("pattern is a string");
                if let Some(text) = v.as_str() {
                    if !matches_pattern(pattern, text) {
                        errors.push(format!("{at}: {v} does not match {pattern}"));
                    }
                }
            }
            "minItems" | "maxItems" => {
                if let Some(items) = v.as_array() {
                    let n = arg.as_u64().expect("a count") as usize;
                    let ok = if keyword == "minItems" {
                        items.len() >= n
                    } else {
                        items.len() <= n
                    };
                    if !ok {
                        errors.push(format!("{at}: {} items; {keyword} {n}", items.len()));
                    }
                }
            }
            "items" => {
                if let Some(items) = v.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        let sub = match arg {
                            Value::Array(tuple) => match tuple.get(i) {
                                Some(sub) => sub,
                                None => continue,
                            },
                            one => one,
                        };
                        validate(root, sub, item, &format!("{at}[{i}]"), errors);
                    }
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for name in arg.as_array().expect("required is an array") {
                        let name = name.as_str().expect("a property name");
                        if !o.contains_key(name) {
                            errors.push(format!("{at}: `{name}` is missing"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (name, sub) in arg.as_object().expect("properties is an object") {
                        if let Some(value) = o.get(name) {
                            validate(root, sub, value, &format!("{at}.{name}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = v.as_object() {
                    let known = s.get("properties").and_then(Value::as_object);
                    for (name, value) in o {
                        if known.is_some_and(|k| k.contains_key(name)) {
                            continue;
                        }
                        match arg {
                            Value::Bool(false) => {
                                errors.push(format!("{at}: unknown field `{name}`"));
                            }
                            sub => validate(root, sub, value, &format!("{at}.{name}"), errors),
                        }
                    }
                }
            }
            "allOf" | "anyOf" | "oneOf" => {
                let subs = arg.as_array().expect("a list of schemas");
                let mut passed = 0;
                let mut first_errors = Vec::new();
                for sub in subs {
                    let mut e = Vec::new();
                    validate(root, sub, v, at, &mut e);
                    if e.is_empty() {
                        passed += 1;
                    } else if keyword == "allOf" {
                        errors.extend(e);
                    } else {
                        first_errors.extend(e);
                    }
                }
                match keyword.as_str() {
                    "anyOf" if passed == 0 => errors.push(format!(
                        "{at}: matches none of anyOf: {}",
                        first_errors.join("; ")
                    )),
                    "oneOf" if passed != 1 => errors.push(format!(
                        "{at}: matches {passed} of oneOf, not exactly 1: {}",
                        first_errors.join("; ")
                    )),
                    _ => {}
                }
            }
            other => panic!("{at}: keyword {other} is new: teach tests/schemas.rs to check it"),
        }
    }
}

/// The errors of `v` against the checked-in schema `name`.
fn errors(name: &str, v: &Value) -> Vec<String> {
    static SCHEMAS: OnceLock<BTreeMap<&str, Value>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| schema::NAMES.map(|n| (n, checked_in(n))).into());
    let root = &schemas[name];
    let mut errors = Vec::new();
    validate(root, root, v, "$", &mut errors);
    errors
}

#[track_caller]
fn assert_valid(name: &str, v: &Value, what: &str) {
    let e = errors(name, v);
    assert!(
        e.is_empty(),
        "{what} against schemas/{name}.schema.json: {e:#?}"
    );
}

fn json_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{dir} has JSON files");
    files
}

// ---------------------------------------------------------------- the tests

#[test]
fn checked_in_schemas_are_what_the_types_generate() {
    let bless = std::env::var("KAFKASIM_BLESS").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for name in schema::NAMES {
        let generated = schema::generate(name).expect("a known schema");
        let path = root().join(schema::DIR).join(format!("{name}.schema.json"));
        if bless {
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(&path, &generated).expect("write the schema");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from what the types generate; if the format change is \
         deliberate, re-record them with `KAFKASIM_BLESS=1 cargo test --test schemas`"
    );
    let (code, out) = kafkasim(&["schema", "history"], &root());
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, schema::generate("history").expect("known"));
}

#[test]
fn shipped_scenarios_and_matrices_validate() {
    let mut scenarios = json_files("scenarios");
    scenarios.extend(json_files("benches"));
    for path in &scenarios {
        assert_valid("scenario", &read_json(path), &path.display().to_string());
    }
    for path in json_files("matrix") {
        assert_valid("matrix", &read_json(&path), &path.display().to_string());
    }
}

/// A change to a scenario's JSON.
type Edit = Box<dyn Fn(&mut Value)>;

#[test]
fn the_schemas_refuse_what_the_parser_refuses() {
    let base = read_json(&root().join("scenarios/zombie-leader-acks-1.json"));
    let refused: Vec<(&str, Edit)> = vec![
        (
            "unknown field",
            Box::new(|v| v["cluster"]["brokerz"] = 3.into()),
        ),
        (
            "unknown config",
            Box::new(|v| v["producers"]["config"]["linger"] = 5.into()),
        ),
        (
            "acks",
            Box::new(|v| v["producers"]["config"]["acks"] = 2.into()),
        ),
        (
            "target",
            Box::new(|v| v["nemesis"]["schedule"][0]["target"] = "brokr-1".into()),
        ),
        (
            "fault field",
            Box::new(|v| v["nemesis"]["schedule"][0]["targte"] = "broker-1".into()),
        ),
        (
            "no at_ms",
            Box::new(|v| {
                v["nemesis"]["schedule"][0]
                    .as_object_mut()
                    .expect("an entry")
                    .remove("at_ms");
            }),
        ),
        (
            "no expect",
            Box::new(|v| {
                v.as_object_mut().expect("a scenario").remove("expect");
            }),
        ),
    ];
    assert!(errors("scenario", &base).is_empty());
    for (what, edit) in refused {
        let mut v = base.clone();
        edit(&mut v);
        let text = serde_json::to_string(&v).expect("serializes");
        let parsed = kafkasim::scenario::Scenario::parse("s.json", &text, Path::new("s.json"));
        assert!(parsed.is_err(), "{what}: the parser accepts it");
        assert!(
            !errors("scenario", &v).is_empty(),
            "{what}: the schema accepts it"
        );
    }
    // An editor's `$schema` key is accepted by both.
    let mut v = base.clone();
    v["$schema"] = "../schemas/scenario.schema.json".into();
    let text = serde_json::to_string(&v).expect("serializes");
    kafkasim::scenario::Scenario::parse("s.json", &text, Path::new("s.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_valid("scenario", &v, "a scenario with $schema");
}

/// What `run` and `analyze` write validates: every line of `history.jsonl`,
/// `snapshot.json`, both `report.json`s.
#[test]
fn a_runs_files_validate() {
    let dir = std::env::temp_dir().join(format!("kafkasim-schemas-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let reports = dir.to_string_lossy().into_owned();
    let scenario = root().join("scenarios/exactly-once-pipeline.json");
    let (code, out) = kafkasim(
        &[
            "run",
            &scenario.to_string_lossy(),
            "--seed",
            "0",
            "--reports",
            &reports,
        ],
        &dir,
    );
    assert!(code == 0 || code == 1, "{out}");
    let run = dir.join("exactly-once-pipeline/0");
    let history = std::fs::read_to_string(run.join("history.jsonl")).expect("history.jsonl");
    let mut fs = std::collections::BTreeSet::new();
    for (i, line) in history.lines().enumerate() {
        let v: Value = serde_json::from_str(line).expect("a JSON line");
        fs.insert(v["f"].as_str().unwrap_or("").to_string());
        assert_valid("history", &v, &format!("history.jsonl line {}", i + 1));
    }
    assert!(fs.len() > 8, "the run has many kinds of entries: {fs:?}");
    assert_valid(
        "snapshot",
        &read_json(&run.join("snapshot.json")),
        "snapshot.json",
    );
    assert_valid(
        "report",
        &read_json(&run.join("report.json")),
        "report.json",
    );
    let analyzed = dir.join("analyzed").to_string_lossy().into_owned();
    let (code, out) = kafkasim(
        &[
            "analyze",
            &run.join("history.jsonl").to_string_lossy(),
            "--snapshot",
            &run.join("snapshot.json").to_string_lossy(),
            "--reports",
            &analyzed,
        ],
        &dir,
    );
    assert!(code == 0 || code == 1, "{out}");
    let report = read_json(&dir.join("analyzed/report.json"));
    assert!(report["analyzed"].is_object());
    assert_valid("report", &report, "analyze's report.json");
    // A line of another version is refused by the schema and by analyze.
    let first: Value = serde_json::from_str(history.lines().next().expect("a line")).expect("JSON");
    let mut v2 = first.clone();
    v2["v"] = 2.into();
    assert!(!errors("history", &v2).is_empty());
    std::fs::write(dir.join("v2.jsonl"), format!("{v2}\n")).expect("write");
    let (code, out) = kafkasim(&["analyze", "v2.jsonl", "--reports", "v2"], &dir);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("v2.jsonl, line 1, field v: expected 1"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
