//! Which SIMD instruction set the fast kernels use, chosen at run time so one binary runs anywhere.

/// An instruction set the fused kernels have a version for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain Rust, on any target (the compiler may still vectorise the panel decoding).
    Scalar,
    /// x86-64 AVX2 with FMA.
    Avx2,
    /// x86-64 AVX-512 Foundation.
    Avx512,
}

impl Isa {
    /// The widest instruction set this CPU supports.
    pub fn detect() -> Isa {
        Isa::available().into_iter().last().unwrap_or(Isa::Scalar)
    }

    /// Every instruction set this CPU supports, narrowest first (`Scalar` is always there), so a
    /// test can run each kernel version the machine can execute.
    pub fn available() -> Vec<Isa> {
        [Isa::Scalar, Isa::Avx2, Isa::Avx512].into_iter().filter(|isa| isa.is_supported()).collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => false,
        }
    }

    /// This instruction set if the CPU has it, else `Scalar`: the only way to get a [`CheckedIsa`].
    pub(crate) fn checked(self) -> CheckedIsa {
        CheckedIsa(if self.is_supported() { self } else { Isa::Scalar })
    }
}

/// An [`Isa`] the running CPU is known to support; the `unsafe` SIMD calls rely on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckedIsa(Isa);

impl CheckedIsa {
    pub(crate) fn isa(self) -> Isa {
        self.0
    }
}

/// The sum of the 8 lanes of an AVX register.
///
/// # Safety
/// The CPU must support AVX2 (see [`CheckedIsa`]).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn horizontal_sum_avx2(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let sum4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let sum2 = _mm_add_ps(sum4, _mm_movehl_ps(sum4, sum4));
    _mm_cvtss_f32(_mm_add_ss(sum2, _mm_shuffle_ps::<0b01>(sum2, sum2)))
}
