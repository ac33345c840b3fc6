//! Joining a member to the hub, as `flotilla join` does it through the hub's API: a client
//! certificate for identity `fleet-member-<name>` issued through a CertificateSigningRequest
//! (created, approved and collected with the admin's credentials), the MemberCluster, and,
//! once the hub has prepared the member's namespace and access, the agent's hub kubeconfig.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use flotilla_api::member::{self, condition, member_cluster_resource, CLIENT_SIGNER};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use serde_json::json;

use crate::Error;

/// What a new member joins with.
pub struct JoinRequest<'a> {
    /// The member's name (its namespace on the hub is `fleet-member-<name>`).
    pub name: &'a str,
    /// The MemberCluster's labels.
    pub labels: BTreeMap<String, String>,
    /// The member's heartbeat period.
    pub heartbeat_period_seconds: u32,
}

/// Joins a member to the hub whose admin kubeconfig is `hub`; returns the agent's hub
/// kubeconfig (the caller writes it where the agent reads it).
pub async fn join(hub: &Kubeconfig, request: &JoinRequest<'_>) -> Result<String, Error> {
    let name = request.name;
    let config = kube::Config::from_custom_kubeconfig(hub.clone(), &Default::default())
        .await
        .map_err(|e| Error::Kubeconfig {
            path: "of the hub".into(),
            message: e.to_string(),
        })?;
    let client = kube::Client::try_from(config)?;
    let mcs: Api<DynamicObject> = Api::all_with(client.clone(), &member_cluster_resource());
    if mcs
        .get_opt(name)
        .await
        .map_err(Error::Unreachable)?
        .is_some()
    {
        return Err(Error::Exists(name.to_string()));
    }
    let user = member::namespace_of(name);
    let key = rcgen::KeyPair::generate()?;
    let cert = issue(&client, name, &user, &key).await?;

    let mc: DynamicObject = serde_json::from_value(json!({
        "apiVersion": member_cluster_resource().api_version, "kind": "MemberCluster",
        "metadata": {"name": name, "labels": request.labels},
        "spec": {"identity": {"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"},
            "heartbeatPeriodSeconds": request.heartbeat_period_seconds}
    }))?;
    match mcs.create(&PostParams::default(), &mc).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => return Err(Error::Exists(name.into())),
        Err(e) => return Err(e.into()),
    }
    // The agent can start once the hub has prepared the member's namespace and access.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mc = mcs.get(name).await?;
        if flotilla_api::conditions::is_true(
            &mc.data["status"]["conditions"],
            condition::READY_TO_JOIN,
        ) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Timeout(format!("the hub did not prepare member {name} within 30s (is the hub's member controller running?)")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The hub's address and CA come from the admin kubeconfig's current cluster.
    let current = hub.current_context.clone().unwrap_or_default();
    let cluster_name = hub
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .unwrap_or_default();
    let cluster = hub
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| Error::Kubeconfig {
            path: "of the hub".into(),
            message: "no current cluster".into(),
        })?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let context = format!("{user}@flotilla-hub");
    Ok(flotilla_api::kubeconfig::Kubeconfig {
        cluster: "flotilla-hub",
        server: &cluster.server.unwrap_or_default(),
        certificate_authority_data: &cluster.certificate_authority_data.unwrap_or_default(),
        user: &user,
        client_certificate_data: &cert,
        client_key_data: &b64(&key.serialize_pem()),
        context: &context,
        namespace: &user,
    }
    .render())
}

/// A client certificate for `user` with `key`, issued through a CertificateSigningRequest;
/// base64 PEM, as a kubeconfig carries it.
async fn issue(
    client: &kube::Client,
    name: &str,
    user: &str,
    key: &rcgen::KeyPair,
) -> Result<String, Error> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, user.to_string());
    let request_pem = params.serialize_request(key)?.pem()?;
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let csr_name = format!("flotilla-join-{name}");
    let _ = csrs.delete(&csr_name, &Default::default()).await;
    let csr: CertificateSigningRequest = serde_json::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": csr_name},
        "spec": {"request": base64::engine::general_purpose::STANDARD.encode(&request_pem),
            "signerName": CLIENT_SIGNER, "usages": ["client auth", "digital signature"]}
    }))?;
    csrs.create(&PostParams::default(), &csr).await?;
    csrs.patch_approval(
        &csr_name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": [{"type": "Approved", "status": "True",
            "reason": "FlotillaJoin", "message": format!("approved by flotilla join for member {name}"),
            "lastUpdateTime": flotilla_api::conditions::timestamp(chrono::Utc::now())}]}})),
    )
    .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let cert = loop {
        let c = csrs.get(&csr_name).await?;
        if let Some(cert) = c.status.as_ref().and_then(|s| s.certificate.as_ref()) {
            break base64::engine::general_purpose::STANDARD.encode(&cert.0);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Timeout(format!(
                "the hub did not issue a certificate for {csr_name} within 30s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = csrs.delete(&csr_name, &Default::default()).await;
    Ok(cert)
}
