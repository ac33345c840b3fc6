//! The member's resource types, as the work applier needs them: each group version is
//! discovered on its own, when a manifest first needs it, so an API the member cannot serve
//! (an aggregated API whose backend is down, such as metrics.k8s.io) costs only its own kinds
//! and is reported, instead of failing every kind as a whole-cluster discovery would. A kind
//! that is missing is looked up again (a CRD may just have been installed) at most every
//! `RECHECK`; a group version whose discovery failed, every `RETRY_FAILED`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use kube::core::{ApiResource, GroupVersionKind};
use parking_lot::RwLock;

/// How soon a kind that was not there is looked for again.
const RECHECK: Duration = Duration::from_millis(500);

/// How soon a group version whose discovery failed is tried again.
const RETRY_FAILED: Duration = Duration::from_secs(30);

/// How long one discovery request may take: kube-apiserver waits for an aggregated API's
/// backend, and one that does not answer must not hold up the applier.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A resolved kind: its resource and whether it lives in namespaces.
pub type Resolved = (ApiResource, bool);

/// Why a kind could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The member serves no such kind.
    NotServed(String),
    /// The member could not say: discovery of its group version failed.
    DiscoveryFailed(String),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::NotServed(m) | Missing::DiscoveryFailed(m) => f.write_str(m),
        }
    }
}

/// What one discovery of a group version found: its kinds, or why it failed.
struct Entry {
    at: Instant,
    found: Result<BTreeMap<String, Resolved>, String>,
}

/// The member's kinds, discovered lazily per group version.
#[derive(Default)]
pub struct Kinds {
    entries: RwLock<HashMap<String, Entry>>,
    fetching: tokio::sync::Mutex<()>,
}

impl Kinds {
    /// The resource of `kind` in `api_version` (`v1`, `apps/v1`, ...).
    pub async fn resolve(
        &self,
        client: &kube::Client,
        api_version: &str,
        kind: &str,
    ) -> Result<Resolved, Missing> {
        if let Some(answer) = self.cached(api_version, kind, false) {
            return answer;
        }
        let _one = self.fetching.lock().await;
        // Another caller may have fetched it meanwhile.
        if let Some(answer) = self.cached(api_version, kind, false) {
            return answer;
        }
        let found = fetch(client, api_version).await;
        if let Err(why) = &found {
            tracing::warn!(group_version = %api_version, error = %why, "the member cannot list this group version's resources; its kinds are unavailable to the applier for now");
        }
        self.entries.write().insert(
            api_version.to_string(),
            Entry {
                at: Instant::now(),
                found,
            },
        );
        self.cached(api_version, kind, true)
            .expect("an entry was just stored")
    }

    /// The answer the cache gives: None when it has to ask the member (`fresh`: it just did).
    fn cached(
        &self,
        api_version: &str,
        kind: &str,
        fresh: bool,
    ) -> Option<Result<Resolved, Missing>> {
        let entries = self.entries.read();
        let e = entries.get(api_version)?;
        match &e.found {
            Ok(kinds) => match kinds.get(kind) {
                Some(r) => Some(Ok(r.clone())),
                None if fresh || e.at.elapsed() < RECHECK => Some(Err(Missing::NotServed(
                    format!("the member cluster serves no {kind} in {api_version}"),
                ))),
                None => None,
            },
            Err(why) if fresh || e.at.elapsed() < RETRY_FAILED => {
                Some(Err(Missing::DiscoveryFailed(format!(
                    "the member could not list the resources of {api_version}: {why}"
                ))))
            }
            Err(_) => None,
        }
    }

    /// Forgets a group version whose kind the member answered 404 for (a CRD removed, a
    /// version no longer served), so the next use asks again.
    pub fn forget(&self, api_version: &str) {
        self.entries.write().remove(api_version);
    }

    /// Group versions whose discovery failed, with why.
    pub fn failures(&self) -> BTreeMap<String, String> {
        self.entries
            .read()
            .iter()
            .filter_map(|(gv, e)| e.found.as_ref().err().map(|w| (gv.clone(), w.clone())))
            .collect()
    }
}

/// The kinds of one group version; none when the member does not serve it (404).
async fn fetch(
    client: &kube::Client,
    api_version: &str,
) -> Result<BTreeMap<String, Resolved>, String> {
    let request = async {
        if api_version.contains('/') {
            client.list_api_group_resources(api_version).await
        } else {
            client.list_core_api_resources(api_version).await
        }
    };
    let list = match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Err(_) => return Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => return Ok(BTreeMap::new()),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(list)) => list,
    };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    Ok(list
        .resources
        .into_iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| {
            let ar = ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk(group, version, &r.kind),
                &r.name,
            );
            (r.kind, (ar, r.namespaced))
        })
        .collect())
}
