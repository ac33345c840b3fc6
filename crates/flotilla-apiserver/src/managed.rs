//! `metadata.managedFields`: which field manager owns which fields, kept up to date by every
//! write (Update operations) and by server-side apply (Apply operations), with the semantics of
//! kube-apiserver's field manager.

use serde_json::{json, Value};

use crate::errors::{ApiError, Cause};
use crate::fieldpath::{self, compare, field_set, merge, remove, PathElement, Set};
use crate::rest::now;
use crate::schema::Schema;

/// The annotation kubectl's client-side apply keeps.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// kubectl's client-side apply manager.
pub const CSA_MANAGER: &str = "kubectl-client-side-apply";

/// One managedFields entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// API version the set is expressed in.
    pub api_version: String,
    /// When the entry last changed.
    pub time: String,
    /// Subresource (`status`), if any.
    pub subresource: String,
    /// The fields.
    pub set: Set,
}

impl Entry {
    fn same_owner(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    /// The manager as conflict messages name it (kube's `printManager`): an applier by name,
    /// an updater with the API version it wrote, either with its subresource.
    fn pretty(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation != "Apply" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// What the field manager needs to know about a write.
pub struct Context<'a> {
    /// The built-in definitions (for `$ref`s).
    pub schema: &'a Schema,
    /// The object's root schema node.
    pub root: &'a Value,
    /// The API version of the request.
    pub api_version: &'a str,
    /// The subresource written (`""` for the main resource).
    pub subresource: &'a str,
    /// Whether the kind has a status subresource (so main writes do not own status).
    pub has_status: bool,
}

/// Reads `metadata.managedFields`.
pub fn decode(obj: &Value) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (i, e) in obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
        if e["fieldsType"].as_str().is_some_and(|t| t != "FieldsV1") {
            return Err(format!(
                "metadata.managedFields[{i}].fieldsType: only FieldsV1 is supported"
            ));
        }
        let set = match e.get("fieldsV1") {
            Some(f) if !f.is_null() => Set::from_fields_v1(f)
                .map_err(|m| format!("metadata.managedFields[{i}].fieldsV1: {m}"))?,
            _ => Set::default(),
        };
        out.push(Entry {
            manager: s("manager"),
            operation: s("operation"),
            api_version: s("apiVersion"),
            time: s("time"),
            subresource: s("subresource"),
            set,
        });
    }
    Ok(out)
}

/// Writes entries into `metadata.managedFields`, ordered as kube-apiserver orders them.
pub fn encode(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        a.operation
            .cmp(&b.operation)
            .then(a.time.cmp(&b.time))
            .then(a.manager.cmp(&b.manager))
            .then(a.api_version.cmp(&b.api_version))
            .then(a.subresource.cmp(&b.subresource))
    });
    let list: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let mut v = json!({"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                               "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": e.set.to_fields_v1()});
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// The object without the fields no manager owns (server-set metadata, and status or
/// non-status depending on the subresource).
fn managed_view(ctx: &Context<'_>, obj: &Value) -> Value {
    const SERVER_SET: [&str; 11] = [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ];
    let Some(o) = obj.as_object() else {
        return obj.clone();
    };
    // Only what is kept is copied (a status write does not copy the spec, nor any write the
    // managedFields).
    let mut out = serde_json::Map::new();
    for (k, v) in o {
        let keep = match k.as_str() {
            "apiVersion" | "kind" => false,
            "status" => !(ctx.has_status && ctx.subresource.is_empty()),
            _ => ctx.subresource != "status",
        };
        if !keep {
            continue;
        }
        if k == "metadata" {
            if let Some(m) = v.as_object() {
                let meta: serde_json::Map<String, Value> = m
                    .iter()
                    .filter(|(f, _)| !SERVER_SET.contains(&f.as_str()))
                    .map(|(f, v)| (f.clone(), v.clone()))
                    .collect();
                if !meta.is_empty() {
                    out.insert(k.clone(), Value::Object(meta));
                }
                continue;
            }
        }
        let mut v = v.clone();
        if k == "spec" {
            drop_template_creation_times(&mut v);
        }
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

/// A template's `metadata.creationTimestamp: null` is the Go zero value kube-apiserver writes
/// into every object and its field manager compares against; nobody owns it.
fn drop_template_creation_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(meta)) = m.get_mut("metadata") {
                if meta.get("creationTimestamp") == Some(&Value::Null) {
                    meta.remove("creationTimestamp");
                }
            }
            m.values_mut().for_each(drop_template_creation_times);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_template_creation_times),
        _ => {}
    }
}

