//! The OData `$filter` subset of the Web PubSub REST API (`webpubsub-rest.md` §4.2): a
//! tokenizer, a recursive-descent parser producing an AST, a static type check (so that
//! `not length(userId) gt 5` is refused up front with a clear message, not at delivery time),
//! and an evaluator over one connection ([`FilterTarget`]). Pure: no I/O, no clock.
//!
//! Grammar (precedence high → low: `not`, comparisons / `in`, `and`, `or`):
//! ```text
//! or    := and ('or' and)*
//! and   := cmp ('and' cmp)*
//! cmp   := unary ( ('eq'|'ne'|'gt'|'ge'|'lt'|'le') unary | 'in' ( 'groups' | '(' lit (',' lit)* ')' ) )?
//! unary := 'not' unary | primary
//! primary := literal | identifier | function '(' args ')' | '(' or ')'
//! ```
//! Keywords, identifiers and function names are case-insensitive. Null semantics (our choice,
//! unconfirmed by the service docs): a comparison with `null` is false except `eq null` /
//! `ne null`; a function applied to `null` yields `null`; `and`/`or`/`not` use three-valued
//! logic and an unknown result at the top selects nothing. String order is ordinal.

use std::borrow::Cow;
use std::fmt;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// Most predicates (leaves joined by `and`/`or`) a filter may hold.
pub const MAX_CLAUSES: usize = 100;
/// Deepest nesting of parentheses / `not` / calls, bounding the parser's recursion.
const MAX_DEPTH: usize = 64;

/// Why a filter was refused; `Display` is the message of the 400 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// Byte offset in the filter text where the problem was found.
    pub pos: usize,
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at position {})", self.message, self.pos)
    }
}

impl std::error::Error for FilterError {}

fn err<T>(pos: usize, message: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError {
        pos,
        message: message.into(),
    })
}

/// The connection a filter is evaluated against.
pub struct FilterTarget<'a> {
    pub user_id: Option<&'a str>,
    pub connection_id: &'a str,
    pub groups: &'a dyn GroupView,
}

/// Read access to the groups of a connection (for `'g' in groups` and `length(groups)`).
pub trait GroupView {
    fn contains(&self, group: &str) -> bool;
    fn count(&self) -> usize;
}

impl<S: AsRef<str>> GroupView for Vec<S> {
    fn contains(&self, group: &str) -> bool {
        self.iter().any(|g| g.as_ref() == group)
    }
    fn count(&self) -> usize {
        self.len()
    }
}

