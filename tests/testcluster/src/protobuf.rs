//! Decoding of the one protobuf payload real clients send: helm stores releases as Secrets and
//! POSTs/PUTs them as `application/vnd.kubernetes.protobuf` (`k8s\0` + `runtime.Unknown`
//! wrapping a `v1.Secret`), and does not fall back to JSON on 415. A small hand decoder of the
//! few fields involved (field numbers from k8s.io/api generated.proto) turns it into the JSON
//! object the rest of the server works with; replies are JSON, which client-go accepts.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::status::ApiError;

const MAGIC: &[u8] = b"k8s\0";

#[derive(Debug, Clone, Copy)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn bad(why: &str) -> ApiError {
    ApiError::bad_request(format!("invalid protobuf request body: {why}"))
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, ApiError> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or_else(|| bad("truncated varint"))?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(bad("varint too long"))
}

/// The (field number, value) pairs of one message, in order.
fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ApiError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let (num, wire) = (tag >> 3, tag & 7);
        let f = match wire {
            0 => Field::Varint(varint(buf, &mut pos)?),
            1 | 5 => {
                pos += if wire == 1 { 8 } else { 4 };
                if pos > buf.len() {
                    return Err(bad("truncated fixed-width field"));
                }
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|_| bad("length"))?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or_else(|| bad("length-delimited field runs past the end"))?;
                let b = &buf[pos..end];
                pos = end;
                Field::Bytes(b)
            }
            other => return Err(bad(&format!("unsupported wire type {other}"))),
        };
        out.push((num, f));
    }
    Ok(out)
}

fn string(f: Field<'_>, what: &str) -> Result<String, ApiError> {
    match f {
        Field::Bytes(b) => {
            String::from_utf8(b.to_vec()).map_err(|_| bad(&format!("{what} is not UTF-8")))
        }
        _ => Err(bad(&format!("{what} has the wrong wire type"))),
    }
}

fn bytes<'a>(f: Field<'a>, what: &str) -> Result<&'a [u8], ApiError> {
    match f {
        Field::Bytes(b) => Ok(b),
        _ => Err(bad(&format!("{what} has the wrong wire type"))),
    }
}

/// A map entry message `{1: key, 2: value}`.
fn map_entry<'a>(f: Field<'a>, what: &str) -> Result<(String, &'a [u8]), ApiError> {
    let (mut k, mut v): (String, &[u8]) = (String::new(), &[]);
    for (n, x) in fields(bytes(f, what)?)? {
        match n {
            1 => k = string(x, what)?,
            2 => v = bytes(x, what)?,
            _ => {}
        }
    }
    Ok((k, v))
}

fn object_meta(buf: &[u8]) -> Result<Value, ApiError> {
    let mut m = Map::new();
    let (mut labels, mut annotations, mut finalizers) = (Map::new(), Map::new(), Vec::new());
    for (n, f) in fields(buf)? {
        let key = match n {
            1 => "name",
            2 => "generateName",
            3 => "namespace",
            5 => "uid",
            6 => "resourceVersion",
            11 | 12 => {
                let (k, v) = map_entry(f, "metadata.labels/annotations")?;
                let v =
                    String::from_utf8(v.to_vec()).map_err(|_| bad("label value is not UTF-8"))?;
                if n == 11 {
                    &mut labels
                } else {
                    &mut annotations
                }
                .insert(k, json!(v));
                continue;
            }
            14 => {
                finalizers.push(json!(string(f, "metadata.finalizers")?));
                continue;
            }
            _ => continue,
        };
        let s = string(f, key)?;
        if !s.is_empty() {
            m.insert(key.into(), json!(s));
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(m))
}

fn secret(buf: &[u8]) -> Result<Value, ApiError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = json!({"apiVersion": "v1", "kind": "Secret"});
    let (mut data, mut string_data) = (Map::new(), Map::new());
    for (n, f) in fields(buf)? {
        match n {
            1 => out["metadata"] = object_meta(bytes(f, "metadata")?)?,
            2 => {
                let (k, v) = map_entry(f, "data")?;
                data.insert(k, json!(b64.encode(v)));
            }
            3 => out["type"] = json!(string(f, "type")?),
            4 => {
                let (k, v) = map_entry(f, "stringData")?;
                let v =
                    String::from_utf8(v.to_vec()).map_err(|_| bad("stringData is not UTF-8"))?;
                string_data.insert(k, json!(v));
            }
            5 => {
                if let Field::Varint(x) = f {
                    out["immutable"] = json!(x != 0);
                }
            }
            _ => {}
        }
    }
    if !data.is_empty() {
        out["data"] = Value::Object(data);
    }
    if !string_data.is_empty() {
        out["stringData"] = Value::Object(string_data);
    }
    Ok(out)
}

