//! Which tree entries stay out of an artifact: gitignore-syntax rules from three places.
//!
//! Precedence, lowest first: the built-in default excludes (Flux's list: VCS metadata, CI
//! configuration, archives and images), then `.sourceignore` files (a deeper file overrides a
//! shallower one, patterns relative to its directory), then `spec.ignore`. As in Git, the last
//! matching pattern of the highest-precedence list that matches decides, `!pattern` re-includes,
//! and nothing below an excluded directory can be re-included (the walk does not descend).

use gix::bstr::{BStr, ByteSlice};
use gix_ignore::glob::pattern::Case;
use gix_ignore::glob::search::pattern::List;
use gix_ignore::search::{Ignore, pattern_matching_relative_path};

/// The built-in excludes, in `.sourceignore` syntax (documented in docs/artifact-format.md).
pub const DEFAULT_EXCLUDES: &str = "\
# VCS
.git/
.gitignore
.gitmodules
.gitattributes
# Archives and images
*.jpg
*.jpeg
*.gif
*.png
*.wmv
*.flv
*.tar.gz
*.zip
# CI
.github/
.circleci/
.travis.yml
.gitlab-ci.yml
appveyor.yml
.drone.yml
cloudbuild.yaml
codeship-services.yml
codeship-steps.yml
# Tooling
**/.goreleaser.yml
**/.sops.yaml
**/.flux.yaml
";

/// The file name whose contents add rules for its directory and below.
pub const SOURCEIGNORE: &str = ".sourceignore";

/// The rule lists in effect at some point of the tree walk.
pub(crate) struct Rules {
    defaults: List<Ignore>,
    spec: Option<List<Ignore>>,
    /// `.sourceignore` lists of the directories on the current path, root first.
    stack: Vec<(usize, List<Ignore>)>,
}

impl Rules {
    pub fn new(spec_ignore: Option<&str>) -> Self {
        Rules {
            defaults: list(DEFAULT_EXCLUDES.as_bytes(), None),
            spec: spec_ignore.map(|s| list(s.as_bytes(), None)),
            stack: Vec::new(),
        }
    }

    /// Adds the `.sourceignore` of directory `dir` ("" for the root, else "a/b") at `depth`.
    pub fn push_sourceignore(&mut self, depth: usize, dir: &BStr, bytes: &[u8]) {
        let base = (!dir.is_empty()).then(|| {
            let mut b = dir.to_owned();
            b.push(b'/');
            b
        });
        self.stack.push((depth, list(bytes, base)));
    }

    /// Forgets `.sourceignore` lists of directories at `depth` or deeper (the walk left them).
    pub fn leave(&mut self, depth: usize) {
        while self.stack.last().is_some_and(|(d, _)| *d >= depth) {
            self.stack.pop();
        }
    }

    /// Whether `path` (relative to the root, no trailing slash) is excluded.
    pub fn is_ignored(&self, path: &BStr, is_dir: bool) -> bool {
        let basename = path.rfind_byte(b'/').map(|p| p + 1);
        let lists = self
            .spec
            .iter()
            .chain(self.stack.iter().rev().map(|(_, l)| l))
            .chain(std::iter::once(&self.defaults));
        for l in lists {
            if let Some(m) =
                pattern_matching_relative_path(l, path, basename, Some(is_dir), Case::Sensitive)
            {
                return !m.pattern.is_negative();
            }
        }
        false
    }
}

/// Ignore rules over flat object keys (a Bucket), as Flux matches them: the bucket's
/// `.sourceignore` object, then `spec.ignore`, no default excludes; a key is matched with its
/// parent "directories", so `dir/` leaves out every key below `dir/`, and the last pattern
/// that matches the key or one of its parents decides (go-git's matcher, which Flux uses).
pub struct KeyRules {
    /// Lowest precedence first.
    lists: Vec<List<Ignore>>,
}

