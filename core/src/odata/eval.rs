//! Evaluation of a checked filter against one connection, with the null rules of the module
//! docs: three-valued `and`/`or`/`not`, null-propagating functions, ordinal string order.

use std::borrow::Cow;

use super::parse::{CmpOp, Expr, Field, Func, Lit};
use super::FilterTarget;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Val<'a> {
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

pub(super) fn eval<'a>(e: &'a Expr, t: &FilterTarget<'a>) -> Val<'a> {
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
