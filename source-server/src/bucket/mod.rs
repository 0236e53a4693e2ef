//! Bucket sources: the objects under a prefix of an S3-protocol bucket as one artifact.
//!
//! Design. A reconcile GETs the bucket's `.sourceignore` object (conditionally: unchanged, it
//! costs a 304), lists the keys under the prefix ([`s3`]), drops directory markers, the
//! `.sourceignore` key and ignored keys, and computes Flux's revision
//! ([`ferry_proto::bucket_revision`]). An unchanged revision ends there. Otherwise every key's
//! path below the prefix is checked (the Git artifact rules: relative plain names, no `..`,
//! the limits of `ferry_proto::limits`) **before** anything is downloaded, then only the keys
//! whose ETag differs from the previous listing are downloaded (at most [`CONCURRENCY`] at
//! once); the rest are reused from the previous artifact's files, kept in memory per source.
//! Flux downloads every object again whenever one changes. After a restart the first
//! reconcile downloads everything once.

mod s3;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferry_proto::condition::reason;
use ferry_proto::{BucketSpec, LimitError, Revision, SourceKey, bucket_revision};
use futures::{StreamExt, TryStreamExt};

use crate::artifact::{self, ArtifactError, File, KeyRules, Limits, SOURCEIGNORE};
use crate::backend::{BackendError, Built, Downloaded, Outcome, SourceBackend};
use crate::config::{DesiredSource, MAX_IGNORE_BYTES};
pub use s3::S3Error;
use s3::{Client, Got, Listed};

/// Downloads in flight per reconcile (Flux's `maxConcurrentBucketFetches` is 100; a smaller
/// number keeps the server's memory and sockets modest, and the downloads are few).
pub const CONCURRENCY: usize = 16;

/// A listing may hold this many keys per allowed artifact entry (ignored keys are listed too).
const LISTING_FACTOR: u64 = 4;

/// An object as last downloaded.
#[derive(Clone)]
struct Cached {
    etag: String,
    data: Bytes,
}

/// What the previous reconcile of a source saw.
#[derive(Default)]
struct Snapshot {
    /// Endpoint, bucket and prefix: objects of another origin are not reused.
    origin: String,
    sourceignore: Option<Cached>,
    objects: HashMap<String, Cached>,
}

/// [`SourceBackend`] for `Bucket` sources.
pub struct BucketBackend {
    limits: Limits,
    snapshots: Mutex<HashMap<SourceKey, Arc<Snapshot>>>,
}

impl BucketBackend {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            snapshots: Mutex::new(HashMap::new()),
        }
    }
}

fn origin(spec: &BucketSpec) -> String {
    format!(
        "{:?} {} {} {:?}",
        spec.provider,
        spec.endpoint,
        spec.bucket_name,
        spec.prefix.as_deref().unwrap_or("")
    )
}

/// The artifact path of `key`: the key without the prefix (and without the `/` that follows a
/// prefix not ending in one), or why it cannot be one.
fn path_of<'k>(prefix: &str, key: &'k str) -> Result<&'k str, &'static str> {
    let rest = key.strip_prefix(prefix).unwrap_or(key);
    let rest = if !prefix.is_empty() && !prefix.ends_with('/') {
        rest.strip_prefix('/').unwrap_or(rest)
    } else {
        rest
    };
    if rest.starts_with('/') {
        return Err("an absolute path");
    }
    if !artifact::safe_path(rest.as_bytes()) {
        return Err(
            "not a relative path of plain names (empty, '.' or '..' components, '\\' or NUL)",
        );
    }
    Ok(rest)
}

struct Ctx<'a> {
    src: &'a DesiredSource,
    spec: &'a BucketSpec,
}

impl Ctx<'_> {
    fn err(
        &self,
        reason: &'static str,
        transient: bool,
        what: impl std::fmt::Display,
    ) -> BackendError {
        BackendError {
            reason,
            message: format!("Bucket {}: {what}", self.src.key),
            transient,
        }
    }

    fn s3(&self, e: S3Error) -> BackendError {
        let reason = match e {
            S3Error::TooLarge { .. } | S3Error::TooManyKeys { .. } => reason::ARTIFACT_TOO_LARGE,
            _ => reason::BUCKET_OPERATION_FAILED,
        };
        let transient = e.transient();
        self.err(reason, transient, e)
    }

    fn limit(&self, e: LimitError) -> BackendError {
        self.err(
            reason::ARTIFACT_TOO_LARGE,
            false,
            format!("bucket {:?}: {e}", self.spec.bucket_name),
        )
    }
}

