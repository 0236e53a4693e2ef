//! The YAML fast path (`yaml::simple`) against the general parser (serde_yaml): wherever the
//! fast path answers, it must give exactly the general parser's documents — on every fixture
//! file, on scalars chosen to trip YAML's typing rules, and on block layouts at the edge of
//! the subset. And it must answer for the manifests it exists for.

use std::path::Path;

use ferry_kustomize::yaml::{self, simple};
use ferry_kustomize::{Value, json};

/// The fast path's answer, checked against the general parser's.
fn agree(text: &str) -> Option<Vec<Value>> {
    let fast = simple::parse(text)?;
    let general = yaml::parse_documents_general(text);
    assert_eq!(Ok(&fast), general.as_ref(), "fast path differs on {text:?}");
    Some(fast)
}

fn yaml_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("fixture dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

#[test]
fn every_fixture_file_parses_the_same_and_most_take_the_fast_path() {
    let mut files = vec![];
    yaml_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
        &mut files,
    );
    assert!(files.len() > 500, "fixtures found: {}", files.len());
    let mut fast = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).expect("fixture is UTF-8");
        if agree(&text).is_some() {
            fast += 1;
        }
    }
    eprintln!("{fast} of {} fixture files took the fast path", files.len());
    // The fixtures are kustomize's test cases, rich in block scalars and anchors; still, most
    // files are plain block YAML.
    assert!(
        fast * 10 >= files.len() * 6,
        "{fast} of {} files took the fast path",
        files.len()
    );
}

const SCALARS: &[&str] = &[
    "~",
    "null",
    "Null",
    "NULL",
    "nULL",
    "true",
    "True",
    "TRUE",
    "tRUE",
    "false",
    "FALSE",
    "yes",
    "No",
    "on",
    "OFF",
    "y",
    "n",
    "0",
    "-0",
    "+0",
    "00",
    "007",
    "-007",
    "42",
    "-42",
    "+42",
    "1_000",
    "1,000",
    "0x1F",
    "0X1F",
    "0x",
    "0o17",
    "0O17",
    "0b101",
    "0b",
    "1e3",
    "1E3",
    "1e",
    "e1",
    "1.5",
    "-1.5",
    "+1.5",
    ".5",
    "5.",
    "-.5",
    "1.0.0",
    "v1.0.0",
    ".inf",
    "-.Inf",
    "+.INF",
    ".nan",
    ".NaN",
    "inf",
    "-inf",
    "+inf",
    "nan",
    "infinity",
    "-infinity",
    "NaN",
    "12:30",
    "2001-12-14",
    "10m",
    "32Mi",
    "1.5Gi",
    "500m",
    "2h",
    "1e5m",
    "0xfg",
    "0o8",
    "1a",
    "1f",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "123456789012345678",
    "1234567890123456789",
    "--port=8080",
    "-foo",
    "-",
    "--",
    "---",
    "...",
    "...x",
    "..5",
    "-.",
    "+",
    "+-1",
    "-+1",
    "~x",
    "a b",
    "a#b",
    "a #b",
    "a:b",
    "a: b",
    "http://x:80/y",
    "$HOME",
    "${VAR:=x}",
    "_x",
    "/etc",
    "a\"b",
    "a'b",
    "'a'",
    "\"a\"",
    "'it''s'",
    "\"a\\nb\"",
    "''",
    "\"\"",
    "[]",
    "[a, b]",
    "[a,b]",
    "[ a , 'b' , \"c\" ]",
    "[1, 2.5, true, null, ~]",
    "[a, ]",
    "[a b]",
    "[a:b]",
    "[a, [b]]",
    "{}",
    "{ }",
    "{a: 1}",
    "&a x",
    "*a",
    "!tag x",
    "!!str 1",
    "|",
    ">",
    "@x",
    "`x`",
    "%x",
    "?x",
    ":x",
    ",x",
];

