//! The two Log Analytics tables the emulator keeps, `SecurityIncident` and `SecurityAlert`:
//! their schemas (every column of the real tables, reference §7), typed cells, and the
//! append-only row store of one workspace. Rows carry the instant they become visible to
//! queries as their ingestion time in the `kql` tables, so a workspace's ingestion delay is
//! honoured and `ingestion_time()` answers it.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

use crate::intern::Interner;

pub use kql::ColumnType as ColType;
pub use kql::Value as Cell;

/// A string cell.
pub fn string(s: impl AsRef<str>) -> Cell {
    Cell::string(s)
}

/// A time cell.
pub fn time(t: DateTime<Utc>) -> Cell {
    Cell::DateTime(t)
}

/// The cell as plain JSON (dynamic values inline, times as RFC 3339 with 7 digits).
pub fn cell_json(c: &Cell) -> Json {
    match c {
        Cell::Null => Json::Null,
        Cell::Bool(b) => Json::Bool(*b),
        Cell::Int(i) => Json::from(*i),
        Cell::Long(i) => Json::from(*i),
        Cell::Real(r) => serde_json::Number::from_f64(*r)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Cell::String(s) => Json::String(s.to_string()),
        Cell::DateTime(t) => Json::String(format_time(*t)),
        Cell::Dynamic(v) => (**v).clone(),
        other => Json::String(other.to_kql_string()),
    }
}

/// The cell as a time, when it is one.
pub fn cell_time(c: &Cell) -> Option<DateTime<Utc>> {
    match c {
        Cell::DateTime(t) => Some(*t),
        _ => None,
    }
}

/// Times as Log Analytics writes them: RFC 3339, UTC, `Z`, 7 fractional digits when not whole.
/// Written field by field (no format string parsed per call: every row and every incident
/// of a list writes several times).
pub fn format_time(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    let mut s = String::with_capacity(28);
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    match t.timestamp_subsec_nanos() {
        0 => s.push('Z'),
        n => {
            let _ = write!(s, ".{:07}Z", n / 100);
        }
    }
    s
}

/// The tables the emulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    SecurityIncident,
    SecurityAlert,
}

impl TableKind {
    /// The table's name in queries.
    pub fn name(self) -> &'static str {
        match self {
            TableKind::SecurityIncident => "SecurityIncident",
            TableKind::SecurityAlert => "SecurityAlert",
        }
    }

    /// Parses a table name (exact, as KQL is case-sensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "SecurityIncident" => Some(TableKind::SecurityIncident),
            "SecurityAlert" => Some(TableKind::SecurityAlert),
            _ => None,
        }
    }

    /// The table's columns, in the service's order.
    pub fn schema(self) -> &'static [(&'static str, ColType)] {
        match self {
            TableKind::SecurityIncident => INCIDENT_SCHEMA,
            TableKind::SecurityAlert => ALERT_SCHEMA,
        }
    }

    /// The index of a column by name.
    pub fn col(self, name: &str) -> Option<usize> {
        self.schema().iter().position(|(n, _)| *n == name)
    }
}

use ColType as T;

/// `SecurityIncident` (reference §7.1), every column.
pub const INCIDENT_SCHEMA: &[(&str, ColType)] = &[
    ("TenantId", T::String),
    ("TimeGenerated", T::DateTime),
    ("IncidentName", T::String),
    ("Title", T::String),
    ("Description", T::String),
    ("Severity", T::String),
    ("Status", T::String),
    ("Classification", T::String),
    ("ClassificationComment", T::String),
    ("ClassificationReason", T::String),
    ("Owner", T::Dynamic),
    ("ProviderName", T::String),
    ("ProviderIncidentId", T::String),
    ("FirstActivityTime", T::DateTime),
    ("LastActivityTime", T::DateTime),
    ("FirstModifiedTime", T::DateTime),
    ("LastModifiedTime", T::DateTime),
    ("CreatedTime", T::DateTime),
    ("ClosedTime", T::DateTime),
    ("IncidentNumber", T::Int),
    ("RelatedAnalyticRuleIds", T::Dynamic),
    ("AlertIds", T::Dynamic),
    ("BookmarkIds", T::Dynamic),
    ("Comments", T::Dynamic),
    ("Tasks", T::Dynamic),
    ("Labels", T::Dynamic),
    ("IncidentUrl", T::String),
    ("AdditionalData", T::Dynamic),
    ("ModifiedBy", T::String),
    ("SourceSystem", T::String),
    ("Type", T::String),
];

