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

mod check;
mod eval;
mod lex;
mod parse;

use std::fmt;

pub use parse::{CmpOp, Expr, Field, Func, Lit};

use check::{check, count_clauses, Ty};
use eval::{eval, Val};
use lex::tokenize;

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
        let expr = parse::parse(toks, src.len())?;
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

#[cfg(test)]
mod tests;
