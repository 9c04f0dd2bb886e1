//! Tabular operators: `where`, `project` (and `-away`, `-keep`, `-rename`, `-reorder`),
//! `extend`, `summarize`, `mv-expand`, `join`, `union`, `sort`, `top`, `take`, `distinct`,
//! `count`, `as`, with the semantics of kql-semantics.md §2.
//!
//! Ingestion times (`ingestion_time()`, the hidden `$IngestionTime` of the docs' "IngestionTime
//! policy" page) belong to a record of a table, so a row keeps its time while it is still that
//! record: after `where`, `extend`, `project` and `project-away`/`-keep`/`-rename`/`-reorder`
//! (the same record with other columns; the docs' example is `extend … = ingestion_time() |
//! top 10 by …`), `sort`, `top`, `take`, `serialize`, `as`, each copy made by `mv-expand`,
//! the legs of `union` (a concatenation of records) and the rows a semi or anti `join`
//! returns (one side's records, unchanged). A row made by `summarize`, `distinct` or `count`
//! stands for a group, and an inner or outer `join` row for two records: neither has a single
//! source record, so `ingestion_time()` is null there, as it is outside a table (`print`,
//! `datatable`, `range`). The docs say only "the current record" and "null outside a table";
//! the rest is this crate's reading of them.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::aggregates;
use crate::ast::{JoinCond, JoinKind, MvExpandItem, NamedExpr, Operator, SortKey};
use crate::engine::Engine;
use crate::error::{KqlError, KqlErrorKind};
use crate::fastwhere;
use crate::frame::{Col, Frame, Meta, NULL_ROW, gather_cols};
use crate::grouping::{Groups, group_rows, group_rows_visit};
use crate::lexer::Pos;
use crate::names::{ColumnNamer, make_unique};
use crate::scalar::{Bound, CExpr, DynamicCell, dynamic_cell, err_at, eval, only_column, semantic};
use crate::value::{ColumnType, Value, compare_values, parse_datetime, parse_timespan_c};

/// Applies a `join` whose right side `r` is already evaluated (see `semijoin`).
pub fn join_with<'a>(
    f: Frame<'a>,
    r: &Frame<'a>,
    kind: JoinKind,
    on: &[JoinCond],
) -> Result<Frame<'a>, KqlError> {
    // A join's output is not serialized (`serialized_after`).
    let mut out = join(&f, r, kind, on)?;
    out.serialized = false;
    Ok(out)
}

/// Applies one operator to `f`.
pub fn apply<'a>(eng: &Engine<'a>, f: Frame<'a>, op: &Operator) -> Result<Frame<'a>, KqlError> {
    let serialized = serialized_after(op, f.serialized);
    let mut out = apply_op(eng, f, op)?;
    out.serialized = serialized;
    Ok(out)
}

/// Whether an operator's output is a serialized row set ("serialize operator" page:
/// `sort`/`order`, `top` (and `range`, a source) emit one; `summarize`, `distinct`, `count`,
/// `join` and `mv-expand` emit a non-serialized one; every other operator keeps its input's).
fn serialized_after(op: &Operator, input: bool) -> bool {
    match op {
        Operator::Sort(_) | Operator::Top { .. } | Operator::Serialize(_) => true,
        Operator::Summarize { .. }
        | Operator::Distinct(..)
        | Operator::Count
        | Operator::Join { .. }
        | Operator::MvExpand { .. } => false,
        _ => input,
    }
}

