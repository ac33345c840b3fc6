//! Leader election among hub replicas sharing an etcd store: the leader holds the key
//! `{prefix}/!leader`, attached to an etcd lease it keeps alive. A leader that cannot renew its
//! lease for two thirds of its duration steps down before the lease can expire on the server,
//! so two replicas never both believe they lead (barring a process paused for longer than a
//! third of the lease). When the leader dies its lease expires, etcd deletes the key, and a
//! waiting replica, which watches the key, takes it at once. A leader that stops resigns:
//! it revokes its lease, and another replica takes over immediately.

use std::time::{Duration, Instant};

use etcd_client::{
    Compare, CompareOp, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions, WatchStream,
};
use tokio::sync::watch;

use crate::etcd_pool::{Op, Pool};
use crate::Store;

/// Whether this process leads the replicas sharing its store. Single-process stores always
/// lead.
#[derive(Clone)]
pub struct Leadership {
    leading: watch::Receiver<bool>,
    stop: Option<std::sync::Arc<watch::Sender<bool>>>,
    done: Option<watch::Receiver<bool>>,
}

impl Leadership {
    /// Leadership that is always held (one replica).
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        // The receiver keeps the last value after the sender is gone.
        drop(tx);
        Self {
            leading: rx,
            stop: None,
            done: None,
        }
    }

    /// Leadership decided elsewhere (another election, e.g. a Kubernetes Lease): `leading`
    /// follows it; [`Self::resign`] sets `stop` and waits until `done` turns true.
    pub fn from_election(
        leading: watch::Receiver<bool>,
        stop: watch::Sender<bool>,
        done: watch::Receiver<bool>,
    ) -> Self {
        Self {
            leading,
            stop: Some(std::sync::Arc::new(stop)),
            done: Some(done),
        }
    }

    /// Runs a controller while this process leads: `run` starts when leadership is gained and
    /// is dropped (cancelled) when it is lost or `stopped` resolves, and starts afresh on the
    /// next term. Controllers are level-triggered, so a new term resumes from the store.
    pub fn spawn_controller<F, Fut>(
        &self,
        name: &'static str,
        stopped: impl std::future::Future<Output = ()> + Send + 'static,
        run: F,
    ) where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut leading = self.subscribe();
        tokio::spawn(async move {
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    r = async { leading.wait_for(|l| *l).await.is_ok() } => if !r { return },
                }
                tracing::debug!(controller = name, "starting");
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = run() => {
                        tracing::debug!(controller = name, "ended");
                        // A controller that ends on its own is done for this process.
                        return;
                    }
                    _ = async {
                        if leading.wait_for(|l| !*l).await.is_err() {
                            // Leadership that cannot change (one replica) is never lost.
                            std::future::pending::<()>().await;
                        }
                    } => {
                        tracing::info!(controller = name, "stopped: leadership lost");
                    }
                }
            }
        });
    }

    /// Whether this process leads now.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Follows changes of leadership.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Stops campaigning; a leader gives up its lease so another replica takes over at once.
    /// Returns once that is done (or failed).
    pub async fn resign(&self) {
        if let Some(stop) = &self.stop {
            stop.send_replace(true);
        }
        if let Some(done) = &self.done {
            let mut done = done.clone();
            let _ = tokio::time::timeout(Duration::from_secs(5), done.wait_for(|d| *d)).await;
        }
    }
}

impl Store {
    /// Campaigns for leadership among the replicas sharing this store, as `identity`, with a
    /// lease of `lease` (a dead leader is replaced within about that long). Stores that are not
    /// shared (memory, redb) always lead.
    pub fn campaign(&self, identity: &str, lease: Duration) -> Leadership {
        let Some(etcd) = self.etcd() else {
            return Leadership::always();
        };
        let (leading_tx, leading) = watch::channel(false);
        let (stop_tx, stop) = watch::channel(false);
        let (done_tx, done) = watch::channel(false);
        let c = Campaign {
            pool: etcd.pool(),
            key: etcd.system_key("leader"),
            identity: identity.to_string(),
            ttl: lease.max(Duration::from_secs(2)),
            leading: leading_tx,
        };
        tokio::spawn(async move {
            c.run(stop).await;
            done_tx.send_replace(true);
        });
        Leadership {
            leading,
            stop: Some(std::sync::Arc::new(stop_tx)),
            done: Some(done),
        }
    }
}

struct Campaign {
    pool: std::sync::Arc<Pool>,
    key: String,
    identity: String,
    ttl: Duration,
    leading: watch::Sender<bool>,
}

enum Outcome {
    Stop,
    Retry,
}

