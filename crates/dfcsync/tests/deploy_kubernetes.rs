//! `deploy/kubernetes/*.yaml`: every manifest parses; the containers run real dfcsync
//! commands with variables dfcsync reads and accepts; the pods use the AKS workload identity
//! ServiceAccount; the Deployment's probes and port are those `dfcsync run` serves; the
//! namespace is Pod Security `restricted`, every container limited and pinned by digest; the
//! Lease has its Role and token; the NetworkPolicy lets out DNS and HTTPS only.

mod deploy_support;

use std::collections::BTreeMap;

use deploy_support::{BINARY_PATH, check_env, check_schedules, cli, flag_value, repo};
use serde::Deserialize;
use serde_json::Value;

/// Every document of every manifest, as JSON values, with the file it came from.
fn manifests() -> Vec<(String, Value)> {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        for d in serde_norway::Deserializer::from_str(&text) {
            let v = Value::deserialize(d).unwrap_or_else(|e| panic!("{name}: {e}"));
            if v.is_null() {
                continue;
            }
            for key in ["apiVersion", "kind", "metadata"] {
                assert!(v.get(key).is_some(), "{name}: a document without {key}");
            }
            docs.push((name.clone(), v));
        }
    }
    docs
}

fn find<'a>(docs: &'a [(String, Value)], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .map(|(_, v)| v)
        .find(|v| v["kind"] == kind && v["metadata"]["name"] == name)
}

/// The pod template of a workload.
fn pod_spec(v: &Value) -> &Value {
    match v["kind"].as_str().unwrap() {
        "CronJob" => &v["spec"]["jobTemplate"]["spec"]["template"],
        "Deployment" | "Job" => &v["spec"]["template"],
        k => panic!("not a workload: {k}"),
    }
}

/// The environment of a container: `env` values and the `envFrom` ConfigMaps' data.
fn container_env(docs: &[(String, Value)], ns: &str, c: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let name = from["configMapRef"]["name"]
            .as_str()
            .expect("envFrom a configMapRef");
        let cm = find(docs, "ConfigMap", name).unwrap_or_else(|| {
            panic!("envFrom names ConfigMap {name}, which is not in the manifests")
        });
        assert_eq!(cm["metadata"]["namespace"], ns);
        for (k, v) in cm["data"].as_object().unwrap() {
            out.insert(
                k.clone(),
                v.as_str().expect("ConfigMap data are strings").to_owned(),
            );
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        out.insert(
            e["name"].as_str().unwrap().to_owned(),
            e["value"]
                .as_str()
                .expect("env values are strings")
                .to_owned(),
        );
    }
    out
}

#[test]
fn workloads_run_real_commands_with_the_workload_identity() {
    let docs = manifests();
    let cli = cli();
    let mut commands = BTreeMap::new();
    for (file, w) in docs
        .iter()
        .filter(|(_, v)| matches!(v["kind"].as_str(), Some("CronJob" | "Deployment" | "Job")))
    {
        let ns = w["metadata"]["namespace"].as_str().unwrap();
        assert!(
            find(&docs, "Namespace", ns).is_some(),
            "{file}: namespace {ns}"
        );
        let pod = pod_spec(w);
        assert_eq!(
            pod["metadata"]["labels"]["azure.workload.identity/use"], "true",
            "{file}: the workload identity webhook acts only on labelled pods"
        );
        let spec = &pod["spec"];
        let sa_name = spec["serviceAccountName"]
            .as_str()
            .expect("serviceAccountName");
        let sa = find(&docs, "ServiceAccount", sa_name)
            .unwrap_or_else(|| panic!("{file}: ServiceAccount {sa_name} is not in the manifests"));
        assert_eq!(sa["metadata"]["namespace"], ns);
        assert!(
            sa["metadata"]["annotations"]["azure.workload.identity/client-id"].is_string(),
            "{file}: the ServiceAccount names the identity's client id"
        );
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{file}");
        let containers = spec["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1, "{file}");
        let c = &containers[0];
        assert_eq!(c["command"], serde_json::json!([BINARY_PATH]), "{file}");
        assert_eq!(
            c["securityContext"]["allowPrivilegeEscalation"], false,
            "{file}"
        );
        let args: Vec<String> = serde_json::from_value(c["args"].clone()).unwrap();
        let command = cli
            .check_args(&args)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let env = container_env(&docs, ns, c);
        let config = check_env(&env).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            config.file.auth.method.as_deref(),
            Some("workload_identity"),
            "{file}"
        );
        let key = (
            w["kind"].as_str().unwrap().to_owned(),
            w["metadata"]["name"].as_str().unwrap().to_owned(),
        );
        assert!(commands.insert(key, command).is_none(), "{file}: twice");
    }
    let commands: Vec<(&str, &str, &str)> = commands
        .iter()
        .map(|((kind, name), command)| (kind.as_str(), name.as_str(), command.as_str()))
        .collect();
    assert_eq!(
        commands,
        [
            ("CronJob", "dfcsync", "sync"),
            ("CronJob", "dfcsync-full", "sync"),
            ("Deployment", "dfcsync", "run"),
            ("Job", "dfcsync-doctor", "doctor"),
        ]
    );
}

