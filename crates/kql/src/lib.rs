//! `kql`: a Kusto Query Language engine for the queries dfcsync sends, over in-memory tables.
//!
//! A query is lexed, parsed, bound against the tables of a [`Database`] and evaluated, with
//! Kusto semantics as Microsoft documents them (see `shared/reference/kql-semantics.md`).
//! Results and errors come in the Log Analytics query API's formats.
//!
//! ```
//! use kql::{Database, QueryOptions, Table, run};
//! let db = Database::new();
//! let opts = QueryOptions::new(chrono::Utc::now());
//! let t: Table = run("print x = 1 + 2", &db, &opts).unwrap();
//! assert_eq!(t.rows[0][0], kql::Value::Long(3));
//! ```
//!
//! Rows can carry their ingestion time (`ingestion_time()`), and a query can be limited to the
//! rows ingested by a given instant without copying the tables:
//!
//! ```
//! use kql::{Column, ColumnType, Database, QueryOptions, Table, Value, run};
//! let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
//! let mut db = Database::new();
//! db.insert("T", Table::new("T", vec![Column::new("A", ColumnType::Long)]));
//! db.append_ingested("T", vec![vec![Value::Long(1)]], at("2026-01-01T10:00:00Z")).unwrap();
//! db.append_ingested("T", vec![vec![Value::Long(2)]], at("2026-01-01T11:00:00Z")).unwrap();
//! let mut opts = QueryOptions::new(at("2026-01-02T00:00:00Z"));
//! let q = "T | where ingestion_time() > datetime(2026-01-01T10:30:00Z) | count";
//! assert_eq!(run(q, &db, &opts).unwrap().rows[0][0], Value::Long(1));
//! opts.ingested_by = Some(at("2026-01-01T10:30:00Z"));
//! assert_eq!(run("T | count", &db, &opts).unwrap().rows[0][0], Value::Long(1));
//! ```

mod aggregates;
mod ast;
mod engine;
pub mod error;
mod fastwhere;
mod frame;
mod functions;
mod grouping;
mod keycodes;
pub mod la_json;
mod la_stream;
mod lexer;
mod names;
mod operators;
mod par;
mod parser;
mod scalar;
mod semijoin;
mod strops;
pub mod table;
mod tableindex;
pub mod value;

pub use error::{KqlError, KqlErrorKind, LoadError};
pub use la_json::response_json;
pub use table::{Column, Database, Table};
pub use uuid::Uuid;
pub use value::{ColumnType, Value};

use chrono::{DateTime, Utc};

/// The inputs of an evaluation besides the query and the data.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOptions {
    /// The instant `now()` and `ago()` use: one instant for the whole query
    /// [kql-semantics.md §1.5].
    pub now: DateTime<Utc>,
    /// Log Analytics' `timespan`: when set, every table read is first filtered to rows whose
    /// `TimeGenerated` lies in `[start, end)` (tables without that column are not filtered).
    pub timespan: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// A visibility cut-off on ingestion: when set, rows whose ingestion time is later than
    /// it are not in the tables the query reads at all (applied with the timespan, before any
    /// operator). Rows without an ingestion time are always visible.
    pub ingested_by: Option<DateTime<Utc>>,
}

impl QueryOptions {
    /// Options with the given clock, no timespan and no ingestion cut-off.
    pub fn new(now: DateTime<Utc>) -> QueryOptions {
        QueryOptions {
            now,
            timespan: None,
            ingested_by: None,
        }
    }
}

/// Runs `query` over `db` and returns the result of its last tabular statement (named
/// `PrimaryResult`). Input tables are borrowed, never copied whole.
pub fn run(query: &str, db: &Database, opts: &QueryOptions) -> Result<Table, KqlError> {
    engine::run_query(query, db, opts)
}
