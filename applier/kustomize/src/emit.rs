//! YAML output in kustomize's style (go-yaml v3 as used by kyaml): keys sorted (the JSON
//! map is ordered), block sequences at the parent key's indentation, multi-line strings as
//! literal blocks, and strings double-quoted whenever a YAML 1.1 or 1.2 reader could take
//! them for something else (`"on"`, `"0755"`, `"1.0"`, `"null"`, `"12:30"`…) — so the
//! output means the same to `kubectl apply` (YAML 1.1) as to the engine.

use crate::value::{Map, Value};

/// One document, without a `---` separator, ending in a newline.
pub fn document(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => map(m, 0, &mut out),
        Value::Array(a) if !a.is_empty() => seq(a, 0, &mut out),
        other => {
            scalar(other, 0, &mut out);
            out.push('\n');
        }
    }
    out
}

fn indent(n: usize, out: &mut String) {
    const SPACES: &str = "                                                                ";
    let mut n = n;
    while n > 0 {
        let k = n.min(SPACES.len());
        out.push_str(&SPACES[..k]);
        n -= k;
    }
}

fn map(m: &Map, ind: usize, out: &mut String) {
    // The map iterates in byte order; go-yaml's differs only around digits and non-letters,
    // so most maps are already in its order and are written without collecting them.
    let in_order = m
        .iter()
        .zip(m.iter().skip(1))
        .all(|((a, _), (b, _))| !go_key_less(b, a));
    if in_order {
        for (i, (k, v)) in m.iter().enumerate() {
            entry(i, k, v, ind, out);
        }
        return;
    }
    let mut sorted: Vec<(&String, &Value)> = m.iter().collect();
    sorted.sort_by(|a, b| {
        if go_key_less(a.0, b.0) {
            std::cmp::Ordering::Less
        } else if go_key_less(b.0, a.0) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    for (i, (k, v)) in sorted.into_iter().enumerate() {
        entry(i, k, v, ind, out);
    }
}

/// The `i`th entry of a map at `ind`.
fn entry(i: usize, k: &str, v: &Value, ind: usize, out: &mut String) {
    if i > 0 {
        indent(ind, out);
    }
    key(k, out);
    out.push(':');
    value_after_key(v, ind, out);
}

/// Writes what follows `key:` (or `- `), starting on the current line.
fn value_after_key(v: &Value, ind: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            indent(ind + 2, out);
            map(m, ind + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            indent(ind, out);
            seq(a, ind, out);
        }
        other => {
            out.push(' ');
            scalar(other, ind + 2, out);
            out.push('\n');
        }
    }
}

fn seq(a: &[Value], ind: usize, out: &mut String) {
    for (i, v) in a.iter().enumerate() {
        if i > 0 {
            indent(ind, out);
        }
        out.push('-');
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push(' ');
                map(m, ind + 2, out);
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push(' ');
                seq(inner, ind + 2, out);
            }
            other => {
                out.push(' ');
                scalar(other, ind + 2, out);
                out.push('\n');
            }
        }
    }
}

fn key(k: &str, out: &mut String) {
    // Most keys are identifiers: a letter, then letters, digits and `_-./`. Those are plain
    // unless they are one of the YAML 1.1 words (`on`, `y`, `null`…).
    let b = k.as_bytes();
    if b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'/'))
        && !is_typed_word(k)
    {
        out.push_str(k);
        return;
    }
    // Keys are go-yaml "simple keys": never folded, never block scalars.
    let a = Analysis::of(k);
    if !k.contains('\n') && a.block_plain && !looks_typed(k) {
        out.push_str(k);
    } else if !k.contains('\n') && a.single_quoted && !looks_typed(k) && !k.is_empty() {
        single_quoted(k, None, out);
    } else {
        double_quoted(k, None, out);
    }
}

/// Scalars and empty collections; `ind` is the indentation of continuation lines and of
/// block-scalar content.
fn scalar(v: &Value, ind: usize, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            use std::fmt::Write as _;
            write!(out, "{n}").expect("writing to a String cannot fail");
        }
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        Value::String(s) => string(s, ind, out),
    }
}

