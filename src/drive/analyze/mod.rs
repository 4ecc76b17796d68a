//! `kafkasim analyze`: the checker on a history kafkasim did not produce (or a `run`
//! wrote): kafkasim's own `history.jsonl` (with its `snapshot.json`, the white-box
//! checks too) or Jepsen's Kafka workload `history.edn` ([`jepsen`]), black-box as
//! Jepsen's checker is.
//!
//! Bad input is an [`InputError`] naming the file, the line, the field and what was
//! expected; nothing is judged or written then.

pub mod dump_log;
pub mod edn;
pub mod jepsen;

use crate::check::{self, kinds::ANOMALY_KINDS};
use crate::history::{History, HistoryLine, Op, Snapshot, HISTORY_VERSION};
use crate::kafka::protocol::TopicPartition;
use crate::report::{figures, Analyzed, RunStats, SeedReport};
use std::fmt;
use std::io::BufRead;
use std::path::{Path, PathBuf};

pub use jepsen::KeyMap;

/// The most entries a history may have (far above any run: a million operations is
/// a few million entries).
const MAX_ENTRIES: u64 = 200_000_000;

/// The longest line of `history.jsonl`.
const MAX_LINE: usize = 64 << 20;

/// The verdict of a history with no send and no poll: nothing was checked.
pub const NOTHING_TO_CHECK: &str = "nothing-to-check";

/// A history's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// kafkasim's `history.jsonl`: one [`HistoryLine`] per line.
    Jsonl,
    /// Jepsen's Kafka workload `history.edn`.
    JepsenEdn,
}

impl Format {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::JepsenEdn => "jepsen-edn",
        }
    }

    /// The format named `name`.
    pub fn parse(name: &str) -> Option<Format> {
        [Format::Jsonl, Format::JepsenEdn]
            .into_iter()
            .find(|f| f.name() == name)
    }

    /// The format a file's name suggests: `.edn` is Jepsen's, anything else jsonl.
    pub fn of(path: &Path) -> Format {
        match path.extension() {
            Some(e) if e == "edn" => Format::JepsenEdn,
            _ => Format::Jsonl,
        }
    }
}

/// Bad input: where, and what was expected there.
#[derive(Debug, PartialEq)]
pub struct InputError {
    /// The file.
    pub file: PathBuf,
    /// The line, from 1 (`None`: the file as a whole).
    pub line: Option<u64>,
    /// The field (`-`: the line as a whole).
    pub field: String,
    /// What was expected.
    pub expected: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        write!(f, ", field {}: expected {}", self.field, self.expected)
    }
}

/// One `Arc` per topic name for a history read from a file: each line's partitions
/// would otherwise hold their own copy of the name, and compare by reading it.
#[derive(Default)]
pub(crate) struct Topics(std::collections::BTreeSet<std::sync::Arc<str>>);

impl Topics {
    /// Points `tp` at the shared copy of its topic's name.
    pub(crate) fn share(&mut self, tp: &mut TopicPartition) {
        match self.0.get(&tp.topic) {
            Some(shared) => tp.topic = shared.clone(),
            None => {
                self.0.insert(tp.topic.clone());
            }
        }
    }
}

/// One line of a history file as [`for_each_line`] hands it over.
pub(crate) enum Line<T> {
    /// The line, parsed.
    Parsed(T),
    /// Longer than the reader's limit.
    TooLong,
    /// The file could not be read here.
    Unreadable(std::io::Error),
}

/// Reads `input` line by line (each at most `max` bytes), parses every line with
/// `parse` and hands each (line number from 1, line) to `take`, in order. Stops at the
/// end of the input or at `take`'s first error (or after an unreadable or too long
/// line, which `take` is given). One line is held at a time.
pub(crate) fn for_each_line<T, E>(
    mut input: impl BufRead,
    max: usize,
    parse: impl Fn(&str) -> T,
    mut take: impl FnMut(u64, Line<T>) -> Result<(), E>,
) -> Result<(), E> {
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let read = std::io::Read::take(&mut input, max as u64 + 1).read_line(&mut line);
        number += 1;
        let (item, last) = match read {
            Ok(0) => return Ok(()),
            Ok(_) if line.len() > max => (Line::TooLong, true),
            Ok(_) => (Line::Parsed(parse(&line)), false),
            Err(e) => (Line::Unreadable(e), true),
        };
        take(number, item)?;
        if last {
            return Ok(());
        }
    }
}

/// Reads a history file in `format`.
pub fn read_history(path: &Path, format: Format, keys: &KeyMap) -> Result<History, InputError> {
    let file = std::fs::File::open(path).map_err(|e| InputError {
        file: path.to_path_buf(),
        line: None,
        field: "-".into(),
        expected: format!("a readable file ({e})"),
    })?;
    let input = std::io::BufReader::new(file);
    match format {
        Format::Jsonl => read_jsonl(path, input),
        Format::JepsenEdn => jepsen::read(path, input, keys),
    }
}

