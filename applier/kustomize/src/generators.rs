//! `configMapGenerator` / `secretGenerator`: build ConfigMaps and Secrets from literals, env
//! files and files; absorb them into the accumulated resources with kustomize's
//! create/merge/replace behaviour; and the content hash appended to their names at the very
//! end of a build (kustomize's `hasher.go`: sha256 over a Go-`json.Marshal`-style encoding of
//! kind/name/data, first 10 hex digits with some characters remapped).

use std::collections::BTreeMap;

use crate::value::{Map, Value};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::kustomization::{GeneratorArgs, GeneratorOptions};
use crate::loader::KustCtx;
use crate::resource::{Behavior, ResMap, Resource};

/// Which generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    fn field(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configMapGenerator",
            Kind::Secret => "secretGenerator",
        }
    }
}

/// kustomize's `MergeGlobalOptionsIntoLocal`: global and local labels/annotations combined.
fn merged_options(
    local: &Option<GeneratorOptions>,
    global: &Option<GeneratorOptions>,
) -> GeneratorOptions {
    let mut o = local.clone().unwrap_or_default();
    if let Some(g) = global {
        // Local keys win over global ones (checked against kustomize).
        let mut labels = g.labels.clone();
        labels.extend(std::mem::take(&mut o.labels));
        o.labels = labels;
        let mut annotations = g.annotations.clone();
        annotations.extend(std::mem::take(&mut o.annotations));
        o.annotations = annotations;
        if g.disable_name_suffix_hash == Some(true) {
            o.disable_name_suffix_hash = Some(true);
        }
        if g.immutable == Some(true) {
            o.immutable = Some(true);
        }
    }
    o
}

fn strip_quotes(v: &str) -> &str {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

/// Collects key/value pairs: env files, then literals, then files (kustomize's order).
fn pairs(args: &GeneratorArgs, ctx: &KustCtx<'_>, field: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let envs = args.env.iter().chain(args.envs.iter());
    for (i, env) in envs.enumerate() {
        let f = format!("{field}.envs[{i}]");
        let (_, text) = ctx.read_text(env, &f)?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // A line without `=` tells kustomize to read the value from its own environment.
            // The agent's environment is no input of a build: the value is empty, as it is for
            // kustomize run where the variable is not set.
            let (k, v) = line.split_once('=').unwrap_or_else(|| {
                ctx.warn(format!(
                    "{}: {env}:{}: '{line}' has no value; kustomize would read it from its \
                     environment, Ferry renders it empty",
                    ctx.loc(&f),
                    n + 1
                ));
                (line, "")
            });
            out.push((k.to_string(), v.as_bytes().to_vec()));
        }
    }
    for (i, lit) in args.literals.iter().enumerate() {
        let Some((k, v)) = lit.split_once('=') else {
            return Err(Error::field(
                &ctx.loc(format!("{field}.literals[{i}]")),
                format!("invalid literal '{lit}', expected key=value"),
            ));
        };
        out.push((k.to_string(), strip_quotes(v).as_bytes().to_vec()));
    }
    for (i, spec) in args.files.iter().enumerate() {
        let f = format!("{field}.files[{i}]");
        let (key, path) = match spec.split_once('=') {
            Some((k, p)) if !k.is_empty() => (k.to_string(), p),
            Some(_) => {
                return Err(Error::field(
                    &ctx.loc(&f),
                    format!("key missing in '{spec}'"),
                ));
            }
            None => (
                spec.rsplit('/').next().unwrap_or(spec).to_string(),
                spec.as_str(),
            ),
        };
        let (_, data) = ctx.read_bytes(path, &f)?;
        out.push((key, data));
    }
    Ok(out)
}

