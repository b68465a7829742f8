//! What one rank asks of a collective (operation, buffer length, root) and the checks that every
//! rank asked for the same thing, shared by every [`Collective`](super::Collective) implementation.
//!
//! Local checks (a receive buffer of the wrong size) run before any communication; the agreement
//! check runs once every rank's [`Call`] is known, so that a rank passing 6 values where the others
//! pass 8 is an error naming both lengths rather than a truncated read or a hang.

/// The collective operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    AllReduceSum,
    AllToAll,
    AllGather,
    AllGatherF32,
    Broadcast,
    Barrier,
}

impl Op {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::AllReduceSum => "all_reduce_sum",
            Op::AllToAll => "all_to_all",
            Op::AllGather => "all_gather",
            Op::AllGatherF32 => "all_gather_f32",
            Op::Broadcast => "broadcast",
            Op::Barrier => "barrier",
        }
    }

    /// What the operation's buffer lengths count.
    fn unit(self) -> &'static str {
        match self {
            Op::AllReduceSum | Op::AllGatherF32 => "values",
            Op::AllToAll | Op::AllGather | Op::Broadcast | Op::Barrier => "bytes",
        }
    }
}

/// One rank's request: the operation, its send length (in the operation's unit) and the root
/// (0 for operations without one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Call {
    pub(crate) op: Op,
    pub(crate) len: usize,
    pub(crate) root: usize,
}

impl Call {
    pub(crate) fn all_reduce_sum(len: usize) -> Call {
        Call { op: Op::AllReduceSum, len, root: 0 }
    }

    pub(crate) fn barrier() -> Call {
        Call { op: Op::Barrier, len: 0, root: 0 }
    }

    /// `send` and `recv` have the same length, a multiple of `world_size`.
    pub(crate) fn all_to_all(world_size: usize, send_len: usize, recv_len: usize) -> Result<Call, String> {
        if send_len != recv_len {
            return Err(format!("all_to_all send has {send_len} bytes but recv has {recv_len}"));
        }
        if !send_len.is_multiple_of(world_size) {
            return Err(format!(
                "all_to_all send has {send_len} bytes, not a multiple of world size {world_size}"
            ));
        }
        Ok(Call { op: Op::AllToAll, len: send_len, root: 0 })
    }

    /// `recv` holds `world_size` copies of `send`'s length, for [`Op::AllGather`] or
    /// [`Op::AllGatherF32`].
    pub(crate) fn all_gather(
        op: Op,
        world_size: usize,
        send_len: usize,
        recv_len: usize,
    ) -> Result<Call, String> {
        let expected = send_len.checked_mul(world_size);
        if expected != Some(recv_len) {
            return Err(format!(
                "{} recv has {recv_len} {}, expected world size {world_size} x send {send_len}",
                op.name(),
                op.unit()
            ));
        }
        Ok(Call { op, len: send_len, root: 0 })
    }

    pub(crate) fn broadcast(world_size: usize, len: usize, root: usize) -> Result<Call, String> {
        if root >= world_size {
            return Err(format!("broadcast root {root} is not a rank of world size {world_size}"));
        }
        Ok(Call { op: Op::Broadcast, len, root })
    }
}

/// Checks that every rank (index = rank) made the same call; the message names the first rank
/// that differs from rank 0 and both values.
pub(crate) fn check_agreement(calls: &[Call]) -> Result<(), String> {
    let Some(first) = calls.first() else {
        return Ok(());
    };
    for (rank, call) in calls.iter().enumerate().skip(1) {
        if call.op != first.op {
            return Err(format!(
                "rank 0 called {} but rank {rank} called {}",
                first.op.name(),
                call.op.name()
            ));
        }
        if call.len != first.len {
            return Err(format!(
                "{} buffer length mismatch: rank 0 has {} {unit}, rank {rank} has {} {unit}",
                first.op.name(),
                first.len,
                call.len,
                unit = first.op.unit()
            ));
        }
        if call.root != first.root {
            return Err(format!(
                "{} root mismatch: rank 0 names root {}, rank {rank} names root {}",
                first.op.name(),
                first.root,
                call.root
            ));
        }
    }
    Ok(())
}
