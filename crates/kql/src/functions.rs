//! Built-in scalar functions: binding a call (argument count and types, result type, default
//! column name) and evaluating it, plus the conversions they share (`tostring`, `tolong`,
//! `todatetime`, `parse_json`, …) [kql-semantics.md §3.2, §3.6–3.8].

use std::borrow::Cow;

use chrono::{DateTime, TimeDelta, Utc};

use crate::ast::{Expr, ExprKind};
use crate::error::{KqlError, KqlErrorKind};
use crate::frame::Frame;
use crate::lexer::Pos;
use crate::scalar::{
    ArOp, Bound, CExpr, Scope, arith_type, err_at, eval, from_ticks, semantic, ticks, undyn,
};
use crate::value::{ColumnType, Value, json_scalar_to_value, parse_datetime, parse_timespan_c};

/// A bound function.
#[derive(Debug, Clone)]
pub enum Func {
    ToString,
    ToInt,
    ToLong,
    ToReal,
    ToBool,
    ToDateTime,
    ToTimeSpan,
    ToGuid,
    ToDynamic,
    ArrayLength,
    SetHasElement,
    IsEmpty,
    IsNotEmpty,
    IsNull,
    IsNotNull,
    Strcat,
    ToLower,
    ToUpper,
    Strlen,
    Substring,
    Iff(ColumnType),
    Case(ColumnType),
    Coalesce(ColumnType),
    BagKeys,
    Extract {
        re: Option<regex::Regex>,
        ty: ColumnType,
    },
    Not,
    Bin(ColumnType),
    PackArray,
    IsNan,
    Abs,
    Hash,
    BagPack,
}

/// Aggregate function names (only valid directly inside `summarize`).
pub const AGGREGATES: &[&str] = &[
    "count",
    "countif",
    "dcount",
    "dcountif",
    "sum",
    "sumif",
    "min",
    "max",
    "avg",
    "avgif",
    "arg_max",
    "arg_min",
    "make_set",
    "make_list",
    "make_set_if",
    "make_list_if",
    "make_bag",
    "take_any",
    "any",
    "minif",
    "maxif",
    "percentile",
    "percentiles",
    "stdev",
    "variance",
    "make_list_with_nulls",
    "count_distinct",
    "buildschema",
    "hll",
    "tdigest",
];

/// Well-known Kusto scalar functions this engine does not implement (an `Unsupported` error
/// rather than "unknown function").
const KNOWN_UNSUPPORTED: &[&str] = &[
    "split",
    "replace_string",
    "replace_regex",
    "trim",
    "trim_start",
    "trim_end",
    "format_datetime",
    "format_timespan",
    "datetime_diff",
    "datetime_add",
    "datetime_part",
    "startofday",
    "startofweek",
    "startofmonth",
    "startofyear",
    "endofday",
    "endofweek",
    "endofmonth",
    "endofyear",
    "dayofweek",
    "dayofmonth",
    "dayofyear",
    "getmonth",
    "getyear",
    "hourofday",
    "make_datetime",
    "make_timespan",
    "round",
    "ceiling",
    "floor_",
    "log",
    "log10",
    "exp",
    "pow",
    "sqrt",
    "rand",
    "hash_sha256",
    "base64_encode_tostring",
    "base64_decode_tostring",
    "url_encode",
    "url_decode",
    "parse_url",
    "parse_path",
    "parse_ipv4",
    "ipv4_is_match",
    "ipv4_is_in_range",
    "array_concat",
    "array_slice",
    "array_sort_asc",
    "array_sort_desc",
    "array_index_of",
    "array_sum",
    "set_union",
    "set_intersect",
    "set_difference",
    "bag_merge",
    "pack_all",
    "bag_remove_keys",
    "zip",
    "todecimal",
    "gettype",
    "strcat_delim",
    "strcat_array",
    "countof",
    "indexof",
    "reverse",
    "row_cumsum",
    "series_stats",
    "materialize",
    "extract_all",
    "extract_json",
    "parse_xml",
    "column_ifexists",
    "current_principal",
    "cursor_after",
    "isascii",
    "isutf8",
    "unixtime_seconds_todatetime",
    "unixtime_milliseconds_todatetime",
    "format_bytes",
    "new_guid",
    "punycode_to_string",
    "has_any_index",
    "max_of",
    "min_of",
    "sign",
    "tohex",
    "strrep",
    "bin_at",
    "treepath",
];

