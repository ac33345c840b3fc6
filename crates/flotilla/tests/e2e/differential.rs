//! The differential API suite: the requests of `testdata/differential.yaml` sent to a
//! `flotilla hub` and to a real kube-apiserver of the same minor version, responses normalized
//! (uids, timestamps, resourceVersions, generated names) and compared field by field. Every
//! difference must be listed in docs/api-compatibility.md ("Differences the differential suite
//! knows") with its reason; the test fails on one that is not, and on a listed one that no
//! longer occurs.

#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

use crate::hub::start_hub;

/// One request of a case.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Step {
    method: String,
    path: String,
    #[serde(default)]
    body: Option<Value>,
    /// The body as sent, when it must not be JSON (a YAML or protobuf test).
    #[serde(default)]
    raw_body: Option<String>,
    /// A binary request body, base64-encoded (a protobuf body, for instance).
    #[serde(default)]
    body_base64: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    accept: Option<String>,
    /// Compare only these paths of the response body.
    #[serde(default)]
    only: Vec<String>,
    /// Leave these paths of the response body out of the comparison.
    #[serde(default)]
    ignore: Vec<String>,
    /// Values to keep from the response (name -> path), used as `((name))` in later steps.
    #[serde(default)]
    capture: BTreeMap<String, String>,
    /// Compare the status code and content type only (a body that is not JSON).
    #[serde(default)]
    status_only: bool,
    /// Repeat the request (up to 20 s) until it answers this code, on each server, and until
    /// both answer alike: for what happens asynchronously (a CRD being established, garbage
    /// collection), which each server settles at its own pace.
    #[serde(default)]
    until_code: Option<u16>,
    /// Repeat the request on both servers (up to 20 s) until their answers agree: for what
    /// each server settles at its own pace (kube-apiserver's group discovery follows a CRD
    /// change a moment after its handlers do). Answers that never agree are reported.
    #[serde(default)]
    until_same: bool,
    /// Send as this ordinary user (a client certificate, no groups) instead of the admin.
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    case: String,
    steps: Vec<Step>,
}

/// A response, reduced to what is compared.
#[derive(Debug)]
struct Answer {
    code: u16,
    content_type: String,
    body: Value,
}

/// The servers under comparison.
struct Side {
    client: kube::Client,
    /// Clients of ordinary users, by name.
    users: BTreeMap<String, kube::Client>,
    vars: BTreeMap<String, String>,
}

impl Side {
    fn subst(&self, s: &str) -> String {
        let mut out = s.to_string();
        for (k, v) in &self.vars {
            out = out.replace(&format!("(({k}))"), v);
        }
        out
    }

    async fn send(&mut self, step: &Step) -> Answer {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let a = self.send_once(step).await;
            match step.until_code {
                Some(c) if a.code != c && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                _ => return a,
            }
        }
    }

    async fn send_once(&mut self, step: &Step) -> Answer {
        let mut b = http::Request::builder()
            .method(step.method.as_str())
            .uri(self.subst(&step.path));
        let ct = step.content_type.as_deref().unwrap_or("application/json");
        let body = match (&step.body, &step.raw_body, &step.body_base64) {
            (Some(v), _, _) => self.subst(&v.to_string()).into_bytes(),
            (None, Some(r), _) => self.subst(r).into_bytes(),
            (None, None, Some(b)) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .expect("bodyBase64 is base64")
            }
            (None, None, None) => Vec::new(),
        };
        if !body.is_empty() {
            b = b.header("content-type", ct);
        }
        b = b.header(
            "accept",
            step.accept.as_deref().unwrap_or("application/json"),
        );
        let req = b.body(kube::client::Body::from(body)).unwrap();
        let client = match &step.user {
            Some(u) => self.users.get(u).unwrap_or_else(|| panic!("no user {u}")),
            None => &self.client,
        };
        let resp = client.send(req).await.unwrap();
        let code = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if step.status_only {
            Value::Null
        } else if step.path.contains("watch=") {
            // A watch stream: one JSON event per line.
            Value::Array(
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| serde_json::from_str(l).unwrap_or(Value::String(l.into())))
                    .collect(),
            )
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        for (name, path) in &step.capture {
            if let Some(v) = select(&body, path) {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                self.vars.insert(name.clone(), v);
            }
        }
        Answer {
            code,
            content_type,
            body,
        }
    }
}

