//! Semi-join reduction: a `join` that keeps only left rows whose key the right side has
//! (`inner`, `innerunique`, `leftsemi`, `rightsemi`) on one string key lets the engine drop,
//! early, the left rows whose key the right side lacks, so the operators between where the key
//! appears and the join (`where`, `distinct`, `mv-expand`) do not work on rows the join would
//! drop anyway. It pays when the right side is small beside the left one, as in dfcsync's
//! change-feed query (a few changed incidents against a whole workspace).
//!
//! The result is the same: the reduction only removes left rows the join would drop, and the
//! operators it passes commute with removing them (`where` is row by row on a non-serialized
//! row set, `distinct` groups on columns that include the key, `mv-expand` of other columns
//! copies the key). At an `mv-expand` that makes the key, a row is kept when one of its
//! elements is a key of the right side. The right side is evaluated before the left side's
//! operators from that point on (a query with errors in both may report the other one first).
//!
//! Where the key column is still a column of an input table, seen through a selection in
//! table order (a table, or a `let` of one filtered by `where`), the rows to keep are found
//! with the table's key index (`tableindex::KeyIndex`): a lookup per right key instead of a
//! pass over every left row. The rows kept, and their order, are the same.

use rustc_hash::FxHashSet as HashSet;

use crate::ast::{ExprKind, JoinKind, Operator, Pipeline};
use crate::engine::Engine;
use crate::error::KqlError;
use crate::frame::{Col, Frame, Store};
use crate::scalar::{CExpr, eval};
use crate::tableindex::positions;
use crate::value::{ColumnType, Value};

/// The reduction is applied when the right side has at most 1/`MAX_RIGHT_SHARE` of the left
/// side's rows: dfcsync's full sync query, whose joins' right sides have a quarter to a half
/// of their left sides' rows, ran 9 % slower with it (5.75 s against 5.29 s at 100,000
/// incidents, `docs/benchmarks.md`), its change-feed query (a few hundred rows against
/// hundreds of thousands) 3 to 10 times faster.
pub const MAX_RIGHT_SHARE: usize = 8;

/// Where a join's key set is applied to its left side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// To the column named as the join's left key, before operator `.0` (0: the source).
    Column(usize),
    /// To the elements of the `mv-expand` at operator `.0`, the one that makes the key.
    Expand(usize),
}

/// A planned reduction: the join at operator `join` of a pipeline, applied at `at`.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub join: usize,
    pub at: At,
}

/// The reductions of a pipeline's joins, at most one per join.
pub fn plan(p: &Pipeline) -> Vec<Plan> {
    let mut out = Vec::new();
    for (j, op) in p.ops.iter().enumerate() {
        let Operator::Join { kind, on, .. } = op else {
            continue;
        };
        if !matches!(
            kind,
            JoinKind::Inner | JoinKind::InnerUnique | JoinKind::LeftSemi | JoinKind::RightSemi
        ) || on.len() != 1
        {
            continue;
        }
        if let Some(at) = point(&p.ops[..j], &on[0].left) {
            out.push(Plan { join: j, at });
        }
    }
    out
}

/// How far back from the join the key set can go through `ops` (the operators before it).
fn point(ops: &[Operator], key: &str) -> Option<At> {
    for (k, op) in ops.iter().enumerate().rev() {
        match op {
            Operator::Where(_) => {}
            Operator::Distinct(Some(items), _) => {
                // Plain columns only, the key among them.
                let mut has_key = false;
                for it in items {
                    let ExprKind::Name(n) = &it.expr.kind else {
                        return None;
                    };
                    if it.name.as_deref().is_some_and(|m| m != n) {
                        return None;
                    }
                    has_key |= n == key;
                }
                if !has_key {
                    return None;
                }
            }
            Operator::MvExpand {
                item_index, items, ..
            } => {
                if item_index.as_deref() == Some(key) {
                    return None;
                }
                let mut makes_key = false;
                for it in items {
                    let name = match (&it.name, &it.expr.kind) {
                        (Some(n), _) => n,
                        (None, ExprKind::Name(n)) => n,
                        // A generated name: it could be the key's.
                        _ => return None,
                    };
                    if name == key {
                        if it.to_type != Some(ColumnType::String) || items.len() != 1 {
                            return None;
                        }
                        makes_key = true;
                    }
                }
                if makes_key {
                    return Some(At::Expand(k));
                }
            }
            _ => return None,
        }
    }
    Some(At::Column(0))
}