fn arity(pos: Pos, name: &str, args: &[Expr], min: usize, max: usize) -> Result<(), KqlError> {
    if args.len() < min || args.len() > max {
        let want = if min == max {
            format!("{min}")
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(semantic(
            pos,
            format!(
                "function '{name}' expects {want} argument(s), got {}",
                args.len()
            ),
        ));
    }
    Ok(())
}

/// The common type of branch values (`iff`, `case`, `coalesce`).
fn common_type(pos: Pos, name: &str, tys: &[(ColumnType, bool)]) -> Result<ColumnType, KqlError> {
    // (type, is a null literal)
    let mut out: Option<ColumnType> = None;
    for &(t, is_null) in tys {
        if is_null {
            continue;
        }
        out = Some(match out {
            None => t,
            Some(o) if o == t => o,
            Some(o) if o.is_numeric() && t.is_numeric() => {
                arith_type(crate::scalar::ArOp::Add, o, t).unwrap_or(ColumnType::Real)
            }
            Some(o) => {
                return Err(semantic(
                    pos,
                    format!("the values of '{name}' must have one type, found {o} and {t}"),
                ));
            }
        });
    }
    Ok(out.unwrap_or(tys.first().map_or(ColumnType::Dynamic, |t| t.0)))
}

fn is_null_literal(b: &Bound) -> bool {
    matches!(b.expr, CExpr::Const(Value::Null))
}

/// Binds a function call.
pub fn bind_call(s: &Scope<'_>, name: &str, args: &[Expr], pos: Pos) -> Result<Bound, KqlError> {
    if AGGREGATES.contains(&name) {
        return Err(semantic(
            pos,
            format!("the aggregate function '{name}' is only allowed directly in 'summarize'"),
        ));
    }
    let type_arg = |e: &Expr| -> Option<ColumnType> {
        match e.kind {
            ExprKind::TypeOf(t) => Some(t),
            _ => None,
        }
    };
    // Arguments other than typeof(…) are bound up front.
    let mut b = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        if type_arg(a).is_none() {
            b.push(s.bind(a)?);
        } else if !(name == "extract" && i == 3) {
            return Err(semantic(
                a.pos,
                format!("typeof(…) is not an argument of '{name}'"),
            ));
        }
    }
    let first_name = b.first().and_then(|x| x.name.clone());
    let mk = |f: Func, ty: ColumnType, name: Option<String>, b: Vec<Bound>| Bound {
        expr: CExpr::Call(Box::new(f), b.into_iter().map(|x| x.expr).collect()),
        ty,
        name,
    };
    use ColumnType as T;
    let r = match name {
        // now() and ago() see one instant per query: the evaluation's clock [§1.5].
        "now" => {
            arity(pos, name, args, 0, 1)?;
            let now = CExpr::Const(Value::DateTime(s.now));
            match b.into_iter().next() {
                None => Bound {
                    expr: now,
                    ty: T::DateTime,
                    name: None,
                },
                Some(off) => {
                    expect(pos, name, &off, &[T::TimeSpan])?;
                    Bound {
                        expr: CExpr::Arith(
                            ArOp::Add,
                            Box::new(now),
                            Box::new(off.expr),
                            T::DateTime,
                        ),
                        ty: T::DateTime,
                        name: None,
                    }
                }
            }
        }
        "ago" => {
            arity(pos, name, args, 1, 1)?;
            expect(pos, name, &b[0], &[T::TimeSpan])?;
            let off = b
                .into_iter()
                .next()
                .map_or(CExpr::Const(Value::Null), |x| x.expr);
            Bound {
                expr: CExpr::Arith(
                    ArOp::Sub,
                    Box::new(CExpr::Const(Value::DateTime(s.now))),
                    Box::new(off),
                    T::DateTime,
                ),
                ty: T::DateTime,
                name: None,
            }
        }
        // The row's hidden `$IngestionTime`; null where the rows have none (see `operators`).
        "ingestion_time" => {
            arity(pos, name, args, 0, 0)?;
            Bound {
                expr: CExpr::IngestionTime,
                ty: T::DateTime,
                name: None,
            }
        }
        "tostring" => {
            arity(pos, name, args, 1, 1)?;
            mk(Func::ToString, T::String, first_name, b)
        }
        "toint" => {
            arity(pos, name, args, 1, 1)?;
            mk(Func::ToInt, T::Int, first_name, b)
        }
        "tolong" => {
            arity(pos, name, args, 1, 1)?;
            mk(Func::ToLong, T::Long, first_name, b)
        }
        "todouble" | "toreal" => {
            arity(pos, name, args, 1, 1)?;
            mk(Func::ToReal, T::Real, first_name, b)
        }
        "tobool" | "toboolean" => {
            arity(pos, name, args, 1, 1)?;
            mk(Func::ToBool, T::Bool, first_name, b)
        }
        "todatetime" => {
            arity(pos, name, args, 1, 1)?;
            mk(Func::ToDateTime, T::DateTime, first_name, b)
        }
        "totimespan" | "totime" => {
            arity(pos, name, args, 1, 1)?;
            mk(Func::ToTimeSpan, T::TimeSpan, first_name, b)
        }
        "toguid" => {
            arity(pos, name, args, 1, 1)?;
            mk(Func::ToGuid, T::Guid, first_name, b)
        }
        "todynamic" | "parse_json" | "toobject" | "parsejson" => {
            arity(pos, name, args, 1, 1)?;
            let n = if name == "todynamic" {
                first_name
            } else {
                None
            };
            mk(Func::ToDynamic, T::Dynamic, n, b)
        }
        "array_length" => {
            arity(pos, name, args, 1, 1)?;
            expect(pos, name, &b[0], &[T::Dynamic])?;
            mk(Func::ArrayLength, T::Long, None, b)
        }
        "set_has_element" => {
            arity(pos, name, args, 2, 2)?;
            expect(pos, name, &b[0], &[T::Dynamic])?;
            mk(Func::SetHasElement, T::Bool, None, b)
        }
        "isempty" => {
            arity(pos, name, args, 1, 1)?;
            mk(Func::IsEmpty, T::Bool, None, b)
        }
        "isnotempty" | "notempty" => {
            arity(pos, name, args, 1, 1)?;
            mk(Func::IsNotEmpty, T::Bool, None, b)
        }
        "isnull" => {
            arity(pos, name, args, 1, 1)?;
            mk(Func::IsNull, T::Bool, None, b)
        }
        "isnotnull" | "notnull" => {
            arity(pos, name, args, 1, 1)?;
            mk(Func::IsNotNull, T::Bool, None, b)
        }
        "strcat" => {
            arity(pos, name, args, 1, 64)?;
            mk(Func::Strcat, T::String, None, b)
        }
        "tolower" => {
            arity(pos, name, args, 1, 1)?;
            mk(Func::ToLower, T::String, None, b)
        }
        "toupper" => {
            arity(pos, name, args, 1, 1)?;
            mk(Func::ToUpper, T::String, None, b)
        }
        "strlen" => {
            arity(pos, name, args, 1, 1)?;
            let n = first_name.map(|n| format!("strlen_{n}"));
            mk(Func::Strlen, T::Long, n, b)
        }
        "substring" => {
            arity(pos, name, args, 2, 3)?;
            mk(Func::Substring, T::String, None, b)
        }
        "iff" | "iif" => {
            arity(pos, name, args, 3, 3)?;
            expect(pos, name, &b[0], &[T::Bool, T::Dynamic])?;
            let ty = common_type(
                pos,
                name,
                &[
                    (b[1].ty, is_null_literal(&b[1])),
                    (b[2].ty, is_null_literal(&b[2])),
                ],
            )?;
            mk(Func::Iff(ty), ty, None, b)
        }
        "case" => {
            arity(pos, name, args, 3, usize::MAX)?;
            if b.len() % 2 == 0 {
                return Err(semantic(
                    pos,
                    "case(…) expects predicate/value pairs and an else value",
                ));
            }
            let mut tys = Vec::new();
            for (i, x) in b.iter().enumerate() {
                if i % 2 == 0 && i + 1 < b.len() {
                    expect(pos, name, x, &[T::Bool, T::Dynamic])?;
                } else {
                    tys.push((x.ty, is_null_literal(x)));
                }
            }
            let ty = common_type(pos, name, &tys)?;
            mk(Func::Case(ty), ty, None, b)
        }
        "coalesce" => {
            arity(pos, name, args, 2, 64)?;
            let tys: Vec<_> = b.iter().map(|x| (x.ty, is_null_literal(x))).collect();
            let ty = common_type(pos, name, &tys)?;
            mk(Func::Coalesce(ty), ty, None, b)
        }
        "bag_keys" => {
            arity(pos, name, args, 1, 1)?;
            expect(pos, name, &b[0], &[T::Dynamic])?;
            mk(Func::BagKeys, T::Dynamic, None, b)
        }
        "extract" => {
            arity(pos, name, args, 3, 4)?;
            let ty = match args.get(3) {
                Some(a) => type_arg(a)
                    .ok_or_else(|| semantic(a.pos, "extract's 4th argument must be typeof(T)"))?,
                None => T::String,
            };
            let re = match &b[0].expr {
                CExpr::Const(v) => Some(regex::Regex::new(&v.to_kql_string()).map_err(|e| {
                    semantic(args[0].pos, format!("invalid regular expression: {e}"))
                })?),
                _ => None,
            };
            expect(pos, name, &b[1], &[T::Long, T::Int])?;
            mk(Func::Extract { re, ty }, ty, None, b)
        }
        "not" => {
            arity(pos, name, args, 1, 1)?;
            expect(pos, name, &b[0], &[T::Bool, T::Dynamic])?;
            mk(Func::Not, T::Bool, None, b)
        }
        "bin" | "floor" => {
            arity(pos, name, args, 2, 2)?;
            let ty = b[0].ty;
            if !(ty.is_numeric() || matches!(ty, T::DateTime | T::TimeSpan)) {
                return Err(semantic(
                    pos,
                    format!("bin() cannot bin values of type {ty}"),
                ));
            }
            if ty == T::DateTime {
                expect(pos, name, &b[1], &[T::TimeSpan])?;
            }
            let rty = if ty == T::DateTime || ty == T::TimeSpan {
                ty
            } else {
                arith_type(crate::scalar::ArOp::Add, ty, b[1].ty).unwrap_or(T::Real)
            };
            mk(Func::Bin(rty), rty, first_name, b)
        }
        "pack_array" => mk(Func::PackArray, T::Dynamic, None, b),
        "isnan" => {
            arity(pos, name, args, 1, 1)?;
            mk(Func::IsNan, T::Bool, None, b)
        }
        "abs" => {
            arity(pos, name, args, 1, 1)?;
            let ty = b[0].ty;
            mk(Func::Abs, ty, None, b)
        }
        // hash(source [, mod]): XXH64 of the value's bytes, `mod` giving hash % mod.
        "hash" | "hash_xxhash64" => {
            arity(pos, name, args, 1, 2)?;
            if let Some(m) = b.get(1) {
                expect(pos, name, m, &[T::Long, T::Int])?;
            }
            mk(Func::Hash, T::Long, None, b)
        }
        // bag_pack(key1, value1, …) and its old name pack(…): a property bag.
        "bag_pack" | "pack" | "pack_dictionary" => {
            if b.len() % 2 != 0 {
                return Err(semantic(
                    pos,
                    format!(
                        "function '{name}' expects key/value pairs, got {} argument(s)",
                        b.len()
                    ),
                ));
            }
            for (i, k) in b.iter().enumerate().step_by(2) {
                if !matches!(k.ty, T::String | T::Dynamic) {
                    return Err(semantic(
                        args[i].pos,
                        format!("the keys of '{name}' must be strings, found {}", k.ty),
                    ));
                }
            }
            mk(Func::BagPack, T::Dynamic, None, b)
        }
        "row_number" => {
            arity(pos, name, args, 0, 2)?;
            let rows = window_rows(s, name, pos)?;
            bind_row_number(rows, b, args, pos)?
        }
        "prev" | "next" => {
            arity(pos, name, args, 1, 3)?;
            window_rows(s, name, pos)?;
            bind_shift(name, b, args, pos)?
        }
        other if KNOWN_UNSUPPORTED.contains(&other) => {
            return Err(err_at(
                KqlErrorKind::Unsupported,
                pos,
                format!("the function '{other}' is not supported"),
            ));
        }
        other => {
            return Err(semantic(pos, format!("unknown function '{other}'")));
        }
    };
    Ok(r)
}

