//! [`SourceBackend`] for Git: check the remote ref, fetch it into the source's bare mirror,
//! build the canonical tar.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferry_proto::Revision;

use super::{BackendError, Built, Outcome, SourceBackend};
use crate::artifact::{ArtifactError, Limits, build_artifact};
use crate::config::{DesiredSource, SecretData};
use crate::git::{Credentials, GitError, GitSource, Mirror};

pub struct GitBackend {
    cache_dir: PathBuf,
    limits: Limits,
    /// Open mirrors, by mirror key; opening re-reads the repository, so keep them.
    mirrors: Mutex<HashMap<String, Arc<Mirror>>>,
}

impl GitBackend {
    pub fn new(cache_dir: PathBuf) -> Self {
        Self::with_limits(cache_dir, Limits::default())
    }

    pub fn with_limits(cache_dir: PathBuf, limits: Limits) -> Self {
        Self {
            cache_dir,
            limits,
            mirrors: Mutex::new(HashMap::new()),
        }
    }

    fn mirror(&self, source: &DesiredSource) -> Result<Arc<Mirror>, GitError> {
        // Names cannot contain '_', so `<namespace>_<name>` is unique and one path component.
        let key = format!("{}_{}", source.key.namespace, source.key.name);
        let mut mirrors = self.mirrors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = mirrors.get(&key) {
            return Ok(m.clone());
        }
        let m = Arc::new(Mirror::open_or_init(&self.cache_dir, &key)?);
        mirrors.insert(key, m.clone());
        Ok(m)
    }
}

/// The credentials a Secret carries, for the URL's transport (validated by the config loader).
pub fn credentials(url: &str, data: &SecretData) -> Option<Credentials> {
    if url.starts_with("ssh://") {
        return Some(Credentials::Ssh {
            identity: data.0.get("identity")?.clone(),
            known_hosts: data.0.get("known_hosts")?.clone(),
        });
    }
    if let Some(token) = data.get_str("bearerToken") {
        return Some(Credentials::Bearer(token.to_string()));
    }
    Some(Credentials::Basic {
        username: data.get_str("username")?.to_string(),
        password: data.get_str("password")?.to_string(),
    })
}

fn git_error(source: &DesiredSource, e: GitError) -> BackendError {
    BackendError {
        reason: e.reason(),
        message: format!("GitRepository {}: {e}", source.key),
        transient: e.is_transient(),
    }
}

fn artifact_error(source: &DesiredSource, e: ArtifactError) -> BackendError {
    BackendError {
        reason: e.reason(),
        message: format!("GitRepository {}: building the artifact: {e}", source.key),
        transient: matches!(e, ArtifactError::Io(_)),
    }
}

impl SourceBackend for GitBackend {
    fn sync(
        &self,
        source: &DesiredSource,
        current: Option<&Revision>,
        interrupt: &AtomicBool,
    ) -> Result<Outcome, BackendError> {
        let Some(spec) = source.spec.git() else {
            return Err(BackendError {
                reason: ferry_proto::condition::reason::INVALID_SPEC,
                message: format!("{} {}: not a GitRepository", source.key.kind, source.key),
                transient: false,
            });
        };
        let git = GitSource {
            url: spec.url.clone(),
            reference: spec.reference.clone(),
            auth: source
                .secret
                .as_ref()
                .and_then(|s| credentials(&spec.url, s)),
            timeout: source.timeout,
        };
        let mirror = self.mirror(source).map_err(|e| git_error(source, e))?;
        let rev = mirror
            .check(&git, interrupt)
            .map_err(|e| git_error(source, e))?;
        if current == Some(&rev) {
            return Ok(Outcome::Unchanged(rev));
        }
        let rev = mirror
            .fetch(&git, &rev, interrupt)
            .map_err(|e| git_error(source, e))?;
        let built = build_artifact(&mirror, &rev, spec.ignore.as_deref(), &self.limits)
            .map_err(|e| artifact_error(source, e))?;
        Ok(Outcome::Built(
            rev,
            Built {
                digest: built.digest,
                tar_size: built.tar_size,
                gz: Bytes::from(built.gz),
                skipped: built.skipped,
                downloaded: Default::default(),
            },
        ))
    }
}
