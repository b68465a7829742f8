//! In-process ranks on scoped threads: the reference implementation of [`Collective`] that tests
//! and simulations run `N`-rank code on.
//!
//! Every collective is one exchange: each rank deposits a copy of its send buffer, the last rank
//! to arrive checks that all ranks made the same call and publishes the deposits, and every rank
//! then computes its own result from them (sums in rank order, so all ranks agree to the bit).
//! Waiting is on a condition variable. A rank that returns an error, panics, aborts, or returns
//! while others still wait for it wakes them with an error that names it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::call::{check_agreement, Call, Op};
use super::Collective;
use crate::error::{Error, Result};

/// Runs `world_size` in-process ranks.
pub struct ThreadGroup;

impl ThreadGroup {
    /// Runs `f` once per rank, each on its own thread, and returns the ranks' values in rank order.
    ///
    /// If any rank fails, returns the error of the first rank that failed (its own error, not the
    /// "rank 1 failed" errors the others then get from their collectives). A rank that panics
    /// becomes an [`Error::Collective`] carrying the panic message.
    pub fn run<T: Send>(
        world_size: usize,
        f: impl Fn(&mut ThreadRank) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        if world_size == 0 {
            return Err(Error::InvalidInput { reason: "thread group world size is 0".to_string() });
        }
        let shared = Arc::new(Shared::new(world_size));
        let outcomes: Vec<Result<T>> = std::thread::scope(|scope| {
            let mut handles = Vec::with_capacity(world_size);
            for rank in 0..world_size {
                let mut thread_rank = ThreadRank { shared: Arc::clone(&shared), rank, world_size };
                let f = &f;
                let spawned = std::thread::Builder::new()
                    .name(format!("rank-{rank}"))
                    .spawn_scoped(scope, move || run_rank(&mut thread_rank, f));
                handles.push(spawned.map_err(|error| {
                    let reason = format!("cannot start thread: {error}");
                    shared.fail(rank, &reason);
                    Error::Collective { rank, world_size, reason }
                }));
            }
            let joined = handles.into_iter().enumerate().map(|(rank, handle)| {
                // `run_rank` catches the closure's panics; a join error could only come from
                // the bookkeeping around it, and is reported like one.
                handle?.join().unwrap_or_else(|_| {
                    Err(Error::Collective { rank, world_size, reason: "panicked".to_string() })
                })
            });
            joined.collect()
        });
        let first_failure =
            shared.lock().failure.as_ref().map(|failure| (failure.rank, failure.reason.clone()));
        let Some((failed_rank, reason)) = first_failure else {
            return outcomes.into_iter().collect();
        };
        match outcomes.into_iter().nth(failed_rank) {
            Some(Err(error)) => Err(error),
            // The rank aborted, then returned normally.
            _ => Err(Error::Collective { rank: failed_rank, world_size, reason }),
        }
    }
}

/// Runs one rank's closure and tells the others how it ended.
fn run_rank<T>(
    thread_rank: &mut ThreadRank,
    f: &(impl Fn(&mut ThreadRank) -> Result<T> + Sync),
) -> Result<T> {
    let (rank, world_size) = (thread_rank.rank, thread_rank.world_size);
    let shared = Arc::clone(&thread_rank.shared);
    match catch_unwind(AssertUnwindSafe(|| f(thread_rank))) {
        Ok(Ok(value)) => {
            shared.exit(rank);
            Ok(value)
        }
        Ok(Err(error)) => {
            shared.fail(rank, &error.to_string());
            Err(error)
        }
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-text panic payload".to_string());
            let reason = format!("panicked: {message}");
            shared.fail(rank, &reason);
            Err(Error::Collective { rank, world_size, reason })
        }
    }
}

/// One rank of a [`ThreadGroup`].
pub struct ThreadRank {
    shared: Arc<Shared>,
    rank: usize,
    world_size: usize,
}

/// One rank's deposit for an exchange.
struct Deposit {
    call: Call,
    bytes: Vec<u8>,
    values: Vec<f32>,
}

/// Every rank's deposit in rank order (shared, since every rank reads the same ones), or why the
/// ranks' calls disagree.
type Published = std::result::Result<Arc<Vec<Deposit>>, String>;

struct Failure {
    rank: usize,
    reason: String,
}

struct State {
    /// Number of completed exchanges.
    generation: u64,
    /// Deposits for the exchange in progress, by rank.
    pending: Vec<Option<Deposit>>,
    n_pending: usize,
    /// The outcome of exchange `generation`: every rank's deposit, or why they disagree. Stays
    /// valid until every rank has deposited again, so a slow waker always finds its own.
    published: Published,
    /// The first rank that failed; every later collective fails with it.
    failure: Option<Failure>,
    /// Ranks whose closures returned normally; they will never deposit again.
    exited: Vec<bool>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn new(world_size: usize) -> Shared {
        let state = State {
            generation: 0,
            pending: (0..world_size).map(|_| None).collect(),
            n_pending: 0,
            published: Ok(Arc::new(Vec::new())),
            failure: None,
            exited: vec![false; world_size],
        };
        Shared { state: Mutex::new(state), changed: Condvar::new() }
    }