/// The rows a window function runs over: only a serialized row set has them ("window functions"
/// page: window functions can only be used on serialized sets; Kusto refuses the query).
fn window_rows<'s>(s: &Scope<'s>, name: &str, pos: Pos) -> Result<&'s Frame<'s>, KqlError> {
    match s.rows {
        Some(f) if f.serialized => Ok(f),
        _ => Err(semantic(
            pos,
            format!(
                "function '{name}' cannot be invoked in the current context: the row set must be \
                 serialized (use serialize, sort, order, top or range first)"
            ),
        )),
    }
}

/// A constant integer argument of a window function.
fn const_long(arg: &Bound, what: &str, pos: Pos) -> Result<i64, KqlError> {
    match &arg.expr {
        CExpr::Const(Value::Long(v)) => Ok(*v),
        CExpr::Const(Value::Int(v)) => Ok(*v as i64),
        _ => Err(semantic(pos, format!("{what} must be a constant integer"))),
    }
}

/// `row_number([start [, restart]])` ("row_number() function"): start (default 1) on the
/// first row and one more on each next row; where `restart` is true the numbering starts again
/// at `start`.
fn bind_row_number(
    rows: &Frame<'_>,
    b: Vec<Bound>,
    args: &[Expr],
    pos: Pos,
) -> Result<Bound, KqlError> {
    let start = match b.first() {
        Some(x) => const_long(x, "row_number's start", args[0].pos)?,
        None => 1,
    };
    let expr = match b.get(1) {
        None => CExpr::RowNumber(start),
        Some(restart) => {
            expect(
                pos,
                "row_number",
                restart,
                &[ColumnType::Bool, ColumnType::Dynamic],
            )?;
            let mut n = start;
            let numbers = (0..rows.len)
                .map(|r| {
                    if r > 0 && as_true(&eval(&restart.expr, rows, r)) {
                        n = start;
                    } else if r > 0 {
                        n = n.wrapping_add(1);
                    }
                    Value::Long(n)
                })
                .collect();
            CExpr::PerRow(std::sync::Arc::new(numbers))
        }
    };
    Ok(Bound {
        expr,
        ty: ColumnType::Long,
        name: None,
    })
}

