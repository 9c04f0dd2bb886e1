//! Scalar expressions: binding an `ast::Expr` against a schema (resolving columns, lets and
//! functions, inferring the result type and default column name) into a `CExpr`, and
//! evaluating a `CExpr` on one row, with Kusto's null, comparison and arithmetic rules
//! [kql-semantics.md §3.2–3.5, §2.17].

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::ast::{BinOp, Expr, ExprKind, ListArg, Pipeline, StrOp, StrOpKind};
use crate::error::{KqlError, KqlErrorKind};
use crate::frame::{Frame, Meta};
use crate::functions::{self, Func};
use crate::lexer::Pos;
use crate::strops;
use crate::value::{ColumnType, Value, compare_values, json_scalar_to_value};

/// Arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A bound scalar expression.
#[derive(Debug, Clone)]
pub enum CExpr {
    Const(Value),
    Col(usize),
    Member(Box<CExpr>, String),
    Index(Box<CExpr>, Box<CExpr>),
    Neg(Box<CExpr>),
    Arith(ArOp, Box<CExpr>, Box<CExpr>, ColumnType),
    Cmp(CmpOp, Box<CExpr>, Box<CExpr>),
    And(Box<CExpr>, Box<CExpr>),
    Or(Box<CExpr>, Box<CExpr>),
    Str {
        op: StrOp,
        l: Box<CExpr>,
        r: Box<CExpr>,
        regex: Option<regex::Regex>,
    },
    In {
        lhs: Box<CExpr>,
        items: Vec<CExpr>,
        negated: bool,
        ci: bool,
    },
    /// `in` over many string constants (lowercased for `in~`).
    InSet {
        lhs: Box<CExpr>,
        set: hashbrown::HashSet<String>,
        negated: bool,
        ci: bool,
    },
    /// `in` over many integer constants (a tabular list of ids, say).
    InLongs {
        lhs: Box<CExpr>,
        set: hashbrown::HashSet<i64>,
        negated: bool,
    },
    HasAny {
        lhs: Box<CExpr>,
        terms: Vec<String>,
        all: bool,
    },
    Between {
        lhs: Box<CExpr>,
        lo: Box<CExpr>,
        hi: Box<CExpr>,
        negated: bool,
    },
    Call(Box<Func>, Vec<CExpr>),
    /// `ingestion_time()`: the current row's hidden ingestion time.
    IngestionTime,
    /// `row_number(start)` without restarts: start + the row's index.
    RowNumber(i64),
    /// Values computed for every row at bind time (`row_number(start, restart)`).
    PerRow(std::sync::Arc<Vec<Value>>),
    /// `prev(expr, k, default)` (offset -k) and `next(expr, k, default)` (offset +k): `expr`
    /// on the row `offset` rows away, `default` (on this row) past either end.
    Shift {
        expr: Box<CExpr>,
        offset: i64,
        default: Box<CExpr>,
    },
}

/// A bound expression with its type and default output name.
#[derive(Debug, Clone)]
pub struct Bound {
    pub expr: CExpr,
    pub ty: ColumnType,
    /// The name a projection gives it when unnamed (None → `ColumnN`) [kql-semantics.md §2.17].
    pub name: Option<String>,
}

/// What an expression can see while being bound.
pub struct Scope<'s> {
    pub meta: &'s [Meta],
    pub lets: &'s HashMap<String, (Value, ColumnType)>,
    pub now: DateTime<Utc>,
    /// Evaluates a tabular expression used as a list (`in (T | …)`) to its first column.
    pub tabular: &'s dyn Fn(&Pipeline) -> Result<Vec<Value>, KqlError>,
    /// Evaluates `toscalar(…)`'s tabular expression (once per query) to the first column of
    /// its first row and that column's type.
    pub scalar: &'s ToScalarFn<'s>,
    /// The rows an operator evaluates the expression on, when it is one whose expressions may
    /// use the window functions (`where`, `extend`, `project`, `serialize`); they may only
    /// when the rows are serialized.
    pub rows: Option<&'s Frame<'s>>,
}

/// A typed value: what a scalar `let` or `toscalar(…)` yields.
pub type Typed = (Value, ColumnType);

/// The evaluator of `toscalar(…)`'s tabular expression given to a [`Scope`].
pub type ToScalarFn<'s> = dyn Fn(&Pipeline, Pos) -> Result<Typed, KqlError> + 's;

pub fn err_at(kind: KqlErrorKind, pos: Pos, msg: impl Into<String>) -> KqlError {
    KqlError::new(kind, msg, pos.line, pos.column)
}

pub fn semantic(pos: Pos, msg: impl Into<String>) -> KqlError {
    err_at(KqlErrorKind::Semantic, pos, msg)
}

