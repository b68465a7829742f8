//! Training data as token ids, and the deterministic batch plan: which examples form each global
//! batch, each rank's shard of it, and its micro-batches.
//!
//! An example is `prompt ++ answer ++ EOS`; the loss covers the answer and EOS only. Global batches
//! are length-grouped: each epoch is a seeded shuffle, cut into windows of
//! [`GROUPING_WINDOW`] global batches whose examples are sorted by length, so padding stays small
//! while batch order stays random. Everything depends only on the seed and the step, which is
//! what lets a resumed run see exactly the batches an uninterrupted one would.

use datasets::{Example, SplitMix64};

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// Global batches sorted together by length.
pub const GROUPING_WINDOW: usize = 16;

/// One tokenized example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedExample {
    /// `prompt ++ answer ++ EOS`.
    pub ids: Vec<u32>,
    /// Number of prompt tokens; the loss covers `ids[prompt_len..]`.
    pub prompt_len: usize,
}

impl TokenizedExample {
    /// Tokens the model reads: all but the last.
    pub fn input_len(&self) -> usize {
        self.ids.len() - 1
    }

    /// Tokens the loss is computed on.
    pub fn answer_len(&self) -> usize {
        self.ids.len() - self.prompt_len
    }
}

/// Examples ready for training, with what tokenizing left out.
#[derive(Debug, Clone, Default)]
pub struct TokenizedSet {
    pub examples: Vec<TokenizedExample>,
    /// Examples over `max_seq_len` tokens, left out.
    pub too_long: usize,
    /// Examples with an empty answer, left out.
    pub empty_answer: usize,
}

/// Tokenizes `examples`: the prompt as the model sees it at inference (no special tokens added),
/// then the target, then the first EOS id.
pub fn tokenize(examples: &[Example], tokenizer: &Tokenizer, max_seq_len: usize) -> Result<TokenizedSet> {
    let Some(&eos) = tokenizer.eos_ids().first() else {
        return Err(Error::InvalidInput { reason: "the tokenizer has no end-of-sequence token".into() });
    };
    let mut set = TokenizedSet::default();
    for example in examples {
        let answer = tokenizer.encode(&example.target, false)?;
        if answer.is_empty() {
            set.empty_answer += 1;
            continue;
        }
        let mut ids = tokenizer.encode(&example.prompt, false)?;
        let prompt_len = ids.len();
        ids.extend(answer);
        ids.push(eos);
        if ids.len() > max_seq_len || prompt_len == 0 {
            set.too_long += 1;
            continue;
        }
        set.examples.push(TokenizedExample { ids, prompt_len });
    }
    Ok(set)
}

/// The batches of a run: `global_batch` examples per optimizer step, split over `world_size` ranks,
/// each rank's share cut into micro-batches of at most `micro_batch`.
#[derive(Debug, Clone)]
pub struct BatchPlan {
    lengths: Vec<usize>,
    global_batch: usize,
    micro_batch: usize,
    world_size: usize,
    seed: u64,
}

impl BatchPlan {
    /// A plan over examples of the given lengths. Fails when one global batch needs more
    /// examples than there are.
    pub fn new(
        lengths: Vec<usize>,
        global_batch: usize,
        micro_batch: usize,
        world_size: usize,
        seed: u64,
    ) -> Result<Self> {
        if global_batch == 0 || micro_batch == 0 || world_size == 0 {
            return Err(Error::InvalidInput {
                reason: format!(
                    "batch sizes must be positive (global {global_batch}, micro {micro_batch}, ranks {world_size})"
                ),
            });
        }
        if lengths.len() < global_batch {
            return Err(Error::InvalidInput {
                reason: format!(
                    "{} training examples cannot fill one global batch of {global_batch}",
                    lengths.len()
                ),
            });
        }
        Ok(BatchPlan { lengths, global_batch, micro_batch, world_size, seed })
    }

