//! The evaluator's intermediate table: a set of lazily gathered columns. A column is a store
//! (a column of a borrowed input table, or owned computed values) seen through an optional
//! selection vector of row indices, so `where`, `summarize arg_max`, `join`, `sort` and
//! `mv-expand` move indices instead of copying cells, and input tables are never cloned.

use std::collections::HashMap;
use std::sync::Arc;

use crate::table::{Column, Table};
use crate::value::{ColumnType, Value};

/// A selection index that reads as the column type's null (outer-join padding).
pub const NULL_ROW: u32 = u32::MAX;

/// Where a column's cells live.
#[derive(Clone)]
pub enum Store<'a> {
    /// Column `.1` of the borrowed table `.0`.
    Base(&'a Table, usize),
    /// Computed values.
    Owned(Arc<Vec<Value>>),
    /// The ingestion times of the borrowed table (null past their end).
    Ingestion(&'a Table),
    /// Columns one after another (a `union`'s legs), read in place.
    Concat(Arc<Concat<'a>>),
    /// Only nulls (a union leg without the column): every row reads as the column's null.
    Nulls,
}

/// Columns read one after another: row `r` is row `r - starts[k]` of part `k`, the last part
/// whose start is at most `r`.
pub struct Concat<'a> {
    parts: Vec<Col<'a>>,
    /// The first row of each part, ascending; `starts[0]` is 0.
    starts: Vec<usize>,
}

impl<'a> Concat<'a> {
    /// A column of `parts`, each given with its number of rows.
    pub fn column(parts: Vec<(Col<'a>, usize)>, null: Value) -> Col<'a> {
        let mut starts = Vec::with_capacity(parts.len());
        let mut next = 0;
        let parts = parts
            .into_iter()
            .map(|(c, len)| {
                starts.push(next);
                next += len;
                c
            })
            .collect();
        Col {
            store: Store::Concat(Arc::new(Concat { parts, starts })),
            sel: None,
            null,
        }
    }

    #[inline]
    fn get(&self, row: usize) -> &Value {
        // Unions have a few legs: a linear scan from the end beats a binary search.
        let k = self.starts.iter().rposition(|&s| s <= row).unwrap_or(0);
        self.parts[k].get(row - self.starts[k])
    }
}

/// What a missing ingestion time reads as.
static NO_INGESTION_TIME: Value = Value::Null;

/// One column: a store, a selection over it, and the null to show for `NULL_ROW`.
#[derive(Clone)]
pub struct Col<'a> {
    pub store: Store<'a>,
    pub sel: Option<Arc<Vec<u32>>>,
    pub null: Value,
}

impl<'a> Col<'a> {
    #[inline]
    pub fn get(&self, row: usize) -> &Value {
        let i = match &self.sel {
            Some(s) => {
                let i = s[row];
                if i == NULL_ROW {
                    return &self.null;
                }
                i as usize
            }
            None => row,
        };
        match &self.store {
            Store::Base(t, c) => &t.rows[i][*c],
            Store::Owned(v) => &v[i],
            Store::Ingestion(t) => t.ingestion_values().get(i).unwrap_or(&NO_INGESTION_TIME),
            Store::Concat(c) => c.get(i),
            Store::Nulls => &self.null,
        }
    }
}

/// A column's name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub name: String,
    pub ty: ColumnType,
}

/// An intermediate result.
#[derive(Clone)]
pub struct Frame<'a> {
    pub meta: Vec<Meta>,
    pub cols: Vec<Col<'a>>,
    pub len: usize,
    /// The name given by `as` or the table's name (for `union withsource`).
    pub label: Option<String>,
    /// The hidden ingestion-time column of the rows, while they are still table rows (see
    /// `operators` for which operators keep it); None reads as null.
    pub ingest: Option<Col<'a>>,
    /// True for a serialized row set, where window functions may be used (see
    /// `operators::serialized_after`).
    pub serialized: bool,
}

