//! The client-group query language (`eventgrid-mqtt.md` §6): a parser from the configured text to
//! a small expression tree and an evaluator that decides whether one client is in the group.
//!
//! Grammar (keywords ignore case; `and` binds tighter than `or`):
//! ```text
//! expr     := and_expr ( OR and_expr )*
//! and_expr := unary ( AND unary )*
//! unary    := NOT unary            -- only when QUERY_NOT_OPERATOR is on (off: §6 says no `not`)
//!           | '(' expr ')' | comparison
//! comparison := operand ( '=' | '<>' | '!=' | '<' | '>' | '<=' | '>=' ) literal
//!             | operand IN '[' [ literal ( ',' literal )* ] ']'
//! operand  := 'attributes.' KEY | 'authenticationName'      -- KEY is [A-Za-z0-9_]+, exact case
//! literal  := 'text' | "text" | -?[0-9]+
//! ```
//! Semantics [unconfirmed; the choices of §6, each behind a constant or stated here]: a missing
//! attribute makes its comparison false (for `<>` too); values compare only with the same type
//! (string `"3"` never equals integer `3`), so a type mismatch is "not equal"; for an array
//! attribute `=`/`IN` hold if any element matches and `<>`/`!=` if none does; `<`, `>`, `<=`,
//! `>=` need integers on both sides (an integer literal is checked when parsing, a non-integer
//! attribute makes them false); strings compare case-sensitively, `authenticationName`
//! case-insensitively. Strings have no escapes: a literal ends at the next matching quote.

use std::fmt;

use super::attrs::{AttrValue, Attributes};

/// Whether `NOT` is accepted. §6 says Event Grid has no `not` operator, so it is off; the
/// evaluator supports it so turning it on is this one line [unconfirmed].
pub const QUERY_NOT_OPERATOR: bool = false;

/// Queries longer than this are refused (a documented-size query is a few hundred bytes; this
/// bounds parse work and recursion together with `MAX_DEPTH`).
pub const MAX_QUERY_LEN: usize = 4096;
/// Parenthesis / `NOT` nesting limit, so a hostile config cannot overflow the stack.
const MAX_DEPTH: usize = 32;

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        operand: Operand,
        op: CmpOp,
        value: Literal,
    },
    In {
        operand: Operand,
        values: Vec<Literal>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand {
    AuthenticationName,
    Attribute(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Literal {
    Str(String),
    Int(i64),
}

/// Why a query did not parse; `offset` is the byte position in the query text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for QueryError {}

impl Query {
    /// Parses a query with the namespace's rules (`QUERY_NOT_OPERATOR`).
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        Self::parse_with(text, QUERY_NOT_OPERATOR)
    }

    fn parse_with(text: &str, allow_not: bool) -> Result<Query, QueryError> {
        if text.len() > MAX_QUERY_LEN {
            return Err(QueryError {
                offset: MAX_QUERY_LEN,
                message: format!("query is longer than {MAX_QUERY_LEN} bytes"),
            });
        }
        let tokens = lex(text)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            end: text.len(),
            allow_not,
        };
        let expr = parser.expr(0)?;
        if let Some(tok) = parser.peek() {
            return Err(parser.error_at(tok.offset, "unexpected text after the query"));
        }
        Ok(Query { expr })
    }

    /// True when the client with this authentication name and these attributes is a member.
    pub fn matches(&self, authentication_name: &str, attributes: &Attributes) -> bool {
        eval(&self.expr, authentication_name, attributes)
    }
}

fn eval(expr: &Expr, name: &str, attributes: &Attributes) -> bool {
    match expr {
        Expr::Or(items) => items.iter().any(|e| eval(e, name, attributes)),
        Expr::And(items) => items.iter().all(|e| eval(e, name, attributes)),
        Expr::Not(inner) => !eval(inner, name, attributes),
        Expr::Compare { operand, op, value } => match operand {
            Operand::AuthenticationName => compare_name(name, *op, value),
            Operand::Attribute(key) => attributes
                .get(key)
                .is_some_and(|attr| compare_attr(attr, *op, value)),
        },
        Expr::In { operand, values } => match operand {
            Operand::AuthenticationName => values.iter().any(|v| compare_name(name, CmpOp::Eq, v)),
            Operand::Attribute(key) => attributes
                .get(key)
                .is_some_and(|attr| values.iter().any(|v| compare_attr(attr, CmpOp::Eq, v))),
        },
    }
}

fn compare_name(name: &str, op: CmpOp, value: &Literal) -> bool {
    let equal = matches!(value, Literal::Str(s) if super::eq_ignore_case(name, s));
    match op {
        CmpOp::Eq => equal,
        CmpOp::Ne => !equal,
        // The name is a string; order comparisons need integers.
        _ => false,
    }
}

/// Equality of one scalar attribute value with a literal: same type and same value.
fn scalar_equal(attr: &AttrValue, value: &Literal) -> bool {
    match (attr, value) {
        (AttrValue::Str(a), Literal::Str(b)) => a == b,
        (AttrValue::Int(a), Literal::Int(b)) => a == b,
        _ => false,
    }
}

fn compare_attr(attr: &AttrValue, op: CmpOp, value: &Literal) -> bool {
    match op {
        CmpOp::Eq | CmpOp::Ne => {
            let equal = match attr {
                AttrValue::StrArray(items) => {
                    matches!(value, Literal::Str(v) if items.iter().any(|item| item == v))
                }
                scalar => scalar_equal(scalar, value),
            };
            (op == CmpOp::Eq) == equal
        }
        CmpOp::Lt | CmpOp::Gt | CmpOp::Le | CmpOp::Ge => {
            let (AttrValue::Int(a), Literal::Int(b)) = (attr, value) else {
                return false;
            };
            match op {
                CmpOp::Lt => a < b,
                CmpOp::Gt => a > b,
                CmpOp::Le => a <= b,
                _ => a >= b,
            }
        }
    }
}

// ---- lexer ----

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Op(CmpOp),
    Str(String),
    Int(i64),
    /// A bare word (`and`, `attributes.floor`, `authenticationName`, ...).
    Word(String),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    offset: usize,
}

