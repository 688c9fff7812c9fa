//! The resource every signal carries: service, instance, host, process, OS, SDK and Kubernetes
//! attributes.
//!
//! Detected here, with the semantic-convention names, rather than with
//! opentelemetry-resource-detectors (0.13, on opentelemetry 0.33): its process detector records
//! `process.command_args`, the whole command line, so a secret passed as an argument would be on
//! every span, log record and metric point; its Kubernetes detector takes the pod name from
//! `HOSTNAME` (wrong when the pod sets `hostname` or runs on the host network) and reads no node,
//! container or UID; and its `process.runtime.name` is `rustc`. What lookout needs is a few
//! lines per attribute, and what the SDK itself detects (`telemetry.sdk.*`) comes from the SDK.

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_semantic_conventions::resource as rc;

use crate::config::{EnvSource, Settings};

/// Kubernetes downward-API variables, under the names deployments commonly give them. Read only
/// inside a pod (`KUBERNETES_SERVICE_HOST` set), since names like `NODE_NAME` are generic.
const KUBERNETES: &[(&str, &[&str])] = &[
    (rc::K8S_POD_NAME, &["K8S_POD_NAME", "POD_NAME"]),
    (rc::K8S_POD_UID, &["K8S_POD_UID", "POD_UID"]),
    (
        rc::K8S_NAMESPACE_NAME,
        &["K8S_NAMESPACE_NAME", "POD_NAMESPACE"],
    ),
    (rc::K8S_NODE_NAME, &["K8S_NODE_NAME", "NODE_NAME"]),
    (
        rc::K8S_CONTAINER_NAME,
        &["K8S_CONTAINER_NAME", "CONTAINER_NAME"],
    ),
];

pub(crate) fn build(settings: &Settings, env: &EnvSource) -> Resource {
    let exe = std::env::current_exe().ok();
    let exe_name = exe
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unknown".to_owned());

    let mut detected = vec![
        KeyValue::new(rc::SERVICE_INSTANCE_ID, uuid::Uuid::new_v4().to_string()),
        KeyValue::new(
            rc::HOST_NAME,
            gethostname::gethostname().to_string_lossy().into_owned(),
        ),
        KeyValue::new(rc::HOST_ARCH, host_arch()),
        KeyValue::new(rc::OS_TYPE, std::env::consts::OS),
        KeyValue::new(rc::PROCESS_PID, i64::from(std::process::id())),
        KeyValue::new(rc::PROCESS_EXECUTABLE_NAME, exe_name.clone()),
        KeyValue::new(rc::PROCESS_RUNTIME_NAME, "rust"),
        KeyValue::new(rc::TELEMETRY_DISTRO_NAME, "lookout"),
        KeyValue::new(rc::TELEMETRY_DISTRO_VERSION, env!("CARGO_PKG_VERSION")),
    ];
    if let Some(path) = &exe {
        detected.push(KeyValue::new(
            rc::PROCESS_EXECUTABLE_PATH,
            path.to_string_lossy().into_owned(),
        ));
    }
    let in_kubernetes = env.get("KUBERNETES_SERVICE_HOST").is_some();
    for (key, names) in KUBERNETES.iter().filter(|_| in_kubernetes) {
        if let Some(value) = names.iter().find_map(|n| env.get(n)) {
            detected.push(KeyValue::new(*key, value));
        }
    }

    // Precedence, lowest first: detected, OTEL_RESOURCE_ATTRIBUTES and builder attributes, then
    // the service name/version settings (OTEL_SERVICE_NAME beats service.name in attributes).
    let configured = settings
        .resource_attributes
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()));
    let mut builder = Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(detected)
        .with_attributes(configured);
    let from_attributes = |key: &str| {
        settings
            .resource_attributes
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let service_name = settings
        .service_name
        .clone()
        .or_else(|| from_attributes(rc::SERVICE_NAME))
        .unwrap_or_else(|| format!("unknown_service:{exe_name}"));
    builder = builder.with_attribute(KeyValue::new(rc::SERVICE_NAME, Value::from(service_name)));
    if let Some(version) = &settings.service_version {
        builder = builder.with_attribute(KeyValue::new(rc::SERVICE_VERSION, version.clone()));
    }
    builder.build()
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm32",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    fn resource(vars: &[(&str, &str)], o: Overrides) -> Resource {
        let env = EnvSource::Map(
            vars.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        let (settings, _) = Settings::resolve(&o, &env).expect("valid");
        build(&settings, &env)
    }

    fn get(r: &Resource, key: &'static str) -> Option<String> {
        r.get(&opentelemetry::Key::from_static_str(key))
            .map(|v| v.to_string())
    }

    #[test]
    fn service_name_precedence_builder_then_env_then_attributes_then_executable() {
        let r = resource(
            &[("OTEL_RESOURCE_ATTRIBUTES", "service.name=attr,team=core")],
            Overrides::default(),
        );
        assert_eq!(get(&r, "service.name").as_deref(), Some("attr"));
        assert_eq!(get(&r, "team").as_deref(), Some("core"));
        let r = resource(
            &[
                ("OTEL_RESOURCE_ATTRIBUTES", "service.name=attr"),
                ("OTEL_SERVICE_NAME", "env"),
            ],
            Overrides::default(),
        );
        assert_eq!(get(&r, "service.name").as_deref(), Some("env"));
        let r = resource(
            &[("OTEL_SERVICE_NAME", "env")],
            Overrides {
                service_name: Some("code".into()),
                ..Overrides::default()
            },
        );
        assert_eq!(get(&r, "service.name").as_deref(), Some("code"));
        let r = resource(&[], Overrides::default());
        assert!(get(&r, "service.name").is_some_and(|n| n.starts_with("unknown_service:")));
    }

    #[test]
    fn detects_host_process_sdk_and_kubernetes() {
        let r = resource(
            &[
                ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
                ("POD_NAME", "api-7d9"),
                ("K8S_NAMESPACE_NAME", "shop"),
            ],
            Overrides::default(),
        );
        assert_eq!(get(&r, "k8s.pod.name").as_deref(), Some("api-7d9"));
        let outside = resource(&[("POD_NAME", "api-7d9")], Overrides::default());
        assert_eq!(get(&outside, "k8s.pod.name"), None);
        assert_eq!(get(&r, "k8s.namespace.name").as_deref(), Some("shop"));
        assert_eq!(get(&r, "process.pid"), Some(std::process::id().to_string()));
        assert_eq!(get(&r, "telemetry.sdk.language").as_deref(), Some("rust"));
        assert!(get(&r, "host.name").is_some());
        assert!(get(&r, "service.instance.id").is_some_and(|id| id.len() == 36));
    }
}
