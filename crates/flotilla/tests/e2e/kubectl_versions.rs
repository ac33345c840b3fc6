//! Every kubectl the machine carries (kubectl.1.27 ... beside the kubectl on PATH) against a
//! `flotilla hub` process and, with the same expectations, against a real kube-apiserver of the
//! hub's release: apply, re-apply, get in each format, diff, patch, explain, wait and delete.
//! kubectl before 1.29 reads the OpenAPI v2 document in protobuf for apply and explain.

#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::hub::start_hub;

/// The versioned kubectl binaries beside the kubectl on PATH (oldest first), or that kubectl
/// alone when there are none.
fn kubectls() -> Vec<(String, PathBuf)> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kubectl = std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect("kubectl is on PATH (scripts/deps.sh installs it)");
    let dir = std::fs::canonicalize(&kubectl)
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let minor = p
                .file_name()?
                .to_str()?
                .strip_prefix("kubectl.1.")?
                .parse()
                .ok()?;
            Some((minor, p))
        })
        .collect();
    versions.sort();
    if versions.is_empty() {
        return vec![("kubectl".into(), kubectl)];
    }
    versions
        .into_iter()
        .map(|(m, p)| (format!("1.{m}"), p))
        .collect()
}

struct Kubectl<'a> {
    bin: &'a Path,
    kubeconfig: &'a Path,
    cache: PathBuf,
    namespace: String,
    version: &'a str,
}

impl Kubectl<'_> {
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(self.bin)
            .arg("--kubeconfig")
            .arg(self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(["-n", &self.namespace])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(
            ok,
            "kubectl {} {args:?} failed:\n{out}\n{err}",
            self.version
        );
        out
    }
}

fn testdata(name: &str) -> String {
    format!("{}/tests/e2e/testdata/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_kubectl_version_the_machine_carries_works_against_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_hub(&dir.path().join("hub"));
    let real = flotilla_testbed::RealCluster::start(
        &dir.path().join("real"),
        flotilla_testbed::ControlPlane::ApiServer,
    )
    .unwrap();
    let all = kubectls();
    let servers = [
        ("flotilla", hub.kubeconfig.as_path()),
        ("kube-apiserver", real.kubeconfig()),
    ];
    for ((version, bin), (server, kubeconfig)) in all
        .iter()
        .flat_map(|v| servers.iter().map(move |s| (v, *s)))
    {
        let label = format!("{version} against {server}");
        let k = Kubectl {
            bin,
            kubeconfig,
            cache: dir.path().join(format!("cache-{version}-{server}")),
            namespace: format!("v{}", version.replace('.', "-")),
            version: &label,
        };
        let version = &label;
        let ns = k.namespace.clone();
        k.ok(&["create", "namespace", &ns]);
        let out = k.ok(&["apply", "-f", &testdata("kubectl-app.yaml")]);
        assert!(
            out.contains("deployment.apps/web created"),
            "{version}: {out}"
        );
        let out = k.ok(&["apply", "-f", &testdata("kubectl-app.yaml")]);
        assert!(
            out.contains("configmap/web-config unchanged"),
            "{version}: {out}"
        );
        // stringData is write-only (merged into data), so kubectl's patch always names it again.
        assert!(
            out.contains("secret/web-secret configured"),
            "{version}: {out}"
        );

        let yaml = k.ok(&["get", "deployment", "web", "-o", "yaml"]);
        assert!(yaml.contains("replicas: 2"), "{version}: {yaml}");
        let json: Value =
            serde_json::from_str(&k.ok(&["get", "secret", "web-secret", "-o", "json"])).unwrap();
        assert_eq!(json["data"]["password"], "aHVudGVyMg==", "{version}");
        assert!(json.get("stringData").is_none(), "{version}");
        let wide = k.ok(&["get", "deployment", "-o", "wide"]);
        assert!(
            wide.contains("CONTAINERS") && wide.contains("nginx:1.27"),
            "{version}: {wide}"
        );

        // diff exits 1 when there are differences and shows them.
        let (ok, diff, err) = k.run(&["diff", "-f", &testdata("kubectl-app-v2.yaml")]);
        assert!(!ok, "{version}: diff found no difference: {err}");
        assert!(
            diff.contains("+  replicas: 3") && diff.contains("+  mode: fast"),
            "{version}: {diff}"
        );
        let out = k.ok(&["apply", "-f", &testdata("kubectl-app-v2.yaml")]);
        assert!(
            out.contains("deployment.apps/web configured"),
            "{version}: {out}"
        );

        k.ok(&[
            "patch", "deployment", "web", "--type", "strategic", "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"EXTRA","value":"1"}]}]}}}}"#,
        ]);
        let env = k.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env[*].name}",
        ]);
        assert_eq!(
            env.trim(),
            "EXTRA MODE",
            "{version}: a new item goes first, as kube-apiserver puts it"
        );

        let explain = k.ok(&["explain", "deployment.spec.replicas"]);
        assert!(
            explain.contains("replicas") && explain.contains("integer"),
            "{version}: {explain}"
        );

        k.ok(&[
            "wait",
            "--for=jsonpath={.data.mode}=fast",
            "configmap/web-config",
            "--timeout=20s",
        ]);
        let out = k.ok(&["delete", "-f", &testdata("kubectl-app-v2.yaml")]);
        assert!(
            out.contains("deployment.apps \"web\" deleted"),
            "{version}: {out}"
        );
        let (ok, _, err) = k.run(&["get", "configmap", "web-config"]);
        assert!(!ok && err.contains("NotFound"), "{version}: {err}");
    }
    eprintln!(
        "kubectl versions checked: {:?}",
        all.iter().map(|v| &v.0).collect::<Vec<_>>()
    );
}
