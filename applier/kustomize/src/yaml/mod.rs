//! YAML in and out. Input: multi-document streams, anchors and merge keys resolved, scalar
//! map keys stringified, `kind: List` expanded into its items (as kustomize does). Output:
//! documents separated by `---`, keys sorted — the style `kustomize build` prints.
//!
//! Parsing tries [`simple`] first, a fast path for the block-style YAML manifests are written
//! in, and falls back to serde_yaml (libyaml) for everything else.

mod lexical;
pub(crate) use lexical::is_typed_number;
pub mod simple;

/// The same entry points on `serde_json` values, for the agent (Helm values and manifests,
/// plain directories, post-rendering), which works on `serde_json` trees.
pub mod json {
    use serde_json::Value;

    fn all(docs: Vec<super::Value>) -> Vec<Value> {
        docs.into_iter().map(Value::from).collect()
    }

    /// [`super::parse_documents`].
    pub fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
        super::parse_documents(text).map(all)
    }

    /// [`super::parse_objects`].
    pub fn parse_objects(text: &str) -> Result<Vec<Value>, String> {
        super::parse_objects(text).map(all)
    }

    /// [`super::parse_documents_yaml11`].
    pub fn parse_documents_yaml11(text: &str) -> Result<Vec<Value>, String> {
        super::parse_documents_yaml11(text).map(all)
    }

    /// [`super::parse_objects_yaml11`].
    pub fn parse_objects_yaml11(text: &str) -> Result<Vec<Value>, String> {
        super::parse_objects_yaml11(text).map(all)
    }

    /// [`super::to_yaml`].
    pub fn to_yaml(v: &Value) -> String {
        super::to_yaml(&v.clone().into())
    }

    /// [`super::to_yaml_stream`].
    pub fn to_yaml_stream<'a>(objs: impl IntoIterator<Item = &'a Value>) -> String {
        let objs: Vec<super::Value> = objs.into_iter().map(|v| v.clone().into()).collect();
        super::to_yaml_stream(&objs)
    }
}

use crate::value::{Map, Number, Value};
use serde::Deserialize;

/// Bounds work on hostile input: documents per file.
pub const MAX_DOCUMENTS: usize = 100_000;

/// Parses every non-empty document of a YAML stream.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    match simple::parse(text) {
        Some(docs) => Ok(docs),
        None => parse_documents_general(text),
    }
}

/// [`parse_objects`] for a `resources:` file: the objects' annotations as kustomize reads
/// them ([`quote_annotations`]). Not for patches, where a null annotation deletes one.
pub fn parse_resources(text: String) -> Result<Vec<Value>, String> {
    let quoted = match quote_annotations(&text) {
        std::borrow::Cow::Owned(q) => Some(q),
        std::borrow::Cow::Borrowed(_) => None,
    };
    match quoted {
        // The file as read is not needed any more: a big CRD file is not held twice.
        Some(q) => {
            drop(text);
            parse_objects(&q)
        }
        None => parse_objects(&text),
    }
}