fn apply_op<'a>(eng: &Engine<'a>, f: Frame<'a>, op: &Operator) -> Result<Frame<'a>, KqlError> {
    match op {
        Operator::Where(e) => {
            let b = eng.with_rows_scope(&f, |s| s.bind(e))?;
            if !matches!(b.ty, ColumnType::Bool | ColumnType::Dynamic) {
                return Err(semantic(
                    e.pos,
                    format!("the 'where' predicate must be bool, found {}", b.ty),
                ));
            }
            // Rows where the predicate is false or null are dropped [§2.1]. Comparisons of
            // an input table's datetime columns with constants read its time columns.
            let is_true = |r: usize| eval(&b.expr, &f, r).is_true();
            let keep: Vec<u32> = match fastwhere::filter(&b.expr, &f) {
                Some(keep) => keep,
                None => match only_column(&b.expr).and_then(|c| by_key_code(&f, c, is_true)) {
                    Some((row_code, per_code)) => {
                        crate::par::filter(f.len, |r| per_code[row_code[r] as usize] == Some(true))
                    }
                    None => crate::par::filter(f.len, is_true),
                },
            };
            if keep.len() == f.len {
                return Ok(f);
            }
            Ok(f.gather(&keep))
        }
        Operator::Project(items, pos) => project(eng, &f, items, *pos, false),
        Operator::Extend(items) => extend(eng, f, items),
        Operator::ProjectAway(pats) => {
            let keep = select_patterns(&f, pats, true)?;
            Ok(pick(&f, &keep))
        }
        Operator::ProjectKeep(pats) => {
            let keep = select_patterns(&f, pats, false)?;
            Ok(pick(&f, &keep))
        }
        Operator::ProjectReorder(pats) => {
            let mut first: Vec<usize> = Vec::new();
            for (p, pos) in pats {
                let m = matching(&f, p);
                if m.is_empty() && !p.contains('*') {
                    return Err(no_column(*pos, p));
                }
                for c in m {
                    if !first.contains(&c) {
                        first.push(c);
                    }
                }
            }
            let rest: Vec<usize> = (0..f.meta.len()).filter(|c| !first.contains(c)).collect();
            first.extend(rest);
            Ok(pick(&f, &first))
        }
        Operator::ProjectRename(pairs) => {
            let mut f = f;
            for (new, old, pos) in pairs {
                let c = f.index_of(old).ok_or_else(|| no_column(*pos, old))?;
                f.meta[c].name = new.clone();
            }
            check_duplicates(&f.meta, pairs.first().map_or(Pos::default(), |p| p.2))?;
            Ok(f)
        }
        Operator::Summarize { aggs, by, pos } => summarize(eng, &f, aggs, by, *pos),
        Operator::MvExpand {
            kind_array,
            item_index,
            items,
            limit,
            pos,
        } => mv_expand(
            eng,
            &f,
            *kind_array,
            item_index.as_deref(),
            items,
            limit.as_ref(),
            *pos,
        ),
        Operator::Join {
            kind, right, on, ..
        } => {
            let r = eng.pipeline(right)?;
            join(&f, &r, *kind, on)
        }
        Operator::Union(u) => eng.union(Some(f), u),
        Operator::Sort(keys) => sort(eng, &f, keys, None),
        Operator::Top { n, keys } => {
            let n = count_arg(eng, n)?;
            sort(eng, &f, keys, Some(n))
        }
        Operator::Take(n) => {
            let n = count_arg(eng, n)?;
            if n >= f.len {
                return Ok(f);
            }
            let idx: Vec<u32> = (0..n as u32).collect();
            Ok(f.gather(&idx))
        }
        Operator::Distinct(items, pos) => {
            let items: Vec<NamedExpr> = match items {
                Some(v) => v.clone(),
                None => f
                    .meta
                    .iter()
                    .map(|m| NamedExpr {
                        name: None,
                        expr: crate::ast::Expr::new(
                            crate::ast::ExprKind::Name(m.name.clone()),
                            *pos,
                        ),
                    })
                    .collect(),
            };
            summarize(eng, &f, &[], &items, *pos)
        }
        Operator::Count => {
            // One row, one long column `Count` [§2.14].
            Ok(Frame::from_columns(
                vec![Meta {
                    name: "Count".into(),
                    ty: ColumnType::Long,
                }],
                vec![vec![Value::Long(f.len as i64)]],
                1,
            ))
        }
        Operator::As(name) => {
            let mut f = f;
            f.label = Some(name.clone());
            Ok(f)
        }
        // `serialize [Name = Expr, …]`: extend over the (now serialized) rows.
        Operator::Serialize(items) => {
            let mut f = f;
            f.serialized = true;
            extend(eng, f, items)
        }
    }
}

fn no_column(pos: Pos, name: &str) -> KqlError {
    semantic(pos, format!("failed to resolve column named '{name}'"))
}

fn count_arg(eng: &Engine<'_>, n: &crate::ast::Expr) -> Result<usize, KqlError> {
    match eng.const_expr(n)? {
        (Value::Long(v), _) if v >= 0 => Ok(v as usize),
        (Value::Int(v), _) if v >= 0 => Ok(v as usize),
        _ => Err(semantic(n.pos, "expected a non-negative integer constant")),
    }
}

fn pick<'a>(f: &Frame<'a>, cols: &[usize]) -> Frame<'a> {
    Frame {
        meta: cols.iter().map(|&c| f.meta[c].clone()).collect(),
        cols: cols.iter().map(|&c| f.cols[c].clone()).collect(),
        len: f.len,
        label: f.label.clone(),
        ingest: f.ingest.clone(),
        serialized: f.serialized,
    }
}

fn wildcard_match(pat: &str, name: &str) -> bool {
    if !pat.contains('*') {
        return pat == name;
    }
    let parts: Vec<&str> = pat.split('*').collect();
    let mut rest = name;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(k) => rest = &rest[k + p.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

fn matching(f: &Frame<'_>, pat: &str) -> Vec<usize> {
    (0..f.meta.len())
        .filter(|&c| wildcard_match(pat, &f.meta[c].name))
        .collect()
}

/// Columns kept by `project-away` (`away`) or `project-keep`, in their original order.
fn select_patterns(
    f: &Frame<'_>,
    pats: &[(String, Pos)],
    away: bool,
) -> Result<Vec<usize>, KqlError> {
    let mut hit = vec![false; f.meta.len()];
    for (p, pos) in pats {
        let m = matching(f, p);
        if m.is_empty() && !p.contains('*') {
            return Err(no_column(*pos, p));
        }
        for c in m {
            hit[c] = true;
        }
    }
    Ok((0..f.meta.len()).filter(|&c| hit[c] != away).collect())
}

fn check_duplicates(meta: &[Meta], pos: Pos) -> Result<(), KqlError> {
    for (i, m) in meta.iter().enumerate() {
        if meta[..i].iter().any(|o| o.name == m.name) {
            return Err(semantic(
                pos,
                format!("a column named '{}' already exists", m.name),
            ));
        }
    }
    Ok(())
}

/// Evaluates a bound expression into a column (a plain column reference is shared).
fn compute_col<'a>(f: &Frame<'a>, b: &Bound) -> Col<'a> {
    if let CExpr::Col(c) = b.expr {
        return f.cols[c].clone();
    }
    let string = b.ty == ColumnType::String;
    let value_at = |r: usize| {
        let v = eval(&b.expr, f, r).into_owned();
        if string && v.is_null() {
            ColumnType::String.null_value()
        } else {
            v
        }
    };
    // Values computed once per shared cell, per code or once are shared already, within each
    // range of rows computed together (one value for all the rows would have every thread
    // raise the same reference count when the result is copied, see `own_copy`).
    let column = only_column(&b.expr);
    let dynamic_cell = column.filter(|&c| f.meta[c].ty == ColumnType::Dynamic);
    let (mut data, shared) = if let Some(c) = dynamic_cell {
        let rows = crate::par::chunks(f.len, |rows| by_shared_cell(f, c, rows, value_at));
        (rows.concat(), true)
    } else if let Some((row_code, per_code)) = column.and_then(|c| by_key_code(f, c, value_at)) {
        (rows_of_codes(&row_code, &per_code), true)
    } else if let CExpr::Const(_) = &b.expr {
        // (`value_at` of a constant reads no row; it makes a null string "".)
        (rows_of_constant(f.len, &value_at(0)), true)
    } else {
        (crate::par::map(f.len, value_at), false)
    };
    if b.ty == ColumnType::Dynamic && !shared {
        share_equal_dynamics(&mut data);
    }
    Frame::owned_col(b.ty, data)
}

