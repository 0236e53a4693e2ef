//! Garbage collection: delete what the previous revision applied and the current one has not.
//!
//! Called only after a fully successful apply — a failed fetch, build or apply never reaches it,
//! so an outage or a broken commit cannot delete anything. Objects that opted out
//! (`ferry.dev/prune: disabled`) or that another Kustomization has taken over since (owner labels)
//! are left alone.

use ferry_proto::kustomization::{Inventory, InventoryEntry};
use kube::api::DeleteParams;

use crate::apply::{
    Applier, ApplyError, ChangeSet, ObjectId, owned_by, prune_disabled, split_api_version,
};

#[derive(Debug, thiserror::Error)]
#[error("prune failed: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct PruneError(pub Vec<ApplyError>);

/// What a prune did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deleted: Vec<ObjectId>,
    /// Left in place, with the reason.
    pub kept: Vec<(ObjectId, &'static str)>,
}

/// The inventory of a change set, in the grouped form the status stores. Objects in `namespace`
/// (the Kustomization's) are stored without a namespace, cluster-scoped ones with `""`.
pub fn inventory_of(changes: &ChangeSet, namespace: &str) -> Inventory {
    Inventory::from_entries(changes.changes.iter().map(|c| InventoryEntry {
        api_version: c.id.api_version(&c.version),
        kind: c.id.kind.clone(),
        namespace: if c.id.namespace == namespace {
            None
        } else {
            Some(c.id.namespace.clone())
        },
        name: c.id.name.clone(),
    }))
}

/// The identity of an inventory entry of a Kustomization in `namespace`.
pub fn entry_id(entry: &InventoryEntry, namespace: &str) -> (ObjectId, String) {
    let (group, version) = split_api_version(&entry.api_version);
    (
        ObjectId {
            group: group.to_string(),
            kind: entry.kind.clone(),
            namespace: entry
                .namespace
                .clone()
                .unwrap_or_else(|| namespace.to_string()),
            name: entry.name.clone(),
        },
        version.to_string(),
    )
}

/// Deletes `old` minus `new` for Kustomization `namespace/name`.
pub async fn prune(
    applier: &Applier,
    namespace: &str,
    name: &str,
    old: &Inventory,
    new: &Inventory,
) -> Result<Pruned, PruneError> {
    let mut out = Pruned::default();
    let mut errors = vec![];
    for entry in old.minus(new) {
        let (id, version) = entry_id(&entry, namespace);
        match prune_one(applier, namespace, name, &id, &version).await {
            Ok(Some(reason)) => out.kept.push((id, reason)),
            Ok(None) => {
                applier.forget(&id);
                out.deleted.push(id);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(PruneError(errors))
    }
}

/// `Ok(None)` when deleted (or already gone), `Ok(Some(reason))` when kept on purpose.
async fn prune_one(
    applier: &Applier,
    namespace: &str,
    name: &str,
    id: &ObjectId,
    version: &str,
) -> Result<Option<&'static str>, ApplyError> {
    let resolved = match applier.resolver().resolve(id, version).await {
        Ok(r) => r,
        // The kind is not served any more (its CRD went away): nothing left to delete.
        Err(ApplyError::UnknownKind { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let api = resolved.api(applier.client(), &id.namespace);
    let live = api
        .get_opt(&id.name)
        .await
        .map_err(|e| request(id, "get", e))?;
    let Some(live) = live else {
        return Ok(None);
    };
    if prune_disabled(&live) {
        return Ok(Some("pruning disabled by annotation"));
    }
    if !owned_by(&live, namespace, name) {
        return Ok(Some("owned by another Kustomization"));
    }
    match api.delete(&id.name, &DeleteParams::background()).await {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(None),
        Err(e) => Err(request(id, "delete", e)),
    }
}

fn request(id: &ObjectId, action: &'static str, source: kube::Error) -> ApplyError {
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
            id: ObjectId {
                group: group.into(),
                kind: kind.into(),
                namespace: ns.into(),
                name: name.into(),
            },
            version: "v1".into(),
            action: Action::Created,
        }
    }

    #[test]
    fn inventory_round_trips_through_entry_ids() {
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
        let mut ids: Vec<ObjectId> = inv.entries().map(|e| entry_id(&e, "team-a").0).collect();
        ids.sort();
        let mut want: Vec<ObjectId> = cs.changes.iter().map(|c| c.id.clone()).collect();
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
            .minus(&new)
            .iter()
            .map(|e| entry_id(e, "ns").0.to_string())
            .collect();
        assert_eq!(gone, ["Service/ns/web"]);
    }
}
