//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's leaderelection
//! does it, for hub replicas whose API server is another Kubernetes API server: a replica
//! leads while it holds the Lease and renews it every `retry`; another takes the Lease over
//! once it has seen the same record, unrenewed, for a whole lease duration (judged by its own
//! clock, so clocks need not agree). A leader that cannot renew for two thirds of the
//! duration stops leading before anyone else may take over. A leader that resigns clears the
//! holder, and a waiting replica takes over at its next try.

use std::time::{Duration, Instant};

use flotilla_store::Leadership;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};
use tokio::sync::watch;

/// Namespace of the hub's own objects on its API server (the leader Lease, the webhook CA).
pub const SYSTEM_NAMESPACE: &str = "flotilla-system";
/// The Lease naming the replica whose controllers run: the election itself on another API
/// server, a record of the store's election on an etcd-backed hub.
pub const LEADER_LEASE: &str = "flotilla-hub";

/// Where the Lease lives and how long it lasts.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease (created if missing).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity, recorded as the Lease's holder.
    pub identity: String,
    /// How long a Lease holds without renewal.
    pub duration: Duration,
}

impl LeaseConfig {
    fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    fn retry(&self) -> Duration {
        (self.duration / 7).max(Duration::from_millis(200))
    }
}

fn lease_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease"),
        "leases",
    )
}

/// The time now in a Lease's MicroTime format.
fn micro_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Campaigns for the Lease through `client` until [`Leadership::resign`].
pub fn campaign(client: kube::Client, config: LeaseConfig) -> Leadership {
    let (leading_tx, leading) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(false);
    let (done_tx, done) = watch::channel(false);
    tokio::spawn(async move {
        run(client, &config, &leading_tx, stop).await;
        leading_tx.send_replace(false);
        done_tx.send_replace(true);
    });
    Leadership::from_election(leading, stop_tx, done)
}

/// Records leadership decided elsewhere (the etcd election of replicas sharing a store) in
/// the Lease, as kube-controller-manager's Lease shows who leads: while this replica leads,
/// it writes itself as holder and renews every third of the duration. Runs until cancelled
/// (when leadership is lost); nothing reads the record to decide anything.
pub async fn record(client: kube::Client, config: LeaseConfig) {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &config.namespace, &lease_resource());
    loop {
        if let Err(e) = record_once(&client, &api, &config).await {
            tracing::warn!(error = %e, lease = %config.name, "recording the leader");
        }
        tokio::time::sleep(config.duration / 3).await;
    }
}

/// The Lease as its first holder, this replica, writes it.
fn first_lease(config: &LeaseConfig, now: &str) -> serde_json::Result<DynamicObject> {
    serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": config.name, "namespace": config.namespace},
        "spec": {"holderIdentity": config.identity,
            "leaseDurationSeconds": config.duration.as_secs().max(1),
            "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
    }))
}

async fn record_once(
    client: &kube::Client,
    api: &Api<DynamicObject>,
    config: &LeaseConfig,
) -> Result<(), crate::Error> {
    let now = micro_now();
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        crate::install::ensure_namespace(client, &config.namespace).await?;
        let lease = first_lease(config, &now)?;
        api.create(&PostParams::default(), &lease).await?;
        return Ok(());
    };
    let spec = &mut lease.data["spec"];
    if spec["holderIdentity"] != json!(config.identity) {
        spec["acquireTime"] = json!(now);
        spec["leaseTransitions"] = json!(spec["leaseTransitions"].as_i64().unwrap_or(0) + 1);
    }
    spec["holderIdentity"] = json!(config.identity);
    spec["leaseDurationSeconds"] = json!(config.duration.as_secs().max(1));
    spec["renewTime"] = json!(now);
    // A conflict means a replica that led a moment ago wrote last; the next round wins.
    api.replace(&config.name, &PostParams::default(), &lease)
        .await?;
    Ok(())
}

/// What a replica last saw of the Lease, and when.
struct Observed {
    record: Value,
    at: Instant,
}

