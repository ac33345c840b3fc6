//! What the benchmark knows of the hub's placements: a watch of every
//! ClusterResourcePlacement (re-listed by kube's watcher after a hub restart), reduced to
//! whether each is Available, at which resource index, on how many clusters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use serde_json::json;

/// One placement as last seen.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Seen {
    /// `ClusterResourcePlacementAvailable` True for the current generation.
    pub(crate) available: bool,
    /// `status.observedResourceIndex`.
    pub(crate) index: String,
    /// Entries in `status.placementStatuses`.
    pub(crate) placed: usize,
}

impl Seen {
    pub(crate) fn of(p: &DynamicObject) -> Self {
        let status = &p.data["status"];
        Self {
            available: flotilla_api::conditions::find(
                &status["conditions"],
                "ClusterResourcePlacementAvailable",
            )
            .is_some_and(|c| {
                c["status"] == "True" && c["observedGeneration"] == json!(p.metadata.generation)
            }),
            index: status["observedResourceIndex"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            placed: status["placementStatuses"].as_array().map_or(0, Vec::len),
        }
    }

    /// Available with resource index `index` on `clusters` clusters.
    pub(crate) fn done(&self, clusters: usize, index: &str) -> bool {
        self.available && self.placed == clusters && self.index == index
    }
}

#[derive(Default)]
struct State {
    placements: HashMap<String, Seen>,
    /// Set by every (re-)list: the watch has caught up with the hub.
    listed: u64,
}

/// A live view of every placement.
pub(crate) struct Tracker {
    state: Arc<parking_lot::Mutex<State>>,
    changed: tokio::sync::watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tracker {
    /// Starts watching; returns once the first list is in.
    pub(crate) async fn start(api: Api<DynamicObject>) -> anyhow::Result<Self> {
        let state = Arc::new(parking_lot::Mutex::new(State::default()));
        let (tx, mut changed) = tokio::sync::watch::channel(0u64);
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                let mut events =
                    std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
                let mut fresh: Option<HashMap<String, Seen>> = None;
                let mut n = 0u64;
                while let Some(e) = events.next().await {
                    let Ok(e) = e else { continue };
                    let mut s = state.lock();
                    match e {
                        watcher::Event::Init => fresh = Some(HashMap::new()),
                        watcher::Event::InitApply(p) => {
                            if let (Some(f), Some(name)) = (&mut fresh, p.metadata.name.clone()) {
                                f.insert(name, Seen::of(&p));
                            }
                        }
                        watcher::Event::InitDone => {
                            s.placements = fresh.take().unwrap_or_default();
                            s.listed += 1;
                        }
                        watcher::Event::Apply(p) => {
                            if let Some(name) = p.metadata.name.clone() {
                                s.placements.insert(name, Seen::of(&p));
                            }
                        }
                        watcher::Event::Delete(p) => {
                            if let Some(name) = &p.metadata.name {
                                s.placements.remove(name);
                            }
                        }
                    }
                    drop(s);
                    n += 1;
                    let _ = tx.send(n);
                }
            }
        });
        let tracker = Self {
            state,
            changed: changed.clone(),
            task,
        };
        while tracker.state.lock().listed == 0 {
            changed.changed().await?;
        }
        Ok(tracker)
    }

    /// How many of `names` are done (Available on `clusters` at `index`).
    pub(crate) fn count_done(&self, names: &[String], clusters: usize, index: &str) -> usize {
        let s = self.state.lock();
        names
            .iter()
            .filter(|n| {
                s.placements
                    .get(*n)
                    .is_some_and(|p| p.done(clusters, index))
            })
            .count()
    }

    /// Waits until `check` holds of the state (checked on every change), or `timeout`.
    pub(crate) async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&Self) -> bool,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut changed = self.changed.clone();
        loop {
            if check(self) {
                return Ok(started.elapsed());
            }
            let left = timeout.saturating_sub(started.elapsed());
            anyhow::ensure!(
                !left.is_zero(),
                "{what}: not within {} s",
                timeout.as_secs()
            );
            // A periodic look as well: a check may read the clock or other state.
            let _ = tokio::time::timeout(left.min(Duration::from_secs(1)), changed.changed()).await;
        }
    }

    /// Whether `name` is gone from the hub.
    pub(crate) fn gone(&self, name: &str) -> bool {
        !self.state.lock().placements.contains_key(name)
    }
}
