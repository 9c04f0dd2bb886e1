//! Indexes of a table's rows, built on a query's first use and extended, not rebuilt, as the
//! table grows (the emulator's tables are append-only), so that a query over a large table
//! reads a few rows instead of chasing a pointer into every row:
//!
//! - [`KeyIndex`]: the rows of each text of a string column, or of each string in a dynamic
//!   column's values (an array's string elements, or the string itself), for the semi-join
//!   reduction (`semijoin`) with a small right side.
//! - [`KeyCodes`]: each row's cell of a column as a small integer, equal cells sharing one, for
//!   grouping and joining by that column (`grouping`).
//! - [`TimeColumn`]: a datetime column (or the rows' ingestion times) as a contiguous array of
//!   nanoseconds, for `where` comparisons of such a column with a constant (`fastwhere`).
//!
//! Both are derived data: they hold no more than the table's cells do, and a query reading
//! them sees the same rows, in the same order, as one reading the cells (the callers fall back
//! to the cells for any cell an index does not describe exactly). A table's indexes are kept
//! with it ([`Indexes`]), behind a lock, so concurrent queries over a shared table share them.
//!
//! They rely on rows never changing once appended: the row count is the version. A table whose
//! rows shrink is re-indexed from scratch; cells changed in place through `Table::rows` would
//! not be seen (nothing in this workspace does that: the emulator only appends).

use std::sync::{Arc, Mutex, MutexGuard};

use std::hash::BuildHasher;

use rustc_hash::{FxBuildHasher, FxHashMap};

use crate::keycodes::KeyCodes;
use crate::table::Table;
use crate::value::{ColumnType, Value};

/// The nanoseconds a [`TimeColumn`] holds for a row whose cell is not a datetime it can hold
/// exactly (null, another type, or outside ±292 years of 1970): read the cell instead.
pub const NOT_A_TIME: i64 = i64::MIN;

/// No entry (the end of a chain).
const END: u32 = u32::MAX;

/// Rows by key text: for each hash of a key, a chain of entries (row, previous entry with that
/// hash). Keys are kept as 64-bit hashes, not texts (no copy of a text, no write to a shared
/// one), and a lookup checks each row it finds against the cell, so a collision costs a read,
/// never a wrong row.
#[derive(Debug, Clone, Default)]
pub struct KeyIndex {
    /// How many rows of the table are indexed.
    rows: usize,
    /// The column indexed, and its type.
    col: usize,
    ty: Option<ColumnType>,
    /// The last entry of each key's hash.
    last: FxHashMap<u64, u32>,
    /// Entries: the row, and the previous entry with the same hash (`END` for none).
    entries: Vec<(u32, u32)>,
}

fn hash_of(key: &str) -> u64 {
    FxBuildHasher.hash_one(key)
}

impl KeyIndex {
    /// Appends to `out` the rows of `t` (the table indexed) holding `key` (in no particular
    /// order; a row of a dynamic column may come more than once).
    pub fn rows_of(&self, t: &Table, key: &str, out: &mut Vec<u32>) {
        let mut e = self.last.get(&hash_of(key)).copied().unwrap_or(END);
        while e != END {
            let (row, prev) = self.entries[e as usize];
            let cell = t.rows.get(row as usize).and_then(|r| r.get(self.col));
            if cell.is_some_and(|v| self.holds(v, key)) {
                out.push(row);
            }
            e = prev;
        }
    }

    /// True when `cell` holds `key` as the index reads cells (see `extend`).
    fn holds(&self, cell: &Value, key: &str) -> bool {
        let is_key = |j: &serde_json::Value| matches!(j, serde_json::Value::String(s) if s == key);
        match (cell, self.ty) {
            (Value::String(s), Some(ColumnType::String)) => &**s == key,
            (Value::Dynamic(j), Some(ColumnType::Dynamic)) => match &**j {
                serde_json::Value::Array(a) => a.iter().any(is_key),
                j => is_key(j),
            },
            _ => false,
        }
    }

    fn add(&mut self, key: &str, row: u32) {
        let e = self.entries.len() as u32;
        let prev = self.last.insert(hash_of(key), e).unwrap_or(END);
        self.entries.push((row, prev));
    }

