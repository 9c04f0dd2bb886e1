//! The lexer: turns query text into tokens with their line and column, following Kusto's
//! scanner rules (identifiers, string forms and escapes, numbers, timespan suffixes,
//! `//` comments) [kql-semantics.md §1].

use chrono::TimeDelta;

use crate::error::{KqlError, KqlErrorKind};

/// A position in the query text (1-based line and column, in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// An identifier or keyword (`where`, `has_any`, `!has`, `in~`, `mv-expand`, `$left`).
    Ident(String),
    Long(i64),
    Real(f64),
    TimeSpan(TimeDelta),
    Str(String),
    /// The raw text between the parentheses of `datetime(…)`, `guid(…)` or `timespan(…)`:
    /// (keyword, text).
    RawLiteral(String, String),
    /// Punctuation and symbolic operators: `| ( ) [ ] { } , ; . .. = == != <> < <= > >= + - *
    /// / % =~ !~ : ~`.
    Sym(&'static str),
    Eof,
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
    /// Byte offset of the token's first character (used to tell adjacency).
    pub offset: usize,
}

/// Operator names that contain a hyphen.
const HYPHENATED: &[&str] = &[
    "mv-expand",
    "mv-apply",
    "project-away",
    "project-rename",
    "project-keep",
    "project-reorder",
    "make-series",
    "parse-where",
    "parse-kv",
    "top-nested",
    "top-hitters",
    "find-in",
];

const SYMS: &[&str] = &[
    "..", "==", "!=", "<>", "<=", ">=", "=~", "!~", "|", "(", ")", "[", "]", "{", "}", ",", ";",
    ".", "=", "<", ">", "+", "-", "*", "/", "%", ":", "~", "?",
];

/// The timespan suffixes and the length of one unit in 100-ns ticks [kql-semantics.md §1.6].
fn timespan_unit(suffix: &str) -> Option<f64> {
    Some(match suffix {
        "d" | "day" | "days" => 864_000_000_000.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 36_000_000_000.0,
        "m" | "min" | "minute" | "minutes" => 600_000_000.0,
        "s" | "sec" | "second" | "seconds" => 10_000_000.0,
        "ms" | "milli" | "millis" | "millisec" | "millisecond" | "milliseconds" => 10_000.0,
        "micro" | "micros" | "microsec" | "microsecond" | "microseconds" => 10.0,
        "nano" | "nanos" | "nanosec" | "nanosecond" | "nanoseconds" => 0.01,
        "tick" | "ticks" => 1.0,
        _ => return None,
    })
}

/// A timespan from a number of units of `suffix`, or None for an unknown suffix or a value
/// outside Kusto's timespan, a signed 64-bit count of 100-ns ticks (about ±29,227 years).
pub fn timespan_from(value: f64, suffix: &str) -> Option<TimeDelta> {
    let ticks = (value * timespan_unit(suffix)?).round();
    if !ticks.is_finite() || ticks.abs() >= i64::MAX as f64 {
        return None;
    }
    Some(crate::scalar::from_ticks(ticks as i64))
}

struct Lexer<'s> {
    src: &'s str,
    chars: Vec<(usize, char)>,
    i: usize,
    line: usize,
    col: usize,
}

/// Splits `src` into tokens (ending with `Eof`), or reports the first lexical error.
pub fn tokenize(src: &str) -> Result<Vec<Token>, KqlError> {
    let mut lx = Lexer {
        src,
        chars: src.char_indices().collect(),
        i: 0,
        line: 1,
        col: 1,
    };
    let mut out: Vec<Token> = Vec::new();
    loop {
        lx.skip_trivia()?;
        let pos = Pos {
            line: lx.line,
            column: lx.col,
        };
        let offset = lx.offset();
        let Some(c) = lx.peek(0) else {
            out.push(Token {
                tok: Tok::Eof,
                pos,
                offset,
            });
            return Ok(out);
        };
        let tok = lx.next_token(c, pos, out.last())?;
        // Adjacent string literals concatenate [kql-semantics.md §1.3].
        if let (
            Tok::Str(s),
            Some(Token {
                tok: Tok::Str(prev),
                ..
            }),
        ) = (&tok, out.last_mut())
        {
            prev.push_str(s);
            continue;
        }
        out.push(Token { tok, pos, offset });
    }
}

fn err(pos: Pos, msg: impl Into<String>) -> KqlError {
    KqlError::new(KqlErrorKind::Syntax, msg, pos.line, pos.column)
}

