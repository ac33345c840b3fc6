//! A write workload for crash tests, and its check: workers create, update with a
//! resourceVersion precondition, and delete with uid and resourceVersion preconditions,
//! recording what the server acknowledged. After the server is killed and restarted, every
//! object must be as last acknowledged, or as the change in flight at the kill left it, and
//! every acknowledged resourceVersion must still be current.

#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};

/// An object as a client was told it is: its value, resourceVersion and uid.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub value: String,
    pub rv: String,
    pub uid: String,
}

/// What the clients were told, per object name. `None` is "absent".
#[derive(Debug, Default)]
pub struct Ledger {
    /// The last acknowledged state.
    pub acked: BTreeMap<String, Option<Seen>>,
    /// The value a change in flight when its worker stopped would have left (the server may
    /// or may not have made it).
    pub in_flight: BTreeMap<String, Option<String>>,
    /// Acknowledged changes, of every kind.
    pub changes: usize,
}

impl Ledger {
    pub fn changes(ledger: &Mutex<Ledger>) -> usize {
        ledger.lock().unwrap().changes
    }
}

const LABEL: &str = "churn";

fn object(name: &str, value: &str, rv: Option<&str>) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {LABEL: "yes"}, "resourceVersion": rv},
        "data": {"v": value}}))
    .unwrap()
}

fn seen(cm: &ConfigMap) -> Seen {
    Seen {
        value: cm
            .data
            .as_ref()
            .and_then(|d| d.get("v"))
            .cloned()
            .unwrap_or_default(),
        rv: cm.metadata.resource_version.clone().unwrap_or_default(),
        uid: cm.metadata.uid.clone().unwrap_or_default(),
    }
}

/// Runs worker `w` through `api` until `stop` or its first error (the server went away):
/// objects `c{w}-{n}` are created, updated twice with preconditions, and two of three are
/// deleted with preconditions. Errors are returned when `errors` is set (a replica that
/// must not fail), else they end the worker quietly.
pub async fn work(
    api: Api<ConfigMap>,
    w: usize,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    errors: Option<Arc<Mutex<Vec<String>>>>,
) {
    let fail = |name: &str, outcome: Option<String>, e: kube::Error| {
        ledger
            .lock()
            .unwrap()
            .in_flight
            .insert(name.to_string(), outcome);
        if let Some(errors) = &errors {
            errors.lock().unwrap().push(format!("{name}: {e}"));
        }
    };
    let ack = |name: &str, state: Option<Seen>| {
        let mut l = ledger.lock().unwrap();
        l.acked.insert(name.to_string(), state);
        l.changes += 1;
    };
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let name = format!("c{w}-{n}");
        let mut last = match api
            .create(&PostParams::default(), &object(&name, "0", None))
            .await
        {
            Ok(cm) => seen(&cm),
            Err(e) => return fail(&name, Some("0".into()), e),
        };
        ack(&name, Some(last.clone()));
        for value in ["1", "2"] {
            match api
                .replace(
                    &name,
                    &PostParams::default(),
                    &object(&name, value, Some(&last.rv)),
                )
                .await
            {
                Ok(cm) => last = seen(&cm),
                Err(e) => return fail(&name, Some(value.into()), e),
            }
            ack(&name, Some(last.clone()));
        }
        if n % 3 != 0 {
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: Some(last.rv.clone()),
                    uid: Some(last.uid.clone()),
                }),
                ..Default::default()
            };
            if let Err(e) = api.delete(&name, &dp).await {
                return fail(&name, None, e);
            }
            ack(&name, None);
        }
    }
}

/// Checks the objects behind `api` against the ledger: none lost, none changed that was not
/// acknowledged or in flight, none invented; then that the acknowledged resourceVersions of
/// settled objects are still current (an update naming one succeeds).
pub async fn check(api: &Api<ConfigMap>, ledger: &Ledger) {
    let stored: BTreeMap<String, Seen> = api
        .list(&ListParams::default().labels(LABEL))
        .await
        .unwrap()
        .items
        .iter()
        .map(|cm| (cm.metadata.name.clone().unwrap(), seen(cm)))
        .collect();
    let names: BTreeSet<&String> = ledger
        .acked
        .keys()
        .chain(ledger.in_flight.keys())
        .chain(stored.keys())
        .collect();
    let mut wrong = Vec::new();
    for name in names {
        let got = stored.get(name).map(|s| s.value.clone());
        let acked = ledger.acked.get(name).cloned().flatten();
        let ok = got == acked.as_ref().map(|s| s.value.clone())
            || ledger.in_flight.get(name).is_some_and(|f| *f == got);
        if !ok {
            wrong.push(format!(
                "{name}: stored {got:?}, acknowledged {:?}, in flight {:?}",
                acked.map(|s| s.value),
                ledger.in_flight.get(name)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} objects differ from what the clients were told:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let mut settled = 0;
    for (name, state) in &ledger.acked {
        let Some(s) = state else { continue };
        if ledger.in_flight.contains_key(name) {
            continue;
        }
        api.replace(
            name,
            &PostParams::default(),
            &object(name, "after", Some(&s.rv)),
        )
        .await
        .unwrap_or_else(|e| panic!("{name} at its acknowledged resourceVersion {}: {e}", s.rv));
        settled += 1;
        if settled == 20 {
            break;
        }
    }
    assert!(
        settled > 0,
        "no object survived to check its resourceVersion"
    );
}
