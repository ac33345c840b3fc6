//! The kinds the server serves: built-in Kubernetes kinds and the resources of established
//! CustomResourceDefinitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

/// How object names of a kind are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label,
    /// RFC 1035 label (services).
    Label1035,
    /// A path segment: anything but `.`, `..`, `/` and `%` (RBAC kinds).
    PathSegment,
}

/// The schema an object of a resource is checked against.
#[derive(Debug, Clone)]
pub enum SchemaRef {
    /// A definition of the built-in OpenAPI document.
    Builtin(&'static str),
    /// A CustomResourceDefinition version's `openAPIV3Schema` (None when the CRD has none).
    Custom(Option<Arc<Value>>),
}

/// One column of `kubectl get` output for a custom resource.
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type of the column.
    pub type_: String,
    /// Format hint (e.g. `date`).
    pub format: String,
    /// Description.
    pub description: String,
    /// Priority (0 shows by default; higher only with `-o wide`).
    pub priority: i64,
    /// Simple JSONPath into the object.
    pub json_path: String,
}

/// A served resource at one group/version.
#[derive(Debug, Clone)]
pub struct Resource {
    /// API group ("" for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Plural, lower-case resource name (the URL segment).
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories (e.g. `all`).
    pub categories: Vec<String>,
    /// Whether the `status` subresource is served.
    pub status: bool,
    /// For the `scale` subresource: spec, status and selector paths.
    pub scale: Option<ScalePaths>,
    /// Whether `metadata.generation` is tracked (bumped on spec changes).
    pub generation: bool,
    /// Name rule.
    pub names: NameRule,
    /// Schema.
    pub schema: SchemaRef,
    /// Extra columns for tables (CRDs).
    pub printer_columns: Vec<PrinterColumn>,
    /// Fields usable in field selectors besides metadata.name and metadata.namespace.
    pub selectable_fields: Vec<String>,
    /// Whether this version is the storage version (CRDs) — all versions share storage here.
    pub storage_key_group: String,
    /// The version objects are stored in (a CRD's `storage: true` version), for discovery's
    /// storageVersionHash.
    pub storage_version: String,
    /// Whether the resource comes from a CRD.
    pub custom: bool,
    /// The root schema node the field manager walks, built once on first use (a CRD's schema
    /// with `metadata` as ObjectMeta): not rebuilt, nor copied, per write.
    pub(crate) managed_root: std::sync::OnceLock<Arc<Value>>,
}

/// JSON paths of a scale subresource.
#[derive(Debug, Clone)]
pub struct ScalePaths {
    /// Path of desired replicas, e.g. `.spec.replicas`.
    pub spec_replicas: String,
    /// Path of observed replicas, e.g. `.status.replicas`.
    pub status_replicas: String,
    /// Path of the label selector string, if any.
    pub label_selector: Option<String>,
}

/// The storage key prefix of the objects of resource `plural` in (storage) API group `group`:
/// `/{group}/{plural}/`, the core group stored as `core`; a namespaced object's key goes on with
/// `{namespace}/{name}`, a cluster-scoped one's with `{name}`. Every storage key is made here.
pub fn key_prefix_of(group: &str, plural: &str) -> String {
    format!("/{}/{plural}/", storage_group(group))
}

/// A group as storage keys name it: the core group as `core`.
fn storage_group(group: &str) -> &str {
    if group.is_empty() {
        "core"
    } else {
        group
    }
}

impl Resource {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Storage key prefix of the resource in a namespace (or all namespaces when `ns` is None).
    /// Every version of a resource shares one storage location.
    pub fn key_prefix(&self, ns: Option<&str>) -> String {
        // One allocation: this runs for every request.
        let group = storage_group(&self.storage_key_group);
        match (self.namespaced, ns) {
            (true, Some(ns)) => format!("/{group}/{}/{ns}/", self.plural),
            _ => format!("/{group}/{}/", self.plural),
        }
    }