/// `value_at(r)` for the rows `rows`, where it is a function of the dynamic cell of column `c`
/// alone: computed once per shared cell (equal dynamic cells of a loaded table are one
/// value, so an expression over `Owner` or `AdditionalData` mostly repeats). Cells are told
/// apart by their allocation, which the frame keeps alive; when few cells repeat, the rest
/// of the rows are computed without the cache, and equal values among them made one.
fn by_shared_cell(
    f: &Frame<'_>,
    c: usize,
    rows: std::ops::Range<usize>,
    value_at: impl Fn(usize) -> Value,
) -> Vec<Value> {
    /// Rows after which the cache is dropped unless a quarter of them were found in it.
    const PROBATION: usize = 4096;
    /// Hits after which a cell's value is replaced by the range's own copy (see `own_copy`):
    /// the value may be one that every range computes or shares, such as a constant or the
    /// cell itself.
    const OWN_AFTER: u32 = 8;
    let mut cache: hashbrown::HashMap<usize, (Value, u32)> = hashbrown::HashMap::new();
    let mut hits = 0usize;
    let mut caching = true;
    let mut out = rows
        .enumerate()
        .map(|(i, r)| {
            if caching && i == PROBATION && hits < PROBATION / 4 {
                caching = false;
                cache = hashbrown::HashMap::new();
            }
            match f.get(c, r) {
                Value::Dynamic(cell) if caching => {
                    let key = std::sync::Arc::as_ptr(cell) as usize;
                    if let Some((v, n)) = cache.get_mut(&key) {
                        hits += 1;
                        *n += 1;
                        if *n == OWN_AFTER {
                            *v = own_copy(v);
                        }
                        return v.clone();
                    }
                    let v = value_at(r);
                    cache.insert(key, (v.clone(), 0));
                    v
                }
                _ => value_at(r),
            }
        })
        .collect::<Vec<Value>>();
    if !caching {
        // Computed per row: equal values made one, as for any computed column.
        share_equal_dynamics(&mut out);
    }
    out
}

/// Codes up to which a range of rows computed together takes copies of its own of the codes'
/// values (`compute_col`).
const OWN_COPIES_UP_TO: usize = 1024;

/// A copy of `v` that shares nothing with it. A string or dynamic value is reference-counted:
/// when many rows share one value and several threads copy those rows (a computed column, then
/// the result), every copy raises the same count from several cores at once, and the count's
/// cache line moving between cores costs several times the copy (the sync query's `Owner`
/// column took 58 ms on two threads with one shared value, 18 ms with one per range of rows).
/// So a range of rows shares a value of its own.
fn own_copy(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(std::sync::Arc::from(&**s)),
        Value::Dynamic(j) => Value::Dynamic(std::sync::Arc::new((**j).clone())),
        other => other.clone(),
    }
}

/// Each row's value from its code's (`by_key_code`): a range of rows computed together takes
/// copies of its own of a few codes' values (see `own_copy`), the shared ones of many codes'.
fn rows_of_codes(row_code: &[u32], per_code: &[Option<Value>]) -> Vec<Value> {
    crate::par::chunks(row_code.len(), |rows| {
        let mut own: Vec<Option<Value>> = Vec::new();
        if per_code.len() <= OWN_COPIES_UP_TO {
            own.resize(per_code.len(), None);
        }
        rows.map(|r| {
            let code = row_code[r] as usize;
            let shared = per_code[code].as_ref().unwrap_or(&Value::Null);
            match own.get_mut(code) {
                Some(mine) => mine.get_or_insert_with(|| own_copy(shared)).clone(),
                None => shared.clone(),
            }
        })
        .collect::<Vec<Value>>()
    })
    .concat()
}

/// `n` rows of the constant `v`: each range of rows shares a copy of its own (see `own_copy`).
fn rows_of_constant(n: usize, v: &Value) -> Vec<Value> {
    crate::par::chunks(n, |rows| vec![own_copy(v); rows.len()]).concat()
}

