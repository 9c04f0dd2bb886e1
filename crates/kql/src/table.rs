//! Tables and the database: a named, typed, row-major table (`Table`) and the set of named
//! tables a query reads (`Database`), with cheap appends for the emulator.
//!
//! A table may carry one ingestion time per row, Kusto's hidden `$IngestionTime` column that
//! `ingestion_time()` reads (a table without them is a table without the IngestionTime
//! policy: `ingestion_time()` is null on its rows).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::error::LoadError;
use crate::keycodes::KeyCodes;
use crate::tableindex::{Indexes, KeyIndex, TimeColumn, TimeSource};
use crate::value::{ColumnType, Value};

/// A column: its name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
}

impl Column {
    /// A column named `name` of type `ty`.
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Column {
        Column {
            name: name.into(),
            ty,
        }
    }
}

/// A table: columns and rows (each row holds one value per column, in column order), and
/// optionally one ingestion time per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    /// The rows. Append to them (or remove some) freely, but do not change the cells of a
    /// row in place once the table has been queried: the indexes a query builds (`tableindex`)
    /// are extended with appended rows, not rebuilt.
    pub rows: Vec<Vec<Value>>,
    /// Ingestion time of each row (`Value::DateTime`, or `Value::Null` for a row appended
    /// without one); empty for a table without ingestion times. Kept as values so that the
    /// evaluator reads it like any other column. Rows pushed to `rows` directly have none.
    ingestion: Vec<Value>,
    /// Indexes built by queries (derived from the rows; ignored by equality).
    indexes: Indexes,
}

impl Table {
    /// An empty table with the given columns.
    pub fn new(name: impl Into<String>, columns: Vec<Column>) -> Table {
        Table {
            name: name.into(),
            columns,
            rows: Vec::new(),
            ingestion: Vec::new(),
            indexes: Indexes::default(),
        }
    }

    /// A table of rows whose width the caller has checked, without ingestion times.
    pub(crate) fn from_checked_rows(
        name: impl Into<String>,
        columns: Vec<Column>,
        rows: Vec<Vec<Value>>,
    ) -> Table {
        Table {
            name: name.into(),
            columns,
            rows,
            ingestion: Vec::new(),
            indexes: Indexes::default(),
        }
    }

    /// The table with the given ingestion time for each of its rows (one per row).
    pub fn with_ingestion_times(mut self, times: Vec<DateTime<Utc>>) -> Result<Table, LoadError> {
        if times.len() != self.rows.len() {
            return Err(LoadError::IngestionTimes {
                expected: self.rows.len(),
                found: times.len(),
            });
        }
        self.ingestion = times.into_iter().map(Value::DateTime).collect();
        // Rows that read as null before now have times.
        self.indexes.clear();
        Ok(self)
    }

    /// True when the table carries ingestion times (it was given some, by
    /// [`Table::with_ingestion_times`] or [`Table::append_ingested`]).
    pub fn has_ingestion_times(&self) -> bool {
        !self.ingestion.is_empty()
    }

    /// The ingestion time of `row`: None for a table without ingestion times, for a row
    /// appended without one, and for a row that does not exist.
    pub fn ingestion_time(&self, row: usize) -> Option<DateTime<Utc>> {
        match self.ingestion.get(row) {
            Some(Value::DateTime(d)) => Some(*d),
            _ => None,
        }
    }

    /// The ingestion times as values, one per row while the table has any (crate-internal:
    /// the evaluator's view of the hidden column).
    pub(crate) fn ingestion_values(&self) -> &[Value] {
        &self.ingestion
    }

    /// The rows of each text in column `c` (a string column, or a dynamic one by the strings
    /// of its values), indexed up to the table's current rows: `None` for another column.
    pub(crate) fn key_index(&self, c: usize) -> Option<std::sync::Arc<KeyIndex>> {
        self.indexes.key_index(self, c)
    }

