//! Tables and the database: a named, typed, row-major table (`Table`) and the set of named
//! tables a query reads (`Database`), with cheap appends for the emulator.

use std::collections::HashMap;

use crate::error::LoadError;
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

/// A table: columns and rows (each row holds one value per column, in column order).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// An empty table with the given columns.
    pub fn new(name: impl Into<String>, columns: Vec<Column>) -> Table {
        Table {
            name: name.into(),
            columns,
            rows: Vec::new(),
        }
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

    /// Appends rows, checking their width.
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

    /// The names of all tables, sorted.
    pub fn table_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.tables.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}