/// The order kustomize prints map keys in: go-yaml v2's `keyList.Less` (kustomize's output
/// goes through sigs.k8s.io/yaml): at the first difference a non-letter sorts before a
/// letter, and runs of digits compare as numbers (`item2` < `item02` < `item10`).
fn go_key_less(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        // Keys are nearly always ASCII: compare the bytes without collecting characters.
        return go_less(a.as_bytes(), b.as_bytes(), u8::is_ascii_alphabetic, |c| {
            c.is_ascii_digit().then(|| c - b'0')
        });
    }
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    go_less(
        &ar,
        &br,
        |c| c.is_alphabetic(),
        |c| c.is_ascii_digit().then(|| *c as u8 - b'0'),
    )
}

fn go_less<T: Copy + Ord>(
    ar: &[T],
    br: &[T],
    letter: impl Fn(&T) -> bool,
    digit: impl Fn(&T) -> Option<u8>,
) -> bool {
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let al = letter(&ar[i]);
        let bl = letter(&br[i]);
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let number = |r: &[T]| {
            let mut n: i64 = 0;
            let mut end = i;
            while let Some(d) = r.get(end).and_then(&digit) {
                n = n.saturating_mul(10).saturating_add(i64::from(d));
                end += 1;
            }
            (n, end)
        };
        let (an, ai) = number(ar);
        let (bn, bi) = number(br);
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

/// go-yaml v3's choice of style for a string value (`encoder.stringv`, then the emitter's
/// `select_scalar_style` on the scalar's analysis) and its writers, folding at
/// [`BEST_WIDTH`] like the emitter does.
fn string(s: &str, ind: usize, out: &mut String) {
    let a = Analysis::of(s);
    if s.contains('\n') {
        if a.block {
            literal(s, ind, out);
        } else {
            double_quoted(s, Some(ind), out);
        }
    } else if s.is_empty() || looks_typed(s) {
        double_quoted(s, Some(ind), out);
    } else if a.block_plain {
        plain(s, ind, out);
    } else if a.single_quoted {
        single_quoted(s, Some(ind), out);
    } else {
        double_quoted(s, Some(ind), out);
    }
}

/// go-yaml's emitter (`best_width`): a line is broken at the first single space found
/// once the column has passed this width.
const BEST_WIDTH: usize = 80;

/// The column (in characters) at the end of `out`.
fn column(out: &str) -> usize {
    let start = out.rfind('\n').map_or(0, |p| p + 1);
    let line = &out[start..];
    if line.is_ascii() {
        line.len()
    } else {
        line.chars().count()
    }
}

fn break_line(ind: usize, out: &mut String) -> usize {
    out.push('\n');
    indent(ind, out);
    ind
}

fn plain(s: &str, ind: usize, out: &mut String) {
    let mut col = column(out);
    if col + s.len() <= BEST_WIDTH + 1 {
        // No space can be past the width: the common case, written in one go.
        out.push_str(s);
        return;
    }
    // Copied in runs between the breaks; the column counts characters (a UTF-8
    // continuation byte adds none).
    let b = s.as_bytes();
    let (mut run, mut spaces) = (0, false);
    for (i, &c) in b.iter().enumerate() {
        if c == b' ' {
            if !spaces && col > BEST_WIDTH && b.get(i + 1) != Some(&b' ') {
                out.push_str(&s[run..i]);
                col = break_line(ind, out);
                run = i + 1;
            } else {
                col += 1;
            }
            spaces = true;
        } else {
            col += usize::from(c & 0xc0 != 0x80);
            spaces = false;
        }
    }
    out.push_str(&s[run..]);
}

/// `ind`: the indentation of continuation lines, `None` where lines may not break (keys).
fn single_quoted(s: &str, ind: Option<usize>, out: &mut String) {
    out.push('\'');
    let mut col = column(out);
    let b = s.as_bytes();
    let mut spaces = false;
    for (i, c) in s.char_indices() {
        if c == ' ' {
            if let Some(ind) = ind
                && !spaces
                && col > BEST_WIDTH
                && i > 0
                && i + 1 < s.len()
                && b.get(i + 1) != Some(&b' ')
            {
                col = break_line(ind, out);
            } else {
                out.push(' ');
                col += 1;
            }
            spaces = true;
        } else {
            if c == '\'' {
                out.push('\'');
                col += 1;
            }
            out.push(c);
            col += 1;
            spaces = false;
        }
    }
    out.push('\'');
}

/// `ind` as for [`single_quoted`].
fn double_quoted(s: &str, ind: Option<usize>, out: &mut String) {
    out.push('"');
    let mut col = column(out);
    let b = s.as_bytes();
    let mut spaces = false;
    for (i, c) in s.char_indices() {
        if !printable(c) || c == '\u{feff}' || is_break(c) || c == '"' || c == '\\' {
            let esc = match c {
                '\0' => "\\0".to_string(),
                '\u{7}' => "\\a".to_string(),
                '\u{8}' => "\\b".to_string(),
                '\t' => "\\t".to_string(),
                '\n' => "\\n".to_string(),
                '\u{b}' => "\\v".to_string(),
                '\u{c}' => "\\f".to_string(),
                '\r' => "\\r".to_string(),
                '\u{1b}' => "\\e".to_string(),
                '"' => "\\\"".to_string(),
                '\\' => "\\\\".to_string(),
                '\u{85}' => "\\N".to_string(),
                '\u{a0}' => "\\_".to_string(),
                '\u{2028}' => "\\L".to_string(),
                '\u{2029}' => "\\P".to_string(),
                c if (c as u32) <= 0xff => format!("\\x{:02X}", c as u32),
                c if (c as u32) <= 0xffff => format!("\\u{:04X}", c as u32),
                c => format!("\\U{:08X}", c as u32),
            };
            col += esc.len();
            out.push_str(&esc);
            spaces = false;
        } else if c == ' ' {
            if let Some(ind) = ind
                && !spaces
                && col > BEST_WIDTH
                && i > 0
                && i + 1 < s.len()
            {
                col = break_line(ind, out);
                if b.get(i + 1) == Some(&b' ') {
                    out.push('\\');
                    col += 1;
                }
            } else {
                out.push(' ');
                col += 1;
            }
            spaces = true;
        } else {
            out.push(c);
            col += 1;
            spaces = false;
        }
    }
    out.push('"');
}

/// A literal block (`|`), with go-yaml's indentation and chomping indicators.
fn literal(s: &str, ind: usize, out: &mut String) {
    out.push('|');
    if s.starts_with([' ', '\n']) {
        out.push('2');
    }
    let body = s.strip_suffix('\n');
    match body {
        None => out.push('-'),
        Some(b) if b.is_empty() || b.ends_with('\n') => out.push('+'),
        Some(_) => {}
    }
    let text = body.unwrap_or(s);
    for line in text.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            indent(ind, out);
            out.push_str(line);
        }
    }
}

