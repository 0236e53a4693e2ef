//! `GET|HEAD /v1/artifacts/sha256/{hex}`: immutable, content-addressed `.tar.gz` downloads.
//!
//! The ETag is the digest (`"sha256:<hex>"`), which never changes for a URL, so clients may
//! cache forever. One byte range per request is honoured (206, or 416 when unsatisfiable);
//! a multi-range request gets the whole body (200), which RFC 9110 allows. `If-Range` with a
//! different validator also gets the whole body. Bodies come from the shared caches of
//! [`crate::serving`], so a thousand agents asking for a new artifact at once cost one read.

use std::ops::Range;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_proto::Digest;

use super::access::{Access, forbidden};
use super::error;
use crate::reconcile::Controller;

const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

pub(super) async fn get(
    State(c): State<Controller>,
    Extension(access): Extension<Access>,
    Path(hex): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let hex = hex.strip_suffix(".tar.gz").unwrap_or(&hex);
    let digest = match Digest::from_hex(hex) {
        Ok(d) => d,
        Err(e) if access.sees_all() => return error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(_) => return forbidden(),
    };
    // A tenant gets an artifact only through a source it may see that serves it (now or as
    // one of the kept earlier ones): knowing a digest is not enough.
    if !access.sees_all() && !c.artifact_owners(&digest).iter().any(|s| access.sees(s)) {
        return forbidden();
    }
    let etag = format!("\"{digest}\"");
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|inm| etag_matches(inm, &etag));
    // A body is read (an S3 artifact downloaded into the cache) only when one is sent; the
    // size alone comes from what is cached or from the store's metadata.
    let artifacts = &c.inner.artifacts;
    let (size, served) = if method == Method::HEAD || not_modified {
        match artifacts.size(&digest).await {
            Ok(Some(size)) => (size, None),
            Ok(None) => return not_found(&digest),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    } else {
        match artifacts.open(&digest).await {
            Ok(Some(served)) => (served.size, Some(served)),
            Ok(None) => return not_found(&digest),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    };
    let mut resp_headers = HeaderMap::new();
    resp_headers.insert(header::ETAG, header_value(&etag));
    resp_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    resp_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if not_modified {
        return (StatusCode::NOT_MODIFIED, resp_headers).into_response();
    }

    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == etag);
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) if if_range_ok => match parse_range(r, size) {
            RangeSpec::Satisfiable(range) => Some(range),
            RangeSpec::Whole => None,
            RangeSpec::Unsatisfiable => {
                resp_headers.insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes */{size}")),
                );
                return (StatusCode::RANGE_NOT_SATISFIABLE, resp_headers).into_response();
            }
        },
        _ => None,
    };

    resp_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    let (status, len) = match &range {
        Some(r) => {
            resp_headers.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {}-{}/{size}", r.start, r.end - 1)),
            );
            (StatusCode::PARTIAL_CONTENT, r.end - r.start)
        }
        None => (StatusCode::OK, size),
    };
    resp_headers.insert(header::CONTENT_LENGTH, header_value(&len.to_string()));
    let Some(served) = served else {
        return (status, resp_headers).into_response(); // HEAD
    };
    match served.body(range).await {
        Ok(body) => (status, resp_headers, body).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn not_found(digest: &Digest) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("artifact {digest} not found"),
    )
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s)
        .expect("digests, numbers and ASCII punctuation are valid header values")
}

fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    Satisfiable(Range<u64>),
    /// Malformed or multi-range: serve the whole body.
    Whole,
    Unsatisfiable,
}

/// Parses a `Range: bytes=…` header with one range against an object of `size` bytes.
fn parse_range(header: &str, size: u64) -> RangeSpec {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeSpec::Whole;
    };
    if spec.contains(',') {
        return RangeSpec::Whole;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeSpec::Whole;
    };
    let parse = |s: &str| s.trim().parse::<u64>().ok();
    let range = match (start.trim().is_empty(), end.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match parse(end) {
            Some(0) => return RangeSpec::Unsatisfiable,
            Some(n) => size.saturating_sub(n)..size,
            None => return RangeSpec::Whole,
        },
        (false, true) => match parse(start) {
            Some(s) => s..size,
            None => return RangeSpec::Whole,
        },
        (false, false) => match (parse(start), parse(end)) {
            (Some(s), Some(e)) if s <= e => s..e.saturating_add(1).min(size),
            _ => return RangeSpec::Whole,
        },
        (true, true) => return RangeSpec::Whole,
    };
    if range.start >= size || range.is_empty() {
        RangeSpec::Unsatisfiable
    } else {
        RangeSpec::Satisfiable(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeSpec::*;
        assert_eq!(parse_range("bytes=0-9", 100), Satisfiable(0..10));
        assert_eq!(parse_range("bytes=90-200", 100), Satisfiable(90..100));
        assert_eq!(parse_range("bytes=95-", 100), Satisfiable(95..100));
        assert_eq!(parse_range("bytes=-5", 100), Satisfiable(95..100));
        assert_eq!(parse_range("bytes=-500", 100), Satisfiable(0..100));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Whole);
        assert_eq!(parse_range("bytes=9-3", 100), Whole);
        assert_eq!(parse_range("items=0-1", 100), Whole);
    }

    #[test]
    fn etags() {
        let etag = "\"sha256:ab\"";
        assert!(etag_matches("\"sha256:ab\"", etag));
        assert!(etag_matches("\"x\", W/\"sha256:ab\"", etag));
        assert!(etag_matches("*", etag));
        assert!(!etag_matches("\"sha256:cd\"", etag));
    }
}