/// Generates one resource per generator entry.
pub fn generate(
    kind: Kind,
    list: &[GeneratorArgs],
    global: &Option<GeneratorOptions>,
    ctx: &KustCtx<'_>,
) -> Result<Vec<Resource>> {
    let mut out = Vec::new();
    for (i, args) in list.iter().enumerate() {
        let field = format!("{}[{i}]", kind.field());
        let at = ctx.loc(&field);
        let name = args.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(Error::field(&at, "a generator needs a name"));
        }
        // kustomize treats any other value as unspecified, i.e. create.
        let behavior = match args.behavior.as_deref() {
            Some("merge") => Behavior::Merge,
            Some("replace") => Behavior::Replace,
            _ => Behavior::Create,
        };
        let opts = merged_options(&args.options, global);
        let mut data = Map::new();
        let mut binary = Map::new();
        for (k, v) in pairs(args, ctx, &field)? {
            if data.contains_key(&k) || binary.contains_key(&k) {
                return Err(Error::field(
                    &at,
                    format!("cannot add key {k}, another key by that name already exists"),
                ));
            }
            match kind {
                Kind::Secret => {
                    data.insert(k, Value::String(encode_base64(&v)));
                }
                Kind::ConfigMap => match String::from_utf8(v) {
                    Ok(s) => {
                        data.insert(k, Value::String(s));
                    }
                    Err(e) => {
                        binary.insert(k, Value::String(encode_base64(e.as_bytes())));
                    }
                },
            }
        }
        let mut meta = Map::new();
        meta.insert("name".into(), Value::String(name));
        if let Some(ns) = args.namespace.as_deref().filter(|n| !n.is_empty()) {
            meta.insert("namespace".into(), Value::String(ns.to_string()));
        }
        if !opts.labels.is_empty() {
            meta.insert("labels".into(), string_map(&opts.labels));
        }
        if !opts.annotations.is_empty() {
            meta.insert("annotations".into(), string_map(&opts.annotations));
        }
        let mut obj = Map::new();
        obj.insert("apiVersion".into(), Value::String("v1".into()));
        obj.insert(
            "kind".into(),
            Value::String(match kind {
                Kind::ConfigMap => "ConfigMap".into(),
                Kind::Secret => "Secret".into(),
            }),
        );
        obj.insert("metadata".into(), Value::Object(meta));
        // kyaml's LoadMapIntoSecretData creates `data` even when there is nothing to put in
        // it; the ConfigMap loader only creates the fields it fills.
        if !data.is_empty() || kind == Kind::Secret {
            obj.insert("data".into(), Value::Object(data));
        }
        if !binary.is_empty() {
            obj.insert("binaryData".into(), Value::Object(binary));
        }
        if kind == Kind::Secret {
            let t = args
                .type_
                .clone()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "Opaque".into());
            obj.insert("type".into(), Value::String(t));
        }
        if opts.immutable == Some(true) {
            obj.insert("immutable".into(), Value::Bool(true));
        }
        let mut r = Resource::new(Value::Object(obj), ctx.file.clone())
            .map_err(|e| Error::field(&at, e))?;
        r.needs_hash = opts.disable_name_suffix_hash != Some(true);
        r.behavior = behavior;
        r.generated = true;
        out.push(r);
    }
    Ok(out)
}

/// kyaml's `encodeBase64`: standard base64, and when it is 70 characters or longer, cut
/// into lines of 70, each ending in a newline (the last one too).
fn encode_base64(bytes: &[u8]) -> String {
    const LINE: usize = 70;
    let enc = base64::engine::general_purpose::STANDARD.encode(bytes);
    if enc.len() < LINE {
        return enc;
    }
    let mut out = String::with_capacity(enc.len() + enc.len() / LINE + 1);
    for chunk in enc.as_bytes().chunks(LINE) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out
}

