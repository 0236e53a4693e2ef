//! A fast path for the YAML manifests are almost always written in: block mappings and
//! sequences, one-line plain or quoted scalars, one-line flow sequences of scalars, literal and
//! folded block scalars, plain scalars folded over several lines (as CRD generators write
//! descriptions), comments and `---` separators. It builds the JSON tree straight from the
//! lines, several times faster than the general parser (libyaml's events, then serde_yaml's
//! `Value`, then JSON), which was most of the cost of rendering a large kustomization.
//!
//! Anything outside that subset — anchors, aliases, tags, block scalars with an indentation
//! indicator or leading empty lines, folded scalars with more-indented lines, multi-line quoted
//! scalars, escapes, flow mappings, merge keys, duplicate keys, non-printable or line-breaking
//! Unicode, tabs, directives — returns `None` and the general parser takes the whole file, so
//! errors are always the general parser's. Where it returns `Some`, the result is exactly the general parser's, scalar types
//! included (the YAML 1.2 core schema as serde_yaml resolves it): `tests/yaml_fast_path.rs` and
//! the `yaml_fast_path` fuzz body compare the two.

mod scalars;

use crate::value::{Map, Value};

use self::scalars::{
    definitely_string, end_of_line, find_pair, inline_value, null_or_bool, plain, segment,
};
use super::MAX_DOCUMENTS;

/// Deeper nesting goes to the general parser (whose own limit is 128).
const MAX_DEPTH: usize = 64;

/// A content line: indentation and the text after it, trailing spaces removed, and where it is
/// among the document's raw lines (block scalars read those, blank lines and `#` included).
#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    text: &'a str,
    raw: usize,
}

/// The non-empty documents of `input`, or `None` when it is not in the simple subset.
pub fn parse(input: &str) -> Option<Vec<Value>> {
    if !printable(input) {
        return None;
    }
    let mut docs = Vec::new();
    let mut raw: Vec<&str> = Vec::new();
    // The text after the last line break is a line only when it is not empty; a block scalar
    // that ends there has no final line break to keep.
    let unbroken = !input.is_empty() && !input.ends_with('\n');
    let body = input.strip_suffix('\n').unwrap_or(input);
    for line in body.split('\n') {
        if let Some(rest) = line.strip_prefix("---")
            && (rest.is_empty() || rest.starts_with(' '))
        {
            let rest = rest.trim_start_matches(' ');
            if !rest.is_empty() && !rest.starts_with('#') {
                return None;
            }
            push_document(&mut docs, std::mem::take(&mut raw), false)?;
            continue;
        }
        if line.starts_with("...") || line.starts_with('%') {
            return None;
        }
        raw.push(line);
    }
    push_document(&mut docs, raw, unbroken)?;
    Some(docs)
}

/// Text libyaml reads as we do: no control characters but the line feed (tabs, CR and DEL
/// included), and none of the characters YAML takes for line breaks or byte-order marks
/// (NEL, U+2028, U+2029, U+FEFF) or refuses as non-printable (C1 controls, U+FFFE, U+FFFF).
fn printable(input: &str) -> bool {
    if input.bytes().any(|b| (b < 0x20 && b != b'\n') || b == 0x7f) {
        return false;
    }
    input.is_ascii()
        || !input.chars().any(|c| {
            matches!(
                c,
                '\u{80}'
                    ..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
            )
        })
}

