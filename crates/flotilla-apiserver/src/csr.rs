//! CertificateSigningRequests (`certificates.k8s.io/v1`): the requester's identity recorded at
//! create and validation; the signer for `kubernetes.io/kube-apiserver-client`
//! ([`crate::controllers::csr_signer`]) issues client certificates from the server's CA once a
//! request is approved (kube-controller-manager's csrsigning controller). This is how `flotilla join` obtains a member's
//! credentials through the API, and how an operator can too (`kubectl certificate approve`).

use base64::Engine;
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::errors::Cause;

/// The signer of client certificates for this API server.
pub use flotilla_api::member::CLIENT_SIGNER;
/// Where CSRs are stored.
pub(crate) fn key_prefix() -> String {
    crate::registry::key_prefix_of("certificates.k8s.io", "certificatesigningrequests")
}
/// Lifetime of an issued certificate when the request names none (kube's default: 1 year).
pub(crate) const DEFAULT_EXPIRATION: i64 = 365 * 24 * 3600;

/// Records who asked: spec.username, uid and groups come from the request's user, never the body.
pub(crate) fn set_requester(obj: &mut Value, user: Option<&UserInfo>) {
    let (name, groups) = match user {
        Some(u) => (u.name.clone(), u.groups.clone()),
        None => (
            "system:flotilla".to_string(),
            vec!["system:masters".to_string()],
        ),
    };
    if !obj["spec"].is_object() {
        obj["spec"] = json!({});
    }
    let spec = obj["spec"].as_object_mut().expect("object");
    spec.insert("username".into(), json!(name));
    spec.insert("groups".into(), json!(groups));
    spec.remove("uid");
    spec.remove("extra");
}

pub(crate) fn decode_request(spec: &Value) -> Result<String, String> {
    let b64 = spec["request"].as_str().unwrap_or("");
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("not base64: {e}"))?;
    let pem = String::from_utf8(pem).map_err(|_| "not PEM text".to_string())?;
    if !pem.contains("-----BEGIN CERTIFICATE REQUEST-----") {
        return Err("PEM block type must be CERTIFICATE REQUEST".into());
    }
    rcgen::CertificateSigningRequestParams::from_pem(&pem)
        .map_err(|e| format!("invalid certificate request: {e}"))?;
    Ok(pem)
}

/// Validation of a CertificateSigningRequest (kube's rules for the fields a client sets).
pub(crate) fn validate(obj: &Value) -> Vec<Cause> {
    let spec = &obj["spec"];
    let mut c = Vec::new();
    if spec["request"].as_str().unwrap_or("").is_empty() {
        c.push(Cause::required("spec.request"));
    } else if let Err(e) = decode_request(spec) {
        c.push(Cause::invalid("spec.request", &json!("<request>"), &e));
    }
    let signer = spec["signerName"].as_str().unwrap_or("");
    if signer.is_empty() {
        c.push(Cause::required("spec.signerName"));
    } else if !signer.contains('/') {
        c.push(Cause::invalid(
            "spec.signerName",
            &json!(signer),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
    }
    if spec["usages"].as_array().is_none_or(|u| u.is_empty()) {
        c.push(Cause::required("spec.usages"));
    }
    if let Some(e) = spec["expirationSeconds"].as_i64() {
        if e < 600 {
            c.push(Cause::invalid(
                "spec.expirationSeconds",
                &json!(e),
                "may not specify a duration less than 600 seconds (10 minutes)",
            ));
        }
    }
    c
}
