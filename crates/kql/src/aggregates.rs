//! Aggregate functions for `summarize`: binding (`count`, `countif`, `dcount`, `sum`, `min`,
//! `max`, `avg`, `arg_max`, `arg_min`, `make_set`, `make_list`, `take_any`, with Kusto's
//! result types and default names) and their per-group evaluation over grouped rows
//! [kql-semantics.md §2.5–2.9].

use std::hash::{Hash, Hasher};

use hashbrown::HashSet;
use rustc_hash::FxHasher;

use crate::ast::{Expr, ExprKind, NamedExpr};
use crate::error::{KqlError, KqlErrorKind};
use crate::frame::{Col, Frame, NULL_ROW, gather_cols};
use crate::functions::value_to_json;
use crate::grouping::{group_eq, hash_value};
use crate::scalar::{Bound, CExpr, Scope, err_at, eval, semantic};
use crate::value::{ColumnType, Value, compare_values, json_scalar_to_value};

/// The cap of `make_set`/`make_list` [kql-semantics.md §2.8].
const MAX_SET: usize = 1_048_576;

/// Where an output column's values come from.
#[derive(Debug, Clone)]
pub enum OutSrc {
    /// The aggregate's computed value.
    Value,
    /// Column `c` of the input, at the row the aggregate picked (arg_max, take_any).
    RowCol(usize),
    /// An expression evaluated at the row the aggregate picked.
    RowExpr(CExpr),
}

/// One output column of an aggregate.
#[derive(Debug, Clone)]
pub struct AggOut {
    pub name: String,
    pub ty: ColumnType,
    pub src: OutSrc,
}

/// What an aggregate computes.
#[derive(Debug, Clone)]
pub enum AggFn {
    Count,
    CountIf(CExpr),
    DCount(CExpr),
    Sum(CExpr, ColumnType),
    Min(CExpr),
    Max(CExpr),
    Avg(CExpr, ColumnType),
    Arg {
        key: CExpr,
        max: bool,
    },
    MakeSet(CExpr, usize),
    MakeList(CExpr, usize),
    TakeAny(Option<CExpr>),
    /// The nearest-rank percentiles (0–100) of the expression, one output each.
    Percentiles(CExpr, Vec<f64>),
}

/// A bound aggregate and its output columns.
#[derive(Debug, Clone)]
pub struct Agg {
    pub f: AggFn,
    pub outs: Vec<AggOut>,
}

fn arg_name(prefix: &str, b: &Bound) -> String {
    match &b.name {
        Some(n) => format!("{prefix}_{n}"),
        None => format!("{prefix}_"),
    }
}

fn max_arg(s: &Scope<'_>, args: &[Expr]) -> Result<usize, KqlError> {
    match args.get(1) {
        None => Ok(MAX_SET),
        Some(e) => match s.bind(e)?.expr {
            CExpr::Const(Value::Long(n)) if n > 0 => Ok((n as usize).min(MAX_SET)),
            _ => Err(semantic(
                e.pos,
                "the maximum size must be a positive long constant",
            )),
        },
    }
}