#[test]
fn scalars_are_typed_as_serde_yaml_types_them() {
    for s in SCALARS {
        for text in [
            format!("k: {s}\n"),
            format!("- {s}\n"),
            format!("k: {s} # comment\n"),
            format!("k: [{s}]\n"),
            format!("k: [a, {s}]\n"),
            format!("- k: {s}\n  j: 1\n"),
        ] {
            agree(&text);
        }
    }
    // The common ones are answered by the fast path itself.
    let doc = agree(
        "a: 8080\nb: 10m\nc: \"x y\"\nd: 'z'\ne: true\nf: ~\ng: [\"--p=1\", q]\nh: -3\ni: 1.5\n",
    )
    .expect("fast path");
    assert_eq!(
        doc[0],
        json!({"a": 8080, "b": "10m", "c": "x y", "d": "z", "e": true, "f": null,
               "g": ["--p=1", "q"], "h": -3, "i": 1.5})
    );
}

const LAYOUTS: &[&str] = &[
    "a: 1\n---\nb: 2\n",
    "---\na: 1\n--- # c\nb: 2\n...\n",
    "--- \n# only a comment\n---\n",
    "---a: 1\n",
    "a: 1\n  b: 2\n",
    "a:\n    b: 1\n  c: 2\n",
    "a:\n- 1\n- 2\nb: 3\n",
    "a:\n  - 1\n  - 2\nb:\n",
    "- a: 1\n  b:\n  - x\n  c: 2\n- d: 3\n",
    "-   a: 1\n    b: 2\n",
    "- a: 1\n - b\n",
    "- a: 1\n  - b\n",
    "- - a\n",
    "-\n  a: 1\n",
    "- # c\n  a: 1\n",
    "a: 1\na: 2\n",
    "a: 1\nb: 2\n\n\n# trailing\n",
    "  a: 1\n  b: 2\n",
    "a:\n  b:\n    c:\n      d: [1]\n",
    "a: b\n  c\n",
    "a:\n  b\n",
    "a: # comment\n  b: 1\n",
    "a:b\n",
    "a : 1\n",
    "\"a\": 1\n",
    "'a': 1\n",
    "a: \"x\" y\n",
    "a: 'x'#y\n",
    "a: \"x\" # y\n",
    "a: [b,\n  c]\n",
    "a: [b] c\n",
    "true: 1\n",
    "1: a\n",
    "<<: {a: 1}\n",
    "a: |\n  x\n",
    "a: >-\n  x\n",
    "a: &x 1\nb: *x\n",
    "a:\tb\n",
    "a: b\r\n",
    "a: é\n",
    "\u{feff}a: 1\n",
    "%YAML 1.2\n---\na: 1\n",
    "kind: List\nitems:\n- a: 1\n",
    "a:\n-\n",
    "a: -\n",
    "a: - b\n",
    "$patch: delete\nname: x\n",
    "a.b/c-d_e: 1\n",
    "-a: 1\n",
    "plain\n",
    "- plain\n- 'quoted'\n",
    // Block scalars: chomping, folding, where they end, what the fast path leaves alone.
    "a: |\n  x\n  y\n\n\nb: 1\n",
    "a: |-\n  x\n\n  y\nb: 1\n",
    "a: |+\n  x\n\n\nb: 1\n",
    "a: >\n  x\n  y\n\n  z\n",
    "a: >-\n  x\n  y\n",
    "a: >+\n  x\n\n",
    "a: >\n  x\n    more\n  y\n",
    "a: |\n    deeper\n  # not a comment\n",
    "a: |\n  # text\n  key: v\n  - item\n",
    "a: |\n\n  after an empty line\n",
    "a: |\n  x\n   \n  y\n",
    "a: |\n  x\n      \n  y\n",
    "a: |\n  x\n y\n",
    "a: |\nb: 1\n",
    "a: |2\n    x\n",
    "a: | # c\n  x\n",
    "- |\n  x\n- >-\n  y\n",
    "- a: |\n    x\n  b: 1\n",
    "a: |\n  x\n---\nb: |\n  y",
    "a: |+\n  x",
    "a: >\n  x\n  y",
    "a: |\n  x\n  ",
    "a: |\n  tr\u{e9}s  \n",
    // Plain scalars over several lines.
    "a: one\n  two\n\n  three\nb: 1\n",
    "- one\n  two\n- three\n",
    "a: one\n  - two\n",
    "a: one\n  two: x\n",
    "a: one\n  # comment\n  two\n",
    "a: one # c\n  two\n",
    "a: 1\n  2\n",
    "a: true\n  false\n",
    "a:\n  on the next line\n  and on\n",
    "a:\n  [x, y]\n",
    "a:\n  {}\n",
    // Quoted scalars over several lines, escapes, quoted keys, comments after keys.
    "a: 'one: x\n  two''s\n\n  three'\nb: 1\n",
    "a: \"one\\n\n  two \\\"x\\\"\\\n  three\\u00e9\\x41\\/\\t\"\n",
    "a: \"x\\\n\n  y\"\n",
    "a: \"x\\a\"\n",
    "a: 'x\n  y' z\n",
    "a: 'x\n  y'\n    z\n",
    "a: 'x\ny'\n",
    "a: 'it''s'\n",
    "\"a.b/c\": 1\n'd': 2\n",
    "\"a\\\"\": 1\n",
    "\"a\":1\n",
    "a: # comment\nb: 1\n",
    "a: # comment\n  b: 1\n",
    // An escaped space before trailing spaces, on the first line and on a later one.
    "a: \"x\\  \n  \\ y\"\n",
    "a: \"x\n  y\\  \n  z\"\n",
    "a: 'x  \n  y'\n",
];