/// True when `e` is an operation whose operands are all constants (so it can be computed
/// once at bind time; every operation and function here is pure).
fn foldable(e: &CExpr) -> bool {
    let c = |x: &CExpr| matches!(x, CExpr::Const(_));
    match e {
        CExpr::Const(_)
        | CExpr::Col(_)
        | CExpr::IngestionTime
        | CExpr::RowNumber(_)
        | CExpr::PerRow(_)
        | CExpr::Shift { .. } => false,
        CExpr::Member(b, _) | CExpr::Neg(b) => c(b),
        CExpr::Index(a, b)
        | CExpr::Arith(_, a, b, _)
        | CExpr::Cmp(_, a, b)
        | CExpr::And(a, b)
        | CExpr::Or(a, b) => c(a) && c(b),
        CExpr::Str { l, r, .. } => c(l) && c(r),
        CExpr::In { lhs, items, .. } => c(lhs) && items.iter().all(c),
        CExpr::InSet { lhs, .. } | CExpr::InLongs { lhs, .. } => c(lhs),
        CExpr::HasAny { lhs, .. } => c(lhs),
        CExpr::Between { lhs, lo, hi, .. } => c(lhs) && c(lo) && c(hi),
        CExpr::Call(_, args) => args.iter().all(c),
    }
}

/// The one column `e` reads, when it reads exactly one and nothing else of its row (no
/// ingestion time, row number or neighbouring row): `e`'s value at a row is then a function of
/// that cell alone, as every operation and function here is pure.
pub fn only_column(e: &CExpr) -> Option<usize> {
    fn walk(e: &CExpr, col: &mut Option<usize>) -> bool {
        match e {
            CExpr::Const(_) => true,
            CExpr::Col(c) => *col.get_or_insert(*c) == *c,
            CExpr::IngestionTime | CExpr::RowNumber(_) | CExpr::PerRow(_) | CExpr::Shift { .. } => {
                false
            }
            CExpr::Member(b, _) | CExpr::Neg(b) => walk(b, col),
            CExpr::Index(a, b)
            | CExpr::Arith(_, a, b, _)
            | CExpr::Cmp(_, a, b)
            | CExpr::And(a, b)
            | CExpr::Or(a, b)
            | CExpr::Str { l: a, r: b, .. } => walk(a, col) && walk(b, col),
            CExpr::In { lhs, items, .. } => walk(lhs, col) && items.iter().all(|x| walk(x, col)),
            CExpr::InSet { lhs, .. } | CExpr::InLongs { lhs, .. } | CExpr::HasAny { lhs, .. } => {
                walk(lhs, col)
            }
            CExpr::Between { lhs, lo, hi, .. } => walk(lhs, col) && walk(lo, col) && walk(hi, col),
            CExpr::Call(_, args) => args.iter().all(|x| walk(x, col)),
        }
    }
    let mut col = None;
    if walk(e, &mut col) { col } else { None }
}

