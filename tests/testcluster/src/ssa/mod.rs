//! Server-side apply and field ownership, as the Kubernetes apiserver does it with
//! structured-merge-diff — pure functions over `serde_json::Value`, no HTTP.
//!
//! Every object carries `metadata.managedFields`: per manager (and operation), the set of
//! fields it owns ([`FieldSet`], encoded as `FieldsV1`). An apply ([`apply`]) merges the
//! applied configuration into the live object following the schema's list types
//! ([`typed`]), claims exactly the fields the configuration sets, removes fields the manager
//! applied before but no longer does (unless someone else owns them too), and refuses — 409
//! with one cause per field — to change a value another manager owns, unless forced, which
//! moves the ownership. Any other write ([`update`]) gives the writer the fields it changed
//! and takes them from everybody else. Ownership ignores the identity fields (name, uid,
//! resourceVersion, …) and, where status is a subresource, `status` on the main resource.

pub mod fieldset;
pub mod managed;
pub mod typed;

mod apply;

pub use apply::{apply, update};
pub use fieldset::{FieldSet, PathElement};
pub use managed::{ManagedEntry, Operation};
pub use typed::{Shape, ShapeError};

/// Which object a write addresses.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The API version of the request (`apps/v1`).
    pub api_version: &'a str,
    pub kind: &'a str,
    /// `""` for the main resource, `"status"` for the status subresource.
    pub subresource: &'a str,
    /// Whether the kind serves `status` as a subresource; then `status` is not written
    /// (nor owned) through the main resource.
    pub status_subresource: bool,
}

/// One field another manager owns that an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The owner, as the apiserver prints it: `"kubectl-patch" using apps/v1`.
    pub manager: String,
    /// The field: `.spec.template.spec.containers[name="nginx"].image`.
    pub field: String,
}

/// Why an apply or a write could not be tracked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsaError {
    /// 409: the message is worded exactly like the apiserver's.
    #[error("{message}")]
    Conflict {
        message: String,
        conflicts: Vec<Conflict>,
    },
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 422 (malformed object for its schema, invalid managedFields).
    #[error("{0}")]
    Invalid(String),
}

/// The apiserver's conflict message: `Apply failed with 1 conflict: conflict with "x": .a`,
/// or for several, grouped by manager in sorted order.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [one] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.manager, one.field
        );
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with {m}:"));
        for c in conflicts.iter().filter(|c| c.manager == m) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}