    /// Storage key of one object.
    pub fn key(&self, ns: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.key_prefix(ns))
    }

    /// The verbs served, for discovery, in kube-apiserver's order: sorted for built-in kinds,
    /// the CRD handler's own order for custom resources. Namespaces have no deletecollection.
    pub fn verbs(&self) -> Vec<&'static str> {
        if self.custom {
            return vec![
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "create",
                "update",
                "watch",
            ];
        }
        let mut verbs = vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        if self.group.is_empty() && self.plural == "namespaces" {
            verbs.retain(|v| *v != "deletecollection");
        }
        verbs
    }

    /// Discovery's `storageVersionHash`, as kube-apiserver computes it: the first 8 bytes of
    /// the SHA-256 of `group/storage-version/kind`, in base64.
    pub fn storage_version_hash(&self) -> String {
        use base64::Engine;
        let group = if self.storage_key_group.is_empty() {
            ""
        } else {
            self.group.as_str()
        };
        let text = format!("{group}/{}/{}", self.storage_version, self.kind);
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[..8])
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    all: bool,
    status: bool,
    scale: bool,
    generation: bool,
    names: NameRule,
    fields: &'static [&'static str],
}

const fn b(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> Builtin {
    Builtin {
        group,
        version,
        plural,
        kind,
        namespaced,
        short: &[],
        all: false,
        status: false,
        scale: false,
        generation: false,
        names: NameRule::Subdomain,
        fields: &[],
    }
}

impl Builtin {
    const fn short(mut self, s: &'static [&'static str]) -> Self {
        self.short = s;
        self
    }
    const fn all(mut self) -> Self {
        self.all = true;
        self
    }
    const fn status(mut self) -> Self {
        self.status = true;
        self
    }
    const fn scale(mut self) -> Self {
        self.scale = true;
        self
    }
    const fn generation(mut self) -> Self {
        self.generation = true;
        self
    }
    const fn names(mut self, n: NameRule) -> Self {
        self.names = n;
        self
    }
    const fn fields(mut self, f: &'static [&'static str]) -> Self {
        self.fields = f;
        self
    }
}

/// The selectable fields of Events (kube-apiserver's field labels for events).
const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// The built-in kinds the server stores as templates (nothing runs them on the hub).
const BUILTINS: &[Builtin] = &[
    b("", "v1", "namespaces", "Namespace", false)
        .short(&["ns"])
        .status()
        .names(NameRule::Label)
        .fields(&["status.phase"]),
    b("", "v1", "configmaps", "ConfigMap", true).short(&["cm"]),
    b("", "v1", "nodes", "Node", false)
        .short(&["no"])
        .status()
        .fields(&["spec.unschedulable"]),
    b(
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "CertificateSigningRequest",
        false,
    )
    .short(&["csr"])
    .status()
    .fields(&["spec.signerName"]),
    b("", "v1", "pods", "Pod", true)
        .short(&["po"])
        .all()
        .status()
        .fields(&[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ]),
    b("", "v1", "endpoints", "Endpoints", true).short(&["ep"]),
    b(
        "",
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        true,
    )
    .short(&["rc"])
    .all()
    .status()
    .scale()
    .generation(),
    b("", "v1", "persistentvolumes", "PersistentVolume", false)
        .short(&["pv"])
        .status(),
    b("", "v1", "secrets", "Secret", true).fields(&["type"]),
    b("", "v1", "services", "Service", true)
        .short(&["svc"])
        .all()
        .status()
        .names(NameRule::Label1035)
        .fields(&["spec.clusterIP", "spec.type"]),
    b("", "v1", "serviceaccounts", "ServiceAccount", true).short(&["sa"]),
    b("", "v1", "events", "Event", true)
        .short(&["ev"])
        .fields(EVENT_FIELDS),
    b("", "v1", "resourcequotas", "ResourceQuota", true)
        .short(&["quota"])
        .status(),
    b("", "v1", "limitranges", "LimitRange", true).short(&["limits"]),
    b(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
    )
    .short(&["pvc"])
    .status(),
    b("apps", "v1", "deployments", "Deployment", true)
        .short(&["deploy"])
        .all()
        .status()
        .scale()
        .generation(),
    b("apps", "v1", "statefulsets", "StatefulSet", true)
        .short(&["sts"])
        .all()
        .status()
        .scale()
        .generation(),
    b("apps", "v1", "daemonsets", "DaemonSet", true)
        .short(&["ds"])
        .all()
        .status()
        .generation(),
    b("apps", "v1", "replicasets", "ReplicaSet", true)
        .short(&["rs"])
        .all()
        .status()
        .scale()
        .generation()
        .fields(&["status.replicas"]),
    b("batch", "v1", "jobs", "Job", true)
        .all()
        .status()
        .generation()
        .fields(&["status.successful"]),
    b("batch", "v1", "cronjobs", "CronJob", true)
        .short(&["cj"])
        .all()
        .status()
        .generation(),
    b("networking.k8s.io", "v1", "ingresses", "Ingress", true)
        .short(&["ing"])
        .status()
        .generation(),
    b(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
    )
    .short(&["netpol"])
    .generation(),
    b("rbac.authorization.k8s.io", "v1", "roles", "Role", true).names(NameRule::PathSegment),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
    )
    .names(NameRule::PathSegment),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
    )
    .names(NameRule::PathSegment),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
    )
    .names(NameRule::PathSegment),
    b(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
    )
    .short(&["pdb"])
    .status()
    .generation(),
    b(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
    )
    .short(&["hpa"])
    .all()
    .status(),
    b("coordination.k8s.io", "v1", "leases", "Lease", true),
    b(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "PriorityClass",
        false,
    )
    .short(&["pc"]),
    b(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "StorageClass",
        false,
    )
    .short(&["sc"]),
    // Same storage as core Events, so the same (stored-form) selectable fields.
    b("events.k8s.io", "v1", "events", "Event", true)
        .short(&["ev"])
        .fields(EVENT_FIELDS),
    b(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
    )
    .short(&["crd", "crds"])
    .status()
    .generation(),
];

