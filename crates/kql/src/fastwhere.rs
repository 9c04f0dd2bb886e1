//! `where` over an input table's datetime columns without reading its rows: a predicate that
//! is a conjunction (`and`) with, among its terms, comparisons of a datetime column (or of
//! `ingestion_time()`) with a constant datetime (say `TimeGenerated >= since`) is answered for
//! those terms from the table's cached time column (`tableindex::TimeColumn`, a contiguous
//! array of nanoseconds), and the other terms are evaluated as usual on the rows left. The
//! rows kept, and their order, are the rows the row-by-row evaluation keeps: a row passes an
//! `and` exactly when each term is true, terms have no side effects, and a cell the time
//! column does not hold exactly (null, another type, a time outside the nanosecond range) is
//! compared by the usual evaluator.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::frame::{Col, Frame, Store};
use crate::scalar::{CExpr, CmpOp, as_bool, eval};
use crate::tableindex::{NOT_A_TIME, TimeColumn, TimeSource};
use crate::value::Value;

/// A term `column op constant` answered from a time column.
struct TimeTerm<'e, 'a> {
    /// The term as written (evaluated for cells the time column does not hold).
    expr: &'e CExpr,
    col: &'a Col<'a>,
    times: Arc<TimeColumn>,
    /// The comparison with the column on the left.
    op: CmpOp,
    nanos: i64,
}

impl TimeTerm<'_, '_> {
    #[inline]
    fn holds(&self, f: &Frame<'_>, row: usize) -> bool {
        let base = match &self.col.sel {
            Some(s) => s[row] as usize,
            None => row,
        };
        let t = self.times.nanos.get(base).copied().unwrap_or(NOT_A_TIME);
        if t == NOT_A_TIME {
            return term_holds(self.expr, f, row);
        }
        match self.op {
            CmpOp::Eq => t == self.nanos,
            CmpOp::Ne => t != self.nanos,
            CmpOp::Lt => t < self.nanos,
            CmpOp::Le => t <= self.nanos,
            CmpOp::Gt => t > self.nanos,
            CmpOp::Ge => t >= self.nanos,
        }
    }
}

/// True when the term is true on `row` (what an `and` needs of each of its terms).
fn term_holds(e: &CExpr, f: &Frame<'_>, row: usize) -> bool {
    as_bool(&eval(e, f, row)) == Some(true)
}

/// The rows of `f` where `pred` (a bound `where` predicate) is true, in order, when the
/// predicate has a term answered from a time column; `None` otherwise (evaluate it row by
/// row).
pub fn filter(pred: &CExpr, f: &Frame<'_>) -> Option<Vec<u32>> {
    let mut terms = Vec::new();
    conjuncts(pred, &mut terms);
    let mut fast = Vec::new();
    let mut rest = Vec::new();
    for e in terms {
        match time_term(e, f) {
            Some(t) => fast.push(t),
            None => rest.push(e),
        }
    }
    let (first, others) = fast.split_first()?;
    let keep = crate::par::filter(f.len, |r| first.holds(f, r));
    Some(crate::par::retain(keep, |r| {
        others.iter().all(|t| t.holds(f, r)) && rest.iter().all(|e| term_holds(e, f, r))
    }))
}

/// The terms of a conjunction.
fn conjuncts<'e>(e: &'e CExpr, out: &mut Vec<&'e CExpr>) {
    match e {
        CExpr::And(l, r) => {
            conjuncts(l, out);
            conjuncts(r, out);
        }
        _ => out.push(e),
    }
}

/// `e` as a comparison of an input table's datetime column (or the rows' ingestion times)
/// with a constant datetime.
fn time_term<'e, 'a>(e: &'e CExpr, f: &'a Frame<'a>) -> Option<TimeTerm<'e, 'a>> {
    let CExpr::Cmp(op, l, r) = e else {
        return None;
    };
    let (side, k, op) = match (&**l, &**r) {
        (x, CExpr::Const(k)) => (x, k, *op),
        (CExpr::Const(k), x) => (x, k, flip(*op)),
        _ => return None,
    };
    let Value::DateTime(d) = k else {
        return None;
    };
    let nanos = exact_nanos(d)?;
    let (col, src) = match side {
        CExpr::Col(c) => {
            let col = f.cols.get(*c)?;
            match col.store {
                Store::Base(_, tc) => (col, TimeSource::Column(tc)),
                _ => return None,
            }
        }
        CExpr::IngestionTime => {
            let col = f.ingest.as_ref()?;
            (col, TimeSource::Ingestion)
        }
        _ => return None,
    };
    let times = match col.store {
        Store::Base(t, _) | Store::Ingestion(t) => t.time_column(src)?,
        Store::Owned(_) | Store::Concat(_) | Store::Nulls => return None,
    };
    Some(TimeTerm {
        expr: e,
        col,
        times,
        op,
        nanos,
    })
}

/// The nanoseconds of `d`, when they stand for it exactly.
fn exact_nanos(d: &DateTime<Utc>) -> Option<i64> {
    d.timestamp_nanos_opt().filter(|&n| n != NOT_A_TIME)
}

/// `k op x` as `x op' k`.
fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        other => other,
    }
}