/// `prev(column [, offset [, default]])` / `next(…)` ("prev() function", "next() function"):
/// the value `offset` (default 1) rows before / after, or `default` (default null) when
/// there is no such row. The offset must be a non-negative constant.
fn bind_shift(name: &str, b: Vec<Bound>, args: &[Expr], pos: Pos) -> Result<Bound, KqlError> {
    let mut it = b.into_iter();
    let Some(col) = it.next() else {
        return Err(semantic(pos, format!("function '{name}' needs a column")));
    };
    let k = match it.next() {
        Some(x) => const_long(&x, &format!("{name}'s offset"), args[1].pos)?,
        None => 1,
    };
    if k < 0 {
        return Err(semantic(
            args[1].pos,
            format!("{name}'s offset must not be negative"),
        ));
    }
    let ty = col.ty;
    let default = match it.next() {
        None => CExpr::Const(ty.null_value()),
        Some(d) if is_null_literal(&d) => CExpr::Const(ty.null_value()),
        // A default of another type must convert to the column's (an int for a long).
        Some(d) => match d.expr {
            CExpr::Const(v) => CExpr::Const(crate::engine::coerce(v, ty).ok_or_else(|| {
                semantic(
                    args[2].pos,
                    format!("{name}'s default must be of the column's type, {ty}"),
                )
            })?),
            e if d.ty == ty => e,
            _ => {
                return Err(semantic(
                    args[2].pos,
                    format!("{name}'s default must be of the column's type, {ty}"),
                ));
            }
        },
    };
    Ok(Bound {
        expr: CExpr::Shift {
            expr: Box::new(col.expr),
            offset: if name == "prev" { -k } else { k },
            default: Box::new(default),
        },
        ty,
        name: None,
    })
}

