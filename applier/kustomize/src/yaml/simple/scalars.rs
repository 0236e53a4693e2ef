//! Scalars on one line of the fast path: plain (typed as serde_yaml types them), quoted (with
//! the common escapes) and one-line flow sequences.

use crate::value::{Map, Number, Value};

/// A scalar or flow sequence that fits on one line, with an optional trailing comment.
pub(super) fn inline_value(text: &str) -> Option<Value> {
    match text.as_bytes().first()? {
        b'"' | b'\'' => {
            let (s, rest) = quoted(text)?;
            end_of_line(rest)?;
            Some(Value::String(s))
        }
        b'[' => flow_sequence(text),
        b'{' => {
            let rest = text[1..].trim_start_matches(' ').strip_prefix('}')?;
            end_of_line(rest)?;
            Some(Value::Object(Map::new()))
        }
        _ => {
            let s = match find_pair(text, b' ', b'#') {
                Some(i) => text[..i].trim_end_matches(' '),
                None => text,
            };
            plain(s, false)
        }
    }
}

/// Where `a` followed by `b` first occurs in `s`: `s.find("ab")` without a substring
/// searcher, whose setup costs more than the search on one line.
pub(super) fn find_pair(s: &str, a: u8, b: u8) -> Option<usize> {
    s.as_bytes().windows(2).position(|w| w[0] == a && w[1] == b)
}

/// What may follow a value on its line: nothing, or a comment.
pub(super) fn end_of_line(rest: &str) -> Option<()> {
    let trimmed = rest.trim_start_matches(' ');
    (trimmed.is_empty() || (trimmed.starts_with('#') && trimmed.len() < rest.len())).then_some(())
}

/// A quoted string closed on this line, and what follows it.
pub(super) fn quoted(text: &str) -> Option<(String, &str)> {
    let seg = segment(text.as_bytes()[0], &text[1..])?;
    Some((seg.text, &text[1 + seg.end?..]))
}

/// One line's part of a quoted scalar.
pub(super) struct Segment {
    /// The text, escapes resolved.
    pub(super) text: String,
    /// The byte offset just after the closing quote; `None` when the scalar goes on (the text
    /// then lacks the unescaped spaces before the line break).
    pub(super) end: Option<usize>,
    /// The line ends in `\` (double quotes): the line break is not part of the text.
    pub(super) escaped_break: bool,
}

/// The text of a quoted scalar from `text` (just after the opening quote, or a continuation
/// line) up to its closing quote: `''` is a quote in single quotes; double quotes resolve the
/// common escapes (`None` for the rare ones, which the general parser reads).
pub(super) fn segment(quote: u8, text: &str) -> Option<Segment> {
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    if quote == b'\'' {
        while let Some(i) = text[from..].find('\'') {
            let at = from + i;
            out.push_str(&text[from..at]);
            if text[at + 1..].starts_with('\'') {
                out.push('\'');
                from = at + 2;
            } else {
                return Some(Segment {
                    text: out,
                    end: Some(at + 1),
                    escaped_break: false,
                });
            }
        }
        // Unescaped spaces before the line break are folded away, never content.
        out.push_str(text[from..].trim_end_matches(' '));
        return Some(Segment {
            text: out,
            end: None,
            escaped_break: false,
        });
    }
    while let Some(i) = text[from..].find(['"', '\\']) {
        let at = from + i;
        out.push_str(&text[from..at]);
        if text.as_bytes()[at] == b'"' {
            return Some(Segment {
                text: out,
                end: Some(at + 1),
                escaped_break: false,
            });
        }
        let Some(c) = text[at + 1..].chars().next() else {
            return Some(Segment {
                text: out,
                end: None,
                escaped_break: true,
            });
        };
        from = at + 1 + c.len_utf8();
        let hex = |n: usize| -> Option<char> {
            let digits = text.get(from..from + n)?;
            if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            char::from_u32(u32::from_str_radix(digits, 16).ok()?)
        };
        out.push(match c {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            '"' | '\\' | '/' | ' ' => c,
            'x' | 'u' => {
                let n = if c == 'x' { 2 } else { 4 };
                let ch = hex(n)?;
                from += n;
                ch
            }
            _ => return None,
        });
    }
    out.push_str(text[from..].trim_end_matches(' '));
    Some(Segment {
        text: out,
        end: None,
        escaped_break: false,
    })
}

/// `[a, "b", 'c']` on one line.
pub(super) fn flow_sequence(text: &str) -> Option<Value> {
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
                items.push(Value::String(s));
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
pub(super) fn plain(s: &str, in_flow: bool) -> Option<Value> {
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
    if starts_indicator
        || find_pair(s, b':', b' ').is_some()
        || s.ends_with(':')
        || (in_flow && s.contains(','))
    {
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
    crate::yaml::type_plain_scalar(s, in_flow)
}

pub(super) fn null_or_bool(s: &str) -> Option<Value> {
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
pub(super) fn definitely_string(s: &str) -> bool {
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
pub(super) fn decimal(s: &str) -> Option<i64> {
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
