//! [`BoundedMap`]: a map that never holds more than its capacity, with O(1)
//! (amortized) insert, lookup and eviction of the oldest insertion.
//!
//! Caches and per-client counters use it so that a flood of distinct keys
//! (random API keys, random source addresses) costs a fixed amount of memory
//! and never a sweep of the whole map under a shared lock.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A map of at most `capacity` entries; inserting a new key into a full map
/// evicts the entry inserted longest ago (first in, first out).
#[derive(Debug)]
pub(crate) struct BoundedMap<K, V> {
    capacity: usize,
    entries: HashMap<K, (V, u64)>,
    /// Keys in insertion order with the insertion's sequence number; a key
    /// inserted again has a stale element here, skipped on eviction.
    order: VecDeque<(K, u64)>,
    next: u64,
}

impl<K: Eq + Hash + Clone, V> BoundedMap<K, V> {
    /// An empty map holding at most `capacity` entries (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        BoundedMap {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
        }
    }

    /// How many entries it holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The value of `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// The value of `key`, to change in place (its place in the eviction order stays).
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key).map(|(value, _)| value)
    }

    /// Inserts or replaces `key` (which becomes the newest), evicting the
    /// oldest entry when the map is full.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        let sequence = self.next;
        self.next += 1;
        let replaced = self.entries.insert(key.clone(), (value, sequence)).is_some();
        self.order.push_back((key, sequence));
        if !replaced {
            while self.entries.len() > self.capacity {
                self.evict_oldest();
            }
        }
        // Stale order elements (keys inserted again, or removed) are at most
        // as many as the live ones: compacting then is O(1) amortized.
        if self.order.len() > 2 * self.capacity {
            let entries = &self.entries;
            self.order
                .retain(|(key, sequence)| entries.get(key).is_some_and(|(_, at)| at == sequence));
        }
    }

    /// Removes `key`.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.remove(key).map(|(value, _)| value)
    }

    /// Removes every entry for which `keep` is false (a full pass: for rare events such as a revocation).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.entries.retain(|key, (value, _)| keep(key, value));
    }

    /// Removes everything.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    fn evict_oldest(&mut self) {
        while let Some((key, sequence)) = self.order.pop_front() {
            if self.entries.get(&key).is_some_and(|(_, at)| *at == sequence) {
                self.entries.remove(&key);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_exceeds_its_capacity_and_evicts_the_oldest() {
        let mut map = BoundedMap::new(3);
        for n in 0..1000 {
            map.insert(n, n * 2);
            assert!(map.len() <= 3);
            assert!(map.order.len() <= 6);
        }
        assert_eq!(map.get(&999), Some(&1998));
        assert_eq!(map.get(&996), None);
        // Inserting a key again makes it the newest.
        map.insert(997, 0);
        map.insert(1000, 0);
        assert_eq!(map.get(&997), Some(&0));
        assert_eq!(map.get(&998), None);
        assert_eq!(map.remove(&997), Some(0));
        map.retain(|key, _| *key != 999);
        assert_eq!(map.len(), 1);
        for n in 0..10 {
            map.insert(1000, n);
        }
        assert_eq!(map.len(), 1);
        assert!(map.order.len() <= 6);
    }
}
