//! A fast scanner for the block-style YAML that `helm repo index` (go-yaml) and chart museums
//! write, fed line by line as the index streams in.
//!
//! Why: the general parser (serde-saphyr) reads a 50 MiB index at 13–17 MB/s here, 3–4 s; the
//! Helm issue asks for ≤ 1 s. Nearly all of an index is fields Ferry skips, in one regular
//! shape, so a line scanner that tracks indentation does the same work many times faster.
//!
//! Sameness: the scanner recognises a strict subset of YAML — block mappings and sequences,
//! plain and quoted scalars (multi-line ones only where skipped), block scalars where skipped,
//! `{}`/`[]` — and checks every line of it, skipped or kept (indentation, duplicate keys,
//! characters, keys that might not be strings, comments, …). For anything outside the subset it
//! returns [`Unsure`] and the caller parses the whole index again with the general parser, so
//! an index is either read by the scanner exactly as the general parser reads it, or by the
//! general parser. `index::tests` and `scan::tests` compare both on generated, real
//! (`helm repo index`) and randomly perturbed indexes.
//!
//! Bounds: a line longer than [`MAX_LINE`], nesting deeper than [`MAX_DEPTH`] or a mapping
//! (other than `entries`) with more than [`MAX_KEYS`] keys makes the scanner unsure; the
//! general parser has its own budget. Work is linear in the input.

mod syntax;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use super::index::{ChartTable, RawEntry};
use syntax::*;

/// The longest line kept whole while it streams in.
pub const MAX_LINE: usize = 1 << 20;
/// The deepest nesting recognised (the general parser allows 64).
pub const MAX_DEPTH: usize = 48;
/// The most keys in one mapping other than `entries` (checked for duplicates by linear search).
pub const MAX_KEYS: usize = 256;

/// The scanner is not sure it reads this index as YAML does: parse it with the general parser.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsure {
    /// 1-based line number.
    pub line: u64,
    /// What the scanner did not recognise.
    pub why: &'static str,
}

/// What a node means to Ferry, from its path in the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Root,
    /// `entries`: chart name → list of versions.
    Entries,
    /// `entries.<chart>`: the list of versions.
    Chart,
    /// `entries.<chart>[i]`: one version.
    Entry,
    /// `entries.<chart>[i].urls`.
    Urls,
    /// A scalar that is kept.
    Keep(Field),
    /// Anything else: checked, not kept.
    Skip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    ApiVersion,
    Version,
    Digest,
    Created,
    Url,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Map,
    Seq,
}

struct Frame {
    kind: Kind,
    indent: usize,
    role: Role,
    /// Where this mapping's key hashes start in `Scanner::keys`.
    keys_from: usize,
}

/// What the next line may be.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// A structural line (key, sequence entry) or the end of containers.
    Line,
    /// After `key:` with nothing after it: a nested node, a sequence at the key's indentation,
    /// or nothing (null). `indent` is the mapping's.
    Value { indent: usize, role: Role },
    /// After a plain scalar: lines indented at least `min` continue it (allowed when skipped).
    Plain { min: usize, skipped: bool },
    /// Inside a multi-line quoted scalar (skipped only); lines indented at least `min`.
    Quoted { min: usize, double: bool },
    /// Block scalar content: lines indented more than `parent`; `content` once known.
    Block {
        parent: usize,
        content: Option<usize>,
    },
}

/// The scanner's state between lines.
pub struct Scanner {
    table: ChartTable,
    api_version: Option<bool>,
    stack: Vec<Frame>,
    /// Key hashes of the open mappings, each mapping's from its `keys_from`.
    keys: Vec<u64>,
    /// Chart names seen under `entries`.
    charts: HashSet<u64>,
    chart: Box<str>,
    entry: RawEntry,
    expect: Expect,
    started: bool,
    line: u64,
    /// A line not yet complete at the end of the last chunk.
    carry: Vec<u8>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    pub fn new() -> Self {
        Self {
            table: ChartTable::default(),
            api_version: None,
            stack: Vec::with_capacity(16),
            keys: Vec::with_capacity(64),
            charts: HashSet::new(),
            chart: "".into(),
            entry: RawEntry::default(),
            expect: Expect::Line,
            started: false,
            line: 0,
            carry: Vec::new(),
        }
    }

