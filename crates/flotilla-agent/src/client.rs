//! The agent's Kubernetes clients: HTTP/2 over TLS, as client-go speaks to kube-apiserver, so
//! every watch and request of one agent shares one connection. kube's own client speaks
//! HTTP/1.1, where each open watch holds a TLS connection of its own: a hub with 1,000
//! agents held 3,600 connections (docs/BENCHMARKS.md, fleet scale).

use std::time::Duration;

use kube::client::ConfigExt;

use crate::Error;

/// A client of the cluster a kubeconfig file names (its current context).
pub async fn client_from_kubeconfig(path: &std::path::Path) -> Result<kube::Client, Error> {
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| Error::ReadKubeconfig {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Kubeconfig {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    http2_client(cfg).map_err(|e| Error::Kubeconfig {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// A client for `config` over HTTP/2 (TLS with ALPN `h2`; a plain-HTTP URL keeps kube's own
/// HTTP/1.1 client). A dead connection is found by HTTP/2 pings (every 30 s, 20 s to answer)
/// instead of per-request read timeouts, which would cut long watches.
pub fn http2_client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    if config.cluster_url.scheme() != Some(&http::uri::Scheme::HTTPS) || config.proxy_url.is_some()
    {
        return kube::Client::try_from(config);
    }
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    http.set_nodelay(true);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_only();
    let builder = match &config.tls_server_name {
        Some(name) => {
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(
                name.clone()
                    .try_into()
                    .map_err(|e| kube::Error::Service(Box::new(e)))?,
            ))
        }
        None => builder,
    };
    let connector = builder.enable_http2().wrap_connector(http);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(20))
        .http2_keep_alive_while_idle(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .build(connector);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(client);
    Ok(kube::Client::new(service, config.default_namespace))
}
