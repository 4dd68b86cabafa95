//! Embedded SQLite backend: one WAL-mode file, one connection with cached statements.
//!
//! A statement runs on the calling thread when the connection is free and SQLite would not
//! wait for a lock: a read takes microseconds, a write its WAL append, either less than
//! handing it to another thread and waking the caller back (the store's old way, ~60 µs).
//! Otherwise (another task holds the connection, or another process holds the write lock)
//! it is shipped to a dedicated worker thread, which waits for the lock (busy timeout) so no
//! tokio worker ever does. The worker also purges expired keys and checkpoints the WAL, the
//! only steps that `fsync`, off the callers' threads.
//! Multi-statement operations run in `BEGIN IMMEDIATE` transactions so that even a
//! second process opening the same file cannot interleave with them.
//!
//! Durability: WAL with `synchronous=NORMAL` writes every commit to the WAL file before the
//! call returns, so an acknowledged write survives the process being killed (it is in the
//! kernel's page cache); only a power loss can take the last commits back.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use super::{now_unix_ms, ttl_ms, OutboxItem, Store, StoreError, StoreFuture};

/// How often the worker deletes expired keys (reads already ignore them).
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// How often the worker copies the WAL back into the database file. Writers never do it
/// themselves (`wal_autocheckpoint=0`): a checkpoint `fsync`s, which must not stall a tokio
/// worker. A second of writes keeps the WAL small.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// How long a statement shipped to the worker waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A unit of work shipped to the worker thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The embedded store. Cheap to share behind an `Arc`; dropping it stops the worker.
#[derive(Debug)]
pub struct SqliteStore {
    /// The one connection. A std mutex, held only while a statement runs: callers never
    /// wait on it (they `try_lock`, and hand the statement to the worker when it is taken).
    conn: Arc<Mutex<Connection>>,
    /// Statements that could not run on the caller's thread.
    jobs: mpsc::Sender<Job>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    expires_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expires_at ON kv(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_next_at ON outbox(next_at);
";

/// Live rows: no TTL or not yet expired (?2 is now). A macro so the SQL below stays
/// `&'static str` and the hot path formats nothing.
macro_rules! live {
    () => {
        "(expires_at IS NULL OR expires_at > ?2)"
    };
}

/// How one attempt at an operation failed.
#[derive(Debug)]
enum Failure {
    /// SQLite would have had to wait for a lock (another process is writing): nothing was
    /// applied (a single statement did not start, a transaction rolled back), so the worker
    /// may run the operation again, waiting as long as the busy timeout allows.
    Busy(rusqlite::Error),
    /// A final answer.
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<Failure> for StoreError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Busy(e) => StoreError::Backend(format!("sqlite: {e}")),
            Failure::Store(e) => e,
        }
    }
}

fn backend(e: rusqlite::Error) -> Failure {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Failure::Busy(e),
        _ => Failure::Store(StoreError::Backend(format!("sqlite: {e}"))),
    }
}

