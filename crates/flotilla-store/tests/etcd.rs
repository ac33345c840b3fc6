//! The etcd engine against a real etcd (Debian's `etcd-server`), started by the tests: several
//! stores on one prefix behave as hub replicas sharing etcd.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use flotilla_store::etcd_server::EtcdCluster;
use flotilla_store::{
    Attrs, Error, EtcdConfig, EventKind, Precondition, Store, StoreConfig, Write,
};
use serde_json::json;

/// One etcd for the whole test binary; every test uses its own prefix.
fn shared_etcd() -> &'static (EtcdCluster, tempfile::TempDir) {
    static ETCD: OnceLock<(EtcdCluster, tempfile::TempDir)> = OnceLock::new();
    ETCD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        // A static is never dropped: its directory goes when the test binary does.
        flotilla_store::supervised::remove_when_gone(dir.path()).unwrap();
        (EtcdCluster::start(dir.path(), 1).unwrap(), dir)
    })
}

fn config(endpoints: Vec<String>, prefix: &str) -> EtcdConfig {
    let mut c = EtcdConfig::new(endpoints);
    c.prefix = prefix.to_string();
    c.request_timeout = Duration::from_secs(2);
    c
}

async fn open(prefix: &str) -> Store {
    Store::open_etcd(
        config(shared_etcd().0.endpoints(), prefix),
        StoreConfig::default(),
    )
    .await
    .unwrap()
}

fn put(name: &str, v: &str, precondition: Precondition) -> Write {
    Write::Put {
        value: json!({"metadata": {"name": name}, "data": {"v": v}}),
        attrs: Attrs {
            labels: vec![("app".into(), v.into())],
            fields: vec![],
        },
        precondition,
    }
}

fn value(store: &Store, key: &str) -> Option<serde_json::Value> {
    store
        .get(key)
        .map(|o| serde_json::from_slice(&o.data).unwrap())
}

#[tokio::test]
async fn replicas_share_writes_revisions_and_preconditions() {
    let a = open("/t-share").await;
    let b = open("/t-share").await;
    let created = a
        .write("/k/x", put("x", "1", Precondition::MustNotExist))
        .await
        .unwrap();
    // resourceVersion is etcd's revision, set in the stored bytes.
    assert_eq!(
        value(&a, "/k/x").unwrap()["metadata"]["resourceVersion"],
        created.rev.to_string()
    );
    assert_eq!(created.object.attrs.label("app"), Some("1"));
    // Read-your-writes through the other replica once it has synced.
    b.sync().await.unwrap();
    assert_eq!(b.get("/k/x").unwrap().mod_rev, created.rev);
    assert_eq!(value(&b, "/k/x").unwrap()["data"]["v"], "1");

    // Optimistic concurrency holds across replicas.
    let updated = b
        .write(
            "/k/x",
            put("x", "2", Precondition::ModRevision(created.rev)),
        )
        .await
        .unwrap();
    assert_eq!(updated.prev.as_ref().unwrap().mod_rev, created.rev);
    assert_eq!(updated.object.create_rev, created.rev);
    let err = a
        .write(
            "/k/x",
            put("x", "3", Precondition::ModRevision(created.rev)),
        )
        .await
        .unwrap_err();
    match err {
        Error::Conflict {
            expected, actual, ..
        } => assert_eq!((expected, actual), (created.rev, updated.rev)),
        e => panic!("{e}"),
    }
    let err = a
        .write("/k/x", put("x", "3", Precondition::MustNotExist))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    let err = a
        .write("/k/none", put("n", "3", Precondition::MustExist))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = a
        .write(
            "/k/none",
            Write::Delete {
                last: json!({}),
                precondition: Precondition::None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    // A third replica opened later loads everything, with the same revisions.
    let c = open("/t-share").await;
    assert_eq!(c.get("/k/x").unwrap().mod_rev, updated.rev);
    assert!(c.revision() >= updated.rev);
    // Other prefixes are invisible.
    let other = open("/t-share-other").await;
    assert!(other.get("/k/x").is_none());
}

#[tokio::test]
async fn a_watch_on_one_replica_sees_writes_through_another() {
    let a = open("/t-watch").await;
    let b = open("/t-watch").await;
    let start = b.sync().await.unwrap();
    let mut w = b.watch("/k/", start).unwrap();
    let ev1 = a
        .write("/k/a", put("a", "1", Precondition::None))
        .await
        .unwrap();
    let ev2 = a
        .write(
            "/k/a",
            Write::Delete {
                last: json!({"metadata": {"name": "a"}}),
                precondition: Precondition::ModRevision(ev1.rev),
            },
        )
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.rev, got.kind), (ev1.rev, EventKind::Put));
    let got = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.rev, got.kind), (ev2.rev, EventKind::Delete));
    // A delete event carries the final state at the deletion's revision.
    let last: serde_json::Value = serde_json::from_slice(&got.object.data).unwrap();
    assert_eq!(last["metadata"]["resourceVersion"], ev2.rev.to_string());
    assert_eq!(last["data"]["v"], "1");
    assert_eq!(got.prev.as_ref().unwrap().mod_rev, ev1.rev);
}

#[tokio::test]
async fn sync_catches_up_when_other_prefixes_move_the_revision() {
    let a = open("/t-fence").await;
    let noise = open("/t-fence-noise").await;
    for i in 0..5 {
        noise
            .write(&format!("/n/{i}"), put("n", "1", Precondition::None))
            .await
            .unwrap();
    }
    // `a` sees no events of its own, yet sync returns a revision at least as new as them.
    let rev = a.sync().await.unwrap();
    assert!(rev >= noise.revision(), "{rev} < {}", noise.revision());
}