/// The OpenAPI definition name of a built-in kind.
fn definition_name(group: &str, version: &str, kind: &str) -> String {
    match group {
        "" => format!("io.k8s.api.core.{version}.{kind}"),
        "apiextensions.k8s.io" => {
            format!("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}.{kind}")
        }
        g => {
            let short = g
                .strip_suffix(".k8s.io")
                .unwrap_or(g)
                .split('.')
                .next()
                .unwrap_or(g);
            format!("io.k8s.api.{short}.{version}.{kind}")
        }
    }
}

fn builtin_resources() -> Vec<Arc<Resource>> {
    BUILTINS
        .iter()
        .map(|bi| {
            let def: &'static str =
                Box::leak(definition_name(bi.group, bi.version, bi.kind).into_boxed_str());
            Arc::new(Resource {
                group: bi.group.into(),
                version: bi.version.into(),
                plural: bi.plural.into(),
                singular: bi.kind.to_ascii_lowercase(),
                kind: bi.kind.into(),
                namespaced: bi.namespaced,
                short_names: bi.short.iter().map(|s| s.to_string()).collect(),
                categories: if bi.all { vec!["all".into()] } else { vec![] },
                status: bi.status,
                scale: bi.scale.then(|| ScalePaths {
                    spec_replicas: ".spec.replicas".into(),
                    status_replicas: ".status.replicas".into(),
                    label_selector: Some(".status.selector".into()),
                }),
                generation: bi.generation,
                names: bi.names,
                schema: SchemaRef::Builtin(def),
                printer_columns: vec![],
                selectable_fields: bi.fields.iter().map(|s| s.to_string()).collect(),
                // events.k8s.io/v1 Events are core Events seen through another API.
                storage_key_group: if bi.group == "events.k8s.io" {
                    String::new()
                } else {
                    bi.group.into()
                },
                storage_version: bi.version.into(),
                custom: false,
                managed_root: Default::default(),
            })
        })
        .collect()
}

/// All served resources, indexed for request routing and discovery.
#[derive(Debug, Clone)]
pub struct Registry {
    /// (group, version, plural) -> resource.
    by_path: BTreeMap<(String, String, String), Arc<Resource>>,
}

