//! The layout's rules, checked on the source itself (ARCHITECTURE.md, "Boundaries"):
//! no import cycle between files or between folders, a checker that sees only the
//! history and Kafka's data, protocol cores that do not know they are simulated, and
//! files short enough to read (at most [`MAX_LINES`]).
//!
//! A module's dependencies are the `crate::` paths its code names (comments excluded),
//! each resolved to the longest module prefix. A child naming its parent is not a
//! dependency (it is part of the parent); a parent naming its child is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a file in `src/` may be.
const MAX_LINES: usize = 1500;

/// What the protocol cores may depend on: Kafka's data, the actor contract, the
/// history they record into and the safeguard switches.
const CORE_DEPS: &[&str] = &["actor", "bugs", "history", "kafka"];

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `(module path, file)` for every module file under `src/`, `main.rs` and `lib.rs`
/// excluded.
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("src is readable")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    files
        .into_iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(src()).ok()?.with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                return None;
            }
            Some((parts.join("::"), f))
        })
        .collect()
}

/// The `crate::a::b::...` paths named in `code`, as segment lists.
fn crate_paths(code: &str) -> Vec<Vec<&str>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `kafkasim_crate::`, not ours
        }
        let mut segs = Vec::new();
        let mut s = rest;
        loop {
            let end = s
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(s.len());
            if end == 0 {
                break;
            }
            segs.push(&s[..end]);
            match s[end..].strip_prefix("::") {
                Some(next) => s = next,
                None => break,
            }
        }
        out.push(segs);
    }
    out
}

/// Module -> the modules it depends on.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, file) in &mods {
        let text = std::fs::read_to_string(file).expect("readable");
        let deps = g.entry(m.clone()).or_default();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for segs in crate_paths(code) {
                let target = (1..=segs.len())
                    .rev()
                    .map(|n| segs[..n].join("::"))
                    .find(|c| mods.contains_key(c));
                if let Some(t) = target {
                    let child_of_t = m.starts_with(&format!("{t}::"));
                    if &t != m && !child_of_t {
                        deps.insert(t);
                    }
                }
            }
        }
    }
    g
}

fn folder(m: &str) -> String {
    m.split("::").next().unwrap_or(m).to_string()
}

/// A cycle in `g`, if there is one (depth-first search, in name order).
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            match state.get(d.as_str()) {
                Some(1) => {
                    let i = stack.iter().position(|s| s == d).expect("on the stack");
                    let mut c = stack[i..].to_vec();
                    c.push(d.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(d, g, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if !state.contains_key(n) {
            if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_dependency_scanner_sees_imports_and_skips_comments() {
    let code = "use crate::kafka::protocol::{A, B}; let x = crate::history::UNKNOWN_PARTITION;";
    assert_eq!(
        crate_paths(code),
        vec![vec!["kafka", "protocol"], vec!["history"]],
        "items (upper case) end a path; only modules count"
    );
    let g = graph();
    assert!(g["check"].contains("history"), "{:?}", g["check"]);
    assert!(
        g["broker"].contains("broker::log"),
        "a parent depends on its child"
    );
    assert!(
        !g["broker::log"].contains("broker"),
        "a child is part of its parent"
    );
}

#[test]
fn no_import_cycle_between_files() {
    let g = graph();
    assert_eq!(find_cycle(&g), None, "an import cycle between files");
}

#[test]
fn no_import_cycle_between_folders() {
    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, deps) in graph() {
        let f = folder(&m);
        let entry = folders.entry(f.clone()).or_default();
        entry.extend(deps.iter().map(|d| folder(d)).filter(|d| *d != f));
    }
    assert_eq!(
        find_cycle(&folders),
        None,
        "an import cycle between folders"
    );
}

#[test]
fn the_checker_sees_only_the_history_and_kafkas_data() {
    for (m, deps) in graph() {
        if folder(&m) != "check" {
            continue;
        }
        for d in deps {
            let f = folder(&d);
            assert!(
                ["check", "history", "kafka"].contains(&f.as_str()),
                "{m} depends on {d}: the checker must see only history and snapshot types"
            );
        }
    }
}

#[test]
fn protocol_cores_do_not_know_they_are_simulated() {
    for (m, deps) in graph() {
        let f = folder(&m);
        if !["broker", "client", "controller", "coordinator"].contains(&f.as_str()) {
            continue;
        }
        for d in deps {
            let df = folder(&d);
            let core = ["broker", "client", "controller", "coordinator"].contains(&df.as_str());
            assert!(
                core || CORE_DEPS.contains(&df.as_str()),
                "{m} depends on {d}: cores may use only {CORE_DEPS:?} and other cores"
            );
        }
    }
}

#[test]
fn files_are_short_enough_to_read() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut over = Vec::new();
    for file in modules().values() {
        let lines = std::fs::read_to_string(file)
            .expect("readable")
            .lines()
            .count();
        if lines > MAX_LINES {
            let name = file.strip_prefix(&root).expect("under the root").display();
            over.push(format!("{name}: {lines} lines"));
        }
    }
    assert!(
        over.is_empty(),
        "files over {MAX_LINES} lines, split them: {over:?}"
    );
}