impl Scope<'_> {
    /// Binds an expression, computing constant sub-expressions once.
    pub fn bind(&self, e: &Expr) -> Result<Bound, KqlError> {
        let mut b = self.bind_inner(e)?;
        if foldable(&b.expr) {
            let unit = crate::engine::unit_frame();
            let v = eval(&b.expr, &unit, 0).into_owned();
            b.expr = CExpr::Const(v);
        }
        Ok(b)
    }

    fn bind_inner(&self, e: &Expr) -> Result<Bound, KqlError> {
        let pos = e.pos;
        Ok(match &e.kind {
            ExprKind::Literal(v) => Bound {
                ty: v.column_type().unwrap_or(ColumnType::Dynamic),
                expr: CExpr::Const(v.clone()),
                name: None,
            },
            ExprKind::DynamicLiteral(j) => Bound {
                expr: CExpr::Const(Value::dynamic(j.clone())),
                ty: ColumnType::Dynamic,
                name: None,
            },
            ExprKind::TypedNull(t) => Bound {
                expr: CExpr::Const(Value::Null),
                ty: *t,
                name: None,
            },
            ExprKind::Name(n) => {
                if let Some(i) = self.meta.iter().position(|m| &m.name == n) {
                    Bound {
                        expr: CExpr::Col(i),
                        ty: self.meta[i].ty,
                        name: Some(n.clone()),
                    }
                } else if let Some((v, t)) = self.lets.get(n) {
                    Bound {
                        expr: CExpr::Const(v.clone()),
                        ty: *t,
                        name: Some(n.clone()),
                    }
                } else if n == "null" {
                    Bound {
                        expr: CExpr::Const(Value::Null),
                        ty: ColumnType::Dynamic,
                        name: None,
                    }
                } else {
                    return Err(semantic(
                        pos,
                        format!("failed to resolve scalar expression named '{n}'"),
                    ));
                }
            }
            ExprKind::Member(base, key) => {
                let b = self.bind(base)?;
                if b.ty != ColumnType::Dynamic {
                    return Err(semantic(
                        pos,
                        format!(
                            "'.{key}' needs a dynamic value, but the expression is of type {}",
                            b.ty
                        ),
                    ));
                }
                Bound {
                    name: b.name.map(|n| format!("{n}_{key}")),
                    expr: CExpr::Member(Box::new(b.expr), key.clone()),
                    ty: ColumnType::Dynamic,
                }
            }
            ExprKind::Index(base, idx) => {
                let b = self.bind(base)?;
                let i = self.bind(idx)?;
                if b.ty != ColumnType::Dynamic {
                    return Err(semantic(
                        pos,
                        format!(
                            "'[…]' needs a dynamic value, but the expression is of type {}",
                            b.ty
                        ),
                    ));
                }
                let suffix = match &i.expr {
                    CExpr::Const(v) => Some(v.to_kql_string()),
                    _ => None,
                };
                Bound {
                    name: b.name.zip(suffix).map(|(n, s)| format!("{n}_{s}")),
                    expr: CExpr::Index(Box::new(b.expr), Box::new(i.expr)),
                    ty: ColumnType::Dynamic,
                }
            }
            ExprKind::Neg(x) => {
                let b = self.bind(x)?;
                if !(b.ty.is_numeric()
                    || b.ty == ColumnType::TimeSpan
                    || b.ty == ColumnType::Dynamic)
                {
                    return Err(semantic(
                        pos,
                        format!("cannot negate a value of type {}", b.ty),
                    ));
                }
                Bound {
                    expr: CExpr::Neg(Box::new(b.expr)),
                    ty: b.ty,
                    name: None,
                }
            }
            ExprKind::Binary(op, l, r) => self.bind_binary(*op, l, r, pos)?,
            ExprKind::In {
                lhs,
                list,
                negated,
                case_insensitive,
            } => {
                let l = self.bind(lhs)?;
                let items = self.bind_list(list)?;
                for it in &items {
                    check_comparable(l.ty, it.ty, true, pos)?;
                }
                // A long list of string constants is matched through a hash set.
                let all_strings = items
                    .iter()
                    .all(|b| matches!(b.expr, CExpr::Const(Value::String(_))));
                if items.len() > 8 && all_strings && l.ty == ColumnType::String {
                    let set = items
                        .iter()
                        .filter_map(|b| match &b.expr {
                            CExpr::Const(Value::String(x)) if *case_insensitive => {
                                Some(x.to_lowercase())
                            }
                            CExpr::Const(Value::String(x)) => Some(x.to_string()),
                            _ => None,
                        })
                        .collect();
                    return Ok(Bound {
                        expr: CExpr::InSet {
                            lhs: Box::new(l.expr),
                            set,
                            negated: *negated,
                            ci: *case_insensitive,
                        },
                        ty: ColumnType::Bool,
                        name: None,
                    });
                }
                // Likewise many integer constants, for an integer left side.
                let as_long = |b: &Bound| match b.expr {
                    CExpr::Const(Value::Long(x)) => Some(x),
                    CExpr::Const(Value::Int(x)) => Some(x as i64),
                    _ => None,
                };
                if items.len() > 8
                    && !*case_insensitive
                    && matches!(l.ty, ColumnType::Long | ColumnType::Int)
                    && items.iter().all(|b| as_long(b).is_some())
                {
                    return Ok(Bound {
                        expr: CExpr::InLongs {
                            lhs: Box::new(l.expr),
                            set: items.iter().filter_map(as_long).collect(),
                            negated: *negated,
                        },
                        ty: ColumnType::Bool,
                        name: None,
                    });
                }
                Bound {
                    expr: CExpr::In {
                        lhs: Box::new(l.expr),
                        items: items.into_iter().map(|b| b.expr).collect(),
                        negated: *negated,
                        ci: *case_insensitive,
                    },
                    ty: ColumnType::Bool,
                    name: None,
                }
            }
            ExprKind::HasAny { lhs, list, all } => {
                let l = self.bind(lhs)?;
                let items = self.bind_list(list)?;
                let mut terms = Vec::new();
                for it in items {
                    match it.expr {
                        CExpr::Const(v) => match v.as_json() {
                            Some(serde_json::Value::Array(a)) => {
                                terms.extend(a.iter().map(crate::value::json_to_kql_string));
                            }
                            _ => terms.push(v.to_kql_string()),
                        },
                        _ => {
                            return Err(semantic(
                                pos,
                                "the values of has_any/has_all must be constants",
                            ));
                        }
                    }
                }
                Bound {
                    expr: CExpr::HasAny {
                        lhs: Box::new(l.expr),
                        terms,
                        all: *all,
                    },
                    ty: ColumnType::Bool,
                    name: None,
                }
            }
            ExprKind::Between {
                lhs,
                lo,
                hi,
                negated,
            } => {
                let l = self.bind(lhs)?;
                let lo = self.bind(lo)?;
                let mut hi = self.bind(hi)?;
                check_comparable(l.ty, lo.ty, false, pos)?;
                // For a datetime range, `hi` may be a timespan meaning lo + hi [§3.2].
                if l.ty == ColumnType::DateTime && hi.ty == ColumnType::TimeSpan {
                    hi = Bound {
                        expr: CExpr::Arith(
                            ArOp::Add,
                            Box::new(lo.expr.clone()),
                            Box::new(hi.expr),
                            ColumnType::DateTime,
                        ),
                        ty: ColumnType::DateTime,
                        name: None,
                    };
                }
                check_comparable(l.ty, hi.ty, false, pos)?;
                Bound {
                    expr: CExpr::Between {
                        lhs: Box::new(l.expr),
                        lo: Box::new(lo.expr),
                        hi: Box::new(hi.expr),
                        negated: *negated,
                    },
                    ty: ColumnType::Bool,
                    name: None,
                }
            }
            ExprKind::Call(name, args) => functions::bind_call(self, name, args, pos)?,
            ExprKind::ToScalar(p) => {
                let (v, ty) = (self.scalar)(p, pos)?;
                Bound {
                    expr: CExpr::Const(v),
                    ty,
                    name: None,
                }
            }
            ExprKind::Star => return Err(semantic(pos, "'*' is not allowed here")),
            ExprKind::TypeOf(_) => {
                return Err(semantic(
                    pos,
                    "typeof(…) is only allowed as a function argument",
                ));
            }
        })
    }

    /// `x in (S)` where `S` names no column or scalar: a table or tabular `let`, whose first
    /// column is the list ("in operator": the list may be a tabular expression).
    fn tabular_name(&self, items: &[Expr]) -> Option<Pipeline> {
        let [e] = items else { return None };
        let ExprKind::Name(n) = &e.kind else {
            return None;
        };
        let scalar = self.meta.iter().any(|m| &m.name == n) || self.lets.contains_key(n);
        (!scalar && n != "null").then(|| Pipeline {
            source: crate::ast::Source::Name(n.clone(), e.pos),
            ops: vec![],
        })
    }

    fn bind_list(&self, list: &ListArg) -> Result<Vec<Bound>, KqlError> {
        match list {
            ListArg::Scalars(items) => {
                if let Some(p) = self.tabular_name(items) {
                    return self.bind_list(&ListArg::Tabular(Box::new(p)));
                }
                let mut out = Vec::new();
                for it in items {
                    let b = self.bind(it)?;
                    // A dynamic array's elements are the candidates [§3.5].
                    if let CExpr::Const(Value::Dynamic(j)) = &b.expr
                        && let serde_json::Value::Array(a) = &**j
                    {
                        for x in a {
                            let v = json_scalar_to_value(x);
                            out.push(Bound {
                                ty: v.column_type().unwrap_or(ColumnType::Dynamic),
                                expr: CExpr::Const(v),
                                name: None,
                            });
                        }
                    } else {
                        out.push(b);
                    }
                }
                Ok(out)
            }
            ListArg::Tabular(p) => Ok((self.tabular)(p)?
                .into_iter()
                .map(|v| Bound {
                    ty: v.column_type().unwrap_or(ColumnType::Dynamic),
                    expr: CExpr::Const(v),
                    name: None,
                })
                .collect()),
        }
    }

    fn bind_binary(&self, op: BinOp, l: &Expr, r: &Expr, pos: Pos) -> Result<Bound, KqlError> {
        let lb = self.bind(l)?;
        let rb = self.bind(r)?;
        let boolean = |expr| Bound {
            expr,
            ty: ColumnType::Bool,
            name: None,
        };
        Ok(match op {
            BinOp::And | BinOp::Or => {
                for b in [&lb, &rb] {
                    if !matches!(b.ty, ColumnType::Bool | ColumnType::Dynamic) {
                        return Err(semantic(
                            pos,
                            format!("'and'/'or' need bool operands, found {}", b.ty),
                        ));
                    }
                }
                let (a, b) = (Box::new(lb.expr), Box::new(rb.expr));
                boolean(if op == BinOp::And {
                    CExpr::And(a, b)
                } else {
                    CExpr::Or(a, b)
                })
            }
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let eq = matches!(op, BinOp::Eq | BinOp::Ne);
                check_comparable(lb.ty, rb.ty, eq, pos)?;
                let c = match op {
                    BinOp::Eq => CmpOp::Eq,
                    BinOp::Ne => CmpOp::Ne,
                    BinOp::Lt => CmpOp::Lt,
                    BinOp::Le => CmpOp::Le,
                    BinOp::Gt => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                boolean(CExpr::Cmp(c, Box::new(lb.expr), Box::new(rb.expr)))
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
                let a = match op {
                    BinOp::Add => ArOp::Add,
                    BinOp::Sub => ArOp::Sub,
                    BinOp::Mul => ArOp::Mul,
                    BinOp::Div => ArOp::Div,
                    _ => ArOp::Mod,
                };
                let ty = arith_type(a, lb.ty, rb.ty).ok_or_else(|| {
                    semantic(
                        pos,
                        format!(
                            "operator '{}' cannot be applied to {} and {}",
                            ar_symbol(a),
                            lb.ty,
                            rb.ty
                        ),
                    )
                })?;
                Bound {
                    expr: CExpr::Arith(a, Box::new(lb.expr), Box::new(rb.expr), ty),
                    ty,
                    name: None,
                }
            }
            BinOp::Str(sop) => {
                let regex = if sop.kind == StrOpKind::MatchesRegex {
                    match &rb.expr {
                        CExpr::Const(v) => {
                            Some(regex::Regex::new(&v.to_kql_string()).map_err(|e| {
                                semantic(pos, format!("invalid regular expression: {e}"))
                            })?)
                        }
                        _ => {
                            return Err(semantic(
                                pos,
                                "the pattern of 'matches regex' must be a constant",
                            ));
                        }
                    }
                } else {
                    None
                };
                boolean(CExpr::Str {
                    op: sop,
                    l: Box::new(lb.expr),
                    r: Box::new(rb.expr),
                    regex,
                })
            }
        })
    }
}

