//! 1-bit compressed all-reduce with two-level error feedback, as DeepSpeed's `NcclBackend` does it.
//!
//! `C(x)` averages `x` over ranks while sending about one bit per value (DeepSpeed
//! `runtime/comm/nccl.py`, `compressed_allreduce`):
//!
//! 1. every rank pads `x` with zeros to `N'` values, a multiple of `W·lcm(W, 8)`, adds its worker
//!    error, and compresses the sum to `scale·sign` with `scale = ‖x‖₂/√N'` and the sign of 0 (and
//!    NaN) counted as +1; what compression lost becomes the new worker error;
//! 2. the packed signs are split into `W` chunks and exchanged with `all_to_all`, the worker
//!    scales with `all_gather`: rank `r` now holds chunk `r` of every rank;
//! 3. rank `r` averages its chunk, `z = Σᵢ signᵢ·(scaleᵢ·(1/W))` in rank order, adds its server
//!    error and compresses `z` the same way, keeping the loss as the new server error;
//! 4. the server signs and scales are gathered by everyone, and chunk `r` of the result is
//!    `server_scale_r·sign`. Padding is dropped.
//!
//! Signs are packed as `cupy.packbits` packs them: value `j` is bit `7 - j % 8` of byte `j / 8`,
//! 1 for +1. The order never reaches the numbers (every rank packs and unpacks alike); it is kept
//! so that a packed buffer reads the same as DeepSpeed's.
//!
//! [`simulate_compressed_allreduce`] runs the same steps over `W` in-memory ranks; it is the spec,
//! and [`compressed_allreduce`] must equal it bit for bit. Both use the same per-rank functions,
//! so they differ only in how bytes move. Scales are computed in f64 from the f32 values and
//! rounded once (torch reduces in f32 on the GPU, in an order it does not promise).

use crate::dist::Collective;
use crate::error::{Error, Result};

/// `N'`: `numel` rounded up to a multiple of `world_size·lcm(world_size, 8)`, the length of the
/// worker error buffer. Every rank's chunk of packed signs is then a whole number of bytes.
pub fn padded_len(numel: usize, world_size: usize) -> usize {
    let world = world_size.max(1);
    let unit = world * lcm(world, 8);
    numel.div_ceil(unit) * unit
}

/// `N'/W`: the length of the server error buffer, one rank's chunk of the padded buffer.
pub fn server_chunk_len(numel: usize, world_size: usize) -> usize {
    padded_len(numel, world_size) / world_size.max(1)
}

/// Replaces `x` by its 1-bit compressed average over all ranks, updating this rank's error
/// buffers (`worker_error`: [`padded_len`] values, `server_error`: [`server_chunk_len`] values).
/// Every rank must call it with the same `x.len()`. An empty `x` sends nothing and zeroes the
/// error buffers, as DeepSpeed does.
pub fn compressed_allreduce(
    comm: &mut dyn Collective,
    x: &mut [f32],
    worker_error: &mut [f32],
    server_error: &mut [f32],
) -> Result<()> {
    let world_size = comm.world_size();
    if x.is_empty() {
        worker_error.fill(0.0);
        server_error.fill(0.0);
        return Ok(());
    }
    check_error_buffers(x.len(), world_size, worker_error.len(), server_error.len())?;

    let (worker_signs, worker_scale) = compress_worker(x, worker_error);
    let mut chunks_for_me = vec![0u8; worker_signs.len()];
    comm.all_to_all(&worker_signs, &mut chunks_for_me)?;
    let mut worker_scales = vec![0.0f32; world_size];
    comm.all_gather_f32(&[worker_scale], &mut worker_scales)?;

    let (server_signs, server_scale) = compress_server(&chunks_for_me, &worker_scales, server_error);
    let mut all_server_signs = vec![0u8; server_signs.len() * world_size];
    comm.all_gather(&server_signs, &mut all_server_signs)?;
    let mut server_scales = vec![0.0f32; world_size];
    comm.all_gather_f32(&[server_scale], &mut server_scales)?;

    decompress(&all_server_signs, &server_scales, x);
    Ok(())
}