    /// Optimizer steps in one pass over the data (the last partial batch is dropped).
    pub fn steps_per_epoch(&self) -> usize {
        self.lengths.len() / self.global_batch
    }

    /// The example indices of global batch `step` (0-based), sorted by length.
    pub fn global_batch(&self, step: usize) -> Vec<usize> {
        let steps_per_epoch = self.steps_per_epoch();
        let (epoch, step_in_epoch) = (step / steps_per_epoch, step % steps_per_epoch);
        let order = self.epoch_order(epoch as u64);
        // Windows of GROUPING_WINDOW batches are sorted by length, then their batches shuffled.
        let window = step_in_epoch / GROUPING_WINDOW;
        let window_start = window * GROUPING_WINDOW;
        let window_batches = GROUPING_WINDOW.min(steps_per_epoch - window_start);
        let mut members: Vec<usize> = order
            [window_start * self.global_batch..(window_start + window_batches) * self.global_batch]
            .to_vec();
        members.sort_by_key(|&idx| (self.lengths[idx], idx));
        let mut batch_order: Vec<usize> = (0..window_batches).collect();
        let mut rng = SplitMix64::new(mix(self.seed, epoch as u64, window as u64 + 1));
        rng.shuffle(&mut batch_order);
        let slot = batch_order[step_in_epoch - window_start];
        members[slot * self.global_batch..(slot + 1) * self.global_batch].to_vec()
    }

    /// This rank's micro-batches of global batch `step`: ranks take every `world_size`-th
    /// example of the length-sorted batch, so their shares have similar lengths.
    pub fn micro_batches(&self, step: usize, rank: usize) -> Vec<Vec<usize>> {
        let shard: Vec<usize> =
            self.global_batch(step).into_iter().skip(rank).step_by(self.world_size).collect();
        shard.chunks(self.micro_batch).map(<[usize]>::to_vec).collect()
    }

    fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.lengths.len()).collect();
        SplitMix64::new(mix(self.seed, epoch, 0)).shuffle(&mut order);
        order
    }
}

/// A seed for one purpose derived from the run seed and two counters.
pub fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut rng = SplitMix64::new(seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.rotate_left(32));
    rng.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_appears_once_per_epoch_and_ranks_partition_each_batch() {
        let lengths: Vec<usize> = (0..103).map(|idx| 5 + (idx * 37) % 50).collect();
        let plan = BatchPlan::new(lengths.clone(), 8, 3, 2, 7).unwrap();
        assert_eq!(plan.steps_per_epoch(), 12);
        let mut seen: Vec<usize> = (0..12).flat_map(|step| plan.global_batch(step)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 96, "an epoch must not repeat examples");
        for step in [0, 5, 13] {
            let mut from_ranks: Vec<usize> =
                (0..2).flat_map(|rank| plan.micro_batches(step, rank).concat()).collect();
            let mut batch = plan.global_batch(step);
            from_ranks.sort_unstable();
            batch.sort_unstable();
            assert_eq!(from_ranks, batch);
            assert!(plan.micro_batches(step, 0).iter().all(|micro| micro.len() <= 3));
        }
        // Length grouping: a batch spans far fewer lengths than a random one would.
        let batch = plan.global_batch(3);
        let spread = batch.iter().map(|&idx| lengths[idx]).max().unwrap()
            - batch.iter().map(|&idx| lengths[idx]).min().unwrap();
        assert!(spread < 25, "batch lengths spread {spread}");
        // The plan is a pure function of the seed.
        let again = BatchPlan::new(lengths, 8, 3, 2, 7).unwrap();
        assert_eq!(again.global_batch(17), plan.global_batch(17));
    }

    #[test]
    fn too_few_examples_is_an_error() {
        let error = BatchPlan::new(vec![3; 5], 8, 8, 1, 0).unwrap_err().to_string();
        assert!(error.contains("5 training examples"), "{error}");
    }
}
