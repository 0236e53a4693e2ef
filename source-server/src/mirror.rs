//! Mirrors of mirrors: a GitRepository whose `spec.url` is
//! `ferry+http(s)://host[:port][/path]/NAMESPACE/NAME` follows the source `NAMESPACE/NAME` of
//! the source server at `http(s)://host[:port][/path]` (README, "Air gap"). Each reconcile (its
//! `interval`, or on request) reads that source (`GET /v1/sources/NAMESPACE/NAME`); on a new
//! revision it downloads the artifact by digest (`GET /v1/artifacts/sha256/<hex>`), verifies
//! it ([`ferry_proto::verify`], the agents' check) and stores the bytes unchanged, so the
//! digest, revision and bytes are the same at every server down a chain. `secretRef` gives
//! `username`/`password` or a `bearerToken` (an upstream with tenancy wants a token for its
//! audience).

use std::sync::atomic::AtomicBool;

use ferry_proto::api::SourceView;
use ferry_proto::condition::reason;
use ferry_proto::verify::check_gz;
use ferry_proto::{ArtifactLimits, Revision};

use crate::backend::{BackendError, Built, Downloaded, Outcome, SourceBackend};
use crate::config::DesiredSource;
use crate::helm::fetch::{FetchError, RepoClient};

/// `spec.url` prefixes of a mirrored source.
pub const SCHEMES: [&str; 2] = ["ferry+http://", "ferry+https://"];

/// A source view is a few KiB; anything near this is not one.
const MAX_VIEW_BYTES: u64 = 1 << 20;

/// Whether `url` names a source on another source server.
pub fn is_mirror(url: &str) -> bool {
    SCHEMES.iter().any(|s| url.starts_with(s))
}

/// The upstream server's base URL, and the namespace and name of the source there.
pub fn parse(url: &str) -> Result<(String, String, String), String> {
    let bad = |why: &str| {
        format!(
            "{:?} {why}; expected ferry+http(s)://host[:port][/path]/NAMESPACE/NAME",
            crate::git::redact_url(url)
        )
    };
    let rest = url
        .strip_prefix("ferry+")
        .ok_or_else(|| bad("is not a mirror URL"))?;
    let trimmed = rest.trim_end_matches('/');
    let (base, name) = trimmed.rsplit_once('/').ok_or_else(|| bad("has no NAME"))?;
    let (base, namespace) = base
        .rsplit_once('/')
        .ok_or_else(|| bad("has no NAMESPACE"))?;
    if base.ends_with('/')
        || !base.contains("://")
        || base.split_once("://").is_some_and(|(_, h)| h.is_empty())
    {
        return Err(bad("has no host"));
    }
    for part in [namespace, name] {
        crate::config::check_name(part).map_err(|e| bad(&e))?;
    }
    Ok((base.to_string(), namespace.to_string(), name.to_string()))
}

/// The backend of mirrored sources. Blocking like every backend: it runs its async HTTP on the
/// server's runtime from the blocking thread the controller gives it.
pub struct MirrorBackend {
    limits: ArtifactLimits,
    runtime: tokio::runtime::Handle,
}

