//! Authorization (RBAC) and client certificates issued through CertificateSigningRequests.

use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{self, client_for, status_of};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A key and CSR for CN `user`, O `groups`.
fn request(user: &str, groups: &[&str]) -> (rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, user);
    for g in groups {
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, *g);
    }
    let pem = p.serialize_request(&key).unwrap().pem().unwrap();
    (key, pem)
}

fn csr(name: &str, pem: &str) -> CertificateSigningRequest {
    serde_json::from_value(
        json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": b64(pem), "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["client auth"], "expirationSeconds": 3600}}),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_certificates_authenticate_and_rbac_decides() {
    let ts = support::start().await;
    let creds =
        flotilla_apiserver::Credentials::load_or_create(&ts.dir.path().join("pki"), &[]).unwrap();
    ts.server
        .start_signer(creds.ca_pem.clone(), creds.ca_key_pem());
    let csrs: Api<CertificateSigningRequest> = Api::all(ts.client.clone());

    // Bad requests are rejected with field causes and create nothing.
    let mut bad = csr("bad", "not a pem");
    bad.spec.usages = None;
    let s = status_of(csrs.create(&PostParams::default(), &bad).await);
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    let fields: Vec<String> = s
        .details
        .unwrap()
        .causes
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert_eq!(fields, ["spec.request", "spec.usages"]);
    assert!(csrs.get_opt("bad").await.unwrap().is_none());

    // Approve -> issued; the requester is recorded from the request's user, not the body.
    let (key, pem) = request("alice", &["team-a"]);
    let mut c = csr("alice", &pem);
    c.spec.username = Some("mallory".into());
    let created = csrs.create(&PostParams::default(), &c).await.unwrap();
    assert_eq!(created.spec.username.as_deref(), Some("flotilla-admin"));
    let (ok, out, _) = ts.kubectl(&["certificate", "approve", "alice"]);
    assert!(ok, "{out}");
    let mut cert = None;
    for _ in 0..100 {
        let c = csrs.get("alice").await.unwrap();
        if let Some(x) = c.status.and_then(|s| s.certificate) {
            cert = Some(String::from_utf8(x.0).unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cert = cert.expect("the signer issued a certificate");
    let (_, table, _) = ts.kubectl(&["get", "csr", "alice"]);
    assert!(
        table.contains("Approved,Issued") && table.contains("kubernetes.io/kube-apiserver-client"),
        "{table}"
    );

    // A denied request gets no certificate.
    let (_, pem2) = request("bob", &[]);
    csrs.create(&PostParams::default(), &csr("bob", &pem2))
        .await
        .unwrap();
    assert!(ts.kubectl(&["certificate", "deny", "bob"]).0);
    // The signer handles requests in the order of their writes: once carol's, approved after
    // bob was denied, is issued, the signer has seen bob's denial too.
    let (_, pem3) = request("carol", &[]);
    csrs.create(&PostParams::default(), &csr("carol", &pem3))
        .await
        .unwrap();
    assert!(ts.kubectl(&["certificate", "approve", "carol"]).0);
    support::eventually("carol's certificate", || async {
        csrs.get("carol")
            .await
            .unwrap()
            .status
            .and_then(|s| s.certificate)
            .is_some()
    })
    .await;
    assert!(csrs
        .get("bob")
        .await
        .unwrap()
        .status
        .unwrap()
        .certificate
        .is_none());

    // alice authenticates; RBAC denies until a binding grants.
    let kc = ts.dir.path().join("alice.kubeconfig");
    let admin = std::fs::read_to_string(&ts.kubeconfig).unwrap();
    let ca = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .unwrap();
    std::fs::write(&kc, format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: alice\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: t\n  context:\n    cluster: t\n    user: alice\ncurrent-context: t\n",
        ts.url, b64(&cert), b64(&key.serialize_pem()))).unwrap();
    let alice = client_for(&kc).await;
    let cms: Api<ConfigMap> = Api::namespaced(alice.clone(), "default");
    let s = status_of(cms.list(&Default::default()).await);
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(s.message, "configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\"");
    // Discovery is open to every authenticated user.
    assert!(alice.apiserver_version().await.is_ok());
    let (ok, _, err) = ts.kubectl(&["--kubeconfig", kc.to_str().unwrap(), "api-resources"]);
    assert!(ok, "{err}");

    ts.kubectl_ok(&[
        "create",
        "role",
        "cm-reader",
        "-n",
        "default",
        "--verb=get,list,watch",
        "--resource=configmaps",
    ]);
    ts.kubectl_ok(&[
        "create",
        "rolebinding",
        "team-a-reads",
        "-n",
        "default",
        "--role=cm-reader",
        "--group=team-a",
    ]);
    ts.kubectl_ok(&[
        "create",
        "configmap",
        "c1",
        "-n",
        "default",
        "--from-literal=a=b",
    ]);
    assert_eq!(cms.list(&Default::default()).await.unwrap().items.len(), 1);
    let s = status_of(
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap(),
        )
        .await,
    );
    assert_eq!(s.code, 403);
    let s = status_of(
        cms.patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "c"}})),
        )
        .await,
    );
    assert_eq!(s.message, "configmaps \"c1\" is forbidden: User \"alice\" cannot patch resource \"configmaps\" in API group \"\" in the namespace \"default\"");
    let other: Api<ConfigMap> = Api::namespaced(alice.clone(), "kube-system");
    assert_eq!(status_of(other.list(&Default::default()).await).code, 403);
    let (ok, _, err) = ts.kubectl(&["--kubeconfig", kc.to_str().unwrap(), "get", "namespaces"]);
    assert!(
        !ok && err
            .contains("cannot list resource \"namespaces\" in API group \"\" at the cluster scope"),
        "{err}"
    );

    // Removing the binding revokes at once.
    ts.kubectl_ok(&["delete", "rolebinding", "team-a-reads", "-n", "default"]);
    assert_eq!(status_of(cms.list(&Default::default()).await).code, 403);
}
