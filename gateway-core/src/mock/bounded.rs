//! A map that forgets its oldest entries past a limit, sized once so it never rehashes.
//!
//! The sandbox server runs the mock for days: without a limit its intents,
//! idempotency records and event log would grow forever, and growing a large
//! map stalls every call behind the mock's lock while it rehashes.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

#[derive(Debug)]
pub(super) struct BoundedMap<K, V> {
    map: HashMap<K, V>,
    /// Keys in insertion order, oldest first (only kept when there is a limit).
    order: VecDeque<K>,
    limit: Option<usize>,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    /// A map keeping at most `limit` entries (`None`: all of them).
    pub(super) fn new(limit: Option<usize>) -> Self {
        let capacity = limit.unwrap_or(0);
        BoundedMap {
            map: HashMap::with_capacity(capacity.saturating_add(1)),
            order: VecDeque::with_capacity(capacity.saturating_add(1)),
            limit,
        }
    }

    pub(super) fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.map.get(key)
    }

    /// Every value, in no particular order.
    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values()
    }

    /// Inserts or replaces; a new key past the limit evicts the oldest.
    pub(super) fn insert(&mut self, key: K, value: V) {
        let Some(limit) = self.limit else {
            self.map.insert(key, value);
            return;
        };
        if !self.map.contains_key(&key) {
            if self.order.len() >= limit {
                if let Some(oldest) = self.order.pop_front() {
                    self.map.remove(&oldest);
                }
            }
            self.order.push_back(key.clone());
        }
        self.map.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_entries_up_to_the_limit() {
        let mut map = BoundedMap::new(Some(2));
        map.insert("a", 1);
        map.insert("b", 2);
        map.insert("a", 10);
        assert_eq!(map.get("a"), Some(&10), "replacing does not count as new");
        map.insert("c", 3);
        assert_eq!(
            (map.get("a"), map.get("b"), map.get("c")),
            (None, Some(&2), Some(&3))
        );
        let mut unbounded = BoundedMap::new(None);
        for i in 0..1000 {
            unbounded.insert(i, i);
        }
        assert_eq!(unbounded.get(&0), Some(&0));
    }
}
