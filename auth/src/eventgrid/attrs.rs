//! Client attributes, the values that client-group queries (`query`) test and topic templates
//! (`topics`) substitute. They live apart from the rest of the namespace model so that `query`
//! and `topics` need not import `model`, which imports them to check its queries and templates;
//! `model` re-exports them, so `model::AttrValue` / `model::Attributes` remain the paths to use.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A client attribute value: string, integer or array of strings [doc].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    Int(i64),
    Str(String),
    StrArray(Vec<String>),
}

impl AttrValue {
    /// Bytes counted against `model::MAX_CLIENT_ATTRIBUTE_BYTES`.
    pub(super) fn size(&self) -> usize {
        match self {
            AttrValue::Int(n) => n.to_string().len(),
            AttrValue::Str(s) => s.len(),
            AttrValue::StrArray(items) => items.iter().map(String::len).sum(),
        }
    }
}

/// Client attributes by name. A `BTreeMap` so iteration (and printing) is deterministic.
pub type Attributes = BTreeMap<String, AttrValue>;

/// Attribute keys are `[A-Za-z0-9_]+` [doc].
pub(crate) fn is_attribute_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
