//! Sessions in SQLite (bundled, so nothing to install). One connection behind a mutex, used from
//! blocking threads; enough for an example, and what the health check pings.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

/// A database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The blocking task running the query failed.
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The sessions table.
#[derive(Debug, Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
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
        })
    }

    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let conn = self.conn.clone();
        let result = tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await?;
        Ok(result?)
    }

    /// Creates a session for `user` that expires after `ttl`; returns its id and expiry.
    #[lookout::measured(name = "sessions.create")]
    #[tracing::instrument(skip(self), err)]
    pub async fn create(&self, user: String, ttl: Duration) -> Result<(String, i64), StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let expires_at = unix_now() + ttl.as_secs() as i64;
        let sid = id.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO sessions (id, user, expires_at) VALUES (?1, ?2, ?3)",
                params![sid, user, expires_at],
            )
        })
        .await?;
        Ok((id, expires_at))
    }

    /// The user of a live (unexpired) session.
    #[lookout::measured(name = "sessions.get")]
    #[tracing::instrument(skip(self), err)]
    pub async fn get(&self, id: String) -> Result<Option<(String, i64)>, StoreError> {
        let now = unix_now();
        self.with(move |c| {
            c.query_row(
                "SELECT user, expires_at FROM sessions WHERE id = ?1 AND expires_at > ?2",
                params![id, now],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
        .await
    }

    /// Deletes a session; whether it existed.
    #[lookout::measured(name = "sessions.delete")]
    #[tracing::instrument(skip(self), err)]
    pub async fn delete(&self, id: String) -> Result<bool, StoreError> {
        self.with(move |c| c.execute("DELETE FROM sessions WHERE id = ?1", params![id]))
            .await
            .map(|n| n > 0)
    }

    /// Deletes up to `limit` expired sessions; returns how many it deleted. One batch is one
    /// statement under the connection's lock, so a batch's size bounds how long API requests
    /// wait behind the cleanup.
    #[lookout::measured(name = "sessions.delete_expired")]
    pub async fn delete_expired(&self, limit: u64) -> Result<u64, StoreError> {
        let now = unix_now();
        self.with(move |c| {
            c.execute(
                "DELETE FROM sessions WHERE rowid IN \
                 (SELECT rowid FROM sessions WHERE expires_at <= ?1 LIMIT ?2)",
                params![now, i64::try_from(limit).unwrap_or(i64::MAX)],
            )
        })
        .await
        .map(|n| n as u64)
    }

    /// Expired sessions not deleted yet.
    pub async fn count_expired(&self) -> Result<u64, StoreError> {
        let now = unix_now();
        self.with(move |c| {
            c.query_row(
                "SELECT count(*) FROM sessions WHERE expires_at <= ?1",
                params![now],
                |r| r.get::<_, i64>(0),
            )
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
        self.with(|c| c.query_row("SELECT count(*) FROM sessions", [], |r| r.get::<_, i64>(0)))
            .await
            .map(|n| n as u64)
    }

    /// A round trip through the database, for the readiness check.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_row("SELECT count(*) FROM sessions LIMIT 1", [], |_| Ok(())))
            .await
    }
}
