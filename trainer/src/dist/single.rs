//! The world of one: every collective is a copy, so single-process training runs the same code
//! path as data-parallel training.

use super::call::{Call, Op};
use super::Collective;
use crate::error::{Error, Result};

/// A world of size 1. Buffer shapes are still checked, so code that is wrong for `N` ranks is
/// usually already wrong here.
#[derive(Debug, Default)]
pub struct SingleProcess {
    /// The reason given to [`Collective::abort`]; later collectives fail with it.
    aborted: Option<String>,
}

impl SingleProcess {
    pub fn new() -> SingleProcess {
        SingleProcess::default()
    }

    fn error(&self, reason: String) -> Error {
        Error::Collective { rank: 0, world_size: 1, reason }
    }

    /// Fails if the process gave up earlier, or if the local shape check failed.
    fn admit(&self, call: std::result::Result<Call, String>) -> Result<()> {
        if let Some(reason) = &self.aborted {
            return Err(self.error(format!("rank 0 failed: {reason}")));
        }
        call.map(|_| ()).map_err(|reason| self.error(reason))
    }
}

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn world_size(&self) -> usize {
        1
    }

    fn all_reduce_sum(&mut self, buf: &mut [f32]) -> Result<()> {
        self.admit(Ok(Call::all_reduce_sum(buf.len())))
    }

    fn all_to_all(&mut self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        self.admit(Call::all_to_all(1, send.len(), recv.len()))?;
        recv.copy_from_slice(send);
        Ok(())
    }

    fn all_gather(&mut self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        self.admit(Call::all_gather(Op::AllGather, 1, send.len(), recv.len()))?;
        recv.copy_from_slice(send);
        Ok(())
    }

    fn all_gather_f32(&mut self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        self.admit(Call::all_gather(Op::AllGatherF32, 1, send.len(), recv.len()))?;
        recv.copy_from_slice(send);
        Ok(())
    }

    fn broadcast(&mut self, buf: &mut [u8], root: usize) -> Result<()> {
        self.admit(Call::broadcast(1, buf.len(), root))
    }

    fn barrier(&mut self) -> Result<()> {
        self.admit(Ok(Call::barrier()))
    }

    fn abort(&mut self, reason: &str) {
        if self.aborted.is_none() {
            self.aborted = Some(reason.to_string());
        }
    }
}
