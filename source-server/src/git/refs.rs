//! Which remote ref a `GitRepositoryRef` means, and how to pick it out of a remote's ref list.
//!
//! Precedence follows Flux: `commit` > `name` > `semver` > `tag` > `branch`, default branch
//! `main`. A semver range selects the highest tag (leading `v` allowed) that parses as a version
//! and matches; pre-releases only match ranges that mention one, as the `semver` crate decides.

use ferry_proto::GitRepositoryRef;
use gix::bstr::ByteSlice;
use gix::protocol::handshake::Ref;

/// The resolved meaning of a ref spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Branch(String),
    Tag(String),
    Semver(semver::VersionReq, String),
    /// A full ref name (`refs/...`).
    Name(String),
    /// A commit, looked for on `branch` (fetched with full history); `branch` is `None` when
    /// the spec did not name one (then `main` is searched and the revision is a bare `sha1:`).
    Commit {
        commit: String,
        branch: Option<String>,
    },
}

pub const DEFAULT_BRANCH: &str = "main";

impl Target {
    /// Interprets `r` (absent = branch `main`); errors name the offending field.
    pub fn from_ref(r: Option<&GitRepositoryRef>) -> Result<Target, String> {
        let Some(r) = r else {
            return Ok(Target::Branch(DEFAULT_BRANCH.to_string()));
        };
        if let Some(commit) = &r.commit {
            let commit = commit.trim().to_ascii_lowercase();
            if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("ref.commit {commit:?}: expected 40 hex characters"));
            }
            if let Some(branch) = &r.branch {
                check_component("ref.branch", branch)?;
            }
            return Ok(Target::Commit {
                commit,
                branch: r.branch.clone(),
            });
        }
        if let Some(name) = &r.name {
            if !name.starts_with("refs/") {
                return Err(format!(
                    "ref.name {name:?}: must be a full ref name starting with \"refs/\""
                ));
            }
            check_ref_name("ref.name", name)?;
            return Ok(Target::Name(name.clone()));
        }
        if let Some(range) = &r.semver {
            let req = semver::VersionReq::parse(range)
                .map_err(|e| format!("ref.semver {range:?}: {e}"))?;
            return Ok(Target::Semver(req, range.clone()));
        }
        if let Some(tag) = &r.tag {
            check_component("ref.tag", tag)?;
            return Ok(Target::Tag(tag.clone()));
        }
        let branch = r.branch.clone().unwrap_or_else(|| DEFAULT_BRANCH.into());
        check_component("ref.branch", &branch)?;
        Ok(Target::Branch(branch))
    }

    /// The refspec to ask the remote for; for semver, all tags (only listed, never fetched).
    pub fn list_refspec(&self) -> String {
        match self {
            Target::Branch(b) => format!("+refs/heads/{b}:refs/heads/{b}"),
            Target::Commit { branch, .. } => {
                let b = branch.as_deref().unwrap_or(DEFAULT_BRANCH);
                format!("+refs/heads/{b}:refs/heads/{b}")
            }
            Target::Tag(t) => format!("+refs/tags/{t}:refs/tags/{t}"),
            Target::Semver(..) => "+refs/tags/*:refs/tags/*".to_string(),
            Target::Name(n) => format!("+{n}:{n}"),
        }
    }

    /// How the target reads in messages.
    pub fn describe(&self) -> String {
        match self {
            Target::Branch(b) => format!("branch {b:?}"),
            Target::Tag(t) => format!("tag {t:?}"),
            Target::Semver(_, r) => format!("a tag matching semver {r:?}"),
            Target::Name(n) => format!("ref {n:?}"),
            Target::Commit { commit, branch } => format!(
                "commit {commit} on branch {:?}",
                branch.as_deref().unwrap_or(DEFAULT_BRANCH)
            ),
        }
    }

    /// Picks the ref this target means from a remote's advertised refs: `(revision name, full
    /// ref name, commit)`. `None` when the remote does not have it.
    pub fn pick(&self, refs: &[Ref]) -> Option<(Option<String>, String, gix::ObjectId)> {
        let find = |full: &str| {
            refs.iter().find_map(|r| {
                let (name, commit) = name_and_commit(r)?;
                (name == full).then_some(commit)
            })
        };
        match self {
            Target::Branch(b) => {
                let full = format!("refs/heads/{b}");
                find(&full).map(|c| (Some(b.clone()), full, c))
            }
            Target::Tag(t) => {
                let full = format!("refs/tags/{t}");
                find(&full).map(|c| (Some(t.clone()), full, c))
            }
            Target::Name(n) => find(n).map(|c| (Some(n.clone()), n.clone(), c)),
            Target::Commit { branch, .. } => {
                let b = branch.as_deref().unwrap_or(DEFAULT_BRANCH);
                let full = format!("refs/heads/{b}");
                find(&full).map(|c| (branch.clone(), full, c))
            }
            Target::Semver(req, _) => {
                let mut best: Option<(semver::Version, String, gix::ObjectId)> = None;
                for r in refs {
                    let Some((name, commit)) = name_and_commit(r) else {
                        continue;
                    };
                    let Some(tag) = name.strip_prefix("refs/tags/") else {
                        continue;
                    };
                    let Ok(version) = semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag))
                    else {
                        continue;
                    };
                    if !req.matches(&version) {
                        continue;
                    }
                    // On equal versions (`1.0.0` and `v1.0.0`) the byte-smaller name wins, so
                    // the choice does not depend on the server's ref order.
                    let better = match &best {
                        None => true,
                        Some((v, n, _)) => version > *v || (version == *v && tag < n.as_str()),
                    };
                    if better {
                        best = Some((version, tag.to_string(), commit));
                    }
                }
                best.map(|(_, tag, c)| (Some(tag.clone()), format!("refs/tags/{tag}"), c))
            }
        }
    }
}

