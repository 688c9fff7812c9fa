//! The local view (`/view/` on the admin address) as a developer uses it: the example service as a
//! real process, Debian's Chromium driven headless through chromedriver (WebDriver, from
//! fantoccini), real HTTP traffic. Every check waits for what a person would see, without
//! reloading the page where the page is meant to update itself.
//!
//! Screenshots of every page are written to `target/tmp/view-screenshots/`; with
//! `LOOKOUT_UPDATE_SCREENSHOTS=1` they replace the ones in `docs/view/` (shown in the README).
//!
//! Needs `chromium` and `chromium-driver` (scripts/test installs them); `LOOKOUT_CHROMEDRIVER` and
//! `LOOKOUT_CHROMIUM` name other binaries.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use lookout_testing::free_port;
use serde_json::{Value, json};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Service {
    _child: Proc,
    api: String,
    admin: String,
}

fn start_service(extra: &[(&str, &str)]) -> Service {
    // The workspace builds reqwest with rustls and no crypto provider: install ring first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (api, admin) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_example-axum-service"));
    cmd.env("LISTEN_ADDR", format!("127.0.0.1:{api}"))
        .env("LOOKOUT_ADMIN_ADDR", format!("127.0.0.1:{admin}"))
        // No collector anywhere: the view is all there is.
        .env("OTEL_TRACES_EXPORTER", "none")
        .env("OTEL_METRICS_EXPORTER", "none")
        .env("OTEL_LOGS_EXPORTER", "none")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_BLRP_SCHEDULE_DELAY", "100")
        .env("LOOKOUT_VIEW_METRIC_INTERVAL", "500")
        .env("LOOKOUT_VIEW_JAEGER_URL", "http://127.0.0.1:16686")
        .env("SESSION_CLEANUP_INTERVAL", "1h")
        .env("SHUTDOWN_DRAIN", "0s")
        .env("LOOKOUT_CONSOLE", "off")
        .env_remove("LOOKOUT_VIEW_TOKEN")
        .env_remove("LOOKOUT_VIEW_REQUIRE_TOKEN");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start example-axum-service");
    let svc = Service {
        _child: Proc(child),
        api: format!("http://127.0.0.1:{api}"),
        admin: format!("http://127.0.0.1:{admin}"),
    };
    wait_port(api, "the example's API");
    wait_port(admin, "the example's admin address");
    svc
}

fn wait_port(port: u16, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn binary(var: &str, default: &str) -> String {
    let path = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: install Debian's chromium and chromium-driver (scripts/test does), or set {var}"
    );
    path
}

struct Browser {
    client: Client,
    _driver: Proc,
    _profile: tempfile::TempDir,
}

async fn browser() -> Browser {
    let driver = binary("LOOKOUT_CHROMEDRIVER", "/usr/bin/chromedriver");
    let chromium = binary("LOOKOUT_CHROMIUM", "/usr/bin/chromium");
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Proc(child);
    wait_port(port, "chromedriver");
    let profile = tempfile::tempdir().expect("a profile directory");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session through chromedriver");
    Browser {
        client,
        _driver: driver,
        _profile: profile,
    }
}

