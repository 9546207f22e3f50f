//! The tokenizer: filter text to `(byte offset, token)` pairs. String literals are unquoted
//! here (`''` is one quote) and numbers are parsed, so the parser sees only whole tokens.

use super::{err, FilterError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    LParen,
    RParen,
    Comma,
    Str(String),
    Int(i64),
    /// Identifier, keyword or function name, as written.
    Word(String),
}

impl Tok {
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Comma => "','".into(),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Int(i) => format!("number {i}"),
            Tok::Word(w) => format!("'{w}'"),
        }
    }

    pub(super) fn is_word(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

pub(super) fn tokenize(src: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
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