/// Decodes a Kubernetes protobuf request body into JSON. Only `v1/Secret` is supported;
/// anything else is a 415 naming the kind.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s\\0 prefix"))?;
    let (mut api_version, mut kind, mut raw): (String, String, &[u8]) =
        (String::new(), String::new(), &[]);
    for (n, f) in fields(rest)? {
        match n {
            1 => {
                for (m, x) in fields(bytes(f, "typeMeta")?)? {
                    match m {
                        1 => api_version = string(x, "typeMeta.apiVersion")?,
                        2 => kind = string(x, "typeMeta.kind")?,
                        _ => {}
                    }
                }
            }
            2 => raw = bytes(f, "raw")?,
            _ => {}
        }
    }
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "Secret") => secret(raw),
        ("v1", "ConfigMap") => config_map(raw),
        ("v1", "Namespace" | "ServiceAccount") => metadata_only(raw, &kind),
        ("authentication.k8s.io/v1", "TokenRequest") => token_request(raw),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => self_subject_access_review(raw),
        _ => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the test server decodes protobuf only for v1 Secret, ConfigMap, Namespace, ServiceAccount, TokenRequest and SelfSubjectAccessReview, not {api_version} {kind}; send JSON"
            ),
        )),
    }
}

/// `kubectl create configmap` sends protobuf: metadata(1), data(2), binaryData(3), immutable(4).
fn config_map(buf: &[u8]) -> Result<Value, ApiError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = json!({"apiVersion": "v1", "kind": "ConfigMap"});
    let (mut data, mut binary) = (Map::new(), Map::new());
    for (n, f) in fields(buf)? {
        match n {
            1 => out["metadata"] = object_meta(bytes(f, "metadata")?)?,
            2 => {
                let (k, v) = map_entry(f, "data")?;
                let v = String::from_utf8(v.to_vec()).map_err(|_| bad("data is not UTF-8"))?;
                data.insert(k, json!(v));
            }
            3 => {
                let (k, v) = map_entry(f, "binaryData")?;
                binary.insert(k, json!(b64.encode(v)));
            }
            4 => {
                if let Field::Varint(x) = f {
                    out["immutable"] = json!(x != 0);
                }
            }
            _ => {}
        }
    }
    if !data.is_empty() {
        out["data"] = Value::Object(data);
    }
    if !binary.is_empty() {
        out["binaryData"] = Value::Object(binary);
    }
    Ok(out)
}

/// Kinds whose create requests carry nothing but metadata (field 1) in practice.
fn metadata_only(buf: &[u8], kind: &str) -> Result<Value, ApiError> {
    let mut out = json!({"apiVersion": "v1", "kind": kind});
    for (n, f) in fields(buf)? {
        if n == 1 {
            out["metadata"] = object_meta(bytes(f, "metadata")?)?;
        }
    }
    Ok(out)
}

/// `kubectl create token`: spec(2) = {audiences(1), boundObjectRef(3), expirationSeconds(4)}.
fn token_request(buf: &[u8]) -> Result<Value, ApiError> {
    let mut spec = Map::new();
    let mut audiences = Vec::new();
    for (n, f) in fields(buf)? {
        if n != 2 {
            continue;
        }
        for (m, x) in fields(bytes(f, "spec")?)? {
            match (m, x) {
                (1, x) => audiences.push(json!(string(x, "spec.audiences")?)),
                (4, Field::Varint(secs)) => {
                    spec.insert("expirationSeconds".into(), json!(secs));
                }
                _ => {}
            }
        }
    }
    spec.insert("audiences".into(), Value::Array(audiences));
    Ok(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}))
}

/// `kubectl auth can-i`: spec(2) = {resourceAttributes(1) {namespace(1), verb(2), group(3),
/// version(4), resource(5), subresource(6), name(7)}, nonResourceAttributes(2) {path(1),
/// verb(2)}}.
fn self_subject_access_review(buf: &[u8]) -> Result<Value, ApiError> {
    const RESOURCE: [&str; 7] = [
        "namespace",
        "verb",
        "group",
        "version",
        "resource",
        "subresource",
        "name",
    ];
    let mut spec = Map::new();
    for (n, f) in fields(buf)? {
        if n != 2 {
            continue;
        }
        for (m, x) in fields(bytes(f, "spec")?)? {
            let (key, names): (&str, &[&str]) = match m {
                1 => ("resourceAttributes", &RESOURCE),
                2 => ("nonResourceAttributes", &["path", "verb"]),
                _ => continue,
            };
            let mut attrs = Map::new();
            for (k, y) in fields(bytes(x, key)?)? {
                let Some(name) = usize::try_from(k)
                    .ok()
                    .and_then(|k| names.get(k.wrapping_sub(1)))
                else {
                    continue;
                };
                if let Field::Bytes(_) = y {
                    attrs.insert((*name).into(), json!(string(y, name)?));
                }
            }
            spec.insert(key.into(), Value::Object(attrs));
        }
    }
    Ok(
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": spec}),
    )
}