/// Takes the changed fields away from other managers; with `force` false, fails on fields
/// another manager owns that the write changes.
fn update_managers(
    entries: &mut Vec<Entry>,
    me: (&str, &str, &str),
    cmp: &fieldpath::Comparison,
    force: bool,
) -> Result<(), Vec<(Entry, Set)>> {
    let changed = cmp.modified.union(&cmp.added);
    let mut conflicts = Vec::new();
    for e in entries.iter() {
        if e.same_owner(me.0, me.1, me.2) {
            continue;
        }
        let c = e.set.intersection(&changed);
        if !c.is_empty() {
            conflicts.push((e.clone(), c));
        }
    }
    if !force && !conflicts.is_empty() {
        return Err(conflicts);
    }
    for e in entries.iter_mut() {
        if e.same_owner(me.0, me.1, me.2) {
            continue;
        }
        e.set = e.set.difference(&changed).difference(&cmp.removed);
    }
    entries.retain(|e| !e.set.is_empty());
    Ok(())
}

/// Records an Update-operation write of `new` over `old` by `manager` in `new`'s
/// managedFields. Managed fields the client changed itself are kept as sent.
pub fn record_update(
    ctx: &Context<'_>,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
) -> Result<(), ApiError> {
    let old_entries = old
        .map(decode)
        .transpose()
        .map_err(ApiError::bad_request)?
        .unwrap_or_default();
    let sent = &new["metadata"]["managedFields"];
    let echoed = old.is_some_and(|o| o["metadata"]["managedFields"] == *sent)
        || (old.is_none() && sent.is_null());
    if !echoed && !sent.is_null() {
        // The client set managedFields (kubectl's client-side to server-side migration does):
        // use them, after checking they decode.
        let entries = decode(new).map_err(ApiError::bad_request)?;
        if !sent.as_array().is_some_and(|a| a.is_empty()) {
            encode(new, entries);
            return Ok(());
        }
    }
    let reset = !echoed && sent.as_array().is_some_and(|a| a.is_empty());
    let mut entries = if reset { Vec::new() } else { old_entries };
    let empty = json!({});
    let old_view = managed_view(ctx, old.unwrap_or(&empty));
    let new_view = managed_view(ctx, new);
    let cmp = compare(ctx.schema, Some(ctx.root), &old_view, &new_view);
    if cmp.added.is_empty() && cmp.modified.is_empty() && cmp.removed.is_empty() && !reset {
        encode(new, entries);
        return Ok(());
    }
    let me = (manager, "Update", ctx.subresource);
    if !reset && cmp.added.is_empty() && cmp.removed.is_empty() {
        if let Some(list) = only_time_moves(old, &entries, me, ctx.api_version, &cmp) {
            // New values where this manager alone already owns the fields (a heartbeat, a
            // status refresh): its entry's time is all that changes.
            if let Some(m) = new["metadata"].as_object_mut() {
                m.insert("managedFields".into(), Value::Array(list));
            }
            return Ok(());
        }
    }
    let _ = update_managers(&mut entries, me, &cmp, true);
    let previous = entries
        .iter()
        .find(|e| e.same_owner(me.0, me.1, me.2))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let set = previous
        .difference(&cmp.removed)
        .union(&cmp.modified)
        .union(&cmp.added);
    entries.retain(|e| !e.same_owner(me.0, me.1, me.2));
    entries.push(Entry {
        manager: manager.into(),
        operation: "Update".into(),
        api_version: ctx.api_version.into(),
        time: now(),
        subresource: ctx.subresource.into(),
        set,
    });
    encode(new, entries);
    Ok(())
}

