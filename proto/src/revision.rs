//! `Revision`: what a source's artifact was built from, in Flux's notation —
//! `main@sha1:<commit>` (branch), `v1.2.3@sha1:<commit>` (tag), `refs/pull/1/head@sha1:…`
//! (any ref name) or `sha1:<commit>` (a bare commit). The part after the last `@` is the checksum.
//! Sources that are not Git use sha256 checksums: a Helm repository's index is `sha256:<hex>` of
//! the index bytes (Flux's HelmRepository revision), a chart version packed by the source server
//! is `<version>@sha256:<digest>` (the digest of its canonical tar).

use std::fmt;
use std::str::FromStr;

/// A revision: an optional symbolic name and the checksum it resolved to — a Git commit
/// (`sha1:`, 40 hex) or a sha256 (`sha256:`, 64 hex).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Revision {
    name: Option<String>,
    algorithm: Algorithm,
    commit: String,
}

/// The checksum algorithm of a [`Revision`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// A Git commit id (40 hex).
    Sha1,
    /// A sha256 (64 hex): an index or an artifact digest.
    Sha256,
}

impl Algorithm {
    fn prefix(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1:",
            Self::Sha256 => "sha256:",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Self::Sha1 => 40,
            Self::Sha256 => 64,
        }
    }
}

/// Why a string is not a revision.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RevisionError {
    /// Not `[<name>@]sha1:<hex>` or `[<name>@]sha256:<hex>`.
    #[error("revision {0:?}: expected [<name>@]sha1:<40 hex> or [<name>@]sha256:<64 hex>")]
    Format(String),
    /// The checksum is not 40 (sha1) or 64 (sha256) lowercase hex characters.
    #[error("revision {0:?}: checksum must be 40 (sha1) or 64 (sha256) lowercase hex characters")]
    Commit(String),
}

fn valid_checksum(algorithm: Algorithm, c: &str) -> bool {
    c.len() == algorithm.hex_len() && c.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Revision {
    /// A revision of `commit` (40 lowercase hex) reached through the ref `name`
    /// (a branch or tag short name, or a full ref name), or a bare commit when `name` is `None`.
    pub fn new(name: Option<String>, commit: impl Into<String>) -> Result<Self, RevisionError> {
        Self::with_algorithm(name, Algorithm::Sha1, commit.into())
    }

    /// A revision whose checksum is a sha256 (64 lowercase hex): `sha256:<hex>` for a Helm
    /// index, `<version>@sha256:<hex>` for a chart version.
    pub fn sha256(name: Option<String>, hex: impl Into<String>) -> Result<Self, RevisionError> {
        Self::with_algorithm(name, Algorithm::Sha256, hex.into())
    }

    fn with_algorithm(
        name: Option<String>,
        algorithm: Algorithm,
        commit: String,
    ) -> Result<Self, RevisionError> {
        if !valid_checksum(algorithm, &commit) {
            return Err(RevisionError::Commit(commit));
        }
        if let Some(n) = &name
            && (n.is_empty() || n.contains('@'))
        {
            return Err(RevisionError::Format(format!(
                "{n}@{}{commit}",
                algorithm.prefix()
            )));
        }
        Ok(Self {
            name,
            algorithm,
            commit,
        })
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The checksum's hex: the 40-hex commit id of a Git revision, 64 hex for sha256 ones.
    pub fn commit(&self) -> &str {
        &self.commit
    }

    /// The checksum's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = self.algorithm.prefix();
        match &self.name {
            Some(n) => write!(f, "{n}@{prefix}{}", self.commit),
            None => write!(f, "{prefix}{}", self.commit),
        }
    }
}

impl fmt::Debug for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Revision {
    type Err = RevisionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, checksum) = match s.rsplit_once('@') {
            Some((n, c)) => (Some(n.to_string()), c),
            None => (None, s),
        };
        let (algorithm, commit) = if let Some(c) = checksum.strip_prefix("sha1:") {
            (Algorithm::Sha1, c)
        } else if let Some(c) = checksum.strip_prefix("sha256:") {
            (Algorithm::Sha256, c)
        } else {
            return Err(RevisionError::Format(s.to_string()));
        };
        if !valid_checksum(algorithm, commit) {
            return Err(RevisionError::Commit(s.to_string()));
        }
        if name.as_deref() == Some("") {
            return Err(RevisionError::Format(s.to_string()));
        }
        Ok(Self {
            name,
            algorithm,
            commit: commit.to_string(),
        })
    }
}

impl serde::Serialize for Revision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Revision {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Revision {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Revision".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const C: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn parses_flux_notation() {
        for s in [
            format!("main@sha1:{C}"),
            format!("v1.2.3@sha1:{C}"),
            format!("refs/pull/1/head@sha1:{C}"),
            format!("sha1:{C}"),
        ] {
            let r: Revision = s.parse().expect("valid revision");
            assert_eq!(r.to_string(), s);
            assert_eq!(r.commit(), C);
        }
        let r: Revision = format!("main@sha1:{C}").parse().expect("valid");
        assert_eq!(r.name(), Some("main"));
    }

    #[test]
    fn rejects_bad_revisions() {
        assert!("main".parse::<Revision>().is_err());
        assert!("main@sha1:abc".parse::<Revision>().is_err());
        assert!(format!("@sha1:{C}").parse::<Revision>().is_err());
        assert!(format!("main@sha256:{C}").parse::<Revision>().is_err());
        assert!(Revision::new(Some("a@b".into()), C).is_err());
        assert!(Revision::new(None, C.to_uppercase()).is_err());
        assert!(format!("1.2.3@sha256:{C}").parse::<Revision>().is_err());
    }

    #[test]
    fn sha256_revisions_of_indexes_and_charts() {
        let h = "ab".repeat(32);
        for s in [format!("sha256:{h}"), format!("1.2.3+build.1@sha256:{h}")] {
            let r: Revision = s.parse().expect("valid revision");
            assert_eq!(r.to_string(), s);
            assert_eq!(r.algorithm(), Algorithm::Sha256);
            assert_eq!(r.commit(), h);
        }
        let r = Revision::sha256(Some("0.1.0".into()), &h).expect("valid");
        assert_eq!(r.to_string(), format!("0.1.0@sha256:{h}"));
        assert!(Revision::sha256(None, C).is_err());
    }
}
