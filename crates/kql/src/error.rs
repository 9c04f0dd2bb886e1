//! Errors: query errors with their position and their Log Analytics wire form (`KqlError`),
//! and data loading errors that name the bad row and column (`LoadError`).

use std::fmt;

/// What kind of query error this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KqlErrorKind {
    /// The text does not parse (LA inner code `SyntaxError`).
    Syntax,
    /// The query parses but is wrong: unknown column, table or function, bad types
    /// (LA inner code `SemanticError`).
    Semantic,
    /// Valid Kusto that this engine does not implement; the message names the construct.
    Unsupported,
    /// A failure while evaluating (e.g. a result too large).
    Runtime,
}

impl KqlErrorKind {
    /// The Log Analytics `innererror.code` for this kind.
    pub fn inner_code(self) -> &'static str {
        match self {
            KqlErrorKind::Syntax => "SyntaxError",
            KqlErrorKind::Semantic | KqlErrorKind::Unsupported | KqlErrorKind::Runtime => {
                "SemanticError"
            }
        }
    }
}

/// A query error, with the 1-based line and column of the construct it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct KqlError {
    pub kind: KqlErrorKind,
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for KqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            KqlErrorKind::Syntax => "syntax error",
            KqlErrorKind::Semantic => "semantic error",
            KqlErrorKind::Unsupported => "unsupported",
            KqlErrorKind::Runtime => "runtime error",
        };
        write!(
            f,
            "{kind} at line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl KqlError {
    /// An error of `kind` at `line`:`column`.
    pub fn new(kind: KqlErrorKind, message: impl Into<String>, line: usize, column: usize) -> Self {
        KqlError {
            kind,
            message: message.into(),
            line,
            column,
        }
    }

    /// The body Log Analytics returns with HTTP 400 for a bad query:
    /// `{"error":{"code":"BadArgumentError","message":…,"innererror":{"code":"SyntaxError"|"SemanticError",…}}}`
    /// [azure-apis.md §2.5].
    pub fn to_log_analytics_error(&self) -> serde_json::Value {
        let inner_message = match self.kind {
            KqlErrorKind::Syntax => "A recognition error occurred in the query.",
            _ => "A semantic error occurred.",
        };
        serde_json::json!({
            "error": {
                "code": "BadArgumentError",
                "message": "The request had some invalid properties",
                "innererror": {
                    "code": self.kind.inner_code(),
                    "message": inner_message,
                    "innererror": {
                        "code": match self.kind {
                            KqlErrorKind::Syntax => "SYN0002",
                            KqlErrorKind::Unsupported => "SEM0100",
                            _ => "SEM0001",
                        },
                        "message": format!("{} [line {}, column {}]", self.message, self.line, self.column),
                        "line": self.line,
                        "pos": self.column,
                    }
                }
            }
        })
    }
}

/// An error in data given to the engine (a Log Analytics response, JSON objects, rows).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("invalid table JSON: {0}")]
    Shape(String),
    #[error("row {row}: expected {expected} values, found {found}")]
    RowWidth {
        row: usize,
        expected: usize,
        found: usize,
    },
    #[error("row {row}, column '{column}': {message}")]
    Cell {
        row: usize,
        column: String,
        message: String,
    },
    #[error("column {index}: {message}")]
    Column { index: usize, message: String },
    #[error("{found} ingestion times given for a table of {expected} rows")]
    IngestionTimes { expected: usize, found: usize },
    #[error("no table named '{0}'")]
    NoSuchTable(String),
}