/// The managedFields of `old` with the time of `me`'s entry moved to now, when that is the whole
/// effect of an update whose comparison is `cmp` (only modified fields): `me` owns every
/// modified field, in the same API version, and no other manager owns any. The list is ordered
/// as [`encode`] orders it. None when the full computation is needed.
fn only_time_moves(
    old: Option<&Value>,
    entries: &[Entry],
    me: (&str, &str, &str),
    api_version: &str,
    cmp: &fieldpath::Comparison,
) -> Option<Vec<Value>> {
    let mine = entries.iter().find(|e| e.same_owner(me.0, me.1, me.2))?;
    if mine.api_version != api_version
        || entries
            .iter()
            .filter(|e| e.same_owner(me.0, me.1, me.2))
            .count()
            != 1
        || !cmp.modified.difference(&mine.set).is_empty()
        || entries.iter().any(|e| {
            !e.same_owner(me.0, me.1, me.2) && !e.set.intersection(&cmp.modified).is_empty()
        })
        || entries.iter().any(|e| e.set.is_empty())
    {
        return None;
    }
    let mut list = old?["metadata"]["managedFields"].as_array()?.clone();
    let now = now();
    for e in &mut list {
        let field = |k: &str| e[k].as_str().unwrap_or("");
        if field("manager") == me.0 && field("operation") == me.1 && field("subresource") == me.2 {
            e["time"] = json!(now);
        }
    }
    let key = |e: &Value| {
        ["operation", "time", "manager", "apiVersion", "subresource"]
            .map(|k| e[k].as_str().unwrap_or("").to_string())
    };
    list.sort_by_key(key);
    Some(list)
}

/// Server-side apply of `config` by `manager` onto `live` (None: the object does not exist
/// yet). Returns the merged object with its managedFields, or a 409 listing the conflicts.
pub fn apply(
    ctx: &Context<'_>,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApiError> {
    match apply_once(ctx, live, config, manager, force) {
        Err(Failure::Conflicts(conflicts)) => {
            // kube-apiserver's hand-over from client-side apply: when `kubectl` applies and only
            // fields client-side apply set (per the last-applied annotation) conflict, it takes
            // them over first.
            if let (Some(live), "kubectl") = (live, manager) {
                if let Some(last) = last_applied(live) {
                    let last_set = field_set(ctx.schema, Some(ctx.root), &managed_view(ctx, &last));
                    let only_csa = conflicts.iter().all(|(e, c)| {
                        e.manager == CSA_MANAGER && c.paths().iter().all(|p| last_set.contains(p))
                    });
                    if only_csa {
                        // As kube-apiserver's lastAppliedManager: force the apply.
                        return apply_once(ctx, Some(live), config, manager, true)
                            .map_err(Failure::into_error);
                    }
                }
            }
            Err(Failure::Conflicts(conflicts).into_error())
        }
        other => other.map_err(Failure::into_error),
    }
}

enum Failure {
    Conflicts(Vec<(Entry, Set)>),
    Error(ApiError),
}

impl Failure {
    fn into_error(self) -> ApiError {
        match self {
            Failure::Error(e) => e,
            Failure::Conflicts(c) => conflict_error(&c),
        }
    }
}

fn last_applied(live: &Value) -> Option<Value> {
    let text = live["metadata"]["annotations"][LAST_APPLIED].as_str()?;
    serde_json::from_str(text).ok()
}

