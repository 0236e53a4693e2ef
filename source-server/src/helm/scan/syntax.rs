//! Line-level pieces of the block-YAML subset the scanner recognises. Each answers "sure" or
//! "not sure" (`None`/`false`): the scanner gives up on anything it is not sure of, and the
//! general parser reads the index instead.

/// Bytes no YAML plain scalar or key may start with (flow, anchors, tags, aliases, comments,
/// directives, reserved and quote indicators; block scalars are handled before this check).
const INDICATORS: &[u8] = b"[]{},#&*!|>'\"%@`?:";

/// The number of leading spaces.
pub(super) fn indent(line: &[u8]) -> usize {
    line.iter().take_while(|&&b| b == b' ').count()
}

/// True when the line holds only bytes the scanner reads without a closer look: printable
/// ASCII. Lines with tabs, control characters or non-ASCII go through [`check_slow`].
pub(super) fn plain_ascii(line: &[u8]) -> bool {
    // A fold without early exit, so it vectorises; most index lines are short ASCII.
    !line
        .iter()
        .fold(false, |acc, &b| acc | !(0x20..0x7f).contains(&b))
}

/// What a line with non-printable-ASCII bytes may contain. `tabs_ok`: inside block scalar
/// content, where a tab is content.
pub(super) fn check_slow(line: &[u8], tabs_ok: bool) -> bool {
    let Ok(text) = std::str::from_utf8(line) else {
        return false;
    };
    text.chars().all(|c| match c {
        '\t' => tabs_ok,
        // C0 controls, DEL, C1 controls (NEL is a line break in YAML 1.1), line and paragraph
        // separators, BOM, non-characters: parsers disagree or refuse; let the general one say.
        '\0'..='\x1f' | '\x7f'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' => false,
        '\u{fffe}' | '\u{ffff}' => false,
        _ => true,
    })
}

/// A sequence entry line (`- …` or a lone `-`).
pub(super) fn is_seq_item(text: &[u8]) -> bool {
    text.first() == Some(&b'-') && matches!(text.get(1), None | Some(b' '))
}

/// Where `text` is `key: …` or `key:`: the key's end (the colon). A line starting with a quote
/// is a quoted scalar or a quoted key, never a key here (quoted keys are not recognised).
pub(super) fn key_colon(text: &[u8]) -> Option<usize> {
    if matches!(text.first(), Some(b'"' | b'\'')) {
        return None;
    }
    memchr::memchr_iter(b':', text).find(|&i| matches!(text.get(i + 1), None | Some(b' ')))
}

/// A key the scanner is sure is the same string to every YAML parser: plain, not a number,
/// boolean, null or merge key, no comment, no flow characters, no surrounding spaces, and
/// shorter than YAML's 1024-character limit on implicit keys.
pub(super) fn safe_key(key: &[u8]) -> bool {
    let (Some(&first), Some(&last)) = (key.first(), key.last()) else {
        return false;
    };
    key.len() < 1000
        && !INDICATORS.contains(&first)
        && first != b'-'
        && first != b'<'
        && last != b' '
        && !key.iter().any(|b| b"[]{},".contains(b))
        && !colon_space_or_comment(key)
        && !maybe_not_string(key)
}

/// True when a plain scalar could resolve to something other than a string (null, boolean,
/// integer, float, sexagesimal, timestamp-like) in YAML 1.1 or 1.2. Errs on the side of true.
pub(super) fn maybe_not_string(s: &[u8]) -> bool {
    const WORDS: &[&[u8]] = &[
        b"~", b"null", b"true", b"false", b"yes", b"no", b"on", b"off", b"y", b"n", b".inf",
        b"+.inf", b"-.inf", b".nan",
    ];
    if s.is_empty() || WORDS.iter().any(|w| w.eq_ignore_ascii_case(s)) {
        return true;
    }
    let t = match s.first() {
        Some(b'+' | b'-') => &s[1..],
        _ => s,
    };
    if t.len() > 2 && t[0] == b'0' {
        let digits = &t[2..];
        let radix = match t[1] {
            b'x' | b'X' => digits.iter().all(|b| b.is_ascii_hexdigit() || *b == b'_'),
            b'o' | b'O' => digits.iter().all(|b| matches!(b, b'0'..=b'7' | b'_')),
            b'b' | b'B' => digits.iter().all(|b| matches!(b, b'0' | b'1' | b'_')),
            _ => false,
        };
        if radix {
            return true;
        }
    }
    // Integers, floats (one dot, one exponent), sexagesimal and date-like: digits with `_ . : -`
    // and at most one exponent marker followed only by a sign and digits.
    let (mantissa, exponent) = match t.iter().position(|b| matches!(b, b'e' | b'E')) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e
            .strip_prefix(b"+")
            .or_else(|| e.strip_prefix(b"-"))
            .unwrap_or(e);
        !e.is_empty() && e.iter().all(u8::is_ascii_digit)
    });
    mantissa
        .first()
        .is_some_and(|b| b.is_ascii_digit() || *b == b'.')
        && mantissa
            .iter()
            .all(|b| b.is_ascii_digit() || b"_.:-".contains(b))
        && mantissa.iter().filter(|&&b| b == b'.').count() <= 1
        && exponent_ok
}

