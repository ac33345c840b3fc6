//! CustomResourceDefinitions: validation of CRDs, serving their resources once established,
//! structural-schema validation, pruning and defaulting of custom objects, and removal of the
//! custom objects when a CRD is deleted.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::errors::Cause;
use crate::registry::{NameRule, PrinterColumn, Resource, ScalePaths, SchemaRef};
use crate::rest::{finalizers, meta, meta_str, now, Loc};
use crate::schema::{decode, DecodeIssue};
use crate::server::ApiServer;

/// The finalizer that holds a deleted CRD until its custom objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn is_crd(res: &Resource) -> bool {
    res.group == "apiextensions.k8s.io" && res.plural == "customresourcedefinitions"
}

/// Validates a CRD (and its changes against `old`), after defaulting its names.
pub fn validate_crd(crd: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut c = Vec::new();
    default_crd(crd);
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    if group.is_empty() {
        c.push(Cause::required("spec.group"));
    } else if !group.contains('.') {
        c.push(Cause::invalid(
            "spec.group",
            &spec["group"],
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        c.push(Cause::required("spec.names.plural"));
    } else {
        for p in crate::validation::label_problems(plural) {
            c.push(Cause::invalid(
                "spec.names.plural",
                &spec["names"]["plural"],
                &p,
            ));
        }
    }
    if spec["names"]["kind"].as_str().unwrap_or("").is_empty() {
        c.push(Cause::required("spec.names.kind"));
    }
    let name = meta_str(crd, "name");
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        c.push(Cause::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    match spec["scope"].as_str() {
        Some("Namespaced" | "Cluster") => {}
        _ => c.push(Cause::not_supported(
            "spec.scope",
            &spec["scope"],
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage = versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .count();
    if storage != 1 {
        c.push(Cause::invalid_rendered(
            "spec.versions",
            &crate::crd_go::versions(&spec["versions"]),
            "must have exactly one version marked as storage version",
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, v) in versions.iter().enumerate() {
        let vname = v["name"].as_str().unwrap_or("");
        if vname.is_empty() {
            c.push(Cause::required(format!("spec.versions[{i}].name")));
        } else if !names.insert(vname.to_string()) {
            c.push(Cause::duplicate(
                format!("spec.versions[{i}].name"),
                &v["name"],
            ));
        }
        let schema = &v["schema"]["openAPIV3Schema"];
        let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
        if !schema.is_object() {
            c.push(Cause::required_detail(path, "schemas are required"));
            continue;
        }
        if schema["type"] != json!("object") {
            c.push(Cause::invalid(
                format!("{path}.type"),
                &schema["type"],
                "must be object at the root",
            ));
        }
        structural(schema, &path, &mut c);
    }
    if old.is_none() && storage == 0 {
        // A new CRD's stored versions are its storage version; without one there are none.
        c.push(Cause::invalid_rendered(
            "status.storedVersions",
            "[]string(nil)",
            "must have at least one stored version",
        ));
    }
    if let Some(old) = old {
        if old["spec"]["scope"] != spec["scope"] {
            c.push(Cause::invalid(
                "spec.scope",
                &spec["scope"],
                "field is immutable",
            ));
        }
        if old["spec"]["group"] != spec["group"] {
            c.push(Cause::invalid(
                "spec.group",
                &spec["group"],
                "field is immutable",
            ));
        }
    }
    c
}

/// Checks the structural-schema rule that every specified field has a type.
fn structural(s: &Value, path: &str, c: &mut Vec<Cause>) {
    let free = s["x-kubernetes-int-or-string"] == json!(true)
        || s["x-kubernetes-preserve-unknown-fields"] == json!(true);
    if s.get("type").is_none()
        && !free
        && s.get("anyOf").is_none()
        && s.get("allOf").is_none()
        && s.get("oneOf").is_none()
    {
        c.push(Cause::required_detail(
            format!("{path}.type"),
            "must not be empty for specified object fields",
        ));
    }
    if let Some(props) = s["properties"].as_object() {
        for (k, v) in props {
            structural(v, &format!("{path}.properties[{k}]"), c);
        }
    }
    if s["items"].is_object() {
        structural(&s["items"], &format!("{path}.items"), c);
    }
    if s["additionalProperties"].is_object() {
        structural(
            &s["additionalProperties"],
            &format!("{path}.additionalProperties"),
            c,
        );
    }
}

fn default_crd(crd: &mut Value) {
    let kind = crd["spec"]["names"]["kind"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if let Some(names) = crd["spec"]["names"].as_object_mut() {
        if names.get("singular").is_none() && !kind.is_empty() {
            names.insert("singular".into(), json!(kind.to_lowercase()));
        }
        if names.get("listKind").is_none() && !kind.is_empty() {
            names.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    if crd["spec"].is_object() && crd["spec"].get("conversion").is_none() {
        crd["spec"]["conversion"] = json!({"strategy": "None"});
    }
}

/// Prunes, defaults and validates a custom object against its version's schema. Returns the
/// unknown (pruned) field paths and the causes of a 422.
pub fn admit_custom(schema: Option<&Value>, obj: &mut Value) -> (Vec<String>, Vec<Cause>) {
    let mut unknown = Vec::new();
    let mut causes = Vec::new();
    // metadata is ObjectMeta whatever the schema says.
    if let Some(m) = obj.get_mut("metadata") {
        let s = crate::schema::Schema::builtin();
        let node = s
            .definition("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .expect("ObjectMeta is defined");
        for issue in decode(&s, node, m) {
            match issue {
                DecodeIssue::Unknown(p) => unknown.push(format!("metadata.{p}")),
                DecodeIssue::Quantity(p) => causes.push(Cause::invalid(
                    format!("metadata.{p}"),
                    &Value::Null,
                    crate::validation::QUANTITY_MSG,
                )),
                DecodeIssue::Type {
                    path,
                    found,
                    expected,
                } => causes.push(Cause::invalid(
                    format!("metadata.{path}"),
                    &json!(found),
                    &format!("must be of type {expected}"),
                )),
            }
        }
    }
    let Some(schema) = schema else {
        return (unknown, causes);
    };
    if let Some(o) = obj.as_object_mut() {
        let props = schema["properties"].as_object();
        let keys: Vec<String> = o.keys().cloned().collect();
        for k in keys {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            let v = o.get_mut(&k).expect("key from the map");
            match props.and_then(|p| p.get(&k)) {
                Some(s) => walk(s, v, &k, &mut unknown, &mut causes),
                None if schema["x-kubernetes-preserve-unknown-fields"] == json!(true) => {}
                None => {
                    unknown.push(k.clone());
                    o.remove(&k);
                }
            }
        }
        apply_defaults(schema, o);
        for r in schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !o.contains_key(r) {
                causes.push(Cause::required(r));
            }
        }
    }
    (unknown, causes)
}

fn apply_defaults(schema: &Value, o: &mut Map<String, Value>) {
    if let Some(props) = schema["properties"].as_object() {
        for (k, s) in props {
            if !o.contains_key(k) {
                if let Some(d) = s.get("default") {
                    o.insert(k.clone(), d.clone());
                }
            }
        }
    }
}

/// A schema's `pattern`, compiled once per process (schemas repeat a few patterns across many
/// writes; compiling one costs far more than matching it). Shared, not cloned: a clone of a
/// `Regex` starts with empty matching caches, which it then builds on every use.
fn cached_regex(pattern: &str) -> Option<std::sync::Arc<regex::Regex>> {
    type Cache = std::collections::HashMap<String, Option<std::sync::Arc<regex::Regex>>>;
    static CACHE: std::sync::OnceLock<parking_lot::Mutex<Cache>> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(r) = cache.lock().get(pattern) {
        return r.clone();
    }
    let compiled = regex::Regex::new(pattern).ok().map(std::sync::Arc::new);
    let mut c = cache.lock();
    if c.len() < 4096 {
        c.insert(pattern.to_string(), compiled.clone());
    }
    compiled
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(s: &Value, v: &mut Value, path: &str, unknown: &mut Vec<String>, c: &mut Vec<Cause>) {
    if v.is_null() {
        if s["nullable"] != json!(true) {
            c.push(Cause::invalid(
                path,
                v,
                &format!(
                    "{path} in body must be of type {}: \"null\"",
                    s["type"].as_str().unwrap_or("object")
                ),
            ));
        }
        return;
    }
    if s["x-kubernetes-int-or-string"] == json!(true) {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            c.push(Cause::invalid(
                path,
                v,
                &format!(
                    "{path} in body must be of type integer,string: \"{}\"",
                    type_name(v)
                ),
            ));
        }
        return;
    }
    let found = type_name(v);
    let ty = s["type"].as_str().unwrap_or("");
    let type_ok = match ty {
        "" => true,
        "number" => v.is_number(),
        t => t == found,
    };
    if !type_ok {
        c.push(Cause {
            reason: "FieldValueTypeInvalid",
            field: path.to_string(),
            message: format!(
                "Invalid value: \"{found}\": {path} in body must be of type {ty}: \"{found}\""
            ),
        });
        return;
    }
    if let Some(e) = s["enum"].as_array() {
        if !e.contains(v) {
            let supported: Vec<String> = e
                .iter()
                .map(|x| x.as_str().map_or(x.to_string(), String::from))
                .collect();
            let refs: Vec<&str> = supported.iter().map(String::as_str).collect();
            c.push(Cause::not_supported(path, v, &refs));
        }
    }
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(max) = s["maximum"].as_f64() {
                let excl = s["exclusiveMaximum"] == json!(true);
                if x > max || (excl && x == max) {
                    let rel = if excl {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    c.push(Cause::invalid(
                        path,
                        v,
                        &format!("{path} in body should be {rel} {max}"),
                    ));
                }
            }
            if let Some(min) = s["minimum"].as_f64() {
                let excl = s["exclusiveMinimum"] == json!(true);
                if x < min || (excl && x == min) {
                    let rel = if excl {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    c.push(Cause::invalid(
                        path,
                        v,
                        &format!("{path} in body should be {rel} {min}"),
                    ));
                }
            }
        }
        Value::String(_) => {
            let st = v.as_str().unwrap_or_default();
            let len = st.chars().count() as u64;
            if let Some(max) = s["maxLength"].as_u64() {
                if len > max {
                    c.push(Cause {
                        reason: "FieldValueTooLong",
                        field: path.to_string(),
                        message: format!("Too long: may not be more than {max} bytes"),
                    });
                }
            }
            if let Some(min) = s["minLength"].as_u64() {
                if len < min {
                    c.push(Cause::invalid(
                        path,
                        v,
                        &format!("{path} in body should be at least {min} chars long"),
                    ));
                }
            }
            if let Some(p) = s["pattern"].as_str() {
                if let Some(re) = cached_regex(p) {
                    if !re.is_match(st) {
                        c.push(Cause::invalid(
                            path,
                            v,
                            &format!("{path} in body should match '{p}'"),
                        ));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = s["maxItems"].as_u64() {
                if items.len() as u64 > max {
                    c.push(Cause {
                        reason: "FieldValueTooMany",
                        field: path.to_string(),
                        message: format!(
                            "Too many: {}: must have at most {max} items",
                            items.len()
                        ),
                    });
                }
            }
            if let Some(min) = s["minItems"].as_u64() {
                if (items.len() as u64) < min {
                    c.push(Cause::invalid(
                        path,
                        &json!(items.len()),
                        &format!("{path} in body should have at least {min} items"),
                    ));
                }
            }
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), unknown, c);
                }
            }
            match s["x-kubernetes-list-type"].as_str() {
                Some("set") => {
                    for i in 0..items.len() {
                        if items[..i].contains(&items[i]) {
                            c.push(Cause::duplicate(format!("{path}[{i}]"), &items[i]));
                        }
                    }
                }
                Some("map") => {
                    let keys: Vec<&str> = s["x-kubernetes-list-map-keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    for i in 0..items.len() {
                        let key_of = |x: &Value| {
                            keys.iter()
                                .map(|k| x.get(*k).cloned().unwrap_or(Value::Null))
                                .collect::<Vec<_>>()
                        };
                        let ki = key_of(&items[i]);
                        if items[..i].iter().any(|x| key_of(x) == ki) {
                            c.push(Cause::duplicate(format!("{path}[{i}]"), &Value::Array(ki)));
                        }
                    }
                }
                _ => {}
            }
        }
        Value::Object(o) => {
            let props = s["properties"].as_object();
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            let preserve = s["x-kubernetes-preserve-unknown-fields"] == json!(true)
                || s["additionalProperties"] == json!(true);
            let embedded = s["x-kubernetes-embedded-resource"] == json!(true);
            // In key order, as kube-apiserver's schema validator reports its causes.
            let mut keys: Vec<String> = o.keys().cloned().collect();
            keys.sort();
            for k in keys {
                let child_path = format!("{path}.{k}");
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let child = props.and_then(|p| p.get(&k)).or(additional);
                match child {
                    Some(cs) => {
                        let cv = o.get_mut(&k).expect("key from the map");
                        walk(cs, cv, &child_path, unknown, c);
                    }
                    None if preserve
                        || (props.is_none() && additional.is_none() && ty.is_empty()) => {}
                    None => {
                        unknown.push(child_path);
                        o.remove(&k);
                    }
                }
            }
            apply_defaults(s, o);
            for r in s["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !o.contains_key(r) {
                    c.push(Cause::required(format!("{path}.{r}")));
                }
            }
            if let Some(max) = s["maxProperties"].as_u64() {
                if o.len() as u64 > max {
                    c.push(Cause::invalid(
                        path,
                        &json!(o.len()),
                        &format!("{path} in body should have at most {max} properties"),
                    ));
                }
            }
        }
        _ => {}
    }
}

/// The resources a CRD serves.
pub fn resources_of(crd: &Value) -> Vec<Arc<Resource>> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("").to_string();
    let names = &spec["names"];
    let kind = names["kind"].as_str().unwrap_or("").to_string();
    let storage_version = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["storage"] == json!(true))
        .and_then(|v| v["name"].as_str())
        .unwrap_or("")
        .to_string();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    };
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"] != json!(false))
        .map(|v| {
            let sub = &v["subresources"];
            let scale = sub
                .get("scale")
                .filter(|s| s.is_object())
                .map(|s| ScalePaths {
                    spec_replicas: s["specReplicasPath"]
                        .as_str()
                        .unwrap_or(".spec.replicas")
                        .into(),
                    status_replicas: s["statusReplicasPath"]
                        .as_str()
                        .unwrap_or(".status.replicas")
                        .into(),
                    label_selector: s["labelSelectorPath"].as_str().map(String::from),
                });
            let printer_columns = v["additionalPrinterColumns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| PrinterColumn {
                    name: c["name"].as_str().unwrap_or("").into(),
                    type_: c["type"].as_str().unwrap_or("string").into(),
                    format: c["format"].as_str().unwrap_or("").into(),
                    description: c["description"].as_str().unwrap_or("").into(),
                    priority: c["priority"].as_i64().unwrap_or(0),
                    json_path: c["jsonPath"].as_str().unwrap_or("").into(),
                })
                .collect();
            let selectable_fields = v["selectableFields"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| {
                    f["jsonPath"]
                        .as_str()
                        .map(|p| p.trim_start_matches('.').to_string())
                })
                .collect();
            let schema = v["schema"]["openAPIV3Schema"].clone();
            Arc::new(Resource {
                group: group.clone(),
                version: v["name"].as_str().unwrap_or("").into(),
                plural: names["plural"].as_str().unwrap_or("").into(),
                singular: names["singular"]
                    .as_str()
                    .map_or_else(|| kind.to_lowercase(), String::from),
                kind: kind.clone(),
                namespaced: spec["scope"] == json!("Namespaced"),
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                status: sub.get("status").is_some_and(Value::is_object),
                scale,
                generation: true,
                names: NameRule::Subdomain,
                schema: SchemaRef::Custom(schema.is_object().then(|| Arc::new(schema))),
                printer_columns,
                selectable_fields,
                storage_key_group: group.clone(),
                storage_version: storage_version.clone(),
                custom: true,
            })
        })
        .collect()
}

/// Starts (or updates) serving a CRD after it is written, on every replica; the leader also
/// reports it established or, for a CRD being deleted, removes its custom objects and then its
/// finalizer.
pub(crate) fn on_crd_written(server: &ApiServer, crd: &Value) {
    register(server, crd);
    if server.is_leader() {
        reconcile(server, crd);
    }
}

/// Serves a CRD (not one being deleted: its API stays until clean-up ends).
fn register(server: &ApiServer, crd: &Value) {
    if !meta_str(crd, "deletionTimestamp").is_empty() {
        return;
    }
    let mut reg = server.state.registry.write();
    let group = crd["spec"]["group"].as_str().unwrap_or("");
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or("");
    reg.remove_custom(group, plural);
    for r in resources_of(crd) {
        reg.insert(r);
    }
}

/// The controller part: status and clean-up.
fn reconcile(server: &ApiServer, crd: &Value) {
    let name = meta_str(crd, "name").to_string();
    if !meta_str(crd, "deletionTimestamp").is_empty() {
        if finalizers(crd).iter().any(|f| f == CLEANUP_FINALIZER)
            && server.state.crd_cleanups.lock().insert(name.clone())
        {
            let server = server.clone();
            let crd = crd.clone();
            tokio::spawn(async move {
                cleanup(server.clone(), crd).await;
                server.state.crd_cleanups.lock().remove(&name);
            });
        }
        return;
    }
    let status = established_status(crd);
    if crd.get("status") == Some(&status) {
        return;
    }
    let server = server.clone();
    tokio::spawn(async move {
        if let Err(e) = server.write_status(&crd_loc(&server, &name), status).await {
            tracing::warn!(crd = %name, error = %e, "could not report the CRD established");
        }
    });
}

/// Follows CRD changes made through any replica (the store may be shared): serves new and
/// changed CRDs, stops serving deleted ones; while this replica leads, reconciles them (and
/// all of them when it becomes leader).
pub(crate) async fn follow(server: ApiServer) {
    let prefix = "/apiextensions.k8s.io/customresourcedefinitions/";
    let mut leading = server.state.leadership.read().subscribe();
    let stopped = server.stopped();
    tokio::pin!(stopped);
    let mut was_leader = false;
    let mut fixed = false;
    let mut watcher: Option<flotilla_store::Watcher> = None;
    loop {
        let leader = *leading.borrow_and_update();
        let w = match watcher.as_mut() {
            Some(w) => w,
            None => {
                let snap = server.store().snapshot();
                for o in snap.range(prefix, None) {
                    let crd = crate::rest::parse(o);
                    register(&server, &crd);
                }
                match server.store().watch(prefix, snap.rev) {
                    Ok(w) => watcher.insert(w),
                    Err(_) => return,
                }
            }
        };
        if leader && !was_leader {
            let snap = server.store().snapshot();
            for o in snap.range(prefix, None) {
                reconcile(&server, &crate::rest::parse(o));
            }
        }
        was_leader = leader;
        tokio::select! {
            _ = &mut stopped => return,
            r = leading.changed(), if !fixed => if r.is_err() {
                // Fixed leadership (one replica): nothing more to follow there.
                fixed = true;
            },
            ev = w.next() => match ev {
                Ok(ev) => {
                    let crd = crate::rest::parse(&ev.object);
                    match ev.kind {
                        flotilla_store::EventKind::Put => {
                            register(&server, &crd);
                            if leader {
                                reconcile(&server, &crd);
                            }
                        }
                        flotilla_store::EventKind::Delete => {
                            let group = crd["spec"]["group"].as_str().unwrap_or("");
                            let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or("");
                            server.state.registry.write().remove_custom(group, plural);
                        }
                    }
                }
                Err(flotilla_store::Error::Compacted { .. }) => watcher = None,
                Err(_) => return,
            },
        }
    }
}

fn crd_loc(server: &ApiServer, name: &str) -> Loc {
    let res = server
        .state
        .registry
        .read()
        .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("CRDs are always served");
    Loc {
        res,
        ns: None,
        name: name.to_string(),
    }
}

fn established_status(crd: &Value) -> Value {
    let old = &crd["status"];
    let condition = |ty: &str, reason: &str, message: &str| {
        let previous = old["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == ty && c["status"] == "True");
        let since = previous.map_or_else(|| json!(now()), |p| p["lastTransitionTime"].clone());
        json!({"type": ty, "status": "True", "lastTransitionTime": since, "reason": reason, "message": message})
    };
    let mut stored: Vec<Value> = old["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
        if v["storage"] == json!(true) && !stored.contains(&v["name"]) {
            stored.push(v["name"].clone());
        }
    }
    json!({
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": crd["spec"]["names"].clone(),
        "storedVersions": stored,
    })
}

async fn cleanup(server: ApiServer, crd: Value) {
    let name = meta_str(&crd, "name").to_string();
    let resources = resources_of(&crd);
    if let Some(res) = resources.first() {
        let prefix = res.key_prefix(None);
        let keys: Vec<String> = server
            .store()
            .snapshot()
            .range(&prefix, None)
            .map(|o| o.key.to_string())
            .collect();
        let opts = crate::delete::DeleteOptions::default();
        for key in keys {
            let (ns, obj_name) = crate::list::ns_name(res, &key);
            let loc = Loc {
                res: res.clone(),
                ns,
                name: obj_name,
            };
            if let Err(e) = server.delete_with(&loc, &opts, false).await {
                if e.code != 404 {
                    tracing::warn!(crd = %name, key, error = %e, "could not delete a custom object");
                    return;
                }
            }
        }
    }
    let loc = crd_loc(&server, &name);
    if let Err(e) = server.remove_finalizer(&loc, CLEANUP_FINALIZER).await {
        tracing::warn!(crd = %name, error = %e, "could not finish deleting the CRD");
    }
}

/// Bookkeeping after an object is deleted: a deleted CRD stops being served.
pub(crate) fn on_deleted(server: &ApiServer, res: &Resource, obj: &Value) {
    if is_crd(res) {
        let group = obj["spec"]["group"].as_str().unwrap_or("");
        let plural = obj["spec"]["names"]["plural"].as_str().unwrap_or("");
        server.state.registry.write().remove_custom(group, plural);
    }
}

/// Serves the CRDs already in the store (at startup) and resumes pending deletions.
pub(crate) fn load(server: &ApiServer) {
    let prefix = "/apiextensions.k8s.io/customresourcedefinitions/";
    let crds: Vec<Value> = server
        .store()
        .snapshot()
        .range(prefix, None)
        .map(|o| crate::rest::parse(o))
        .collect();
    for crd in crds {
        on_crd_written(server, &crd);
    }
}

/// Whether deleting an object of `res` must first clean up (CRDs).
pub(crate) fn deletion_finalizer(res: &Resource, obj: &Value) -> Option<&'static str> {
    (is_crd(res) && meta(obj).get("deletionTimestamp").is_none()).then_some(CLEANUP_FINALIZER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "widgets.example.com"},
               "spec": {"group": "example.com", "scope": "Namespaced",
                        "names": {"plural": "widgets", "kind": "Widget"},
                        "versions": [{"name": "v1", "served": true, "storage": true,
                            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                "spec": {"type": "object", "required": ["size"], "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                                    "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}}}]}})
    }

    #[test]
    fn crd_validation_and_defaults() {
        let mut ok = crd();
        assert!(validate_crd(&mut ok, None).is_empty());
        assert_eq!(ok["spec"]["names"]["singular"], "widget");
        assert_eq!(ok["spec"]["names"]["listKind"], "WidgetList");
        let mut bad = crd();
        bad["metadata"]["name"] = json!("wrong");
        bad["spec"]["versions"][0]["storage"] = json!(false);
        bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["x"] = json!({});
        let fields: Vec<String> = validate_crd(&mut bad, None)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "spec.versions",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[x].type",
                "status.storedVersions"
            ]
        );
    }

    #[test]
    fn custom_objects_are_pruned_defaulted_and_validated() {
        let c = crd();
        let schema = c["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
        let mut obj = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "junk": 1},
                             "spec": {"size": 3, "extra": true, "free": {"any": {"thing": 1}}}, "top": 1});
        let (unknown, causes) = admit_custom(Some(&schema), &mut obj);
        assert!(causes.is_empty(), "{causes:?}");
        assert_eq!(unknown, ["metadata.junk", "spec.extra", "top"]);
        assert_eq!(
            obj["spec"],
            json!({"size": 3, "free": {"any": {"thing": 1}}, "color": "red"})
        );

        let mut bad = json!({"spec": {"size": "big", "color": "pink", "tags": ["a", "a"]}});
        let (_, causes) = admit_custom(Some(&schema), &mut bad);
        let got: Vec<(&str, &str)> = causes
            .iter()
            .map(|c| (c.field.as_str(), c.reason))
            .collect();
        assert_eq!(
            got,
            [
                ("spec.color", "FieldValueNotSupported"),
                ("spec.size", "FieldValueTypeInvalid"),
                ("spec.tags[1]", "FieldValueDuplicate")
            ],
            "in key order"
        );
        let mut missing = json!({"spec": {"size": 11}});
        let (_, causes) = admit_custom(Some(&schema), &mut missing);
        let got: Vec<&str> = causes.iter().map(|c| c.message.as_str()).collect();
        assert_eq!(
            got,
            ["Invalid value: 11: spec.size in body should be less than or equal to 10"]
        );
        let mut none = json!({});
        let (_, causes) = admit_custom(Some(&schema), &mut none);
        assert!(causes.is_empty());
    }
}