/// A path: `.`-separated keys, where `key[field=value]` picks the element of a list by a field
/// (itself a `.`-path, e.g. `items[metadata.name=apps]`) and `key[N]` the N-th; resolved against `v` to a JSON pointer.
fn pointer(v: &Value, path: &str) -> Option<String> {
    let mut cur = v;
    let mut out = String::new();
    for part in split_path(path) {
        let (key, filter) = match part.split_once('[') {
            Some((k, f)) => (k, Some(f.trim_end_matches(']'))),
            None => (part, None),
        };
        if !key.is_empty() {
            cur = cur.get(key)?;
            out.push('/');
            out.push_str(&key.replace('~', "~0").replace('/', "~1"));
        }
        if let Some(i) = filter.and_then(|f| f.parse::<usize>().ok()) {
            cur = cur.get(i)?;
            out.push_str(&format!("/{i}"));
        } else if let Some(f) = filter {
            let (fk, fv) = f.split_once('=')?;
            let i = cur.as_array()?.iter().position(|x| {
                fk.split('.')
                    .try_fold(x, |x, k| x.get(k))
                    .and_then(Value::as_str)
                    == Some(fv)
            })?;
            cur = &cur[i];
            out.push_str(&format!("/{i}"));
        }
    }
    Some(out)
}

/// The `.`-separated parts of a path, leaving dots inside `[...]` alone.
fn split_path(path: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in path.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => {
                parts.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&path[start..]);
    parts.retain(|p| !p.is_empty());
    parts
}

fn select<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    v.pointer(&pointer(v, path)?)
}

fn remove(v: &mut Value, path: &str) {
    let parts = split_path(path);
    let Some((last, parents)) = parts.split_last() else {
        return;
    };
    let parent = parents.join(".");
    let (parent, last) = (parent.as_str(), *last);
    if let Some(at) = pointer(v, parent) {
        if let Some(Value::Object(m)) = v.pointer_mut(&at) {
            m.remove(last);
        }
    }
}

/// Replaces what differs between any two servers by design: identities, times, revisions and
/// the random part of generated names.
fn normalize(v: &mut Value) {
    match v {
        Value::Object(m) => {
            // managedFields name owner references by uid (`k:{"uid":"..."}`).
            if m.keys().any(|k| k.contains("\"uid\":\"")) {
                *m = std::mem::take(m)
                    .into_iter()
                    .map(|(k, x)| (uid_free(&k), x))
                    .collect();
            }
            if let Some(Value::Object(meta)) = m.get_mut("metadata") {
                normalize_meta(meta);
            }
            for (k, x) in m.iter_mut() {
                if k == "causes" {
                    // kube-apiserver reports some causes in map order (custom resources).
                    if let Value::Array(a) = x {
                        a.sort_by_key(|c| c.to_string());
                    }
                }
                match k.as_str() {
                    "uid" | "creationTimestamp" | "deletionTimestamp" | "time"
                    | "lastTransitionTime" | "lastUpdateTime" | "resourceVersion" | "continue"
                        if x.is_string() =>
                    {
                        *x = json!(format!("<{k}>"));
                    }
                    _ => normalize(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// `k:{"uid":"<any>"}` for a managedFields key naming a uid.
fn uid_free(key: &str) -> String {
    match key.split_once("\"uid\":\"") {
        Some((head, tail)) => {
            let rest = tail.split_once('"').map_or("", |(_, r)| r);
            format!("{head}\"uid\":\"<uid>\"{rest}")
        }
        None => key.to_string(),
    }
}

fn normalize_meta(meta: &mut Map<String, Value>) {
    // Both servers order managedFields by operation, time (to the second) and manager; the
    // times differ between them, so entries are compared in (operation, manager) order.
    if let Some(Value::Array(entries)) = meta.get_mut("managedFields") {
        entries.sort_by_key(|e| {
            (
                e["operation"].to_string(),
                e["manager"].to_string(),
                e["subresource"].to_string(),
            )
        });
    }
    if let (Some(Value::String(g)), Some(Value::String(n))) =
        (meta.get("generateName").cloned(), meta.get_mut("name"))
    {
        if n.starts_with(&g) {
            *n = format!("{g}<random>");
        }
    }
}

/// The differences between two JSON values, as (path, flotilla, kube-apiserver).
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<(String, String, String)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(a), Some(b)) => diff(&p, a, b, out),
                    (a, b) => out.push((p, show(a), show(b))),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (a, b)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), a, b, out);
            }
        }
        (a, b) if a != b => out.push((path.to_string(), show(Some(a)), show(Some(b)))),
        _ => {}
    }
}

