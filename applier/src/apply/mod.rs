//! Server-side apply of a rendered revision.
//!
//! Objects are applied in two stages — cluster definitions (CRDs, Namespaces, ClusterRoles)
//! first, then everything else once those are established — and each stage in two passes:
//! a *plan* pass that dry-runs every object (so one invalid object stops the stage before
//! anything is written, and unchanged objects are recognised without being written), then an
//! *execute* pass that writes only what the plan says changed. Field manager `ferry`, always with
//! `force` (Git is the source of truth). [`ApplyError`] names the object that failed.

mod diff;
mod managed_fields;
mod object;
mod resolve;
mod stage;

use std::fmt;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::Value;

pub use diff::changed_paths;
pub use managed_fields::{FOREIGN_MANAGERS, takeover_patch};
pub use object::{
    FORCE_ANNOTATION, OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL, ObjectId, PRUNE_ANNOTATION,
    SSA_ANNOTATION, SsaPolicy, annotation, from_value, owned_by, prune_disabled, set_owner_labels,
    split_api_version,
};
pub use resolve::{Resolved, Resolver};

/// The field manager Ferry applies as.
pub const FIELD_MANAGER: &str = "ferry";

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{object}: {message}")]
    InvalidObject { object: String, message: String },
    #[error("{object}: {api_version} is not served by the API server (missing CRD?)")]
    UnknownKind { object: String, api_version: String },
    #[error("API discovery failed: {0}")]
    Discovery(#[source] kube::Error),
    #[error("{object}: {action} failed: {source}")]
    Request {
        object: String,
        action: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error(
        "{object}: an immutable field changed ({message}); set spec.force (or annotation {FORCE_ANNOTATION}: enabled) to delete and recreate it"
    )]
    Immutable { object: String, message: String },
    #[error("{object}: not {what} after {timeout:?}")]
    Timeout {
        object: String,
        what: &'static str,
        timeout: Duration,
    },
    #[error("{}", join(.0))]
    Many(Vec<ApplyError>),
}

fn join(errors: &[ApplyError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApplyError {
    fn request(id: &ObjectId, action: &'static str, source: kube::Error) -> Self {
        ApplyError::Request {
            object: id.to_string(),
            action,
            source,
        }
    }
}

/// What applying one object did (Flux's vocabulary).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Created,
    Configured,
    Unchanged,
    /// Not applied on purpose (`ferry.dev/ssa: Ignore`, or `IfNotPresent` and present).
    Skipped,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Skipped => "skipped",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub id: ObjectId,
    pub version: String,
    pub action: Action,
}

/// The outcome of applying one revision, in input order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeSet {
    pub changes: Vec<Change>,
}

impl ChangeSet {
    /// Objects that were created or configured.
    pub fn written(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| matches!(c.action, Action::Created | Action::Configured))
    }

    /// `2 created, 1 configured, 5 unchanged` (zero counts left out).
    pub fn summary(&self) -> String {
        let mut parts = vec![];
        for action in [
            Action::Created,
            Action::Configured,
            Action::Unchanged,
            Action::Skipped,
        ] {
            let n = self.changes.iter().filter(|c| c.action == action).count();
            if n > 0 {
                parts.push(format!("{n} {action}"));
            }
        }
        if parts.is_empty() {
            "no objects".into()
        } else {
            parts.join(", ")
        }
    }
}

#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Delete and recreate objects whose immutable fields changed.
    pub force: bool,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// How long to wait for CRDs to be established before the second stage.
    pub wait_timeout: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            force: false,
            concurrency: 32,
            wait_timeout: Duration::from_secs(60),
        }
    }
}

/// One object's drift: the fields whose live value differs from Git.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    pub id: ObjectId,
    pub version: String,
    /// Empty when the object does not exist.
    pub fields: Vec<String>,
    pub missing: bool,
}

/// What the plan pass decided for one object.
#[derive(Debug)]
enum Verdict {
    Create,
    Unchanged,
    Skip,
    /// Values differ (`fields`) and/or foreign managers own fields to take back.
    Update {
        fields: Vec<String>,
        takeover: bool,
    },
    Recreate,
}

struct Planned {
    id: ObjectId,
    version: String,
    obj: DynamicObject,
    api: Api<DynamicObject>,
    live: Option<Value>,
    verdict: Verdict,
}

/// Applies rendered objects. Cheap to share: holds the client and the discovery cache.
pub struct Applier {
    client: Client,
    resolver: Resolver,
}

