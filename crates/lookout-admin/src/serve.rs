//! Serving an axum router so that it stops on time: [`serve`].
//!
//! `axum::serve` has no limit on reading a request head and none on its graceful shutdown: a
//! client that opens a connection and sends nothing, or half a request, holds the shutdown for as
//! long as it likes (an axum service with a few idle connections took 88 s to exit after SIGTERM,
//! past any Kubernetes grace period, so its telemetry was never flushed). This is the same
//! hyper-util connection builder axum uses, with two limits added:
//!
//! - a request head must arrive within [`ServeOptions::header_read_timeout`] (default 10 s), else
//!   the connection is closed (HTTP/1: hyper answers `408`);
//! - once `stop` completes, the listener closes, every connection is asked to finish (requests in
//!   progress complete, idle keep-alive connections close), and whatever is still open after
//!   [`ServeOptions::grace`] (default 5 s) is closed. [`serve`] then returns how many were.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The limits of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct ServeOptions {
    /// How long a client has to send a request head (HTTP/1), from the connection's start or the
    /// previous response. Default 10 s.
    pub header_read_timeout: Duration,
    /// How long requests in progress may take to finish once `stop` completes; connections still
    /// open after it are closed. Default 5 s.
    pub grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(5),
        }
    }
}

impl ServeOptions {
    /// Sets [`ServeOptions::header_read_timeout`].
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets [`ServeOptions::grace`].
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

/// How a [`serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stopped {
    /// Connections that finished on their own after `stop` (within the grace period).
    pub drained: usize,
    /// Connections still open when the grace period ended, closed by force.
    pub closed: usize,
}

/// Serves `router` on `listener` until `stop` completes, then drains within
/// [`ServeOptions::grace`] and returns. Never waits longer than `grace` after `stop`, whatever the
/// clients do.
///
/// ```no_run
/// # async fn run(shutdown_signal: impl std::future::Future<Output = ()> + Send) -> std::io::Result<()> {
/// let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// // `shutdown_signal`: SIGTERM or Ctrl-C, say (the examples' `shutdown_signal()`).
/// let stopped = lookout_admin::serve(
///     listener,
///     app,
///     shutdown_signal,
///     lookout_admin::ServeOptions::default(),
/// )
/// .await;
/// eprintln!("{} connections closed at the deadline", stopped.closed);
/// # Ok(()) }
/// ```
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: impl Future<Output = ()> + Send,
    options: ServeOptions,
) -> Stopped {
    let (draining, _) = watch::channel(false);
    let mut connections = JoinSet::new();
    // Where requests came in, for the local view's loopback rule.
    #[cfg(feature = "view")]
    let router = match listener.local_addr() {
        Ok(local) => {
            crate::view::announce(local);
            router.layer(axum::Extension(crate::view::Served {
                local,
                draining: Some(draining.subscribe()),
            }))
        }
        Err(_) => router,
    };
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors and the like: wait a moment, keep serving.
                    Err(e) => {
                        tracing::debug!(target: "lookout_admin", "accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let service = TowerToHyperService::new(router.clone());
                let mut drain = draining.subscribe();
                let header_read_timeout = options.header_read_timeout;
                connections.spawn(async move {
                    let mut builder = Builder::new(TokioExecutor::new());
                    builder
                        .http1()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_read_timeout);
                    builder.http2().timer(TokioTimer::new());
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let mut connection = std::pin::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => return,
                        _ = drain.wait_for(|d| *d) => connection.as_mut().graceful_shutdown(),
                    }
                    let _ = connection.await;
                });
                // Reap finished connections as we go, so the set stays as large as what is open.
                while connections.try_join_next().is_some() {}
            }
        }
    }
    drop(listener);
    let _ = draining.send(true);
    let open = connections.len();
    let deadline = tokio::time::sleep(options.grace);
    let mut deadline = std::pin::pin!(deadline);
    let mut drained = 0;
    loop {
        tokio::select! {
            next = connections.join_next() => match next {
                Some(_) => drained += 1,
                None => break,
            },
            () = &mut deadline => break,
        }
    }
    let closed = connections.len();
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    if closed > 0 {
        tracing::info!(
            target: "lookout_admin",
            open,
            closed,
            grace_ms = options.grace.as_millis() as u64,
            "closed the connections still open at the end of the shutdown grace period"
        );
    }
    Stopped { drained, closed }
}

/// Binds `addr`; returns the listener and the address it got (port 0 picks a free one), or the
/// error `failed` makes of what went wrong.
pub(crate) async fn bind(
    addr: std::net::SocketAddr,
    failed: fn(std::net::SocketAddr, std::io::Error) -> crate::AdminError,
) -> Result<(TcpListener, std::net::SocketAddr), crate::AdminError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| failed(addr, source))?;
    let local = listener
        .local_addr()
        .map_err(|source| failed(addr, source))?;
    Ok((listener, local))
}
