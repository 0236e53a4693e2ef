//! A fast path for the YAML manifests are almost always written in: block mappings and
//! sequences, one-line plain or quoted scalars, one-line flow sequences of scalars, comments and
//! `---` separators. It builds the JSON tree straight from the lines, several times faster than
//! the general parser (libyaml's events, then serde_yaml's `Value`, then JSON), which was most
//! of the cost of rendering a large kustomization.
//!
//! Anything outside that subset — anchors, aliases, tags, block scalars, multi-line scalars,
//! escapes, flow mappings, merge keys, duplicate keys, non-ASCII text, tabs, directives —
//! returns `None` and the general parser takes the whole file, so errors are always the general
//! parser's. Where it returns `Some`, the result is exactly the general parser's, scalar types
//! included (the YAML 1.2 core schema as serde_yaml resolves it): `tests/yaml_fast_path.rs` and
//! the `yaml_fast_path` fuzz body compare the two.

use serde_json::{Map, Number, Value};

use super::MAX_DOCUMENTS;

/// Deeper nesting goes to the general parser (whose own limit is 128).
const MAX_DEPTH: usize = 64;

/// A content line: indentation and the text after it, trailing spaces removed.
#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    text: &'a str,
}

/// The non-empty documents of `input`, or `None` when it is not in the simple subset.
pub fn parse(input: &str) -> Option<Vec<Value>> {
    // Control characters, tabs, CR, BOMs and non-ASCII line breaks all mean "not simple".
    if input.bytes().any(|b| (b < 0x20 && b != b'\n') || b >= 0x7f) {
        return None;
    }
    let mut docs = Vec::new();
    let mut lines: Vec<Line> = Vec::new();
    for raw in input.split('\n') {
        if let Some(rest) = raw.strip_prefix("---")
            && (rest.is_empty() || rest.starts_with(' '))
        {
            let rest = rest.trim_start_matches(' ');
            if !rest.is_empty() && !rest.starts_with('#') {
                return None;
            }
            push_document(&mut docs, &mut lines)?;
            continue;
        }
        if raw.starts_with("...") || raw.starts_with('%') {
            return None;
        }
        let text = raw.trim_end_matches(' ');
        let content = text.trim_start_matches(' ');
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        lines.push(Line {
            indent: text.len() - content.len(),
            text: content,
        });
    }
    push_document(&mut docs, &mut lines)?;
    Some(docs)
}

fn push_document(docs: &mut Vec<Value>, lines: &mut Vec<Line>) -> Option<()> {
    if lines.is_empty() {
        return Some(());
    }
    let mut p = Parser {
        lines: std::mem::take(lines),
        pos: 0,
    };
    let indent = p.lines[0].indent;
    let doc = p.node(indent, 0)?;
    if p.pos != p.lines.len() || docs.len() >= MAX_DOCUMENTS {
        return None;
    }
    docs.push(doc);
    Some(())
}

struct Parser<'a> {
    lines: Vec<Line<'a>>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Line<'a>> {
        self.lines.get(self.pos).copied()
    }

    /// The block node whose first line is the current one, at `indent`.
    fn node(&mut self, indent: usize, depth: usize) -> Option<Value> {
        let line = self.peek()?;
        if depth > MAX_DEPTH || line.indent != indent {
            return None;
        }
        if is_item(line.text) {
            self.sequence(indent, depth)
        } else if split_key(line.text).is_some() {
            self.mapping(indent, depth)
        } else {
            None
        }
    }

    fn mapping(&mut self, indent: usize, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut map = Map::new();
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let (key, rest) = split_key(line.text)?;
            self.pos += 1;
            let value = if rest.is_empty() {
                match self.peek() {
                    Some(next) if next.indent > indent => self.node(next.indent, depth + 1)?,
                    // `key:` followed by `- item` at the key's own indentation.
                    Some(next) if next.indent == indent && is_item(next.text) => {
                        self.sequence(indent, depth + 1)?
                    }
                    _ => Value::Null,
                }
            } else {
                self.one_line(rest, indent)?
            };
            if map.insert(key.to_string(), value).is_some() {
                return None;
            }
        }
        Some(Value::Object(map))
    }

    fn sequence(&mut self, indent: usize, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent > indent {
                return None;
            }
            if line.indent < indent || !is_item(line.text) {
                break;
            }
            let rest = line.text[1..].trim_start_matches(' ');
            if rest.is_empty() || rest.starts_with('#') || is_item(rest) {
                return None;
            }
            if split_key(rest).is_some() {
                // `- key: value`: a mapping whose first line starts after the dash.
                let column = indent + (line.text.len() - rest.len());
                self.lines[self.pos] = Line {
                    indent: column,
                    text: rest,
                };
                items.push(self.mapping(column, depth + 1)?);
            } else {
                self.pos += 1;
                items.push(self.one_line(rest, indent)?);
            }
        }
        Some(Value::Array(items))
    }

    /// A value that must end on its line: a more indented line after it would continue it.
    fn one_line(&self, text: &str, indent: usize) -> Option<Value> {
        if self.peek().is_some_and(|next| next.indent > indent) {
            return None;
        }
        inline_value(text)
    }
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// `key: rest` or `key:` with a plain key that the general parser also reads as that string.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let colon = text
        .find(": ")
        .or_else(|| text.ends_with(':').then(|| text.len() - 1))?;
    let key = &text[..colon];
    let mut bytes = key.bytes();
    let first = bytes.next()?;
    let key_char =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/' | b'$');
    if !(first.is_ascii_alphabetic() || first == b'_' || first == b'$') || !bytes.all(key_char) {
        return None;
    }
    if null_or_bool(key).is_some() {
        return None;
    }
    Some((key, text[colon + 1..].trim_start_matches(' ')))
}