/// `value_at(r)` once per key code (`keycodes`) of column `c`, where it is a function of that
/// cell alone, the column is an input table's string column and its rows have few distinct cells (codes for
/// at most a quarter of the rows): each code's value is computed at its first row. Returned:
/// the code of each row and the value of each code (`None` for a code no row holds). `None`
/// where the codes do not apply.
fn by_key_code<T: Send>(
    f: &Frame<'_>,
    c: usize,
    value_at: impl Fn(usize) -> T + Sync + Send,
) -> Option<(Vec<u32>, Vec<Option<T>>)> {
    // A string column, whose rows mostly repeat a few texts: the codes of a datetime or
    // number column would mostly be built and kept only to find it has too many values.
    if f.meta.get(c)?.ty != ColumnType::String {
        return None;
    }
    let coded = crate::grouping::column_codes(f, c)?;
    let ncodes = coded.codes.values.len() + 1;
    if ncodes.saturating_mul(4) > f.len {
        return None;
    }
    let mut first = vec![u32::MAX; ncodes];
    for (r, &code) in coded.row_code.iter().enumerate() {
        let at = &mut first[code as usize];
        if *at == u32::MAX {
            *at = r as u32;
        }
    }
    let per_code = crate::par::map(ncodes, |code| {
        let r = first[code];
        (r != u32::MAX).then(|| value_at(r as usize))
    });
    Some((coded.row_code, per_code))
}

/// Makes equal dynamic values of a computed column one shared value: a bag or array built
/// per row (`bag_pack`, `pack_array`, a path into each row's dynamic) mostly repeats a few
/// values, and one copy of each keeps the query's memory near its input's.
fn share_equal_dynamics(data: &mut [Value]) {
    let mut seen: hashbrown::HashSet<std::sync::Arc<serde_json::Value>> = hashbrown::HashSet::new();
    // The allocations already kept: a value computed once per shared cell (`by_shared_cell`)
    // repeats its allocation, which is recognised without hashing its content again.
    let mut kept: hashbrown::HashSet<usize> = hashbrown::HashSet::new();
    for v in data {
        if let Value::Dynamic(j) = v {
            let at = std::sync::Arc::as_ptr(j) as usize;
            if kept.contains(&at) {
                continue;
            }
            match seen.get(&**j) {
                Some(shared) => *j = shared.clone(),
                None => {
                    kept.insert(at);
                    seen.insert(j.clone());
                }
            }
        }
    }
}

/// `project` (and `print` when `print` is set: unnamed columns are `print_<i>`) [§2.2, §2.14].
pub fn project<'a>(
    eng: &Engine<'a>,
    f: &Frame<'a>,
    items: &[NamedExpr],
    pos: Pos,
    print: bool,
) -> Result<Frame<'a>, KqlError> {
    let mut meta = Vec::new();
    let mut cols = Vec::new();
    let mut namer = ColumnNamer::default();
    let bound: Vec<Bound> = items
        .iter()
        .map(|it| eng.with_rows_scope(f, |s| s.bind(&it.expr)))
        .collect::<Result<_, _>>()?;
    let explicit: Vec<Option<String>> = items
        .iter()
        .zip(&bound)
        .map(|(it, b)| it.name.clone().or_else(|| b.name.clone()))
        .collect();
    for (i, b) in bound.iter().enumerate() {
        let name = match &explicit[i] {
            // A name derived from a function's argument (`tostring(x)` → `x`) that is
            // already taken gets a numeric suffix; declared names and plain columns may
            // not repeat (§2.2, §2.17).
            Some(n) if items[i].name.is_none() && !matches!(b.expr, CExpr::Col(_)) => {
                let taken = |c: &str| {
                    meta.iter().any(|m: &Meta| m.name == c)
                        || explicit[i + 1..].iter().flatten().any(|x| x == c)
                };
                unique_suffix(n, taken)
            }
            Some(n) => n.clone(),
            None if print => format!("print_{i}"),
            None => namer.next_name(|c| {
                explicit.iter().flatten().any(|n| n == c) || f.index_of(c).is_some()
            }),
        };
        cols.push(compute_col(f, b));
        meta.push(Meta { name, ty: b.ty });
    }
    check_duplicates(&meta, pos)?;
    Ok(Frame {
        meta,
        cols,
        len: f.len,
        label: f.label.clone(),
        // A projected row is still the table's row.
        ingest: f.ingest.clone(),
        serialized: f.serialized,
    })
}

/// `extend` of an existing name: replace the column where it is (the official binder), or
/// remove it and append the new one (the doc's wording). UNCONFIRMED which the service does
/// (kql-semantics.md §2.4); this is the one switch to flip.
const EXTEND_REPLACES_IN_PLACE: bool = true;

/// `name`, or `name1`, `name2`, … when taken.
fn unique_suffix(name: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(name) {
        return name.to_string();
    }
    (1..)
        .map(|k| format!("{name}{k}"))
        .find(|c| !taken(c))
        .unwrap_or_else(|| name.to_string())
}

/// `extend`: computed columns appended, or replaced in place when the name exists (the
/// official binder's behaviour, §2.4); later items see earlier ones.
fn extend<'a>(
    eng: &Engine<'a>,
    mut f: Frame<'a>,
    items: &[NamedExpr],
) -> Result<Frame<'a>, KqlError> {
    let mut namer = ColumnNamer::default();
    for it in items {
        let b = eng.with_rows_scope(&f, |s| s.bind(&it.expr))?;
        let name = match (&it.name, &b.name) {
            (Some(n), _) => n.clone(),
            // A derived name (`tostring(x)` → `x`) does not replace an existing column; it
            // gets a numeric suffix instead.
            (None, Some(n)) if !matches!(b.expr, CExpr::Col(_)) => {
                unique_suffix(n, |c| f.index_of(c).is_some())
            }
            (None, Some(n)) => n.clone(),
            (None, None) => namer.next_name(|c| f.index_of(c).is_some()),
        };
        let col = compute_col(&f, &b);
        match f.index_of(&name) {
            Some(c) if EXTEND_REPLACES_IN_PLACE => {
                f.cols[c] = col;
                f.meta[c].ty = b.ty;
            }
            Some(c) => {
                f.cols.remove(c);
                f.meta.remove(c);
                f.cols.push(col);
                f.meta.push(Meta { name, ty: b.ty });
            }
            None => {
                f.cols.push(col);
                f.meta.push(Meta { name, ty: b.ty });
            }
        }
    }
    Ok(f)
}

