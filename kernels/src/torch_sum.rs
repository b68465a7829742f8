//! f32 summation in the exact order of PyTorch's CPU `sum`, so `mean` matches bitsandbytes bit for bit.
//!
//! Double quantization centres the absmax values on their mean, and bitsandbytes takes that mean
//! with `torch.Tensor.mean` (a sum, then a division by the count). A plain left-to-right f32 sum
//! differs from torch's in the last bit often enough to change nested codes, so this reproduces
//! torch's reduction (`aten/src/ATen/native/cpu/SumKernel.cpp`): 8-lane vectors, four interleaved
//! accumulators, each a four-level cascade; the scalar tail is summed first, then the lanes.
//! The order was confirmed against torch 2.15 on x86-64 (see `versions.json` of the fixtures).
//! Inputs of 32768 or more values are split across threads by torch, so its own result then
//! depends on its thread count; this function keeps the single-thread order.

const LANES: usize = 8;
const INTERLEAVE: usize = 4;
const LEVELS: usize = 4;

type Lanes = [f32; LANES];

/// `torch.mean` of a contiguous f32 tensor on the CPU: the torch-ordered sum divided by the count.
/// An empty slice gives NaN, as in torch.
pub fn torch_mean(values: &[f32]) -> f32 {
    torch_sum(values) / values.len() as f32
}

/// `torch.sum` of a contiguous f32 tensor on the CPU.
pub fn torch_sum(values: &[f32]) -> f32 {
    let n_vectors = values.len() / LANES;
    let vector =
        |vector_idx: usize| -> Lanes { std::array::from_fn(|lane| values[vector_idx * LANES + lane]) };
    let n_groups = n_vectors / INTERLEAVE;
    let mut partials = cascade_sum(n_groups, |group_idx, column| vector(group_idx * INTERLEAVE + column));
    for vector_idx in n_groups * INTERLEAVE..n_vectors {
        add_lanes(&mut partials[0], &vector(vector_idx));
    }
    for column in 1..INTERLEAVE {
        let partial = partials[column];
        add_lanes(&mut partials[0], &partial);
    }
    let mut total = 0.0f32;
    for &value in &values[n_vectors * LANES..] {
        total += value;
    }
    for lane in partials[0] {
        total += lane;
    }
    total
}

/// torch's `multi_row_sum`: `load(i, column)` for `i < size`, accumulated per column in a
/// cascade whose level `j` absorbs level `j - 1` every `2^(j * level_power)` steps.
fn cascade_sum(size: usize, load: impl Fn(usize, usize) -> Lanes) -> [Lanes; INTERLEAVE] {
    let level_power = ceil_log2(size).div_euclid(LEVELS as u32).max(4);
    let level_step = 1usize << level_power;
    let level_mask = level_step - 1;
    let mut acc = [[[0.0f32; LANES]; LEVELS]; INTERLEAVE];
    let mut idx = 0;
    while idx + level_step <= size {
        for _ in 0..level_step {
            for (column, levels) in acc.iter_mut().enumerate() {
                add_lanes(&mut levels[0], &load(idx, column));
            }
            idx += 1;
        }
        for level in 1..LEVELS {
            for levels in acc.iter_mut() {
                let lower = levels[level - 1];
                add_lanes(&mut levels[level], &lower);
                levels[level - 1] = [0.0; LANES];
            }
            let mask = level_mask << (level as u32 * level_power);
            if idx & mask != 0 {
                break;
            }
        }
    }
    while idx < size {
        for (column, levels) in acc.iter_mut().enumerate() {
            add_lanes(&mut levels[0], &load(idx, column));
        }
        idx += 1;
    }
    acc.map(|mut levels| {
        for level in 1..LEVELS {
            let upper = levels[level];
            add_lanes(&mut levels[0], &upper);
        }
        levels[0]
    })
}

fn add_lanes(acc: &mut Lanes, values: &Lanes) {
    for (sum, &value) in acc.iter_mut().zip(values) {
        *sum += value;
    }
}

/// torch's `CeilLog2`: 1 for sizes up to 2, else the bit length of `size - 1`.
fn ceil_log2(size: usize) -> u32 {
    if size <= 2 {
        1
    } else {
        usize::BITS - (size - 1).leading_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sums_are_exact_and_empty_mean_is_nan() {
        assert_eq!(torch_sum(&[]), 0.0);
        assert_eq!(torch_sum(&[1.5]), 1.5);
        let ramp: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        assert_eq!(torch_sum(&ramp), 499_500.0);
        assert!(torch_mean(&[]).is_nan());
    }

    #[test]
    fn order_is_tail_first_then_lanes() {
        // 8 lanes of 1.0 then a tail of 2^24: torch adds the tail first, so every 1.0 is lost
        // (2^24 + 1 rounds back to 2^24) while a left-to-right sum would keep 8.
        let mut values = vec![1.0f32; 8];
        values.push(16_777_216.0);
        assert_eq!(torch_sum(&values), 16_777_216.0);
    }

    #[test]
    fn cascade_levels_match_ceil_log2() {
        assert_eq!(ceil_log2(0), 1);
        assert_eq!(ceil_log2(2), 1);
        assert_eq!(ceil_log2(3), 2);
        assert_eq!(ceil_log2(1 << 20), 20);
        assert_eq!(ceil_log2((1 << 20) + 1), 21);
    }
}