/// A scalar or flow sequence that fits on one line, with an optional trailing comment.
fn inline_value(text: &str) -> Option<Value> {
    match text.as_bytes().first()? {
        b'"' | b'\'' => {
            let (s, rest) = quoted(text)?;
            end_of_line(rest)?;
            Some(Value::String(s.to_string()))
        }
        b'[' => flow_sequence(text),
        b'{' => {
            let rest = text[1..].trim_start_matches(' ').strip_prefix('}')?;
            end_of_line(rest)?;
            Some(Value::Object(Map::new()))
        }
        _ => {
            let s = match text.find(" #") {
                Some(i) => text[..i].trim_end_matches(' '),
                None => text,
            };
            plain(s, false)
        }
    }
}

/// What may follow a value on its line: nothing, or a comment.
fn end_of_line(rest: &str) -> Option<()> {
    let trimmed = rest.trim_start_matches(' ');
    (trimmed.is_empty() || (trimmed.starts_with('#') && trimmed.len() < rest.len())).then_some(())
}

/// A single- or double-quoted string without escapes, and what follows it.
fn quoted(text: &str) -> Option<(&str, &str)> {
    let quote = text.as_bytes()[0] as char;
    let end = text[1..].find(quote)? + 1;
    let s = &text[1..end];
    let rest = &text[end + 1..];
    let escaped = if quote == '"' {
        s.contains('\\')
    } else {
        rest.starts_with('\'')
    };
    (!escaped).then_some((s, rest))
}

/// `[a, "b", 'c']` on one line.
fn flow_sequence(text: &str) -> Option<Value> {
    let mut items = Vec::new();
    let mut rest = text[1..].trim_start_matches(' ');
    if let Some(after) = rest.strip_prefix(']') {
        end_of_line(after)?;
        return Some(Value::Array(items));
    }
    loop {
        let after_item = match rest.as_bytes().first()? {
            b'"' | b'\'' => {
                let (s, after) = quoted(rest)?;
                items.push(Value::String(s.to_string()));
                after
            }
            _ => {
                let end = rest.find([',', ']'])?;
                let s = rest[..end].trim_end_matches(' ');
                if s.contains([':', '#', '[', '{', '}']) {
                    return None;
                }
                items.push(plain(s, true)?);
                &rest[end..]
            }
        };
        let after_item = after_item.trim_start_matches(' ');
        if let Some(after) = after_item.strip_prefix(']') {
            end_of_line(after)?;
            return Some(Value::Array(items));
        }
        rest = after_item.strip_prefix(',')?.trim_start_matches(' ');
        if rest.starts_with(']') {
            return None;
        }
    }
}

/// A plain scalar, typed as serde_yaml types it: null, bool, integer, float or string.
fn plain(s: &str, in_flow: bool) -> Option<Value> {
    let first = *s.as_bytes().first()?;
    let second = s.as_bytes().get(1).copied();
    let starts_indicator = matches!(
        first,
        b'?' | b':'
            | b','
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'#'
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'\''
            | b'"'
            | b'%'
            | b'@'
            | b'`'
    ) || (first == b'-' && matches!(second, None | Some(b' ')));
    if starts_indicator || s.contains(": ") || s.ends_with(':') || (in_flow && s.contains(',')) {
        return None;
    }
    if let Some(v) = null_or_bool(s) {
        return Some(v);
    }
    if definitely_string(s) {
        return Some(Value::String(s.to_string()));
    }
    if let Some(i) = decimal(s) {
        return Some(Value::Number(Number::from(i)));
    }
    // Anything that might be a number (`0x1F`, `1e3`, `.5`, `-.inf`, `017`…) is typed by the
    // general parser, in the same block context.
    super::type_plain_scalar(s, in_flow)
}

fn null_or_bool(s: &str) -> Option<Value> {
    match s {
        "~" | "null" | "Null" | "NULL" => Some(Value::Null),
        "true" | "True" | "TRUE" => Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => Some(Value::Bool(false)),
        _ => None,
    }
}

/// Text no YAML 1.2 number can be: numbers start with a digit, a sign or a dot (words like
/// `inf` or `nan` parse only to non-finite floats, which serde_yaml reads as strings); after a
/// leading digit, only hex digits, `x`, `o` and number punctuation can follow.
fn definitely_string(s: &str) -> bool {
    let b = s.as_bytes();
    match b[0] {
        b'0'..=b'9' => b.iter().any(|c| {
            c.is_ascii_alphabetic()
                && !c.is_ascii_hexdigit()
                && !matches!(c, b'x' | b'X' | b'o' | b'O')
        }),
        b'+' | b'-' => !matches!(b.get(1), Some(b'0'..=b'9' | b'.')),
        b'.' => s.starts_with("..."),
        _ => true,
    }
}

/// `0`, `42`, `-7`: decimal integers without leading zeros that fit an i64 for sure.
fn decimal(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let ok = digits == "0"
        || (!digits.is_empty()
            && digits.len() <= 18
            && !digits.starts_with('0')
            && digits.bytes().all(|c| c.is_ascii_digit()));
    if !ok || s == "-0" {
        return None;
    }
    s.parse().ok()
}
