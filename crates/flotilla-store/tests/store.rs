//! Behaviour of the store through its public API, over the memory and redb backends.

use std::collections::HashSet;
use std::time::Duration;

use flotilla_store::{
    Attrs, Error, EventKind, Precondition, RedbBackend, Store, StoreConfig, Write,
};
use serde_json::{json, Value};

fn put(name: &str, data: &str, precondition: Precondition) -> Write {
    Write::Put {
        value: json!({"metadata": {"name": name}, "data": {"v": data}}),
        attrs: Attrs {
            labels: vec![("app".into(), data.into())],
            fields: vec![],
        },
        precondition,
    }
}

fn delete(name: &str, precondition: Precondition) -> Write {
    Write::Delete {
        last: json!({"metadata": {"name": name}}),
        precondition,
    }
}

fn data_of(store: &Store, key: &str) -> Option<Value> {
    store
        .get(key)
        .map(|o| serde_json::from_slice(&o.data).unwrap())
}

#[tokio::test]
async fn writes_number_revisions_and_enforce_preconditions() {
    let store = Store::memory();
    assert_eq!(store.revision(), 0);
    let created = store
        .write("/k/a", put("a", "1", Precondition::MustNotExist))
        .await
        .unwrap();
    assert_eq!(created.rev, 1);
    assert_eq!(created.object.create_rev, 1);
    assert_eq!(
        data_of(&store, "/k/a").unwrap()["metadata"]["resourceVersion"],
        "1"
    );

    let err = store
        .write("/k/a", put("a", "x", Precondition::MustNotExist))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");

    let err = store
        .write("/k/a", put("a", "x", Precondition::ModRevision(7)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                expected: 7,
                actual: 1,
                ..
            }
        ),
        "{err}"
    );

    let updated = store
        .write("/k/a", put("a", "2", Precondition::ModRevision(1)))
        .await
        .unwrap();
    assert_eq!((updated.rev, updated.object.create_rev), (2, 1));
    assert_eq!(updated.prev.as_ref().unwrap().mod_rev, 1);

    let err = store
        .write("/k/missing", put("m", "1", Precondition::MustExist))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = store
        .write("/k/missing", delete("m", Precondition::None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    let deleted = store
        .write("/k/a", delete("a", Precondition::ModRevision(2)))
        .await
        .unwrap();
    assert_eq!(deleted.kind, EventKind::Delete);
    assert_eq!(deleted.rev, 3);
    // The final state carries the deletion's revision.
    let last: Value = serde_json::from_slice(&deleted.object.data).unwrap();
    assert_eq!(last["metadata"]["resourceVersion"], "3");
    assert!(store.get("/k/a").is_none());
    // Failed writes used no revision.
    assert_eq!(store.revision(), 3);
}

#[tokio::test]
async fn snapshots_show_past_revisions_of_a_prefix() {
    let store = Store::memory();
    for (name, v) in [("a", "1"), ("b", "1"), ("c", "1")] {
        store
            .write(&format!("/k/{name}"), put(name, v, Precondition::None))
            .await
            .unwrap();
    }
    store
        .write("/k/a", put("a", "2", Precondition::None))
        .await
        .unwrap(); // rev 4
    store
        .write("/k/b", delete("b", Precondition::None))
        .await
        .unwrap(); // rev 5
    store
        .write("/k/d", put("d", "1", Precondition::None))
        .await
        .unwrap(); // rev 6

    let names = |s: &flotilla_store::Snapshot| -> Vec<String> {
        s.range("/k/", None).map(|o| o.key.to_string()).collect()
    };
    let now = store.snapshot();
    assert_eq!(now.rev, 6);
    assert_eq!(names(&now), ["/k/a", "/k/c", "/k/d"]);

    let at3 = store.snapshot_at(3, "/k/").unwrap();
    assert_eq!(names(&at3), ["/k/a", "/k/b", "/k/c"]);
    assert_eq!(at3.get("/k/a").unwrap().mod_rev, 1);

    // Paging: everything after a key, and counting what remains.
    let after_a: Vec<_> = at3
        .range("/k/", Some("/k/a"))
        .map(|o| o.key.to_string())
        .collect();
    assert_eq!(after_a, ["/k/b", "/k/c"]);
    assert_eq!(at3.count("/k/", Some("/k/b")), 1);

    assert!(matches!(
        store.snapshot_at(7, "/k/"),
        Err(Error::TooNew {
            requested: 7,
            current: 6
        })
    ));
    store.compact(4).await.unwrap();
    assert!(matches!(
        store.snapshot_at(3, "/k/"),
        Err(Error::Compacted {
            requested: 3,
            oldest: 4
        })
    ));
    assert_eq!(
        names(&store.snapshot_at(4, "/k/").unwrap()),
        ["/k/a", "/k/b", "/k/c"]
    );
}

#[tokio::test]
async fn watch_replays_from_a_revision_then_follows() {
    let store = Store::memory();
    store
        .write("/k/a", put("a", "1", Precondition::None))
        .await
        .unwrap();
    store
        .write("/other/x", put("x", "1", Precondition::None))
        .await
        .unwrap();
    store
        .write("/k/b", put("b", "1", Precondition::None))
        .await
        .unwrap();

    let mut w = store.watch("/k/", 1).unwrap();
    let ev = w.next().await.unwrap();
    assert_eq!((ev.rev, ev.key()), (3, "/k/b"));

    let writer = store.clone();
    tokio::spawn(async move {
        writer
            .write("/other/y", put("y", "1", Precondition::None))
            .await
            .unwrap();
        writer
            .write("/k/a", delete("a", Precondition::None))
            .await
            .unwrap();
    });
    let ev = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((ev.rev, ev.kind, ev.key()), (5, EventKind::Delete, "/k/a"));
    assert_eq!(w.revision(), 5);

    store.compact(4).await.unwrap();
    assert!(matches!(
        store.watch("/k/", 3),
        Err(Error::Compacted { .. })
    ));
    assert!(matches!(store.watch("/k/", 9), Err(Error::TooNew { .. })));
}

#[tokio::test]
async fn a_lagging_watcher_catches_up_from_the_log() {
    let config = StoreConfig {
        event_log_capacity: 1000,
        watch_buffer: 16,
        ..StoreConfig::default()
    };
    let store = Store::open(flotilla_store::MemoryBackend, config).unwrap();
    let mut w = store.watch("/k/", 0).unwrap();
    for i in 0..200 {
        store
            .write(&format!("/k/{i:03}"), put("n", "1", Precondition::None))
            .await
            .unwrap();
    }
    for expected in 1..=200u64 {
        assert_eq!(w.next().await.unwrap().rev, expected);
    }
}

#[tokio::test]
async fn a_lagging_watcher_fails_once_its_events_are_compacted() {
    let config = StoreConfig {
        event_log_capacity: 20,
        watch_buffer: 16,
        ..StoreConfig::default()
    };
    let store = Store::open(flotilla_store::MemoryBackend, config).unwrap();
    let mut w = store.watch("/k/", 0).unwrap();
    for i in 0..100 {
        store
            .write(&format!("/k/{i:03}"), put("n", "1", Precondition::None))
            .await
            .unwrap();
    }
    let mut seen = 0;
    let err = loop {
        match w.next().await {
            Ok(_) => seen += 1,
            Err(e) => break e,
        }
    };
    assert!(seen < 100);
    assert!(matches!(err, Error::Compacted { .. }), "{err}");
}

#[tokio::test]
async fn the_event_log_keeps_at_most_its_bytes_of_old_versions() {
    // Each write of a 1 KiB value logs it and the version it replaced: about 2 KiB an event.
    let config = StoreConfig {
        event_log_bytes: 64 << 10,
        ..StoreConfig::default()
    };
    let store = Store::open(flotilla_store::MemoryBackend, config).unwrap();
    let big = "x".repeat(1024);
    for _ in 0..200 {
        store
            .write("/k/big", put("n", &big, Precondition::None))
            .await
            .unwrap();
    }
    let oldest = store.compacted_revision();
    // Compacted by bytes long before the count (100,000) would: 64 KiB holds about 32
    // events of 2 KiB.
    assert!((160..=175).contains(&oldest), "compacted at {oldest}");
    assert!(matches!(
        store.watch("/k/", oldest - 1),
        Err(Error::Compacted { .. })
    ));
    let mut w = store.watch("/k/", oldest).unwrap();
    assert_eq!(w.next().await.unwrap().rev, oldest + 1);
    // One event larger than the whole budget stays: a watch resumes from the latest revision.
    let huge = "y".repeat(100 << 10);
    let rev = store
        .write("/k/big", put("n", &huge, Precondition::None))
        .await
        .unwrap()
        .rev;
    assert_eq!(store.compacted_revision(), rev - 1);
    assert!(store.watch("/k/", rev - 1).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits_and_get_distinct_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        RedbBackend::open(&dir.path().join("db.redb")).unwrap(),
        StoreConfig::default(),
    )
    .unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                s.write(
                    &format!("/k/{i}"),
                    put("n", "1", Precondition::MustNotExist),
                )
                .await
                .unwrap()
                .rev
            })
        })
        .collect();
    let mut revs = HashSet::new();
    for t in tasks {
        assert!(revs.insert(t.await.unwrap()));
    }
    assert_eq!(revs, (1..=200).collect());
    assert_eq!(store.snapshot().count("/k/", None), 200);
}