fn setup_error(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

/// Takes the connection even if an earlier holder panicked: statements leave it consistent
/// (an open transaction rolls back as it unwinds).
fn lock_poisoned_ok(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SqliteStore {
    /// Opens (creating if needed) the store file at `path`. Blocking: call it from
    /// `spawn_blocking` or before the runtime starts.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let unavailable = |e: rusqlite::Error| {
            StoreError::Unavailable(format!("cannot open sqlite {}: {e}", path.display()))
        };
        let conn = Connection::open(path).map_err(unavailable)?;
        // The checkpointer gets its own connection, so copying the WAL back never holds
        // the one the callers use.
        let checkpointer = Connection::open(path).map_err(unavailable)?;
        checkpointer
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(setup_error)?;
        Self::start(conn, Some(checkpointer), PURGE_INTERVAL)
    }

    /// Opens a private in-memory store, gone when dropped.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(setup_error)?;
        Self::start(conn, None, PURGE_INTERVAL)
    }

    /// `checkpointer`: a second connection to the same file (none for an in-memory store).
    fn start(
        conn: Connection,
        checkpointer: Option<Connection>,
        purge_every: Duration,
    ) -> Result<Self, StoreError> {
        // journal_mode answers with a row, so it is queried rather than executed.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(setup_error)?;
        // NORMAL is durable against process crashes in WAL mode, which is what restarts need.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(setup_error)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(setup_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(setup_error)?;
        conn.execute_batch(SCHEMA).map_err(setup_error)?;
        conn.set_prepared_statement_cache_capacity(32);
        // Callers never wait for another process's lock; the worker does (see `call`).
        conn.busy_timeout(Duration::ZERO).map_err(setup_error)?;

        let conn = Arc::new(Mutex::new(conn));
        let (jobs, rx) = mpsc::channel::<Job>();
        let worker_conn = conn.clone();
        std::thread::Builder::new()
            .name("wechat-lua-sqlite".to_owned())
            .spawn(move || worker(&worker_conn, checkpointer, rx, purge_every))
            .map_err(|e| StoreError::Unavailable(format!("cannot start sqlite worker: {e}")))?;
        Ok(Self { conn, jobs })
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable("sqlite worker stopped".to_owned()))
    }

    /// Runs `op` on the caller's thread when the connection is free and no lock is in the
    /// way, else on the worker thread; the work starts when the future is first polled.
    fn call<T, F>(&self, op: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: Fn(&mut Connection) -> Result<T, Failure> + Send + 'static,
    {
        Box::pin(async move {
            match self.try_here(&op) {
                Some(done) => done,
                None => self.on_worker(op).await,
            }
        })
    }

    /// `None` when `op` must go to the worker: the connection is in use, or SQLite is busy.
    fn try_here<T>(
        &self,
        op: &impl Fn(&mut Connection) -> Result<T, Failure>,
    ) -> Option<Result<T, StoreError>> {
        let mut conn = match self.conn.try_lock() {
            Ok(conn) => conn,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| op(&mut conn))) {
            Ok(Ok(value)) => Some(Ok(value)),
            Ok(Err(Failure::Busy(_))) => None,
            Ok(Err(Failure::Store(e))) => Some(Err(e)),
            Err(_) => Some(Err(panicked())),
        }
    }

    /// Ships `op` to the worker, which waits for locks up to the busy timeout.
    async fn on_worker<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Failure> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.send(Box::new(move |conn| {
            // The caller may have gone away (cancelled future); nothing to report then.
            let _ = tx.send(op(conn).map_err(StoreError::from));
        }))?;
        rx.await.unwrap_or_else(|_| Err(panicked()))
    }

    /// Deletes expired keys now; returns how many. The worker also does this periodically.
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        self.call(|conn| purge(conn).map_err(backend)).await
    }
}

fn panicked() -> StoreError {
    StoreError::Unavailable("sqlite store: the operation panicked".to_owned())
}

fn worker(
    conn: &Mutex<Connection>,
    checkpointer: Option<Connection>,
    rx: mpsc::Receiver<Job>,
    purge_every: Duration,
) {
    let mut last_purge = Instant::now();
    let mut last_checkpoint = Instant::now();
    loop {
        match rx.recv_timeout(purge_every.min(CHECKPOINT_INTERVAL)) {
            Ok(job) => {
                let mut conn = lock_poisoned_ok(conn);
                // The worker may wait for another process's lock; callers' statements may not.
                let _ = conn.busy_timeout(BUSY_TIMEOUT);
                // A panicking job must not take the store down for every later caller;
                // its open transaction, if any, rolls back as it unwinds.
                let run = AssertUnwindSafe(|| job(&mut conn));
                if std::panic::catch_unwind(run).is_err() {
                    tracing::error!("sqlite store: a job panicked; worker continues");
                }
                let _ = conn.busy_timeout(Duration::ZERO);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
            checkpoint(checkpointer.as_ref());
            last_checkpoint = Instant::now();
        }
        if last_purge.elapsed() >= purge_every {
            let conn = lock_poisoned_ok(conn);
            let _ = conn.busy_timeout(BUSY_TIMEOUT);
            if let Err(e) = purge(&conn) {
                tracing::warn!(error = %e, "sqlite store: purging expired keys failed");
            }
            let _ = conn.busy_timeout(Duration::ZERO);
            drop(conn);
            last_purge = Instant::now();
        }
    }
    // Leave a small WAL behind for the next start.
    checkpoint(checkpointer.as_ref());
}

/// Copies the WAL into the database file without blocking writers (`PASSIVE`).
fn checkpoint(checkpointer: Option<&Connection>) {
    if let Some(c) = checkpointer {
        if let Err(e) = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "sqlite store: WAL checkpoint failed");
        }
    }
}

