//! A quantized weight on a CUDA device: dequantization and the products `x · deq(W)^T` and `g · deq(W)`.
//!
//! The weight stays quantized in device memory (packed 4-bit codes and their scales, or int8 CB
//! and SCB); the matmul kernels dequantize it tile by tile into shared memory. A double-quantized
//! absmax is decoded once per call into a temporary buffer, as the CPU fast paths decode it once
//! per call.

use cudarc::driver::{CudaSlice, LaunchArgs, LaunchConfig, PushKernelArg};

use super::{elementwise_config, matmul_config, CudaBackend, MAX_DIM};
use crate::double_quant::NESTED_BLOCKSIZE;
use crate::error::{Error, Result};
use crate::four_bit::{BlockScales, FourBitTensor};
use crate::int8::{Int8Weight, INT8_DEQUANT_SCALE, INV_127};
use crate::quant_linear::Direction;

/// A weight `[out_features, in_features]` uploaded by [`CudaBackend::upload`].
#[derive(Debug)]
pub struct CudaWeight {
    backend: CudaBackend,
    out_features: usize,
    in_features: usize,
    storage: Storage,
}

#[derive(Debug)]
enum Storage {
    FourBit {
        /// Two codes per byte, first element in the high nibble.
        packed: CudaSlice<u8>,
        /// The format's 16 code values.
        code: CudaSlice<f32>,
        blocksize: u32,
        scales: DeviceScales,
    },
    Int8 {
        cb: CudaSlice<i8>,
        scb: CudaSlice<f32>,
    },
}

#[derive(Debug)]
enum DeviceScales {
    Plain(CudaSlice<f32>),
    Double { codes: CudaSlice<u8>, nested_absmax: CudaSlice<f32>, offset: f32 },
}

/// The f32 absmax of a call: the stored one, or decoded from double quantization for this call.
enum CallAbsmax<'a> {
    Stored(&'a CudaSlice<f32>),
    Decoded(CudaSlice<f32>),
}

impl CallAbsmax<'_> {
    fn slice(&self) -> &CudaSlice<f32> {
        match self {
            CallAbsmax::Stored(absmax) => absmax,
            CallAbsmax::Decoded(absmax) => absmax,
        }
    }
}

/// Which of the two int8 dequantizations of the reference to reproduce.
#[derive(Clone, Copy)]
enum Int8Rounding {
    /// [`Int8Weight::dequantize`]: `(cb * scb) * INT8_DEQUANT_SCALE`.
    Forward,
    /// [`Int8Weight::dequantize_for_backward`]: `cb * (scb * INV_127)`.
    Backward,
}

impl CudaWeight {
    pub(super) fn upload_four_bit(backend: CudaBackend, tensor: &FourBitTensor) -> Result<Self> {
        let &[out_features, in_features] = tensor.shape() else {
            return Err(Error::DimensionMismatch {
                what: "cuda 4-bit weight",
                left: format!("shape {:?}", tensor.shape()),
                right: "a 2-d [out, in] matrix".to_string(),
            });
        };
        check_dims(&backend, out_features, in_features)?;
        let blocksize = u32::try_from(tensor.blocksize()).map_err(|_| Error::Blocksize {
            blocksize: tensor.blocksize(),
            allowed: "a block size that fits 32 bits",
        })?;
        let upload_error = |err| backend.error("uploading a 4-bit weight", err);
        let stream = &backend.stream;
        let packed = stream.clone_htod(tensor.codes()).map_err(upload_error)?;
        let code = stream.clone_htod(tensor.format().code()).map_err(upload_error)?;
        let scales = match tensor.scales() {
            BlockScales::Plain(absmax) => {
                DeviceScales::Plain(stream.clone_htod(absmax).map_err(upload_error)?)
            }
            BlockScales::Double(double) => DeviceScales::Double {
                codes: stream.clone_htod(double.codes()).map_err(upload_error)?,
                nested_absmax: stream.clone_htod(double.nested_absmax()).map_err(upload_error)?,
                offset: double.offset(),
            },
        };
        let storage = Storage::FourBit { packed, code, blocksize, scales };
        Ok(CudaWeight { backend, out_features, in_features, storage })
    }