#[test]
fn a_change_read_every_5_minutes_and_a_full_sync_hourly_in_the_same_pod() {
    let docs = manifests();
    let frequent = find(&docs, "CronJob", "dfcsync").expect("the change-read CronJob");
    let full = find(&docs, "CronJob", "dfcsync-full").expect("the full-sync CronJob");
    let args = |cron: &Value| -> Vec<String> {
        serde_json::from_value(pod_spec(cron)["spec"]["containers"][0]["args"].clone()).unwrap()
    };
    let window = args(frequent);
    let window = flag_value(&window, "--changed-within").expect("the change read");
    assert_eq!(window, "15m");
    assert_eq!(
        flag_value(&args(full), "--changed-within"),
        None,
        "a full read"
    );
    let schedule = |cron: &Value| cron["spec"]["schedule"].as_str().unwrap().to_owned();
    assert_eq!(schedule(frequent), "*/5 * * * *");
    assert_eq!(schedule(full), "17 * * * *");
    check_schedules(&schedule(frequent), window, &schedule(full)).unwrap();
    for cron in [frequent, full] {
        assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    }
    // The same pod (security, ServiceAccount, ConfigMap, image, limits) and the same job
    // settings: only the name, the schedule and the arguments differ.
    let rest = |cron: &Value| {
        let mut c = cron.clone();
        c["metadata"].as_object_mut().unwrap().remove("name");
        c["spec"].as_object_mut().unwrap().remove("schedule");
        c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("args");
        c
    };
    assert_eq!(rest(frequent), rest(full));
}

#[test]
fn the_deployment_writes_out_the_change_feed_defaults() {
    let docs = manifests();
    let d = find(&docs, "Deployment", "dfcsync").expect("the Deployment");
    let ns = d["metadata"]["namespace"].as_str().unwrap();
    let mut env = container_env(&docs, ns, &pod_spec(d)["spec"]["containers"][0]);
    let written = check_env(&env).unwrap().sync;
    for var in ["DFCSYNC_RESYNC", "DFCSYNC_FEED_OVERLAP"] {
        assert!(env.remove(var).is_some(), "{var} is not documented");
    }
    let defaults = check_env(&env).unwrap().sync;
    assert_eq!(written.resync, defaults.resync);
    assert_eq!(written.feed_overlap, defaults.feed_overlap);
    assert_eq!(written.resync, std::time::Duration::from_secs(3600));
    assert_eq!(written.feed_overlap, chrono::TimeDelta::minutes(10));
}