/// Binds one `summarize` aggregate item. `by` holds the by-column names (excluded from
/// `arg_max(…, *)` and `take_any(*)`).
pub fn bind_aggregate(s: &Scope<'_>, item: &NamedExpr, by: &[String]) -> Result<Agg, KqlError> {
    let e = &item.expr;
    let ExprKind::Call(fname, args) = &e.kind else {
        return Err(err_at(
            KqlErrorKind::Unsupported,
            e.pos,
            "summarize items must be aggregate function calls (expressions around aggregates are not supported)",
        ));
    };
    let pos = e.pos;
    let nargs = |min: usize, max: usize| -> Result<(), KqlError> {
        if args.len() < min || args.len() > max {
            Err(semantic(
                pos,
                format!(
                    "aggregate '{fname}' expects {min} to {max} argument(s), got {}",
                    args.len()
                ),
            ))
        } else {
            Ok(())
        }
    };
    let one = |name: String, ty: ColumnType, f: AggFn| -> Agg {
        Agg {
            f,
            outs: vec![AggOut {
                name: item.name.clone().unwrap_or(name),
                ty,
                src: OutSrc::Value,
            }],
        }
    };
    let arg0 = || -> Result<Bound, KqlError> {
        match args.first() {
            Some(a) => s.bind(a),
            None => Err(semantic(
                pos,
                format!("aggregate '{fname}' needs an argument"),
            )),
        }
    };
    use ColumnType as T;
    Ok(match fname.as_str() {
        "count" => {
            nargs(0, 1)?;
            let name = if args.is_empty() {
                "count_".to_string()
            } else {
                arg_name("count", &arg0()?)
            };
            one(name, T::Long, AggFn::Count)
        }
        "countif" => {
            nargs(1, 1)?;
            let b = arg0()?;
            if !matches!(b.ty, T::Bool | T::Dynamic) {
                return Err(semantic(pos, "countif expects a bool predicate"));
            }
            one("countif_".into(), T::Long, AggFn::CountIf(b.expr))
        }
        "dcount" | "count_distinct" => {
            nargs(1, 2)?;
            let b = arg0()?;
            one(arg_name("dcount", &b), T::Long, AggFn::DCount(b.expr))
        }
        "sum" => {
            nargs(1, 1)?;
            let b = arg0()?;
            let ty = match b.ty {
                T::Int | T::Long => T::Long,
                T::Real | T::Decimal => T::Real,
                T::TimeSpan => T::TimeSpan,
                other => {
                    return Err(semantic(
                        pos,
                        format!("sum() cannot add values of type {other}"),
                    ));
                }
            };
            one(arg_name("sum", &b), ty, AggFn::Sum(b.expr, ty))
        }
        "min" | "max" => {
            nargs(1, 1)?;
            let b = arg0()?;
            if b.ty == T::Dynamic {
                return Err(semantic(
                    pos,
                    format!("{fname}() cannot compare dynamic values; cast them first"),
                ));
            }
            let (name, ty) = (arg_name(fname, &b), b.ty);
            let f = if fname == "min" {
                AggFn::Min(b.expr)
            } else {
                AggFn::Max(b.expr)
            };
            one(name, ty, f)
        }
        "avg" => {
            nargs(1, 1)?;
            let b = arg0()?;
            let ty = match b.ty {
                T::Int | T::Long | T::Real | T::Decimal => T::Real,
                T::TimeSpan => T::TimeSpan,
                other => {
                    return Err(semantic(
                        pos,
                        format!("avg() cannot average values of type {other}"),
                    ));
                }
            };
            one(arg_name("avg", &b), ty, AggFn::Avg(b.expr, ty))
        }
        "make_set" | "make_list" => {
            nargs(1, 2)?;
            let b = arg0()?;
            let max = max_arg(s, args)?;
            if fname == "make_set" {
                one(arg_name("set", &b), T::Dynamic, AggFn::MakeSet(b.expr, max))
            } else {
                one(
                    arg_name("list", &b),
                    T::Dynamic,
                    AggFn::MakeList(b.expr, max),
                )
            }
        }
        "arg_max" | "arg_min" => {
            if args.len() < 2 {
                return Err(semantic(
                    pos,
                    format!(
                        "{fname} expects the expression to maximize and at least one column or '*'"
                    ),
                ));
            }
            let max = fname == "arg_max";
            let key = s.bind(&args[0])?;
            let prefix = if max { "max" } else { "min" };
            let key_name = match (&item.name, &key.name) {
                (Some(n), _) => n.clone(),
                (None, Some(n)) => n.clone(),
                (None, None) => format!("{prefix}_"),
            };
            let mut outs = vec![AggOut {
                name: key_name.clone(),
                ty: key.ty,
                src: match key.expr {
                    CExpr::Col(c) => OutSrc::RowCol(c),
                    ref other => OutSrc::RowExpr(other.clone()),
                },
            }];
            for (i, a) in args[1..].iter().enumerate() {
                if matches!(a.kind, ExprKind::Star) {
                    for (c, m) in s.meta.iter().enumerate() {
                        if by.contains(&m.name) || outs.iter().any(|o| o.name == m.name) {
                            continue;
                        }
                        outs.push(AggOut {
                            name: m.name.clone(),
                            ty: m.ty,
                            src: OutSrc::RowCol(c),
                        });
                    }
                } else {
                    let b = s.bind(a)?;
                    let name = b
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("{prefix}_{key_name}_arg{}", i + 1));
                    outs.push(AggOut {
                        name,
                        ty: b.ty,
                        src: match b.expr {
                            CExpr::Col(c) => OutSrc::RowCol(c),
                            other => OutSrc::RowExpr(other),
                        },
                    });
                }
            }
            Agg {
                f: AggFn::Arg { key: key.expr, max },
                outs,
            }
        }
        "percentile" | "percentiles" => {
            if args.len() < 2 || (fname == "percentile" && args.len() != 2) {
                return Err(semantic(
                    pos,
                    format!(
                        "{fname}() expects an expression and {} percentile(s)",
                        if fname == "percentile" {
                            "one"
                        } else {
                            "one or more"
                        }
                    ),
                ));
            }
            let b = arg0()?;
            if !matches!(
                b.ty,
                T::Int | T::Long | T::Real | T::Decimal | T::TimeSpan | T::DateTime
            ) {
                return Err(semantic(
                    pos,
                    format!(
                        "{fname}() needs numbers, timespans or datetimes, not {}",
                        b.ty
                    ),
                ));
            }
            let mut ps = Vec::new();
            for a in &args[1..] {
                let p = match s.bind(a)?.expr {
                    CExpr::Const(Value::Long(n)) => n as f64,
                    CExpr::Const(Value::Int(n)) => f64::from(n),
                    CExpr::Const(Value::Real(f)) => f,
                    _ => {
                        return Err(semantic(a.pos, "a percentile must be a number constant"));
                    }
                };
                if !(0.0..=100.0).contains(&p) {
                    return Err(semantic(
                        a.pos,
                        format!("percentile {p} is not between 0 and 100"),
                    ));
                }
                ps.push(p);
            }
            let base = b.name.clone().unwrap_or_default();
            let outs = ps
                .iter()
                .map(|p| {
                    let text = format!("{p}").replace('.', "_");
                    AggOut {
                        name: match (&item.name, ps.len()) {
                            (Some(n), 1) => n.clone(),
                            _ => format!("percentile_{base}_{text}"),
                        },
                        ty: b.ty,
                        src: OutSrc::Value,
                    }
                })
                .collect();
            Agg {
                f: AggFn::Percentiles(b.expr, ps),
                outs,
            }
        }
        "take_any" | "any" => {
            if args.is_empty() {
                return Err(semantic(pos, "take_any expects at least one argument"));
            }
            let mut outs = Vec::new();
            let mut single = None;
            for (i, a) in args.iter().enumerate() {
                if matches!(a.kind, ExprKind::Star) {
                    for (c, m) in s.meta.iter().enumerate() {
                        if by.contains(&m.name) {
                            continue;
                        }
                        outs.push(AggOut {
                            name: m.name.clone(),
                            ty: m.ty,
                            src: OutSrc::RowCol(c),
                        });
                    }
                } else {
                    let b = s.bind(a)?;
                    let name = match (&item.name, &b.name) {
                        (Some(n), _) if args.len() == 1 => n.clone(),
                        (_, Some(n)) if fname == "any" => format!("any_{n}"),
                        (_, Some(n)) => n.clone(),
                        _ => format!("any_arg{i}"),
                    };
                    if args.len() == 1 {
                        single = Some(b.expr.clone());
                    }
                    outs.push(AggOut {
                        name,
                        ty: b.ty,
                        src: match b.expr {
                            CExpr::Col(c) => OutSrc::RowCol(c),
                            other => OutSrc::RowExpr(other),
                        },
                    });
                }
            }
            Agg {
                f: AggFn::TakeAny(single),
                outs,
            }
        }
        other if crate::functions::AGGREGATES.contains(&other) => {
            return Err(err_at(
                KqlErrorKind::Unsupported,
                pos,
                format!("the aggregate function '{other}' is not supported"),
            ));
        }
        other => {
            return Err(semantic(
                pos,
                format!("'{other}' is not an aggregate function"),
            ));
        }
    })
}