/// [`compressed_allreduce`] for `inputs.len()` ranks held in memory: rank `r` owns `inputs[r]`,
/// `worker_errors[r]` and `server_errors[r]`. Every input ends with the same values.
pub fn simulate_compressed_allreduce(
    inputs: &mut [Vec<f32>],
    worker_errors: &mut [Vec<f32>],
    server_errors: &mut [Vec<f32>],
) -> Result<()> {
    let world_size = inputs.len();
    if world_size == 0 || worker_errors.len() != world_size || server_errors.len() != world_size {
        return Err(Error::InvalidInput {
            reason: format!(
                "1-bit all-reduce simulation needs one input and two error buffers per rank, got {} \
                 inputs, {} worker and {} server error buffers",
                world_size,
                worker_errors.len(),
                server_errors.len()
            ),
        });
    }
    let numel = inputs[0].len();
    if let Some((rank, input)) = inputs.iter().enumerate().find(|(_, input)| input.len() != numel) {
        return Err(Error::InvalidInput {
            reason: format!("rank {rank} has {} values to all-reduce, rank 0 has {numel}", input.len()),
        });
    }
    if numel == 0 {
        worker_errors.iter_mut().chain(server_errors.iter_mut()).for_each(|buf| buf.fill(0.0));
        return Ok(());
    }
    for rank in 0..world_size {
        check_error_buffers(numel, world_size, worker_errors[rank].len(), server_errors[rank].len())?;
    }

    let worker_messages: Vec<(Vec<u8>, f32)> =
        inputs.iter().zip(worker_errors.iter_mut()).map(|(x, error)| compress_worker(x, error)).collect();
    let worker_scales: Vec<f32> = worker_messages.iter().map(|(_, scale)| *scale).collect();
    let chunk_bytes = worker_messages[0].0.len() / world_size;

    let mut all_server_signs = Vec::with_capacity(chunk_bytes * world_size);
    let mut server_scales = Vec::with_capacity(world_size);
    for (rank, server_error) in server_errors.iter_mut().enumerate() {
        let chunks_for_rank: Vec<u8> = worker_messages
            .iter()
            .flat_map(|(signs, _)| &signs[rank * chunk_bytes..(rank + 1) * chunk_bytes])
            .copied()
            .collect();
        let (server_signs, server_scale) = compress_server(&chunks_for_rank, &worker_scales, server_error);
        all_server_signs.extend_from_slice(&server_signs);
        server_scales.push(server_scale);
    }

    for x in inputs.iter_mut() {
        decompress(&all_server_signs, &server_scales, x);
    }
    Ok(())
}

fn check_error_buffers(numel: usize, world_size: usize, worker_len: usize, server_len: usize) -> Result<()> {
    let worker_expected = padded_len(numel, world_size);
    let server_expected = server_chunk_len(numel, world_size);
    if worker_len != worker_expected || server_len != server_expected {
        return Err(Error::InvalidInput {
            reason: format!(
                "1-bit all-reduce of {numel} values over {world_size} ranks needs error buffers of \
                 {worker_expected} (worker) and {server_expected} (server) values, got {worker_len} and \
                 {server_len}"
            ),
        });
    }
    Ok(())
}

/// Worker side: compresses `x` (zero-padded to the error buffer's length) plus the worker error
/// into packed signs and one scale, and keeps what was lost in `worker_error`.
fn compress_worker(x: &[f32], worker_error: &mut [f32]) -> (Vec<u8>, f32) {
    let padded = x.iter().copied().chain(std::iter::repeat(0.0)).zip(worker_error.iter());
    let compensated: Vec<f32> = padded.map(|(value, error)| value + error).collect();
    let scale = rms(&compensated);
    for (error, value) in worker_error.iter_mut().zip(&compensated) {
        *error = value - scale * sign(*value);
    }
    (pack_signs(&compensated), scale)
}

/// Server side of one rank: averages its chunk of every rank's signs weighted by their scales,
/// adds the server error, compresses the result and keeps what was lost in `server_error`.
/// `chunks` holds one chunk per rank, in rank order.
fn compress_server(chunks: &[u8], worker_scales: &[f32], server_error: &mut [f32]) -> (Vec<u8>, f32) {
    let world_size = worker_scales.len();
    let inv_world = 1.0 / world_size as f32;
    let weights: Vec<f32> = worker_scales.iter().map(|scale| scale * inv_world).collect();
    let chunk_bytes = chunks.len() / world_size;
    let mut compensated = vec![0.0f32; server_error.len()];
    for (rank_chunk, weight) in chunks.chunks_exact(chunk_bytes).zip(&weights) {
        for (j, sum) in compensated.iter_mut().enumerate() {
            *sum += unpacked_sign(rank_chunk, j) * weight;
        }
    }
    for (value, error) in compensated.iter_mut().zip(server_error.iter()) {
        *value += error;
    }
    let scale = rms(&compensated);
    for (error, value) in server_error.iter_mut().zip(&compensated) {
        *error = value - scale * sign(*value);
    }
    (pack_signs(&compensated), scale)
}

