//! The plan pass: what applying each object would do, asking the server as little as possible.
//!
//! One metadata-only LIST per kind and namespace tells which objects exist, at which
//! resourceVersion, and whether a foreign manager (`kubectl edit` & co.) owns fields. Then:
//! - absent → **create**; the apply itself is the only request (a dry-run first would double the
//!   cost of a first apply, and a refused create writes nothing anyway);
//! - present, and [`Memory`] says it is at the version our last apply or comparison left it,
//!   with the same manifest → **unchanged**, no request;
//! - otherwise → GET and a dry-run apply, compared field by field (what a reconcile after a
//!   `kubectl edit` or a new revision needs to know). Every dry-run of the stage finishes before
//!   anything is written, so an update the server would refuse stops the stage unwritten.

use std::collections::HashMap;

use futures::{StreamExt, stream};
use kube::api::{DynamicObject, ListMeta, Patch, PatchParams};
use kube::core::Request;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::memory::fingerprint;
use super::{
    Applier, ApplyError, ApplyOptions, FIELD_MANAGER, ObjectRef, SsaPolicy, changed_paths,
    managed_fields, object,
};

/// What the plan pass decided for one object.
#[derive(Debug)]
pub(super) enum Verdict {
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

pub(super) struct Planned {
    pub id: ObjectRef,
    pub version: String,
    pub obj: DynamicObject,
    /// The kind's collection URL (in the object's namespace when namespaced).
    pub url: String,
    pub fingerprint: u64,
    /// The live object, kept only when executing needs it (a takeover).
    pub live: Option<Value>,
    pub verdict: Verdict,
}

struct Prepared {
    planned: Planned,
    policy: SsaPolicy,
}

/// The part of a metadata-only LIST the plan reads; the rest (labels, field sets) is skipped
/// while parsing, so listing 1000 objects allocates little.
#[derive(Deserialize)]
struct MetaList {
    /// The real kube-apiserver sends `"items": null` for an empty metadata-only LIST
    /// (`PartialObjectMetadataList`), e.g. of Deployments in a fresh namespace.
    #[serde(default, deserialize_with = "null_as_empty")]
    items: Vec<MetaItem>,
    #[serde(default)]
    metadata: ListMeta,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<MetaItem>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct MetaItem {
    metadata: Meta,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    resource_version: String,
    #[serde(default)]
    managed_fields: Vec<ManagerEntry>,
}

#[derive(Deserialize)]
struct ManagerEntry {
    #[serde(default)]
    manager: String,
    #[serde(default)]
    subresource: String,
}

/// One existing object, as the LIST saw it.
struct Live {
    resource_version: String,
    foreign_managers: bool,
}

impl Live {
    fn of(meta: Meta) -> (String, Self) {
        let foreign_managers = meta.managed_fields.iter().any(|m| {
            m.subresource.is_empty() && managed_fields::FOREIGN_MANAGERS.contains(&&*m.manager)
        });
        (
            meta.name,
            Live {
                resource_version: meta.resource_version,
                foreign_managers,
            },
        )
    }
}

/// The answer to an apply: only its resourceVersion is read.
#[derive(Deserialize)]
pub(super) struct Applied {
    #[serde(default)]
    metadata: AppliedMeta,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppliedMeta {
    resource_version: Option<String>,
}

impl Applied {
    pub fn resource_version(self) -> Option<String> {
        self.metadata.resource_version
    }
}

/// Collects per-object results; one error or all of them.
pub(super) fn gather<T>(results: Vec<Result<T, ApplyError>>) -> Result<Vec<T>, ApplyError> {
    let mut ok = Vec::with_capacity(results.len());
    let mut errors = vec![];
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(ok),
        1 => Err(errors.remove(0)),
        _ => Err(ApplyError::Many(errors)),
    }
}

impl Applier {
    pub(super) async fn plan(
        &self,
        objects: Vec<DynamicObject>,
        opts: &ApplyOptions,
    ) -> Result<Vec<Planned>, ApplyError> {
        let mut prepared = Vec::with_capacity(objects.len());
        let mut errors = vec![];
        for obj in objects {
            match self.prepare(obj).await {
                Ok(p) => prepared.push(p),
                Err(e) => errors.push(Err(e)),
            }
        }
        gather::<()>(errors)?;
        let live = self.list_live(&prepared, opts).await?;
        let results = stream::iter(prepared)
            .map(|p| {
                let seen = live
                    .get(&p.planned.url)
                    .and_then(|by_name| by_name.get(&p.planned.id.name));
                self.decide(p, seen, opts)
            })
            .buffered(opts.concurrency.max(1))
            .collect()
            .await;
        gather(results)
    }

