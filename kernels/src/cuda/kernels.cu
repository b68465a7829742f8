// CUDA kernels of the `cuda` feature, compiled at run time by NVRTC (see mod.rs). No #include:
// NVRTC provides the built-ins used here, so no CUDA headers are needed.
//
// Dequantized weight values must equal the scalar Rust reference bit for bit, so every product
// and sum that builds one is written with __fmul_rn / __fadd_rn, which the compiler never
// contracts into an FMA, in the reference's order. Tables (the 16-value 4-bit code, the signed
// dynamic map) and scale constants come from Rust as arguments: there is one copy of each.
//
// The matmuls accumulate with ordinary (contractible) arithmetic: they differ from the reference
// only in summation order, which the tests allow for.

typedef unsigned long long u64;

// Output tile edge of the matmuls: a block of TILE x TILE threads computes a TILE x TILE tile.
#define TILE 16

// ---------------------------------------------------------------------------------------------
// Weight element accessors: W[o, k] of a row-major [out_features, in_features] weight.

// NF4 / FP4, two codes per byte with element 2j in the high nibble of byte j; one f32 absmax per
// `blocksize` consecutive elements (blocks run across row ends). Reference: FourBitTensor::dequantize.
__device__ __forceinline__ float four_bit_element(const unsigned char* packed, const float* absmax,
                                                  const float* code, unsigned blocksize, u64 idx) {
    const unsigned char byte = packed[idx >> 1];
    const unsigned code_idx = (idx & 1) ? (byte & 0x0f) : (byte >> 4);
    return __fmul_rn(code[code_idx], absmax[idx / blocksize]);
}

struct FourBitWeight {
    const unsigned char* packed;
    const float* absmax;
    const float* code;
    unsigned blocksize;
    unsigned in_features;

    __device__ __forceinline__ float at(unsigned o, unsigned k) const {
        return four_bit_element(packed, absmax, code, blocksize, (u64)o * in_features + k);
    }
};

// LLM.int8 row-wise codes CB with one absmax SCB per output row. Reference: Int8Weight::dequantize,
// `(cb * scb) * scale` with scale = INT8_DEQUANT_SCALE.
__device__ __forceinline__ float int8_element(signed char cb, float row_absmax, float scale) {
    return __fmul_rn(__fmul_rn((float)cb, row_absmax), scale);
}

struct Int8Weight {
    const signed char* cb;
    const float* scb;
    float scale;
    unsigned in_features;

    __device__ __forceinline__ float at(unsigned o, unsigned k) const {
        return int8_element(cb[(u64)o * in_features + k], scb[o], scale);
    }
};

// ---------------------------------------------------------------------------------------------
// Element-wise kernels: grid-stride loops, any grid size covers any length.

// Double quantization: absmax[b] = map[codes[b]] * nested_absmax[b / nested_blocksize] + offset,
// multiplied then added as DoubleQuantAbsmax::decompress does (no FMA).
extern "C" __global__ void decode_double_absmax(const unsigned char* codes, const float* nested_absmax,
                                                const float* dynamic_map, float offset,
                                                unsigned nested_blocksize, u64 n_blocks, float* absmax) {
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 b = (u64)blockIdx.x * blockDim.x + threadIdx.x; b < n_blocks; b += stride) {
        absmax[b] = __fadd_rn(__fmul_rn(dynamic_map[codes[b]], nested_absmax[b / nested_blocksize]), offset);
    }
}

extern "C" __global__ void dequantize_four_bit(const unsigned char* packed, const float* absmax,
                                               const float* code, unsigned blocksize, u64 n_elements,
                                               float* out) {
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 idx = (u64)blockIdx.x * blockDim.x + threadIdx.x; idx < n_elements; idx += stride) {
        out[idx] = four_bit_element(packed, absmax, code, blocksize, idx);
    }
}

// `scale_row_first == 0`: (cb * scb) * scale, Int8Weight::dequantize (scale = INT8_DEQUANT_SCALE).
// `scale_row_first != 0`: cb * (scb * scale), Int8Weight::dequantize_for_backward (scale = INV_127).
extern "C" __global__ void dequantize_int8(const signed char* cb, const float* scb, float scale,
                                           int scale_row_first, unsigned in_features, u64 n_elements,
                                           float* out) {
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 idx = (u64)blockIdx.x * blockDim.x + threadIdx.x; idx < n_elements; idx += stride) {
        const float row_absmax = scb[idx / in_features];
        out[idx] = scale_row_first ? __fmul_rn((float)cb[idx], __fmul_rn(row_absmax, scale))
                                   : int8_element(cb[idx], row_absmax, scale);
    }
}

// ---------------------------------------------------------------------------------------------
// Matmuls with the weight dequantized tile by tile into shared memory (never as a whole matrix).
// Launch: block (TILE, TILE), grid (ceil(rows / TILE), ceil(output features / TILE)). Rows go on
// grid x, whose limit is 2^31 - 1; features on grid y (limit 65535 tiles, checked by the caller).
// Tail tiles load zeros outside the matrices, so the inner loop needs no bounds checks; only
// in-range outputs are stored. The +1 column keeps the transposed shared reads free of bank conflicts.