/// `SecurityAlert` (reference §7.2), every column, in the order of a real response.
pub const ALERT_SCHEMA: &[(&str, ColType)] = &[
    ("TenantId", T::String),
    ("TimeGenerated", T::DateTime),
    ("DisplayName", T::String),
    ("AlertName", T::String),
    ("AlertSeverity", T::String),
    ("Description", T::String),
    ("ProviderName", T::String),
    ("VendorName", T::String),
    ("VendorOriginalId", T::String),
    ("SystemAlertId", T::String),
    ("ResourceId", T::String),
    ("SourceComputerId", T::String),
    ("AlertType", T::String),
    ("ConfidenceLevel", T::String),
    ("ConfidenceScore", T::Real),
    ("IsIncident", T::Bool),
    ("StartTime", T::DateTime),
    ("EndTime", T::DateTime),
    ("ProcessingEndTime", T::DateTime),
    ("RemediationSteps", T::String),
    ("ExtendedProperties", T::String),
    ("Entities", T::String),
    ("SourceSystem", T::String),
    ("WorkspaceSubscriptionId", T::String),
    ("WorkspaceResourceGroup", T::String),
    ("ExtendedLinks", T::String),
    ("ProductName", T::String),
    ("ProductComponentName", T::String),
    ("AlertLink", T::String),
    ("Status", T::String),
    ("CompromisedEntity", T::String),
    ("Tactics", T::String),
    ("Techniques", T::String),
    ("SubTechniques", T::String),
    ("Type", T::String),
];

/// One row and the instant it becomes visible to queries.
#[derive(Debug, Clone)]
pub struct Row {
    pub visible_at: DateTime<Utc>,
    pub cells: Vec<Cell>,
}

impl Row {
    /// A row of `kind` with every cell set from `values` by column name (missing: null).
    pub fn build(kind: TableKind, visible_at: DateTime<Utc>, values: Vec<(&str, Cell)>) -> Row {
        let schema = kind.schema();
        let mut cells = vec![Cell::Null; schema.len()];
        for (name, cell) in values {
            if let Some(i) = kind.col(name) {
                cells[i] = cell;
            } else {
                debug_assert!(false, "unknown column {name}");
            }
        }
        Row { visible_at, cells }
    }

    /// The cell of a column by name.
    pub fn get(&self, kind: TableKind, name: &str) -> &Cell {
        static NULL: Cell = Cell::Null;
        kind.col(name)
            .and_then(|i| self.cells.get(i))
            .unwrap_or(&NULL)
    }

    /// The row as a JSON object keyed by column name (dynamic values inline).
    pub fn to_json(&self, kind: TableKind) -> Json {
        let mut map = Map::new();
        for ((name, _), cell) in kind.schema().iter().zip(&self.cells) {
            map.insert((*name).to_string(), cell_json(cell));
        }
        Json::Object(map)
    }
}

