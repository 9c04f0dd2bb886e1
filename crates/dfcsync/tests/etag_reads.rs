//! ETag reads that do not repeat (issue 24): a whole read in many pieces (batches of
//! candidates, or partitions) lists the workspace at most once, and in a two-phase read the
//! list serves every later piece; the report's counts agree with the emulator's log.

mod proof_support;

use serde_json::json;

use dfcsync::config::Config;
use dfcsync::cycle::{CycleReport, ReadMode, Syncer};
use dfcsync::observe::change_feed::WholeRead;
use proof_support::*;

fn actions(r: &CycleReport) -> usize {
    r.workspaces
        .iter()
        .filter_map(|w| w.act.as_ref())
        .map(|a| a.outcomes.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_read_in_many_pieces_lists_the_workspace_once() {
    for how in [WholeRead::TwoPhase, WholeRead::Full] {
        let n = 240;
        let mut limits = out_of_the_way();
        // Answers of at most 160 rows (many pieces), list pages of 50 incidents.
        limits["la_max_rows"] = json!(160);
        limits["default_page_size"] = json!(50);
        let (scenario, kinds) = scenario_in(n, "0s", Some(limits), 1);
        let emu = start(&scenario).await;
        let config = Config::parse(&config_text(&emu, None, ""), "<test>").unwrap();
        let conn = connect(&config, fast()).await;
        let ctl = control(&conn, &emu);
        let before = request_log(&ctl, &emu).await.len();
        let mut syncer = Syncer::new(&config, ReadMode::Feed);
        syncer.whole_read(how);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let first = &syncer
            .cycle(
                &conn,
                &config,
                dfcsync::cycle::Mode::Sync,
                &stop,
                &|_, _| {},
            )
            .await;
        let log = request_log(&ctl, &emu).await;
        let (pages, gets) = incident_reads(&log[before..]);
        let etags = first.etag_reads();
        assert!(
            first.reads.pieces >= 3,
            "{how:?}: a read in pieces: {:?}",
            first.reads
        );
        assert!(actions(first) > 100, "{how:?}: {} actions", actions(first));
        // One list of the workspace at most, its pages those the emulator served (at most 5
        // of 50 incidents for 240 incidents; the list asks for 1,000 a page), the other
        // incidents read one by one.
        assert_eq!(etags.lists, 1, "{how:?}: {etags:?}");
        assert_eq!(u64::from(etags.list_pages), pages, "{how:?}: {etags:?}");
        assert!(pages <= (n as u64).div_ceil(50), "{how:?}: {pages} pages");
        // The log's single GETs also hold the re-read of an activated incident after its
        // comment (its ETag moves) and those after a 409: at most one more per action here.
        assert!(
            etags.gets <= gets && gets <= etags.gets + actions(first) as u64,
            "{how:?}: {etags:?} against {gets} GETs in the log"
        );
        assert!(
            u64::from(etags.list_pages) + etags.gets
                <= (n as u64).div_ceil(50) + actions(first) as u64,
            "{how:?}: {etags:?} for {} actions",
            actions(first)
        );
        // The list keeps every candidate's incident (a full read's: the open ones, up to a
        // bound), so the pieces after it read few one by one.
        assert!(
            etags.gets < actions(first) as u64 / 2,
            "{how:?}: {etags:?} for {} actions: the list served the later pieces",
            actions(first)
        );
        // And the work is done as a whole read in one piece would do it.
        converge_with(Some(&mut syncer), &conn, &config, 4, None).await;
        assert_expected(&views(&emu.state()), &kinds);
    }
}