/// A ref's full name and the commit it finally points at (annotated tags peeled).
fn name_and_commit(r: &Ref) -> Option<(&str, gix::ObjectId)> {
    let (name, id) = match r {
        Ref::Peeled {
            full_ref_name,
            object,
            ..
        } => (full_ref_name, object),
        Ref::Direct {
            full_ref_name,
            object,
        } => (full_ref_name, object),
        Ref::Symbolic {
            full_ref_name,
            object,
            ..
        } => (full_ref_name, object),
        Ref::Unborn { .. } => return None,
    };
    Some((name.to_str().ok()?, *id))
}

fn check_component(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{field}: must not be empty"));
    }
    check_ref_name(field, value)
}

/// Rejects what `git check-ref-format` rejects, so a spec cannot smuggle refspec syntax.
fn check_ref_name(field: &str, value: &str) -> Result<(), String> {
    let bad = value.bytes().any(|b| {
        b < 0x20 || b == 0x7f || matches!(b, b' ' | b'~' | b'^' | b':' | b'?' | b'*' | b'[' | b'\\')
    }) || value.contains("..")
        || value.contains("@{")
        || value.contains("//")
        || value.starts_with('/')
        || value.ends_with('/')
        || value.ends_with('.')
        || value.ends_with(".lock")
        || value.starts_with('-');
    if bad {
        Err(format!("{field} {value:?}: not a valid Git ref name"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(n: u8) -> gix::ObjectId {
        gix::ObjectId::from_bytes_or_panic(&[n; 20])
    }

    fn direct(name: &str, n: u8) -> Ref {
        Ref::Direct {
            full_ref_name: name.into(),
            object: oid(n),
        }
    }

    #[test]
    fn precedence_and_defaults() {
        assert_eq!(Target::from_ref(None), Ok(Target::Branch("main".into())));
        let r = GitRepositoryRef {
            branch: Some("dev".into()),
            tag: Some("v1".into()),
            ..Default::default()
        };
        assert_eq!(Target::from_ref(Some(&r)), Ok(Target::Tag("v1".into())));
        let r = GitRepositoryRef {
            commit: Some("A".repeat(40)),
            ..Default::default()
        };
        assert_eq!(
            Target::from_ref(Some(&r)),
            Ok(Target::Commit {
                commit: "a".repeat(40),
                branch: None
            })
        );
    }

    #[test]
    fn rejects_bad_specs_naming_the_field() {
        let r = GitRepositoryRef {
            branch: Some("a:b".into()),
            ..Default::default()
        };
        let e = Target::from_ref(Some(&r)).expect_err("colon is refspec syntax");
        assert!(e.contains("ref.branch"), "{e}");
        let r = GitRepositoryRef {
            semver: Some(">=x".into()),
            ..Default::default()
        };
        assert!(
            Target::from_ref(Some(&r))
                .expect_err("bad range")
                .contains("ref.semver")
        );
        let r = GitRepositoryRef {
            name: Some("heads/main".into()),
            ..Default::default()
        };
        assert!(
            Target::from_ref(Some(&r))
                .expect_err("short")
                .contains("ref.name")
        );
    }

    #[test]
    fn semver_picks_highest_matching_tag() {
        let refs = vec![
            direct("refs/heads/main", 1),
            direct("refs/tags/v1.2.0", 2),
            direct("refs/tags/v1.10.0", 3),
            direct("refs/tags/v2.0.0", 4),
            direct("refs/tags/not-a-version", 5),
            Ref::Peeled {
                full_ref_name: "refs/tags/1.11.0".into(),
                tag: oid(9),
                object: oid(6),
            },
        ];
        let t = Target::Semver(semver::VersionReq::parse("^1").expect("valid"), "^1".into());
        let (name, full, commit) = t.pick(&refs).expect("a match");
        assert_eq!(name.as_deref(), Some("1.11.0"));
        assert_eq!(full, "refs/tags/1.11.0");
        assert_eq!(commit, oid(6), "annotated tags are peeled to their commit");
        let none = Target::Semver(
            semver::VersionReq::parse(">=3").expect("valid"),
            ">=3".into(),
        );
        assert!(none.pick(&refs).is_none());
    }
}
