//! The binding caches the placement, update-run and eviction controllers share: one watch and
//! one decoded copy of each binding for the three. Each kept its own (three watches, three
//! copies of every binding: at 100 placements of 100 clusters, some 45 KB of the hub's memory
//! per binding, docs/BENCHMARKS.md, fleet scale).
//!
//! The placement controller drives the watch (its events keep the cache and its index); the
//! others read the same cache, and an update-run controller is told of each binding that
//! changes through a channel the driving stream feeds. The three run as one task
//! ([`crate::spawn_controllers`]), so the stream is polled for as long as any of them runs.

use std::sync::Arc;

use futures::StreamExt;
use kube::api::DynamicObject;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use tokio::sync::mpsc;

use super::index::{self, Indexed};
use super::{cached_indexed, Events, Scope, Watched};

/// One scope's binding cache, its watch's events (until the placement controller takes them)
/// and the channels of the controllers told of changes.
struct Shared {
    indexed: Arc<Indexed>,
    events: Option<Events>,
    taps: Vec<mpsc::UnboundedSender<DynamicObject>>,
}

/// The binding caches of both scopes.
pub struct SharedBindings {
    cluster: Shared,
    namespaced: Shared,
}

impl SharedBindings {
    /// Starts nothing yet: the watches run once the placement controller polls its events.
    pub fn new(client: &kube::Client) -> Self {
        let shared = |scope: Scope| {
            let (indexed, events) =
                cached_indexed(client, scope.binding(), |_| {}, index::binding_keys);
            Shared {
                indexed,
                events: Some(events),
                taps: Vec::new(),
            }
        };
        Self {
            cluster: shared(Scope::Cluster),
            namespaced: shared(Scope::Namespaced),
        }
    }

    fn of(&mut self, scope: Scope) -> &mut Shared {
        match scope {
            Scope::Cluster => &mut self.cluster,
            Scope::Namespaced => &mut self.namespaced,
        }
    }

    /// The cache of `scope`'s bindings, to read.
    pub(crate) fn reader(&mut self, scope: Scope) -> Store<DynamicObject> {
        self.of(scope).indexed.store().clone()
    }

    /// The cache of `scope`'s bindings and a stream of each binding that changes (created,
    /// changed, deleted, or listed again), as its name, namespace and labels: the rest is in
    /// the cache. Call before [`Self::take`].
    pub(crate) fn subscribe(&mut self, scope: Scope) -> (Store<DynamicObject>, Watched) {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = self.of(scope);
        shared.taps.push(tx);
        (
            shared.indexed.store().clone(),
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
                .map(Ok)
                .boxed(),
        )
    }

    /// For the placement controller: the indexed cache of `scope` and the watch's events,
    /// which also feed the subscribers.
    pub(crate) fn take(&mut self, scope: Scope) -> (Arc<Indexed>, Events) {
        let shared = self.of(scope);
        let events = shared
            .events
            .take()
            .expect("the placement controller takes each scope's events once");
        let taps = std::mem::take(&mut shared.taps);
        (shared.indexed.clone(), tapped(events, taps))
    }
}

/// `events`, each binding they create, change, list or delete also sent to every tap, as its
/// [`identity`].
fn tapped(events: Events, taps: Vec<mpsc::UnboundedSender<DynamicObject>>) -> Events {
    events
        .inspect(move |ev| {
            if let Ok(
                watcher::Event::Apply(b) | watcher::Event::InitApply(b) | watcher::Event::Delete(b),
            ) = ev
            {
                let b = identity(b);
                for tap in &taps {
                    // A subscriber that has ended needs nothing more.
                    let _ = tap.send(b.clone());
                }
            }
        })
        .boxed()
}

/// What a subscriber is told of a binding that changed: its type, name, namespace and labels
/// (which placement it belongs to), not its spec and status, which it reads from the cache.
/// Whole copies queued for a subscriber that had not yet caught up were a sixth of the hub's
/// heap while 40 placements of 50 clusters were placed (docs/BENCHMARKS.md, fleet scale).
pub(super) fn identity(b: &DynamicObject) -> DynamicObject {
    DynamicObject {
        types: b.types.clone(),
        metadata: kube::core::ObjectMeta {
            name: b.metadata.name.clone(),
            namespace: b.metadata.namespace.clone(),
            labels: b.metadata.labels.clone(),
            uid: b.metadata.uid.clone(),
            ..Default::default()
        },
        data: serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;
    use kube::core::ObjectMeta;

    fn binding(name: &str) -> DynamicObject {
        DynamicObject {
            types: None,
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("team".into()),
                labels: Some([("kubernetes-fleet.io/parent-CRP".into(), "web".into())].into()),
                annotations: Some([("a".into(), "b".into())].into()),
                ..Default::default()
            },
            data: serde_json::json!({"spec": {"targetCluster": "m"}, "status": {}}),
        }
    }

    #[tokio::test]
    async fn every_tap_sees_each_binding_the_driving_stream_passes() {
        let (tx1, mut rx1) = mpsc::unbounded_channel();
        let (tx2, rx2) = mpsc::unbounded_channel();
        // The second subscriber has gone: the others go on.
        drop(rx2);
        let scripted: Events = stream::iter(vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(binding("a"))),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(binding("b"))),
            Ok(watcher::Event::Delete(binding("a"))),
        ])
        .boxed();
        let passed: Vec<_> = tapped(scripted, vec![tx1, tx2]).collect().await;
        assert_eq!(passed.len(), 5, "the driving stream keeps every event");
        let mut names = Vec::new();
        while let Ok(b) = rx1.try_recv() {
            // A subscriber is told which binding, of which placement; the rest is cached.
            assert_eq!(b.metadata.namespace.as_deref(), Some("team"));
            assert_eq!(
                b.metadata.labels.as_ref().unwrap()["kubernetes-fleet.io/parent-CRP"],
                "web"
            );
            assert_eq!(b.metadata.annotations, None);
            assert_eq!(b.data, serde_json::Value::Null);
            names.push(b.metadata.name.unwrap_or_default());
        }
        assert_eq!(names, ["a", "b", "a"]);
    }
}
