//! HTTPS serving and authentication: a CA, a serving certificate and admin credentials kept in
//! the data directory, client-certificate and bearer-token authentication, and the admin
//! kubeconfig.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

use crate::auth::UserInfo;
use crate::errors::ApiError;
use crate::server::{error_response, ApiServer, ResponseBody};

/// The API server's errors outside a request (a request fails with an [`ApiError`](crate::ApiError),
/// the `metav1.Status` it answers): credentials, certificates and TLS serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a credential file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// Generating or parsing a certificate failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// The TLS configuration was rejected.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("tls client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn read(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.into(),
            source,
        }),
    }
}

fn write_private(path: &Path, contents: &str) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// The credentials of one server: its CA, serving certificate, admin client certificate and
/// admin bearer token.
pub struct Credentials {
    /// CA certificate (PEM).
    pub ca_pem: String,
    ca_key: KeyPair,
    /// Serving certificate chain (PEM).
    pub server_pem: String,
    server_key: KeyPair,
    /// Admin client certificate (PEM).
    pub admin_cert_pem: String,
    /// Admin client key (PEM).
    pub admin_key_pem: String,
    /// Admin bearer token.
    pub admin_token: String,
}

impl Credentials {
    /// Loads the CA and admin credentials from `dir`, generating any that are missing, and
    /// issues a serving certificate for `hosts` (names and IPs).
    pub fn load_or_create(dir: &Path, hosts: &[String]) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.into(),
            source,
        })?;
        let (ca_pem, ca_key) = match (read(&dir.join("ca.crt"))?, read(&dir.join("ca.key"))?) {
            (Some(c), Some(k)) => (c, KeyPair::from_pem(&k)?),
            _ => {
                let (cert, key) = new_serving_ca("flotilla-ca")?;
                write_private(&dir.join("ca.key"), &key)?;
                write_private(&dir.join("ca.crt"), &cert)?;
                (cert, KeyPair::from_pem(&key)?)
            }
        };
        let issuer =
            Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&ca_key.serialize_pem())?)?;
        let (admin_cert_pem, admin_key_pem) =
            match (read(&dir.join("admin.crt"))?, read(&dir.join("admin.key"))?) {
                (Some(c), Some(k)) => (c, k),
                _ => {
                    let key = KeyPair::generate()?;
                    let mut p = CertificateParams::new(Vec::<String>::new())?;
                    p.distinguished_name
                        .push(DnType::CommonName, "flotilla-admin");
                    p.distinguished_name
                        .push(DnType::OrganizationName, "system:masters");
                    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                    p.not_after = rcgen::date_time_ymd(2036, 1, 1);
                    let cert = p.signed_by(&key, &issuer)?;
                    write_private(&dir.join("admin.key"), &key.serialize_pem())?;
                    write_private(&dir.join("admin.crt"), &cert.pem())?;
                    (cert.pem(), key.serialize_pem())
                }
            };
        let admin_token = match read(&dir.join("admin.token"))? {
            Some(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let bytes: [u8; 32] = rand::random();
                let t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
                write_private(&dir.join("admin.token"), &t)?;
                t
            }
        };
        // The serving certificate is issued anew on every start, so it always names the
        // address being served; clients trust the CA, which stays.
        let (server_pem, server_key) = issue_serving_cert(&issuer, hosts)?;
        Ok(Self {
            ca_pem,
            ca_key,
            server_pem,
            server_key,
            admin_cert_pem,
            admin_key_pem,
            admin_token,
        })
    }

    /// A kubeconfig for the admin user against `server_url`.
    pub fn admin_kubeconfig(&self, server_url: &str, name: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let (ca, cert, key) = (
            b64(&self.ca_pem),
            b64(&self.admin_cert_pem),
            b64(&self.admin_key_pem),
        );
        flotilla_api::kubeconfig::Kubeconfig {
            cluster: name,
            server: server_url,
            certificate_authority_data: &ca,
            user: &format!("{name}-admin"),
            client_certificate_data: &cert,
            client_key_data: &key,
            context: name,
            namespace: "default",
        }
        .render()
    }

    /// Writes `contents` to `path` atomically with owner-only permissions.
    pub fn write_kubeconfig(path: &Path, contents: &str) -> Result<(), Error> {
        write_private(path, contents)
    }

    fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, Error> {
        rustls_server_config(&self.ca_pem, &self.server_pem, &self.server_key, true)
    }

    /// The CA key, for issuing further client certificates.
    pub fn ca_key_pem(&self) -> String {
        self.ca_key.serialize_pem()
    }

    /// The files every replica of a server must share (CA, admin credentials), read from
    /// `dir`: file name to contents. Missing files are left out.
    pub fn shared_files(dir: &Path) -> Result<std::collections::BTreeMap<String, String>, Error> {
        let mut out = std::collections::BTreeMap::new();
        for f in SHARED_FILES {
            if let Some(text) = read(&dir.join(f))? {
                out.insert(f.to_string(), text);
            }
        }
        Ok(out)
    }

    /// Writes shared files (from [`Self::shared_files`] of another replica) into `dir`,
    /// owner-only; names other than the shared files are refused.
    pub fn write_shared_files(
        dir: &Path,
        files: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.into(),
            source,
        })?;
        for (name, text) in files {
            if SHARED_FILES.contains(&name.as_str()) {
                write_private(&dir.join(name), text)?;
            }
        }
        Ok(())
    }
}

