//! One module per subcommand, each with clap `Args` and `run(home, args) -> anyhow::Result<()>`.

pub mod ask;
pub mod ask_batch;
pub mod bench;
pub mod bench_infer;
pub mod bench_train;
pub mod datasets;
pub mod estimate;
pub mod eval;
pub mod fetch;
pub mod fetch_model;
pub mod index;
pub mod quantize;
pub mod report;
pub mod serve;
pub mod tag;
pub mod train;

/// `--int8-matmul`: how an 8-bit base computes its forward pass (`trainer::quantize::Int8Matmul`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Int8MatmulArg {
    /// f32 activations times the dequantized int8 weight (only the weight is quantized).
    #[default]
    Dequantized,
    /// bitsandbytes' LLM.int8: int8 activations (outliers of magnitude 6.0 or more in f32), int32
    /// products on AVX-512 VNNI where the CPU has it.
    #[value(name = "llm-int8")]
    LlmInt8,
}

impl From<Int8MatmulArg> for trainer::quantize::Int8Matmul {
    fn from(arg: Int8MatmulArg) -> Self {
        match arg {
            Int8MatmulArg::Dequantized => trainer::quantize::Int8Matmul::Dequantized,
            Int8MatmulArg::LlmInt8 => trainer::quantize::Int8Matmul::LlmInt8,
        }
    }
}

/// The arithmetic of a quantized base's many-row products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ComputeArg {
    /// f32 products and sums.
    #[default]
    F32,
    /// Operands rounded to bf16, sums in f32 (QLoRA's compute dtype; needs AVX-512 BF16, f32
    /// on other CPUs).
    Bf16,
}

impl From<ComputeArg> for kernels::Compute {
    fn from(arg: ComputeArg) -> Self {
        match arg {
            ComputeArg::F32 => kernels::Compute::F32,
            ComputeArg::Bf16 => kernels::Compute::Bf16,
        }
    }
}

impl From<ComputeArg> for trainer::quantize::ComputeDtype {
    fn from(arg: ComputeArg) -> Self {
        match arg {
            ComputeArg::F32 => trainer::quantize::ComputeDtype::F32,
            ComputeArg::Bf16 => trainer::quantize::ComputeDtype::Bf16,
        }
    }
}

/// The process's peak resident set (`VmHWM` of /proc/self/status), in bytes.
pub fn peak_rss_bytes() -> anyhow::Result<u64> {
    use anyhow::Context as _;
    let status = std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse::<u64>().ok())
        .context("no VmHWM line in /proc/self/status")?;
    Ok(kib * 1024)
}

/// [`peak_rss_bytes`] in MiB, as the peer scripts' `ru_maxrss / 1024` reports it.
pub fn peak_rss_mb() -> anyhow::Result<u64> {
    Ok(peak_rss_bytes()? >> 20)
}
