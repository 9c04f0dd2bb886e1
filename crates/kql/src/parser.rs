//! The parser: a recursive-descent parser from tokens to the syntax tree (`ast`), with the
//! operator precedence of Kusto's grammar [kql-semantics.md §1.9]. It never panics: every
//! malformed input is a `SyntaxError` at the offending token, and constructs outside the
//! engine's scope are `Unsupported` errors naming the construct.

use crate::ast::*;
use crate::error::{KqlError, KqlErrorKind};
use crate::lexer::{Pos, Tok, Token, timespan_from, tokenize};
use crate::value::{ColumnType, Value, parse_datetime, parse_timespan_c};

/// Nesting deeper than this is refused (keeps the recursive parser off the stack's end).
const MAX_DEPTH: usize = 64;

/// Parses a whole query.
pub fn parse_query(src: &str) -> Result<Query, KqlError> {
    let tokens = tokenize(src)?;
    let mut p = Parser {
        toks: tokens,
        i: 0,
        depth: 0,
    };
    p.query()
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    depth: usize,
}

/// Expression trees deeper than this are refused (binding, evaluation and dropping
/// recurse on them).
const MAX_EXPR_DEPTH: usize = 128;

fn syntax(pos: Pos, msg: impl Into<String>) -> KqlError {
    KqlError::new(KqlErrorKind::Syntax, msg, pos.line, pos.column)
}

fn unsupported(pos: Pos, msg: impl Into<String>) -> KqlError {
    KqlError::new(KqlErrorKind::Unsupported, msg, pos.line, pos.column)
}

/// Tabular operators Kusto has that this engine does not implement.
const UNSUPPORTED_OPERATORS: &[&str] = &[
    "mv-apply",
    "make-series",
    "parse",
    "parse-where",
    "parse-kv",
    "evaluate",
    "render",
    "lookup",
    "facet",
    "fork",
    "invoke",
    "partition",
    "sample",
    "sample-distinct",
    "scan",
    "search",
    "find",
    "getschema",
    "top-nested",
    "top-hitters",
    "reduce",
    "consume",
    "externaldata",
    "mvexpand",
    "project-smart",
    "as-of",
    "graph-match",
    "make-graph",
];

const STRING_OPS: &[&str] = &[
    "has",
    "!has",
    "has_cs",
    "!has_cs",
    "hasprefix",
    "!hasprefix",
    "hasprefix_cs",
    "!hasprefix_cs",
    "hassuffix",
    "!hassuffix",
    "hassuffix_cs",
    "!hassuffix_cs",
    "contains",
    "!contains",
    "contains_cs",
    "!contains_cs",
    "startswith",
    "!startswith",
    "startswith_cs",
    "!startswith_cs",
    "endswith",
    "!endswith",
    "endswith_cs",
    "!endswith_cs",
    "matches",
];

/// Words that can't be a bare column or table name in expression position.
fn is_reserved(w: &str) -> bool {
    matches!(
        w,
        "and" | "or" | "by" | "on" | "asc" | "desc" | "with" | "to" | "from" | "step" | "kind"
    ) || STRING_OPS.contains(&w)
        || w.starts_with('!')
        || matches!(w, "in" | "in~" | "has_any" | "has_all" | "between")
}