impl MirrorBackend {
    /// Must be called inside the server's runtime.
    pub fn new(limits: ArtifactLimits) -> Self {
        Self {
            limits,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    async fn fetch(
        &self,
        src: &DesiredSource,
        current: Option<&Revision>,
    ) -> Result<Outcome, BackendError> {
        let key = &src.key;
        let spec = src.spec.git().expect("mirrors are GitRepositories");
        let err = |reason: &'static str, transient: bool| {
            move |message: String| BackendError {
                reason,
                message: format!("{} {key}: {message}", key.kind),
                transient,
            }
        };
        let (base, ns, name) = parse(&spec.url).map_err(err(reason::INVALID_SPEC, false))?;
        let secret = src.secret.as_ref();
        let client = RepoClient::new(&base, secret, None, false, src.timeout)
            .map_err(|e| err(reason::INVALID_SPEC, false)(e.to_string()))?
            .with_bearer(secret.and_then(|s| s.get_str("bearerToken")));
        let fetch_err = |e: FetchError| {
            let permanent = matches!(
                e,
                FetchError::Http {
                    permanent: true,
                    ..
                }
            );
            err(reason::GIT_OPERATION_FAILED, !permanent)(format!("upstream source server: {e}"))
        };
        let join = |path: String| {
            client
                .base()
                .join(&path)
                .map_err(|e| err(reason::INVALID_SPEC, false)(format!("{path}: {e}")))
        };
        let view_url = join(format!("v1/sources/{ns}/{name}"))?;
        let body = client
            .download(&view_url, MAX_VIEW_BYTES)
            .await
            .map_err(fetch_err)?
            .ok_or_else(|| {
                err(reason::GIT_OPERATION_FAILED, false)(format!(
                    "{view_url}: answer larger than {MAX_VIEW_BYTES} bytes"
                ))
            })?;
        let view: SourceView = serde_json::from_slice(&body).map_err(|e| {
            err(reason::GIT_OPERATION_FAILED, true)(format!("{view_url}: not a source: {e}"))
        })?;
        let Some(a) = view.status.artifact else {
            return Err(err(reason::GIT_OPERATION_FAILED, true)(format!(
                "upstream {ns}/{name} at {base} has no artifact yet"
            )));
        };
        if current == Some(&a.revision) {
            return Ok(Outcome::Unchanged(a.revision));
        }
        if a.size > self.limits.max_total_size {
            return Err(err(reason::ARTIFACT_TOO_LARGE, false)(format!(
                "upstream artifact {} is {} bytes, above the {}-byte limit (--max-artifact-size)",
                a.digest, a.size, self.limits.max_total_size
            )));
        }
        // By digest at the upstream's base URL, not its advertised URL (which names the
        // address it is published at, maybe not one this server can reach).
        let art_url = join(ferry_proto::artifact_path(&a.digest)[1..].to_string())?;
        // Deflate's worst case over the tar size, plus framing.
        let limit = a.size + a.size / 1000 + 1024;
        let gz = client
            .download(&art_url, limit)
            .await
            .map_err(fetch_err)?
            .ok_or_else(|| {
                err(reason::ARTIFACT_FAILED, true)(format!(
                    "{art_url}: larger than {limit} bytes for a {}-byte artifact",
                    a.size
                ))
            })?;
        let size = check_gz(&gz[..], a.digest, a.size)
            .map_err(|e| err(reason::ARTIFACT_FAILED, true)(format!("{art_url}: {e}")))?;
        if size != a.size {
            return Err(err(reason::ARTIFACT_FAILED, true)(format!(
                "{art_url}: {size} bytes uncompressed, the upstream says {}",
                a.size
            )));
        }
        Ok(Outcome::Built(
            a.revision,
            Built {
                digest: a.digest,
                tar_size: size,
                downloaded: Downloaded {
                    objects: 1,
                    bytes: gz.len() as u64,
                },
                gz: gz.into(),
                skipped: view.status.skipped,
            },
        ))
    }
}

impl SourceBackend for MirrorBackend {
    fn sync(
        &self,
        source: &DesiredSource,
        current: Option<&Revision>,
        _interrupt: &AtomicBool,
    ) -> Result<Outcome, BackendError> {
        // The controller's timeout abandons this call; the client's own timeout (the source's)
        // ends the requests.
        self.runtime.block_on(self.fetch(source, current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_urls_name_a_server_and_a_source() {
        assert_eq!(
            parse("ferry+http://up.example:9090/team-a/app").expect("valid"),
            (
                "http://up.example:9090".into(),
                "team-a".into(),
                "app".into()
            )
        );
        assert_eq!(
            parse("ferry+https://up.example/ferry/team-a/app/").expect("valid"),
            (
                "https://up.example/ferry".into(),
                "team-a".into(),
                "app".into()
            )
        );
        for bad in [
            "ferry+http://up.example/app",
            "ferry+http:///team-a/app",
            "ferry+http://up.example/Team_A/app",
            "http://up.example/team-a/app",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