#[tokio::test]
async fn redb_store_reopens_with_its_objects_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let store = Store::open(RedbBackend::open(&path).unwrap(), StoreConfig::default()).unwrap();
        store
            .write("/k/a", put("a", "1", Precondition::None))
            .await
            .unwrap();
        store
            .write("/k/b", put("b", "2", Precondition::None))
            .await
            .unwrap();
        store
            .write("/k/a", delete("a", Precondition::None))
            .await
            .unwrap();
    }
    // The committer task notices the store is gone and releases the database (within 5 s).
    let mut last = None;
    let mut reopened = None;
    for _ in 0..500 {
        match RedbBackend::open(&path) {
            Ok(b) => {
                reopened = Some(Store::open(b, StoreConfig::default()).unwrap());
                break;
            }
            Err(e) => {
                last = Some(e.to_string());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let store = reopened.unwrap_or_else(|| panic!("the database was not released: {last:?}"));
    assert_eq!(store.revision(), 3);
    assert!(store.get("/k/a").is_none());
    let b = store.get("/k/b").unwrap();
    assert_eq!((b.create_rev, b.mod_rev), (2, 2));
    assert_eq!(b.attrs.label("app"), Some("2"));
    // The revision sequence continues; history before the reopen is gone for watches.
    let ev = store
        .write("/k/c", put("c", "1", Precondition::None))
        .await
        .unwrap();
    assert_eq!(ev.rev, 4);
    assert!(matches!(
        store.watch("/k/", 2),
        Err(Error::Compacted { .. })
    ));
    assert!(store.watch("/k/", 3).is_ok());
}

#[tokio::test]
async fn wait_for_times_out_on_a_revision_that_never_comes() {
    let store = Store::memory();
    store
        .write("/k/a", put("a", "1", Precondition::None))
        .await
        .unwrap();
    store.wait_for(1, Duration::from_millis(10)).await.unwrap();
    let err = store
        .wait_for(5, Duration::from_millis(20))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::TooNew {
            requested: 5,
            current: 1
        }
    ));
}