/// Reads kafkasim's `history.jsonl`: one entry per line, numbered from 0 in order.
pub fn read_jsonl(path: &Path, input: impl BufRead) -> Result<History, InputError> {
    let error = |line: u64, field: String, expected: String| InputError {
        file: path.to_path_buf(),
        line: Some(line),
        field,
        expected,
    };
    // The fast path without tracking where the parser is; only a bad line is parsed
    // again to name the field.
    let parse = |line: &str| {
        if line.trim().is_empty() {
            return None;
        }
        Some(serde_json::from_str::<HistoryLine>(line).map_err(|_| line.to_string()))
    };
    let mut history = History::default();
    let mut topics = Topics::default();
    for_each_line(input, MAX_LINE, parse, |number, line| {
        let parsed = match line {
            Line::Parsed(None) => return Ok(()),
            Line::Parsed(Some(Ok(parsed))) => parsed,
            Line::Parsed(Some(Err(line))) => {
                let de = &mut serde_json::Deserializer::from_str(&line);
                let e = match serde_path_to_error::deserialize::<_, HistoryLine>(de) {
                    Err(e) => e,
                    // Only what follows the object is wrong (the fast path checks it).
                    Ok(_) => {
                        let first = serde_json::from_str::<HistoryLine>(&line)
                            .map_or_else(|e| e.to_string(), |_| String::new());
                        let expected = format!("one JSON object per line: {first}");
                        return Err(error(number, "-".into(), expected));
                    }
                };
                let field = e.path().to_string();
                let field = if field == "." { "-".into() } else { field };
                let inner = e.into_inner();
                let expected = match inner.classify() {
                    serde_json::error::Category::Eof => {
                        format!("a whole JSON object (is the file truncated?): {inner}")
                    }
                    _ => format!(
                        "a history line (schemas/history.schema.json, `kafkasim schema \
                         history`): {inner}"
                    ),
                };
                return Err(error(number, field, expected));
            }
            Line::TooLong => {
                let expected = format!("a line of at most {MAX_LINE} bytes");
                return Err(error(number, "-".into(), expected));
            }
            Line::Unreadable(e) => {
                return Err(error(number, "-".into(), format!("a readable file ({e})")))
            }
        };
        if parsed.v != HISTORY_VERSION {
            let expected = format!(
                "{HISTORY_VERSION} (the history.jsonl version this kafkasim reads), not {}",
                parsed.v
            );
            return Err(error(number, "v".into(), expected));
        }
        let mut entry = parsed.entry;
        if let Op::Send { partition, .. }
        | Op::Poll { partition, .. }
        | Op::Seek { partition, .. }
        | Op::ObserveHighWatermark { partition, .. } = &mut entry.op
        {
            topics.share(partition);
        }
        let at = history.entries.len() as u64;
        if entry.index != at {
            let expected = format!(
                "{at} (entries are numbered from 0, in order), not {}",
                entry.index
            );
            return Err(error(number, "index".into(), expected));
        }
        if at >= MAX_ENTRIES {
            return Err(error(
                number,
                "-".into(),
                format!("at most {MAX_ENTRIES} entries"),
            ));
        }
        history.entries.push(entry);
        Ok(())
    })?;
    Ok(history)
}

/// Reads a `snapshot.json` (as `kafkasim run` writes beside `history.jsonl`).
pub fn read_snapshot(path: &Path) -> Result<Snapshot, InputError> {
    let error = |field: String, expected: String| InputError {
        file: path.to_path_buf(),
        line: None,
        field,
        expected,
    };
    let file = std::fs::File::open(path)
        .map_err(|e| error("-".into(), format!("a readable file ({e})")))?;
    let de = &mut serde_json::Deserializer::from_reader(std::io::BufReader::new(file));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let line = e.inner().line() as u64;
        let mut err = error(
            if field == "." { "-".into() } else { field },
            format!("a kafkasim snapshot: {}", e.into_inner()),
        );
        err.line = Some(line);
        err
    })
}

/// Judges a history (and the snapshot, when there is one): the report `run` would
/// give, every anomaly counting as a violation (there is no scenario to expect any).
/// A history the checker cannot judge is bad input.
pub fn judge(
    history: &History,
    snapshot: Option<&Snapshot>,
    analyzed: Analyzed,
) -> Result<SeedReport, InputError> {
    let empty = Snapshot::default();
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check::check_on_two_threads(history, snapshot.unwrap_or(&empty))
    }));
    let result = checked.map_err(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        InputError {
            file: analyzed.history.clone(),
            line: None,
            field: "-".into(),
            expected: format!("a history the checker can judge ({msg})"),
        }
    })?;
    let name = analyzed
        .history
        .file_stem()
        .map_or_else(|| "history".into(), |s| s.to_string_lossy().into_owned());
    let path = analyzed.history.clone();
    let mut report = SeedReport {
        analyzed: Some(analyzed),
        ..SeedReport::new(name, path)
    };
    for (kind, found) in &result.anomalies {
        report.anomalies.insert(kind.clone(), found.count);
        report.examples.insert(kind.clone(), found.examples.clone());
        report
            .example_lines
            .insert(kind.clone(), found.lines.clone());
        if ANOMALY_KINDS.contains(&kind.as_str()) {
            report.violated.push(kind.clone());
        }
    }
    let checked_something = history
        .entries
        .iter()
        .any(|e| matches!(e.op, Op::Send { .. } | Op::Poll { .. }));
    report.verdict = match (checked_something, report.violated.is_empty()) {
        (_, false) => "fail",
        (true, true) => "pass",
        (false, true) => NOTHING_TO_CHECK,
    }
    .into();
    report.stats = RunStats {
        sim_ms: history
            .entries
            .iter()
            .map(|e| e.complete_ms.unwrap_or(e.invoke_ms))
            .max()
            .unwrap_or(0),
        wall_ms: 0,
        operations: history.entries.len() as u64,
        records_sent: result.stats.sends,
        net_messages: 0,
        faults: result.stats.faults,
        check: result.stats.clone(),
        producer: figures::producer_figures(history),
        pipeline: Default::default(),
    };
    Ok(report)
}

#[cfg(test)]
mod tests;
