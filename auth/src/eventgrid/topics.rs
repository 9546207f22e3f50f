//! Topics, filters and topic templates of an Event Grid namespace (`eventgrid-mqtt.md` §6):
//! validation of PUBLISH topic names and SUBSCRIBE filters against the namespace limits, parsing
//! of topic-space templates with their `${client.…}` variables, resolving a template for one
//! client, and the two decisions made with a resolved template: does it match a topic (PUBLISH)
//! and does it cover a filter (SUBSCRIBE: every topic the filter can match is matched by it).
//! Matching never allocates; resolving allocates once per client per template.

use std::fmt;

use super::attrs::{AttrValue, Attributes};

/// Topic names and filters: at most 256 bytes [doc].
pub const MAX_TOPIC_BYTES: usize = 256;
/// … and at most 15 levels [doc, since May 2025].
pub const MAX_TOPIC_LEVELS: usize = 15;

/// Why a topic name or filter was refused; `reason` is the code hubmq answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// A PUBLISH topic name is not valid: PUBACK/DISCONNECT 0x90 (Topic Name invalid).
    InvalidName(&'static str),
    /// A SUBSCRIBE filter is not valid: SUBACK 0x8F (Topic Filter invalid).
    InvalidFilter(&'static str),
    /// `$share/…`: shared subscriptions are not supported, SUBACK 0x9E [code unconfirmed].
    SharedSubscription,
}

impl TopicError {
    /// The MQTT v5 reason code for this refusal (v3.1.1 callers close / answer 0x80 instead).
    pub fn reason(self) -> u8 {
        match self {
            TopicError::InvalidName(_) => 0x90,
            TopicError::InvalidFilter(_) => 0x8F,
            TopicError::SharedSubscription => 0x9E,
        }
    }
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::InvalidName(why) => write!(f, "invalid topic name: {why}"),
            TopicError::InvalidFilter(why) => write!(f, "invalid topic filter: {why}"),
            TopicError::SharedSubscription => f.write_str("shared subscriptions are not supported"),
        }
    }
}

impl std::error::Error for TopicError {}

/// The checks names and filters share: length, level count, no U+0000 (MQTT §4.7.3).
fn check_common(text: &str) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("empty");
    }
    if text.len() > MAX_TOPIC_BYTES {
        return Err("longer than 256 bytes");
    }
    if text.contains('\0') {
        return Err("contains U+0000");
    }
    if text.split('/').count() > MAX_TOPIC_LEVELS {
        return Err("more than 15 levels");
    }
    Ok(())
}

/// Validates a PUBLISH topic name.
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    check_common(topic).map_err(TopicError::InvalidName)?;
    if topic.contains(['+', '#']) {
        return Err(TopicError::InvalidName(
            "wildcards are not allowed in a topic name",
        ));
    }
    Ok(())
}

/// Validates a SUBSCRIBE filter (wildcards allowed; `+` and `#` fill whole levels and `#` is
/// last). A `$share/…` filter is refused as a shared subscription.
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    if filter.starts_with("$share/") {
        return Err(TopicError::SharedSubscription);
    }
    check_common(filter).map_err(TopicError::InvalidFilter)?;
    check_wildcards(filter).map_err(TopicError::InvalidFilter)
}

fn check_wildcards(filter: &str) -> Result<(), &'static str> {
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        match level {
            "+" => {}
            "#" if levels.peek().is_none() => {}
            "#" => return Err("'#' must be the last level"),
            _ if level.contains(['+', '#']) => return Err("a wildcard must fill a whole level"),
            _ => {}
        }
    }
    Ok(())
}

/// Why a template did not parse (config time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