/// A value as the report shows it: cut at 160 characters, unless FLOTILLA_DIFF_FULL is set.
/// (FLOTILLA_DIFF_DUMP prints every answer of kube-apiserver, for writing cases and tests.)
fn show(v: Option<&Value>) -> String {
    v.map_or("(absent)".into(), |v| {
        let s = v.to_string();
        if s.len() > 160 && std::env::var_os("FLOTILLA_DIFF_FULL").is_none() {
            format!("{}...", &s[..160])
        } else {
            s
        }
    })
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = match text.strip_prefix(parts[0]) {
        Some(r) => r,
        None => return false,
    };
    for (i, part) in parts.iter().enumerate().skip(1) {
        if i == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// The differences docs/api-compatibility.md lists: (case, step, path), where `*` in any of
/// them matches anything and a path also covers what lies under it.
fn known_differences() -> BTreeSet<(String, String, String)> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/api-compatibility.md"
    ))
    .unwrap();
    let section = doc
        .split("## Differences the differential suite knows")
        .nth(1)
        .expect("docs/api-compatibility.md has the differential suite's section");
    section
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| {
            let cells: Vec<&str> = l
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            let step = cells.get(1)?.trim_matches('`').to_string();
            if step != "*" && step.parse::<usize>().is_err() {
                return None;
            }
            let path = cells.get(2)?.trim_matches('`').to_string();
            Some((cells[0].trim_matches('`').to_string(), step, path))
        })
        .collect()
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/testdata/differential.yaml"),
    )
    .unwrap();
    serde_yaml::from_str(&text).unwrap()
}

async fn client(kubeconfig: &Path) -> kube::Client {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    // Look at each server's own answers, not at retries of them.
    config.read_timeout = Some(std::time::Duration::from_secs(30));
    kube::Client::try_from(config).unwrap()
}

/// The differences between the two servers' answers to `step`, after normalization, as
/// (path, flotilla, kube-apiserver).
fn compare(step: &Step, mut a: Answer, mut b: Answer) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    if a.code != b.code {
        found.push(("code".to_string(), a.code.to_string(), b.code.to_string()));
    }
    let media = |c: &str| c.split(';').next().unwrap_or("").trim().to_string();
    if media(&a.content_type) != media(&b.content_type) {
        found.push((
            "content-type".into(),
            a.content_type.clone(),
            b.content_type.clone(),
        ));
    }
    if !step.status_only {
        for v in [&mut a.body, &mut b.body] {
            normalize(v);
            for p in &step.ignore {
                remove(v, p);
            }
        }
        if step.only.is_empty() {
            diff("", &a.body, &b.body, &mut found);
        } else {
            for p in &step.only {
                match (select(&a.body, p), select(&b.body, p)) {
                    (Some(x), Some(y)) => diff(p, x, y, &mut found),
                    (x, y) => {
                        if x != y {
                            found.push((p.clone(), show(x), show(y)));
                        }
                    }
                }
            }
        }
    }
    found
}

