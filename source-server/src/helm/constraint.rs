//! Chart versions and version ranges as Helm reads them: Masterminds semver v3 (`NewVersion`,
//! `NewConstraint`), not Cargo's rules, which the `semver` crate implements. The differences
//! that matter: a bare version `1.2` means `1.2.x` (Cargo: `^1.2`); `1.x`, `1.*` and `*`
//! wildcards; `,` **or** whitespace joins constraints (AND); `||` separates alternatives (OR);
//! hyphen ranges `1.2 - 1.4.5`; `>1.2` means `>=1.3.0`; a leading `v` is allowed; and a
//! prerelease version satisfies a constraint only when that constraint itself names a
//! prerelease (Cargo additionally requires the same `major.minor.patch`).
//!
//! Versions are kept as `semver::Version` (compared by precedence: build metadata ignored).

use std::cmp::Ordering;

use semver::{BuildMetadata, Prerelease, Version};

/// Parses a chart version as Masterminds' lenient `NewVersion` does: an optional `v`, one to
/// three numeric parts (missing ones are 0), then an optional `-prerelease` and `+build`.
pub fn parse_version(s: &str) -> Option<Version> {
    let s = s.trim();
    let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
    let (core, build) = match s.split_once('+') {
        Some((c, b)) => (c, Some(b)),
        None => (s, None),
    };
    let (core, pre) = match core.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (core, None),
    };
    let mut nums = [0u64; 3];
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Masterminds refuses leading zeros only in strict mode; accept them like it does.
        nums[i] = p.parse().ok()?;
    }
    let mut v = Version::new(nums[0], nums[1], nums[2]);
    if let Some(p) = pre {
        v.pre = Prerelease::new(p).ok()?;
    }
    if let Some(b) = build {
        v.build = BuildMetadata::new(b).ok()?;
    }
    Some(v)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// `=` or none: equal, or `~` when the version has wildcards.
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Tilde,
    Caret,
}

/// One comparison, with Masterminds' "dirty" flags for wildcard/missing parts.
#[derive(Clone, Debug)]
struct Comparison {
    op: Op,
    con: Version,
    minor_dirty: bool,
    patch_dirty: bool,
    dirty: bool,
}

/// A parsed range: alternatives (`||`) of conjunctions.
#[derive(Clone, Debug)]
pub struct Constraint {
    any_of: Vec<Vec<Comparison>>,
}

/// Why a range is not a valid constraint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{range:?} is not a valid semver range: {why}")]
pub struct ConstraintError {
    /// The range as given (cut to 256 bytes).
    pub range: String,
    /// What is wrong with it.
    pub why: String,
}

/// The longest range accepted.
pub const MAX_RANGE_LEN: usize = 1024;

impl Constraint {
    /// Parses a range; empty means `*`.
    pub fn parse(range: &str) -> Result<Self, ConstraintError> {
        let err = |why: String| ConstraintError {
            range: range.chars().take(256).collect(),
            why,
        };
        if range.len() > MAX_RANGE_LEN {
            return Err(err(format!("longer than {MAX_RANGE_LEN} bytes")));
        }
        let mut any_of = Vec::new();
        for alt in range.split("||") {
            let alt = rewrite_hyphen(alt).map_err(err)?;
            let mut all = Vec::new();
            for (op, ver) in tokens(&alt).map_err(err)? {
                all.push(comparison(&op, &ver).map_err(err)?);
            }
            if all.is_empty() {
                if range.trim().is_empty() && any_of.is_empty() {
                    all.push(comparison("", "*").map_err(err)?);
                } else {
                    return Err(err("an empty alternative around `||`".into()));
                }
            }
            any_of.push(all);
        }
        Ok(Self { any_of })
    }

    /// Whether `v` satisfies the range.
    pub fn matches(&self, v: &Version) -> bool {
        self.any_of
            .iter()
            .any(|all| all.iter().all(|c| c.matches(v)))
    }
}

/// `A - B` → `>=A <=B` (Masterminds' `rewriteRange`; the spaces around `-` are required).
fn rewrite_hyphen(alt: &str) -> Result<String, String> {
    let words: Vec<&str> = alt.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if i + 2 < words.len() && words[i + 1] == "-" {
            out.push(format!(">={}", words[i]));
            out.push(format!("<={}", words[i + 2]));
            i += 3;
        } else if words[i] == "-" {
            return Err("a hyphen range needs a version on both sides".into());
        } else {
            out.push(words[i].to_string());
            i += 1;
        }
    }
    Ok(out.join(" "))
}

