//! Criterion benchmarks of `QuantLinear`'s product paths against candle's dense f32 matmul, at
//! SmolLM2-135M's projection shapes; `finagent bench matmul` prints the same as JSON lines.

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kernels::fast::{product, ProductConfig, ProductPath, DEFAULT_PANEL_BYTES};
use kernels::{Direction, FourBitConfig, FourBitTensor, Int8Weight, QuantInput, QuantWeight};

/// `(out_features, in_features)` of q/o, k/v, gate/up and down.
const SHAPES: [(usize, usize); 4] = [(576, 576), (192, 576), (1536, 576), (576, 1536)];
const TOKENS: [usize; 3] = [1, 16, 256];

fn pseudo_random(n_values: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n_values)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
        })
        .collect()
}

fn weights(out_features: usize, in_features: usize) -> (Vec<f32>, Vec<(&'static str, QuantWeight)>) {
    let dense = pseudo_random(out_features * in_features, 1);
    let nf4 = FourBitTensor::quantize(&dense, &[out_features, in_features], &FourBitConfig::default())
        .expect("nf4 weight");
    let int8 = Int8Weight::quantize(&dense, out_features, in_features, QuantInput::AsIs).expect("int8");
    (dense, vec![("nf4", QuantWeight::FourBit(nf4)), ("int8", QuantWeight::Int8(int8))])
}

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward");
    for (out_features, in_features) in SHAPES {
        let (dense, quantized) = weights(out_features, in_features);
        let dense_weight = Tensor::from_vec(dense, (out_features, in_features), &Device::Cpu).expect("dense");
        for tokens in TOKENS {
            let flops = 2 * tokens * out_features * in_features;
            group.throughput(Throughput::Elements(flops as u64));
            let x = pseudo_random(tokens * in_features, 2);
            let shape = format!("{out_features}x{in_features}/{tokens}");
            for (name, weight) in &quantized {
                let config = ProductConfig::default();
                group.bench_with_input(BenchmarkId::new(*name, &shape), &x, |b, x| {
                    b.iter(|| product(weight, Direction::Forward, x, tokens, &config).expect("product"))
                });
            }
            let x_tensor = Tensor::from_vec(x, (tokens, in_features), &Device::Cpu).expect("x");
            group.bench_with_input(BenchmarkId::new("dense", &shape), &x_tensor, |b, x| {
                b.iter(|| x.matmul(&dense_weight.t().expect("t")).expect("matmul"))
            });
        }
    }
    group.finish();
}

fn backward(c: &mut Criterion) {
    let mut group = c.benchmark_group("backward");
    for (out_features, in_features) in SHAPES {
        let (_, quantized) = weights(out_features, in_features);
        for tokens in TOKENS {
            group.throughput(Throughput::Elements((2 * tokens * out_features * in_features) as u64));
            let grad = pseudo_random(tokens * out_features, 3);
            let shape = format!("{out_features}x{in_features}/{tokens}");
            for (name, weight) in &quantized {
                let config = ProductConfig::default();
                group.bench_with_input(BenchmarkId::new(*name, &shape), &grad, |b, grad| {
                    b.iter(|| product(weight, Direction::Backward, grad, tokens, &config).expect("product"))
                });
            }
        }
    }
    group.finish();
}

/// The tiled path's panel budget at 256 tokens, the choice behind `DEFAULT_PANEL_BYTES`.
fn panel_size(c: &mut Criterion) {
    let mut group = c.benchmark_group("panel_bytes");
    let (out_features, in_features, tokens) = (1536, 576, 256);
    let (_, quantized) = weights(out_features, in_features);
    let x = pseudo_random(tokens * in_features, 2);
    group.throughput(Throughput::Elements((2 * tokens * out_features * in_features) as u64));
    for panel_bytes in [128 * 1024, 256 * 1024, DEFAULT_PANEL_BYTES, 2 * 1024 * 1024] {
        let config = ProductConfig { path: ProductPath::Tiled, panel_bytes, ..ProductConfig::default() };
        group.bench_with_input(BenchmarkId::new("nf4", panel_bytes), &x, |b, x| {
            b.iter(|| product(&quantized[0].1, Direction::Forward, x, tokens, &config).expect("product"))
        });
    }
    group.finish();
}

criterion_group!(benches, forward, backward, panel_size);
criterion_main!(benches);
