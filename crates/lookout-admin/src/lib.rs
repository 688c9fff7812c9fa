//! The admin endpoints of a lookout service, as one axum [`Router`] to merge into an app or a
//! server started with one call on its own address (`LOOKOUT_ADMIN_ADDR`, default
//! `127.0.0.1:9464`, loopback only unless configured):
//!
//! | route | what |
//! |---|---|
//! | `GET /metrics` | every OpenTelemetry metric as Prometheus text (0.0.4), or OpenMetrics 1.0 when the `Accept` header prefers it, with exemplars (trace and span id of a sampled measurement) on the buckets of `http.server.request.duration` and `function.duration`; gzip when accepted |
//! | `GET /monitoring/metrics` | statistics of every `#[measured]` function and [`lookout::timer`] |
//! | `GET /monitoring/operation?name=` | one of them (404 with the known names when absent) |
//! | `GET /monitoring/system` | uptime, totals, error rate, latency, process and runtime figures, export pipeline, metric series and the instruments that reached their cardinality limit (`lookout::metrics::overflowing`) |
//! | `GET /monitoring/live`, `/monitoring/ready`, `/monitoring/health` | liveness, readiness and overall health (from `lookout-health` when given one) |
//! | `GET /health`, `/health/{live,ready,startup,group}` | `lookout-health`'s routes, when given one |
//! | `GET /view/` | the local view (feature `view`, on by default): recent traces and their waterfalls, the span summary, logs, metric charts, health, cleanup jobs (run now / pause / resume) and the export pipeline, live; open on loopback, with a token beyond (see [`AdminBuilder::view_token`]) |
//! | `POST /monitoring/reset` | only when a reset token is set, and then only with `Authorization: Bearer <token>` (401 without, 405 for other methods) |
//!
//! Tokens are checked by [`bearer_matches`] (the scheme in any case, the token compared in
//! constant time); use it for your own admin actions and health-detail authorisers too.
//!
//! Everything is read from the OpenTelemetry SDK's own aggregation (a collect on the pull reader
//! of [`lookout::metrics::Metrics`]); nothing is counted twice.
//!
//! **What reset clears**: the operation statistics of `/monitoring/metrics`,
//! `/monitoring/operation` and the totals of `/monitoring/system` count from the reset on (their
//! minimum and maximum are then estimated from histogram buckets). `/metrics` is never reset:
//! Prometheus counters only go up, and OTLP export is unaffected. The reset is logged.
//!
//! **Stopping on time.** The admin server, and any router served with [`serve`] (the examples
//! serve their APIs with it), reads a request head for at most 10 s and, once asked to stop, gives
//! requests in progress 5 s ([`ServeOptions`]) before it closes what is still open: idle
//! keep-alive connections or a client that never finishes its request cannot hold the shutdown,
//! so the telemetry flush after it always runs. `axum::serve` has neither limit.
//!
//! **The local view** (`/view/`, feature `view`): what the running process is doing, in the
//! browser, from [`lookout::view`]'s stores (traces with their waterfalls, the span summary,
//! logs, metric charts, health checks with their state changes, the cleanup jobs given with
//! [`AdminBuilder::job`] with run now / pause / resume, the export pipeline), updated live with
//! server-sent events, plain HTML without JavaScript, CSS and script compiled in. On a loopback
//! address it is open to requests naming a loopback host (`localhost`, `127.0.0.1`, `[::1]`; other
//! names are refused, against DNS rebinding). Beyond loopback, or when served by anything other
//! than [`serve`] / [`Lifecycle`] / [`Admin::serve`] (which record the address), it asks for its
//! token: `LOOKOUT_VIEW_TOKEN` ([`AdminBuilder::view_token`]), or one made at random and printed
//! on standard error (never into the exported logs) when a server starts beyond loopback; given
//! once as `?token=` it is kept in an `HttpOnly`, `SameSite=Strict` cookie, or sent as
//! `Authorization: Bearer`. `LOOKOUT_VIEW_REQUIRE_TOKEN=true` asks for it on loopback too.
//! Actions are `POST`s refused from other origins. `LOOKOUT_VIEW_JAEGER_URL`
//! ([`AdminBuilder::jaeger_url`]) links each trace to Jaeger's page for it.
//!
//! **The whole lifecycle.** [`Lifecycle`] serves a service's routers (the API, these routes) and,
//! on SIGINT/SIGTERM ([`shutdown_signal`]), stops in the order that loses nothing: readiness out
//! for the health registry's drain delay (with any [`on_drain`](Lifecycle::on_drain) work), the
//! servers stopped within their grace period, the telemetry flushed last. See the module doc of
//! [`Lifecycle`] and examples/axum-service.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let _telemetry = lookout::Telemetry::builder().process_metrics().init()?;
//! let admin = lookout_admin::Admin::builder().build()?.serve_default().await?;
//! println!("admin on http://{}", admin.local_addr());
//! // ... run the service ...
//! admin.shutdown().await;
//! # Ok(()) }
//! ```

