//! `dfcsync run` as a process against the emulator: it syncs every interval, serves
//! /healthz, /readyz and /metrics, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEMO: &str = include_str!("../demo/scenario.json");

async fn get(url: &str) -> (u16, String) {
    // Plain HTTP on loopback: a bare HTTP/1.1 request is enough.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let u = url.trim_start_matches("http://");
    let (host, path) = u.split_once('/').unwrap();
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(
        format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_syncs_serves_health_and_metrics_and_stops_on_sigterm() {
    let scenario = emulator::Scenario::from_json_str(DEMO).unwrap();
    let emu = emulator::Emulator::start(scenario, emulator::StartOptions::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dfcsync.toml");
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    std::fs::write(
        &config,
        format!(
            "{}\n[sync]\ninterval = \"1s\"\njitter = \"0s\"\nlisten = \"{listen}\"\n",
            emu.config_toml()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dfcsync"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(&config)
        .env_remove("DFCSYNC_CONFIG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    // Ready once a cycle has reached the workspace.
    let base = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::spawn({
                let u = format!("{base}/readyz");
                async move { get(&u).await.0 }
            }),
        )
        .await
            && s == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    let (status, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("dfcsync_cycles_total{result=\"success\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dfcsync_actions_total{workspace=\"00000000-0000-0000-0000-000000000001/rg-sentinel/law-sentinel\",kind=\"close\",result=\"applied\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dfcsync_held_incidents{workspace=\"00000000-0000-0000-0000-000000000001/rg-sentinel/law-sentinel\",reason=\"missing_alert\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dfcsync_azure_requests_total{service=\"arm\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dfcsync_last_success_timestamp_seconds"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dfcsync_workspace_last_success_timestamp_seconds{workspace=\"00000000-0000-0000-0000-000000000001/rg-sentinel/law-sentinel\"}"),
        "{metrics}"
    );
    // The work is done: the incidents are as one sync leaves them.
    let closed = emu.state()["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "Closed")
        .count();
    assert_eq!(closed, 5, "4 closed by dfcsync and 1 by the analyst");
    // SIGTERM: it stops, cleanly.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
    let logs = lines.join().unwrap();
    assert!(
        logs.iter().all(|l| l.starts_with('{')),
        "JSON logs: {logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("\"action\":\"close\"") && l.contains("\"incident\":")),
        "{logs:?}"
    );
    assert!(logs.iter().any(|l| l.contains("stopped")), "{logs:?}");
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("demo-secret-not-for-production")),
        "no secret in the logs"
    );
}

/// The probes' meaning, through HTTP: `/healthz` fails when the loop shows no sign of life
/// for 3 × interval (plus the grace, none here): a hung cycle; `/readyz` is 200 only while the
/// loop is alive and its last cycle reached a workspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probes_mean_alive_and_reached() {
    use dfcsync::daemon::{Shared, bind, serve};
    use dfcsync::events::{Event, Observer};
    use std::sync::Arc;
    let interval = Duration::from_millis(200);
    let shared = Arc::new(Shared::with_grace(interval, Duration::ZERO));
    let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    tokio::spawn(serve(listener, shared.clone()));
    let probe = |path: &'static str| {
        let url = format!("http://{addr}{path}");
        async move { get(&url).await.0 }
    };
    // Just started: alive, not ready (no cycle has finished).
    assert_eq!(probe("/healthz").await, 200);
    assert_eq!(probe("/readyz").await, 503);
    let report = |reached: bool| dfcsync::cycle::CycleReport {
        started: chrono::Utc::now(),
        duration: Duration::from_millis(5),
        mode: dfcsync::cycle::Mode::Sync,
        workspaces: vec![dfcsync::cycle::WorkspaceReport {
            workspace: "s/rg/ws".into(),
            plan: None,
            act: None,
            error: (!reached).then(|| "querying the workspace: 403".to_owned()),
            warnings: Vec::new(),
            incidents_seen: 0,
        }],
        requests: Vec::new(),
        retries: 0,
        throttle_waits: 0,
        throttle_wait: Duration::ZERO,
        reads: Default::default(),
        whole_reads: 1,
        change_reads: 0,
        stopped: false,
    };
    let mut reached = report(true);
    reached.workspaces[0].plan = Some(dfcsync::decide::decide(
        &Default::default(),
        &Default::default(),
        chrono::Utc::now(),
    ));
    shared.on(&Event::CycleDone { report: &reached });
    assert_eq!(probe("/readyz").await, 200, "a cycle reached the workspace");
    // A cycle that reached no workspace: alive, not ready.
    shared.on(&Event::CycleDone {
        report: &report(false),
    });
    assert_eq!(probe("/healthz").await, 200);
    assert_eq!(probe("/readyz").await, 503);
    shared.on(&Event::CycleDone { report: &reached });
    assert_eq!(probe("/readyz").await, 200);
    // Then the loop hangs: no event for more than 3 intervals.
    tokio::time::sleep(interval * 4).await;
    assert_eq!(probe("/healthz").await, 503, "a hung loop fails liveness");
    assert_eq!(probe("/readyz").await, 503);
    // Any step of a cycle is a sign of life again.
    let err = dfcsync::azure::AzureError::Config("x".into());
    shared.on(&Event::ReadFailed {
        targets: &["s/rg/ws"],
        what: "querying the workspace",
        error: &err,
    });
    assert_eq!(probe("/healthz").await, 200);
}