/// Runs `script` in the page until it returns something other than `null`/`false`.
async fn until(c: &Client, limit: Duration, what: &str, script: &str) -> Value {
    let start = Instant::now();
    loop {
        let v = c.execute(script, vec![]).await.unwrap_or(Value::Null);
        if !v.is_null() && v != Value::Bool(false) {
            return v;
        }
        if start.elapsed() > limit {
            let status = c
                .execute("const s = document.getElementById('live-status'); const l = document.getElementById('live'); return [s && s.textContent, l && l.textContent.slice(0, 400)];", vec![])
                .await
                .unwrap_or(Value::Null);
            panic!(
                "timed out waiting for {what} (page: {}, live status: {status})",
                c.current_url()
                    .await
                    .map(|u| u.to_string())
                    .unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("a screenshot");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("view-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    std::fs::write(dir.join(format!("{name}.png")), &png).expect("write the screenshot");
    if std::env::var("LOOKOUT_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/view");
        std::fs::create_dir_all(&docs).expect("docs/view");
        std::fs::write(docs.join(format!("{name}.png")), &png).expect("write docs/view");
    }
}

async fn traffic(http: &reqwest::Client, api: &str, n: usize) {
    for i in 0..n {
        let created: Value = http
            .post(format!("{api}/sessions"))
            .body(format!(r#"{{"user": "user-{i}"}}"#))
            .send()
            .await
            .expect("POST /sessions")
            .json()
            .await
            .expect("a JSON answer");
        let id = created["id"].as_str().expect("a session id");
        let got = http
            .get(format!("{api}/sessions/{id}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(got.status(), 200);
        let missing = http
            .get(format!("{api}/sessions/no-such-session"))
            .send()
            .await
            .expect("GET missing");
        assert_eq!(missing.status(), 404);
    }
}

/// A mark on the page's `window`: still there later means the page was not reloaded.
const MARK: &str = "window.__lookoutMark = 'not reloaded'; return true;";
const MARKED: &str = "return window.__lookoutMark === 'not reloaded';";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_view_shows_a_running_service_in_a_real_browser() {
    let svc = start_service(&[]);
    let http = reqwest::Client::new();
    traffic(&http, &svc.api, 3).await;
    let b = browser().await;
    let c = &b.client;
    let wait = Duration::from_secs(20);

    // Traces: the list, then one trace's waterfall with its nesting.
    c.goto(&format!("{}/view/traces", svc.admin))
        .await
        .expect("open the traces page");
    until(c, wait, "a POST /sessions trace in the list",
        "return [...document.querySelectorAll('table.traces a')].some(a => a.textContent === 'POST /sessions');").await;
    shot(c, "traces").await;
    c.execute(
        "[...document.querySelectorAll('table.traces a')].find(a => a.textContent === 'POST /sessions').click(); return true;",
        vec![],
    )
    .await
    .expect("click the trace");
    let spans = until(c, wait, "the waterfall",
        "const s = [...document.querySelectorAll('li.span')].map(li => ({name: li.dataset.spanName, id: li.dataset.spanId, parent: li.dataset.parentId, depth: +li.dataset.depth})); \
         return s.some(x => x.name === 'INSERT sessions') ? s : null;").await;
    let spans = spans.as_array().expect("spans");
    let find = |name: &str| {
        spans
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no span {name} in the waterfall: {spans:?}"))
    };
    let chain = [
        "POST /sessions",
        "create_session",
        "create",
        "INSERT sessions",
    ];
    for (depth, pair) in chain.windows(2).enumerate() {
        let (parent, child) = (find(pair[0]), find(pair[1]));
        assert_eq!(
            child["parent"], parent["id"],
            "{} is not under {}: {spans:?}",
            pair[1], pair[0]
        );
        assert_eq!(child["depth"], json!(depth + 1), "{spans:?}");
    }
    assert_eq!(find("POST /sessions")["depth"], json!(0));
    // Rows in tree order: each parent before its children.
    let order: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    let at = |n: &str| order.iter().position(|x| *x == n).expect("listed");
    assert!(
        at("POST /sessions") < at("create_session")
            && at("create_session") < at("create")
            && at("create") < at("INSERT sessions"),
        "{order:?}"
    );
    let jaeger = c
        .find(Locator::LinkText("open in Jaeger"))
        .await
        .expect("the Jaeger link")
        .attr("href")
        .await
        .expect("href")
        .expect("an href");
    assert!(
        jaeger.starts_with("http://127.0.0.1:16686/trace/"),
        "{jaeger}"
    );
    // Open a span: its attributes show.
    c.execute("document.querySelector('li.span[data-span-name=\"INSERT sessions\"] summary').click(); return true;", vec![]).await.expect("open a span");
    until(c, wait, "the span's attributes", "return [...document.querySelectorAll('li.span[data-span-name=\"INSERT sessions\"] table.attrs th')].some(th => th.textContent === 'db.system.name');").await;
    shot(c, "trace").await;
    c.set_window_size(390, 844)
        .await
        .expect("a phone-sized window");
    shot(c, "trace-phone").await;
    c.set_window_size(1280, 900)
        .await
        .expect("back to a laptop window");

    // Jobs: run now, and the new run appears without a reload.
    c.goto(&format!("{}/view/jobs", svc.admin))
        .await
        .expect("open the jobs page");
    let before = until(c, wait, "the session-cleanup job",
        "const j = document.querySelector('section[data-job=\"session-cleanup\"]'); return j ? j.querySelectorAll('tr[data-run]').length + 1 : null;").await;
    let before = before.as_u64().expect("a count") - 1;
    c.execute(MARK, vec![]).await.expect("mark the page");
    c.find(Locator::Css(
        "section[data-job=\"session-cleanup\"] .actions button",
    ))
    .await
    .expect("the run-now button")
    .click()
    .await
    .expect("press run now");
    until(c, wait, "the new manual run in the list",
        &format!("const rows = document.querySelectorAll('section[data-job=\"session-cleanup\"] tr[data-run]'); \
                  return rows.length > {before} && [...rows].some(r => r.children[1].textContent === 'manual');")).await;
    assert_eq!(
        c.execute(MARKED, vec![]).await.expect("read the mark"),
        json!(true),
        "the jobs page was reloaded"
    );
    shot(c, "jobs").await;

    // Logs: search a word, jump to the record's trace.
    c.goto(&format!("{}/view/logs", svc.admin))
        .await
        .expect("open the logs page");
    let q = c
        .find(Locator::Css("input[name=q]"))
        .await
        .expect("the search box");
    q.send_keys("finished").await.expect("type a word");
    c.find(Locator::Css("form.filters button"))
        .await
        .expect("search")
        .click()
        .await
        .expect("submit");
    until(c, wait, "a record with the word and a trace link",
        "const rows = [...document.querySelectorAll('table.logs tbody tr')]; \
         return rows.length > 0 && rows.every(r => r.textContent.includes('finished')) && !!document.querySelector('table.logs a.trace-link');").await;
    assert!(
        c.current_url()
            .await
            .expect("url")
            .as_str()
            .contains("q=finished")
    );
    shot(c, "logs").await;
    c.find(Locator::Css("table.logs a.trace-link"))
        .await
        .expect("the trace link")
        .click()
        .await
        .expect("follow it");
    until(
        c,
        wait,
        "the cleanup run's trace",
        "return !!document.querySelector('li.span[data-span-name=\"cleanup.run\"]');",
    )
    .await;

    // Metrics: the request rate chart moves while traffic flows, without a reload.
    c.goto(&format!("{}/view/metrics", svc.admin))
        .await
        .expect("open the metrics page");
    let line = "document.querySelector('section[data-red=\"POST /sessions\"] polyline[data-label=\"requests\"]')";
    let first = until(
        c,
        wait,
        "the POST /sessions rate chart",
        &format!("const l = {line}; return l ? l.getAttribute('points') : null;"),
    )
    .await;
    c.execute(MARK, vec![]).await.expect("mark the page");
    let (api, http2) = (svc.api.clone(), http.clone());
    let load = tokio::spawn(async move {
        let end = Instant::now() + Duration::from_secs(4);
        while Instant::now() < end {
            traffic(&http2, &api, 1).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    });
    until(
        c,
        wait,
        "the rate chart to move and show the traffic",
        &format!(
            "const l = {line}; if (!l || l.getAttribute('points') === {first}) return null; \
                  const fig = l.closest('section').querySelector('.figures').textContent; \
                  return parseFloat(fig) > 0;",
            first = first
        ),
    )
    .await;
    load.await.expect("the traffic");
    assert_eq!(
        c.execute(MARKED, vec![]).await.expect("read the mark"),
        json!(true),
        "the metrics page was reloaded"
    );
    shot(c, "metrics").await;

    // The other pages render what they are about.
    for (page, text) in [
        ("spans", "INSERT sessions"),
        ("health", "sqlite"),
        ("pipeline", "Values redacted before export"),
    ] {
        c.goto(&format!("{}/view/{page}", svc.admin))
            .await
            .expect("open a page");
        until(
            c,
            wait,
            &format!("{page} showing {text:?}"),
            &format!("return document.getElementById('main').textContent.includes({text:?});"),
        )
        .await;
        shot(c, page).await;
    }
    c.clone().close().await.expect("close the browser");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_required_when_asked_and_actions_refuse_other_origins() {
    let svc = start_service(&[
        ("LOOKOUT_VIEW_REQUIRE_TOKEN", "true"),
        ("LOOKOUT_VIEW_TOKEN", "s3cret-view-token"),
    ]);
    let b = browser().await;
    let c = &b.client;
    let wait = Duration::from_secs(20);
    let needs = "return document.querySelector('h1') && document.querySelector('h1').textContent;";
    c.goto(&format!("{}/view/traces", svc.admin))
        .await
        .expect("open");
    assert_eq!(
        until(c, wait, "the page", needs).await,
        json!("This view needs its token")
    );
    c.goto(&format!("{}/view/traces?token=wrong", svc.admin))
        .await
        .expect("open");
    assert_eq!(
        until(c, wait, "the page", needs).await,
        json!("This view needs its token")
    );
    c.goto(&format!(
        "{}/view/traces?token=s3cret-view-token",
        svc.admin
    ))
    .await
    .expect("open");
    assert_eq!(until(c, wait, "the page", needs).await, json!("Traces"));
    let url = c.current_url().await.expect("url");
    assert_eq!(
        url.query(),
        None,
        "the token stays out of the address bar: {url}"
    );
    // The cookie carries it to the other pages.
    c.goto(&format!("{}/view/jobs", svc.admin))
        .await
        .expect("open");
    assert_eq!(until(c, wait, "the page", needs).await, json!("Jobs"));
    c.clone().close().await.expect("close the browser");

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let run = format!("{}/view/jobs/session-cleanup/run", svc.admin);
    let no_token = http.post(&run).send().await.expect("post");
    assert_eq!(no_token.status(), 401);
    let cross = http
        .post(&run)
        .header("authorization", "Bearer s3cret-view-token")
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("post");
    assert_eq!(cross.status(), 403, "a cross-origin action must be refused");
    let ok = http
        .post(&run)
        .header("authorization", "Bearer s3cret-view-token")
        .send()
        .await
        .expect("post");
    assert!(ok.status().is_redirection(), "{}", ok.status());
}