    /// Identity, policy, kind resolution and fingerprint: everything that needs no request (or
    /// only the cached discovery), so a bad object stops the stage before the first one.
    async fn prepare(&self, mut obj: DynamicObject) -> Result<Prepared, ApplyError> {
        let (mut id, version) = object::object_ref(&obj)?;
        let policy = SsaPolicy::of(&id, &obj)?;
        let resolved = self.resolver.resolve(&id, &version).await?;
        if resolved.namespaced && id.namespace.is_none() {
            return Err(ApplyError::InvalidObject {
                object: id.to_string(),
                message: "namespaced kind without metadata.namespace".into(),
            });
        }
        if !resolved.namespaced {
            obj.metadata.namespace = None;
            id.namespace = None;
        }
        obj.metadata.managed_fields = None;
        obj.metadata.resource_version = None;
        let url = resolved.url(id.namespace_or_empty());
        Ok(Prepared {
            planned: Planned {
                fingerprint: fingerprint(&obj),
                id,
                version,
                obj,
                url,
                live: None,
                verdict: Verdict::Skip,
            },
            policy,
        })
    }

    /// One metadata-only LIST per collection the objects live in: name → live metadata.
    async fn list_live(
        &self,
        prepared: &[Prepared],
        opts: &ApplyOptions,
    ) -> Result<HashMap<String, HashMap<String, Live>>, ApplyError> {
        // (URL, what to call it in errors); owned, so the listing futures borrow nothing.
        let mut collections: Vec<(String, String)> = vec![];
        for p in prepared {
            let (url, id) = (&p.planned.url, &p.planned.id);
            if p.policy != SsaPolicy::Ignore && !collections.iter().any(|(u, _)| u == url) {
                let what = match &id.namespace {
                    None => format!("{} objects", id.kind),
                    Some(ns) => format!("{} objects in namespace {ns}", id.kind),
                };
                collections.push((url.clone(), what));
            }
        }
        let lists = stream::iter(collections)
            .map(|(url, what)| self.list_one(url, what))
            .buffer_unordered(opts.concurrency.clamp(1, 8))
            .collect()
            .await;
        Ok(gather(lists)?.into_iter().collect())
    }

    async fn list_one(
        &self,
        url: String,
        what: String,
    ) -> Result<(String, HashMap<String, Live>), ApplyError> {
        let items = super::list_pages(|params| {
            let (url, what) = (&url, &what);
            async move {
                let req = Request::new(url).list_metadata(&params).map_err(|e| {
                    ApplyError::InvalidObject {
                        object: what.clone(),
                        message: format!("list request: {e}"),
                    }
                })?;
                let list: MetaList =
                    self.client
                        .request(req)
                        .await
                        .map_err(|source| ApplyError::Request {
                            object: what.clone(),
                            action: "list",
                            source,
                        })?;
                Ok((list.items, list.metadata.continue_))
            }
        })
        .await?;
        let by_name = items.into_iter().map(|i| Live::of(i.metadata));
        Ok((url, by_name.collect()))
    }

