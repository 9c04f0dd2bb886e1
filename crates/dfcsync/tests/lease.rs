//! One writer at a time (issue 21), with `dfcsync` processes against the emulator's Blob
//! service and Kubernetes API:
//!
//! - three `dfcsync sync` started together, writes slowed: with a lease every action's
//!   comment lands once, and the end state is one run's; without one (the control) comments
//!   are posted twice;
//! - two `dfcsync run` replicas: one writes; killed (SIGKILL, no release), the other takes
//!   over within the lease's duration and one wait; every write falls in a lease period of
//!   the run that sent it (the emulator's lease history against its request log, the run told
//!   by its `User-Agent`);
//! - the lease broken in the middle of a cycle: writes stop within one renewal period, and the
//!   next holder finishes the work;
//! - the same holder and standby through a Kubernetes Lease.

mod proof_support;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use proof_support::*;
use serde_json::{Value, json};

const ACCOUNT: &str = "stdfcsync";
const CONTAINER: &str = "dfcsync-leases";

/// The proof scenario with a storage account the dfcsync principal may lease blobs in, and,
/// for `graph`, Defender XDR on (every incident also an XDR incident) and the Graph roles.
fn lease_scenario(n: usize, graph: bool) -> Value {
    let (mut s, _) = scenario(n, "0s", None);
    s["storage"] = json!([{"account": ACCOUNT, "containers": [CONTAINER]}]);
    s["kubernetes"] = json!({"namespace": "dfcsync", "token": "kube-test-token"});
    for p in s["principals"].as_array_mut().unwrap() {
        if p["name"] == "dfcsync" {
            p["roles"].as_array_mut().unwrap().push(json!({
                "role": "Storage Blob Data Contributor",
                "scope": format!("/subscriptions/{SUB}/resourceGroups/rg-sentinel/providers/Microsoft.Storage/storageAccounts/{ACCOUNT}/blobServices/default/containers/{CONTAINER}")
            }));
        }
    }
    if graph {
        on_graph(&mut s);
    }
    s
}

/// A configuration file for `dfcsync` against `emu`, with `extra` TOML.
fn config_file(
    dir: &std::path::Path,
    name: &str,
    emu: &emulator::EmulatorHandle,
    extra: &str,
) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, config_text(emu, None, extra)).unwrap();
    path
}

/// The configuration file dfcsync's processes read (`extra` TOML), and the test's client of
/// the emulator's control API.
async fn config_and_control(
    dir: &std::path::Path,
    emu: &emulator::EmulatorHandle,
    extra: &str,
) -> (std::path::PathBuf, reqwest::Client) {
    let config = config_file(dir, "dfcsync.toml", emu, extra);
    let parsed = dfcsync::config::Config::parse(&config_text(emu, None, extra), "t").unwrap();
    let conn = connect(&parsed, fast()).await;
    (config, control(&conn, emu))
}

fn blob_lease(emu: &emulator::EmulatorHandle, duration: &str) -> String {
    format!(
        "\n[lease]\nkind = \"azure_blob\"\naccount_url = \"{}/storage/{ACCOUNT}\"\ncontainer = \"{CONTAINER}\"\nduration = \"{duration}\"\n",
        emu.base_url()
    )
}

fn dfcsync(args: &[&str], config: &std::path::Path, envs: &[(&str, String)]) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dfcsync"));
    c.args(["--log-format", "json"])
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("DFCSYNC_CONFIG")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.spawn().expect("dfcsync")
}

/// Waits for `child`, returning its exit code, standard output and error.
fn finish(mut child: Child) -> (i32, String, String) {
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut out).unwrap();
    }
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err).unwrap();
    }
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), out, err)
}

/// Per incident (Sentinel or XDR, by `graph`): its status and its marks (with repeats).
fn end_state(state: &Value, graph: bool) -> BTreeMap<String, (String, Vec<String>)> {
    let (list, id, text) = if graph {
        ("xdr_incidents", "id", "comment")
    } else {
        ("incidents", "name", "message")
    };
    state[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let mut m: Vec<String> = i["comments"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| marks(c[text].as_str().unwrap_or("")))
                .collect();
            m.sort();
            (
                i[id].as_str().unwrap().to_owned(),
                (i["status"].as_str().unwrap_or("").to_owned(), m),
            )
        })
        .collect()
}

