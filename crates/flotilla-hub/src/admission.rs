//! The fleet's admission rules as a validating webhook, for a hub whose API server is another
//! Kubernetes API server (kube-apiserver, a managed control plane): `review` answers an
//! `admission.k8s.io/v1` AdmissionReview, and `register` points the API server at the webhook
//! with a ValidatingWebhookConfiguration. The hub's own API server runs the same rules in
//! process (`crate::install::install`).

use flotilla_apiserver::{ApiError, Cause};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

/// The name of the ValidatingWebhookConfiguration and of its one webhook.
pub const WEBHOOK_NAME: &str = "fleet-validation.flotilla.dev";

/// The path the webhook is served on.
pub const WEBHOOK_PATH: &str = "/validate-fleet";

/// The answer to an AdmissionReview (`admission.k8s.io/v1`): allowed, or denied with a 422
/// Invalid status and its field causes, as the hub's own API server would answer the write.
/// A review that cannot be read is answered with a 400 status (the API server then fails the
/// write, as its failure policy says).
pub fn review(body: &[u8]) -> Value {
    let review: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return answer(
                &Value::Null,
                Some(ApiError::bad_request(format!(
                    "reading the AdmissionReview: {e}"
                ))),
            )
        }
    };
    let request = &review["request"];
    if request["uid"].as_str().is_none() {
        return answer(
            request,
            Some(ApiError::bad_request(
                "the AdmissionReview has no request.uid",
            )),
        );
    }
    answer(request, judge(request))
}

/// The error the fleet's rules find in the request's object, if any.
fn judge(request: &Value) -> Option<ApiError> {
    let group = request["resource"]["group"].as_str().unwrap_or("");
    let plural = request["resource"]["resource"].as_str().unwrap_or("");
    let operation = request["operation"].as_str().unwrap_or("");
    if !matches!(operation, "CREATE" | "UPDATE")
        || request["subResource"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    {
        return None;
    }
    let (_, _, rule) = crate::install::rules()
        .into_iter()
        .find(|(g, p, _)| *g == group && *p == plural)?;
    let object = &request["object"];
    let old = Some(&request["oldObject"]).filter(|o| o.is_object());
    let causes: Vec<Cause> = rule(object, old)
        .into_iter()
        .map(|(reason, field, message)| Cause {
            reason,
            field,
            message,
        })
        .collect();
    if causes.is_empty() {
        return None;
    }
    let kind = request["kind"]["kind"].as_str().unwrap_or("");
    let name = object["metadata"]["name"]
        .as_str()
        .or_else(|| request["name"].as_str())
        .unwrap_or("");
    Some(ApiError::invalid(group, kind, name, causes))
}

fn answer(request: &Value, error: Option<ApiError>) -> Value {
    let mut response =
        json!({"uid": request["uid"].as_str().unwrap_or(""), "allowed": error.is_none()});
    if let Some(e) = error {
        response["status"] = e.to_status();
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

fn webhook_configuration_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
        ),
        "validatingwebhookconfigurations",
    )
}

/// Creates or updates the ValidatingWebhookConfiguration that sends every create and update
/// of a fleet resource with rules to the webhook at `url`, whose serving certificate `ca_pem`
/// signed. Writes fail while the webhook cannot be reached (failure policy Fail), as they
/// would fail KubeFleet's.
pub async fn register(client: kube::Client, url: &str, ca_pem: &str) -> Result<(), crate::Error> {
    use base64::Engine;
    let mut rules: Vec<Value> = Vec::new();
    for (group, plural, _) in crate::install::rules() {
        match rules.iter_mut().find(|r| r["apiGroups"][0] == group) {
            Some(r) => r["resources"]
                .as_array_mut()
                .expect("list")
                .push(json!(plural)),
            None => rules.push(json!({
                "apiGroups": [group], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                "resources": [plural], "scope": "*"
            })),
        }
    }
    let config = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_NAME, "labels": {"app.kubernetes.io/managed-by": "flotilla"}},
        "webhooks": [{
            "name": WEBHOOK_NAME,
            "clientConfig": {"url": url,
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem)},
            "rules": rules,
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 10
        }]
    });
    let api: Api<DynamicObject> = Api::all_with(client, &webhook_configuration_resource());
    api.patch(
        WEBHOOK_NAME,
        &PatchParams::apply("flotilla-hub").force(),
        &Patch::Apply(config),
    )
    .await
    .map_err(crate::Error::Webhook)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(object: Value, operation: &str) -> Vec<u8> {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u-1", "operation": operation,
            "kind": {"group": "cluster.kubernetes-fleet.io", "version": "v1beta1", "kind": "MemberCluster"},
            "resource": {"group": "cluster.kubernetes-fleet.io", "version": "v1beta1", "resource": "memberclusters"},
            "name": "m1", "object": object, "oldObject": null
        }})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_valid_object_is_allowed() {
        let obj = json!({"apiVersion": "cluster.kubernetes-fleet.io/v1beta1", "kind": "MemberCluster",
            "metadata": {"name": "m1"},
            "spec": {"identity": {"kind": "User", "name": "fleet-member-m1", "apiGroup": "rbac.authorization.k8s.io"}}});
        let out = review(&request(obj, "CREATE"));
        assert_eq!(out["response"], json!({"uid": "u-1", "allowed": true}));
        assert_eq!(out["kind"], "AdmissionReview");
    }

    #[test]
    fn an_invalid_object_is_denied_with_field_causes() {
        let obj = json!({"apiVersion": "cluster.kubernetes-fleet.io/v1beta1", "kind": "MemberCluster",
            "metadata": {"name": "m1"},
            "spec": {"identity": {"kind": "Robot", "name": "x"}}});
        let out = review(&request(obj, "CREATE"));
        let r = &out["response"];
        assert_eq!(r["allowed"], false);
        assert_eq!(r["uid"], "u-1");
        assert_eq!(r["status"]["code"], 422);
        assert_eq!(r["status"]["reason"], "Invalid");
        let message = r["status"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("MemberCluster.cluster.kubernetes-fleet.io \"m1\" is invalid: "),
            "{message}"
        );
        assert_eq!(
            r["status"]["details"]["causes"][0]["field"],
            "spec.identity.kind"
        );
    }

    #[test]
    fn deletes_and_status_writes_are_not_judged() {
        let bad = json!({"metadata": {"name": "m1"}, "spec": {"identity": {"kind": "Robot"}}});
        assert_eq!(
            review(&request(bad.clone(), "DELETE"))["response"]["allowed"],
            true
        );
        let mut status = serde_json::from_slice::<Value>(&request(bad, "UPDATE")).unwrap();
        status["request"]["subResource"] = json!("status");
        let out = review(status.to_string().as_bytes());
        assert_eq!(out["response"]["allowed"], true);
    }

    #[test]
    fn an_unreadable_review_is_answered_with_400() {
        let out = review(b"{not json");
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"]["code"], 400);
        let out = review(br#"{"request": {}}"#);
        assert_eq!(out["response"]["status"]["code"], 400);
        assert_eq!(
            out["response"]["status"]["message"],
            "the AdmissionReview has no request.uid"
        );
    }
}
