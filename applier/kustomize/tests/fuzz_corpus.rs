//! Replays the cargo-fuzz seed corpus (`fuzz/corpus/<target>/`) and deterministic mutations
//! of it through the fuzz bodies, on stable, in every CI run: the bodies must not panic.
//! Real fuzzing (`cargo +nightly fuzz run <target>` in `applier/kustomize/fuzz`) explores far
//! more; this keeps what it found fixed and every target exercised.

use std::path::{Path, PathBuf};

#[path = "../fuzz/src/bodies.rs"]
mod bodies;

/// Mutations per seed: bounded so the test stays well under a few seconds
/// (`FERRY_FUZZ_MUTATIONS=N` runs more, e.g. after changing a parser).
const MUTATIONS_PER_SEED: usize = 25;

fn mutations_per_seed() -> usize {
    std::env::var("FERRY_FUZZ_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(MUTATIONS_PER_SEED)
}

/// Fragments that steer mutations towards interesting syntax.
const TOKENS: &[&[u8]] = &[
    b"$patch: delete\n",
    b"$patch: replace",
    b"- op: remove\n  path: /spec\n",
    b"- op: add\n  path: /a/-\n  value: 1\n",
    b"target: {kind: Deployment, name: '(['}\n",
    b"{",
    b"[",
    b"&a ",
    b"*a",
    b"<<: *a\n",
    b"\0",
    b"---\n",
    b"\"$setElementOrder/containers\": [{name: b}]\n",
    b"kind: List\nitems: [1, {kind: X}]\n",
    b"path: ../../../etc/passwd\n",
    b": |\n  ",
    b": >-\n    ",
    b": 'a\n  b'\n",
    b": \"a\\\n  \\ b\"\n",
    b"\n\n",
    b"  ",
];

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    paths.sort();
    let seeds: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| std::fs::read(p).expect("seed readable"))
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(seed: &[u8], others: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(out.len() + 1);
        match rng.below(5) {
            0 => out.truncate(at),
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            3 => {
                let other = &others[rng.below(others.len())];
                let from = rng.below(other.len());
                out.splice(at..at, other[from..].iter().copied());
            }
            _ => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
        }
    }
    out
}

fn replay(target: &str, body: fn(&[u8])) {
    replay_n(target, body, mutations_per_seed());
}

fn replay_n(target: &str, body: fn(&[u8]), mutations: usize) {
    let seeds = seeds(target);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut runs = 0;
    for seed in &seeds {
        body(seed);
        runs += 1;
        for _ in 0..mutations {
            body(&mutate(seed, &seeds, &mut rng));
            runs += 1;
        }
    }
    eprintln!("{target}: {runs} inputs");
}

#[test]
fn kustomization_parsing_survives_the_corpus() {
    replay("kustomization", bodies::kustomization);
}

#[test]
fn yaml_fast_path_agrees_with_serde_yaml_on_the_corpus() {
    replay("kustomization", bodies::yaml_fast_path);
    replay("build_tree", bodies::yaml_fast_path);
    replay("strategic_merge", bodies::yaml_fast_path);
    replay("yaml_fast_path", bodies::yaml_fast_path);
}

#[test]
fn builds_survive_the_corpus() {
    replay("build_tree", bodies::build_tree);
    // The kustomization seeds are build inputs too.
    replay("kustomization", bodies::build_tree);
}

#[test]
fn strategic_merge_survives_the_corpus() {
    replay("strategic_merge", bodies::strategic_merge);
}

#[test]
fn deep_and_wide_trees_stay_bounded() {
    // Inputs that reach a bound cost up to a second each in debug builds: fewer mutations.
    replay_n("nested_tree", bodies::nested_tree, mutations_per_seed() / 5);
}