impl Parser {
    fn peek(&self) -> &Token {
        let last = self.toks.len().saturating_sub(1);
        &self.toks[self.i.min(last)]
    }
    fn peek_at(&self, k: usize) -> &Tok {
        let last = self.toks.len().saturating_sub(1);
        &self.toks[(self.i + k).min(last)].tok
    }
    fn pos(&self) -> Pos {
        self.peek().pos
    }
    fn advance(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }
    fn is_sym(&self, s: &str) -> bool {
        matches!(&self.peek().tok, Tok::Sym(x) if *x == s)
    }
    fn is_word(&self, w: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(x) if x == w)
    }
    fn eat_sym(&mut self, s: &str) -> bool {
        if self.is_sym(s) {
            self.advance();
            true
        } else {
            false
        }
    }
    fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.advance();
            true
        } else {
            false
        }
    }
    fn describe(t: &Tok) -> String {
        match t {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Long(v) => format!("'{v}'"),
            Tok::Real(v) => format!("'{v}'"),
            Tok::TimeSpan(_) => "a timespan literal".into(),
            Tok::Str(_) => "a string literal".into(),
            Tok::RawLiteral(k, _) => format!("a {k} literal"),
            Tok::Sym(s) => format!("'{s}'"),
            Tok::Eof => "the end of the query".into(),
        }
    }
    fn expected(&self, what: &str) -> KqlError {
        syntax(
            self.pos(),
            format!(
                "expected {what}, found {}",
                Self::describe(&self.peek().tok)
            ),
        )
    }
    fn expect_sym(&mut self, s: &str) -> Result<(), KqlError> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            Err(self.expected(&format!("'{s}'")))
        }
    }
    fn expect_word(&mut self, w: &str) -> Result<(), KqlError> {
        if self.eat_word(w) {
            Ok(())
        } else {
            Err(self.expected(&format!("'{w}'")))
        }
    }
    fn enter(&mut self) -> Result<(), KqlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(syntax(self.pos(), "the query is nested too deeply"));
        }
        Ok(())
    }
    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// A name: identifier or `['quoted']` / `["quoted"]`.
    fn name(&mut self, what: &str) -> Result<String, KqlError> {
        match self.peek().tok.clone() {
            Tok::Ident(w) if !w.starts_with('!') && !w.ends_with('~') => {
                self.advance();
                Ok(w)
            }
            Tok::Sym("[") => {
                if let (Tok::Str(s), Tok::Sym("]")) = (self.peek_at(1).clone(), self.peek_at(2)) {
                    self.advance();
                    self.advance();
                    self.advance();
                    Ok(s)
                } else {
                    Err(self.expected(what))
                }
            }
            _ => Err(self.expected(what)),
        }
    }

    // ---- statements ----

    fn query(&mut self) -> Result<Query, KqlError> {
        let mut statements = Vec::new();
        loop {
            while self.eat_sym(";") {}
            if matches!(self.peek().tok, Tok::Eof) {
                break;
            }
            statements.push(self.statement()?);
            if matches!(self.peek().tok, Tok::Eof) {
                break;
            }
            if !self.eat_sym(";") {
                return Err(self.expected("'|', ';' or the end of the query"));
            }
        }
        Ok(Query { statements })
    }

    fn statement(&mut self) -> Result<Statement, KqlError> {
        let pos = self.pos();
        if self.eat_word("let") {
            let name = self.name("a name after 'let'")?;
            self.expect_sym("=")?;
            let value = self.let_value()?;
            return Ok(Statement::Let { name, value });
        }
        for w in ["set", "declare", "alias", "pattern", "restrict"] {
            if self.is_word(w) {
                return Err(unsupported(
                    pos,
                    format!("the '{w}' statement is not supported"),
                ));
            }
        }
        Ok(Statement::Tabular(self.pipeline()?))
    }

    fn let_value(&mut self) -> Result<LetValue, KqlError> {
        let start = self.i;
        if self.is_sym("(") {
            // A function definition `(params) { body }` starts with `(` and has `{` after the
            // matching `)`.
            let mut depth = 0usize;
            let mut k = self.i;
            while k < self.toks.len() {
                match &self.toks[k].tok {
                    Tok::Sym("(") => depth += 1,
                    Tok::Sym(")") => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            break;
                        }
                    }
                    Tok::Eof => break,
                    _ => {}
                }
                k += 1;
            }
            if matches!(self.toks.get(k + 1).map(|t| &t.tok), Some(Tok::Sym("{"))) {
                return Err(unsupported(
                    self.pos(),
                    "user-defined functions (let f = (…) { … }) are not supported",
                ));
            }
        }
        if self.is_word("view") {
            return Err(unsupported(self.pos(), "'view' is not supported"));
        }
        let tab_err = match self.pipeline() {
            Ok(p) if self.is_sym(";") || matches!(self.peek().tok, Tok::Eof) => {
                if p.ops.is_empty()
                    && let Source::Name(n, pos) = &p.source
                {
                    return Ok(LetValue::Name(n.clone(), *pos));
                }
                return Ok(LetValue::Tabular(Box::new(p)));
            }
            Ok(_) => self.expected("';'"),
            Err(e) => e,
        };
        let tab_reached = self.i;
        self.i = start;
        match self.expr() {
            Ok(e) if self.is_sym(";") || matches!(self.peek().tok, Tok::Eof) => {
                Ok(LetValue::Scalar(e))
            }
            Ok(_) => {
                if self.i >= tab_reached {
                    Err(self.expected("';'"))
                } else {
                    Err(tab_err)
                }
            }
            Err(e) => {
                if self.i >= tab_reached {
                    Err(e)
                } else {
                    Err(tab_err)
                }
            }
        }
    }

    // ---- tabular ----

    fn pipeline(&mut self) -> Result<Pipeline, KqlError> {
        self.enter()?;
        let source = self.source()?;
        let mut ops = Vec::new();
        while self.eat_sym("|") {
            ops.push(self.operator()?);
        }
        self.leave();
        Ok(Pipeline { source, ops })
    }

    fn source(&mut self) -> Result<Source, KqlError> {
        let pos = self.pos();
        if self.eat_sym("(") {
            let p = self.pipeline()?;
            self.expect_sym(")")?;
            return Ok(Source::Nested(Box::new(p)));
        }
        if self.is_word("datatable") && matches!(self.peek_at(1), Tok::Sym("(")) {
            self.advance();
            return self.datatable(pos);
        }
        if self.eat_word("print") {
            let mut items = Vec::new();
            if !self.at_pipe_end() {
                loop {
                    items.push(self.named_expr()?);
                    if !self.eat_sym(",") {
                        break;
                    }
                }
            }
            return Ok(Source::Print(items, pos));
        }
        if self.eat_word("union") {
            return Ok(Source::Union(self.union_spec(pos)?));
        }
        if self.is_word("range") && matches!(self.peek_at(1), Tok::Ident(_)) {
            self.advance();
            let column = self.name("a column name")?;
            self.expect_word("from")?;
            let from = self.expr()?;
            self.expect_word("to")?;
            let to = self.expr()?;
            self.expect_word("step")?;
            let step = self.expr()?;
            return Ok(Source::Range {
                column,
                from,
                to,
                step,
                pos,
            });
        }
        if self.is_word("materialize") && matches!(self.peek_at(1), Tok::Sym("(")) {
            // Same result as the plain expression [kql-semantics.md §2.15].
            self.advance();
            self.advance();
            let p = self.pipeline()?;
            self.expect_sym(")")?;
            return Ok(Source::Nested(Box::new(p)));
        }
        if let Tok::Ident(w) = &self.peek().tok {
            if matches!(
                w.as_str(),
                "externaldata"
                    | "search"
                    | "find"
                    | "evaluate"
                    | "cluster"
                    | "database"
                    | "workspace"
                    | "app"
                    | "table"
                    | "toscalar"
            ) && matches!(self.peek_at(1), Tok::Sym("(") | Tok::Ident(_))
                && !matches!(self.peek_at(1), Tok::Sym("|"))
            {
                return Err(unsupported(pos, format!("'{w}' is not supported")));
            }
        }
        let name = self.name("a table name")?;
        if self.is_sym("(") {
            return Err(unsupported(
                pos,
                format!("calling '{name}(…)' as a tabular source is not supported"),
            ));
        }
        Ok(Source::Name(name, pos))
    }

    fn at_pipe_end(&self) -> bool {
        matches!(self.peek().tok, Tok::Eof)
            || self.is_sym("|")
            || self.is_sym(";")
            || self.is_sym(")")
    }

    fn datatable(&mut self, pos: Pos) -> Result<Source, KqlError> {
        self.expect_sym("(")?;
        let mut columns = Vec::new();
        if !self.is_sym(")") {
            loop {
                let name = self.name("a column name")?;
                self.expect_sym(":")?;
                let ty = self.type_name()?;
                columns.push((name, ty));
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        self.expect_sym(")")?;
        self.expect_sym("[")?;
        let mut values = Vec::new();
        while !self.is_sym("]") {
            values.push(self.expr()?);
            if !self.eat_sym(",") {
                break;
            }
        }
        self.expect_sym("]")?;
        Ok(Source::Datatable {
            columns,
            values,
            pos,
        })
    }

    fn type_name(&mut self) -> Result<ColumnType, KqlError> {
        let pos = self.pos();
        match self.peek().tok.clone() {
            Tok::Ident(w) => {
                self.advance();
                w.parse::<ColumnType>()
                    .map_err(|_| syntax(pos, format!("unknown type '{w}'")))
            }
            _ => Err(self.expected("a type name")),
        }
    }

    fn union_spec(&mut self, pos: Pos) -> Result<UnionSpec, KqlError> {
        let mut inner = false;
        let mut withsource = None;
        loop {
            if self.is_word("kind") && matches!(self.peek_at(1), Tok::Sym("=")) {
                self.advance();
                self.advance();
                let k = self.name("'inner' or 'outer'")?;
                inner = match k.as_str() {
                    "inner" => true,
                    "outer" => false,
                    _ => return Err(syntax(pos, format!("unknown union kind '{k}'"))),
                };
            } else if self.is_word("withsource") && matches!(self.peek_at(1), Tok::Sym("=")) {
                self.advance();
                self.advance();
                withsource = Some(self.name("a column name")?);
            } else if self.is_word("isfuzzy") && matches!(self.peek_at(1), Tok::Sym("=")) {
                self.advance();
                self.advance();
                self.name("true or false")?;
            } else {
                break;
            }
        }
        let mut legs = Vec::new();
        loop {
            let lp = self.pos();
            if self.eat_sym("(") {
                let p = self.pipeline()?;
                self.expect_sym(")")?;
                legs.push(p);
            } else {
                let n = self.name("a table name or '(' after 'union'")?;
                if self.is_sym("*") || n.contains('*') {
                    return Err(unsupported(
                        lp,
                        "wildcard table names in 'union' are not supported",
                    ));
                }
                legs.push(Pipeline {
                    source: Source::Name(n, lp),
                    ops: vec![],
                });
            }
            if !self.eat_sym(",") {
                break;
            }
        }
        Ok(UnionSpec {
            inner,
            withsource,
            legs,
            pos,
        })
    }

    fn operator(&mut self) -> Result<Operator, KqlError> {
        let pos = self.pos();
        let word = match &self.peek().tok {
            Tok::Ident(w) => w.clone(),
            _ => return Err(self.expected("a tabular operator")),
        };
        self.advance();
        match word.as_str() {
            "where" | "filter" => Ok(Operator::Where(self.expr()?)),
            "project" => Ok(Operator::Project(self.named_list()?, pos)),
            "extend" => Ok(Operator::Extend(self.named_list()?)),
            "project-away" => Ok(Operator::ProjectAway(self.pattern_list()?)),
            "project-keep" => Ok(Operator::ProjectKeep(self.pattern_list()?)),
            "project-reorder" => Ok(Operator::ProjectReorder(self.pattern_list()?)),
            "project-rename" => {
                let mut v = Vec::new();
                loop {
                    let p = self.pos();
                    let new = self.name("a new column name")?;
                    self.expect_sym("=")?;
                    let old = self.name("a column name")?;
                    v.push((new, old, p));
                    if !self.eat_sym(",") {
                        break;
                    }
                }
                Ok(Operator::ProjectRename(v))
            }
            "summarize" => self.summarize(pos),
            "mv-expand" => self.mv_expand(pos),
            "join" => self.join(),
            "union" => Ok(Operator::Union(self.union_spec(pos)?)),
            "sort" | "order" => {
                self.expect_word("by")?;
                let mut keys = Vec::new();
                loop {
                    keys.push(self.sort_key()?);
                    if !self.eat_sym(",") {
                        break;
                    }
                }
                Ok(Operator::Sort(keys))
            }
            "top" => {
                let n = self.expr()?;
                self.expect_word("by")?;
                let mut keys = vec![self.sort_key()?];
                while self.eat_sym(",") {
                    keys.push(self.sort_key()?);
                }
                Ok(Operator::Top { n, keys })
            }
            "take" | "limit" => Ok(Operator::Take(self.expr()?)),
            "distinct" => {
                if self.eat_sym("*") {
                    Ok(Operator::Distinct(None, pos))
                } else {
                    Ok(Operator::Distinct(Some(self.named_list()?), pos))
                }
            }
            "count" => Ok(Operator::Count),
            "as" => {
                if self.is_word("hint") {
                    return Err(unsupported(pos, "'as' hints are not supported"));
                }
                Ok(Operator::As(self.name("a name after 'as'")?))
            }
            "serialize" => {
                if !self.at_pipe_end() {
                    return Err(unsupported(
                        pos,
                        "'serialize' with columns is not supported",
                    ));
                }
                Ok(Operator::Serialize)
            }
            w if UNSUPPORTED_OPERATORS.contains(&w) => Err(unsupported(
                pos,
                format!("the '{w}' operator is not supported"),
            )),
            w => Err(syntax(pos, format!("unknown tabular operator '{w}'"))),
        }
    }

    fn sort_key(&mut self) -> Result<SortKey, KqlError> {
        let expr = self.expr()?;
        let asc = if self.eat_word("asc") {
            true
        } else {
            self.eat_word("desc");
            false
        };
        // asc → nulls first, desc → nulls last [kql-semantics.md §2.13].
        let mut nulls_first = asc;
        if self.eat_word("nulls") {
            if self.eat_word("first") {
                nulls_first = true;
            } else if self.eat_word("last") {
                nulls_first = false;
            } else {
                return Err(self.expected("'first' or 'last'"));
            }
        }
        Ok(SortKey {
            expr,
            asc,
            nulls_first,
        })
    }

    fn pattern_list(&mut self) -> Result<Vec<(String, Pos)>, KqlError> {
        let mut v = Vec::new();
        loop {
            let p = self.pos();
            let mut pat = String::new();
            // A pattern is a run of name parts and `*` with no spaces between them.
            let mut last_end: Option<usize> = None;
            loop {
                let t = self.peek().clone();
                if let Some(end) = last_end
                    && t.offset != end
                {
                    break;
                }
                match &t.tok {
                    Tok::Sym("*") => {
                        pat.push('*');
                        self.advance();
                        last_end = Some(t.offset + 1);
                    }
                    Tok::Ident(w) if !is_reserved(w) => {
                        pat.push_str(w);
                        self.advance();
                        last_end = Some(t.offset + w.len());
                    }
                    Tok::Sym("[") if last_end.is_none() => {
                        pat.push_str(&self.name("a column name")?);
                        last_end = Some(usize::MAX);
                    }
                    _ => break,
                }
            }
            if pat.is_empty() {
                return Err(self.expected("a column name"));
            }
            v.push((pat, p));
            if !self.eat_sym(",") {
                break;
            }
        }
        Ok(v)
    }

    fn named_list(&mut self) -> Result<Vec<NamedExpr>, KqlError> {
        let mut v = Vec::new();
        loop {
            v.push(self.named_expr()?);
            if !self.eat_sym(",") {
                break;
            }
        }
        Ok(v)
    }

    fn named_expr(&mut self) -> Result<NamedExpr, KqlError> {
        if self.is_sym("(") {
            // `(a, b) = expr` declares several names.
            let mut k = 1;
            let mut is_tuple = false;
            while let Tok::Ident(_) | Tok::Sym(",") = self.peek_at(k) {
                k += 1;
            }
            if matches!(self.peek_at(k), Tok::Sym(")"))
                && matches!(self.peek_at(k + 1), Tok::Sym("="))
                && k > 1
            {
                is_tuple = true;
            }
            if is_tuple {
                return Err(unsupported(
                    self.pos(),
                    "'(a, b) = …' multi-column assignment is not supported",
                ));
            }
        }
        let is_assign = matches!(self.peek_at(1), Tok::Sym("="))
            && matches!(&self.peek().tok, Tok::Ident(w) if !is_reserved(w));
        let is_quoted_assign = matches!(
            (
                &self.peek().tok,
                self.peek_at(1),
                self.peek_at(2),
                self.peek_at(3)
            ),
            (Tok::Sym("["), Tok::Str(_), Tok::Sym("]"), Tok::Sym("="))
        );
        if is_assign || is_quoted_assign {
            let name = self.name("a column name")?;
            self.expect_sym("=")?;
            let expr = self.expr()?;
            return Ok(NamedExpr {
                name: Some(name),
                expr,
            });
        }
        Ok(NamedExpr {
            name: None,
            expr: self.expr()?,
        })
    }

    fn summarize(&mut self, pos: Pos) -> Result<Operator, KqlError> {
        while let Tok::Ident(w) = &self.peek().tok {
            if w.starts_with("hint") && matches!(self.peek_at(1), Tok::Sym(".")) {
                // hint.strategy=shuffle etc. do not change results.
                self.advance();
                self.advance();
                self.name("a hint name")?;
                self.expect_sym("=")?;
                self.advance();
            } else {
                break;
            }
        }
        let mut aggs = Vec::new();
        if !self.is_word("by") {
            aggs = self.named_list()?;
        }
        let mut by = Vec::new();
        if self.eat_word("by") {
            by = self.named_list()?;
        }
        Ok(Operator::Summarize { aggs, by, pos })
    }

    fn mv_expand(&mut self, pos: Pos) -> Result<Operator, KqlError> {
        let mut kind_array = false;
        let mut item_index = None;
        loop {
            if self.is_word("kind") && matches!(self.peek_at(1), Tok::Sym("=")) {
                self.advance();
                self.advance();
                let k = self.name("'bag' or 'array'")?;
                kind_array = match k.as_str() {
                    "bag" => false,
                    "array" => true,
                    _ => return Err(syntax(pos, format!("unknown mv-expand kind '{k}'"))),
                };
            } else if self.is_word("with_itemindex") && matches!(self.peek_at(1), Tok::Sym("=")) {
                self.advance();
                self.advance();
                item_index = Some(self.name("a column name")?);
            } else if self.is_word("bagexpansion") && matches!(self.peek_at(1), Tok::Sym("=")) {
                self.advance();
                self.advance();
                let k = self.name("'bag' or 'array'")?;
                kind_array = k == "array";
            } else {
                break;
            }
        }
        let mut items = Vec::new();
        loop {
            let ne = self.named_expr()?;
            let mut to_type = None;
            if self.eat_word("to") {
                self.expect_word("typeof")?;
                self.expect_sym("(")?;
                to_type = Some(self.type_name()?);
                self.expect_sym(")")?;
            }
            items.push(MvExpandItem {
                name: ne.name,
                expr: ne.expr,
                to_type,
            });
            if !self.eat_sym(",") {
                break;
            }
        }
        let limit = if self.eat_word("limit") {
            Some(self.expr()?)
        } else {
            None
        };
        Ok(Operator::MvExpand {
            kind_array,
            item_index,
            items,
            limit,
            pos,
        })
    }

    fn join(&mut self) -> Result<Operator, KqlError> {
        let mut kind = JoinKind::InnerUnique;
        loop {
            if self.is_word("kind") && matches!(self.peek_at(1), Tok::Sym("=")) {
                self.advance();
                self.advance();
                let kp = self.pos();
                let k = self.name("a join kind")?;
                kind = match k.as_str() {
                    "innerunique" => JoinKind::InnerUnique,
                    "inner" => JoinKind::Inner,
                    "leftouter" => JoinKind::LeftOuter,
                    "rightouter" => JoinKind::RightOuter,
                    "fullouter" | "outer" => JoinKind::FullOuter,
                    "leftanti" | "anti" | "leftantisemi" => JoinKind::LeftAnti,
                    "rightanti" | "rightantisemi" => JoinKind::RightAnti,
                    "leftsemi" => JoinKind::LeftSemi,
                    "rightsemi" => JoinKind::RightSemi,
                    other => return Err(syntax(kp, format!("unknown join kind '{other}'"))),
                };
            } else if matches!(&self.peek().tok, Tok::Ident(w) if w == "hint")
                && matches!(self.peek_at(1), Tok::Sym("."))
            {
                // Hints don't change results [kql-semantics.md §2.11].
                self.advance();
                self.advance();
                self.name("a hint name")?;
                self.expect_sym("=")?;
                self.advance();
            } else {
                break;
            }
        }
        let right = if self.eat_sym("(") {
            let p = self.pipeline()?;
            self.expect_sym(")")?;
            p
        } else {
            let rp = self.pos();
            let n = self.name("'(' or a table name after 'join'")?;
            Pipeline {
                source: Source::Name(n, rp),
                ops: vec![],
            }
        };
        self.expect_word("on")?;
        let mut on = Vec::new();
        loop {
            let e = self.expr()?;
            collect_join_conds(&e, &mut on)?;
            if !self.eat_sym(",") {
                break;
            }
        }
        Ok(Operator::Join {
            kind,
            right: Box::new(right),
            on,
        })
    }

    // ---- scalar expressions ----

    pub fn expr(&mut self) -> Result<Expr, KqlError> {
        self.enter()?;
        let r = self.or_expr();
        self.leave();
        r
    }

    /// A new expression node, refused when the tree gets too deep.
    fn node(&self, kind: ExprKind, pos: Pos) -> Result<Expr, KqlError> {
        let e = Expr::new(kind, pos);
        if e.depth > MAX_EXPR_DEPTH {
            return Err(syntax(
                pos,
                format!("the expression is nested more than {MAX_EXPR_DEPTH} levels deep"),
            ));
        }
        Ok(e)
    }

    fn or_expr(&mut self) -> Result<Expr, KqlError> {
        let mut l = self.and_expr()?;
        while self.is_word("or") {
            let pos = self.pos();
            self.advance();
            let r = self.and_expr()?;
            l = self.node(ExprKind::Binary(BinOp::Or, Box::new(l), Box::new(r)), pos)?;
        }
        Ok(l)
    }

    fn and_expr(&mut self) -> Result<Expr, KqlError> {
        let mut l = self.eq_expr()?;
        while self.is_word("and") {
            let pos = self.pos();
            self.advance();
            let r = self.eq_expr()?;
            l = self.node(ExprKind::Binary(BinOp::And, Box::new(l), Box::new(r)), pos)?;
        }
        Ok(l)
    }

    fn eq_expr(&mut self) -> Result<Expr, KqlError> {
        let mut l = self.rel_expr()?;
        loop {
            let pos = self.pos();
            let op = match &self.peek().tok {
                Tok::Sym("==") => Some(BinOp::Eq),
                Tok::Sym("!=") | Tok::Sym("<>") => Some(BinOp::Ne),
                _ => None,
            };
            if let Some(op) = op {
                self.advance();
                let r = self.rel_expr()?;
                l = self.node(ExprKind::Binary(op, Box::new(l), Box::new(r)), pos)?;
                continue;
            }
            let word = match &self.peek().tok {
                Tok::Ident(w) => w.clone(),
                _ => break,
            };
            match word.as_str() {
                "in" | "!in" | "in~" | "!in~" => {
                    self.advance();
                    let list = self.list_arg()?;
                    l = self.node(
                        ExprKind::In {
                            lhs: Box::new(l),
                            list,
                            negated: word.starts_with('!'),
                            case_insensitive: word.ends_with('~'),
                        },
                        pos,
                    )?;
                }
                "has_any" | "has_all" => {
                    self.advance();
                    let list = self.list_arg()?;
                    l = self.node(
                        ExprKind::HasAny {
                            lhs: Box::new(l),
                            list,
                            all: word == "has_all",
                        },
                        pos,
                    )?;
                }
                "between" | "!between" => {
                    self.advance();
                    self.expect_sym("(")?;
                    let lo = self.expr()?;
                    self.expect_sym("..")?;
                    let hi = self.expr()?;
                    self.expect_sym(")")?;
                    l = self.node(
                        ExprKind::Between {
                            lhs: Box::new(l),
                            lo: Box::new(lo),
                            hi: Box::new(hi),
                            negated: word.starts_with('!'),
                        },
                        pos,
                    )?;
                }
                "!has_any" | "!has_all" | "has_any_cs" | "in_cs" | "!in_cs" | "has_all_cs" => {
                    return Err(unsupported(
                        pos,
                        format!("the '{word}' operator is not supported"),
                    ));
                }
                _ => break,
            }
        }
        Ok(l)
    }

    fn list_arg(&mut self) -> Result<ListArg, KqlError> {
        self.expect_sym("(")?;
        // A tabular expression: `(T | …)`, `((datatable…))`, or a bare table name followed by
        // `|` — decided by trying a pipeline when the content starts like one.
        let start = self.i;
        let looks_tabular = match &self.peek().tok {
            Tok::Sym("(") => true,
            Tok::Ident(w) => {
                matches!(w.as_str(), "datatable" | "print" | "union" | "range")
                    || matches!(self.peek_at(1), Tok::Sym("|"))
            }
            _ => false,
        };
        if looks_tabular
            && let Ok(p) = self.pipeline()
            && self.is_sym(")")
            && !is_bare_name(&p)
        {
            self.advance();
            return Ok(ListArg::Tabular(Box::new(p)));
        }
        self.i = start;
        let mut items = Vec::new();
        if !self.is_sym(")") {
            loop {
                items.push(self.expr()?);
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        self.expect_sym(")")?;
        Ok(ListArg::Scalars(items))
    }

    fn rel_expr(&mut self) -> Result<Expr, KqlError> {
        let l = self.add_expr()?;
        let pos = self.pos();
        let op = match &self.peek().tok {
            Tok::Sym("<") => BinOp::Lt,
            Tok::Sym("<=") => BinOp::Le,
            Tok::Sym(">") => BinOp::Gt,
            Tok::Sym(">=") => BinOp::Ge,
            _ => return Ok(l),
        };
        self.advance();
        let r = self.add_expr()?;
        self.node(ExprKind::Binary(op, Box::new(l), Box::new(r)), pos)
    }

    fn add_expr(&mut self) -> Result<Expr, KqlError> {
        let mut l = self.mul_expr()?;
        loop {
            let pos = self.pos();
            let op = match &self.peek().tok {
                Tok::Sym("+") => BinOp::Add,
                Tok::Sym("-") => BinOp::Sub,
                _ => return Ok(l),
            };
            self.advance();
            let r = self.mul_expr()?;
            l = self.node(ExprKind::Binary(op, Box::new(l), Box::new(r)), pos)?;
        }
    }

    fn mul_expr(&mut self) -> Result<Expr, KqlError> {
        let mut l = self.str_expr()?;
        loop {
            let pos = self.pos();
            let op = match &self.peek().tok {
                Tok::Sym("*") => BinOp::Mul,
                Tok::Sym("/") => BinOp::Div,
                Tok::Sym("%") => BinOp::Mod,
                _ => return Ok(l),
            };
            self.advance();
            let r = self.str_expr()?;
            l = self.node(ExprKind::Binary(op, Box::new(l), Box::new(r)), pos)?;
        }
    }

    fn str_expr(&mut self) -> Result<Expr, KqlError> {
        let mut l = self.unary_expr()?;
        loop {
            let pos = self.pos();
            let op = match &self.peek().tok {
                Tok::Sym("=~") => StrOp {
                    kind: StrOpKind::Equals,
                    negated: false,
                    case_sensitive: false,
                },
                Tok::Sym("!~") => StrOp {
                    kind: StrOpKind::Equals,
                    negated: true,
                    case_sensitive: false,
                },
                Tok::Ident(w) if STRING_OPS.contains(&w.as_str()) => {
                    let negated = w.starts_with('!');
                    let base = w.trim_start_matches('!');
                    let case_sensitive = base.ends_with("_cs");
                    let base = base.trim_end_matches("_cs");
                    let kind = match base {
                        "has" => StrOpKind::Has,
                        "hasprefix" => StrOpKind::HasPrefix,
                        "hassuffix" => StrOpKind::HasSuffix,
                        "contains" => StrOpKind::Contains,
                        "startswith" => StrOpKind::StartsWith,
                        "endswith" => StrOpKind::EndsWith,
                        _ => StrOpKind::MatchesRegex,
                    };
                    StrOp {
                        kind,
                        negated,
                        case_sensitive: case_sensitive || kind == StrOpKind::MatchesRegex,
                    }
                }
                _ => return Ok(l),
            };
            self.advance();
            if op.kind == StrOpKind::MatchesRegex {
                self.expect_word("regex")?;
            }
            let r = self.unary_expr()?;
            l = self.node(
                ExprKind::Binary(BinOp::Str(op), Box::new(l), Box::new(r)),
                pos,
            )?;
        }
    }

    fn unary_expr(&mut self) -> Result<Expr, KqlError> {
        let pos = self.pos();
        if self.eat_sym("-") {
            self.enter()?;
            let e = self.unary_expr();
            self.leave();
            let e = e?;
            // Fold negative literals so `-9223372036854775808`-like edge cases stay literals.
            return Ok(match e.kind {
                ExprKind::Literal(Value::Long(v)) => {
                    Expr::new(ExprKind::Literal(Value::Long(v.wrapping_neg())), pos)
                }
                ExprKind::Literal(Value::Real(v)) => {
                    Expr::new(ExprKind::Literal(Value::Real(-v)), pos)
                }
                ExprKind::Literal(Value::TimeSpan(v)) => {
                    Expr::new(ExprKind::Literal(Value::TimeSpan(-v)), pos)
                }
                _ => self.node(ExprKind::Neg(Box::new(e)), pos)?,
            });
        }
        if self.eat_sym("+") {
            self.enter()?;
            let e = self.unary_expr();
            self.leave();
            return e;
        }
        self.postfix_expr()
    }

    fn postfix_expr(&mut self) -> Result<Expr, KqlError> {
        let mut e = self.primary()?;
        loop {
            let pos = self.pos();
            if self.eat_sym(".") {
                let name = match self.peek().tok.clone() {
                    Tok::Ident(w) => {
                        self.advance();
                        w
                    }
                    Tok::Sym("[") => self.name("a member name")?,
                    _ => return Err(self.expected("a member name after '.'")),
                };
                e = self.node(ExprKind::Member(Box::new(e), name), pos)?;
            } else if self.is_sym("[") {
                self.advance();
                let idx = self.expr()?;
                self.expect_sym("]")?;
                e = self.node(ExprKind::Index(Box::new(e), Box::new(idx)), pos)?;
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, KqlError> {
        let pos = self.pos();
        let t = self.peek().tok.clone();
        let lit = |v: Value| Ok(Expr::new(ExprKind::Literal(v), pos));
        match t {
            Tok::Long(v) => {
                self.advance();
                lit(Value::Long(v))
            }
            Tok::Real(v) => {
                self.advance();
                lit(Value::Real(v))
            }
            Tok::TimeSpan(v) => {
                self.advance();
                lit(Value::TimeSpan(v))
            }
            Tok::Str(s) => {
                self.advance();
                lit(Value::string(s))
            }
            Tok::RawLiteral(k, text) => {
                self.advance();
                raw_literal(&k, &text, pos)
            }
            Tok::Sym("(") => {
                self.advance();
                let e = self.expr()?;
                self.expect_sym(")")?;
                Ok(e)
            }
            Tok::Sym("[") => {
                let n = self.name("an expression")?;
                Ok(Expr::new(ExprKind::Name(n), pos))
            }
            Tok::Ident(w) => {
                if w == "true" || w == "false" {
                    self.advance();
                    return lit(Value::Bool(w == "true"));
                }
                if is_reserved(&w) {
                    return Err(self.expected("an expression"));
                }
                self.advance();
                if self.is_sym("(") {
                    return self.call(w, pos);
                }
                Ok(Expr::new(ExprKind::Name(w), pos))
            }
            _ => Err(self.expected("an expression")),
        }
    }

    fn call(&mut self, name: String, pos: Pos) -> Result<Expr, KqlError> {
        self.expect_sym("(")?;
        match name.as_str() {
            "dynamic" => {
                let j = self.json_value()?;
                self.expect_sym(")")?;
                return Ok(Expr::new(ExprKind::DynamicLiteral(j), pos));
            }
            "typeof" => {
                let ty = self.type_name()?;
                self.expect_sym(")")?;
                return Ok(Expr::new(ExprKind::TypeOf(ty), pos));
            }
            "int" | "long" | "real" | "double" | "bool" | "boolean" | "decimal" | "string" => {
                return self.typed_literal(&name, pos);
            }
            // "toscalar() function": its argument is a tabular expression.
            "toscalar" => {
                let p = self.pipeline()?;
                self.expect_sym(")")?;
                return self.node(ExprKind::ToScalar(Box::new(p)), pos);
            }
            _ => {}
        }
        let mut args = Vec::new();
        if !self.is_sym(")") {
            loop {
                if self.is_sym("*") && matches!(self.peek_at(1), Tok::Sym(")") | Tok::Sym(",")) {
                    let sp = self.pos();
                    self.advance();
                    args.push(Expr::new(ExprKind::Star, sp));
                } else {
                    args.push(self.expr()?);
                }
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        self.expect_sym(")")?;
        self.node(ExprKind::Call(name, args), pos)
    }

    fn typed_literal(&mut self, name: &str, pos: Pos) -> Result<Expr, KqlError> {
        let ty: ColumnType = name
            .parse()
            .map_err(|_| syntax(pos, format!("unknown type '{name}'")))?;
        if ty == ColumnType::Decimal {
            return Err(unsupported(pos, "decimal literals are not supported"));
        }
        if self.eat_word("null") {
            self.expect_sym(")")?;
            if ty == ColumnType::String {
                return Err(syntax(pos, "string has no null value; use \"\""));
            }
            return Ok(Expr::new(ExprKind::TypedNull(ty), pos));
        }
        let neg = if self.eat_sym("-") {
            true
        } else {
            self.eat_sym("+");
            false
        };
        let t = self.advance();
        self.expect_sym(")")?;
        let bad = || syntax(pos, format!("invalid {name}(…) literal"));
        let v = match (ty, t.tok) {
            (ColumnType::Int, Tok::Long(v)) => {
                let v = if neg { -v } else { v };
                Value::Int(i32::try_from(v).map_err(|_| bad())?)
            }
            (ColumnType::Long, Tok::Long(v)) => Value::Long(if neg { v.wrapping_neg() } else { v }),
            (ColumnType::Real, Tok::Long(v)) => {
                Value::Real(if neg { -(v as f64) } else { v as f64 })
            }
            (ColumnType::Real, Tok::Real(v)) => Value::Real(if neg { -v } else { v }),
            (ColumnType::Real, Tok::Ident(w)) if w == "nan" => Value::Real(f64::NAN),
            (ColumnType::Real, Tok::Ident(w)) if w == "inf" => Value::Real(if neg {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }),
            (ColumnType::Bool, Tok::Ident(w)) if (w == "true" || w == "false") && !neg => {
                Value::Bool(w == "true")
            }
            (ColumnType::String, Tok::Str(s)) if !neg => Value::string(s),
            _ => return Err(bad()),
        };
        Ok(Expr::new(ExprKind::Literal(v), pos))
    }

    /// The content of `dynamic(…)`: JSON with single-quoted strings allowed and typed KQL
    /// literals nested inside [kql-semantics.md §1.7].
    fn json_value(&mut self) -> Result<serde_json::Value, KqlError> {
        use serde_json::Value as J;
        self.enter()?;
        let pos = self.pos();
        let t = self.advance();
        let v = match t.tok {
            Tok::Sym("[") => {
                let mut items = Vec::new();
                while !self.is_sym("]") {
                    items.push(self.json_value()?);
                    if !self.eat_sym(",") {
                        break;
                    }
                }
                self.expect_sym("]")?;
                J::Array(items)
            }
            Tok::Sym("{") => {
                let mut map = serde_json::Map::new();
                while !self.is_sym("}") {
                    let key = match self.advance().tok {
                        Tok::Str(s) => s,
                        Tok::Ident(s) => s,
                        _ => {
                            return Err(syntax(pos, "expected a property name in dynamic literal"));
                        }
                    };
                    self.expect_sym(":")?;
                    let v = self.json_value()?;
                    map.insert(key, v);
                    if !self.eat_sym(",") {
                        break;
                    }
                }
                self.expect_sym("}")?;
                J::Object(map)
            }
            Tok::Str(s) => J::String(s),
            Tok::Long(v) => J::from(v),
            Tok::Real(v) => serde_json::Number::from_f64(v)
                .map(J::Number)
                .unwrap_or(J::Null),
            Tok::Sym("-") => match self.advance().tok {
                Tok::Long(v) => J::from(v.wrapping_neg()),
                Tok::Real(v) => serde_json::Number::from_f64(-v)
                    .map(J::Number)
                    .unwrap_or(J::Null),
                _ => return Err(syntax(pos, "invalid number in dynamic literal")),
            },
            Tok::Ident(w) if w == "true" => J::Bool(true),
            Tok::Ident(w) if w == "false" => J::Bool(false),
            Tok::Ident(w) if w == "null" => J::Null,
            Tok::TimeSpan(t) => J::String(crate::value::format_timespan(&t)),
            Tok::RawLiteral(k, text) => {
                let e = raw_literal(&k, &text, pos)?;
                match e.kind {
                    ExprKind::Literal(v) => J::String(v.to_kql_string()),
                    _ => J::Null,
                }
            }
            Tok::Ident(w)
                if matches!(
                    w.as_str(),
                    "int" | "long" | "real" | "double" | "bool" | "boolean"
                ) && self.is_sym("(") =>
            {
                self.advance();
                let e = self.typed_literal(&w, pos)?;
                match e.kind {
                    ExprKind::Literal(v) => value_to_plain_json(&v),
                    _ => J::Null,
                }
            }
            other => {
                return Err(syntax(
                    pos,
                    format!("unexpected {} in dynamic literal", Self::describe(&other)),
                ));
            }
        };
        self.leave();
        Ok(v)
    }
}

/// `x` or `(x)` alone: a scalar name, not a tabular expression.
fn is_bare_name(p: &Pipeline) -> bool {
    p.ops.is_empty()
        && match &p.source {
            Source::Name(..) => true,
            Source::Nested(inner) => is_bare_name(inner),
            _ => false,
        }
}

fn value_to_plain_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => (*i).into(),
        Value::Long(i) => (*i).into(),
        Value::Real(r) => serde_json::Number::from_f64(*r)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::Null => serde_json::Value::Null,
        other => serde_json::Value::String(other.to_kql_string()),
    }
}

fn raw_literal(kw: &str, text: &str, pos: Pos) -> Result<Expr, KqlError> {
    let bad = || syntax(pos, format!("invalid {kw}({text}) literal"));
    // The text may be quoted: the docs write `datetime("2015-01-01")` ("hash() function").
    let text = match text.as_bytes() {
        [q @ (b'"' | b'\''), .., last] if last == q && text.len() >= 2 => &text[1..text.len() - 1],
        _ => text,
    };
    let ty = match kw {
        "datetime" | "date" => ColumnType::DateTime,
        "guid" | "uuid" | "uniqueid" => ColumnType::Guid,
        _ => ColumnType::TimeSpan,
    };
    if text == "null" {
        return Ok(Expr::new(ExprKind::TypedNull(ty), pos));
    }
    let v = match ty {
        ColumnType::DateTime => Value::DateTime(parse_datetime(text).ok_or_else(bad)?),
        ColumnType::Guid => Value::Guid(uuid::Uuid::parse_str(text).map_err(|_| bad())?),
        _ => Value::TimeSpan(parse_timespan_literal(text).ok_or_else(bad)?),
    };
    Ok(Expr::new(ExprKind::Literal(v), pos))
}

/// `timespan(…)` content: `2` (days), `15 seconds`, `1.5h`, or `[-][d.]hh:mm[:ss[.f]]`
/// [kql-semantics.md §1.6].
fn parse_timespan_literal(text: &str) -> Option<chrono::TimeDelta> {
    if text.contains(':') {
        return parse_timespan_c(text);
    }
    let t = text.trim();
    let split = t.find(|c: char| c.is_alphabetic()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let v: f64 = num.trim().parse().ok()?;
    let suffix = suffix.trim();
    timespan_from(v, if suffix.is_empty() { "d" } else { suffix })
}

/// Splits a join's `on` expression into equality conditions.
fn collect_join_conds(e: &Expr, out: &mut Vec<JoinCond>) -> Result<(), KqlError> {
    match &e.kind {
        ExprKind::Name(n) => {
            out.push(JoinCond {
                left: n.clone(),
                right: n.clone(),
                pos: e.pos,
            });
            Ok(())
        }
        ExprKind::Binary(BinOp::And, l, r) => {
            collect_join_conds(l, out)?;
            collect_join_conds(r, out)
        }
        ExprKind::Binary(BinOp::Eq, l, r) => {
            let side = |x: &Expr| -> Option<(String, String)> {
                if let ExprKind::Member(b, col) = &x.kind
                    && let ExprKind::Name(s) = &b.kind
                    && (s == "$left" || s == "$right")
                {
                    return Some((s.clone(), col.clone()));
                }
                None
            };
            match (side(l), side(r)) {
                (Some((a, ca)), Some((b, cb))) if a != b => {
                    let (left, right) = if a == "$left" { (ca, cb) } else { (cb, ca) };
                    out.push(JoinCond {
                        left,
                        right,
                        pos: e.pos,
                    });
                    Ok(())
                }
                _ => Err(unsupported(
                    e.pos,
                    "join conditions must be column names or $left.Col == $right.Col",
                )),
            }
        }
        _ => Err(unsupported(
            e.pos,
            "join conditions must be column names or $left.Col == $right.Col",
        )),
    }
}
