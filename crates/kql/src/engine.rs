//! The query driver: runs statements (`let`, tabular), resolves names to tables and lets,
//! evaluates tabular sources (`datatable`, `print`, `range`, `union`, nested pipelines) and
//! hands each piped operator to `operators`.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::ast::{LetValue, Operator, Pipeline, Source, Statement, UnionSpec};
use crate::error::{KqlError, KqlErrorKind};
use crate::frame::{Col, Concat, Frame, Meta, Store};
use crate::lexer::Pos;
use crate::operators;
use crate::scalar::{Scope, err_at, eval, semantic};
use crate::semijoin;
use crate::table::{Database, Table};
use crate::value::{ColumnType, Value};
use crate::{QueryOptions, parser};

/// Largest `range` the engine will generate.
const MAX_RANGE_ROWS: i64 = 10_000_000;

/// The state of one query run.
pub struct Engine<'a> {
    pub db: &'a Database,
    pub opts: &'a QueryOptions,
    pub tabular_lets: HashMap<String, Frame<'a>>,
    pub scalar_lets: HashMap<String, (Value, ColumnType)>,
    /// `toscalar(…)` results by the position of the call in the query text (one expression
    /// per position, however often the syntax tree is cloned): each is evaluated once per
    /// query, however many operators or rows use it.
    pub scalars: Mutex<HashMap<(usize, usize), (Value, ColumnType)>>,
}

/// A one-row frame without columns, for evaluating constants.
pub fn unit_frame<'a>() -> Frame<'a> {
    Frame {
        meta: vec![],
        cols: vec![],
        len: 1,
        label: None,
        ingest: None,
        serialized: false,
    }
}

