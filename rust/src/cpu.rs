//! Which vector kernels run on this CPU.
//!
//! Why a module: every fast path (quantization, the rANS coder, the parallel context decoder)
//! has a portable loop beside its vector kernels, and each kernel must give exactly the portable
//! loop's bytes. On x86-64 the AVX2 kernels run where the CPU has AVX2 (detected once, cached by
//! std); on aarch64 the NEON kernels always run (NEON is part of the aarch64 baseline). Setting
//! `SPLITANS_DISABLE_SIMD=1` in the environment before the first call turns every vector kernel
//! off, so one machine can check its portable loops against its vector kernels end to end (the
//! golden record is replayed both ways by `.ci/wheel`): the portable loops are what any other
//! CPU runs.

use std::sync::OnceLock;

/// False when `SPLITANS_DISABLE_SIMD` is set to anything but `""` or `"0"` (read once).
pub fn simd_allowed() -> bool {
    static ALLOWED: OnceLock<bool> = OnceLock::new();
    *ALLOWED.get_or_init(|| {
        std::env::var_os("SPLITANS_DISABLE_SIMD").is_none_or(|v| v.is_empty() || v == "0")
    })
}

/// Whether the AVX2 kernels run (x86-64 CPUs that have AVX2, unless disabled).
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn avx2() -> bool {
    simd_allowed() && std::arch::is_x86_feature_detected!("avx2")
}

/// Whether the AVX2 kernels that also count bits with POPCNT run.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn avx2_popcnt() -> bool {
    avx2() && std::arch::is_x86_feature_detected!("popcnt")
}

/// Whether the NEON kernels run (every aarch64 CPU, unless disabled).
#[cfg(target_arch = "aarch64")]
#[inline]
pub fn neon() -> bool {
    simd_allowed()
}

/// The names of the vector kernel sets that run here: `["avx2"]`, `["neon"]` or none.
pub fn kernels() -> Vec<&'static str> {
    let mut k = Vec::new();
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        k.push("avx2");
    }
    #[cfg(target_arch = "aarch64")]
    if neon() {
        k.push("neon");
    }
    k
}