/// kustomize reads an object's `metadata.annotations` as `map[string]string` from the YAML
/// nodes' text: a plain `createdAt:` is `""`, `null` is `"null"`, `0755` is `"0755"`, `True`
/// is `"True"` — the text as written, where a typed value would print `null`, `493`, `true`.
/// So, before parsing, the plain scalar values of a document's top-level
/// `metadata.annotations` block are quoted as written. Values in other styles (quoted, block,
/// flow), plain scalars continued on the next line, and every other map are left alone.
fn quote_annotations(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("annotations:") {
        return std::borrow::Cow::Borrowed(text);
    }
    // Compiled at the first annotation entry (most files have none; a small build is a
    // new process each time).
    static ENTRY: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let entry = || {
        ENTRY.get_or_init(|| {
            regex::Regex::new(
                r"^( +)([^\s#'\x22][^#]*?|'[^']*'|\x22[^\x22]*\x22):(?: +([^\s#].*?))?( +#.*)? *$",
            )
            .expect("static regex")
        })
    };
    // `^( +)annotations: *(?:#.*)?$`: the indentation of an `annotations:` line.
    let opener = |body: &str| {
        let n = body.len() - body.trim_start_matches(' ').len();
        let rest = body[n..]
            .strip_prefix("annotations:")?
            .trim_start_matches(' ');
        (n > 0 && (rest.is_empty() || rest.starts_with('#'))).then_some(n)
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let indent_of = |l: &str| l.len() - l.trim_start_matches(' ').len();
    // Copied only from the first quoted value on (most files need none).
    let mut out = String::new();
    let mut changed = false;
    let mut offset = 0;
    // Inside a top-level `metadata:` block; inside its `annotations:` (entries' indent).
    let mut in_metadata = false;
    let mut annotations: Option<(usize, Option<usize>)> = None;
    for (i, line) in lines.iter().enumerate() {
        let line_start = offset;
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let blank = body.trim().is_empty() || body.trim_start().starts_with('#');
        let indent = indent_of(body);
        if !blank && indent == 0 {
            in_metadata = body.starts_with("metadata:") && body[9..].trim().is_empty();
            annotations = None;
        }
        if let Some((opened, entries)) = annotations
            && !blank
        {
            if indent <= opened {
                annotations = None;
            } else {
                let at = entries.unwrap_or(indent);
                annotations = Some((opened, Some(at)));
                if indent == at
                    && let Some(c) = entry().captures(body)
                {
                    let next_indent = lines[i + 1..]
                        .iter()
                        .map(|l| l.trim_end_matches(['\n', '\r']))
                        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                        .map(indent_of);
                    let continued = next_indent.is_some_and(|n| n > indent);
                    let value = c.get(3).map_or("", |m| m.as_str());
                    let plain = !value.starts_with(['\'', '"', '|', '>', '[', '{', '&', '*', '!']);
                    if plain && !continued {
                        if !changed {
                            changed = true;
                            out.reserve(text.len() + 64);
                            out.push_str(&text[..line_start]);
                        }
                        out.push_str(&c[1]);
                        out.push_str(&c[2]);
                        out.push_str(": '");
                        out.push_str(&value.replace('\'', "''"));
                        out.push('\'');
                        out.push_str(c.get(4).map_or("", |m| m.as_str()));
                        out.push_str(&line[body.len()..]);
                        continue;
                    }
                }
                if changed {
                    out.push_str(line);
                }
                continue;
            }
        }
        if in_metadata && let Some(n) = opener(body) {
            annotations = Some((n, None));
        }
        if changed {
            out.push_str(line);
        }
    }
    if changed {
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// [`parse_documents`] without the fast path: serde_yaml for the whole stream.
pub fn parse_documents_general(text: &str) -> Result<Vec<Value>, String> {
    parse_serde_yaml(&go_octals(text))
}

/// serde_yaml alone (without [`go_octals`]: flow collections are not respelled).
fn parse_serde_yaml(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        if i >= MAX_DOCUMENTS {
            return Err(format!("more than {MAX_DOCUMENTS} documents"));
        }
        let mut v = serde_yaml::Value::deserialize(doc).map_err(|e| e.to_string())?;
        v.apply_merge().map_err(|e| e.to_string())?;
        let v = to_json(v)?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// go-yaml v3 (kustomize's parser) types plain scalars as YAML 1.1 did: `0755` is the octal
/// integer 493, `08` the number 8, `1_000` is 1000 ([`go_number`]); serde_yaml (YAML 1.2)
/// reads those as strings, and its values no longer tell a plain scalar from a quoted one. So,
/// before parsing, such plain values — after `key: ` or `- `, or inside a one-line flow
/// collection — are respelled in decimal, which both read as the same number. Quoted values,
/// keys and block-scalar text are left alone.
fn go_octals(text: &str) -> std::borrow::Cow<'_, str> {
    // Only numbers are rewritten.
    if !text.bytes().any(|b| b.is_ascii_digit()) {
        return std::borrow::Cow::Borrowed(text);
    }
    static RE: std::sync::OnceLock<(regex::Regex, regex::Regex)> = std::sync::OnceLock::new();
    let (value, flow) = RE.get_or_init(|| {
        (
            regex::Regex::new(&format!(
                r"^({VALUE_PREFIX})([-+]?[0-9][0-9A-Za-z_.+-]*)( *(?:#.*)?)$"
            ))
            .expect("static regex"),
            regex::Regex::new(&format!(r"^((?:{VALUE_PREFIX})?)([\[{{].*)$"))
                .expect("static regex"),
        )
    });
    respell_lines(text, |body| {
        if let Some(c) = value.captures(body) {
            go_number(&c[2]).map(|n| format!("{}{n}{}", &c[1], &c[3]))
        } else if let Some(c) = flow.captures(body) {
            respell_flow(&c[2], go_number).map(|f| format!("{}{f}", &c[1]))
        } else {
            None
        }
    })
}

/// What stands before a block-context value: `key: `, `- key: `, or `- ` items.
const VALUE_PREFIX: &str = r"\s*(?:(?:- +)*[^\s#\-?\[{][^#]*?: +|(?:- +)+)";

/// Passes every line outside block scalars and comments to `respell`, which returns the line's
/// replacement or `None` to keep it.
fn respell_lines(
    text: &str,
    respell: impl Fn(&str) -> Option<String>,
) -> std::borrow::Cow<'_, str> {
    static BLOCK: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let block = BLOCK.get_or_init(|| {
        regex::Regex::new(r"(?:^|[:-] +)[|>][-+0-9]*\s*(?:#.*)?$").expect("static regex")
    });
    let mut out = String::with_capacity(text.len() + 16);
    let mut changed = false;
    // Indentation of the line that opened a block scalar, while inside one.
    let mut block_indent: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let indent = body.len() - body.trim_start_matches(' ').len();
        if let Some(bi) = block_indent {
            if body.trim().is_empty() || indent > bi {
                out.push_str(line);
                continue;
            }
            block_indent = None;
        }
        if block.is_match(body) {
            block_indent = Some(indent);
        }
        if body.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        match respell(body) {
            Some(r) => {
                changed = true;
                out.push_str(&r);
                out.push_str(&line[body.len()..]);
            }
            None => out.push_str(line),
        }
    }
    if changed {
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// [`parse_objects`] reading YAML as Helm's install path does (sigs.k8s.io/yaml over go-yaml
/// v2, YAML 1.1): the plain scalars `y`, `yes`, `on` (any of their spellings) are `true` and
/// `n`, `no`, `off` are `false`, as values and as keys (which then become the strings
/// `"true"`/`"false"`). kustomize (go-yaml v3) keeps them strings; what `helm install` sends for
/// a chart's `enabled: yes` is `true`.
pub fn parse_objects_yaml11(text: &str) -> Result<Vec<Value>, String> {
    parse_objects(&yaml11_bools(text))
}

/// [`parse_documents`] with YAML 1.1 booleans (see [`parse_objects_yaml11`]).
pub fn parse_documents_yaml11(text: &str) -> Result<Vec<Value>, String> {
    parse_documents(&yaml11_bools(text))
}

fn yaml11_bool(s: &str) -> Option<&'static str> {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some("true"),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some("false"),
        _ => None,
    }
}

/// Respells YAML 1.1's plain booleans `true`/`false` where they are values (block or one-line
/// flow) or block mapping keys; quoted scalars and block-scalar text are left alone.
fn yaml11_bools(text: &str) -> std::borrow::Cow<'_, str> {
    static RE: std::sync::OnceLock<(regex::Regex, regex::Regex, regex::Regex)> =
        std::sync::OnceLock::new();
    let (value, key, flow) = RE.get_or_init(|| {
        const B: &str = "y|Y|yes|Yes|YES|on|On|ON|n|N|no|No|NO|off|Off|OFF";
        (
            regex::Regex::new(&format!(r"^({VALUE_PREFIX})({B})( *(?:#.*)?)$"))
                .expect("static regex"),
            regex::Regex::new(&format!(r"^(\s*(?:- +)*)({B})(:(?: .*)?)$")).expect("static regex"),
            regex::Regex::new(&format!(r"^((?:{VALUE_PREFIX})?)([\[{{].*)$"))
                .expect("static regex"),
        )
    });
    respell_lines(text, |body| {
        let mut line = std::borrow::Cow::Borrowed(body);
        if let Some(c) = key.captures(&line) {
            let b = yaml11_bool(&c[2]).expect("the regex matches only booleans");
            line = format!("{}{b}{}", &c[1], &c[3]).into();
        }
        if let Some(c) = value.captures(&line) {
            let b = yaml11_bool(&c[2]).expect("the regex matches only booleans");
            line = format!("{}{b}{}", &c[1], &c[3]).into();
        } else if let Some(c) = flow.captures(&line)
            && let Some(f) =
                respell_flow(&c[2], |s| yaml11_bool(s).map(|b| Value::Bool(b == "true")))
        {
            line = format!("{}{f}", &c[1]).into();
        }
        match line {
            std::borrow::Cow::Owned(l) => Some(l),
            std::borrow::Cow::Borrowed(_) => None,
        }
    })
}