    /// Indexes rows `self.rows..` of column `c` of `t`: its string cells when it is a string
    /// column, its dynamic cells when it is a dynamic one (a cell of the other kind, which
    /// only a table built without type checks holds, is left out, as the readers of the
    /// index leave it out).
    fn extend(&mut self, t: &Table, c: usize, ty: ColumnType) {
        self.col = c;
        self.ty = Some(ty);
        for (i, r) in t.rows.iter().enumerate().skip(self.rows) {
            let row = i as u32;
            match (r.get(c), ty) {
                (Some(Value::String(s)), ColumnType::String) => self.add(s, row),
                (Some(Value::Dynamic(j)), ColumnType::Dynamic) => match &**j {
                    serde_json::Value::String(s) => self.add(s, row),
                    serde_json::Value::Array(a) => {
                        for el in a {
                            if let serde_json::Value::String(s) = el {
                                self.add(s, row);
                            }
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        self.rows = t.rows.len();
    }
}

/// Where a [`TimeColumn`]'s times come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    /// The table's column at this index.
    Column(usize),
    /// The rows' ingestion times.
    Ingestion,
}

/// A datetime column as nanoseconds since 1970, one per row ([`NOT_A_TIME`] where the cell
/// must be read instead).
#[derive(Debug, Clone, Default)]
pub struct TimeColumn {
    pub nanos: Vec<i64>,
}

impl TimeColumn {
    fn extend(&mut self, t: &Table, src: TimeSource) {
        let from = self.nanos.len();
        let n = t.rows.len();
        self.nanos.reserve(n.saturating_sub(from));
        match src {
            TimeSource::Column(c) => {
                for r in &t.rows[from.min(n)..] {
                    self.nanos.push(nanos_of(r.get(c)));
                }
            }
            TimeSource::Ingestion => {
                let times = t.ingestion_values();
                for i in from..n {
                    self.nanos.push(nanos_of(times.get(i)));
                }
            }
        }
    }
}

/// The nanoseconds of a datetime cell, or [`NOT_A_TIME`].
pub fn nanos_of(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::DateTime(d)) => d
            .timestamp_nanos_opt()
            .filter(|&n| n != NOT_A_TIME)
            .unwrap_or(NOT_A_TIME),
        _ => NOT_A_TIME,
    }
}

#[derive(Debug, Clone, Default)]
struct State {
    keys: Vec<(usize, Arc<KeyIndex>)>,
    times: Vec<(TimeSource, Arc<TimeColumn>)>,
    codes: Vec<(usize, Arc<KeyCodes>)>,
}

/// A table's indexes, each built when a query first asks for it. Cloning a table shares them
/// (they describe the same rows); equality ignores them (they are derived from the rows).
#[derive(Default)]
pub struct Indexes {
    state: Mutex<State>,
}

impl Indexes {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while extending may have left an index half done: start again.
        self.state.lock().unwrap_or_else(|poisoned| {
            let mut g = poisoned.into_inner();
            *g = State::default();
            self.state.clear_poison();
            g
        })
    }

    /// Forgets every index (the rows they describe were replaced).
    pub fn clear(&mut self) {
        *self.lock() = State::default();
    }

    /// The key index of column `c` of `t` (whose indexes these are), up to date: `None` for a
    /// column that is neither string nor dynamic. A string column is indexed by its string
    /// cells, a dynamic one by its dynamic cells.
    pub fn key_index(&self, t: &Table, c: usize) -> Option<Arc<KeyIndex>> {
        let ty = t.columns.get(c).map(|col| col.ty)?;
        if !matches!(ty, ColumnType::String | ColumnType::Dynamic) {
            return None;
        }
        let mut st = self.lock();
        let ix = up_to_date(
            &mut st.keys,
            c,
            t.rows.len(),
            |ix| ix.rows,
            |ix| ix.extend(t, c, ty),
        );
        Some(ix)
    }

    /// The key codes of column `c` of `t` (whose indexes these are), up to date: `None` for a
    /// dynamic column (never a group or join key) or a column `t` does not have.
    pub fn key_codes(&self, t: &Table, c: usize) -> Option<Arc<KeyCodes>> {
        let ty = t.columns.get(c).map(|col| col.ty)?;
        if ty == ColumnType::Dynamic {
            return None;
        }
        let mut st = self.lock();
        let codes = up_to_date(
            &mut st.codes,
            c,
            t.rows.len(),
            |k| k.codes.len(),
            |k| k.extend(t, c),
        );
        Some(codes)
    }

    /// The times of `src` in `t` (whose indexes these are), up to date: `None` for a column
    /// that is not a datetime column.
    pub fn time_column(&self, t: &Table, src: TimeSource) -> Option<Arc<TimeColumn>> {
        if let TimeSource::Column(c) = src
            && t.columns.get(c).map(|col| col.ty) != Some(ColumnType::DateTime)
        {
            return None;
        }
        let mut st = self.lock();
        let col = up_to_date(
            &mut st.times,
            src,
            t.rows.len(),
            |c| c.nanos.len(),
            |c| c.extend(t, src),
        );
        Some(col)
    }
}

/// The index of `key` among `all` (added if missing), covering `rows` rows: `covered` tells
/// how many it covers, `extend` makes it cover them all (a shared index is copied first); an
/// index covering more rows than there are (rows removed) is rebuilt from scratch.
fn up_to_date<K: PartialEq, V: Clone + Default>(
    all: &mut Vec<(K, Arc<V>)>,
    key: K,
    rows: usize,
    covered: impl Fn(&V) -> usize,
    extend: impl FnOnce(&mut V),
) -> Arc<V> {
    let pos = match all.iter().position(|(k, _)| *k == key) {
        Some(p) => p,
        None => {
            all.push((key, Arc::default()));
            all.len() - 1
        }
    };
    let ix = &mut all[pos].1;
    if covered(ix) > rows {
        *ix = Arc::default();
    }
    if covered(ix) < rows {
        extend(Arc::make_mut(ix));
    }
    ix.clone()
}

impl Clone for Indexes {
    fn clone(&self) -> Indexes {
        Indexes {
            state: Mutex::new(self.lock().clone()),
        }
    }
}

impl PartialEq for Indexes {
    fn eq(&self, _: &Indexes) -> bool {
        true
    }
}

impl std::fmt::Debug for Indexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Indexes")
    }
}