/// Converts an imported JSON value into a cell of the given type; `Err` says what is wrong.
pub fn cell_from_json(ty: ColType, v: &Json) -> Result<Cell, String> {
    if v.is_null() {
        return Ok(Cell::Null);
    }
    match ty {
        ColType::String => match v {
            Json::String(s) => Ok(string(s)),
            other => Ok(string(other.to_string())),
        },
        ColType::DateTime => {
            let s = v.as_str().ok_or("expected an RFC 3339 time string")?;
            if s.is_empty() {
                return Ok(Cell::Null);
            }
            DateTime::parse_from_rfc3339(s)
                .map(|t| Cell::DateTime(t.with_timezone(&Utc)))
                .map_err(|e| format!("bad time {s:?}: {e}"))
        }
        ColType::Int => match v {
            Json::Number(n) => n
                .as_i64()
                .and_then(|i| i32::try_from(i).ok())
                .map(Cell::Int)
                .ok_or_else(|| "expected a 32-bit integer".into()),
            Json::String(s) => s
                .parse::<i32>()
                .map(Cell::Int)
                .map_err(|_| format!("expected an integer, got {s:?}")),
            _ => Err("expected an integer".into()),
        },
        ColType::Real => match v {
            Json::Number(n) => n
                .as_f64()
                .map(Cell::Real)
                .ok_or_else(|| "expected a number".into()),
            Json::String(s) if s.is_empty() => Ok(Cell::Null),
            Json::String(s) => s
                .parse()
                .map(Cell::Real)
                .map_err(|_| format!("expected a number, got {s:?}")),
            _ => Err("expected a number".into()),
        },
        ColType::Bool => match v {
            Json::Bool(b) => Ok(Cell::Bool(*b)),
            Json::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" => Ok(Cell::Bool(true)),
                "false" => Ok(Cell::Bool(false)),
                "" => Ok(Cell::Null),
                _ => Err(format!("expected a boolean, got {s:?}")),
            },
            _ => Err("expected a boolean".into()),
        },
        other @ (ColType::Long | ColType::Decimal | ColType::TimeSpan | ColType::Guid) => {
            kql::la_json::wire_to_value(v, other)
        }
        ColType::Dynamic => match v {
            // Exported dynamic values often arrive as JSON text: decode it when it parses.
            Json::String(s) => Ok(Cell::dynamic(
                serde_json::from_str(s).unwrap_or_else(|_| Json::String(s.clone())),
            )),
            other => Ok(Cell::dynamic(other.clone())),
        },
    }
}

/// The append-only tables of one workspace, kept as the `kql` database queries read; each
/// row carries the instant it becomes visible as its ingestion time (`ingestion_time()`), and
/// queries read the rows ingested by their now (`QueryOptions::ingested_by`).
#[derive(Debug, Clone)]
pub struct WorkspaceTables {
    pub db: kql::Database,
    /// The texts of the string cells and the values of the dynamic cells, each kept once
    /// (rows repeat them).
    strings: Interner,
}

impl Default for WorkspaceTables {
    fn default() -> Self {
        let mut db = kql::Database::new();
        for kind in [TableKind::SecurityIncident, TableKind::SecurityAlert] {
            let cols = kind
                .schema()
                .iter()
                .map(|(n, t)| kql::Column::new(*n, *t))
                .collect();
            db.insert(kind.name(), kql::Table::new(kind.name(), cols));
        }
        WorkspaceTables {
            db,
            strings: Interner::default(),
        }
    }
}

/// Appends rows to a `kql` table, each with its visibility instant as its ingestion time
/// (one append per run of rows sharing an instant).
fn append_rows(t: &mut kql::Table, rows: Vec<Row>) {
    let mut run: Vec<Vec<Cell>> = Vec::new();
    let mut run_at = None;
    for r in rows {
        if run_at != Some(r.visible_at) {
            if let Some(at) = run_at {
                append_run(t, std::mem::take(&mut run), at);
            }
            run_at = Some(r.visible_at);
        }
        run.push(r.cells);
    }
    if let Some(at) = run_at {
        append_run(t, run, at);
    }
}

fn append_run(t: &mut kql::Table, run: Vec<Vec<Cell>>, at: DateTime<Utc>) {
    // Rows are built from the table's own schema, so their width is always right.
    if let Err(e) = t.append_ingested(run, at) {
        debug_assert!(false, "row of the wrong width: {e}");
    }
}

impl WorkspaceTables {
    /// The rows of a table.
    pub fn rows(&self, kind: TableKind) -> &[Vec<Cell>] {
        self.db
            .get(kind.name())
            .map(|t| t.rows.as_slice())
            .unwrap_or(&[])
    }

    /// Appends rows; their string and dynamic cells share the equal texts and values already
    /// kept.
    pub fn push(&mut self, kind: TableKind, mut rows: Vec<Row>) {
        for r in &mut rows {
            for c in &mut r.cells {
                self.strings.share(c);
            }
        }
        if let Some(t) = self.db.get_mut(kind.name()) {
            append_rows(t, rows);
        }
    }

