//! The scanner against the general parser: whatever the scanner accepts, the general parser
//! reads to the same table; what it is unsure of is left to the general parser. Real
//! `helm repo index` output is compared in `tests/tests/source_server_helm_index.rs`.

use super::{Scanner, Unsure};
use crate::helm::index::{ChartTable, IndexError, Parser, parse, parse_general};

/// The scanner's reading of `src`, fed in chunks of `chunk` bytes (lines cross chunks).
fn scanned(src: &[u8], chunk: usize) -> Result<(bool, ChartTable), Unsure> {
    let mut s = Scanner::new();
    for c in src.chunks(chunk.max(1)) {
        s.feed(c)?;
    }
    let (api, mut table) = s.finish()?;
    table.finish();
    Ok((api, table))
}

/// Checks sameness on `src`; true when the scanner read it.
fn check(src: &[u8], chunk: usize) -> bool {
    let Ok((api, table)) = scanned(src, chunk) else {
        return false;
    };
    match parse_general(src, u64::MAX) {
        Ok(p) => {
            assert!(api, "the scanner saw no apiVersion:\n{}", show(src));
            assert_eq!(p.table, table, "different tables for:\n{}", show(src));
        }
        Err(IndexError::Invalid(m)) if m == "no apiVersion" => {
            assert!(!api, "the scanner saw an apiVersion:\n{}", show(src));
        }
        Err(e) => panic!(
            "the scanner read what the general parser refuses ({e}):\n{}",
            show(src)
        ),
    }
    true
}

fn show(src: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(src))
}

/// An index shaped like `helm repo index` output, with the variations real indexes have.
pub(crate) fn generated(charts: usize, versions: usize) -> String {
    let mut s = String::from("apiVersion: v1\nentries:\n");
    for c in 0..charts {
        let name = format!("chart-{c}");
        s.push_str(&format!("  {name}:\n"));
        // go-yaml writes sequences at the key's indentation; other writers indent them.
        let (dash, pad) = if c % 2 == 0 {
            ("  - ", "    ")
        } else {
            ("    - ", "      ")
        };
        for v in 0..versions {
            let version = match v % 4 {
                0 => format!("{c}.{v}.0"),
                1 => format!("\"{c}.{v}.1-rc.1\""),
                2 => format!("'{c}.{v}.2+build.1'"),
                _ => format!("v{c}.{v}.3"),
            };
            s.push_str(&format!("{dash}annotations:\n"));
            s.push_str(&format!("{pad}  artifacthub.io/images: |\n"));
            s.push_str(&format!(
                "{pad}    - name: x # not a comment\n{pad}      image: \"y:{v}\"\n\n"
            ));
            s.push_str(&format!("{pad}  category: Database\n"));
            s.push_str(&format!("{pad}apiVersion: v2\n{pad}appVersion: 1.{v}.0\n"));
            s.push_str(&format!(
                "{pad}created: \"2025-01-0{}T00:00:00Z\"\n",
                1 + v % 9
            ));
            s.push_str(&format!("{pad}dependencies:\n{pad}- name: common\n{pad}  repository: oci://r.example/charts\n{pad}  tags:\n{pad}  - a\n{pad}  version: 2.x.x\n"));
            s.push_str(&format!(
                "{pad}description: 'A long description, with \"quotes\" and: colons # and\n{pad}  it''s wrapped at eighty columns'\n"
            ));
            if v % 3 != 0 {
                let d = ((c * 1000 + v) as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                s.push_str(&format!("{pad}digest: {d:016x}{d:016x}{d:016x}{d:016x}\n"));
            }
            s.push_str(&format!("{pad}home: https://example.com:8443/{name}\n"));
            s.push_str(&format!("{pad}keywords:\n{pad}- db\n{pad}- cache\n"));
            s.push_str(&format!(
                "{pad}maintainers:\n{pad}- email: me@example.com\n{pad}  name: Me Myself\n"
            ));
            s.push_str(&format!(
                "{pad}name: {name}\n{pad}summary: a plain scalar\n{pad}  wrapped over lines\n"
            ));
            s.push_str(&format!(
                "{pad}urls:\n{pad}- https://charts.example.com/{name}-{v}.tgz\n{pad}- '{name}-{v}.tgz'\n"
            ));
            s.push_str(&format!("{pad}version: {version}\n"));
        }
    }
    s.push_str("  empty: []\ngenerated: \"2025-10-01T00:00:00Z\"\nserverInfo: {}\n");
    s
}

#[test]
fn generated_indexes_are_scanned_the_same() {
    let src = generated(7, 9);
    for chunk in [1, 7, 64, 4096, 1 << 20] {
        if let Err(u) = scanned(src.as_bytes(), chunk) {
            let line = src.lines().nth(u.line as usize - 1);
            panic!("unsure of the generated index: {u:?} {line:?}");
        }
        assert!(check(src.as_bytes(), chunk));
    }
    let (_, table) = scanned(src.as_bytes(), 4096).expect("scanned");
    assert_eq!((table.charts(), table.versions()), (7, 63));
}

#[test]
fn parse_uses_the_scanner_and_falls_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = generated(3, 4);
    let fast = parse(src.as_bytes(), 1 << 20, dir.path()).expect("parsed");
    let slow = parse_general(src.as_bytes(), 1 << 20).expect("parsed");
    assert_eq!(fast.parser, Parser::Scanner);
    assert_eq!((fast.digest, fast.size), (slow.digest, slow.size));
    assert_eq!(fast.table, slow.table);
    // Flow style: the spooled copy goes to the general parser, same answer.
    let flow = src.replacen(
        "    urls:\n    - https://charts.example.com/chart-0-0.tgz\n    - 'chart-0-0.tgz'\n",
        "    urls: [https://charts.example.com/chart-0-0.tgz, 'chart-0-0.tgz']\n",
        1,
    );
    assert_ne!(flow, src);
    let fallback = parse(flow.as_bytes(), 1 << 20, dir.path()).expect("parsed");
    let flow_line = 1 + flow
        .lines()
        .position(|l| l.contains("urls: ["))
        .expect("flow line");
    assert_eq!(
        fallback.parser,
        Parser::General(format!(
            "line {flow_line}: a scalar the scanner does not recognise"
        ))
    );
    assert_eq!(fallback.table, slow.table);
    assert_eq!(fallback.digest, ferry_proto::Digest::of(flow.as_bytes()));
    // Limits and errors are the same either way.
    assert!(matches!(
        parse(src.as_bytes(), 100, dir.path()),
        Err(IndexError::TooLarge { limit: 100 })
    ));
    let no_api = src.replacen("apiVersion: v1\n", "", 1);
    assert!(matches!(
        parse(no_api.as_bytes(), 1 << 20, dir.path()),
        Err(IndexError::Invalid(m)) if m == "no apiVersion"
    ));
    let broken = src.replacen("  chart-1:\n", "  chart-1:\n   - [\n", 1);
    assert!(matches!(
        parse(broken.as_bytes(), 1 << 20, dir.path()),
        Err(IndexError::Invalid(_))
    ));
}

