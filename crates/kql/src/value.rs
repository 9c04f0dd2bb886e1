//! Scalar types and values: the Kusto type system (`ColumnType`), one cell (`Value`), and the
//! text forms Kusto gives them (datetime ISO 8601 with trimmed fraction, timespan in the .NET
//! `c` format) [kql-semantics.md §3.1, §4].

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

/// A column's type, spelled as the Log Analytics API spells it (`as_str`, `FromStr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    Bool,
    Int,
    Long,
    Real,
    Decimal,
    String,
    DateTime,
    TimeSpan,
    Guid,
    Dynamic,
}

impl ColumnType {
    /// The name used by the Log Analytics API and by `datatable` declarations.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Bool => "bool",
            ColumnType::Int => "int",
            ColumnType::Long => "long",
            ColumnType::Real => "real",
            ColumnType::Decimal => "decimal",
            ColumnType::String => "string",
            ColumnType::DateTime => "datetime",
            ColumnType::TimeSpan => "timespan",
            ColumnType::Guid => "guid",
            ColumnType::Dynamic => "dynamic",
        }
    }

    /// True for int, long, real and decimal.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            ColumnType::Int | ColumnType::Long | ColumnType::Real | ColumnType::Decimal
        )
    }

    /// The null value of this type (`""` for string, which has no null) [kql-semantics.md §3.1].
    pub fn null_value(self) -> Value {
        match self {
            ColumnType::String => Value::String(Arc::from("")),
            _ => Value::Null,
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown type name '{0}'")]
pub struct UnknownTypeError(pub String);

impl FromStr for ColumnType {
    type Err = UnknownTypeError;
    /// Accepts the LA names and the documented synonyms (`boolean`, `double`, `date`, `time`,
    /// `uuid`, `uniqueid`) [kql-semantics.md §1.4–1.7].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "bool" | "boolean" => ColumnType::Bool,
            "int" => ColumnType::Int,
            "long" => ColumnType::Long,
            "real" | "double" => ColumnType::Real,
            "decimal" => ColumnType::Decimal,
            "string" => ColumnType::String,
            "datetime" | "date" => ColumnType::DateTime,
            "timespan" | "time" => ColumnType::TimeSpan,
            "guid" | "uuid" | "uniqueid" => ColumnType::Guid,
            "dynamic" => ColumnType::Dynamic,
            other => return Err(UnknownTypeError(other.to_string())),
        })
    }
}

/// One cell. `Null` is the null of every type but string (a string is never null: its
/// missing value is `""`) [kql-semantics.md §3.1]. Decimal cells are held as `Real`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Real(f64),
    String(Arc<str>),
    DateTime(DateTime<Utc>),
    TimeSpan(TimeDelta),
    Guid(uuid::Uuid),
    /// A dynamic value, shared: copying a cell (gathering rows, building a union or the
    /// result) copies a pointer, not the JSON tree. Build one with [`Value::dynamic`].
    Dynamic(Arc<serde_json::Value>),
}

impl Value {
    /// A string value.
    pub fn string(s: impl AsRef<str>) -> Value {
        Value::String(Arc::from(s.as_ref()))
    }

    /// A dynamic value holding `j`.
    pub fn dynamic(j: serde_json::Value) -> Value {
        Value::Dynamic(Arc::new(j))
    }

    /// The JSON inside a dynamic value.
    pub fn as_json(&self) -> Option<&serde_json::Value> {
        match self {
            Value::Dynamic(j) => Some(j),
            _ => None,
        }
    }

