//! Helpers shared by the end-to-end tests: the binary, kubectl, polling.

#![allow(clippy::disallowed_methods, dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `flotilla` binary under test.
pub fn flotilla() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flotilla"))
}

/// Runs the installed kubectl with `kubeconfig`.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap()
}

/// `kubectl apply -f -` of `yaml` with `kubeconfig`; its output, checked by the caller.
pub fn kubectl_apply(kubeconfig: &Path, yaml: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `kubectl ARGS -o json`, parsed; None when kubectl fails.
pub fn get_json(kubeconfig: &Path, args: &[&str]) -> Option<Value> {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    let out = kubectl(kubeconfig, &a);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// (status, reason) of condition `ty` in `obj.status.conditions`; empty when absent.
pub fn condition(obj: &Value, ty: &str) -> (String, String) {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .unwrap_or_default()
}

/// Polls `f` until it returns Some, or fails with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A child process killed when dropped.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to 30 s for `path` to appear (a process writes it when ready).
pub fn wait_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A simulated member cluster (`flotilla member`) of two 8-core nodes in `dir`.
pub fn start_member(dir: &Path, name: &str) -> Proc {
    let child = flotilla()
        .args([
            "member",
            "--name",
            name,
            "--store",
            "memory",
            "--nodes",
            "2",
            "--node-cpu",
            "8",
            "--data-dir",
        ])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_file(&dir.join("admin.kubeconfig"));
    Proc(child)
}

pub fn start_agent(name: &str, hub_kc: &Path, member_kc: &Path, log: &Path) -> Proc {
    let child = flotilla()
        .args(["agent", "--name", name, "--hub-kubeconfig"])
        .arg(hub_kc)
        .arg("--member-kubeconfig")
        .arg(member_kc)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Proc(child)
}

/// `flotilla join NAME` (heartbeat every second, label env=prod), the agent's kubeconfig
/// written to `out`.
pub fn join(hub: &Path, name: &str, out: &Path) -> Output {
    flotilla()
        .args([
            "join",
            name,
            "--heartbeat-period-seconds",
            "1",
            "--label",
            "env=prod",
            "--hub-kubeconfig",
        ])
        .arg(hub)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// A kube client with `kubeconfig`'s cluster and credentials.
pub async fn client(kubeconfig: &Path) -> kube::Client {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Waits up to `timeout` for `members` member clusters of the hub to be Joined.
pub fn wait_joined(hub: &Path, members: usize, timeout: Duration) {
    wait_for("every member to join", timeout, || {
        let mcs = get_json(hub, &["get", "memberclusters"])?;
        let joined = mcs["items"]
            .as_array()?
            .iter()
            .filter(|m| condition(m, "Joined").0 == "True")
            .count();
        (joined == members).then_some(())
    });
}