impl<'s> Lexer<'s> {
    fn peek(&self, k: usize) -> Option<char> {
        self.chars.get(self.i + k).map(|&(_, c)| c)
    }
    fn offset(&self) -> usize {
        self.chars
            .get(self.i)
            .map(|&(o, _)| o)
            .unwrap_or(self.src.len())
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.col,
        }
    }

    fn skip_trivia(&mut self) -> Result<(), KqlError> {
        loop {
            match self.peek(0) {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('/') if self.peek(1) == Some('/') => {
                    while let Some(c) = self.peek(0) {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some('/') if self.peek(1) == Some('*') => {
                    return Err(err(
                        self.pos(),
                        "block comments '/* */' are not part of KQL; use '//' line comments",
                    ));
                }
                _ => return Ok(()),
            }
        }
    }

    fn next_token(&mut self, c: char, pos: Pos, prev: Option<&Token>) -> Result<Tok, KqlError> {
        // Verbatim and obfuscated strings.
        if (c == '@') && matches!(self.peek(1), Some('"' | '\'')) {
            self.bump();
            return self.verbatim_string(pos);
        }
        if (c == 'h' || c == 'H') && matches!(self.peek(1), Some('"' | '\'')) {
            self.bump();
            return self.string(pos);
        }
        if (c == 'h' || c == 'H')
            && self.peek(1) == Some('@')
            && matches!(self.peek(2), Some('"' | '\''))
        {
            self.bump();
            self.bump();
            return self.verbatim_string(pos);
        }
        if c == '"' || c == '\'' {
            return self.string(pos);
        }
        if c == '`' && self.peek(1) == Some('`') && self.peek(2) == Some('`') {
            return self.multiline_string(pos, '`');
        }
        if c == '~' && self.peek(1) == Some('~') && self.peek(2) == Some('~') {
            return self.multiline_string(pos, '~');
        }
        if c.is_ascii_digit() {
            return self.number(pos);
        }
        if c == '!' && self.peek(1).is_some_and(|n| n.is_alphabetic() || n == '_') {
            self.bump();
            let word = self.word();
            let mut name = format!("!{word}");
            if word == "in" && self.peek(0) == Some('~') {
                self.bump();
                name.push('~');
            }
            return Ok(Tok::Ident(name));
        }
        if c.is_alphabetic() || c == '_' || c == '$' {
            let mut word = self.word();
            if word == "in" && self.peek(0) == Some('~') {
                self.bump();
                word.push('~');
                return Ok(Tok::Ident(word));
            }
            if self.peek(0) == Some('-') && self.peek(1).is_some_and(|n| n.is_alphabetic()) {
                // `mv-expand`, `project-away`, …: only the known hyphenated names.
                let save = (self.i, self.line, self.col);
                self.bump();
                let rest = self.word();
                let joined = format!("{word}-{rest}");
                if HYPHENATED.contains(&joined.as_str()) {
                    return Ok(Tok::Ident(joined));
                }
                (self.i, self.line, self.col) = save;
            }
            // Literals whose content is not made of tokens. Not after `.` (member access)
            // and only when `(` follows directly or after spaces.
            let after_dot = matches!(
                prev,
                Some(Token {
                    tok: Tok::Sym("."),
                    ..
                })
            );
            if !after_dot
                && matches!(
                    word.as_str(),
                    "datetime" | "date" | "guid" | "uuid" | "uniqueid" | "timespan" | "time"
                )
            {
                let save = (self.i, self.line, self.col);
                while self.peek(0).is_some_and(|c| c == ' ' || c == '\t') {
                    self.bump();
                }
                if self.peek(0) == Some('(') {
                    self.bump();
                    let mut text = String::new();
                    loop {
                        match self.bump() {
                            Some(')') => break,
                            Some('\n') | None => {
                                return Err(err(pos, format!("unterminated {word}( literal")));
                            }
                            Some(c) => text.push(c),
                        }
                    }
                    return Ok(Tok::RawLiteral(word, text.trim().to_string()));
                }
                (self.i, self.line, self.col) = save;
            }
            return Ok(Tok::Ident(word));
        }
        for s in SYMS {
            if s.chars()
                .enumerate()
                .all(|(k, sc)| self.peek(k) == Some(sc))
            {
                for _ in 0..s.chars().count() {
                    self.bump();
                }
                return Ok(Tok::Sym(s));
            }
        }
        Err(err(pos, format!("unexpected character '{c}'")))
    }

    fn word(&mut self) -> String {
        let mut w = String::new();
        while let Some(c) = self.peek(0) {
            if c.is_alphanumeric() || c == '_' || (c == '$' && w.is_empty()) {
                w.push(c);
                self.bump();
            } else {
                break;
            }
        }
        w
    }

    fn number(&mut self, pos: Pos) -> Result<Tok, KqlError> {
        let start = self.i;
        if self.peek(0) == Some('0') && matches!(self.peek(1), Some('x' | 'X')) {
            self.bump();
            self.bump();
            let mut hex = String::new();
            while let Some(c) = self.peek(0).filter(|c| c.is_ascii_hexdigit()) {
                hex.push(c);
                self.bump();
            }
            return i64::from_str_radix(&hex, 16)
                .map(Tok::Long)
                .map_err(|_| err(pos, "invalid hexadecimal literal"));
        }
        let mut is_real = false;
        while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        // A '.' followed by a digit (not `..`) continues a real.
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            is_real = true;
            self.bump();
            while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
        }
        if matches!(self.peek(0), Some('e' | 'E'))
            && (self.peek(1).is_some_and(|c| c.is_ascii_digit())
                || (matches!(self.peek(1), Some('+' | '-'))
                    && self.peek(2).is_some_and(|c| c.is_ascii_digit())))
        {
            is_real = true;
            self.bump();
            self.bump();
            while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
        }
        let text: String = self.chars[start..self.i].iter().map(|&(_, c)| c).collect();
        if self.peek(0).is_some_and(|c| c.is_alphabetic() || c == '_') {
            let suffix = self.word();
            let v: f64 = text.parse().map_err(|_| err(pos, "invalid number"))?;
            return timespan_from(v, &suffix).map(Tok::TimeSpan).ok_or_else(|| {
                err(
                    pos,
                    format!("'{text}{suffix}' is neither a number nor a timespan literal"),
                )
            });
        }
        if is_real {
            text.parse::<f64>()
                .map(Tok::Real)
                .map_err(|_| err(pos, "invalid real literal"))
        } else {
            text.parse::<i64>().map(Tok::Long).map_err(|_| {
                err(
                    pos,
                    format!("integer literal {text} is out of range for long"),
                )
            })
        }
    }

    fn string(&mut self, pos: Pos) -> Result<Tok, KqlError> {
        let Some(q) = self.bump() else {
            return Err(err(pos, "unterminated string literal"));
        };
        let mut s = String::new();
        loop {
            match self.bump() {
                None | Some('\n') | Some('\r') => {
                    return Err(err(pos, "unterminated string literal"));
                }
                Some(c) if c == q => return Ok(Tok::Str(s)),
                Some('\\') => {
                    let e = self
                        .bump()
                        .ok_or_else(|| err(pos, "unterminated string literal"))?;
                    match e {
                        '\\' => s.push('\\'),
                        '\'' => s.push('\''),
                        '"' => s.push('"'),
                        'a' => s.push('\u{7}'),
                        'b' => s.push('\u{8}'),
                        'f' => s.push('\u{c}'),
                        'n' => s.push('\n'),
                        'r' => s.push('\r'),
                        't' => s.push('\t'),
                        'v' => s.push('\u{b}'),
                        'u' | 'U' | 'x' => {
                            let n = match e {
                                'u' => 4,
                                'U' => 8,
                                _ => 2,
                            };
                            let mut hex = String::new();
                            for _ in 0..n {
                                match self.bump() {
                                    Some(h) if h.is_ascii_hexdigit() => hex.push(h),
                                    _ => {
                                        return Err(err(
                                            pos,
                                            format!("invalid \\{e} escape in string literal"),
                                        ));
                                    }
                                }
                            }
                            let ch = u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| {
                                    err(pos, format!("invalid \\{e} escape in string literal"))
                                })?;
                            s.push(ch);
                        }
                        '0'..='7' => {
                            let mut v = e.to_digit(8).unwrap_or(0);
                            for _ in 0..2 {
                                match self.peek(0).and_then(|c| c.to_digit(8)) {
                                    Some(d) => {
                                        v = v * 8 + d;
                                        self.bump();
                                    }
                                    None => break,
                                }
                            }
                            s.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                        }
                        other => {
                            return Err(err(
                                pos,
                                format!(
                                    "unknown escape '\\{other}' in string literal (use '\\\\{other}' or a verbatim @\"…\" string)"
                                ),
                            ));
                        }
                    }
                }
                Some(c) => s.push(c),
            }
        }
    }

    fn verbatim_string(&mut self, pos: Pos) -> Result<Tok, KqlError> {
        let Some(q) = self.bump() else {
            return Err(err(pos, "unterminated string literal"));
        };
        let mut s = String::new();
        loop {
            match self.bump() {
                None | Some('\n') | Some('\r') => {
                    return Err(err(pos, "unterminated string literal"));
                }
                Some(c) if c == q => {
                    if self.peek(0) == Some(q) {
                        self.bump();
                        s.push(q);
                    } else {
                        return Ok(Tok::Str(s));
                    }
                }
                Some(c) => s.push(c),
            }
        }
    }

    fn multiline_string(&mut self, pos: Pos, q: char) -> Result<Tok, KqlError> {
        for _ in 0..3 {
            self.bump();
        }
        let mut s = String::new();
        loop {
            if self.peek(0) == Some(q) && self.peek(1) == Some(q) && self.peek(2) == Some(q) {
                for _ in 0..3 {
                    self.bump();
                }
                return Ok(Tok::Str(s));
            }
            match self.bump() {
                Some(c) => s.push(c),
                None => return Err(err(pos, "unterminated multi-line string literal")),
            }
        }
    }
}
