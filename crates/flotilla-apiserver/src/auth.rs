//! Who is asking, and may they: the authenticated user of a request and Kubernetes RBAC
//! (Role, ClusterRole, RoleBinding, ClusterRoleBinding) evaluated against the objects in the
//! store, so a change to a binding takes effect on the next request.
//!
//! Requests made through [`ApiServer::client`](crate::ApiServer::client) carry no user: they
//! come from the server's own process (its controllers) and are not authorized further.

use std::sync::Arc;

use flotilla_store::Store;
use serde_json::{json, Value};

use crate::errors::ApiError;
use crate::registry::key_prefix_of;
use crate::request::RequestInfo;

/// The RBAC API group.
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The group whose members may do anything (kube-apiserver's superuser group).
pub const MASTERS_GROUP: &str = "system:masters";
/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// An authenticated user: a name and groups, as from a client certificate's CN and O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name.
    pub name: String,
    /// The groups, including `system:authenticated`.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user with `groups` plus `system:authenticated`.
    pub fn new(name: impl Into<String>, groups: impl IntoIterator<Item = String>) -> Self {
        let mut groups: Vec<String> = groups.into_iter().collect();
        if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            groups.push(AUTHENTICATED_GROUP.into());
        }
        Self {
            name: name.into(),
            groups,
        }
    }
}

/// What a request wants to do, in RBAC's terms.
#[derive(Debug, Clone)]
pub(crate) enum Action<'a> {
    Resource {
        verb: &'static str,
        info: &'a RequestInfo,
    },
    NonResource {
        verb: String,
        path: &'a str,
    },
}

