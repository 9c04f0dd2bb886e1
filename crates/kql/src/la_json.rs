//! Log Analytics JSON I/O: tables to and from the query API's response format, and tables from
//! plain JSON arrays of objects (types inferred) [kql-semantics.md §4, azure-apis.md §2.3].

use std::sync::Arc;

use serde_json::{Number, Value as J, json};

use crate::error::LoadError;
use crate::table::{Column, Table};
use crate::value::{
    ColumnType, Value, format_datetime, format_timespan, parse_datetime, parse_timespan_c,
};

/// `{"tables":[…]}` with each table as `Table::to_log_analytics_json` gives it.
pub fn response_json(tables: &[Table]) -> J {
    json!({ "tables": tables.iter().map(Table::to_log_analytics_json).collect::<Vec<_>>() })
}

/// One cell as the service writes it [kql-semantics.md §4]: datetime ISO 8601 trimmed,
/// timespan `c` format, guid lowercase, decimal as a string, real NaN/±inf as strings, dynamic
/// as a string of compact JSON (a dynamic string as the raw string), nulls as `null`.
pub fn value_to_wire(v: &Value, ty: ColumnType) -> J {
    match v {
        Value::Null => match ty {
            ColumnType::String => J::String(String::new()),
            _ => J::Null,
        },
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Long(i) => J::from(*i),
        Value::Real(r) if ty == ColumnType::Decimal => J::String(crate::value::format_real(*r)),
        Value::Real(r) => real_to_json(*r),
        Value::String(s) => J::String(s.to_string()),
        Value::DateTime(d) => J::String(format_datetime(d)),
        Value::TimeSpan(t) => J::String(format_timespan(t)),
        Value::Guid(g) => J::String(g.hyphenated().to_string()),
        Value::Dynamic(j) => match &**j {
            J::Null => J::Null,
            J::String(s) => J::String(s.clone()),
            j => J::String(j.to_string()),
        },
    }
}