fn ar_symbol(a: ArOp) -> &'static str {
    match a {
        ArOp::Add => "+",
        ArOp::Sub => "-",
        ArOp::Mul => "*",
        ArOp::Div => "/",
        ArOp::Mod => "%",
    }
}

/// The result type of `l op r` [kql-semantics.md §3.3, §3.4], or None when not allowed.
pub fn arith_type(op: ArOp, l: ColumnType, r: ColumnType) -> Option<ColumnType> {
    use ColumnType::*;
    let num_rank = |t: ColumnType| match t {
        Int => Some(0),
        Long => Some(1),
        Real | Decimal => Some(2),
        _ => None,
    };
    if l == Dynamic || r == Dynamic {
        let other = if l == Dynamic { r } else { l };
        return match other {
            Dynamic | Int | Long | Real | Decimal => Some(Dynamic),
            _ => None,
        };
    }
    if let (Some(a), Some(b)) = (num_rank(l), num_rank(r)) {
        return Some(match a.max(b) {
            0 => Int,
            1 => Long,
            _ => Real,
        });
    }
    match (op, l, r) {
        (ArOp::Sub, DateTime, DateTime) => Some(TimeSpan),
        (ArOp::Add | ArOp::Sub, DateTime, TimeSpan) => Some(DateTime),
        (ArOp::Add, TimeSpan, DateTime) => Some(DateTime),
        (ArOp::Add | ArOp::Sub | ArOp::Mod, TimeSpan, TimeSpan) => Some(TimeSpan),
        (ArOp::Div, TimeSpan, TimeSpan) => Some(Real),
        (ArOp::Mul, TimeSpan, t) | (ArOp::Mul, t, TimeSpan) if num_rank(t).is_some() => {
            Some(TimeSpan)
        }
        (ArOp::Div, TimeSpan, t) if num_rank(t).is_some() => Some(TimeSpan),
        _ => None,
    }
}

