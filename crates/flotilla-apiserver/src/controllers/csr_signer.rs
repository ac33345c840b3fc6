//! The signer of `kubernetes.io/kube-apiserver-client` certificates (kube-controller-manager's
//! csrsigning controller), run by the leader: follows the CertificateSigningRequests and
//! issues client certificates from the server's CA for approved requests.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::csr::{decode_request, key_prefix, CLIENT_SIGNER, DEFAULT_EXPIRATION};
use crate::rest::{meta_str, now, Loc};
use crate::server::ApiServer;

fn condition(v: &Value, t: &str) -> bool {
    v["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == t && c["status"] == "True"))
}

/// Issues a certificate for `csr` signed by the CA, or says why not.
fn sign(csr: &Value, ca_cert_pem: &str, ca_key_pem: &str) -> Result<String, String> {
    let pem = decode_request(&csr["spec"])?;
    let mut params = rcgen::CertificateSigningRequestParams::from_pem(&pem)
        .map_err(|e| format!("invalid certificate request: {e}"))?;
    let secs = csr["spec"]["expirationSeconds"]
        .as_i64()
        .unwrap_or(DEFAULT_EXPIRATION)
        .min(DEFAULT_EXPIRATION);
    let now = time::OffsetDateTime::now_utc();
    params.params.not_before = now - time::Duration::minutes(5);
    params.params.not_after = now + time::Duration::seconds(secs);
    params.params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.params.subject_alt_names.clear();
    let key = rcgen::KeyPair::from_pem(ca_key_pem).map_err(|e| e.to_string())?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(ca_cert_pem, key).map_err(|e| e.to_string())?;
    let cert = params.signed_by(&issuer).map_err(|e| e.to_string())?;
    Ok(cert.pem())
}

/// The signer: follows the CertificateSigningRequests and issues certificates for approved
/// client requests. Runs until the server shuts down.
pub(crate) async fn run_signer(server: ApiServer, ca_cert_pem: String, ca_key_pem: String) {
    let res = server
        .state
        .registry
        .read()
        .get("certificates.k8s.io", "v1", "certificatesigningrequests")
        .expect("CSRs are built in");
    let stopped = server.stopped();
    tokio::pin!(stopped);
    loop {
        let snap = server.store().snapshot();
        let pending: Vec<String> = snap
            .range(&key_prefix(), None)
            .map(|o| o.key.to_string())
            .collect();
        for key in pending {
            handle(&server, &res, &key, &ca_cert_pem, &ca_key_pem).await;
        }
        let mut watcher = match server.store().watch(&key_prefix(), snap.rev) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "certificate signer cannot watch the store");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                ev = watcher.next() => match ev {
                    Ok(ev) if ev.kind == flotilla_store::EventKind::Put => {
                        handle(&server, &res, ev.key(), &ca_cert_pem, &ca_key_pem).await;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn handle(
    server: &ApiServer,
    res: &std::sync::Arc<crate::registry::Resource>,
    key: &str,
    ca_cert_pem: &str,
    ca_key_pem: &str,
) {
    let Some(obj) = server.store().get(key) else {
        return;
    };
    let csr = crate::rest::parse(&obj);
    if csr["spec"]["signerName"] != CLIENT_SIGNER
        || !condition(&csr, "Approved")
        || condition(&csr, "Denied")
        || condition(&csr, "Failed")
        || csr["status"]["certificate"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    {
        return;
    }
    let loc = Loc {
        res: res.clone(),
        ns: None,
        name: meta_str(&csr, "name").to_string(),
    };
    let mut status = csr["status"].clone();
    match sign(&csr, ca_cert_pem, ca_key_pem) {
        Ok(pem) => {
            status["certificate"] = json!(base64::engine::general_purpose::STANDARD.encode(pem));
        }
        Err(e) => {
            let mut conds = status["conditions"].as_array().cloned().unwrap_or_default();
            conds.push(
                json!({"type": "Failed", "status": "True", "reason": "SignerValidationFailure",
                "message": e, "lastUpdateTime": now(), "lastTransitionTime": now()}),
            );
            status["conditions"] = json!(conds);
        }
    }
    if let Err(e) = server.write_status(&loc, status).await {
        tracing::warn!(csr = %loc.name, error = %e, "could not record the signed certificate");
    }
}

impl ApiServer {
    /// Starts the client-certificate signer with the server's CA (the hub runs it; a
    /// simulated member does not need one).
    pub fn start_signer(&self, ca_cert_pem: String, ca_key_pem: String) {
        let server = self.clone();
        self.spawn_controller("csr-signer", move || {
            run_signer(server.clone(), ca_cert_pem.clone(), ca_key_pem.clone())
        });
    }
}
