//! The certificates of a test cluster: a CA, kube-apiserver's serving certificate, an admin
//! client certificate (group `system:masters`) and the service-account signing key.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::{io, Result};

/// The files written by [`write`].
pub(crate) struct Pki {
    pub ca_crt: PathBuf,
    pub ca_key: PathBuf,
    pub server_crt: PathBuf,
    pub server_key: PathBuf,
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
    ca_pem: String,
    admin_crt: String,
    admin_key: String,
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(io(format!("writing {}", path.display())))
}

/// Makes the cluster's certificates under `dir`.
pub(crate) fn write(dir: &Path) -> Result<Pki> {
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "flotilla-testbed-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&ca_key.serialize_pem())?)?;

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(Vec::<String>::new())?;
    server
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    for h in [
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.96.0.1",
    ] {
        server.subject_alt_names.push(match h.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(h.try_into()?),
        });
    }
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let admin_key = KeyPair::generate()?;
    let mut admin = CertificateParams::new(Vec::<String>::new())?;
    admin
        .distinguished_name
        .push(DnType::CommonName, "kubernetes-admin");
    admin
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin.signed_by(&admin_key, &issuer)?;

    let sa = KeyPair::generate()?;
    let pki = Pki {
        ca_crt: dir.join("ca.crt"),
        ca_key: dir.join("ca.key"),
        server_crt: dir.join("apiserver.crt"),
        server_key: dir.join("apiserver.key"),
        sa_key: dir.join("sa.key"),
        sa_pub: dir.join("sa.pub"),
        ca_pem: ca_pem.clone(),
        admin_crt: admin_cert.pem(),
        admin_key: admin_key.serialize_pem(),
    };
    write_file(&pki.ca_crt, &ca_pem)?;
    write_file(&pki.ca_key, &ca_key.serialize_pem())?;
    write_file(&pki.server_crt, &server_cert.pem())?;
    write_file(&pki.server_key, &server_key.serialize_pem())?;
    write_file(&pki.sa_key, &sa.serialize_pem())?;
    write_file(&pki.sa_pub, &sa.public_key_pem())?;
    Ok(pki)
}

impl Pki {
    /// An admin kubeconfig (client certificate in `system:masters`) for `server`.
    pub(crate) fn admin_kubeconfig(&self, server: &str, name: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {name}-admin\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}-admin\n    namespace: default\ncurrent-context: {name}\n",
            ca = b64(&self.ca_pem),
            cert = b64(&self.admin_crt),
            key = b64(&self.admin_key),
        )
    }
}

/// A kubeconfig for `server` whose user is a client certificate for `user` in `groups`, issued
/// by the CA whose certificate and key (PEM) are given: how a test acts as an ordinary user of
/// kube-apiserver or of a Flotilla server alike.
pub fn user_kubeconfig(
    ca_pem: &str,
    ca_key_pem: &str,
    server: &str,
    user: &str,
    groups: &[&str],
) -> Result<String> {
    let issuer = Issuer::from_ca_cert_pem(ca_pem, KeyPair::from_pem(ca_key_pem)?)?;
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, user);
    for g in groups {
        p.distinguished_name.push(DnType::OrganizationName, *g);
    }
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &issuer)?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    Ok(format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: {user}\ncurrent-context: c\n",
        ca = b64(ca_pem),
        cert = b64(&cert.pem()),
        key = b64(&key.serialize_pem()),
    ))
}