/// `summarize` [§2.5–2.9]: by-columns first, then aggregate columns in order.
fn summarize<'a>(
    eng: &Engine<'a>,
    f: &Frame<'a>,
    aggs: &[NamedExpr],
    by: &[NamedExpr],
    pos: Pos,
) -> Result<Frame<'a>, KqlError> {
    let mut namer = ColumnNamer::default();
    let mut keys: Vec<Bound> = Vec::new();
    let mut key_names: Vec<String> = Vec::new();
    for it in by {
        let b = eng.with_scope(&f.meta, |s| s.bind(&it.expr))?;
        if b.ty == ColumnType::Dynamic {
            return Err(semantic(
                it.expr.pos,
                "a group key of type dynamic is not allowed; cast it first (e.g. tostring(…))",
            ));
        }
        let name = match it.name.clone().or_else(|| b.name.clone()) {
            Some(n) => n,
            None => namer.next_name(|c| key_names.iter().any(|k| k == c)),
        };
        key_names.push(name);
        keys.push(b);
    }
    let bound_aggs = aggs
        .iter()
        .map(|a| eng.with_scope(&f.meta, |s| aggregates::bind_aggregate(s, a, &key_names)))
        .collect::<Result<Vec<_>, _>>()?;
    let key_exprs: Vec<CExpr> = keys.iter().map(|b| b.expr.clone()).collect();
    // A lone arg_max/arg_min (`summarize arg_max(T, *) by K`, the latest row per key) is
    // computed during grouping, saving a pass over the rows.
    let mut streamed: Option<Vec<Col<'a>>> = None;
    // Without `by`, every row is in the one group: nothing to group.
    let mut groups: Option<Groups> = match bound_aggs.as_slice() {
        _ if keys.is_empty() => None,
        [only] => match aggregates::ArgStream::new(only) {
            Some(st) => {
                let (g, parts) = group_rows_visit(
                    f,
                    &key_exprs,
                    false,
                    || st.clone(),
                    |s, r, g| s.visit(f, r, g),
                );
                streamed = Some(st.merge(parts, g.len()).finish(only, f));
                Some(g)
            }
            None => Some(group_rows(f, &key_exprs, false)),
        },
        _ => Some(group_rows(f, &key_exprs, false)),
    };
    // The groups' rows are moved out; their keys stay (read below).
    let (of_row, first_row): (Vec<u32>, Vec<u32>) = match &mut groups {
        // No `by` on empty input: one row of defaults [§2.5].
        None if f.len == 0 => (vec![], vec![NULL_ROW]),
        None => (vec![0; f.len], vec![0]),
        Some(g) => (
            std::mem::take(&mut g.of_row),
            std::mem::take(&mut g.first_row),
        ),
    };
    let mut meta = Vec::new();
    let mut cols: Vec<Col<'a>> = Vec::new();
    // By-columns: plain columns are gathered at each group's first row.
    let plain: Vec<Col<'a>> = key_exprs
        .iter()
        .filter_map(|k| match k {
            CExpr::Col(c) => Some(f.cols[*c].clone()),
            _ => None,
        })
        .collect();
    let mut gathered = gather_cols(plain, &first_row).into_iter();
    for (k, b) in keys.iter().enumerate() {
        let col = match &b.expr {
            CExpr::Col(_) => gathered.next(),
            _ => {
                // A computed key: there are `by` keys, so there are groups.
                let data = match &groups {
                    Some(g) => (0..first_row.len()).map(|i| g.key(i, k).clone()).collect(),
                    None => Vec::new(),
                };
                Some(Frame::owned_col(b.ty, data))
            }
        };
        let Some(col) = col else {
            return Err(err_at(
                KqlErrorKind::Runtime,
                pos,
                "internal error: missing group key column",
            ));
        };
        cols.push(col);
        meta.push(Meta {
            name: key_names[k].clone(),
            ty: b.ty,
        });
    }
    for a in &bound_aggs {
        let out = match streamed.take() {
            Some(cols) => cols,
            None => aggregates::compute(a, f, &of_row, &first_row),
        };
        for (o, c) in a.outs.iter().zip(out) {
            meta.push(Meta {
                name: o.name.clone(),
                ty: o.ty,
            });
            cols.push(c);
        }
    }
    let mut names: Vec<String> = meta.iter().map(|m| m.name.clone()).collect();
    make_unique(&mut names);
    for (m, n) in meta.iter_mut().zip(names) {
        m.name = n;
    }
    Ok(Frame {
        meta,
        cols,
        len: first_row.len(),
        label: f.label.clone(),
        // A group has no single source record.
        ingest: None,
        serialized: false,
    })
}