/// Splits a conjunction into (operator, version) pairs; `,` and whitespace separate them, and
/// an operator may be followed by whitespace.
fn tokens(alt: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = alt.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut op = String::new();
        while let Some(&c) = chars.peek().filter(|c| "=!<>~^".contains(**c)) {
            op.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut ver = String::new();
        while let Some(&c) = chars
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || ".-+*".contains(**c))
        {
            ver.push(c);
            chars.next();
        }
        if ver.is_empty() {
            return Err(match chars.peek() {
                Some(c) => format!("unexpected {c:?}"),
                None => format!("operator {op:?} without a version"),
            });
        }
        out.push((op, ver));
    }
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

fn comparison(op: &str, ver: &str) -> Result<Comparison, String> {
    let op = match op {
        "" | "=" => Op::Eq,
        "!=" => Op::Ne,
        ">" => Op::Gt,
        "<" => Op::Lt,
        ">=" | "=>" => Op::Ge,
        "<=" | "=<" => Op::Le,
        "~" | "~>" => Op::Tilde,
        "^" => Op::Caret,
        other => return Err(format!("unknown operator {other:?}")),
    };
    let bad = || format!("{ver:?} is not a version");
    let body = ver.strip_prefix(['v', 'V']).unwrap_or(ver);
    // Split off the prerelease/build suffix of the last numeric part.
    let suffix_at = body
        .char_indices()
        .find(|(_, c)| *c == '-' || *c == '+')
        .map_or(body.len(), |(i, _)| i);
    let (core, suffix) = body.split_at(suffix_at);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
    let mut nums = [0u64; 3];
    for (i, p) in parts.iter().enumerate() {
        if is_x(p) {
            match i {
                0 => dirty = true,
                1 => {
                    dirty = true;
                    minor_dirty = true;
                }
                _ => {
                    dirty = true;
                    patch_dirty = true;
                }
            }
            break;
        }
        nums[i] = p.parse().map_err(|_| bad())?;
    }
    if !dirty {
        match parts.len() {
            1 => {
                dirty = true;
                minor_dirty = true;
            }
            2 => {
                dirty = true;
                patch_dirty = true;
            }
            _ => {}
        }
    }
    let text = format!("{}.{}.{}{suffix}", nums[0], nums[1], nums[2]);
    let con = parse_version(&text).ok_or_else(bad)?;
    Ok(Comparison {
        op,
        con,
        minor_dirty,
        patch_dirty,
        dirty,
    })
}

fn cmp(a: &Version, b: &Version) -> Ordering {
    a.cmp_precedence(b)
}