#[test]
fn the_deployment_probes_what_dfcsync_run_serves() {
    let docs = manifests();
    let d = find(&docs, "Deployment", "dfcsync").expect("the Deployment");
    let c = &pod_spec(d)["spec"]["containers"][0];
    let ns = d["metadata"]["namespace"].as_str().unwrap();
    let env = container_env(&docs, ns, c);
    let config = check_env(&env).unwrap();
    // dfcsync listens where the probes and the Service look.
    let listen = config.sync.listen;
    assert!(
        listen.ip().is_unspecified(),
        "{listen}: not reachable from the kubelet"
    );
    let port = &c["ports"][0];
    assert_eq!(port["containerPort"], listen.port());
    let port_name = port["name"].as_str().unwrap();
    let live = &c["livenessProbe"]["httpGet"];
    let ready = &c["readinessProbe"]["httpGet"];
    for p in [live, ready] {
        assert_eq!(p["port"], port_name);
    }
    let svc = docs
        .iter()
        .map(|(_, v)| v)
        .find(|v| v["kind"] == "Service")
        .expect("a Service for the metrics");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], port_name);
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(
            &pod_spec(d)["metadata"]["labels"][k],
            v,
            "the Service selects the pods"
        );
    }
    let annotations = &pod_spec(d)["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], listen.port().to_string());

    // Serve the real endpoints and ask them what the probes ask.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let shared = std::sync::Arc::new(dfcsync::daemon::Shared::new(config.sync.interval));
    let (listener, addr) = rt
        .block_on(dfcsync::daemon::bind("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    rt.spawn(dfcsync::daemon::serve(listener, shared));
    let get = |path: &str| -> u16 {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        buf.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(get(live["path"].as_str().unwrap()), 200, "liveness");
    // Not ready before a cycle has succeeded: 503, not 404.
    assert_eq!(
        get(ready["path"].as_str().unwrap()),
        503,
        "readiness before the first cycle"
    );
    assert_eq!(
        get(annotations["prometheus.io/path"].as_str().unwrap()),
        200,
        "metrics"
    );
    assert_eq!(get("/nothing"), 404);
}

/// Every workload's pod spec.
fn workloads(docs: &[(String, Value)]) -> Vec<(&str, &Value)> {
    docs.iter()
        .filter(|(_, v)| matches!(v["kind"].as_str(), Some("CronJob" | "Deployment" | "Job")))
        .map(|(f, v)| (f.as_str(), v))
        .collect()
}

#[test]
fn the_namespace_is_restricted_and_every_container_is_limited_and_pinned() {
    let docs = manifests();
    let ns = find(&docs, "Namespace", "dfcsync").expect("the namespace");
    for mode in ["enforce", "audit", "warn"] {
        assert_eq!(
            ns["metadata"]["labels"][format!("pod-security.kubernetes.io/{mode}")],
            "restricted",
            "{mode}"
        );
    }
    let mut images = std::collections::BTreeSet::new();
    for (file, w) in workloads(&docs) {
        let spec = &pod_spec(w)["spec"];
        // What "restricted" requires of every pod (docs/azure-services.md §5.5).
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{file}");
        assert_eq!(
            spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{file}"
        );
        assert_eq!(spec["automountServiceAccountToken"], false, "{file}");
        for c in spec["containers"].as_array().unwrap() {
            let sc = &c["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{file}");
            assert_eq!(
                sc["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{file}"
            );
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{file}");
            for r in ["cpu", "memory"] {
                assert!(
                    c["resources"]["limits"][r].is_string(),
                    "{file}: no {r} limit"
                );
            }
            let image = c["image"].as_str().unwrap();
            let (repo, digest) = image
                .split_once("@sha256:")
                .unwrap_or_else(|| panic!("{file}: {image} is not pinned by digest"));
            assert!(
                digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
                "{file}: {image}"
            );
            images.insert(repo.to_owned());
        }
    }
    // One image everywhere, so the documented sed command replaces every one.
    assert_eq!(images.len(), 1, "{images:?}");
    let doc = deploy_support::read("docs/deploy.md");
    let repo = images.into_iter().next().unwrap();
    assert!(
        doc.contains(&format!("s|{repo}@sha256:[0-9a-f]*|")),
        "docs/deploy.md's command does not match the manifests' image {repo}"
    );
}

#[test]
fn the_lease_is_a_kubernetes_lease_the_pods_may_get_create_and_update() {
    let docs = manifests();
    let role = find(&docs, "Role", "dfcsync-lease").expect("the Role");
    assert_eq!(role["metadata"]["namespace"], "dfcsync");
    assert_eq!(
        role["rules"],
        serde_json::json!([{
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"]
        }]),
        "leases only, and only these verbs"
    );
    let binding = find(&docs, "RoleBinding", "dfcsync-lease").expect("the RoleBinding");
    assert_eq!(binding["roleRef"]["name"], "dfcsync-lease");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    for (file, w) in workloads(&docs) {
        let pod = pod_spec(w);
        let spec = &pod["spec"];
        let sa = spec["serviceAccountName"].as_str().unwrap();
        assert!(
            binding["subjects"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["kind"] == "ServiceAccount" && s["name"] == sa),
            "{file}: its ServiceAccount is not bound to the lease Role"
        );
        let c = &spec["containers"][0];
        let ns = w["metadata"]["namespace"].as_str().unwrap();
        let config = check_env(&container_env(&docs, ns, c)).unwrap();
        assert!(
            matches!(
                config.lease,
                dfcsync::config::LeaseSettings::Kubernetes { .. }
            ),
            "{file}: {:?}",
            config.lease
        );
        // The service account token where in-cluster clients read it, from a projected
        // volume with the token, the cluster's CA and the namespace.
        let mount = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount")
            .unwrap_or_else(|| panic!("{file}: no service account token"));
        assert_eq!(mount["readOnly"], true);
        let vol = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        let sources = vol["projected"]["sources"].as_array().unwrap();
        assert_eq!(sources[0]["serviceAccountToken"]["path"], "token");
        assert_eq!(sources[1]["configMap"]["items"][0]["path"], "ca.crt");
        assert_eq!(sources[2]["downwardAPI"]["items"][0]["path"], "namespace");
    }
    // Two replicas: the lease makes one of them stand by.
    let d = find(&docs, "Deployment", "dfcsync").unwrap();
    assert_eq!(d["spec"]["replicas"], 2);
}

#[test]
fn the_network_policy_allows_dns_and_https_out_and_the_metrics_port_in() {
    let docs = manifests();
    let np = find(&docs, "NetworkPolicy", "dfcsync").expect("the NetworkPolicy");
    let spec = &np["spec"];
    assert_eq!(
        spec["podSelector"],
        serde_json::json!({}),
        "every pod of the namespace"
    );
    assert_eq!(
        spec["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    let ports = |rules: &Value| -> Vec<(String, u64)> {
        rules
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["ports"].as_array().unwrap().clone())
            .map(|p| {
                (
                    p["protocol"].as_str().unwrap().to_owned(),
                    p["port"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        ports(&spec["egress"]),
        [
            ("UDP".to_owned(), 53),
            ("TCP".to_owned(), 53),
            ("TCP".to_owned(), 443)
        ]
    );
    // DNS only to the cluster's DNS.
    assert_eq!(
        spec["egress"][0]["to"][0]["podSelector"]["matchLabels"]["k8s-app"],
        "kube-dns"
    );
    // In: the port dfcsync run serves its probes and metrics on.
    let d = find(&docs, "Deployment", "dfcsync").unwrap();
    let c = &pod_spec(d)["spec"]["containers"][0];
    let listen = check_env(&container_env(&docs, "dfcsync", c))
        .unwrap()
        .sync
        .listen;
    assert_eq!(
        ports(&spec["ingress"]),
        [("TCP".to_owned(), u64::from(listen.port()))]
    );
}
