//! Sessions in SQLite (bundled, so nothing to install). One connection behind a mutex, used from
//! blocking threads; enough for an example, and what the health check pings.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

#[derive(Debug, Clone)]
pub(crate) struct Store {
    conn: Arc<Mutex<Connection>>,
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Store {
    /// Opens (or creates) the database at `path` (`:memory:` for an in-memory one).
    pub(crate) fn open(path: &str) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
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
    #[tracing::instrument(skip(self), err)]
    pub(crate) async fn create(
        &self,
        user: String,
        ttl: Duration,
    ) -> Result<(String, i64), StoreError> {
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
    #[tracing::instrument(skip(self), err)]
    pub(crate) async fn get(&self, id: String) -> Result<Option<(String, i64)>, StoreError> {
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
    #[tracing::instrument(skip(self), err)]
    pub(crate) async fn delete(&self, id: String) -> Result<bool, StoreError> {
        self.with(move |c| c.execute("DELETE FROM sessions WHERE id = ?1", params![id]))
            .await
            .map(|n| n > 0)
    }

    /// A round trip through the database, for the readiness check.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_row("SELECT count(*) FROM sessions LIMIT 1", [], |_| Ok(())))
            .await
    }
}
