//! `metav1.Condition` lists kept the way Kubernetes' `meta.SetStatusCondition` keeps them:
//! one entry per type, `lastTransitionTime` changing only when the status does.

use serde_json::{json, Value};

/// A time in Kubernetes' RFC 3339 form (second precision, UTC). The callers read the clock:
/// this crate does not.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The condition of `ty` in `conditions` (a JSON array), if present.
pub fn find<'a>(conditions: &'a Value, ty: &str) -> Option<&'a Value> {
    conditions.as_array()?.iter().find(|c| c["type"] == ty)
}

/// Whether the condition of `ty` has status "True".
pub fn is_true(conditions: &Value, ty: &str) -> bool {
    find(conditions, ty).is_some_and(|c| c["status"] == "True")
}

/// Sets the condition `ty` in `conditions` (made an array if it is not); a changed status
/// transitions at `now` (a [`timestamp`]). Returns whether anything changed (so callers can
/// skip no-op writes).
pub fn set(
    conditions: &mut Value,
    ty: &str,
    status: bool,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: &str,
) -> bool {
    let status = if status { "True" } else { "False" };
    set_status(
        conditions,
        ty,
        status,
        reason,
        message,
        observed_generation,
        now,
    )
}

/// [`set`] with the status as text ("True", "False" or "Unknown").
pub fn set_status(
    conditions: &mut Value,
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: &str,
) -> bool {
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("array");
    let mut new = json!({"type": ty, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": now});
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
        let (t1, t2, t3) = (
            "2026-01-01T00:00:01Z",
            "2026-01-01T00:00:02Z",
            "2026-01-01T00:00:03Z",
        );
        let mut c = Value::Null;
        assert!(set(&mut c, "Joined", true, "A", "m", None, t1));
        assert_eq!(c[0]["lastTransitionTime"], t1);
        // The same again changes nothing; a new reason keeps the transition time.
        assert!(!set(&mut c, "Joined", true, "A", "m", None, t2));
        assert!(set(&mut c, "Joined", true, "B", "m", None, t2));
        assert_eq!(c[0]["lastTransitionTime"], t1);
        // A new status transitions now.
        assert!(set(&mut c, "Joined", false, "B", "m", None, t3));
        assert_eq!(c[0]["lastTransitionTime"], t3);
        assert!(set(&mut c, "Healthy", true, "C", "", Some(3), t3));
        assert_eq!(c.as_array().unwrap().len(), 2);
        assert_eq!(c[1]["observedGeneration"], 3);
        assert!(is_true(&c, "Healthy") && !is_true(&c, "Joined"));
        assert_eq!(
            timestamp(chrono::DateTime::from_timestamp(1_767_225_603, 0).unwrap()),
            t3
        );
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