#[test]
fn block_layouts_at_the_edge_of_the_subset_agree() {
    for text in LAYOUTS {
        agree(text);
    }
    // …and the usual layouts are taken by the fast path.
    for text in [
        LAYOUTS[0],
        LAYOUTS[2],
        LAYOUTS[6],
        LAYOUTS[7],
        LAYOUTS[8],
        LAYOUTS[9],
        LAYOUTS[18],
    ] {
        assert!(simple::parse(text).is_some(), "not taken: {text:?}");
    }
    for text in [
        "a: |\n  x\n  y\n\n\nb: 1\n",
        "a: >-\n  x\n  y\n",
        "a: one\n  two\n\n  three\nb: 1\n",
        "a: 'one: x\n  two''s\n\n  three'\nb: 1\n",
        "\"a.b/c\": 1\n'd': 2\n",
        "a: |+\n  x",
    ] {
        assert!(simple::parse(text).is_some(), "not taken: {text:?}");
    }
    assert!(
        simple::parse("a: 1\na: 2\n").is_none(),
        "duplicates go to serde_yaml"
    );
    assert!(
        yaml::parse_documents("a: 1\na: 2\n").is_err(),
        "and are still errors"
    );
}

#[test]
fn deep_nesting_goes_to_the_general_parser() {
    let mut text = String::new();
    for i in 0..100 {
        text.push_str(&" ".repeat(i));
        text.push_str("a:\n");
    }
    assert!(simple::parse(&text).is_none());
    // Sequences of mappings at their keys' indentation nest without a line of their own.
    let mut compact = String::new();
    for i in 0..3000 {
        compact.push_str(&" ".repeat(2 * i));
        compact.push_str("- a:\n");
    }
    assert!(simple::parse(&compact).is_none());
    let shallow: String = (0..10)
        .map(|i| format!("{}- a:\n", " ".repeat(2 * i)))
        .collect();
    agree(&shallow).expect("ten levels are simple");
}

#[test]
fn manifests_like_the_benchmarks_take_the_fast_path() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-0000\n  labels:\n    app.kubernetes.io/part-of: bench\n    shard: s0\ndata:\n  key0: value-0-0-xxxxxxxxxxxxxxxxxxxxxxxx\n";
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-0000\n  labels:\n    app: app-0000\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: app-0000\n  template:\n    metadata:\n      labels:\n        app: app-0000\n    spec:\n      containers:\n      - name: main\n        image: my-registry/app-0000:v1.0.0\n        args: [\"--port=8080\", \"--log-level=info\"]\n        ports:\n        - containerPort: 8080\n          name: http\n        resources:\n          requests:\n            cpu: 10m\n            memory: 32Mi\n        readinessProbe:\n          httpGet:\n            path: /healthz\n            port: http\n";
    for text in [cm, deploy] {
        let docs = agree(text).expect("taken by the fast path");
        assert_eq!(docs.len(), 1);
    }
    let d = &agree(deploy).expect("fast")[0];
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        8080
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["args"][1],
        "--log-level=info"
    );
}
