//! `QuantLinear` against a dense candle reference (forward and gradients) and central finite differences.
//!
//! Every test runs over NF4 (double-quantized, with a tail block), FP4 (plain absmax, blocks of 32)
//! and int8 weights of an odd shape, with a LoRA pair after the layer as in QLoRA training.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Module, Result, Tensor, Var};
use kernels::{
    FourBitConfig, FourBitFormat, FourBitTensor, Int8Weight, QuantInput, QuantLinear, QuantWeight,
};

const OUT_FEATURES: usize = 33;
const IN_FEATURES: usize = 70;
const LORA_RANK: usize = 4;
const LORA_SCALE: f64 = 0.5;
/// Leading dims of the activations, flattened by the layer into 6 rows.
const BATCH_DIMS: [usize; 2] = [2, 3];

/// Deterministic values in [-amplitude, amplitude) from a linear congruential generator.
fn pseudo_random(n_values: usize, seed: u64, amplitude: f64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (0..n_values)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * amplitude
        })
        .collect()
}

/// The quantized weights under test, by name.
fn quant_weights() -> Vec<(&'static str, QuantWeight)> {
    let dense: Vec<f32> =
        pseudo_random(OUT_FEATURES * IN_FEATURES, 7, 0.2).into_iter().map(|v| v as f32).collect();
    let shape = [OUT_FEATURES, IN_FEATURES];
    let nf4 = FourBitTensor::quantize(&dense, &shape, &FourBitConfig::default()).expect("nf4");
    let fp4_config = FourBitConfig { format: FourBitFormat::Fp4, blocksize: 32, double_quant: false };
    let fp4 = FourBitTensor::quantize(&dense, &shape, &fp4_config).expect("fp4");
    let int8 = Int8Weight::quantize(&dense, OUT_FEATURES, IN_FEATURES, QuantInput::AsIs).expect("int8");
    vec![
        ("nf4", QuantWeight::FourBit(nf4)),
        ("fp4", QuantWeight::FourBit(fp4)),
        ("int8", QuantWeight::Int8(int8)),
    ]
}

fn tensor(values: Vec<f64>, dims: &[usize], dtype: DType) -> Tensor {
    Tensor::from_vec(values, dims, &Device::Cpu).and_then(|t| t.to_dtype(dtype)).expect("build tensor")
}

fn activation_dims() -> Vec<usize> {
    [&BATCH_DIMS[..], &[IN_FEATURES]].concat()
}

/// Trainable inputs of the loss: activations, LoRA A `[rank, in]` and B `[out, rank]`, bias `[out]`.
struct Params {
    x: Var,
    lora_a: Var,
    lora_b: Var,
    bias: Var,
}

impl Params {
    fn new(dtype: DType) -> Params {
        let var = |values, dims: &[usize]| Var::from_tensor(&tensor(values, dims, dtype)).expect("var");
        Params {
            x: var(pseudo_random(6 * IN_FEATURES, 1, 1.0), &activation_dims()),
            lora_a: var(pseudo_random(LORA_RANK * IN_FEATURES, 2, 0.1), &[LORA_RANK, IN_FEATURES]),
            // Non-zero B (unlike LoRA's initialisation) so that A receives a gradient too.
            lora_b: var(pseudo_random(OUT_FEATURES * LORA_RANK, 3, 0.1), &[OUT_FEATURES, LORA_RANK]),
            bias: var(pseudo_random(OUT_FEATURES, 4, 0.5), &[OUT_FEATURES]),
        }
    }

    fn vars(&self) -> [(&'static str, &Var); 4] {
        [("x", &self.x), ("lora_a", &self.lora_a), ("lora_b", &self.lora_b), ("bias", &self.bias)]
    }
}

/// `sum(probe * (base(x) + (x · A^T) · B^T * scale))`, a scalar whose gradient is that of a training step.
fn lora_loss(base: &dyn Fn(&Tensor) -> Result<Tensor>, params: &Params, probe: &Tensor) -> Result<Tensor> {
    let x = params.x.as_tensor();
    let lora = x.broadcast_matmul(&params.lora_a.t()?)?.broadcast_matmul(&params.lora_b.t()?)?;
    let y = (base(x)? + (lora * LORA_SCALE)?)?;
    (y * probe)?.sum_all()
}

fn quant_layer(weight: &QuantWeight, params: &Params) -> QuantLinear {
    QuantLinear::new(weight.clone(), Some(params.bias.as_tensor().clone())).expect("quant linear")
}

/// The dense reference: `x · deq(W)^T + b` with candle's own matmul.
fn dense_forward(weight: &QuantWeight, params: &Params, x: &Tensor) -> Result<Tensor> {
    let values = weight.dequantize().into_iter().map(f64::from).collect();
    let dense = tensor(values, &[OUT_FEATURES, IN_FEATURES], x.dtype());
    x.broadcast_matmul(&dense.t()?)?.broadcast_add(params.bias.as_tensor())
}

fn probe(dtype: DType) -> Tensor {
    tensor(pseudo_random(6 * OUT_FEATURES, 5, 1.0), &[&BATCH_DIMS[..], &[OUT_FEATURES]].concat(), dtype)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_dtype(DType::F64)?.to_scalar::<f64>())
        .expect("max abs diff")
}

