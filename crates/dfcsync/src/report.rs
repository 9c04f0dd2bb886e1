//! What a cycle did ([`CycleReport`]: per target, the plan, what became of it and why a read
//! failed; the requests and reads), and its forms for people and machines: a plan, or a
//! whole cycle, as a table or as JSON, and the structured log lines of a cycle.
//!
//! The JSON form of a plan is a contract (the `replay` issue, `plan --output json`): the keys
//! `now`, `actions[].{incident, incident_number, action, classification,
//! classification_reason, fingerprint, why}` and `held[].{incident, incident_number, reason}`
//! keep their names and meaning; keys may be added.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::act::{ActReport, ActionResult};
use crate::backend::ReadStats;
use crate::decide::{Plan, PlannedAction, rfc3339};

/// Whether a cycle changes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Observe and decide only.
    Plan,
    /// Observe, decide and act.
    Sync,
}

/// What happened in one target: a workspace, or the tenant.
#[derive(Debug, Clone)]
pub struct WorkspaceReport {
    /// `subscription/resourceGroup/name`, or the tenant's label.
    pub workspace: String,
    pub plan: Option<Plan>,
    pub act: Option<ActReport>,
    /// Why the workspace, or a piece of its read, could not be synced.
    pub error: Option<String>,
    pub warnings: Vec<String>,
    /// In-scope incidents read.
    pub incidents_seen: usize,
}

/// What happened in one cycle.
#[derive(Debug, Clone)]
pub struct CycleReport {
    pub started: DateTime<Utc>,
    pub duration: Duration,
    pub mode: Mode,
    pub workspaces: Vec<WorkspaceReport>,
    /// Azure answers during the cycle, by service and status.
    pub requests: Vec<(String, u16, u64)>,
    pub retries: u64,
    pub throttle_waits: u64,
    pub throttle_wait: Duration,
    /// The reads of the cycle, summed over the groups.
    pub reads: ReadStats,
    /// Groups read whole, and groups read through the change feed.
    pub whole_reads: u32,
    pub change_reads: u32,
    /// Whether a signal (SIGTERM, SIGINT) ended the cycle before every read and write was
    /// made: what was left is for the next run.
    pub stopped: bool,
}

impl WorkspaceReport {
    /// Whether the workspace was read and every action and repair applied or skipped on
    /// purpose.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
            && self.act.as_ref().is_none_or(|a| {
                a.outcomes
                    .iter()
                    .chain(&a.repairs)
                    .all(|o| !matches!(o.result, ActionResult::Failed(_)))
            })
    }
}

impl CycleReport {
    /// The reads the sinks made before writing, over every workspace.
    pub fn etag_reads(&self) -> crate::act::EtagReads {
        let mut all = crate::act::EtagReads::default();
        for a in self.workspaces.iter().filter_map(|w| w.act.as_ref()) {
            all.add(&a.etag_reads);
        }
        all
    }

    /// Whether every workspace was read and every action and repair applied or skipped on
    /// purpose.
    pub fn succeeded(&self) -> bool {
        self.workspaces.iter().all(WorkspaceReport::succeeded)
    }

    /// Whether any workspace has planned actions or repairs.
    pub fn has_actions(&self) -> bool {
        self.workspaces.iter().any(|w| {
            w.plan
                .as_ref()
                .is_some_and(|p| !p.actions.is_empty() || !p.repairs.is_empty())
        })
    }
}

/// The plan as the JSON contract gives it, as a value (inside a cycle's report).
pub fn plan_json(plan: &Plan) -> Value {
    serde_json::to_value(PlanJson(plan)).unwrap_or(Value::Null)
}

/// The plan in the JSON contract's form, serialized as it is written: a first run's plan is
/// tens of megabytes, and building it as a [`Value`] first tripled the memory of `replay`.
/// Keys are written in alphabetical order (the order `Value` objects have).
pub struct PlanJson<'a>(pub &'a Plan);