fn apply_once(
    ctx: &Context<'_>,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, Failure> {
    let empty = json!({});
    let live_obj = live.unwrap_or(&empty);
    let mut entries = decode(live_obj).map_err(|e| Failure::Error(ApiError::bad_request(e)))?;
    let me = (manager, "Apply", ctx.subresource);
    let mut merged = merge(ctx.schema, Some(ctx.root), live_obj, config);
    let last = entries
        .iter()
        .find(|e| e.same_owner(me.0, me.1, me.2))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let set = field_set(ctx.schema, Some(ctx.root), &managed_view(ctx, config));
    entries.retain(|e| !e.same_owner(me.0, me.1, me.2));
    entries.push(Entry {
        manager: manager.into(),
        operation: "Apply".into(),
        api_version: ctx.api_version.into(),
        time: now(),
        subresource: ctx.subresource.into(),
        set: set.clone(),
    });
    // Fields this manager applied before, no longer applies, and nobody else owns, go.
    let owned = entries
        .iter()
        .fold(Set::default(), |acc, e| acc.union(&e.set));
    let mut gone: Vec<Vec<PathElement>> = last.difference(&owned).paths();
    // Whole items first: removing an item removes its fields.
    gone.sort_by_key(|p| p.len());
    for p in gone {
        if !owned.has_prefix(&p) {
            remove(ctx.schema, Some(ctx.root), &mut merged, &p);
        }
    }
    let cmp = compare(
        ctx.schema,
        Some(ctx.root),
        &managed_view(ctx, live_obj),
        &managed_view(ctx, &merged),
    );
    update_managers(&mut entries, me, &cmp, force).map_err(Failure::Conflicts)?;
    // Keep kubectl's client-side apply annotation in step when kubectl applies server-side.
    if manager == "kubectl" && live.and_then(last_applied).is_some() {
        let mut cfg = config.clone();
        if let Some(a) = cfg["metadata"]
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            a.remove(LAST_APPLIED);
        }
        merged["metadata"]["annotations"][LAST_APPLIED] =
            json!(serde_json::to_string(&cfg).unwrap_or_default());
    }
    encode(&mut merged, entries);
    Ok(merged)
}

