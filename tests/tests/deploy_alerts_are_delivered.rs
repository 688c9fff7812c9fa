//! deploy/: the shipped alert rules, evaluated by a real Prometheus scraping the axum example, fire
//! when the example is driven into failure, and the real Alertmanager with the shipped routing
//! delivers them: to the webhook receiver (every alert), PagerDuty (critical) and Slack (critical
//! and warning), grouped by alert name and service, with the inhibitions of the shipped file.
//!
//! The failures are real: `SESSIONS_DB_FAIL=true` makes every database statement of an instance
//! fail (5xx answers, failing measured functions, a failing cleanup job), and an instance is
//! killed. Only the clocks are shortened, by the named transformations `fast_clock` (scrape and
//! evaluate every second), `fast_alerts` (`for:` at most 5 s) and `loopback_receivers`
//! (group_wait 1 s; the PagerDuty and Slack endpoints on the test's webhook).

use std::thread;
use std::time::{Duration, Instant};

use lookout_e2e::stack::{
    Alertmanager, Delivery, Prometheus, Service, Targets, Webhook, http, poll, transform,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);

/// The alerts of a delivery: `(alertname, severity, service, status)`.
fn alerts(d: &Delivery) -> Vec<(String, String, String, String)> {
    let field = |a: &Value, k: &str| a["labels"][k].as_str().unwrap_or_default().to_owned();
    d.body["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                field(a, "alertname"),
                field(a, "severity"),
                field(a, "service"),
                a["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn delivered(
    webhook: &Webhook,
    path: &str,
    name: &str,
    severity: &str,
    service: &str,
) -> Option<Delivery> {
    webhook.received().into_iter().find(|d| {
        d.path == path
            && alerts(d).iter().any(|(n, s, svc, st)| {
                n == name && s == severity && svc == service && st == "firing"
            })
    })
}

#[test]
fn alerts_fire_and_are_delivered_grouped_and_inhibited() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let dir = dir.path();
    let webhook = Webhook::start();
    let alertmanager = Alertmanager::start(dir, &webhook);

    // `payments`: its database is down, its cleanup job runs every second.
    let payments = Service::start(
        dir,
        "payments",
        "example-axum-service",
        None,
        &[
            ("SESSIONS_DB_FAIL", "true"),
            ("SESSION_CLEANUP_INTERVAL", "1s"),
        ],
    );
    // A second instance of `payments`, killed during the test.
    let mut payments_2 = Service::start(
        dir,
        "payments-2",
        "example-axum-service",
        None,
        &[("SESSIONS_DB_FAIL", "true")],
    );
    // `sessions`: healthy throughout.
    let sessions = Service::start(dir, "sessions", "example-axum-service", None, &[]);
    let prometheus = Prometheus::start(
        dir,
        &Targets {
            services: vec![
                ("payments".into(), payments.admin),
                ("payments".into(), payments_2.admin),
                ("sessions".into(), sessions.admin),
            ],
            alertmanagers: vec![alertmanager.addr],
            ..Targets::default()
        },
        transform::fast_alerts,
    );

    // Traffic: every request to `payments` fails (500), every one to `sessions` succeeds.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        let targets = [payments.listen, sessions.listen];
        thread::spawn(move || {
            let client = http();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for t in targets {
                    let _ = client
                        .post(format!("http://{t}/sessions"))
                        .body(r#"{"user":"load"}"#)
                        .send();
                }
                thread::sleep(Duration::from_millis(50));
            }
        })
    };

    // The page: the fast burn of the HTTP error budget, to the webhook, PagerDuty and Slack.
    let firing_seen = poll(
        WAIT,
        "LookoutHTTPErrorBudgetBurn firing in Prometheus",
        || {
            prometheus
                .firing()
                .iter()
                .any(|a| {
                    a["labels"]["alertname"] == "LookoutHTTPErrorBudgetBurn"
                        && a["labels"]["severity"] == "critical"
                })
                .then(Instant::now)
        },
    );
    let page = poll(WAIT, "the page at the webhook", || {
        delivered(
            &webhook,
            "/webhook",
            "LookoutHTTPErrorBudgetBurn",
            "critical",
            "payments",
        )
    });
    eprintln!(
        "alert firing in Prometheus to delivered by Alertmanager: {} ms (group_wait 1 s)",
        page.at.saturating_duration_since(firing_seen).as_millis()
    );
    assert_eq!(page.body["receiver"], "webhook");
    assert_eq!(
        page.body["groupLabels"],
        serde_json::json!({"alertname": "LookoutHTTPErrorBudgetBurn", "service": "payments"}),
        "grouped by alert name and service"
    );
    let annotations = &page.body["alerts"][0]["annotations"];
    assert!(
        annotations["summary"]
            .as_str()
            .is_some_and(|s| s.contains("payments"))
    );
    assert!(
        annotations["runbook_url"]
            .as_str()
            .is_some_and(|u| u.ends_with("RUNBOOK.md#lookouthttperrorbudgetburn"))
    );
    // Both burn pages go to PagerDuty, in whichever order they fire: this one's.
    let pagerduty = poll(WAIT, "the HTTP burn page at PagerDuty", || {
        webhook.received().into_iter().find(|d| {
            d.path == "/pagerduty"
                && d.body["payload"]["summary"]
                    .as_str()
                    .is_some_and(|s| s.contains("LookoutHTTPErrorBudgetBurn"))
        })
    });
    assert_eq!(pagerduty.body["routing_key"], "test-routing-key");
    assert_eq!(pagerduty.body["event_action"], "trigger");
    assert!(
        pagerduty.body["payload"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("LookoutHTTPErrorBudgetBurn") && s.contains("payments")),
        "{}",
        pagerduty.body
    );
    poll(WAIT, "the page in Slack", || {
        webhook
            .received()
            .into_iter()
            .find(|d| d.path == "/slack" && d.body["channel"] == "#oncall")
    });

    // Every failing measured function of `payments` in one notification (one group).
    let functions = poll(
        WAIT,
        "LookoutFunctionErrorBudgetBurn with two functions",
        || {
            webhook.received().into_iter().find(|d| {
                d.path == "/webhook"
                    && d.body["groupLabels"]["alertname"] == "LookoutFunctionErrorBudgetBurn"
                    && d.body["groupLabels"]["service"] == "payments"
                    && d.body["alerts"].as_array().is_some_and(|a| {
                        let names: std::collections::BTreeSet<_> = a
                            .iter()
                            .filter(|x| x["labels"]["severity"] == "critical")
                            .filter_map(|x| x["labels"]["function"].as_str())
                            .collect();
                        names.contains("sessions.create")
                            && names.contains("sessions.delete_expired")
                    })
            })
        },
    );
    assert_eq!(functions.body["status"], "firing");

    // The failing cleanup job (a warning: Slack's #alerts and the webhook).
    poll(WAIT, "LookoutCleanupJobFailing at the webhook", || {
        delivered(
            &webhook,
            "/webhook",
            "LookoutCleanupJobFailing",
            "warning",
            "payments",
        )
    });
    poll(WAIT, "LookoutCleanupJobFailing in Slack #alerts", || {
        webhook
            .received()
            .into_iter()
            .find(|d| d.path == "/slack" && d.body["channel"] == "#alerts")
    });

    // Critical inhibits warning of the same alert and service: the slow-burn warning fires in
    // Prometheus (every window is all errors) but Alertmanager holds it back.
    let suppressed = poll(WAIT, "the burn warning suppressed in Alertmanager", || {
        alertmanager.alerts().into_iter().find(|a| {
            a["labels"]["alertname"] == "LookoutHTTPErrorBudgetBurn"
                && a["labels"]["severity"] == "warning"
                && a["status"]["state"] == "suppressed"
        })
    });
    assert!(
        suppressed["status"]["inhibitedBy"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{suppressed}"
    );
    assert!(
        delivered(
            &webhook,
            "/webhook",
            "LookoutHTTPErrorBudgetBurn",
            "warning",
            "payments"
        )
        .is_none(),
        "an inhibited alert was delivered"
    );

    // One instance of `payments` stops: the page says so, and while it lasts the service's other
    // alerts (the burn page, still firing through the other instance) are inhibited.
    let killed = Instant::now();
    payments_2.process.stop(Duration::from_millis(0));
    let down = poll(WAIT, "LookoutInstanceDown at the webhook", || {
        delivered(
            &webhook,
            "/webhook",
            "LookoutInstanceDown",
            "critical",
            "payments",
        )
    });
    eprintln!(
        "instance killed to LookoutInstanceDown delivered: {} ms (for: 5s, scrape 1 s)",
        down.at.saturating_duration_since(killed).as_millis()
    );
    assert_eq!(
        down.body["alerts"][0]["labels"]["instance"],
        payments_2.admin.to_string()
    );
    let inhibited = poll(WAIT, "the burn page inhibited by the instance down", || {
        alertmanager.alerts().into_iter().find(|a| {
            a["labels"]["alertname"] == "LookoutHTTPErrorBudgetBurn"
                && a["labels"]["severity"] == "critical"
                && a["labels"]["service"] == "payments"
                && a["status"]["state"] == "suppressed"
        })
    });
    let down_fingerprint = alertmanager
        .alerts()
        .into_iter()
        .find(|a| a["labels"]["alertname"] == "LookoutInstanceDown")
        .map(|a| a["fingerprint"].clone())
        .expect("the instance-down alert in Alertmanager");
    assert!(
        inhibited["status"]["inhibitedBy"]
            .as_array()
            .is_some_and(|a| a.contains(&down_fingerprint)),
        "{inhibited}"
    );

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = traffic.join();
    // Nothing about the healthy service was delivered.
    for d in webhook.received() {
        for (name, _, service, _) in alerts(&d) {
            assert_ne!(
                service, "sessions",
                "unexpected alert {name} for the healthy service"
            );
        }
    }
}
