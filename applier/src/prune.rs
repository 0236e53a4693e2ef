//! Garbage collection: delete what the previous revision applied and the current one has not.
//!
//! Called only after a fully successful apply — a failed fetch, build or apply never reaches it,
//! so an outage or a broken commit cannot delete anything. Objects that opted out
//! (`ferry.dev/prune: disabled`) or that another Kustomization has taken over since (owner labels)
//! are left alone.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferry_proto::kustomization::Inventory;
use futures::{StreamExt, stream};
use kube::api::{Api, DeleteParams, DynamicObject, Preconditions};

use crate::apply::{
    Applier, ApplyError, ChangeSet, ObjectRef, list_by_name, owned_by, prune_disabled,
};

#[derive(Debug, thiserror::Error)]
#[error("prune failed: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct PruneError(pub Vec<ApplyError>);

/// What a prune did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deleted: Vec<ObjectRef>,
    /// Left in place, with the reason.
    pub kept: Vec<(ObjectRef, &'static str)>,
}

/// The inventory of a change set, in the grouped form the status stores (see
/// [`Inventory::from_objects`]).
pub fn inventory_of(changes: &ChangeSet, namespace: &str) -> Inventory {
    Inventory::from_objects(
        namespace,
        changes.changes.iter().map(|c| (&c.id, c.version.as_str())),
    )
}

/// Requests (LISTs, then DELETEs) in flight at once.
const PRUNE_CONCURRENCY: usize = 16;

/// Deletes `old` minus `new` for Kustomization `namespace/name`: one LIST per kind and
/// namespace reads the candidates (their labels and annotations decide whether they may go),
/// then the deletions run concurrently. Results are sorted, whatever order they completed in.
pub async fn prune(
    applier: &Applier,
    namespace: &str,
    name: &str,
    old: &Inventory,
    new: &Inventory,
) -> Result<Pruned, PruneError> {
    type Group = (String, String, String, Option<String>);
    let mut groups: BTreeMap<Group, Vec<ObjectRef>> = BTreeMap::new();
    for (id, version) in old.minus(new, namespace) {
        groups
            .entry((
                id.group.clone(),
                version.to_string(),
                id.kind.clone(),
                id.namespace.clone(),
            ))
            .or_default()
            .push(id);
    }
    // The futures are built before they are streamed: a `map` closure over borrowed data
    // makes the reconcile future fail the controller's `Send` bound (rust#102211).
    let lists: Vec<_> = groups
        .into_iter()
        .map(|((_, version, _, _), ids)| list_group(applier, (namespace, name), version, ids))
        .collect();
    let listed: Vec<Result<Vec<Candidate>, ApplyError>> = stream::iter(lists)
        .buffered(PRUNE_CONCURRENCY)
        .collect()
        .await;
    let mut out = Pruned::default();
    let mut errors = vec![];
    let mut deletes = vec![];
    for group in listed {
        match group {
            Err(e) => errors.push(e),
            Ok(candidates) => {
                for c in candidates {
                    match c {
                        Candidate::Gone(id) => {
                            applier.forget(&id);
                            out.deleted.push(id);
                        }
                        Candidate::Keep(id, reason) => out.kept.push((id, reason)),
                        Candidate::Delete(id, api, uid) => deletes.push((id, api, uid)),
                    }
                }
            }
        }
    }
    let deletes: Vec<_> = deletes
        .into_iter()
        .map(|(id, api, uid)| async move {
            let result = delete(&api, &id, uid).await;
            (id, result)
        })
        .collect();
    let mut results = stream::iter(deletes).buffer_unordered(PRUNE_CONCURRENCY);
    while let Some((id, result)) = results.next().await {
        match result {
            Ok(()) => {
                applier.forget(&id);
                out.deleted.push(id);
            }
            Err(e) => errors.push(e),
        }
    }
    out.deleted.sort();
    out.kept.sort();
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(PruneError(errors))
    }
}

