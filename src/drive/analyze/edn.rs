//! A small, strict reader for the EDN that Jepsen writes to `history.edn`: one
//! operation map per line.
//!
//! Written here rather than taken from a crate: the history is read one line at a
//! time (memory stays flat however long the history is), every error must name its
//! line and column, and only Jepsen's subset is needed (no `#inst`/`#uuid` semantics:
//! a tagged value is kept as its tag and value). The maintained EDN crates parse whole
//! documents into their own trees and report positions loosely.

use std::fmt;

/// The longest nesting the reader accepts (Jepsen's ops are a few levels deep).
const MAX_DEPTH: usize = 64;

/// An EDN value.
#[derive(Clone, Debug, PartialEq)]
pub enum Edn {
    /// `nil`.
    Nil,
    /// `true`, `false`.
    Bool(bool),
    /// An integer (`42`, `-7`, `42N`).
    Int(i64),
    /// A floating-point number (`1.5`, `2M`).
    Float(f64),
    /// A string.
    Str(String),
    /// A character (`\a`, `\newline`).
    Char(char),
    /// A keyword, without its colon (`:send` is `send`).
    Keyword(String),
    /// A symbol.
    Symbol(String),
    /// A list `(...)`.
    List(Vec<Edn>),
    /// A vector `[...]`.
    Vector(Vec<Edn>),
    /// A map `{...}`, in the order written.
    Map(Vec<(Edn, Edn)>),
    /// A set `#{...}`, in the order written.
    Set(Vec<Edn>),
    /// A tagged value `#tag value`.
    Tagged(String, Box<Edn>),
}

impl Edn {
    /// The value under keyword `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Edn> {
        let Edn::Map(pairs) = self else { return None };
        pairs
            .iter()
            .find(|(k, _)| matches!(k, Edn::Keyword(name) if name == key))
            .map(|(_, v)| v)
    }

    /// Takes the value under keyword `key` of a map out of it (leaving `nil`).
    pub fn take(&mut self, key: &str) -> Option<Edn> {
        let Edn::Map(pairs) = self else { return None };
        pairs
            .iter_mut()
            .find(|(k, _)| matches!(k, Edn::Keyword(name) if name == key))
            .map(|(_, v)| std::mem::replace(v, Edn::Nil))
    }

    /// The elements of a vector or a list.
    pub fn items(&self) -> Option<&[Edn]> {
        match self {
            Edn::Vector(v) | Edn::List(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for Edn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = |f: &mut fmt::Formatter<'_>, open: &str, items: &[Edn], close: &str| {
            write!(f, "{open}")?;
            for (i, x) in items.iter().enumerate() {
                write!(f, "{}{x}", if i > 0 { " " } else { "" })?;
            }
            write!(f, "{close}")
        };
        match self {
            Edn::Nil => write!(f, "nil"),
            Edn::Bool(b) => write!(f, "{b}"),
            Edn::Int(i) => write!(f, "{i}"),
            Edn::Float(x) => write!(f, "{x}"),
            Edn::Str(s) => write!(f, "{s:?}"),
            Edn::Char(c) => write!(f, "\\{c}"),
            Edn::Keyword(k) => write!(f, ":{k}"),
            Edn::Symbol(s) => write!(f, "{s}"),
            Edn::List(v) => seq(f, "(", v, ")"),
            Edn::Vector(v) => seq(f, "[", v, "]"),
            Edn::Set(v) => seq(f, "#{", v, "}"),
            Edn::Map(pairs) => {
                write!(f, "{{")?;
                for (i, (k, v)) in pairs.iter().enumerate() {
                    write!(f, "{}{k} {v}", if i > 0 { ", " } else { "" })?;
                }
                write!(f, "}}")
            }
            Edn::Tagged(tag, v) => write!(f, "#{tag} {v}"),
        }
    }
}

/// Why a line is not EDN: the column (from 1) and what was expected there.
#[derive(Debug, PartialEq)]
pub struct SyntaxError {
    /// The column, in characters from 1.
    pub column: usize,
    /// What was expected.
    pub expected: String,
}

