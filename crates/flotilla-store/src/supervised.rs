//! A process under a watchdog: a small shell that runs it with its output in a log, stops it
//! when the process that started it is gone (so nothing outlives a test run, even one that is
//! killed), and on TERM. Runs etcd for tests and benchmarks (`etcd_server`) and the real
//! Kubernetes components of the test bed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running process; dropping it stops the process (TERM, then KILL) and its watchdog.
pub struct Supervised {
    name: String,
    log: PathBuf,
    pidfile: PathBuf,
    watchdog: Option<Child>,
}

/// A shell function: whether process $1 runs (a zombie, exited but not yet reaped, does not).
const ALIVE: &str = "alive() { s=$(cut -d')' -f2- /proc/$1/stat 2>/dev/null) || return 1; \
                     case \"$s\" in ' Z'*|' X'*|'') return 1;; esac; }";

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Removes `dir` once this process is gone, by a small shell of its own: for what a test
/// binary keeps for its whole run (a shared etcd in a static, which Rust never drops), so that
/// its data (etcd preallocates 64 MB of log) does not stay behind after every run. The shell
/// waits two seconds more, for the watchdogs of what ran there to stop it.
pub fn remove_when_gone(dir: &Path) -> std::io::Result<()> {
    remove_when_gone_of(std::process::id(), dir)
}

fn remove_when_gone_of(parent: u32, dir: &Path) -> std::io::Result<()> {
    let script = format!(
        "{ALIVE}; while alive {parent}; do sleep 0.5; done; sleep 2; rm -rf {dir}",
        dir = shell_quote(&dir.display().to_string()),
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(())
}

impl Supervised {
    /// Starts `program` (a path, or a name looked up on PATH) with `args`, its output in
    /// `dir/<name>.log` and its process id in `dir/<name>.pid`.
    pub fn spawn(name: &str, program: &Path, args: &[String], dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let log = dir.join(format!("{name}.log"));
        let pidfile = dir.join(format!("{name}.pid"));
        let script = format!(
            "{ALIVE}; {prog} \"$@\" >{log} 2>&1 & p=$!; echo $p >{pid}; \
             trap 'kill $p 2>/dev/null; exit 0' TERM INT; \
             while alive {parent} && alive $p; do sleep 0.3; done; \
             kill $p 2>/dev/null; wait $p",
            prog = shell_quote(&program.display().to_string()),
            log = shell_quote(&log.display().to_string()),
            pid = shell_quote(&pidfile.display().to_string()),
            parent = std::process::id(),
        );
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("starting {}: {e}", program.display()))
            })?;
        Ok(Self {
            name: name.to_string(),
            log,
            pidfile,
            watchdog: Some(watchdog),
        })
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last `n` lines of the process's log, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The process id of the program (not its watchdog), while it runs.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pidfile)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops the program at once, as a crash would (SIGKILL), and its watchdog.
    pub fn kill(&mut self) {
        let Some(mut watchdog) = self.watchdog.take() else {
            return;
        };
        let pid = shell_quote(&self.pidfile.display().to_string());
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -KILL \"$(cat {pid})\" 2>/dev/null"))
            .status();
        let _ = watchdog.kill();
        let _ = watchdog.wait();
        let _ = std::fs::remove_file(&self.pidfile);
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        match &mut self.watchdog {
            Some(w) => matches!(w.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the process: TERM, up to 5 s to exit, then KILL.
    pub fn stop(&mut self) {
        let Some(mut watchdog) = self.watchdog.take() else {
            return;
        };
        let pid = shell_quote(&self.pidfile.display().to_string());
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{ALIVE}; p=$(cat {pid} 2>/dev/null) || exit 0; kill $p 2>/dev/null; \
                 for i in $(seq 50); do alive $p || exit 0; sleep 0.1; done; \
                 kill -KILL $p 2>/dev/null"
            ))
            .status();
        let _ = watchdog.kill();
        let _ = watchdog.wait();
        let _ = std::fs::remove_file(&self.pidfile);
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod removal_tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_is_removed_once_its_process_is_gone() {
        let dir = tempfile::tempdir().unwrap().keep();
        std::fs::write(dir.join("wal"), "x").unwrap();
        let mut parent = Command::new("sleep").arg("1").spawn().unwrap();
        remove_when_gone_of(parent.id(), &dir).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(dir.exists(), "kept while its process runs");
        parent.wait().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while dir.exists() {
            assert!(std::time::Instant::now() < deadline, "removed after it");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}