/// A value hashed and compared with grouping semantics.
#[derive(Clone)]
struct HKey(u32, Value);

impl Hash for HKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut h = FxHasher::default();
        hash_value(&self.1, &mut h);
        state.write_u32(self.0);
        state.write_u64(h.finish());
    }
}
impl PartialEq for HKey {
    fn eq(&self, o: &Self) -> bool {
        self.0 == o.0 && group_eq(&self.1, &o.1)
    }
}
impl Eq for HKey {}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        other => other.is_null(),
    }
}

/// Computes an aggregate's output columns for `ngroups` groups (`of_row[r]` is row r's
/// group; `first_row[g]` is a row of group g, or `NULL_ROW` for the empty group of an
/// empty input).
pub fn compute<'a>(
    agg: &Agg,
    frame: &Frame<'a>,
    of_row: &[u32],
    first_row: &[u32],
) -> Vec<Col<'a>> {
    let ng = first_row.len();
    let rows = || (0..frame.len).filter(|&r| of_row[r] != u32::MAX);
    let value_col = |ty: ColumnType, v: Vec<Value>| vec![Frame::owned_col(ty, v)];
    match &agg.f {
        AggFn::Count => {
            let mut c = vec![0i64; ng];
            for r in rows() {
                c[of_row[r] as usize] += 1;
            }
            value_col(ColumnType::Long, c.into_iter().map(Value::Long).collect())
        }
        AggFn::CountIf(p) => {
            let mut c = vec![0i64; ng];
            for r in rows() {
                if eval(p, frame, r).is_true() {
                    c[of_row[r] as usize] += 1;
                }
            }
            value_col(ColumnType::Long, c.into_iter().map(Value::Long).collect())
        }
        AggFn::DCount(x) => {
            let mut c = vec![0i64; ng];
            let mut seen: HashSet<HKey> = HashSet::new();
            for r in rows() {
                let v = eval(x, frame, r);
                if v.is_null() {
                    continue;
                }
                let g = of_row[r];
                if seen.insert(HKey(g, v.into_owned())) {
                    c[g as usize] += 1;
                }
            }
            value_col(ColumnType::Long, c.into_iter().map(Value::Long).collect())
        }
        AggFn::Sum(x, ty) => {
            let mut li = vec![0i64; ng];
            let mut lr = vec![0f64; ng];
            for r in rows() {
                let g = of_row[r] as usize;
                match &*crate::scalar::undyn(&eval(x, frame, r)) {
                    Value::Int(i) => li[g] = li[g].wrapping_add(*i as i64),
                    Value::Long(i) => li[g] = li[g].wrapping_add(*i),
                    Value::Real(f) => lr[g] += f,
                    Value::TimeSpan(t) => li[g] = li[g].wrapping_add(crate::scalar::ticks(t)),
                    _ => {}
                }
            }
            let out = (0..ng)
                .map(|g| match ty {
                    ColumnType::Long => Value::Long(li[g]),
                    ColumnType::TimeSpan => Value::TimeSpan(crate::scalar::from_ticks(li[g])),
                    _ => Value::Real(lr[g]),
                })
                .collect();
            value_col(*ty, out)
        }
        AggFn::Min(x) | AggFn::Max(x) => {
            let want = if matches!(agg.f, AggFn::Min(_)) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            };
            let mut best: Vec<Value> = vec![Value::Null; ng];
            for r in rows() {
                let v = eval(x, frame, r);
                if v.is_null() || matches!(&*v, Value::Real(f) if f.is_nan()) {
                    continue;
                }
                let g = of_row[r] as usize;
                if best[g].is_null() || compare_values(&v, &best[g]) == Some(want) {
                    best[g] = v.into_owned();
                }
            }
            let ty = agg.outs[0].ty;
            if ty == ColumnType::String {
                for b in &mut best {
                    if b.is_null() {
                        *b = ColumnType::String.null_value();
                    }
                }
            }
            value_col(ty, best)
        }
        AggFn::Avg(x, ty) => {
            let mut sum = vec![0f64; ng];
            let mut n = vec![0i64; ng];
            for r in rows() {
                let g = of_row[r] as usize;
                let v = eval(x, frame, r);
                let f = match &*crate::scalar::undyn(&v) {
                    Value::Int(i) => *i as f64,
                    Value::Long(i) => *i as f64,
                    Value::Real(f) => *f,
                    Value::TimeSpan(t) => crate::scalar::ticks(t) as f64,
                    _ => continue,
                };
                sum[g] += f;
                n[g] += 1;
            }
            // avg of nothing is 0/0 = NaN [kql-semantics.md §2.5].
            let out = (0..ng)
                .map(|g| {
                    let a = sum[g] / n[g] as f64;
                    if *ty == ColumnType::TimeSpan {
                        if a.is_finite() {
                            Value::TimeSpan(crate::scalar::from_ticks(a.round() as i64))
                        } else {
                            Value::Null
                        }
                    } else {
                        Value::Real(a)
                    }
                })
                .collect();
            value_col(*ty, out)
        }
        AggFn::MakeSet(x, max) | AggFn::MakeList(x, max) => {
            let is_set = matches!(agg.f, AggFn::MakeSet(..));
            let mut lists: Vec<Vec<serde_json::Value>> = vec![Vec::new(); ng];
            let mut seen: HashSet<HKey> = HashSet::new();
            for r in rows() {
                let v = eval(x, frame, r);
                if v.is_null() {
                    continue;
                }
                let g = of_row[r];
                let list = &mut lists[g as usize];
                let mut add = |j: serde_json::Value, key: Value| {
                    if list.len() >= *max || j.is_null() {
                        return;
                    }
                    if !is_set || seen.insert(HKey(g, key)) {
                        list.push(j);
                    }
                };
                match (&*v, v.as_json()) {
                    // make_set flattens arrays [kql-semantics.md §2.8]; make_list does not.
                    (_, Some(serde_json::Value::Array(a))) if is_set => {
                        for el in a {
                            add(el.clone(), json_key(el));
                        }
                    }
                    (_, Some(j)) => add(j.clone(), json_key(j)),
                    (other, None) => add(value_to_json(other), other.clone()),
                }
            }
            value_col(
                ColumnType::Dynamic,
                lists
                    .into_iter()
                    .map(|l| Value::dynamic(serde_json::Value::Array(l)))
                    .collect(),
            )
        }
        AggFn::Percentiles(x, ps) => {
            let mut values: Vec<Vec<Value>> = vec![Vec::new(); ng];
            for r in rows() {
                let v = eval(x, frame, r);
                if v.is_null() || matches!(&*v, Value::Real(f) if f.is_nan()) {
                    continue;
                }
                values[of_row[r] as usize].push(crate::scalar::undyn(&v).into_owned());
            }
            let mut cols: Vec<Vec<Value>> = vec![Vec::with_capacity(ng); ps.len()];
            for mut vs in values {
                vs.sort_by(|a, b| compare_values(a, b).unwrap_or(std::cmp::Ordering::Equal));
                for (i, p) in ps.iter().enumerate() {
                    // Nearest rank: the smallest value with at least p% of the values at or
                    // below it.
                    let v = if vs.is_empty() {
                        Value::Null
                    } else {
                        let rank = ((p / 100.0) * vs.len() as f64).ceil() as usize;
                        vs[rank.clamp(1, vs.len()) - 1].clone()
                    };
                    cols[i].push(v);
                }
            }
            cols.into_iter()
                .zip(&agg.outs)
                .map(|(c, o)| Frame::owned_col(o.ty, c))
                .collect()
        }
        AggFn::Arg { key, max } => {
            let want = if *max {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Less
            };
            let mut best: Vec<Option<Value>> = vec![None; ng];
            let mut pick: Vec<u32> = first_row.to_vec();
            for r in rows() {
                let v = eval(key, frame, r);
                // Rows with a null key are ignored; an all-null group keeps a row anyway
                // [kql-semantics.md §2.7].
                if v.is_null() || matches!(&*v, Value::Real(f) if f.is_nan()) {
                    continue;
                }
                let g = of_row[r] as usize;
                let better = match &best[g] {
                    None => true,
                    Some(b) => compare_values(&v, b) == Some(want),
                };
                if better {
                    best[g] = Some(v.into_owned());
                    pick[g] = r as u32;
                }
            }
            row_outputs(agg, frame, &pick)
        }
        AggFn::TakeAny(single) => {
            let mut pick: Vec<u32> = first_row.to_vec();
            if let Some(x) = single {
                // With one argument, prefer a non-empty value [kql-semantics.md §2.9].
                let mut done = vec![false; ng];
                for g in 0..ng {
                    let r = pick[g];
                    if r != NULL_ROW && !is_empty_value(&eval(x, frame, r as usize)) {
                        done[g] = true;
                    }
                }
                for r in rows() {
                    let g = of_row[r] as usize;
                    if !done[g] && !is_empty_value(&eval(x, frame, r)) {
                        pick[g] = r as u32;
                        done[g] = true;
                    }
                }
            }
            row_outputs(agg, frame, &pick)
        }
    }
}