impl Default for Registry {
    fn default() -> Self {
        let mut r = Registry {
            by_path: BTreeMap::new(),
        };
        for res in builtin_resources() {
            r.insert(res);
        }
        r
    }
}

impl Registry {
    /// Adds (or replaces) a resource.
    pub fn insert(&mut self, res: Arc<Resource>) {
        self.by_path.insert(
            (res.group.clone(), res.version.clone(), res.plural.clone()),
            res,
        );
    }

    /// Removes every version of a custom resource of `group` with plural `plural`.
    pub fn remove_custom(&mut self, group: &str, plural: &str) {
        self.by_path
            .retain(|(g, _, p), r| !(r.custom && g == group && p == plural));
    }

    /// The resource served at `group/version/plural`.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        self.by_path
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// The resource of a kind at a group/version.
    pub fn by_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<Resource>> {
        self.by_path
            .values()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .cloned()
    }

    /// Every served resource.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Resource>> {
        self.by_path.values()
    }

    /// The groups served, each with its versions (preferred first), core group excluded.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in self.by_path.values() {
            if r.group.is_empty() {
                continue;
            }
            let vs = groups.entry(r.group.clone()).or_default();
            if !vs.contains(&r.version) {
                vs.push(r.version.clone());
            }
        }
        let mut out: Vec<_> = groups.into_iter().collect();
        for (_, vs) in out.iter_mut() {
            vs.sort_by(|a, b| compare_versions(b, a));
        }
        // Built-in groups first, as kube-apiserver orders them; then custom groups.
        out.sort_by_key(|(g, _)| (!is_builtin_group(g), g.clone()));
        out
    }

    /// The resources of one group/version.
    pub fn resources_of(&self, group: &str, version: &str) -> Vec<Arc<Resource>> {
        self.by_path
            .values()
            .filter(|r| r.group == group && r.version == version)
            .cloned()
            .collect()
    }
}

fn is_builtin_group(g: &str) -> bool {
    BUILTINS.iter().any(|b| b.group == g)
}

/// Orders Kubernetes versions by priority: GA > beta > alpha, then by number
/// (`v2` > `v1` > `v1beta2` > `v1beta1` > `v1alpha1`), others last alphabetically.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn parse(v: &str) -> (u8, u64, u64, String) {
        let Some(rest) = v.strip_prefix('v') else {
            return (0, 0, 0, v.to_string());
        };
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let Ok(major) = digits.parse::<u64>() else {
            return (0, 0, 0, v.to_string());
        };
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return (3, major, 0, String::new());
        }
        for (stage, rank) in [("beta", 2u8), ("alpha", 1u8)] {
            if let Some(n) = tail.strip_prefix(stage) {
                if let Ok(minor) = n.parse::<u64>() {
                    return (rank, major, minor, String::new());
                }
            }
        }
        (0, 0, 0, v.to_string())
    }
    let (pa, pb) = (parse(a), parse(b));
    pa.0.cmp(&pb.0)
        .then(pa.1.cmp(&pb.1))
        .then(pa.2.cmp(&pb.2))
        .then_with(|| pb.3.cmp(&pa.3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_names_follow_kubernetes_packages() {
        assert_eq!(
            definition_name("", "v1", "ConfigMap"),
            "io.k8s.api.core.v1.ConfigMap"
        );
        assert_eq!(
            definition_name("rbac.authorization.k8s.io", "v1", "Role"),
            "io.k8s.api.rbac.v1.Role"
        );
        assert_eq!(
            definition_name("networking.k8s.io", "v1", "Ingress"),
            "io.k8s.api.networking.v1.Ingress"
        );
        assert_eq!(
            definition_name("apps", "v1", "Deployment"),
            "io.k8s.api.apps.v1.Deployment"
        );
    }

    #[test]
    fn versions_sort_by_kubernetes_priority() {
        let mut vs = vec![
            "v1alpha1", "v1", "v2beta1", "v1beta2", "foo", "v2", "v1beta1",
        ];
        vs.sort_by(|a, b| compare_versions(b, a));
        assert_eq!(
            vs,
            ["v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }
}