fn grad<'a>(grads: &'a GradStore, name: &str, var: &Var) -> &'a Tensor {
    grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"))
}

#[test]
fn forward_equals_dense_matmul() {
    let params = Params::new(DType::F32);
    for (name, weight) in quant_weights() {
        let layer = quant_layer(&weight, &params);
        let x = params.x.as_tensor();
        let y = layer.forward(x).expect("quant forward");
        let reference = dense_forward(&weight, &params, x).expect("dense forward");
        assert_eq!(y.dims(), &[2, 3, OUT_FEATURES], "{name}");
        // Dot products of 70 terms of size <= 0.2 in f32, summed in a different order than gemm's.
        assert!(max_abs_diff(&y, &reference) <= 1e-5, "{name}: {}", max_abs_diff(&y, &reference));

        // A strided (transposed) view of the same activations gives the same result.
        let transposed = x.t().and_then(|t| t.contiguous()).and_then(|t| t.t()).expect("strided x");
        assert!(!transposed.is_contiguous());
        let strided_y = layer.forward(&transposed).expect("quant forward of strided x");
        assert_eq!(max_abs_diff(&strided_y, &y), 0.0, "{name}: strided input");
    }
}

#[test]
fn gradients_equal_dense_reference() {
    let params = Params::new(DType::F32);
    let probe = probe(DType::F32);
    for (name, weight) in quant_weights() {
        let layer = quant_layer(&weight, &params);
        let quant_grads = lora_loss(&|x| layer.forward(x), &params, &probe)
            .and_then(|loss| loss.backward())
            .expect("quant backward");
        let dense_grads = lora_loss(&|x| dense_forward(&weight, &params, x), &params, &probe)
            .and_then(|loss| loss.backward())
            .expect("dense backward");
        for (var_name, var) in params.vars() {
            let diff = max_abs_diff(grad(&quant_grads, var_name, var), grad(&dense_grads, var_name, var));
            assert!(diff <= 1e-5, "{name}: gradient of {var_name} differs by {diff}");
        }
    }
}

/// The loss is linear in each single coordinate of x, A, B and b, so a central difference has no
/// truncation error: in f64 it differs from the exact derivative only by rounding, about
/// `1e-16 * |loss| / step`. With |loss| < 100 and step 1e-3 that is ~1e-11; 1e-8 leaves ample room
/// while any real error (a wrong transpose, a missing term, a dropped tail block) is of order 1e-2.
#[test]
fn gradients_agree_with_central_finite_differences() {
    const STEP: f64 = 1e-3;
    let params = Params::new(DType::F64);
    let probe = probe(DType::F64);
    for (name, weight) in quant_weights() {
        let layer = quant_layer(&weight, &params);
        let loss_of = |params: &Params| -> f64 {
            let layer = quant_layer(&weight, params);
            lora_loss(&|x| layer.forward(x), params, &probe)
                .and_then(|loss| loss.to_scalar::<f64>())
                .expect("quant loss")
        };
        let grads = lora_loss(&|x| layer.forward(x), &params, &probe)
            .and_then(|loss| loss.backward())
            .expect("quant backward");
        let mut n_checked = 0;
        for (var_name, var) in params.vars() {
            let analytic =
                grad(&grads, var_name, var).flatten_all().and_then(|g| g.to_vec1::<f64>()).expect("grad");
            let original = var.flatten_all().and_then(|v| v.to_vec1::<f64>()).expect("values");
            // Every coordinate of the small parameters, every 5th activation.
            let stride = if var_name == "x" { 5 } else { 1 };
            for coord in (0..original.len()).step_by(stride) {
                let shifted_loss = |delta: f64| {
                    let mut values = original.clone();
                    values[coord] += delta;
                    let shifted = tensor(values, var.dims(), DType::F64);
                    var.set(&shifted).expect("set var");
                    loss_of(&params)
                };
                let numeric = (shifted_loss(STEP) - shifted_loss(-STEP)) / (2.0 * STEP);
                var.set(&tensor(original.clone(), var.dims(), DType::F64)).expect("restore var");
                let error = (numeric - analytic[coord]).abs();
                assert!(
                    error <= 1e-8,
                    "{name}: d loss / d {var_name}[{coord}]: {numeric} vs {}",
                    analytic[coord]
                );
                n_checked += 1;
            }
        }
        assert_eq!(n_checked, 84 + LORA_RANK * IN_FEATURES + OUT_FEATURES * LORA_RANK + OUT_FEATURES);
    }
}

