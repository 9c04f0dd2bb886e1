//! Hash grouping of rows by key values, shared by `summarize`, `distinct` and `join`: rows
//! are assigned group ids in order of first appearance, and keys are hashed and compared in
//! place (no key is allocated per row; computed keys are stored once per group).

use std::hash::Hasher;

use hashbrown::HashTable;
use rustc_hash::FxHasher;

use crate::frame::Frame;
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
    /// One table per hash partition (see `partition_of`) of (full hash, group): the full hash
    /// sits in the probed bucket, so a mismatch costs no extra memory access.
    tables: Vec<HashTable<(u64, u32)>>,
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
        let mut h = FxHasher::default();
        for k in 0..n {
            hash_value(val(k), &mut h);
        }
        let hash = h.finish().max(1);
        self.tables[partition_of(hash, self.tables.len())]
            .find(hash, |&(h, g)| {
                let g = g as usize;
                h == hash && (0..n).all(|k| group_eq(&self.keys[g * n + k], val(k)))
            })
            .map(|&(_, g)| g)
    }
}

/// Groups the rows of `frame` by `keys`, numbering groups in order of first appearance.
/// With `skip_nulls`, rows with a null key (e.g. a join key, which never matches) get the
/// group `u32::MAX`.
///
/// Three passes: every row's hash (independent iterations, so cache misses on the row data
/// overlap, and split over threads on a large frame); the hash-table probes, one table per
/// hash partition, the partitions on parallel threads (a key's rows all fall in one
/// partition); then, in row order, the groups numbered by first appearance.
pub fn group_rows(frame: &Frame<'_>, keys: &[CExpr], skip_nulls: bool) -> Groups {
    group_rows_visit(frame, keys, skip_nulls, || (), |_, _, _| {}).0
}

/// One partition's grouping: its groups' keys and the local group of each of its rows, in
/// row order, and its visitor's state.
struct Partition<S> {
    state: S,
    table: HashTable<(u64, u32)>,
    /// The key values of each local group, `nk` per group.
    keys: Vec<Value>,
    of_row: Vec<u32>,
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
        let mut part = Partition {
            state: new_state(),
            table: HashTable::new(),
            keys: Vec::new(),
            of_row: Vec::new(),
        };
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
                    let g = part.table.len() as u32;
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
    let mut parts: Vec<Partition<S>> = crate::par::tasks(nparts, probe);
    // Global numbers in order of first appearance: a partition's local groups first appear
    // in the order of their numbers.
    let mut global: Vec<Vec<u32>> = parts
        .iter()
        .map(|p| Vec::with_capacity(p.table.len()))
        .collect();
    let mut next = vec![0usize; nparts];
    let mut of_row = Vec::with_capacity(n);
    let mut first_row: Vec<u32> = Vec::new();
    let mut group_keys: Vec<Value> = Vec::new();
    for (row, &hash) in row_hash.iter().enumerate() {
        if hash == SKIP {
            of_row.push(u32::MAX);
            continue;
        }
        let p = partition_of(hash, nparts);
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
    for (part, global) in parts.iter_mut().zip(&global) {
        for (_, g) in part.table.iter_mut() {
            *g = global[*g as usize];
        }
    }
    let mut tables = Vec::with_capacity(nparts);
    let mut states = Vec::with_capacity(nparts);
    for (part, global) in parts.into_iter().zip(global) {
        tables.push(part.table);
        states.push((part.state, global));
    }
    let groups = Groups {
        of_row,
        first_row,
        keys: group_keys,
        nkeys: nk,
        tables,
    };
    (groups, states)
}
