//! Hash grouping of rows by key values, shared by `summarize`, `distinct` and `join`: rows
//! are assigned group ids in order of first appearance, and keys are hashed and compared in
//! place (no key is allocated per row; computed keys are stored once per group).

use std::hash::Hasher;

use hashbrown::HashTable;
use rustc_hash::FxHasher;

use std::sync::Arc;

use crate::frame::{Frame, NULL_ROW, Store};
use crate::keycodes::KeyCodes;
use crate::scalar::{CExpr, eval};
use crate::value::Value;

/// Hashes a value consistently with `group_eq`.
pub fn hash_value(v: &Value, h: &mut FxHasher) {
    match v {
        Value::Null => h.write_u8(0),
        Value::Bool(b) => {
            h.write_u8(1);
            h.write_u8(*b as u8);
        }
        Value::Int(i) => {
            h.write_u8(2);
            h.write_i64(*i as i64);
        }
        Value::Long(i) => {
            h.write_u8(2);
            h.write_i64(*i);
        }
        Value::Real(r) => {
            h.write_u8(3);
            let r = if *r == 0.0 { 0.0 } else { *r };
            h.write_u64(if r.is_nan() {
                0x7ff8_0000_0000_0000
            } else {
                r.to_bits()
            });
        }
        Value::String(s) => {
            h.write_u8(4);
            h.write(s.as_bytes());
            h.write_u8(0xff);
        }
        Value::DateTime(d) => {
            h.write_u8(5);
            h.write_i64(d.timestamp());
            h.write_u32(d.timestamp_subsec_nanos());
        }
        Value::TimeSpan(t) => {
            h.write_u8(6);
            h.write_i64(t.num_seconds());
            h.write_i32(t.subsec_nanos());
        }
        Value::Guid(g) => {
            h.write_u8(7);
            h.write(g.as_bytes());
        }
        Value::Dynamic(j) => {
            h.write_u8(8);
            h.write(j.to_string().as_bytes());
        }
    }
}

/// Equality for grouping: nulls group together, NaN with NaN, strings case-sensitively.
pub fn group_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Real(x), Value::Real(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Value::Int(x), Value::Long(y)) | (Value::Long(y), Value::Int(x)) => *x as i64 == *y,
        _ => a == b,
    }
}

/// Rows grouped by key.
pub struct Groups {
    /// The group of each row (`u32::MAX` for a skipped row).
    pub of_row: Vec<u32>,
    /// The first row of each group.
    pub first_row: Vec<u32>,
    /// The key values of each group, `nkeys` per group.
    pub keys: Vec<Value>,
    nkeys: usize,
    lookup: Lookup,
}

/// How `Groups::lookup_by` finds a key's group.
enum Lookup {
    /// One table per hash partition (see `partition_of`) of (full hash, group): the full hash
    /// sits in the probed bucket, so a mismatch costs no extra memory access.
    Hashed(Vec<HashTable<(u64, u32)>>),
    /// The rows were grouped by the key codes of a table's column (one key): a value's code,
    /// then the code's group.
    Coded {
        codes: Arc<KeyCodes>,
        /// The value of code `codes.values.len()`, when the rows' null (an outer join's
        /// padding) is not among the table's values.
        extra: Option<Value>,
        /// The group of each code (`u32::MAX` for none).
        group_of_code: Vec<u32>,
    },
}

/// The partition of a hash among `n` (the high bits: the tables index by the low ones).
#[inline]
fn partition_of(hash: u64, n: usize) -> usize {
    ((hash >> 40) % n as u64) as usize
}

impl Groups {
    pub fn len(&self) -> usize {
        self.first_row.len()
    }

    /// The value of key `k` of group `g`.
    pub fn key(&self, g: usize, k: usize) -> &Value {
        &self.keys[g * self.nkeys + k]
    }