impl Serialize for PlanJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let plan = self.0;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("actions", &Seq(|| plan.actions.iter().map(ActionJson::of)))?;
        map.serialize_entry(
            "held",
            &Seq(|| {
                plan.held.iter().map(|h| HeldJson {
                    incident: &h.incident,
                    incident_number: h.incident_number,
                    kind: h.kind.as_str(),
                    reason: &h.reason,
                })
            }),
        )?;
        map.serialize_entry("now", &rfc3339_full(plan))?;
        map.serialize_entry(
            "repairs",
            &Seq(|| {
                plan.repairs.iter().map(|r| RepairJson {
                    incident: &r.incident,
                    incident_number: r.incident_number,
                    mark: r.mark.to_string(),
                    why: &r.why,
                })
            }),
        )?;
        map.end()
    }
}

/// A sequence serialized from an iterator made on demand.
struct Seq<F>(F);

impl<F, I> Serialize for Seq<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq((self.0)())
    }
}

#[derive(Serialize)]
struct ActionJson<'a> {
    action: &'static str,
    alerts_to_set_in_progress: Vec<AddressJson<'a>>,
    classification: Option<&'static str>,
    classification_comment: Option<&'a str>,
    classification_reason: Option<&'static str>,
    comment: &'a str,
    fingerprint: String,
    incident: &'a str,
    incident_number: i64,
    mark: String,
    new_status: Option<&'a str>,
    title: &'a str,
    why: &'a str,
}

impl<'a> ActionJson<'a> {
    fn of(a: &'a PlannedAction) -> Self {
        Self {
            action: a.kind.as_str(),
            alerts_to_set_in_progress: a
                .alerts_to_set_in_progress
                .iter()
                .map(|t| AddressJson {
                    location: &t.location,
                    name: &t.name,
                    resource_group: t.resource_group.as_deref(),
                    subscription_id: &t.subscription_id,
                })
                .collect(),
            classification: a.closure.map(|c| c.classification().as_str()),
            classification_comment: a.classification_comment.as_deref(),
            classification_reason: a.closure.and_then(|c| c.reason()).map(|r| r.as_str()),
            comment: &a.comment,
            fingerprint: a.fingerprint.to_string(),
            incident: &a.incident,
            incident_number: a.incident_number,
            mark: a.mark.to_string(),
            new_status: a.new_status.as_ref().map(|s| s.as_str()),
            title: &a.title,
            why: &a.why,
        }
    }
}

#[derive(Serialize)]
struct AddressJson<'a> {
    location: &'a str,
    name: &'a str,
    resource_group: Option<&'a str>,
    subscription_id: &'a str,
}

#[derive(Serialize)]
struct HeldJson<'a> {
    incident: &'a str,
    incident_number: Option<i64>,
    kind: &'static str,
    reason: &'a str,
}

#[derive(Serialize)]
struct RepairJson<'a> {
    incident: &'a str,
    incident_number: i64,
    mark: String,
    why: &'a str,
}

fn rfc3339_full(plan: &Plan) -> String {
    plan.now
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The plan as tables for people: the actions, then the held incidents.
pub fn plan_table(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.actions.is_empty() {
        out.push_str(&format!(
            "No action needed (as of {}).\n",
            rfc3339(plan.now)
        ));
    } else {
        let mut t = new_table(&["#", "incident", "action", "classification", "why"]);
        for a in &plan.actions {
            let class = a.closure.map_or(String::new(), |c| {
                c.reason().map_or_else(
                    || c.classification().to_string(),
                    |r| format!("{} / {r}", c.classification()),
                )
            });
            t.add_row(vec![
                a.incident_number.to_string(),
                if a.title.is_empty() {
                    a.incident.to_string()
                } else {
                    a.title.to_string()
                },
                a.kind.to_string(),
                class,
                a.why.clone(),
            ]);
        }
        out.push_str(&format!(
            "{} action(s) as of {}:\n{t}\n",
            plan.actions.len(),
            rfc3339(plan.now)
        ));
    }
    if !plan.repairs.is_empty() {
        let mut t = new_table(&["#", "incident", "repair"]);
        for r in &plan.repairs {
            t.add_row(vec![
                r.incident_number.to_string(),
                if r.title.is_empty() {
                    r.incident.to_string()
                } else {
                    r.title.to_string()
                },
                r.why.clone(),
            ]);
        }
        out.push_str(&format!("{} repair(s):\n{t}\n", plan.repairs.len()));
    }
    if !plan.held.is_empty() {
        let mut t = new_table(&["#", "incident", "held because"]);
        for h in &plan.held {
            t.add_row(vec![
                h.incident_number.map_or(String::new(), |n| n.to_string()),
                h.incident.clone(),
                h.reason.clone(),
            ]);
        }
        out.push_str(&format!("{} incident(s) held:\n{t}\n", plan.held.len()));
    }
    out
}

/// A table in the CLI's style (condensed UTF-8 borders, wrapped to 120 columns).
pub fn new_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(120)
        .set_header(header.to_vec());
    t
}

