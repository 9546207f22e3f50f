//! Per-connection permissions, compiled once at CONNECT (and on every grant/revoke) so that a
//! publish or subscribe check is a flag test or one bit test — never a string scan.

use crate::ids::GroupId;

/// Growable bitset indexed by `GroupId`. Sized by the largest id actually set, so a connection
/// with a handful of group-specific roles costs a few words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    pub fn new() -> BitSet {
        BitSet::default()
    }

    #[inline]
    pub fn contains(&self, id: GroupId) -> bool {
        let i = id.0 as usize;
        match self.words.get(i / 64) {
            Some(w) => w & (1u64 << (i % 64)) != 0,
            None => false,
        }
    }

    pub fn insert(&mut self, id: GroupId) {
        let i = id.0 as usize;
        if self.words.len() <= i / 64 {
            self.words.resize(i / 64 + 1, 0);
        }
        self.words[i / 64] |= 1u64 << (i % 64);
    }

    pub fn remove(&mut self, id: GroupId) {
        let i = id.0 as usize;
        if let Some(w) = self.words.get_mut(i / 64) {
            *w &= !(1u64 << (i % 64));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            (0..64u32)
                .filter(move |b| w & (1u64 << b) != 0)
                .map(move |b| GroupId(wi as u32 * 64 + b))
        })
    }
}

/// What a connection may do with groups: two "any group" flags plus two bitsets for
/// group-specific roles (`webpubsub.sendToGroup.<g>`, `webpubsub.joinLeaveGroup.<g>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub send_any: bool,
    pub join_any: bool,
    pub send: BitSet,
    pub join: BitSet,
}

impl Permissions {
    #[inline]
    pub fn can_send(&self, g: GroupId) -> bool {
        self.send_any || self.send.contains(g)
    }

    #[inline]
    pub fn can_join(&self, g: GroupId) -> bool {
        self.join_any || self.join.contains(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_bitset_contains_nothing() {
        let b = BitSet::new();
        assert!(!b.contains(GroupId(0)));
        assert!(!b.contains(GroupId(100_000)));
        assert!(b.is_empty());
    }

    #[test]
    fn bitset_insert_remove_across_words() {
        let mut b = BitSet::new();
        for id in [0u32, 63, 64, 127, 1000] {
            b.insert(GroupId(id));
        }
        for id in [0u32, 63, 64, 127, 1000] {
            assert!(b.contains(GroupId(id)), "{id}");
        }
        for id in [1u32, 62, 65, 128, 999, 1001] {
            assert!(!b.contains(GroupId(id)), "{id}");
        }
        assert_eq!(
            b.iter().map(|g| g.0).collect::<Vec<_>>(),
            vec![0, 63, 64, 127, 1000]
        );
        b.remove(GroupId(64));
        b.remove(GroupId(5000));
        assert!(!b.contains(GroupId(64)));
        assert!(b.contains(GroupId(63)));
    }

    #[test]
    fn any_flags_override_bitsets() {
        let mut p = Permissions::default();
        assert!(!p.can_send(GroupId(3)));
        assert!(!p.can_join(GroupId(3)));
        p.send.insert(GroupId(3));
        assert!(p.can_send(GroupId(3)));
        assert!(!p.can_send(GroupId(4)));
        assert!(!p.can_join(GroupId(3)), "send does not imply join");
        p.join_any = true;
        assert!(p.can_join(GroupId(999)));
        assert!(!p.can_send(GroupId(999)));
    }
}