mod auth;
mod lifecycle;
pub mod prometheus;
mod routes;
mod serve;
#[cfg(feature = "view")]
mod view;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use axum::Router;
use lookout::metrics::{Baseline, Metrics};
use tokio::sync::watch;

pub use auth::{bearer_matches, bearer_token};
pub use lifecycle::{Lifecycle, shutdown_signal};
pub use prometheus::Format;
pub use serve::{ServeOptions, Stopped, serve};

/// The admin endpoints could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The reset token is empty.
    #[error(
        "the reset token is empty: give a non-empty secret, or leave reset off by not setting one"
    )]
    EmptyToken,
    /// The local view's token is empty.
    #[error(
        "the local view's token (LOOKOUT_VIEW_TOKEN or AdminBuilder::view_token) is empty: give a non-empty secret, or unset it to have one made at random"
    )]
    EmptyViewToken,
    /// `LOOKOUT_ADMIN_ADDR` is not an address.
    #[error(transparent)]
    Addr(#[from] lookout::AdminAddrError),
    /// A server's address could not be bound ([`Lifecycle::serve`]).
    #[error(
        "cannot listen on {addr}: {source}; is another process listening there? choose a free address (port 0 picks one)"
    )]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The address could not be bound.
    #[error(
        "cannot listen on {addr} for the admin endpoints: {source}; set LOOKOUT_ADMIN_ADDR to a free address"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The admin endpoints. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Admin {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    metrics: Option<Metrics>,
    /// lookout-health's routes, built once: merged into the router and answering
    /// `/monitoring/live|ready|health`.
    #[cfg(feature = "health")]
    health: Option<Router>,
    reset_token: Option<String>,
    baseline: Mutex<Option<(SystemTime, Baseline)>>,
    started: Instant,
    /// The registry itself, for the local view's health page.
    #[cfg(feature = "health")]
    health_registry: Option<lookout_health::Health>,
    #[cfg(feature = "view")]
    view: Option<lookout::view::View>,
    #[cfg(feature = "view")]
    view_token: String,
    /// The token is asked for on loopback too.
    #[cfg(feature = "view")]
    view_token_always: bool,
    #[cfg(feature = "view")]
    jaeger_url: Option<String>,
    #[cfg(feature = "cleanup")]
    jobs: Vec<lookout_cleanup::Job>,
}

/// Configures [`Admin`].
#[derive(Debug, Default)]
#[must_use = "call .build()"]
pub struct AdminBuilder {
    metrics: Option<Metrics>,
    #[cfg(feature = "health")]
    health: Option<(lookout_health::Health, lookout_health::http::HttpOptions)>,
    reset_token: Option<String>,
    #[cfg(feature = "view")]
    view: Option<lookout::view::View>,
    #[cfg(feature = "view")]
    view_token: Option<String>,
    #[cfg(feature = "view")]
    view_token_always: Option<bool>,
    #[cfg(feature = "view")]
    jaeger_url: Option<String>,
    #[cfg(feature = "cleanup")]
    jobs: Vec<lookout_cleanup::Job>,
}