// ----- tokens ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    LParen,
    RParen,
    Comma,
    Str(String),
    Int(i64),
    /// Identifier, keyword or function name, as written.
    Word(String),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Comma => "','".into(),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Int(i) => format!("number {i}"),
            Tok::Word(w) => format!("'{w}'"),
        }
    }

    fn is_word(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

fn tokenize(src: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' => {
                out.push((start, Tok::LParen));
                i += 1;
            }
            b')' => {
                out.push((start, Tok::RParen));
                i += 1;
            }
            b',' => {
                out.push((start, Tok::Comma));
                i += 1;
            }
            b'\'' => {
                // A quote inside a string is written twice: 'user''1' is user'1.
                let mut s = String::new();
                i += 1;
                let mut seg = i;
                loop {
                    match b.get(i) {
                        None => return err(start, "unterminated string literal"),
                        Some(b'\'') if b.get(i + 1) == Some(&b'\'') => {
                            s.push_str(&src[seg..=i]);
                            i += 2;
                            seg = i;
                        }
                        Some(b'\'') => {
                            s.push_str(&src[seg..i]);
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                out.push((start, Tok::Str(s)));
            }
            b'0'..=b'9' | b'-' | b'+' => {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let text = &src[start..i];
                if !text.bytes().any(|d| d.is_ascii_digit()) {
                    return err(start, format!("unexpected character '{}'", c as char));
                }
                if i < b.len() && (b[i].is_ascii_alphabetic() || b[i] == b'_' || b[i] == b'.') {
                    return err(start, "only integer numbers are supported");
                }
                let n: i64 = match text.parse() {
                    Ok(n) => n,
                    Err(_) => return err(start, format!("number {text} is out of range")),
                };
                out.push((start, Tok::Int(n)));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push((start, Tok::Word(src[start..i].to_owned())));
            }
            _ => {
                let ch = src[start..].chars().next().unwrap_or('?');
                return err(start, format!("unexpected character '{ch}'"));
            }
        }
    }
    Ok(out)
}

// ----- AST ------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    fn from_word(w: &str) -> Option<CmpOp> {
        Some(match w.to_ascii_lowercase().as_str() {
            "eq" => CmpOp::Eq,
            "ne" => CmpOp::Ne,
            "gt" => CmpOp::Gt,
            "ge" => CmpOp::Ge,
            "lt" => CmpOp::Lt,
            "le" => CmpOp::Le,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    UserId,
    ConnectionId,
    Groups,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    ToLower,
    ToUpper,
    Trim,
    Substring,
    Concat,
    IndexOf,
    StartsWith,
    EndsWith,
    Contains,
    Length,
}

impl Func {
    fn from_word(w: &str) -> Option<Func> {
        Some(match w.to_ascii_lowercase().as_str() {
            "tolower" => Func::ToLower,
            "toupper" => Func::ToUpper,
            "trim" => Func::Trim,
            "substring" => Func::Substring,
            "concat" => Func::Concat,
            "indexof" => Func::IndexOf,
            "startswith" => Func::StartsWith,
            "endswith" => Func::EndsWith,
            "contains" => Func::Contains,
            "length" => Func::Length,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Func::ToLower => "tolower",
            Func::ToUpper => "toupper",
            Func::Trim => "trim",
            Func::Substring => "substring",
            Func::Concat => "concat",
            Func::IndexOf => "indexof",
            Func::StartsWith => "startswith",
            Func::EndsWith => "endswith",
            Func::Contains => "contains",
            Func::Length => "length",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
}

/// The parsed filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Lit(Lit),
    Field(Field),
    Call(Func, Vec<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// `x in ('a', 'b')`
    InList(Box<Expr>, Vec<Lit>),
    /// `x in groups`
    InGroups(Box<Expr>),
}

// ----- parser ---------------------------------------------------------------------------------

struct Parser {
    toks: Vec<(usize, Tok)>,
    at: usize,
    end: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|t| &t.1)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |t| t.0)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).map(|t| t.1.clone());
        if t.is_some() {
            self.at += 1;
        }
        t
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<(), FilterError> {
        let pos = self.pos();
        match self.next() {
            Some(t) if t == want => Ok(()),
            Some(t) => err(pos, format!("expected {what}, found {}", t.describe())),
            None => err(pos, format!("expected {what}, found end of filter")),
        }
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(self.pos(), "filter is nested too deeply");
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.peek().is_some_and(|t| t.is_word("or")) {
            self.at += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.cmp()?;
        while self.peek().is_some_and(|t| t.is_word("and")) {
            self.at += 1;
            let right = self.cmp()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn cmp(&mut self) -> Result<Expr, FilterError> {
        let left = self.unary()?;
        let op = match self.peek() {
            Some(Tok::Word(w)) => {
                if w.eq_ignore_ascii_case("in") {
                    self.at += 1;
                    return self.in_rhs(left);
                }
                CmpOp::from_word(w)
            }
            _ => None,
        };
        let Some(op) = op else { return Ok(left) };
        self.at += 1;
        let right = self.unary()?;
        Ok(Expr::Cmp(op, Box::new(left), Box::new(right)))
    }

    fn in_rhs(&mut self, left: Expr) -> Result<Expr, FilterError> {
        let pos = self.pos();
        match self.next() {
            Some(t) if t.is_word("groups") => Ok(Expr::InGroups(Box::new(left))),
            Some(Tok::LParen) => {
                let mut items = Vec::new();
                loop {
                    let pos = self.pos();
                    match self.next() {
                        Some(Tok::Str(s)) => items.push(Lit::Str(s)),
                        Some(Tok::Int(n)) => items.push(Lit::Int(n)),
                        Some(t) if t.is_word("null") => items.push(Lit::Null),
                        Some(t) if t.is_word("true") => items.push(Lit::Bool(true)),
                        Some(t) if t.is_word("false") => items.push(Lit::Bool(false)),
                        Some(t) => {
                            return err(
                                pos,
                                format!(
                                    "expected a literal in the 'in' list, found {}",
                                    t.describe()
                                ),
                            )
                        }
                        None => return err(pos, "unterminated 'in' list"),
                    }
                    let pos = self.pos();
                    match self.next() {
                        Some(Tok::Comma) => continue,
                        Some(Tok::RParen) => break,
                        Some(t) => {
                            return err(pos, format!("expected ',' or ')', found {}", t.describe()))
                        }
                        None => return err(pos, "unterminated 'in' list"),
                    }
                }
                Ok(Expr::InList(Box::new(left), items))
            }
            Some(t) => err(
                pos,
                format!(
                    "expected 'groups' or a parenthesised list after 'in', found {}",
                    t.describe()
                ),
            ),
            None => err(pos, "expected 'groups' or a list after 'in'"),
        }
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.peek().is_some_and(|t| t.is_word("not")) {
            self.at += 1;
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        let pos = self.pos();
        match self.next() {
            None => err(pos, "unexpected end of filter"),
            Some(Tok::Str(s)) => Ok(Expr::Lit(Lit::Str(s))),
            Some(Tok::Int(n)) => Ok(Expr::Lit(Lit::Int(n))),
            Some(Tok::LParen) => {
                self.enter()?;
                let e = self.or()?;
                self.depth -= 1;
                self.expect(Tok::RParen, "')'")?;
                Ok(e)
            }
            Some(Tok::Word(w)) => {
                let lower = w.to_ascii_lowercase();
                match lower.as_str() {
                    "null" => return Ok(Expr::Lit(Lit::Null)),
                    "true" => return Ok(Expr::Lit(Lit::Bool(true))),
                    "false" => return Ok(Expr::Lit(Lit::Bool(false))),
                    "userid" => return Ok(Expr::Field(Field::UserId)),
                    "connectionid" => return Ok(Expr::Field(Field::ConnectionId)),
                    "groups" => return Ok(Expr::Field(Field::Groups)),
                    _ => {}
                }
                let Some(f) = Func::from_word(&w) else {
                    return err(pos, format!("unknown identifier '{w}'"));
                };
                self.expect(Tok::LParen, &format!("'(' after '{}'", f.name()))?;
                self.enter()?;
                let mut args = Vec::new();
                if self.peek() == Some(&Tok::RParen) {
                    self.at += 1;
                } else {
                    loop {
                        args.push(self.or()?);
                        let p = self.pos();
                        match self.next() {
                            Some(Tok::Comma) => {}
                            Some(Tok::RParen) => break,
                            Some(t) => {
                                return err(
                                    p,
                                    format!("expected ',' or ')', found {}", t.describe()),
                                )
                            }
                            None => return err(p, format!("unterminated call to '{}'", f.name())),
                        }
                    }
                }
                self.depth -= 1;
                Ok(Expr::Call(f, args))
            }
            Some(t) => err(pos, format!("unexpected {}", t.describe())),
        }
    }
}

// ----- type check -----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Bool,
    Int,
    Str,
    Null,
    Groups,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "a boolean",
            Ty::Int => "a number",
            Ty::Str => "a string",
            Ty::Null => "null",
            Ty::Groups => "the groups collection",
        }
    }
}

fn lit_ty(l: &Lit) -> Ty {
    match l {
        Lit::Null => Ty::Null,
        Lit::Bool(_) => Ty::Bool,
        Lit::Int(_) => Ty::Int,
        Lit::Str(_) => Ty::Str,
    }
}

/// Two operand types may be compared: equal scalar types, or a scalar with null.
fn comparable(a: Ty, b: Ty) -> bool {
    match (a, b) {
        (Ty::Groups, _) | (_, Ty::Groups) => false,
        (Ty::Null, _) | (_, Ty::Null) => true,
        _ => a == b,
    }
}

fn check(e: &Expr) -> Result<Ty, String> {
    Ok(match e {
        Expr::Lit(l) => lit_ty(l),
        Expr::Field(Field::Groups) => Ty::Groups,
        Expr::Field(_) => Ty::Str,
        Expr::Not(inner) => match check(inner)? {
            Ty::Bool | Ty::Null => Ty::Bool,
            t => {
                return Err(format!(
                    "'not' needs a boolean operand, got {} (use parentheses: not (…))",
                    t.name()
                ))
            }
        },
        Expr::And(a, b) | Expr::Or(a, b) => {
            let op = if matches!(e, Expr::And(..)) {
                "and"
            } else {
                "or"
            };
            for side in [a, b] {
                let t = check(side)?;
                if !matches!(t, Ty::Bool | Ty::Null) {
                    return Err(format!("'{op}' needs boolean operands, got {}", t.name()));
                }
            }
            Ty::Bool
        }
        Expr::Cmp(op, a, b) => {
            let (ta, tb) = (check(a)?, check(b)?);
            if !comparable(ta, tb) {
                return Err(format!("cannot compare {} with {}", ta.name(), tb.name()));
            }
            if !matches!(op, CmpOp::Eq | CmpOp::Ne) && (ta == Ty::Bool || tb == Ty::Bool) {
                return Err("booleans can only be compared with eq or ne".into());
            }
            Ty::Bool
        }
        Expr::InList(a, items) => {
            let ta = check(a)?;
            if ta == Ty::Groups {
                return Err("the groups collection cannot be on the left of 'in'".into());
            }
            for l in items {
                if !comparable(ta, lit_ty(l)) {
                    return Err(format!(
                        "'in' list holds {} but the left side is {}",
                        lit_ty(l).name(),
                        ta.name()
                    ));
                }
            }
            Ty::Bool
        }
        Expr::InGroups(a) => match check(a)? {
            Ty::Str | Ty::Null => Ty::Bool,
            t => return Err(format!("'in groups' needs a string, got {}", t.name())),
        },
        Expr::Call(f, args) => {
            let tys = args.iter().map(check).collect::<Result<Vec<_>, _>>()?;
            let want: &[&[Ty]] = match f {
                Func::ToLower | Func::ToUpper | Func::Trim => &[&[Ty::Str]],
                Func::Substring => &[&[Ty::Str, Ty::Int], &[Ty::Str, Ty::Int, Ty::Int]],
                Func::Concat
                | Func::IndexOf
                | Func::StartsWith
                | Func::EndsWith
                | Func::Contains => &[&[Ty::Str, Ty::Str]],
                Func::Length => &[&[Ty::Str], &[Ty::Groups]],
            };
            let fits = want.iter().any(|sig| {
                sig.len() == tys.len()
                    && sig
                        .iter()
                        .zip(&tys)
                        .all(|(w, t)| *t == *w || (*t == Ty::Null && *w != Ty::Groups))
            });
            if !fits {
                let expected = match f {
                    Func::ToLower | Func::ToUpper | Func::Trim => "(string)",
                    Func::Substring => "(string, int[, int])",
                    Func::Length => "(string) or (groups)",
                    _ => "(string, string)",
                };
                return Err(format!("{} expects {expected}", f.name()));
            }
            match f {
                Func::ToLower | Func::ToUpper | Func::Trim | Func::Substring | Func::Concat => {
                    Ty::Str
                }
                Func::IndexOf | Func::Length => Ty::Int,
                Func::StartsWith | Func::EndsWith | Func::Contains => Ty::Bool,
            }
        }
    })
}

fn count_clauses(e: &Expr) -> usize {
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => count_clauses(a) + count_clauses(b),
        Expr::Not(a) => count_clauses(a),
        _ => 1,
    }
}

/// A parsed, type-checked filter, ready to be evaluated against many connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub expr: Expr,
}

impl Filter {
    /// Parses and checks `src`. Errors carry a message fit for a 400 response.
    pub fn parse(src: &str) -> Result<Filter, FilterError> {
        if src.len() > MAX_FILTER_LEN {
            return err(0, format!("filter is longer than {MAX_FILTER_LEN} bytes"));
        }
        let toks = tokenize(src)?;
        if toks.is_empty() {
            return err(0, "filter is empty");
        }
        let mut p = Parser {
            toks,
            at: 0,
            end: src.len(),
            depth: 0,
        };
        let expr = p.or()?;
        if let Some(t) = p.peek() {
            let what = t.describe();
            return err(
                p.pos(),
                format!("unexpected {what} after the end of the expression"),
            );
        }
        let clauses = count_clauses(&expr);
        if clauses > MAX_CLAUSES {
            return err(
                0,
                format!("filter has {clauses} clauses; at most {MAX_CLAUSES} are allowed"),
            );
        }
        match check(&expr) {
            Ok(Ty::Bool) => Ok(Filter { expr }),
            Ok(t) => err(
                0,
                format!("filter must be a boolean expression, not {}", t.name()),
            ),
            Err(m) => err(0, m),
        }
    }

    /// Whether the connection `t` is selected.
    pub fn matches(&self, t: &FilterTarget<'_>) -> bool {
        matches!(eval(&self.expr, t), Val::Bool(true))
    }
}

// ----- evaluation -----------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Str(Cow<'a, str>),
    Groups,
}

