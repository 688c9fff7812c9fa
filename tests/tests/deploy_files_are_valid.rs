//! deploy/: every file is valid for the program that reads it. YAML and JSON parse; Prometheus's
//! config and rules pass `promtool check` and the rule unit tests (`promtool test rules`: every
//! alert fires and stays quiet); Alertmanager's config passes `amtool check-config`; the collector
//! configs pass our collector's `validate`, Jaeger's its own; the compose file mounts only files
//! that exist and pins every image; the Kubernetes manifests validate against the Kubernetes
//! OpenAPI schemas (`kubernetes-validate`); every alert has a severity, a summary, a description
//! and a runbook section; the dashboards have unique uids and only known data sources.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use lookout_e2e::stack::{deploy, on_path, tool, workspace};
use yaml_rust2::{Yaml, YamlLoader};

/// Every file under `dir` (recursively) whose name ends with one of `exts`.
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read a deploy dir") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if exts.iter().any(|e| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(e))
            }) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn yaml(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).expect("read a YAML file");
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs a checker; panics with its output unless it succeeds.
fn check(mut command: Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command:?} failed:\n{text}");
    text
}

#[test]
fn every_yaml_and_json_file_parses() {
    let yamls = files(&deploy(""), &[".yaml", ".yml"]);
    assert!(yamls.len() >= 12, "{yamls:?}");
    for path in &yamls {
        assert!(!yaml(path).is_empty(), "{} is empty", path.display());
    }
    for path in files(&deploy(""), &[".json"]) {
        let text = std::fs::read_to_string(&path).expect("read");
        serde_json::from_str::<serde_json::Value>(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn prometheus_config_and_rules_pass_promtool() {
    let promtool = on_path("promtool");
    let mut config = Command::new(&promtool);
    config
        .args(["check", "config"])
        .arg(deploy("prometheus/prometheus.yml"));
    let out = check(config);
    assert!(out.contains("SUCCESS"), "{out}");
    let mut rules = Command::new(&promtool);
    rules
        .args(["check", "rules"])
        .args(files(&deploy("prometheus/rules"), &[".yml"]));
    check(rules);
    let mut unit = Command::new(&promtool);
    unit.args(["test", "rules"])
        .args(files(&deploy("prometheus/tests"), &[".yml"]));
    let out = check(unit);
    assert!(out.contains("SUCCESS"), "{out}");

    // Every alert of the rule files has a test case in the unit tests.
    let tested = std::fs::read_to_string(deploy("prometheus/tests/alerts_test.yml")).expect("read");
    for alert in alert_rules() {
        let name = alert["alert"].as_str().expect("an alert name");
        assert!(
            tested.contains(&format!("alertname: {name}")),
            "{name} has no promtool test case"
        );
    }
}

fn alert_rules() -> Vec<Yaml> {
    let mut out = Vec::new();
    for path in files(&deploy("prometheus/rules"), &[".yml"]) {
        for doc in yaml(&path) {
            for group in doc["groups"].as_vec().into_iter().flatten() {
                for rule in group["rules"].as_vec().into_iter().flatten() {
                    if rule["alert"].as_str().is_some() {
                        out.push(rule.clone());
                    }
                }
            }
        }
    }
    out
}

/// GitHub's anchor of a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_alert_has_severity_summary_description_and_a_runbook_section() {
    let runbook = std::fs::read_to_string(deploy("RUNBOOK.md")).expect("deploy/RUNBOOK.md");
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(anchor)
        .collect();
    let alerts = alert_rules();
    assert!(alerts.len() >= 15, "{} alerts", alerts.len());
    for rule in alerts {
        let name = rule["alert"].as_str().unwrap_or_default();
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        for key in ["summary", "description"] {
            assert!(
                rule["annotations"][key]
                    .as_str()
                    .is_some_and(|s| s.len() > 10),
                "{name}: no {key}"
            );
        }
        let url = rule["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_default();
        let (_, fragment) = url
            .split_once("RUNBOOK.md#")
            .unwrap_or_else(|| panic!("{name}: runbook_url {url:?} is not into RUNBOOK.md"));
        assert!(
            anchors.contains(fragment),
            "{name}: RUNBOOK.md has no section #{fragment}"
        );
        assert_eq!(fragment, name.to_lowercase(), "{name}: its own section");
    }
}

#[test]
fn alertmanager_config_passes_amtool() {
    let mut command = Command::new(tool("amtool"));
    command
        .arg("check-config")
        .arg(deploy("alertmanager/alertmanager.yml"));
    let out = check(command);
    assert!(out.contains("SUCCESS"), "{out}");
    // Every receiver a route names exists, and every receiver is used.
    let config = &yaml(&deploy("alertmanager/alertmanager.yml"))[0];
    let receivers: BTreeSet<&str> = config["receivers"]
        .as_vec()
        .expect("receivers")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    let mut routed = BTreeSet::from([config["route"]["receiver"]
        .as_str()
        .expect("a root receiver")]);
    for route in config["route"]["routes"].as_vec().into_iter().flatten() {
        routed.insert(route["receiver"].as_str().expect("a route's receiver"));
    }
    assert_eq!(receivers, routed);
}

#[test]
fn collector_and_jaeger_configs_validate() {
    for config in ["config.yaml", "agent.yaml", "gateway.yaml"] {
        let mut command = Command::new(tool("otelcol"));
        command.arg("validate").arg(format!(
            "--config={}",
            deploy(&format!("otel-collector/{config}")).display()
        ));
        check(command);
    }
    let mut command = Command::new(tool("jaeger"));
    command.arg("validate").arg(format!(
        "--config={}",
        deploy("jaeger/config.yaml").display()
    ));
    check(command);
    // A config that is wrong is refused: the check can fail.
    let dir = tempfile::tempdir().expect("a temp dir");
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(deploy("otel-collector/config.yaml")).expect("read");
    std::fs::write(&bad, text.replace("memory_limiter:", "memory_limitr:")).expect("write");
    let status = Command::new(tool("otelcol"))
        .arg("validate")
        .arg(format!("--config={}", bad.display()))
        .output()
        .expect("run validate");
    assert!(!status.status.success(), "a misspelt processor validated");
}

#[test]
fn compose_mounts_existing_files_and_pins_images() {
    let compose = &yaml(&deploy("docker-compose.yml"))[0];
    let services = compose["services"].as_hash().expect("services");
    assert!(services.len() >= 8, "{} services", services.len());
    let mut names = BTreeSet::new();
    for (name, service) in services {
        let name = name.as_str().expect("a service name");
        names.insert(name);
        match (service["image"].as_str(), service["build"].is_badvalue()) {
            (Some(image), _) => {
                let (_, tag) = image
                    .rsplit_once(':')
                    .unwrap_or_else(|| panic!("{name}: image {image} has no tag"));
                assert!(
                    tag != "latest" && tag.chars().any(|c| c.is_ascii_digit()),
                    "{name}: image {image} is not pinned to a version"
                );
            }
            (None, false) => {}
            (None, true) => panic!("{name}: neither an image nor a build"),
        }
        assert!(
            !service["healthcheck"].is_badvalue(),
            "{name}: no health check"
        );
        assert_eq!(
            service["networks"][0].as_str(),
            Some("lookout"),
            "{name}: one network"
        );
        for volume in service["volumes"].as_vec().into_iter().flatten() {
            let spec = volume.as_str().expect("a short volume spec");
            let source = spec.split(':').next().unwrap_or_default();
            if source.starts_with('.') {
                let path = deploy(source);
                assert!(
                    path.exists(),
                    "{name}: mounts {source}, which does not exist"
                );
            }
        }
        if let Some(dockerfile) = service["build"]["dockerfile"].as_str() {
            assert!(
                workspace().join(dockerfile).is_file(),
                "{name}: {dockerfile}"
            );
        }
    }
    for backend in [
        "otel-collector",
        "jaeger",
        "prometheus",
        "alertmanager",
        "grafana",
        "victorialogs",
        "axum-service",
    ] {
        assert!(names.contains(backend), "compose has no {backend}");
    }
    // Prometheus's file_sd targets name compose's services.
    for path in files(&deploy("prometheus/targets"), &[".json"]) {
        let groups: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
        for target in groups
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["targets"].as_array().into_iter().flatten())
        {
            let host = target
                .as_str()
                .and_then(|t| t.split(':').next())
                .unwrap_or_default();
            assert!(
                names.contains(host),
                "{}: {host} is not a compose service",
                path.display()
            );
        }
    }
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas() {
    let validate = std::env::var_os("LOOKOUT_KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".tools/venv/bin/kubernetes-validate"));
    assert!(
        validate.is_file(),
        "{} is missing: ./scripts/test installs kubernetes-validate from PyPI",
        validate.display()
    );
    let manifests = files(&deploy("kubernetes"), &[".yaml"]);
    assert!(manifests.len() >= 3);
    let mut command = Command::new(&validate);
    command.arg("--strict").args(&manifests);
    let out = check(command);
    for kind in [
        "deployment/axum-service",
        "daemonset/otel-agent",
        "statefulset/otel-gateway",
    ] {
        assert!(
            out.contains(&format!("passed for resource {kind}")),
            "{out}"
        );
    }
    // The probes are lookout-health's groups on the admin port.
    let text = std::fs::read_to_string(deploy("kubernetes/axum-service.yaml")).expect("read");
    for path in ["/health/live", "/health/ready", "/health/startup"] {
        assert!(text.contains(path), "no probe on {path}");
    }
    // A manifest with a wrong field is refused: the check can fail.
    let dir = tempfile::tempdir().expect("a temp dir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        text.replace("containerPort: 3000", "containerPort: \"three thousand\""),
    )
    .expect("write");
    let refused = Command::new(&validate)
        .arg("--strict")
        .arg(&bad)
        .output()
        .expect("run");
    assert!(!refused.status.success(), "a bad manifest validated");
    // The kustomization's files exist.
    let kustomization = &yaml(&deploy("kustomization.yaml"))[0];
    for file in kustomization["resources"]
        .as_vec()
        .into_iter()
        .flatten()
        .chain(
            kustomization["configMapGenerator"][0]["files"]
                .as_vec()
                .into_iter()
                .flatten(),
        )
    {
        let file = file.as_str().expect("a path");
        assert!(
            deploy(file).is_file(),
            "kustomization.yaml names {file}, which does not exist"
        );
    }
}

#[test]
fn dashboards_have_unique_uids_and_known_datasources() {
    let provisioned = &yaml(&deploy("grafana/provisioning/datasources/datasources.yaml"))[0];
    let uids: BTreeSet<&str> = provisioned["datasources"]
        .as_vec()
        .expect("datasources")
        .iter()
        .filter_map(|d| d["uid"].as_str())
        .collect();
    assert_eq!(
        uids,
        BTreeSet::from(["prometheus", "jaeger", "victorialogs"])
    );
    let mut seen = BTreeSet::new();
    let dashboards = files(&deploy("grafana/dashboards"), &[".json"]);
    assert!(dashboards.len() >= 5);
    for path in dashboards {
        let d: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
        let uid = d["uid"].as_str().expect("a uid").to_owned();
        assert!(seen.insert(uid.clone()), "uid {uid} twice");
        for panel in d["panels"].as_array().expect("panels") {
            if panel["type"] == "row" {
                continue;
            }
            let ds = panel["datasource"]["uid"].as_str().unwrap_or_default();
            assert!(
                uids.contains(ds),
                "{}: {}: data source {ds:?}",
                path.display(),
                panel["title"]
            );
            assert!(
                panel["targets"].as_array().is_some_and(|t| !t.is_empty()),
                "{}: {}: no query",
                path.display(),
                panel["title"]
            );
        }
    }
}