/// The 409 kube-apiserver answers when an apply conflicts.
pub fn conflict_error(conflicts: &[(Entry, Set)]) -> ApiError {
    let mut causes = Vec::new();
    let mut lines = Vec::new();
    let mut count = 0;
    for (e, set) in conflicts {
        let paths: Vec<String> = set.paths().iter().map(|p| fieldpath::display(p)).collect();
        count += paths.len();
        for p in &paths {
            causes.push(Cause {
                reason: "FieldManagerConflict",
                field: p.clone(),
                message: format!("conflict with {}", e.pretty()),
            });
        }
        lines.push((e.pretty(), paths));
    }
    let message = if count == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            lines[0].0, lines[0].1[0]
        )
    } else {
        let mut parts = Vec::new();
        for (who, paths) in &lines {
            parts.push(format!("conflicts with {who}:"));
            parts.extend(paths.iter().map(|p| format!("- {p}")));
        }
        format!("Apply failed with {count} conflicts: {}", parts.join("\n"))
    };
    let details: Vec<Value> = causes
        .iter()
        .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
        .collect();
    let mut err = ApiError::conflict(Default::default(), "");
    err.message = message;
    err.details = Some(json!({"causes": details}));
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(s: &Schema) -> (Value, &Schema) {
        (
            json!({"$ref": "#/definitions/io.k8s.api.apps.v1.Deployment"}),
            s,
        )
    }

    fn fields(obj: &Value, manager: &str) -> Vec<String> {
        let e = decode(obj).unwrap();
        let e = e
            .iter()
            .find(|e| e.manager == manager)
            .expect("manager present");
        e.set
            .paths()
            .iter()
            .map(|p| fieldpath::display(p))
            .collect()
    }

    #[test]
    fn apply_owns_merges_conflicts_and_removes() {
        let s = Schema::builtin();
        let (root, s) = ctx(&s);
        let c = Context {
            schema: s,
            root: &root,
            api_version: "apps/v1",
            subresource: "",
            has_status: true,
        };
        let a = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"a": "1"}}, "spec": {"replicas": 2}});
        let live = apply(&c, None, &a, "alice", false).unwrap();
        assert_eq!(
            fields(&live, "alice"),
            [".metadata.labels.a", ".spec.replicas"]
        );

        // bob applies the same value: no conflict, shared ownership.
        let b = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2, "paused": false}});
        let live = apply(&c, Some(&live), &b, "bob", false).unwrap();
        assert_eq!(fields(&live, "bob"), [".spec.paused", ".spec.replicas"]);
        assert_eq!(
            fields(&live, "alice"),
            [".metadata.labels.a", ".spec.replicas"]
        );

        // bob changes replicas: conflicts with alice.
        let b2 = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5, "paused": false}});
        let err = apply(&c, Some(&live), &b2, "bob", false).unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
        );
        assert_eq!(
            err.to_status()["details"]["causes"][0]["field"],
            ".spec.replicas"
        );
        // Forced, bob takes replicas over.
        let live = apply(&c, Some(&live), &b2, "bob", true).unwrap();
        assert_eq!(live["spec"]["replicas"], 5);
        assert_eq!(fields(&live, "alice"), [".metadata.labels.a"]);

        // alice stops applying the label: it is removed (nobody else owns it).
        let a2 = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {}});
        let live = apply(&c, Some(&live), &a2, "alice", false).unwrap();
        assert!(
            live["metadata"]
                .get("labels")
                .and_then(|l| l.get("a"))
                .is_none(),
            "{live}"
        );
        // bob stops applying paused while an updater also set it: it stays.
        let mut upd = live.clone();
        upd["spec"]["paused"] = json!(true);
        record_update(&Context { ..c }, Some(&live), &mut upd, "kubectl-edit").unwrap();
        assert_eq!(fields(&upd, "kubectl-edit"), [".spec.paused"]);
        let b3 = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}});
        let live = apply(&c, Some(&upd), &b3, "bob", false).unwrap();
        assert_eq!(live["spec"]["paused"], true);
    }

    #[test]
    fn updates_record_what_changed() {
        let s = Schema::builtin();
        let (root, s) = ctx(&s);
        let c = Context {
            schema: s,
            root: &root,
            api_version: "apps/v1",
            subresource: "",
            has_status: true,
        };
        let mut created = json!({"metadata": {"name": "web", "uid": "u"}, "spec": {"replicas": 1}, "status": {"replicas": 0}});
        record_update(&c, None, &mut created, "creator").unwrap();
        assert_eq!(
            fields(&created, "creator"),
            [".spec.replicas"],
            "server-set metadata and status are not owned"
        );
        let mut next = created.clone();
        next["spec"]["replicas"] = json!(3);
        next["metadata"]["labels"] = json!({"x": "y"});
        record_update(&c, Some(&created), &mut next, "scaler").unwrap();
        assert_eq!(
            fields(&next, "scaler"),
            [".metadata.labels.x", ".spec.replicas"]
        );
        assert!(
            decode(&next)
                .unwrap()
                .iter()
                .all(|e| e.manager != "creator"),
            "creator lost its only field"
        );
        // Nothing changed: managedFields untouched.
        let mut same = next.clone();
        record_update(&c, Some(&next), &mut same, "other").unwrap();
        assert_eq!(
            same["metadata"]["managedFields"],
            next["metadata"]["managedFields"]
        );
        // A status write is recorded against the status subresource.
        let cs = Context {
            subresource: "status",
            ..c
        };
        let mut st = next.clone();
        st["status"]["replicas"] = json!(3);
        record_update(&cs, Some(&next), &mut st, "controller").unwrap();
        let e = decode(&st).unwrap();
        let ctl = e.iter().find(|e| e.manager == "controller").unwrap();
        assert_eq!(ctl.subresource, "status");
        assert_eq!(
            ctl.set
                .paths()
                .iter()
                .map(|p| fieldpath::display(p))
                .collect::<Vec<_>>(),
            [".status.replicas"]
        );
    }

    /// One step of a scenario: a manager applies or updates an object.
    enum Step {
        Apply(&'static str, Value, bool),
        Update(&'static str, Value),
        /// The next apply must fail with this conflict message.
        Conflict(&'static str, Value, &'static str),
    }

    /// Runs `steps` from nothing; checks the resulting object at `check` pointers and each
    /// manager's fields.
    fn check(root: &str, steps: Vec<Step>, values: &[(&str, Value)], owners: &[(&str, &[&str])]) {
        let s = Schema::builtin();
        let root = json!({"$ref": format!("#/definitions/{root}")});
        let c = Context {
            schema: &s,
            root: &root,
            api_version: "v1",
            subresource: "",
            has_status: false,
        };
        let mut live: Option<Value> = None;
        for step in steps {
            match step {
                Step::Apply(m, cfg, force) => {
                    live = Some(apply(&c, live.as_ref(), &cfg, m, force).unwrap())
                }
                Step::Update(m, obj) => {
                    let mut new = obj;
                    if let Some(l) = &live {
                        new["metadata"]["managedFields"] = l["metadata"]["managedFields"].clone();
                    }
                    record_update(&c, live.as_ref(), &mut new, m).unwrap();
                    live = Some(new);
                }
                Step::Conflict(m, cfg, msg) => {
                    let e = apply(&c, live.as_ref(), &cfg, m, false).unwrap_err();
                    assert_eq!((e.code, e.message.as_str()), (409, msg));
                }
            }
        }
        let live = live.unwrap();
        for (ptr, want) in values {
            assert_eq!(
                live.pointer(ptr).unwrap_or(&Value::Null),
                want,
                "{ptr} in {live}"
            );
        }
        for (m, want) in owners {
            let got = decode(&live)
                .unwrap()
                .into_iter()
                .filter(|e| e.manager == *m)
                .flat_map(|e| e.set.paths().into_iter().map(|p| fieldpath::display(&p)))
                .collect::<Vec<_>>();
            assert_eq!(got, *want, "fields of {m}");
        }
    }

    fn cm(data: Value) -> Value {
        let mut c =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "test-cm"}});
        // No data at all (not an empty map, which its applier would own).
        if !data.is_null() {
            c["data"] = data;
        }
        c
    }

    #[test]
    fn scenarios_from_the_server_side_apply_documentation() {
        use Step::*;
        let cmdef = "io.k8s.api.core.v1.ConfigMap";
        // The managedFields example: kubectl applies test-cm with a label and one key.
        let s = Schema::builtin();
        let root = json!({"$ref": format!("#/definitions/{cmdef}")});
        let c = Context {
            schema: &s,
            root: &root,
            api_version: "v1",
            subresource: "",
            has_status: false,
        };
        let mut cfg = cm(json!({"key": "some value"}));
        cfg["metadata"]["labels"] = json!({"test-label": "test"});
        let live = apply(&c, None, &cfg, "kubectl", false).unwrap();
        assert_eq!(
            live["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:data": {"f:key": {}}, "f:metadata": {"f:labels": {"f:test-label": {}}}})
        );
        assert_eq!(live["metadata"]["managedFields"][0]["operation"], "Apply");

        // Shared ownership: both appliers set the same value; one stops, the value stays.
        check(
            cmdef,
            vec![
                Apply("a", cm(json!({"k": "v"})), false),
                Apply("b", cm(json!({"k": "v"})), false),
                Apply("a", cm(Value::Null), false),
            ],
            &[("/data/k", json!("v"))],
            &[("a", &[]), ("b", &[".data.k"])],
        );

        // A different value conflicts until forced; the loser keeps nothing of it.
        check(
            cmdef,
            vec![
                Apply("a", cm(json!({"k": "v", "x": "1"})), false),
                Conflict(
                    "b",
                    cm(json!({"k": "w"})),
                    "Apply failed with 1 conflict: conflict with \"a\": .data.k",
                ),
                Apply("b", cm(json!({"k": "w"})), true),
            ],
            &[("/data/k", json!("w")), ("/data/x", json!("1"))],
            &[("a", &[".data.x"]), ("b", &[".data.k"])],
        );

        // An Update takes the fields it changes from appliers without conflict.
        check(
            cmdef,
            vec![
                Apply("a", cm(json!({"k": "v"})), false),
                Update("editor", cm(json!({"k": "edited"}))),
                Conflict(
                    "a",
                    cm(json!({"k": "v2"})),
                    "Apply failed with 1 conflict: conflict with \"editor\" using v1: .data.k",
                ),
            ],
            &[("/data/k", json!("edited"))],
            &[("a", &[]), ("editor", &[".data.k"])],
        );

        // Transferring ownership (the documentation's HPA example): the user applies
        // replicas, the autoscaler updates them, the user applies the current value to share it,
        // then drops the field: the autoscaler alone owns it and the value stays.
        let ddef = "io.k8s.api.apps.v1.Deployment";
        let dep = |replicas: Option<i64>| {
            let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx"},
                               "spec": {"selector": {"matchLabels": {"app": "nginx"}}}});
            if let Some(r) = replicas {
                d["spec"]["replicas"] = json!(r);
            }
            d
        };
        check(
            ddef,
            vec![
                Apply("handover-by-user", dep(Some(3)), false),
                Update("hpa", dep(Some(5))),
                Conflict(
                    "handover-by-user",
                    dep(Some(3)),
                    "Apply failed with 1 conflict: conflict with \"hpa\" using v1: .spec.replicas",
                ),
                Apply("handover-by-user", dep(Some(5)), false),
                Apply("handover-by-user", dep(None), false),
            ],
            &[("/spec/replicas", json!(5))],
            &[
                ("handover-by-user", &[".spec.selector"]),
                ("hpa", &[".spec.replicas"]),
            ],
        );

        // Set lists (finalizers) merge item by item; each applier removes only its own.
        let fin = |f: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": f}});
        check(
            cmdef,
            vec![
                Apply("a", fin(json!(["a.example.com/f"])), false),
                Apply("b", fin(json!(["b.example.com/f"])), false),
                Apply("a", fin(json!([])), false),
            ],
            &[("/metadata/finalizers", json!(["b.example.com/f"]))],
            &[("b", &[".metadata.finalizers[=\"b.example.com/f\"]"])],
        );

        // Map lists match items by key, with defaulted key fields (a port's protocol is TCP).
        let pod = |ports: Value| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "ports": ports}]}}}})
        };
        check(
            ddef,
            vec![
                Update(
                    "creator",
                    pod(json!([{"containerPort": 80, "protocol": "TCP"}])),
                ),
                Apply(
                    "a",
                    pod(json!([{"containerPort": 80}, {"containerPort": 443}])),
                    true,
                ),
            ],
            &[(
                "/spec/template/spec/containers/0/ports",
                json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]),
            )],
            &[],
        );

        // Atomic lists (container args) are replaced whole and owned whole.
        let args = |a: Value| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "args": a}]}}}})
        };
        check(ddef, vec![
            Apply("a", args(json!(["x", "y"])), false),
            Conflict("b", args(json!(["z"])), "Apply failed with 1 conflict: conflict with \"a\": .spec.template.spec.containers[name=\"c\"].args"),
        ], &[("/spec/template/spec/containers/0/args", json!(["x", "y"]))], &[]);
    }

    #[test]
    fn an_update_of_values_one_manager_owns_moves_only_its_time() {
        let s = Schema::builtin();
        let (root, s) = ctx(&s);
        let c = Context {
            schema: s,
            root: &root,
            api_version: "apps/v1",
            subresource: "",
            has_status: true,
        };
        let mut v1 = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 2, "paused": false}});
        record_update(&c, None, &mut v1, "alice").unwrap();
        let mut v2 = v1.clone();
        v2["spec"]["paused"] = json!(true);
        record_update(&c, Some(&v1), &mut v2, "bob").unwrap();
        // alice changes a value only she owns: her set stays, bob's is untouched.
        let mut v3 = v2.clone();
        v3["spec"]["replicas"] = json!(3);
        record_update(&c, Some(&v2), &mut v3, "alice").unwrap();
        assert_eq!(fields(&v3, "alice"), [".spec.replicas"]);
        assert_eq!(fields(&v3, "bob"), [".spec.paused"]);
        assert_eq!(decode(&v3).unwrap().len(), 2);
        // The same through the full computation (a value bob owns: ownership moves to alice).
        let mut v4 = v3.clone();
        v4["spec"]["paused"] = json!(false);
        record_update(&c, Some(&v3), &mut v4, "alice").unwrap();
        assert_eq!(fields(&v4, "alice"), [".spec.paused", ".spec.replicas"]);
        assert_eq!(decode(&v4).unwrap().len(), 1, "bob owns nothing any more");
        // Entries stay in encode's order (operation, time, manager).
        let list = v3["metadata"]["managedFields"].as_array().unwrap();
        let key = |e: &Value| {
            (
                e["operation"].to_string(),
                e["time"].to_string(),
                e["manager"].to_string(),
            )
        };
        assert!(list.windows(2).all(|w| key(&w[0]) <= key(&w[1])));
    }
}