impl Campaign {
    async fn run(&self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            match self.term(&mut stop).await {
                Outcome::Stop => return,
                Outcome::Retry => {
                    tokio::select! {
                        _ = stop.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    fn set_leading(&self, leading: bool) {
        let was = self.leading.send_replace(leading);
        if was != leading {
            if leading {
                tracing::info!(identity = %self.identity, "this hub replica is now the leader");
            } else {
                tracing::warn!(identity = %self.identity, "this hub replica is no longer the leader");
            }
        }
    }

    /// One lease: campaign with it, lead while it is renewed. Every call to etcd is bounded by
    /// the request timeout, so a leader cut off from etcd notices and steps down in time.
    async fn term(&self, stop: &mut watch::Receiver<bool>) -> Outcome {
        let timeout = self.pool.timeout();
        let ttl = self.ttl.as_secs().max(2) as i64;
        let lease = match self
            .pool
            .call(Op::Write, |c| async move {
                c.lease_client().grant(ttl, None).await
            })
            .await
        {
            Ok(g) => g.id(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot obtain a leader lease from etcd");
                return Outcome::Retry;
            }
        };
        let mut renewed = Instant::now();
        let mut keepalive = self.keep_alive(lease).await;
        let mut leading = false;
        let mut ticker = tokio::time::interval(self.ttl / 3);
        let renew_deadline = self.ttl * 2 / 3;
        let mut holder_watch: Option<WatchStream> = None;
        loop {
            if !leading {
                match self.claim(lease).await {
                    Ok((true, _)) => {
                        leading = true;
                        holder_watch = None;
                        self.set_leading(true);
                    }
                    Ok((false, rev)) if holder_watch.is_none() => {
                        holder_watch = self.watch_holder(rev).await;
                    }
                    Ok(_) | Err(_) => {}
                }
            }
            let deadline = renewed + renew_deadline;
            tokio::select! {
                _ = stop.changed() => {
                    self.set_leading(false);
                    let _ = self.pool.call(Op::Write, |c| async move {
                        c.lease_client().revoke(lease).await
                    }).await;
                    return Outcome::Stop;
                }
                _ = ticker.tick() => {
                    let sent = match keepalive.as_mut() {
                        Some((keeper, _)) => {
                            matches!(tokio::time::timeout(timeout, keeper.keep_alive()).await, Ok(Ok(())))
                        }
                        None => false,
                    };
                    if !sent {
                        keepalive = self.keep_alive(lease).await;
                    }
                }
                r = async {
                    match keepalive.as_mut() {
                        Some((_, renewals)) => renewals.message().await,
                        None => std::future::pending().await,
                    }
                } => match r {
                    Ok(Some(r)) if r.ttl() > 0 => renewed = Instant::now(),
                    Ok(Some(_)) => {
                        // The lease is gone on the server.
                        self.set_leading(false);
                        return Outcome::Retry;
                    }
                    // The stream broke; the next tick opens a new one (on another member if
                    // this one failed).
                    Ok(None) | Err(_) => keepalive = None,
                },
                _ = tokio::time::sleep_until(deadline.into()), if leading => {
                    tracing::warn!("cannot renew the leader lease in time; stepping down");
                    self.set_leading(false);
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        let (_, c) = self.pool.current();
                        c.lease_client().revoke(lease).await
                    }).await;
                    return Outcome::Retry;
                }
                ev = async {
                    match holder_watch.as_mut() {
                        Some(w) => w.message().await,
                        None => std::future::pending().await,
                    }
                }, if !leading => match ev {
                    Ok(Some(r)) if r.canceled() => holder_watch = None,
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => holder_watch = None,
                },
                // A safety net for a lost watch: try again now and then.
                _ = tokio::time::sleep(Duration::from_secs(2)), if !leading => {}
            }
            if !leading && renewed.elapsed() > self.ttl {
                // Our own lease has expired without renewals: start a new term.
                return Outcome::Retry;
            }
        }
    }

    /// Opens the stream that renews `lease`, on the member in use.
    async fn keep_alive(&self, lease: i64) -> Option<(LeaseKeeper, LeaseKeepAliveStream)> {
        let (member, c) = self.pool.current();
        match tokio::time::timeout(self.pool.timeout(), c.lease_client().keep_alive(lease)).await {
            Ok(Ok(k)) => Some(k),
            Ok(Err(e)) => {
                self.pool.failed(member, &e);
                None
            }
            Err(_) => {
                self.pool.failed(member, &"no answer");
                None
            }
        }
    }

    /// Takes the leader key with `lease` unless another lease holds it. Returns whether this
    /// replica holds it now (also when an earlier attempt whose answer was lost took it), and
    /// the revision of the answer.
    async fn claim(&self, lease: i64) -> Result<(bool, i64), crate::Error> {
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(
                self.key.clone(),
                self.identity.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(self.key.clone(), None)]);
        let r = self
            .pool
            .call(Op::Write, |c| {
                let txn = txn.clone();
                async move { c.kv_client().txn(txn).await }
            })
            .await?;
        let rev = r.header().map_or(0, |h| h.revision());
        let ours = r.succeeded()
            || r.op_responses().into_iter().any(|o| match o {
                TxnOpResponse::Get(g) => g.kvs().first().is_some_and(|kv| kv.lease() == lease),
                _ => false,
            });
        Ok((ours, rev))
    }

    /// Watches the leader key from after `rev`, to campaign again as soon as it is deleted.
    async fn watch_holder(&self, rev: i64) -> Option<WatchStream> {
        let (member, c) = self.pool.current();
        let opts = WatchOptions::new().with_start_revision(rev + 1);
        match tokio::time::timeout(
            self.pool.timeout(),
            c.watch_client().watch(self.key.clone(), Some(opts)),
        )
        .await
        {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(e)) => {
                self.pool.failed(member, &e);
                None
            }
            Err(_) => None,
        }
    }
}