fn json_key(j: &serde_json::Value) -> Value {
    match j {
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => Value::dynamic(j.clone()),
        other => json_scalar_to_value(other),
    }
}

/// `arg_max`/`arg_min` computed while rows are grouped: feed every (row, group) to
/// `visit` (one stream per hash partition, merged with `merge`), then take the output columns
/// from `finish`.
#[derive(Clone)]
pub struct ArgStream<'e> {
    key: &'e CExpr,
    want: std::cmp::Ordering,
    best: Vec<Option<Value>>,
    pick: Vec<u32>,
}

impl<'e> ArgStream<'e> {
    /// For an `arg_max`/`arg_min` aggregate; None for any other.
    pub fn new(agg: &'e Agg) -> Option<ArgStream<'e>> {
        match &agg.f {
            AggFn::Arg { key, max } => Some(ArgStream {
                key,
                want: if *max {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Less
                },
                best: Vec::new(),
                pick: Vec::new(),
            }),
            _ => None,
        }
    }

    /// Row `r` belongs to group `g` (groups are numbered in order of first appearance).
    #[inline]
    pub fn visit(&mut self, frame: &Frame<'_>, r: usize, g: u32) {
        let g = g as usize;
        if g == self.pick.len() {
            self.pick.push(r as u32);
            self.best.push(None);
        }
        let v = eval(self.key, frame, r);
        if v.is_null() || matches!(&*v, Value::Real(f) if f.is_nan()) {
            return;
        }
        let better = match &self.best[g] {
            None => true,
            Some(b) => compare_values(&v, b) == Some(self.want),
        };
        if better {
            self.best[g] = Some(v.into_owned());
            self.pick[g] = r as u32;
        }
    }

    /// The streams of the partitions (fed from clones of this empty one), each given with
    /// the global number of each of its groups, as one stream of `ngroups` groups.
    pub fn merge(self, parts: Vec<(ArgStream<'e>, Vec<u32>)>, ngroups: usize) -> ArgStream<'e> {
        let mut out = ArgStream {
            best: vec![None; ngroups],
            pick: vec![NULL_ROW; ngroups],
            ..self
        };
        for (part, global) in parts {
            for ((best, pick), g) in part.best.into_iter().zip(part.pick).zip(global) {
                out.best[g as usize] = best;
                out.pick[g as usize] = pick;
            }
        }
        out
    }

    pub fn finish<'a>(self, agg: &Agg, frame: &Frame<'a>) -> Vec<Col<'a>> {
        row_outputs(agg, frame, &self.pick)
    }
}

/// Output columns taken from one picked row per group.
fn row_outputs<'a>(agg: &Agg, frame: &Frame<'a>, pick: &[u32]) -> Vec<Col<'a>> {
    let plain: Vec<Col<'a>> = agg
        .outs
        .iter()
        .filter_map(|o| match o.src {
            OutSrc::RowCol(c) => Some(frame.cols[c].clone()),
            _ => None,
        })
        .collect();
    let mut gathered = gather_cols(plain, pick).into_iter();
    agg.outs
        .iter()
        .map(|o| match &o.src {
            OutSrc::RowCol(_) => gathered
                .next()
                .unwrap_or_else(|| Frame::owned_col(o.ty, vec![])),
            OutSrc::RowExpr(e) => Frame::owned_col(
                o.ty,
                pick.iter()
                    .map(|&r| {
                        if r == NULL_ROW {
                            o.ty.null_value()
                        } else {
                            eval(e, frame, r as usize).into_owned()
                        }
                    })
                    .collect(),
            ),
            OutSrc::Value => Frame::owned_col(o.ty, vec![Value::Null; pick.len()]),
        })
        .collect()
}