#[test]
fn the_hub_answers_as_kube_apiserver_does() {
    let dir = tempfile::tempdir().unwrap();
    let real = flotilla_testbed::RealCluster::start(
        &dir.path().join("real"),
        flotilla_testbed::ControlPlane::Full { nodes: 1 },
    )
    .unwrap();
    let hub = start_hub(&dir.path().join("hub"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let known = known_differences();
    let mut seen = BTreeSet::new();
    let mut unexplained = Vec::new();
    // An ordinary user on each server, with a client certificate from the server's own CA.
    let hub_pki = dir.path().join("hub/pki");
    let read = |f: &str| std::fs::read_to_string(hub_pki.join(f)).unwrap();
    let hub_url = std::fs::read_to_string(&hub.kubeconfig)
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: ").map(str::to_string))
        .unwrap();
    let users = [(
        "alice",
        dir.path().join("alice-hub.kubeconfig"),
        dir.path().join("alice-real.kubeconfig"),
    )];
    for (user, on_hub, on_real) in &users {
        let kc = flotilla_testbed::user_kubeconfig(
            &read("ca.crt"),
            &read("ca.key"),
            &hub_url,
            user,
            &[],
        )
        .unwrap();
        std::fs::write(on_hub, kc).unwrap();
        std::fs::write(on_real, real.user_kubeconfig(user, &[]).unwrap()).unwrap();
    }
    rt.block_on(async {
        let mut flotilla = Side { client: client(&hub.kubeconfig).await, users: BTreeMap::new(), vars: BTreeMap::new() };
        let mut kube = Side { client: client(real.kubeconfig()).await, users: BTreeMap::new(), vars: BTreeMap::new() };
        for (user, on_hub, on_real) in &users {
            flotilla.users.insert(user.to_string(), client(on_hub).await);
            kube.users.insert(user.to_string(), client(on_real).await);
        }
        for case in cases() {
            let ns = format!("diff-{}", case.case);
            for side in [&mut flotilla, &mut kube] {
                side.vars.clear();
                side.vars.insert("ns".into(), ns.clone());
                let create = Step {
                    method: "POST".into(),
                    path: "/api/v1/namespaces".into(),
                    body: Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})),
                    raw_body: None, body_base64: None, content_type: None, accept: None, only: vec![], ignore: vec![],
                    capture: BTreeMap::new(), status_only: true, until_code: None, until_same: false, user: None,
                };
                let a = side.send(&create).await;
                assert_eq!(a.code, 201, "creating namespace {ns}");
            }
            for (i, step) in case.steps.iter().enumerate() {
                let step_no = i + 1;
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                // The listed difference that explains a found one, if any.
                let explain = |path: &str| {
                    known
                        .iter()
                        .find(|(c, s, p)| {
                            (c == "*" || *c == case.case)
                                && (s == "*" || *s == step_no.to_string())
                                && (glob(p, path)
                                    || path.starts_with(&format!("{p}."))
                                    || path.starts_with(&format!("{p}[")))
                        })
                        .cloned()
                };
                let found = loop {
                    let a = flotilla.send(step).await;
                    let b = kube.send(step).await;
                    if std::env::var_os("FLOTILLA_DIFF_DUMP").is_some() {
                        // For writing tests and cases: kube-apiserver's own answer.
                        eprintln!("{} step {step_no}: kube-apiserver {} {}", case.case, b.code, b.body);
                    }
                    let found = compare(step, a, b);
                    // A step that waits for something asynchronous (untilCode) also waits
                    // until both servers have settled on it: until nothing but listed
                    // differences remain.
                    let settle = step.until_same || step.until_code.is_some();
                    let settled = found.iter().all(|(path, _, _)| explain(path).is_some());
                    if !settle || settled || std::time::Instant::now() > deadline {
                        break found;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                };
                for (path, ours, theirs) in found {
                    match explain(&path) {
                        Some(k) => {
                            seen.insert(k);
                        }
                        None => unexplained.push(format!(
                            "{} step {step_no} ({} {}): {path}: flotilla {ours}, kube-apiserver {theirs}",
                            case.case, step.method, step.path
                        )),
                    }
                }
            }
        }
    });
    let stale: Vec<_> = known.difference(&seen).collect();
    assert!(
        unexplained.is_empty() && stale.is_empty(),
        "differences neither fixed nor listed in docs/api-compatibility.md:\n{}\n\nlisted there but no longer seen: {stale:?}",
        unexplained.join("\n")
    );
}