fn duplicates(end: &BTreeMap<String, (String, Vec<String>)>) -> usize {
    end.values()
        .map(|(_, m)| m.windows(2).filter(|w| w[0] == w[1]).count())
        .sum()
}

/// Slows every write of the backend by `delay`.
async fn slow_writes(
    ctl: &reqwest::Client,
    emu: &emulator::EmulatorHandle,
    graph: bool,
    delay: &str,
) {
    let rules = if graph {
        vec![
            json!({"method": "PATCH", "path": "^/v1.0/security", "delay": delay}),
            json!({"method": "POST", "path": "^/v1.0/security/incidents/.*/comments", "delay": delay}),
        ]
    } else {
        vec![json!({"method": "PUT", "path": "Microsoft.SecurityInsights", "delay": delay})]
    };
    for r in rules {
        post(ctl, emu, "/_emulator/faults", r).await;
    }
}

async fn overlapping_syncs(
    graph: bool,
    lease: bool,
) -> (
    BTreeMap<String, (String, Vec<String>)>,
    Vec<(i32, String, String)>,
) {
    let s = lease_scenario(24, graph);
    let emu = start(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let mut extra = String::new();
    if graph {
        extra.push_str("\n[sync]\nbackend = \"graph\"\n");
    }
    if lease {
        extra.push_str(&blob_lease(&emu, "15s"));
    }
    let (config, ctl) = config_and_control(dir.path(), &emu, &extra).await;
    slow_writes(&ctl, &emu, graph, "150ms").await;
    let children: Vec<Child> = (0..3)
        .map(|_| dfcsync(&["sync", "--output", "json"], &config, &[]))
        .collect();
    let outs: Vec<_> = children.into_iter().map(finish).collect();
    (end_state(&emu.state(), graph), outs)
}

/// The end state of one `dfcsync sync` alone (no fault), for comparison.
async fn one_sync(graph: bool, n: usize) -> BTreeMap<String, (String, Vec<String>)> {
    let s = lease_scenario(n, graph);
    let emu = start(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = if graph {
        "\n[sync]\nbackend = \"graph\"\n"
    } else {
        ""
    };
    let config = config_file(dir.path(), "dfcsync.toml", &emu, extra);
    let (code, _, err) = finish(dfcsync(&["sync"], &config, &[]));
    assert_eq!(code, 0, "{err}");
    end_state(&emu.state(), graph)
}

async fn three_overlapping_syncs_write_once(graph: bool) {
    let (end, outs) = overlapping_syncs(graph, true).await;
    for (code, _, err) in &outs {
        assert_eq!(*code, 0, "{err}");
    }
    let stood_by = outs
        .iter()
        .filter(|(_, out, _)| out.contains("\"held_by\""))
        .count();
    assert!(stood_by >= 1, "the others found the lease held: {outs:?}");
    assert_eq!(duplicates(&end), 0, "every comment once: {end:?}");
    assert!(
        end.values().any(|(_, m)| !m.is_empty()),
        "something was written"
    );
    // The end state is one run's (the runs that found the lease held did nothing, and the
    // next run of the schedule finishes whatever a holder left).
    assert_eq!(end, one_sync(graph, 24).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_overlapping_graph_syncs_write_each_comment_once() {
    three_overlapping_syncs_write_once(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_overlapping_sentinel_syncs_write_each_comment_once() {
    three_overlapping_syncs_write_once(false).await;
}

/// The control: without a lease, three overlapping Graph syncs post comments twice (Graph
/// has no ETag and a comment POST is not idempotent): the lease is what prevents it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_lease_overlapping_graph_syncs_write_twice() {
    let (end, outs) = overlapping_syncs(true, false).await;
    for (code, _, err) in &outs {
        assert_eq!(*code, 0, "{err}");
    }
    assert!(
        duplicates(&end) > 0,
        "no duplicate without a lease: {end:?}"
    );
}

/// A lease period: holder, start, end (`None`: still held).
type Period = (String, DateTime<Utc>, Option<DateTime<Utc>>);

/// `GET /_emulator/leases`.
async fn leases_state(ctl: &reqwest::Client, emu: &emulator::EmulatorHandle) -> Value {
    let body = ctl
        .get(format!("{}/_emulator/leases", emu.base_url()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// The emulator's lease history: per blob, its periods (holder, start, end).
async fn lease_periods(ctl: &reqwest::Client, emu: &emulator::EmulatorHandle) -> Vec<Period> {
    let r = leases_state(ctl, emu).await;
    let t = |v: &Value| v.as_str().and_then(|s| s.parse::<DateTime<Utc>>().ok());
    r["blobs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["history"].as_array().cloned().unwrap_or_default())
        .map(|p| {
            (
                p["holder"].as_str().unwrap_or("").to_owned(),
                t(&p["acquired_at"]).unwrap(),
                t(&p["ended_at"]),
            )
        })
        .collect()
}

/// The run id of a request's `User-Agent` (`dfcsync/x run/<id>`).
fn run_of(entry: &Value) -> Option<String> {
    entry["user_agent"]
        .as_str()?
        .split("run/")
        .nth(1)
        .map(|s| s.trim().to_owned())
}

fn is_write(e: &Value) -> bool {
    let m = e["method"].as_str().unwrap_or("");
    (e["service"] == "graph" || e["service"] == "arm") && matches!(m, "PATCH" | "POST" | "PUT")
}

/// Every write of the request log falls inside a lease period held by the run that sent it.
fn assert_writes_fenced(log: &[Value], periods: &[Period]) -> usize {
    let mut n = 0;
    for e in log
        .iter()
        .filter(|e| is_write(e) && e["status"].as_u64().is_some_and(|s| s < 300))
    {
        let at: DateTime<Utc> = e["time"].as_str().unwrap().parse().unwrap();
        let run = run_of(e).expect("a run id in the User-Agent");
        let ok = periods.iter().any(|(holder, from, to)| {
            holder.ends_with(&run) && *from <= at && to.is_none_or(|t| at <= t)
        });
        assert!(
            ok,
            "a write outside its run's lease period: {e} in {periods:?}"
        );
        n += 1;
    }
    n
}

/// Waits until `f` holds, polling, for at most `limit`.
async fn wait_for<F: AsyncFnMut() -> bool>(limit: Duration, mut f: F) -> Duration {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_replica_takes_over_when_the_holder_is_killed() {
    let s = lease_scenario(12, true);
    let emu = start(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[sync]\nbackend = \"graph\"\ninterval = \"1s\"\njitter = \"0s\"\n{}",
        blob_lease(&emu, "15s")
    );
    let (config, ctl) = config_and_control(dir.path(), &emu, &extra).await;
    let listen = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut a = dfcsync(&["run"], &config, &[("DFCSYNC_LISTEN", listen())]);
    // A holds the lease and syncs everything.
    wait_for(Duration::from_secs(30), async || {
        lease_periods(&ctl, &emu)
            .await
            .iter()
            .any(|p| p.2.is_none())
    })
    .await;
    let b = dfcsync(&["run"], &config, &[("DFCSYNC_LISTEN", listen())]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let holder_a = lease_periods(&ctl, &emu).await[0].0.clone();
    // Kill A: no release; the lease runs out by itself.
    a.kill().unwrap();
    let _ = a.wait();
    let killed = Instant::now();
    // New work after the kill: B must do it once it holds the lease.
    post(
        &ctl,
        &emu,
        "/_emulator/events",
        json!({"events": [{"do": "alert_status", "alert": "I0", "status": "Resolved", "by": "owner@contoso.com"}]}),
    )
    .await;
    let took = wait_for(Duration::from_secs(40), async || {
        lease_periods(&ctl, &emu)
            .await
            .iter()
            .any(|p| p.0 != holder_a && p.2.is_none())
    })
    .await;
    // Within the lease's duration (15 s) and one wait of the standby (a third of it, 5 s),
    // plus the poll.
    assert!(
        took <= Duration::from_secs(15 + 5 + 2),
        "took over {:?} after the kill ({:?} since)",
        took,
        killed.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &b.id().to_string()])
        .status();
    let (code, _, err) = finish(b);
    assert_eq!(code, 0, "{err}");
    let periods = lease_periods(&ctl, &emu).await;
    let holders: std::collections::BTreeSet<&str> = periods.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(holders.len(), 2, "{periods:?}");
    let log = request_log(&ctl, &emu).await;
    let writes = assert_writes_fenced(&log, &periods);
    assert!(writes > 0);
    assert_eq!(duplicates(&end_state(&emu.state(), true)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_broken_mid_cycle_stops_the_writes_and_the_next_holder_finishes() {
    let s = lease_scenario(30, true);
    let emu = start(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[sync]\nbackend = \"graph\"\nconcurrency = 1\n{}",
        blob_lease(&emu, "15s")
    );
    let (config, ctl) = config_and_control(dir.path(), &emu, &extra).await;
    slow_writes(&ctl, &emu, true, "200ms").await;
    let child = dfcsync(&["sync", "--output", "json"], &config, &[]);
    // Break the lease once a few writes landed.
    wait_for(Duration::from_secs(30), async || {
        request_log(&ctl, &emu)
            .await
            .iter()
            .filter(|e| is_write(e))
            .count()
            >= 3
    })
    .await;
    post(
        &ctl,
        &emu,
        "/_emulator/leases/break",
        json!({"account": ACCOUNT, "container": CONTAINER, "blob": dfcsync::lease::default_name(&dfcsync::config::Config::parse(&config_text(&emu, None, &extra), "t").unwrap())}),
    )
    .await;
    let broken_at: DateTime<Utc> = Utc::now();
    let (code, out, err) = finish(child);
    assert_eq!(code, 1, "actions left unwritten fail the run: {out}\n{err}");
    assert!(out.contains("not written"), "{out}");
    // Writes stopped within one renewal period (15 s / 6 = 2.5 s) and one write in flight.
    let log = request_log(&ctl, &emu).await;
    let late: Vec<&Value> = log
        .iter()
        .filter(|e| is_write(e))
        .filter(|e| {
            let at: DateTime<Utc> = e["time"].as_str().unwrap().parse().unwrap();
            at > broken_at + chrono::TimeDelta::milliseconds(2_500 + 400)
        })
        .collect();
    assert!(late.is_empty(), "writes long after the break: {late:?}");
    // The next holder (the next run) finishes the work, each comment once.
    let (code, _, err) = finish(dfcsync(&["sync"], &config, &[]));
    assert_eq!(code, 0, "{err}");
    let end = end_state(&emu.state(), true);
    assert_eq!(duplicates(&end), 0, "{end:?}");
    delete(&ctl, &emu, "/_emulator/faults").await;
    assert_eq!(end, one_sync(true, 30).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_lease_has_one_holder_and_a_standby() {
    let s = lease_scenario(6, true);
    let emu = start(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: emu\n  cluster:\n    server: {}\n    certificate-authority: {}\ncontexts:\n- name: emu\n  context:\n    cluster: emu\n    user: sa\n    namespace: dfcsync\ncurrent-context: emu\nusers:\n- name: sa\n  user:\n    token: kube-test-token\n",
            emu.base_url(),
            emu.endpoints().ca
        ),
    )
    .unwrap();
    let extra = format!(
        "\n[sync]\nbackend = \"graph\"\n\n[lease]\nkind = \"kubernetes\"\nduration = \"15s\"\nkubeconfig = \"{}\"\n",
        kubeconfig.display()
    );
    let config = config_file(dir.path(), "dfcsync.toml", &emu, &extra);
    let first = dfcsync(&["sync", "--output", "json"], &config, &[]);
    let second = dfcsync(&["sync", "--output", "json"], &config, &[]);
    let outs = [finish(first), finish(second)];
    for (code, _, err) in &outs {
        assert_eq!(*code, 0, "{err}");
    }
    // Both ran; the second may have found the Lease held or free (the first released it):
    // either way each comment landed once.
    assert_eq!(duplicates(&end_state(&emu.state(), true)), 0);
    let conn = connect(
        &dfcsync::config::Config::parse(&config_text(&emu, None, &extra), "t").unwrap(),
        fast(),
    )
    .await;
    let ctl = control(&conn, &emu);
    let leases = leases_state(&ctl, &emu).await;
    let k = &leases["kubernetes"][0];
    assert_eq!(k["namespace"], "dfcsync");
    assert!(
        k["history"].as_array().is_some_and(|h| !h.is_empty()),
        "{leases}"
    );
    // Held by a live process: a sync finds it taken and does nothing.
    post(
        &ctl,
        &emu,
        "/_emulator/leases/break",
        json!({"namespace": "dfcsync", "name": k["name"], "holder": "other"}),
    )
    .await;
    let (code, out, err) = finish(dfcsync(&["sync", "--output", "json"], &config, &[]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"held_by\": \"other\""), "{out}");
}