impl KeyRules {
    pub fn new(sourceignore: Option<&[u8]>, spec_ignore: Option<&str>) -> Self {
        let lists = sourceignore
            .map(|b| list(b, None))
            .into_iter()
            .chain(spec_ignore.map(|s| list(s.as_bytes(), None)))
            .collect();
        Self { lists }
    }

    /// Whether `key` (a whole object key, not ending in `/`) is left out.
    pub fn is_ignored(&self, key: &str) -> bool {
        let key = key.as_bytes();
        for l in self.lists.iter().rev() {
            let mut best: Option<(usize, bool)> = None;
            let ends = key
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'/')
                .map(|(i, _)| (i, true))
                .chain(std::iter::once((key.len(), false)));
            for (end, is_dir) in ends {
                if end == 0 {
                    continue;
                }
                let path: &BStr = key[..end].as_bstr();
                let basename = path.rfind_byte(b'/').map(|p| p + 1);
                if let Some(m) =
                    pattern_matching_relative_path(l, path, basename, Some(is_dir), Case::Sensitive)
                    && best.is_none_or(|(seq, _)| m.sequence_number > seq)
                {
                    best = Some((m.sequence_number, !m.pattern.is_negative()));
                }
            }
            if let Some((_, ignored)) = best {
                return ignored;
            }
        }
        false
    }
}

fn list(bytes: &[u8], base: Option<gix::bstr::BString>) -> List<Ignore> {
    let patterns = gix_ignore::parse(bytes, false)
        .map(
            |(pattern, sequence_number, kind)| gix_ignore::glob::search::pattern::Mapping {
                pattern,
                value: kind,
                sequence_number,
            },
        )
        .collect();
    List {
        patterns,
        source: None,
        base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignored(r: &Rules, p: &str, dir: bool) -> bool {
        r.is_ignored(p.into(), dir)
    }

    #[test]
    fn defaults_exclude_vcs_ci_and_images() {
        let r = Rules::new(None);
        assert!(ignored(&r, ".github", true));
        assert!(ignored(&r, "a/logo.png", false));
        assert!(ignored(&r, ".gitignore", false));
        assert!(!ignored(&r, "deploy/app.yaml", false));
        assert!(!ignored(&r, ".sourceignore", false));
    }

    #[test]
    fn keys_are_matched_with_their_parents_as_flux_does() {
        let r = KeyRules::new(
            Some(b"drafts/\n*.md\n"),
            Some("!README.md\n/apps/*/secret.yaml\n"),
        );
        assert!(
            r.is_ignored("drafts/a/b.yaml"),
            "a parent directory matches"
        );
        assert!(r.is_ignored("x/notes.md"));
        assert!(
            !r.is_ignored("x/README.md"),
            "spec.ignore overrides .sourceignore"
        );
        assert!(r.is_ignored("apps/web/secret.yaml"));
        assert!(!r.is_ignored("other/apps/web/secret.yaml"), "anchored");
        assert!(!r.is_ignored("apps/web/deploy.yaml"));
        assert!(!r.is_ignored("logo.png"), "no default excludes for buckets");
        assert!(!KeyRules::new(None, None).is_ignored(".github/x"));
    }

    #[test]
    fn deeper_files_and_spec_take_precedence() {
        let mut r = Rules::new(Some("!keep.png\n*.tmp\n"));
        r.push_sourceignore(0, "".into(), b"*.yaml\n");
        r.push_sourceignore(1, "apps".into(), b"!*.yaml\n/local.txt\n");
        assert!(ignored(&r, "top.yaml", false));
        assert!(!ignored(&r, "apps/x.yaml", false), "deeper negation wins");
        assert!(
            ignored(&r, "apps/local.txt", false),
            "anchored to its directory"
        );
        assert!(!ignored(&r, "local.txt", false));
        assert!(
            !ignored(&r, "keep.png", false),
            "spec.ignore overrides defaults"
        );
        assert!(ignored(&r, "apps/x.tmp", false));
        r.leave(1);
        assert!(ignored(&r, "apps/x.yaml", false), "left the directory");
    }
}