/// go-yaml's `is_printable` (what may appear unescaped in a scalar).
fn printable(c: char) -> bool {
    matches!(c, '\n' | ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
        && c != '\u{feff}'
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// go-yaml's `yaml_emitter_analyze_scalar`: which styles can carry the string.
#[derive(Debug, PartialEq)]
struct Analysis {
    block_plain: bool,
    single_quoted: bool,
    block: bool,
}

impl Analysis {
    fn of(s: &str) -> Analysis {
        if let Some(indicators) = Self::simple_indicators(s) {
            return Analysis {
                block_plain: !indicators,
                single_quoted: true,
                block: true,
            };
        }
        Self::general(s)
    }

    fn general(s: &str) -> Analysis {
        let chars: Vec<char> = s.chars().collect();
        let blankz = |i: usize| {
            chars
                .get(i)
                .is_none_or(|&c| c == ' ' || c == '\t' || is_break(c))
        };
        let mut block_indicators = s.starts_with("---") || s.starts_with("...");
        let (mut special, mut tabs, mut line_breaks) = (false, false, false);
        let (mut leading_space, mut leading_break) = (false, false);
        let (mut trailing_space, mut trailing_break) = (false, false);
        let (mut break_space, mut space_break) = (false, false);
        let (mut prev_space, mut prev_break) = (false, false);
        let mut preceded_by_ws = true;
        let last = chars.len().saturating_sub(1);
        for (i, &c) in chars.iter().enumerate() {
            let followed_by_ws = blankz(i + 1);
            if i == 0 {
                if "#,[]{}&*!|>'\"%@`".contains(c)
                    || (matches!(c, '?' | ':' | '-') && followed_by_ws)
                {
                    block_indicators = true;
                }
            } else if (c == ':' && followed_by_ws) || (c == '#' && preceded_by_ws) {
                block_indicators = true;
            }
            if c == '\t' {
                tabs = true;
            } else if !printable(c) {
                special = true;
            }
            if is_break(c) {
                line_breaks = true;
            }
            if c == ' ' {
                leading_space |= i == 0;
                trailing_space |= i == last;
                break_space |= prev_break;
                prev_space = true;
                prev_break = false;
            } else if is_break(c) {
                leading_break |= i == 0;
                trailing_break |= i == last;
                space_break |= prev_space;
                prev_break = true;
                prev_space = false;
            } else {
                prev_space = false;
                prev_break = false;
            }
            preceded_by_ws = c == ' ' || c == '\t' || is_break(c);
        }
        let mut a = Analysis {
            block_plain: !s.is_empty(),
            single_quoted: true,
            block: true,
        };
        if leading_space
            || leading_break
            || trailing_space
            || trailing_break
            || line_breaks
            || block_indicators
        {
            a.block_plain = false;
        }
        if trailing_space {
            a.block = false;
        }
        if break_space {
            a.block_plain = false;
            a.single_quoted = false;
        }
        if space_break || tabs || special {
            a.block_plain = false;
            a.single_quoted = false;
            a.block = false;
        }
        a
    }

    /// For printable ASCII on one line that starts with a letter or digit and does not end
    /// in a space (most strings, descriptions included), the general analysis reduces to
    /// one question: is there an indicator, `: ` / a final `:` or ` #`? Every style can
    /// carry the string, and the plain one only without an indicator. `None`: anything else.
    fn simple_indicators(s: &str) -> Option<bool> {
        let b = s.as_bytes();
        if !b.first().is_some_and(u8::is_ascii_alphanumeric) || b.last() == Some(&b' ') {
            return None;
        }
        let (mut indicators, mut prev) = (false, 0u8);
        for &c in b {
            if !matches!(c, b' '..=b'~') {
                return None;
            }
            indicators |= (prev == b':' && c == b' ') || (prev == b' ' && c == b'#');
            prev = c;
        }
        Some(indicators || prev == b':')
    }
}

/// Is `s` one of the words a YAML 1.1 or 1.2 resolver reads as null, bool or a non-finite
/// float?
fn is_typed_word(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "null", "Null", "NULL", "~", "true", "True", "TRUE", "false", "False", "FALSE", "y", "Y",
        "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF",
        ".inf", ".Inf", ".INF", "-.inf", "-.Inf", "-.INF", "+.inf", "+.Inf", "+.INF", ".nan",
        ".NaN", ".NAN", "<<",
    ];
    s.len() <= 5 && WORDS.contains(&s)
}

/// Would a YAML 1.1 or 1.2 resolver read `s` as null, bool, number or timestamp?
fn looks_typed(s: &str) -> bool {
    if is_typed_word(s) {
        return true;
    }
    // Every other form below starts with a digit, a sign or a dot.
    if !s.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.')) {
        return false;
    }
    crate::yaml::is_typed_number(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    #[test]
    fn yaml_11_lookalikes_are_quoted() {
        let v = json!({"a": "on", "b": "0755", "c": "1.0", "d": "12:30", "e": "", "f": "plain text", "g": "-x", "h": "-1", "on": "k"});
        let out = document(&v);
        assert_eq!(
            out,
            "a: \"on\"\nb: \"0755\"\nc: \"1.0\"\nd: \"12:30\"\ne: \"\"\nf: plain text\ng: -x\nh: \"-1\"\n\"on\": k\n"
        );
    }

    #[test]
    fn kustomize_layout() {
        let v = json!({"data": {"f": "line1\nline2\n", "g": "x\n\ny"}, "spec": {"c": [{"name": "a", "p": [1, 2]}], "e": {}, "l": []}});
        assert_eq!(
            document(&v),
            "data:\n  f: |\n    line1\n    line2\n  g: |-\n    x\n\n    y\nspec:\n  c:\n  - name: a\n    p:\n    - 1\n    - 2\n  e: {}\n  l: []\n"
        );
    }

    #[test]
    fn output_reads_back_identically() {
        let v = json!({"s": ["on", "yes", " lead", "trail ", "a: b", "#c", "x\ty", "q\"uote", "multi\n line\n", "\u{1}", "é"], "n": 1.5, "b": false, "z": null});
        let back = crate::yaml::parse_documents(&document(&v)).expect("parses");
        assert_eq!(back[0], v);
    }

    #[test]
    fn the_short_analysis_agrees_with_the_general_one() {
        let alphabet = b"aZ9 :#-'\"?.,[]{}&*!|>%@`";
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..100_000 {
            let s: String = (0..next(12))
                .map(|_| alphabet[next(alphabet.len())] as char)
                .collect();
            if let Some(indicators) = Analysis::simple_indicators(&s) {
                let short = Analysis {
                    block_plain: !indicators,
                    single_quoted: true,
                    block: true,
                };
                assert_eq!(short, Analysis::general(&s), "{s:?}");
            }
        }
    }
}