/// `DeleteOptions` sent as protobuf (helm's release purge): gracePeriodSeconds(1),
/// preconditions(2) {uid(1), resourceVersion(2)}, orphanDependents(3), propagationPolicy(4),
/// dryRun(5), as the JSON form the rest of the server reads.
pub fn decode_delete_options(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s\\0 prefix"))?;
    let mut raw: &[u8] = &[];
    for (n, f) in fields(rest)? {
        if n == 2 {
            raw = bytes(f, "raw")?;
        }
    }
    let mut out = Map::new();
    let mut dry = Vec::new();
    for (n, f) in fields(raw)? {
        match (n, f) {
            (1, Field::Varint(x)) => {
                out.insert("gracePeriodSeconds".into(), json!(x));
            }
            (2, f) => {
                let mut pre = Map::new();
                for (m, x) in fields(bytes(f, "preconditions")?)? {
                    let key = if m == 1 { "uid" } else { "resourceVersion" };
                    pre.insert(key.into(), json!(string(x, "preconditions")?));
                }
                out.insert("preconditions".into(), Value::Object(pre));
            }
            (3, Field::Varint(x)) => {
                out.insert("orphanDependents".into(), json!(x != 0));
            }
            (4, f) => {
                out.insert(
                    "propagationPolicy".into(),
                    json!(string(f, "propagationPolicy")?),
                );
            }
            (5, f) => dry.push(json!(string(f, "dryRun")?)),
            _ => {}
        }
    }
    if !dry.is_empty() {
        out.insert("dryRun".into(), Value::Array(dry));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(n: u64, wire: u64) -> Vec<u8> {
        enc_varint((n << 3) | wire)
    }
    fn enc_varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }
    fn ld(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = tag(n, 2);
        out.extend(enc_varint(payload.len() as u64));
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_helm_release_secret() {
        let label = [ld(1, b"owner"), ld(2, b"helm")].concat();
        let meta = [
            ld(1, b"sh.helm.release.v1.demo.v1"),
            ld(3, b"default"),
            ld(11, &label),
        ]
        .concat();
        let entry = [ld(1, b"release"), ld(2, b"\x00\x01bin")].concat();
        let secret = [ld(1, &meta), ld(2, &entry), ld(3, b"helm.sh/release.v1")].concat();
        let type_meta = [ld(1, b"v1"), ld(2, b"Secret")].concat();
        let unknown = [
            ld(1, &type_meta),
            ld(2, &secret),
            ld(4, b"application/vnd.kubernetes.protobuf"),
        ]
        .concat();
        let body = [MAGIC, unknown.as_slice()].concat();
        let v = decode(&body).expect("decodes");
        assert_eq!(v["metadata"]["name"], "sh.helm.release.v1.demo.v1");
        assert_eq!(v["metadata"]["namespace"], "default");
        assert_eq!(v["metadata"]["labels"]["owner"], "helm");
        assert_eq!(v["type"], "helm.sh/release.v1");
        assert_eq!(v["data"]["release"], "AAFiaW4=");
        // Truncation and other kinds are clean errors.
        assert_eq!(
            decode(&body[..body.len() - 3]).expect_err("truncated").code,
            400
        );
        let pod = [
            MAGIC,
            ld(1, &[ld(1, b"v1"), ld(2, b"Pod")].concat()).as_slice(),
        ]
        .concat();
        assert_eq!(decode(&pod).expect_err("pod").code, 415);
        // kubectl create configmap.
        let cm = [
            ld(1, &ld(1, b"settings")),
            ld(2, &[ld(1, b"a"), ld(2, b"b")].concat()),
        ]
        .concat();
        let unknown = [
            ld(1, &[ld(1, b"v1"), ld(2, b"ConfigMap")].concat()),
            ld(2, &cm),
        ]
        .concat();
        let v = decode(&[MAGIC, unknown.as_slice()].concat()).expect("configmap");
        assert_eq!(v["data"]["a"], "b");
        assert_eq!(v["metadata"]["name"], "settings");
        // helm's DeleteOptions.
        let opts = [ld(4, b"Background"), ld(5, b"All")].concat();
        let unknown = [
            ld(1, &[ld(1, b"v1"), ld(2, b"DeleteOptions")].concat()),
            ld(2, &opts),
        ]
        .concat();
        let v = decode_delete_options(&[MAGIC, unknown.as_slice()].concat()).expect("options");
        assert_eq!(v["propagationPolicy"], "Background");
        assert_eq!(v["dryRun"][0], "All");
    }
}