/// Refuses comparisons Kusto refuses (string with number, datetime with timespan, …).
fn check_comparable(
    l: ColumnType,
    r: ColumnType,
    equality: bool,
    pos: Pos,
) -> Result<(), KqlError> {
    use ColumnType::*;
    let ok = l == r
        || l == Dynamic
        || r == Dynamic
        || (l.is_numeric() && r.is_numeric())
        || (equality && matches!((l, r), (Guid, String) | (String, Guid)));
    // Strings have no `<`/`>` (use strcmp); bools and guids compare only for equality
    // [kql-semantics.md §3.3].
    let ordered_ok = equality || !matches!(l, Bool | Guid | String);
    if ok && ordered_ok {
        Ok(())
    } else {
        Err(semantic(
            pos,
            format!("cannot compare a value of type {l} with a value of type {r}"),
        ))
    }
}

// ---------------------------------------------------------------- evaluation

/// The scalar held by a dynamic value (strings, numbers, bools); arrays/bags stay dynamic.
#[inline]
pub fn undyn(v: &Value) -> Cow<'_, Value> {
    match v {
        Value::Dynamic(j) => match &**j {
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => Cow::Borrowed(v),
            other => Cow::Owned(json_scalar_to_value(other)),
        },
        _ => Cow::Borrowed(v),
    }
}

/// Kusto `==`: None when both are null, false when one is [kql-semantics.md §3.2].
pub fn kql_eq(a: &Value, b: &Value, ci: bool) -> Option<bool> {
    let (an, bn) = (a.is_null(), b.is_null());
    if an && bn {
        return None;
    }
    if an || bn {
        return Some(false);
    }
    let a = undyn(a);
    let b = undyn(b);
    Some(match (&*a, &*b) {
        (Value::String(x), Value::String(y)) => strops::equals(x, y, !ci),
        (Value::Dynamic(x), Value::Dynamic(y)) => x == y,
        (Value::Guid(g), Value::String(s)) | (Value::String(s), Value::Guid(g)) => {
            uuid::Uuid::parse_str(s).is_ok_and(|u| u == *g)
        }
        (x, y) => compare_values(x, y) == Some(Ordering::Equal),
    })
}

#[inline]
pub fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Dynamic(j) => j.as_bool(),
        _ => None,
    }
}

fn opt_bool(b: Option<bool>) -> Value {
    b.map_or(Value::Null, Value::Bool)
}

/// The text a string operator sees for a value.
fn text_of(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        Value::Dynamic(j) => match &**j {
            serde_json::Value::String(s) => Cow::Borrowed(s),
            _ => Cow::Owned(v.to_kql_string()),
        },
        other => Cow::Owned(other.to_kql_string()),
    }
}

