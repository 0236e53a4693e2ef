//! The error of strategic merge, in its own module so that both halves of the merge
//! ([`super::strategic`] and kustomize's list rules in `kyaml_lists`) use it without depending
//! on each other.

/// A patch that cannot be applied; `path` is where, in JSON-pointer-like dotted form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategicMergeError {
    /// A `$patch` directive other than `replace`, `merge`, `delete`.
    #[error("strategic merge at {path}: unknown $patch directive {directive:?}")]
    UnknownDirective {
        /// Where.
        path: String,
        /// The directive found.
        directive: String,
    },
    /// A list item without the list's merge key.
    #[error("strategic merge at {path}: list item {item} lacks the merge key {key:?}")]
    MissingMergeKey {
        /// Where.
        path: String,
        /// The merge key.
        key: String,
        /// The item, as JSON.
        item: String,
    },
    /// Any other malformed patch.
    #[error("strategic merge at {path}: {message}")]
    Invalid {
        /// Where.
        path: String,
        /// What is wrong.
        message: String,
    },
}