#[tokio::test]
async fn compaction_answers_gone_for_older_revisions() {
    let a = open("/t-compact").await;
    let first = a
        .write("/k/a", put("a", "1", Precondition::None))
        .await
        .unwrap();
    let second = a
        .write("/k/a", put("a", "2", Precondition::None))
        .await
        .unwrap();
    a.compact(second.rev).await.unwrap();
    assert!(matches!(
        a.watch("/k/", first.rev),
        Err(Error::Compacted { .. })
    ));
    assert!(matches!(
        a.snapshot_at(first.rev, "/k/"),
        Err(Error::Compacted { .. })
    ));
    // Compacting again (as another replica would) is fine.
    a.compact(second.rev).await.unwrap();
    assert!(a.watch("/k/", second.rev).is_ok());
}

#[tokio::test]
async fn leadership_is_held_by_one_replica_and_passes_on_resign() {
    let a = open("/t-leader").await;
    let b = open("/t-leader").await;
    let la = a.campaign("a", Duration::from_secs(3));
    let lb = b.campaign("b", Duration::from_secs(3));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(la.is_leader() || lb.is_leader()) {
        assert!(Instant::now() < deadline, "nobody became leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Exactly one leads, and keeps leading.
    for _ in 0..20 {
        assert!(la.is_leader() != lb.is_leader());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (leader, follower) = if la.is_leader() { (la, lb) } else { (lb, la) };
    leader.resign().await;
    assert!(!leader.is_leader());
    let mut rx = follower.subscribe();
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|l| *l))
        .await
        .expect("the follower takes over after a resignation")
        .unwrap();
    // Single-process stores always lead.
    assert!(Store::memory()
        .campaign("x", Duration::from_secs(3))
        .is_leader());
}

#[tokio::test]
async fn shared_values_are_created_once() {
    let a = open("/t-shared").await;
    let b = open("/t-shared").await;
    let first = a.shared_value("pki", b"one".to_vec()).await.unwrap();
    let second = b.shared_value("pki", b"two".to_vec()).await.unwrap();
    assert_eq!(first.as_deref(), Some(&b"one"[..]));
    assert_eq!(second.as_deref(), Some(&b"one"[..]));
    // The hub's own keys are not objects.
    assert!(a.snapshot().range("/", None).next().is_none());
    assert_eq!(
        Store::memory().shared_value("pki", vec![1]).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn an_invalid_prefix_is_refused() {
    let err = Store::open_etcd(
        config(vec!["http://127.0.0.1:1".into()], "nope"),
        StoreConfig::default(),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
}

/// A private etcd, as faults here would disturb the other tests.
#[tokio::test]
async fn etcd_down_answers_promptly_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = EtcdCluster::start(dir.path(), 1).unwrap();
    let store = Store::open_etcd(config(etcd.endpoints(), "/t-down"), StoreConfig::default())
        .await
        .unwrap();
    store
        .write("/k/a", put("a", "1", Precondition::None))
        .await
        .unwrap();
    etcd.kill(0);
    // Requests to a dead etcd fail (after the store's request timeout) instead of hanging;
    // the outer wait only guards against a hang.
    let guard = Duration::from_secs(60);
    let err = tokio::time::timeout(guard, store.sync())
        .await
        .expect("a sync against a dead etcd fails instead of hanging")
        .unwrap_err();
    assert!(
        matches!(err, Error::Unavailable(_) | Error::Timeout(_)),
        "{err}"
    );
    let err = tokio::time::timeout(
        guard,
        store.write("/k/b", put("b", "1", Precondition::None)),
    )
    .await
    .expect("a write against a dead etcd fails instead of hanging")
    .unwrap_err();
    assert!(
        matches!(err, Error::Unavailable(_) | Error::Timeout(_)),
        "{err}"
    );
    // Reads of the cache still work.
    assert!(store.get("/k/a").is_some());
    etcd.restart(0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let ev = loop {
        match store.write("/k/b", put("b", "1", Precondition::None)).await {
            Ok(ev) => break ev,
            Err(e) => {
                assert!(Instant::now() < deadline, "no recovery: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    // The watch resumed: the write reached the cache.
    store.sync().await.unwrap();
    assert_eq!(store.get("/k/b").unwrap().mod_rev, ev.rev);
}

#[tokio::test]
async fn a_three_member_cluster_keeps_serving_without_one_member() {
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = EtcdCluster::start(dir.path(), 3).unwrap();
    let store = Store::open_etcd(config(etcd.endpoints(), "/t-three"), StoreConfig::default())
        .await
        .unwrap();
    store
        .write("/k/a", put("a", "1", Precondition::None))
        .await
        .unwrap();
    etcd.kill(0);
    // Until the survivors notice (and, if it was etcd's leader, elect another: etcd holds
    // writes meanwhile), writes may fail, as unavailable or timed out, never otherwise.
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = store
        .write("/k/first", put("b", "1", Precondition::None))
        .await
    {
        assert!(
            matches!(e, Error::Unavailable(_) | Error::Timeout(_)),
            "{e}"
        );
        assert!(Instant::now() < deadline, "{e}");
    }
    // Then requests go to a live member: none fails, writes or consistent reads (the etcd
    // client's own balancing kept sending every third one to the dead member).
    for n in 0..20 {
        store
            .write(&format!("/k/{n}"), put("b", "1", Precondition::None))
            .await
            .unwrap();
        store.sync().await.unwrap();
    }
    assert!(store.get("/k/19").is_some());
}