impl AdminBuilder {
    /// Shows this local view under `/view/` instead of the one `lookout::init` started
    /// ([`lookout::view::global`]).
    #[cfg(feature = "view")]
    pub fn view(mut self, view: lookout::view::View) -> Self {
        self.view = Some(view);
        self
    }

    /// The token the local view asks for when it is reached beyond loopback (instead of
    /// `LOOKOUT_VIEW_TOKEN`, or one made at random and printed on standard error).
    #[cfg(feature = "view")]
    pub fn view_token(mut self, token: impl Into<String>) -> Self {
        self.view_token = Some(token.into());
        self
    }

    /// Asks for the view's token on loopback too (instead of `LOOKOUT_VIEW_REQUIRE_TOKEN=true`):
    /// for machines shared with other users, whose processes reach loopback as well.
    #[cfg(feature = "view")]
    pub fn view_token_always(mut self, always: bool) -> Self {
        self.view_token_always = Some(always);
        self
    }

    /// Links every trace of the local view to the same trace in this Jaeger UI
    /// (`http://localhost:16686`; instead of `LOOKOUT_VIEW_JAEGER_URL`).
    #[cfg(feature = "view")]
    pub fn jaeger_url(mut self, url: impl Into<String>) -> Self {
        self.jaeger_url = Some(url.into());
        self
    }

    /// Shows this cleanup job on the local view's jobs page, with run now, pause and resume.
    #[cfg(feature = "cleanup")]
    pub fn job(mut self, job: lookout_cleanup::Job) -> Self {
        self.jobs.push(job);
        self
    }

    /// Reads these metrics instead of the global ones that `lookout::init` installed.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Serves `health`'s routes and answers `/monitoring/live|ready|health` from it.
    #[cfg(feature = "health")]
    pub fn health(self, health: lookout_health::Health) -> Self {
        self.health_with(health, lookout_health::http::HttpOptions::default())
    }

    /// Like [`health`](Self::health), with the health routes' options (details, status codes).
    #[cfg(feature = "health")]
    pub fn health_with(
        mut self,
        health: lookout_health::Health,
        options: lookout_health::http::HttpOptions,
    ) -> Self {
        self.health = Some((health, options));
        self
    }

    /// Turns on `POST /monitoring/reset`, allowed only with `Authorization: Bearer <token>`.
    pub fn reset_token(mut self, token: impl Into<String>) -> Self {
        self.reset_token = Some(token.into());
        self
    }

    /// The endpoints.
    pub fn build(self) -> Result<Admin, AdminError> {
        if self
            .reset_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(AdminError::EmptyToken);
        }
        #[cfg(feature = "view")]
        let view_token = self
            .view_token
            .or_else(|| std::env::var("LOOKOUT_VIEW_TOKEN").ok())
            .map(|t| t.trim().to_owned());
        #[cfg(feature = "view")]
        if view_token.as_deref().is_some_and(str::is_empty) {
            return Err(AdminError::EmptyViewToken);
        }
        #[cfg(feature = "view")]
        let view_token = view::token(view_token);
        #[cfg(feature = "view")]
        let view_token_always = self.view_token_always.unwrap_or_else(|| {
            std::env::var("LOOKOUT_VIEW_REQUIRE_TOKEN")
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
        });
        #[cfg(feature = "view")]
        let jaeger_url = self
            .jaeger_url
            .or_else(|| std::env::var("LOOKOUT_VIEW_JAEGER_URL").ok())
            .filter(|u| !u.trim().is_empty());
        Ok(Admin {
            inner: Arc::new(Inner {
                metrics: self.metrics,
                #[cfg(feature = "health")]
                health_registry: self.health.as_ref().map(|(h, _)| h.clone()),
                #[cfg(feature = "health")]
                health: self.health.map(|(h, options)| h.router_with(options)),
                #[cfg(feature = "view")]
                view: self.view,
                #[cfg(feature = "view")]
                view_token,
                #[cfg(feature = "view")]
                view_token_always,
                #[cfg(feature = "view")]
                jaeger_url,
                #[cfg(feature = "cleanup")]
                jobs: self.jobs,
                reset_token: self.reset_token,
                baseline: Mutex::new(None),
                started: Instant::now(),
            }),
        })
    }
}

