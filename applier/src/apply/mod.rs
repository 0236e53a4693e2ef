//! Server-side apply of a rendered revision.
//!
//! Objects are applied in two stages — cluster definitions (CRDs, Namespaces, ClusterRoles)
//! first, then everything else once those are established — and each stage in two passes:
//! a *plan* pass ([`plan`]: one metadata LIST per kind, a dry-run only for objects that may
//! differ, so unchanged objects cost nothing and an update the server would refuse stops the
//! stage before anything is written), then an *execute* pass that writes only what the plan says
//! changed: creates first, and updates only when every create succeeded, so a revision that
//! cannot be created leaves the existing objects as they were. Field manager `ferry`, always
//! with `force` (Git is the source of truth). [`ApplyError`] names the object that failed; what
//! was written before a failure is reported all the same, so it can be inventoried.

mod diff;
mod managed_fields;
mod memory;
mod object;
mod plan;
mod resolve;
mod stage;

use std::collections::HashMap;
use std::fmt;
use std::ops::ControlFlow;
use std::time::Duration;

use futures::{StreamExt, stream};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::Request;
use serde_json::Value;

use memory::Memory;
use plan::{Applied, Planned, Verdict, gather, managed_fields_of};

pub use diff::changed_paths;
pub use ferry_proto::ObjectRef;
pub use managed_fields::{FOREIGN_MANAGERS, takeover_patch};
pub use object::{
    FORCE_ANNOTATION, OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL, PRUNE_ANNOTATION, SSA_ANNOTATION,
    SsaPolicy, annotation, from_value, object_ref, owned_by, prune_disabled, set_owner_labels,
};
pub use resolve::{Resolved, Resolver};

/// Objects per LIST page (client-go's pager default), so a kind with many objects is read in
/// bounded responses instead of one the API server must build whole.
pub const LIST_PAGE_SIZE: u32 = 500;

/// Every page of one LIST: `page` fetches the page the params ask for and returns its items
/// and `metadata.continue`; pages are requested until that is empty.
pub async fn list_pages<T, E, F, Fut>(mut page: F) -> Result<Vec<T>, E>
where
    F: FnMut(ListParams) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>), E>>,
{
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(LIST_PAGE_SIZE);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let (mut more, next) = page(params).await?;
        items.append(&mut more);
        match next {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(items),
        }
    }
}

/// Every object of `group`'s kind in `group`'s namespace, by name, from one (paginated) LIST:
/// health waits and prune read a whole group this way instead of one GET per object.
pub async fn list_by_name(
    api: &Api<DynamicObject>,
    group: &ObjectRef,
) -> Result<HashMap<String, DynamicObject>, ApplyError> {
    let live = list_pages(|params| async move {
        let list = api.list(&params).await?;
        Ok((list.items, list.metadata.continue_))
    })
    .await
    .map_err(|e| ApplyError::Request {
        object: format!(
            "{} in namespace {:?}",
            group.kind,
            group.namespace_or_empty()
        ),
        action: "list",
        source: e,
    })?;
    Ok(live
        .into_iter()
        .filter_map(|o| o.metadata.name.clone().map(|n| (n, o)))
        .collect())
}

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
    fn request(id: &ObjectRef, action: &'static str, source: kube::Error) -> Self {
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
    pub id: ObjectRef,
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
    pub id: ObjectRef,
    pub version: String,
    /// Empty when the object does not exist.
    pub fields: Vec<String>,
    pub missing: bool,
}

/// Applies rendered objects. Cheap to share: holds the client, the discovery cache and the
/// [`Memory`] of what was applied.
pub struct Applier {
    client: Client,
    resolver: Resolver,
    memory: Memory,
}