/// Converts an expanded element to `to typeof(T)`: elements of another type become null
/// (no parsing of numbers from strings) [§2.10].
fn typed_element(j: &serde_json::Value, ty: ColumnType) -> Value {
    use serde_json::Value as J;
    match (ty, j) {
        (ColumnType::Dynamic, j) => {
            if j.is_null() {
                Value::Null
            } else {
                Value::dynamic(j.clone())
            }
        }
        (ColumnType::String, J::String(s)) => Value::string(s),
        (ColumnType::String, _) => ColumnType::String.null_value(),
        (ColumnType::Long, J::Number(n)) => n.as_i64().map_or(Value::Null, Value::Long),
        (ColumnType::Int, J::Number(n)) => n
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .map_or(Value::Null, Value::Int),
        (ColumnType::Real | ColumnType::Decimal, J::Number(n)) => {
            n.as_f64().map_or(Value::Null, Value::Real)
        }
        (ColumnType::Bool, J::Bool(b)) => Value::Bool(*b),
        // JSON has no datetime/timespan/guid: their text form is what a typed dynamic holds.
        (ColumnType::DateTime, J::String(s)) => {
            parse_datetime(s).map_or(Value::Null, Value::DateTime)
        }
        (ColumnType::TimeSpan, J::String(s)) => {
            parse_timespan_c(s).map_or(Value::Null, Value::TimeSpan)
        }
        (ColumnType::Guid, J::String(s)) => {
            uuid::Uuid::parse_str(s).map_or(Value::Null, Value::Guid)
        }
        _ => Value::Null,
    }
}

/// The elements `mv-expand` makes of one dynamic value, read in place where they can be: an
/// array's elements, a bag's properties (each a new one-property bag, or a `[key, value]`
/// pair with `kind=array`), or the value itself (null for a value that is not dynamic).
fn expand_json<'j>(
    j: Option<&'j serde_json::Value>,
    kind_array: bool,
    e: &mut Vec<Cow<'j, serde_json::Value>>,
) {
    match j {
        Some(serde_json::Value::Array(a)) => e.extend(a.iter().map(Cow::Borrowed)),
        Some(serde_json::Value::Object(m)) => {
            for (key, val) in m {
                e.push(Cow::Owned(if kind_array {
                    serde_json::json!([key, val])
                } else {
                    let mut one = serde_json::Map::new();
                    one.insert(key.clone(), val.clone());
                    serde_json::Value::Object(one)
                }));
            }
        }
        // Null → one row with null; another scalar → one row, unchanged.
        Some(j) => e.push(Cow::Borrowed(j)),
        None => e.push(Cow::Owned(serde_json::Value::Null)),
    }
}

/// The rows `mv-expand` makes of a range of input rows.
struct Expanded {
    /// The input row of each output row.
    rows: Vec<u32>,
    /// Each expanded item's values.
    data: Vec<Vec<Value>>,
    /// The element's index in its array (`with_itemindex`).
    index: Vec<Value>,
}

/// `mv-expand` [§2.10].
fn mv_expand<'a>(
    eng: &Engine<'a>,
    f: &Frame<'a>,
    kind_array: bool,
    item_index: Option<&str>,
    items: &[MvExpandItem],
    limit: Option<&crate::ast::Expr>,
    pos: Pos,
) -> Result<Frame<'a>, KqlError> {
    let limit = match limit {
        Some(e) => count_arg(eng, e)?,
        None => i32::MAX as usize,
    };
    let mut bound = Vec::new();
    let mut namer = ColumnNamer::default();
    let mut out_names = Vec::new();
    for it in items {
        let b = eng.with_scope(&f.meta, |s| s.bind(&it.expr))?;
        if b.ty != ColumnType::Dynamic {
            return Err(semantic(
                it.expr.pos,
                format!("mv-expand needs a dynamic array or bag, found {}", b.ty),
            ));
        }
        let name = match it.name.clone().or_else(|| b.name.clone()) {
            Some(n) => n,
            None => namer.next_name(|c| f.index_of(c).is_some()),
        };
        out_names.push(name);
        bound.push(b);
    }
    let types: Vec<ColumnType> = items
        .iter()
        .map(|it| it.to_type.unwrap_or(ColumnType::Dynamic))
        .collect();
    // Ranges of rows expand on parallel threads; their outputs are joined in row order.
    let chunks = crate::par::chunks(f.len, |range| {
        let mut out = Expanded {
            rows: Vec::new(),
            data: vec![Vec::new(); items.len()],
            index: Vec::new(),
        };
        let mut elems: Vec<Vec<Cow<'_, serde_json::Value>>> = vec![Vec::new(); items.len()];
        for r in range {
            let mut n = 0usize;
            for (k, b) in bound.iter().enumerate() {
                let e = &mut elems[k];
                e.clear();
                match dynamic_cell(&b.expr, f, r) {
                    DynamicCell::Borrowed(j) => expand_json(Some(j), kind_array, e),
                    DynamicCell::Value(Cow::Borrowed(v)) => expand_json(v.as_json(), kind_array, e),
                    DynamicCell::Value(Cow::Owned(v)) => {
                        let mut owned = Vec::new();
                        expand_json(v.as_json(), kind_array, &mut owned);
                        e.extend(owned.into_iter().map(|j| Cow::Owned(j.into_owned())));
                    }
                }
                n = n.max(e.len());
            }
            let n = n.min(limit);
            for i in 0..n {
                out.rows.push(r as u32);
                for (k, &ty) in types.iter().enumerate() {
                    out.data[k].push(match elems[k].get(i) {
                        Some(j) => typed_element(j, ty),
                        None => ty.null_value(),
                    });
                }
                if item_index.is_some() {
                    out.index.push(Value::Long(i as i64));
                }
            }
        }
        out
    });
    let mut rows: Vec<u32> = Vec::new();
    let mut data: Vec<Vec<Value>> = vec![Vec::new(); items.len()];
    let mut index: Vec<Value> = Vec::new();
    for c in chunks {
        rows.extend(c.rows);
        for (d, cd) in data.iter_mut().zip(c.data) {
            d.extend(cd);
        }
        index.extend(c.index);
    }
    let mut out = f.gather(&rows);
    for (k, &ty) in types.iter().enumerate() {
        let col = Frame::owned_col(ty, std::mem::take(&mut data[k]));
        match out.index_of(&out_names[k]) {
            Some(c) => {
                out.cols[c] = col;
                out.meta[c].ty = ty;
            }
            None => {
                out.cols.push(col);
                out.meta.push(Meta {
                    name: out_names[k].clone(),
                    ty,
                });
            }
        }
    }
    if let Some(name) = item_index {
        if out.index_of(name).is_some() {
            return Err(semantic(
                pos,
                format!("a column named '{name}' already exists"),
            ));
        }
        out.cols.push(Frame::owned_col(ColumnType::Long, index));
        out.meta.push(Meta {
            name: name.to_string(),
            ty: ColumnType::Long,
        });
    }
    Ok(out)
}