/// Evaluates `e` on `row` of `f`.
pub fn eval<'x>(e: &'x CExpr, f: &'x Frame<'_>, row: usize) -> Cow<'x, Value> {
    match e {
        CExpr::Const(v) => Cow::Borrowed(v),
        CExpr::Col(i) => Cow::Borrowed(f.get(*i, row)),
        CExpr::Member(base, key) => {
            match path_ref(e, f, row) {
                PathRef::Json(j) => return Cow::Owned(Value::dynamic(j.clone())),
                PathRef::Null => return Cow::Owned(Value::Null),
                PathRef::NotPath => {}
            }
            let b = eval(base, f, row);
            Cow::Owned(match b.as_json() {
                Some(serde_json::Value::Object(m)) => m
                    .get(key)
                    .map_or(Value::Null, |j| Value::dynamic(j.clone())),
                _ => Value::Null,
            })
        }
        CExpr::Index(base, idx) => {
            let b = eval(base, f, row);
            let i = eval(idx, f, row);
            Cow::Owned(index_dynamic(&b, &i))
        }
        CExpr::Neg(x) => {
            let v = eval(x, f, row);
            Cow::Owned(match &*undyn(&v) {
                Value::Int(i) => Value::Int(i.wrapping_neg()),
                Value::Long(i) => Value::Long(i.wrapping_neg()),
                Value::Real(r) => Value::Real(-r),
                Value::TimeSpan(t) => Value::TimeSpan(-*t),
                _ => Value::Null,
            })
        }
        CExpr::Arith(op, l, r, ty) => {
            let a = eval(l, f, row);
            let b = eval(r, f, row);
            Cow::Owned(arith(*op, &a, &b, *ty))
        }
        CExpr::Cmp(op, l, r) => {
            let a = eval(l, f, row);
            let b = eval(r, f, row);
            Cow::Owned(opt_bool(compare(*op, &a, &b)))
        }
        CExpr::And(l, r) => {
            let a = as_bool(&eval(l, f, row));
            if a == Some(false) {
                return Cow::Owned(Value::Bool(false));
            }
            let b = as_bool(&eval(r, f, row));
            Cow::Owned(opt_bool(match (a, b) {
                (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            }))
        }
        CExpr::Or(l, r) => {
            let a = as_bool(&eval(l, f, row));
            if a == Some(true) {
                return Cow::Owned(Value::Bool(true));
            }
            let b = as_bool(&eval(r, f, row));
            Cow::Owned(opt_bool(match (a, b) {
                (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            }))
        }
        CExpr::Str { op, l, r, regex } => {
            let a = operand(l, f, row);
            let b = eval(r, f, row);
            Cow::Owned(Value::Bool(string_op(*op, &a, &b, regex.as_ref())))
        }
        CExpr::In {
            lhs,
            items,
            negated,
            ci,
        } => {
            let a = eval(lhs, f, row);
            let mut found = false;
            for it in items {
                let b = eval(it, f, row);
                if kql_eq(&a, &b, *ci) == Some(true) {
                    found = true;
                    break;
                }
            }
            // `in` is an OR of `==`, `!in` an AND of `!=` [§3.2]: a null LHS is never in.
            Cow::Owned(Value::Bool(found != *negated))
        }
        CExpr::InSet {
            lhs,
            set,
            negated,
            ci,
        } => {
            let a = eval(lhs, f, row);
            let found = match &*undyn(&a) {
                Value::String(x) if *ci => set.contains(&x.to_lowercase()),
                Value::String(x) => set.contains(x.as_ref()),
                _ => false,
            };
            Cow::Owned(Value::Bool(found != *negated))
        }
        CExpr::InLongs { lhs, set, negated } => {
            let found = match &*eval(lhs, f, row) {
                Value::Long(x) => set.contains(x),
                Value::Int(x) => set.contains(&(*x as i64)),
                _ => false,
            };
            Cow::Owned(Value::Bool(found != *negated))
        }
        CExpr::HasAny { lhs, terms, all } => {
            let a = operand(lhs, f, row);
            Cow::Owned(Value::Bool(has_any(&a, terms, *all)))
        }
        CExpr::Between {
            lhs,
            lo,
            hi,
            negated,
        } => {
            let v = eval(lhs, f, row);
            let lo = eval(lo, f, row);
            let hi = eval(hi, f, row);
            let r = match (compare(CmpOp::Ge, &v, &lo), compare(CmpOp::Le, &v, &hi)) {
                (Some(a), Some(b)) => Some((a && b) != *negated),
                _ => None,
            };
            Cow::Owned(opt_bool(r))
        }
        CExpr::Call(func, args) => functions::eval_call(func, args, f, row),
        CExpr::IngestionTime => Cow::Borrowed(f.ingestion_time(row)),
        CExpr::RowNumber(start) => Cow::Owned(Value::Long(start.wrapping_add(row as i64))),
        CExpr::PerRow(v) => Cow::Borrowed(v.get(row).unwrap_or(&Value::Null)),
        CExpr::Shift {
            expr,
            offset,
            default,
        } => match (row as i64).checked_add(*offset) {
            Some(r) if r >= 0 && (r as usize) < f.len => eval(expr, f, r as usize),
            _ => eval(default, f, row),
        },
    }
}

fn index_dynamic(b: &Value, i: &Value) -> Value {
    let Value::Dynamic(j) = b else {
        return Value::Null;
    };
    let i = undyn(i);
    let r = match (&**j, &*i) {
        (serde_json::Value::Array(a), Value::Long(_) | Value::Int(_)) => {
            let k = match &*i {
                Value::Long(k) => *k,
                Value::Int(k) => *k as i64,
                _ => 0,
            };
            // Negative indexes count from the end [§3.8].
            let k = if k < 0 { a.len() as i64 + k } else { k };
            if k < 0 { None } else { a.get(k as usize) }
        }
        (serde_json::Value::Object(m), Value::String(s)) => m.get(s.as_ref()),
        _ => None,
    };
    r.map_or(Value::Null, |j| Value::dynamic(j.clone()))
}

/// A comparison; None is a null result [kql-semantics.md §3.2].
pub fn compare(op: CmpOp, a: &Value, b: &Value) -> Option<bool> {
    match op {
        CmpOp::Eq => kql_eq(a, b, false),
        CmpOp::Ne => kql_eq(a, b, false).map(|x| !x),
        _ => {
            if a.is_null() || b.is_null() {
                return None;
            }
            let a = undyn(a);
            let b = undyn(b);
            let o = compare_values(&a, &b)?;
            Some(match op {
                CmpOp::Lt => o == Ordering::Less,
                CmpOp::Le => o != Ordering::Greater,
                CmpOp::Gt => o == Ordering::Greater,
                _ => o != Ordering::Less,
            })
        }
    }
}

/// A dynamic sub-value reached by a path of `.key` / `[const]` steps from a column,
/// borrowed instead of cloned.
enum PathRef<'x> {
    NotPath,
    Null,
    Json(&'x serde_json::Value),
}

fn path_ref<'x>(e: &'x CExpr, f: &'x Frame<'_>, row: usize) -> PathRef<'x> {
    use serde_json::Value as J;
    match e {
        CExpr::Col(c) => match f.get(*c, row) {
            Value::Dynamic(j) => PathRef::Json(j),
            v if v.is_null() => PathRef::Null,
            _ => PathRef::NotPath,
        },
        CExpr::Member(b, key) => match path_ref(b, f, row) {
            PathRef::Json(J::Object(m)) => m.get(key).map_or(PathRef::Null, PathRef::Json),
            PathRef::Json(_) | PathRef::Null => PathRef::Null,
            PathRef::NotPath => PathRef::NotPath,
        },
        CExpr::Index(b, idx) => {
            let CExpr::Const(i) = &**idx else {
                return PathRef::NotPath;
            };
            match path_ref(b, f, row) {
                PathRef::Json(j) => match (j, i) {
                    (J::Object(m), Value::String(k)) => {
                        m.get(k.as_ref()).map_or(PathRef::Null, PathRef::Json)
                    }
                    (J::Array(a), Value::Long(k)) => {
                        let k = if *k < 0 { a.len() as i64 + k } else { *k };
                        if k < 0 {
                            PathRef::Null
                        } else {
                            a.get(k as usize).map_or(PathRef::Null, PathRef::Json)
                        }
                    }
                    _ => PathRef::Null,
                },
                PathRef::Null => PathRef::Null,
                PathRef::NotPath => PathRef::NotPath,
            }
        }
        _ => PathRef::NotPath,
    }
}

