//! A real API server on 127.0.0.1:0 over HTTPS, with the `kube` client and `kubectl` pointed
//! at it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flotilla_apiserver::{ApiServer, Credentials, ServerConfig};
use flotilla_store::{RedbBackend, Store, StoreConfig};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

/// A running test server. Dropping it stops serving.
pub struct TestServer {
    pub server: ApiServer,
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
    pub url: String,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.shutdown();
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Which store a test server uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Backend {
    Memory,
    Redb,
    /// A prefix of its own on an etcd started for this test binary.
    Etcd,
}

/// The store the suite runs against: `FLOTILLA_TEST_STORE` = memory (default), redb or etcd.
/// scripts/test.sh runs the suite once per store.
pub fn backend_under_test() -> Backend {
    match std::env::var("FLOTILLA_TEST_STORE").as_deref() {
        Ok("redb") => Backend::Redb,
        Ok("etcd") => Backend::Etcd,
        Ok("memory") | Ok("") | Err(_) => Backend::Memory,
        Ok(other) => panic!("FLOTILLA_TEST_STORE={other}: use memory, redb or etcd"),
    }
}

/// A store that survives a restart of the server: etcd when the suite runs against etcd,
/// else redb.
pub fn persistent() -> Backend {
    match backend_under_test() {
        Backend::Etcd => Backend::Etcd,
        _ => Backend::Redb,
    }
}

/// The etcd of this test binary, started on first use.
fn etcd_endpoints() -> Vec<String> {
    static ETCD: std::sync::OnceLock<(
        flotilla_store::etcd_server::EtcdCluster,
        tempfile::TempDir,
    )> = std::sync::OnceLock::new();
    ETCD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        // A static is never dropped: its directory goes when the test binary does.
        flotilla_store::supervised::remove_when_gone(dir.path()).unwrap();
        let etcd = flotilla_store::etcd_server::EtcdCluster::start(dir.path(), 1)
            .expect("etcd (Debian package etcd-server) starts");
        (etcd, dir)
    })
    .0
    .endpoints()
}

/// Opens the etcd store of a test directory: its prefix is chosen once and kept in the
/// directory, so a restarted server finds its objects.
async fn open_etcd(dir: &Path) -> Store {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let file = dir.join("etcd-prefix");
    let prefix = match std::fs::read_to_string(&file) {
        Ok(p) => p,
        Err(_) => {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let p = format!("/test-{n}");
            std::fs::write(&file, &p).unwrap();
            p
        }
    };
    let endpoints = tokio::task::block_in_place(etcd_endpoints);
    let mut config = flotilla_store::EtcdConfig::new(endpoints);
    config.prefix = prefix;
    Store::open_etcd(config, StoreConfig::default())
        .await
        .unwrap()
}

pub async fn start() -> TestServer {
    start_with(backend_under_test(), ServerConfig::default(), None).await
}

pub async fn start_with(
    backend: Backend,
    config: ServerConfig,
    dir: Option<tempfile::TempDir>,
) -> TestServer {
    let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
    let store = match backend {
        Backend::Memory => Store::memory(),
        Backend::Redb => open_redb(&dir.path().join("store.redb")).await,
        Backend::Etcd => open_etcd(dir.path()).await,
    };
    let server = ApiServer::new(store, config);
    server.start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let creds = Credentials::load_or_create(&dir.path().join("pki"), &[]).unwrap();
    let url = format!("https://{addr}");
    let kubeconfig = dir.path().join("admin.kubeconfig");
    Credentials::write_kubeconfig(&kubeconfig, &creds.admin_kubeconfig(&url, "test")).unwrap();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let s = server.clone();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stop_rx.await;
        };
        flotilla_apiserver::serve_https(s, listener, &creds, shutdown)
            .await
            .unwrap();
    });
    let client = client_for(&kubeconfig).await;
    TestServer {
        server,
        client,
        kubeconfig,
        url,
        dir,
        stop: Some(stop),
        task: Some(task),
    }
}

/// Opens a redb store, waiting for a previous holder of the file to let go.
pub async fn open_redb(path: &Path) -> Store {
    for _ in 0..200 {
        if let Ok(b) = RedbBackend::open(path) {
            return Store::open(b, StoreConfig::default()).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("could not open {}", path.display());
}

impl TestServer {
    /// Stops serving and returns the data directory (for restarts).
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.server.shutdown();
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        drop(self);
        dir
    }

    /// Runs the installed kubectl against this server; returns (success, stdout, stderr).
    #[must_use = "a kubectl run that is not checked proves nothing"]
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        self.kubectl_stdin(args, None)
    }

    #[must_use = "a kubectl run that is not checked proves nothing"]
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use std::io::Write;
        let mut cmd = Command::new("kubectl");
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        // kubectl blocks; let the runtime serve its requests meanwhile.
        let out = tokio::task::block_in_place(|| {
            let mut child = cmd.spawn().expect("kubectl is installed");
            {
                let mut si = child.stdin.take().unwrap();
                if let Some(s) = stdin {
                    si.write_all(s.as_bytes()).unwrap();
                }
            }
            child.wait_with_output().unwrap()
        });
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs kubectl and fails the test if it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        self.kubectl_stdin_ok(args, None)
    }

    /// `kubectl ARGS` with `stdin`, which must succeed; its output.
    pub fn kubectl_stdin_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.kubectl_stdin(args, stdin);
        assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
        out
    }

    /// Sends a raw request; returns status and parsed JSON body (or the text as a string).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value) {
        raw_with(&self.client, method, path, content_type, &[], body).await
    }
}

pub async fn raw_with(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Value) {
    let mut b = http::Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(kube::client::Body::from(body)).unwrap();
    let resp = client.send(req).await.unwrap();
    let status = resp.status().as_u16();
    use http_body_util::BodyExt;
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}

pub async fn client_for(kubeconfig: &Path) -> kube::Client {
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The Status of a failed kube call.
pub fn status_of<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Asserts a refusal in full, as kube-apiserver words it: code, reason, message and the
/// causes as (reason, field, message). The expectations are kube-apiserver's own answers:
/// crates/flotilla/tests/e2e/testdata/differential.yaml sends the same requests to both.
#[track_caller]
pub fn assert_refused<T: std::fmt::Debug>(
    r: Result<T, kube::Error>,
    code: u16,
    reason: &str,
    message: &str,
    causes: &[(&str, &str, &str)],
) {
    let s = status_of(r);
    assert_eq!(
        (s.code, s.reason.as_str(), s.message.as_str()),
        (code, reason, message)
    );
    let got: Vec<(String, String, String)> = s
        .details
        .map(|d| d.causes)
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.reason, c.field, c.message))
        .collect();
    let want: Vec<(String, String, String)> = causes
        .iter()
        .map(|(r, f, m)| (r.to_string(), f.to_string(), m.to_string()))
        .collect();
    assert_eq!(got, want, "causes of {message:?}");
}

/// Polls `f` until it returns true, for up to 10 s.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}
