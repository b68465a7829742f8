//! The CUDA backend (feature `cuda`): a device handle, its kernels compiled by NVRTC, weights uploaded to it.
//!
//! The CUDA driver and NVRTC are loaded at run time through `cudarc` (dynamic loading), so building
//! with the feature needs no CUDA toolkit and a machine without a GPU gets
//! [`Error::CudaUnavailable`] from [`CudaBackend::new`], never a panic or a link error. The kernels
//! (`kernels.cu`) are compiled once per process, on first use. What they compute is specified by
//! the scalar reference: dequantization equals [`FourBitTensor::dequantize`] and
//! [`Int8Weight::dequantize`] bit for bit, the matmuls equal [`crate::product_reference`] up to
//! summation order (`tests/cuda_conformance.rs`).

mod weight;

use std::sync::{Arc, OnceLock};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DriverError, LaunchConfig,
};
use cudarc::nvrtc::{CompileOptions, Ptx};

use crate::dynamic_map::signed_dynamic_map;
use crate::error::{Error, Result};
use crate::four_bit::FourBitTensor;
use crate::int8::Int8Weight;
use crate::quant_linear::QuantWeight;

pub use weight::CudaWeight;

/// The CUDA C source, compiled by NVRTC at run time.
const KERNELS_SOURCE: &str = include_str!("kernels.cu");

/// Edge of the matmul tiles, `TILE` in `kernels.cu`.
const TILE: u32 = 16;
/// Threads per block of the element-wise kernels.
const ELEMENTWISE_THREADS: u32 = 256;
/// Blocks of the element-wise kernels at most; their grid-stride loops cover any length.
const ELEMENTWISE_MAX_BLOCKS: u64 = 65_535;
/// CUDA's limit on `gridDim.y`, where the matmuls put the output-feature tiles.
const MAX_GRID_Y: usize = 65_535;
/// Rows and features the kernels index with 32-bit counters (loops step by `TILE` past the end,
/// so stay well below `u32::MAX`); rows go on `gridDim.x`, whose limit is far above `MAX_DIM / TILE`.
const MAX_DIM: usize = i32::MAX as usize;