/// Reads every EDN value on one line (a line of `history.edn` holds one).
pub fn parse_line(line: &str) -> Result<Vec<Edn>, SyntaxError> {
    let mut r = Reader { line, at: 0 };
    let mut out = Vec::new();
    loop {
        r.skip_blank();
        if r.at >= line.len() {
            return Ok(out);
        }
        if let Some(v) = r.value(0)? {
            out.push(v);
        }
    }
}

/// A cursor over one line, at a byte position (always on a character boundary).
struct Reader<'a> {
    line: &'a str,
    at: usize,
}

fn delimiter(c: char) -> bool {
    c.is_whitespace() || c == ',' || "()[]{}\";".contains(c)
}

impl<'a> Reader<'a> {
    /// The column of byte position `at`, in characters from 1.
    fn column(&self, at: usize) -> usize {
        self.line[..at].chars().count() + 1
    }

    fn error<T>(&self, expected: impl Into<String>) -> Result<T, SyntaxError> {
        Err(SyntaxError {
            column: self.column(self.at),
            expected: expected.into(),
        })
    }

    fn peek(&self) -> Option<char> {
        match self.line.as_bytes().get(self.at) {
            Some(&b) if b.is_ascii() => Some(char::from(b)),
            Some(_) => self.line[self.at..].chars().next(),
            None => None,
        }
    }

    /// Steps over `c`, the character at the cursor.
    fn bump(&mut self, c: char) {
        self.at += c.len_utf8();
    }

    fn skip_blank(&mut self) {
        while let Some(c) = self.peek() {
            if c == ';' {
                self.at = self.line.len();
            } else if c.is_whitespace() || c == ',' {
                self.bump(c);
            } else {
                break;
            }
        }
    }