    /// True for `true` and a dynamic `true` (what `where` and `countif` keep).
    pub fn is_true(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Dynamic(j) => matches!(**j, serde_json::Value::Bool(true)),
            _ => false,
        }
    }

    /// True for `Null` and for a dynamic JSON null.
    pub fn is_null(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Dynamic(j) => j.is_null(),
            _ => false,
        }
    }

    /// The type of a non-null value (`None` for `Null`).
    pub fn column_type(&self) -> Option<ColumnType> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => ColumnType::Bool,
            Value::Int(_) => ColumnType::Int,
            Value::Long(_) => ColumnType::Long,
            Value::Real(_) => ColumnType::Real,
            Value::String(_) => ColumnType::String,
            Value::DateTime(_) => ColumnType::DateTime,
            Value::TimeSpan(_) => ColumnType::TimeSpan,
            Value::Guid(_) => ColumnType::Guid,
            Value::Dynamic(_) => ColumnType::Dynamic,
        })
    }

    /// The string inside a `String` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// `tostring()` semantics: null → `""`, a dynamic string → the raw string, a dynamic
    /// array/bag → compact JSON [kql-semantics.md §3.6].
    pub fn to_kql_string(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Long(i) => i.to_string(),
            Value::Real(r) => format_real(*r),
            Value::String(s) => s.to_string(),
            Value::DateTime(d) => format_datetime(d),
            Value::TimeSpan(t) => format_timespan(t),
            Value::Guid(g) => g.hyphenated().to_string(),
            Value::Dynamic(j) => json_to_kql_string(j),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_kql_string())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::string(s)
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(Arc::from(s))
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Long(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Value::DateTime(v)
    }
}
impl From<TimeDelta> for Value {
    fn from(v: TimeDelta) -> Self {
        Value::TimeSpan(v)
    }
}
impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        Value::dynamic(v)
    }
}