fn expect(pos: Pos, name: &str, b: &Bound, tys: &[ColumnType]) -> Result<(), KqlError> {
    if tys.contains(&b.ty) || (is_null_literal(b) && b.ty == ColumnType::Dynamic) {
        Ok(())
    } else {
        let want: Vec<&str> = tys.iter().map(|t| t.as_str()).collect();
        Err(semantic(
            pos,
            format!(
                "function '{name}' expects {} here, found {}",
                want.join(" or "),
                b.ty
            ),
        ))
    }
}

/// Evaluates a bound call.
pub fn eval_call<'x>(
    func: &'x Func,
    args: &'x [CExpr],
    f: &'x Frame<'_>,
    row: usize,
) -> Cow<'x, Value> {
    let arg = |i: usize| -> Cow<'x, Value> {
        match args.get(i) {
            Some(a) => eval(a, f, row),
            None => Cow::Owned(Value::Null),
        }
    };
    let owned = |v: Value| -> Cow<'x, Value> { Cow::Owned(v) };
    match func {
        Func::ToString => {
            let a = arg(0);
            match &*a {
                Value::String(_) => a,
                other => owned(Value::string(other.to_kql_string())),
            }
        }
        Func::ToInt => owned(
            to_long(&arg(0))
                .and_then(|i| i32::try_from(i).ok())
                .map_or(Value::Null, Value::Int),
        ),
        Func::ToLong => owned(to_long(&arg(0)).map_or(Value::Null, Value::Long)),
        Func::ToReal => owned(to_real(&arg(0)).map_or(Value::Null, Value::Real)),
        Func::ToBool => owned(to_bool(&arg(0)).map_or(Value::Null, Value::Bool)),
        Func::ToDateTime => owned(to_datetime(&arg(0)).map_or(Value::Null, Value::DateTime)),
        Func::ToTimeSpan => owned(to_timespan(&arg(0)).map_or(Value::Null, Value::TimeSpan)),
        Func::ToGuid => owned(match &*undyn(&arg(0)) {
            Value::Guid(g) => Value::Guid(*g),
            Value::String(s) => uuid::Uuid::parse_str(s.trim()).map_or(Value::Null, Value::Guid),
            _ => Value::Null,
        }),
        Func::ToDynamic => owned(to_dynamic(&arg(0))),
        Func::ArrayLength => owned(match arg(0).as_json() {
            Some(serde_json::Value::Array(a)) => Value::Long(a.len() as i64),
            _ => Value::Null,
        }),
        Func::SetHasElement => {
            let a = arg(0);
            let v = arg(1);
            owned(match a.as_json() {
                Some(serde_json::Value::Array(items)) => Value::Bool(items.iter().any(|x| {
                    crate::scalar::kql_eq(&json_scalar_to_value(x), &v, false) == Some(true)
                })),
                _ => Value::Null,
            })
        }
        Func::IsEmpty => owned(Value::Bool(is_empty(&arg(0)))),
        Func::IsNotEmpty => owned(Value::Bool(!is_empty(&arg(0)))),
        Func::IsNull => owned(Value::Bool(arg(0).is_null())),
        Func::IsNotNull => owned(Value::Bool(!arg(0).is_null())),
        Func::Strcat => {
            let mut s = String::new();
            for i in 0..args.len() {
                s.push_str(&arg(i).to_kql_string());
            }
            owned(Value::string(s))
        }
        Func::ToLower => owned(Value::string(arg(0).to_kql_string().to_lowercase())),
        Func::ToUpper => owned(Value::string(arg(0).to_kql_string().to_uppercase())),
        Func::Strlen => owned(Value::Long(arg(0).to_kql_string().chars().count() as i64)),
        Func::Substring => {
            let s = arg(0).to_kql_string();
            let start = to_long(&arg(1)).unwrap_or(0).max(0) as usize;
            let len = if args.len() > 2 {
                to_long(&arg(2))
            } else {
                None
            };
            let chars = s.chars().skip(start);
            let out: String = match len {
                Some(l) => chars.take(l.max(0) as usize).collect(),
                None => chars.collect(),
            };
            owned(Value::string(out))
        }
        Func::Iff(ty) => {
            let c = arg(0);
            let pick = if as_true(&c) { 1 } else { 2 };
            coerce_cow(arg(pick), *ty)
        }
        Func::Case(ty) => {
            let n = args.len();
            let mut i = 0;
            while i + 1 < n {
                if as_true(&arg(i)) {
                    return coerce_cow(arg(i + 1), *ty);
                }
                i += 2;
            }
            coerce_cow(arg(n - 1), *ty)
        }
        Func::Coalesce(ty) => {
            for i in 0..args.len() {
                let v = arg(i);
                let empty = match &*v {
                    Value::String(s) => s.is_empty(),
                    other => other.is_null(),
                };
                if !empty {
                    return coerce_cow(v, *ty);
                }
            }
            owned(ty.null_value())
        }
        Func::BagKeys => owned(match arg(0).as_json() {
            Some(serde_json::Value::Object(m)) => Value::dynamic(serde_json::Value::Array(
                m.keys()
                    .map(|k| serde_json::Value::String(k.clone()))
                    .collect(),
            )),
            _ => Value::Null,
        }),
        Func::Extract { re, ty } => {
            let compiled;
            let re = match re {
                Some(r) => r,
                None => match regex::Regex::new(&arg(0).to_kql_string()) {
                    Ok(r) => {
                        compiled = r;
                        &compiled
                    }
                    Err(_) => return owned(ty.null_value()),
                },
            };
            let group = to_long(&arg(1)).unwrap_or(-1);
            let src = arg(2).to_kql_string();
            let m = if group < 0 {
                None
            } else {
                re.captures(&src)
                    .and_then(|c| c.get(group as usize))
                    .map(|m| m.as_str().to_string())
            };
            owned(match m {
                None => ty.null_value(),
                Some(s) => convert_string(&s, *ty),
            })
        }
        Func::Not => owned(match crate::scalar::as_bool(&arg(0)) {
            Some(b) => Value::Bool(!b),
            None => Value::Null,
        }),
        Func::Bin(ty) => owned(bin(&undyn(&arg(0)), &undyn(&arg(1)), *ty)),
        Func::PackArray => {
            let items = (0..args.len()).map(|i| value_to_json(&arg(i))).collect();
            owned(Value::dynamic(serde_json::Value::Array(items)))
        }
        Func::IsNan => owned(match &*undyn(&arg(0)) {
            Value::Real(r) => Value::Bool(r.is_nan()),
            Value::Null => Value::Null,
            _ => Value::Bool(false),
        }),
        Func::Abs => owned(match &*undyn(&arg(0)) {
            Value::Int(i) => Value::Int(i.wrapping_abs()),
            Value::Long(i) => Value::Long(i.wrapping_abs()),
            Value::Real(r) => Value::Real(r.abs()),
            Value::TimeSpan(t) => Value::TimeSpan(t.abs()),
            _ => Value::Null,
        }),
        Func::BagPack => {
            let mut bag = serde_json::Map::new();
            for i in (0..args.len()).step_by(2) {
                bag.insert(arg(i).to_kql_string(), value_to_json(&arg(i + 1)));
            }
            owned(Value::dynamic(serde_json::Value::Object(bag)))
        }
        Func::Hash => {
            let Some(h) = hash_xxh64(&arg(0)) else {
                return owned(Value::Null);
            };
            owned(match args.len() {
                1 => Value::Long(h as i64),
                _ => match to_long(&arg(1)) {
                    Some(m) if m > 0 => Value::Long((h % m as u64) as i64),
                    _ => Value::Null,
                },
            })
        }
    }
}