// y[r, o] = sum_k x[r, k] * W[o, k]: [rows, in] -> [rows, out].
template <class Weight>
__device__ __forceinline__ void forward_tiled(const float* x, const Weight& weight, float* y, unsigned rows,
                                              unsigned out_features, unsigned in_features) {
    __shared__ float x_tile[TILE][TILE + 1];  // [row in tile][k in tile]
    __shared__ float w_tile[TILE][TILE + 1];  // [out feature in tile][k in tile]
    const unsigned tx = threadIdx.x;
    const unsigned ty = threadIdx.y;
    const unsigned row0 = blockIdx.x * TILE;
    const unsigned col0 = blockIdx.y * TILE;
    float acc = 0.0f;
    for (unsigned k0 = 0; k0 < in_features; k0 += TILE) {
        // Consecutive threads (tx) read consecutive k of one row of x and of W: coalesced.
        const unsigned k = k0 + tx;
        const unsigned load_row = row0 + ty;
        const unsigned load_out = col0 + ty;
        x_tile[ty][tx] = (load_row < rows && k < in_features) ? x[(u64)load_row * in_features + k] : 0.0f;
        w_tile[ty][tx] = (load_out < out_features && k < in_features) ? weight.at(load_out, k) : 0.0f;
        __syncthreads();
        for (unsigned kk = 0; kk < TILE; ++kk) {
            acc += x_tile[ty][kk] * w_tile[tx][kk];
        }
        __syncthreads();
    }
    const unsigned row = row0 + ty;
    const unsigned out = col0 + tx;
    if (row < rows && out < out_features) {
        y[(u64)row * out_features + out] = acc;
    }
}

// grad_x[r, i] = sum_o grad[r, o] * W[o, i]: [rows, out] -> [rows, in].
template <class Weight>
__device__ __forceinline__ void backward_tiled(const float* grad, const Weight& weight, float* grad_x,
                                               unsigned rows, unsigned out_features, unsigned in_features) {
    __shared__ float g_tile[TILE][TILE + 1];  // [row in tile][out feature in tile]
    __shared__ float w_tile[TILE][TILE + 1];  // [out feature in tile][in feature in tile]
    const unsigned tx = threadIdx.x;
    const unsigned ty = threadIdx.y;
    const unsigned row0 = blockIdx.x * TILE;
    const unsigned col0 = blockIdx.y * TILE;
    float acc = 0.0f;
    for (unsigned o0 = 0; o0 < out_features; o0 += TILE) {
        const unsigned load_row = row0 + ty;
        const unsigned grad_out = o0 + tx;
        g_tile[ty][tx] =
            (load_row < rows && grad_out < out_features) ? grad[(u64)load_row * out_features + grad_out] : 0.0f;
        const unsigned weight_out = o0 + ty;
        const unsigned weight_in = col0 + tx;
        w_tile[ty][tx] =
            (weight_out < out_features && weight_in < in_features) ? weight.at(weight_out, weight_in) : 0.0f;
        __syncthreads();
        for (unsigned kk = 0; kk < TILE; ++kk) {
            acc += g_tile[ty][kk] * w_tile[kk][tx];
        }
        __syncthreads();
    }
    const unsigned row = row0 + ty;
    const unsigned in = col0 + tx;
    if (row < rows && in < in_features) {
        grad_x[(u64)row * in_features + in] = acc;
    }
}

extern "C" __global__ void __launch_bounds__(TILE * TILE)
    forward_four_bit(const float* x, const unsigned char* packed, const float* absmax, const float* code,
                     unsigned blocksize, float* y, unsigned rows, unsigned out_features, unsigned in_features) {
    const FourBitWeight weight = {packed, absmax, code, blocksize, in_features};
    forward_tiled(x, weight, y, rows, out_features, in_features);
}

extern "C" __global__ void __launch_bounds__(TILE * TILE)
    backward_four_bit(const float* grad, const unsigned char* packed, const float* absmax, const float* code,
                      unsigned blocksize, float* grad_x, unsigned rows, unsigned out_features,
                      unsigned in_features) {
    const FourBitWeight weight = {packed, absmax, code, blocksize, in_features};
    backward_tiled(grad, weight, grad_x, rows, out_features, in_features);
}

extern "C" __global__ void __launch_bounds__(TILE * TILE)
    forward_int8(const float* x, const signed char* cb, const float* scb, float scale, float* y, unsigned rows,
                 unsigned out_features, unsigned in_features) {
    const Int8Weight weight = {cb, scb, scale, in_features};
    forward_tiled(x, weight, y, rows, out_features, in_features);
}

extern "C" __global__ void __launch_bounds__(TILE * TILE)
    backward_int8(const float* grad, const signed char* cb, const float* scb, float scale, float* grad_x,
                  unsigned rows, unsigned out_features, unsigned in_features) {
    const Int8Weight weight = {cb, scb, scale, in_features};
    backward_tiled(grad, weight, grad_x, rows, out_features, in_features);
}