    pub(super) fn upload_int8(backend: CudaBackend, weight: &Int8Weight) -> Result<Self> {
        let (out_features, in_features) = (weight.out_features(), weight.in_features());
        check_dims(&backend, out_features, in_features)?;
        let upload_error = |err| backend.error("uploading an int8 weight", err);
        let cb = backend.stream.clone_htod(weight.cb()).map_err(upload_error)?;
        let scb = backend.stream.clone_htod(weight.scb()).map_err(upload_error)?;
        Ok(CudaWeight { backend, out_features, in_features, storage: Storage::Int8 { cb, scb } })
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// The row-major f32 weight, bitwise equal to [`FourBitTensor::dequantize`] or
    /// [`Int8Weight::dequantize`].
    pub fn dequantize(&self) -> Result<Vec<f32>> {
        self.dequantize_with(Int8Rounding::Forward)
    }

    /// For an int8 weight, [`Int8Weight::dequantize_for_backward`]'s values (bitsandbytes'
    /// `MatMul8bitLt.backward` rounding); a 4-bit weight has one dequantization, [`Self::dequantize`].
    pub fn dequantize_for_backward(&self) -> Result<Vec<f32>> {
        self.dequantize_with(Int8Rounding::Backward)
    }

    /// `x · deq(W)^T`: row-major `[rows, in_features]` -> `[rows, out_features]`.
    pub fn forward(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        self.product(Direction::Forward, x, rows)
    }

    /// `grad · deq(W)`: row-major `[rows, out_features]` -> `[rows, in_features]`, the input
    /// gradient of [`Self::forward`]. Multiplies by [`Self::dequantize`]'s values, as
    /// `QuantLinear`'s CPU backward and [`crate::product_reference`] do.
    pub fn backward_input(&self, grad: &[f32], rows: usize) -> Result<Vec<f32>> {
        self.product(Direction::Backward, grad, rows)
    }

    fn dequantize_with(&self, rounding: Int8Rounding) -> Result<Vec<f32>> {
        let n_elements = self.out_features * self.in_features;
        let n_elements_u64 = n_elements as u64;
        // Below MAX_DIM: checked at upload.
        let in_features = self.in_features as u32;
        let functions = &self.backend.functions;
        let mut out = self.alloc(n_elements)?;
        let config = elementwise_config(n_elements_u64);
        match &self.storage {
            Storage::FourBit { packed, code, blocksize, scales } => {
                let absmax = self.call_absmax(scales)?;
                let mut launch = self.backend.stream.launch_builder(&functions.dequantize_four_bit);
                launch
                    .arg(packed)
                    .arg(absmax.slice())
                    .arg(code)
                    .arg(blocksize)
                    .arg(&n_elements_u64)
                    .arg(&mut out);
                // SAFETY: the arguments match `dequantize_four_bit(packed, absmax, code, blocksize,
                // n_elements, out)` in type and order. For idx < n_elements = out.len() it reads
                // packed[idx / 2] (packed holds ceil(n / 2) bytes), absmax[idx / blocksize] (one per
                // block, checked by `FourBitTensor`) and code[nibble] (16 entries).
                unsafe { self.launch(&mut launch, config, "dequantizing a 4-bit weight") }?;
            }
            Storage::Int8 { cb, scb } => {
                let (scale, scale_row_first) = match rounding {
                    Int8Rounding::Forward => (INT8_DEQUANT_SCALE, 0i32),
                    Int8Rounding::Backward => (INV_127, 1i32),
                };
                let mut launch = self.backend.stream.launch_builder(&functions.dequantize_int8);
                launch
                    .arg(cb)
                    .arg(scb)
                    .arg(&scale)
                    .arg(&scale_row_first)
                    .arg(&in_features)
                    .arg(&n_elements_u64)
                    .arg(&mut out);
                // SAFETY: the arguments match `dequantize_int8(cb, scb, scale, scale_row_first,
                // in_features, n_elements, out)`. For idx < n_elements = out.len() = cb.len() it reads
                // cb[idx] and scb[idx / in_features] (one per output row).
                unsafe { self.launch(&mut launch, config, "dequantizing an int8 weight") }?;
            }
        }
        self.download(&out)
    }

    fn product(&self, direction: Direction, input: &[f32], rows: usize) -> Result<Vec<f32>> {
        let (input_features, output_features, what) = match direction {
            Direction::Forward => (self.in_features, self.out_features, "cuda forward input"),
            Direction::Backward => (self.out_features, self.in_features, "cuda backward gradient"),
        };
        if rows.checked_mul(input_features) != Some(input.len()) {
            return Err(Error::ShapeMismatch {
                what,
                shape: vec![rows, input_features],
                expected: rows.saturating_mul(input_features),
                actual: input.len(),
            });
        }
        if rows == 0 {
            return Ok(Vec::new());
        }
        let config = matmul_config(self.backend.ordinal, rows, output_features)?;
        // All three below MAX_DIM: checked at upload and by `matmul_config`.
        let (rows_u32, out_u32, in_u32) = (rows as u32, self.out_features as u32, self.in_features as u32);
        let input_on_device = self
            .backend
            .stream
            .clone_htod(input)
            .map_err(|err| self.backend.error("uploading the input", err))?;
        let mut output = self.alloc(rows * output_features)?;
        let functions = &self.backend.functions;
        match &self.storage {
            Storage::FourBit { packed, code, blocksize, scales } => {
                let absmax = self.call_absmax(scales)?;
                let function = match direction {
                    Direction::Forward => &functions.forward_four_bit,
                    Direction::Backward => &functions.backward_four_bit,
                };
                let mut launch = self.backend.stream.launch_builder(function);
                launch
                    .arg(&input_on_device)
                    .arg(packed)
                    .arg(absmax.slice())
                    .arg(code)
                    .arg(blocksize)
                    .arg(&mut output)
                    .arg(&rows_u32)
                    .arg(&out_u32)
                    .arg(&in_u32);
                // SAFETY: the arguments match `forward_four_bit` / `backward_four_bit(input, packed,
                // absmax, code, blocksize, output, rows, out_features, in_features)`. The kernel
                // reads input[r * input_features + k] and W[o, i] only for r < rows, k <
                // input_features, o < out_features, i < in_features (input.len() was checked above,
                // the weight buffers at upload), and writes output[r * output_features + c] only for
                // r < rows, c < output_features: inside `output`'s rows * output_features.
                unsafe { self.launch(&mut launch, config, "multiplying by a 4-bit weight") }?;
            }
            Storage::Int8 { cb, scb } => {
                let function = match direction {
                    Direction::Forward => &functions.forward_int8,
                    Direction::Backward => &functions.backward_int8,
                };
                let mut launch = self.backend.stream.launch_builder(function);
                launch
                    .arg(&input_on_device)
                    .arg(cb)
                    .arg(scb)
                    .arg(&INT8_DEQUANT_SCALE)
                    .arg(&mut output)
                    .arg(&rows_u32)
                    .arg(&out_u32)
                    .arg(&in_u32);
                // SAFETY: the arguments match `forward_int8` / `backward_int8(input, cb, scb, scale,
                // output, rows, out_features, in_features)`; reads and writes stay inside the
                // buffers as for the 4-bit kernels (cb holds out_features * in_features codes, scb
                // one value per output row).
                unsafe { self.launch(&mut launch, config, "multiplying by an int8 weight") }?;
            }
        }
        self.download(&output)
    }

    /// The absmax of a 4-bit call, decoding double-quantized statistics on the device.
    fn call_absmax<'a>(&self, scales: &'a DeviceScales) -> Result<CallAbsmax<'a>> {
        let (codes, nested_absmax, offset) = match scales {
            DeviceScales::Plain(absmax) => return Ok(CallAbsmax::Stored(absmax)),
            DeviceScales::Double { codes, nested_absmax, offset } => (codes, nested_absmax, offset),
        };
        let n_blocks = codes.len();
        let n_blocks_u64 = n_blocks as u64;
        let nested_blocksize = NESTED_BLOCKSIZE as u32;
        let mut absmax = self.alloc(n_blocks)?;
        let mut launch = self.backend.stream.launch_builder(&self.backend.functions.decode_double_absmax);
        launch
            .arg(codes)
            .arg(nested_absmax)
            .arg(&*self.backend.dynamic_map)
            .arg(offset)
            .arg(&nested_blocksize)
            .arg(&n_blocks_u64)
            .arg(&mut absmax);
        // SAFETY: the arguments match `decode_double_absmax(codes, nested_absmax, dynamic_map,
        // offset, nested_blocksize, n_blocks, absmax)`. For b < n_blocks = codes.len() = absmax.len()
        // it reads codes[b], nested_absmax[b / 256] (ceil(n_blocks / 256) entries, checked by
        // `DoubleQuantAbsmax`) and dynamic_map[code] (256 entries).
        unsafe {
            self.launch(&mut launch, elementwise_config(n_blocks_u64), "decoding double-quantized absmax")
        }?;
        Ok(CallAbsmax::Decoded(absmax))
    }

    fn alloc(&self, len: usize) -> Result<CudaSlice<f32>> {
        self.backend
            .stream
            .alloc_zeros(len)
            .map_err(|err| self.backend.error("allocating device memory", err))
    }

    /// Launches a kernel whose arguments `launch` holds.
    ///
    /// # Safety
    /// The arguments must match the kernel's parameters in number, type and order, and with
    /// `config` the kernel must read and write only inside the buffers it is given.
    unsafe fn launch(
        &self,
        launch: &mut LaunchArgs<'_>,
        config: LaunchConfig,
        operation: &'static str,
    ) -> Result<()> {
        // SAFETY: the caller's contract above is `LaunchArgs::launch`'s.
        unsafe { launch.launch(config) }.map(|_| ()).map_err(|err| self.backend.error(operation, err))
    }

    /// Copies a result back, waiting for the kernels before it (and reporting their errors).
    fn download(&self, output: &CudaSlice<f32>) -> Result<Vec<f32>> {
        let stream = &self.backend.stream;
        let host =
            stream.clone_dtoh(output).map_err(|err| self.backend.error("copying the result back", err))?;
        stream.synchronize().map_err(|err| self.backend.error("running the kernels", err))?;
        Ok(host)
    }
}

/// Dimensions the kernels can index with 32-bit counters.
fn check_dims(backend: &CudaBackend, out_features: usize, in_features: usize) -> Result<()> {
    if out_features > MAX_DIM || in_features > MAX_DIM {
        return Err(Error::Cuda {
            ordinal: backend.ordinal,
            operation: "uploading a weight",
            message: format!("shape [{out_features}, {in_features}] exceeds {MAX_DIM} in a dimension"),
        });
    }
    Ok(())
}