/// Kusto's `hash()`: XXH64 (seed 0) of the value's bytes, as an unsigned 64-bit number (the
/// caller reinterprets it as a long). The bytes, checked against the docs' examples of the
/// "hash() function" page (`hash("World")` = 1846988464401551951, `hash(datetime(2015-01-01))`
/// = 1380966698541616202): a string's UTF-8 bytes; a datetime's ticks since 0001-01-01 as 8
/// little-endian bytes. The other types are UNCONFIRMED (no documented example), chosen alike:
/// int and long as the long's 8 little-endian bytes (equal values hash alike), real as its
/// IEEE bits, timespan as its ticks, bool as one byte, guid as its .NET byte order, a dynamic
/// scalar as the scalar and an array or bag as its JSON text. Null has no hash (null).
fn hash_xxh64(v: &Value) -> Option<u64> {
    let xxh64 = |b: &[u8], seed: u64| twox_hash::XxHash64::oneshot(seed, b);
    let v = undyn(v);
    Some(match &*v {
        Value::Null => return None,
        Value::String(s) => xxh64(s.as_bytes(), 0),
        Value::DateTime(d) => xxh64(&(datetime_ticks(d) as i64).to_le_bytes(), 0),
        Value::Int(i) => xxh64(&(*i as i64).to_le_bytes(), 0),
        Value::Long(i) => xxh64(&i.to_le_bytes(), 0),
        Value::Real(r) => xxh64(&r.to_bits().to_le_bytes(), 0),
        Value::TimeSpan(t) => xxh64(&ticks(t).to_le_bytes(), 0),
        Value::Bool(b) => xxh64(&[u8::from(*b)], 0),
        Value::Guid(g) => xxh64(&g.to_bytes_le(), 0),
        Value::Dynamic(j) => xxh64(j.to_string().as_bytes(), 0),
    })
}

