//! HTTP wiring: one axum fallback handler parses Kubernetes REST paths itself (the path
//! grammar — `/api/v1/namespaces/{ns}/{plural}/{name}/{sub}` and `/apis/{g}/{v}/…` — does not
//! map well onto a router), applies fault injection, decodes bodies (JSON, YAML, helm's
//! protobuf Secrets), runs the verb under the store lock and answers JSON or a `Status`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::Value;

use super::discovery;
use super::faults::{FaultAction, Faults};
use super::lifecycle::Propagation;
use super::selector::{FieldSelector, LabelSelector};
use super::shape::Shape;
use super::status::ApiError;
use super::store::Store;
use super::verbs::{self, DeleteOpts, ListOpts, Target, WriteOpts};
use super::watch::{self, WatchParams};

/// Largest accepted request body (helm release Secrets are well below this).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// What the handler needs: the store, the fault rules and the request counts.
#[derive(Debug, Clone, Default)]
pub struct Server {
    pub store: Store,
    pub faults: Faults,
    pub audit: super::audit::Audit,
}

pub fn router(server: Arc<Server>) -> Router {
    Router::new().fallback(handle).with_state(server)
}

fn json_response(code: u16, body: &Value) -> Response {
    // to_vec, not to_string: Display goes through fmt::Write, a third slower on large objects.
    let bytes = serde_json::to_vec(body).expect("a JSON value always serialises");
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(e.code, &e.to_status());
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

async fn handle(State(s): State<Arc<Server>>, req: Request) -> Response {
    match dispatch(&s, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

type Query = HashMap<String, String>;

fn parse_query(uri: &http::Uri) -> Query {
    uri.query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    Some((decode_component(k)?, decode_component(v)?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Percent-decoding (and `+` → space) of one query component; `None` if malformed.
fn decode_component(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
    .with_details(serde_json::json!({}))
}

async fn dispatch(s: &Server, req: Request) -> Result<Response, ApiError> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|x| !x.is_empty()).collect();
    let method = req.method().clone();
    let reg = || s.store.lock().registry.clone();
    let ok = |v: Value| Ok(json_response(200, &v));
    match segs.as_slice() {
        ["version"] => ok(discovery::version()),
        ["healthz" | "readyz" | "livez"] => {
            let mut r = Response::new(Body::from("ok"));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            Ok(r)
        }
        ["api"] => ok(discovery::api_versions()),
        ["apis"] => ok(discovery::api_group_list(&reg())),
        ["apis", g] => discovery::api_group(&reg(), g).map_or_else(|| Err(not_found_path()), ok),
        ["api", v] if method == Method::GET => {
            discovery::resource_list(&reg(), "", v).map_or_else(|| Err(not_found_path()), ok)
        }
        ["apis", g, v] if method == Method::GET => {
            discovery::resource_list(&reg(), g, v).map_or_else(|| Err(not_found_path()), ok)
        }
        ["openapi", "v3"] => ok(discovery::openapi_root(&reg())),
        ["openapi", "v2"] => {
            let wants_proto = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("protobuf"));
            if wants_proto {
                // An empty protobuf message is a valid, empty gnostic OpenAPI v2 document.
                let mut r = Response::new(Body::empty());
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    ),
                );
                Ok(r)
            } else {
                ok(discovery::openapi_v2())
            }
        }
        ["openapi", "v3", "api", v] => {
            discovery::openapi_gv(&reg(), "", v).map_or_else(|| Err(not_found_path()), ok)
        }
        ["openapi", "v3", "apis", g, v] => {
            discovery::openapi_gv(&reg(), g, v).map_or_else(|| Err(not_found_path()), ok)
        }
        ["api", v, rest @ ..] => {
            let (g, v, rest) = (String::new(), v.to_string(), owned(rest));
            resource_request(s, req, &g, &v, &rest).await
        }
        ["apis", g, v, rest @ ..] => {
            let (g, v, rest) = (g.to_string(), v.to_string(), owned(rest));
            resource_request(s, req, &g, &v, &rest).await
        }
        _ => Err(not_found_path()),
    }
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Splits `namespaces/{ns}/{plural}/{name}/{sub}` or `{plural}/{name}/{sub}` into a target.
fn resolve(s: &Server, group: &str, version: &str, rest: &[String]) -> Result<Target, ApiError> {
    let (namespace, rest) = match rest {
        [ns_word, ns, plural, tail @ ..]
            if ns_word == "namespaces" && !matches!(plural.as_str(), "status" | "finalize") =>
        {
            (
                Some(ns.clone()),
                std::iter::once(plural).chain(tail).collect::<Vec<_>>(),
            )
        }
        _ => (None, rest.iter().collect()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [p] => (p.as_str(), None, None),
        [p, n] => (p.as_str(), Some(n.to_string()), None),
        [p, n, sub] => (p.as_str(), Some(n.to_string()), Some(sub.to_string())),
        _ => return Err(not_found_path()),
    };
    let def = s
        .store
        .lock()
        .registry
        .lookup(group, version, plural)
        .cloned()
        .ok_or_else(not_found_path)?;
    if namespace.is_some() && !def.namespaced {
        return Err(not_found_path());
    }
    let t = Target {
        def,
        version: version.to_string(),
        namespace,
        name,
        subresource: sub,
    };
    match t.subresource.as_deref() {
        None => Ok(t),
        Some("status") if t.def.status_subresource => Ok(t),
        Some("scale") if super::scale::has_scale(&t) => Ok(t),
        Some(_) => Err(not_found_path()),
    }
}

fn verb_of(method: &Method, t: &Target, q: &Query) -> Result<&'static str, ApiError> {
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    Ok(match (method.as_str(), t.name.is_some()) {
        ("GET", true) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method} {})",
                t.def.qualified()
            )));
        }
    })
}