    /// The group whose key `k` equals `val(k)` for every key.
    pub fn lookup_by<'v>(&self, val: impl Fn(usize) -> &'v Value) -> Option<u32> {
        let n = self.nkeys;
        match &self.lookup {
            Lookup::Hashed(tables) => {
                let mut h = FxHasher::default();
                for k in 0..n {
                    hash_value(val(k), &mut h);
                }
                let hash = h.finish().max(1);
                tables[partition_of(hash, tables.len())]
                    .find(hash, |&(h, g)| {
                        let g = g as usize;
                        h == hash && (0..n).all(|k| group_eq(&self.keys[g * n + k], val(k)))
                    })
                    .map(|&(_, g)| g)
            }
            Lookup::Coded {
                codes,
                extra,
                group_of_code,
            } => {
                let v = val(0);
                let code = match codes.code_of(v) {
                    Some(c) => c as usize,
                    None if extra.as_ref().is_some_and(|e| group_eq(e, v)) => codes.values.len(),
                    None => return None,
                };
                Some(group_of_code[code]).filter(|&g| g != u32::MAX)
            }
        }
    }
}

/// Groups the rows of `frame` by `keys`, numbering groups in order of first appearance.
/// With `skip_nulls`, rows with a null key (e.g. a join key, which never matches) get the
/// group `u32::MAX`.
///
/// Three passes: every row's hash (independent iterations, so cache misses on the row data
/// overlap, and split over threads on a large frame); the hash-table probes, one table per
/// hash partition, the partitions on parallel threads (a key's rows all fall in one
/// partition); then, in row order, the groups numbered by first appearance. A lone key that
/// is a column of a large part of an input table is read as the table's key codes instead
/// (`keycodes`): the first pass reads a code, the probes index an array by it.
pub fn group_rows(frame: &Frame<'_>, keys: &[CExpr], skip_nulls: bool) -> Groups {
    group_rows_visit(frame, keys, skip_nulls, || (), |_, _, _| {}).0
}

/// One partition's grouping: its groups' keys and the local group of each of its rows, in
/// row order, and its visitor's state.
struct Partition<S> {
    state: S,
    /// Its number of groups.
    groups: usize,
    /// Its hash table (grouping by hash only).
    table: HashTable<(u64, u32)>,
    /// The key values of each local group, `nk` per group.
    keys: Vec<Value>,
    of_row: Vec<u32>,
}

impl<S> Partition<S> {
    fn new(state: S) -> Partition<S> {
        Partition {
            state,
            groups: 0,
            table: HashTable::new(),
            keys: Vec::new(),
            of_row: Vec::new(),
        }
    }
}

/// Frames with fewer rows are grouped by hash: the key codes pay for themselves on large
/// frames only.
const MIN_CODED_ROWS: usize = 16 * 1024;

/// A skipped row's code in `Coded::row_code`.
const SKIP_CODE: u32 = u32::MAX;

/// A frame's rows as key codes (see `coded_rows`).
pub struct Coded {
    pub codes: Arc<KeyCodes>,
    /// The code of each row (`SKIP_CODE` for a skipped one).
    pub row_code: Vec<u32>,
    /// The value of code `codes.values.len()` (see `Lookup::Coded`).
    extra: Option<Value>,
}

impl Coded {
    fn value(&self, code: u32) -> &Value {
        match self.codes.values.get(code as usize) {
            Some(v) => v,
            None => self.extra.as_ref().unwrap_or(&Value::Null),
        }
    }
}

/// The key codes of the rows of column `c` of `frame` (codes up to `codes.values.len()`
/// included: the last one is a padding row's null when the table has no such value), on the
/// terms of `coded_rows`.
pub fn column_codes(frame: &Frame<'_>, c: usize) -> Option<Coded> {
    coded_rows(frame, &[CExpr::Col(c)], false)
}

/// The key codes of the rows of `frame`, when `keys` is one column of an input table and the
/// frame holds at least a quarter of that table's rows (the codes cover the whole table, and
/// the first query to use them builds them).
fn coded_rows(frame: &Frame<'_>, keys: &[CExpr], skip_nulls: bool) -> Option<Coded> {
    let [CExpr::Col(c)] = keys else {
        return None;
    };
    let col = frame.cols.get(*c)?;
    let Store::Base(t, tc) = &col.store else {
        return None;
    };
    if frame.len < MIN_CODED_ROWS || frame.len.saturating_mul(4) < t.rows.len() {
        return None;
    }
    let codes = t.key_codes(*tc)?;
    let ncodes = codes.values.len() as u32;
    // What a padding row (`NULL_ROW`) reads as: the column's null, coded as the table's
    // equal value, or as a code of its own past the table's.
    let (null_row_code, extra) = match codes.code_of(&col.null) {
        Some(code) => (code, None),
        None => (ncodes, Some(col.null.clone())),
    };
    let skip = |code: u32| {
        skip_nulls && (Some(code) == codes.null_code || (code == ncodes && col.null.is_null()))
    };
    let row_code = crate::par::map(frame.len, |row| {
        let code = match &col.sel {
            None => codes.codes[row],
            Some(s) => match s[row] {
                NULL_ROW => null_row_code,
                i => codes.codes[i as usize],
            },
        };
        if skip(code) { SKIP_CODE } else { code }
    });
    Some(Coded {
        codes,
        row_code,
        extra,
    })
}