impl Applier {
    pub fn new(client: Client) -> Self {
        Self {
            resolver: Resolver::new(client.clone()),
            client,
            memory: Memory::default(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Forgets what was applied to `id` (after it was deleted).
    pub fn forget(&self, id: &ObjectRef) {
        self.memory.forget(id);
    }

    /// Applies `objects` (already rendered, namespaced, labelled) in stages, appending to
    /// `changes` what each object's apply did as it completes. Either every stage succeeds, or
    /// an error names what failed; `changes` then holds what was written before it.
    pub async fn apply_all(
        &self,
        objects: Vec<DynamicObject>,
        opts: &ApplyOptions,
        changes: &mut ChangeSet,
    ) -> Result<(), ApplyError> {
        let (definitions, rest): (Vec<_>, Vec<_>) =
            objects.into_iter().partition(stage::is_definition);
        if !definitions.is_empty() {
            let first = changes.changes.len();
            self.apply_stage(definitions, opts, changes).await?;
            let done = &changes.changes[first..];
            let crds_changed = done
                .iter()
                .any(|c| c.id.kind == "CustomResourceDefinition" && c.action != Action::Unchanged);
            stage::wait_established(&self.client, done, opts.wait_timeout).await?;
            if crds_changed {
                self.resolver.invalidate().await;
            }
        }
        self.apply_stage(rest, opts, changes).await
    }

    /// Dry-runs `objects` where they may differ and reports which do, writing nothing.
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
        changes: &mut ChangeSet,
    ) -> Result<(), ApplyError> {
        let started = std::time::Instant::now();
        let planned = self.plan(objects, opts).await?;
        tracing::debug!(
            objects = planned.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "planned"
        );
        let (creates, others): (Vec<_>, Vec<_>) = planned
            .into_iter()
            .partition(|p| matches!(p.verdict, Verdict::Create));
        self.execute_all(creates, opts, changes).await?;
        self.execute_all(others, opts, changes).await
    }

    /// Executes every planned object (in order, `opts.concurrency` at a time), recording each
    /// success even when others fail.
    async fn execute_all(
        &self,
        planned: Vec<Planned>,
        opts: &ApplyOptions,
        changes: &mut ChangeSet,
    ) -> Result<(), ApplyError> {
        let mut results = stream::iter(planned)
            .map(|p| self.execute(p))
            .buffered(opts.concurrency.max(1));
        let mut errors = vec![];
        while let Some(r) = results.next().await {
            match r {
                Ok(change) => changes.changes.push(change),
                Err(e) => errors.push(Err(e)),
            }
        }
        gather::<()>(errors).map(drop)
    }

    /// Writes one object as planned and remembers the resourceVersion the server answered.
    async fn execute(&self, p: Planned) -> Result<Change, ApplyError> {
        let action = match &p.verdict {
            Verdict::Skip => Action::Skipped,
            Verdict::Unchanged => Action::Unchanged,
            Verdict::Create => {
                self.write(&p).await?;
                Action::Created
            }
            Verdict::Update { fields, takeover } => {
                if *takeover && let Some(live) = &p.live {
                    self.take_over(&p, live).await?;
                }
                match &p.live {
                    // A takeover alone may turn out to change nothing but ownership.
                    Some(live) if fields.is_empty() => {
                        let result: Value = self.send_apply(&p, false).await?;
                        self.memory.record(
                            &p.id,
                            result
                                .pointer("/metadata/resourceVersion")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                            p.fingerprint,
                        );
                        if changed_paths(live, &result).is_empty() {
                            Action::Unchanged
                        } else {
                            Action::Configured
                        }
                    }
                    _ => {
                        self.write(&p).await?;
                        Action::Configured
                    }
                }
            }
            Verdict::Recreate => {
                self.memory.forget(&p.id);
                self.recreate(&p).await?;
                self.write(&p).await?;
                Action::Created
            }
        };
        Ok(Change {
            id: p.id,
            version: p.version,
            action,
        })
    }

    async fn write(&self, p: &Planned) -> Result<(), ApplyError> {
        let applied: Applied = self.send_apply(p, false).await?;
        self.memory
            .record(&p.id, applied.resource_version(), p.fingerprint);
        Ok(())
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
        let req = Request::new(&p.url)
            .patch(
                &p.id.name,
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .map_err(|e| ApplyError::InvalidObject {
                object: p.id.to_string(),
                message: format!("managedFields patch request: {e}"),
            })?;
        let _: Applied = self
            .client
            .request(req)
            .await
            .map_err(|e| ApplyError::request(&p.id, "managedFields takeover", e))?;
        Ok(())
    }

    /// Deletes the live object and waits until it is gone, so the following create cannot
    /// collide with the terminating one.
    async fn recreate(&self, p: &Planned) -> Result<(), ApplyError> {
        let request_error = |e: kube::core::request::Error| ApplyError::InvalidObject {
            object: p.id.to_string(),
            message: format!("request: {e}"),
        };
        let delete = Request::new(&p.url)
            .delete(&p.id.name, &DeleteParams::foreground())
            .map_err(request_error)?;
        match self.client.request::<Value>(delete).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(()),
            Err(e) => return Err(ApplyError::request(&p.id, "delete for recreate", e)),
        }
        let timeout = Duration::from_secs(60);
        let gone = crate::poll::until(timeout, Duration::from_millis(200), (), |()| async {
            let get = Request::new(&p.url)
                .get(&p.id.name, &Default::default())
                .map_err(request_error)?;
            match self.client.request::<Applied>(get).await {
                Err(kube::Error::Api(s)) if s.is_not_found() => Ok(ControlFlow::Break(())),
                Err(e) => Err(ApplyError::request(&p.id, "get", e)),
                Ok(_) => Ok(ControlFlow::Continue(())),
            }
        })
        .await?;
        gone.map_err(|()| ApplyError::Timeout {
            object: p.id.to_string(),
            what: "deleted",
            timeout,
        })
    }
}