fn dry_run(q: &Query) -> Result<bool, ApiError> {
    match q.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "dryRun: Unsupported value: {other:?}: supported values: \"All\""
        ))),
    }
}

fn list_opts(q: &Query) -> Result<ListOpts, ApiError> {
    Ok(ListOpts {
        labels: LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?,
        fields: FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))?,
        limit: q.get("limit").and_then(|l| l.parse().ok()),
        continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
    })
}

/// The manager recorded in managedFields: `fieldManager`, else the user agent's program name
/// (what the real server does).
fn manager(q: &Query, headers: &HeaderMap) -> String {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

async fn read_body(req: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("the request body is larger than {MAX_BODY} bytes or could not be read"),
        )
    })?;
    Ok((parts.headers, bytes))
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// An object body for POST/PUT: JSON, YAML, or helm's protobuf Secret.
fn decode_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    match content_type(headers).as_str() {
        "application/vnd.kubernetes.protobuf" => super::protobuf::decode(body),
        "application/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid YAML request body: {e}"))),
        "application/json" | "" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON request body: {e}"))),
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {other})"
            ),
        )),
    }
}

async fn resource_request(
    s: &Server,
    req: Request,
    group: &str,
    version: &str,
    rest: &[String],
) -> Result<Response, ApiError> {
    let t = resolve(s, group, version, rest)?;
    let q = parse_query(req.uri());
    let method = req.method().clone();
    let verb = verb_of(&method, &t, &q)?;
    s.audit.record(
        verb,
        &t.def.plural,
        q.get("dryRun").is_some_and(|d| !d.is_empty()),
    );
    let mut drop_after = None;
    for action in s.faults.take(verb, &t.def.plural) {
        match action {
            FaultAction::Delay(d) => tokio::time::sleep(d).await,
            FaultAction::Error { code, retry_after } => {
                let mut e = injected_error(code, &t);
                e.retry_after = retry_after;
                return Err(e);
            }
            FaultAction::DropWatchAfter(d) => drop_after = Some(d),
        }
    }
    let wanted = Shape::from_accept(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    if verb == "watch" {
        return start_watch(s, &t, &q, drop_after, wanted);
    }
    let shape = |v: Value| wanted.render(v);
    let (headers, body) = read_body(req).await?;
    let dry = dry_run(&q)?;
    let mgr = manager(&q, &headers);
    if t.subresource.as_deref() == Some("scale") {
        let o = WriteOpts {
            dry_run: dry,
            manager: Some(mgr),
        };
        let (code, v) = match verb {
            "get" => (200, super::scale::get(&s.store.lock(), &t)?),
            "update" => {
                let obj = decode_object(&headers, &body)?;
                super::scale::update(&mut s.store.lock(), &t, &obj, &o)?
            }
            "patch" => {
                let ct = content_type(&headers);
                super::scale::patch(&mut s.store.lock(), &t, &ct, &body, &o)?
            }
            other => {
                return Err(ApiError::method_not_allowed(format!(
                    "{other} is not supported on the scale subresource"
                )));
            }
        };
        return Ok(json_response(code, &v));
    }
    match verb {
        "get" => Ok(json_response(200, &shape(verbs::get(&s.store.lock(), &t)?))),
        "list" => {
            let v = verbs::list(&s.store.lock(), &t, &list_opts(&q)?)?;
            Ok(json_response(200, &shape(v)))
        }
        "create" => {
            let obj = decode_object(&headers, &body)?;
            let o = WriteOpts {
                dry_run: dry,
                manager: Some(mgr),
            };
            let (code, v) = verbs::create(&mut s.store.lock(), &t, obj, &o)?;
            Ok(json_response(code, &v))
        }
        "update" => {
            let obj = decode_object(&headers, &body)?;
            let o = WriteOpts {
                dry_run: dry,
                manager: Some(mgr),
            };
            let (code, v) = verbs::update(&mut s.store.lock(), &t, obj, &o)?;
            Ok(json_response(code, &v))
        }
        "patch" => {
            let ct = content_type(&headers);
            let r = super::patching::PatchRequest {
                content_type: &ct,
                body: &body,
                // Apply requires an explicit fieldManager (422 otherwise).
                manager: if ct == super::patch::APPLY_PATCH {
                    q.get("fieldManager").filter(|m| !m.is_empty()).cloned()
                } else {
                    Some(mgr)
                },
                force: q.get("force").is_some_and(|f| f == "true"),
                dry_run: dry,
            };
            let (code, v) = super::patching::patch(&s.store, &t, &r)?;
            Ok(json_response(code, &v))
        }
        "delete" => {
            let o = delete_opts(&q, &headers, &body)?;
            Ok(json_response(
                200,
                &verbs::delete(&mut s.store.lock(), &t, &o)?,
            ))
        }
        "deletecollection" => {
            let o = delete_opts(&q, &headers, &body)?;
            let l = list_opts(&q)?;
            Ok(json_response(
                200,
                &verbs::delete_collection(&mut s.store.lock(), &t, &l, &o)?,
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "verb {verb} is not supported"
        ))),
    }
}

fn injected_error(code: u16, t: &Target) -> ApiError {
    let name = t.name.clone().unwrap_or_default();
    match code {
        409 => ApiError::conflict(
            &t.def.qualified(),
            &name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ),
        429 => ApiError::new(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later (injected fault)",
        ),
        503 => ApiError::new(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request (injected fault)",
        ),
        c => ApiError::new(
            c,
            "InternalError",
            format!(
                "an error on the server (\"injected fault\") has prevented the request from succeeding (code {c})"
            ),
        ),
    }
}

fn delete_opts(q: &Query, headers: &HeaderMap, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else if content_type(headers) == "application/vnd.kubernetes.protobuf" {
        super::protobuf::decode_delete_options(body)?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions body: {e}")))?
    };
    let mut o = DeleteOpts {
        dry_run: dry_run(q)?
            || b["dryRun"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x == "All")),
        ..Default::default()
    };
    let policy = b["propagationPolicy"]
        .as_str()
        .map(String::from)
        .or_else(|| q.get("propagationPolicy").cloned());
    if let Some(p) = policy {
        o.propagation = Propagation::parse(&p)?;
    } else if b["orphanDependents"] == true
        || q.get("orphanDependents").is_some_and(|x| x == "true")
    {
        o.propagation = Propagation::Orphan;
    }
    o.precondition_uid = b
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        .map(String::from);
    o.precondition_rv = b
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        .map(String::from);
    Ok(o)
}