    /// No code panics while holding the lock, so a poisoned lock still holds consistent state.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fail(&self, rank: usize, reason: &str) {
        let mut state = self.lock();
        if state.failure.is_none() {
            state.failure = Some(Failure { rank, reason: reason.to_string() });
        }
        drop(state);
        self.changed.notify_all();
    }

    fn exit(&self, rank: usize) {
        let mut state = self.lock();
        if let Some(exited) = state.exited.get_mut(rank) {
            *exited = true;
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Deposits `deposit` for `rank` and waits until every rank has deposited; returns all
    /// deposits in rank order, or why the exchange cannot complete.
    fn exchange(&self, rank: usize, deposit: Deposit) -> Published {
        let op = deposit.call.op;
        let mut state = self.lock();
        if let Some(reason) = blocker(&state, op) {
            return Err(reason);
        }
        state.pending[rank] = Some(deposit);
        state.n_pending += 1;
        if state.n_pending == state.pending.len() {
            let deposits: Vec<Deposit> = state.pending.iter_mut().filter_map(Option::take).collect();
            let calls: Vec<Call> = deposits.iter().map(|deposit| deposit.call).collect();
            state.published = check_agreement(&calls).map(|()| Arc::new(deposits));
            state.n_pending = 0;
            state.generation += 1;
            let published = state.published.clone();
            drop(state);
            self.changed.notify_all();
            return published;
        }
        let my_generation = state.generation;
        loop {
            if state.generation != my_generation {
                return state.published.clone();
            }
            if let Some(reason) = blocker(&state, op) {
                return Err(reason);
            }
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Why the exchange in progress can never complete, if it cannot.
fn blocker(state: &State, op: Op) -> Option<String> {
    if let Some(failure) = &state.failure {
        return Some(format!("rank {} failed: {}", failure.rank, failure.reason));
    }
    let absent =
        state.exited.iter().zip(&state.pending).position(|(exited, pending)| *exited && pending.is_none());
    absent.map(|rank| format!("rank {rank} returned before joining {} #{}", op.name(), state.generation + 1))
}

impl ThreadRank {
    fn error(&self, reason: String) -> Error {
        Error::Collective { rank: self.rank, world_size: self.world_size, reason }
    }

    /// Checks the local shapes, then exchanges copies of the send buffers with every rank.
    fn exchange(
        &self,
        call: std::result::Result<Call, String>,
        bytes: &[u8],
        values: &[f32],
    ) -> Result<Arc<Vec<Deposit>>> {
        let call = call.map_err(|reason| self.error(reason))?;
        let deposit = Deposit { call, bytes: bytes.to_vec(), values: values.to_vec() };
        self.shared.exchange(self.rank, deposit).map_err(|reason| self.error(reason))
    }
}

impl Collective for ThreadRank {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world_size
    }

    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> Result<()> {
        let deposits = self.exchange(Ok(Call::all_reduce_sum(buf.len())), &[], buf)?;
        let mut by_rank = deposits.iter();
        if let Some(first) = by_rank.next() {
            buf.copy_from_slice(&first.values);
        }
        for deposit in by_rank {
            buf.iter_mut().zip(&deposit.values).for_each(|(sum, value)| *sum += value);
        }
        Ok(())
    }

    fn all_to_all(&mut self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        let call = Call::all_to_all(self.world_size, send.len(), recv.len());
        let deposits = self.exchange(call, send, &[])?;
        let chunk_len = send.len() / self.world_size;
        if chunk_len > 0 {
            for (recv_chunk, deposit) in recv.chunks_exact_mut(chunk_len).zip(deposits.iter()) {
                let start = self.rank * chunk_len;
                recv_chunk.copy_from_slice(&deposit.bytes[start..start + chunk_len]);
            }
        }
        Ok(())
    }

    fn all_gather(&mut self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        let call = Call::all_gather(Op::AllGather, self.world_size, send.len(), recv.len());
        let deposits = self.exchange(call, send, &[])?;
        if !send.is_empty() {
            for (recv_chunk, deposit) in recv.chunks_exact_mut(send.len()).zip(deposits.iter()) {
                recv_chunk.copy_from_slice(&deposit.bytes);
            }
        }
        Ok(())
    }

    fn all_gather_f32(&mut self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        let call = Call::all_gather(Op::AllGatherF32, self.world_size, send.len(), recv.len());
        let deposits = self.exchange(call, &[], send)?;
        if !send.is_empty() {
            for (recv_chunk, deposit) in recv.chunks_exact_mut(send.len()).zip(deposits.iter()) {
                recv_chunk.copy_from_slice(&deposit.values);
            }
        }
        Ok(())
    }

    fn broadcast(&mut self, buf: &mut [u8], root: usize) -> Result<()> {
        let call = Call::broadcast(self.world_size, buf.len(), root);
        // Only the root's bytes are read; the others deposit nothing but their call.
        let bytes: &[u8] = if root == self.rank { buf } else { &[] };
        let deposits = self.exchange(call, bytes, &[])?;
        if let Some(root_deposit) = deposits.get(root) {
            buf.copy_from_slice(&root_deposit.bytes);
        }
        Ok(())
    }

    fn barrier(&mut self) -> Result<()> {
        self.exchange(Ok(Call::barrier()), &[], &[]).map(|_| ())
    }

    fn abort(&mut self, reason: &str) {
        self.shared.fail(self.rank, reason);
    }
}