/// The plain scalars of a one-line flow collection that `typed` types (go-yaml's numbers, YAML
/// 1.1 booleans), respelled as JSON; `None` when there are none. Quoted scalars are copied as
/// they are.
fn respell_flow(flow: &str, typed: impl Fn(&str) -> Option<Value>) -> Option<String> {
    let mut out = String::with_capacity(flow.len() + 8);
    let mut changed = false;
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String, changed: &mut bool| {
        // In a flow map only the value after `key: ` can be rewritten.
        let (head, scalar) = match token.rfind(": ") {
            Some(i) => token.split_at(i + 2),
            None => ("", token.as_str()),
        };
        let trimmed = scalar.trim();
        match typed(trimmed) {
            Some(n) if !trimmed.is_empty() => {
                let lead = &scalar[..scalar.len() - scalar.trim_start().len()];
                let tail = &scalar[lead.len() + trimmed.len()..];
                out.push_str(head);
                out.push_str(lead);
                out.push_str(&n.to_string());
                out.push_str(tail);
                *changed = true;
            }
            _ => out.push_str(token),
        }
        token.clear();
    };
    let mut chars = flow.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                token.push(c);
                while let Some(q) = chars.next() {
                    token.push(q);
                    if q == '\\' && c == '"' {
                        if let Some(e) = chars.next() {
                            token.push(e);
                        }
                    } else if q == c {
                        if c == '\'' && chars.peek() == Some(&'\'') {
                            token.push(chars.next().expect("peeked"));
                            continue;
                        }
                        break;
                    }
                }
            }
            '[' | ']' | '{' | '}' | ',' => {
                flush(&mut token, &mut out, &mut changed);
                out.push(c);
            }
            '#' if token.is_empty() || token.ends_with(' ') => {
                flush(&mut token, &mut out, &mut changed);
                out.push(c);
                out.extend(chars.by_ref());
            }
            _ => token.push(c),
        }
    }
    flush(&mut token, &mut out, &mut changed);
    changed.then_some(out)
}