/// A plain scalar (value or sequence entry) on one line: the text without trailing spaces,
/// or `None` when it is not one the scanner is sure of (indicators, `: `, comments).
pub(super) fn plain(text: &[u8]) -> Option<&[u8]> {
    let text = trim_end(text);
    let &first = text.first()?;
    if INDICATORS.contains(&first) || (first == b'-' && matches!(text.get(1), None | Some(b' '))) {
        return None;
    }
    if text.ends_with(b":") || colon_space_or_comment(text) {
        return None;
    }
    Some(text)
}

/// `: ` (a mapping indicator) or ` #` (a comment) in `text`.
fn colon_space_or_comment(text: &[u8]) -> bool {
    memchr::memchr2_iter(b':', b'#', text).any(|i| match text[i] {
        b':' => text.get(i + 1) == Some(&b' '),
        _ => i > 0 && text[i - 1] == b' ',
    })
}

/// A continuation line of a multi-line plain scalar the scanner is sure of.
pub(super) fn plain_continuation(text: &[u8]) -> bool {
    plain(text).is_some()
}

pub(super) fn trim_end(text: &[u8]) -> &[u8] {
    let n = text.iter().rev().take_while(|&&b| b == b' ').count();
    &text[..text.len() - n]
}

/// A quoted scalar starting at `text[0]` (`"` or `'`): the index of the closing quote on this
/// line, or `None` when it continues on the next line.
pub(super) fn quote_end(text: &[u8], from: usize, double: bool) -> Option<usize> {
    let mut i = from;
    while i < text.len() {
        match (text[i], double) {
            (b'\\', true) => i += 2,
            (b'"', true) => return Some(i),
            (b'\'', false) if text.get(i + 1) == Some(&b'\'') => i += 2,
            (b'\'', false) => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The value of a one-line quoted scalar `text[..=end]`, when the scanner is sure of it:
/// single quotes with `''`, double quotes without escapes.
pub(super) fn unquote(text: &[u8], end: usize) -> Option<String> {
    let inner = std::str::from_utf8(&text[1..end]).ok()?;
    match text[0] {
        b'"' if inner.contains('\\') => None,
        b'"' => Some(inner.to_string()),
        _ => Some(inner.replace("''", "'")),
    }
}

/// A block scalar header (`|`, `>`, with an optional chomping indicator; explicit indentation
/// indicators are left to the general parser).
pub(super) fn block_header(text: &[u8]) -> bool {
    matches!(trim_end(text), b"|" | b"|-" | b"|+" | b">" | b">-" | b">+")
}

/// An empty flow collection, the only flow style the scanner recognises (`helm repo index`
/// writes `entries: {}` for an empty repository).
pub(super) fn empty_flow(text: &[u8]) -> Option<bool> {
    match trim_end(text) {
        b"{}" => Some(true),
        b"[]" => Some(false),
        _ => None,
    }
}

/// FNV-1a, to detect duplicate keys (a collision is taken for a duplicate: the general parser
/// then decides).
pub(super) fn hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_that_may_not_be_strings_are_recognised() {
        for s in [
            "1",
            "-1",
            "1.0",
            "1e3",
            "0x1F",
            "0o17",
            "1:20",
            "2024-01-01",
            "1_000",
            ".5",
            "~",
            "Null",
            "TRUE",
            "yes",
            "Off",
            ".NaN",
            "-.inf",
        ] {
            assert!(maybe_not_string(s.as_bytes()), "{s}");
        }
        for s in [
            "1.2.3",
            "1.0.0-rc.1",
            "2.x.x",
            "1password",
            "app",
            "v1",
            "2024-01-01T00:00:00Z",
            "0bd64397ab31f6c0",
            "0x1g",
            "39e3530e1",
            "12e",
        ] {
            assert!(!maybe_not_string(s.as_bytes()), "{s}");
        }
    }

    #[test]
    fn keys_plain_scalars_and_quotes() {
        assert_eq!(key_colon(b"name: app"), Some(4));
        assert_eq!(key_colon(b"url: https://x:8080/a"), Some(3));
        assert_eq!(key_colon(b"https://x"), None);
        assert_eq!(key_colon(b"\"a\": b"), None);
        assert!(safe_key(b"artifacthub.io/images"));
        assert!(!safe_key(b"<<") && !safe_key(b"true") && !safe_key(b"a #b") && !safe_key(b"1"));
        assert_eq!(plain(b"v1  "), Some(&b"v1"[..]));
        assert_eq!(plain(b"a: b"), None);
        assert_eq!(plain(b"a #b"), None);
        assert_eq!(plain(b"- a"), None);
        assert_eq!(plain(b"-1"), Some(&b"-1"[..]));
        assert_eq!(plain(b"*alias"), None);
        assert_eq!(quote_end(b"'it''s' x", 1, false), Some(6));
        assert_eq!(quote_end(b"\"a\\\"b\"", 1, true), Some(5));
        assert_eq!(quote_end(b"'open", 1, false), None);
        assert_eq!(unquote(b"'it''s'", 6).as_deref(), Some("it's"));
        assert_eq!(unquote(b"\"a\\nb\"", 5), None);
    }
}
