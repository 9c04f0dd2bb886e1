//! Chaos: the same scenario (incidents in every state the engine knows) run twice on fresh
//! emulators, once fault-free and once under random faults (5xx, 429 with Retry-After, 409
//! conflicts from concurrent edits, latency, dropped connections, token expiry, ingestion
//! delay) over several cycles, both to convergence. The final states must be equal (status,
//! classification, marks), no incident may carry two comments with the same mark, and no
//! incident may be closed while one of its alerts is open (in any plan, and at the end).
//!
//! The short version runs with `cargo test`; the long one (1,000 incidents, more cycles):
//!
//! ```sh
//! cargo test -p dfcsync --release --test chaos -- --ignored --nocapture
//! # CHAOS_INCIDENTS=1000 CHAOS_CYCLES=8 CHAOS_SEED=7 CHAOS_FEED=true to vary it
//! ```
//!
//! `chaos_short_with_the_change_feed` runs every cycle of one `Syncer` (as `dfcsync run`):
//! a whole read, then change reads whose watermark a faulty read never moves.

mod proof_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dfcsync::config::Config;
use dfcsync::cycle::{CycleReport, Mode, ReadMode, Syncer, run_cycle};
use proof_support::*;
use serde_json::{Value, json};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The fault-free run: its final state's views, and the run's reports.
async fn fault_free(n: usize) -> (BTreeMap<i64, View>, Value, Vec<CycleReport>) {
    let (s, _) = scenario(n, "0s", None);
    let emu = start(&s).await;
    let config = Config::parse(&config_text(&emu, None, ""), "chaos.toml").unwrap();
    let conn = connect(&config, fast()).await;
    let truth = emu.state();
    let reports = converge(&conn, &config, 4, None).await;
    let state = emu.state();
    assert_no_close_of_open(&reports, &alert_status(&truth), &incident_alerts(&truth));
    (views(&state), state, reports)
}

#[derive(Debug, Default)]
struct FaultStats {
    cycles_with_faults: usize,
    cycles_to_converge: usize,
    by_status: BTreeMap<u16, u64>,
    cut: u64,
    retries: u64,
    conflicts: u32,
    failed_actions: usize,
    change_reads: u32,
}

