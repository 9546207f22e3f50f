use super::*;
use std::collections::HashSet;

/// Values matched for `topic`, sorted so tests compare sets regardless of walk order.
fn matches(t: &TopicTrie<u32>, topic: &str) -> Vec<u32> {
    let mut out = Vec::new();
    t.for_each_match(topic, |v| out.push(v));
    out.sort_unstable();
    out
}

fn trie(entries: &[(&str, u32)]) -> TopicTrie<u32> {
    let mut t = TopicTrie::new();
    for &(f, v) in entries {
        assert!(t.insert(f, v), "{f} {v} inserted twice");
    }
    t
}

#[test]
fn exact_filter_matches_only_the_same_topic() {
    let t = trie(&[("a/b", 1), ("a", 2), ("a/b/c", 3)]);
    assert_eq!(matches(&t, "a/b"), [1]);
    assert_eq!(matches(&t, "a"), [2]);
    assert_eq!(matches(&t, "a/b/c"), [3]);
    assert!(matches(&t, "a/c").is_empty());
    assert!(matches(&t, "b").is_empty());
    assert!(matches(&t, "a/b/c/d").is_empty());
    assert!(matches(&t, "A/b").is_empty(), "levels are case-sensitive");
}

#[test]
fn plus_matches_exactly_one_level() {
    let t = trie(&[("a/+/c", 1), ("+", 2), ("a/+", 3)]);
    assert_eq!(matches(&t, "a/b/c"), [1]);
    assert_eq!(matches(&t, "a/x/c"), [1]);
    assert_eq!(
        matches(&t, "a/c"),
        [3],
        "a/+/c needs a level between a and c"
    );
    assert!(matches(&t, "a/b/x/c").is_empty());
    assert_eq!(matches(&t, "x"), [2]);
    assert_eq!(matches(&t, "a"), [2]);
    assert_eq!(matches(&t, "a/b"), [3]);
}

#[test]
fn hash_matches_any_number_of_levels_below() {
    let t = trie(&[("a/#", 1), ("a/b/#", 2)]);
    assert_eq!(matches(&t, "a/b"), [1, 2]);
    assert_eq!(matches(&t, "a/b/c/d/e"), [1, 2]);
    assert_eq!(matches(&t, "a/x"), [1]);
    assert!(matches(&t, "b/a").is_empty());
}

#[test]
fn hash_matches_its_parent_level() {
    let t = trie(&[("a/#", 1), ("a/+/#", 2)]);
    assert_eq!(matches(&t, "a"), [1]);
    assert_eq!(matches(&t, "a/b"), [1, 2]);
    assert!(matches(&t, "ab").is_empty());
}

#[test]
fn lone_hash_matches_everything_but_dollar_topics() {
    let t = trie(&[("#", 1)]);
    for topic in ["a", "a/b/c", "/", "", "x//y", "a$"] {
        assert_eq!(matches(&t, topic), [1], "{topic:?}");
    }
    for topic in ["$SYS", "$SYS/broker/load", "$", "$/a"] {
        assert!(matches(&t, topic).is_empty(), "{topic:?}");
    }
}

#[test]
fn leading_plus_does_not_match_dollar_topics() {
    let t = trie(&[("+/x", 1), ("+", 2), ("+/#", 3)]);
    assert!(matches(&t, "$sys/x").is_empty());
    assert!(matches(&t, "$sys").is_empty());
    assert_eq!(matches(&t, "sys/x"), [1, 3]);
}

#[test]
fn dollar_filters_match_dollar_topics() {
    let t = trie(&[("$sys/#", 1), ("$sys/+", 2), ("$sys/x", 3), ("a/+/x", 4)]);
    assert_eq!(matches(&t, "$sys/x"), [1, 2, 3]);
    assert_eq!(matches(&t, "$sys"), [1]);
    // Only a wildcard in the first level is barred from `$` topics [MQTT-4.7.2-1].
    assert_eq!(matches(&t, "a/$b/x"), [4]);
}

#[test]
fn empty_levels_are_real_levels() {
    let t = trie(&[
        ("a//b", 1),
        ("/a", 2),
        ("+/a", 3),
        ("a/+/b", 4),
        ("a/", 5),
        ("/", 6),
    ]);
    assert_eq!(matches(&t, "a//b"), [1, 4]);
    assert!(matches(&t, "a/b").is_empty());
    assert_eq!(matches(&t, "/a"), [2, 3]);
    assert!(matches(&t, "a").is_empty());
    assert_eq!(matches(&t, "a/"), [5]);
    assert_eq!(matches(&t, "/"), [6]);
    assert!(matches(&t, "//").is_empty());
}