    /// The key codes of column `c` (see `keycodes`), up to the table's current rows: `None`
    /// for a dynamic column.
    pub(crate) fn key_codes(&self, c: usize) -> Option<std::sync::Arc<KeyCodes>> {
        self.indexes.key_codes(self, c)
    }

    /// The times of a datetime column, or of the rows' ingestion times, as nanoseconds,
    /// indexed up to the table's current rows: `None` for a column of another type.
    pub(crate) fn time_column(&self, src: TimeSource) -> Option<std::sync::Arc<TimeColumn>> {
        self.indexes.time_column(self, src)
    }

    /// Appends rows ingested at `at` (amortised O(rows appended), like
    /// [`Table::append_rows`]). Earlier rows without a time read as null.
    pub fn append_ingested(
        &mut self,
        rows: Vec<Vec<Value>>,
        at: DateTime<Utc>,
    ) -> Result<(), LoadError> {
        let n = rows.len();
        self.append_rows(rows)?;
        // Rows before the first timed append (or pushed to `rows` directly) have no time.
        let before = self.rows.len() - n;
        self.ingestion.resize(before, Value::Null);
        self.ingestion.resize(self.rows.len(), Value::DateTime(at));
        Ok(())
    }

    /// A table from columns and rows; every row must have one value per column.
    pub fn from_rows(
        name: impl Into<String>,
        columns: Vec<Column>,
        rows: Vec<Vec<Value>>,
    ) -> Result<Table, LoadError> {
        let mut t = Table::new(name, columns);
        t.append_rows(rows)?;
        Ok(t)
    }

    /// Appends rows, checking their width (rows without an ingestion time).
    pub fn append_rows(&mut self, rows: Vec<Vec<Value>>) -> Result<(), LoadError> {
        let width = self.columns.len();
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != width) {
            return Err(LoadError::RowWidth {
                row: self.rows.len() + i,
                expected: width,
                found: r.len(),
            });
        }
        self.rows.extend(rows);
        if !self.ingestion.is_empty() {
            // A table with ingestion times: rows appended without one read as null.
            self.ingestion.resize(self.rows.len(), Value::Null);
        }
        Ok(())
    }

    /// The index of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The value at `row` in the column named `column`.
    pub fn get(&self, row: usize, column: &str) -> Option<&Value> {
        let c = self.column_index(column)?;
        self.rows.get(row)?.get(c)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The named tables a query can read. Table names are case-sensitive [kql-semantics.md §1.1].
#[derive(Debug, Clone, Default)]
pub struct Database {
    tables: HashMap<String, Table>,
}

impl Database {
    /// An empty database.
    pub fn new() -> Database {
        Database::default()
    }

    /// Adds or replaces the table `name` (the table's own `name` field is set to it).
    pub fn insert(&mut self, name: impl Into<String>, mut table: Table) {
        let name = name.into();
        table.name = name.clone();
        self.tables.insert(name, table);
    }

    /// The table `name`.
    pub fn get(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// The table `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Table> {
        self.tables.get_mut(name)
    }

    /// Removes and returns the table `name`.
    pub fn remove(&mut self, name: &str) -> Option<Table> {
        self.tables.remove(name)
    }

    /// Appends rows to the existing table `name` (amortised O(rows appended)).
    pub fn append(&mut self, name: &str, rows: Vec<Vec<Value>>) -> Result<(), LoadError> {
        match self.tables.get_mut(name) {
            Some(t) => t.append_rows(rows),
            None => Err(LoadError::NoSuchTable(name.to_string())),
        }
    }

    /// Appends rows ingested at `at` to the existing table `name` (amortised O(rows appended)).
    pub fn append_ingested(
        &mut self,
        name: &str,
        rows: Vec<Vec<Value>>,
        at: DateTime<Utc>,
    ) -> Result<(), LoadError> {
        match self.tables.get_mut(name) {
            Some(t) => t.append_ingested(rows, at),
            None => Err(LoadError::NoSuchTable(name.to_string())),
        }
    }

    /// The names of all tables, sorted.
    pub fn table_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.tables.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}