    /// Scans the complete lines of `chunk` (the rest waits for the next chunk).
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), Unsure> {
        if !self.carry.is_empty() {
            let Some(nl) = memchr::memchr(b'\n', chunk) else {
                return self.extend_carry(chunk);
            };
            let mut line = std::mem::take(&mut self.carry);
            line.extend_from_slice(&chunk[..nl]);
            if line.len() > MAX_LINE {
                return Err(self.unsure("a line longer than 1 MiB"));
            }
            self.line(&line)?;
            line.clear();
            self.carry = line;
            chunk = &chunk[nl + 1..];
        }
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            self.line(&chunk[start..nl])?;
            start = nl + 1;
        }
        self.extend_carry(&chunk[start..])
    }

    fn extend_carry(&mut self, rest: &[u8]) -> Result<(), Unsure> {
        if self.carry.len() + rest.len() > MAX_LINE {
            return Err(self.unsure("a line longer than 1 MiB"));
        }
        self.carry.extend_from_slice(rest);
        Ok(())
    }

    /// The end of the index: whether it has an `apiVersion`, and the table (not yet sorted).
    pub fn finish(mut self) -> Result<(bool, ChartTable), Unsure> {
        if !self.carry.is_empty() {
            let last = std::mem::take(&mut self.carry);
            self.line(&last)?;
        }
        match self.expect {
            Expect::Quoted { .. } => return Err(self.unsure("an unclosed quoted scalar")),
            Expect::Value { role, .. } => self.null(role)?,
            _ => {}
        }
        while let Some(frame) = self.stack.pop() {
            self.close(&frame);
        }
        if !self.started {
            return Err(self.unsure("no mapping"));
        }
        Ok((self.api_version.unwrap_or(false), self.table))
    }

    fn unsure(&self, why: &'static str) -> Unsure {
        Unsure {
            line: self.line,
            why,
        }
    }

    fn line(&mut self, raw: &[u8]) -> Result<(), Unsure> {
        self.line += 1;
        let indent = indent(raw);
        let text = &raw[indent..];
        let block = matches!(self.expect, Expect::Block { content: Some(c), .. } if indent >= c)
            || matches!(self.expect, Expect::Block { parent, .. } if indent > parent);
        if !plain_ascii(text) && !check_slow(text, block) {
            return Err(self.unsure("a tab, control character or invalid UTF-8"));
        }
        let blank = text.is_empty();
        match self.expect {
            Expect::Block { parent, content } => {
                if blank {
                    if content.is_none() && indent > parent {
                        return Err(self.unsure("a leading line of spaces in a block scalar"));
                    }
                    return Ok(());
                }
                match content {
                    None if indent > parent => {
                        self.expect = Expect::Block {
                            parent,
                            content: Some(indent),
                        };
                        return Ok(());
                    }
                    Some(c) if indent >= c => return Ok(()),
                    Some(_) if indent > parent => {
                        return Err(self.unsure("a block scalar line indented too little"));
                    }
                    _ => self.expect = Expect::Line,
                }
            }
            Expect::Quoted { min, double } => {
                if blank {
                    return Ok(());
                }
                if indent < min {
                    return Err(self.unsure("a quoted scalar line indented too little"));
                }
                if let Some(end) = quote_end(text, 0, double) {
                    if !trim_end(&text[end + 1..]).is_empty() {
                        return Err(self.unsure("text after a quoted scalar"));
                    }
                    self.expect = Expect::Plain {
                        min,
                        skipped: false,
                    };
                }
                return Ok(());
            }
            Expect::Plain { min, skipped } => {
                if blank {
                    return Ok(());
                }
                if indent >= min {
                    if !skipped || !plain_continuation(text) {
                        return Err(self.unsure("a scalar continued on the next line"));
                    }
                    return Ok(());
                }
                self.expect = Expect::Line;
            }
            Expect::Value { .. } | Expect::Line => {
                if blank {
                    return Ok(());
                }
            }
        }
        self.structural(indent, text)
    }

    /// A key or sequence entry line (not blank).
    fn structural(&mut self, indent: usize, text: &[u8]) -> Result<(), Unsure> {
        if text[0] == b'#' {
            return Err(self.unsure("a comment"));
        }
        if indent == 0 && (text.starts_with(b"---") || text.starts_with(b"...")) {
            return Err(self.unsure("a document marker"));
        }
        let item = is_seq_item(text);
        if let Expect::Value {
            indent: parent,
            role,
        } = std::mem::replace(&mut self.expect, Expect::Line)
        {
            if indent > parent || (indent == parent && item) {
                let kind = if item { Kind::Seq } else { Kind::Map };
                let ok = match kind {
                    Kind::Map => matches!(role, Role::Entries | Role::Skip),
                    Kind::Seq => matches!(role, Role::Chart | Role::Urls | Role::Skip),
                };
                if !ok {
                    return Err(self.unsure("a collection where a scalar is kept"));
                }
                self.push(kind, indent, role)?;
            } else {
                self.null(role)?;
            }
        }
        while let Some(top) = self.stack.last() {
            let compact_seq_ends = top.kind == Kind::Seq
                && top.indent == indent
                && !item
                && self.stack.len() >= 2
                && self.stack[self.stack.len() - 2].indent == indent;
            if top.indent > indent || compact_seq_ends {
                let frame = self.stack.pop().expect("just seen");
                self.keys.truncate(frame.keys_from);
                self.close(&frame);
            } else {
                break;
            }
        }
        if self.stack.is_empty() {
            if self.started || indent != 0 {
                return Err(self.unsure("content after the document or indented at the start"));
            }
            self.started = true;
            self.push(Kind::Map, 0, Role::Root)?;
        }
        let top = self.stack.last().expect("not empty");
        if top.indent != indent {
            return Err(self.unsure("unexpected indentation"));
        }
        match (top.kind, item) {
            (Kind::Seq, true) => self.seq_item(indent, text),
            (Kind::Map, false) => self.key_line(text),
            _ => Err(self.unsure("a sequence entry and mapping key mixed")),
        }
    }

    fn push(&mut self, kind: Kind, indent: usize, role: Role) -> Result<(), Unsure> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.unsure("nesting too deep"));
        }
        if role == Role::Entry {
            self.entry = RawEntry::default();
        }
        self.stack.push(Frame {
            kind,
            indent,
            role,
            keys_from: self.keys.len(),
        });
        Ok(())
    }

    fn close(&mut self, frame: &Frame) {
        if frame.role == Role::Entry {
            let entry = std::mem::take(&mut self.entry);
            self.table.push(&self.chart, entry);
        }
    }

    /// A null value (a key with nothing after it).
    fn null(&mut self, role: Role) -> Result<(), Unsure> {
        match role {
            Role::Skip => Ok(()),
            _ => Err(self.unsure("a null where Ferry keeps a value")),
        }
    }

    /// `- …` in a sequence at `indent`.
    fn seq_item(&mut self, indent: usize, text: &[u8]) -> Result<(), Unsure> {
        let spaces = text[1..].iter().take_while(|&&b| b == b' ').count();
        let rest = &text[1 + spaces..];
        if rest.is_empty() {
            return Err(self.unsure("an empty sequence entry"));
        }
        let role = self.stack.last().expect("in a sequence").role;
        if key_colon(rest).is_some() {
            let map_role = match role {
                Role::Chart => Role::Entry,
                Role::Skip => Role::Skip,
                _ => return Err(self.unsure("a mapping where a scalar is kept")),
            };
            self.push(Kind::Map, indent + 1 + spaces, map_role)?;
            return self.key_line(rest);
        }
        let scalar_role = match role {
            Role::Urls => Role::Keep(Field::Url),
            Role::Skip => Role::Skip,
            _ => return Err(self.unsure("a scalar where a chart version is expected")),
        };
        self.value(scalar_role, rest, indent, false)
    }

    /// `key: …` in the mapping on top of the stack.
    fn key_line(&mut self, text: &[u8]) -> Result<(), Unsure> {
        let Some(colon) = key_colon(text) else {
            return Err(self.unsure("a line that is not a key in a mapping"));
        };
        let key = &text[..colon];
        if !safe_key(key) {
            return Err(self.unsure("a key that is not a plain string"));
        }
        let h = hash(key);
        let top = self.stack.last().expect("in a mapping");
        let (role, indent, keys_from) = (top.role, top.indent, top.keys_from);
        if role == Role::Entries {
            if !self.charts.insert(h) {
                return Err(self.unsure("a chart listed twice"));
            }
        } else {
            let keys = &self.keys[keys_from..];
            if keys.contains(&h) || keys.len() >= MAX_KEYS {
                return Err(self.unsure("a duplicate key, or too many keys"));
            }
            self.keys.push(h);
        }
        let value_role = match (role, key) {
            (Role::Root, b"apiVersion") => Role::Keep(Field::ApiVersion),
            (Role::Root, b"entries") => Role::Entries,
            (Role::Entries, _) => {
                // Keys are checked UTF-8 (plain ASCII, or checked by check_slow).
                self.chart = String::from_utf8_lossy(key).into();
                Role::Chart
            }
            (Role::Entry, b"version") => Role::Keep(Field::Version),
            (Role::Entry, b"digest") => Role::Keep(Field::Digest),
            (Role::Entry, b"created") => Role::Keep(Field::Created),
            (Role::Entry, b"urls") => Role::Urls,
            _ => Role::Skip,
        };
        let rest = &text[colon + 1..];
        let value = &rest[rest.iter().take_while(|&&b| b == b' ').count()..];
        self.value(value_role, value, indent, true)
    }

    /// The value after `key:` or `- ` in a container at `indent`.
    fn value(
        &mut self,
        role: Role,
        text: &[u8],
        indent: usize,
        of_key: bool,
    ) -> Result<(), Unsure> {
        if text.is_empty() {
            if !of_key {
                return Err(self.unsure("an empty sequence entry"));
            }
            self.expect = Expect::Value { indent, role };
            return Ok(());
        }
        let after_scalar = Expect::Plain {
            min: indent + 1,
            skipped: false,
        };
        if let Some(map) = empty_flow(text) {
            let ok = match role {
                Role::Skip => true,
                Role::Entries => map,
                Role::Chart | Role::Urls => !map,
                _ => false,
            };
            if !ok {
                return Err(self.unsure("an empty collection where Ferry keeps a value"));
            }
            self.expect = after_scalar;
            return Ok(());
        }
        match text[0] {
            q @ (b'"' | b'\'') => {
                let double = q == b'"';
                match quote_end(text, 1, double) {
                    Some(end) => {
                        if !trim_end(&text[end + 1..]).is_empty() {
                            return Err(self.unsure("text after a quoted scalar"));
                        }
                        if let Role::Keep(field) = role {
                            let Some(s) = unquote(text, end) else {
                                return Err(self.unsure("an escape in a kept quoted scalar"));
                            };
                            self.keep(field, s);
                        } else if role != Role::Skip {
                            return Err(self.unsure("a scalar where a collection is expected"));
                        }
                        self.expect = after_scalar;
                    }
                    None if role == Role::Skip => {
                        self.expect = Expect::Quoted {
                            min: indent + 1,
                            double,
                        };
                    }
                    None => return Err(self.unsure("a multi-line quoted scalar that is kept")),
                }
                Ok(())
            }
            b'|' | b'>' if role == Role::Skip && block_header(text) => {
                self.expect = Expect::Block {
                    parent: indent,
                    content: None,
                };
                Ok(())
            }
            _ => {
                let Some(s) = plain(text) else {
                    return Err(self.unsure("a scalar the scanner does not recognise"));
                };
                match role {
                    Role::Skip => {
                        self.expect = Expect::Plain {
                            min: indent + 1,
                            skipped: true,
                        };
                        return Ok(());
                    }
                    Role::Keep(field) if !maybe_not_string(s) => {
                        self.keep(field, String::from_utf8_lossy(s).into_owned());
                    }
                    Role::Keep(_) => {
                        return Err(self.unsure("a kept scalar that may not be a string"));
                    }
                    _ => return Err(self.unsure("a scalar where a collection is expected")),
                }
                self.expect = after_scalar;
                Ok(())
            }
        }
    }

    fn keep(&mut self, field: Field, s: String) {
        match field {
            Field::ApiVersion => self.api_version = Some(!s.is_empty()),
            Field::Version => self.entry.version = Some(s),
            Field::Digest => self.entry.digest = Some(s),
            Field::Created => self.entry.created = Some(s),
            Field::Url => self.entry.urls.push(s),
        }
    }
}
