//! Observe at scale against the emulator: a whole read split into partitions when an answer
//! would pass Log Analytics' limits, the change feed between resyncs (rows ingested late
//! included), and many workspaces read by one query. Every case ends in the state
//! semantics.md gives, checked incident by incident.

mod proof_support;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::{Value, json};

use dfcsync::config::Config;
use dfcsync::cycle::{CycleReport, Mode, ReadMode, Syncer};
use dfcsync::observe::change_feed::WholeRead;
use proof_support::*;

fn big_limits(extra: Value) -> Value {
    let mut l = out_of_the_way();
    if let (Some(l), Some(extra)) = (l.as_object_mut(), extra.as_object()) {
        l.extend(extra.clone());
    }
    l
}

/// Log Analytics queries in the request log since entry `since`: (path, status).
fn queries(log: &[Value], since: u64) -> Vec<Value> {
    log.iter()
        .filter(|e| e["service"] == "log_analytics" && e["seq"].as_u64().unwrap_or(0) > since)
        .cloned()
        .collect()
}

fn last_seq(log: &[Value]) -> u64 {
    log.last().and_then(|e| e["seq"].as_u64()).unwrap_or(0)
}

async fn syncer_cycles(
    syncer: &mut Syncer,
    conn: &dfcsync::connect::Connection,
    config: &Config,
    n: usize,
) -> Vec<CycleReport> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            syncer
                .cycle(conn, config, Mode::Sync, &stop, &|_, _| {})
                .await,
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_too_large_for_one_answer_is_split_until_each_part_reads_whole() {
    for how in [WholeRead::Full, WholeRead::TwoPhase] {
        // 48 incidents (about 150 rows in a whole read), at most 40 rows an answer.
        let (scenario, kinds) = scenario(48, "0s", Some(big_limits(json!({"la_max_rows": 40}))));
        let emu = start(&scenario).await;
        let config = Config::parse(&config_text(&emu, None, ""), "<test>").unwrap();
        let conn = connect(&config, fast()).await;
        let ctl = control(&conn, &emu);
        let mut syncer = Syncer::new(&config, ReadMode::Feed);
        syncer.whole_read(how);
        let reports = converge_with(Some(&mut syncer), &conn, &config, 4, None).await;
        let first = &reports[0];
        assert!(
            first.reads.refused >= 1,
            "{how:?}: the first answer is refused: {:?}",
            first.reads
        );
        match how {
            // Partitions, from the count.
            WholeRead::Full => assert!(first.reads.partitions >= 4, "{:?}", first.reads),
            // The candidates' by-name read, in halves.
            WholeRead::TwoPhase => {
                assert!(first.reads.candidates > 0, "{:?}", first.reads);
                assert!(first.reads.pieces >= 4, "{:?}", first.reads);
            }
        }
        assert_eq!(first.whole_reads, 1);
        // Every refused answer (a PartialError) was followed by smaller reads, never acted
        // on: the end state is exactly what the engine decides from whole data.
        let state = emu.state();
        assert_expected(&views(&state), &kinds);
        assert_no_duplicate_comments(&state);
        assert_closed_alerts_finished(&state);
        let log = request_log(&ctl, &emu).await;
        let partial = queries(&log, 0)
            .iter()
            .filter(|e| e["status"] == 200)
            .count();
        assert!(partial as u32 >= first.reads.queries, "{log:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_workspaces_are_read_by_one_query_and_a_workspace_refused_holds_none_of_the_others() {
    let (scenario, kinds) = scenario_in(36, "0s", Some(big_limits(json!({}))), 6);
    let emu = start(&scenario).await;
    let config = Config::parse(&config_text(&emu, None, ""), "<test>").unwrap();
    assert_eq!(config.file.workspaces.len(), 6);
    let conn = connect(&config, fast()).await;
    let ctl = control(&conn, &emu);
    // Every query sent to the first workspace is refused (as when dfcsync has lost its role
    // there): the query over all six fails with it.
    let (bad_name, bad_id) = workspace(0);
    post(
        &ctl,
        &emu,
        "/_emulator/faults",
        json!({"method": "POST", "path": format!("/v1/workspaces/{bad_id}/query"), "status": 403, "times": 1000}),
    )
    .await;
    let mut syncer = Syncer::new(&config, ReadMode::Feed);
    let first = &syncer_cycles(&mut syncer, &conn, &config, 1).await[0];
    let failed: Vec<&str> = first
        .workspaces
        .iter()
        .filter(|w| w.error.is_some())
        .map(|w| w.workspace.as_str())
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].ends_with(&format!("/{bad_name}")), "{failed:?}");
    syncer_cycles(&mut syncer, &conn, &config, 2).await;
    // The others reached their end state; the refused workspace's incidents are as they were.
    let state = emu.state();
    let stories = views_by_story(&state);
    assert_eq!(stories.len(), kinds.len());
    for (i, (ws, v)) in &stories {
        if *ws == bad_name {
            assert!(
                v.comment_marks.is_empty() && v.close_mark.is_none(),
                "{ws}'s story {i} was not touched: {v:?}"
            );
        } else {
            assert_kind(&format!("story {i} in {ws}"), kinds[*i], v);
        }
    }
    // A quiet cycle (nothing ingested since the last read's clock less the overlap: one
    // cycle more than 10 minutes after dfcsync's own writes) costs one query per group: the
    // six workspaces became three groups (the refused one alone, the two, the three), and
    // the two good groups' change reads answer only the clock.
    post(&ctl, &emu, "/_emulator/clock", json!({"advance": "11m"})).await;
    syncer_cycles(&mut syncer, &conn, &config, 1).await;
    let before = last_seq(&request_log(&ctl, &emu).await);
    let quiet = &syncer_cycles(&mut syncer, &conn, &config, 1).await[0];
    let q = queries(&request_log(&ctl, &emu).await, before);
    assert_eq!(q.len(), 3, "{q:?}");
    assert_eq!(
        quiet.change_reads,
        2,
        "{}",
        dfcsync::report::summary_line(quiet)
    );
    for e in q.iter().filter(|e| e["status"] == 200) {
        assert_eq!(e["rows"], 1, "only the clock row: {e}");
        assert!(e["response_bytes"].as_u64().unwrap() < 4096, "{e}");
    }
}

