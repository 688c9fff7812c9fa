//! What every service does between `init` and its exit, in the order that loses nothing:
//! [`Lifecycle`] serves its routers, waits for [`shutdown_signal`], takes the service out of its
//! load balancer and drains, stops the servers within a grace period, and flushes telemetry last.
//!
//! ```no_run
//! # async fn run(app: axum::Router, health: lookout_health::Health) -> Result<(), Box<dyn std::error::Error>> {
//! let telemetry = lookout::init()?;
//! let mut service = lookout_admin::Lifecycle::new(telemetry).health(health.clone());
//! service.serve("127.0.0.1:3000".parse()?, app).await?;
//! let admin = lookout_admin::Admin::builder().health(health).build()?;
//! service.serve(lookout::admin_addr()?, admin.router()).await?;
//! // SIGINT or SIGTERM: readiness OUT_OF_SERVICE for the drain delay, servers stopped (requests
//! // in progress get the grace period), then every span, metric and log flushed.
//! if let Err(e) = service.run().await {
//!     eprintln!("{e}");
//! }
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{AdminError, ServeOptions, Stopped};

type Drain = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM (what Kubernetes, systemd and docker send);
/// on other platforms on Ctrl-C. When SIGTERM cannot be listened for, says so in a WARN and waits
/// for Ctrl-C alone.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(
                    target: "lookout_admin",
                    "cannot listen for SIGTERM ({e}); only Ctrl-C stops the service"
                );
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// A service's servers and the order it stops in. Built once in `main`, after `lookout::init`:
///
/// 1. [`serve`](Self::serve) each router (the API, the admin routes) or [`spawn`](Self::spawn) a
///    server lookout does not start (a tonic server stopping on [`stopping`](Self::stopping));
/// 2. [`run`](Self::run) waits for [`shutdown_signal`], then
///    - **drain**: the health registry's [`shutdown`](lookout_health::Health::shutdown)
///      (readiness `OUT_OF_SERVICE`, still serving for its drain delay, so load balancers move
///      traffic away) together with every [`on_drain`](Self::on_drain) future (background work
///      finishing);
///    - **stop**: the servers stop accepting; requests in progress get the grace period
///      ([`ServeOptions::grace`], default 5 s), connections still open then are closed;
///    - **flush**: the telemetry guard's async [`shutdown`](lookout::Telemetry::shutdown), so
///      the spans of the last requests are exported too.
///
/// Every step is bounded: no client, job or collector can hold the exit past drain delay + grace +
/// the telemetry shutdown deadline.
#[derive(Debug)]
#[must_use = "a Lifecycle does nothing until .run() is awaited; dropping it stops its servers"]
pub struct Lifecycle {
    telemetry: lookout::Telemetry,
    #[cfg(feature = "health")]
    health: Option<lookout_health::Health>,
    drains: Vec<DebugDrain>,
    options: ServeOptions,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<Stopped>>,
    spawned: Vec<JoinHandle<()>>,
    addrs: Vec<SocketAddr>,
}

struct DebugDrain(Drain);

impl std::fmt::Debug for DebugDrain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Drain")
    }
}

impl Lifecycle {
    /// Takes the telemetry guard: it is flushed last, after the servers stopped.
    pub fn new(telemetry: lookout::Telemetry) -> Self {
        Lifecycle {
            telemetry,
            #[cfg(feature = "health")]
            health: None,
            drains: Vec::new(),
            options: ServeOptions::default(),
            stop: watch::channel(false).0,
            servers: Vec::new(),
            spawned: Vec::new(),
            addrs: Vec::new(),
        }
    }

    /// The health registry whose readiness goes `OUT_OF_SERVICE` first, for its drain delay,
    /// while the servers keep serving.
    #[cfg(feature = "health")]
    pub fn health(mut self, health: lookout_health::Health) -> Self {
        self.health = Some(health);
        self
    }