async fn run(
    client: kube::Client,
    config: &LeaseConfig,
    leading: &watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &config.namespace, &lease_resource());
    let mut observed: Option<Observed> = None;
    let mut renewed: Option<Instant> = None;
    loop {
        match try_acquire(&client, &api, config, &mut observed).await {
            Ok(true) => {
                renewed = Some(Instant::now());
                if !*leading.borrow() {
                    tracing::info!(identity = %config.identity, lease = %config.name, "leading");
                }
                leading.send_replace(true);
            }
            Ok(false) => {
                if *leading.borrow() {
                    tracing::warn!(identity = %config.identity, "lease taken by another replica; stepping down");
                }
                renewed = None;
                leading.send_replace(false);
            }
            Err(e) => {
                tracing::warn!(error = %e, lease = %config.name, "lease election");
                if renewed.is_some_and(|r| r.elapsed() > config.renew_deadline()) {
                    tracing::warn!(identity = %config.identity, "could not renew the lease; stepping down");
                    renewed = None;
                    leading.send_replace(false);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(config.retry()) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    if *leading.borrow() {
        leading.send_replace(false);
        release(&api, config).await;
    }
}

/// One try: takes or renews the Lease. Ok(true) when this replica holds it now.
async fn try_acquire(
    client: &kube::Client,
    api: &Api<DynamicObject>,
    config: &LeaseConfig,
    observed: &mut Option<Observed>,
) -> Result<bool, crate::Error> {
    let now = micro_now();
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        crate::install::ensure_namespace(client, &config.namespace).await?;
        let lease = first_lease(config, &now)?;
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        };
    };
    let spec = lease.data["spec"].clone();
    let holder = spec["holderIdentity"].as_str().unwrap_or("");
    if observed.as_ref().is_none_or(|o| o.record != spec) {
        *observed = Some(Observed {
            record: spec.clone(),
            at: Instant::now(),
        });
    }
    let duration = spec["leaseDurationSeconds"]
        .as_u64()
        .map(Duration::from_secs)
        .unwrap_or(config.duration);
    let expired = observed.as_ref().is_some_and(|o| o.at.elapsed() > duration);
    let mine = holder == config.identity;
    if !mine && !holder.is_empty() && !expired {
        return Ok(false);
    }
    let mut new = spec.clone();
    new["holderIdentity"] = json!(config.identity);
    new["leaseDurationSeconds"] = json!(config.duration.as_secs().max(1));
    new["renewTime"] = json!(now);
    if !mine {
        new["acquireTime"] = json!(now);
        new["leaseTransitions"] = json!(spec["leaseTransitions"].as_i64().unwrap_or(0) + 1);
    }
    lease.data["spec"] = new;
    // The update carries the resourceVersion read above: of two replicas that saw the same
    // expired Lease, one wins and the other gets a conflict.
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(l) => {
            *observed = Some(Observed {
                record: l.data["spec"].clone(),
                at: Instant::now(),
            });
            Ok(true)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Gives the Lease up so another replica takes over at its next try.
async fn release(api: &Api<DynamicObject>, config: &LeaseConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&config.name).await else {
        return;
    };
    if lease.data["spec"]["holderIdentity"] != json!(config.identity) {
        return;
    }
    lease.data["spec"]["holderIdentity"] = Value::Null;
    lease.data["spec"]["leaseDurationSeconds"] = json!(1);
    lease.data["spec"]["renewTime"] = json!(micro_now());
    if let Err(e) = api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        tracing::warn!(error = %e, "releasing the lease");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn server() -> kube::Client {
        let server =
            flotilla_apiserver::ApiServer::new(flotilla_store::Store::memory(), Default::default());
        server.start().await.unwrap();
        server.client()
    }

    fn config(identity: &str, duration: Duration) -> LeaseConfig {
        LeaseConfig {
            namespace: "flotilla-system".into(),
            name: "hub".into(),
            identity: identity.into(),
            duration,
        }
    }

    async fn wait_leading(l: &Leadership, want: bool) {
        let mut rx = l.subscribe();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|x| *x == want))
            .await
            .expect("leadership did not change in time")
            .unwrap();
    }

    async fn holder(client: &kube::Client) -> Value {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "flotilla-system", &lease_resource());
        api.get("hub").await.unwrap().data["spec"]["holderIdentity"].clone()
    }

    #[tokio::test]
    async fn one_replica_leads_and_a_resigning_leader_hands_over() {
        let client = server().await;
        let a = campaign(client.clone(), config("a", Duration::from_secs(2)));
        wait_leading(&a, true).await;
        let b = campaign(client.clone(), config("b", Duration::from_secs(2)));
        // Never two leaders: b leads only after a has resigned, however long b campaigns.
        let resigned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let early = {
            let mut rx = b.subscribe();
            let resigned = resigned.clone();
            tokio::spawn(async move {
                let _ = rx.wait_for(|l| *l).await;
                !resigned.load(std::sync::atomic::Ordering::SeqCst)
            })
        };
        // While a renews its Lease three times, b tries to take it at every retry of its own.
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "flotilla-system", &lease_resource());
        let mut renewals = std::collections::BTreeSet::new();
        while renewals.len() < 4 {
            let l = api.get("hub").await.unwrap();
            renewals.insert(l.data["spec"]["renewTime"].to_string());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(holder(&client).await, "a");
        resigned.store(true, std::sync::atomic::Ordering::SeqCst);
        a.resign().await;
        assert!(!a.is_leader());
        wait_leading(&b, true).await;
        assert!(!early.await.unwrap(), "b led while a still held the Lease");
        assert_eq!(holder(&client).await, "b");
        b.resign().await;
        assert_eq!(holder(&client).await, Value::Null);
    }

    #[tokio::test]
    async fn the_record_names_whoever_leads_and_counts_transitions() {
        let client = server().await;
        let lease = |c: &kube::Client| {
            let api: Api<DynamicObject> =
                Api::namespaced_with(c.clone(), "flotilla-system", &lease_resource());
            async move {
                api.get_opt("hub")
                    .await
                    .unwrap()
                    .map(|l| l.data["spec"].clone())
            }
        };
        let a = tokio::spawn(record(client.clone(), config("a", Duration::from_secs(3))));
        let mut spec = None;
        for _ in 0..100 {
            spec = lease(&client).await;
            if spec.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let spec = spec.expect("the leader is recorded");
        assert_eq!(
            (
                &spec["holderIdentity"],
                &spec["leaseTransitions"],
                &spec["leaseDurationSeconds"]
            ),
            (&json!("a"), &json!(0), &json!(3))
        );
        // Leadership moves: a's recorder is cancelled, b's starts.
        a.abort();
        let b = tokio::spawn(record(client.clone(), config("b", Duration::from_secs(3))));
        let mut moved = None;
        for _ in 0..100 {
            moved = lease(&client)
                .await
                .filter(|s| s["holderIdentity"] == json!("b"));
            if moved.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let moved = moved.expect("the new leader is recorded");
        assert_eq!(moved["leaseTransitions"], json!(1));
        assert_ne!(moved["acquireTime"], spec["acquireTime"]);
        b.abort();
    }

    #[tokio::test]
    async fn a_lease_left_unrenewed_is_taken_over_after_its_duration() {
        let client = server().await;
        // A leader that died: its Lease says it holds for 1 s and is never renewed. The new
        // replica judges expiry by its own clock, from when it first saw that record.
        crate::install::ensure_namespace(&client, "flotilla-system")
            .await
            .unwrap();
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "flotilla-system", &lease_resource());
        let ghost: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "hub", "namespace": "flotilla-system"},
            "spec": {"holderIdentity": "ghost", "leaseDurationSeconds": 1,
                "renewTime": "2020-01-01T00:00:00.000000Z", "leaseTransitions": 3}
        }))
        .unwrap();
        api.create(&PostParams::default(), &ghost).await.unwrap();
        let start = Instant::now();
        let b = campaign(client.clone(), config("b", Duration::from_secs(2)));
        wait_leading(&b, true).await;
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "took over a live lease"
        );
        let lease = api.get("hub").await.unwrap();
        assert_eq!(lease.data["spec"]["holderIdentity"], "b");
        assert_eq!(lease.data["spec"]["leaseTransitions"], 4);
        b.resign().await;
    }
}