/// One cycle as JSON: per workspace the plan (as [`PlanJson`]), the outcome of each action,
/// and the errors; then the Azure calls and the duration. Serialized as it is written (a
/// full `sync` on a large workspace has tens of thousands of actions: building the report as
/// a [`Value`] first took several times the plan's memory). Keys are written in alphabetical
/// order, the order of [`cycle_json`]'s objects.
pub struct CycleJson<'a>(pub &'a CycleReport);

impl Serialize for CycleJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let report = self.0;
        let mut map = serializer.serialize_map(Some(11))?;
        map.serialize_entry(
            "azure_requests",
            &Seq(|| {
                report
                    .requests
                    .iter()
                    .map(|(service, status, count)| RequestJson {
                        count: *count,
                        service,
                        status: *status,
                    })
            }),
        )?;
        map.serialize_entry("duration_ms", &(report.duration.as_millis() as u64))?;
        map.serialize_entry(
            "log_analytics",
            &LogAnalyticsJson {
                answers_refused_as_too_large: report.reads.refused,
                bytes: report.reads.bytes,
                candidates: report.reads.candidates,
                change_reads: report.change_reads,
                partitions: report.reads.partitions,
                queries: report.reads.queries,
                rows: report.reads.rows,
                whole_reads: report.whole_reads,
            },
        )?;
        map.serialize_entry(
            "mode",
            match report.mode {
                Mode::Plan => "plan",
                Mode::Sync => "sync",
            },
        )?;
        map.serialize_entry("retries", &report.retries)?;
        map.serialize_entry(
            "started",
            &report
                .started
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )?;
        map.serialize_entry("stopped", &report.stopped)?;
        map.serialize_entry("succeeded", &report.succeeded())?;
        map.serialize_entry(
            "throttle_wait_ms",
            &(report.throttle_wait.as_millis() as u64),
        )?;
        map.serialize_entry("throttle_waits", &report.throttle_waits)?;
        map.serialize_entry(
            "workspaces",
            &Seq(|| report.workspaces.iter().map(WorkspaceJson)),
        )?;
        map.end()
    }
}

#[derive(Serialize)]
struct RequestJson<'a> {
    count: u64,
    service: &'a str,
    status: u16,
}

#[derive(Serialize)]
struct LogAnalyticsJson {
    answers_refused_as_too_large: u32,
    bytes: u64,
    candidates: u64,
    change_reads: u32,
    partitions: u32,
    queries: u32,
    rows: u64,
    whole_reads: u32,
}

struct WorkspaceJson<'a>(&'a WorkspaceReport);

impl<'a> Serialize for WorkspaceJson<'a> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let w = self.0;
        let mut map = serializer.serialize_map(Some(8))?;
        map.serialize_entry("error", &w.error)?;
        let etags = w.act.as_ref().map(|a| a.etag_reads).unwrap_or_default();
        map.serialize_entry(
            "etag_reads",
            &EtagReadsJson {
                gets: etags.gets,
                list_pages: etags.list_pages,
                lists: etags.lists,
            },
        )?;
        map.serialize_entry("incidents_in_scope_rows", &w.incidents_seen)?;
        map.serialize_entry(
            "missing_roles",
            w.act.as_ref().map_or(&[][..], |a| &a.missing_roles[..]),
        )?;
        map.serialize_entry("plan", &w.plan.as_ref().map(PlanJson))?;
        map.serialize_entry(
            "results",
            &Seq(|| {
                w.act.iter().flat_map(|a| {
                    let outcome = |repair: bool| {
                        move |o: &'a crate::act::ActionOutcome| OutcomeJson {
                            action: if repair { "repair" } else { o.kind.as_str() },
                            conflicts: o.conflicts,
                            detail: o.result.detail(),
                            fingerprint: &o.fingerprint,
                            incident: &o.incident,
                            incident_number: o.incident_number,
                            result: o.result.label(),
                        }
                    };
                    a.outcomes
                        .iter()
                        .map(outcome(false))
                        .chain(a.repairs.iter().map(outcome(true)))
                })
            }),
        )?;
        map.serialize_entry("warnings", &w.warnings)?;
        map.serialize_entry("workspace", &w.workspace)?;
        map.end()
    }
}