    /// Work to finish during the drain (in parallel with the health drain delay), e.g. a
    /// cleanup scheduler's `shutdown(drain)`. Bound it yourself: the servers stop after it.
    pub fn on_drain(mut self, drain: impl Future<Output = ()> + Send + 'static) -> Self {
        self.drains.push(DebugDrain(Box::pin(drain)));
        self
    }

    /// The header-read timeout and the grace period of the servers [`serve`](Self::serve)
    /// starts after this call, and the grace given to [`spawn`](Self::spawn)ed ones.
    pub fn options(mut self, options: ServeOptions) -> Self {
        self.options = options;
        self
    }

    /// Binds `addr` and serves `router` there (lookout-admin's [`serve`](crate::serve): a
    /// header-read timeout, a bounded drain) until the stop step. Returns the address bound (an
    /// address with port 0 gets a free port).
    pub async fn serve(
        &mut self,
        addr: SocketAddr,
        router: Router,
    ) -> Result<SocketAddr, AdminError> {
        let (listener, local) =
            crate::serve::bind(addr, |addr, source| AdminError::Listen { addr, source }).await?;
        self.servers.push(tokio::spawn(crate::serve(
            listener,
            router,
            self.stopping(),
            self.options,
        )));
        self.addrs.push(local);
        Ok(local)
    }

    /// Resolves at the stop step: give it to a server lookout does not start
    /// (`tonic::transport::Server::serve_with_shutdown`), then [`spawn`](Self::spawn) that server.
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static + use<> {
        let mut stop = self.stop.subscribe();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    }

    /// Runs a server lookout does not start; at the stop step it gets the grace period to end by
    /// itself (after [`stopping`](Self::stopping) resolved), then it is aborted.
    pub fn spawn(&mut self, server: impl Future<Output = ()> + Send + 'static) {
        self.spawned.push(tokio::spawn(server));
    }

    /// The addresses [`serve`](Self::serve) bound, in order.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Waits for [`shutdown_signal`], then drains, stops and flushes (see [`Lifecycle`]).
    /// Returns the telemetry shutdown's outcome.
    pub async fn run(self) -> Result<lookout::ShutdownReport, lookout::ShutdownError> {
        self.run_until(shutdown_signal()).await
    }

    /// [`run`](Self::run) with another trigger than the signals (a test, an admin action).
    pub async fn run_until(
        mut self,
        signal: impl Future<Output = ()>,
    ) -> Result<lookout::ShutdownReport, lookout::ShutdownError> {
        signal.await;
        tracing::info!(target: "lookout_admin", "shutdown requested: draining");

        // Drain: readiness out, background work finishing; the servers still serve.
        let drains: Vec<Drain> = self.drains.drain(..).map(|d| d.0).collect();
        #[cfg(feature = "health")]
        let drains = {
            let mut drains = drains;
            if let Some(health) = self.health.take() {
                drains.push(Box::pin(async move { health.shutdown().await }));
            }
            drains
        };
        join_all(drains).await;

        // Stop: every server stops accepting; requests in progress get the grace period.
        let _ = self.stop.send(true);
        let mut closed = 0;
        for server in self.servers.drain(..) {
            closed += server.await.map(|s| s.closed).unwrap_or_default();
        }
        let grace = self.options.grace;
        for server in self.spawned.drain(..) {
            let abort = server.abort_handle();
            if tokio::time::timeout(grace, server).await.is_err() {
                abort.abort();
                closed += 1;
            }
        }
        tracing::info!(
            target: "lookout_admin",
            closed,
            "servers stopped (connections still open after the grace period were closed)"
        );

        // Flush: the last requests' spans included.
        let outcome = self.telemetry.shutdown().await;
        if let Ok(report) = &outcome {
            tracing::info!(target: "lookout_admin", %report, "telemetry flushed");
        }
        outcome
    }
}

/// Awaits every future concurrently (on this task).
async fn join_all(futures: Vec<Drain>) {
    let mut set = tokio::task::JoinSet::new();
    for f in futures {
        set.spawn(f);
    }
    while set.join_next().await.is_some() {}
}
