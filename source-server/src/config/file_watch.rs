//! Watching the config file: a reload whenever its content may have changed (the directory is
//! watched, as editors and ConfigMap volumes replace files by rename).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{ConfigError, DesiredState, LoadError, load};

/// Loads `path` now and again whenever it changes, publishing on `tx`. Returns the first
/// load's result (so a missing file fails the start) and a guard that stops watching on drop.
pub fn watch_file(
    path: PathBuf,
    tx: watch::Sender<Arc<DesiredState>>,
) -> Result<ConfigWatch, LoadError> {
    let initial = load(&path, &DesiredState::default())?;
    report(&initial);
    tx.send_replace(Arc::new(initial));
    let (ev_tx, ev_rx) = std::sync::mpsc::channel();
    // Watch the directory, not the file: editors replace files by rename.
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut debouncer =
        notify_debouncer_full::new_debouncer(Duration::from_millis(200), None, ev_tx).map_err(
            |e| LoadError::Read {
                file: path.display().to_string(),
                source: std::io::Error::other(e),
            },
        )?;
    debouncer
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| LoadError::Read {
            file: dir.display().to_string(),
            source: std::io::Error::other(e),
        })?;
    let file_name = path.file_name().map(|n| n.to_os_string());
    let thread = std::thread::Builder::new()
        .name("config-watch".into())
        .spawn(move || {
            for res in ev_rx {
                let Ok(events) = res else { continue };
                let relevant = events
                    .iter()
                    .any(|e| changes(&e.kind) && names(e, file_name.as_deref()));
                if !relevant {
                    continue;
                }
                let previous = tx.borrow().clone();
                match load(&path, &previous) {
                    Ok(state) => {
                        report(&state);
                        tracing::info!(file = %path.display(), sources = state.sources.len(), "config reloaded");
                        tx.send_replace(Arc::new(state));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "config reload refused; previous config stays in force");
                        let mut kept = (*previous).clone();
                        kept.errors = vec![ConfigError {
                            file: path.display().to_string(),
                            document: match &e {
                                LoadError::Syntax { document, .. } => *document,
                                _ => 0,
                            },
                            object: String::new(),
                            field: String::new(),
                            message: e.to_string(),
                        }];
                        tx.send_replace(Arc::new(kept));
                    }
                }
            }
        })
        .map_err(|source| LoadError::Read {
            file: "config-watch thread".into(),
            source,
        })?;
    Ok(ConfigWatch {
        _debouncer: Box::new(debouncer),
        _thread: thread,
    })
}

fn report(state: &DesiredState) {
    for e in &state.errors {
        tracing::error!(error = %e, "invalid config document");
    }
}

/// Keeps the config watcher alive.
pub struct ConfigWatch {
    _debouncer: Box<dyn std::any::Any + Send>,
    _thread: std::thread::JoinHandle<()>,
}

/// Whether an event kind can change the file's content. Opening and reading it (which every
/// load does) are access events: reacting to them made each reload schedule the next, forever.
fn changes(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    matches!(
        kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
    )
}

/// Whether the event is about the watched file (the directory is watched).
fn names(e: &notify::Event, file_name: Option<&std::ffi::OsStr>) -> bool {
    e.paths.iter().any(|p| p.file_name() == file_name)
}

#[cfg(test)]
mod tests {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind, RenameMode};

    use super::changes;

    #[test]
    fn reading_the_file_is_not_a_change() {
        for access in [
            AccessKind::Open(AccessMode::Any),
            AccessKind::Close(AccessMode::Read),
            AccessKind::Read,
        ] {
            assert!(!changes(&EventKind::Access(access)), "{access:?}");
        }
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Remove(RemoveKind::File),
        ] {
            assert!(changes(&kind), "{kind:?}");
        }
    }
}
