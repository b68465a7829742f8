//! [`Collective`] over Open MPI processes started by `mpirun`, through a small hand-written FFI.
//!
//! `unsafe` is meant to live in `kernels` only; this module is the one exception, because a
//! foreign library cannot be called without it. The FFI surface is the dozen functions below,
//! and every block states why its pointers and counts are valid.
//!
//! Open MPI's handles (`MPI_COMM_WORLD`, `MPI_FLOAT`, ...) are the addresses of globals the
//! library exports (`ompi_mpi_comm_world`, ...; see `OMPI_PREDEFINED_GLOBAL` in Open MPI's
//! `mpi.h`), so they are declared as opaque extern statics and passed by address. This ties the
//! module to Open MPI's ABI (MPICH's handles are integers); `build.rs` links `libmpi` from Open MPI.
//!
//! Sums are computed locally in rank order from an all-gather instead of by `MPI_Allreduce`,
//! whose reduction order is the library's: that keeps results bit-identical to
//! [`ThreadGroup`](super::threads::ThreadGroup) for any world size, at the cost of receiving
//! `world_size` copies of each chunk (the same traffic as a ring all-reduce for 2 ranks).
//!
//! Empty buffers skip the MPI call (every rank agreed on the length, so every rank skips it): an
//! empty `&[u8]` points at address 1, which Open MPI reads as `MPI_IN_PLACE`.
//!
//! Before every collective the ranks all-gather their [`Call`]s (24 bytes each), so mismatched
//! lengths or operations are an error naming both instead of undefined behaviour.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

use super::call::{check_agreement, Call, Op};
use super::Collective;
use crate::error::{Error, Result};

/// An Open MPI predefined object; only its address is used.
#[repr(C)]
struct OmpiObject {
    _opaque: [u8; 0],
}

type Handle = *const OmpiObject;

const MPI_SUCCESS: c_int = 0;
/// `MPI_THREAD_SERIALIZED`: the world may move between threads, one call at a time.
const MPI_THREAD_SERIALIZED: c_int = 2;
const MPI_MAX_ERROR_STRING: usize = 256;
/// Values per all-gather round of a sum, so the receive buffer stays at `world_size * 4` MiB.
const SUM_CHUNK_VALUES: usize = 1 << 20;

// Linked by build.rs from `pkg-config --libs ompi-c` (or `mpicc --showme:link`).
extern "C" {
    static ompi_mpi_comm_world: OmpiObject;
    static ompi_mpi_byte: OmpiObject;
    static ompi_mpi_float: OmpiObject;
    static ompi_mpi_errors_return: OmpiObject;

    fn MPI_Initialized(flag: *mut c_int) -> c_int;
    fn MPI_Init_thread(
        argc: *mut c_int,
        argv: *mut *mut *mut c_char,
        required: c_int,
        provided: *mut c_int,
    ) -> c_int;
    fn MPI_Finalize() -> c_int;
    fn MPI_Comm_set_errhandler(comm: Handle, errhandler: Handle) -> c_int;
    fn MPI_Comm_rank(comm: Handle, rank: *mut c_int) -> c_int;
    fn MPI_Comm_size(comm: Handle, size: *mut c_int) -> c_int;
    fn MPI_Allgather(
        sendbuf: *const c_void,
        sendcount: c_int,
        sendtype: Handle,
        recvbuf: *mut c_void,
        recvcount: c_int,
        recvtype: Handle,
        comm: Handle,
    ) -> c_int;
    fn MPI_Alltoall(
        sendbuf: *const c_void,
        sendcount: c_int,
        sendtype: Handle,
        recvbuf: *mut c_void,
        recvcount: c_int,
        recvtype: Handle,
        comm: Handle,
    ) -> c_int;
    fn MPI_Bcast(buffer: *mut c_void, count: c_int, datatype: Handle, root: c_int, comm: Handle) -> c_int;
    fn MPI_Barrier(comm: Handle) -> c_int;
    fn MPI_Abort(comm: Handle, errorcode: c_int) -> c_int;
    fn MPI_Error_string(errorcode: c_int, string: *mut c_char, resultlen: *mut c_int) -> c_int;
}

