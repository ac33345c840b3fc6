//! Leader election among hub replicas sharing an etcd store: the leader holds the key
//! `{prefix}/!leader`, attached to an etcd lease it keeps alive. A leader that cannot renew its
//! lease for two thirds of its duration steps down before the lease can expire on the server,
//! so two replicas never both believe they lead (barring a process paused for longer than a
//! third of the lease). When the leader dies its lease expires, etcd deletes the key, and a
//! waiting replica, which watches the key, takes it at once. A leader that stops resigns:
//! it revokes its lease, and another replica takes over immediately.

use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, WatchOptions};
use tokio::sync::watch;

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
            client: etcd.client(),
            key: etcd.system_key("leader"),
            identity: identity.to_string(),
            ttl: lease.max(Duration::from_secs(2)),
            timeout: etcd.timeout(),
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
    client: Client,
    key: String,
    identity: String,
    ttl: Duration,
    timeout: Duration,
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

    /// One lease: campaign with it, lead while it is renewed.
    async fn term(&self, stop: &mut watch::Receiver<bool>) -> Outcome {
        let mut lc = self.client.lease_client();
        let granted = tokio::time::timeout(
            self.timeout,
            lc.grant(self.ttl.as_secs().max(2) as i64, None),
        )
        .await;
        let lease = match granted {
            Ok(Ok(g)) => g.id(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot obtain a leader lease from etcd");
                return Outcome::Retry;
            }
            Err(_) => return Outcome::Retry,
        };
        let mut renewed = Instant::now();
        let (mut keeper, mut renewals) = match lc.keep_alive(lease).await {
            Ok(k) => k,
            Err(_) => return Outcome::Retry,
        };
        let mut leading = false;
        let mut ticker = tokio::time::interval(self.ttl / 3);
        let renew_deadline = self.ttl * 2 / 3;
        let mut kv = self.client.kv_client();
        let mut wc = self.client.watch_client();
        let mut holder_watch = None;
        loop {
            if !leading {
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
                    )]);
                match tokio::time::timeout(self.timeout, kv.txn(txn)).await {
                    Ok(Ok(r)) if r.succeeded() => {
                        leading = true;
                        holder_watch = None;
                        self.set_leading(true);
                    }
                    Ok(Ok(r)) if holder_watch.is_none() => {
                        let rev = r.header().map_or(0, |h| h.revision());
                        let opts = WatchOptions::new().with_start_revision(rev + 1);
                        holder_watch = wc.watch(self.key.clone(), Some(opts)).await.ok();
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) | Err(_) => {}
                }
            }
            let deadline = renewed + renew_deadline;
            tokio::select! {
                _ = stop.changed() => {
                    self.set_leading(false);
                    let _ = tokio::time::timeout(self.timeout, lc.revoke(lease)).await;
                    return Outcome::Stop;
                }
                _ = ticker.tick() => {
                    if keeper.keep_alive().await.is_err() {
                        if let Ok((k, r)) = lc.keep_alive(lease).await {
                            keeper = k;
                            renewals = r;
                        }
                    }
                }
                r = renewals.message() => match r {
                    Ok(Some(r)) if r.ttl() > 0 => renewed = Instant::now(),
                    Ok(Some(_)) => {
                        // The lease is gone on the server.
                        self.set_leading(false);
                        return Outcome::Retry;
                    }
                    Ok(None) | Err(_) => {
                        // The stream broke; the next tick opens a new one.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if let Ok((k, r)) = lc.keep_alive(lease).await {
                            keeper = k;
                            renewals = r;
                        }
                    }
                },
                _ = tokio::time::sleep_until(deadline.into()), if leading => {
                    tracing::warn!("cannot renew the leader lease in time; stepping down");
                    self.set_leading(false);
                    let _ = tokio::time::timeout(Duration::from_secs(1), lc.revoke(lease)).await;
                    return Outcome::Retry;
                }
                ev = async {
                    match holder_watch.as_mut() {
                        Some(w) => w.message().await,
                        None => std::future::pending().await,
                    }
                }, if !leading => match ev {
                    Ok(Some(r)) if r.events().iter().any(|e| e.event_type() == EventType::Delete) => {}
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
}
