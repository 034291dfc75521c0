//! Deterministic, Stripe-shaped ids from a seeded generator.

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// SplitMix64: a tiny, well-known seeded generator; the same seed gives the same ids.
#[derive(Debug, Clone)]
pub(super) struct IdGenerator {
    state: u64,
}

impl IdGenerator {
    pub(super) fn new(seed: u64) -> Self {
        IdGenerator { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `{prefix}_` followed by 24 base-62 characters, like Stripe's ids.
    pub(super) fn next_id(&mut self, prefix: &str) -> String {
        let mut id = String::with_capacity(prefix.len() + 25);
        id.push_str(prefix);
        id.push('_');
        for _ in 0..24 {
            id.push(ALPHABET[(self.next_u64() % 62) as usize] as char);
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_ids_and_no_repeats() {
        let mut a = IdGenerator::new(7);
        let mut b = IdGenerator::new(7);
        let ids: Vec<_> = (0..1000).map(|_| a.next_id("pi")).collect();
        assert_eq!(ids, (0..1000).map(|_| b.next_id("pi")).collect::<Vec<_>>());
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        assert!(ids[0].starts_with("pi_") && ids[0].len() == 27);
        assert_ne!(IdGenerator::new(8).next_id("pi"), ids[0]);
    }
}