fn comm_world() -> Handle {
    &raw const ompi_mpi_comm_world
}

fn byte_type() -> Handle {
    &raw const ompi_mpi_byte
}

fn float_type() -> Handle {
    &raw const ompi_mpi_float
}

/// MPI may be initialised once per process, and never again after `MPI_Finalize`.
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// This process's place in `MPI_COMM_WORLD`. Create one per process with [`MpiWorld::init`];
/// dropping it finalises MPI.
#[derive(Debug)]
pub struct MpiWorld {
    rank: usize,
    world_size: usize,
    /// Set when an MPI call failed or [`Collective::abort`] ran: other ranks may be stuck in a
    /// collective, so `Drop` aborts the job instead of finalising (which would wait for them).
    broken: bool,
}

impl MpiWorld {
    /// Initialises MPI (thread level `MPI_THREAD_SERIALIZED`) and makes MPI calls on the world
    /// communicator return their errors instead of killing the job.
    pub fn init() -> Result<MpiWorld> {
        let init_error = |reason: String| Error::Collective { rank: 0, world_size: 0, reason };
        if CLAIMED.swap(true, Ordering::SeqCst) {
            return Err(init_error("mpi is already initialised in this process".to_string()));
        }
        let mut initialized: c_int = 0;
        // SAFETY: MPI_Initialized may be called at any time and writes one int to the pointer.
        check("MPI_Initialized", unsafe { MPI_Initialized(&mut initialized) }).map_err(init_error)?;
        if initialized != 0 {
            return Err(init_error("mpi was initialised outside MpiWorld".to_string()));
        }
        let mut provided: c_int = 0;
        // SAFETY: null argc/argv are allowed since MPI-2; `provided` is a valid int to write.
        let code = unsafe {
            MPI_Init_thread(std::ptr::null_mut(), std::ptr::null_mut(), MPI_THREAD_SERIALIZED, &mut provided)
        };
        check("MPI_Init_thread", code).map_err(init_error)?;
        let mut world = MpiWorld { rank: 0, world_size: 0, broken: false };
        if provided < MPI_THREAD_SERIALIZED {
            world.broken = true;
            return Err(init_error(format!(
                "mpi provides thread level {provided}, needs MPI_THREAD_SERIALIZED ({MPI_THREAD_SERIALIZED})"
            )));
        }
        // SAFETY: both handles are Open MPI predefined objects, valid after MPI_Init_thread.
        world.call("MPI_Comm_set_errhandler", unsafe {
            MPI_Comm_set_errhandler(comm_world(), &raw const ompi_mpi_errors_return)
        })?;
        let (mut rank, mut size): (c_int, c_int) = (0, 0);
        // SAFETY: the communicator is valid and each call writes one int to its pointer.
        world.call("MPI_Comm_rank", unsafe { MPI_Comm_rank(comm_world(), &mut rank) })?;
        // SAFETY: as above.
        world.call("MPI_Comm_size", unsafe { MPI_Comm_size(comm_world(), &mut size) })?;
        match (usize::try_from(rank), usize::try_from(size)) {
            (Ok(rank), Ok(world_size)) if rank < world_size => {
                world.rank = rank;
                world.world_size = world_size;
                Ok(world)
            }
            _ => {
                world.broken = true;
                Err(init_error(format!("mpi reports rank {rank} of world size {size}")))
            }
        }
    }

    fn error(&self, reason: String) -> Error {
        Error::Collective { rank: self.rank, world_size: self.world_size, reason }
    }

    /// Turns an MPI return code into an error naming the call; a failed call marks the world
    /// broken.
    fn call(&mut self, name: &str, code: c_int) -> Result<()> {
        check(name, code).map_err(|reason| {
            self.broken = true;
            self.error(reason)
        })
    }

    fn count(&self, name: &str, len: usize) -> Result<c_int> {
        c_int::try_from(len).map_err(|_| self.error(format!("{name} count {len} exceeds mpi's int counts")))
    }

