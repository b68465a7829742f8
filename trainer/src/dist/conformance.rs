//! One conformance routine for every [`Collective`] implementation: deterministic per-rank data
//! through every collective, and the report each rank must produce, computed without
//! communicating.
//!
//! The same routine runs on [`SingleProcess`](super::single::SingleProcess), on
//! [`ThreadGroup`](super::threads::ThreadGroup) ranks in the tests, and on Open MPI processes in
//! the `mpi_collectives` example, so the three are held to one definition of right. Float results
//! are kept as bit patterns: "equal" means bit-identical, including the rank order of sums.

use serde::{Deserialize, Serialize};

use super::Collective;
use crate::error::Result;

/// Length of the all-reduce and mean buffers (not a power of two on purpose).
pub const VALUES_LEN: usize = 1003;
/// Length of the large all-reduce, past the 2^20 values an MPI chunk holds.
pub const LARGE_VALUES_LEN: usize = (1 << 20) + 7;
/// Bytes each rank sends to each rank in the all-to-all.
pub const ALL_TO_ALL_CHUNK_BYTES: usize = 5;
/// Bytes each rank contributes to the byte all-gather.
pub const GATHER_BYTES: usize = 37;
/// Values each rank contributes to the f32 all-gather.
pub const GATHER_VALUES: usize = 29;
/// Length of each broadcast buffer.
pub const BROADCAST_BYTES: usize = 13;

/// What one rank saw from every collective.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConformanceReport {
    pub rank: usize,
    pub world_size: usize,
    /// `all_reduce_sum` of [`rank_values`], as `f32::to_bits`.
    pub all_reduce_sum_bits: Vec<u32>,
    /// `all_reduce_mean` of [`rank_values`], as `f32::to_bits`.
    pub all_reduce_mean_bits: Vec<u32>,
    /// FNV-1a digest of the large all-reduce's result bits.
    pub large_all_reduce_digest: u64,
    pub all_to_all: Vec<u8>,
    pub all_gather: Vec<u8>,
    /// `all_gather_f32` result, as `f32::to_bits`.
    pub all_gather_f32_bits: Vec<u32>,
    /// One buffer per root, `0..world_size`, after broadcasting from it.
    pub broadcasts: Vec<Vec<u8>>,
}

/// Rank `rank`'s float data: small values mixed with large ones of alternating sign, so that a
/// sum taken in another order than rank order gives other bits.
pub fn rank_values(rank: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|idx| {
            let small = ((rank * 7919 + idx * 104_729) % 2003) as f32 / 2003.0 + 0.5;
            if (idx + rank).is_multiple_of(3) {
                let sign = if rank.is_multiple_of(2) { 1.0 } else { -1.0 };
                sign * small * 1.0e7
            } else {
                small
            }
        })
        .collect()
}

/// Rank `rank`'s byte data.
pub fn rank_bytes(rank: usize, len: usize) -> Vec<u8> {
    (0..len).map(|idx| ((rank * 37 + idx * 11 + 1) % 251) as u8).collect()
}

/// Runs every collective on `comm` with this rank's data and reports the results. Every rank of
/// the world must call it.
pub fn run_conformance<C: Collective + ?Sized>(comm: &mut C) -> Result<ConformanceReport> {
    let (rank, world_size) = (comm.rank(), comm.world_size());
    comm.barrier()?;

    let mut sum = rank_values(rank, VALUES_LEN);
    comm.all_reduce_sum(&mut sum)?;
    let mut mean = rank_values(rank, VALUES_LEN);
    comm.all_reduce_mean(&mut mean)?;
    let mut large = rank_values(rank, LARGE_VALUES_LEN);
    comm.all_reduce_sum(&mut large)?;

    let send = rank_bytes(rank, world_size * ALL_TO_ALL_CHUNK_BYTES);
    let mut all_to_all = vec![0u8; send.len()];
    comm.all_to_all(&send, &mut all_to_all)?;

    let mut all_gather = vec![0u8; world_size * GATHER_BYTES];
    comm.all_gather(&rank_bytes(rank, GATHER_BYTES), &mut all_gather)?;
    let mut all_gather_f32 = vec![0f32; world_size * GATHER_VALUES];
    comm.all_gather_f32(&rank_values(rank, GATHER_VALUES), &mut all_gather_f32)?;

    let mut broadcasts = Vec::with_capacity(world_size);
    for root in 0..world_size {
        let mut buf = broadcast_bytes(rank);
        comm.broadcast(&mut buf, root)?;
        broadcasts.push(buf);
    }

    // Empty buffers are legal everywhere and must not trip a backend.
    comm.all_reduce_sum(&mut [])?;
    comm.all_to_all(&[], &mut [])?;
    comm.all_gather(&[], &mut [])?;
    comm.all_gather_f32(&[], &mut [])?;
    comm.broadcast(&mut [], world_size.saturating_sub(1))?;
    comm.barrier()?;

    Ok(ConformanceReport {
        rank,
        world_size,
        all_reduce_sum_bits: to_bits(&sum),
        all_reduce_mean_bits: to_bits(&mean),
        large_all_reduce_digest: digest(&large),
        all_to_all,
        all_gather,
        all_gather_f32_bits: to_bits(&all_gather_f32),
        broadcasts,
    })
}

/// The report rank `rank` of `world_size` must produce, computed from the data alone.
pub fn expected_report(rank: usize, world_size: usize) -> ConformanceReport {
    let sum = rank_order_sum(world_size, VALUES_LEN);
    let world = world_size as f32;
    let mean: Vec<f32> =
        if world_size > 1 { sum.iter().map(|value| value / world).collect() } else { sum.clone() };

    let chunk = ALL_TO_ALL_CHUNK_BYTES;
    let all_to_all = (0..world_size)
        .flat_map(|source| rank_bytes(source, world_size * chunk)[rank * chunk..(rank + 1) * chunk].to_vec())
        .collect();

    ConformanceReport {
        rank,
        world_size,
        all_reduce_sum_bits: to_bits(&sum),
        all_reduce_mean_bits: to_bits(&mean),
        large_all_reduce_digest: digest(&rank_order_sum(world_size, LARGE_VALUES_LEN)),
        all_to_all,
        all_gather: (0..world_size).flat_map(|source| rank_bytes(source, GATHER_BYTES)).collect(),
        all_gather_f32_bits: (0..world_size)
            .flat_map(|source| to_bits(&rank_values(source, GATHER_VALUES)))
            .collect(),
        broadcasts: (0..world_size).map(broadcast_bytes).collect(),
    }
}

/// Rank 0's values, plus rank 1's, plus rank 2's, ... element by element.
fn rank_order_sum(world_size: usize, len: usize) -> Vec<f32> {
    let mut sum = rank_values(0, len);
    for rank in 1..world_size {
        sum.iter_mut().zip(rank_values(rank, len)).for_each(|(total, value)| *total += value);
    }
    sum
}

fn broadcast_bytes(rank: usize) -> Vec<u8> {
    rank_bytes(rank + 100, BROADCAST_BYTES)
}

fn to_bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|value| value.to_bits()).collect()
}

/// 64-bit FNV-1a over the values' little-endian bits.
fn digest(values: &[f32]) -> u64 {
    values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}