/// The RBAC verb of a resource request.
pub(crate) fn verb_of(method: &http::Method, info: &RequestInfo, watch: bool) -> &'static str {
    match (method.as_str(), info.name.is_some()) {
        ("GET" | "HEAD", true) => "get",
        ("GET" | "HEAD", false) if watch => "watch",
        ("GET" | "HEAD", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

fn subject_matches(s: &Value, user: &UserInfo, binding_ns: Option<&str>) -> bool {
    let name = s["name"].as_str().unwrap_or("");
    match s["kind"].as_str().unwrap_or("") {
        "User" => name == user.name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = s["namespace"].as_str().or(binding_ns).unwrap_or("");
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn has(list: &Value, want: &str) -> bool {
    list.as_array().is_some_and(|l| {
        l.iter()
            .any(|v| v.as_str() == Some("*") || v.as_str() == Some(want))
    })
}

fn rule_allows(rule: &Value, action: &Action<'_>) -> bool {
    match action {
        Action::Resource { verb, info } => {
            if !has(&rule["verbs"], verb) || !has(&rule["apiGroups"], &info.group) {
                return false;
            }
            let resource = match &info.subresource {
                Some(sub) => format!("{}/{sub}", info.resource),
                None => info.resource.clone(),
            };
            let resources_ok = rule["resources"].as_array().is_some_and(|l| {
                l.iter().filter_map(Value::as_str).any(|r| {
                    r == "*"
                        || r == resource
                        || info.subresource.as_deref().is_some_and(|sub| {
                            r == format!("{}/*", info.resource) || r == format!("*/{sub}")
                        })
                })
            });
            if !resources_ok {
                return false;
            }
            match rule["resourceNames"].as_array() {
                Some(names) if !names.is_empty() => info
                    .name
                    .as_deref()
                    .is_some_and(|n| names.iter().any(|v| v.as_str() == Some(n))),
                _ => true,
            }
        }
        Action::NonResource { verb, path } => {
            has(&rule["verbs"], verb)
                && rule["nonResourceURLs"].as_array().is_some_and(|l| {
                    l.iter().filter_map(Value::as_str).any(|u| {
                        u == *path || (u.ends_with('*') && path.starts_with(&u[..u.len() - 1]))
                    })
                })
        }
    }
}

/// A parsed object and the revision it was parsed at.
type Parsed = (u64, Arc<Value>);

/// Parsed RBAC objects by key, valid while the stored object's revision is unchanged, so a
/// request does not parse every binding and role it consults.
#[derive(Default)]
pub(crate) struct RbacCache {
    parsed: parking_lot::Mutex<std::collections::HashMap<Arc<str>, Parsed>>,
}

impl RbacCache {
    fn value(&self, obj: &Arc<flotilla_store::Object>) -> Option<Arc<Value>> {
        if let Some((rev, v)) = self.parsed.lock().get(&obj.key) {
            if *rev == obj.mod_rev {
                return Some(v.clone());
            }
        }
        let v: Arc<Value> = Arc::new(serde_json::from_slice(&obj.data).ok()?);
        let mut m = self.parsed.lock();
        if m.len() > 100_000 {
            m.clear();
        }
        m.insert(obj.key.clone(), (obj.mod_rev, v.clone()));
        Some(v)
    }
}

fn parse(store: &Store, cache: &RbacCache, key: &str) -> Option<Arc<Value>> {
    store.get(key).and_then(|o| cache.value(&o))
}

fn role_allows(
    store: &Store,
    cache: &RbacCache,
    role_ref: &Value,
    ns: Option<&str>,
    action: &Action<'_>,
) -> bool {
    let name = role_ref["name"].as_str().unwrap_or("");
    let key = match (role_ref["kind"].as_str(), ns) {
        (Some("ClusterRole"), _) => format!("{}{name}", key_prefix_of(RBAC_GROUP, "clusterroles")),
        (Some("Role"), Some(ns)) => format!("{}{ns}/{name}", key_prefix_of(RBAC_GROUP, "roles")),
        _ => return false,
    };
    parse(store, cache, &key).is_some_and(|role| {
        role["rules"]
            .as_array()
            .is_some_and(|rules| rules.iter().any(|r| rule_allows(r, action)))
    })
}

/// Whether RBAC allows `user` to do `action`.
pub(crate) fn allowed(
    store: &Store,
    cache: &RbacCache,
    user: &UserInfo,
    action: &Action<'_>,
) -> bool {
    if user.groups.iter().any(|g| g == MASTERS_GROUP) {
        return true;
    }
    let snap = store.snapshot();
    let bound = |binding: &Value, ns: Option<&str>| {
        binding["subjects"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| subject_matches(s, user, ns)))
            && role_allows(store, cache, &binding["roleRef"], ns, action)
    };
    let decode = |o: &Arc<flotilla_store::Object>| cache.value(o);
    for o in snap.range(&key_prefix_of(RBAC_GROUP, "clusterrolebindings"), None) {
        if decode(o).is_some_and(|b| bound(&b, None)) {
            return true;
        }
    }
    if let Action::Resource { info, .. } = action {
        if let Some(ns) = info.namespace.as_deref() {
            let prefix = format!("{}{ns}/", key_prefix_of(RBAC_GROUP, "rolebindings"));
            for o in snap.range(&prefix, None) {
                if decode(o).is_some_and(|b| bound(&b, Some(ns))) {
                    return true;
                }
            }
        }
    }
    false
}

/// The 403 kube-apiserver answers when RBAC denies `action`.
pub(crate) fn forbidden(user: &UserInfo, action: &Action<'_>) -> ApiError {
    match action {
        Action::Resource { verb, info } => {
            let qualified = if info.group.is_empty() {
                info.resource.clone()
            } else {
                format!("{}.{}", info.resource, info.group)
            };
            let resource = match &info.subresource {
                Some(sub) => format!("{}/{sub}", info.resource),
                None => info.resource.clone(),
            };
            let scope = match &info.namespace {
                Some(ns) => format!("in the namespace \"{ns}\""),
                None => "at the cluster scope".into(),
            };
            let subject = match &info.name {
                Some(n) => format!("{qualified} \"{n}\""),
                None => qualified,
            };
            let mut e = ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{subject} is forbidden: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
                    user.name, info.group
                ),
            );
            // Empty fields are left out, as Go's omitempty does.
            let mut details = json!({"kind": info.resource});
            if !info.group.is_empty() {
                details["group"] = json!(info.group);
            }
            if let Some(n) = info.name.as_ref().filter(|n| !n.is_empty()) {
                details["name"] = json!(n);
            }
            e.details = Some(details);
            e
        }
        Action::NonResource { verb, path } => ApiError::new(
            403,
            "Forbidden",
            format!(
                "forbidden: User \"{}\" cannot {verb} path \"{path}\"",
                user.name
            ),
        ),
    }
}

/// The ClusterRoles and bindings every server starts with (kube-apiserver's bootstrap policy,
/// the parts a fleet uses): `cluster-admin`, and discovery, health and version for every
/// authenticated user.
pub(crate) fn bootstrap_policy() -> Vec<(&'static str, Value)> {
    let labels = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    let annotations = json!({"rbac.authorization.kubernetes.io/autoupdate": "true"});
    let cr = |name: &str, rules: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels, "annotations": annotations}, "rules": rules})
    };
    let crb = |name: &str, role: &str, group: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]})
    };
    vec![
        (
            "clusterroles",
            cr(
                "cluster-admin",
                json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                       {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
            ),
        ),
        (
            "clusterroles",
            cr(
                "system:discovery",
                json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                    "/openapi", "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
            ),
        ),
        (
            "clusterroles",
            cr(
                "system:basic-user",
                json!([{"apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]}]),
            ),
        ),
        (
            "clusterrolebindings",
            crb("cluster-admin", "cluster-admin", MASTERS_GROUP),
        ),
        (
            "clusterrolebindings",
            crb("system:discovery", "system:discovery", AUTHENTICATED_GROUP),
        ),
        (
            "clusterrolebindings",
            crb(
                "system:basic-user",
                "system:basic-user",
                AUTHENTICATED_GROUP,
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(group: &str, resource: &str, ns: Option<&str>, name: Option<&str>) -> RequestInfo {
        RequestInfo {
            group: group.into(),
            version: "v1".into(),
            namespace: ns.map(String::from),
            resource: resource.into(),
            name: name.map(String::from),
            subresource: None,
        }
    }

    #[test]
    fn rules_match_verbs_groups_resources_and_names() {
        let i = info("", "configmaps", Some("a"), Some("x"));
        let get = Action::Resource {
            verb: "get",
            info: &i,
        };
        let cases = [
            (
                json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}),
                true,
            ),
            (
                json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}),
                true,
            ),
            (
                json!({"apiGroups": ["apps"], "resources": ["configmaps"], "verbs": ["get"]}),
                false,
            ),
            (
                json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}),
                false,
            ),
            (
                json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}),
                false,
            ),
            (
                json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["x"]}),
                true,
            ),
            (
                json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["y"]}),
                false,
            ),
        ];
        for (rule, want) in cases {
            assert_eq!(rule_allows(&rule, &get), want, "{rule}");
        }
        let mut s = info("", "pods", Some("a"), Some("x"));
        s.subresource = Some("status".into());
        let upd = Action::Resource {
            verb: "update",
            info: &s,
        };
        assert!(!rule_allows(
            &json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["update"]}),
            &upd
        ));
        assert!(rule_allows(
            &json!({"apiGroups": [""], "resources": ["pods/status"], "verbs": ["update"]}),
            &upd
        ));
        let nr = Action::NonResource {
            verb: "get".into(),
            path: "/apis/apps/v1",
        };
        assert!(rule_allows(
            &json!({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}),
            &nr
        ));
        assert!(!rule_allows(
            &json!({"nonResourceURLs": ["/api"], "verbs": ["get"]}),
            &nr
        ));
    }

    #[test]
    fn subjects_match_users_groups_and_service_accounts() {
        let u = UserInfo::new("system:serviceaccount:ns1:robot", ["team".to_string()]);
        assert!(subject_matches(
            &json!({"kind": "Group", "name": "team"}),
            &u,
            None
        ));
        assert!(subject_matches(
            &json!({"kind": "Group", "name": AUTHENTICATED_GROUP}),
            &u,
            None
        ));
        assert!(subject_matches(
            &json!({"kind": "ServiceAccount", "name": "robot"}),
            &u,
            Some("ns1")
        ));
        assert!(!subject_matches(
            &json!({"kind": "ServiceAccount", "name": "robot"}),
            &u,
            Some("ns2")
        ));
        assert!(!subject_matches(
            &json!({"kind": "User", "name": "robot"}),
            &u,
            None
        ));
    }

    #[test]
    fn forbidden_messages_read_like_kube_apiserver() {
        let u = UserInfo::new("alice", []);
        let i = info("apps", "deployments", Some("prod"), Some("web"));
        let e = forbidden(
            &u,
            &Action::Resource {
                verb: "get",
                info: &i,
            },
        );
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "deployments.apps \"web\" is forbidden: User \"alice\" cannot get resource \"deployments\" in API group \"apps\" in the namespace \"prod\""
        );
        let i = info("", "namespaces", None, None);
        let e = forbidden(
            &u,
            &Action::Resource {
                verb: "list",
                info: &i,
            },
        );
        assert_eq!(
            e.message,
            "namespaces is forbidden: User \"alice\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
        );
    }
}