#[test]
fn duplicate_insert_returns_false_and_keeps_one_entry() {
    let mut t = TopicTrie::new();
    assert!(t.insert("a/+", 7u32));
    assert!(!t.insert("a/+", 7));
    assert_eq!(t.len(), 1);
    assert_eq!(matches(&t, "a/b"), [7]);
}

#[test]
fn several_values_share_one_filter() {
    let mut t = trie(&[("a/#", 1), ("a/#", 2), ("a/#", 3), ("a/b", 1), ("a/b", 4)]);
    assert_eq!(t.len(), 5);
    assert_eq!(matches(&t, "a/b"), [1, 1, 2, 3, 4]);
    assert!(t.remove("a/#", 2));
    assert_eq!(matches(&t, "a/b"), [1, 1, 3, 4]);
    assert_eq!(matches(&t, "a/c"), [1, 3]);
}

#[test]
fn remove_reports_absent_entries() {
    let mut t = trie(&[("a/b", 1)]);
    assert!(!t.remove("a/b", 2));
    assert!(!t.remove("a/c", 1));
    assert!(!t.remove("a/+", 1));
    assert!(!t.remove("a/#", 1));
    assert!(!t.remove("a", 1));
    assert!(!t.remove("a/b/c", 1));
    assert_eq!(t.len(), 1);
    assert!(t.remove("a/b", 1));
    assert!(!t.remove("a/b", 1));
    assert!(t.is_empty());
}

#[test]
fn remove_prunes_empty_nodes_and_reinsert_works() {
    let filters = ["a/b/c", "a/+/c", "a/#", "#", "+", "x//y", "$s/+/#", "a/b"];
    let mut t = TopicTrie::new();
    for (i, f) in filters.iter().enumerate() {
        assert!(t.insert(f, i as u32));
    }
    assert_eq!(t.len(), filters.len());
    for (i, f) in filters.iter().enumerate() {
        assert!(t.remove(f, i as u32));
    }
    assert!(t.is_empty());
    assert_eq!(t.len(), 0);
    assert!(t.root.is_empty(), "nodes left behind: {:?}", t.root);
    assert!(matches(&t, "a/b/c").is_empty());
    assert!(t.insert("a/b/c", 9));
    assert_eq!(matches(&t, "a/b/c"), [9]);
    assert_eq!(t.len(), 1);
}

#[test]
fn remove_keeps_siblings_and_descendants() {
    let mut t = trie(&[("a/b", 1), ("a/b/c", 2), ("a/+/c", 3)]);
    assert!(t.remove("a/b", 1));
    assert_eq!(matches(&t, "a/b/c"), [2, 3]);
    assert!(t.remove("a/b/c", 2));
    assert_eq!(matches(&t, "a/b/c"), [3]);
    assert!(t.remove("a/+/c", 3));
    assert!(t.root.is_empty());
}

#[test]
fn many_literal_children_switch_to_a_map_and_back() {
    let mut t = TopicTrie::new();
    let n = (FEW_MAX * 4) as u32;
    for i in 0..n {
        assert!(t.insert(&format!("d/{i}/t"), i));
    }
    for i in 0..n {
        assert_eq!(matches(&t, &format!("d/{i}/t")), [i]);
    }
    let d = t
        .root
        .literals
        .get("d")
        .map(|d| matches!(d.literals, Literals::Many(_)));
    assert_eq!(d, Some(true));
    for i in 1..n {
        assert!(t.remove(&format!("d/{i}/t"), i));
    }
    let d = t
        .root
        .literals
        .get("d")
        .map(|d| matches!(d.literals, Literals::Few(_)));
    assert_eq!(d, Some(true));
    assert_eq!(matches(&t, "d/0/t"), [0]);
    assert!(t.remove("d/0/t", 0));
    assert!(t.root.is_empty());
}

#[test]
fn misplaced_hash_is_a_literal_that_matches_nothing() {
    let mut t = trie(&[("a/#/b", 1)]);
    assert!(matches(&t, "a/x/b").is_empty());
    assert!(matches(&t, "a").is_empty());
    assert!(t.remove("a/#/b", 1));
    assert!(t.root.is_empty());
}

#[test]
fn deep_topics_do_not_overflow_the_stack() {
    // 1 KiB of empty levels (the broker's topic cap): every level has both a literal and a
    // `+` child, the worst case for the walk's recursion.
    let topic = "/".repeat(1023);
    let mut t = TopicTrie::new();
    assert!(t.insert(&topic, 1u32));
    assert!(t.insert(&"+/".repeat(511), 2));
    assert!(t.insert("#", 3));
    assert_eq!(matches(&t, &topic), [1, 3]);
}

