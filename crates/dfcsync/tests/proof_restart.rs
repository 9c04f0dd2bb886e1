//! Kill and restart: the real binary (`dfcsync sync`) is SIGKILLed at random points of its
//! run, again and again, then run to the end. The result must equal an uninterrupted run's
//! (status, classification, marks), with no duplicate comment (comment ids are UUIDv5 of
//! incident, action and fingerprint, so a repeated write lands on the same comment).
//!
//! `RESTART_KILLS=20 RESTART_INCIDENTS=600 cargo test -p dfcsync --release --test proof_restart -- --nocapture`
//! runs a longer version.

mod proof_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use dfcsync::config::Config;
use proof_support::*;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn puts(ctl: &reqwest::Client, emu: &emulator::EmulatorHandle) -> usize {
    request_log(ctl, emu)
        .await
        .iter()
        .filter(|e| e["method"] == "PUT" && e["status"].as_u64().is_some_and(|s| s < 300))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_converges() {
    killed_runs(false).await;
}

/// The killed runs alternate between `dfcsync run` (a whole read, then the change feed every
/// second) and `dfcsync sync --changed-within 1h` (the change feed alone, which sees only the
/// incidents the killed runs touched: their half-done writes must be finished from it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_with_the_change_feed_converges() {
    killed_runs(true).await;
}

/// With a Blob lease: a killed run leaves its lease to expire (the emulator's clock is moved on
/// before the next run, so that it need not wait), and every write passes the fence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_with_a_lease_converges() {
    killed_runs_with(false, true).await;
}

async fn killed_runs(feed: bool) {
    killed_runs_with(feed, false).await;
}

async fn killed_runs_with(feed: bool, lease: bool) {
    let n: usize = env_or("RESTART_INCIDENTS", 144);
    let kills: usize = env_or("RESTART_KILLS", 6);
    let seed: u64 = env_or("RESTART_SEED", if feed { 5 } else { 3 });
    let (mut s, kinds) = scenario(n, "0s", None);
    if lease {
        s["storage"] =
            serde_json::json!([{"account": "stdfcsync", "containers": ["dfcsync-leases"]}]);
        for p in s["principals"].as_array_mut().unwrap() {
            if p["name"] == "dfcsync" {
                p["roles"].as_array_mut().unwrap().push(serde_json::json!({
                    "role": "Storage Blob Data Contributor",
                    "scope": format!("/subscriptions/{SUB}/resourceGroups/rg-sentinel/providers/Microsoft.Storage/storageAccounts/stdfcsync")
                }));
            }
        }
    }

    // The uninterrupted run.
    let clean = {
        let emu = start(&s).await;
        let config = Config::parse(&config_text(&emu, None, ""), "clean.toml").unwrap();
        let conn = connect(&config, fast()).await;
        converge(&conn, &config, 4, None).await;
        views(&emu.state())
    };
    assert_expected(&clean, &kinds);

    // The killed runs: one write at a time, so that the run lasts and kills land inside it.
    let emu = start(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dfcsync.toml");
    let mut extra =
        "\n[sync]\nconcurrency = 1\ninterval = \"1s\"\njitter = \"0s\"\nlisten = \"127.0.0.1:0\"\n"
            .to_owned();
    if lease {
        extra.push_str(&format!(
            "\n[lease]\nkind = \"azure_blob\"\naccount_url = \"{}/storage/stdfcsync\"\nduration = \"15s\"\n",
            emu.base_url()
        ));
    }
    std::fs::write(&path, config_text(&emu, None, &extra)).unwrap();
    let config = Config::parse(&std::fs::read_to_string(&path).unwrap(), "killed.toml").unwrap();
    let conn = connect(&config, fast()).await;
    let ctl = control(&conn, &emu);
    // Every write takes 10 ms more, so that a run's writes outlast several polls of the
    // request log below, however loaded the machine (without it, a run could write all its
    // incidents between two polls, and no kill land inside it).
    post(
        &ctl,
        &emu,
        "/_emulator/faults",
        serde_json::json!({"method": "PUT", "delay": "10ms"}),
    )
    .await;
    let mut rng = fastrand::Rng::with_seed(seed);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_dfcsync"))
            .args(args)
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dfcsync")
    };
    let mut mid_run = 0;
    let mut landed = Vec::new();
    for k in 0..kills {
        if lease {
            // The killed run before left its lease held: let it run out on the service.
            post(
                &ctl,
                &emu,
                "/_emulator/clock",
                serde_json::json!({"advance": "20s"}),
            )
            .await;
        }
        let before = puts(&ctl, &emu).await;
        let mut child = match (feed, k % 2) {
            (false, _) => run(&["sync"]),
            (true, 0) => run(&["run"]),
            (true, _) => run(&["sync", "--changed-within", "1h"]),
        };
        // Kill at a random point: after a random number of writes have landed (so the
        // point is inside the act step whatever the machine's speed), or at once (0).
        let target = rng.usize(0..60);
        // `dfcsync run` never ends by itself: it is also killed once its writes stop for a
        // few seconds (it has reached the change feed's quiet cycles).
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let (mut seen, mut progress) = (before, std::time::Instant::now());
        loop {
            let now_puts = puts(&ctl, &emu).await;
            if now_puts != seen {
                (seen, progress) = (now_puts, std::time::Instant::now());
            }
            if now_puts >= before + target
                || child.try_wait().unwrap().is_some()
                || std::time::Instant::now() > deadline
                || progress.elapsed() > Duration::from_secs(4)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if child.try_wait().unwrap().is_none() {
            mid_run += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        landed.push(puts(&ctl, &emu).await - before);
    }
    eprintln!(
        "restart: {n} incidents, {kills} kills ({mid_run} mid-run), writes per killed run {landed:?}"
    );
    assert!(mid_run > 0, "no kill landed while dfcsync ran");
    assert!(
        landed.iter().any(|w| *w > 0),
        "no killed run wrote anything"
    );

    if feed {
        // The change feed alone first: it must finish what the killed runs left half done.
        let status = run(&["sync", "--changed-within", "1h"]).wait().unwrap();
        assert!(status.success(), "the change read: {status}");
    }
    let status = run(&["sync"]).wait().unwrap();
    assert!(status.success(), "the last, uninterrupted run: {status}");
    // It converged: one more cycle plans nothing.
    let reports = converge(&conn, &config, 1, None).await;
    assert_eq!(reports.len(), 1);

    let state = emu.state();
    assert_no_duplicate_comments(&state);
    assert_closed_alerts_finished(&state);
    let after = views(&state);
    // A kill between the close's PUT and its audit comment used to lose the comment for good;
    // the rerun now repairs it (`Plan::repairs`). RESTART_LENIENT=1 tolerates the old bug.
    let strict = std::env::var("RESTART_LENIENT").is_err();
    let mut lost = Vec::new();
    let diffs: Vec<String> = clean
        .iter()
        .filter(|(k, v)| {
            let f = &after[k];
            if f == *v {
                return false;
            }
            let mut repaired = f.clone();
            if let Some(m) = &v.close_mark {
                repaired.comment_marks.insert(m.clone());
            }
            if &repaired == *v && !strict {
                lost.push(**k);
                return false;
            }
            true
        })
        .map(|(k, v)| format!("#{k}: uninterrupted {v:?}\n      killed {:?}", after[k]))
        .collect();
    if !lost.is_empty() {
        eprintln!("restart: tolerated (lenient): close audit comment lost on incidents {lost:?}");
    }
    assert!(diffs.is_empty(), "the runs differ:\n{}", diffs.join("\n"));
}
