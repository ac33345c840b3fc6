//! Parsing of resource request paths and query parameters, as kube-apiserver's
//! RequestInfoFactory does it.

use std::collections::HashMap;

/// What a resource request addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// API group ("" for `/api`).
    pub group: String,
    /// Version.
    pub version: String,
    /// Namespace from the path, if any.
    pub namespace: Option<String>,
    /// Plural resource.
    pub resource: String,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`, `finalize`), if any.
    pub subresource: Option<String>,
}

/// Splits a resource path (`/api/v1/...` or `/apis/g/v/...`) into a [`RequestInfo`]; None when
/// the path has no resource part (discovery paths).
pub fn parse_resource_path(path: &str) -> Option<RequestInfo> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    if rest.is_empty() || rest.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut info = RequestInfo {
        group: group.to_string(),
        version: version.to_string(),
        ..Default::default()
    };
    let mut rest = rest;
    if rest[0] == "namespaces" && rest.len() > 1 {
        info.namespace = Some(rest[1].to_string());
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        } else {
            // `/namespaces/{name}[/{sub}]` addresses the Namespace object itself.
            info.namespace = None;
            info.resource = "namespaces".into();
            info.name = Some(rest[1].to_string());
            info.subresource = rest.get(2).map(|s| s.to_string());
            return Some(info);
        }
    }
    match rest {
        [res] => info.resource = res.to_string(),
        [res, name] => {
            info.resource = res.to_string();
            info.name = Some(name.to_string());
        }
        [res, name, sub] => {
            info.resource = res.to_string();
            info.name = Some(name.to_string());
            info.subresource = Some(sub.to_string());
        }
        _ => return None,
    }
    Some(info)
}

/// Query parameters of a request.
#[derive(Debug, Clone, Default)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    /// Parses a query string.
    pub fn parse(q: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// A parameter's value.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    /// A boolean parameter (`true`, `1`).
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }

    /// Whether `dryRun=All` was asked for.
    pub fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(
        group: &str,
        ns: Option<&str>,
        res: &str,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> RequestInfo {
        RequestInfo {
            group: group.into(),
            version: "v1".into(),
            namespace: ns.map(Into::into),
            resource: res.into(),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
        }
    }

    #[test]
    fn paths() {
        let cases: &[(&str, Option<RequestInfo>)] = &[
            (
                "/api/v1/namespaces",
                Some(info("", None, "namespaces", None, None)),
            ),
            (
                "/api/v1/namespaces/default",
                Some(info("", None, "namespaces", Some("default"), None)),
            ),
            (
                "/api/v1/namespaces/x/status",
                Some(info("", None, "namespaces", Some("x"), Some("status"))),
            ),
            (
                "/api/v1/namespaces/x/finalize",
                Some(info("", None, "namespaces", Some("x"), Some("finalize"))),
            ),
            (
                "/api/v1/namespaces/x/configmaps",
                Some(info("", Some("x"), "configmaps", None, None)),
            ),
            (
                "/api/v1/namespaces/x/configmaps/a",
                Some(info("", Some("x"), "configmaps", Some("a"), None)),
            ),
            (
                "/apis/apps/v1/namespaces/x/deployments/a/scale",
                Some(info(
                    "apps",
                    Some("x"),
                    "deployments",
                    Some("a"),
                    Some("scale"),
                )),
            ),
            (
                "/apis/apps/v1/deployments",
                Some(info("apps", None, "deployments", None, None)),
            ),
            (
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
                Some(info(
                    "rbac.authorization.k8s.io",
                    None,
                    "clusterroles",
                    Some("admin"),
                    None,
                )),
            ),
            ("/api/v1", None),
            ("/apis/apps/v1", None),
            ("/api/v1/namespaces/x/configmaps/a/b/c", None),
            ("/healthz", None),
        ];
        for (path, want) in cases {
            assert_eq!(&parse_resource_path(path), want, "{path}");
        }
    }
}
