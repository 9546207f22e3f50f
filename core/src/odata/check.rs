//! The static type check of a parsed filter (so a wrongly typed filter is refused with a 400
//! up front, never at delivery time) and the clause count that `MAX_CLAUSES` bounds.

use super::parse::{CmpOp, Expr, Field, Func, Lit};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    Bool,
    Int,
    Str,
    Null,
    Groups,
}

impl Ty {
    pub(super) fn name(self) -> &'static str {
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

pub(super) fn check(e: &Expr) -> Result<Ty, String> {
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

pub(super) fn count_clauses(e: &Expr) -> usize {
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => count_clauses(a) + count_clauses(b),
        Expr::Not(a) => count_clauses(a),
        _ => 1,
    }
}