    fn token(&mut self) -> &'a str {
        let start = self.at;
        while let Some(c) = self.peek().filter(|&c| !delimiter(c)) {
            self.bump(c);
        }
        &self.line[start..self.at]
    }

    fn value(&mut self, depth: usize) -> Result<Option<Edn>, SyntaxError> {
        if depth > MAX_DEPTH {
            return self.error(format!("at most {MAX_DEPTH} levels of nesting"));
        }
        self.skip_blank();
        let Some(c) = self.peek() else {
            return self.error("a value, but the line ends (is the file truncated?)");
        };
        let v = match c {
            '(' => Edn::List(self.seq(')', depth)?),
            '[' => Edn::Vector(self.seq(']', depth)?),
            '{' => {
                let items = self.seq('}', depth)?;
                if items.len() % 2 != 0 {
                    return self.error("a map with a value for every key");
                }
                let mut it = items.into_iter();
                let mut pairs = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Edn::Map(pairs)
            }
            ')' | ']' | '}' => return self.error(format!("a value, not `{c}`")),
            '"' => Edn::Str(self.string()?),
            '\\' => {
                self.at += 1;
                let t = self.token();
                let ch = match t {
                    "newline" => '\n',
                    "space" => ' ',
                    "tab" => '\t',
                    "return" => '\r',
                    _ if t.chars().count() == 1 => t.chars().next().expect("one char"),
                    // `\(`: a delimiter as a character.
                    "" => match self.peek() {
                        Some(d) => {
                            self.bump(d);
                            d
                        }
                        None => return self.error("a character after `\\`"),
                    },
                    _ => return self.error(format!("a character, not `\\{t}`")),
                };
                Edn::Char(ch)
            }
            '#' => {
                self.at += 1;
                match self.peek() {
                    Some('{') => Edn::Set(self.seq('}', depth)?),
                    Some('_') => {
                        self.at += 1;
                        self.value(depth + 1)?;
                        return Ok(None);
                    }
                    _ => {
                        let tag = self.token();
                        if tag.is_empty() {
                            return self.error("a tag, `#{` or `#_` after `#`");
                        }
                        let Some(v) = self.value(depth + 1)? else {
                            return self.error(format!("a value after the tag #{tag}"));
                        };
                        Edn::Tagged(tag.to_string(), Box::new(v))
                    }
                }
            }
            ':' => {
                self.at += 1;
                let k = self.token();
                if k.is_empty() {
                    return self.error("a keyword's name after `:`");
                }
                Edn::Keyword(k.to_string())
            }
            _ => {
                let t = self.token();
                self.atom(t)?
            }
        };
        Ok(Some(v))
    }

    fn atom(&self, t: &str) -> Result<Edn, SyntaxError> {
        let numeric = t.starts_with(|c: char| c.is_ascii_digit())
            || (t.len() > 1
                && t.starts_with(['-', '+'])
                && t[1..].starts_with(|c: char| c.is_ascii_digit()));
        if !numeric {
            return Ok(match t {
                "nil" => Edn::Nil,
                "true" => Edn::Bool(true),
                "false" => Edn::Bool(false),
                _ => Edn::Symbol(t.to_string()),
            });
        }
        let int = t.strip_suffix('N').unwrap_or(t);
        if let Ok(i) = int.parse::<i64>() {
            return Ok(Edn::Int(i));
        }
        match t.strip_suffix('M').unwrap_or(t).parse::<f64>() {
            Ok(x)
                if !int
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '-' || c == '+') =>
            {
                Ok(Edn::Float(x))
            }
            _ => Err(SyntaxError {
                column: self.column(self.at - t.len()),
                expected: format!("a number that fits 64 bits, not `{t}`"),
            }),
        }
    }

    fn seq(&mut self, close: char, depth: usize) -> Result<Vec<Edn>, SyntaxError> {
        self.at += 1;
        let mut items = Vec::new();
        loop {
            self.skip_blank();
            match self.peek() {
                None => {
                    return self.error(format!(
                        "`{close}`, but the line ends (is the file truncated?)"
                    ))
                }
                Some(c) if c == close => {
                    self.at += 1;
                    return Ok(items);
                }
                Some(_) => items.extend(self.value(depth + 1)?),
            }
        }
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.at += 1;
        let mut s = String::new();
        loop {
            let Some(c) = self.peek() else {
                return self.error("`\"`, but the line ends (is the file truncated?)");
            };
            self.bump(c);
            match c {
                '"' => return Ok(s),
                '\\' => {
                    let Some(e) = self.peek() else {
                        return self.error("an escape after `\\`");
                    };
                    self.bump(e);
                    match e {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        'r' => s.push('\r'),
                        '"' | '\\' => s.push(e),
                        // `\uXXXX` and others are kept as written.
                        _ => {
                            s.push('\\');
                            s.push(e);
                        }
                    }
                }
                _ => s.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_jepsen_op() {
        let v = parse_line(
            "{:type :ok, :f :txn, :value [[:send 11 [537 641]] [:poll {3 [[0 5] [1 nil]]}]], \
             :time 280169754615, :process 379, :error #{\"x\\\"y\" \\a}} ; note",
        )
        .unwrap();
        assert_eq!(v.len(), 1);
        let op = &v[0];
        assert_eq!(op.get("type"), Some(&Edn::Keyword("ok".into())));
        assert_eq!(op.get("process"), Some(&Edn::Int(379)));
        let value = op.get("value").unwrap().items().unwrap();
        assert_eq!(value[0].to_string(), "[:send 11 [537 641]]");
        assert_eq!(value[1].to_string(), "[:poll {3 [[0 5] [1 nil]]}]");
        assert_eq!(
            op.get("error"),
            Some(&Edn::Set(vec![Edn::Str("x\"y".into()), Edn::Char('a')]))
        );
    }

    #[test]
    fn truncated_and_bad_lines_name_the_column() {
        let e = parse_line("{:type :ok, :value [[:send 1 2]").unwrap_err();
        assert!(e.expected.contains("truncated"), "{e:?}");
        assert_eq!(e.column, 32);
        assert!(parse_line("{:a}").unwrap_err().expected.contains("map"));
        assert!(parse_line("[99999999999999999999999]")
            .unwrap_err()
            .expected
            .contains("64 bits"));
        // Columns count characters, not bytes.
        let e = parse_line("[\"äöü\" \\é 99999999999999999999999]").unwrap_err();
        assert_eq!(e.column, 11, "{e:?}");
        assert_eq!(
            parse_line("[\"äö\\\"ü\" \\é]").unwrap(),
            vec![Edn::Vector(vec![Edn::Str("äö\"ü".into()), Edn::Char('é')])]
        );
        assert_eq!(
            parse_line("#_ [1] #inst \"2024\" 1.5 -3").unwrap(),
            vec![
                Edn::Tagged("inst".into(), Box::new(Edn::Str("2024".into()))),
                Edn::Float(1.5),
                Edn::Int(-3)
            ]
        );
    }
}
