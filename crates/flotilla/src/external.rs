//! `flotilla hub --kubeconfig FILE`: the fleet controllers against another Kubernetes API
//! server (kube-apiserver, a managed control plane) instead of Flotilla's own. The fleet CRDs
//! are installed there, the fleet's admission rules are served as a validating webhook, and
//! replicas elect a leader through a Lease; members join with `flotilla join` as they join
//! Flotilla's own hub (the API server's controller manager signs their certificates).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use flotilla_hub::lease::{LEADER_LEASE, SYSTEM_NAMESPACE};

use crate::serve::client_from_kubeconfig;

/// The Secret holding the webhook's CA, shared by every replica.
const WEBHOOK_CA_SECRET: &str = "flotilla-webhook-ca";

/// Where the hub's controllers run against another API server.
pub struct ExternalHub {
    /// Kubeconfig of the API server.
    pub kubeconfig: PathBuf,
    /// Address the validating webhook is served on.
    pub webhook_bind: SocketAddr,
    /// URL the API server calls the webhook at; by default `https://BIND/validate-fleet`.
    pub webhook_url: Option<String>,
    /// Lease duration of the leader election.
    pub lease: Duration,
    /// The controllers' settings.
    pub config: flotilla_hub::HubConfig,
}

/// Runs the hub's controllers against the API server of `hub.kubeconfig` until a signal.
pub async fn run(hub: ExternalHub) -> anyhow::Result<()> {
    let client = client_from_kubeconfig(&hub.kubeconfig).await?;
    let version = client.apiserver_version().await.map_err(|e| {
        anyhow::anyhow!(
            "reaching the API server of {}: {}",
            hub.kubeconfig.display(),
            crate::serve::brief(&e)
        )
    })?;
    let listener = tokio::net::TcpListener::bind(hub.webhook_bind)
        .await
        .map_err(|e| anyhow::anyhow!("binding the webhook to {}: {e}", hub.webhook_bind))?;
    let bound = listener.local_addr()?;
    let url = match &hub.webhook_url {
        Some(u) => u.clone(),
        None if bound.ip().is_unspecified() => anyhow::bail!(
            "--webhook-bind {bound} listens on every address; say with --webhook-url at which URL the API server reaches it"
        ),
        None => format!("https://{bound}{}", flotilla_hub::admission::WEBHOOK_PATH),
    };
    let host = webhook_host(&url)?;
    let (ca_pem, ca_key_pem) = webhook_ca(&client).await?;
    let tls = flotilla_apiserver::serving_config(&ca_pem, &ca_key_pem, &[host])?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let webhook = tokio::spawn(flotilla_apiserver::serve_tls(
        listener,
        tls,
        stopped,
        handle_webhook,
    ));
    flotilla_hub::install::install_crds(client.clone()).await?;
    flotilla_hub::admission::register(client.clone(), &url, &ca_pem).await?;
    let identity = format!(
        "{}_{:08x}",
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "flotilla".into()),
        rand::random::<u32>()
    );
    let leadership = flotilla_hub::lease::campaign(
        client.clone(),
        flotilla_hub::lease::LeaseConfig {
            namespace: SYSTEM_NAMESPACE.into(),
            name: LEADER_LEASE.into(),
            identity: identity.clone(),
            duration: hub.lease,
        },
    );
    let stopped = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    flotilla_hub::spawn_controllers(&client, &leadership, stopped, hub.config);
    tracing::info!(%identity, webhook = %url, "hub controllers ready");
    eprintln!(
        "flotilla hub controllers running against {} (Kubernetes {}), as {identity}\n  fleet CRDs installed; admission webhook at {url}\n  kubectl --kubeconfig {} get memberclusters",
        cluster_url(&hub.kubeconfig).unwrap_or_else(|| hub.kubeconfig.display().to_string()),
        version.git_version,
        hub.kubeconfig.display()
    );
    crate::shutdown_signal().await;
    tracing::info!("shutting down");
    leadership.resign().await;
    let _ = stop_tx.send(true);
    let _ = webhook.await;
    Ok(())
}

/// The host (name or IP) a webhook URL names, for its serving certificate.
fn webhook_host(url: &str) -> anyhow::Result<String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| anyhow::anyhow!("--webhook-url {url:?}: {e}"))?;
    if uri.scheme_str() != Some("https") {
        anyhow::bail!("--webhook-url {url:?}: the API server calls webhooks over https only");
    }
    let host = uri
        .host()
        .ok_or_else(|| anyhow::anyhow!("--webhook-url {url:?} names no host"))?;
    Ok(host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string())
}

fn cluster_url(kubeconfig: &std::path::Path) -> Option<String> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).ok()?;
    let ctx = kc.current_context.as_deref()?;
    let cluster = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx)?
        .context
        .as_ref()?
        .cluster
        .clone();
    kc.clusters
        .iter()
        .find(|c| c.name == cluster)?
        .cluster
        .as_ref()?
        .server
        .clone()
}

/// The webhook's CA from its Secret on the API server, made by the first replica to start.
async fn webhook_ca(client: &kube::Client) -> anyhow::Result<(String, String)> {
    flotilla_hub::install::ensure_namespace(client, SYSTEM_NAMESPACE)
        .await
        .map_err(|e| anyhow::anyhow!("creating namespace {SYSTEM_NAMESPACE}: {e}"))?;
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        SYSTEM_NAMESPACE,
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Secret"), "secrets"),
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    for _ in 0..3 {
        if let Some(s) = secrets.get_opt(WEBHOOK_CA_SECRET).await? {
            let field = |k: &str| -> anyhow::Result<String> {
                let v = s.data["data"][k].as_str().ok_or_else(|| {
                    anyhow::anyhow!("secret {SYSTEM_NAMESPACE}/{WEBHOOK_CA_SECRET} has no {k}; delete it and restart to make a new CA")
                })?;
                Ok(String::from_utf8(b64.decode(v)?)?)
            };
            return Ok((field("tls.crt")?, field("tls.key")?));
        }
        let (cert, key) = flotilla_apiserver::new_serving_ca("flotilla-webhook-ca")?;
        let secret: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": WEBHOOK_CA_SECRET, "namespace": SYSTEM_NAMESPACE,
                "labels": {"app.kubernetes.io/managed-by": "flotilla"}},
            "data": {"tls.crt": b64.encode(&cert), "tls.key": b64.encode(&key)}
        }))?;
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => return Ok((cert, key)),
            // Another replica made it first: use that one.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(anyhow::anyhow!("creating the webhook CA secret: {e}")),
        }
    }
    anyhow::bail!("could not read or create secret {SYSTEM_NAMESPACE}/{WEBHOOK_CA_SECRET}")
}

async fn handle_webhook(
    req: Request<hyper::body::Incoming>,
) -> Response<flotilla_apiserver::ResponseBody> {
    use flotilla_apiserver::{error_response, json_response, ApiError};
    if req.uri().path() != flotilla_hub::admission::WEBHOOK_PATH {
        return error_response(&ApiError::page_not_found());
    }
    if req.method() != Method::POST {
        return error_response(&ApiError::method_not_allowed(
            req.method().as_str(),
            "the admission webhook",
        ));
    }
    let body = match http_body_util::Limited::new(req.into_body(), flotilla_apiserver::MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return error_response(&ApiError::bad_request(format!("reading the request: {e}")));
        }
    };
    json_response(StatusCode::OK, &flotilla_hub::admission::review(&body))
}
