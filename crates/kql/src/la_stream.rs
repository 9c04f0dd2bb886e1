//! Streaming load of a Log Analytics response: reads `{"tables":[…]}` (first table) or one
//! table object from a reader, converting each cell as it is read (strings interned per
//! column), so a large export never exists as a whole `serde_json::Value` tree.

use std::cell::RefCell;
use std::fmt;
use std::io::Read;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value as J;

use crate::error::LoadError;
use crate::la_json::{Interner, wire_to_value_interned};
use crate::table::{Column, Table};
use crate::value::{ColumnType, Value};

/// Shared state of one load: the first structured error, kept aside because serde errors
/// are text.
#[derive(Default)]
struct State {
    error: RefCell<Option<LoadError>>,
}

impl State {
    fn fail<E: de::Error>(&self, e: LoadError) -> E {
        let msg = e.to_string();
        let mut slot = self.error.borrow_mut();
        if slot.is_none() {
            *slot = Some(e);
        }
        E::custom(msg)
    }
}

/// Reads a Log Analytics response (or one table object) from `r`.
pub fn read_table<R: Read>(r: R) -> Result<Table, LoadError> {
    let state = State::default();
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(r));
    let res = Top { state: &state }.deserialize(&mut de);
    let res = res.and_then(|t| de.end().map(|_| t));
    match res {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(LoadError::Shape(
            "no table found ('tables' is empty)".into(),
        )),
        Err(e) => Err(state
            .error
            .borrow_mut()
            .take()
            .unwrap_or_else(|| LoadError::Shape(e.to_string()))),
    }
}

/// The whole document: a response or a table object.
struct Top<'s> {
    state: &'s State,
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = Option<Table>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(TableVisitor {
            state: self.state,
            top: true,
        })
    }
}

/// A table object, or (at the top) a response whose `tables` holds tables.
struct TableVisitor<'s> {
    state: &'s State,
    top: bool,
}

impl<'de> Visitor<'de> for TableVisitor<'_> {
    type Value = Option<Table>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Log Analytics response or table object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut name: Option<String> = None;
        let mut columns: Option<Vec<Column>> = None;
        let mut rows: Option<Vec<Vec<Value>>> = None;
        let mut raw_rows: Option<Vec<J>> = None;
        let mut from_tables: Option<Option<Table>> = None;
        while let Some(key) = m.next_key::<String>()? {
            match key.as_str() {
                "tables" if self.top => {
                    from_tables = Some(m.next_value_seed(FirstTable { state: self.state })?);
                }
                "name" | "TableName" => name = Some(m.next_value::<String>()?),
                "columns" | "Columns" => {
                    let cols: Vec<J> = m.next_value()?;
                    let mut out = Vec::with_capacity(cols.len());
                    for (i, c) in cols.iter().enumerate() {
                        let cname = c
                            .get("name")
                            .or_else(|| c.get("ColumnName"))
                            .and_then(J::as_str)
                            .ok_or_else(|| {
                                self.state.fail(LoadError::Column {
                                    index: i,
                                    message: "missing 'name'".into(),
                                })
                            })?;
                        let tname = c
                            .get("type")
                            .or_else(|| c.get("ColumnType"))
                            .and_then(J::as_str)
                            .ok_or_else(|| {
                                self.state.fail(LoadError::Column {
                                    index: i,
                                    message: "missing 'type'".into(),
                                })
                            })?;
                        let ty: ColumnType = tname.parse().map_err(|e| {
                            self.state.fail(LoadError::Column {
                                index: i,
                                message: format!("{e}"),
                            })
                        })?;
                        out.push(Column::new(cname, ty));
                    }
                    columns = Some(out);
                }
                "rows" | "Rows" => match &columns {
                    Some(cols) => {
                        rows = Some(m.next_value_seed(RowsSeed {
                            state: self.state,
                            columns: cols,
                        })?)
                    }
                    // Rows before columns: keep them raw and convert at the end.
                    None => raw_rows = Some(m.next_value()?),
                },
                _ => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(t) = from_tables {
            return Ok(t);
        }
        let columns = columns.ok_or_else(|| {
            self.state
                .fail(LoadError::Shape("missing 'columns' array".into()))
        })?;
        let rows = match (rows, raw_rows) {
            (Some(r), _) => r,
            (None, Some(raw)) => {
                let obj = serde_json::json!({
                    "columns": columns.iter().map(|c| serde_json::json!({"name": c.name, "type": c.ty.as_str()})).collect::<Vec<_>>(),
                    "rows": raw,
                });
                Table::from_log_analytics_json(&obj)
                    .map_err(|e| self.state.fail(e))?
                    .rows
            }
            (None, None) => {
                return Err(self
                    .state
                    .fail(LoadError::Shape("missing 'rows' array".into())));
            }
        };
        Ok(Some(Table::from_checked_rows(
            name.unwrap_or_else(|| "PrimaryResult".into()),
            columns,
            rows,
        )))
    }
}

/// `tables`: the first table is read, the others skipped.
struct FirstTable<'s> {
    state: &'s State,
}

impl<'de> DeserializeSeed<'de> for FirstTable<'_> {
    type Value = Option<Table>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for FirstTable<'_> {
    type Value = Option<Table>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of tables")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        let first = s
            .next_element_seed(TableSeed { state: self.state })?
            .flatten();
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(first)
    }
}

struct TableSeed<'s> {
    state: &'s State,
}

impl<'de> DeserializeSeed<'de> for TableSeed<'_> {
    type Value = Option<Table>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(TableVisitor {
            state: self.state,
            top: false,
        })
    }
}

/// `rows`, converted cell by cell.
struct RowsSeed<'s, 'c> {
    state: &'s State,
    columns: &'c [Column],
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_, '_> {
    type Value = Vec<Vec<Value>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_, '_> {
    type Value = Vec<Vec<Value>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of rows")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        let mut interners: Vec<Interner> =
            self.columns.iter().map(|_| Interner::default()).collect();
        let mut rows = Vec::new();
        loop {
            let row = rows.len();
            let seed = RowSeed {
                state: self.state,
                columns: self.columns,
                interners: &mut interners,
                row,
            };
            match s.next_element_seed(seed)? {
                Some(r) => rows.push(r),
                None => break,
            }
        }
        Ok(rows)
    }
}

struct RowSeed<'s, 'c, 'i> {
    state: &'s State,
    columns: &'c [Column],
    interners: &'i mut Vec<Interner>,
    row: usize,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_, '_, '_> {
    type Value = Vec<Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, '_, '_> {
    type Value = Vec<Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row (an array of cells)")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        let n = self.columns.len();
        let mut out = Vec::with_capacity(n);
        while let Some(cell) = s.next_element::<J>()? {
            let k = out.len();
            if k >= n {
                return Err(self.state.fail(LoadError::RowWidth {
                    row: self.row,
                    expected: n,
                    found: k + 1,
                }));
            }
            let col = &self.columns[k];
            let v = wire_to_value_interned(&cell, col.ty, &mut self.interners[k]).map_err(
                |message| {
                    self.state.fail(LoadError::Cell {
                        row: self.row,
                        column: col.name.clone(),
                        message,
                    })
                },
            )?;
            out.push(v);
        }
        if out.len() != n {
            return Err(self.state.fail(LoadError::RowWidth {
                row: self.row,
                expected: n,
                found: out.len(),
            }));
        }
        Ok(out)
    }
}
