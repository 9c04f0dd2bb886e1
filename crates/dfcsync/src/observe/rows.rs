//! Reading tabular JSON one row at a time.
//!
//! Two shapes are accepted: a Log Analytics query response
//! (`{"tables":[{"name","columns":[{"name","type"}],"rows":[[…]]}]}`, the first table is
//! read; a bare table object works too) and a JSON array of row objects (what
//! `az monitor log-analytics query` prints). Rows are handed to a callback as they are parsed,
//! so a large response is never held twice in memory.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// One row, whatever shape it came in; cells are found by column name.
pub trait Row {
    /// The cell of the named column; `None` when the row has no such column.
    fn get(&self, column: &str) -> Option<&Value>;
}

/// A positional row of a Log Analytics table.
pub struct TableRow<'a> {
    index: &'a HashMap<String, usize>,
    cells: &'a [Value],
}

impl Row for TableRow<'_> {
    fn get(&self, column: &str) -> Option<&Value> {
        self.index.get(column).and_then(|&i| self.cells.get(i))
    }
}

/// A row object, as `az monitor log-analytics query` prints it.
pub struct ObjectRow<'a>(pub &'a serde_json::Map<String, Value>);

impl Row for ObjectRow<'_> {
    fn get(&self, column: &str) -> Option<&Value> {
        self.0.get(column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "the document holds no table: expected a Log Analytics response ({{\"tables\":[…]}}) or a JSON array of row objects"
    )]
    NoTable,
}

/// Reads every row of the first table of `reader`, calling `on_row` for each, in order.
/// Returns the number of rows read.
pub fn read_rows<R: Read>(reader: R, on_row: &mut dyn FnMut(&dyn Row)) -> Result<usize, RowsError> {
    read_document(
        serde_json::Deserializer::from_reader(std::io::BufReader::new(reader)),
        on_row,
    )
}

/// [`read_rows`] for a document already in memory (a query's answer): parsed in place, which
/// is several times faster than through a reader (serde_json then scans strings in bulk
/// instead of byte by byte).
pub fn read_rows_in(document: &[u8], on_row: &mut dyn FnMut(&dyn Row)) -> Result<usize, RowsError> {
    read_document(serde_json::Deserializer::from_slice(document), on_row)
}

fn read_document<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    on_row: &mut dyn FnMut(&dyn Row),
) -> Result<usize, RowsError> {
    let found = DocumentSeed { on_row }.deserialize(&mut de)?;
    de.end()?;
    found.ok_or(RowsError::NoTable)
}

/// The whole document: a response object, a bare table object, or an array of row objects.
struct DocumentSeed<'f> {
    on_row: &'f mut dyn FnMut(&dyn Row),
}

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Log Analytics query response or an array of row objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut count = 0;
        while let Some(obj) = seq.next_element::<serde_json::Map<String, Value>>()? {
            (self.on_row)(&ObjectRow(&obj));
            count += 1;
        }
        Ok(Some(count))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        TableVisitor {
            on_row: self.on_row,
            top_level: true,
        }
        .visit_map(map)
    }
}

/// A table object (`columns`, `rows`), or at the top level a response holding `tables`.
struct TableVisitor<'f> {
    on_row: &'f mut dyn FnMut(&dyn Row),
    top_level: bool,
}

#[derive(Deserialize)]
struct ColumnDef {
    name: String,
}

impl<'de> DeserializeSeed<'de> for TableVisitor<'_> {
    type Value = Option<usize>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TableVisitor<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a table object with columns and rows")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let on_row = self.on_row;
        let mut index: Option<HashMap<String, usize>> = None;
        // Rows that came before `columns` (not the service's order, but valid JSON).
        let mut early_rows: Option<Vec<Vec<Value>>> = None;
        let mut count: Option<usize> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "tables" if self.top_level && count.is_none() => {
                    count = map.next_value_seed(FirstTableSeed {
                        on_row: &mut *on_row,
                    })?;
                }
                "columns" if index.is_none() => {
                    let cols: Vec<ColumnDef> = map.next_value()?;
                    let idx: HashMap<String, usize> = cols
                        .into_iter()
                        .enumerate()
                        .map(|(i, c)| (c.name, i))
                        .collect();
                    if let Some(rows) = early_rows.take() {
                        for cells in &rows {
                            on_row(&TableRow { index: &idx, cells });
                        }
                        count = Some(rows.len());
                    }
                    index = Some(idx);
                }
                "rows" if count.is_none() => match &index {
                    Some(idx) => {
                        count = Some(map.next_value_seed(RowsSeed {
                            index: idx,
                            on_row: &mut *on_row,
                        })?);
                    }
                    None => early_rows = Some(map.next_value()?),
                },
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(count)
    }
}

/// The `tables` array: the first table is read, the others skipped.
struct FirstTableSeed<'f> {
    on_row: &'f mut dyn FnMut(&dyn Row),
}

impl<'de> DeserializeSeed<'de> for FirstTableSeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for FirstTableSeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of tables")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let first = seq.next_element_seed(TableVisitor {
            on_row: self.on_row,
            top_level: false,
        })?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(first.flatten())
    }
}

/// The `rows` array of a table whose columns are known.
struct RowsSeed<'a, 'f> {
    index: &'a HashMap<String, usize>,
    on_row: &'f mut dyn FnMut(&dyn Row),
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_, '_> {
    type Value = usize;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_, '_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of rows")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut count = 0;
        while let Some(cells) = seq.next_element::<Vec<Value>>()? {
            (self.on_row)(&TableRow {
                index: self.index,
                cells: &cells,
            });
            count += 1;
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(doc: &str, col: &str) -> Result<Vec<Option<Value>>, RowsError> {
        let mut out = Vec::new();
        read_rows(doc.as_bytes(), &mut |r: &dyn Row| {
            out.push(r.get(col).cloned())
        })?;
        Ok(out)
    }

    #[test]
    fn reads_a_log_analytics_response_by_column_name() {
        let doc = r#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"A","type":"string"},{"name":"B","type":"long"}],
                      "rows":[["x",1],["y",2]]},{"name":"Other","columns":[],"rows":[[1]]}]}"#;
        assert_eq!(
            collect(doc, "B").unwrap(),
            vec![Some(Value::from(1)), Some(Value::from(2))]
        );
        assert_eq!(collect(doc, "C").unwrap(), vec![None, None]);
    }

    #[test]
    fn reads_rows_that_come_before_columns() {
        let doc = r#"{"rows":[["x",1]],"columns":[{"name":"A"},{"name":"B"}]}"#;
        assert_eq!(collect(doc, "A").unwrap(), vec![Some(Value::from("x"))]);
    }

    #[test]
    fn reads_an_array_of_row_objects() {
        let doc = r#"[{"A":"x","B":"1"},{"A":"y"}]"#;
        assert_eq!(
            collect(doc, "B").unwrap(),
            vec![Some(Value::from("1")), None]
        );
    }

    #[test]
    fn rejects_what_is_not_a_table() {
        assert!(matches!(
            collect(r#"{"foo":1}"#, "A"),
            Err(RowsError::NoTable)
        ));
        assert!(matches!(
            collect(r#"{"tables":[]}"#, "A"),
            Err(RowsError::NoTable)
        ));
        assert!(matches!(
            collect("{\"tables\":[", "A"),
            Err(RowsError::Json(_))
        ));
        assert!(matches!(collect("[1,2]", "A"), Err(RowsError::Json(_))));
        assert!(matches!(
            collect("[] trailing", "A"),
            Err(RowsError::Json(_))
        ));
    }
}