/// `join` [§2.11]. Null keys never match; the right side's clashing names get suffixes.
fn join<'a>(
    l: &Frame<'a>,
    r: &Frame<'a>,
    kind: JoinKind,
    on: &[JoinCond],
) -> Result<Frame<'a>, KqlError> {
    let mut lk = Vec::new();
    let mut rk = Vec::new();
    for c in on {
        let li = l
            .index_of(&c.left)
            .ok_or_else(|| no_column(c.pos, &c.left))?;
        let ri = r
            .index_of(&c.right)
            .ok_or_else(|| no_column(c.pos, &c.right))?;
        let (lt, rt) = (l.meta[li].ty, r.meta[ri].ty);
        if lt == ColumnType::Dynamic || rt == ColumnType::Dynamic {
            return Err(semantic(
                c.pos,
                "a join key cannot be dynamic; cast it first (e.g. tostring(…))",
            ));
        }
        if lt != rt && !(lt.is_numeric() && rt.is_numeric()) {
            return Err(semantic(
                c.pos,
                format!(
                    "join keys '{}' ({lt}) and '{}' ({rt}) must have the same type",
                    c.left, c.right
                ),
            ));
        }
        lk.push(li);
        rk.push(ri);
    }
    let rkeys: Vec<CExpr> = rk.iter().map(|&c| CExpr::Col(c)).collect();
    let rgroups = group_rows(r, &rkeys, true);
    // Rows of each right group, in order.
    let ng = rgroups.len();
    let mut start = vec![0u32; ng + 1];
    for &g in &rgroups.of_row {
        if g != u32::MAX {
            start[g as usize + 1] += 1;
        }
    }
    for g in 0..ng {
        start[g + 1] += start[g];
    }
    let mut members = vec![0u32; start[ng] as usize];
    let mut fill = start.clone();
    for (row, &g) in rgroups.of_row.iter().enumerate() {
        if g != u32::MAX {
            members[fill[g as usize] as usize] = row as u32;
            fill[g as usize] += 1;
        }
    }
    let group_rows_of =
        |g: u32| &members[start[g as usize] as usize..start[g as usize + 1] as usize];
    // Probe: the right group of each left row.
    let lmatch: Vec<Option<u32>> = crate::par::map(l.len, |row| {
        if lk.iter().any(|&c| l.get(c, row).is_null()) {
            None
        } else {
            rgroups.lookup_by(|k| l.get(lk[k], row))
        }
    });
    let mut li: Vec<u32> = Vec::new();
    let mut ri: Vec<u32> = Vec::new();
    let mut right_hit = vec![false; ng];
    match kind {
        JoinKind::LeftSemi | JoinKind::LeftAnti => {
            let want = kind == JoinKind::LeftSemi;
            let idx: Vec<u32> = (0..l.len)
                .filter(|&row| lmatch[row].is_some() == want)
                .map(|row| row as u32)
                .collect();
            return Ok(l.gather(&idx));
        }
        JoinKind::RightSemi | JoinKind::RightAnti => {
            for g in lmatch.iter().flatten() {
                right_hit[*g as usize] = true;
            }
            let want = kind == JoinKind::RightSemi;
            let idx: Vec<u32> = (0..r.len)
                .filter(|&row| {
                    let g = rgroups.of_row[row];
                    (g != u32::MAX && right_hit[g as usize]) == want
                })
                .map(|row| row as u32)
                .collect();
            return Ok(r.gather(&idx));
        }
        _ => {}
    }
    // innerunique keeps one left row per key: the first [§2.11].
    let left_rows: Vec<usize> = if kind == JoinKind::InnerUnique {
        let lkeys: Vec<CExpr> = lk.iter().map(|&c| CExpr::Col(c)).collect();
        let lg = group_rows(l, &lkeys, true);
        lg.first_row.iter().map(|&x| x as usize).collect::<Vec<_>>()
    } else {
        (0..l.len).collect()
    };
    for row in left_rows {
        match lmatch[row] {
            Some(g) => {
                right_hit[g as usize] = true;
                for &rr in group_rows_of(g) {
                    li.push(row as u32);
                    ri.push(rr);
                }
            }
            None => {
                if matches!(kind, JoinKind::LeftOuter | JoinKind::FullOuter) {
                    li.push(row as u32);
                    ri.push(NULL_ROW);
                }
            }
        }
    }
    if matches!(kind, JoinKind::RightOuter | JoinKind::FullOuter) {
        for row in 0..r.len {
            let g = rgroups.of_row[row];
            if g == u32::MAX || !right_hit[g as usize] {
                li.push(NULL_ROW);
                ri.push(row as u32);
            }
        }
    }
    let lcols = gather_cols(l.cols.iter().cloned(), &li);
    let rcols = gather_cols(r.cols.iter().cloned(), &ri);
    let mut meta: Vec<Meta> = l.meta.iter().chain(r.meta.iter()).cloned().collect();
    let mut names: Vec<String> = meta.iter().map(|m| m.name.clone()).collect();
    make_unique(&mut names);
    for (m, n) in meta.iter_mut().zip(names) {
        m.name = n;
    }
    Ok(Frame {
        meta,
        cols: lcols.into_iter().chain(rcols).collect(),
        len: li.len(),
        label: l.label.clone(),
        // A joined row is made of two records.
        ingest: None,
        serialized: false,
    })
}

