//! The installed `kubectl` against the server: apply, diff, get in its output formats, watch,
//! label, annotate, scale, patch, CRDs, delete with cascade, explain and wait.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::{self, eventually};

fn testdata(name: &str) -> String {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "api", "testdata", name]
        .iter()
        .collect();
    p.to_string_lossy().into_owned()
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_reapply_and_modify_a_multi_document_file() {
    let t = support::start().await;
    let out = t.kubectl_ok(&["apply", "-f", &testdata("app.yaml")]);
    for line in [
        "namespace/shop created",
        "configmap/web-config created",
        "deployment.apps/web created",
        "service/web created",
    ] {
        assert!(out.contains(line), "{out}");
    }
    let out = t.kubectl_ok(&["apply", "-f", &testdata("app.yaml")]);
    assert_eq!(out.matches("unchanged").count(), 4, "{out}");

    // diff shows the change without making it; exit code 1 means "differences found".
    let (ok, diff, _) = t.kubectl(&["diff", "-f", &testdata("app-v2.yaml")]);
    assert!(!ok && diff.contains("+        image: nginx:1.26"), "{diff}");
    let d = json(&t.kubectl_ok(&["get", "deploy", "web", "-n", "shop", "-o", "json"]));
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );

    let out = t.kubectl_ok(&["apply", "-f", &testdata("app-v2.yaml")]);
    assert!(
        out.contains("deployment.apps/web configured")
            && out.contains("configmap/web-config configured"),
        "{out}"
    );
    // The stored result of kubectl's three-way strategic merge: the sidecar and MODE are gone
    // (removed from the file), KEEP stays, NEW and the 443 port are merged in by their keys.
    let d = json(&t.kubectl_ok(&["get", "deploy", "web", "-n", "shop", "-o", "json"]));
    let cs = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0]["image"], "nginx:1.26");
    let env: Vec<&str> = cs[0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["KEEP", "NEW"]);
    let ports: Vec<i64> = cs[0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [80, 443]);
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["metadata"]["generation"], 2);
    let (ok, _, _) = t.kubectl(&["diff", "-f", &testdata("app-v2.yaml")]);
    assert!(ok, "no differences after applying");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_in_every_output_format_and_with_selectors() {
    let t = support::start().await;
    t.kubectl_ok(&["apply", "-f", &testdata("app.yaml")]);
    let table = t.kubectl_ok(&["get", "deploy", "-n", "shop"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert!(table.lines().nth(1).unwrap().starts_with("web "), "{table}");
    let wide = t.kubectl_ok(&["get", "deploy", "-n", "shop", "-o", "wide"]);
    assert!(
        wide.contains("nginx:1.25,busybox:1.36") && wide.contains("app=web"),
        "{wide}"
    );
    let svc = t.kubectl_ok(&["get", "svc", "web", "-n", "shop"]);
    assert!(svc.contains("ClusterIP") && svc.contains("80/TCP"), "{svc}");

    let yaml = t.kubectl_ok(&["get", "cm", "web-config", "-n", "shop", "-o", "yaml"]);
    assert!(
        yaml.contains("color: blue") && yaml.contains("resourceVersion:"),
        "{yaml}"
    );
    let name = t.kubectl_ok(&[
        "get",
        "cm",
        "web-config",
        "-n",
        "shop",
        "-o",
        "jsonpath={.metadata.name}:{.data.color}",
    ]);
    assert_eq!(name, "web-config:blue");
    let by_label = t.kubectl_ok(&["get", "cm,deploy", "-A", "-l", "app=web", "-o", "name"]);
    assert_eq!(
        by_label.lines().collect::<Vec<_>>(),
        ["configmap/web-config", "deployment.apps/web"]
    );
    let none = t.kubectl_ok(&[
        "get",
        "cm",
        "-n",
        "shop",
        "-l",
        "app notin (web)",
        "-o",
        "name",
    ]);
    assert!(none.trim().is_empty());
    let all = t.kubectl_ok(&["get", "all", "-n", "shop", "-o", "name"]);
    assert!(
        all.contains("service/web") && all.contains("deployment.apps/web"),
        "{all}"
    );
    let (ok, _, err) = t.kubectl(&["get", "nosuchkind"]);
    assert!(
        !ok && err.contains("the server doesn't have a resource type \"nosuchkind\""),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_annotate_scale_patch_and_watch() {
    let t = support::start().await;
    t.kubectl_ok(&["apply", "-f", &testdata("app.yaml")]);
    let kubeconfig = t.kubeconfig.clone();
    // Watch in the background while making changes. kubectl watches from the resourceVersion
    // of its initial list, so once it has printed the existing ConfigMap no later change can
    // be missed.
    let mut watcher = std::process::Command::new("timeout")
        .args([
            "6",
            "kubectl",
            "get",
            "cm",
            "-n",
            "shop",
            "-w",
            "--output-watch-events",
            "-o",
            "custom-columns=EVENT:.type,NAME:.object.metadata.name,COLOR:.object.data.color",
        ])
        .env("KUBECONFIG", kubeconfig)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = watcher.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut printed = Vec::new();
    tokio::task::block_in_place(|| loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("kubectl prints the existing ConfigMap");
        let listed = line.contains("web-config");
        printed.push(line);
        if listed {
            break;
        }
    });
    t.kubectl_ok(&["label", "cm", "web-config", "-n", "shop", "tier=front"]);
    t.kubectl_ok(&["annotate", "cm", "web-config", "-n", "shop", "owner=team-a"]);
    t.kubectl_ok(&[
        "patch",
        "cm",
        "web-config",
        "-n",
        "shop",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"color":"red"}}"#,
    ]);
    t.kubectl_ok(&[
        "patch",
        "cm",
        "web-config",
        "-n",
        "shop",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/data/size","value":"L"}]"#,
    ]);
    t.kubectl_ok(&["patch", "deploy", "web", "-n", "shop", "--type", "strategic", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.37"}]}}}}"#]);
    t.kubectl_ok(&["scale", "deploy", "web", "-n", "shop", "--replicas=5"]);
    let cm = json(&t.kubectl_ok(&["get", "cm", "web-config", "-n", "shop", "-o", "json"]));
    assert_eq!(cm["metadata"]["labels"]["tier"], "front");
    assert_eq!(cm["metadata"]["annotations"]["owner"], "team-a");
    assert_eq!(cm["data"], serde_json::json!({"color": "red", "size": "L"}));
    let d = json(&t.kubectl_ok(&["get", "deploy", "web", "-n", "shop", "-o", "json"]));
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][1]["image"],
        "busybox:1.37"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
    let (ok, _, err) = t.kubectl(&[
        "patch",
        "cm",
        "web-config",
        "-n",
        "shop",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/data/nope"}]"#,
    ]);
    // kube-apiserver's bare 422 for an operation that fails, as kubectl prints it.
    assert!(
        !ok && err.contains("The request is invalid: the server rejected our request"),
        "{err}"
    );

    tokio::task::block_in_place(|| {
        watcher.wait().unwrap();
        reader.join().unwrap();
    });
    printed.extend(rx.try_iter());
    let out = printed.join("\n");
    let events: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(events.first().map(|e| e[0]), Some("ADDED"), "{out}");
    assert!(events.len() >= 5, "{out}");
    assert!(
        events
            .iter()
            .any(|e| e == &["MODIFIED", "web-config", "red"]),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_explain_wait_and_invalid_custom_objects() {
    let t = support::start().await;
    t.kubectl_ok(&["apply", "-f", &testdata("crd.yaml")]);
    t.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/gadgets.example.com",
        "--timeout=20s",
    ]);
    t.kubectl_ok(&["apply", "-f", &testdata("gadget.yaml")]);
    let table = t.kubectl_ok(&["get", "gadgets"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE"]);
    assert!(table.contains("g1") && table.contains('4'), "{table}");
    assert!(t
        .kubectl_ok(&["get", "gd", "-o", "name"])
        .contains("gadget.example.com/g1"));

    let (ok, _, err) = t.kubectl(&["apply", "-f", &testdata("gadget-invalid.yaml")]);
    assert!(!ok, "an invalid custom object is rejected");
    assert!(
        err.contains("spec.size") && err.contains("should be less than or equal to 10"),
        "{err}"
    );
    let (ok, _, _) = t.kubectl(&["get", "gadget", "g2"]);
    assert!(!ok, "and not stored");

    let explain = t.kubectl_ok(&["explain", "gadget.spec.size"]);
    assert!(explain.contains("How big the gadget is."), "{explain}");
    let explain = t.kubectl_ok(&["explain", "deployment.spec.strategy"]);
    assert!(
        explain.contains("rollingUpdate") && explain.contains("The deployment strategy"),
        "{explain}"
    );

    // Strict field validation by kubectl's default.
    let (ok, _, err) = t.kubectl_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\nbogus: 1\n"),
    );
    assert!(!ok && err.contains("unknown field \"bogus\""), "{err}");

    t.kubectl_ok(&["delete", "crd", "gadgets.example.com"]);
    let (ok, _, _) = t.kubectl(&["get", "gadgets"]);
    assert!(!ok, "the resource is no longer served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_cascade_orphan_and_background() {
    let t = support::start().await;
    t.kubectl_ok(&["apply", "-f", &testdata("app.yaml")]);
    let uid = t.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        "shop",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let dependent = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: shop\n  ownerReferences:\n  - apiVersion: apps/v1\n    kind: Deployment\n    name: web\n    uid: {uid}\n"
        )
    };
    t.kubectl_stdin_ok(&["apply", "-f", "-"], Some(&dependent("dep-a")));
    t.kubectl_ok(&["delete", "deploy", "web", "-n", "shop", "--cascade=orphan"]);
    let owners = t.kubectl_ok(&[
        "get",
        "cm",
        "dep-a",
        "-n",
        "shop",
        "-o",
        "jsonpath={.metadata.ownerReferences}",
    ]);
    assert!(owners.trim().is_empty(), "orphaned: {owners}");

    t.kubectl_ok(&["apply", "-f", &testdata("app.yaml")]);
    let uid2 = t.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        "shop",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    assert_ne!(uid, uid2);
    let dep_b = dependent("dep-b").replace(&uid, &uid2);
    t.kubectl_stdin_ok(&["apply", "-f", "-"], Some(&dep_b));
    t.kubectl_ok(&[
        "delete",
        "deploy",
        "web",
        "-n",
        "shop",
        "--cascade=background",
    ]);
    eventually("the dependent is collected", || async {
        !t.kubectl(&["get", "cm", "dep-b", "-n", "shop"]).0
    })
    .await;
    assert!(
        t.kubectl(&["get", "cm", "dep-a", "-n", "shop"]).0,
        "the orphan stays"
    );

    t.kubectl_ok(&["delete", "namespace", "shop", "--timeout=20s"]);
    let (ok, _, err) = t.kubectl(&["get", "namespace", "shop"]);
    assert!(!ok && err.contains("NotFound"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_commands_send_protobuf_and_work() {
    let t = support::start().await;
    for args in [
        vec![
            "create",
            "configmap",
            "c1",
            "--from-literal=a=b",
            "--from-literal=empty=",
        ],
        vec!["create", "secret", "generic", "s1", "--from-literal=k=v"],
        vec![
            "create",
            "deployment",
            "web",
            "--image=nginx:1.25",
            "--replicas=0",
            "--port=80",
        ],
        vec!["create", "service", "clusterip", "svc1", "--tcp=80:8080"],
        vec!["create", "job", "j1", "--image=busybox", "--", "echo", "hi"],
        vec![
            "create",
            "cronjob",
            "cj1",
            "--image=busybox",
            "--schedule=*/5 * * * *",
            "--",
            "echo",
            "hi",
        ],
        vec!["create", "ingress", "ing1", "--rule=foo.com/bar=svc1:80"],
        vec!["create", "rolebinding", "rb1", "--role=r1", "--user=alice"],
        vec!["create", "serviceaccount", "sa1"],
        vec!["create", "priorityclass", "high", "--value=1000"],
        vec!["create", "quota", "q1", "--hard=pods=10"],
        vec![
            "create",
            "pdb",
            "pdb1",
            "--selector=app=web",
            "--min-available=1",
        ],
        vec!["create", "namespace", "team"],
        vec![
            "expose",
            "deployment",
            "web",
            "--port=8080",
            "--name=web-exposed",
        ],
    ] {
        t.kubectl_ok(&args);
    }
    let get = |args: &[&str]| t.kubectl_ok(args);
    assert_eq!(
        get(&["get", "cm", "c1", "-o", "jsonpath={.data}"]),
        r#"{"a":"b","empty":""}"#
    );
    assert_eq!(
        get(&["get", "secret", "s1", "-o", "jsonpath={.data.k} {.type}"]),
        "dg== Opaque"
    );
    let d = json(&get(&["get", "deploy", "web", "-o", "json"]));
    assert_eq!(
        d["spec"]["replicas"], 0,
        "an explicit zero survives protobuf decoding"
    );
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        80
    );
    assert!(d["spec"]["template"]["metadata"]["creationTimestamp"].is_null());
    assert_eq!(
        get(&[
            "get",
            "svc",
            "svc1",
            "-o",
            "jsonpath={.spec.ports[0].targetPort}"
        ]),
        "8080"
    );
    assert_eq!(
        get(&[
            "get",
            "job",
            "j1",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].command}"
        ]),
        r#"["echo","hi"]"#
    );
    assert_eq!(
        get(&["get", "cronjob", "cj1", "-o", "jsonpath={.spec.schedule}"]),
        "*/5 * * * *"
    );
    let ing = json(&get(&["get", "ingress", "ing1", "-o", "json"]));
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"], 80,
        "inlined ingressRuleValue"
    );
    assert_eq!(
        get(&[
            "get",
            "rolebinding",
            "rb1",
            "-o",
            "jsonpath={.subjects[0].name}"
        ]),
        "alice"
    );
    assert_eq!(
        get(&["get", "priorityclass", "high", "-o", "jsonpath={.value}"]),
        "1000"
    );
    assert_eq!(
        get(&["get", "pdb", "pdb1", "-o", "jsonpath={.spec.minAvailable}"]),
        "1"
    );
    assert_eq!(
        get(&[
            "get",
            "svc",
            "web-exposed",
            "-o",
            "jsonpath={.spec.selector.app}"
        ]),
        "web"
    );
    // An invalid object sent as protobuf is still a 422 with the Kubernetes message.
    let (ok, _, err) = t.kubectl(&["create", "configmap", "Bad_Name"]);
    assert!(
        !ok && err.contains("a lowercase RFC 1123 subdomain"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_have_kubectls_usual_columns() {
    let t = support::start().await;
    t.kubectl_ok(&["apply", "-f", &testdata("kinds.yaml")]);
    // kubectl's default prune list names these core kinds; pruning works against the hub.
    let out = t.kubectl_ok(&[
        "apply",
        "--prune",
        "--all",
        "-n",
        "default",
        "-f",
        &testdata("kinds.yaml"),
    ]);
    assert!(out.contains("unchanged"), "{out}");
    let pending = t.kubectl_ok(&[
        "get",
        "pods",
        "--field-selector",
        "status.phase=Pending",
        "-o",
        "name",
    ]);
    assert_eq!(pending.trim(), "pod/solo");
    let cases: &[(&str, &[&str], &str)] = &[
        ("role", &["NAME", "CREATED", "AT"], "reader"),
        ("rolebinding", &["NAME", "ROLE", "AGE"], "Role/reader"),
        (
            "ingress",
            &["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
            "shop.example.com",
        ),
        ("networkpolicy", &["NAME", "POD-SELECTOR", "AGE"], "app=web"),
        (
            "hpa",
            &[
                "NAME",
                "REFERENCE",
                "TARGETS",
                "MINPODS",
                "MAXPODS",
                "REPLICAS",
                "AGE",
            ],
            "Deployment/web",
        ),
        (
            "pdb",
            &[
                "NAME",
                "MIN",
                "AVAILABLE",
                "MAX",
                "UNAVAILABLE",
                "ALLOWED",
                "DISRUPTIONS",
                "AGE",
            ],
            "N/A",
        ),
        ("lease", &["NAME", "HOLDER", "AGE"], "hub-0"),
        (
            "pvc",
            &[
                "NAME",
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS",
                "MODES",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "AGE",
            ],
            "Pending",
        ),
        (
            "priorityclass",
            &["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"],
            "1000",
        ),
        (
            "storageclass",
            &[
                "NAME",
                "PROVISIONER",
                "RECLAIMPOLICY",
                "VOLUMEBINDINGMODE",
                "ALLOWVOLUMEEXPANSION",
                "AGE",
            ],
            "example.com/fast",
        ),
        (
            "pods",
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            "Pending",
        ),
        (
            "rc",
            &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            "legacy",
        ),
        ("endpoints", &["NAME", "ENDPOINTS", "AGE"], "10.0.0.1:443"),
        (
            "pv",
            &[
                "NAME",
                "CAPACITY",
                "ACCESS",
                "MODES",
                "RECLAIM",
                "POLICY",
                "STATUS",
                "CLAIM",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "REASON",
                "AGE",
            ],
            "RWO",
        ),
    ];
    for (kind, header, cell) in cases {
        let out = t.kubectl_ok(&["get", kind]);
        let got: Vec<&str> = out
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        assert_eq!(&got, header, "{kind}:\n{out}");
        assert!(out.contains(cell), "{kind}:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_with_kubectl() {
    let t = support::start().await;
    let managers = |t: &support::TestServer| -> Vec<(String, String)> {
        let d = json(&t.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "shop",
            "-o",
            "json",
            "--show-managed-fields",
        ]));
        d["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["manager"].as_str().unwrap().to_string(),
                    e["operation"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // Created with client-side apply, then migrated to server-side apply by kubectl.
    t.kubectl_ok(&["apply", "-f", &testdata("app.yaml")]);
    assert_eq!(
        managers(&t),
        [(
            "kubectl-client-side-apply".to_string(),
            "Update".to_string()
        )]
    );
    let out = t.kubectl_ok(&["apply", "--server-side", "-f", &testdata("app-v2.yaml")]);
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let m = managers(&t);
    assert!(m.contains(&("kubectl".into(), "Apply".into())), "{m:?}");
    assert!(
        !m.iter().any(|(n, _)| n == "kubectl-client-side-apply"),
        "ownership moved to kubectl: {m:?}"
    );
    // The removed sidecar and env var are gone; new fields are in (merge by keys).
    let d = json(&t.kubectl_ok(&["get", "deploy", "web", "-n", "shop", "-o", "json"]));
    let cs = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 1);
    let env: Vec<&str> = cs[0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["KEEP", "NEW"]);
    assert_eq!(d["spec"]["replicas"], 3);

    // A second manager conflicts on replicas, then forces.
    let (ok, _, err) = t.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=scaler",
        "-f",
        &testdata("scaler.yaml"),
    ]);
    assert!(
        !ok && err
            .contains("Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"),
        "{err}"
    );
    t.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=scaler",
        "--force-conflicts",
        "-f",
        &testdata("scaler.yaml"),
    ]);
    assert_eq!(
        t.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "7"
    );
    assert!(managers(&t).contains(&("scaler".into(), "Apply".into())));
    let yaml = t.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "-n",
        "shop",
        "-o",
        "yaml",
        "--show-managed-fields",
    ]);
    assert!(
        yaml.contains("manager: scaler")
            && yaml.contains("fieldsType: FieldsV1")
            && yaml.contains("f:replicas: {}"),
        "{yaml}"
    );
    // Without --show-managed-fields kubectl hides them.
    assert!(!t
        .kubectl_ok(&["get", "deploy", "web", "-n", "shop", "-o", "yaml"])
        .contains("managedFields"));

    // Back to client-side apply.
    let out = t.kubectl_ok(&["apply", "-f", &testdata("app.yaml")]);
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let d = json(&t.kubectl_ok(&["get", "deploy", "web", "-n", "shop", "-o", "json"]));
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
    assert!(managers(&t).contains(&("kubectl-client-side-apply".into(), "Update".into())));
}