/// The MQTT matching rules written as plainly as possible, for the cross-check below.
fn naive_matches(filter: &str, topic: &str) -> bool {
    let first = filter.split('/').next();
    if topic.starts_with('$') && matches!(first, Some("+" | "#")) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            // The generator only puts `#` last; it matches the rest, parent level included.
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// splitmix64: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Small alphabets so filters and topics collide often; `""` and `$s` exercise empty levels
/// and the `$` rule.
const LEVELS: [&str; 5] = ["a", "b", "", "$s", "c"];

fn random_topic(r: &mut Rng) -> String {
    let n = 1 + r.below(4);
    let levels: Vec<&str> = (0..n).map(|_| LEVELS[r.below(LEVELS.len())]).collect();
    levels.join("/")
}

fn random_filter(r: &mut Rng) -> String {
    let n = 1 + r.below(4);
    let mut levels: Vec<&str> = (0..n)
        .map(|_| match r.below(7) {
            0 => "+",
            _ => LEVELS[r.below(LEVELS.len())],
        })
        .collect();
    if r.below(4) == 0 {
        levels.push("#");
    }
    levels.join("/")
}

fn check_against_naive(t: &TopicTrie<u32>, live: &HashSet<(String, u32)>, topics: &[String]) {
    for topic in topics {
        let mut want: Vec<u32> = live
            .iter()
            .filter(|(f, _)| naive_matches(f, topic))
            .map(|&(_, v)| v)
            .collect();
        want.sort_unstable();
        assert_eq!(matches(t, topic), want, "topic {topic:?}");
    }
}

#[test]
fn random_filters_match_like_the_naive_matcher() {
    let mut r = Rng(0x5eed_0f70_91c5);
    let mut t = TopicTrie::new();
    let mut live = HashSet::new();
    let topics: Vec<String> = (0..2000).map(|_| random_topic(&mut r)).collect();
    let filters: Vec<String> = (0..3000).map(|_| random_filter(&mut r)).collect();
    for round in 0..4 {
        // Insert a batch (values drawn from a small range so filters share values and some
        // pairs repeat), check, then remove a random part of what is live and check again.
        for f in filters.iter().skip(round * 500).take(1000) {
            let v = r.below(16) as u32;
            assert_eq!(
                t.insert(f, v),
                live.insert((f.clone(), v)),
                "insert {f:?} {v}"
            );
        }
        assert_eq!(t.len(), live.len());
        check_against_naive(&t, &live, &topics);
        let mut gone: Vec<(String, u32)> =
            live.iter().filter(|_| r.below(2) == 0).cloned().collect();
        gone.sort();
        for (f, v) in &gone {
            assert!(t.remove(f, *v), "remove {f:?} {v}");
            live.remove(&(f.clone(), *v));
            assert!(!t.remove(f, *v), "second remove {f:?} {v}");
        }
        // Removing pairs that were never inserted must change nothing.
        for f in filters.iter().take(50) {
            let v = 100 + r.below(4) as u32;
            assert!(!t.remove(f, v));
        }
        assert_eq!(t.len(), live.len());
        check_against_naive(&t, &live, &topics);
    }
    let all: Vec<(String, u32)> = live.iter().cloned().collect();
    for (f, v) in &all {
        assert!(t.remove(f, *v));
    }
    assert!(t.is_empty());
    assert!(
        t.root.is_empty(),
        "nodes left behind after removing everything"
    );
}

#[cfg(target_pointer_width = "64")]
#[test]
fn a_node_stays_small() {
    // Every filter level of every subscription costs one node; a node grows past 80 bytes
    // only if someone inlines the map again or adds a field.
    assert!(std::mem::size_of::<Node<u32>>() <= 80);
}

#[test]
fn filter_matches_agrees_with_the_trie() {
    let cases = [
        ("a/b", "a/b", true),
        ("a/+", "a/b", true),
        ("a/+", "a/b/c", false),
        ("a/#", "a", true),
        ("a/#", "a/b/c", true),
        ("#", "$sys/x", false),
        ("+/x", "$sys/x", false),
        ("$sys/#", "$sys/x", true),
        ("a//b", "a//b", true),
        ("+/+", "/a", true),
        ("a/b", "a", false),
    ];
    for (filter, topic, want) in cases {
        assert_eq!(
            super::filter_matches(filter, topic),
            want,
            "{filter} vs {topic}"
        );
        let mut trie = TopicTrie::new();
        trie.insert(filter, 1u32);
        let mut hit = false;
        trie.for_each_match(topic, |_| hit = true);
        assert_eq!(hit, want, "trie: {filter} vs {topic}");
    }
}