fn is_nullish(v: &Value) -> bool {
    v.is_null() || matches!(v, Value::Real(f) if f.is_nan())
}

/// `sort` / `top` [§2.13]: per-key direction, nulls (and NaN) first for asc and last for
/// desc unless told otherwise; stable.
fn sort<'a>(
    eng: &Engine<'a>,
    f: &Frame<'a>,
    keys: &[SortKey],
    top: Option<usize>,
) -> Result<Frame<'a>, KqlError> {
    let mut bound = Vec::new();
    for k in keys {
        let b = eng.with_scope(&f.meta, |s| s.bind(&k.expr))?;
        bound.push(b);
    }
    let key_vals: Vec<Vec<Value>> = bound
        .iter()
        .map(|b| {
            (0..f.len)
                .map(|r| eval(&b.expr, f, r).into_owned())
                .collect()
        })
        .collect();
    let mut idx: Vec<u32> = (0..f.len as u32).collect();
    idx.sort_by(|&a, &b| {
        for (k, vals) in keys.iter().zip(&key_vals) {
            let (x, y) = (&vals[a as usize], &vals[b as usize]);
            let (xn, yn) = (is_nullish(x), is_nullish(y));
            let o = match (xn, yn) {
                (true, true) => {
                    // null before NaN at the nulls end (asc: null, NaN, …; desc: …, NaN, null).
                    let rank = |v: &Value| u8::from(!v.is_null());
                    let o = rank(x).cmp(&rank(y));
                    if k.nulls_first { o } else { o.reverse() }
                }
                (true, false) => {
                    if k.nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (false, true) => {
                    if k.nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                (false, false) => {
                    let o = compare_values(&crate::scalar::undyn(x), &crate::scalar::undyn(y))
                        .unwrap_or(Ordering::Equal);
                    if k.asc { o } else { o.reverse() }
                }
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    if let Some(n) = top {
        idx.truncate(n);
    }
    Ok(f.gather(&idx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Column, Database, Table};
    use std::sync::Arc;

    fn dynamic_of(t: &Table, row: usize) -> Arc<serde_json::Value> {
        match &t.rows[row][0] {
            Value::Dynamic(j) => j.clone(),
            other => panic!("not a dynamic value: {other:?}"),
        }
    }

    /// A computed dynamic column keeps few values for equal results, whether the input cells
    /// are shared (computed once per cell, then copied once for the range of rows, see
    /// `own_copy`) or all distinct (computed per row, then made one value): one range of rows
    /// here (fewer than `par::MIN_PARALLEL_ROWS`).
    #[test]
    fn equal_computed_dynamic_values_are_one_value() {
        for distinct in [false, true] {
            let shared = Value::dynamic(serde_json::json!({"n": 0, "p": ["x"]}));
            let rows = (0..10_000)
                .map(|i| {
                    vec![if distinct {
                        Value::dynamic(serde_json::json!({"n": i, "p": ["x"]}))
                    } else {
                        shared.clone()
                    }]
                })
                .collect();
            let mut db = Database::new();
            db.insert(
                "T",
                Table::from_rows("T", vec![Column::new("D", ColumnType::Dynamic)], rows)
                    .expect("rows of the column's width"),
            );
            let opts = crate::QueryOptions::new(chrono::Utc::now());
            let t = crate::run("T | project P = D.p", &db, &opts).expect("runs");
            let values: Vec<Arc<serde_json::Value>> =
                (0..t.rows.len()).map(|r| dynamic_of(&t, r)).collect();
            assert!(values.iter().all(|v| **v == serde_json::json!(["x"])));
            let allocations: std::collections::HashSet<usize> =
                values.iter().map(|v| Arc::as_ptr(v) as usize).collect();
            assert!(
                allocations.len() <= 2,
                "{} values for one (distinct cells: {distinct})",
                allocations.len()
            );
        }
    }

    #[test]
    fn an_own_copy_is_equal_and_shares_nothing() {
        let s = Value::string("shared");
        let copy = own_copy(&s);
        assert_eq!(copy, s);
        match (&s, &copy) {
            (Value::String(a), Value::String(b)) => assert!(!Arc::ptr_eq(a, b)),
            _ => panic!("strings expected"),
        }
        assert_eq!(own_copy(&Value::Long(3)), Value::Long(3));
    }
}
