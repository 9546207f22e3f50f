//! The AST of a filter and the recursive-descent parser that builds it from tokens, following
//! the grammar in the module docs; nesting is bounded by `MAX_DEPTH`.

use super::lex::Tok;
use super::{err, FilterError, MAX_DEPTH};

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

    pub(super) fn name(self) -> &'static str {
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

/// Parses the whole token list (`toks` is not empty; `end` is the length of the filter text,
/// the position reported for errors at its end) into one expression.
pub(super) fn parse(toks: Vec<(usize, Tok)>, end: usize) -> Result<Expr, FilterError> {
    let mut p = Parser {
        toks,
        at: 0,
        end,
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
    Ok(expr)
}

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
