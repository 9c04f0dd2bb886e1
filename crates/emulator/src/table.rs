//! The two Log Analytics tables the emulator keeps, `SecurityIncident` and `SecurityAlert`:
//! their schemas (every column of the real tables, reference §7), typed cells, and the
//! append-only row store of one workspace. Rows carry the instant they become visible to
//! queries (their ingestion time), so a workspace's ingestion delay is honoured.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

/// A column type, as the query API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    String,
    DateTime,
    Int,
    Real,
    Bool,
    Dynamic,
}

impl ColType {
    /// The name the query API gives the type.
    pub fn api_name(self) -> &'static str {
        match self {
            ColType::String => "string",
            ColType::DateTime => "datetime",
            ColType::Int => "int",
            ColType::Real => "real",
            ColType::Bool => "bool",
            ColType::Dynamic => "dynamic",
        }
    }
}

/// One typed cell of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    String(String),
    DateTime(DateTime<Utc>),
    Int(i64),
    Real(f64),
    Bool(bool),
    Dynamic(Json),
}

impl Cell {
    /// The cell as plain JSON (dynamic values inline, times as RFC 3339 with 7 digits).
    pub fn to_json(&self) -> Json {
        match self {
            Cell::Null => Json::Null,
            Cell::String(s) => Json::String(s.clone()),
            Cell::DateTime(t) => Json::String(format_time(*t)),
            Cell::Int(i) => Json::from(*i),
            Cell::Real(r) => serde_json::Number::from_f64(*r)
                .map(Json::Number)
                .unwrap_or(Json::Null),
            Cell::Bool(b) => Json::Bool(*b),
            Cell::Dynamic(v) => v.clone(),
        }
    }

    /// The cell as a string, when it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Cell::String(s) => Some(s),
            _ => None,
        }
    }

    /// The cell as a time, when it is one.
    pub fn as_time(&self) -> Option<DateTime<Utc>> {
        match self {
            Cell::DateTime(t) => Some(*t),
            _ => None,
        }
    }
}

/// Times as Log Analytics writes them: RFC 3339, UTC, `Z`, 7 fractional digits when not whole.
pub fn format_time(t: DateTime<Utc>) -> String {
    if t.timestamp_subsec_nanos() == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        format!(
            "{}.{:07}Z",
            t.format("%Y-%m-%dT%H:%M:%S"),
            t.timestamp_subsec_nanos() / 100
        )
    }
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
            map.insert((*name).to_string(), cell.to_json());
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
            Json::String(s) => Ok(Cell::String(s.clone())),
            other => Ok(Cell::String(other.to_string())),
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
                .map(Cell::Int)
                .ok_or_else(|| "expected an integer".into()),
            Json::String(s) => s
                .parse()
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
        ColType::Dynamic => match v {
            // Exported dynamic values often arrive as JSON text: decode it when it parses.
            Json::String(s) => Ok(Cell::Dynamic(
                serde_json::from_str(s).unwrap_or_else(|_| Json::String(s.clone())),
            )),
            other => Ok(Cell::Dynamic(other.clone())),
        },
    }
}

/// The append-only tables of one workspace.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceTables {
    pub incidents: Vec<Row>,
    pub alerts: Vec<Row>,
}

impl WorkspaceTables {
    /// The rows of a table.
    pub fn rows(&self, kind: TableKind) -> &Vec<Row> {
        match kind {
            TableKind::SecurityIncident => &self.incidents,
            TableKind::SecurityAlert => &self.alerts,
        }
    }

    /// The rows of a table, mutably.
    pub fn rows_mut(&mut self, kind: TableKind) -> &mut Vec<Row> {
        match kind {
            TableKind::SecurityIncident => &mut self.incidents,
            TableKind::SecurityAlert => &mut self.alerts,
        }
    }
}