/// `group_rows`, calling `visit(state, row, group)` for each grouped row during the probes
/// (so an aggregate can be computed without another pass over the rows). Each hash partition
/// has a `state` of its own (`new_state()`) and numbers its groups itself: a partition's rows
/// are visited in row order, and all the rows of a group are in one partition. Returned with
/// the groups: each partition's state and the global number of each of its groups.
pub fn group_rows_visit<S: Send>(
    frame: &Frame<'_>,
    keys: &[CExpr],
    skip_nulls: bool,
    new_state: impl Fn() -> S + Sync,
    visit: impl Fn(&mut S, usize, u32) + Sync,
) -> (Groups, Vec<(S, Vec<u32>)>) {
    match coded_rows(frame, keys, skip_nulls) {
        Some(coded) => group_coded(frame.len, coded, new_state, visit),
        None => group_hashed(frame, keys, skip_nulls, new_state, visit),
    }
}

/// `group_rows_visit` by the rows' key codes: a code's rows all fall in one partition (the
/// code modulo the partitions), and a partition finds a code's group in a dense array.
fn group_coded<S: Send>(
    n: usize,
    coded: Coded,
    new_state: impl Fn() -> S + Sync,
    visit: impl Fn(&mut S, usize, u32) + Sync,
) -> (Groups, Vec<(S, Vec<u32>)>) {
    let nparts = crate::par::partitions(n);
    let ncodes = coded.codes.values.len() + 1;
    let part_of = |row: usize| match coded.row_code[row] {
        SKIP_CODE => None,
        code => Some(code as usize % nparts),
    };
    let probe = |p: usize| -> Partition<S> {
        let mut part = Partition::new(new_state());
        let mut local = vec![u32::MAX; ncodes];
        for (row, &code) in coded.row_code.iter().enumerate() {
            if code == SKIP_CODE || code as usize % nparts != p {
                continue;
            }
            let slot = &mut local[code as usize];
            if *slot == u32::MAX {
                *slot = part.groups as u32;
                part.groups += 1;
                part.keys.push(coded.value(code).clone());
            }
            part.of_row.push(*slot);
            visit(&mut part.state, row, *slot);
        }
        part
    };
    let parts: Vec<Partition<S>> = crate::par::tasks(nparts, probe);
    let (of_row, first_row, keys, parts, global) = number_groups(n, 1, parts, part_of);
    let mut group_of_code = vec![u32::MAX; ncodes];
    for (g, &row) in first_row.iter().enumerate() {
        group_of_code[coded.row_code[row as usize] as usize] = g as u32;
    }
    let states = parts.into_iter().map(|p| p.state).zip(global).collect();
    let groups = Groups {
        of_row,
        first_row,
        keys,
        nkeys: 1,
        lookup: Lookup::Coded {
            codes: coded.codes,
            extra: coded.extra,
            group_of_code,
        },
    };
    (groups, states)
}