/// Hand-written indexes: (YAML, scanned?). Every one is also checked for sameness.
const CASES: &[(&str, bool)] = &[
    ("apiVersion: v1\nentries: {}\n", true),
    ("apiVersion: v1\nentries:\n  a:\n  - version: 1.0.0\n", true),
    (
        "apiVersion: v1\nentries:\n  a:\n    - version: 1.0.0\n      urls: []\n",
        true,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  -   version: 1.0.0\n      digest: x\n",
        true,
    ),
    ("apiVersion: ''\nentries:\n  a:\n  - version: 1.0.0\n", true),
    ("entries:\n  a:\n  - version: 1.0.0\n", true),
    (
        "apiVersion: v1\nentries:\n  a: []\n  b:\n  - name: b\n",
        true,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: 1.0.0\n    x: |+\n\n      t\n\n    z: 1\n",
        true,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: 1.0.0\n    x: \"a \\\" b\n      c\"\n",
        true,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: \"1.0.0\"   \n    digest: 'a''b'\n",
        true,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: 1.0.0\n    urls: [a.tgz]\n",
        false,
    ),
    ("apiVersion: v1\nentries:\n  a:\n  - version: 1.0\n", false),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: \"1.0\\u0030\"\n",
        false,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: 1.0.0 # c\n",
        false,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  - &x version: 1.0.0\n",
        false,
    ),
    ("apiVersion: v1\nentries:\n  a:\n  - version: *x\n", false),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: !!str 1.0.0\n",
        false,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: |\n      1.0.0\n",
        false,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: 1.0.0\n      .1\n",
        false,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: 1.0.0\n    version: 2.0.0\n",
        false,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: 1.0.0\n  a:\n  - version: 2.0.0\n",
        false,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: 1.0.0\n    x: 1\n    x: 2\n",
        false,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: 1.0.0\n    <<: {}\n",
        false,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: 1.0.0\n\tx: 1\n",
        false,
    ),
    ("apiVersion: v1\r\nentries: {}\r\n", false),
    ("# comment\napiVersion: v1\nentries: {}\n", false),
    ("---\napiVersion: v1\nentries: {}\n", false),
    ("apiVersion: v1\nentries: {}\n---\napiVersion: v1\n", false),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: 1.0.0\n    x: [\n",
        false,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: 1.0.0\n    x: 'open\n",
        false,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: 1.0.0\n   x: 1\n",
        false,
    ),
    (
        "apiVersion: v1\nentries:\n  a:\n  - version: 1.0.0\n    x: a: b\n",
        false,
    ),
    (
        "apiVersion: v1\nentries:\n  \"a\":\n  - version: 1.0.0\n",
        false,
    ),
    (
        "apiVersion: v1\nentries:\n  true:\n  - version: 1.0.0\n",
        false,
    ),
    ("apiVersion: v1\nentries:\n  a:\n  - version:\n", false),
    ("apiVersion: v1\nentries:\n  a:\n  - 1.0.0\n", false),
    (
        "apiVersion: v1\nentries:\n  a:\n  -\n    version: 1.0.0\n",
        false,
    ),
    ("- a\n", false),
    ("", false),
    ("\u{feff}apiVersion: v1\nentries: {}\n", false),
];