fn lit_val(l: &Lit) -> Val<'_> {
    match l {
        Lit::Null => Val::Null,
        Lit::Bool(b) => Val::Bool(*b),
        Lit::Int(n) => Val::Int(*n),
        Lit::Str(s) => Val::Str(Cow::Borrowed(s)),
    }
}

fn compare(op: CmpOp, a: &Val<'_>, b: &Val<'_>) -> bool {
    use std::cmp::Ordering;
    let ord = match (a, b) {
        (Val::Null, Val::Null) => Some(Ordering::Equal),
        (Val::Null, _) | (_, Val::Null) => None,
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        // Ordinal: UTF-8 byte order is code point order.
        (Val::Str(x), Val::Str(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    };
    match (op, ord) {
        (CmpOp::Eq, Some(o)) => o == Ordering::Equal,
        (CmpOp::Ne, Some(o)) => o != Ordering::Equal,
        // x ne null (x not null) is true; everything else with null is false.
        (CmpOp::Ne, None) => true,
        (_, None) => false,
        (CmpOp::Gt, Some(o)) => o == Ordering::Greater,
        (CmpOp::Ge, Some(o)) => o != Ordering::Less,
        (CmpOp::Lt, Some(o)) => o == Ordering::Less,
        (CmpOp::Le, Some(o)) => o != Ordering::Greater,
    }
}

fn char_len(s: &str) -> i64 {
    i64::try_from(s.chars().count()).unwrap_or(i64::MAX)
}

fn eval<'a>(e: &'a Expr, t: &FilterTarget<'a>) -> Val<'a> {
    match e {
        Expr::Lit(l) => lit_val(l),
        Expr::Field(Field::UserId) => t.user_id.map_or(Val::Null, |u| Val::Str(Cow::Borrowed(u))),
        Expr::Field(Field::ConnectionId) => Val::Str(Cow::Borrowed(t.connection_id)),
        Expr::Field(Field::Groups) => Val::Groups,
        Expr::Not(a) => match eval(a, t) {
            Val::Bool(b) => Val::Bool(!b),
            _ => Val::Null,
        },
        Expr::And(a, b) => match eval(a, t) {
            Val::Bool(false) => Val::Bool(false),
            left => match (left, eval(b, t)) {
                (_, Val::Bool(false)) => Val::Bool(false),
                (Val::Bool(true), Val::Bool(true)) => Val::Bool(true),
                _ => Val::Null,
            },
        },
        Expr::Or(a, b) => match eval(a, t) {
            Val::Bool(true) => Val::Bool(true),
            left => match (left, eval(b, t)) {
                (_, Val::Bool(true)) => Val::Bool(true),
                (Val::Bool(false), Val::Bool(false)) => Val::Bool(false),
                _ => Val::Null,
            },
        },
        Expr::Cmp(op, a, b) => Val::Bool(compare(*op, &eval(a, t), &eval(b, t))),
        Expr::InList(a, items) => {
            let v = eval(a, t);
            Val::Bool(items.iter().any(|l| compare(CmpOp::Eq, &v, &lit_val(l))))
        }
        Expr::InGroups(a) => match eval(a, t) {
            Val::Str(s) => Val::Bool(t.groups.contains(&s)),
            _ => Val::Bool(false),
        },
        Expr::Call(f, args) => {
            let vals: Vec<Val<'a>> = args.iter().map(|a| eval(a, t)).collect();
            call(*f, vals, t)
        }
    }
}

fn call<'a>(f: Func, vals: Vec<Val<'a>>, t: &FilterTarget<'a>) -> Val<'a> {
    if f == Func::Length && matches!(vals.first(), Some(Val::Groups)) {
        return Val::Int(i64::try_from(t.groups.count()).unwrap_or(i64::MAX));
    }
    // Null in, null out; the type check guarantees the remaining shapes.
    if vals.iter().any(|v| matches!(v, Val::Null)) {
        return Val::Null;
    }
    let s = |i: usize| match vals.get(i) {
        Some(Val::Str(s)) => s.as_ref(),
        _ => "",
    };
    let n = |i: usize| match vals.get(i) {
        Some(Val::Int(n)) => Some(*n),
        _ => None,
    };
    match f {
        Func::ToLower => Val::Str(Cow::Owned(s(0).to_lowercase())),
        Func::ToUpper => Val::Str(Cow::Owned(s(0).to_uppercase())),
        Func::Trim => Val::Str(Cow::Owned(s(0).trim().to_owned())),
        Func::Concat => Val::Str(Cow::Owned(format!("{}{}", s(0), s(1)))),
        Func::Length => Val::Int(char_len(s(0))),
        Func::StartsWith => Val::Bool(s(0).starts_with(s(1))),
        Func::EndsWith => Val::Bool(s(0).ends_with(s(1))),
        Func::Contains => Val::Bool(s(0).contains(s(1))),
        Func::IndexOf => Val::Int(match s(0).find(s(1)) {
            Some(byte) => char_len(&s(0)[..byte]),
            None => -1,
        }),
        Func::Substring => {
            // Character positions; out-of-range starts give "" and negative ones count as 0.
            let start = usize::try_from(n(1).unwrap_or(0).max(0)).unwrap_or(usize::MAX);
            let it = s(0).chars().skip(start);
            let out: String = match n(2) {
                Some(len) => it
                    .take(usize::try_from(len.max(0)).unwrap_or(usize::MAX))
                    .collect(),
                None => it.collect(),
            };
            Val::Str(Cow::Owned(out))
        }
    }
}

#[cfg(test)]
#[path = "odata_tests.rs"]
mod tests;