/// The `SecurityAlert` rows of the alert with this scenario handle, newest last.
fn alert_rows(state: &Value, handle: &str) -> Vec<Value> {
    let id = state["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == handle)
        .unwrap_or_else(|| panic!("alert {handle}"))["system_alert_id"]
        .clone();
    let mut rows: Vec<Value> = state["tables"]["SecurityAlert"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["SystemAlertId"] == id)
        .cloned()
        .collect();
    rows.sort_by_key(|r| r["TimeGenerated"].as_str().unwrap_or("").to_owned());
    rows
}

/// The whole read once, then quiet: returns the syncer and the bytes of the whole read.
async fn settled(
    conn: &dfcsync::connect::Connection,
    config: &Config,
    ctl: &reqwest::Client,
    emu: &emulator::EmulatorHandle,
) -> (Syncer, u64) {
    let mut syncer = Syncer::new(config, ReadMode::Feed);
    let first = syncer_cycles(&mut syncer, conn, config, 2).await;
    assert_eq!(first[0].whole_reads, 1);
    assert_eq!(first[1].change_reads, 1, "then the change feed");
    // Past the overlap after the rows of dfcsync's own writes landed: a change read is
    // quiet (with an ingestion delay, the rows land later, so it may take a second step).
    for _ in 0..3 {
        post(ctl, emu, "/_emulator/clock", json!({"advance": "11m"})).await;
        let quiet = syncer_cycles(&mut syncer, conn, config, 1).await;
        assert!(planned(&quiet[0]).is_empty());
        if quiet[0].reads.rows == 1 {
            return (syncer, first[0].reads.bytes);
        }
    }
    panic!("no quiet change read (only the clock row) after 33 minutes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_feed_reads_what_changed_and_decides_it_as_a_whole_read_would() {
    let (scenario, kinds) = scenario(48, "0s", Some(big_limits(json!({}))));
    let emu = start(&scenario).await;
    let config = Config::parse(&config_text(&emu, None, ""), "<test>").unwrap();
    let conn = connect(&config, fast()).await;
    let ctl = control(&conn, &emu);
    let (mut syncer, whole_bytes) = settled(&conn, &config, &ctl, &emu).await;
    assert_expected(&views(&emu.state()), &kinds);
    // Two stories change in DfC: a New one is resolved, a HalfDone one's last alert too.
    let new = kinds.iter().position(|k| *k == Kind::New).unwrap();
    let half = kinds.iter().position(|k| *k == Kind::HalfDone).unwrap();
    post(
        &ctl,
        &emu,
        "/_emulator/events",
        json!({"events": [
            {"do": "alert_status", "alert": format!("I{new}"), "status": "Resolved", "by": "owner@contoso.com"},
            {"do": "alert_status", "alert": format!("I{half}"), "status": "Dismissed", "by": "owner@contoso.com"}
        ]}),
    )
    .await;
    let r = &syncer_cycles(&mut syncer, &conn, &config, 1).await[0];
    assert_eq!((r.change_reads, r.whole_reads), (1, 0));
    let planned: Vec<_> = planned(r).into_iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(
        planned,
        ["close", "close"],
        "{}",
        dfcsync::report::cycle_table(r)
    );
    assert_eq!(r.reads.queries, 1);
    // Only those two incidents' rows (a few each) and their alerts' rows, and the clock.
    assert!(r.reads.rows <= 16, "{:?}", r.reads);
    assert!(
        r.reads.bytes * 10 < whole_bytes,
        "a change read of 2 incidents ({} B) against the whole read of 48 ({whole_bytes} B)",
        r.reads.bytes
    );
    let mut expected = kinds.clone();
    expected[new] = Kind::Resolved;
    expected[half] = Kind::Mixed;
    let state = emu.state();
    for (i, (ws, v)) in views_by_story(&state) {
        assert_kind(&format!("story {i} in {ws}"), expected[i], &v);
    }
    assert_no_duplicate_comments(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_ingested_late_behind_the_watermark_is_still_read() {
    // A 2-minute ingestion delay too: every row becomes visible after its TimeGenerated.
    let (scenario, kinds) = scenario(24, "2m", Some(big_limits(json!({}))));
    let emu = start(&scenario).await;
    let config = Config::parse(&config_text(&emu, None, ""), "<test>").unwrap();
    let conn = connect(&config, fast()).await;
    let ctl = control(&conn, &emu);
    post(&ctl, &emu, "/_emulator/clock", json!({"advance": "3m"})).await;
    let (mut syncer, _) = settled(&conn, &config, &ctl, &emu).await;
    assert_expected(&views(&emu.state()), &kinds);
    // A row stamped an hour ago (behind the watermark) arrives now: the alert of a New
    // story was resolved, and the connector delivered it late.
    let new = kinds.iter().position(|k| *k == Kind::New).unwrap();
    let mut row = alert_rows(&emu.state(), &format!("I{new}")).pop().unwrap();
    let clock: Value = serde_json::from_str(
        &ctl.get(format!("{}/_emulator/clock", emu.base_url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let now: chrono::DateTime<chrono::Utc> = clock["now"].as_str().unwrap().parse().unwrap();
    row["Status"] = json!("Resolved");
    row["TimeGenerated"] = json!((now - chrono::TimeDelta::hours(1)).to_rfc3339());
    post(
        &ctl,
        &emu,
        "/_emulator/events",
        json!({"events": [{"do": "rows", "table": "SecurityAlert", "rows": [row]}]}),
    )
    .await;
    // Visible after the ingestion delay; the next change read finds it.
    post(&ctl, &emu, "/_emulator/clock", json!({"advance": "3m"})).await;
    let r = &syncer_cycles(&mut syncer, &conn, &config, 1).await[0];
    assert_eq!((r.change_reads, r.whole_reads), (1, 0));
    let planned: Vec<_> = planned(r).into_iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(planned, ["close"], "{}", dfcsync::report::cycle_table(r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_within_reads_only_the_window_and_a_full_sync_heals_the_rest() {
    let (scenario, kinds) = scenario(24, "0s", Some(big_limits(json!({}))));
    let emu = start(&scenario).await;
    let config = Config::parse(&config_text(&emu, None, ""), "<test>").unwrap();
    let conn = connect(&config, fast()).await;
    let ctl = control(&conn, &emu);
    let window = ReadMode::ChangedWithin(chrono::TimeDelta::minutes(15));
    // The scenario's stories are 60 hours old: outside the window, nothing is read.
    let r = &syncer_cycles(&mut Syncer::new(&config, window), &conn, &config, 1).await[0];
    assert_eq!((r.change_reads, r.whole_reads), (1, 0));
    assert_eq!(r.reads.rows, 1, "only the clock row");
    assert!(planned(r).is_empty());
    // A full sync (a fresh process without the flag) does everything.
    converge(&conn, &config, 3, None).await;
    assert_expected(&views(&emu.state()), &kinds);
    // A change now is inside the window of the next run.
    post(&ctl, &emu, "/_emulator/clock", json!({"advance": "20m"})).await;
    let new = kinds.iter().position(|k| *k == Kind::New).unwrap();
    post(
        &ctl,
        &emu,
        "/_emulator/events",
        json!({"events": [{"do": "alert_status", "alert": format!("I{new}"), "status": "InProgress", "by": "owner@contoso.com"}]}),
    )
    .await;
    let r = &syncer_cycles(&mut Syncer::new(&config, window), &conn, &config, 1).await[0];
    let planned: Vec<_> = planned(r).into_iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(planned, ["activate"], "{}", dfcsync::report::cycle_table(r));
}

/// SIGTERM ends a cycle between two reads, not only between two writes: a whole read in
/// partitions, the signal given while the first partition's incidents are updated, reads no
/// further partition; the report says it stopped, and the next run finishes the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_stops_the_reading_too() {
    for how in [WholeRead::Full, WholeRead::TwoPhase] {
        a_signal_stops_the_reading_of(how).await;
    }
}

async fn a_signal_stops_the_reading_of(how: WholeRead) {
    let (scenario, kinds) = scenario(48, "0s", Some(big_limits(json!({"la_max_rows": 40}))));
    let emu = start(&scenario).await;
    let config = Config::parse(&config_text(&emu, None, ""), "<test>").unwrap();
    let conn = connect(&config, fast()).await;
    let ctl = control(&conn, &emu);
    let stop = Arc::new(AtomicBool::new(false));
    let signal = stop.clone();
    let before = last_seq(&request_log(&ctl, &emu).await);
    let r = Syncer::new(&config, ReadMode::Feed)
        .whole_read(how)
        .cycle(&conn, &config, Mode::Sync, &stop, &move |_, _| {
            signal.store(true, std::sync::atomic::Ordering::SeqCst)
        })
        .await;
    assert!(r.stopped, "{}", dfcsync::report::cycle_table(&r));
    assert!(
        dfcsync::report::summary_line(&r).contains("stopped"),
        "{}",
        dfcsync::report::summary_line(&r)
    );
    let log = request_log(&ctl, &emu).await;
    let answered: Vec<Value> = queries(&log, before)
        .into_iter()
        .filter(|e| e["status"] == 200)
        .collect();
    // One piece (a partition, or a batch of candidates) was read and acted on; the signal
    // came during its writes, and nothing was read after it.
    assert_eq!(r.reads.pieces, 1, "{how:?}: {:?}", r.reads);
    if how == WholeRead::Full {
        assert!(
            (answered.len() as u32) < r.reads.partitions + 1,
            "no partition read after the signal: {} queries answered for {} partitions",
            answered.len(),
            r.reads.partitions
        );
    }
    // The next run does what was left.
    converge(&conn, &config, 4, None).await;
    assert_expected(&views(&emu.state()), &kinds);
}

/// Three workspaces, the first without dfcsync's role (a fresh assignment, or a lost one): the
/// two others are synced within a minute, though the first's query waits for the role on first
/// contact (four tries, 15 s apart and more, by default); the first is reported with its
/// reason and a fix. The workspaces are given by id (no ARM lookup).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_without_its_role_holds_none_of_the_others() {
    let (mut s, kinds) = scenario_in(36, "0s", Some(big_limits(json!({}))), 3);
    // dfcsync's role only on the second and third workspaces.
    for p in s["principals"].as_array_mut().unwrap() {
        if p["name"] == "dfcsync" {
            p["roles"] = json!((1..3).map(|k| json!({"role": "Microsoft Sentinel Responder",
                "scope": format!("/subscriptions/{SUB}/resourceGroups/rg-sentinel/providers/Microsoft.OperationalInsights/workspaces/{}", workspace(k).0)}))
                .collect::<Vec<_>>());
        }
    }
    let emu = start(&s).await;
    let mut text = config_text(&emu, None, "");
    for k in 0..3 {
        let (name, id) = workspace(k);
        text = text.replacen(
            &format!("name = \"{name}\"\n"),
            &format!("name = \"{name}\"\nworkspace_id = \"{id}\"\n"),
            1,
        );
    }
    let config = Config::parse(&text, "<test>").unwrap();
    assert!(
        config
            .file
            .workspaces
            .iter()
            .all(|w| w.workspace_id.is_some())
    );
    // The default first-contact wait (fast otherwise).
    let http = dfcsync::azure::http::HttpOptions {
        access_retries: dfcsync::azure::http::HttpOptions::default().access_retries,
        access_retry_delay: dfcsync::azure::http::HttpOptions::default().access_retry_delay,
        ..fast()
    };
    let conn = connect(&config, http).await;
    let ctl = control(&conn, &emu);
    let stop = Arc::new(AtomicBool::new(false));
    let started = std::time::Instant::now();
    let cycle = {
        let (conn, config, stop) = (conn.clone(), config.clone(), stop.clone());
        tokio::spawn(async move {
            Syncer::new(&config, ReadMode::Feed)
                .cycle(&conn, &config, Mode::Sync, &stop, &|_, _| {})
                .await
        })
    };
    // The two good workspaces reach their end state within a minute (the cycle may wait
    // longer for the refused one, after them).
    let (bad, _) = workspace(0);
    let report = match tokio::time::timeout(Duration::from_secs(60), cycle).await {
        Ok(r) => r.unwrap(),
        Err(_) => {
            for (i, (ws, v)) in views_by_story(&emu.state()) {
                if ws != bad {
                    assert_kind(&format!("story {i} in {ws}"), kinds[i], &v);
                }
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            panic!("the cycle took more than a minute, though the healthy workspaces were synced")
        }
    };
    let took = started.elapsed();
    for (i, (ws, v)) in views_by_story(&emu.state()) {
        if ws != bad {
            assert_kind(&format!("story {i} in {ws}"), kinds[i], &v);
        }
    }
    // The refused one is reported with the role to assign.
    let failed: Vec<_> = report
        .workspaces
        .iter()
        .filter(|w| w.error.is_some())
        .collect();
    assert_eq!(failed.len(), 1, "{}", dfcsync::report::cycle_table(&report));
    assert!(failed[0].workspace.ends_with(&format!("/{bad}")));
    let e = failed[0].error.as_deref().unwrap();
    assert!(e.contains("Microsoft Sentinel Responder"), "{e}");
    eprintln!(
        "the two healthy workspaces synced in {took:?}; the cycle ended after {:?}",
        started.elapsed()
    );
    let _ = ctl;
}