/// The join keys of the right side `r` for the condition's right column: `None` when the
/// reduction does not apply (not a string key, or an empty string among the keys, which an
/// `mv-expand` also makes of a non-string element).
pub fn right_keys<'r>(r: &'r Frame<'_>, right_col: &str) -> Option<HashSet<&'r str>> {
    let c = r.index_of(right_col)?;
    if r.meta[c].ty != ColumnType::String {
        return None;
    }
    let mut keys = HashSet::default();
    for row in 0..r.len {
        match r.get(c, row) {
            Value::String(s) if s.is_empty() => return None,
            Value::String(s) => {
                keys.insert(&**s);
            }
            _ => {}
        }
    }
    Some(keys)
}

/// `f` without the rows the join cannot match: those whose `key` column (a string) is not in
/// `keys`. `None` when `f` has no such string column or is serialized.
pub fn reduce_column<'a>(f: &Frame<'a>, key: &str, keys: &HashSet<&str>) -> Option<Frame<'a>> {
    let c = f.index_of(key)?;
    if f.meta[c].ty != ColumnType::String || f.serialized {
        return None;
    }
    if keys.is_empty() {
        return Some(f.gather(&[]));
    }
    let keep: Vec<u32> = match indexed(&f.cols[c], f.len, keys, ColumnType::String) {
        Some(keep) => keep,
        None => (0..f.len)
            .filter(|&r| matches!(f.get(c, r), Value::String(s) if keys.contains(&**s)))
            .map(|r| r as u32)
            .collect(),
    };
    Some(if keep.len() == f.len {
        f.clone()
    } else {
        f.gather(&keep)
    })
}

/// `f` without the rows whose expansion by the `mv-expand` `op` (one item, to string) gives
/// no key in `keys`. `None` when it does not apply.
pub fn reduce_expand<'a>(
    eng: &Engine<'a>,
    f: &Frame<'a>,
    op: &Operator,
    keys: &HashSet<&str>,
) -> Result<Option<Frame<'a>>, KqlError> {
    let Operator::MvExpand { items, .. } = op else {
        return Ok(None);
    };
    let [item] = items.as_slice() else {
        return Ok(None);
    };
    if f.serialized {
        return Ok(None);
    }
    if keys.is_empty() {
        return Ok(Some(f.gather(&[])));
    }
    let b = eng.with_scope(&f.meta, |s| s.bind(&item.expr))?;
    if b.ty != ColumnType::Dynamic {
        // The mv-expand reports the error.
        return Ok(None);
    }
    let hit = |j: &serde_json::Value| matches!(j, serde_json::Value::String(s) if keys.contains(s.as_str()));
    let from_index = match b.expr {
        CExpr::Col(c) => indexed(&f.cols[c], f.len, keys, ColumnType::Dynamic),
        _ => None,
    };
    let keep: Vec<u32> = match from_index {
        Some(keep) => keep,
        None => (0..f.len)
            .filter(|&r| match eval(&b.expr, f, r).as_json() {
                Some(serde_json::Value::Array(a)) => a.iter().any(hit),
                Some(j) => hit(j),
                None => false,
            })
            .map(|r| r as u32)
            .collect(),
    };
    Ok(Some(if keep.len() == f.len {
        f.clone()
    } else {
        f.gather(&keep)
    }))
}

/// The positions (in increasing order) of the rows of `col` (`len` rows) holding one of
/// `keys`, found with its table's key index: a string cell equal to a key, or a dynamic cell
/// that is such a string or an array with one among its elements. `None` when the column is
/// not an input table's column of type `ty` (string or dynamic) seen in table order.
fn indexed(col: &Col<'_>, len: usize, keys: &HashSet<&str>, ty: ColumnType) -> Option<Vec<u32>> {
    let Store::Base(t, c) = col.store else {
        return None;
    };
    if t.columns.get(c).map(|m| m.ty) != Some(ty) {
        return None;
    }
    let index = t.key_index(c)?;
    let mut rows = Vec::new();
    for k in keys {
        index.rows_of(t, k, &mut rows);
    }
    rows.sort_unstable();
    rows.dedup();
    positions(col.sel.as_deref().map(Vec::as_slice), len, &rows)
}
