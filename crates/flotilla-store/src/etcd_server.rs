//! Runs etcd itself: a single member or a cluster of members on loopback ports, for tests
//! and `flotilla bench` (the `etcd` binary of Debian's `etcd-server` package must be on PATH).
//! Each member runs under a watchdog ([`Supervised`]) that stops it when the process that
//! started it exits, so no etcd outlives a test run, even one that is killed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::supervised::Supervised;

/// A running etcd cluster; dropping it stops every member.
pub struct EtcdCluster {
    members: Vec<Member>,
    token: String,
}

struct Member {
    name: String,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    process: Option<Supervised>,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EtcdCluster {
    /// Starts `size` members with data under `dir` and waits until the cluster answers.
    pub fn start(dir: &Path, size: usize) -> std::io::Result<Self> {
        let mut members = Vec::new();
        for i in 0..size.max(1) {
            members.push(Member {
                name: format!("m{i}"),
                dir: dir.join(format!("m{i}")),
                client_port: free_port()?,
                peer_port: free_port()?,
                process: None,
            });
        }
        let mut cluster = Self {
            members,
            token: format!("flotilla-{}", std::process::id()),
        };
        for i in 0..cluster.members.len() {
            cluster.spawn(i)?;
        }
        cluster.wait_ready(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// The client URLs of all members.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// The client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    fn spawn(&mut self, i: usize) -> std::io::Result<()> {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect();
        let m = &self.members[i];
        std::fs::create_dir_all(&m.dir)?;
        let args = [
            format!("--name={}", m.name),
            format!("--data-dir={}", m.dir.join("data").display()),
            format!("--listen-client-urls=http://127.0.0.1:{}", m.client_port),
            format!("--advertise-client-urls=http://127.0.0.1:{}", m.client_port),
            format!("--listen-peer-urls=http://127.0.0.1:{}", m.peer_port),
            format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{}",
                m.peer_port
            ),
            format!("--initial-cluster={}", initial.join(",")),
            "--initial-cluster-state=new".to_string(),
            format!("--initial-cluster-token={}", self.token),
            "--logger=zap".to_string(),
            "--log-level=error".to_string(),
        ];
        let process = Supervised::spawn("etcd", Path::new("etcd"), &args, &m.dir).map_err(|e| {
            std::io::Error::new(e.kind(), format!("{e} (Debian package etcd-server)"))
        })?;
        self.members[i].process = Some(process);
        Ok(())
    }

    /// The process id of member `i`'s etcd, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].process.as_ref()?.pid()
    }

    /// Stops member `i` at once, as a crash would (SIGKILL to etcd).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.members[i].process.take() {
            p.kill();
        }
    }

    /// Starts member `i` again after [`Self::kill`], on the same data and ports.
    pub fn restart(&mut self, i: usize) -> std::io::Result<()> {
        self.spawn(i)?;
        self.wait_member(i, Duration::from_secs(30))
    }

    fn wait_ready(&self, timeout: Duration) -> std::io::Result<()> {
        for i in 0..self.members.len() {
            self.wait_member(i, timeout)?;
        }
        Ok(())
    }

    // Blocking by design: callers set up (tests, benchmarks) and wait for etcd before anything
    // else runs on their thread.
    #[allow(clippy::disallowed_methods)]
    fn wait_member(&self, i: usize, timeout: Duration) -> std::io::Result<()> {
        let start = Instant::now();
        let addr = format!("127.0.0.1:{}", self.members[i].client_port);
        loop {
            if health(&addr) {
                return Ok(());
            }
            if start.elapsed() > timeout {
                let log = std::fs::read_to_string(self.members[i].dir.join("etcd.log"))
                    .unwrap_or_default();
                return Err(std::io::Error::other(format!(
                    "etcd member {} did not become healthy within {timeout:?}: {}",
                    self.members[i].name,
                    log.lines().last().unwrap_or("no log")
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether etcd at `addr` answers its /health endpoint with health true.
fn health(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"") || body.contains("\"health\": \"true\"")
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