impl SourceBackend for BucketBackend {
    fn sync(
        &self,
        source: &DesiredSource,
        current: Option<&Revision>,
        interrupt: &AtomicBool,
    ) -> Result<Outcome, BackendError> {
        let not_bucket = || BackendError {
            reason: reason::INVALID_SPEC,
            message: format!("{} {}: not a Bucket", source.key.kind, source.key),
            transient: false,
        };
        let spec = source.spec.bucket().ok_or_else(not_bucket)?;
        let ctx = Ctx { src: source, spec };
        // The controller runs backends on a blocking thread of its runtime.
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|e| ctx.err(reason::BUCKET_OPERATION_FAILED, true, e))?;
        rt.block_on(self.sync_async(&ctx, current, interrupt))
    }
}

impl BucketBackend {
    async fn sync_async(
        &self,
        ctx: &Ctx<'_>,
        current: Option<&Revision>,
        interrupt: &AtomicBool,
    ) -> Result<Outcome, BackendError> {
        let (src, spec) = (ctx.src, ctx.spec);
        let client = Client::new(spec, src.secret.as_ref(), src.timeout).map_err(|e| ctx.s3(e))?;
        let origin = origin(spec);
        let prev = self
            .snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&src.key)
            .filter(|s| s.origin == origin)
            .cloned()
            .unwrap_or_default();
        let mut downloaded = Downloaded::default();

        // Flux reads the ignore rules from the bucket's root `.sourceignore` object.
        let known = prev.sourceignore.as_ref().map(|c| c.etag.as_str());
        let sourceignore = match client
            .get(SOURCEIGNORE, MAX_IGNORE_BYTES as u64, known)
            .await
            .map_err(|e| ctx.s3(e))?
        {
            Got::Missing => None,
            Got::NotModified => prev.sourceignore.clone(),
            Got::Found { etag, data } => {
                downloaded.objects += 1;
                downloaded.bytes += data.len() as u64;
                Some(Cached { etag, data })
            }
        };
        let rules = KeyRules::new(
            sourceignore.as_ref().map(|c| c.data.as_ref()),
            spec.ignore.as_deref(),
        );

        let prefix = spec.prefix.as_deref().unwrap_or("");
        let max_keys = usize::try_from(self.limits.max_entries.saturating_mul(LISTING_FACTOR))
            .unwrap_or(usize::MAX);
        let listed = client.list(prefix, max_keys).await.map_err(|e| ctx.s3(e))?;
        let index: BTreeMap<String, Listed> = listed
            .into_iter()
            .filter(|o| !o.key.ends_with('/') && o.key != SOURCEIGNORE && !rules.is_ignored(&o.key))
            .map(|o| (o.key.clone(), o))
            .collect();
        let revision = bucket_revision(index.values().map(|o| (o.key.as_str(), o.etag.as_str())));
        let keep_ignore = |snapshot: &Arc<Snapshot>| Snapshot {
            origin: origin.clone(),
            sourceignore: sourceignore.clone(),
            objects: snapshot.objects.clone(),
        };
        if current == Some(&revision) {
            let updated = keep_ignore(&prev);
            self.remember(&src.key, updated);
            return Ok(Outcome::Unchanged(revision));
        }

        self.check_paths(ctx, prefix, &index)?;