fn purge(conn: &Connection) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?1")?
        .execute(params![now_unix_ms()])
}

fn expires_at(ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|t| now_unix_ms().saturating_add(ttl_ms(t)))
}

fn row_to_item(row: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxItem> {
    Ok(OutboxItem {
        id: row.get(0)?,
        payload: row.get(1)?,
        attempts: row.get(2)?,
        next_at_unix_ms: row.get(3)?,
        created_at_unix_ms: row.get(4)?,
        last_error: row.get(5)?,
    })
}

/// Parses an integer exactly as Redis `INCRBY` accepts it (no sign `+`, no spaces, no
/// leading zeros), so both backends agree on what counts as an integer.
fn parse_strict_i64(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let canonical = s == "0"
        || (digits
            .as_bytes()
            .first()
            .is_some_and(|b| (b'1'..=b'9').contains(b))
            && digits.bytes().all(|b| b.is_ascii_digit()));
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

fn incr_in(conn: &mut Connection, key: &str, by: i64) -> Result<i64, Failure> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let now = now_unix_ms();
    let current: Option<(String, Option<i64>)> = tx
        .prepare_cached(concat!(
            "SELECT value, expires_at FROM kv WHERE key = ?1 AND ",
            live!(),
            ""
        ))
        .map_err(backend)?
        .query_row(params![key, now], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(backend)?;
    let (old, expires) = match current {
        Some((value, expires)) => {
            let old = parse_strict_i64(&value).ok_or_else(|| StoreError::NotAnInteger {
                key: key.to_owned(),
            })?;
            (old, expires)
        }
        None => (0, None),
    };
    let new = old.checked_add(by).ok_or_else(|| StoreError::Overflow {
        key: key.to_owned(),
    })?;
    tx.prepare_cached(
        "INSERT INTO kv (key, value, expires_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
    )
    .map_err(backend)?
    .execute(params![key, new.to_string(), expires])
    .map_err(backend)?;
    tx.commit().map_err(backend)?;
    Ok(new)
}

fn take_due_in(
    conn: &mut Connection,
    now: i64,
    limit: usize,
    lease: Duration,
) -> Result<Vec<OutboxItem>, Failure> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let lease_end = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    let mut items = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, payload, attempts, next_at, created_at, last_error FROM outbox
                 WHERE next_at <= ?1 ORDER BY next_at, id LIMIT ?2",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![now, limit], row_to_item)
            .map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)?
    };
    {
        let mut lease_stmt = tx
            .prepare_cached("UPDATE outbox SET next_at = ?2 WHERE id = ?1")
            .map_err(backend)?;
        for item in &mut items {
            lease_stmt
                .execute(params![item.id, lease_end])
                .map_err(backend)?;
            item.next_at_unix_ms = lease_end;
        }
    }
    tx.commit().map_err(backend)?;
    Ok(items)
}

