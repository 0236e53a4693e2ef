//! What the next reconcile of a Kustomization would change, computed without changing anything:
//! the artifact is fetched and rendered as a reconcile would, each object is compared with the
//! live one by a server-side dry-run, and the inventory tells what prune would delete. Shared by
//! `ferry-applier diff` and `ferry diff kustomization`.

use ferry_proto::kustomization::Kustomization;
use ferry_proto::{Digest, Revision};

use crate::apply::{Action, ApplyError, ApplyOptions, Change, ChangeSet, object_ref};
use crate::prune::inventory_of;
use crate::reconcile::{Context, ReconcileError};

/// Why a preview could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The revision could not be fetched or rendered (the reason is Flux's, as in status).
    #[error("{reason}: {error}")]
    Desired {
        reason: &'static str,
        error: ReconcileError,
    },
    /// The dry-run comparison with the cluster failed.
    #[error("comparing with the cluster: {0}")]
    Compare(#[from] ApplyError),
}

/// One line of a preview.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    /// The object does not exist and would be created.
    Create(String),
    /// The object exists and these fields would change.
    Configure { object: String, fields: Vec<String> },
    /// The object is in the inventory, not in the revision, and prune would delete it.
    Delete(String),
}

impl std::fmt::Display for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Planned::Create(o) => write!(f, "{o} created"),
            Planned::Configure { object, fields } => {
                write!(f, "{object} configured: {}", fields.join(", "))
            }
            Planned::Delete(o) => write!(f, "{o} deleted"),
        }
    }
}

/// The revision a preview was computed for and what applying it would do.
#[derive(Clone, Debug)]
pub struct Preview {
    pub revision: Revision,
    pub digest: Digest,
    pub changes: Vec<Planned>,
}

/// What reconciling `ks` now would change.
pub async fn preview(ctx: &Context, ks: &Kustomization) -> Result<Preview, PreviewError> {
    let namespace = ks.metadata.namespace.clone().unwrap_or_default();
    let st = ks.status.clone().unwrap_or_default();
    let desired = crate::reconcile::desired(ks, ctx, &st)
        .await
        .map_err(|(e, _)| {
            let error = ReconcileError::from(e);
            PreviewError::Desired {
                reason: error.reason(),
                error,
            }
        })?;
    let ids: Vec<_> = desired
        .objects
        .iter()
        .filter_map(|o| object_ref(o).ok())
        .map(|(id, version)| Change {
            id,
            version,
            action: Action::Unchanged,
        })
        .collect();
    let drift = ctx
        .applier
        .drift(desired.objects, &ApplyOptions::default())
        .await?;
    let mut changes: Vec<Planned> = drift
        .iter()
        .map(|d| {
            if d.missing {
                Planned::Create(d.id.to_string())
            } else {
                Planned::Configure {
                    object: d.id.to_string(),
                    fields: d.fields.clone(),
                }
            }
        })
        .collect();
    if ks.spec.prune {
        let new = inventory_of(&ChangeSet { changes: ids }, &namespace);
        let old = st.inventory.unwrap_or_default();
        for (id, _) in old.minus(&new, &namespace) {
            changes.push(Planned::Delete(id.to_string()));
        }
    }
    Ok(Preview {
        revision: desired.artifact.revision,
        digest: desired.artifact.digest,
        changes,
    })
}