/// A dynamic value read for `mv-expand`: borrowed from the frame where the expression is a
/// column or a path into one (no copy of the tree), or evaluated.
pub enum DynamicCell<'x> {
    Borrowed(&'x serde_json::Value),
    Value(Cow<'x, Value>),
}

/// The dynamic value of `e` at `row`, borrowed where it can be.
pub fn dynamic_cell<'x>(e: &'x CExpr, f: &'x Frame<'_>, row: usize) -> DynamicCell<'x> {
    match operand(e, f, row) {
        Operand::J(j) => DynamicCell::Borrowed(j),
        Operand::V(v) => DynamicCell::Value(v),
    }
}

/// The left operand of a string operator: a value, or a borrowed dynamic sub-value.
enum Operand<'x> {
    V(Cow<'x, Value>),
    J(&'x serde_json::Value),
}

fn operand<'x>(e: &'x CExpr, f: &'x Frame<'_>, row: usize) -> Operand<'x> {
    match e {
        CExpr::Member(..) | CExpr::Index(..) => match path_ref(e, f, row) {
            PathRef::Json(j) => Operand::J(j),
            PathRef::Null => Operand::V(Cow::Owned(Value::Null)),
            PathRef::NotPath => Operand::V(eval(e, f, row)),
        },
        _ => Operand::V(eval(e, f, row)),
    }
}

impl Operand<'_> {
    /// The array or bag inside, if any.
    fn container(&self) -> Option<&serde_json::Value> {
        use serde_json::Value as J;
        match self {
            Operand::V(v) => match v.as_json() {
                Some(j @ (J::Array(_) | J::Object(_))) => Some(j),
                _ => None,
            },
            Operand::J(j @ (J::Array(_) | J::Object(_))) => Some(j),
            Operand::J(_) => None,
        }
    }

    fn text(&self) -> Cow<'_, str> {
        match self {
            Operand::V(v) => text_of(v),
            Operand::J(serde_json::Value::String(s)) => Cow::Borrowed(s),
            Operand::J(j) => Cow::Owned(crate::value::json_to_kql_string(j)),
        }
    }
}

fn string_op(op: StrOp, a: &Operand<'_>, b: &Value, regex: Option<&regex::Regex>) -> bool {
    let cs = op.case_sensitive;
    let r = match op.kind {
        StrOpKind::MatchesRegex => {
            let t = a.text();
            regex.is_some_and(|re| re.is_match(&t))
        }
        StrOpKind::Has | StrOpKind::HasPrefix | StrOpKind::HasSuffix if a.container().is_some() => {
            let needle = text_of(b);
            a.container().is_some_and(|j| {
                strops::any_atom(j, &mut |s| strops::apply(op.kind, s, &needle, cs))
            })
        }
        kind => {
            let (x, y) = (a.text(), text_of(b));
            strops::apply(kind, &x, &y, cs)
        }
    };
    r != op.negated
}

