//! `finagent bench`: speed measurements printed as JSON lines, one per measurement.
//!
//! `matmul` times `QuantLinear`'s products (NF4, int8: forward `x · W^T`, backward `g · W`)
//! against candle's dense f32 matmul (the `gemm` crate) and candle's GGML `QMatMul` on the same
//! shapes. Shapes are written `in x out` (the `K x N` of the product).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use kernels::fast::{int8_vectorwise_forward, product, ProductConfig, ProductPath};
use kernels::{
    Direction, FourBitConfig, FourBitTensor, Int8LinearConfig, Int8Weight, Isa, QuantInput, QuantWeight,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: BenchCommand,
}

impl Args {
    /// Whether this runs training steps (`bench train`).
    pub fn is_train(&self) -> bool {
        matches!(self.command, BenchCommand::Train(_))
    }
}

#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// Quantized linear products against candle's dense and GGML-quantized matmul.
    Matmul(MatmulArgs),
    /// LoRA training steps on the default model: tokens/s and peak RSS as one JSON line.
    Train(super::bench_train::TrainArgs),
    /// Prefill and greedy decode tokens/s on the default model as one JSON line.
    Infer(super::bench_infer::InferArgs),
}

#[derive(Debug, clap::Args)]
struct MatmulArgs {
    /// Which weight shapes: SmolLM2-135M's projections, Llama-3-8B's, or both.
    #[arg(long, value_enum, default_value = "default")]
    shapes: ShapeSet,
    /// Activation rows (batch * sequence) per product.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256,1024")]
    tokens: Vec<usize>,
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "nf4,int8,dense,qmatmul-q4_1,qmatmul-q8_0"
    )]
    formats: Vec<Format>,
    /// Also time the input gradient `g · W` (QMatMul has none and is skipped).
    #[arg(long)]
    backward: bool,
    /// Keep repeating a measurement for at least this long; the median is reported.
    #[arg(long, default_value_t = 300)]
    min_ms: u64,
    /// Panel budget of the tiled path in KiB (default: the library's).
    #[arg(long)]
    panel_kib: Option<usize>,
    /// SIMD level of the fused kernels (default: the widest this CPU has).
    #[arg(long, value_enum)]
    isa: Option<IsaArg>,
    /// Force the fused or the tiled path (default: chosen by row count).
    #[arg(long, value_enum, default_value = "auto")]
    path: PathArg,
    /// Arithmetic of the tiled path for nf4 and int8: f32, or bf16 operands summed in f32
    /// (needs AVX-512 BF16; f32 elsewhere, as the JSON line's "compute" says).
    #[arg(long, value_enum, default_value = "f32")]
    compute: super::ComputeArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PathArg {
    Auto,
    Fused,
    Tiled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum IsaArg {
    Scalar,
    Avx2,
    Avx512,
}

impl IsaArg {
    fn isa(self) -> Isa {
        match self {
            IsaArg::Scalar => Isa::Scalar,
            IsaArg::Avx2 => Isa::Avx2,
            IsaArg::Avx512 => Isa::Avx512,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ShapeSet {
    Default,
    Llama8b,
    All,
}

impl ShapeSet {
    /// `(in_features, out_features)` pairs.
    fn shapes(self) -> Vec<(usize, usize)> {
        // q/o, k/v, gate/up, down of SmolLM2-135M.
        let default = [(576, 576), (576, 192), (576, 1536), (1536, 576)];
        // q/o, gate/up of Llama-3-8B.
        let llama8b = [(4096, 4096), (4096, 14336)];
        match self {
            ShapeSet::Default => default.to_vec(),
            ShapeSet::Llama8b => llama8b.to_vec(),
            ShapeSet::All => default.iter().chain(&llama8b).copied().collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Nf4,
    /// int8 weights times f32 activations (the weight dequantized in panels).
    Int8,
    /// LLM.int8 as bitsandbytes runs it: int8 activations (threshold 6.0), int32 products.
    #[value(name = "llm-int8")]
    LlmInt8,
    Dense,
    #[value(name = "qmatmul-q4_1")]
    QmatmulQ4_1,
    #[value(name = "qmatmul-q8_0")]
    QmatmulQ8_0,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Nf4 => "nf4",
            Format::Int8 => "int8",
            Format::LlmInt8 => "llm-int8",
            Format::Dense => "dense",
            Format::QmatmulQ4_1 => "qmatmul-q4_1",
            Format::QmatmulQ8_0 => "qmatmul-q8_0",
        }
    }
}

pub fn run(home: Option<&Path>, args: Args) -> Result<()> {
    match args.command {
        BenchCommand::Matmul(args) => run_matmul(&args),
        BenchCommand::Train(args) => super::bench_train::run(home, args),
        BenchCommand::Infer(args) => super::bench_infer::run(home, args),
    }
}

fn run_matmul(args: &MatmulArgs) -> Result<()> {
    let mut config = ProductConfig::default();
    if let Some(panel_kib) = args.panel_kib {
        config.panel_bytes = panel_kib * 1024;
    }
    if let Some(isa) = args.isa {
        config.isa = isa.isa();
    }
    config.compute = args.compute.into();
    config.path = match args.path {
        PathArg::Auto => ProductPath::Auto,
        PathArg::Fused => ProductPath::Fused,
        PathArg::Tiled => ProductPath::Tiled,
    };
    let min_time = Duration::from_millis(args.min_ms);
    for (in_features, out_features) in args.shapes.shapes() {
        let weight = pseudo_random(out_features * in_features, 1, 0.05);
        for &format in &args.formats {
            let layer = Layer::new(format, &weight, out_features, in_features).with_context(|| {
                format!("preparing {} weight {in_features}x{out_features}", format.name())
            })?;
            for &tokens in &args.tokens {
                let mut directions = vec![Direction::Forward];
                // QMatMul has no backward; LLM.int8's is the int8 format's.
                if args.backward && !matches!(layer, Layer::QMatMul(_) | Layer::LlmInt8(_)) {
                    directions.push(Direction::Backward);
                }
                for direction in directions {
                    let Timing { median_ms: ms, best_ms } =
                        layer.time(direction, tokens, &config, min_time)?;
                    let flops = 2.0 * (tokens * out_features * in_features) as f64;
                    let line = serde_json::json!({
                        "shape": format!("{in_features}x{out_features}"),
                        "in_features": in_features,
                        "out_features": out_features,
                        "tokens": tokens,
                        "format": format.name(),
                        "compute": if matches!(layer, Layer::Quant(_)) {
                            config.compute.runs_as(config.isa).name()
                        } else {
                            "f32"
                        },
                        "direction": if direction == Direction::Forward { "forward" } else { "backward" },
                        "gflops": (flops / (ms * 1e6) * 100.0).round() / 100.0,
                        "ms": (ms * 1e4).round() / 1e4,
                        "best_ms": (best_ms * 1e4).round() / 1e4,
                    });
                    outln!("{line}");
                }
            }
        }
    }
    Ok(())
}

/// One weight in the format under test.
enum Layer {
    Quant(QuantWeight),
    LlmInt8(Int8Weight),
    /// `W [out, in]`.
    Dense(Tensor),
    QMatMul(QMatMul),
}

impl Layer {
    fn new(format: Format, weight: &[f32], out_features: usize, in_features: usize) -> Result<Layer> {
        let dense = || Tensor::from_slice(weight, (out_features, in_features), &Device::Cpu);
        Ok(match format {
            Format::Nf4 => Layer::Quant(QuantWeight::FourBit(FourBitTensor::quantize(
                weight,
                &[out_features, in_features],
                &FourBitConfig::default(),
            )?)),
            Format::Int8 => Layer::Quant(QuantWeight::Int8(Int8Weight::quantize(
                weight,
                out_features,
                in_features,
                QuantInput::AsIs,
            )?)),
            Format::LlmInt8 => {
                Layer::LlmInt8(Int8Weight::quantize(weight, out_features, in_features, QuantInput::AsIs)?)
            }
            Format::Dense => Layer::Dense(dense()?),
            Format::QmatmulQ4_1 => {
                Layer::QMatMul(QMatMul::from_qtensor(QTensor::quantize(&dense()?, GgmlDType::Q4_1)?)?)
            }
            Format::QmatmulQ8_0 => {
                Layer::QMatMul(QMatMul::from_qtensor(QTensor::quantize(&dense()?, GgmlDType::Q8_0)?)?)
            }
        })
    }

    /// Milliseconds of one product with `tokens` activation rows.
    fn time(
        &self,
        direction: Direction,
        tokens: usize,
        config: &ProductConfig,
        min_time: Duration,
    ) -> Result<Timing> {
        let run: Box<dyn Fn() -> Result<()> + '_> = match self {
            Layer::Quant(weight) => {
                let (out_features, in_features) = weight.matrix_dims()?;
                let width = if direction == Direction::Forward { in_features } else { out_features };
                let input = pseudo_random(tokens * width, 2, 1.0);
                Box::new(move || {
                    black_box(product(weight, direction, &input, tokens, config)?);
                    Ok(())
                })
            }
            Layer::LlmInt8(weight) => {
                let input = pseudo_random(tokens * weight.in_features(), 2, 1.0);
                let isa = config.isa;
                Box::new(move || {
                    black_box(int8_vectorwise_forward(
                        &input,
                        tokens,
                        weight,
                        None,
                        &Int8LinearConfig::default(),
                        isa,
                    )?);
                    Ok(())
                })
            }
            Layer::Dense(weight) => {
                let (out_features, in_features) = weight.dims2()?;
                let (width, rhs) = match direction {
                    Direction::Forward => (in_features, weight.t()?),
                    Direction::Backward => (out_features, weight.clone()),
                };
                let input =
                    Tensor::from_vec(pseudo_random(tokens * width, 2, 1.0), (tokens, width), &Device::Cpu)?;
                Box::new(move || {
                    black_box(input.matmul(&rhs)?);
                    Ok(())
                })
            }
            Layer::QMatMul(matmul) => {
                let in_features = match matmul {
                    QMatMul::QTensor(tensor) => tensor.shape().dims2()?.1,
                    QMatMul::Tensor(tensor) | QMatMul::TensorF16(tensor) => tensor.dims2()?.1,
                };
                let input = Tensor::from_vec(
                    pseudo_random(tokens * in_features, 2, 1.0),
                    (tokens, in_features),
                    &Device::Cpu,
                )?;
                Box::new(move || {
                    black_box(matmul.forward(&input)?);
                    Ok(())
                })
            }
        };
        run()?; // warm-up: page in buffers, spin up the thread pool
        let mut samples_ms = Vec::new();
        let started = Instant::now();
        while samples_ms.len() < 3 || (started.elapsed() < min_time && samples_ms.len() < 10_000) {
            let start = Instant::now();
            run()?;
            samples_ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
        samples_ms.sort_by(f64::total_cmp);
        Ok(Timing { median_ms: samples_ms[samples_ms.len() / 2], best_ms: samples_ms[0] })
    }
}

/// The median shows the usual cost on a busy machine, the best what the code can do.
struct Timing {
    median_ms: f64,
    best_ms: f64,
}

/// Deterministic values in [-amplitude, amplitude).
fn pseudo_random(n_values: usize, seed: u64, amplitude: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n_values)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amplitude
        })
        .collect()
}