/// `unbroken`: the document's last raw line has no line break after it.
fn push_document(docs: &mut Vec<Value>, raw: Vec<&str>, unbroken: bool) -> Option<()> {
    let mut lines = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let text = r.trim_end_matches(' ');
        let content = text.trim_start_matches(' ');
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        lines.push(Line {
            indent: text.len() - content.len(),
            text: content,
            raw: i,
        });
    }
    if lines.is_empty() {
        return Some(());
    }
    let unbroken = unbroken.then(|| raw.len() - 1);
    let mut p = Parser {
        raw,
        lines,
        pos: 0,
        unbroken,
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
    raw: Vec<&'a str>,
    lines: Vec<Line<'a>>,
    pos: usize,
    /// The raw line that ends the input without a line break, if any.
    unbroken: Option<usize>,
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
        let mut entries = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let (key, rest) = split_key(line.text)?;
            self.pos += 1;
            let value = if let Some(style) = BlockStyle::of(rest) {
                self.block_scalar(style, indent, line.raw)?
            } else if rest.is_empty() {
                match self.peek() {
                    // A scalar on the line after its key.
                    Some(next)
                        if next.indent > indent
                            && !is_item(next.text)
                            && split_key(next.text).is_none() =>
                    {
                        self.pos += 1;
                        self.one_line(next.text, indent, next.raw)?
                    }
                    Some(next) if next.indent > indent => self.node(next.indent, depth + 1)?,
                    // `key:` followed by `- item` at the key's own indentation.
                    Some(next) if next.indent == indent && is_item(next.text) => {
                        self.sequence(indent, depth + 1)?
                    }
                    _ => Value::Null,
                }
            } else {
                self.one_line(rest, indent, line.raw)?
            };
            entries.push((key.to_string(), value));
        }
        Map::from_unique(entries).map(Value::Object)
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
                    raw: line.raw,
                };
                items.push(self.mapping(column, depth + 1)?);
            } else if let Some(style) = BlockStyle::of(rest) {
                self.pos += 1;
                items.push(self.block_scalar(style, indent, line.raw)?);
            } else {
                self.pos += 1;
                items.push(self.one_line(rest, indent, line.raw)?);
            }
        }
        items.shrink_to_fit();
        Some(Value::Array(items))
    }

    /// A value on its line, or a plain scalar continued on more indented lines.
    fn one_line(&mut self, text: &str, indent: usize, raw: usize) -> Option<Value> {
        if let Some(&q @ (b'\'' | b'"')) = text.as_bytes().first()
            && segment(q, &text[1..])?.end.is_none()
        {
            // The line's trailing spaces are gone from `text`: after a backslash they may have
            // been an escaped space (`\ `), not an escaped line break.
            if q == b'"' && text.ends_with('\\') && self.raw[raw].ends_with(' ') {
                return None;
            }
            return self.multi_line_quoted(q, &text[1..], indent, raw);
        }
        if self.peek().is_some_and(|next| next.indent > indent) {
            return self.multi_line_plain(text, indent, raw);
        }
        inline_value(text)
    }

    /// A quoted scalar opened on raw line `raw` (`open` is the text after the quote) and
    /// closed on a later line indented more than `parent`: lines trimmed and folded as a
    /// plain scalar's (a space, or a line break per empty line), except after an escaped
    /// line break.
    fn multi_line_quoted(&mut self, q: u8, open: &str, parent: usize, raw: usize) -> Option<Value> {
        let first = segment(q, open)?;
        let mut escaped_break = first.escaped_break;
        let mut out = first.text;
        let mut empty = 0;
        for (i, line) in self.raw.iter().enumerate().skip(raw + 1) {
            let text = line.trim_start_matches(' ');
            if text.trim_end_matches(' ').is_empty() {
                empty += 1;
                continue;
            }
            if line.len() - text.len() <= parent {
                return None;
            }
            match (escaped_break, empty) {
                (true, 0) => {}
                (true, _) => return None,
                (false, 0) => out.push(' '),
                (false, n) => out.extend(std::iter::repeat_n('\n', n)),
            }
            empty = 0;
            let seg = segment(q, text)?;
            if let Some(end) = seg.end {
                out.push_str(&seg.text);
                end_of_line(&text[end..])?;
                self.skip_to(i + 1);
                // Nothing may continue it.
                if self.peek().is_some_and(|next| next.indent > parent) {
                    return None;
                }
                return Some(Value::String(out));
            }
            escaped_break = seg.escaped_break;
            out.push_str(&seg.text);
        }
        None
    }

    /// A plain scalar whose first line is `first` (on raw line `raw`) continued on the lines
    /// indented more than `parent`: trimmed lines joined by a space, each empty line between
    /// them a line break. Lines that would end it early or make it a key (a comment, `: `, a
    /// trailing `:`) go to the general parser, as do values that would not be strings.
    fn multi_line_plain(&mut self, first: &str, parent: usize, raw: usize) -> Option<Value> {
        if find_pair(first, b' ', b'#').is_some()
            || !matches!(plain(first, false)?, Value::String(_))
        {
            return None;
        }
        let mut out = first.to_string();
        let mut empty = 0;
        let mut stop = self.raw.len();
        for (i, line) in self.raw.iter().enumerate().skip(raw + 1) {
            let text = line.trim_matches(' ');
            if text.is_empty() {
                empty += 1;
                continue;
            }
            if line.len() - line.trim_start_matches(' ').len() <= parent {
                stop = i;
                break;
            }
            if text.starts_with('#')
                || find_pair(text, b' ', b'#').is_some()
                || find_pair(text, b':', b' ').is_some()
                || text.ends_with(':')
            {
                return None;
            }
            if empty == 0 {
                out.push(' ');
            } else {
                out.extend(std::iter::repeat_n('\n', empty));
            }
            empty = 0;
            out.push_str(text);
        }
        self.skip_to(stop);
        let typed = null_or_bool(&out).is_some() || !definitely_string(&out);
        (!typed).then_some(Value::String(out))
    }

    /// A literal or folded block scalar whose header is on raw line `raw`, under a node at
    /// `parent`. The content indentation is its first line's; anything YAML would read with
    /// more care (leading empty lines, whitespace-only lines longer than the indentation,
    /// more-indented lines in a folded scalar, a less-indented line that does not end it)
    /// goes to the general parser.
    fn block_scalar(&mut self, style: BlockStyle, parent: usize, raw: usize) -> Option<Value> {
        let mut out = String::new();
        let mut content: Option<usize> = None;
        let mut empty = 0;
        let mut stop = self.raw.len();
        for (i, line) in self.raw.iter().enumerate().skip(raw + 1) {
            let indent = line.len() - line.trim_start_matches(' ').len();
            if indent == line.len() {
                if self.unbroken == Some(i) {
                    return None;
                }
                match content {
                    Some(ci) if line.len() <= ci => empty += 1,
                    _ => return None,
                }
                continue;
            }
            let ci = match content {
                Some(ci) => ci,
                None if indent <= parent => {
                    stop = i;
                    break;
                }
                None => *content.insert(indent),
            };
            if indent < ci {
                if indent > parent {
                    return None;
                }
                stop = i;
                break;
            }
            if style.folded {
                if indent > ci {
                    return None;
                }
                if !out.is_empty() {
                    if empty == 0 {
                        out.push(' ');
                    } else {
                        out.extend(std::iter::repeat_n('\n', empty));
                    }
                }
            } else {
                out.extend(std::iter::repeat_n('\n', empty));
            }
            empty = 0;
            out.push_str(&line[ci..]);
            if !style.folded {
                out.push('\n');
            }
            if self.unbroken == Some(i) {
                // The input ends on this line: no line break to keep or clip.
                if !style.folded {
                    out.pop();
                }
                self.skip_to(stop);
                return Some(Value::String(out));
            }
        }
        self.skip_to(stop);
        if content.is_some() {
            if style.folded {
                out.push('\n');
            }
            match style.chomp {
                Chomp::Strip => {
                    out.pop();
                }
                Chomp::Clip => {}
                Chomp::Keep => out.extend(std::iter::repeat_n('\n', empty)),
            }
        }
        Some(Value::String(out))
    }

    /// Moves past the content lines before raw line `stop` (read by a multi-line scalar).
    fn skip_to(&mut self, stop: usize) {
        while self.peek().is_some_and(|l| l.raw < stop) {
            self.pos += 1;
        }
    }
}