/// Types one plain scalar as the general parser would where it stands: in block context
/// (`key: s`) or inside a flow collection, where [`go_octals`] does not reach.
pub(crate) fn type_plain_scalar(s: &str, in_flow: bool) -> Option<Value> {
    if let Some(n) = go_number(s) {
        return Some(n);
    }
    let text = format!("k: {s}\n");
    let mut docs = if in_flow {
        parse_serde_yaml(&text).ok()?
    } else {
        parse_documents_general(&text).ok()?
    };
    match docs.pop()? {
        Value::Object(mut m) if docs.is_empty() => m.remove("k"),
        _ => None,
    }
}

/// A plain scalar that starts with a digit or a sign, typed as go-yaml v3 (kustomize's parser)
/// resolves it, in any context: underscores dropped, then Go's `ParseInt(s, 0, 64)` (`0x`,
/// `0o`, `0b` prefixes, and a leading `0` for octal as in YAML 1.1), then `ParseUint`, then
/// a YAML-style float (`08` is the float 8, printed `8`). `None` when it is not a number
/// there (the caller types it as serde_yaml does).
fn go_number(s: &str) -> Option<Value> {
    if !s.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
        return None;
    }
    let plain = s.replace('_', "");
    let (negative, body) = match plain.as_bytes().first() {
        Some(b'-') => (true, &plain[1..]),
        Some(b'+') => (false, &plain[1..]),
        _ => (false, plain.as_str()),
    };
    let prefixed = |p: [&str; 2]| body.strip_prefix(p[0]).or_else(|| body.strip_prefix(p[1]));
    let (digits, radix) = if let Some(d) = prefixed(["0x", "0X"]) {
        (d, 16)
    } else if let Some(d) = prefixed(["0o", "0O"]) {
        (d, 8)
    } else if let Some(d) = prefixed(["0b", "0B"]) {
        (d, 2)
    } else if body.len() > 1 && body.starts_with('0') {
        (&body[1..], 8)
    } else {
        (body, 10)
    };
    // `from_str_radix` takes a sign of its own; Go's does not after the one stripped above.
    let magnitude = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| u64::from_str_radix(digits, radix).ok())
        .flatten();
    if let Some(m) = magnitude {
        if !negative {
            return Some(Value::Number(m.into()));
        }
        if m <= i64::MAX as u64 + 1 {
            return Some(Value::Number(
                (m as i128)
                    .wrapping_neg()
                    .try_into()
                    .map_or(Number::from(i64::MIN), |v: i64| Number::from(v)),
            ));
        }
    }
    if !lexical::is_float(&plain) {
        return None;
    }
    let f: f64 = plain.parse().ok()?;
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        // Go prints an integral float without a fraction (`8`), as this integer prints.
        return Some(Value::Number((f as i64).into()));
    }
    Number::from_f64(f).map(Value::Number)
}

