//! Defaulting and validation of built-in kinds: the defaults and the checks a user of
//! kube-apiserver would notice (required fields, selectors matching templates, port ranges, ...).
//!
//! `defaults.rs` fills in what kube-apiserver's defaulters do; `validate.rs` refuses what its
//! validation does.

mod defaults;
mod validate;

pub use defaults::{apply_defaults, prepare_for_create};
pub use validate::validate;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::Cause;
    use serde_json::{json, Value};

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn deployment_defaults_and_validation() {
        let mut d = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}}}});
        apply_defaults("apps", "Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        // An empty strategy is defaulted field by field; Recreate gets no rolling parameters.
        let mut e = json!({"spec": {"strategy": {}}});
        apply_defaults("apps", "Deployment", &mut e);
        assert_eq!(
            e["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        let mut r = json!({"spec": {"strategy": {"type": "Recreate"}}});
        apply_defaults("apps", "Deployment", &mut r);
        assert_eq!(r["spec"]["strategy"], json!({"type": "Recreate"}));
        let c0 = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c0["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c0["ports"][0]["protocol"], "TCP");
        assert!(validate("apps", "Deployment", &d).is_empty());

        let bad = json!({"spec": {"selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}, {"name": "c", "image": "i"}]}}}});
        assert_eq!(
            fields(&validate("apps", "Deployment", &bad)),
            [
                "spec.template.metadata.labels",
                "spec.template.spec.containers[0].image",
                "spec.template.spec.containers[1].name"
            ]
        );
        let empty = json!({"spec": {}});
        assert_eq!(
            fields(&validate("apps", "Deployment", &empty)),
            ["spec.selector", "spec.template.spec.containers"]
        );
    }

    #[test]
    fn service_and_job_rules() {
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply_defaults("", "Service", &mut s);
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert!(validate("", "Service", &s).is_empty());
        let bad = json!({"spec": {"ports": [{"port": 0, "name": "a"}, {"port": 80, "name": "a"}], "type": "Bogus"}});
        assert_eq!(
            fields(&validate("", "Service", &bad)),
            ["spec.type", "spec.ports[0].port", "spec.ports[1].name"]
        );
        let mut job = json!({"metadata": {"name": "j", "uid": "u1"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        apply_defaults("batch", "Job", &mut job);
        assert_eq!(
            job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u1"
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["job-name"],
            "j"
        );
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
        assert_eq!(
            fields(&validate("batch", "Job", &job)),
            ["spec.template.spec.restartPolicy"]
        );
    }

    #[test]
    fn pod_spec_volumes_env_and_resources() {
        let d = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
            "volumes": [{"name": "data"}, {"name": "data"}],
            "containers": [{"name": "c", "image": "i",
                "volumeMounts": [{"name": "data", "mountPath": "/d"}, {"name": "nope", "mountPath": "/n"}],
                "env": [{"value": "x"}],
                "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}}}});
        let causes = validate("apps", "Deployment", &d);
        let got: Vec<(&str, &str)> = causes
            .iter()
            .map(|c| (c.field.as_str(), c.reason))
            .collect();
        assert_eq!(
            got,
            [
                ("spec.template.spec.volumes[1].name", "FieldValueDuplicate"),
                (
                    "spec.template.spec.containers[0].volumeMounts[1].name",
                    "FieldValueNotFound"
                ),
                (
                    "spec.template.spec.containers[0].env[0].name",
                    "FieldValueRequired"
                ),
                (
                    "spec.template.spec.containers[0].resources.requests",
                    "FieldValueInvalid"
                ),
            ]
        );
        assert!(causes[3]
            .message
            .contains("must be less than or equal to cpu limit of 1"));
    }

    #[test]
    fn pods_start_pending_with_their_qos_class() {
        let pod = |resources: Value| {
            let mut p = json!({"spec": {"containers": [{"name": "c", "image": "i", "resources": resources}]}});
            apply_defaults("", "Pod", &mut p);
            p
        };
        let p = pod(json!({}));
        assert_eq!(
            (
                p["status"]["phase"].clone(),
                p["status"]["qosClass"].clone()
            ),
            (json!("Pending"), json!("BestEffort"))
        );
        assert_eq!(
            pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))["status"]["qosClass"],
            "Guaranteed"
        );
        assert_eq!(
            pod(json!({"requests": {"cpu": "1"}}))["status"]["qosClass"],
            "Burstable"
        );
        assert_eq!(p["spec"]["restartPolicy"], "Always");
    }

    #[test]
    fn configmap_keys() {
        let cm = json!({"data": {"ok.key": "1", "bad key": "2"}, "binaryData": {"ok.key": "AA=="}});
        assert_eq!(
            fields(&validate("", "ConfigMap", &cm)),
            ["data", "binaryData"]
        );
    }
}
