//! The registry's rules: single flight, caching, timeouts, panics, groups, validation,
//! hysteresis, background mode, run-time registration and the shutdown lifecycle.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lookout_health::{Check, CheckResult, Health, Problem, Status, check_fn};
use tokio::sync::oneshot;

/// A check that counts its runs, takes `delay`, and reports `status`.
fn counting(name: &str, runs: &Arc<AtomicUsize>, delay: Duration, status: Status) -> Check {
    let runs = runs.clone();
    Check::new(
        name,
        check_fn(move || {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                status
            }
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_during_a_slow_check_cause_one_run() {
    let runs = Arc::new(AtomicUsize::new(0));
    let health = Health::builder()
        .check(counting(
            "slow",
            &runs,
            Duration::from_millis(200),
            Status::Up,
        ))
        .build()
        .expect("valid");
    let requests = (0..1000).map(|_| {
        let h = health.clone();
        tokio::spawn(async move { h.report("readiness").await.map(|r| r.status()) })
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| matches!(s, Ok(Some(Status::Up)))));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // Within the TTL (1 s default) the cached result answers.
    health.report("readiness").await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_expired_ttl_runs_again_and_zero_ttl_runs_every_time() {
    let runs = Arc::new(AtomicUsize::new(0));
    let health = Health::builder()
        .check(counting("c", &runs, Duration::ZERO, Status::Up).ttl(Duration::ZERO))
        .build()
        .expect("valid");
    for _ in 0..3 {
        health.report("").await;
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

/// Tells when it is dropped: proof that a check's future was cancelled.
struct DropSignal(Option<oneshot::Sender<()>>);
impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test]
async fn a_check_that_never_finishes_times_out_and_its_future_is_dropped() {
    let (tx, rx) = oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let health = Health::builder()
        .check(
            Check::new(
                "forever",
                check_fn(move || {
                    let guard = DropSignal(tx.lock().expect("lock").take());
                    async move {
                        let _guard = guard;
                        std::future::pending::<Status>().await
                    }
                }),
            )
            .timeout(Duration::from_millis(100)),
        )
        .build()
        .expect("valid");
    let report = health.report("readiness").await.expect("group");
    assert_eq!(report.status(), Status::Down);
    let result = report.check("forever").expect("check").result();
    assert_eq!(result.error_type(), Some("timeout"));
    assert!(
        result.message().is_some_and(|m| m.contains("100 ms")),
        "{result:?}"
    );
    tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("the timed-out check's future was dropped")
        .expect("signal sent");
}

#[tokio::test]
async fn a_panicking_check_is_down_with_its_cause_and_the_next_run_works() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let health = Health::builder()
        .check(
            Check::new(
                "flaky",
                check_fn(move || {
                    let n = c.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n == 0 {
                            panic!("connection pool poisoned");
                        }
                        Status::Up
                    }
                }),
            )
            .ttl(Duration::ZERO),
        )
        .build()
        .expect("valid");
    let first = health.report("readiness").await.expect("group");
    assert_eq!(first.status(), Status::Down);
    let r = first.check("flaky").expect("check").result();
    assert_eq!(r.error_type(), Some("panic"));
    assert!(
        r.message()
            .is_some_and(|m| m.contains("connection pool poisoned")),
        "{r:?}"
    );
    let second = health.report("readiness").await.expect("group");
    assert_eq!(second.status(), Status::Up);
}

#[tokio::test]
async fn checks_of_a_group_run_concurrently() {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut builder = Health::builder();
    for i in 0..10 {
        builder = builder.check(counting(
            &format!("c{i}"),
            &runs,
            Duration::from_millis(300),
            Status::Up,
        ));
    }
    let health = builder.build().expect("valid");
    // Ten 300 ms checks, each with an 800 ms timeout: run one after another, most would time out.
    let report = health.report("readiness").await.expect("group");
    assert_eq!(report.status(), Status::Up, "{report:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 10);
}

#[test]
fn build_errors_list_every_problem_at_once() {
    let ok = || check_fn(|| async { Status::Up });
    let err = Health::builder()
        .group("db")
        .group("readiness")
        .group("Bad Name")
        .check(Check::new("a", ok()))
        .check(Check::new("a", ok()))
        .check(Check::new("pg", ok()).external().groups(["liveness"]))
        .check(Check::new("x", ok()).groups(["nope"]))
        .check(
            Check::new("t", ok())
                .timeout(Duration::ZERO)
                .failures_before_down(0),
        )
        .build()
        .expect_err("invalid");
    let p = err.problems();
    assert!(p.contains(&Problem::DuplicateGroup("readiness".into())));
    assert!(p.contains(&Problem::InvalidGroupName("Bad Name".into())));
    assert!(p.contains(&Problem::DuplicateCheck("a".into())));
    assert!(p.contains(&Problem::ExternalInLiveness("pg".into())));
    assert!(
        p.iter()
            .any(|p| matches!(p, Problem::UnknownGroup { group, known, .. }
        if group == "nope" && known.contains(&"db".to_owned())))
    );
    assert_eq!(
        p.iter()
            .filter(|p| matches!(p, Problem::InvalidSetting { check, .. } if check == "t"))
            .count(),
        2
    );
    let text = err.to_string();
    assert!(text.contains("cannot be in the liveness group"), "{text}");
    assert!(
        text.contains("declare it with HealthBuilder::group"),
        "{text}"
    );
}

#[tokio::test]
async fn groups_optional_checks_and_liveness_ignoring_unknown() {
    let health = Health::builder()
        .group("payments")
        .check(
            Check::new("core", check_fn(|| async { Status::Up })).groups(["liveness", "readiness"]),
        )
        .check(
            Check::new(
                "recommendations",
                check_fn(|| async { CheckResult::down("503") }),
            )
            .external()
            .optional(),
        )
        .check(
            Check::new("psp", check_fn(|| async { Status::Down }))
                .external()
                .groups(["payments"]),
        )
        .check(
            Check::new("warming", check_fn(|| async { Status::Up }))
                .groups(["liveness", "startup"])
                .background(Duration::from_secs(3600))
                .initial_delay(Duration::from_secs(3600)),
        )
        .build()
        .expect("valid");
    let ready = health.report("readiness").await.expect("readiness");
    assert_eq!(
        ready.status(),
        Status::Degraded,
        "optional failure degrades"
    );
    assert_eq!(
        ready.check("recommendations").map(|c| c.status()),
        Some(Status::Down)
    );
    let live = health.report("liveness").await.expect("liveness");
    assert_eq!(
        live.status(),
        Status::Up,
        "no result yet is ignored by liveness"
    );
    assert_eq!(live.check("warming").map(|c| c.counted()), Some(false));
    let startup = health.report("startup").await.expect("startup");
    assert_eq!(
        startup.status(),
        Status::Unknown,
        "not started until a result"
    );
    assert_eq!(
        health.report("payments").await.map(|r| r.status()),
        Some(Status::Down)
    );
    assert!(health.report("nope").await.is_none());
    assert_eq!(
        health.report("").await.map(|r| r.status()),
        Some(Status::Down)
    );
}

#[tokio::test]
async fn a_flapping_check_respects_hysteresis() {
    // The check reports the statuses of a script, one per run.
    let script = [
        Status::Up,
        Status::Down,
        Status::Up,
        Status::Down,
        Status::Down,
        Status::Down,
        Status::Up,
        Status::Down,
        Status::Up,
        Status::Up,
    ];
    let step = Arc::new(AtomicUsize::new(0));
    let s = step.clone();
    let health = Health::builder()
        .check(
            Check::new(
                "flappy",
                check_fn(move || {
                    let i = s.fetch_add(1, Ordering::SeqCst);
                    async move { script[i] }
                }),
            )
            .ttl(Duration::ZERO)
            .failures_before_down(3)
            .successes_before_up(2),
        )
        .build()
        .expect("valid");
    let mut seen = Vec::new();
    for _ in 0..script.len() {
        seen.push(health.report("readiness").await.expect("group").status());
    }
    use Status::*;
    assert_eq!(seen, [Up, Up, Up, Up, Up, Down, Down, Down, Down, Up]);
}

#[tokio::test]
async fn a_startup_grace_period_reports_unknown_instead_of_down() {
    let health = Health::builder()
        .check(
            Check::new(
                "migrations",
                check_fn(|| async { CheckResult::down("running") }),
            )
            .ttl(Duration::ZERO)
            .startup_grace(Duration::from_secs(3600)),
        )
        .build()
        .expect("valid");
    let r = health.report("readiness").await.expect("group");
    assert_eq!(r.status(), Status::Unknown);
    let c = r.check("migrations").expect("check").result();
    assert_eq!(
        c.details().get("observedStatus").and_then(|v| v.as_str()),
        Some("DOWN")
    );
}

#[tokio::test]
async fn background_checks_run_on_their_own_and_requests_only_read() {
    let runs = Arc::new(AtomicUsize::new(0));
    let health = Health::builder()
        .check(
            counting("bg", &runs, Duration::ZERO, Status::Up)
                .background(Duration::from_millis(50))
                .jitter(Duration::from_millis(10)),
        )
        .build()
        .expect("valid");
    let mut changes = 0;
    while runs.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        changes += 1;
        assert!(changes < 500, "background runs happen");
    }
    let before = runs.load(Ordering::SeqCst);
    let reports = futures_util::future::join_all((0..100).map(|_| health.report(""))).await;
    assert!(
        reports
            .iter()
            .all(|r| r.as_ref().map(|r| r.status()) == Some(Status::Up))
    );
    assert!(
        runs.load(Ordering::SeqCst) <= before + 1,
        "requests do not run it"
    );
    assert!(health.remove("bg"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_remove = runs.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        after_remove,
        "removal stops it"
    );
}

#[test]
fn background_checks_need_a_runtime_and_say_so() {
    let err = Health::builder()
        .check(
            Check::new("bg", check_fn(|| async { Status::Up })).background(Duration::from_secs(1)),
        )
        .build()
        .expect_err("no runtime");
    assert!(err.to_string().contains("no Tokio runtime"), "{err}");
}

#[tokio::test]
async fn checks_are_registered_and_removed_at_run_time() {
    let health = Health::builder().build().expect("valid");
    assert_eq!(
        health.report("readiness").await.map(|r| r.status()),
        Some(Status::Up)
    );
    health
        .register(Check::new("db", check_fn(|| async { Status::Down })).external())
        .expect("register");
    assert_eq!(
        health.report("readiness").await.map(|r| r.status()),
        Some(Status::Down)
    );
    let dup = health.register(Check::new("db", check_fn(|| async { Status::Up })));
    assert_eq!(
        dup.expect_err("duplicate").problems(),
        [Problem::DuplicateCheck("db".into())]
    );
    let live = health.register(
        Check::new("pg", check_fn(|| async { Status::Up }))
            .external()
            .groups(["liveness"]),
    );
    assert!(
        live.is_err(),
        "liveness refuses external checks at run time too"
    );
    assert!(health.remove("db"));
    assert!(!health.remove("db"));
    assert_eq!(health.check_names(), Vec::<String>::new());
}

#[tokio::test]
async fn shutdown_turns_readiness_out_of_service_and_keeps_liveness_up() {
    let health = Health::builder()
        .check(
            Check::new("core", check_fn(|| async { Status::Up })).groups(["liveness", "readiness"]),
        )
        .drain_delay(Duration::from_millis(50))
        .build()
        .expect("valid");
    assert_eq!(
        health.report("readiness").await.map(|r| r.status()),
        Some(Status::Up)
    );
    health.shutdown().await;
    assert!(health.is_shutting_down());
    assert_eq!(
        health.report("readiness").await.map(|r| r.status()),
        Some(Status::OutOfService)
    );
    assert_eq!(
        health.report("").await.map(|r| r.status()),
        Some(Status::OutOfService)
    );
    assert_eq!(
        health.report("liveness").await.map(|r| r.status()),
        Some(Status::Up)
    );
}