fn has_any(a: &Operand<'_>, terms: &[String], all: bool) -> bool {
    let container = a.container();
    let text = if container.is_none() {
        Some(a.text())
    } else {
        None
    };
    let test = |t: &str| match (container, &text) {
        (Some(j), _) => strops::any_atom(j, &mut |s| strops::has(s, t, false)),
        (None, Some(x)) => strops::has(x, t, false),
        (None, None) => false,
    };
    if all {
        !terms.is_empty() && terms.iter().all(|t| test(t))
    } else {
        terms.iter().any(|t| test(t))
    }
}

const TICKS_PER_SEC: i64 = 10_000_000;

/// Timespan as 100-ns ticks.
pub fn ticks(t: &TimeDelta) -> i64 {
    t.num_seconds() * TICKS_PER_SEC + (t.subsec_nanos() as i64) / 100
}

/// Ticks as a timespan.
pub fn from_ticks(t: i64) -> TimeDelta {
    TimeDelta::seconds(t.div_euclid(TICKS_PER_SEC))
        + TimeDelta::nanoseconds(t.rem_euclid(TICKS_PER_SEC) * 100)
}

fn num_of(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Long(i) => Some(*i as f64),
        Value::Real(r) => Some(*r),
        _ => None,
    }
}

/// `a op b` producing a value of type `ty` (null when an operand is null or the operation
/// fails) [kql-semantics.md §3.3, §3.4].
pub fn arith(op: ArOp, a: &Value, b: &Value, ty: ColumnType) -> Value {
    if a.is_null() || b.is_null() {
        return Value::Null;
    }
    let a = undyn(a);
    let b = undyn(b);
    let r = arith_plain(op, &a, &b);
    if ty == ColumnType::Dynamic {
        return match r {
            Value::Long(i) => Value::dynamic(i.into()),
            Value::Int(i) => Value::dynamic(i.into()),
            Value::Real(x) => serde_json::Number::from_f64(x).map_or(Value::Null, |n| {
                Value::dynamic(serde_json::Value::Number(n))
            }),
            _ => Value::Null,
        };
    }
    r
}

fn arith_plain(op: ArOp, a: &Value, b: &Value) -> Value {
    use Value::*;
    match (a, b) {
        (Int(x), Int(y)) => int_op(op, *x as i64, *y as i64).map_or(Null, |v| Int(v as i32)),
        (Int(_) | Long(_), Int(_) | Long(_)) => {
            let x = if let Int(x) = a {
                *x as i64
            } else if let Long(x) = a {
                *x
            } else {
                0
            };
            let y = if let Int(y) = b {
                *y as i64
            } else if let Long(y) = b {
                *y
            } else {
                0
            };
            int_op(op, x, y).map_or(Null, Long)
        }
        (DateTime(x), DateTime(y)) if op == ArOp::Sub => TimeSpan(*x - *y),
        (DateTime(x), TimeSpan(y)) => match op {
            ArOp::Add => x.checked_add_signed(*y).map_or(Null, DateTime),
            ArOp::Sub => x.checked_sub_signed(*y).map_or(Null, DateTime),
            _ => Null,
        },
        (TimeSpan(x), DateTime(y)) if op == ArOp::Add => {
            y.checked_add_signed(*x).map_or(Null, DateTime)
        }
        (TimeSpan(x), TimeSpan(y)) => {
            let (x, y) = (ticks(x), ticks(y));
            match op {
                ArOp::Add => TimeSpan(from_ticks(x.wrapping_add(y))),
                ArOp::Sub => TimeSpan(from_ticks(x.wrapping_sub(y))),
                ArOp::Div => Real(x as f64 / y as f64),
                ArOp::Mod if y != 0 => TimeSpan(from_ticks(x.rem_euclid(y))),
                _ => Null,
            }
        }
        (TimeSpan(t), n) | (n, TimeSpan(t)) if op == ArOp::Mul && num_of(n).is_some() => {
            let k = num_of(n).unwrap_or(0.0);
            TimeSpan(from_ticks((ticks(t) as f64 * k).round() as i64))
        }
        (TimeSpan(t), n) if op == ArOp::Div && num_of(n).is_some() => {
            let k = num_of(n).unwrap_or(0.0);
            let v = ticks(t) as f64 / k;
            if v.is_finite() {
                TimeSpan(from_ticks(v.round() as i64))
            } else {
                Null
            }
        }
        _ => match (num_of(a), num_of(b)) {
            (Some(x), Some(y)) => Real(match op {
                ArOp::Add => x + y,
                ArOp::Sub => x - y,
                ArOp::Mul => x * y,
                ArOp::Div => x / y,
                ArOp::Mod => {
                    let m = x % y;
                    if m < 0.0 { m + y.abs() } else { m }
                }
            }),
            _ => Null,
        },
    }
}

/// Integer arithmetic: wrapping; division by zero is null (UNCONFIRMED in the docs, §3.3);
/// modulo is never negative.
fn int_op(op: ArOp, x: i64, y: i64) -> Option<i64> {
    Some(match op {
        ArOp::Add => x.wrapping_add(y),
        ArOp::Sub => x.wrapping_sub(y),
        ArOp::Mul => x.wrapping_mul(y),
        ArOp::Div => {
            if y == 0 {
                return None;
            }
            x.wrapping_div(y)
        }
        ArOp::Mod => {
            if y == 0 {
                return None;
            }
            x.wrapping_rem(y).rem_euclid(y.wrapping_abs().max(1))
        }
    })
}