    /// Checks the local shapes, then that every rank made the same call.
    fn agree(&mut self, call: std::result::Result<Call, String>) -> Result<()> {
        let call = call.map_err(|reason| self.error(reason))?;
        let mut calls = vec![0u8; CALL_BYTES * self.world_size];
        self.gather_raw(&encode_call(call), &mut calls, byte_type(), CALL_BYTES)?;
        let calls: Option<Vec<Call>> = calls.chunks_exact(CALL_BYTES).map(decode_call).collect();
        let calls = calls
            .ok_or_else(|| self.error(format!("a rank sent an unreadable call for {}", call.op.name())))?;
        check_agreement(&calls).map_err(|reason| self.error(reason))
    }

    /// `MPI_Allgather` of `count` elements of `datatype` per rank. `send` must hold `count`
    /// elements and `recv` `world_size * count`, both of `datatype`'s size; callers guarantee it.
    fn gather_raw<T>(&mut self, send: &[T], recv: &mut [T], datatype: Handle, count: usize) -> Result<()> {
        debug_assert!(send.len() == count && recv.len() == count * self.world_size);
        if count == 0 {
            return Ok(());
        }
        let count = self.count("MPI_Allgather", count)?;
        // SAFETY: `send` holds `count` and `recv` `world_size * count` elements of the type
        // `datatype` describes (u8/MPI_BYTE or f32/MPI_FLOAT); the slices outlive the call.
        let code = unsafe {
            MPI_Allgather(
                send.as_ptr().cast(),
                count,
                datatype,
                recv.as_mut_ptr().cast(),
                count,
                datatype,
                comm_world(),
            )
        };
        self.call("MPI_Allgather", code)
    }
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world_size
    }

    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> Result<()> {
        self.agree(Ok(Call::all_reduce_sum(buf.len())))?;
        let mut gathered = vec![0f32; self.world_size * buf.len().min(SUM_CHUNK_VALUES)];
        for chunk in buf.chunks_mut(SUM_CHUNK_VALUES) {
            let gathered = &mut gathered[..self.world_size * chunk.len()];
            self.gather_raw(chunk, gathered, float_type(), chunk.len())?;
            let mut by_rank = gathered.chunks_exact(chunk.len());
            if let Some(first) = by_rank.next() {
                chunk.copy_from_slice(first);
            }
            for values in by_rank {
                chunk.iter_mut().zip(values).for_each(|(sum, value)| *sum += value);
            }
        }
        Ok(())
    }

    fn all_to_all(&mut self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        self.agree(Call::all_to_all(self.world_size, send.len(), recv.len()))?;
        if send.is_empty() {
            return Ok(());
        }
        let count = self.count("MPI_Alltoall", send.len() / self.world_size)?;
        // SAFETY: `send` and `recv` both hold `world_size * count` bytes (checked by `agree`);
        // the slices outlive the call.
        let code = unsafe {
            MPI_Alltoall(
                send.as_ptr().cast(),
                count,
                byte_type(),
                recv.as_mut_ptr().cast(),
                count,
                byte_type(),
                comm_world(),
            )
        };
        self.call("MPI_Alltoall", code)
    }

    fn all_gather(&mut self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        self.agree(Call::all_gather(Op::AllGather, self.world_size, send.len(), recv.len()))?;
        self.gather_raw(send, recv, byte_type(), send.len())
    }

    fn all_gather_f32(&mut self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        self.agree(Call::all_gather(Op::AllGatherF32, self.world_size, send.len(), recv.len()))?;
        self.gather_raw(send, recv, float_type(), send.len())
    }

    fn broadcast(&mut self, buf: &mut [u8], root: usize) -> Result<()> {
        self.agree(Call::broadcast(self.world_size, buf.len(), root))?;
        if buf.is_empty() {
            return Ok(());
        }
        let count = self.count("MPI_Bcast", buf.len())?;
        let root = self.count("MPI_Bcast root", root)?;
        // SAFETY: `buf` holds `count` bytes on every rank (checked by `agree`) and outlives the
        // call; `root` is a rank of the world.
        let code = unsafe { MPI_Bcast(buf.as_mut_ptr().cast(), count, byte_type(), root, comm_world()) };
        self.call("MPI_Bcast", code)
    }

    fn barrier(&mut self) -> Result<()> {
        self.agree(Ok(Call::barrier()))?;
        // SAFETY: the communicator is valid while MPI is initialised, which `self` guarantees.
        let code = unsafe { MPI_Barrier(comm_world()) };
        self.call("MPI_Barrier", code)
    }

    /// Prints `reason` to stderr and calls `MPI_Abort`, which makes `mpirun` kill every rank.
    fn abort(&mut self, reason: &str) {
        self.broken = true;
        // One write of the whole line: eprintln! may split it into several writes, and mpirun's
        // own abort notice on the same stderr can land between them.
        let line = format!("rank {} of {}: aborting the mpi job: {reason}\n", self.rank, self.world_size);
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
        // SAFETY: the communicator is valid while MPI is initialised; MPI_Abort takes no pointers.
        let code = unsafe { MPI_Abort(comm_world(), 1) };
        if code != MPI_SUCCESS {
            eprintln!("rank {} of {}: MPI_Abort failed: {}", self.rank, self.world_size, error_string(code));
        }
    }
}