fn start_watch(
    s: &Server,
    t: &Target,
    q: &Query,
    drop_after: Option<std::time::Duration>,
    shape: Shape,
) -> Result<Response, ApiError> {
    let l = list_opts(q)?;
    let rv = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(x) => Some(x.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: {x:?}: must be an integer"
            ))
        })?),
    };
    let mut t = t.clone();
    let mut fields = l.fields;
    if let Some(name) = t.name.take() {
        // `GET …/{name}?watch=true` (the deprecated form) watches one object.
        let sel = q
            .get("fieldSelector")
            .map_or(String::new(), |f| format!("{f},"));
        fields = FieldSelector::parse(&format!("{sel}metadata.name={name}"))?;
    }
    start_watch_params(s, &t, q, rv, l.labels, fields, (drop_after, shape))
}

#[allow(clippy::too_many_arguments)] // plumbing of already-parsed query parts
fn start_watch_params(
    s: &Server,
    t: &Target,
    q: &Query,
    rv: Option<u64>,
    labels: LabelSelector,
    fields: FieldSelector,
    (drop_after, shape): (Option<std::time::Duration>, Shape),
) -> Result<Response, ApiError> {
    let p = WatchParams {
        resource_version: rv,
        send_initial_events: q.get("sendInitialEvents").is_some_and(|x| x == "true"),
        allow_bookmarks: q.get("allowWatchBookmarks").is_some_and(|x| x == "true"),
        timeout: q
            .get("timeoutSeconds")
            .and_then(|x| x.parse::<u64>().ok())
            .map(std::time::Duration::from_secs),
        labels,
        fields,
        drop_after,
        shape,
    };
    let stream = watch::start(&s.store, t, p)?;
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_components_are_percent_decoded() {
        let uri: http::Uri = "/api/v1/pods?labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=1"
            .parse()
            .expect("uri");
        let q = parse_query(&uri);
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["watch"], "1");
        assert_eq!(decode_component("%zz"), None);
    }
}