fn string_map(m: &BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn merge_map_field(new: &mut Resource, old: &Resource, field: &str) {
    let Some(Value::Object(old_map)) = old.map().get(field) else {
        return;
    };
    let mut merged = old_map.clone();
    if let Some(Value::Object(new_map)) = new.map().get(field) {
        merged.extend(new_map.clone());
    }
    new.map_mut()
        .insert(field.to_string(), Value::Object(merged));
}

fn merge_meta_map(new: &mut Resource, old: &Resource, field: &str) {
    let old_map = old
        .map()
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut merged = old_map;
    if let Some(Value::Object(n)) = new.map().get("metadata").and_then(|m| m.get(field)) {
        merged.extend(n.clone());
    }
    if !merged.is_empty() {
        new.metadata_mut()
            .insert(field.to_string(), Value::Object(merged));
    }
}

/// kustomize's `AbsorbAll`: create appends; merge/replace update the existing object of the
/// same id in place.
pub fn absorb(
    resources: &mut ResMap,
    generated: Vec<Resource>,
    ctx: &KustCtx<'_>,
    kind: Kind,
) -> Result<()> {
    for (i, mut r) in generated.into_iter().enumerate() {
        let at = ctx.loc(format!("{}[{i}]", kind.field()));
        let id = r.id();
        let matches: Vec<usize> = resources
            .iter()
            .enumerate()
            .filter(|(_, old)| old.id().same_as(&id) || old.prev_ids.iter().any(|p| p.same_as(&id)))
            .map(|(i, _)| i)
            .collect();
        match (matches.as_slice(), r.behavior) {
            ([], Behavior::Create) => resources.resources.push(r),
            ([], _) => {
                return Err(Error::field(
                    &at,
                    format!("{id} does not exist; cannot merge or replace"),
                ));
            }
            ([idx], Behavior::Merge | Behavior::Replace) => {
                let old = &resources.resources[*idx];
                if r.behavior == Behavior::Merge {
                    merge_map_field(&mut r, old, "data");
                    merge_map_field(&mut r, old, "binaryData");
                }
                merge_meta_map(&mut r, old, "labels");
                merge_meta_map(&mut r, old, "annotations");
                r.set_name(old.name());
                let ns = old.namespace().to_string();
                if ns.is_empty() {
                    if let Some(m) = r
                        .map_mut()
                        .get_mut("metadata")
                        .and_then(Value::as_object_mut)
                    {
                        m.remove("namespace");
                    }
                } else {
                    r.set_namespace(&ns);
                }
                r.prev_ids = old.prev_ids.clone();
                r.name_prefixes = old.name_prefixes.clone();
                r.name_suffixes = old.name_suffixes.clone();
                r.origin = old.origin.clone();
                r.generated = old.generated;
                // CopyMergeMetaDataFieldsFrom keeps the needs-hash annotation only when both
                // the merged-into object and the merging generator have it.
                r.needs_hash &= old.needs_hash;
                r.behavior = Behavior::Create;
                resources.resources[*idx] = r;
            }
            ([_], Behavior::Create) => {
                return Err(Error::field(
                    &at,
                    format!("{id} exists; behavior must be merge or replace"),
                ));
            }
            _ => {
                return Err(Error::field(
                    &at,
                    format!("found multiple objects that could accept merge of {id}"),
                ));
            }
        }
    }
    Ok(())
}

/// Go's `json.Marshal` string encoding (HTML-safe escapes included), so hashes match.
fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn go_json(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => go_json_string(s, out),
        Value::Object(m) => {
            out.push('{');
            // serde_json's map is sorted, like Go's encoding of map[string]interface{}.
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(k, out);
                out.push(':');
                go_json(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// kustomize's content hash of a ConfigMap or Secret (10 characters). Like kustomize v5,
/// the name does not take part: its lookup of `metadata/name` as one key finds nothing, so the
/// name is always encoded as "" — reproduced here because outputs must match.
pub fn hash(r: &Resource) -> String {
    let field = |k: &str| -> Value {
        match r.map().get(k) {
            None | Some(Value::Null) => Value::String(String::new()),
            Some(v) => v.clone(),
        }
    };
    let mut m = Map::new();
    m.insert("kind".into(), Value::String(r.kind().to_string()));
    m.insert("name".into(), Value::String(String::new()));
    m.insert("data".into(), field("data"));
    if r.kind() == "Secret" {
        m.insert("type".into(), field("type"));
        if let Some(v @ Value::Object(_)) = r.map().get("stringData") {
            m.insert("stringData".into(), v.clone());
        }
    } else if let Some(v @ Value::Object(_)) = r.map().get("binaryData") {
        m.insert("binaryData".into(), v.clone());
    }
    let mut enc = String::new();
    go_json(&Value::Object(m), &mut enc);
    let hex = hex::encode(Sha256::digest(enc.as_bytes()));
    hex[..10]
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

/// Appends the content hash to every generated resource that wants one.
pub fn add_hashes(resources: &mut ResMap) {
    for r in resources.iter_mut() {
        if r.needs_hash && matches!(r.kind(), "ConfigMap" | "Secret") {
            let h = hash(r);
            r.store_prev_id();
            let name = format!("{}-{h}", r.name());
            r.set_name(&name);
        }
    }
}
