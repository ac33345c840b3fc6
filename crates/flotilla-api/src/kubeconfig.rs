//! The kubeconfig files Flotilla writes (the hub's admin kubeconfig, a member agent's hub
//! kubeconfig): one cluster, one user with a client certificate, one context.

/// A kubeconfig with one cluster, user and context. Certificate and key data are base64, as
/// kubeconfig files carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubeconfig<'a> {
    /// The cluster's name.
    pub cluster: &'a str,
    /// The API server's URL.
    pub server: &'a str,
    /// The CA that signed the server's certificate (base64 PEM).
    pub certificate_authority_data: &'a str,
    /// The user's name.
    pub user: &'a str,
    /// The user's client certificate (base64 PEM).
    pub client_certificate_data: &'a str,
    /// The user's client key (base64 PEM).
    pub client_key_data: &'a str,
    /// The context's name (also the current context).
    pub context: &'a str,
    /// The context's namespace.
    pub namespace: &'a str,
}

impl Kubeconfig<'_> {
    /// The kubeconfig as YAML.
    pub fn render(&self) -> String {
        let Kubeconfig {
            cluster,
            server,
            certificate_authority_data: ca,
            user,
            client_certificate_data: cert,
            client_key_data: key,
            context,
            namespace,
        } = self;
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster}\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: {context}\n  context:\n    cluster: {cluster}\n    user: {user}\n    namespace: {namespace}\ncurrent-context: {context}\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubeconfig_names_its_one_cluster_user_and_context() {
        let text = Kubeconfig {
            cluster: "hub",
            server: "https://127.0.0.1:6443",
            certificate_authority_data: "Q0E=",
            user: "admin",
            client_certificate_data: "Q0VSVA==",
            client_key_data: "S0VZ",
            context: "admin@hub",
            namespace: "default",
        }
        .render();
        assert_eq!(
            text,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: hub\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: Q0E=\nusers:\n- name: admin\n  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\ncontexts:\n- name: admin@hub\n  context:\n    cluster: hub\n    user: admin\n    namespace: default\ncurrent-context: admin@hub\n"
        );
    }
}
