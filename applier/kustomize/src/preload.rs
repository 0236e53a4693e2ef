//! The files a kustomization lists under `resources`, read in order and parsed in parallel.
//!
//! Parsing YAML is most of the cost of loading a kustomization with many resource files, and
//! each file parses independently; the merge into the accumulator stays sequential (order and
//! duplicate checks are kustomize's). Anything that fails to resolve or read here is left for
//! the sequential pass, which reports it where kustomize would.

use crate::value::Value;

use crate::fs::{EntryKind, RelPath};
use crate::loader::KustCtx;
use crate::yaml;

/// Below this many files and bytes, threads cost more than they save.
const PARALLEL_FROM: usize = 64;
const PARALLEL_FROM_BYTES: usize = 256 * 1024;

/// One listed file: where it was read from and its parsed objects (or the parse error).
pub type Parsed = (RelPath, Result<Vec<Value>, String>);

/// For each `(field, path)` entry, its parsed file, or `None` for directories and anything
/// that did not resolve or read.
pub fn parse_files(ctx: &KustCtx<'_>, entries: &[(String, &String)]) -> Vec<Option<Parsed>> {
    let texts: Vec<Option<(RelPath, String)>> = entries
        .iter()
        .map(|(field, path)| {
            let p = ctx.resolve(path, field).ok()?;
            if ctx.kind(&p, path, field).ok()?? != EntryKind::File {
                return None;
            }
            ctx.read_text(path, field).ok()
        })
        .collect();
    let files = texts.iter().flatten().count();
    let bytes: usize = texts.iter().flatten().map(|(_, t)| t.len()).sum();
    let parse = |t: Option<(RelPath, String)>| t.map(|(p, text)| (p, yaml::parse_resources(text)));
    if files < PARALLEL_FROM && bytes < PARALLEL_FROM_BYTES {
        return texts.into_iter().map(parse).collect();
    }
    let threads = crate::worker_threads().min(files);
    if threads < 2 {
        return texts.into_iter().map(parse).collect();
    }
    // Files differ in size by orders of magnitude (one CRD file can outweigh a hundred
    // others): each thread takes the next unparsed file until none is left.
    let slots: Vec<std::sync::Mutex<Option<(RelPath, String)>>> =
        texts.into_iter().map(std::sync::Mutex::new).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut parsed: Vec<Option<Parsed>> = Vec::with_capacity(slots.len());
    parsed.resize_with(slots.len(), || None);
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(slot) = slots.get(i) else {
                            return done;
                        };
                        let text = slot.lock().map(|mut t| t.take()).unwrap_or(None);
                        done.push((i, parse(text)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Vec<_>>()
    });
    for (i, r) in results {
        parsed[i] = r;
    }
    parsed
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::fs::MemFs;
    use crate::loader::LoadRestrictor;

    #[test]
    fn many_files_parse_in_parallel_and_line_up_with_their_entries() {
        let mut fs = MemFs::new();
        let mut listed = vec![];
        for i in 0..150 {
            let text = if i == 97 {
                "kind: [unclosed\n".to_string()
            } else {
                format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n")
            };
            fs.insert(&format!("app/cm-{i}.yaml"), text).expect("file");
            listed.push(format!("cm-{i}.yaml"));
        }
        fs.insert("app/base/a.yaml", "kind: X\n").expect("file");
        listed.insert(10, "base".to_string());
        listed.push("missing.yaml".to_string());
        let warnings = RefCell::new(vec![]);
        let ctx = KustCtx {
            fs: &fs,
            dir: RelPath::parse("app").expect("path"),
            file: RelPath::parse("app/kustomization.yaml").expect("path"),
            restrictor: LoadRestrictor::RootOnly,
            warnings: &warnings,
        };
        let entries: Vec<(String, &String)> = listed
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("resources[{i}]"), p))
            .collect();
        let parsed = parse_files(&ctx, &entries);
        assert_eq!(parsed.len(), entries.len());
        for (i, (entry, got)) in listed.iter().zip(&parsed).enumerate() {
            match entry.as_str() {
                "base" | "missing.yaml" => assert!(got.is_none(), "{entry}: left to the caller"),
                "cm-97.yaml" => {
                    let (p, r) = got.as_ref().expect("read");
                    assert_eq!(p.as_str(), "app/cm-97.yaml");
                    assert!(r.is_err(), "invalid YAML is an error for its own entry");
                }
                _ => {
                    let (p, r) = got.as_ref().expect("read");
                    assert_eq!(p.as_str(), format!("app/{entry}"), "entry {i}");
                    let name = entry.trim_end_matches(".yaml");
                    let objs = r.as_ref().expect("parses");
                    assert_eq!(objs[0]["metadata"]["name"], name, "entry {i}");
                }
            }
        }
    }
}