/// Number of CUDA devices. [`Error::CudaUnavailable`] (ordinal 0) when the driver library is
/// missing or does not initialise, as on a machine without a GPU.
pub fn device_count() -> Result<usize> {
    driver_library(0)?;
    let count = CudaContext::device_count().map_err(|err| Error::CudaUnavailable {
        ordinal: 0,
        reason: format!("the cuda driver did not initialise: {}", driver_message(err)),
    })?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// Compiles `kernels.cu` with NVRTC (once per process; later calls return the cached result).
/// Needs only the NVRTC library, not a GPU, so a CPU machine with NVRTC installed can check the
/// source compiles. [`Error::CudaUnavailable`] (ordinal 0) without NVRTC.
pub fn compile_kernels() -> Result<()> {
    kernels_ptx(0).map(|_| ())
}

/// One CUDA device with the kernels loaded; cheap to clone (the handles are shared).
#[derive(Debug, Clone)]
pub struct CudaBackend {
    ordinal: usize,
    stream: Arc<CudaStream>,
    functions: Arc<Functions>,
    /// The signed 8-bit dynamic map of double quantization, uploaded once.
    dynamic_map: Arc<CudaSlice<f32>>,
}

/// The kernels of `kernels.cu`, by name.
#[derive(Debug)]
struct Functions {
    decode_double_absmax: CudaFunction,
    dequantize_four_bit: CudaFunction,
    dequantize_int8: CudaFunction,
    forward_four_bit: CudaFunction,
    backward_four_bit: CudaFunction,
    forward_int8: CudaFunction,
    backward_int8: CudaFunction,
}

impl CudaBackend {
    /// Opens device `ordinal` (its primary context) and loads the kernels, compiling them first if
    /// this process has not yet. [`Error::CudaUnavailable`] when there is no driver, no NVRTC or
    /// no such device; [`Error::Cuda`] when a present device fails (a compile or load error).
    pub fn new(ordinal: usize) -> Result<Self> {
        let n_devices = device_count().map_err(|err| match err {
            Error::CudaUnavailable { reason, .. } => Error::CudaUnavailable { ordinal, reason },
            other => other,
        })?;
        if ordinal >= n_devices {
            return Err(Error::CudaUnavailable {
                ordinal,
                reason: format!("the driver sees {n_devices} device(s)"),
            });
        }
        let ptx = kernels_ptx(ordinal)?;
        let context =
            CudaContext::new(ordinal).map_err(|err| cuda_error(ordinal, "opening the context", err))?;
        let module =
            context.load_module(ptx).map_err(|err| cuda_error(ordinal, "loading kernels.cu", err))?;
        let functions = Functions::load(&module, ordinal)?;
        let stream = context.default_stream();
        let dynamic_map = stream
            .clone_htod(&signed_dynamic_map())
            .map_err(|err| cuda_error(ordinal, "uploading the dynamic map", err))?;
        Ok(CudaBackend {
            ordinal,
            stream,
            functions: Arc::new(functions),
            dynamic_map: Arc::new(dynamic_map),
        })
    }

    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The device's name as the driver reports it.
    pub fn device_name(&self) -> Result<String> {
        self.stream.context().name().map_err(|err| self.error("reading the device name", err))
    }

    /// Copies a quantized weight `[out_features, in_features]` to the device, still quantized. Q8_0
    /// has no kernels yet: an error.
    pub fn upload(&self, weight: &QuantWeight) -> Result<CudaWeight> {
        match weight {
            QuantWeight::FourBit(tensor) => self.upload_four_bit(tensor),
            QuantWeight::Int8(weight) => self.upload_int8(weight),
            QuantWeight::Q8_0(_) => Err(Error::DimensionMismatch {
                what: "cuda weight upload",
                left: "a q8_0 weight".to_string(),
                right: "an nf4, fp4 or int8 weight (the formats with cuda kernels)".to_string(),
            }),
        }
    }

    /// Copies an NF4/FP4 matrix (plain or double-quantized absmax) to the device; a tensor that is
    /// not 2-d is an error.
    pub fn upload_four_bit(&self, tensor: &FourBitTensor) -> Result<CudaWeight> {
        CudaWeight::upload_four_bit(self.clone(), tensor)
    }

    /// Copies an int8 weight (CB, SCB) to the device.
    pub fn upload_int8(&self, weight: &Int8Weight) -> Result<CudaWeight> {
        CudaWeight::upload_int8(self.clone(), weight)
    }

    /// An [`Error::Cuda`] on this device.
    fn error(&self, operation: &'static str, err: DriverError) -> Error {
        cuda_error(self.ordinal, operation, err)
    }
}

impl Functions {
    fn load(module: &Arc<CudaModule>, ordinal: usize) -> Result<Self> {
        let load = |name: &str| {
            module.load_function(name).map_err(|err| Error::Cuda {
                ordinal,
                operation: "finding a kernel",
                message: format!("{name}: {}", driver_message(err)),
            })
        };
        Ok(Functions {
            decode_double_absmax: load("decode_double_absmax")?,
            dequantize_four_bit: load("dequantize_four_bit")?,
            dequantize_int8: load("dequantize_int8")?,
            forward_four_bit: load("forward_four_bit")?,
            backward_four_bit: load("backward_four_bit")?,
            forward_int8: load("forward_int8")?,
            backward_int8: load("backward_int8")?,
        })
    }
}

/// Checks that the CUDA driver library can be loaded, before any `cudarc` driver call: with
/// dynamic loading, `cudarc` panics on the first call when the library is missing.
fn driver_library(ordinal: usize) -> Result<()> {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: `is_culib_present` only tries `dlopen` on the driver library names and closes what it
    // opened; loading the driver runs its initialisers, as `cudarc` itself would on first use.
    let present = *PRESENT.get_or_init(|| unsafe { cudarc::driver::sys::is_culib_present() });
    if present {
        Ok(())
    } else {
        Err(Error::CudaUnavailable {
            ordinal,
            reason: "no cuda driver library (libcuda.so) could be loaded".to_string(),
        })
    }
}

/// The PTX of `kernels.cu`, compiled on the first call; a failed compile is cached too.
fn kernels_ptx(ordinal: usize) -> Result<Ptx> {
    static PTX: OnceLock<std::result::Result<Ptx, String>> = OnceLock::new();
    static NVRTC_PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: as in `driver_library`: `dlopen` attempts on the NVRTC library names only.
    let nvrtc_present = *NVRTC_PRESENT.get_or_init(|| unsafe { cudarc::nvrtc::sys::is_culib_present() });
    if !nvrtc_present {
        return Err(Error::CudaUnavailable {
            ordinal,
            reason: "no nvrtc library (libnvrtc.so) could be loaded; install the cuda toolkit's nvrtc \
                     or add its folder to LD_LIBRARY_PATH"
                .to_string(),
        });
    }
    let options = CompileOptions {
        // The 4-bit tail block of an all-zero tail stores 1e-38, a subnormal: keep subnormals.
        ftz: Some(false),
        prec_div: Some(true),
        prec_sqrt: Some(true),
        name: Some("kernels.cu".to_string()),
        ..CompileOptions::default()
    };
    PTX.get_or_init(|| {
        cudarc::nvrtc::compile_ptx_with_opts(KERNELS_SOURCE, options).map_err(|err| match err {
            cudarc::nvrtc::CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
            other => other.to_string(),
        })
    })
    .clone()
    .map_err(|message| Error::Cuda { ordinal, operation: "compiling kernels.cu with nvrtc", message })
}

/// Launch shape of an element-wise kernel over `n_elements`.
fn elementwise_config(n_elements: u64) -> LaunchConfig {
    let blocks = n_elements.div_ceil(u64::from(ELEMENTWISE_THREADS)).clamp(1, ELEMENTWISE_MAX_BLOCKS);
    LaunchConfig {
        // At most 65,535 by the clamp.
        grid_dim: (u32::try_from(blocks).unwrap_or(u32::MAX), 1, 1),
        block_dim: (ELEMENTWISE_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Launch shape of a tiled matmul with `rows` x `output_features` outputs, or an error naming the
/// dimension that exceeds CUDA's grid.
fn matmul_config(ordinal: usize, rows: usize, output_features: usize) -> Result<LaunchConfig> {
    let row_tiles = rows.div_ceil(TILE as usize);
    let feature_tiles = output_features.div_ceil(TILE as usize);
    if rows > MAX_DIM || feature_tiles > MAX_GRID_Y {
        return Err(Error::Cuda {
            ordinal,
            operation: "sizing the matmul grid",
            message: format!(
                "{rows} rows x {output_features} output features exceed the limit of {MAX_DIM} rows \
                 x {} output features",
                MAX_GRID_Y * TILE as usize
            ),
        });
    }
    Ok(LaunchConfig {
        // Both fit u32: checked against the limits above.
        grid_dim: (row_tiles as u32, feature_tiles as u32, 1),
        block_dim: (TILE, TILE, 1),
        shared_mem_bytes: 0,
    })
}

fn cuda_error(ordinal: usize, operation: &'static str, err: DriverError) -> Error {
    Error::Cuda { ordinal, operation, message: driver_message(err) }
}

/// The driver's name and description of an error, e.g. `CUDA_ERROR_OUT_OF_MEMORY (out of memory)`.
fn driver_message(err: DriverError) -> String {
    let name = err.error_name().map(|name| name.to_string_lossy().into_owned());
    let description = err.error_string().map(|text| text.to_string_lossy().into_owned());
    match (name, description) {
        (Ok(name), Ok(description)) => format!("{name} ({description})"),
        _ => format!("{:?}", err.0),
    }
}
