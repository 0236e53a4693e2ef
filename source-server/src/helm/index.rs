//! A repository's `index.yaml`, parsed once, streaming, into a compact table of chart versions.
//!
//! Two parsers, one answer. The fast scanner ([`super::scan`]) reads the block YAML that
//! `helm repo index` and chart museums write, line by line as the body streams in, and keeps
//! each entry's name, version, urls, digest and created time; it gives up on anything outside
//! the subset it is sure of. Then the general parser — serde-saphyr's reader API (granit-parser
//! events, no document tree, every other field skipped as `IgnoredAny`) — reads the copy of the
//! body spooled to an anonymous file meanwhile. Neither holds the index bytes or a YAML value
//! tree in memory: what stays is the table. serde_yaml 0.9 (already in the tree) could not
//! serve as the general parser: its loader materializes every event of a document before
//! deserializing, a few hundred bytes per scalar. Measured on a 49.6 MiB index of 50,000
//! versions (`source-server/bench/helm/RESULTS.md`): the general parser alone took 3–4 s
//! (13–17 MB/s on 2 busy cores); with the scanner, see the results file.

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use ferry_proto::{Digest, Hasher};
use semver::Version;
use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::constraint::{Constraint, parse_version};
use super::scan::Scanner;

/// One chart version, as much of its index entry as resolving and downloading need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChartVersion {
    /// The version, parsed (Masterminds' lenient syntax).
    pub version: Version,
    /// The version as written in the index.
    pub raw: Box<str>,
    /// Where the `.tgz` is, absolute or relative to the repository URL.
    pub urls: Box<[Box<str>]>,
    /// The entry's `digest`: sha256 hex of the `.tgz`, when the index has one.
    pub digest: Option<Box<str>>,
    /// The entry's `created` time, as written.
    pub created: Option<Box<str>>,
}

/// The charts of one index, each chart's versions highest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChartTable {
    charts: HashMap<Box<str>, Vec<ChartVersion>>,
    versions: u64,
    /// Entries left out because their version is not semver.
    pub skipped: u64,
}

/// A parsed index: its revision and table.
#[derive(Debug)]
pub struct ParsedIndex {
    /// sha256 of the index bytes (the repository's revision, as in Flux).
    pub digest: Digest,
    /// Bytes read.
    pub size: u64,
    pub table: ChartTable,
    /// Which parser read it.
    pub parser: Parser,
}

/// Which parser read an index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parser {
    /// The fast scanner for `helm repo index` output ([`super::scan`]).
    Scanner,
    /// The general YAML parser (serde-saphyr), and why the scanner was not used.
    General(String),
}

/// Why an index cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// More bytes than the configured limit.
    #[error("the index is larger than {limit} bytes (--helm-index-max-size)")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// Not YAML, or not shaped like a Helm index.
    #[error("the index is not a valid Helm repository index: {0}")]
    Invalid(String),
    /// Reading the body failed.
    #[error("reading the index: {0}")]
    Read(String),
}

/// A range resolved against a table.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution<'a> {
    /// The highest version satisfying the range.
    Found(&'a ChartVersion),
    /// The index has no chart of that name.
    NoChart,
    /// The chart has no version satisfying the range; `latest` is its highest version.
    NoMatch {
        /// The highest version of the chart, to put in the message.
        latest: Option<&'a str>,
    },
}

impl ChartTable {
    /// Charts in the table.
    pub fn charts(&self) -> u64 {
        self.charts.len() as u64
    }

    /// Chart versions in the table.
    pub fn versions(&self) -> u64 {
        self.versions
    }

    /// The highest version of `chart` satisfying `range` (Helm's `IndexFile.Get`).
    pub fn resolve(&self, chart: &str, range: &Constraint) -> Resolution<'_> {
        let Some(versions) = self.charts.get(chart) else {
            return Resolution::NoChart;
        };
        match versions.iter().find(|v| range.matches(&v.version)) {
            Some(v) => Resolution::Found(v),
            None => Resolution::NoMatch {
                latest: versions.first().map(|v| &*v.raw),
            },
        }
    }

    pub(super) fn push(&mut self, chart: &str, entry: RawEntry) {
        let Some(raw) = entry.version else {
            self.skipped += 1;
            return;
        };
        let Some(version) = parse_version(&raw) else {
            self.skipped += 1;
            return;
        };
        let v = ChartVersion {
            version,
            raw: raw.into(),
            urls: entry.urls.into_iter().map(Into::into).collect(),
            digest: entry.digest.filter(|d| !d.is_empty()).map(Into::into),
            created: entry.created.map(Into::into),
        };
        self.versions += 1;
        match self.charts.get_mut(chart) {
            Some(list) => list.push(v),
            None => {
                self.charts.insert(chart.into(), vec![v]);
            }
        }
    }

    pub(super) fn finish(&mut self) {
        for list in self.charts.values_mut() {
            // Highest first; equal precedence keeps index order (stable sort), as Helm's
            // SortEntries does.
            list.sort_by(|a, b| b.version.cmp_precedence(&a.version));
            list.shrink_to_fit();
        }
        self.charts.shrink_to_fit();
    }
}