impl<'a> Frame<'a> {
    /// A view of a whole input table, optionally restricted to the rows in `sel`.
    pub fn from_table(t: &'a Table, sel: Option<Vec<u32>>) -> Frame<'a> {
        let len = sel.as_ref().map_or(t.rows.len(), Vec::len);
        let sel = sel.map(Arc::new);
        Frame {
            meta: t
                .columns
                .iter()
                .map(|c| Meta {
                    name: c.name.clone(),
                    ty: c.ty,
                })
                .collect(),
            cols: t
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| Col {
                    store: Store::Base(t, i),
                    sel: sel.clone(),
                    null: c.ty.null_value(),
                })
                .collect(),
            len,
            label: Some(t.name.clone()),
            ingest: t.has_ingestion_times().then_some(Col {
                store: Store::Ingestion(t),
                sel,
                null: Value::Null,
            }),
            serialized: false,
        }
    }

    /// A frame of owned columns (column-major).
    pub fn from_columns(meta: Vec<Meta>, data: Vec<Vec<Value>>, len: usize) -> Frame<'a> {
        let cols = meta
            .iter()
            .zip(data)
            .map(|(m, d)| Col {
                store: Store::Owned(Arc::new(d)),
                sel: None,
                null: m.ty.null_value(),
            })
            .collect();
        Frame {
            meta,
            cols,
            len,
            label: None,
            ingest: None,
            serialized: false,
        }
    }

    /// An owned column of `len` values.
    pub fn owned_col(ty: ColumnType, data: Vec<Value>) -> Col<'a> {
        Col {
            store: Store::Owned(Arc::new(data)),
            sel: None,
            null: ty.null_value(),
        }
    }

    #[inline]
    pub fn get(&self, col: usize, row: usize) -> &Value {
        self.cols[col].get(row)
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.meta.iter().position(|m| m.name == name)
    }

    /// The rows `idx` (in that order; `NULL_ROW` gives a row of nulls), without copying cells.
    /// The ingestion time of `row` (null when the rows have none).
    #[inline]
    pub fn ingestion_time(&self, row: usize) -> &Value {
        match &self.ingest {
            Some(c) => c.get(row),
            None => &NO_INGESTION_TIME,
        }
    }

    /// The rows `idx` (in that order; `NULL_ROW` gives a row of nulls), without copying
    /// cells; the rows keep their ingestion times.
    pub fn gather(&self, idx: &[u32]) -> Frame<'a> {
        let mut cols = gather_cols(self.cols.iter().chain(self.ingest.as_ref()).cloned(), idx);
        let ingest = if self.ingest.is_some() {
            cols.pop()
        } else {
            None
        };
        Frame {
            meta: self.meta.clone(),
            cols,
            len: idx.len(),
            label: self.label.clone(),
            ingest,
            serialized: self.serialized,
        }
    }

    /// Copies the cells out into a `Table`.
    pub fn to_table(&self, name: &str) -> Table {
        let columns = self
            .meta
            .iter()
            .map(|m| Column::new(m.name.clone(), m.ty))
            .collect();
        let rows = crate::par::map(self.len, |r| {
            self.cols.iter().map(|c| c.get(r).clone()).collect()
        });
        Table::from_checked_rows(name, columns, rows)
    }
}

/// Composes each column's selection with `idx`, sharing the work between columns that share a
/// selection.
pub fn gather_cols<'a>(cols: impl IntoIterator<Item = Col<'a>>, idx: &[u32]) -> Vec<Col<'a>> {
    let mut cache: HashMap<usize, Arc<Vec<u32>>> = HashMap::new();
    let mut identity: Option<Arc<Vec<u32>>> = None;
    cols.into_iter()
        .map(|c| {
            let sel = match &c.sel {
                None => identity
                    .get_or_insert_with(|| Arc::new(idx.to_vec()))
                    .clone(),
                Some(s) => cache
                    .entry(Arc::as_ptr(s) as usize)
                    .or_insert_with(|| {
                        Arc::new(crate::par::map(idx.len(), |k| {
                            let i = idx[k];
                            if i == NULL_ROW {
                                NULL_ROW
                            } else {
                                s[i as usize]
                            }
                        }))
                    })
                    .clone(),
            };
            Col {
                store: c.store,
                sel: Some(sel),
                null: c.null,
            }
        })
        .collect()
}
