//! Data parallelism: a small collective interface and its implementations.
//!
//! Ranks exchange flat buffers only; what the buffers mean (LoRA gradients, 1-bit packed signs)
//! is the caller's business. Every implementation must give bit-identical results on every rank,
//! and sums are taken in rank order so that a run's numbers do not depend on timing.
//!
//! - [`single::SingleProcess`]: world size 1, every collective is a copy.
//! - [`threads::ThreadGroup`]: in-process ranks on threads, for tests and simulations.
//! - `mpi::MpiWorld` (feature `mpi`): Open MPI processes started by `mpirun`.

mod call;
pub mod conformance;
pub mod onebit;
pub mod single;
pub mod threads;

#[cfg(feature = "mpi")]
pub mod mpi;

use crate::error::Result;

/// Collective operations over the ranks of one training run.
///
/// All ranks must call the same collectives in the same order with buffers of equal length. A
/// rank that fails must make the others' next collective return an error that names it, not hang.
pub trait Collective: Send {
    /// This process's (or thread's) rank, `0..world_size`.
    fn rank(&self) -> usize;

    /// Number of ranks.
    fn world_size(&self) -> usize;

    /// Element-wise sum over ranks, in place; every rank ends with the same values.
    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> Result<()>;

    /// `send` holds `world_size` equal chunks; afterwards chunk `i` of `recv` is chunk `rank` of
    /// rank `i`'s `send`. Both buffers have the same length, a multiple of `world_size`.
    fn all_to_all(&mut self, send: &[u8], recv: &mut [u8]) -> Result<()>;

    /// `recv` (`world_size * send.len()` bytes) becomes every rank's `send`, in rank order.
    fn all_gather(&mut self, send: &[u8], recv: &mut [u8]) -> Result<()>;

    /// `recv` (`world_size * send.len()` values) becomes every rank's `send`, in rank order.
    fn all_gather_f32(&mut self, send: &[f32], recv: &mut [f32]) -> Result<()>;

    /// Copies rank `root`'s `buf` into every rank's `buf`.
    fn broadcast(&mut self, buf: &mut [u8], root: usize) -> Result<()>;

    /// Returns once every rank has reached it.
    fn barrier(&mut self) -> Result<()>;

    /// Tells the other ranks this one is giving up, so their collectives fail with `reason`
    /// instead of waiting forever. Called on the error path; never fails.
    fn abort(&mut self, reason: &str);

    /// Element-wise mean over ranks, in place.
    fn all_reduce_mean(&mut self, buf: &mut [f32]) -> Result<()> {
        self.all_reduce_sum(buf)?;
        let world = self.world_size() as f32;
        if world > 1.0 {
            buf.iter_mut().for_each(|value| *value /= world);
        }
        Ok(())
    }
}