/// The fields of an entry that are kept; serde skips the others without allocating.
#[derive(Deserialize, Default)]
pub(super) struct RawEntry {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
}

/// Reads through to the parser, hashing and counting, and stops at the size limit.
pub struct CountingReader<R> {
    inner: R,
    hasher: Hasher,
    size: u64,
    limit: u64,
    over: bool,
    /// The inner reader's failure, kept apart from parse errors.
    failed: Option<String>,
}

impl<R: Read> CountingReader<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
            size: 0,
            limit,
            over: false,
            failed: None,
        }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| {
            self.failed = Some(e.to_string());
        })?;
        self.size += n as u64;
        if self.size > self.limit {
            self.over = true;
            return Err(std::io::Error::other("index size limit exceeded"));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Parses an index from `reader`, at most `limit` bytes, into a table. The whole body is read
/// (also what follows the YAML document) so the digest is over every byte served.
///
/// The fast scanner ([`super::scan`]) reads the index as it streams in, while the bytes are
/// also written to an anonymous file in `spool_dir` (page cache, not the process's memory);
/// when the scanner is not sure of the index, the general parser reads that copy. If no spool
/// file can be made, the general parser reads the stream itself.
pub fn parse(reader: impl Read, limit: u64, spool_dir: &Path) -> Result<ParsedIndex, IndexError> {
    let mut counting = CountingReader::new(reader, limit);
    let mut spool = match tempfile::tempfile_in(spool_dir) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(dir = %spool_dir.display(), error = %e, "cannot spool the index: the general parser reads it");
            let mut parsed = parse_general(counting, limit)?;
            parsed.parser =
                Parser::General(format!("no spool file in {}: {e}", spool_dir.display()));
            return Ok(parsed);
        }
    };
    let mut spool_failed = None;
    let mut scanner = Ok(Scanner::new());
    let mut buf = vec![0u8; 128 << 10];
    loop {
        let n = match counting.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) if counting.over => return Err(IndexError::TooLarge { limit }),
            Err(e) => return Err(IndexError::Read(e.to_string())),
        };
        let chunk = &buf[..n];
        if let Some(f) = spool.as_mut()
            && let Err(e) = f.write_all(chunk)
        {
            spool = None;
            spool_failed = Some(e.to_string());
        }
        if let Ok(s) = scanner.as_mut()
            && let Err(unsure) = s.feed(chunk)
        {
            scanner = Err(unsure);
        }
    }
    let digest = counting.hasher.finish();
    let size = counting.size;
    let (api_version, table, parser) = match scanner.and_then(Scanner::finish) {
        Ok((api_version, table)) => (api_version, table, Parser::Scanner),
        Err(unsure) => {
            let why = format!("line {}: {}", unsure.line, unsure.why);
            let Some(mut file) = spool else {
                return Err(IndexError::Read(format!(
                    "the index needs the general parser ({why}), and spooling it to {} failed: {}",
                    spool_dir.display(),
                    spool_failed.unwrap_or_default()
                )));
            };
            file.seek(SeekFrom::Start(0))
                .map_err(|e| IndexError::Read(format!("re-reading the spooled index: {e}")))?;
            let (api_version, table) = general(std::io::BufReader::new(file), limit)?;
            (api_version, table, Parser::General(why))
        }
    };
    finish(api_version, table, digest, size, parser)
}

/// Parses an index with the general parser only, streaming (see [`parse`]).
pub fn parse_general(reader: impl Read, limit: u64) -> Result<ParsedIndex, IndexError> {
    let mut counting = CountingReader::new(reader, limit);
    let parsed = general(&mut counting, limit);
    if counting.over {
        return Err(IndexError::TooLarge { limit });
    }
    if let Some(why) = counting.failed.take() {
        return Err(IndexError::Read(why));
    }
    let (api_version, table) = parsed?;
    // Anything after the document (trailing whitespace) still counts towards the digest.
    let mut rest = [0u8; 8192];
    loop {
        match counting.read(&mut rest) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) if counting.over => return Err(IndexError::TooLarge { limit }),
            Err(e) => return Err(IndexError::Read(e.to_string())),
        }
    }
    let digest = counting.hasher.finish();
    let parser = Parser::General("asked for".into());
    finish(api_version, table, digest, counting.size, parser)
}

fn finish(
    api_version: bool,
    mut table: ChartTable,
    digest: Digest,
    size: u64,
    parser: Parser,
) -> Result<ParsedIndex, IndexError> {
    if !api_version {
        return Err(IndexError::Invalid("no apiVersion".into()));
    }
    table.finish();
    Ok(ParsedIndex {
        digest,
        size,
        table,
        parser,
    })
}

