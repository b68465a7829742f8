//! SplitMix64, the small seeded generator behind every split and mixture, so results depend
//! only on the seed and never on a library's version.

/// Steele, Lea and Flood's SplitMix64 (the seeding generator of `java.util.SplittableRandom`).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The generator as it will be after `draws` more [`SplitMix64::next_u64`] calls: the state
    /// is a counter, so a long stream can be cut into pieces drawn independently (in parallel)
    /// that together equal drawing it in order.
    pub fn jumped(&self, draws: u64) -> SplitMix64 {
        SplitMix64 { state: self.state.wrapping_add(draws.wrapping_mul(0x9E37_79B9_7F4A_7C15)) }
    }

    /// The state before the next draw (which mixes `state + γ`): what a caller drawing the
    /// stream elsewhere, e.g. vectorised, starts from.
    pub fn state(&self) -> u64 {
        self.state
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..bound` without modulo bias (Lemire's multiply-and-reject); 0 when `bound` is 0.
    pub fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            return 0;
        }
        let bound = bound as u64;
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if (product as u64) >= threshold {
                return (product >> 64) as usize;
            }
        }
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for idx in (1..items.len()).rev() {
            let other = self.below(idx + 1);
            items.swap(idx, other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jumped_generator_continues_the_stream() {
        let mut sequential = SplitMix64::new(77);
        let drawn: Vec<u64> = (0..10).map(|_| sequential.next_u64()).collect();
        let start = SplitMix64::new(77);
        for (skip, &value) in drawn.iter().enumerate() {
            assert_eq!(start.jumped(skip as u64).next_u64(), value);
        }
        assert_eq!(start.jumped(10).next_u64(), sequential.next_u64());
    }

    #[test]
    fn matches_reference_splitmix64_outputs() {
        // First outputs for seed 1234567 from the reference C implementation (prng.di.unimi.it).
        let mut rng = SplitMix64::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SplitMix64::new(7);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let value = rng.below(5);
            assert!(value < 5);
            seen[value] = true;
        }
        assert!(seen.iter().all(|&hit| hit));
    }
}
