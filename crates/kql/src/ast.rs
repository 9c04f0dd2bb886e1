//! The syntax tree of a query: statements, tabular pipelines and their operators, and scalar
//! expressions, each node carrying its position for error messages.

use crate::lexer::Pos;
use crate::value::{ColumnType, Value};

/// A whole query: `;`-separated statements.
#[derive(Debug, Clone)]
pub struct Query {
    pub statements: Vec<Statement>,
}

/// One statement.
#[derive(Debug, Clone)]
pub enum Statement {
    /// `let name = value`.
    Let { name: String, value: LetValue },
    /// A tabular expression whose result is returned.
    Tabular(Pipeline),
}

/// What a `let` binds.
#[derive(Debug, Clone)]
pub enum LetValue {
    /// A bare name: a table, a tabular let or a scalar let, decided when bound.
    Name(String, Pos),
    Tabular(Box<Pipeline>),
    Scalar(Expr),
}

/// A source and the operators piped after it.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub source: Source,
    pub ops: Vec<Operator>,
}

/// Where a pipeline's rows come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A table or a tabular `let`.
    Name(String, Pos),
    Datatable {
        columns: Vec<(String, ColumnType)>,
        values: Vec<Expr>,
        pos: Pos,
    },
    Print(Vec<NamedExpr>, Pos),
    Union(UnionSpec),
    Range {
        column: String,
        from: Expr,
        to: Expr,
        step: Expr,
        pos: Pos,
    },
    /// `( pipeline )`.
    Nested(Box<Pipeline>),
}

/// `union` options and legs.
#[derive(Debug, Clone)]
pub struct UnionSpec {
    pub inner: bool,
    pub withsource: Option<String>,
    pub legs: Vec<Pipeline>,
    pub pos: Pos,
}

/// An expression with an optional output name (`Name = expr`).
#[derive(Debug, Clone)]
pub struct NamedExpr {
    pub name: Option<String>,
    pub expr: Expr,
}

/// A sort key.
#[derive(Debug, Clone)]
pub struct SortKey {
    pub expr: Expr,
    pub asc: bool,
    pub nulls_first: bool,
}

/// One expansion of `mv-expand`.
#[derive(Debug, Clone)]
pub struct MvExpandItem {
    pub name: Option<String>,
    pub expr: Expr,
    pub to_type: Option<ColumnType>,
}

/// Join kinds [kql-semantics.md §2.11].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    InnerUnique,
    Inner,
    LeftOuter,
    RightOuter,
    FullOuter,
    LeftAnti,
    RightAnti,
    LeftSemi,
    RightSemi,
}

/// A join condition: `Col` or `$left.A == $right.B`.
#[derive(Debug, Clone)]
pub struct JoinCond {
    pub left: String,
    pub right: String,
    pub pos: Pos,
}

/// A tabular operator.
#[derive(Debug, Clone)]
pub enum Operator {
    Where(Expr),
    Project(Vec<NamedExpr>, Pos),
    ProjectAway(Vec<(String, Pos)>),
    ProjectKeep(Vec<(String, Pos)>),
    ProjectRename(Vec<(String, String, Pos)>),
    ProjectReorder(Vec<(String, Pos)>),
    Extend(Vec<NamedExpr>),
    Summarize {
        aggs: Vec<NamedExpr>,
        by: Vec<NamedExpr>,
        pos: Pos,
    },
    MvExpand {
        kind_array: bool,
        item_index: Option<String>,
        items: Vec<MvExpandItem>,
        limit: Option<Expr>,
        pos: Pos,
    },
    Join {
        kind: JoinKind,
        right: Box<Pipeline>,
        on: Vec<JoinCond>,
    },
    Union(UnionSpec),
    Sort(Vec<SortKey>),
    Top {
        n: Expr,
        keys: Vec<SortKey>,
    },
    Take(Expr),
    Distinct(Option<Vec<NamedExpr>>, Pos),
    Count,
    As(String),
    /// `serialize` (order is kept anyway).
    Serialize,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    /// A string operator, by name (`=~`, `has`, `!contains_cs`, `matches regex`, …).
    Str(StrOp),
}

/// The string predicates, each with its negation and case sensitivity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrOp {
    pub kind: StrOpKind,
    pub negated: bool,
    pub case_sensitive: bool,
}

/// What a string predicate tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOpKind {
    Equals,
    Has,
    HasPrefix,
    HasSuffix,
    Contains,
    StartsWith,
    EndsWith,
    MatchesRegex,
}

/// A scalar expression and its position.
#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub pos: Pos,
    /// Depth of the tree rooted here (1 for a leaf).
    pub depth: usize,
}

/// The list on the right of `in`, `has_any`, …: scalars or a tabular expression.
#[derive(Debug, Clone)]
pub enum ListArg {
    Scalars(Vec<Expr>),
    Tabular(Box<Pipeline>),
}

/// Scalar expression forms.
#[derive(Debug, Clone)]
pub enum ExprKind {
    Literal(Value),
    /// A literal typed `dynamic` (from `dynamic(…)`).
    DynamicLiteral(serde_json::Value),
    /// A typed null literal (`int(null)`, `datetime(null)`, …).
    TypedNull(ColumnType),
    Name(String),
    Member(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    Call(String, Vec<Expr>),
    /// `*` as a function argument (`arg_max(x, *)`, `take_any(*)`).
    Star,
    /// `typeof(T)` as a function argument.
    TypeOf(ColumnType),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    In {
        lhs: Box<Expr>,
        list: ListArg,
        negated: bool,
        case_insensitive: bool,
    },
    HasAny {
        lhs: Box<Expr>,
        list: ListArg,
        all: bool,
    },
    Between {
        lhs: Box<Expr>,
        lo: Box<Expr>,
        hi: Box<Expr>,
        negated: bool,
    },
    /// `toscalar(tabular expression)`.
    ToScalar(Box<Pipeline>),
}

impl Expr {
    /// A node; its depth is one more than its deepest child's.
    pub fn new(kind: ExprKind, pos: Pos) -> Expr {
        let d = |e: &Expr| e.depth;
        let list = |l: &ListArg| match l {
            ListArg::Scalars(v) => v.iter().map(d).max().unwrap_or(0),
            ListArg::Tabular(_) => 0,
        };
        let child = match &kind {
            ExprKind::Member(b, _) | ExprKind::Neg(b) => d(b),
            ExprKind::Index(a, b) | ExprKind::Binary(_, a, b) => d(a).max(d(b)),
            ExprKind::Call(_, args) => args.iter().map(d).max().unwrap_or(0),
            ExprKind::In { lhs, list: l, .. } | ExprKind::HasAny { lhs, list: l, .. } => {
                d(lhs).max(list(l))
            }
            ExprKind::Between { lhs, lo, hi, .. } => d(lhs).max(d(lo)).max(d(hi)),
            _ => 0,
        };
        Expr {
            kind,
            pos,
            depth: child + 1,
        }
    }
}