/// The text of a JSON value as `tostring` gives it: a string without quotes, null as `""`,
/// anything else as compact JSON.
pub fn json_to_kql_string(j: &serde_json::Value) -> String {
    match j {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A real as text: shortest round-trip, `NaN`, `Infinity`, `-Infinity`.
pub fn format_real(r: f64) -> String {
    if r.is_nan() {
        "NaN".into()
    } else if r.is_infinite() {
        if r > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        let s = format!("{r}");
        s
    }
}

/// ISO 8601 UTC with `Z`, fractional seconds trimmed of trailing zeros (7 digits at most) and
/// omitted when zero: `2015-12-31T23:59:59.9Z` [kql-semantics.md §4].
pub fn format_datetime(d: &DateTime<Utc>) -> String {
    let base = d.format("%Y-%m-%dT%H:%M:%S").to_string();
    let ticks = d.timestamp_subsec_nanos() / 100;
    if ticks == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{ticks:07}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

/// The .NET `c` format: `[-][d.]hh:mm:ss[.fffffff]` (`00:00:10`, `1.02:03:04.5000000`)
/// [kql-semantics.md §4].
pub fn format_timespan(t: &TimeDelta) -> String {
    let neg = *t < TimeDelta::zero();
    let total_ticks: i128 =
        (t.num_seconds() as i128) * 10_000_000 + (t.subsec_nanos() as i128) / 100;
    let abs = total_ticks.unsigned_abs();
    let ticks = (abs % 10_000_000) as u64;
    let secs = abs / 10_000_000;
    let (d, h, m, s) = (
        secs / 86400,
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
    );
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if d > 0 {
        out.push_str(&format!("{d}."));
    }
    out.push_str(&format!("{h:02}:{m:02}:{s:02}"));
    if ticks > 0 {
        out.push_str(&format!(".{ticks:07}"));
    }
    out
}

/// Parses a timespan in the `c` format (`[-][d.]hh:mm[:ss[.fffffff]]`, or `d` alone for
/// whole days).
pub fn parse_timespan_c(s: &str) -> Option<TimeDelta> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let Some((first, rest)) = s.split_once(':') else {
        let d: i64 = s.parse().ok()?;
        return TimeDelta::try_days(if neg { -d } else { d });
    };
    let (days, hours) = match first.split_once('.') {
        Some((d, h)) => (d.parse::<i64>().ok()?, h),
        None => (0, first),
    };
    let h: i64 = hours.parse().ok()?;
    let mut parts = rest.split(':');
    let m: i64 = parts.next()?.parse().ok()?;
    let (sec, frac_ticks) = match parts.next() {
        None => (0i64, 0i64),
        Some(sec) => match sec.split_once('.') {
            Some((whole, frac)) => {
                if frac.is_empty() || frac.len() > 7 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let padded = format!("{frac:0<7}");
                (whole.parse().ok()?, padded.parse().ok()?)
            }
            None => (sec.parse().ok()?, 0),
        },
    };
    if parts.next().is_some()
        || days < 0
        || !(0..24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..60).contains(&sec)
    {
        return None;
    }
    let total = TimeDelta::try_days(days)?
        + TimeDelta::try_hours(h)?
        + TimeDelta::try_minutes(m)?
        + TimeDelta::try_seconds(sec)?
        + TimeDelta::nanoseconds(frac_ticks * 100);
    Some(if neg { -total } else { total })
}

/// Parses the datetime forms `datetime()`/`todatetime()` accept: ISO 8601 with `T` or a
/// space, with or without a zone (UTC assumed), date only, and RFC 2822
/// [kql-semantics.md §1.5].
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    let norm = s.replacen(' ', "T", 1);
    if let Ok(d) = DateTime::parse_from_rfc3339(&norm) {
        return Some(d.with_timezone(&Utc));
    }
    let no_z = norm.strip_suffix('Z').unwrap_or(&norm);
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(no_z, fmt) {
            return Some(n.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(no_z, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|n| n.and_utc());
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Some(d.with_timezone(&Utc));
    }
    None
}

/// Total order used by `sort`, `min`/`max`, `arg_max`: numbers numerically across int, long
/// and real; strings ordinally; nulls and NaN are handled by the caller.
pub fn compare_values(a: &Value, b: &Value) -> Option<Ordering> {
    use Value::*;
    match (a, b) {
        (Null, Null) => Some(Ordering::Equal),
        (Bool(x), Bool(y)) => Some(x.cmp(y)),
        (Int(x), Int(y)) => Some(x.cmp(y)),
        (Long(x), Long(y)) => Some(x.cmp(y)),
        (Int(x), Long(y)) => Some((*x as i64).cmp(y)),
        (Long(x), Int(y)) => Some(x.cmp(&(*y as i64))),
        (Real(x), Real(y)) => x.partial_cmp(y),
        (Real(x), Int(y)) => x.partial_cmp(&(*y as f64)),
        (Real(x), Long(y)) => x.partial_cmp(&(*y as f64)),
        (Int(x), Real(y)) => (*x as f64).partial_cmp(y),
        (Long(x), Real(y)) => (*x as f64).partial_cmp(y),
        (String(x), String(y)) => Some(x.as_ref().cmp(y.as_ref())),
        (DateTime(x), DateTime(y)) => Some(x.cmp(y)),
        (TimeSpan(x), TimeSpan(y)) => Some(x.cmp(y)),
        (Guid(x), Guid(y)) => Some(x.cmp(y)),
        (Dynamic(x), Dynamic(y)) => compare_json(x, y),
        (Dynamic(x), other) | (other, Dynamic(x)) if !matches!(other, Dynamic(_)) => {
            let flip = matches!(b, Dynamic(_));
            let xv = crate::value::json_scalar_to_value(x);
            // An array or a bag stays dynamic: it has no order against a scalar (null), and
            // comparing it again would recurse without end.
            if matches!(xv, Dynamic(_)) {
                return None;
            }
            let r = compare_values(&xv, other)?;
            Some(if flip { r.reverse() } else { r })
        }
        _ => None,
    }
}

fn compare_json(a: &serde_json::Value, b: &serde_json::Value) -> Option<Ordering> {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (J::String(x), J::String(y)) => Some(x.cmp(y)),
        (J::Bool(x), J::Bool(y)) => Some(x.cmp(y)),
        (J::Null, J::Null) => Some(Ordering::Equal),
        _ => {
            if a == b {
                Some(Ordering::Equal)
            } else {
                None
            }
        }
    }
}

/// The scalar a JSON value holds, as a `Value` (numbers → long or real, strings → string,
/// bools → bool, null → Null); arrays and bags stay dynamic.
pub fn json_scalar_to_value(j: &serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Long(i)
            } else {
                Value::Real(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::string(s),
        other => Value::dynamic(other.clone()),
    }
}