#[test]
fn hand_written_indexes() {
    for (src, expect) in CASES {
        for chunk in [1, 5, 1 << 16] {
            assert_eq!(check(src.as_bytes(), chunk), *expect, "{src:?}");
        }
    }
}

/// splitmix64: reproducible perturbations without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random change: a byte inserted, deleted or replaced, a line dropped, repeated, moved
/// or re-indented.
fn perturb(rng: &mut Rng, src: &mut Vec<u8>) {
    const BYTES: &[u8] = b" -:#\"'\n\t|>[]{},&*!%@?<~.0aZ\\\r";
    let at = rng.below(src.len() + 1);
    let lines: Vec<(usize, usize)> = {
        let mut v = Vec::new();
        let mut s = 0;
        for (i, &b) in src.iter().enumerate() {
            if b == b'\n' {
                v.push((s, i + 1));
                s = i + 1;
            }
        }
        v
    };
    let (ls, le) = lines[rng.below(lines.len())];
    match rng.below(8) {
        0 => src.insert(at, BYTES[rng.below(BYTES.len())]),
        1 if at < src.len() => {
            src.remove(at);
        }
        2 if at < src.len() => src[at] = BYTES[rng.below(BYTES.len())],
        3 => {
            src.drain(ls..le);
        }
        4 => {
            let line = src[ls..le].to_vec();
            src.splice(ls..ls, line).for_each(drop);
        }
        5 => {
            let line: Vec<u8> = src.drain(ls..le).collect();
            let (ts, _) = lines[rng.below(lines.len())];
            let ts = ts.min(src.len());
            src.splice(ts..ts, line).for_each(drop);
        }
        6 => src.insert(ls, b' '),
        _ if src.get(ls) == Some(&b' ') => {
            src.remove(ls);
        }
        _ => src.splice(ls..ls, *b"  ").for_each(drop),
    }
}

#[test]
fn random_perturbations_are_scanned_the_same_or_left_to_the_general_parser() {
    let base = generated(2, 2).into_bytes();
    let small = CASES[3].0.as_bytes().to_vec();
    let mut rng = Rng(14);
    let (mut runs, mut read) = (0, 0);
    for round in 0..4000 {
        let mut src = if round % 4 == 0 {
            small.clone()
        } else {
            base.clone()
        };
        for _ in 0..1 + rng.below(3) {
            perturb(&mut rng, &mut src);
        }
        runs += 1;
        if check(&src, 1 + rng.below(300)) {
            read += 1;
        }
    }
    // The perturbations must leave enough indexes the scanner reads for the comparison to
    // mean something (and not so many that it reads everything: some are broken).
    assert!(read * 5 > runs && read < runs, "{read} of {runs} scanned");
}

#[test]
fn hostile_input_is_bounded() {
    let deep: String = (0..100)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    let src = format!("apiVersion: v1\n{deep}");
    assert_eq!(
        scanned(src.as_bytes(), 4096).map(|_| ()),
        Err(Unsure {
            line: 50,
            why: "nesting too deep"
        })
    );
    let long = format!("apiVersion: v1\nx: {}\n", "a".repeat(super::MAX_LINE + 1));
    assert!(scanned(long.as_bytes(), 4096).is_err());
    let wide: String = (0..300).map(|i| format!("  k{i}: v\n")).collect();
    let src = format!("apiVersion: v1\nx:\n{wide}");
    assert!(scanned(src.as_bytes(), 4096).is_err());
    // `entries` itself may be wide (one key per chart).
    let charts: String = (0..3000).map(|i| format!("  c{i}: []\n")).collect();
    let src = format!("apiVersion: v1\nentries:\n{charts}");
    assert!(check(src.as_bytes(), 4096));
}
