//! Sessions in SQLite (bundled, so nothing to install). One connection behind a mutex, used from
//! blocking threads; enough for an example, and what the health check pings.
//!
//! Every statement runs in a client span named by the database semantic conventions
//! (`{db.operation.name} {db.collection.name}`, with `db.system.name = sqlite` and the query text),
//! so a trace shows the SQLite work under the function that asked for it.
//!
//! `SESSIONS_DB_FAIL=true` makes every statement fail as if the database were unreachable: a way to
//! see error traces, burn-rate alerts, a failing cleanup job and a DOWN readiness check on purpose
//! (deploy/RUNBOOK.md walks through them).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use tracing::Instrument as _;

/// A database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The blocking task running the query failed.
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// `SESSIONS_DB_FAIL=true`: every statement fails on purpose.
    #[error("database unavailable (SESSIONS_DB_FAIL=true makes every statement fail)")]
    Unavailable,
}

impl StoreError {
    /// `error.type` of the semantic conventions: a low-cardinality name of the failure.
    pub fn error_type(&self) -> &'static str {
        match self {
            StoreError::Sqlite(_) => "sqlite",
            StoreError::Task(_) => "task",
            StoreError::Unavailable => "unavailable",
        }
    }
}

/// One SQL statement, for its span: the operation, the table, the text.
#[derive(Debug, Clone, Copy)]
struct Statement {
    operation: &'static str,
    collection: &'static str,
    text: &'static str,
}

const fn sql(operation: &'static str, collection: &'static str, text: &'static str) -> Statement {
    Statement {
        operation,
        collection,
        text,
    }
}

/// The sessions table.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    fail: Arc<AtomicBool>,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Store {
    /// Opens (or creates) the database at `path` (`:memory:` for an in-memory one), in WAL mode
    /// with `synchronous = NORMAL` (SQLite's advice for WAL: no fsync per commit, still safe
    /// against a crash of the process).
    pub fn open(path: &str) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS sessions (
                 id TEXT PRIMARY KEY,
                 user TEXT NOT NULL,
                 expires_at INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);",
        )?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            fail: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Makes every later statement fail with [`StoreError::Unavailable`] (or work again).
    pub fn set_failing(&self, failing: bool) {
        self.fail.store(failing, Ordering::Relaxed);
    }

    async fn with<T, F>(&self, statement: Statement, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &str) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let span = tracing::info_span!(
            "db",
            otel.name = format_args!("{} {}", statement.operation, statement.collection),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            db.system.name = "sqlite",
            db.operation.name = statement.operation,
            db.collection.name = statement.collection,
            db.query.text = statement.text,
            error.type = tracing::field::Empty,
        );
        let result = async {
            if self.fail.load(Ordering::Relaxed) {
                return Err(StoreError::Unavailable);
            }
            let conn = self.conn.clone();
            let result = tokio::task::spawn_blocking(move || {
                let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                f(&conn, statement.text)
            })
            .await?;
            Ok(result?)
        }
        .instrument(span.clone())
        .await;
        if let Err(e) = &result {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", e.error_type());
        }
        result
    }

    /// Creates a session for `user` that expires after `ttl`; returns its id and expiry.
    #[lookout::measured(name = "sessions.create")]
    #[tracing::instrument(skip(self), err)]
    pub async fn create(&self, user: String, ttl: Duration) -> Result<(String, i64), StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let expires_at = unix_now() + ttl.as_secs() as i64;
        let sid = id.clone();
        const INSERT: Statement = sql(
            "INSERT",
            "sessions",
            "INSERT INTO sessions (id, user, expires_at) VALUES (?1, ?2, ?3)",
        );
        self.with(INSERT, move |c, q| {
            c.execute(q, params![sid, user, expires_at])
        })
        .await?;
        Ok((id, expires_at))
    }

    /// The user of a live (unexpired) session.
    #[lookout::measured(name = "sessions.get")]
    #[tracing::instrument(skip(self), err)]
    pub async fn get(&self, id: String) -> Result<Option<(String, i64)>, StoreError> {
        let now = unix_now();
        const SELECT: Statement = sql(
            "SELECT",
            "sessions",
            "SELECT user, expires_at FROM sessions WHERE id = ?1 AND expires_at > ?2",
        );
        self.with(SELECT, move |c, q| {
            c.query_row(q, params![id, now], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .await
    }

    /// Deletes a session; whether it existed.
    #[lookout::measured(name = "sessions.delete")]
    #[tracing::instrument(skip(self), err)]
    pub async fn delete(&self, id: String) -> Result<bool, StoreError> {
        const DELETE: Statement = sql("DELETE", "sessions", "DELETE FROM sessions WHERE id = ?1");
        self.with(DELETE, move |c, q| c.execute(q, params![id]))
            .await
            .map(|n| n > 0)
    }

    /// Deletes up to `limit` expired sessions; returns how many it deleted. One batch is one
    /// statement under the connection's lock, so a batch's size bounds how long API requests
    /// wait behind the cleanup.
    #[lookout::measured(name = "sessions.delete_expired")]
    pub async fn delete_expired(&self, limit: u64) -> Result<u64, StoreError> {
        let now = unix_now();
        const DELETE_EXPIRED: Statement = sql(
            "DELETE",
            "sessions",
            "DELETE FROM sessions WHERE rowid IN \
             (SELECT rowid FROM sessions WHERE expires_at <= ?1 LIMIT ?2)",
        );
        self.with(DELETE_EXPIRED, move |c, q| {
            c.execute(q, params![now, i64::try_from(limit).unwrap_or(i64::MAX)])
        })
        .await
        .map(|n| n as u64)
    }

    /// Expired sessions not deleted yet.
    pub async fn count_expired(&self) -> Result<u64, StoreError> {
        let now = unix_now();
        const COUNT_EXPIRED: Statement = sql(
            "SELECT",
            "sessions",
            "SELECT count(*) FROM sessions WHERE expires_at <= ?1",
        );
        self.with(COUNT_EXPIRED, move |c, q| {
            c.query_row(q, params![now], |r| r.get::<_, i64>(0))
        })
        .await
        .map(|n| n as u64)
    }

    /// Inserts `n` sessions expiring at `expires_at` in one transaction (for tests and
    /// benchmarks that need a large table).
    pub async fn insert_many(&self, n: u64, expires_at: i64) -> Result<(), StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare(
                    "INSERT INTO sessions (id, user, expires_at) VALUES (?1, 'bulk', ?2)",
                )?;
                for _ in 0..n {
                    insert.execute(params![uuid::Uuid::new_v4().to_string(), expires_at])?;
                }
            }
            tx.commit()
        })
        .await??;
        Ok(())
    }

    /// Sessions in the table, expired or not.
    pub async fn count(&self) -> Result<u64, StoreError> {
        const COUNT: Statement = sql("SELECT", "sessions", "SELECT count(*) FROM sessions");
        self.with(COUNT, |c, q| c.query_row(q, [], |r| r.get::<_, i64>(0)))
            .await
            .map(|n| n as u64)
    }

    /// A round trip through the database, for the readiness check.
    pub async fn ping(&self) -> Result<(), StoreError> {
        const PING: Statement = sql(
            "SELECT",
            "sessions",
            "SELECT count(*) FROM sessions LIMIT 1",
        );
        self.with(PING, |c, q| c.query_row(q, [], |_| Ok(()))).await
    }
}
