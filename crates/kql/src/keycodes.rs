//! Key codes of a table's column: each row's cell as a small integer, cells that group
//! together (`grouping::group_eq`) sharing one code, numbered in order of first appearance.
//!
//! Grouping a large table's rows by one of its columns (`summarize … by SystemAlertId`,
//! `distinct`, a join's right side) otherwise hashes and compares every row's cell, a pointer
//! chase into the row and another into the string, on every query. With the codes, the same
//! grouping reads a contiguous array of integers and indexes a dense array by them
//! (`grouping`). The codes are derived data, built on a query's first use and extended, not
//! rebuilt, as the table grows (kept with the table's other indexes, `tableindex`): the
//! emulator's tables are queried every cycle and only appended to.

use std::hash::Hasher;

use hashbrown::HashTable;
use rustc_hash::FxHasher;

use crate::grouping::{group_eq, hash_value};
use crate::table::Table;
use crate::value::Value;

/// What a row without the column reads as (a table built without type checks may hold
/// short rows).
static MISSING: Value = Value::Null;

fn cell(r: &[Value], c: usize) -> &Value {
    r.get(c).unwrap_or(&MISSING)
}

/// The codes of one column of a table (see the module's documentation).
#[derive(Debug, Clone, Default)]
pub struct KeyCodes {
    /// The code of each row's cell, for the rows indexed so far.
    pub codes: Vec<u32>,
    /// The cell of each code (the first row's, shared: strings and dynamic values are
    /// reference-counted).
    pub values: Vec<Value>,
    /// The code whose value is null, if any row holds a null.
    pub null_code: Option<u32>,
    /// (hash, code) of each code, for finding a value's code.
    table: HashTable<(u64, u32)>,
}

fn hash_of(v: &Value) -> u64 {
    let mut h = FxHasher::default();
    hash_value(v, &mut h);
    h.finish()
}

impl KeyCodes {
    /// The code of `v`, when some indexed row holds a value that groups with it.
    pub fn code_of(&self, v: &Value) -> Option<u32> {
        self.find(hash_of(v), v)
    }

    /// The code of `v`, whose hash is `hash`.
    fn find(&self, hash: u64, v: &Value) -> Option<u32> {
        self.table
            .find(hash, |&(h, c)| {
                h == hash && group_eq(&self.values[c as usize], v)
            })
            .map(|&(_, c)| c)
    }

    /// Codes rows `self.codes.len()..` of column `c` of `t`. The cells' hashes are computed
    /// in parallel; the codes are then given in row order, so that they do not depend on the
    /// number of threads.
    pub(crate) fn extend(&mut self, t: &Table, c: usize) {
        let from = self.codes.len().min(t.rows.len());
        let rows = &t.rows[from..];
        let hashes = crate::par::map(rows.len(), |i| hash_of(cell(&rows[i], c)));
        self.codes.reserve(rows.len());
        for (r, hash) in rows.iter().zip(hashes) {
            let v = cell(r, c);
            let found = self.find(hash, v);
            let code = match found {
                Some(code) => code,
                None => {
                    let code = self.values.len() as u32;
                    if v.is_null() && self.null_code.is_none() {
                        self.null_code = Some(code);
                    }
                    self.values.push(v.clone());
                    self.table.insert_unique(hash, (hash, code), |&(h, _)| h);
                    code
                }
            };
            self.codes.push(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;
    use crate::value::ColumnType;

    fn table(cells: &[Value]) -> Table {
        let mut t = Table::new("T", vec![Column::new("K", ColumnType::String)]);
        t.rows = cells.iter().map(|v| vec![v.clone()]).collect();
        t
    }

    #[test]
    fn equal_cells_share_a_code_numbered_by_first_appearance() {
        let s = Value::string;
        let t = table(&[s("b"), s("a"), s("b"), Value::Null, s("a"), Value::Null]);
        let mut kc = KeyCodes::default();
        kc.extend(&t, 0);
        assert_eq!(kc.codes, vec![0, 1, 0, 2, 1, 2]);
        assert_eq!(kc.values, vec![s("b"), s("a"), Value::Null]);
        assert_eq!(kc.null_code, Some(2));
        assert_eq!(kc.code_of(&s("a")), Some(1));
        assert_eq!(kc.code_of(&s("A")), None, "codes compare case-sensitively");
    }

    #[test]
    fn extending_codes_only_the_new_rows_and_keeps_the_old_codes() {
        let s = Value::string;
        let mut t = table(&[s("x"), s("y")]);
        let mut kc = KeyCodes::default();
        kc.extend(&t, 0);
        t.rows.push(vec![s("y")]);
        t.rows.push(vec![s("z")]);
        t.rows.push(vec![]);
        kc.extend(&t, 0);
        assert_eq!(kc.codes, vec![0, 1, 1, 2, 3]);
        assert_eq!(kc.null_code, Some(3), "a short row reads as null");
    }
}
