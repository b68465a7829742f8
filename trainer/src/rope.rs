//! Rotary position embeddings in the Hugging Face "rotate half" layout (the loader un-permutes
//! GGUF q/k weights into that layout, so one variant serves both formats).

use candle_core::{Device, Result, Tensor};

/// Precomputed cos/sin tables, `[max_positions, head_dim / 2]` each.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    cos: Tensor,
    sin: Tensor,
    max_positions: usize,
}

impl RotaryEmbedding {
    /// Builds the tables as transformers does, in f32: `inv_freq[i] = 1 / theta^(2i / head_dim)`,
    /// angle = position * inv_freq.
    pub fn new(head_dim: usize, theta: f32, max_positions: usize, device: &Device) -> Result<Self> {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> =
            (0..half).map(|i| 1.0 / theta.powf((2 * i) as f32 / head_dim as f32)).collect();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for position in 0..max_positions {
            for freq in &inv_freq {
                let angle = position as f32 * freq;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (max_positions, half), device)?,
            sin: Tensor::from_vec(sin, (max_positions, half), device)?,
            max_positions,
        })
    }

    /// Rotates `xs` of shape `[batch, heads, seq, head_dim]` whose first token sits at `start_pos`.
    pub fn apply(&self, xs: &Tensor, start_pos: usize) -> Result<Tensor> {
        let (cos, sin) = self.cos_sin(start_pos, xs.dim(2)?)?;
        if xs.track_op() {
            crate::ops::rope(xs, &cos, &sin)
        } else {
            candle_nn::rotary_emb::rope(&xs.contiguous()?, &cos, &sin)
        }
    }

    /// The cos and sin rows of positions `start_pos..start_pos + seq_len`, `[seq_len, head_dim / 2]`
    /// each.
    pub fn cos_sin(&self, start_pos: usize, seq_len: usize) -> Result<(Tensor, Tensor)> {
        if start_pos + seq_len > self.max_positions {
            candle_core::bail!(
                "positions {start_pos}..{} exceed the model's {} positions",
                start_pos + seq_len,
                self.max_positions
            )
        }
        Ok((self.cos.narrow(0, start_pos, seq_len)?, self.sin.narrow(0, start_pos, seq_len)?))
    }

    /// Rotates `xs` (`[batch, heads, seq, head_dim]`) where token `j` of row `b` sits at position
    /// `positions[b][j]` (`[batch, seq]`, u32): left-padded batches give every row its own offset.
    /// Inference only (no backward).
    pub fn apply_rows(&self, xs: &Tensor, positions: &Tensor) -> Result<Tensor> {
        let (batch, seq_len) = positions.dims2()?;
        let flat = positions.flatten_all()?;
        let half = self.cos.dim(1)?;
        let cos = self.cos.index_select(&flat, 0)?.reshape((batch, seq_len, half))?;
        let sin = self.sin.index_select(&flat, 0)?.reshape((batch, seq_len, half))?;
        candle_nn::rotary_emb::rope(&xs.contiguous()?, &cos, &sin)
    }

    /// Number of positions the tables cover.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }
}