#[test]
fn bad_shapes_and_dtypes_are_errors() {
    let params = Params::new(DType::F32);
    let (_, weight) = quant_weights().remove(0);
    let layer = quant_layer(&weight, &params);
    let error_of = |result: Result<Tensor>| match result {
        Ok(t) => panic!("expected an error, got a tensor of shape {:?}", t.dims()),
        Err(err) => err.to_string(),
    };

    let narrow_x = tensor(vec![0.0; 6 * 69], &[6, 69], DType::F32);
    let message = error_of(layer.forward(&narrow_x));
    assert!(message.contains("[6, 69] does not end in in_features 70"), "{message}");
    let scalar_x = tensor(vec![1.0], &[], DType::F32);
    assert!(error_of(layer.forward(&scalar_x)).contains("in_features 70"));
    let half_x = params.x.to_dtype(DType::F16).expect("f16 x");
    assert!(error_of(layer.forward(&half_x)).contains("quant-linear"));

    let flat = FourBitTensor::quantize(&[0.5; 64], &[64], &FourBitConfig::default()).expect("1-d nf4");
    let message = QuantLinear::new(QuantWeight::FourBit(flat), None).map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("must be 2-d [out, in], got shape [64]"), "{message}");
    let short_bias = tensor(vec![0.0; 5], &[5], DType::F32);
    let message = QuantLinear::new(weight, Some(short_bias)).map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("bias shape [5] does not match out_features 33"), "{message}");
}

/// With LLM.int8 on, the f32 forward is `int8_linear_forward` (int8 activations, outliers in
/// f32) bit for bit, the gradient reaching the input is still `g · deq(W)` exactly as without it,
/// and a 4-bit weight refuses the mode.
#[test]
fn llm_int8_forward_and_its_dequantized_backward() {
    use kernels::{int8_linear_forward, Int8LinearConfig};
    let weights = quant_weights();
    let (_, int8) = weights.iter().find(|(name, _)| *name == "int8").expect("int8 weight");
    let QuantWeight::Int8(codes) = int8 else { unreachable!() };
    let config = Int8LinearConfig::default();
    let rows: usize = BATCH_DIMS.iter().product();
    let mut x: Vec<f32> = pseudo_random(rows * IN_FEATURES, 11, 2.0).into_iter().map(|v| v as f32).collect();
    x[5] = 8.0; // one outlier column
    let input = Var::from_vec(x.clone(), activation_dims(), &Device::Cpu).unwrap();

    let plain = QuantLinear::new(int8.clone(), None).unwrap();
    let llm = QuantLinear::new(int8.clone(), None).unwrap().with_llm_int8(Some(config)).unwrap();
    assert_eq!(llm.llm_int8(), Some(&config));
    let out = llm.forward(input.as_tensor()).unwrap();
    let expected = int8_linear_forward(&x, rows, codes, None, &config).unwrap();
    assert_eq!(out.flatten_all().unwrap().to_vec1::<f32>().unwrap(), expected);
    let plain_out = plain.forward(input.as_tensor()).unwrap();
    assert!(max_abs_diff(&out, &plain_out) > 0.0, "int8 activations must change the product");

    let weights_out = Tensor::from_vec(
        pseudo_random(rows * OUT_FEATURES, 12, 1.0).into_iter().map(|v| v as f32).collect::<Vec<_>>(),
        out.dims(),
        &Device::Cpu,
    )
    .unwrap();
    let grad_llm = (out * &weights_out).unwrap().sum_all().unwrap().backward().unwrap();
    let grad_plain = (plain_out * &weights_out).unwrap().sum_all().unwrap().backward().unwrap();
    let (a, b) = (grad_llm.get(input.as_tensor()).unwrap(), grad_plain.get(input.as_tensor()).unwrap());
    assert_eq!(max_abs_diff(a, b), 0.0, "the backward is the dequantized one in both modes");

    let empty = Tensor::zeros((0, IN_FEATURES), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(llm.forward(&empty).unwrap().dims(), [0, OUT_FEATURES]);

    let (_, nf4) = weights.iter().find(|(name, _)| *name == "nf4").expect("nf4 weight");
    assert!(QuantLinear::new(nf4.clone(), None).unwrap().with_llm_int8(Some(config)).is_err());
}
