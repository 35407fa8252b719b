//! Which vector kernels run on this CPU.
//!
//! Why a module: every fast path (quantization, the rANS coder, the parallel context decoder)
//! has a portable loop beside its vector kernels, and each kernel must give exactly the portable
//! loop's bytes. On x86-64 the AVX2 kernels run where the CPU has AVX2 (detected once, cached by
//! std), and the AVX-512 decoders (of the rANS streams and of the fitted codec) on Intel CPUs
//! that have their extensions (`avx512_decode`); the rANS streams' decoder runs a 128-bit SSE4.1
//! kernel instead of the AVX2 one where the CPU lacks AVX2 or splits it in halves
//! (`sse41_decode`); on aarch64 the NEON kernels always run (NEON is part of the aarch64
//! baseline). Setting `SPLITANS_DISABLE_SIMD=1` in the environment before the first call turns
//! every vector kernel off, so one machine can check its portable loops against its vector
//! kernels end to end (the golden record is replayed both ways by `.ci/wheel`, again with
//! `SPLITANS_DISABLE_AVX512=1` where the AVX-512 decoder runs, and with the other of the AVX2 and
//! SSE4.1 rANS decoders by `SPLITANS_RANS_KERNEL`): the portable loops are what any other CPU
//! runs.

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

/// Whether the AVX-512 kernels run (the rANS streams' decoder, the fitted codec's decoder and
/// encoder): the CPU has AVX2 and POPCNT (the rest of the AVX2 kernels still run), AVX-512 F,
/// BW, VL, VBMI and VBMI2, and is an Intel one, whose gather instruction is faster than the
/// AVX2 kernel's scalar loads (on the AMD cores measured it was slower: benches/NOTES.md 36).
/// `SPLITANS_DISABLE_AVX512=1` keeps the AVX2 kernels.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn avx512_decode() -> bool {
    // Decided once: the encoder asks for every row it codes (five feature checks a time cost
    // 0.5 % of the stem's encode).
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        let avx512_off = std::env::var_os("SPLITANS_DISABLE_AVX512")
            .is_some_and(|v| !v.is_empty() && v != "0");
        avx512_decode_available() && intel() && !avx512_off
    })
}

/// Whether this is an Intel CPU (CPUID leaf 0's vendor string, read once).
#[cfg(target_arch = "x86_64")]
fn intel() -> bool {
    static INTEL: OnceLock<bool> = OnceLock::new();
    *INTEL.get_or_init(|| {
        let r = std::arch::x86_64::__cpuid(0);
        (r.ebx, r.edx, r.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e)
    })
}

/// Whether the fitted codec's AVX2 kernels read their tables by the gather instruction (Intel
/// CPUs, where it was the faster: benches/NOTES.md 36), or the decoder by eight scalar loads a
/// vector and the encoder's lookups by a plain loop (every other vendor: on AMD's Zen 3 they
/// decode the fitted stem 13 % and encode it 20 % faster, benches/NOTES.md 57; Zen 4's gather
/// is microcoded too).
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn fast_gather() -> bool {
    intel()
}

/// Whether the rANS streams' decoder runs its 128-bit SSE4.1 kernel (`entropy::rans::sse41`)
/// rather than the AVX2 one: CPUs with SSE4.1 and POPCNT that lack AVX2, and those that run
/// each 256-bit operation as two 128-bit halves (AMD family 17h models below 30h: Zen 1 and
/// Zen+, benches/NOTES.md 79). `SPLITANS_RANS_KERNEL=sse41` or `=avx2` overrides the choice
/// where the CPU can run the kernel named (a measurement's switch).
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn sse41_decode() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        if !sse41_available() {
            return false;
        }
        match std::env::var("SPLITANS_RANS_KERNEL").as_deref() {
            Ok("sse41") => return true,
            Ok("avx2") if avx2_popcnt() => return false,
            _ => {}
        }
        !avx2_popcnt() || halves_256()
    })
}

/// Whether this CPU could run the SSE4.1 rANS decoder (SSE4.1 and POPCNT, unless disabled).
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn sse41_available() -> bool {
    simd_allowed()
        && std::arch::is_x86_feature_detected!("sse4.1")
        && std::arch::is_x86_feature_detected!("popcnt")
}

/// Whether this is an AMD CPU of family 17h below model 30h (Zen 1, Zen+), whose vector units
/// are 128 bits wide: CPUID leaf 0's vendor and leaf 1's family and model.
#[cfg(target_arch = "x86_64")]
fn halves_256() -> bool {
    let r = std::arch::x86_64::__cpuid(0);
    if (r.ebx, r.edx, r.ecx) != (0x6874_7541, 0x6974_6e65, 0x444d_4163) {
        return false;
    }
    let a = std::arch::x86_64::__cpuid(1).eax;
    let family = (a >> 8 & 0xf) + (a >> 20 & 0xff);
    let model = (a >> 4 & 0xf) | (a >> 16 & 0xf) << 4;
    family == 0x17 && model < 0x30
}

/// Whether this CPU could run the AVX-512 rANS decoder (`avx512_decode` without the vendor
/// and the environment): what the tests check it on.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn avx512_decode_available() -> bool {
    avx2_popcnt()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512vbmi")
        && std::arch::is_x86_feature_detected!("avx512vbmi2")
}

/// Whether the NEON kernels run (every aarch64 CPU, unless disabled).
#[cfg(target_arch = "aarch64")]
#[inline]
pub fn neon() -> bool {
    simd_allowed()
}

/// The names of the vector kernel sets that run here: on x86-64 `"avx2"` (every kernel's AVX2
/// version) with `"avx512-decode"` or `"sse41-decode"` where the rANS streams' decoder is that
/// one instead (`["sse41-decode"]` alone on a CPU with SSE4.1 but not AVX2), `["neon"]` on
/// aarch64, or none.
pub fn kernels() -> Vec<&'static str> {
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(unused_mut)
    )]
    let mut k = Vec::new();
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        k.push("avx2");
    }
    #[cfg(target_arch = "x86_64")]
    if avx512_decode() {
        k.push("avx512-decode");
    }
    #[cfg(target_arch = "x86_64")]
    if sse41_decode() && !avx512_decode() {
        k.push("sse41-decode");
    }
    #[cfg(target_arch = "aarch64")]
    if neon() {
        k.push("neon");
    }
    k
}