impl Comparison {
    /// Masterminds v3's `constraint.check`, operator by operator.
    fn matches(&self, v: &Version) -> bool {
        let c = &self.con;
        // A prerelease only satisfies a comparison that names a prerelease.
        if !v.pre.is_empty() && c.pre.is_empty() {
            return false;
        }
        match self.op {
            Op::Eq if self.dirty => self.tilde(v),
            Op::Eq => cmp(v, c) == Ordering::Equal,
            Op::Ne => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if self.minor_dirty {
                        return false;
                    }
                    if c.minor != v.minor {
                        return true;
                    }
                    return !self.patch_dirty && c.patch != v.patch;
                }
                cmp(v, c) != Ordering::Equal
            }
            Op::Gt => {
                if !self.dirty {
                    return cmp(v, c) == Ordering::Greater;
                }
                if v.major != c.major {
                    return v.major > c.major;
                }
                if self.minor_dirty {
                    return false;
                }
                if self.patch_dirty {
                    return v.minor > c.minor;
                }
                cmp(v, c) == Ordering::Greater
            }
            Op::Lt => cmp(v, c) == Ordering::Less,
            Op::Ge => cmp(v, c) != Ordering::Less,
            Op::Le => {
                if !self.dirty {
                    return cmp(v, c) != Ordering::Greater;
                }
                if v.major != c.major {
                    return v.major < c.major;
                }
                if self.minor_dirty {
                    return true;
                }
                if self.patch_dirty {
                    return v.minor <= c.minor;
                }
                cmp(v, c) != Ordering::Greater
            }
            Op::Tilde => self.tilde(v),
            Op::Caret => {
                if cmp(v, c) == Ordering::Less {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                v.patch == c.patch
            }
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.con;
        if cmp(v, c) == Ordering::Less {
            return false;
        }
        // `~0.0.0` (and `*`) accept everything at or above it.
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        v.minor == c.minor || self.minor_dirty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(range: &str, yes: &[&str], no: &[&str]) {
        let c = Constraint::parse(range).unwrap_or_else(|e| panic!("{range}: {e}"));
        for v in yes {
            let ver = parse_version(v).expect("valid version");
            assert!(c.matches(&ver), "{range:?} should match {v}");
        }
        for v in no {
            let ver = parse_version(v).expect("valid version");
            assert!(!c.matches(&ver), "{range:?} should not match {v}");
        }
    }

    #[test]
    fn masterminds_ranges() {
        ok("*", &["0.0.1", "1.0.0", "99.1.2"], &["1.0.0-rc.1"]);
        ok("", &["1.0.0"], &["2.0.0-alpha"]);
        ok("1.x", &["1.0.0", "1.9.9"], &["2.0.0", "0.9.0"]);
        ok("1.2", &["1.2.0", "1.2.9"], &["1.3.0", "1.1.9"]);
        ok("1.2.3", &["1.2.3", "v1.2.3+build"], &["1.2.4"]);
        ok("^1.2", &["1.2.0", "1.9.0"], &["2.0.0", "1.1.0"]);
        ok("^0.2.3", &["0.2.3", "0.2.9"], &["0.3.0", "0.2.2"]);
        ok("^0.0.3", &["0.0.3"], &["0.0.4"]);
        ok("~1.2", &["1.2.0", "1.2.7"], &["1.3.0"]);
        ok("~1.2.3", &["1.2.3", "1.2.9"], &["1.3.0", "1.2.2"]);
        ok("~1", &["1.0.0", "1.5.0"], &["2.0.0"]);
        ok(">=1.0 <2.0", &["1.0.0", "1.9.9"], &["2.0.0", "0.9.9"]);
        ok(">=1.0, <2.0", &["1.5.0"], &["2.0.0"]);
        ok(">= 1.0, < 2.0", &["1.5.0"], &["2.0.0"]);
        ok(
            "<1.0.0 || >=3.0.0",
            &["0.5.0", "3.0.0"],
            &["1.0.0", "2.9.9"],
        );
        ok(">1.2", &["1.3.0", "2.0.0"], &["1.2.5", "1.2.0"]);
        ok(">1", &["2.0.0"], &["1.9.0"]);
        ok("<=1.2", &["1.2.9", "1.0.0"], &["1.3.0"]);
        ok("!=1.2.3", &["1.2.4"], &["1.2.3"]);
        ok("1.2 - 1.4.5", &["1.2.0", "1.4.5"], &["1.4.6", "1.1.9"]);
        ok(
            ">=1.0.0-0",
            &["1.0.0-rc.1", "1.0.0", "2.0.0-beta"],
            &["0.9.0"],
        );
        ok(
            "^2.0.0-beta.1",
            &["2.0.0-beta.2", "2.0.0"],
            &["2.0.0-alpha"],
        );
        ok("v1.x", &["1.4.0"], &["2.0.0"]);
    }

    #[test]
    fn invalid_ranges_are_refused_with_the_reason() {
        for bad in ["foo", ">=", "1.2.3.4", "1 - ", "||", "=!1", "%1"] {
            let e = Constraint::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("not a valid semver range"), "{e}");
        }
    }

    #[test]
    fn lenient_versions() {
        assert_eq!(parse_version("v1.2"), Some(Version::new(1, 2, 0)));
        assert_eq!(parse_version("3"), Some(Version::new(3, 0, 0)));
        assert!(parse_version("1.2.3.4").is_none());
        assert!(parse_version("latest").is_none());
        let v = parse_version("1.0.0-rc.1+abc").expect("valid");
        assert_eq!(v.pre.as_str(), "rc.1");
    }
}