/// Parses documents and expands `List` kinds into their items.
pub fn parse_objects(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for doc in parse_documents(text)? {
        expand_list(doc, &mut out);
    }
    Ok(out)
}

fn expand_list(doc: Value, out: &mut Vec<Value>) {
    let is_list = doc
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && doc.get("items").is_some_and(Value::is_array);
    if !is_list {
        out.push(doc);
        return;
    }
    if let Value::Object(mut m) = doc
        && let Some(Value::Array(items)) = m.remove("items")
    {
        for item in items {
            if !item.is_null() {
                expand_list(item, out);
            }
        }
    }
}

/// Converts parsed YAML to JSON values (the engine's representation).
pub fn to_json(v: serde_yaml::Value) -> Result<Value, String> {
    Ok(match v {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(b),
        serde_yaml::Value::Number(n) => number(&n),
        serde_yaml::Value::String(s) => Value::String(s),
        serde_yaml::Value::Sequence(seq) => {
            Value::Array(seq.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        serde_yaml::Value::Mapping(m) => {
            let entries = m
                .into_iter()
                .map(|(k, v)| Ok((key_string(k)?, to_json(v)?)))
                .collect::<Result<Vec<_>, String>>()?;
            Value::Object(Map::from_unsorted(entries))
        }
        serde_yaml::Value::Tagged(t) => to_json(t.value)?,
    })
}

fn number(n: &serde_yaml::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::Number(i.into())
    } else if let Some(u) = n.as_u64() {
        Value::Number(u.into())
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(n.to_string()))
    }
}

fn key_string(k: serde_yaml::Value) -> Result<String, String> {
    Ok(match k {
        serde_yaml::Value::String(s) => s,
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Null => "null".to_string(),
        serde_yaml::Value::Tagged(t) => key_string(t.value)?,
        _ => return Err("mapping keys must be scalars".to_string()),
    })
}

/// One object as a YAML document (without the `---` separator).
pub fn to_yaml(v: &Value) -> String {
    crate::emit::document(v)
}

/// Objects as a multi-document stream, like `kustomize build`.
pub fn to_yaml_stream<'a>(objs: impl IntoIterator<Item = &'a Value>) -> String {
    let mut out = String::new();
    for (i, v) in objs.into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_expand_and_empty_documents_vanish() {
        let text = "---\n# only a comment\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n";
        let objs = parse_objects(text).expect("valid");
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1]["metadata"]["name"], "b");
    }

    #[test]
    fn merge_keys_and_numeric_keys() {
        let text = "base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\nports:\n  80: http\n";
        let v = &parse_documents(text).expect("valid")[0];
        assert_eq!(v["derived"]["x"], 1);
        assert_eq!(v["ports"]["80"], "http");
    }

    #[test]
    fn plain_leading_zero_integers_are_octal_like_go_yaml() {
        let text =
            "a: 0755\nb: \"0755\"\nc: '0644'\nd:\n- 0644 # mode\ne: |\n  0755\nf: 08\ng: -010\n";
        let v = &parse_documents_general(text).expect("valid")[0];
        assert_eq!(v["a"], 493);
        assert_eq!(v["b"], "0755");
        assert_eq!(v["c"], "0644");
        assert_eq!(v["d"][0], 420);
        assert_eq!(v["e"], "0755\n");
        assert_eq!(v["g"], -8);
        // The fast path types plain scalars through the general parser: same answer.
        assert_eq!(parse_documents(text).expect("valid")[0], *v);
    }

    #[test]
    fn yaml11_booleans_as_helm_reads_them() {
        let text = "a: yes\nb: 'yes'\nc: \"on\"\nd:\n- off # x\n- N\ne: |\n  yes\non: y\nf: {x: no, y: 'no'}\ng: yesterday\nh: Yes please\n";
        let v = &parse_documents_yaml11(text).expect("valid")[0];
        assert_eq!(v["a"], true);
        assert_eq!(v["b"], "yes");
        assert_eq!(v["c"], "on");
        assert_eq!(v["d"], serde_json::json!([false, false]));
        assert_eq!(v["e"], "yes\n");
        assert_eq!(
            v["true"], true,
            "a key `on` is the boolean true, as a string key"
        );
        assert_eq!(v["f"], serde_json::json!({"x": false, "y": "no"}));
        assert_eq!(v["g"], "yesterday");
        assert_eq!(v["h"], "Yes please");
        // kustomize's reading is unchanged.
        assert_eq!(parse_documents(text).expect("valid")[0]["a"], "yes");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        assert!(parse_documents("a: 1\na: 2\n").is_err());
    }
}