fn lex(text: &str) -> Result<Vec<Token>, QueryError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let fail = |offset: usize, message: &str| QueryError {
        offset,
        message: message.to_owned(),
    };
    while i < bytes.len() {
        let start = i;
        let b = bytes[i];
        let single = match b {
            b'(' => Some(Tok::LParen),
            b')' => Some(Tok::RParen),
            b'[' => Some(Tok::LBracket),
            b']' => Some(Tok::RBracket),
            b',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(tok) = single {
            tokens.push(Token { tok, offset: start });
            i += 1;
            continue;
        }
        let next = bytes.get(i + 1).copied();
        let tok = match b {
            _ if b.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'=' => {
                // `==` is not in the language; refuse it rather than guess.
                i += 1;
                Tok::Op(CmpOp::Eq)
            }
            b'<' => match next {
                Some(b'>') => {
                    i += 2;
                    Tok::Op(CmpOp::Ne)
                }
                Some(b'=') => {
                    i += 2;
                    Tok::Op(CmpOp::Le)
                }
                _ => {
                    i += 1;
                    Tok::Op(CmpOp::Lt)
                }
            },
            b'>' => {
                if next == Some(b'=') {
                    i += 2;
                    Tok::Op(CmpOp::Ge)
                } else {
                    i += 1;
                    Tok::Op(CmpOp::Gt)
                }
            }
            b'!' if next == Some(b'=') => {
                i += 2;
                Tok::Op(CmpOp::Ne)
            }
            b'\'' | b'"' => {
                let body_start = i + 1;
                let Some(len) = bytes[body_start..].iter().position(|&c| c == b) else {
                    return Err(fail(start, "string literal is not closed"));
                };
                i = body_start + len + 1;
                // Slicing at ASCII quote positions always lands on char boundaries.
                Tok::Str(text[body_start..body_start + len].to_owned())
            }
            b'0'..=b'9' | b'-' if b != b'-' || next.is_some_and(|c| c.is_ascii_digit()) => {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let digits = &text[start..i];
                let value = digits
                    .parse::<i64>()
                    .map_err(|_| fail(start, "integer literal is out of range or malformed"))?;
                Tok::Int(value)
            }
            _ if b.is_ascii_alphabetic() || b == b'_' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'.'))
                {
                    i += 1;
                }
                Tok::Word(text[start..i].to_owned())
            }
            _ => return Err(fail(start, "unexpected character")),
        };
        if i < bytes.len() && tok == Tok::Op(CmpOp::Eq) && bytes[i] == b'=' {
            return Err(fail(start, "use '=' for equality, not '=='"));
        }
        tokens.push(Token { tok, offset: start });
    }
    Ok(tokens)
}

