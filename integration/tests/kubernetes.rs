//! `deploy/kubernetes/daemonset.yaml` read by Kubernetes' own types
//! (`k8s-openapi`, Kubernetes 1.34): every document deserialises into the
//! type its `kind` names, and a field those types do not have is an error
//! (the API server would prune or refuse it; a misspelt security setting
//! would silently not apply). Then every security setting docs/deploy.md
//! claims is asserted on the typed objects, and the ConfigMap's
//! `config.toml` is loaded by the janitor itself.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Deserialize;
use serde_yaml_ng::Value;

/// One document as the type `T`, refusing any field `T` does not have.
fn strict<T: serde::de::DeserializeOwned>(doc: Value) -> Result<T> {
    let mut unknown = Vec::new();
    let typed = serde_ignored::deserialize(doc, |path| unknown.push(path.to_string()))?;
    ensure!(
        unknown.is_empty(),
        "fields Kubernetes 1.34 does not have: {unknown:?}"
    );
    Ok(typed)
}

struct Manifest {
    namespace: Namespace,
    config: ConfigMap,
    daemonset: DaemonSet,
    policy: NetworkPolicy,
}

fn manifest() -> Result<Manifest> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/daemonset.yaml");
    let text = std::fs::read_to_string(&path)?;
    let (mut namespace, mut config, mut daemonset, mut policy) = (None, None, None, None);
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let doc = Value::deserialize(document)?;
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let context = || format!("the {kind} in {}", path.display());
        match kind.as_str() {
            "Namespace" => namespace = Some(strict(doc).with_context(context)?),
            "ConfigMap" => config = Some(strict(doc).with_context(context)?),
            "DaemonSet" => daemonset = Some(strict(doc).with_context(context)?),
            "NetworkPolicy" => policy = Some(strict(doc).with_context(context)?),
            other => bail!("unexpected kind {other:?} in {}", path.display()),
        }
    }
    Ok(Manifest {
        namespace: namespace.context("no Namespace")?,
        config: config.context("no ConfigMap")?,
        daemonset: daemonset.context("no DaemonSet")?,
        policy: policy.context("no NetworkPolicy")?,
    })
}

#[test]
fn the_daemonset_is_what_the_docs_say_in_kubernetes_own_types() -> Result<()> {
    let m = manifest()?;
    let pod = m
        .daemonset
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .context("pod spec")?;
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.enable_service_links, Some(false));
    assert_eq!(pod.host_network, Some(false));
    assert_eq!(pod.host_pid, Some(false));
    assert_eq!(pod.host_ipc, Some(false));
    assert_eq!(pod.termination_grace_period_seconds, Some(45));
    let pod_security = pod
        .security_context
        .as_ref()
        .context("pod securityContext")?;
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.run_as_user, Some(65532));
    assert_eq!(pod_security.run_as_group, Some(65532));
    assert_eq!(
        pod_security
            .seccomp_profile
            .as_ref()
            .map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );

    let [container] = pod.containers.as_slice() else {
        bail!("one container expected");
    };
    let security = container
        .security_context
        .as_ref()
        .context("securityContext")?;
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.privileged, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(
        security.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    assert_eq!(
        security.capabilities.as_ref().and_then(|c| c.add.clone()),
        None
    );
    let limits = container
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .context("limits")?;
    assert_eq!(limits["memory"].0, "64Mi");
    assert_eq!(limits["cpu"].0, "500m");
    let probe = container
        .liveness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .context("liveness probe")?;
    assert_eq!(probe.path.as_deref(), Some("/healthz"));

    // The socket is the one host path, mounted read-only, and must be a socket.
    let volumes = pod.volumes.as_deref().unwrap_or_default();
    let host_paths: Vec<_> = volumes
        .iter()
        .filter_map(|v| v.host_path.as_ref())
        .collect();
    let [socket] = host_paths.as_slice() else {
        bail!("exactly one hostPath volume expected, got {host_paths:?}");
    };
    assert_eq!(socket.path, "/var/run/docker.sock");
    assert_eq!(socket.type_.as_deref(), Some("Socket"));
    let mounts = container.volume_mounts.as_deref().unwrap_or_default();
    assert!(!mounts.is_empty());
    assert!(
        mounts.iter().all(|mount| mount.read_only == Some(true)),
        "every mount read-only: {mounts:?}"
    );

    // No egress; ingress to the metrics port only.
    let policy = m.policy.spec.as_ref().context("policy spec")?;
    assert_eq!(
        policy.policy_types,
        Some(vec!["Ingress".to_string(), "Egress".to_string()])
    );
    assert_eq!(policy.egress, Some(vec![]));

    let labels = m
        .namespace
        .metadata
        .labels
        .as_ref()
        .context("namespace labels")?;
    assert_eq!(labels["pod-security.kubernetes.io/warn"], "restricted");
    Ok(())
}

#[test]
fn the_configmaps_config_is_one_the_janitor_loads() -> Result<()> {
    let m = manifest()?;
    let text = m
        .config
        .data
        .as_ref()
        .and_then(|d| d.get("config.toml"))
        .context("config.toml in the ConfigMap")?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text)?;
    let out = std::process::Command::new(integration::janitor_binary())
        .args(["run", "--print-config", "--config"])
        .arg(&path)
        .env_remove("SENTRY_DSN")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("metrics_addr = \"0.0.0.0:9464\"")),
        "{stdout}"
    );
    Ok(())
}