impl Drop for MpiWorld {
    fn drop(&mut self) {
        if self.broken || std::thread::panicking() {
            self.abort("the mpi world was dropped after a failure");
            return;
        }
        // SAFETY: MPI was initialised by `init` and is finalised exactly once, here.
        let code = unsafe { MPI_Finalize() };
        if let Err(reason) = check("MPI_Finalize", code) {
            eprintln!("rank {} of {}: {reason}", self.rank, self.world_size);
        }
    }
}

/// Wire codes of the operations: an operation's code is its index here.
const WIRE_OPS: [Op; 6] =
    [Op::AllReduceSum, Op::AllToAll, Op::AllGather, Op::AllGatherF32, Op::Broadcast, Op::Barrier];
/// Size of [`encode_call`]'s encoding: operation code, length and root as little-endian u64s.
const CALL_BYTES: usize = 24;

fn encode_call(call: Call) -> [u8; CALL_BYTES] {
    let code = WIRE_OPS.iter().position(|op| *op == call.op).unwrap_or(WIRE_OPS.len());
    let mut bytes = [0u8; CALL_BYTES];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip([code, call.len, call.root]) {
        chunk.copy_from_slice(&(word as u64).to_le_bytes());
    }
    bytes
}

/// Inverse of [`encode_call`]; `None` for bytes no rank could have sent.
fn decode_call(bytes: &[u8]) -> Option<Call> {
    let mut words = bytes.chunks_exact(8).map(|chunk| {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        usize::try_from(u64::from_le_bytes(word)).ok()
    });
    let op = *WIRE_OPS.get(words.next()??)?;
    Some(Call { op, len: words.next()??, root: words.next()?? })
}

/// `Ok` for `MPI_SUCCESS`, otherwise a message naming the call and MPI's description.
fn check(name: &str, code: c_int) -> std::result::Result<(), String> {
    if code == MPI_SUCCESS {
        Ok(())
    } else {
        Err(format!("{name} failed: {}", error_string(code)))
    }
}

fn error_string(code: c_int) -> String {
    let mut text = [0u8; MPI_MAX_ERROR_STRING];
    let mut len: c_int = 0;
    // SAFETY: `text` has room for MPI_MAX_ERROR_STRING characters, as MPI_Error_string requires,
    // and `len` is a valid int to write.
    let status = unsafe { MPI_Error_string(code, text.as_mut_ptr().cast(), &mut len) };
    let len = usize::try_from(len).unwrap_or(0).min(text.len());
    if status == MPI_SUCCESS && len > 0 {
        format!("{} (code {code})", String::from_utf8_lossy(&text[..len]))
    } else {
        format!("error code {code}")
    }
}
