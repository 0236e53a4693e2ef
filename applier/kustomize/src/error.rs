//! One error type for the whole engine. Every variant names where the problem is: the
//! kustomization file (as a path relative to the build root), the field inside it
//! (`patches[2]`, `resources[0]`), and the object when one is involved, so a user can go
//! straight to the line that needs fixing.

use std::fmt;

/// Where in a kustomization an error was found: `overlays/prod/kustomization.yaml patches[2]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Kustomization (or other input) file, relative to the build root.
    pub file: String,
    /// Field inside that file, e.g. `patches[2]`; empty when the whole file is meant.
    pub field: String,
}

impl Location {
    pub fn new(file: impl Into<String>, field: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            field: field.into(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{} {}", self.file, self.field)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A directory was used as a kustomization but holds no kustomization file.
    #[error(
        "no kustomization file (kustomization.yaml, kustomization.yml or Kustomization) in '{dir}'{}",
        referenced_from(.from)
    )]
    MissingKustomization { dir: String, from: Option<Location> },

    /// More than one recognised kustomization file name in one directory.
    #[error("found multiple kustomization files in '{dir}'")]
    MultipleKustomizations { dir: String },

    /// A file named in a kustomization does not exist (or is neither file nor directory).
    #[error("{at}: '{path}' does not exist")]
    NotFound { at: Location, path: String },

    /// Reading a file failed.
    #[error("reading '{path}': {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// Malformed YAML or an object that is not a Kubernetes resource.
    #[error("{file}: {msg}")]
    Yaml { file: String, msg: String },

    /// A kustomization field holds an invalid value.
    #[error("{at}: {msg}")]
    Field { at: Location, msg: String },

    /// A feature Ferry refuses on purpose (remote bases, plugins, helmCharts…).
    #[error("{at}: {msg} (refused: Ferry renders only local, declarative kustomizations)")]
    Refused { at: Location, msg: String },

    /// A path leaves the build root or, under LoadRestrictionsRootOnly, the kustomization dir.
    #[error("{at}: path '{path}' {why}")]
    PathEscape {
        at: Location,
        path: String,
        why: String,
    },

    /// Two resources with the same id where kustomize requires them to be unique.
    #[error("{at}: may not add resource with an already registered id: {id}")]
    Conflict { at: Location, id: String },

    /// A tree past the engine's bounds (nesting depth, kustomizations built, objects).
    #[error("{file}: {msg}")]
    TooLarge { file: String, msg: String },

    /// A cycle between kustomizations (a base that includes itself).
    #[error("cycle detected: '{dir}' is already being built ({chain})")]
    Cycle { dir: String, chain: String },
}

fn referenced_from(from: &Option<Location>) -> String {
    match from {
        Some(at) => format!(" (referenced from {at})"),
        None => String::new(),
    }
}

impl Error {
    pub fn field(at: &Location, msg: impl Into<String>) -> Self {
        Error::Field {
            at: at.clone(),
            msg: msg.into(),
        }
    }

    pub fn yaml(file: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Yaml {
            file: file.into(),
            msg: msg.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