/// Runs a whole query.
pub fn run_query(query: &str, db: &Database, opts: &QueryOptions) -> Result<Table, KqlError> {
    let q = parser::parse_query(query)?;
    let mut eng = Engine {
        db,
        opts,
        tabular_lets: HashMap::new(),
        scalar_lets: HashMap::new(),
        scalars: Mutex::new(HashMap::new()),
    };
    let mut result: Option<(Frame<'_>, Pos)> = None;
    for st in &q.statements {
        match st {
            Statement::Let { name, value, .. } => eng.bind_let(name, value)?,
            Statement::Tabular(p) => {
                let pos = source_pos(&p.source);
                if let Some((_, first)) = &result {
                    return Err(err_at(
                        KqlErrorKind::Unsupported,
                        pos,
                        format!(
                            "a batch of several tabular statements is not supported (the first one is at line {}, column {})",
                            first.line, first.column
                        ),
                    ));
                }
                result = Some((eng.pipeline(p)?, pos));
            }
        }
    }
    // The lets' frames are not needed any more: what the result reads, it holds itself.
    drop(eng);
    match result {
        Some((f, _)) => Ok(f.to_table("PrimaryResult")),
        None => Err(KqlError::new(
            KqlErrorKind::Syntax,
            "the query has no tabular statement to return",
            1,
            1,
        )),
    }
}

fn source_pos(s: &Source) -> Pos {
    match s {
        Source::Name(_, p) | Source::Print(_, p) => *p,
        Source::Datatable { pos, .. } | Source::Range { pos, .. } => *pos,
        Source::Union(u) => u.pos,
        Source::Nested(p) => source_pos(&p.source),
    }
}

impl<'a> Engine<'a> {
    fn bind_let(&mut self, name: &str, value: &LetValue) -> Result<(), KqlError> {
        // An inner let shadows an outer one [kql-semantics.md §2.15].
        self.tabular_lets.remove(name);
        match value {
            LetValue::Name(n, npos) => {
                if let Some(v) = self.scalar_lets.get(n).cloned() {
                    self.scalar_lets.insert(name.to_string(), v);
                } else {
                    let f = self.named_source(n, *npos)?;
                    self.scalar_lets.remove(name);
                    self.tabular_lets.insert(name.to_string(), f);
                }
            }
            LetValue::Tabular(p) => {
                let mut f = self.pipeline(p)?;
                if f.label.is_none() {
                    f.label = Some(name.to_string());
                }
                self.scalar_lets.remove(name);
                self.tabular_lets.insert(name.to_string(), f);
            }
            LetValue::Scalar(e) => {
                let (v, ty) = self.const_expr(e)?;
                self.scalar_lets.insert(name.to_string(), (v, ty));
            }
        }
        Ok(())
    }

    /// Evaluates an expression that does not depend on a row.
    pub fn const_expr(&self, e: &crate::ast::Expr) -> Result<(Value, ColumnType), KqlError> {
        let unit = unit_frame();
        let b = self.with_scope(&unit.meta, |s| s.bind(e))?;
        let v = eval(&b.expr, &unit, 0).into_owned();
        Ok((v, b.ty))
    }

    /// Calls `f` with a binding scope over `meta`.
    pub fn with_scope<R>(&self, meta: &[Meta], f: impl FnOnce(&Scope<'_>) -> R) -> R {
        self.scope_over(meta, None, f)
    }

    /// Calls `f` with a binding scope over the rows of `rows`, where the window functions
    /// (`row_number`, `prev`, `next`) may be used when the rows are serialized.
    pub fn with_rows_scope<R>(&self, rows: &Frame<'_>, f: impl FnOnce(&Scope<'_>) -> R) -> R {
        self.scope_over(&rows.meta, Some(rows), f)
    }

    fn scope_over<R>(
        &self,
        meta: &[Meta],
        rows: Option<&Frame<'_>>,
        f: impl FnOnce(&Scope<'_>) -> R,
    ) -> R {
        let tab = |p: &Pipeline| -> Result<Vec<Value>, KqlError> {
            let fr = self.pipeline(p)?;
            if fr.meta.is_empty() {
                return Ok(vec![]);
            }
            Ok((0..fr.len).map(|r| fr.get(0, r).clone()).collect())
        };
        let scalar = |p: &Pipeline, pos: Pos| self.to_scalar(p, pos);
        let scope = Scope {
            meta,
            lets: &self.scalar_lets,
            now: self.opts.now,
            tabular: &tab,
            scalar: &scalar,
            rows,
        };
        f(&scope)
    }

    /// `toscalar(p)` ("toscalar() function"): the first column of the first row, null (of the
    /// column's type) when there is no row; a result without columns is an error.
    fn to_scalar(&self, p: &Pipeline, pos: Pos) -> Result<(Value, ColumnType), KqlError> {
        let key = (pos.line, pos.column);
        if let Some(v) = self.known_scalars().get(&key) {
            return Ok(v.clone());
        }
        let f = self.pipeline(p)?;
        let Some(m) = f.meta.first() else {
            return Err(semantic(
                pos,
                "toscalar() needs a result with at least one column",
            ));
        };
        let v = if f.len == 0 {
            m.ty.null_value()
        } else {
            f.get(0, 0).clone()
        };
        let out = (v, m.ty);
        self.known_scalars().insert(key, out.clone());
        Ok(out)
    }

    /// The `toscalar(…)` results computed so far (union legs run on parallel threads). A
    /// poisoned lock (a panic elsewhere) still holds only complete results.
    fn known_scalars(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(usize, usize), (Value, ColumnType)>> {
        self.scalars
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Evaluates a pipeline.
    pub fn pipeline(&self, p: &Pipeline) -> Result<Frame<'a>, KqlError> {
        let mut f = self.source(&p.source)?;
        let plans = semijoin::plan(p);
        // Right sides evaluated early for a semi-join reduction, by the join's index.
        let mut rights: HashMap<usize, Frame<'a>> = HashMap::new();
        for (k, op) in p.ops.iter().enumerate() {
            for plan in plans.iter().filter(|pl| match pl.at {
                semijoin::At::Column(m) | semijoin::At::Expand(m) => m == k,
            }) {
                let Operator::Join { right, on, .. } = &p.ops[plan.join] else {
                    continue;
                };
                let r = self.pipeline(right)?;
                // Only for a right side small beside the left one: with a larger one the
                // extra pass costs more than it saves (`semijoin::MAX_RIGHT_SHARE`).
                let keys = (r.len.saturating_mul(semijoin::MAX_RIGHT_SHARE) <= f.len)
                    .then(|| semijoin::right_keys(&r, &on[0].right))
                    .flatten();
                if let Some(keys) = keys {
                    let reduced = match plan.at {
                        semijoin::At::Column(_) => semijoin::reduce_column(&f, &on[0].left, &keys),
                        semijoin::At::Expand(_) => semijoin::reduce_expand(self, &f, op, &keys)?,
                    };
                    if let Some(g) = reduced {
                        f = g;
                    }
                }
                rights.insert(plan.join, r);
            }
            f = match (op, rights.remove(&k)) {
                (Operator::Join { kind, on, .. }, Some(r)) => {
                    operators::join_with(f, &r, *kind, on)?
                }
                _ => operators::apply(self, f, op)?,
            };
        }
        Ok(f)
    }

    fn named_source(&self, n: &str, pos: Pos) -> Result<Frame<'a>, KqlError> {
        if let Some(f) = self.tabular_lets.get(n) {
            return Ok(f.clone());
        }
        if let Some(t) = self.db.get(n) {
            return Ok(self.scan(t));
        }
        if self.scalar_lets.contains_key(n) {
            return Err(semantic(
                pos,
                format!("'{n}' is a scalar value, not a table"),
            ));
        }
        Err(semantic(
            pos,
            format!("failed to resolve table or column expression named '{n}'"),
        ))
    }

    /// A view of an input table, with the request's timespan applied to `TimeGenerated` and
    /// the ingestion cut-off to the rows' ingestion times: a selection of row indices, never
    /// a copy of the table.
    fn scan(&self, t: &'a Table) -> Frame<'a> {
        let span = self.opts.timespan.and_then(|(start, end)| {
            let c = t.column_index("TimeGenerated")?;
            (t.columns[c].ty == ColumnType::DateTime).then_some((c, start, end))
        });
        let cutoff = self.opts.ingested_by.filter(|_| t.has_ingestion_times());
        if span.is_none() && cutoff.is_none() {
            return Frame::from_table(t, None);
        }
        let sel = t
            .rows
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                span.is_none_or(|(c, start, end)| {
                    matches!(&r[c], Value::DateTime(d) if *d >= start && *d < end)
                }) && cutoff.is_none_or(|by| t.ingestion_time(*i).is_none_or(|at| at <= by))
            })
            .map(|(i, _)| i as u32)
            .collect();
        Frame::from_table(t, Some(sel))
    }

    fn source(&self, s: &Source) -> Result<Frame<'a>, KqlError> {
        match s {
            Source::Name(n, pos) => self.named_source(n, *pos),
            Source::Nested(p) => self.pipeline(p),
            Source::Print(items, pos) => {
                let unit = unit_frame();
                let f = operators::project(self, &unit, items, *pos, true)?;
                Ok(f)
            }
            Source::Datatable {
                columns,
                values,
                pos,
            } => self.datatable(columns, values, *pos),
            Source::Union(u) => self.union(None, u),
            Source::Range {
                column,
                from,
                to,
                step,
                pos,
            } => self.range(column, from, to, step, *pos),
        }
    }

    fn datatable(
        &self,
        columns: &[(String, ColumnType)],
        values: &[crate::ast::Expr],
        pos: Pos,
    ) -> Result<Frame<'a>, KqlError> {
        let n = columns.len();
        if n == 0 {
            return Err(semantic(pos, "datatable needs at least one column"));
        }
        if values.len() % n != 0 {
            return Err(semantic(
                pos,
                format!(
                    "datatable has {} values, which is not a multiple of its {n} columns",
                    values.len()
                ),
            ));
        }
        let mut data: Vec<Vec<Value>> = vec![Vec::with_capacity(values.len() / n); n];
        for (i, e) in values.iter().enumerate() {
            let (v, _) = self.const_expr(e)?;
            let (name, ty) = &columns[i % n];
            let v = coerce(v, *ty).ok_or_else(|| {
                semantic(
                    e.pos,
                    format!("this value does not fit column '{name}' of type {ty}"),
                )
            })?;
            data[i % n].push(v);
        }
        let meta = columns
            .iter()
            .map(|(name, ty)| Meta {
                name: name.clone(),
                ty: *ty,
            })
            .collect();
        Ok(Frame::from_columns(meta, data, values.len() / n))
    }

    fn range(
        &self,
        column: &str,
        from: &crate::ast::Expr,
        to: &crate::ast::Expr,
        step: &crate::ast::Expr,
        pos: Pos,
    ) -> Result<Frame<'a>, KqlError> {
        let (a, ta) = self.const_expr(from)?;
        let (b, _) = self.const_expr(to)?;
        let (s, _) = self.const_expr(step)?;
        let mut out = Vec::new();
        let too_many = || {
            semantic(
                pos,
                format!("range would produce more than {MAX_RANGE_ROWS} rows"),
            )
        };
        match (&a, &b, &s) {
            (Value::Long(a), Value::Long(b), Value::Long(s)) if *s != 0 => {
                let mut x = *a;
                while (*s > 0 && x <= *b) || (*s < 0 && x >= *b) {
                    out.push(Value::Long(x));
                    if out.len() as i64 > MAX_RANGE_ROWS {
                        return Err(too_many());
                    }
                    x = match x.checked_add(*s) {
                        Some(v) => v,
                        None => break,
                    };
                }
            }
            (Value::DateTime(a), Value::DateTime(b), Value::TimeSpan(s))
                if *s > chrono::TimeDelta::zero() =>
            {
                let mut x = *a;
                while x <= *b {
                    out.push(Value::DateTime(x));
                    if out.len() as i64 > MAX_RANGE_ROWS {
                        return Err(too_many());
                    }
                    x += *s;
                }
            }
            _ => {
                let (Some(a), Some(b), Some(s)) = (
                    crate::functions::to_real(&a),
                    crate::functions::to_real(&b),
                    crate::functions::to_real(&s),
                ) else {
                    return Err(semantic(
                        pos,
                        "range needs numeric or datetime bounds and a matching step",
                    ));
                };
                if s == 0.0 || !s.is_finite() {
                    return Err(semantic(pos, "range step must not be zero"));
                }
                let mut x = a;
                while (s > 0.0 && x <= b) || (s < 0.0 && x >= b) {
                    out.push(Value::Real(x));
                    if out.len() as i64 > MAX_RANGE_ROWS {
                        return Err(too_many());
                    }
                    x += s;
                }
            }
        }
        let ty = match out.first() {
            Some(v) => v.column_type().unwrap_or(ta),
            None => ta,
        };
        let len = out.len();
        let mut f = Frame::from_columns(
            vec![Meta {
                name: column.to_string(),
                ty,
            }],
            vec![out],
            len,
        );
        // `range` emits a serialized row set ("serialize operator" page).
        f.serialized = true;
        Ok(f)
    }

    /// `union` of `first` (the piped input, if any) and the legs [kql-semantics.md §2.12].
    pub fn union(&self, first: Option<Frame<'a>>, u: &UnionSpec) -> Result<Frame<'a>, KqlError> {
        let mut legs: Vec<Frame<'a>> = Vec::new();
        if let Some(f) = first {
            legs.push(f);
        }
        // The legs are independent: they run as parallel tasks (each splitting its own rows).
        let evaluated = crate::par::tasks(u.legs.len(), |i| self.pipeline(&u.legs[i]));
        for (i, f) in evaluated.into_iter().enumerate() {
            let mut f = f?;
            if f.label.is_none() {
                f.label = Some(format!("union_arg{i}"));
            }
            legs.push(f);
        }
        // Columns by (name, type), in order of first appearance.
        let mut cols: Vec<(String, ColumnType)> = Vec::new();
        for l in &legs {
            for m in &l.meta {
                if !cols.iter().any(|(n, t)| *n == m.name && *t == m.ty) {
                    cols.push((m.name.clone(), m.ty));
                }
            }
        }
        if u.inner {
            cols.retain(|(n, t)| {
                legs.iter()
                    .all(|l| l.meta.iter().any(|m| m.name == *n && m.ty == *t))
            });
        }
        // A name with several types becomes one column per type, `name_<type>`.
        let mut names: Vec<String> = cols.iter().map(|(n, _)| n.clone()).collect();
        for (i, (n, t)) in cols.iter().enumerate() {
            if cols.iter().filter(|(m, _)| m == n).count() > 1 {
                names[i] = format!("{n}_{}", t.as_str());
            }
        }
        if let Some(ws) = &u.withsource {
            names.insert(0, ws.clone());
        }
        crate::names::make_unique(&mut names);
        let total: usize = legs.iter().map(|l| l.len).sum();
        // The result's columns read the legs' columns in place (no cell is copied here).
        let mut data: Vec<Col<'a>> = Vec::with_capacity(names.len());
        if u.withsource.is_some() {
            let parts = legs
                .iter()
                .map(|l| {
                    let label = Value::string(l.label.clone().unwrap_or_default());
                    (
                        Frame::owned_col(ColumnType::String, vec![label; l.len]),
                        l.len,
                    )
                })
                .collect();
            data.push(Concat::column(parts, ColumnType::String.null_value()));
        }
        for (n, t) in &cols {
            let parts = legs
                .iter()
                .map(|l| {
                    let col = match l.meta.iter().position(|m| m.name == *n && m.ty == *t) {
                        Some(c) => l.cols[c].clone(),
                        None => Col {
                            store: Store::Nulls,
                            sel: None,
                            null: t.null_value(),
                        },
                    };
                    (col, l.len)
                })
                .collect();
            data.push(Concat::column(parts, t.null_value()));
        }
        let mut meta: Vec<Meta> = Vec::new();
        if u.withsource.is_some() {
            meta.push(Meta {
                name: names[0].clone(),
                ty: ColumnType::String,
            });
        }
        for (k, (_, t)) in cols.iter().enumerate() {
            meta.push(Meta {
                name: names[k + usize::from(u.withsource.is_some())].clone(),
                ty: *t,
            });
        }
        // A union's rows are its legs' records, each keeping its ingestion time.
        let ingest = legs.iter().any(|l| l.ingest.is_some()).then(|| {
            let parts = legs
                .iter()
                .map(|l| {
                    let col = l.ingest.clone().unwrap_or(Col {
                        store: Store::Nulls,
                        sel: None,
                        null: Value::Null,
                    });
                    (col, l.len)
                })
                .collect();
            Concat::column(parts, Value::Null)
        });
        Ok(Frame {
            meta,
            cols: data,
            len: total,
            label: None,
            ingest,
            serialized: false,
        })
    }
}

/// Converts a value to a column type: null becomes the type's null, int/long/real widen and
/// narrow when exact, anything becomes dynamic; None when it does not fit.
pub fn coerce(v: Value, ty: ColumnType) -> Option<Value> {
    if v.is_null() && !matches!(v, Value::Dynamic(_)) {
        return Some(ty.null_value());
    }
    Some(match (v, ty) {
        (Value::Int(i), ColumnType::Long) => Value::Long(i as i64),
        (Value::Long(i), ColumnType::Int) => Value::Int(i32::try_from(i).ok()?),
        (Value::Int(i), ColumnType::Real | ColumnType::Decimal) => Value::Real(i as f64),
        (Value::Long(i), ColumnType::Real | ColumnType::Decimal) => Value::Real(i as f64),
        (Value::Real(r), ColumnType::Decimal) => Value::Real(r),
        (Value::Dynamic(j), ColumnType::Dynamic) => Value::Dynamic(j),
        (v, ColumnType::Dynamic) => Value::dynamic(crate::functions::value_to_json(&v)),
        (v, t) if v.column_type() == Some(t) => v,
        _ => return None,
    })
}
