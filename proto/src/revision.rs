//! `Revision`: what a source's artifact was built from, in Flux's notation —
//! `main@sha1:<commit>` (branch), `v1.2.3@sha1:<commit>` (tag), `refs/pull/1/head@sha1:…`
//! (any ref name) or `sha1:<commit>` (a bare commit). The part after the last `@` is the checksum.

use std::fmt;
use std::str::FromStr;

/// A Git revision: an optional symbolic name and the commit it resolved to.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Revision {
    name: Option<String>,
    commit: String,
}

/// Why a string is not a revision.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RevisionError {
    /// Not `[<name>@]sha1:<hex>`.
    #[error("revision {0:?}: expected [<name>@]sha1:<40 hex>")]
    Format(String),
    /// The commit is not 40 lowercase hex characters.
    #[error("revision {0:?}: commit must be 40 lowercase hex characters")]
    Commit(String),
}

fn valid_commit(c: &str) -> bool {
    c.len() == 40 && c.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Revision {
    /// A revision of `commit` (40 lowercase hex) reached through the ref `name`
    /// (a branch or tag short name, or a full ref name), or a bare commit when `name` is `None`.
    pub fn new(name: Option<String>, commit: impl Into<String>) -> Result<Self, RevisionError> {
        let commit = commit.into();
        if !valid_commit(&commit) {
            return Err(RevisionError::Commit(commit));
        }
        if let Some(n) = &name
            && (n.is_empty() || n.contains('@'))
        {
            return Err(RevisionError::Format(format!("{n}@sha1:{commit}")));
        }
        Ok(Self { name, commit })
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The 40-hex commit id.
    pub fn commit(&self) -> &str {
        &self.commit
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n}@sha1:{}", self.commit),
            None => write!(f, "sha1:{}", self.commit),
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
        let commit = checksum
            .strip_prefix("sha1:")
            .ok_or_else(|| RevisionError::Format(s.to_string()))?;
        if !valid_commit(commit) {
            return Err(RevisionError::Commit(s.to_string()));
        }
        if name.as_deref() == Some("") {
            return Err(RevisionError::Format(s.to_string()));
        }
        Ok(Self {
            name,
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
    }
}
