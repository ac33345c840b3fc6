//! The etcd members the hub talks to: one client per endpoint and the one in use. Requests go
//! to the member in use; when it cannot be reached, or has no leader, the request moves on to
//! the next member, and so do the requests after it.
//!
//! Why not the etcd client's own balancing over all endpoints: it spreads requests round-robin
//! and keeps handing some to a dead member (each fails with "tcp connect error"), so a 3-member
//! cluster that lost one member fails a third of the hub's requests. etcd's Go client (the one
//! kube-apiserver uses) pins one member and moves on failure, as this does.
//!
//! A request is sent again only when etcd cannot have acted on it: the connection could not be
//! made, or the member refused it for want of a leader (clients are created with
//! `require_leader`, so such a member answers at once instead of hanging). Reads may be sent
//! again on any unavailability.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

use crate::Error;

/// Whether an operation changes etcd (and so must not be repeated once etcd may have seen it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    Write,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
        }
    }
}

pub(crate) struct Pool {
    members: Vec<(String, Client)>,
    current: AtomicUsize,
    timeout: Duration,
}

impl Pool {
    /// One client per endpoint. Connections are made on first use.
    pub(crate) async fn new(
        endpoints: &[String],
        opts: ConnectOptions,
        timeout: Duration,
    ) -> Result<Self, Error> {
        if endpoints.is_empty() {
            return Err(Error::Invalid("no etcd endpoints given".into()));
        }
        let opts = opts.with_require_leader(true);
        let mut members = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            let client = tokio::time::timeout(timeout, Client::connect([e], Some(opts.clone())))
                .await
                .map_err(|_| Error::Unavailable(format!("etcd {e}: connect timed out")))?
                .map_err(|err| match err {
                    etcd_client::Error::InvalidUri(_) | etcd_client::Error::InvalidArgs(_) => {
                        Error::Invalid(format!("etcd endpoint {e:?}: {err}"))
                    }
                    err => Error::Unavailable(format!("etcd {e}: {err}")),
                })?;
            members.push((e.clone(), client));
        }
        Ok(Self {
            members,
            current: AtomicUsize::new(0),
            timeout,
        })
    }

    /// The member in use and its client.
    pub(crate) fn current(&self) -> (usize, Client) {
        let i = self.current.load(Ordering::Relaxed) % self.members.len();
        (i, self.members[i].1.clone())
    }

    /// Member `i` failed: move on to the next one (unless another request already did).
    pub(crate) fn failed(&self, i: usize, error: &dyn std::fmt::Display) {
        if self.members.len() == 1 {
            return;
        }
        let next = (i + 1) % self.members.len();
        if self
            .current
            .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(
                failed = %self.members[i].0,
                next = %self.members[next].0,
                error = %error,
                "etcd member unusable; moving on to the next"
            );
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `f` against the member in use within the request timeout, moving on to the next
    /// member while `f` certainly did not reach etcd (or is a read), each member at most once.
    pub(crate) async fn call<T, F, Fut>(&self, op: Op, mut f: F) -> Result<T, Error>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut tries = 0;
        loop {
            let (i, client) = self.current();
            tries += 1;
            match tokio::time::timeout_at(deadline, f(client)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => {
                    if is_unavailable(&e) {
                        self.failed(i, &e);
                        let again = match op {
                            Op::Read => true,
                            // A write cut off in flight may have been applied: it is
                            // answered as unavailable, not sent twice.
                            Op::Write => not_delivered(&e),
                        };
                        if again && tries < self.members.len() {
                            continue;
                        }
                    }
                    return Err(Error::Unavailable(format!(
                        "etcd {} failed: {e}",
                        op.name()
                    )));
                }
                Err(_) => {
                    // The member may be cut off from the others; the next request tries another.
                    self.failed(i, &"no answer within the request timeout");
                    return Err(Error::Timeout(format!(
                        "etcd {} did not answer within {:?}",
                        op.name(),
                        self.timeout
                    )));
                }
            }
        }
    }
}

/// The request never reached a member able to act on it.
pub(crate) fn not_delivered(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(s) => {
            s.code() == tonic::Code::Unavailable
                && (s.message().contains("connect") || s.message().contains("no leader"))
        }
        _ => false,
    }
}

/// The member cannot serve now (reads may go elsewhere).
pub(crate) fn is_unavailable(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_undelivered_writes_are_sent_again() {
        let connect =
            etcd_client::Error::GRpcStatus(tonic::Status::unavailable("tcp connect error"));
        let no_leader =
            etcd_client::Error::GRpcStatus(tonic::Status::unavailable("etcdserver: no leader"));
        let timed_out = etcd_client::Error::GRpcStatus(tonic::Status::unavailable(
            "etcdserver: request timed out",
        ));
        let conflict =
            etcd_client::Error::GRpcStatus(tonic::Status::invalid_argument("duplicate key"));
        assert!(not_delivered(&connect));
        assert!(not_delivered(&no_leader));
        assert!(!not_delivered(&timed_out), "etcd may have applied it");
        assert!(!not_delivered(&conflict));
        assert!(is_unavailable(&timed_out));
        assert!(!is_unavailable(&conflict));
    }
}