/// The groups' global numbers, in order of first appearance, from the partitions' local
/// ones (a partition's local groups first appear in the order of their numbers):
/// `(of_row, first_row, keys, parts, global)`, where `part_of(row)` is a row's partition
/// (`None`: skipped), the keys are moved out of the partitions, and `global[p]` holds the
/// global number of each local group of partition `p`.
#[allow(clippy::type_complexity)]
fn number_groups<S>(
    n: usize,
    nk: usize,
    mut parts: Vec<Partition<S>>,
    part_of: impl Fn(usize) -> Option<usize>,
) -> (
    Vec<u32>,
    Vec<u32>,
    Vec<Value>,
    Vec<Partition<S>>,
    Vec<Vec<u32>>,
) {
    let mut global: Vec<Vec<u32>> = parts.iter().map(|p| Vec::with_capacity(p.groups)).collect();
    let mut next = vec![0usize; parts.len()];
    let mut of_row = Vec::with_capacity(n);
    let mut first_row: Vec<u32> = Vec::new();
    let mut group_keys: Vec<Value> = Vec::new();
    for row in 0..n {
        let Some(p) = part_of(row) else {
            of_row.push(u32::MAX);
            continue;
        };
        let local = parts[p].of_row[next[p]] as usize;
        next[p] += 1;
        let g = if local == global[p].len() {
            let g = first_row.len() as u32;
            first_row.push(row as u32);
            global[p].push(g);
            // Moved, not cloned: the partition's copy is not needed any more.
            let keys = &mut parts[p].keys[local * nk..(local + 1) * nk];
            group_keys.extend(keys.iter_mut().map(|v| std::mem::replace(v, Value::Null)));
            g
        } else {
            global[p][local]
        };
        of_row.push(g);
    }
    (of_row, first_row, group_keys, parts, global)
}

/// `group_rows_visit` by the hashes of the rows' keys.
fn group_hashed<S: Send>(
    frame: &Frame<'_>,
    keys: &[CExpr],
    skip_nulls: bool,
    new_state: impl Fn() -> S + Sync,
    visit: impl Fn(&mut S, usize, u32) + Sync,
) -> (Groups, Vec<(S, Vec<u32>)>) {
    let n = frame.len;
    let nk = keys.len();
    let cols: Option<Vec<usize>> = keys
        .iter()
        .map(|k| match k {
            CExpr::Col(c) => Some(*c),
            _ => None,
        })
        .collect();
    // Computed keys are evaluated once, into `owned` (n × nk).
    let owned: Vec<Value> = if cols.is_none() {
        crate::par::map(n, |row| {
            keys.iter()
                .map(|k| eval(k, frame, row).into_owned())
                .collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect()
    } else {
        Vec::new()
    };
    let key_at = |row: usize, k: usize| -> &Value {
        match &cols {
            Some(c) => frame.get(c[k], row),
            None => &owned[row * nk + k],
        }
    };
    const SKIP: u64 = 0;
    let row_hash: Vec<u64> = crate::par::map(n, |row| {
        let mut h = FxHasher::default();
        let mut null = false;
        for k in 0..nk {
            let v = key_at(row, k);
            null |= v.is_null();
            hash_value(v, &mut h);
        }
        // A real hash of 0 is moved to 1 so that 0 can mark a skipped row.
        if skip_nulls && null {
            SKIP
        } else {
            h.finish().max(1)
        }
    });
    let nparts = crate::par::partitions(n);
    let probe = |p: usize| -> Partition<S> {
        let mut part = Partition::new(new_state());
        for (row, &hash) in row_hash.iter().enumerate() {
            if hash == SKIP || partition_of(hash, nparts) != p {
                continue;
            }
            let found = part.table.find(hash, |&(h, g)| {
                let g = g as usize;
                h == hash && (0..nk).all(|k| group_eq(&part.keys[g * nk + k], key_at(row, k)))
            });
            let g = match found {
                Some(&(_, g)) => g,
                None => {
                    let g = part.groups as u32;
                    part.groups += 1;
                    part.keys.extend((0..nk).map(|k| key_at(row, k).clone()));
                    part.table.insert_unique(hash, (hash, g), |&(h, _)| h);
                    g
                }
            };
            part.of_row.push(g);
            visit(&mut part.state, row, g);
        }
        part
    };
    let parts: Vec<Partition<S>> = crate::par::tasks(nparts, probe);
    let part_of = |row: usize| match row_hash[row] {
        SKIP => None,
        hash => Some(partition_of(hash, nparts)),
    };
    let (of_row, first_row, group_keys, parts, global) = number_groups(n, nk, parts, part_of);
    let mut tables = Vec::with_capacity(nparts);
    let mut states = Vec::with_capacity(nparts);
    for (mut part, global) in parts.into_iter().zip(global) {
        for (_, g) in part.table.iter_mut() {
            *g = global[*g as usize];
        }
        tables.push(part.table);
        states.push((part.state, global));
    }
    let groups = Groups {
        of_row,
        first_row,
        keys: group_keys,
        nkeys: nk,
        lookup: Lookup::Hashed(tables),
    };
    (groups, states)
}
