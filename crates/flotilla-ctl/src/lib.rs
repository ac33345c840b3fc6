//! Flotilla's command line against a hub's API (any hub: Flotilla's own, or the fleet
//! controllers on another Kubernetes API server): `flotilla rollout status|stop|resume|undo`,
//! `flotilla approve` (`rollout.rs`) and `flotilla drain|uncordon` (`drain.rs`). A client of the API like kubectl, through a kubeconfig; what it
//! shows is computed in [`report`] (pure).

#![warn(missing_docs)]

pub mod drain;
pub mod report;
mod rollout;

pub use drain::{drain, uncordon, DrainArgs};
pub use rollout::{approve, rollout, ApproveArgs, RolloutArgs};

use std::path::PathBuf;

use flotilla_api::placement::{PLACEMENT_GROUP, STORAGE_VERSION};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use report::Report;

/// What can go wrong, in words for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The hub answered with an error, or could not be reached.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// The kubeconfig cannot be read.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// What the command was asked cannot be done (the message says why and what to do).
    #[error("{0}")]
    Refused(String),
    /// JSON.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// YAML.
    #[error("{0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// How to reach the hub.
#[derive(clap::Args, Debug, Clone)]
pub struct Connection {
    /// The hub's kubeconfig (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// The namespace of a ResourcePlacement (and its StagedUpdateRuns); without it,
    /// ClusterResourcePlacements and ClusterStagedUpdateRuns.
    #[arg(short, long, global = true)]
    pub(crate) namespace: Option<String>,
}

/// How to print state.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A table with progress bars.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

pub(crate) fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(PLACEMENT_GROUP, STORAGE_VERSION, kind),
        plural,
    )
}

pub(crate) struct Kinds {
    pub(crate) placement: ApiResource,
    pub(crate) run: ApiResource,
    pub(crate) approval: ApiResource,
}

impl Kinds {
    fn of(namespaced: bool) -> Self {
        if namespaced {
            Kinds {
                placement: resource("ResourcePlacement", "resourceplacements"),
                run: resource("StagedUpdateRun", "stagedupdateruns"),
                approval: resource("ApprovalRequest", "approvalrequests"),
            }
        } else {
            Kinds {
                placement: resource("ClusterResourcePlacement", "clusterresourceplacements"),
                run: resource("ClusterStagedUpdateRun", "clusterstagedupdateruns"),
                approval: resource("ClusterApprovalRequest", "clusterapprovalrequests"),
            }
        }
    }
}

pub(crate) struct Hub {
    pub(crate) client: kube::Client,
    pub(crate) namespace: Option<String>,
    pub(crate) kinds: Kinds,
}

impl Hub {
    pub(crate) async fn connect(c: &Connection) -> Result<Self, Error> {
        let config = match &c.kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| Error::Kubeconfig(format!("{}: {e}", path.display())))?;
                kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .map_err(|e| Error::Kubeconfig(format!("{}: {e}", path.display())))?
            }
            None => kube::Config::infer()
                .await
                .map_err(|e| Error::Kubeconfig(e.to_string()))?,
        };
        Ok(Hub {
            client: kube::Client::try_from(config)?,
            namespace: c.namespace.clone(),
            kinds: Kinds::of(c.namespace.is_some()),
        })
    }

    pub(crate) fn api(&self, ar: &ApiResource) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, ar),
            None => Api::all_with(self.client.clone(), ar),
        }
    }

    pub(crate) async fn get(&self, ar: &ApiResource, name: &str) -> Result<Value, Error> {
        match self.api(ar).get_opt(name).await? {
            Some(o) => Ok(serde_json::to_value(o)?),
            None => Err(Error::Refused(format!(
                "{} {name:?} not found{}",
                ar.kind,
                self.namespace
                    .as_ref()
                    .map_or(String::new(), |n| format!(" in namespace {n}"))
            ))),
        }
    }

    /// The runs of `placement`, newest first.
    pub(crate) async fn runs_of(&self, placement: &str) -> Result<Vec<Value>, Error> {
        let list = self
            .api(&self.kinds.run)
            .list(&ListParams::default())
            .await?;
        let mut runs: Vec<Value> = list
            .items
            .into_iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?;
        runs.retain(|r| r["spec"]["placementName"] == placement);
        runs.sort_by(|a, b| {
            let t = |r: &Value| {
                r["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            };
            t(b).cmp(&t(a)).then_with(|| {
                b["metadata"]["name"]
                    .as_str()
                    .cmp(&a["metadata"]["name"].as_str())
            })
        });
        Ok(runs)
    }

    /// The report of `placement`'s rollout (a run's with the External strategy).
    pub(crate) async fn report(&self, placement: &str, run: Option<&str>) -> Result<Report, Error> {
        let p = self.get(&self.kinds.placement, placement).await?;
        if p["spec"]["strategy"]["type"] != "External" {
            return Ok(report::rolling(&p));
        }
        let run = match run {
            Some(r) => self.get(&self.kinds.run, r).await?,
            None => self.runs_of(placement).await?.into_iter().next().ok_or_else(|| {
                Error::Refused(format!(
                    "placement {placement:?} uses the External strategy and has no staged update run yet: create one (kubectl apply a {})",
                    self.kinds.run.kind
                ))
            })?,
        };
        Ok(report::staged(&run, chrono::Utc::now()))
    }
}