#[derive(Serialize)]
struct EtagReadsJson {
    gets: u64,
    list_pages: u32,
    lists: u32,
}

#[derive(Serialize)]
struct OutcomeJson<'a> {
    action: &'a str,
    conflicts: u32,
    detail: Option<&'a str>,
    fingerprint: &'a str,
    incident: &'a str,
    incident_number: i64,
    result: &'static str,
}

/// One cycle as JSON, as a value ([`CycleJson`] writes the same without building it).
pub fn cycle_json(report: &CycleReport) -> Value {
    serde_json::to_value(CycleJson(report)).unwrap_or(Value::Null)
}

/// Counts of outcomes by action kind and result: `close applied 3` (repairs as the kind
/// `repair`).
fn outcome_counts(report: &CycleReport) -> Vec<(String, &'static str, usize)> {
    let mut counts: std::collections::BTreeMap<(String, &'static str), usize> = Default::default();
    for a in report.workspaces.iter().filter_map(|w| w.act.as_ref()) {
        for o in &a.outcomes {
            *counts
                .entry((o.kind.as_str().to_owned(), o.result.label()))
                .or_default() += 1;
        }
        for o in &a.repairs {
            *counts
                .entry(("repair".to_owned(), o.result.label()))
                .or_default() += 1;
        }
    }
    counts.into_iter().map(|((k, r), n)| (k, r, n)).collect()
}

/// One cycle for people: each workspace's plan (as [`plan_table`]) or error, what became of
/// the actions, and a summary line.
pub fn cycle_table(report: &CycleReport) -> String {
    let mut out = String::new();
    for w in &report.workspaces {
        out.push_str(&format!("Workspace {}\n", w.workspace));
        // An error (a read that failed) does not hide what the other pieces did.
        if let Some(e) = &w.error {
            out.push_str(&format!("  error: {e}\n"));
        }
        for warning in &w.warnings {
            out.push_str(&format!("  warning: {warning}\n"));
        }
        if let Some(plan) = &w.plan {
            out.push_str(&plan_table(plan));
        }
        if let Some(act) = &w.act {
            let failed: Vec<(&crate::act::ActionOutcome, bool)> = act
                .outcomes
                .iter()
                .map(|o| (o, false))
                .chain(act.repairs.iter().map(|o| (o, true)))
                .filter(|(o, _)| !matches!(o.result, ActionResult::Applied))
                .collect();
            if !failed.is_empty() {
                let mut t = new_table(&["#", "action", "result", "detail"]);
                for (o, repair) in failed {
                    let detail = o.result.detail().unwrap_or_default().to_owned();
                    t.add_row(vec![
                        o.incident_number.to_string(),
                        if repair {
                            "repair".to_owned()
                        } else {
                            o.kind.to_string()
                        },
                        o.result.label().to_owned(),
                        detail,
                    ]);
                }
                out.push_str(&format!("Not applied:\n{t}\n"));
            }
            for role in &act.missing_roles {
                out.push_str(&format!("  missing role: {role}\n"));
            }
        }
    }
    out.push_str(&summary_line(report));
    out.push('\n');
    out
}

/// `sync: 3 close applied, 1 activate applied; 2 held; 14 Azure requests (2 retries); 1.2s`.
pub fn summary_line(report: &CycleReport) -> String {
    let counts = outcome_counts(report);
    let actions = if report.mode == Mode::Plan {
        let plans = || report.workspaces.iter().filter_map(|w| w.plan.as_ref());
        let n: usize = plans().map(|p| p.actions.len()).sum();
        let r: usize = plans().map(|p| p.repairs.len()).sum();
        if r > 0 {
            format!("{n} action(s) and {r} repair(s) planned, none taken (dry run)")
        } else {
            format!("{n} action(s) planned, none taken (dry run)")
        }
    } else if counts.is_empty() {
        "nothing to do".to_owned()
    } else {
        counts
            .iter()
            .map(|(k, r, n)| format!("{n} {k} {r}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let held: usize = report
        .workspaces
        .iter()
        .filter_map(|w| w.plan.as_ref())
        .map(|p| p.held.len())
        .sum();
    let errors = report
        .workspaces
        .iter()
        .filter(|w| w.error.is_some())
        .count();
    let requests: u64 = report.requests.iter().map(|r| r.2).sum();
    let mut line = format!(
        "{}: {actions}; {held} held; {requests} Azure request(s) ({} retries",
        match report.mode {
            Mode::Plan => "plan",
            Mode::Sync => "sync",
        },
        report.retries
    );
    if report.throttle_waits > 0 {
        line.push_str(&format!(
            ", {} throttling wait(s) of {:.1}s in all",
            report.throttle_waits,
            report.throttle_wait.as_secs_f64()
        ));
    }
    line.push_str(&format!(
        "); read {}; {:.1}s",
        reads_phrase(report),
        report.duration.as_secs_f64()
    ));
    let etags = report.etag_reads();
    if etags != crate::act::EtagReads::default() {
        line.push_str(&format!(
            "; ETags: {} list(s) of {} page(s), {} single read(s)",
            etags.lists, etags.list_pages, etags.gets
        ));
    }
    if errors > 0 {
        line.push_str(&format!("; {errors} workspace(s) failed"));
    }
    if report.stopped {
        line.push_str("; stopped by a signal before the end: the rest is left for the next run");
    }
    line
}

/// `everything, in 4 partitions (5 Log Analytics queries, 1.2 MiB)` or `changes only (1 Log
/// Analytics query, 999 B)`.
fn reads_phrase(report: &CycleReport) -> String {
    let r = &report.reads;
    let kind = match (report.whole_reads, report.change_reads) {
        (0, 0) => "nothing".to_owned(),
        (0, _) => "changes only".to_owned(),
        (_, 0) if r.candidates > 0 => format!("everything, {} candidate(s) by name", r.candidates),
        (_, 0) if r.partitions > 1 => format!("everything, in {} partitions", r.partitions),
        (_, 0) => "everything".to_owned(),
        (w, c) => format!("everything in {w} group(s), changes in {c}"),
    };
    if r.queries == 0 {
        // Not through Log Analytics (the Graph backend counts its calls as requests).
        return kind;
    }
    format!(
        "{kind} ({} Log Analytics quer{}, {})",
        r.queries,
        if r.queries == 1 { "y" } else { "ies" },
        human_bytes(r.bytes)
    )
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// The structured log of one cycle: a line per action outcome, and the summary.
pub fn log_cycle(report: &CycleReport, cycle: u64) {
    for w in &report.workspaces {
        if let Some(e) = &w.error {
            tracing::error!(cycle, workspace = %w.workspace, error = %e, "workspace failed");
        }
        for (o, repair) in w.act.iter().flat_map(|a| {
            a.outcomes
                .iter()
                .map(|o| (o, false))
                .chain(a.repairs.iter().map(|o| (o, true)))
        }) {
            let kind = if repair { "repair" } else { o.kind.as_str() };
            match &o.result {
                ActionResult::Applied => {
                    tracing::info!(cycle, workspace = %w.workspace, incident = o.incident_number, action = kind, fingerprint = %o.fingerprint, result = "applied", why = %o.why, "action")
                }
                ActionResult::Skipped(d) | ActionResult::Deferred(d) => {
                    tracing::info!(cycle, workspace = %w.workspace, incident = o.incident_number, action = kind, result = "skipped", detail = %d, "action")
                }
                ActionResult::Failed(d) => {
                    tracing::warn!(cycle, workspace = %w.workspace, incident = o.incident_number, action = kind, result = "failed", detail = %d, "action")
                }
            }
        }
    }
    tracing::info!(
        cycle,
        succeeded = report.succeeded(),
        "{}",
        summary_line(report)
    );
}
