//! Hot reload: watches the scripts for changes, waits until saving settles (editors write in
//! several steps), then reloads. A broken set is rejected with its file and line and the last
//! good set keeps serving.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

use super::LuaPool;

/// Quiet time after the last change before reloading.
const SETTLE: Duration = Duration::from_millis(120);
/// A burst of changes longer than this reloads anyway.
const MAX_WAIT: Duration = Duration::from_millis(1000);

/// Keeps the watcher alive; dropping it stops watching.
pub struct ReloadWatcher {
    _watcher: notify::RecommendedWatcher,
}

fn relevant(event: &notify::Event) -> bool {
    use notify::EventKind;
    matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
    ) && event
        .paths
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "lua") || p.extension().is_none())
}

/// Starts watching the pool's scripts; each settled burst of changes triggers one reload.
pub fn watch(pool: Arc<LuaPool>) -> notify::Result<ReloadWatcher> {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if relevant(&event) {
                let _ = tx.send(());
            }
        }
    })?;
    let location = pool.location().to_path_buf();
    let (root, mode) = if location.is_dir() {
        (location.clone(), RecursiveMode::Recursive)
    } else {
        let parent = location
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        (parent, RecursiveMode::NonRecursive)
    };
    watcher.watch(&root, mode)?;
    std::thread::Builder::new()
        .name("script-reload".into())
        .spawn(move || {
            // Validation runs the scripts' top level, whose calls may need a runtime.
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    tracing::error!("hot reload disabled: cannot start its runtime: {e}");
                    return;
                }
            };
            let _context = runtime.enter();
            while rx.recv().is_ok() {
                let burst = Instant::now();
                loop {
                    match rx.recv_timeout(SETTLE) {
                        Ok(()) if burst.elapsed() < MAX_WAIT => continue,
                        Ok(()) => break,
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                match pool.reload() {
                    Ok(generation) => tracing::info!(generation, "scripts reloaded"),
                    Err(e) => {
                        tracing::error!("reload rejected, the last good scripts keep serving: {e}")
                    }
                }
            }
        })
        .map_err(|e| notify::Error::generic(&e.to_string()))?;
    Ok(ReloadWatcher { _watcher: watcher })
}
