//! YAML output in kustomize's style (go-yaml v3 as used by kyaml): keys sorted (the JSON
//! map is ordered), block sequences at the parent key's indentation, multi-line strings as
//! literal blocks, and strings double-quoted whenever a YAML 1.1 or 1.2 reader could take
//! them for something else (`"on"`, `"0755"`, `"1.0"`, `"null"`, `"12:30"`…) — so the
//! output means the same to `kubectl apply` (YAML 1.1) as to the engine.

use serde_json::{Map, Value};

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
    out.extend(std::iter::repeat_n(' ', n));
}

fn map(m: &Map<String, Value>, ind: usize, out: &mut String) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            indent(ind, out);
        }
        key(k, out);
        out.push(':');
        value_after_key(v, ind, out);
    }
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
    if k.contains('\n') {
        quoted(k, out);
    } else {
        string(k, 0, out);
    }
}

/// Scalars and empty collections; `ind` is the indentation of block-scalar content.
fn scalar(v: &Value, ind: usize, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        Value::String(s) => string(s, ind, out),
    }
}

fn string(s: &str, ind: usize, out: &mut String) {
    if s.contains('\n') && literal_ok(s) {
        let body = s.trim_end_matches('\n');
        let trailing = s.len() - body.len();
        out.push_str(match trailing {
            0 => "|-",
            1 => "|",
            _ => "|+",
        });
        for line in s[..s.len() - trailing.min(1)].split('\n') {
            out.push('\n');
            if !line.is_empty() {
                indent(ind, out);
                out.push_str(line);
            }
        }
        return;
    }
    if plain_ok(s) {
        out.push_str(s);
    } else if s.is_empty() || looks_typed(s) || s.chars().any(|c| c.is_control() || c == '\u{feff}')
    {
        quoted(s, out);
    } else {
        // go-yaml v3 single-quotes strings that only need quoting for syntax.
        out.push('\'');
        out.push_str(&s.replace('\'', "''"));
        out.push('\'');
    }
}

/// Literal blocks cannot start with a space (that would need an indentation indicator) and
/// cannot carry control characters or trailing spaces faithfully.
fn literal_ok(s: &str) -> bool {
    !s.starts_with([' ', '\t', '\n'])
        && !s
            .chars()
            .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{feff}')
        && !s.split('\n').any(|l| l.ends_with([' ', '\t']))
}

fn quoted(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || c == '\u{feff}' => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02X}"));
                } else {
                    out.push_str(&format!("\\u{n:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// May `s` be written as a plain scalar and read back as the same string by YAML 1.1 and 1.2?
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        // `-x`, `?x` and `:x` are plain in YAML, but numbers like -1 are caught below.
        let next = s.chars().nth(1);
        if !(matches!(first, '-' | '?' | ':') && next.is_some_and(|c| c != ' ')) {
            return false;
        }
        if s == "---" || s.starts_with("--- ") {
            return false;
        }
    }
    if s.starts_with([' ', '\t']) || s.ends_with([' ', '\t', ':']) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.contains(":\t") || s.contains("\t#") {
        return false;
    }
    if s.chars().any(|c| {
        c.is_control() || c == '\u{feff}' || c == '\u{85}' || c == '\u{2028}' || c == '\u{2029}'
    }) {
        return false;
    }
    !looks_typed(s)
}

/// Would a YAML 1.1 or 1.2 resolver read `s` as null, bool, number or timestamp?
fn looks_typed(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "null", "Null", "NULL", "~", "true", "True", "TRUE", "false", "False", "FALSE", "y", "Y",
        "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF",
        ".inf", ".Inf", ".INF", "-.inf", "-.Inf", "-.INF", "+.inf", "+.Inf", "+.INF", ".nan",
        ".NaN", ".NAN", "<<", "=",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    static TYPED: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    TYPED
        .get_or_init(|| {
            regex::Regex::new(concat!(
                r"^(?:",
                r"[-+]?0[xX][0-9a-fA-F_]+",
                r"|[-+]?0[oO]?[0-7_]+",
                r"|[-+]?0[bB][01_]+",
                r"|[-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?",
                r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?",
                r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?",
                r")$"
            ))
            .expect("static regex")
        })
        .is_match(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