/// A serving certificate for `hosts` (names and IPs, besides localhost and the loopback
/// addresses) issued by `issuer`: its PEM and key.
fn issue_serving_cert(
    issuer: &Issuer<'_, KeyPair>,
    hosts: &[String],
) -> Result<(String, KeyPair), Error> {
    let server_key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, "flotilla");
    let mut sans = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    sans.extend(hosts.iter().cloned());
    sans.sort();
    sans.dedup();
    for h in sans {
        p.subject_alt_names.push(match h.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(h.try_into()?),
        });
    }
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let server_pem = p.signed_by(&server_key, issuer)?.pem();
    Ok((server_pem, server_key))
}

/// A TLS configuration serving `server_pem` (chained to `ca_pem`), HTTP/2 and HTTP/1.1;
/// with `client_certs`, clients may present a certificate signed by the CA.
fn rustls_server_config(
    ca_pem: &str,
    server_pem: &str,
    server_key: &KeyPair,
    client_certs: bool,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca_der = CertificateDer::from_pem_slice_compat(ca_pem)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if client_certs {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_der.clone())?;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let chain = vec![CertificateDer::from_pem_slice_compat(server_pem)?, ca_der];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let mut cfg = builder.with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A new self-signed CA for serving certificates: its certificate and key (PEM).
pub fn new_serving_ca(common_name: &str) -> Result<(String, String), Error> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert = p.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A TLS configuration for serving `hosts` with a certificate issued anew by the CA
/// (`ca_pem`, `ca_key_pem`); no client certificates are asked for.
pub fn serving_config(
    ca_pem: &str,
    ca_key_pem: &str,
    hosts: &[String],
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let issuer = Issuer::from_ca_cert_pem(ca_pem, KeyPair::from_pem(ca_key_pem)?)?;
    let (server_pem, server_key) = issue_serving_cert(&issuer, hosts)?;
    rustls_server_config(ca_pem, &server_pem, &server_key, false)
}

/// The credential files that identify a server to its clients, as opposed to the serving
/// certificate, which each replica issues for its own addresses.
const SHARED_FILES: &[&str] = &["ca.crt", "ca.key", "admin.crt", "admin.key", "admin.token"];

trait PemCompat: Sized {
    fn from_pem_slice_compat(pem: &str) -> Result<Self, rustls::Error>;
}

impl PemCompat for CertificateDer<'static> {
    fn from_pem_slice_compat(pem: &str) -> Result<Self, rustls::Error> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| rustls::Error::General(format!("bad certificate PEM: {e}")))
    }
}

/// Serves `server` over HTTPS on `listener` until `shutdown` resolves. Requests must present a
/// client certificate signed by the CA or the admin bearer token; others get 401.
pub async fn serve_https(
    server: ApiServer,
    listener: TcpListener,
    creds: &Credentials,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let token: Arc<str> = Arc::from(creds.admin_token.as_str());
    accept_tls(
        listener,
        creds.server_config()?,
        shutdown,
        move |tls, peer| {
            let cert_user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| user_of_certificate(c.as_ref()))
                .map(Arc::new);
            serve_connection(server.clone(), tls, peer, cert_user, token.clone())
        },
    )
    .await;
    Ok(())
}

