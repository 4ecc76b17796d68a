//! Unit tests of the readers; the Jepsen cases are in `tests/analyze.rs`.

use super::*;

fn jsonl(text: &str) -> Result<History, InputError> {
    read_jsonl(Path::new("h.jsonl"), text.as_bytes())
}

#[test]
fn jsonl_errors_name_the_line_and_the_field() {
    let ok = r#"{"index":0,"process":{"consumer":0},"invoke_ms":1,"complete_ms":2,"outcome":{"type":"ok"},"f":"seek","partition":"t-0","offset":3,"reason":"x"}"#;
    let h = jsonl(&format!("{ok}\n\n")).unwrap();
    assert_eq!(h.entries.len(), 1);
    let e = jsonl(&format!("{ok}\n{ok}\n")).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (Some(2), "index"));
    assert!(e.expected.starts_with("1 (entries"), "{e}");
    let e = jsonl(&ok[..60]).unwrap_err();
    assert!(e.expected.contains("truncated"), "{e}");
    let e = jsonl(&ok.replace("\"seek\"", "\"jump\"")).unwrap_err();
    assert_eq!(e.line, Some(1));
    assert!(e.expected.contains("jump"), "{e}");
    assert!(e.to_string().starts_with("h.jsonl, line 1, field "), "{e}");
    let e = jsonl(&format!("{ok} x\n")).unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (Some(1), "-"));
    assert!(e.expected.contains("trailing characters"), "{e}");
}

#[test]
fn jepsen_keys_map_by_jepsens_rule_or_to_one_topic() {
    assert_eq!(KeyMap::PerTopic(2).partition(5).to_string(), "t2-1");
    assert_eq!(KeyMap::OneTopic("q".into()).partition(5).to_string(), "q-5");
    assert_eq!(Format::of(Path::new("x/history.edn")), Format::JepsenEdn);
    assert_eq!(Format::of(Path::new("history.jsonl")), Format::Jsonl);
}