fn real_to_json(r: f64) -> J {
    if r.is_nan() {
        J::String("NaN".into())
    } else if r.is_infinite() {
        J::String(if r > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else if r.fract() == 0.0 && r.abs() < 9.007_199_254_740_992e15 {
        J::from(r as i64)
    } else {
        Number::from_f64(r).map(J::Number).unwrap_or(J::Null)
    }
}

impl Table {
    /// One table object of a query response: `{"name","columns":[{"name","type"}],"rows"}`.
    pub fn to_log_analytics_json(&self) -> J {
        let columns: Vec<J> = self
            .columns
            .iter()
            .map(|c| json!({"name": c.name, "type": c.ty.as_str()}))
            .collect();
        let rows: Vec<J> = self
            .rows
            .iter()
            .map(|r| {
                J::Array(
                    r.iter()
                        .zip(&self.columns)
                        .map(|(v, c)| value_to_wire(v, c.ty))
                        .collect(),
                )
            })
            .collect();
        let name = if self.name.is_empty() {
            "PrimaryResult"
        } else {
            &self.name
        };
        json!({"name": name, "columns": columns, "rows": rows})
    }

    /// Reads a whole response `{"tables":[…]}` (its first table) or one table object. Cells are
    /// read by their column's type; a dynamic cell may be JSON text or an inline JSON value.
    pub fn from_log_analytics_json(v: &J) -> Result<Table, LoadError> {
        let t = match v.get("tables") {
            Some(J::Array(ts)) => ts
                .first()
                .ok_or_else(|| LoadError::Shape("'tables' is empty".into()))?,
            Some(_) => return Err(LoadError::Shape("'tables' is not an array".into())),
            None => v,
        };
        let name = t
            .get("name")
            .and_then(J::as_str)
            .unwrap_or("PrimaryResult")
            .to_string();
        let cols = t
            .get("columns")
            .and_then(J::as_array)
            .ok_or_else(|| LoadError::Shape("missing 'columns' array".into()))?;
        let mut columns = Vec::with_capacity(cols.len());
        for (i, c) in cols.iter().enumerate() {
            let cname = c.get("name").and_then(J::as_str).ok_or(LoadError::Column {
                index: i,
                message: "missing 'name'".into(),
            })?;
            let tname = c
                .get("type")
                .or_else(|| c.get("ColumnType"))
                .and_then(J::as_str)
                .ok_or(LoadError::Column {
                    index: i,
                    message: "missing 'type'".into(),
                })?;
            let ty: ColumnType = tname.parse().map_err(|e| LoadError::Column {
                index: i,
                message: format!("{e}"),
            })?;
            columns.push(Column::new(cname, ty));
        }
        let rows_json = t
            .get("rows")
            .and_then(J::as_array)
            .ok_or_else(|| LoadError::Shape("missing 'rows' array".into()))?;
        let mut rows = Vec::with_capacity(rows_json.len());
        let mut interners: Vec<Interner> = columns.iter().map(|_| Interner::default()).collect();
        for (ri, r) in rows_json.iter().enumerate() {
            let cells = r.as_array().ok_or_else(|| LoadError::Cell {
                row: ri,
                column: String::new(),
                message: "row is not an array".into(),
            })?;
            if cells.len() != columns.len() {
                return Err(LoadError::RowWidth {
                    row: ri,
                    expected: columns.len(),
                    found: cells.len(),
                });
            }
            let mut row = Vec::with_capacity(cells.len());
            for ((cell, col), int) in cells.iter().zip(&columns).zip(&mut interners) {
                row.push(
                    wire_to_value_interned(cell, col.ty, int).map_err(|message| {
                        LoadError::Cell {
                            row: ri,
                            column: col.name.clone(),
                            message,
                        }
                    })?,
                );
            }
            rows.push(row);
        }
        Ok(Table::from_checked_rows(name, columns, rows))
    }

    /// Reads a Log Analytics response (or one table object) from a reader, cell by cell,
    /// without building the whole JSON tree (for large exports). Strings are interned per
    /// column.
    pub fn from_log_analytics_reader<R: std::io::Read>(r: R) -> Result<Table, LoadError> {
        crate::la_stream::read_table(r)
    }

    /// Reads a JSON array of row objects (a `serde_json::Value`, whose objects have their keys
    /// sorted, so columns come out in name order; use `from_json_objects_str` to keep the
    /// order of the text). A column's type is inferred from its non-null values: all bools →
    /// bool, all integers → long, all numbers → real, all strings that are ISO 8601
    /// datetimes → datetime, all strings → string, anything else (objects, arrays,
    /// mixtures, all null) → dynamic.
    pub fn from_json_objects(v: &J) -> Result<Table, LoadError> {
        let arr = v
            .as_array()
            .ok_or_else(|| LoadError::Shape("expected a JSON array of objects".into()))?;
        let mut rows = Vec::with_capacity(arr.len());
        for (ri, r) in arr.iter().enumerate() {
            let obj = r.as_object().ok_or_else(|| not_object(ri))?;
            rows.push(obj.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        }
        from_object_rows(rows)
    }

    /// Like `from_json_objects`, from JSON text, with columns in order of first appearance.
    pub fn from_json_objects_str(text: &str) -> Result<Table, LoadError> {
        let ordered: Vec<OrderedRow> = serde_json::from_str(text)
            .map_err(|e| LoadError::Shape(format!("expected a JSON array of objects: {e}")))?;
        let mut out = Vec::with_capacity(ordered.len());
        for (ri, r) in ordered.into_iter().enumerate() {
            out.push(r.0.ok_or_else(|| not_object(ri))?);
        }
        from_object_rows(out)
    }
}

fn not_object(row: usize) -> LoadError {
    LoadError::Cell {
        row,
        column: String::new(),
        message: "row is not a JSON object".into(),
    }
}

/// One array element: an object's entries in text order, or None when it is not an object.
struct OrderedRow(Option<Vec<(String, J)>>);

impl<'de> serde::Deserialize<'de> for OrderedRow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OrderedRow;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<OrderedRow, A::Error> {
                let mut v = Vec::new();
                while let Some((k, x)) = m.next_entry::<String, J>()? {
                    v.push((k, x));
                }
                Ok(OrderedRow(Some(v)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<OrderedRow, A::Error> {
                while s.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(OrderedRow(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<OrderedRow, E> {
                Ok(OrderedRow(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<OrderedRow, E> {
                Ok(OrderedRow(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<OrderedRow, E> {
                Ok(OrderedRow(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<OrderedRow, E> {
                Ok(OrderedRow(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<OrderedRow, E> {
                Ok(OrderedRow(None))
            }
            fn visit_unit<E>(self) -> Result<OrderedRow, E> {
                Ok(OrderedRow(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Builds a table from rows of (key, value) entries.
fn from_object_rows(objs: Vec<Vec<(String, J)>>) -> Result<Table, LoadError> {
    let mut names: Vec<String> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = Default::default();
    for o in &objs {
        for (k, _) in o {
            if !index.contains_key(k) {
                index.insert(k.clone(), names.len());
                names.push(k.clone());
            }
        }
    }
    // Each row's values by column index.
    let mut cells: Vec<Vec<Option<J>>> = Vec::with_capacity(objs.len());
    for o in objs {
        let mut row = vec![None; names.len()];
        for (k, v) in o {
            if let Some(&i) = index.get(&k) {
                row[i] = Some(v);
            }
        }
        cells.push(row);
    }
    let mut columns = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let ty = infer_type(cells.iter().filter_map(|r| r[i].as_ref()));
        columns.push(Column::new(name.clone(), ty));
    }
    let mut rows = Vec::with_capacity(cells.len());
    for (ri, r) in cells.into_iter().enumerate() {
        let mut row = Vec::with_capacity(columns.len());
        for (cell, col) in r.into_iter().zip(&columns) {
            let cell = cell.unwrap_or(J::Null);
            let v = if col.ty == ColumnType::Dynamic {
                if cell.is_null() {
                    Value::Null
                } else {
                    Value::dynamic(cell)
                }
            } else {
                wire_to_value(&cell, col.ty).map_err(|message| LoadError::Cell {
                    row: ri,
                    column: col.name.clone(),
                    message,
                })?
            };
            row.push(v);
        }
        rows.push(row);
    }
    Ok(Table::from_checked_rows(String::new(), columns, rows))
}

fn infer_type<'a>(values: impl Iterator<Item = &'a J>) -> ColumnType {
    let mut ty: Option<ColumnType> = None;
    for v in values {
        let t = match v {
            J::Null => continue,
            J::Bool(_) => ColumnType::Bool,
            J::Number(n) if n.is_i64() || n.is_u64() => ColumnType::Long,
            J::Number(_) => ColumnType::Real,
            J::String(s) if looks_like_datetime(s) => ColumnType::DateTime,
            J::String(_) => ColumnType::String,
            _ => return ColumnType::Dynamic,
        };
        ty = Some(match (ty, t) {
            (None, t) => t,
            (Some(a), b) if a == b => a,
            (Some(ColumnType::Long), ColumnType::Real)
            | (Some(ColumnType::Real), ColumnType::Long) => ColumnType::Real,
            (Some(ColumnType::DateTime), ColumnType::String)
            | (Some(ColumnType::String), ColumnType::DateTime) => ColumnType::String,
            _ => return ColumnType::Dynamic,
        });
    }
    ty.unwrap_or(ColumnType::Dynamic)
}

fn looks_like_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b' ')
        && b[..4].iter().all(u8::is_ascii_digit)
        && parse_datetime(s).is_some()
}

/// Shares one allocation between equal strings of a column (exports repeat most values:
/// statuses, product names, tenant ids, and each id on every row of its history), and one
/// value between equal dynamic cells of a column, found by their JSON text (an incident's
/// rows repeat its `Owner`, `AlertIds`, `AdditionalData`, … and many incidents have equal
/// ones), so each distinct text is parsed once.
#[derive(Default)]
pub struct Interner {
    set: hashbrown::HashSet<Arc<str>>,
    dynamics: hashbrown::HashMap<Box<str>, Arc<J>>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.set.insert(a.clone());
        a
    }

    /// The dynamic value of the JSON text `text` (a dynamic string when it is not JSON, as
    /// `parse_json` reads it [kql-semantics.md §3.6]), shared with equal texts' cells.
    pub fn dynamic(&mut self, text: &str) -> Value {
        if let Some(v) = self.dynamics.get(text) {
            return Value::Dynamic(v.clone());
        }
        let j = serde_json::from_str::<J>(text).unwrap_or_else(|_| J::String(text.to_owned()));
        let v = Arc::new(j);
        self.dynamics.insert(Box::from(text), v.clone());
        Value::Dynamic(v)
    }
}

/// Reads one cell of type `ty`, interning strings.
pub fn wire_to_value_interned(
    cell: &J,
    ty: ColumnType,
    interner: &mut Interner,
) -> Result<Value, String> {
    match (ty, cell) {
        (ColumnType::String, J::String(s)) => Ok(Value::String(interner.intern(s))),
        (ColumnType::Dynamic, J::String(s)) => Ok(interner.dynamic(s)),
        _ => wire_to_value(cell, ty),
    }
}

/// Reads one cell of type `ty` from its wire form; the error says what is wrong.
pub fn wire_to_value(cell: &J, ty: ColumnType) -> Result<Value, String> {
    if cell.is_null() {
        return Ok(ty.null_value());
    }
    let bad = || format!("{} is not a valid {}", short(cell), ty.as_str());
    Ok(match ty {
        ColumnType::Bool => match cell {
            J::Bool(b) => Value::Bool(*b),
            J::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            J::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            J::Number(n) if n.as_i64() == Some(0) => Value::Bool(false),
            J::Number(n) if n.as_i64() == Some(1) => Value::Bool(true),
            _ => return Err(bad()),
        },
        ColumnType::Int => {
            let i = json_i64(cell).ok_or_else(bad)?;
            Value::Int(i32::try_from(i).map_err(|_| bad())?)
        }
        ColumnType::Long => Value::Long(json_i64(cell).ok_or_else(bad)?),
        ColumnType::Real | ColumnType::Decimal => match cell {
            J::Number(n) => Value::Real(n.as_f64().ok_or_else(bad)?),
            J::String(s) => Value::Real(match s.as_str() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                other => other.trim().parse().map_err(|_| bad())?,
            }),
            _ => return Err(bad()),
        },
        ColumnType::String => match cell {
            J::String(s) => Value::String(Arc::from(s.as_str())),
            J::Number(_) | J::Bool(_) => Value::string(cell.to_string()),
            _ => Value::string(cell.to_string()),
        },
        ColumnType::DateTime => match cell {
            J::String(s) => Value::DateTime(parse_datetime(s).ok_or_else(bad)?),
            _ => return Err(bad()),
        },
        ColumnType::TimeSpan => match cell {
            J::String(s) => Value::TimeSpan(parse_timespan_c(s).ok_or_else(bad)?),
            _ => return Err(bad()),
        },
        ColumnType::Guid => match cell {
            J::String(s) => Value::Guid(uuid::Uuid::parse_str(s.trim()).map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        ColumnType::Dynamic => match cell {
            // The service sends dynamic cells as JSON text; text that is not JSON is a
            // dynamic string (as parse_json does) [kql-semantics.md §3.6].
            J::String(s) => match serde_json::from_str::<J>(s) {
                Ok(j) => Value::dynamic(j),
                Err(_) => Value::dynamic(J::String(s.clone())),
            },
            other => Value::dynamic(other.clone()),
        },
    })
}

fn json_i64(cell: &J) -> Option<i64> {
    match cell {
        J::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        J::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn short(v: &J) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(60).collect();
        format!("{cut}…")
    } else {
        s
    }
}
