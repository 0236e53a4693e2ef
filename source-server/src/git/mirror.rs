//! `Mirror`: a bare repository under the cache directory holding the fetched revisions of one
//! source, with the remote-ref check and the shallow fetch of the one ref a spec follows.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use ferry_proto::Revision;
use gix::remote::Direction;
use gix::remote::fetch::Shallow;

use super::error::{classify, redact_url};
use super::refs::Target;
use super::{GitError, GitSource, auth, watchdog};

/// One source's bare mirror. `Send + Sync`; fetches on one mirror are serialised.
pub struct Mirror {
    /// Reopened after each network operation: see [`open_repo`].
    repo: std::sync::RwLock<gix::ThreadSafeRepository>,
    path: PathBuf,
    fetch_lock: Mutex<()>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror").field("path", &self.path).finish()
    }
}

/// What the remote currently advertises for a spec's ref.
struct Resolved {
    revision: Revision,
    /// The full ref name to fetch.
    full_ref: String,
}

impl Mirror {
    /// Opens the mirror `cache_dir/key`, creating a bare repository there if needed. `key`
    /// is one path component of `[A-Za-z0-9._-]` (the caller derives it from the source's
    /// namespace and name).
    pub fn open_or_init(cache_dir: &Path, key: &str) -> Result<Mirror, GitError> {
        let valid = !key.is_empty()
            && !key.starts_with('.')
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        let path = cache_dir.join(key);
        let mirror_err = |detail: String| GitError::Mirror {
            path: path.display().to_string(),
            detail,
        };
        if !valid {
            return Err(mirror_err(format!(
                "mirror key {key:?} must be one path component of [A-Za-z0-9._-]"
            )));
        }
        let open = open_repo;
        let repo = match path.join("HEAD").is_file().then(|| open(&path)) {
            Some(Ok(repo)) => repo,
            existing => {
                // Absent, or left half-initialised by a crash: start over, it is only a cache.
                if existing.is_some() || path.exists() {
                    std::fs::remove_dir_all(&path)
                        .map_err(|e| mirror_err(format!("removing a broken mirror: {e}")))?;
                }
                std::fs::create_dir_all(cache_dir)
                    .map_err(|e| mirror_err(format!("creating the cache directory: {e}")))?;
                gix::init_bare(&path).map_err(|e| mirror_err(format!("init: {e}")))?;
                open(&path).map_err(|e| mirror_err(format!("open: {e}")))?
            }
        };
        Ok(Mirror {
            repo: std::sync::RwLock::new(repo),
            path,
            fetch_lock: Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle for reading objects (building artifacts) on the current thread.
    pub fn repo(&self) -> gix::Repository {
        self.repo
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .to_thread_local()
    }

    /// Reopens the repository, so its object database has slots for every pack on disk.
    fn refresh(&self) -> Result<(), GitError> {
        let repo = open_repo(&self.path).map_err(|e| GitError::Mirror {
            path: self.path.display().to_string(),
            detail: format!("reopening: {e}"),
        })?;
        *self.repo.write().unwrap_or_else(|p| p.into_inner()) = repo;
        Ok(())
    }

    /// Whether `commit` (40 hex) is already in the mirror.
    pub fn has_commit(&self, commit: &str) -> bool {
        gix::ObjectId::from_hex(commit.as_bytes())
            .ok()
            .and_then(|id| self.repo().find_object(id).ok().map(|o| o.kind))
            == Some(gix::object::Kind::Commit)
    }

    /// Lists the remote's refs (no pack is transferred) and returns the revision the spec's
    /// ref points at now. For `ref.commit`, a commit already in the mirror needs no network.
    pub fn check(&self, src: &GitSource, interrupt: &AtomicBool) -> Result<Revision, GitError> {
        let url = redact_url(&src.url);
        let target = target(src, &url)?;
        if let Target::Commit { commit, branch } = &target
            && self.has_commit(commit)
        {
            return revision(&url, branch.clone(), commit);
        }
        let refspec = target.list_refspec();
        let resolved = self.remote_call(src, &url, &refspec, interrupt, |conn, _| {
            let (ref_map, _handshake) = conn
                .ref_map(gix::progress::Discard, Default::default())
                .map_err(|e| (e, "listing refs"))?;
            Ok(resolve(&target, &ref_map.remote_refs, &url))
        })??;
        Ok(resolved.revision)
    }

    /// Fetches the spec's ref (depth 1; full history for `ref.commit`) unless its commit is
    /// already here, and returns the revision now in the mirror — `rev` from [`Self::check`]
    /// unless the ref moved again in between. For semver, `rev`'s tag is fetched.
    pub fn fetch(
        &self,
        src: &GitSource,
        rev: &Revision,
        interrupt: &AtomicBool,
    ) -> Result<Revision, GitError> {
        let url = redact_url(&src.url);
        let mut target = target(src, &url)?;
        if let Target::Semver(..) = target {
            let Some(tag) = rev.name() else {
                return Err(GitError::Invalid {
                    url,
                    detail: format!("revision {rev} for a semver ref has no tag name"),
                });
            };
            target = Target::Tag(tag.to_string());
        }
        let _serialised = self.fetch_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Target::Commit { commit, branch } = &target
            && self.has_commit(commit)
        {
            return revision(&url, branch.clone(), commit);
        }
        let refspec = target.list_refspec();
        let depth = match target {
            // Any commit of the branch may be asked for: take the whole history (what
            // `git fetch --unshallow` asks for).
            Target::Commit { .. } => NonZeroU32::new(i32::MAX as u32),
            _ => NonZeroU32::new(1),
        }
        .expect("non-zero literal");
        let resolved = self.remote_call(src, &url, &refspec, interrupt, |conn, flag| {
            let prepare = conn
                .prepare_fetch(gix::progress::Discard, Default::default())
                .map_err(|e| (e, "listing refs"))?;
            let resolved = match resolve(&target, &prepare.ref_map().remote_refs, &url) {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            if self.has_commit(resolved.revision.commit())
                && !matches!(target, Target::Commit { .. })
            {
                // Dropping `prepare` ends the conversation without a pack.
                return Ok(Ok(resolved));
            }
            prepare
                .with_shallow(Shallow::DepthAtRemote(depth))
                .receive(gix::progress::Discard, flag)
                .map_err(|e| (e, "receiving the pack"))?;
            Ok(Ok(resolved))
        })??;
        let commit = match &target {
            Target::Commit { commit, .. } => commit.clone(),
            _ => resolved.revision.commit().to_string(),
        };
        if !self.has_commit(&commit) {
            return Err(GitError::RefNotFound {
                url,
                reference: target.describe(),
                detail: match target {
                    Target::Commit { .. } => "the commit is not in the branch's history".into(),
                    _ => format!(
                        "fetched {} but commit {commit} is missing",
                        resolved.full_ref
                    ),
                },
            });
        }
        match target {
            Target::Commit { commit, branch } => revision(&url, branch, &commit),
            _ => Ok(resolved.revision),
        }
    }

    /// Connects to `src` with `refspec` under the source's timeout and runs `op` on the
    /// connection, turning gix failures into classified [`GitError`]s.
    fn remote_call<T>(
        &self,
        src: &GitSource,
        url: &str,
        refspec: &str,
        interrupt: &AtomicBool,
        op: impl FnOnce(
            gix::remote::Connection<
                '_,
                '_,
                '_,
                Box<dyn gix::protocol::transport::client::blocking_io::Transport + Send>,
            >,
            &AtomicBool,
        ) -> Result<T, (gix::Error, &'static str)>,
    ) -> Result<T, GitError> {
        self.refresh()?;
        let mut repo = self.repo();
        let ssh_files = auth::configure(&mut repo, url, src.auth.as_ref(), src.timeout)?;
        let outcome = watchdog::run(src.timeout, interrupt, |flag| {
            let remote = repo
                .remote_at(src.url.as_str())
                .map_err(|e| (e, "parsing the URL"))?
                .with_fetch_tags(gix::remote::fetch::Tags::None)
                .with_refspecs([refspec], Direction::Fetch)
                .map_err(|e| (e, "configuring the refspec"))?;
            let mut conn = remote
                .connect(Direction::Fetch)
                .map_err(|e| (e, "connecting"))?
                .with_credentials(auth::helper);
            if let Some(options) = http_deadline(&repo, &src.url, src.timeout) {
                conn = conn.with_transport_options(options);
            }
            op(conn, flag)
        });
        match outcome.result {
            Ok(v) => {
                // The fetch may have added a pack the open handle has no slot for.
                self.refresh()?;
                Ok(v)
            }
            Err((err, stage)) => {
                if outcome.timed_out {
                    Err(GitError::Timeout {
                        url: url.to_string(),
                        operation: stage,
                        after: src.timeout,
                    })
                } else if outcome.interrupted {
                    Err(GitError::Interrupted {
                        url: url.to_string(),
                        operation: stage,
                    })
                } else if let Some(detail) = ssh_files.as_ref().and_then(auth::SshFiles::refusal) {
                    Err(GitError::AuthFailed {
                        url: url.to_string(),
                        detail,
                    })
                } else {
                    Err(classify(url, stage, &err, src.timeout))
                }
            }
        }
    }
}

/// Opens a mirror. gix's object database has a fixed number of index slots per open handle
/// (`Options::isolated()` fixes 32), and every shallow fetch adds a pack that nothing
/// consolidates: with fixed slots the 32nd new revision of a source failed ("too few index
/// slots"), also after a restart. Sized from the packs on disk (+10%) at each open instead, and
/// the mirror reopens around every network operation.
fn open_repo(path: &Path) -> Result<gix::ThreadSafeRepository, gix::Error> {
    let slots = gix::odb::store::init::Slots::AsNeededByDiskState {
        multiplier: 1.1,
        minimum: 32,
    };
    gix::ThreadSafeRepository::open_opts(
        path,
        gix::open::Options::isolated().object_store_slots(slots),
    )
}

/// HTTP transport options whose client aborts any request running longer than `timeout`:
/// gix's reqwest client has a connect timeout but no read deadline, so a server that accepts
/// and then stalls would otherwise hold the call (and the mirror's fetch lock) forever.
fn http_deadline(
    repo: &gix::Repository,
    url: &str,
    timeout: std::time::Duration,
) -> Option<Box<dyn std::any::Any>> {
    use gix::protocol::transport::client::blocking_io::http;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return None;
    }
    let mut options = repo
        .transport_options(url, None)
        .ok()
        .flatten()
        .and_then(|o| o.downcast::<http::Options>().ok())
        .map(|o| *o)
        .unwrap_or_default();
    let backend = http::reqwest::Options {
        configure_client: Some(Box::new(move |builder| Ok(builder.timeout(timeout)))),
        configure_request: None,
    };
    options.backend = Some(std::sync::Arc::new(std::sync::Mutex::new(backend)));
    Some(Box::new(options))
}

fn target(src: &GitSource, url: &str) -> Result<Target, GitError> {
    Target::from_ref(src.reference.as_ref()).map_err(|detail| GitError::Invalid {
        url: url.to_string(),
        detail,
    })
}

fn revision(url: &str, name: Option<String>, commit: &str) -> Result<Revision, GitError> {
    Revision::new(name, commit).map_err(|e| GitError::Invalid {
        url: url.to_string(),
        detail: e.to_string(),
    })
}

fn resolve(
    target: &Target,
    refs: &[gix::protocol::handshake::Ref],
    url: &str,
) -> Result<Resolved, GitError> {
    let Some((name, full_ref, commit)) = target.pick(refs) else {
        return Err(GitError::RefNotFound {
            url: url.to_string(),
            reference: target.describe(),
            detail: String::new(),
        });
    };
    let commit = commit.to_hex().to_string();
    let revision = match target {
        Target::Commit { commit, branch } => revision(url, branch.clone(), commit)?,
        _ => revision(url, name, &commit)?,
    };
    Ok(Resolved { revision, full_ref })
}