impl Store for SqliteStore {
    fn get(&self, key: &str) -> StoreFuture<'_, Option<String>> {
        let key = key.to_owned();
        self.call(move |conn| {
            conn.prepare_cached(concat!(
                "SELECT value FROM kv WHERE key = ?1 AND ",
                live!(),
                ""
            ))
            .map_err(backend)?
            .query_row(params![key, now_unix_ms()], |r| r.get(0))
            .optional()
            .map_err(backend)
        })
    }

    fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> StoreFuture<'_, ()> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.call(move |conn| {
            conn.prepare_cached(
                "INSERT INTO kv (key, value, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            )
            .map_err(backend)?
            .execute(params![key, value, expires_at(ttl)])
            .map_err(backend)?;
            Ok(())
        })
    }

    fn set_nx(&self, key: &str, value: &str, ttl: Option<Duration>) -> StoreFuture<'_, bool> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.call(move |conn| {
            // One statement, hence atomic: insert, or take over a row only once it expired.
            let changed = conn
                .prepare_cached(
                    "INSERT INTO kv (key, value, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
                     WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= ?4",
                )
                .map_err(backend)?
                .execute(params![key, value, expires_at(ttl), now_unix_ms()])
                .map_err(backend)?;
            Ok(changed == 1)
        })
    }

    fn incr(&self, key: &str, by: i64) -> StoreFuture<'_, i64> {
        let key = key.to_owned();
        self.call(move |conn| incr_in(conn, &key, by))
    }

    fn del(&self, key: &str) -> StoreFuture<'_, bool> {
        let key = key.to_owned();
        self.call(move |conn| {
            let n = conn
                .prepare_cached(concat!("DELETE FROM kv WHERE key = ?1 AND ", live!()))
                .map_err(backend)?
                .execute(params![key, now_unix_ms()])
                .map_err(backend)?;
            Ok(n == 1)
        })
    }

    fn del_if_eq(&self, key: &str, expected: &str) -> StoreFuture<'_, bool> {
        let (key, expected) = (key.to_owned(), expected.to_owned());
        self.call(move |conn| {
            let n = conn
                .prepare_cached(concat!(
                    "DELETE FROM kv WHERE key = ?1 AND ",
                    live!(),
                    " AND value = ?3"
                ))
                .map_err(backend)?
                .execute(params![key, now_unix_ms(), expected])
                .map_err(backend)?;
            Ok(n == 1)
        })
    }

    fn set_if_eq(
        &self,
        key: &str,
        expected: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> StoreFuture<'_, bool> {
        let (key, expected, value) = (key.to_owned(), expected.to_owned(), value.to_owned());
        self.call(move |conn| {
            let now = now_unix_ms();
            let expires = ttl.map(|ttl| now.saturating_add(ttl_ms(ttl)));
            // One statement: the comparison and the write are atomic without a transaction.
            let n = conn
                .prepare_cached(concat!(
                    "UPDATE kv SET value = ?4, expires_at = ?5 WHERE key = ?1 AND ",
                    live!(),
                    " AND value = ?3"
                ))
                .map_err(backend)?
                .execute(params![key, now, expected, value, expires])
                .map_err(backend)?;
            Ok(n == 1)
        })
    }

    fn outbox_push(&self, item: &OutboxItem) -> StoreFuture<'_, ()> {
        let item = item.clone();
        self.call(move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO outbox (id, payload, attempts, next_at, created_at, last_error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(backend)?
            .execute(params![
                item.id,
                item.payload,
                item.attempts,
                item.next_at_unix_ms,
                item.created_at_unix_ms,
                item.last_error
            ])
            .map_err(backend)?;
            Ok(())
        })
    }

    fn outbox_take_due(
        &self,
        now_unix_ms: i64,
        limit: usize,
        lease: Duration,
    ) -> StoreFuture<'_, Vec<OutboxItem>> {
        self.call(move |conn| take_due_in(conn, now_unix_ms, limit, lease))
    }

    fn outbox_done(&self, id: &str) -> StoreFuture<'_, ()> {
        let id = id.to_owned();
        self.call(move |conn| {
            conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")
                .map_err(backend)?
                .execute(params![id])
                .map_err(backend)?;
            Ok(())
        })
    }

    fn outbox_retry(
        &self,
        id: &str,
        next_at_unix_ms: i64,
        attempts: u32,
        last_error: &str,
    ) -> StoreFuture<'_, ()> {
        let (id, last_error) = (id.to_owned(), last_error.to_owned());
        self.call(move |conn| {
            conn.prepare_cached(
                "UPDATE outbox SET next_at = ?2, attempts = ?3, last_error = ?4 WHERE id = ?1",
            )
            .map_err(backend)?
            .execute(params![id, next_at_unix_ms, attempts, last_error])
            .map_err(backend)?;
            Ok(())
        })
    }

    fn outbox_len(&self) -> StoreFuture<'_, usize> {
        self.call(|conn| {
            let n: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM outbox")
                .map_err(backend)?
                .query_row([], |r| r.get(0))
                .map_err(backend)?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    fn outbox_oldest(&self) -> StoreFuture<'_, Option<i64>> {
        self.call(|conn| {
            conn.prepare_cached("SELECT MIN(created_at) FROM outbox")
                .map_err(backend)?
                .query_row([], |r| r.get(0))
                .map_err(backend)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn purge_removes_only_expired_rows() {
        let store = SqliteStore::open_in_memory().unwrap();
        store
            .set("old", "x", Some(Duration::from_millis(1)))
            .await
            .unwrap();
        store.set("forever", "y", None).await.unwrap();
        store
            .set("later", "z", Some(Duration::from_secs(60)))
            .await
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(store.purge_expired().await.unwrap(), 1);
        assert_eq!(store.purge_expired().await.unwrap(), 0);
        assert_eq!(store.get("forever").await.unwrap().as_deref(), Some("y"));
        assert_eq!(store.get("later").await.unwrap().as_deref(), Some("z"));
    }

    #[tokio::test]
    async fn worker_purges_periodically() {
        let conn = Connection::open_in_memory().unwrap();
        let store = SqliteStore::start(conn, None, Duration::from_millis(20)).unwrap();
        store
            .set("old", "x", Some(Duration::from_millis(1)))
            .await
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // The row is gone from the table itself, not merely hidden by the read filter.
        let rows: i64 = store
            .call(|c| {
                c.query_row("SELECT COUNT(*) FROM kv", [], |r| r.get(0))
                    .map_err(backend)
            })
            .await
            .unwrap();
        assert_eq!(rows, 0);
    }

    #[tokio::test]
    async fn incr_keeps_ttl_and_expired_counts_from_zero() {
        let store = SqliteStore::open_in_memory().unwrap();
        store
            .set("n", "5", Some(Duration::from_millis(50)))
            .await
            .unwrap();
        assert_eq!(store.incr("n", 1).await.unwrap(), 6);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(store.get("n").await.unwrap(), None);
        assert_eq!(store.incr("n", 1).await.unwrap(), 1);
    }

    #[test]
    fn strict_integers_match_redis() {
        for ok in [
            "0",
            "7",
            "-7",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            assert_eq!(parse_strict_i64(ok), Some(ok.parse().unwrap()), "{ok}");
        }
        for bad in [
            "",
            "-",
            "+5",
            " 5",
            "5 ",
            "05",
            "-0",
            "1.0",
            "1e3",
            "9223372036854775808",
        ] {
            assert_eq!(parse_strict_i64(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn worker_survives_a_panicking_job() {
        let store = SqliteStore::open_in_memory().unwrap();
        let res: Result<(), _> = store.call(|_| panic!("boom")).await;
        assert!(matches!(res, Err(StoreError::Unavailable(_))), "{res:?}");
        store.set("k", "v", None).await.unwrap();
        assert_eq!(store.get("k").await.unwrap().as_deref(), Some("v"));
    }

    #[tokio::test]
    async fn incr_overflow_is_an_error() {
        let store = SqliteStore::open_in_memory().unwrap();
        store.set("n", &i64::MAX.to_string(), None).await.unwrap();
        let err = store.incr("n", 1).await.unwrap_err();
        assert_eq!(err, StoreError::Overflow { key: "n".into() });
        assert_eq!(store.get("n").await.unwrap(), Some(i64::MAX.to_string()));
    }
}
