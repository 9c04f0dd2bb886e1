//! Hash grouping of rows by key values, shared by `summarize`, `distinct` and `join`: rows
//! are assigned group ids in order of first appearance, and keys are hashed and compared in
//! place (no key is allocated per row; computed keys are stored once per group).

use std::borrow::Cow;
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
    /// The group of each row.
    pub of_row: Vec<u32>,
    /// The first row of each group.
    pub first_row: Vec<u32>,
    /// Per group, the values of the keys that are not plain columns (in key order, only
    /// for those keys).
    pub computed: Vec<Vec<Value>>,
    table: HashTable<u32>,
}

impl Groups {
    pub fn len(&self) -> usize {
        self.first_row.len()
    }

    /// The group whose keys (plain columns `keys` of `frame`) equal `vals`.
    pub fn lookup(&self, frame: &Frame<'_>, keys: &[usize], vals: &[&Value]) -> Option<u32> {
        let mut h = FxHasher::default();
        for v in vals {
            hash_value(v, &mut h);
        }
        self.table
            .find(h.finish(), |&g| {
                keys.iter()
                    .zip(vals)
                    .all(|(&c, v)| group_eq(frame.get(c, self.first_row[g as usize] as usize), v))
            })
            .copied()
    }
}

/// Groups the rows of `frame` by `keys`. With `skip_nulls`, rows with a null key (e.g. a
/// join key, which never matches) get the group `u32::MAX`.
pub fn group_rows(frame: &Frame<'_>, keys: &[CExpr], skip_nulls: bool) -> Groups {
    let mut table: HashTable<u32> = HashTable::new();
    let mut hashes: Vec<u64> = Vec::new();
    let mut of_row = Vec::with_capacity(frame.len);
    let mut first_row: Vec<u32> = Vec::new();
    let mut computed: Vec<Vec<Value>> = Vec::new();
    let any_computed = keys.iter().any(|k| !matches!(k, CExpr::Col(_)));
    let mut vals: Vec<Cow<'_, Value>> = Vec::with_capacity(keys.len());
    for row in 0..frame.len {
        vals.clear();
        vals.extend(keys.iter().map(|k| eval(k, frame, row)));
        if skip_nulls && vals.iter().any(|v| v.is_null()) {
            of_row.push(u32::MAX);
            continue;
        }
        let mut h = FxHasher::default();
        for v in &vals {
            hash_value(v, &mut h);
        }
        let hash = h.finish();
        let found = table.find(hash, |&g| {
            let g = g as usize;
            let mut ci = 0;
            keys.iter().zip(&vals).all(|(k, v)| match k {
                CExpr::Col(c) => group_eq(frame.get(*c, first_row[g] as usize), v),
                _ => {
                    let r = group_eq(&computed[g][ci], v);
                    ci += 1;
                    r
                }
            })
        });
        let g = match found {
            Some(&g) => g,
            None => {
                let g = first_row.len() as u32;
                first_row.push(row as u32);
                hashes.push(hash);
                if any_computed {
                    computed.push(
                        keys.iter()
                            .zip(&vals)
                            .filter(|(k, _)| !matches!(k, CExpr::Col(_)))
                            .map(|(_, v)| v.as_ref().clone())
                            .collect(),
                    );
                }
                table.insert_unique(hash, g, |&x| hashes[x as usize]);
                g
            }
        };
        of_row.push(g);
    }
    Groups {
        of_row,
        first_row,
        computed,
        table,
    }
}