/// How a block scalar's final line breaks are kept (`-` strips, `+` keeps, none clips to one).
#[derive(Clone, Copy)]
enum Chomp {
    Strip,
    Clip,
    Keep,
}

/// A block scalar header without an indentation indicator or comment: `|`, `>-`, `|+`…
#[derive(Clone, Copy)]
struct BlockStyle {
    folded: bool,
    chomp: Chomp,
}

impl BlockStyle {
    fn of(rest: &str) -> Option<Self> {
        let (folded, chomp) = match rest {
            "|" => (false, Chomp::Clip),
            "|-" => (false, Chomp::Strip),
            "|+" => (false, Chomp::Keep),
            ">" => (true, Chomp::Clip),
            ">-" => (true, Chomp::Strip),
            ">+" => (true, Chomp::Keep),
            _ => return None,
        };
        Some(BlockStyle { folded, chomp })
    }
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// `key: rest` or `key:` with a plain key that the general parser also reads as that string.
fn split_key(text: &str) -> Option<(&str, &str)> {
    if let Some(&q @ (b'"' | b'\'')) = text.as_bytes().first() {
        // A quoted key without escapes: `"helm.sh/resource-policy": keep`.
        let end = text[1..].find(q as char)? + 1;
        let key = &text[1..end];
        let after = text[end + 1..].strip_prefix(':')?;
        if key.contains('\\') || !(after.is_empty() || after.starts_with(' ')) {
            return None;
        }
        return Some((key, value_text(after)));
    }
    // The key runs to the first byte that cannot be in one, which must be its colon (an
    // earlier `: ` would have to follow a byte no key holds).
    let key_char =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/' | b'$');
    let bytes = text.as_bytes();
    let colon = bytes.iter().position(|&b| !key_char(b))?;
    if bytes[colon] != b':' || !matches!(bytes.get(colon + 1), None | Some(b' ')) {
        return None;
    }
    let key = &text[..colon];
    let first = *bytes.first()?;
    if !(first.is_ascii_alphabetic() || first == b'_' || first == b'$') {
        return None;
    }
    if null_or_bool(key).is_some() {
        return None;
    }
    Some((key, value_text(&text[colon + 1..])))
}

/// What follows `key:`, a comment after it being no value.
fn value_text(after: &str) -> &str {
    let rest = after.trim_start_matches(' ');
    if rest.starts_with('#') { "" } else { rest }
}