// ---- parser ----

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Offset reported for "unexpected end of query".
    end: usize,
    allow_not: bool,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn error_at(&self, offset: usize, message: &str) -> QueryError {
        QueryError {
            offset,
            message: message.to_owned(),
        }
    }

    fn error_here(&self, message: &str) -> QueryError {
        let offset = self.peek().map_or(self.end, |t| t.offset);
        self.error_at(offset, message)
    }

    fn next(&mut self) -> Option<Token> {
        let tok = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        tok
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Word(w), .. }) if w.eq_ignore_ascii_case(keyword))
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut items = vec![self.and_expr(depth)?];
        while self.at_keyword("or") {
            self.pos += 1;
            items.push(self.and_expr(depth)?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and_expr(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut items = vec![self.unary(depth)?];
        while self.at_keyword("and") {
            self.pos += 1;
            items.push(self.unary(depth)?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, QueryError> {
        if depth >= MAX_DEPTH {
            return Err(self.error_here("query is nested too deeply"));
        }
        if self.at_keyword("not") {
            if !self.allow_not {
                return Err(self.error_here(
                    "the NOT operator is not supported (Event Grid queries have none; use <> or !=)",
                ));
            }
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        if matches!(
            self.peek(),
            Some(Token {
                tok: Tok::LParen,
                ..
            })
        ) {
            self.pos += 1;
            let inner = self.expr(depth + 1)?;
            match self.next() {
                Some(Token {
                    tok: Tok::RParen, ..
                }) => return Ok(inner),
                _ => {
                    self.pos -= 1;
                    return Err(self.error_here("expected ')'"));
                }
            }
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, QueryError> {
        let operand = self.operand()?;
        if self.at_keyword("in") {
            self.pos += 1;
            return Ok(Expr::In {
                operand,
                values: self.list()?,
            });
        }
        let op = match self.peek() {
            Some(Token {
                tok: Tok::Op(op), ..
            }) => *op,
            _ => return Err(self.error_here("expected a comparison operator or IN")),
        };
        self.pos += 1;
        let value_offset = self.peek().map_or(self.end, |t| t.offset);
        let value = self.literal()?;
        let ordering = matches!(op, CmpOp::Lt | CmpOp::Gt | CmpOp::Le | CmpOp::Ge);
        if ordering && !matches!(value, Literal::Int(_)) {
            return Err(self.error_at(value_offset, "<, >, <= and >= compare integers only"));
        }
        Ok(Expr::Compare { operand, op, value })
    }

    fn operand(&mut self) -> Result<Operand, QueryError> {
        let Some(Token {
            tok: Tok::Word(word),
            offset,
        }) = self.peek().cloned()
        else {
            return Err(self.error_here("expected attributes.<name> or authenticationName"));
        };
        if word.eq_ignore_ascii_case("authenticationName") {
            self.pos += 1;
            return Ok(Operand::AuthenticationName);
        }
        const PREFIX: &str = "attributes.";
        let key = word
            .get(..PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(PREFIX))
            .map(|_| &word[PREFIX.len()..]);
        match key {
            Some(key) if super::attrs::is_attribute_key(key) => {
                self.pos += 1;
                Ok(Operand::Attribute(key.to_owned()))
            }
            _ => Err(self.error_at(
                offset,
                "expected attributes.<name> (A-Z, a-z, 0-9, _) or authenticationName",
            )),
        }
    }

    fn literal(&mut self) -> Result<Literal, QueryError> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Str(s)) => {
                let lit = Literal::Str(s.clone());
                self.pos += 1;
                Ok(lit)
            }
            Some(Tok::Int(n)) => {
                let lit = Literal::Int(*n);
                self.pos += 1;
                Ok(lit)
            }
            _ => Err(self.error_here("expected a quoted string or an integer")),
        }
    }

    fn list(&mut self) -> Result<Vec<Literal>, QueryError> {
        if !matches!(
            self.peek(),
            Some(Token {
                tok: Tok::LBracket,
                ..
            })
        ) {
            return Err(self.error_here("expected '[' after IN"));
        }
        self.pos += 1;
        let mut values = Vec::new();
        if matches!(
            self.peek(),
            Some(Token {
                tok: Tok::RBracket,
                ..
            })
        ) {
            self.pos += 1;
            return Ok(values);
        }
        loop {
            values.push(self.literal()?);
            match self.next().map(|t| t.tok) {
                Some(Tok::Comma) => continue,
                Some(Tok::RBracket) => return Ok(values),
                _ => {
                    self.pos -= 1;
                    return Err(self.error_here("expected ',' or ']' in the IN list"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn attrs(pairs: &[(&str, AttrValue)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    }

    fn s(v: &str) -> AttrValue {
        AttrValue::Str(v.to_owned())
    }

    fn arr(v: &[&str]) -> AttrValue {
        AttrValue::StrArray(v.iter().map(|x| (*x).to_owned()).collect())
    }

    fn q(text: &str) -> Query {
        match Query::parse(text) {
            Ok(q) => q,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn sensor() -> Attributes {
        attrs(&[
            ("type", s("sensor")),
            ("floor", AttrValue::Int(3)),
            ("sensors", arr(&["motion", "light"])),
        ])
    }

    #[test]
    fn equality_on_string_attribute() {
        assert!(q("attributes.type = 'sensor'").matches("dev1", &sensor()));
        assert!(q("attributes.type = \"sensor\"").matches("dev1", &sensor()));
        assert!(
            !q("attributes.type = 'Sensor'").matches("dev1", &sensor()),
            "case-sensitive"
        );
        assert!(!q("attributes.type = 'pump'").matches("dev1", &sensor()));
    }

    #[test]
    fn not_equal_in_both_spellings() {
        assert!(q("attributes.type <> 'pump'").matches("d", &sensor()));
        assert!(q("attributes.type != 'pump'").matches("d", &sensor()));
        assert!(!q("attributes.type != 'sensor'").matches("d", &sensor()));
    }

    #[test]
    fn missing_attribute_makes_every_comparison_false() {
        let empty = Attributes::new();
        for text in [
            "attributes.type = 'x'",
            "attributes.type <> 'x'",
            "attributes.floor < 5",
            "attributes.type IN ['x']",
        ] {
            assert!(!q(text).matches("d", &empty), "{text}");
        }
    }

    #[test]
    fn integer_comparisons() {
        let a = sensor();
        assert!(q("attributes.floor <= 5").matches("d", &a));
        assert!(q("attributes.floor >= 3").matches("d", &a));
        assert!(!q("attributes.floor > 3").matches("d", &a));
        assert!(q("attributes.floor < 4").matches("d", &a));
        assert!(q("attributes.floor = 3").matches("d", &a));
        assert!(q("attributes.floor > -1").matches("d", &a));
    }

    #[test]
    fn values_of_different_types_are_never_equal() {
        let a = attrs(&[("floor", s("3")), ("n", AttrValue::Int(3))]);
        assert!(!q("attributes.floor = 3").matches("d", &a));
        assert!(q("attributes.floor <> 3").matches("d", &a));
        assert!(
            !q("attributes.floor < 5").matches("d", &a),
            "order needs an integer attribute"
        );
        assert!(!q("attributes.n = '3'").matches("d", &a));
    }

    #[test]
    fn order_comparison_with_a_string_literal_does_not_parse() {
        let e = Query::parse("attributes.floor < 'x'").unwrap_err();
        assert!(e.message.contains("integers only"), "{e}");
        assert_eq!(e.offset, 19);
    }

    #[test]
    fn arrays_match_when_any_element_does() {
        let a = sensor();
        assert!(q("attributes.sensors = 'motion'").matches("d", &a));
        assert!(q("attributes.sensors IN ['humidity', 'light']").matches("d", &a));
        assert!(!q("attributes.sensors IN ['humidity']").matches("d", &a));
        assert!(
            !q("attributes.sensors <> 'motion'").matches("d", &a),
            "<> needs no element"
        );
        assert!(q("attributes.sensors <> 'humidity'").matches("d", &a));
        assert!(!q("attributes.sensors > 1").matches("d", &a));
    }

    #[test]
    fn and_binds_tighter_than_or() {
        // a OR (b AND c): true through `a` even though `c` is false.
        let text = "attributes.type = 'sensor' or attributes.floor = 9 and attributes.type = 'x'";
        assert!(q(text).matches("d", &sensor()));
        let grouped =
            "(attributes.type = 'sensor' or attributes.floor = 9) and attributes.type = 'x'";
        assert!(!q(grouped).matches("d", &sensor()));
    }

    #[test]
    fn documented_examples_parse_and_select() {
        let a = sensor();
        let ex1 = q(r#"attributes.sensors IN ["motion","humidity"] and attributes.floor <= 5"#);
        assert!(ex1.matches("d", &a));
        let ex2 = q("authenticationName IN ['client1','client2']");
        assert!(ex2.matches("client2", &Attributes::new()));
        assert!(
            ex2.matches("CLIENT1", &Attributes::new()),
            "names ignore case"
        );
        assert!(!ex2.matches("client3", &Attributes::new()));
    }

    #[test]
    fn keywords_ignore_case_but_attribute_names_do_not() {
        assert!(q("ATTRIBUTES.type = 'sensor' AND Attributes.floor in [3]").matches("d", &sensor()));
        assert!(q("AuthenticationName = 'D'").matches("d", &sensor()));
        assert!(!q("attributes.TYPE = 'sensor'").matches("d", &sensor()));
    }

    #[test]
    fn in_with_an_empty_list_is_false() {
        assert!(!q("attributes.type IN []").matches("d", &sensor()));
    }

    #[test]
    fn not_operator_is_refused_unless_enabled() {
        let e = Query::parse("not attributes.type = 'pump'").unwrap_err();
        assert!(e.message.contains("NOT"), "{e}");
        let enabled = Query::parse_with("NOT (attributes.type = 'pump')", true).unwrap();
        assert!(enabled.matches("d", &sensor()));
        let double = Query::parse_with("not not attributes.type = 'sensor'", true).unwrap();
        assert!(double.matches("d", &sensor()));
    }

    #[test]
    fn reports_syntax_errors_with_their_position() {
        let cases = [
            ("", 0, "expected attributes"),
            ("attributes.type", 15, "comparison operator"),
            ("attributes.type = ", 18, "quoted string"),
            ("attributes.type = 'x", 18, "not closed"),
            ("(attributes.type = 'x'", 22, "')'"),
            (
                "attributes.type = 'x' attributes.a = 'y'",
                22,
                "after the query",
            ),
            ("attributes.type IN 'x'", 19, "'['"),
            ("attributes.type IN ['x' 'y']", 24, "',' or ']'"),
            ("attributes. = 'x'", 0, "attributes.<name>"),
            ("attributes.a-b = 'x'", 12, "unexpected character"),
            ("foo = 'x'", 0, "attributes.<name>"),
            ("attributes.a == 'x'", 13, "=="),
            ("attributes.a = 99999999999999999999", 15, "out of range"),
            ("attributes.a = 'x' and", 22, "expected attributes"),
        ];
        for (text, offset, needle) in cases {
            let e = Query::parse(text).unwrap_err();
            assert!(e.message.contains(needle), "{text:?}: {e}");
            assert_eq!(e.offset, offset, "{text:?}: {e}");
        }
    }

    #[test]
    fn deep_nesting_and_long_queries_are_refused() {
        let deep = format!("{}attributes.a = 1{}", "(".repeat(100), ")".repeat(100));
        assert!(Query::parse(&deep).unwrap_err().message.contains("nested"));
        let long = format!("attributes.a = '{}'", "x".repeat(MAX_QUERY_LEN));
        assert!(Query::parse(&long).is_err());
    }

    #[test]
    fn non_ascii_text_in_strings_is_kept() {
        let a = attrs(&[("site", s("Zürich"))]);
        assert!(q("attributes.site = 'Zürich'").matches("d", &a));
        assert!(Query::parse("attributes.site = Zürich").is_err());
    }
}
