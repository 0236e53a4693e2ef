//! The `build DIR` command shared by `ferry-applier build` and `ferry-kustomize`: pick the
//! build root (`--root`, else the enclosing Git work tree, else `/`), build, and return (or
//! write) the YAML plus warnings for stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::value::Value;

use crate::fs::{FsError, RealFs};
use crate::loader::LoadRestrictor;
use crate::target::{BuildOptions, build};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("'{}' is not a directory", .0.display())]
    NotADir(PathBuf),
    #[error("build root '{}': {source}", path.display())]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("'{}': {source}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: FsError,
    },
    #[error(transparent)]
    Build(#[from] crate::Error),
    /// The output could not be written (a closed pipe, a full disk).
    #[error("writing the output: {0}")]
    Write(#[source] std::io::Error),
}

/// The directory holding `.git` above (or at) `dir`, if any.
pub fn enclosing_work_tree(dir: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().ok()?;
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

/// Builds `dir` and returns (YAML, warnings).
pub fn build_dir(
    dir: &Path,
    root: Option<&Path>,
    load_restrictor: LoadRestrictor,
) -> Result<(String, Vec<String>), CliError> {
    let out = build_output(dir, root, load_restrictor)?;
    Ok((out.to_yaml(), out.warnings))
}

/// Builds `dir` and writes the YAML to `out` document by document (the same bytes as
/// [`build_dir`]), emitting on several threads when there are many documents; returns the
/// warnings. For command-line tools, which exit right after: the built objects are not freed
/// (freeing a large build's trees takes a tenth of its time), and the whole text is never held.
pub fn build_dir_to(
    dir: &Path,
    root: Option<&Path>,
    load_restrictor: LoadRestrictor,
    out: &mut dyn Write,
) -> Result<Vec<String>, CliError> {
    let output = build_output(dir, root, load_restrictor)?;
    let objs: Vec<&Value> = output.resources.iter().map(|r| &r.obj).collect();
    let written = write_stream(&objs, out);
    drop(objs);
    let warnings = output.warnings.clone();
    std::mem::forget(output);
    written.map_err(CliError::Write)?;
    Ok(warnings)
}

fn build_output(
    dir: &Path,
    root: Option<&Path>,
    load_restrictor: LoadRestrictor,
) -> Result<crate::Output, CliError> {
    if !dir.is_dir() {
        return Err(CliError::NotADir(dir.to_path_buf()));
    }
    let root = match root {
        Some(r) => r.to_path_buf(),
        None => enclosing_work_tree(dir).unwrap_or_else(|| PathBuf::from("/")),
    };
    let fs = RealFs::new(&root).map_err(|source| CliError::Root {
        path: root.clone(),
        source,
    })?;
    let rel = fs.rel_path_of(dir).map_err(|source| CliError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(build(&fs, &rel, &BuildOptions { load_restrictor })?)
}

/// Below this many documents one thread emits them all.
const PARALLEL_FROM: usize = 32;

/// `objs` as a `---`-separated stream. With threads, thread `k` emits documents `k`, `k + t`,
/// … into a small bounded channel, and the writer takes them in turn, so order is kept and
/// only a few documents wait in memory.
fn write_stream(objs: &[&Value], out: &mut dyn Write) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    if objs.len() < PARALLEL_FROM || crate::worker_threads() < 2 {
        for (i, v) in objs.iter().enumerate() {
            if i > 0 {
                out.write_all(b"---\n")?;
            }
            out.write_all(crate::yaml::to_yaml(v).as_bytes())?;
        }
        return out.flush();
    }
    let threads = crate::worker_threads();
    std::thread::scope(|s| {
        let inboxes: Vec<mpsc::Receiver<String>> = (0..threads)
            .map(|k| {
                let (tx, rx) = mpsc::sync_channel(8);
                s.spawn(move || {
                    for v in objs.iter().skip(k).step_by(threads) {
                        // The writer stopped (an error): stop too.
                        if tx.send(crate::yaml::to_yaml(v)).is_err() {
                            return;
                        }
                    }
                });
                rx
            })
            .collect();
        let mut written = || -> std::io::Result<()> {
            for i in 0..objs.len() {
                let doc = inboxes[i % threads]
                    .recv()
                    .map_err(|_| std::io::Error::other("a YAML emitter thread stopped"))?;
                if i > 0 {
                    out.write_all(b"---\n")?;
                }
                out.write_all(doc.as_bytes())?;
            }
            out.flush()
        };
        let result = written();
        drop(inboxes);
        result
    })
}