        let wanted: Vec<&Listed> = index
            .values()
            .filter(|o| prev.objects.get(&o.key).is_none_or(|c| c.etag != o.etag))
            .collect();
        let total = AtomicU64::new(
            index
                .values()
                .filter_map(|o| prev.objects.get(&o.key).filter(|c| c.etag == o.etag))
                .map(|c| c.data.len() as u64)
                .sum(),
        );
        let fetched: Vec<(String, Option<Cached>)> = futures::stream::iter(wanted)
            .map(|o| {
                let (client, total) = (&client, &total);
                async move {
                    if interrupt.load(Ordering::Relaxed) {
                        return Err(ctx.err(
                            reason::INTERRUPTED,
                            true,
                            "interrupted (spec.timeout, or the source changed)",
                        ));
                    }
                    let got = client
                        .get(&o.key, self.limits.max_file_size, None)
                        .await
                        .map_err(|e| ctx.s3(e))?;
                    match got {
                        // Gone since the listing: Flux leaves it out too.
                        Got::Missing | Got::NotModified => Ok((o.key.clone(), None)),
                        Got::Found { etag, data } => {
                            let sum = total.fetch_add(data.len() as u64, Ordering::Relaxed)
                                + data.len() as u64;
                            self.limits.check_total(sum).map_err(|e| ctx.limit(e))?;
                            // A new ETag since the listing is the one the bytes have.
                            let etag = if etag.is_empty() {
                                o.etag.clone()
                            } else {
                                etag
                            };
                            Ok((o.key.clone(), Some(Cached { etag, data })))
                        }
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;

        let mut objects: HashMap<String, Cached> = HashMap::with_capacity(index.len());
        for key in index.keys() {
            if let Some(c) = prev.objects.get(key).filter(|c| c.etag == index[key].etag) {
                objects.insert(key.clone(), c.clone());
            }
        }
        for (key, got) in fetched {
            match got {
                Some(c) => {
                    downloaded.objects += 1;
                    downloaded.bytes += c.data.len() as u64;
                    objects.insert(key, c);
                }
                None => {
                    objects.remove(&key);
                }
            }
        }
        let revision = bucket_revision(objects.iter().map(|(k, c)| (k.as_str(), c.etag.as_str())));
        let files = objects.iter().map(|(key, c)| File {
            path: path_of(prefix, key)
                .expect("checked before downloading")
                .as_bytes()
                .to_vec(),
            executable: false,
            data: c.data.to_vec(),
        });
        let built = artifact::build_from_files(files, &self.limits).map_err(|e| {
            let transient = matches!(e, ArtifactError::Io(_));
            ctx.err(e.reason(), transient, format!("building the artifact: {e}"))
        })?;
        self.remember(
            &src.key,
            Snapshot {
                origin,
                sourceignore,
                objects,
            },
        );
        tracing::info!(
            bucket = %spec.bucket_name,
            keys = index.len(),
            downloaded = downloaded.objects,
            bytes = downloaded.bytes,
            "bucket artifact built"
        );
        Ok(Outcome::Built(
            revision,
            Built {
                digest: built.digest,
                tar_size: built.tar_size,
                gz: Bytes::from(built.gz),
                skipped: Vec::new(),
                downloaded,
            },
        ))
    }

    fn remember(&self, key: &SourceKey, snapshot: Snapshot) {
        self.snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), Arc::new(snapshot));
    }

    /// Every key must map to a safe path within the limits, and no key may be the "directory"
    /// of another: checked before downloading anything.
    fn check_paths(
        &self,
        ctx: &Ctx<'_>,
        prefix: &str,
        index: &BTreeMap<String, Listed>,
    ) -> Result<(), BackendError> {
        let mut dirs: BTreeSet<&str> = BTreeSet::new();
        let mut entries = 0u64;
        let mut total = 0u64;
        for o in index.values() {
            let path = path_of(prefix, &o.key).map_err(|why| {
                ctx.err(
                    reason::UNSAFE_PATH,
                    false,
                    format!(
                        "bucket {:?}: key {:?} cannot be a path in the artifact: {why}",
                        ctx.spec.bucket_name, o.key
                    ),
                )
            })?;
            self.limits
                .check_path(path.as_bytes())
                .and_then(|()| self.limits.check_file(path, o.size))
                .map_err(|e| ctx.limit(e))?;
            total = total.saturating_add(o.size);
            self.limits.check_total(total).map_err(|e| ctx.limit(e))?;
            for (i, _) in path.match_indices('/') {
                if dirs.insert(&path[..i]) {
                    entries += 1;
                }
            }
            entries += 1;
            self.limits
                .check_entries(entries)
                .map_err(|e| ctx.limit(e))?;
        }
        for o in index.values() {
            let path = path_of(prefix, &o.key).expect("checked above");
            if dirs.contains(path) {
                return Err(ctx.err(
                    reason::UNSAFE_PATH,
                    false,
                    format!(
                        "bucket {:?}: key {:?} is both a file and the directory of other keys",
                        ctx.spec.bucket_name, o.key
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_below_the_prefix_become_paths_and_hostile_ones_are_refused() {
        assert_eq!(path_of("", "a/b.yaml"), Ok("a/b.yaml"));
        assert_eq!(path_of("apps/", "apps/web/x.yaml"), Ok("web/x.yaml"));
        assert_eq!(path_of("apps", "apps/web/x.yaml"), Ok("web/x.yaml"));
        assert_eq!(path_of("app", "apps/x.yaml"), Ok("s/x.yaml"));
        assert!(path_of("", "/etc/passwd").is_err());
        assert!(path_of("", "../x").is_err());
        assert!(path_of("apps/", "apps/../../x").is_err());
        assert!(path_of("apps/", "apps//x").is_err());
        assert!(path_of("", "a/./b").is_err());
    }
}