impl Applier {
    pub fn new(client: Client) -> Self {
        Self {
            resolver: Resolver::new(client.clone()),
            client,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Applies `objects` (already rendered, namespaced, labelled) in stages. Either every stage's
    /// plan succeeds and its changes are written, or an error names what failed; on a failed plan
    /// nothing of that stage was written.
    pub async fn apply_all(
        &self,
        objects: Vec<DynamicObject>,
        opts: &ApplyOptions,
    ) -> Result<ChangeSet, ApplyError> {
        let (definitions, rest): (Vec<_>, Vec<_>) =
            objects.into_iter().partition(stage::is_definition);
        let mut changes = ChangeSet::default();
        if !definitions.is_empty() {
            let done = self.apply_stage(definitions, opts).await?;
            let crds_changed = done.iter().any(|(c, _)| {
                c.id.kind == "CustomResourceDefinition" && c.action != Action::Unchanged
            });
            stage::wait_established(&self.client, &done, opts.wait_timeout).await?;
            if crds_changed {
                self.resolver.invalidate().await;
            }
            changes.changes.extend(done.into_iter().map(|(c, _)| c));
        }
        let done = self.apply_stage(rest, opts).await?;
        changes.changes.extend(done.into_iter().map(|(c, _)| c));
        Ok(changes)
    }

    /// Dry-runs `objects` and reports which differ from the live state, writing nothing.
    pub async fn drift(
        &self,
        objects: Vec<DynamicObject>,
        opts: &ApplyOptions,
    ) -> Result<Vec<Drift>, ApplyError> {
        let planned = self.plan(objects, opts).await?;
        Ok(planned
            .into_iter()
            .filter_map(|p| match p.verdict {
                Verdict::Create => Some(Drift {
                    id: p.id,
                    version: p.version,
                    fields: vec![],
                    missing: true,
                }),
                Verdict::Update { fields, .. } if !fields.is_empty() => Some(Drift {
                    id: p.id,
                    version: p.version,
                    fields,
                    missing: false,
                }),
                Verdict::Recreate => Some(Drift {
                    id: p.id,
                    version: p.version,
                    fields: vec!["(immutable field)".into()],
                    missing: false,
                }),
                _ => None,
            })
            .collect())
    }

    async fn apply_stage(
        &self,
        objects: Vec<DynamicObject>,
        opts: &ApplyOptions,
    ) -> Result<Vec<(Change, Option<Value>)>, ApplyError> {
        let planned = self.plan(objects, opts).await?;
        stream::iter(planned)
            .map(|p| self.execute(p))
            .buffered(opts.concurrency.max(1))
            .try_collect()
            .await
    }

    async fn plan(
        &self,
        objects: Vec<DynamicObject>,
        opts: &ApplyOptions,
    ) -> Result<Vec<Planned>, ApplyError> {
        let results: Vec<Result<Planned, ApplyError>> = stream::iter(objects)
            .map(|obj| self.plan_one(obj, opts))
            .buffered(opts.concurrency.max(1))
            .collect()
            .await;
        let mut planned = Vec::with_capacity(results.len());
        let mut errors = vec![];
        for r in results {
            match r {
                Ok(p) => planned.push(p),
                Err(e) => errors.push(e),
            }
        }
        match errors.len() {
            0 => Ok(planned),
            1 => Err(errors.remove(0)),
            _ => Err(ApplyError::Many(errors)),
        }
    }

    async fn plan_one(
        &self,
        mut obj: DynamicObject,
        opts: &ApplyOptions,
    ) -> Result<Planned, ApplyError> {
        let (id, version) = ObjectId::of(&obj)?;
        let policy = SsaPolicy::of(&id, &obj)?;
        let resolved = self.resolver.resolve(&id, &version).await?;
        if resolved.namespaced && id.namespace.is_empty() {
            return Err(ApplyError::InvalidObject {
                object: id.to_string(),
                message: "namespaced kind without metadata.namespace".into(),
            });
        }
        if !resolved.namespaced {
            obj.metadata.namespace = None;
        }
        obj.metadata.managed_fields = None;
        obj.metadata.resource_version = None;
        let api = resolved.api(&self.client, &id.namespace);
        let mut planned = Planned {
            id,
            version,
            obj,
            api,
            live: None,
            verdict: Verdict::Skip,
        };
        if policy == SsaPolicy::Ignore {
            return Ok(planned);
        }
        let live = planned
            .api
            .get_opt(&planned.id.name)
            .await
            .map_err(|e| ApplyError::request(&planned.id, "get", e))?;
        let live = match live {
            Some(l) => serde_json::to_value(l).map_err(|e| ApplyError::InvalidObject {
                object: planned.id.to_string(),
                message: format!("live object is not valid JSON: {e}"),
            })?,
            None => {
                // The dry-run create validates the object before anything is written.
                self.dry_run(&planned).await?;
                planned.verdict = Verdict::Create;
                return Ok(planned);
            }
        };
        if policy == SsaPolicy::IfNotPresent {
            planned.live = Some(live);
            return Ok(planned);
        }
        let verdict = match self.dry_run(&planned).await {
            Ok(result) => {
                let fields = changed_paths(&live, &result);
                let takeover = policy == SsaPolicy::Override
                    && managed_fields::has_foreign_managers(managed_fields_of(&live));
                if fields.is_empty() && !takeover {
                    Verdict::Unchanged
                } else {
                    Verdict::Update { fields, takeover }
                }
            }
            Err(ApplyError::Request {
                source: kube::Error::Api(status),
                ..
            }) if is_immutable(&status) => {
                if opts.force || object::force_enabled(&planned.obj) {
                    Verdict::Recreate
                } else {
                    return Err(ApplyError::Immutable {
                        object: planned.id.to_string(),
                        message: status.message.clone(),
                    });
                }
            }
            Err(e) => return Err(e),
        };
        planned.live = Some(live);
        planned.verdict = verdict;
        Ok(planned)
    }

    async fn dry_run(&self, p: &Planned) -> Result<Value, ApplyError> {
        let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
        let result = p
            .api
            .patch(&p.id.name, &params, &Patch::Apply(&p.obj))
            .await
            .map_err(|e| ApplyError::request(&p.id, "dry-run apply", e))?;
        serde_json::to_value(result).map_err(|e| ApplyError::InvalidObject {
            object: p.id.to_string(),
            message: format!("dry-run result is not valid JSON: {e}"),
        })
    }

    async fn apply(&self, p: &Planned) -> Result<Value, ApplyError> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let result = p
            .api
            .patch(&p.id.name, &params, &Patch::Apply(&p.obj))
            .await
            .map_err(|e| ApplyError::request(&p.id, "apply", e))?;
        serde_json::to_value(result).map_err(|e| ApplyError::InvalidObject {
            object: p.id.to_string(),
            message: format!("apply result is not valid JSON: {e}"),
        })
    }

    async fn execute(&self, p: Planned) -> Result<(Change, Option<Value>), ApplyError> {
        let action = match &p.verdict {
            Verdict::Skip => Action::Skipped,
            Verdict::Unchanged => Action::Unchanged,
            Verdict::Create => {
                let result = self.apply(&p).await?;
                return Ok((change(&p, Action::Created), Some(result)));
            }
            Verdict::Update { fields, takeover } => {
                if *takeover && let Some(live) = &p.live {
                    self.take_over(&p, live).await?;
                }
                let result = self.apply(&p).await?;
                // A takeover alone may turn out to change nothing but ownership.
                let action = match &p.live {
                    Some(live) if fields.is_empty() && changed_paths(live, &result).is_empty() => {
                        Action::Unchanged
                    }
                    _ => Action::Configured,
                };
                return Ok((change(&p, action), Some(result)));
            }
            Verdict::Recreate => {
                self.recreate(&p).await?;
                let result = self.apply(&p).await?;
                return Ok((change(&p, Action::Created), Some(result)));
            }
        };
        Ok((change(&p, action), p.live.clone()))
    }

    async fn take_over(&self, p: &Planned, live: &Value) -> Result<(), ApplyError> {
        let api_version = p.id.api_version(&p.version);
        let Some(patch) = takeover_patch(managed_fields_of(live), FIELD_MANAGER, &api_version)
        else {
            return Ok(());
        };
        let patch = serde_json::from_value(patch).map_err(|e| ApplyError::InvalidObject {
            object: p.id.to_string(),
            message: format!("managedFields patch: {e}"),
        })?;
        p.api
            .patch(
                &p.id.name,
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await
            .map_err(|e| ApplyError::request(&p.id, "managedFields takeover", e))?;
        Ok(())
    }

    /// Deletes the live object and waits until it is gone, so the following create cannot
    /// collide with the terminating one.
    async fn recreate(&self, p: &Planned) -> Result<(), ApplyError> {
        match p.api.delete(&p.id.name, &DeleteParams::foreground()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(()),
            Err(e) => return Err(ApplyError::request(&p.id, "delete for recreate", e)),
        }
        let timeout = Duration::from_secs(60);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let gone = p
                .api
                .get_opt(&p.id.name)
                .await
                .map_err(|e| ApplyError::request(&p.id, "get", e))?
                .is_none();
            if gone {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApplyError::Timeout {
                    object: p.id.to_string(),
                    what: "deleted",
                    timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn change(p: &Planned, action: Action) -> Change {
    Change {
        id: p.id.clone(),
        version: p.version.clone(),
        action,
    }
}

fn managed_fields_of(obj: &Value) -> &[Value] {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The API server reports immutable-field changes as 422 Invalid with this wording.
fn is_immutable(status: &kube::core::Status) -> bool {
    status.code == 422
        && (status.message.contains("field is immutable")
            || status.message.contains("is immutable")
            || status.message.contains("may not change once set"))
}
