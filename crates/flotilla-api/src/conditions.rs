//! `metav1.Condition` lists kept the way Kubernetes' `meta.SetStatusCondition` keeps them:
//! one entry per type, `lastTransitionTime` changing only when the status does.

use serde_json::{json, Value};

/// Now in Kubernetes' RFC 3339 form (second precision, UTC).
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The condition of `ty` in `conditions` (a JSON array), if present.
pub fn find<'a>(conditions: &'a Value, ty: &str) -> Option<&'a Value> {
    conditions.as_array()?.iter().find(|c| c["type"] == ty)
}

/// Whether the condition of `ty` has status "True".
pub fn is_true(conditions: &Value, ty: &str) -> bool {
    find(conditions, ty).is_some_and(|c| c["status"] == "True")
}

/// Sets the condition `ty` in `conditions` (made an array if it is not). Returns whether
/// anything but nothing changed (so callers can skip no-op writes).
pub fn set(
    conditions: &mut Value,
    ty: &str,
    status: bool,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
) -> bool {
    let status = if status { "True" } else { "False" };
    set_status(conditions, ty, status, reason, message, observed_generation)
}

/// [`set`] with the status as text ("True", "False" or "Unknown").
pub fn set_status(
    conditions: &mut Value,
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
) -> bool {
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("array");
    let mut new = json!({"type": ty, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": now()});
    if let Some(g) = observed_generation {
        new["observedGeneration"] = json!(g);
    }
    match list.iter_mut().find(|c| c["type"] == ty) {
        Some(old) => {
            if old["status"] == status {
                new["lastTransitionTime"] = old["lastTransitionTime"].clone();
            }
            if *old == new {
                return false;
            }
            *old = new;
        }
        None => list.push(new),
    }
    true
}

/// `v` without the messages of the conditions in it (objects with a `type` and a `status`, at
/// any depth): to tell a change of state from a change of progress text.
pub fn without_messages(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let is_condition = m.contains_key("type") && m.contains_key("status");
            Value::Object(
                m.iter()
                    .filter(|(k, _)| !(is_condition && k.as_str() == "message"))
                    .map(|(k, v)| (k.clone(), without_messages(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(without_messages).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let mut c = Value::Null;
        assert!(set(&mut c, "Joined", true, "A", "m", None));
        let t0 = find(&c, "Joined").unwrap()["lastTransitionTime"].clone();
        c[0]["lastTransitionTime"] = json!("2020-01-01T00:00:00Z");
        assert!(!set(&mut c, "Joined", true, "A", "m", None));
        assert!(set(&mut c, "Joined", true, "B", "m", None));
        assert_eq!(c[0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
        assert!(set(&mut c, "Joined", false, "B", "m", None));
        assert_eq!(c[0]["lastTransitionTime"], t0);
        assert!(set(&mut c, "Healthy", true, "C", "", Some(3)));
        assert_eq!(c.as_array().unwrap().len(), 2);
        assert!(is_true(&c, "Healthy") && !is_true(&c, "Joined"));
    }

    #[test]
    fn messages_are_left_out_of_conditions_at_any_depth() {
        let v = json!({"conditions": [{"type": "A", "status": "True", "message": "x"}],
            "failed": [{"name": "n", "message": "kept", "condition": {"type": "B", "status": "False", "message": "y"}}]});
        assert_eq!(
            without_messages(&v),
            json!({"conditions": [{"type": "A", "status": "True"}],
                "failed": [{"name": "n", "message": "kept", "condition": {"type": "B", "status": "False"}}]})
        );
    }
}