/// Serves `handle` over HTTPS (`config`) on `listener` until `shutdown` resolves; no
/// authentication. For endpoints the API server calls, such as admission webhooks.
pub async fn serve_tls<F, Fut>(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()>,
    handle: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<ResponseBody>> + Send + 'static,
{
    accept_tls(listener, config, shutdown, move |tls, peer| {
        let handle = handle.clone();
        async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let handle = handle.clone();
                async move { Ok::<_, Infallible>(handle(req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
    })
    .await
}

/// Accepts TCP connections on `listener` until `shutdown` resolves, completes each TLS
/// handshake (10 s at most) and runs `serve` on the stream in a task of its own.
async fn accept_tls<F, Fut>(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()>,
    serve: F,
) where
    F: Fn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>, SocketAddr) -> Fut
        + Clone
        + Send
        + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let serve = serve.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            serve(tls, peer).await;
        });
    }
}

async fn serve_connection(
    server: ApiServer,
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    peer: SocketAddr,
    cert_user: Option<Arc<UserInfo>>,
    token: Arc<str>,
) {
    let stopped = server.stopped();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let server = server.clone();
        let token = token.clone();
        let cert_user = cert_user.clone();
        async move { Ok::<_, Infallible>(authenticate_and_handle(server, req, cert_user, &token).await) }
    });
    let stopped = stopped;
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::select! {
        r = conn => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        // A server that shuts down closes its connections.
        _ = stopped => {}
    }
}

fn token_matches(header: Option<&http::HeaderValue>, token: &str) -> bool {
    let Some(got) = header
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Constant-time comparison.
    let (a, b) = (got.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The user a client certificate names: its subject's CN, with its O entries as groups (as
/// kube-apiserver's x509 authenticator).
pub fn user_of_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(String::from))
        .collect::<Vec<_>>();
    Some(UserInfo::new(name, groups))
}

/// The user of the admin bearer token.
fn token_user() -> UserInfo {
    UserInfo::new("flotilla-admin", [crate::auth::MASTERS_GROUP.to_string()])
}

async fn authenticate_and_handle(
    server: ApiServer,
    mut req: Request<Incoming>,
    cert_user: Option<Arc<UserInfo>>,
    token: &str,
) -> Response<ResponseBody> {
    let public = matches!(
        req.uri().path(),
        "/healthz" | "/livez" | "/readyz" | "/version"
    );
    let user = if token_matches(req.headers().get(http::header::AUTHORIZATION), token) {
        Some(Arc::new(token_user()))
    } else {
        cert_user
    };
    match user {
        Some(u) => {
            req.extensions_mut().insert(u);
        }
        None if public => {
            req.extensions_mut().insert(Arc::new(UserInfo {
                name: "system:anonymous".into(),
                groups: vec!["system:unauthenticated".into()],
            }));
        }
        None => return error_response(&ApiError::unauthorized()),
    }
    server.handle(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_compare_exactly() {
        let h = |s: &str| http::HeaderValue::from_str(s).unwrap();
        assert!(token_matches(Some(&h("Bearer abc")), "abc"));
        assert!(!token_matches(Some(&h("Bearer abd")), "abc"));
        assert!(!token_matches(Some(&h("Bearer ab")), "abc"));
        assert!(!token_matches(Some(&h("Basic abc")), "abc"));
        assert!(!token_matches(None, "abc"));
    }

    #[test]
    fn credentials_persist_except_the_serving_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let a = Credentials::load_or_create(dir.path(), &["10.1.2.3".into()]).unwrap();
        let b = Credentials::load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_eq!(a.admin_cert_pem, b.admin_cert_pem);
        assert_eq!(a.admin_token, b.admin_token);
        assert_ne!(a.server_pem, b.server_pem);
        let kc = a.admin_kubeconfig("https://127.0.0.1:6443", "flotilla");
        assert!(kc.contains("server: https://127.0.0.1:6443"));
    }
}
