//! The script workers: threads that each own a Lua state and run many handlers at once on it
//! (a handler waiting on I/O yields, and the worker takes the next message). A reload publishes
//! a new snapshot; each worker builds a fresh state from it and uses it for new messages, while
//! messages already running finish on the state they started with.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

use super::runtime::{Handled, LateReplyFailure, LuaRuntime};
use super::{RuntimeOptions, ScriptError, ScriptSources, Services};
use crate::protocol::message::InboundMessage;

/// How many messages may wait for one worker before senders wait too.
const QUEUE_DEPTH: usize = 1024;

/// What a worker is asked to run.
enum Work {
    /// An inbound message, for the first matching handler.
    Message(InboundMessage),
    /// A late reply customer service refused, for the `late_reply_failed` handlers.
    LateReplyFailed(LateReplyFailure),
}

struct Job {
    work: Work,
    done: oneshot::Sender<Result<Handled, ScriptError>>,
}

/// A published script set: the snapshot and its generation number.
#[derive(Clone)]
struct Published {
    generation: u64,
    sources: Arc<ScriptSources>,
}

/// What the last reload attempt did, for logs, `check` and `/healthz`.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// Generation in service (1 for the first load).
    pub generation: u64,
    /// Reloads that succeeded.
    pub reloads_ok: u64,
    /// Reloads that were rejected (the last good set kept serving).
    pub reloads_failed: u64,
    /// The error of the last rejected reload, if the last attempt failed.
    pub last_error: Option<String>,
}

/// Handle to the script workers; cheap to share behind an `Arc`.
pub struct ScriptHost {
    workers: Vec<mpsc::Sender<Job>>,
    next: AtomicUsize,
    publish: watch::Sender<Published>,
    generation: AtomicU64,
    location: std::path::PathBuf,
    options: RuntimeOptions,
    services: Services,
    status: Mutex<ReloadStatus>,
    /// Serialises reloads so two quick ones cannot publish out of order.
    reloading: Mutex<()>,
}

impl ScriptHost {
    /// Loads the scripts at `location` (validating them once here, so a broken set stops
    /// start-up with its file and line) and starts `workers` worker threads.
    pub fn start(
        location: &std::path::Path,
        options: RuntimeOptions,
        workers: usize,
        services: Services,
    ) -> Result<Arc<ScriptHost>, ScriptError> {
        let sources = Arc::new(ScriptSources::read(location)?);
        let first = LuaRuntime::load(sources.clone(), &options, &services)?;
        first.check_syntax()?;
        for warning in first.warnings() {
            tracing::warn!("{warning}");
        }
        drop(first);
        let (publish, _) = watch::channel(Published {
            generation: 1,
            sources,
        });
        let mut senders = Vec::with_capacity(workers);
        let mut ready = Vec::with_capacity(workers);
        for index in 0..workers.max(1) {
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let published = publish.subscribe();
            let options = options.clone();
            let services = services.clone();
            std::thread::Builder::new()
                .name(format!("lua-worker-{index}"))
                .spawn(move || worker(index, rx, published, options, services, ready_tx))
                .map_err(|e| ScriptError::Load(format!("cannot start a script worker: {e}")))?;
            senders.push(tx);
            ready.push(ready_rx);
        }
        for ready_rx in ready {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(ScriptError::Unavailable),
            }
        }
        Ok(Arc::new(ScriptHost {
            workers: senders,
            next: AtomicUsize::new(0),
            publish,
            generation: AtomicU64::new(1),
            location: location.to_path_buf(),
            options,
            services,
            status: Mutex::new(ReloadStatus {
                generation: 1,
                ..Default::default()
            }),
            reloading: Mutex::new(()),
        }))
    }

    /// Runs the handler for one message on the next worker.
    pub async fn handle(&self, msg: InboundMessage) -> Result<Handled, ScriptError> {
        self.submit(Work::Message(msg)).await
    }

    /// Runs the scripts' `late_reply_failed` handlers for a reply that could not be delivered.
    pub async fn late_reply_failed(
        &self,
        failure: LateReplyFailure,
    ) -> Result<Handled, ScriptError> {
        self.submit(Work::LateReplyFailed(failure)).await
    }

    async fn submit(&self, work: Work) -> Result<Handled, ScriptError> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        let (done, result) = oneshot::channel();
        self.workers[index]
            .send(Job { work, done })
            .await
            .map_err(|_| ScriptError::Unavailable)?;
        result.await.map_err(|_| ScriptError::Unavailable)?
    }

    /// Re-reads the scripts; if they load, every worker switches to them for new messages.
    /// If not, the last good set keeps serving and the error (with file:line) is returned.
    pub fn reload(&self) -> Result<u64, ScriptError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let attempt = ScriptSources::read(&self.location)
            .map(Arc::new)
            .and_then(|sources| {
                let runtime = LuaRuntime::load(sources.clone(), &self.options, &self.services)?;
                runtime.check_syntax()?;
                for warning in runtime.warnings() {
                    tracing::warn!("{warning}");
                }
                Ok(sources)
            });
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        crate::metrics::metrics().reload(attempt.is_ok());
        match attempt {
            Ok(sources) => {
                let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
                self.publish.send_replace(Published {
                    generation,
                    sources,
                });
                status.generation = generation;
                status.reloads_ok += 1;
                status.last_error = None;
                Ok(generation)
            }
            Err(e) => {
                status.reloads_failed += 1;
                status.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The generation in service.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// What reloads have done so far.
    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The scripts location this host loads from.
    pub fn location(&self) -> &std::path::Path {
        &self.location
    }
}

fn worker(
    index: usize,
    mut jobs: mpsc::Receiver<Job>,
    mut published: watch::Receiver<Published>,
    options: RuntimeOptions,
    services: Services,
    ready: std::sync::mpsc::Sender<Result<(), ScriptError>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(ScriptError::Load(format!(
                "cannot start a worker runtime: {e}"
            ))));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let first = published.borrow_and_update().clone();
        let mut current = match LuaRuntime::load(first.sources, &options, &services) {
            Ok(state) => Rc::new(state),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let mut generation = first.generation;
        let _ = ready.send(Ok(()));
        let mut running = tokio::task::JoinSet::new();
        let mut switch = |current: &mut Rc<LuaRuntime>,
                          published: &mut watch::Receiver<Published>| {
            let next = published.borrow_and_update().clone();
            if next.generation <= generation {
                return;
            }
            match LuaRuntime::load(next.sources, &options, &services) {
                Ok(state) => {
                    *current = Rc::new(state);
                    generation = next.generation;
                    tracing::debug!(worker = index, generation, "worker switched to new scripts");
                }
                Err(e) => tracing::error!(worker = index, "worker kept the previous scripts: {e}"),
            }
        };
        loop {
            tokio::select! {
                job = jobs.recv() => {
                    let Some(job) = job else { break };
                    // A reload returns only after publishing, so a message sent after it must
                    // see the new set even if this worker has not noticed the change yet.
                    if published.has_changed().unwrap_or(false) {
                        switch(&mut current, &mut published);
                    }
                    let state = current.clone();
                    running.spawn_local(async move {
                        let result = match &job.work {
                            Work::Message(msg) => state.handle(msg).await,
                            Work::LateReplyFailed(failure) => state.late_reply_failed(failure).await,
                        };
                        let _ = job.done.send(result);
                    });
                }
                changed = published.changed() => {
                    if changed.is_ok() {
                        switch(&mut current, &mut published);
                    }
                }
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
        // The host is shutting down: let the messages in flight finish.
        while running.join_next().await.is_some() {}
    });
}