/// What to do with one prune candidate, as its LIST showed it.
enum Candidate {
    /// Not there (or its kind is not served any more): nothing to delete.
    Gone(ObjectRef),
    /// Left in place on purpose.
    Keep(ObjectRef, &'static str),
    /// To delete, with the uid it had when listed.
    Delete(ObjectRef, Arc<Api<DynamicObject>>, Option<String>),
}

/// Reads `ids`, all of one kind in one namespace, with one LIST.
async fn list_group(
    applier: &Applier,
    (namespace, name): (&str, &str),
    version: String,
    ids: Vec<ObjectRef>,
) -> Result<Vec<Candidate>, ApplyError> {
    let first = ids.first().expect("groups are never empty");
    let resolved = match applier.resolver().resolve(first, &version).await {
        Ok(r) => r,
        // The kind is not served any more (its CRD went away): nothing left to delete.
        Err(ApplyError::UnknownKind { .. }) => {
            return Ok(ids.into_iter().map(Candidate::Gone).collect());
        }
        Err(e) => return Err(e),
    };
    let api = Arc::new(resolved.api(applier.client(), first.namespace_or_empty()));
    let mut by_name = list_by_name(&api, first).await?;
    Ok(ids
        .into_iter()
        .map(|id| {
            let Some(live) = by_name.remove(&id.name) else {
                return Candidate::Gone(id);
            };
            if prune_disabled(&live) {
                Candidate::Keep(id, "pruning disabled by annotation")
            } else if !owned_by(&live, namespace, name) {
                Candidate::Keep(id, "owned by another Kustomization")
            } else {
                Candidate::Delete(id, api.clone(), live.metadata.uid)
            }
        })
        .collect())
}

/// Deletes one object, only if it is still the one that was listed (same uid): an object
/// deleted and re-created by someone else meanwhile is not ours to delete.
async fn delete(
    api: &Api<DynamicObject>,
    id: &ObjectRef,
    uid: Option<String>,
) -> Result<(), ApplyError> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(&id.name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(request(id, "delete", e)),
    }
}

fn request(id: &ObjectRef, action: &'static str, source: kube::Error) -> ApplyError {
    ApplyError::Request {
        object: id.to_string(),
        action,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{Action, Change};

    fn change(group: &str, kind: &str, ns: &str, name: &str) -> Change {
        Change {
            id: ObjectRef::new(group, kind, Some(ns), name),
            version: "v1".into(),
            action: Action::Created,
        }
    }

    #[test]
    fn inventory_round_trips_through_object_refs() {
        let cs = ChangeSet {
            changes: vec![
                change("apps", "Deployment", "team-a", "web"),
                change("", "Service", "team-a", "web"),
                change("", "Namespace", "", "team-b"),
            ],
        };
        let inv = inventory_of(&cs, "team-a");
        assert_eq!(inv.len(), 3);
        let ns_group = inv
            .groups
            .iter()
            .find(|g| g.kind == "Namespace")
            .expect("namespace group");
        assert_eq!(ns_group.namespace.as_deref(), Some(""));
        let mut ids: Vec<ObjectRef> = inv.objects("team-a").map(|(id, _)| id).collect();
        ids.sort();
        let mut want: Vec<ObjectRef> = cs.changes.iter().map(|c| c.id.clone()).collect();
        want.sort();
        assert_eq!(ids, want);
    }

    #[test]
    fn removed_objects_are_the_prune_candidates() {
        let old = inventory_of(
            &ChangeSet {
                changes: vec![
                    change("apps", "Deployment", "ns", "web"),
                    change("", "Service", "ns", "web"),
                ],
            },
            "ns",
        );
        let new = inventory_of(
            &ChangeSet {
                changes: vec![change("apps", "Deployment", "ns", "web")],
            },
            "ns",
        );
        let gone: Vec<String> = old
            .minus(&new, "ns")
            .iter()
            .map(|(id, _)| id.to_string())
            .collect();
        assert_eq!(gone, ["Service/ns/web"]);
    }
}
