//! The body of a successful Log Analytics query answer, serialised once, row by row, under the
//! service's result-set limits (reference `azure-apis.md` §2.4, §2.7): at most `max_rows`
//! records and at most `max_bytes` bytes of body. Past either, the answer is what Log
//! Analytics sends: HTTP 200, the whole rows that fit, and a `PartialError` naming the limit
//! (`E_QUERY_RESULT_SET_TOO_LARGE`, with Kusto's "internal record count limit" or "internal data
//! size limit" message). The body stays valid JSON and, when the limit is at least the size of
//! an answer without rows, never exceeds `max_bytes`.

use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::{Value as Json, json};

/// Which result-set limit cut an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `la_max_rows`: the record count.
    Records(usize),
    /// `la_max_bytes`: the body's size in bytes.
    Bytes(usize),
}

impl Limit {
    /// Kusto's message for the limit (its query-limits page), with the service's help link.
    pub fn message(self) -> String {
        match self {
            Limit::Records(n) => format!(
                "Query result set has exceeded the internal record count limit {n} (E_QUERY_RESULT_SET_TOO_LARGE; see https://aka.ms/kustoquerylimits)"
            ),
            Limit::Bytes(n) => format!(
                "Query result set has exceeded the internal data size limit {n} (E_QUERY_RESULT_SET_TOO_LARGE; see https://aka.ms/kustoquerylimits)"
            ),
        }
    }

    /// The answer's `error` object: a `PartialError` whose `details` and `innererror` say
    /// which limit was met.
    pub fn error_json(self) -> Json {
        let message = self.message();
        json!({
            "code": "PartialError",
            "message": "There were some errors when processing your query.",
            "details": [{"code": "EngineError", "message": message}],
            "innererror": {
                "code": "E_QUERY_RESULT_SET_TOO_LARGE",
                "message": message,
                "additionalProperties": {"severity": 2, "severityName": "Error"}
            }
        })
    }
}

/// What goes after the table in the answer besides a `PartialError`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    /// `Prefer: include-statistics=true`: the query's execution time in seconds.
    pub statistics: Option<f64>,
    /// `Prefer: include-render=true`.
    pub render: bool,
}

/// A serialised answer.
#[derive(Debug)]
pub struct Answer {
    pub body: Vec<u8>,
    /// Rows in the body.
    pub rows: usize,
    /// The limit that cut the answer, if one did.
    pub cut: Option<Limit>,
}

/// One row on the wire, written without building a JSON tree for it.
struct WireRow<'a>(&'a [kql::Value], &'a [kql::Column]);

impl Serialize for WireRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (v, c) in self.0.iter().zip(self.1) {
            seq.serialize_element(&kql::la_json::value_to_wire(v, c.ty))?;
        }
        seq.end()
    }
}

/// The end of the body after the last row: closes the table, then `error`, `statistics`,
/// `render`.
fn tail(rows: usize, cut: Option<Limit>, extras: Extras) -> String {
    let mut t = String::from("]}]");
    if let Some(limit) = cut {
        t.push_str(",\"error\":");
        t.push_str(&limit.error_json().to_string());
    }
    if let Some(elapsed) = extras.statistics {
        let stats = json!({"query": {"executionTime": elapsed, "resourceUsage": {},
            "datasetStatistics": [{"tableRowCount": rows}]}});
        t.push_str(",\"statistics\":");
        t.push_str(&stats.to_string());
    }
    if extras.render {
        t.push_str(",\"render\":{}");
    }
    t.push('}');
    t
}