    /// Adds an empty table (a custom table fed by the Logs Ingestion API), or leaves an
    /// existing one alone.
    pub fn add_table(&mut self, name: &str, columns: &[(String, ColType)]) {
        if self.db.get(name).is_none() {
            let cols = columns
                .iter()
                .map(|(n, t)| kql::Column::new(n.clone(), *t))
                .collect();
            self.db.insert(name, kql::Table::new(name, cols));
        }
    }

    /// Appends rows to a table by name (their texts shared as `push` shares them); false when
    /// there is no such table. Amortised O(rows appended): nothing is copied or rescanned.
    pub fn push_rows(&mut self, name: &str, mut rows: Vec<Row>) -> bool {
        for r in &mut rows {
            for c in &mut r.cells {
                self.strings.share(c);
            }
        }
        match self.db.get_mut(name) {
            Some(t) => {
                append_rows(t, rows);
                true
            }
            None => false,
        }
    }

    /// The tables other than `SecurityIncident` and `SecurityAlert` (custom tables), sorted.
    pub fn custom_tables(&self) -> Vec<&str> {
        self.db
            .table_names()
            .into_iter()
            .filter(|n| TableKind::from_name(n).is_none())
            .collect()
    }

    /// A table's rows as JSON objects keyed by column name (dynamic values inline).
    pub fn rows_json(&self, name: &str) -> Vec<Json> {
        let Some(t) = self.db.get(name) else {
            return Vec::new();
        };
        t.rows
            .iter()
            .map(|cells| {
                let mut map = Map::new();
                for (col, cell) in t.columns.iter().zip(cells) {
                    map.insert(col.name.clone(), cell_json(cell));
                }
                Json::Object(map)
            })
            .collect()
    }

    /// How many distinct texts the string cells hold.
    pub fn distinct_texts(&self) -> usize {
        self.strings.len()
    }

    /// How many distinct values the dynamic cells hold.
    pub fn distinct_dynamics(&self) -> usize {
        self.strings.dynamic_len()
    }

    /// A database holding these tables and the rows of `others` (a query over several
    /// workspaces), each row with its ingestion time.
    pub fn union_db(&self, others: &[&WorkspaceTables]) -> kql::Database {
        let mut db = self.db.clone();
        // Every table of every workspace (custom tables too); one a workspace lacks is
        // taken whole from the first that has it.
        let mut names: Vec<String> = self
            .db
            .table_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        for o in others {
            for n in o.db.table_names() {
                if !names.iter().any(|x| x == n) {
                    names.push(n.to_string());
                    if let Some(t) = o.db.get(n) {
                        let empty = kql::Table::new(n, t.columns.clone());
                        db.insert(n, empty);
                    }
                }
            }
        }
        for name in &names {
            let Some(t) = db.get_mut(name) else {
                continue;
            };
            for o in others {
                let Some(more) = o.db.get(name) else {
                    continue;
                };
                if more.columns != t.columns {
                    continue;
                }
                let rows = more
                    .rows
                    .iter()
                    .enumerate()
                    .filter_map(|(i, cells)| {
                        more.ingestion_time(i).map(|at| Row {
                            visible_at: at,
                            cells: cells.clone(),
                        })
                    })
                    .collect();
                append_rows(t, rows);
            }
        }
        db
    }
}

/// A row's JSON object (dynamic values inline), from its cells.
pub fn row_json(kind: TableKind, cells: &[Cell]) -> Json {
    let mut map = Map::new();
    for ((name, _), cell) in kind.schema().iter().zip(cells) {
        map.insert((*name).to_string(), cell_json(cell));
    }
    Json::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_time_writes_what_the_format_string_wrote() {
        for (secs, nanos) in [
            (0, 0),
            (1_796_371_200, 0),
            (1_796_371_200, 1),
            (1_796_371_299, 553_333_300),
            (253_402_300_799, 999_999_999),
        ] {
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            let old = if nanos == 0 {
                t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            } else {
                format!("{}.{:07}Z", t.format("%Y-%m-%dT%H:%M:%S"), nanos / 100)
            };
            assert_eq!(format_time(t), old);
        }
    }
}