/// The positions in a frame column (selection `sel` over base rows, `len` rows) of the base
/// rows `rows` (sorted, distinct), in increasing order: `None` when `sel` is not strictly
/// increasing (a selection made by a sort, a join or an `mv-expand`), where positions cannot
/// be found by search.
pub fn positions(sel: Option<&[u32]>, len: usize, rows: &[u32]) -> Option<Vec<u32>> {
    match sel {
        None => Some(
            rows.iter()
                .copied()
                .take_while(|&r| (r as usize) < len)
                .collect(),
        ),
        Some(s) => {
            if !s.windows(2).all(|w| w[0] < w[1]) {
                return None;
            }
            // `NULL_ROW` (u32::MAX) can only be last, and is never a table row.
            Some(
                rows.iter()
                    .filter_map(|r| s.binary_search(r).ok().map(|p| p as u32))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;

    fn table(rows: &[(&str, serde_json::Value)]) -> Table {
        let cols = vec![
            Column::new("s", ColumnType::String),
            Column::new("d", ColumnType::Dynamic),
            Column::new("t", ColumnType::DateTime),
        ];
        let rows = rows
            .iter()
            .enumerate()
            .map(|(i, (s, d))| {
                vec![
                    if s.is_empty() {
                        Value::Null
                    } else {
                        Value::string(s)
                    },
                    Value::dynamic(d.clone()),
                    if i % 3 == 2 {
                        Value::Null
                    } else {
                        Value::DateTime(chrono::DateTime::from_timestamp(i as i64, 0).unwrap())
                    },
                ]
            })
            .collect();
        Table::from_rows("T", cols, rows).unwrap()
    }

    fn rows_of(t: &Table, ix: &KeyIndex, k: &str) -> Vec<u32> {
        let mut v = vec![];
        ix.rows_of(t, k, &mut v);
        v.sort_unstable();
        v
    }

    #[test]
    fn key_index_finds_strings_and_array_elements_and_grows_with_the_table() {
        use serde_json::json;
        let mut t = table(&[
            ("a", json!(["x", "y", 3])),
            ("b", json!("x")),
            ("", json!({"x": 1})),
            ("a", json!(["y", "y"])),
        ]);
        let s = t.key_index(0).unwrap();
        assert_eq!(rows_of(&t, &s, "a"), vec![0, 3]);
        assert_eq!(rows_of(&t, &s, "b"), vec![1]);
        assert!(rows_of(&t, &s, "").is_empty());
        let d = t.key_index(1).unwrap();
        assert_eq!(rows_of(&t, &d, "x"), vec![0, 1]);
        assert_eq!(rows_of(&t, &d, "y"), vec![0, 3, 3]);
        assert!(rows_of(&t, &d, "3").is_empty());
        assert!(t.key_index(2).is_none());

        t.append_rows(vec![vec![
            Value::string("b"),
            Value::dynamic(json!(["x"])),
            Value::Null,
        ]])
        .unwrap();
        assert_eq!(rows_of(&t, &t.key_index(0).unwrap(), "b"), vec![1, 4]);
        assert_eq!(rows_of(&t, &t.key_index(1).unwrap(), "x"), vec![0, 1, 4]);
        // The index taken before the append is unchanged (shared, copied on extension).
        assert_eq!(rows_of(&t, &s, "b"), vec![1]);
        // A clone shares the indexes and grows its own.
        let mut u = t.clone();
        u.append_rows(vec![vec![
            Value::string("a"),
            Value::dynamic(json!([])),
            Value::Null,
        ]])
        .unwrap();
        assert_eq!(rows_of(&u, &u.key_index(0).unwrap(), "a"), vec![0, 3, 5]);
        assert_eq!(rows_of(&t, &t.key_index(0).unwrap(), "a"), vec![0, 3]);
        // Rows removed behind the index's back: rebuilt.
        u.rows.truncate(2);
        assert_eq!(rows_of(&u, &u.key_index(0).unwrap(), "a"), vec![0]);
        // A row found by its key's hash is checked against the cell (a collision is dropped).
        let ix = u.key_index(1).unwrap();
        assert!(ix.holds(&Value::dynamic(json!(["q", "x"])), "x"));
        assert!(ix.holds(&Value::dynamic(json!("x")), "x"));
        assert!(!ix.holds(&Value::dynamic(json!(["q", "xx"])), "x"));
        assert!(!ix.holds(&Value::string("x"), "x"));
        assert!(
            !u.key_index(0)
                .unwrap()
                .holds(&Value::dynamic(json!("a")), "a")
        );
    }

    #[test]
    fn time_column_marks_what_it_cannot_hold() {
        use serde_json::json;
        let mut t = table(&[("a", json!(1)), ("b", json!(1)), ("c", json!(1))]);
        let c = t.time_column(TimeSource::Column(2)).unwrap();
        assert_eq!(c.nanos, vec![0, 1_000_000_000, NOT_A_TIME]);
        assert!(t.time_column(TimeSource::Column(0)).is_none());
        // No ingestion times: every row reads the cell (null).
        assert_eq!(
            t.time_column(TimeSource::Ingestion).unwrap().nanos,
            vec![NOT_A_TIME; 3]
        );
        let far = chrono::DateTime::parse_from_rfc3339("9999-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        t.append_ingested(
            vec![vec![Value::Null, Value::Null, Value::DateTime(far)]],
            far,
        )
        .unwrap();
        assert_eq!(
            t.time_column(TimeSource::Column(2)).unwrap().nanos[3],
            NOT_A_TIME
        );
        assert_eq!(
            t.time_column(TimeSource::Ingestion).unwrap().nanos,
            vec![NOT_A_TIME; 4]
        );
    }

    #[test]
    fn positions_follow_the_selection() {
        assert_eq!(positions(None, 4, &[1, 3, 7]), Some(vec![1, 3]));
        assert_eq!(
            positions(Some(&[2, 3, 9, u32::MAX]), 4, &[3, 9]),
            Some(vec![1, 2])
        );
        assert_eq!(positions(Some(&[3, 2]), 2, &[3]), None);
        assert_eq!(positions(Some(&[3, 3]), 2, &[3]), None);
    }
}