/// Writes `server_scales[r]·sign` for every chunk `r` into `x`, dropping the padding.
fn decompress(all_server_signs: &[u8], server_scales: &[f32], x: &mut [f32]) {
    let chunk_len = all_server_signs.len() * 8 / server_scales.len();
    for (j, value) in x.iter_mut().enumerate() {
        *value = server_scales[j / chunk_len] * unpacked_sign(all_server_signs, j);
    }
}

/// `‖x‖₂/√n`, accumulated in f64 and rounded once.
fn rms(values: &[f32]) -> f32 {
    let sum_sq: f64 = values.iter().map(|&value| f64::from(value) * f64::from(value)).sum();
    (sum_sq.sqrt() / (values.len() as f64).sqrt()) as f32
}

/// DeepSpeed's `sign().add_(1).bool()` mapped to ±1: only values below zero are negative, so 0,
/// -0 and NaN count as +1.
fn sign(value: f32) -> f32 {
    if value < 0.0 {
        -1.0
    } else {
        1.0
    }
}

/// `cupy.packbits` of `value >= 0` (big-endian bit order); the length is a multiple of 8.
fn pack_signs(values: &[f32]) -> Vec<u8> {
    values
        .chunks(8)
        .map(|byte_values| {
            byte_values
                .iter()
                .enumerate()
                .filter(|(_, value)| sign(**value) > 0.0)
                .fold(0u8, |byte, (bit, _)| byte | (0x80 >> bit))
        })
        .collect()
}

fn unpacked_sign(packed: &[u8], index: usize) -> f32 {
    if packed[index / 8] & (0x80 >> (index % 8)) != 0 {
        1.0
    } else {
        -1.0
    }
}

fn lcm(a: usize, b: usize) -> usize {
    a / gcd(a, b) * b
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_len_is_a_multiple_of_world_times_lcm() {
        assert_eq!(padded_len(1, 1), 8);
        assert_eq!(padded_len(8, 1), 8);
        assert_eq!(padded_len(17, 2), 32);
        assert_eq!(padded_len(10, 3), 72);
        assert_eq!(padded_len(33, 4), 64);
        assert_eq!(padded_len(0, 4), 0);
        assert_eq!(server_chunk_len(10, 3), 24);
    }

    #[test]
    fn signs_pack_big_endian_with_zero_as_plus() {
        let values = [1.0, -1.0, 0.0, -0.0, -2.0, f32::NAN, -0.5, 3.0, -1.0];
        let packed = pack_signs(&values);
        assert_eq!(packed, vec![0b1011_0101, 0b0000_0000]);
        let unpacked: Vec<f32> = (0..values.len()).map(|j| unpacked_sign(&packed, j)).collect();
        assert_eq!(unpacked, vec![1.0, -1.0, 1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0]);
    }

    #[test]
    fn one_rank_compression_keeps_the_loss_as_worker_error() {
        let mut inputs = vec![vec![3.0, -1.0, 0.0]];
        let mut worker_errors = vec![vec![0.0; padded_len(3, 1)]];
        let mut server_errors = vec![vec![0.0; server_chunk_len(3, 1)]];
        simulate_compressed_allreduce(&mut inputs, &mut worker_errors, &mut server_errors).unwrap();
        // Padded to 8 values: ‖(3, -1, 0, ...)‖ / √8 = √10 / √8.
        let scale = ((10.0f64).sqrt() / 8.0f64.sqrt()) as f32;
        assert_eq!(inputs[0], vec![scale, -scale, scale]);
        assert_eq!(worker_errors[0][0], 3.0 - scale);
        assert_eq!(worker_errors[0][1], -1.0 + scale);
        assert_eq!(worker_errors[0][2], -scale);
        // The server saw exactly ±scale, which compresses without loss.
        assert!(server_errors[0].iter().all(|&error| error == 0.0));
    }
}