/// serde-saphyr over `reader`: whether there is an `apiVersion`, and the (unsorted) table.
fn general(reader: impl Read, limit: u64) -> Result<(bool, ChartTable), IndexError> {
    let limit_events = usize::try_from(limit).unwrap_or(usize::MAX);
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(limit_events),
            max_events: limit_events,
            max_nodes: limit_events,
            max_total_scalar_bytes: limit_events,
            max_documents: 1,
            max_depth: 64,
        },
    };
    let doc: IndexDoc = serde_saphyr::from_reader_with_options(reader, options)
        .map_err(|e| IndexError::Invalid(first_line(&e.to_string())))?;
    Ok((doc.api_version, doc.table))
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(512).collect()
}

/// The index document: `apiVersion`, `entries` (into the table), everything else skipped.
struct IndexDoc {
    api_version: bool,
    table: ChartTable,
}

impl<'de> Deserialize<'de> for IndexDoc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(IndexVisitor)
    }
}

struct IndexVisitor;

impl<'de> Visitor<'de> for IndexVisitor {
    type Value = IndexDoc;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Helm repository index (a mapping with apiVersion and entries)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IndexDoc, A::Error> {
        let mut doc = IndexDoc {
            api_version: false,
            table: ChartTable::default(),
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "apiVersion" => {
                    let v: Option<String> = map.next_value()?;
                    doc.api_version = v.is_some_and(|v| !v.is_empty());
                }
                "entries" => map.next_value_seed(EntriesSeed(&mut doc.table))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(doc)
    }
}

/// `entries`: chart name → list of versions, pushed into the table as they are read.
struct EntriesSeed<'t>(&'t mut ChartTable);

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping of chart names to lists of chart versions")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(chart) = map.next_key::<String>()? {
            map.next_value_seed(VersionsSeed {
                table: self.0,
                chart: &chart,
            })?;
        }
        Ok(())
    }
}

struct VersionsSeed<'t, 'c> {
    table: &'t mut ChartTable,
    chart: &'c str,
}

impl<'de> DeserializeSeed<'de> for VersionsSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for VersionsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of chart versions")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(entry) = seq.next_element::<Option<RawEntry>>()? {
            if let Some(entry) = entry {
                self.table.push(self.chart, entry);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"apiVersion: v1
entries:
  app:
  - apiVersion: v2
    name: app
    version: 1.2.0
    description: "ignored"
    maintainers: [{name: x, email: y}]
    urls: [app-1.2.0.tgz]
    digest: abc
    created: "2024-01-01T00:00:00Z"
  - name: app
    version: 2.0.0-rc.1
    urls: ["https://cdn.example/app-2.0.0-rc.1.tgz"]
  - name: app
    version: 1.10.1
    urls: [app-1.10.1.tgz]
  - name: app
    version: not-semver
  other: []
generated: "2024-01-01T00:00:00Z"
"#;

    #[test]
    fn parses_and_resolves_highest_match() {
        let p = parse(INDEX.as_bytes(), 1 << 20, &std::env::temp_dir()).expect("valid index");
        assert_eq!(p.digest, Digest::of(INDEX.as_bytes()));
        assert_eq!(p.size, INDEX.len() as u64);
        assert_eq!((p.table.charts(), p.table.versions()), (1, 3));
        assert_eq!(p.table.skipped, 1);
        let any = Constraint::parse("*").expect("valid");
        let Resolution::Found(v) = p.table.resolve("app", &any) else {
            panic!("no match")
        };
        assert_eq!(&*v.raw, "1.10.1");
        let pre = Constraint::parse(">=2.0.0-0").expect("valid");
        let Resolution::Found(v) = p.table.resolve("app", &pre) else {
            panic!("no match")
        };
        assert_eq!(&*v.urls[0], "https://cdn.example/app-2.0.0-rc.1.tgz");
        let one_two = Constraint::parse("~1.2").expect("valid");
        let Resolution::Found(v) = p.table.resolve("app", &one_two) else {
            panic!("no match")
        };
        assert_eq!(v.digest.as_deref(), Some("abc"));
        assert_eq!(v.created.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(p.table.resolve("nope", &any), Resolution::NoChart);
        let three = Constraint::parse("3.x").expect("valid");
        assert_eq!(
            p.table.resolve("app", &three),
            Resolution::NoMatch {
                latest: Some("2.0.0-rc.1")
            }
        );
    }

    #[test]
    fn too_large_and_invalid_indexes_are_refused() {
        assert!(matches!(
            parse(INDEX.as_bytes(), 100, &std::env::temp_dir()),
            Err(IndexError::TooLarge { limit: 100 })
        ));
        for bad in [
            "entries: {}\n",
            "- a\n- b\n",
            "apiVersion: v1\nentries: [1]\n",
        ] {
            assert!(
                matches!(
                    parse(bad.as_bytes(), 1 << 20, &std::env::temp_dir()),
                    Err(IndexError::Invalid(_))
                ),
                "{bad}"
            );
        }
    }
}