    async fn decide(
        &self,
        p: Prepared,
        live: Option<&Live>,
        opts: &ApplyOptions,
    ) -> Result<Planned, ApplyError> {
        let Prepared {
            mut planned,
            policy,
        } = p;
        let Some(live) = live else {
            if policy != SsaPolicy::Ignore {
                planned.verdict = Verdict::Create;
            }
            return Ok(planned);
        };
        if matches!(policy, SsaPolicy::Ignore | SsaPolicy::IfNotPresent) {
            return Ok(planned);
        }
        let takeover_wanted = policy == SsaPolicy::Override && live.foreign_managers;
        if !takeover_wanted
            && self
                .memory
                .in_sync(&planned.id, &live.resource_version, planned.fingerprint)
        {
            planned.verdict = Verdict::Unchanged;
            return Ok(planned);
        }
        self.compare(planned, policy, opts).await
    }

    /// The full comparison: the live object against a dry-run apply of the manifest.
    async fn compare(
        &self,
        mut planned: Planned,
        policy: SsaPolicy,
        opts: &ApplyOptions,
    ) -> Result<Planned, ApplyError> {
        let get = Request::new(&planned.url)
            .get(&planned.id.name, &Default::default())
            .map_err(|e| ApplyError::InvalidObject {
                object: planned.id.to_string(),
                message: format!("get request: {e}"),
            })?;
        let live: Value = match self.client.request(get).await {
            Ok(v) => v,
            Err(kube::Error::Api(s)) if s.is_not_found() => {
                // Deleted since the LIST.
                planned.verdict = Verdict::Create;
                return Ok(planned);
            }
            Err(e) => return Err(ApplyError::request(&planned.id, "get", e)),
        };
        let verdict = match self.send_apply::<Value>(&planned, true).await {
            Ok(result) => {
                let fields = changed_paths(&live, &result);
                let takeover = policy == SsaPolicy::Override
                    && managed_fields::has_foreign_managers(managed_fields_of(&live));
                if fields.is_empty() && !takeover {
                    let rv = live
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    self.memory.record(&planned.id, rv, planned.fingerprint);
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
        if matches!(verdict, Verdict::Update { takeover: true, .. }) {
            planned.live = Some(live);
        }
        planned.verdict = verdict;
        Ok(planned)
    }

    /// Server-side apply of `p` as [`FIELD_MANAGER`], with force; `T` picks what of the answer is
    /// decoded.
    pub(super) async fn send_apply<T: DeserializeOwned>(
        &self,
        p: &Planned,
        dry_run: bool,
    ) -> Result<T, ApplyError> {
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        params.dry_run = dry_run;
        let action = if dry_run { "dry-run apply" } else { "apply" };
        let req = Request::new(&p.url)
            .patch(&p.id.name, &params, &Patch::Apply(&p.obj))
            .map_err(|e| ApplyError::InvalidObject {
                object: p.id.to_string(),
                message: format!("{action} request: {e}"),
            })?;
        self.client
            .request(req)
            .await
            .map_err(|e| ApplyError::request(&p.id, action, e))
    }
}

pub(super) fn managed_fields_of(obj: &Value) -> &[Value] {
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

#[cfg(test)]
mod tests {
    use super::MetaList;

    /// What kube-apiserver v1.35 answers to a metadata-only LIST of an empty collection: the
    /// agent's first apply into a fresh namespace failed on it ("invalid type: null, expected a
    /// sequence").
    #[test]
    fn an_empty_metadata_list_with_null_items_is_empty() {
        let body = r#"{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"3289"},"items":null}"#;
        let list: MetaList =
            serde_json::from_str(body).expect("the real server's empty list parses");
        assert!(list.items.is_empty());
        let list: MetaList =
            serde_json::from_str(r#"{"items":[{"metadata":{"name":"a","resourceVersion":"1"}}]}"#)
                .expect("a list with one item parses");
        assert_eq!(list.items.len(), 1);
    }
}