/// A redb backend whose disk fails on demand: the one fault a real file cannot be made to
/// show at will.
struct FailingDisk {
    inner: RedbBackend,
    fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl flotilla_store::Backend for FailingDisk {
    fn load(&self) -> Result<flotilla_store::Loaded, Error> {
        self.inner.load()
    }
    fn persist(
        &self,
        batch: &[std::sync::Arc<flotilla_store::Event>],
        revision: flotilla_store::Revision,
    ) -> Result<(), Error> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Backend {
                op: "commit",
                source: "the disk is full".into(),
            });
        }
        self.inner.persist(batch, revision)
    }
    fn blocking(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_failed_commit_fails_its_writes_and_the_store_goes_on_from_what_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let store = Store::open(
        FailingDisk {
            inner: RedbBackend::open(&path).unwrap(),
            fail: fail.clone(),
        },
        StoreConfig::default(),
    )
    .unwrap();
    let a = store
        .write("/k/a", put("a", "1", Precondition::None))
        .await
        .unwrap();
    assert_eq!(a.rev, 1);
    let mut watch = store.watch("/k/", 1).unwrap();
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = store
        .write("/k/b", put("b", "1", Precondition::None))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "storage commit failed: the disk is full");
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    // Nothing of the failed write is visible, and the next write takes the next revision of
    // what is durable; a write that checked state of the failed one is refused.
    assert!(store.get("/k/b").is_none());
    assert_eq!(store.revision(), 1);
    let c = store
        .write("/k/c", put("c", "1", Precondition::MustNotExist))
        .await
        .unwrap();
    assert_eq!(c.rev, 2);
    let e = store
        .write("/k/b", put("b", "2", Precondition::MustNotExist))
        .await
        .unwrap();
    assert_eq!(e.rev, 3, "b never existed");
    // Watchers saw exactly what is durable.
    let seen: Vec<(u64, String)> = [watch.next().await.unwrap(), watch.next().await.unwrap()]
        .iter()
        .map(|ev| (ev.rev, ev.key().to_string()))
        .collect();
    assert_eq!(seen, [(2, "/k/c".to_string()), (3, "/k/b".to_string())]);
    assert_eq!(data_of(&store, "/k/b").unwrap()["data"]["v"], "2");
}