fn as_true(v: &Value) -> bool {
    v.is_true()
}

/// Converts a branch value to the branch type (int→long, long→real, null string → "").
fn coerce_cow(v: Cow<'_, Value>, ty: ColumnType) -> Cow<'_, Value> {
    match (&*v, ty) {
        (Value::Int(i), ColumnType::Long) => Cow::Owned(Value::Long(*i as i64)),
        (Value::Int(i), ColumnType::Real) => Cow::Owned(Value::Real(*i as f64)),
        (Value::Long(i), ColumnType::Real) => Cow::Owned(Value::Real(*i as f64)),
        (Value::Null, ColumnType::String) => Cow::Owned(ColumnType::String.null_value()),
        _ => v,
    }
}

/// A plain value as JSON (for dynamic results).
pub fn value_to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => (*i).into(),
        Value::Long(i) => (*i).into(),
        Value::Real(r) => serde_json::Number::from_f64(*r)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::Dynamic(j) => (**j).clone(),
        other => serde_json::Value::String(other.to_kql_string()),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Dynamic(j) => match &**j {
            serde_json::Value::Null => true,
            serde_json::Value::String(s) => s.is_empty(),
            _ => false,
        },
        _ => false,
    }
}

/// `tolong` semantics: numbers truncate, strings parse (integers, or reals truncated), bools
/// are 1/0, anything else is null [kql-semantics.md §3.1].
pub fn to_long(v: &Value) -> Option<i64> {
    match &*undyn(v) {
        Value::Int(i) => Some(*i as i64),
        Value::Long(i) => Some(*i),
        Value::Real(r) if r.is_finite() => Some(r.trunc() as i64),
        Value::Bool(b) => Some(*b as i64),
        Value::String(s) => {
            let t = s.trim();
            t.parse::<i64>().ok().or_else(|| {
                t.parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite())
                    .map(|r| r.trunc() as i64)
            })
        }
        Value::TimeSpan(t) => Some(ticks(t)),
        Value::DateTime(d) => Some(datetime_ticks(d) as i64),
        _ => None,
    }
}

/// `toreal` semantics.
pub fn to_real(v: &Value) -> Option<f64> {
    match &*undyn(v) {
        Value::Int(i) => Some(*i as f64),
        Value::Long(i) => Some(*i as f64),
        Value::Real(r) => Some(*r),
        Value::Bool(b) => Some(*b as i64 as f64),
        Value::String(s) => match s.trim() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" | "+inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            t => t.parse().ok(),
        },
        _ => None,
    }
}