/// The run under faults: `cycles` cycles with faults on, then faults off and cycles until
/// one plans nothing.
/// With `feed`, every cycle is one of a single [`Syncer`]: a whole read first, then the
/// change feed (its watermark held back by every faulty read), so a fault that loses a cycle
/// must be healed by the next change read.
async fn with_faults(
    n: usize,
    cycles: usize,
    seed: u64,
    (feed, lease): (bool, bool),
) -> (BTreeMap<i64, View>, Value, FaultStats) {
    let (mut s, _) = scenario(n, "2m", None);
    if lease {
        with_lease_storage(&mut s);
    }
    let emu = start(&s).await;
    let proxy = Proxy::start(emu.base_url(), 0.2, seed).await;
    // With a lease, its Blob calls go through the faulty proxy too.
    let extra = if lease {
        format!(
            "\n[lease]\nkind = \"azure_blob\"\naccount_url = \"{}/storage/stdfcsync\"\nduration = \"15s\"\n",
            proxy.url
        )
    } else {
        String::new()
    };
    let config = Config::parse(&config_text(&emu, Some(&proxy.url), &extra), "chaos.toml").unwrap();
    let conn = connect(&config, fast()).await;
    let lease = dfcsync::lease::from_config(&config, &conn.http)
        .await
        .unwrap();
    if let Some(l) = &lease {
        conn.http.set_write_gate(l.fence());
    }
    let ctl = control(&conn, &emu);
    let truth = emu.state();
    let alerts_of = incident_alerts(&truth);
    let truth = alert_status(&truth);
    let stop = Arc::new(AtomicBool::new(false));
    let mut syncer = feed.then(|| Syncer::new(&config, ReadMode::Feed));
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut stats = FaultStats::default();
    let mut reports = Vec::new();
    for c in 0..cycles {
        delete(&ctl, &emu, "/_emulator/faults").await;
        let p = |base: f64, rng: &mut fastrand::Rng| base * (0.5 + rng.f64());
        let rules = [
            json!({"path": "Microsoft.SecurityInsights", "status": 503, "probability": p(0.06, &mut rng)}),
            json!({"method": "PUT", "status": 500, "probability": p(0.04, &mut rng)}),
            json!({"path": "^/v1/workspaces/", "status": 502, "probability": p(0.25, &mut rng)}),
            json!({"status": 429, "retry_after": "1s", "probability": p(0.01, &mut rng)}),
            json!({"path": "oauth2", "status": 503, "probability": p(0.2, &mut rng)}),
            json!({"delay": "15ms", "probability": p(0.2, &mut rng)}),
        ];
        for r in rules {
            post(&ctl, &emu, "/_emulator/faults", r).await;
        }
        for _ in 0..rng.usize(3..12) {
            post(
                &ctl,
                &emu,
                "/_emulator/faults",
                json!({"conflict": "/incidents/[^/]+$"}),
            )
            .await;
        }
        // Every other cycle the clock jumps two hours: every token the tool holds has
        // expired, and the ingestion delay has passed; otherwise the tool reads rows that
        // do not show its own writes of the cycle before yet.
        let advance = if c % 2 == 1 { "2h" } else { "10s" };
        post(&ctl, &emu, "/_emulator/clock", json!({"advance": advance})).await;
        if let Some(l) = &lease {
            // Not taken under faults: this cycle's writes are fenced, and left for later.
            let _ = l.acquire().await;
        }
        let r = match syncer.as_mut() {
            Some(s) => s.cycle(&conn, &config, Mode::Sync, &stop, &|_, _| {}).await,
            None => run_cycle(&conn, &config, Mode::Sync, &stop, &|_, _| {}).await,
        };
        stats.cycles_with_faults += 1;
        stats.change_reads += r.change_reads;
        reports.push(r);
    }
    delete(&ctl, &emu, "/_emulator/faults").await;
    proxy.dropping.store(false, Ordering::Relaxed);
    if let Some(l) = &lease {
        // The clock jumps let the lease run out on the service: take it again.
        for _ in 0..40 {
            let got = l.acquire().await;
            if got.as_ref().is_ok_and(|h| h.is_none()) {
                break;
            }
            eprintln!("chaos: the lease not taken yet: {got:?}");
            post(&ctl, &emu, "/_emulator/clock", json!({"advance": "20s"})).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(l.held(), "the lease is taken once the faults stop");
    }
    let rest = converge_with(syncer.as_mut(), &conn, &config, 6, Some((&ctl, &emu, "3m"))).await;
    stats.change_reads += rest.iter().map(|r| r.change_reads).sum::<u32>();
    stats.cycles_to_converge = rest.len();
    reports.extend(rest);
    assert_no_close_of_open(&reports, &truth, &alerts_of);
    for r in &reports {
        stats.retries += r.retries;
        for w in &r.workspaces {
            if let Some(a) = &w.act {
                stats.conflicts += a.outcomes.iter().map(|o| o.conflicts).sum::<u32>();
                stats.failed_actions += a
                    .outcomes
                    .iter()
                    .filter(|o| matches!(o.result, dfcsync::act::ActionResult::Failed(_)))
                    .count();
            }
        }
    }
    for e in &request_log(&ctl, &emu).await {
        *stats
            .by_status
            .entry(e["status"].as_u64().unwrap() as u16)
            .or_default() += 1;
    }
    stats.cut = proxy.cut.load(Ordering::Relaxed);
    let state = emu.state();
    (views(&state), state, stats)
}

/// The scenario's storage account for a Blob lease, and the role to lease in it.
fn with_lease_storage(s: &mut Value) {
    s["storage"] = json!([{"account": "stdfcsync", "containers": ["dfcsync-leases"]}]);
    for p in s["principals"].as_array_mut().unwrap() {
        if p["name"] == "dfcsync" {
            p["roles"].as_array_mut().unwrap().push(json!({
                "role": "Storage Blob Data Contributor",
                "scope": format!("/subscriptions/{SUB}/resourceGroups/rg-sentinel/providers/Microsoft.Storage/storageAccounts/stdfcsync")
            }));
        }
    }
}

async fn chaos(n: usize, cycles: usize, seed: u64, feed: bool) {
    chaos_with(n, cycles, seed, (feed, false)).await;
}

async fn chaos_with(n: usize, cycles: usize, seed: u64, (feed, lease): (bool, bool)) {
    // CHAOS_LOG=dfcsync=debug shows what the tool does.
    if let Ok(filter) = std::env::var("CHAOS_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .try_init();
    }
    let t = Instant::now();
    let (_, kinds) = scenario(n, "0s", None);
    let (clean, clean_state, _) = fault_free(n).await;
    assert_expected(&clean, &kinds);
    assert_no_duplicate_comments(&clean_state);
    assert_closed_alerts_finished(&clean_state);
    let t_clean = t.elapsed();

    let (faulty, faulty_state, stats) = with_faults(n, cycles, seed, (feed, lease)).await;
    if feed {
        assert!(stats.change_reads > 0, "no change read: {stats:?}");
    }
    eprintln!(
        "chaos: {n} incidents, seed {seed}: fault-free run {:.1?}, fault run {:.1?}; {stats:?}",
        t_clean,
        t.elapsed() - t_clean
    );
    // The faults must have happened, or the test proves nothing.
    let met = |s: u16| stats.by_status.get(&s).copied().unwrap_or(0);
    assert!(met(503) + met(502) + met(500) > 0, "no 5xx met: {stats:?}");
    assert!(met(409) > 0, "no 409 met: {stats:?}");
    // An expired token is met as ARM's 401, or Log Analytics' 403 InvalidAuthenticationToken
    // (with the change feed, a quiet cycle calls only Log Analytics).
    assert!(met(401) + met(403) > 0, "no expired token met: {stats:?}");
    assert!(stats.cut > 0, "no connection dropped: {stats:?}");

    assert_no_duplicate_comments(&faulty_state);
    assert_closed_alerts_finished(&faulty_state);
    // A close whose PUT lands but whose audit comment does not (the answer is lost and the
    // retry meets 409, or the comment write fails) is repaired by a later cycle
    // (`Plan::repairs`). Before that repair existed the comment was lost for good
    // (docs/reliability.md, "Lost audit comment"); CHAOS_LENIENT=1 still tolerates it, to
    // compare.
    let strict = std::env::var("CHAOS_LENIENT").is_err();
    let lost: Vec<i64> = clean
        .iter()
        .filter(|(k, v)| faulty.get(k).is_some_and(|f| lost_audit_comment(v, f)))
        .map(|(k, _)| *k)
        .collect();
    if !lost.is_empty() {
        eprintln!("chaos: tolerated (lenient): close audit comment lost on incidents {lost:?}");
    }
    let diffs: Vec<String> = clean
        .iter()
        .filter(|(k, v)| faulty.get(k) != Some(v) && (strict || !lost.contains(k)))
        .take(10)
        .map(|(k, v)| {
            format!(
                "#{k}: fault-free {v:?}\n      with faults {:?}",
                faulty.get(k)
            )
        })
        .collect();
    assert!(
        diffs.is_empty() && clean.len() == faulty.len(),
        "the runs differ ({} incidents vs {}):\n{}",
        clean.len(),
        faulty.len(),
        diffs.join("\n")
    );
}

/// The faulty run's incident equals the fault-free one's but for the close's audit comment.
fn lost_audit_comment(clean: &View, faulty: &View) -> bool {
    let Some(close) = &clean.close_mark else {
        return false;
    };
    let mut repaired = faulty.clone();
    repaired.comment_marks.insert(close.clone());
    &repaired == clean && !faulty.comment_marks.contains(close)
}

/// The CI version: a few hundred incidents, four cycles of faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_short() {
    chaos(
        env_or("CHAOS_INCIDENTS", 144),
        env_or("CHAOS_CYCLES", 4),
        env_or("CHAOS_SEED", 1),
        false,
    )
    .await;
}

/// The CI version with the change feed on: one `Syncer` for every cycle, as `dfcsync run`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_short_with_the_change_feed() {
    chaos(
        env_or("CHAOS_INCIDENTS", 144),
        env_or("CHAOS_CYCLES", 4),
        env_or("CHAOS_SEED", 2),
        true,
    )
    .await;
}

/// With a Blob lease (its calls under the same faults): every write passes the fence, and the
/// end state is still the fault-free one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_short_with_a_lease() {
    chaos_with(
        env_or("CHAOS_INCIDENTS", 96),
        env_or("CHAOS_CYCLES", 4),
        env_or("CHAOS_SEED", 3),
        (true, true),
    )
    .await;
}

/// The long version: 1,000 incidents, eight cycles of faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: cargo test -p dfcsync --release --test chaos -- --ignored --nocapture"]
async fn chaos_long() {
    chaos(
        env_or("CHAOS_INCIDENTS", 1000),
        env_or("CHAOS_CYCLES", 8),
        env_or("CHAOS_SEED", 7),
        env_or("CHAOS_FEED", false),
    )
    .await;
}
