//! Lists (selectors, paging, resourceVersion semantics) and watches (resume, 410, bookmarks,
//! initial events), through the `kube` client.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, PostParams, VersionMatch, WatchEvent, WatchParams};
use kube::core::ObjectList;
use serde_json::json;

use crate::support::{self, status_of};

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"v": "0"}})).unwrap()
}

async fn names(api: &Api<ConfigMap>, lp: &ListParams) -> Vec<String> {
    api.list(lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_and_field_selectors() {
    let t = support::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    for (n, l) in [
        ("a", json!({"app": "web", "tier": "front"})),
        ("b", json!({"app": "web"})),
        ("c", json!({"app": "db"})),
        ("d", json!({})),
    ] {
        api.create(&PostParams::default(), &cm(n, l)).await.unwrap();
    }
    let cases = [
        ("app=web", vec!["a", "b"]),
        ("app==web", vec!["a", "b"]),
        ("app!=web", vec!["c", "d"]),
        ("app in (db,web)", vec!["a", "b", "c"]),
        ("app notin (web)", vec!["c", "d"]),
        ("tier", vec!["a"]),
        ("!tier", vec!["b", "c", "d"]),
        ("app=web,!tier", vec!["b"]),
    ];
    for (sel, want) in cases {
        assert_eq!(
            names(&api, &ListParams::default().labels(sel)).await,
            want,
            "{sel}"
        );
    }
    assert_eq!(
        names(&api, &ListParams::default().fields("metadata.name=c")).await,
        ["c"]
    );
    assert_eq!(
        names(
            &api,
            &ListParams::default().fields("metadata.name!=c,metadata.namespace=default")
        )
        .await
        .len(),
        3
    );
    let all: Api<ConfigMap> = Api::all(t.client.clone());
    assert_eq!(
        names(
            &all,
            &ListParams::default().fields("metadata.namespace=kube-system")
        )
        .await
        .len(),
        0
    );

    let s = status_of(api.list(&ListParams::default().fields("data.v=0")).await);
    assert_eq!(
        (s.code, s.message.as_str()),
        (
            400,
            "\"data.v\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        )
    );
    assert_eq!(
        status_of(api.list(&ListParams::default().labels("app in (")).await).code,
        400
    );

    // Kind-specific field selectors.
    let secrets: Api<Secret> = Api::namespaced(t.client.clone(), "default");
    for (n, ty) in [("s1", "Opaque"), ("s2", "kubernetes.io/tls-ish")] {
        let s: Secret = serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": n}, "type": ty}),
        )
        .unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    let opaque = secrets
        .list(&ListParams::default().fields("type=Opaque"))
        .await
        .unwrap();
    assert_eq!(opaque.items.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_is_consistent_at_one_revision() {
    let t = support::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    for i in 0..25 {
        api.create(
            &PostParams::default(),
            &cm(&format!("cm-{i:02}"), json!({})),
        )
        .await
        .unwrap();
    }
    let first: ObjectList<ConfigMap> = api.list(&ListParams::default().limit(10)).await.unwrap();
    assert_eq!(first.items.len(), 10);
    let token = first.metadata.continue_.clone().unwrap();
    assert_eq!(first.metadata.remaining_item_count, Some(15));
    let rv = first.metadata.resource_version.clone().unwrap();

    // Changes after the first page are not visible in later pages.
    api.delete("cm-15", &Default::default()).await.unwrap();
    api.create(&PostParams::default(), &cm("cm-99", json!({})))
        .await
        .unwrap();
    let mut seen: Vec<String> = first
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    let mut token = Some(token);
    while let Some(tk) = token {
        let page = api
            .list(&ListParams::default().limit(10).continue_token(&tk))
            .await
            .unwrap();
        assert_eq!(page.metadata.resource_version.as_deref(), Some(rv.as_str()));
        seen.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        token = page.metadata.continue_.filter(|c| !c.is_empty());
    }
    let want: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(seen, want);

    // An exact read at the old revision shows the old state; once compacted, 410.
    let old = api
        .list(&ListParams::default().at(&rv).matching(VersionMatch::Exact))
        .await
        .unwrap();
    assert_eq!(old.items.len(), 25);
    t.server
        .store()
        .compact(t.server.store().revision())
        .await
        .unwrap();
    let s = status_of(
        api.list(&ListParams::default().at(&rv).matching(VersionMatch::Exact))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (410, "Expired"));
    let s = status_of(
        api.list(
            &ListParams::default()
                .limit(10)
                .continue_token(&first.metadata.continue_.unwrap()),
        )
        .await,
    );
    assert_eq!(s.code, 410);
    let s = status_of(
        api.list(&ListParams::default().continue_token("garbage"))
            .await,
    );
    assert_eq!(s.code, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_from_a_resource_version_and_reports_410_after_compaction() {
    let t = support::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let start = a.metadata.resource_version.clone().unwrap();
    let mut b = api
        .create(&PostParams::default(), &cm("b", json!({})))
        .await
        .unwrap();
    b.data = Some([("v".to_string(), "1".to_string())].into());
    api.replace("b", &PostParams::default(), &b).await.unwrap();
    api.delete("a", &Default::default()).await.unwrap();

    let stream = api.watch(&WatchParams::default(), &start).await.unwrap();
    let events: Vec<WatchEvent<ConfigMap>> = stream.take(3).try_collect().await.unwrap();
    let kinds: Vec<(String, String)> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(o) => ("ADDED".into(), o.metadata.name.clone().unwrap()),
            WatchEvent::Modified(o) => ("MODIFIED".into(), o.metadata.name.clone().unwrap()),
            WatchEvent::Deleted(o) => ("DELETED".into(), o.metadata.name.clone().unwrap()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("ADDED".into(), "b".into()),
            ("MODIFIED".into(), "b".into()),
            ("DELETED".into(), "a".into())
        ]
    );

    // Live events arrive after the replay.
    let now = t.server.store().revision().to_string();
    let mut live = api
        .watch(&WatchParams::default().timeout(10), &now)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("c", json!({})))
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), live.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("c")),
        other => panic!("unexpected {other:?}"),
    }

    t.server
        .store()
        .compact(t.server.store().revision())
        .await
        .unwrap();
    let mut gone = api
        .watch(&WatchParams::default(), &start)
        .await
        .unwrap()
        .boxed();
    match gone.next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_bookmarks_initial_events_selectors_and_timeouts() {
    let config = flotilla_apiserver::ServerConfig {
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    };
    let t = support::start_with(support::backend_under_test(), config, None).await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    api.create(&PostParams::default(), &cm("x", json!({"app": "web"})))
        .await
        .unwrap();

    // sendInitialEvents: the state as ADDED events, then a bookmark marking its end.
    let wp = WatchParams::streaming_lists().timeout(5);
    let mut s = api.watch(&wp, "0").await.unwrap().boxed();
    match s.next().await.unwrap().unwrap() {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("x")),
        other => panic!("unexpected {other:?}"),
    }
    match s.next().await.unwrap().unwrap() {
        WatchEvent::Bookmark(b) => assert_eq!(
            b.metadata
                .annotations
                .get("k8s.io/initial-events-end")
                .map(String::as_str),
            Some("true")
        ),
        other => panic!("unexpected {other:?}"),
    }
    // Periodic bookmarks carry the current revision.
    match tokio::time::timeout(Duration::from_secs(3), s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Bookmark(b) => {
            assert!(b.metadata.resource_version.parse::<u64>().unwrap() >= 1)
        }
        other => panic!("unexpected {other:?}"),
    }

    // A label-selected watch sees an object leave the selection as DELETED and enter as ADDED.
    let rv = t.server.store().revision().to_string();
    let mut sel = api
        .watch(&WatchParams::default().labels("app=web").timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    let mut x = api.get("x").await.unwrap();
    x.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
    let x = api.replace("x", &PostParams::default(), &x).await.unwrap();
    let mut back = x.clone();
    back.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
    api.replace("x", &PostParams::default(), &back)
        .await
        .unwrap();
    assert!(matches!(
        sel.next().await.unwrap().unwrap(),
        WatchEvent::Deleted(_)
    ));
    assert!(matches!(
        sel.next().await.unwrap().unwrap(),
        WatchEvent::Added(_)
    ));

    // timeoutSeconds ends the stream.
    let rv = t.server.store().revision().to_string();
    let short = api
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap();
    // The stream ends on its own (a hung stream fails the wait, far beyond the 1 s asked for).
    let rest: Vec<_> = tokio::time::timeout(Duration::from_secs(30), short.collect())
        .await
        .expect("a watch with timeoutSeconds=1 ends");
    assert!(
        rest.iter()
            .all(|e| matches!(e, Ok(WatchEvent::Bookmark(_)))),
        "{rest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletecollection_by_label() {
    let t = support::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    for (n, l) in [
        ("a", json!({"team": "x"})),
        ("b", json!({"team": "x"})),
        ("c", json!({"team": "y"})),
    ] {
        api.create(&PostParams::default(), &cm(n, l)).await.unwrap();
    }
    let dry = kube::api::DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    api.delete_collection(&dry, &ListParams::default().labels("team=x"))
        .await
        .unwrap();
    assert_eq!(
        names(&api, &ListParams::default()).await,
        ["a", "b", "c"],
        "dry run deletes nothing"
    );
    api.delete_collection(&Default::default(), &ListParams::default().labels("team=x"))
        .await
        .unwrap();
    assert_eq!(names(&api, &ListParams::default()).await, ["c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_runtime_watcher_and_reflector_follow_the_server() {
    use kube::runtime::{reflector, watcher, WatchStreamExt};
    let t = support::start().await;
    let api: Api<ConfigMap> = Api::namespaced(t.client.clone(), "default");
    api.create(&PostParams::default(), &cm("before", json!({})))
        .await
        .unwrap();
    for config in [
        watcher::Config::default(),
        watcher::Config::default().streaming_lists(),
    ] {
        let (reader, writer) = reflector::store::<ConfigMap>();
        let stream = reflector::reflector(writer, watcher(api.clone(), config)).applied_objects();
        let task = tokio::spawn(async move {
            futures::pin_mut!(stream);
            while stream.next().await.is_some() {}
        });
        support::eventually("the reflector lists", || async {
            reader
                .get(&reflector::ObjectRef::new("before").within("default"))
                .is_some()
        })
        .await;
        let name = format!("after-{}", reader.state().len());
        api.create(&PostParams::default(), &cm(&name, json!({})))
            .await
            .unwrap();
        support::eventually("the reflector sees the new object", || async {
            reader
                .get(&reflector::ObjectRef::new(&name).within("default"))
                .is_some()
        })
        .await;
        task.abort();
    }
}