fn to_bool(v: &Value) -> Option<bool> {
    match &*undyn(v) {
        Value::Bool(b) => Some(*b),
        Value::Int(i) => Some(*i != 0),
        Value::Long(i) => Some(*i != 0),
        Value::Real(r) => Some(*r != 0.0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// `todatetime` semantics: datetimes as they are, strings parsed, others null.
pub fn to_datetime(v: &Value) -> Option<DateTime<Utc>> {
    match &*undyn(v) {
        Value::DateTime(d) => Some(*d),
        Value::String(s) => parse_datetime(s),
        _ => None,
    }
}

fn to_timespan(v: &Value) -> Option<TimeDelta> {
    match &*undyn(v) {
        Value::TimeSpan(t) => Some(*t),
        Value::String(s) => parse_timespan_c(s),
        Value::Long(i) => Some(from_ticks(*i)),
        Value::Int(i) => Some(from_ticks(*i as i64)),
        _ => None,
    }
}

/// `parse_json` semantics: valid JSON text → its value, invalid text → a dynamic string,
/// `""` → null, dynamic → as is [kql-semantics.md §3.6].
pub fn to_dynamic(v: &Value) -> Value {
    match v {
        Value::Dynamic(_) => v.clone(),
        Value::String(s) => {
            if s.trim().is_empty() {
                return Value::Null;
            }
            match serde_json::from_str::<serde_json::Value>(s) {
                Ok(j) => Value::dynamic(j),
                Err(_) => Value::dynamic(serde_json::Value::String(s.to_string())),
            }
        }
        Value::Null => Value::Null,
        other => Value::dynamic(value_to_json(other)),
    }
}

/// Converts extracted text to `ty` (null when it does not convert).
fn convert_string(s: &str, ty: ColumnType) -> Value {
    let v = Value::string(s);
    match ty {
        ColumnType::String => v,
        ColumnType::Int => to_long(&v)
            .and_then(|i| i32::try_from(i).ok())
            .map_or(Value::Null, Value::Int),
        ColumnType::Long => to_long(&v).map_or(Value::Null, Value::Long),
        ColumnType::Real | ColumnType::Decimal => to_real(&v).map_or(Value::Null, Value::Real),
        ColumnType::Bool => to_bool(&v).map_or(Value::Null, Value::Bool),
        ColumnType::DateTime => to_datetime(&v).map_or(Value::Null, Value::DateTime),
        ColumnType::TimeSpan => to_timespan(&v).map_or(Value::Null, Value::TimeSpan),
        ColumnType::Guid => uuid::Uuid::parse_str(s).map_or(Value::Null, Value::Guid),
        ColumnType::Dynamic => to_dynamic(&v),
    }
}

const DATETIME_TICKS_AT_EPOCH: i128 = 621_355_968_000_000_000;

/// Ticks since 0001-01-01.
fn datetime_ticks(d: &DateTime<Utc>) -> i128 {
    d.timestamp() as i128 * 10_000_000
        + (d.timestamp_subsec_nanos() / 100) as i128
        + DATETIME_TICKS_AT_EPOCH
}

fn datetime_from_ticks(t: i128) -> Option<DateTime<Utc>> {
    let since_epoch = t - DATETIME_TICKS_AT_EPOCH;
    let secs = since_epoch.div_euclid(10_000_000);
    let sub = since_epoch.rem_euclid(10_000_000);
    DateTime::<Utc>::from_timestamp(i64::try_from(secs).ok()?, (sub * 100) as u32)
}

/// `bin(v, size)`: v rounded down to a multiple of size; a null or non-positive size gives
/// null [kql-semantics.md §3.3]. Datetimes are binned from 0001-01-01.
fn bin(v: &Value, size: &Value, ty: ColumnType) -> Value {
    match (v, size) {
        (Value::DateTime(d), Value::TimeSpan(s)) => {
            let st = ticks(s) as i128;
            if st <= 0 {
                return Value::Null;
            }
            let t = datetime_ticks(d);
            datetime_from_ticks(t.div_euclid(st) * st).map_or(Value::Null, Value::DateTime)
        }
        (Value::TimeSpan(t), Value::TimeSpan(s)) => {
            let st = ticks(s);
            if st <= 0 {
                return Value::Null;
            }
            Value::TimeSpan(from_ticks(ticks(t).div_euclid(st) * st))
        }
        _ => {
            let (Some(x), Some(s)) = (to_real_num(v), to_real_num(size)) else {
                return Value::Null;
            };
            if s <= 0.0 {
                return Value::Null;
            }
            match ty {
                ColumnType::Int | ColumnType::Long => {
                    let (xi, si) = (to_long(v).unwrap_or(0), to_long(size).unwrap_or(1).max(1));
                    let r = xi.div_euclid(si) * si;
                    if ty == ColumnType::Int {
                        Value::Int(r as i32)
                    } else {
                        Value::Long(r)
                    }
                }
                _ => Value::Real((x / s).floor() * s),
            }
        }
    }
}

fn to_real_num(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Long(i) => Some(*i as f64),
        Value::Real(r) => Some(*r),
        _ => None,
    }
}
