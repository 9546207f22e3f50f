//! A topic-filter trie for Event Grid mode wildcard routing: maps MQTT topic filters (exact,
//! `+`, `#`) to small `Copy` values (the broker stores group ids) and finds every value whose
//! filter matches a PUBLISH topic name.
//!
//! It owns only the index. It does not validate filters (callers pass filters already checked
//! against the MQTT rules), does not deduplicate values across filters and is not shared between
//! threads: each broker worker keeps its own trie per namespace for the sessions it holds.
//! Matching is allocation-free: it walks the topic's levels as sub-slices of the topic string.

use std::collections::HashMap;

/// MQTT topic-filter index: `(filter, value)` entries, matched against topic names.
///
/// Owned by one worker thread; nothing in it is shared or locked.
#[derive(Debug)]
pub struct TopicTrie<V> {
    root: Node<V>,
    len: usize,
}

impl<V: Copy + Eq> TopicTrie<V> {
    pub fn new() -> Self {
        TopicTrie {
            root: Node::default(),
            len: 0,
        }
    }

    /// Adds `v` under `filter` (an already validated MQTT topic filter: levels split by `/`,
    /// `+` a whole level, `#` the last level only). Returns false if `(filter, v)` was present.
    ///
    /// A `#` that is not the last level is stored as a literal level, which no valid topic name
    /// contains, so a malformed filter matches nothing instead of panicking.
    pub fn insert(&mut self, filter: &str, v: V) -> bool {
        let mut node = &mut self.root;
        let mut rest = filter;
        let slot = loop {
            let (level, next) = split_level(rest);
            if level == "#" && next.is_none() {
                // `#` is always last, so its values live on the parent rather than in a child
                // node: matching then never descends for it [MQTT-4.7.1-2].
                break &mut node.hash_values;
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Box::default)
            } else {
                node.literals.get_or_insert(level)
            };
            match next {
                Some(n) => rest = n,
                None => break &mut node.values,
            }
        };
        if slot.contains(&v) {
            return false;
        }
        slot.push(v);
        self.len += 1;
        true
    }

    /// Removes `(filter, v)`; returns whether it was present. Nodes left empty are removed and
    /// oversized value lists and child maps shrink, so memory returns when subscriptions go.
    pub fn remove(&mut self, filter: &str, v: V) -> bool {
        let removed = remove_from(&mut self.root, filter, v);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Calls `f` once for every `(filter, value)` entry whose filter matches the topic name
    /// `topic` (which holds no wildcards). A value stored under several matching filters (say
    /// `a/+` and `a/#`) is reported once per filter; the caller decides how to merge them.
    ///
    /// MQTT rules: `+` matches exactly one level, including an empty one; `#` matches its
    /// parent level and any number of levels below (`a/#` matches `a`, `a/b`, `a/b/c`;
    /// MQTT 5 §4.7.1.2); empty levels are real levels (`a//b`, `/a`); and a topic starting with
    /// `$` is not matched by a filter whose first level is `+` or `#` [MQTT-4.7.2-1].
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(V)) {
        let root = &self.root;
        let system = topic.starts_with('$');
        if !system {
            root.hash_values.iter().for_each(|&v| f(v));
        }
        // A topic has at least one level (`""` is one empty level), so the root itself never
        // ends a match and its `values` stay empty.
        let (level, next) = split_level(topic);
        if let Some(child) = root.literals.get(level) {
            walk(child, next, &mut f);
        }
        if !system {
            if let Some(plus) = root.plus.as_deref() {
                walk(plus, next, &mut f);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of `(filter, value)` entries.
    pub fn len(&self) -> usize {
        self.len
    }
}

impl<V: Copy + Eq> Default for TopicTrie<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// One filter level. `+` and `#` are held apart from the literal children so matching a level
/// costs one literal lookup plus two field reads, never a hash of a wildcard.
#[derive(Debug)]
struct Node<V> {
    literals: Literals<V>,
    /// The child for a `+` level.
    plus: Option<Box<Node<V>>>,
    /// Values of the filter `<this node's path>/#`.
    hash_values: Vec<V>,
    /// Values of the filter that ends exactly at this node. Usually one: a group id.
    values: Vec<V>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            literals: Literals::Few(Vec::new()),
            plus: None,
            hash_values: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.literals.is_empty()
            && self.plus.is_none()
            && self.hash_values.is_empty()
            && self.values.is_empty()
    }
}

/// Literal children of a node. Most nodes have a handful (`devices/{id}/telemetry` has one
/// under each id), where a linear scan of a short `Vec` beats hashing the level; a node with
/// many children (`devices/` with one per device) switches to a `HashMap`. The map is boxed so
/// every node pays for one `Vec` (24 bytes), not for an inline map (48). It keeps std's
/// randomly keyed SipHash because clients choose the filter strings: a fixed fast hash would
/// let one client flood a bucket.
#[derive(Debug)]
enum Literals<V> {
    Few(Vec<(Box<str>, Node<V>)>),
    // Boxed on purpose (see above): the extra allocation exists only on the rare wide node.
    #[allow(clippy::box_collection)]
    Many(Box<HashMap<Box<str>, Node<V>>>),
}

/// Children a `Few` holds before it becomes a `Many`. Measured on the dev box (release, a
/// scan of `Vec<(Box<str>, _)>` against `HashMap::get` for 1–32 keys): a SipHash lookup of a
/// short level costs 13–16 ns whatever the size; scanning 8 children costs 5–7 ns, 16
/// children 7–13 ns, 24 children 10–18 ns (the dearer figure for same-length ids such as
/// `dev-00042`, where every compare reaches `memcmp`).
const FEW_MAX: usize = 16;
/// A `Many` that shrinks to this many children goes back to `Few` (below `FEW_MAX`, so a
/// node hovering around the limit does not convert back and forth on every change).
const FEW_AGAIN: usize = FEW_MAX / 2;

impl<V> Literals<V> {
    fn is_empty(&self) -> bool {
        match self {
            Literals::Few(v) => v.is_empty(),
            Literals::Many(m) => m.is_empty(),
        }
    }

    fn get(&self, level: &str) -> Option<&Node<V>> {
        match self {
            Literals::Few(v) => v.iter().find(|(k, _)| &**k == level).map(|(_, n)| n),
            Literals::Many(m) => m.get(level),
        }
    }

    fn get_mut(&mut self, level: &str) -> Option<&mut Node<V>> {
        match self {
            Literals::Few(v) => v.iter_mut().find(|(k, _)| &**k == level).map(|(_, n)| n),
            Literals::Many(m) => m.get_mut(level),
        }
    }

    fn get_or_insert(&mut self, level: &str) -> &mut Node<V> {
        if let Literals::Few(v) = self {
            if v.len() >= FEW_MAX && !v.iter().any(|(k, _)| &**k == level) {
                let map = v.drain(..).collect();
                *self = Literals::Many(Box::new(map));
            }
        }
        match self {
            Literals::Few(v) => {
                let i = match v.iter().position(|(k, _)| &**k == level) {
                    Some(i) => i,
                    None => {
                        v.push((level.into(), Node::default()));
                        v.len() - 1
                    }
                };
                &mut v[i].1
            }
            Literals::Many(m) => m.entry(level.into()).or_default(),
        }
    }

    fn remove(&mut self, level: &str) {
        match self {
            Literals::Few(v) => {
                if let Some(i) = v.iter().position(|(k, _)| &**k == level) {
                    v.swap_remove(i);
                    shrink_if_sparse(v);
                }
            }
            Literals::Many(m) => {
                m.remove(level);
                if m.len() <= FEW_AGAIN {
                    let few = m.drain().collect();
                    *self = Literals::Few(few);
                } else if m.len() * 4 < m.capacity() {
                    m.shrink_to_fit();
                }
            }
        }
    }
}

/// Splits off the first level of a topic or filter: `("a", Some("b/c"))` for `a/b/c`,
/// `("", Some(""))` for `/`, `("a", None)` for `a`.
#[inline]
fn split_level(s: &str) -> (&str, Option<&str>) {
    match s.split_once('/') {
        Some((level, rest)) => (level, Some(rest)),
        None => (s, None),
    }
}

/// Reports the matches of the levels `rest` below `node` (`None`: the topic ended at `node`).
///
/// It loops down one branch and recurses only where a level has both a literal and a `+`
/// child, so the stack depth is at most the topic's level count. The broker caps topics at
/// 1 KiB, i.e. at most 513 levels of a few dozen bytes of frame each: far inside a worker
/// thread's stack.
fn walk<V: Copy, F: FnMut(V)>(mut node: &Node<V>, mut rest: Option<&str>, f: &mut F) {
    loop {
        node.hash_values.iter().for_each(|&v| f(v));
        let Some(r) = rest else {
            node.values.iter().for_each(|&v| f(v));
            return;
        };
        let (level, next) = split_level(r);
        node = match (node.literals.get(level), node.plus.as_deref()) {
            (Some(literal), Some(plus)) => {
                walk(literal, next, f);
                plus
            }
            (Some(only), None) | (None, Some(only)) => only,
            (None, None) => return,
        };
        rest = next;
    }
}

/// Removes `v` from the filter `rest` below `node`, pruning children left empty. Recursion
/// depth is the filter's level count (bounded like `walk`'s).
fn remove_from<V: Copy + Eq>(node: &mut Node<V>, rest: &str, v: V) -> bool {
    let (level, next) = split_level(rest);
    if level == "#" && next.is_none() {
        return remove_value(&mut node.hash_values, v);
    }
    let child = if level == "+" {
        node.plus.as_deref_mut()
    } else {
        node.literals.get_mut(level)
    };
    let Some(child) = child else {
        return false;
    };
    let removed = match next {
        Some(n) => remove_from(child, n, v),
        None => remove_value(&mut child.values, v),
    };
    if removed && child.is_empty() {
        if level == "+" {
            node.plus = None;
        } else {
            node.literals.remove(level);
        }
    }
    removed
}

fn remove_value<V: Copy + Eq>(values: &mut Vec<V>, v: V) -> bool {
    let Some(i) = values.iter().position(|&x| x == v) else {
        return false;
    };
    values.swap_remove(i);
    shrink_if_sparse(values);
    true
}

/// Gives back a `Vec`'s buffer once it is under a quarter used (a filter that once had many
/// subscribers; an emptied list frees its buffer). A quarter, not a half, so a list hovering
/// around one size does not reallocate on every insert/remove pair.
fn shrink_if_sparse<T>(v: &mut Vec<T>) {
    if v.len() * 4 < v.capacity() {
        v.shrink_to_fit();
    }
}

/// Does the (valid) topic filter `filter` match the topic name `topic`? The single-pair form of
/// the trie's rule, for cold paths that test a few filters (retained messages on SUBSCRIBE):
/// `+` is one level, `#` the rest including none, and a leading wildcard never matches a
/// `$`-topic (MQTT 4.7.2).
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    let mut levels = topic.split('/');
    for (i, f) in filter.split('/').enumerate() {
        let first_dollar = i == 0 && topic.starts_with('$');
        match f {
            "#" => return !first_dollar,
            "+" => {
                if first_dollar || levels.next().is_none() {
                    return false;
                }
            }
            lit => {
                if levels.next() != Some(lit) {
                    return false;
                }
            }
        }
    }
    levels.next().is_none()
}

#[cfg(test)]
mod tests;