impl Admin {
    /// A builder.
    pub fn builder() -> AdminBuilder {
        AdminBuilder::default()
    }

    /// The routes, to merge into an application's router or serve alone.
    pub fn router(&self) -> Router {
        routes::router(self.clone())
    }

    #[cfg(feature = "view")]
    fn view(&self) -> Option<lookout::view::View> {
        self.inner.view.clone().or_else(lookout::view::global)
    }

    #[cfg(feature = "view")]
    fn view_token(&self) -> &str {
        &self.inner.view_token
    }

    #[cfg(feature = "view")]
    fn view_token_always(&self) -> bool {
        self.inner.view_token_always
    }

    #[cfg(feature = "view")]
    fn jaeger_url(&self) -> Option<&str> {
        self.inner.jaeger_url.as_deref()
    }

    #[cfg(feature = "health")]
    #[cfg_attr(not(feature = "view"), allow(dead_code))]
    fn health_registry(&self) -> Option<&lookout_health::Health> {
        self.inner.health_registry.as_ref()
    }

    #[cfg(feature = "cleanup")]
    #[cfg_attr(not(feature = "view"), allow(dead_code))]
    fn jobs(&self) -> Vec<lookout_cleanup::Job> {
        self.inner.jobs.clone()
    }

    fn metrics(&self) -> Option<Metrics> {
        self.inner.metrics.clone().or_else(lookout::metrics::global)
    }

    /// Serves the routes on `addr` from a task of the current tokio runtime.
    pub async fn serve(self, addr: SocketAddr) -> Result<AdminServer, AdminError> {
        let (listener, local) =
            serve::bind(addr, |addr, source| AdminError::Bind { addr, source }).await?;
        let (stop, mut stopped) = watch::channel(false);
        let app = self.router();
        // Bounded: a slow or idle client never holds the service's shutdown (see `serve`).
        let task = tokio::spawn(serve::serve(
            listener,
            app,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
            ServeOptions::default(),
        ));
        Ok(AdminServer {
            addr: local,
            stop,
            task: tokio::sync::Mutex::new(Task::Running(task)),
        })
    }

    /// Serves the routes on `LOOKOUT_ADMIN_ADDR` (default `127.0.0.1:9464`).
    pub async fn serve_default(self) -> Result<AdminServer, AdminError> {
        let addr = lookout::admin_addr()?;
        self.serve(addr).await
    }
}

/// A running admin server. Dropping it stops the server at once: keep it, and call
/// [`shutdown`](Self::shutdown) to drain.
#[derive(Debug)]
#[must_use = "dropping an AdminServer stops it at once; keep it and call .shutdown()"]
pub struct AdminServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::sync::Mutex<Task>,
}

#[derive(Debug)]
enum Task {
    Running(tokio::task::JoinHandle<Stopped>),
    Done(Stopped),
}

impl AdminServer {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets the requests in progress finish for up to 5 s, closes what is still
    /// open, and returns what it did. Idle or slow clients cannot hold it longer. Safe to call
    /// more than once, and from several tasks: later calls return the first outcome.
    pub async fn shutdown(&self) -> Stopped {
        let _ = self.stop.send(true);
        let mut task = self.task.lock().await;
        let stopped = match &mut *task {
            Task::Running(handle) => handle.await.unwrap_or_default(),
            Task::Done(stopped) => return *stopped,
        };
        *task = Task::Done(stopped);
        stopped
    }
}