/// Serialises `table` as the answer's single table under the limits.
pub fn serialize(table: &kql::Table, max_rows: usize, max_bytes: usize, extras: Extras) -> Answer {
    let name = if table.name.is_empty() {
        "PrimaryResult"
    } else {
        &table.name
    };
    let columns: Vec<Json> = table
        .columns
        .iter()
        .map(|c| json!({"name": c.name, "type": c.ty.as_str()}))
        .collect();
    let mut body = Vec::new();
    body.extend_from_slice(b"{\"tables\":[{\"name\":");
    body.extend_from_slice(Json::String(name.to_string()).to_string().as_bytes());
    body.extend_from_slice(b",\"columns\":");
    body.extend_from_slice(Json::Array(columns).to_string().as_bytes());
    body.extend_from_slice(b",\"rows\":[");
    // `ends[k]`: the body's length after its first k rows.
    let mut ends = vec![body.len()];
    let mut over = false;
    for row in table.rows.iter().take(max_rows) {
        if body.len() > max_bytes {
            over = true;
            break;
        }
        if ends.len() > 1 {
            body.push(b',');
        }
        if serde_json::to_writer(&mut body, &WireRow(row, &table.columns)).is_err() {
            // Writing into a Vec fails only on a value serde cannot write; none of the
            // wire values is one. Stop at the rows written.
            body.truncate(ends[ends.len() - 1]);
            break;
        }
        ends.push(body.len());
    }
    let written = ends.len() - 1;
    let full = tail(written, None, extras);
    if !over && written == table.rows.len() && body.len() + full.len() <= max_bytes {
        body.extend_from_slice(full.as_bytes());
        return Answer {
            body,
            rows: written,
            cut: None,
        };
    }
    // Cut: the most rows whose body, with the PartialError, fits.
    let by_size = over || body.len() + full.len() > max_bytes;
    let cut = if by_size {
        Limit::Bytes(max_bytes)
    } else {
        Limit::Records(max_rows)
    };
    let mut k = written;
    let mut end = tail(k, Some(cut), extras);
    while k > 0 && ends[k] + end.len() > max_bytes {
        k -= 1;
        end = tail(k, Some(cut), extras);
    }
    body.truncate(ends[k]);
    body.extend_from_slice(end.as_bytes());
    Answer {
        body,
        rows: k,
        cut: Some(cut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kql::{Column, ColumnType, Table, Value};

    fn table(rows: usize) -> Table {
        let mut t = Table::new(
            "",
            vec![
                Column::new("n", ColumnType::Long),
                Column::new("s", ColumnType::String),
            ],
        );
        for i in 0..rows {
            t.rows
                .push(vec![Value::Long(i as i64), Value::string("x".repeat(100))]);
        }
        t
    }

    fn parse(a: &Answer) -> Json {
        serde_json::from_slice(&a.body).expect("valid JSON")
    }

    #[test]
    fn an_answer_within_the_limits_is_the_kql_crates_answer() {
        let t = table(5);
        let a = serialize(&t, 10, 1 << 20, Extras::default());
        assert_eq!(a.cut, None);
        assert_eq!(a.rows, 5);
        assert_eq!(parse(&a), kql::response_json(std::slice::from_ref(&t)));
    }

    #[test]
    fn the_size_limit_cuts_whole_rows_and_is_never_exceeded() {
        let t = table(1000);
        let whole = serialize(&t, usize::MAX, usize::MAX, Extras::default());
        let size = whole.body.len();
        for limit in [size - 1, size / 2, 3000, 1234] {
            let a = serialize(&t, usize::MAX, limit, Extras::default());
            assert!(a.body.len() <= limit, "{} > {limit}", a.body.len());
            let v = parse(&a);
            assert_eq!(v["tables"][0]["rows"].as_array().unwrap().len(), a.rows);
            assert!(a.rows < 1000);
            assert_eq!(a.cut, Some(Limit::Bytes(limit)));
            assert_eq!(v["error"]["code"], "PartialError");
            assert!(
                v["error"]["innererror"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("internal data size limit {limit}"))
            );
            // One more row would not have fitted with the error.
            let more = serialize(&t, a.rows + 1, usize::MAX, Extras::default());
            let err_len = Limit::Bytes(limit).error_json().to_string().len() + ",\"error\":".len();
            assert!(more.body.len() + err_len > limit);
        }
        let exact = serialize(&t, usize::MAX, size, Extras::default());
        assert_eq!((exact.cut, exact.rows), (None, 1000));
    }

    #[test]
    fn the_record_limit_says_so_and_statistics_count_the_rows_sent() {
        let t = table(10);
        let extras = Extras {
            statistics: Some(0.5),
            render: true,
        };
        let a = serialize(&t, 4, usize::MAX, extras);
        let v = parse(&a);
        assert_eq!(a.cut, Some(Limit::Records(4)));
        assert_eq!(v["tables"][0]["rows"].as_array().unwrap().len(), 4);
        assert_eq!(
            v["statistics"]["query"]["datasetStatistics"][0]["tableRowCount"],
            4
        );
        assert!(v["render"].is_object());
        assert!(
            v["error"]["details"][0]["message"]
                .as_str()
                .unwrap()
                .contains("internal record count limit 4")
        );
        // Exactly at the record limit is no cut.
        assert_eq!(serialize(&t, 10, usize::MAX, extras).cut, None);
    }
}