/// A parsed topic template: an MQTT filter whose levels may hold variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    levels: Vec<TemplateLevel>,
    has_variables: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplateLevel {
    Plus,
    Hash,
    /// Literal text and variables making up one level (just one `Text` for a plain level).
    Parts(Vec<Part>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    AuthenticationName,
    Attribute(String),
}

const VAR_AUTH_NAME: &str = "client.authenticationName";
const VAR_ATTRIBUTE_PREFIX: &str = "client.attributes.";

impl Template {
    /// Parses a template. Variables are `${client.authenticationName}` and
    /// `${client.attributes.KEY}` (spelled exactly; KEY from `[A-Za-z0-9_]`); a variable fills a
    /// whole level or part of one, never more [doc]. A `$` not followed by `{` is plain text.
    /// The template text itself obeys the topic filter rules (≤ 256 bytes, ≤ 15 levels, `+`/`#`
    /// whole levels, `#` last).
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let bad = |why: &str| Err(TemplateError(why.to_owned()));
        if let Err(why) = check_common(text) {
            return bad(why);
        }
        if let Err(why) = check_wildcards(text) {
            return bad(why);
        }
        let mut levels = Vec::new();
        let mut has_variables = false;
        for level in text.split('/') {
            levels.push(match level {
                "+" => TemplateLevel::Plus,
                "#" => TemplateLevel::Hash,
                _ => {
                    let parts = parse_parts(level)?;
                    has_variables |= parts.iter().any(|p| !matches!(p, Part::Text(_)));
                    TemplateLevel::Parts(parts)
                }
            });
        }
        Ok(Template {
            text: text.to_owned(),
            levels,
            has_variables,
        })
    }

    /// The template as configured.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// True when the template holds a variable, so it must be resolved per client.
    pub fn has_variables(&self) -> bool {
        self.has_variables
    }

    /// The template with the client's values substituted. `None` — the template matches nothing
    /// for this client — when a variable's attribute is missing or is an array, or when a value
    /// is empty or holds `/`, `+`, `#` or U+0000 [unconfirmed: §6 names missing, arrays and
    /// `/ + #`; empty and U+0000 are hubmq's additions, since either would let a value change
    /// the shape of the filter]. Integers are substituted in decimal.
    pub fn resolve(&self, authentication_name: &str, attributes: &Attributes) -> Option<Filter> {
        let mut levels = Vec::with_capacity(self.levels.len());
        for level in &self.levels {
            levels.push(match level {
                TemplateLevel::Plus => FilterLevel::Plus,
                TemplateLevel::Hash => FilterLevel::Hash,
                TemplateLevel::Parts(parts) => {
                    let mut out = String::new();
                    for part in parts {
                        match part {
                            Part::Text(text) => out.push_str(text),
                            Part::AuthenticationName => {
                                push_value(&mut out, authentication_name)?;
                            }
                            Part::Attribute(key) => match attributes.get(key)? {
                                AttrValue::Str(value) => push_value(&mut out, value)?,
                                AttrValue::Int(n) => out.push_str(&n.to_string()),
                                AttrValue::StrArray(_) => return None,
                            },
                        }
                    }
                    FilterLevel::Literal(out.into_boxed_str())
                }
            });
        }
        Some(Filter { levels })
    }
}

fn push_value(out: &mut String, value: &str) -> Option<()> {
    if value.is_empty() || value.contains(['/', '+', '#', '\0']) {
        return None;
    }
    out.push_str(value);
    Some(())
}

/// Splits one template level into text and variables.
fn parse_parts(level: &str) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = level;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(TemplateError(format!(
                "variable in level {level:?} is not closed with '}}'"
            )));
        };
        let name = &after[..end];
        parts.push(if name == VAR_AUTH_NAME {
            Part::AuthenticationName
        } else if let Some(key) = name
            .strip_prefix(VAR_ATTRIBUTE_PREFIX)
            .filter(|k| super::attrs::is_attribute_key(k))
        {
            Part::Attribute(key.to_owned())
        } else {
            return Err(TemplateError(format!(
                "unknown variable ${{{name}}}: use ${{client.authenticationName}} or ${{client.attributes.NAME}}"
            )));
        });
        rest = &after[end + 1..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(parts)
}

/// A template resolved for one client (or one without variables): an MQTT filter, stored as
/// levels so matching is a walk over the topic without allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    levels: Vec<FilterLevel>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FilterLevel {
    Literal(Box<str>),
    Plus,
    Hash,
}

impl Filter {
    /// True when `topic` (a valid topic name) matches this filter under MQTT rules: `+` is one
    /// level (possibly empty), `#` the remaining levels including none (`a/#` matches `a`), and
    /// a leading wildcard never matches a topic starting with `$` (MQTT §4.7.2).
    pub fn matches(&self, topic: &str) -> bool {
        let mut topic_levels = topic.split('/');
        for (i, level) in self.levels.iter().enumerate() {
            match level {
                FilterLevel::Hash => return !(i == 0 && topic.starts_with('$')),
                FilterLevel::Plus => match topic_levels.next() {
                    Some(t) if i == 0 && t.starts_with('$') => return false,
                    Some(_) => {}
                    None => return false,
                },
                FilterLevel::Literal(lit) => {
                    if topic_levels.next() != Some(&**lit) {
                        return false;
                    }
                }
            }
        }
        topic_levels.next().is_none()
    }

    /// True when every topic `filter` (a valid filter) can match is also matched by this one —
    /// the SUBSCRIBE rule of §6, checked level by level: a literal is covered by the same literal
    /// or `+`; `+` only by `+`; `#` only by `#` at the same or an earlier level; and this filter's
    /// trailing `#` covers any remaining levels, including none.
    pub fn covers(&self, filter: &str) -> bool {
        let mut i = 0;
        for f in filter.split('/') {
            match self.levels.get(i) {
                None => return false,
                Some(FilterLevel::Hash) => {
                    // A `$…` first level names topics a leading `#` never matches.
                    return !(i == 0 && f.starts_with('$'));
                }
                Some(FilterLevel::Plus) => {
                    if f == "#" || (i == 0 && f.starts_with('$')) {
                        return false;
                    }
                }
                Some(FilterLevel::Literal(lit)) => {
                    if f != &**lit {
                        return false;
                    }
                }
            }
            i += 1;
        }
        matches!(self.levels.get(i), None | Some(FilterLevel::Hash))
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, level) in self.levels.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            match level {
                FilterLevel::Literal(text) => f.write_str(text)?,
                FilterLevel::Plus => f.write_str("+")?,
                FilterLevel::Hash => f.write_str("#")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
