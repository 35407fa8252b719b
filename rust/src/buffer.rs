//! Allocation of decoded data that fails with an error instead of aborting, and the byte views
//! that let the decoder keep quantization codes inside the output buffer.
//!
//! Why: the sizes a decoder allocates come from its input. `vec![0; n]` aborts the whole process
//! when the allocator refuses `n` (a 52-byte blob can declare 2^40 elements, and a caller may
//! lift the output cap), and a library must never take its host down. Every buffer whose size
//! comes from a container goes through `zeroed`, which returns `CodecError::OutOfMemory`.
//!
//! The views let feature decoding hold one buffer: the codes are decoded into the tail of the
//! output's bytes and dequantized in place, front to back (`pipeline::feature`), instead of living in a
//! second array as large as the output.

use std::alloc::{alloc_zeroed, Layout};

use crate::error::{CodecError, Result};

/// Plain numbers: every bit pattern, all zeros included, is a valid value, there is no padding,
/// and the alignment is at most the size.
///
/// # Safety
/// Implement only for types with exactly these properties.
pub unsafe trait Pod: Copy + Send + Sync + 'static {}

macro_rules! pod {
    ($($t:ty),*) => { $(unsafe impl Pod for $t {})* };
}
pod!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);

/// `n` zeros of `T`, or `OutOfMemory` when the allocator refuses (never an abort). The memory
/// comes from `alloc_zeroed`, so large buffers are fresh zero pages that cost nothing until
/// they are written, as with `vec![0; n]`.
pub fn zeroed<T: Pod>(n: usize) -> Result<Vec<T>> {
    let bytes = (n as u64).saturating_mul(std::mem::size_of::<T>() as u64);
    if n == 0 || std::mem::size_of::<T>() == 0 {
        return Ok(Vec::new());
    }
    let layout = Layout::array::<T>(n).map_err(|_| CodecError::OutOfMemory { bytes })?;
    // SAFETY: `layout` has a nonzero size. A non-null result is a block of `n` zeroed `T`s with
    // `T`'s alignment from the global allocator, which is what `Vec::from_raw_parts` takes
    // (length = capacity = n); all zeros is a valid `T` by the `Pod` contract.
    unsafe {
        let ptr = alloc_zeroed(layout) as *mut T;
        if ptr.is_null() {
            return Err(CodecError::OutOfMemory { bytes });
        }
        advise_huge_pages(ptr as *mut u8, layout.size());
        Ok(Vec::from_raw_parts(ptr, n, n))
    }
}

/// Asks Linux for transparent huge pages on a large buffer (as numpy does for its arrays):
/// filling a fresh 50 MB output otherwise costs about 12,000 page faults, a third of the decode.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn advise_huge_pages(ptr: *mut u8, len: usize) {
    const MADV_HUGEPAGE: i32 = 14;
    const PAGE: usize = 4096;
    extern "C" {
        fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
    }
    if len < 4 << 20 {
        return;
    }
    let start = (ptr as usize).next_multiple_of(PAGE);
    let end = (ptr as usize + len) & !(PAGE - 1);
    // SAFETY: the range lies inside the block just allocated; madvise only changes how the
    // kernel backs it, and a failure (THP disabled) leaves it as it was.
    unsafe {
        madvise(start as *mut std::ffi::c_void, end - start, MADV_HUGEPAGE);
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn advise_huge_pages(_: *mut u8, _: usize) {}

/// The bytes of a slice of plain numbers.
pub fn bytes_mut<T: Pod>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: `T: Pod` has no padding, so its memory is `size_of_val(v)` initialized bytes, and
    // any bytes written through the view leave valid `T`s behind.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, std::mem::size_of_val(v)) }
}

/// `bytes` as `S`s; `None` unless the start is aligned for `S` and the length a multiple of its
/// size.
pub fn cast_mut<S: Pod>(bytes: &mut [u8]) -> Option<&mut [S]> {
    // SAFETY: `S: Pod` accepts any bit pattern; `align_to_mut` only hands out aligned middles.
    let (head, mid, tail) = unsafe { bytes.align_to_mut::<S>() };
    (head.is_empty() && tail.is_empty()).then_some(mid)
}

/// The last `n` `S`s of the bytes of `out` (`n * size_of::<S>()` bytes, ending where `out` ends),
/// where `n = out.len()` and `S` is no larger than `T`: the place where a decoder keeps one
/// code per element until it dequantizes in place.
pub fn tail_mut<T: Pod, S: Pod>(out: &mut [T]) -> &mut [S] {
    let n = out.len();
    let bytes = bytes_mut(out);
    let start = bytes.len() - n * std::mem::size_of::<S>();
    // The offset is `(size_of T - size_of S) * n`, a multiple of `size_of S` when it divides
    // `size_of T` (u8 or u16 codes in f16, f32 or f64 outputs), and the buffer is aligned for
    // `T`, hence for `S`.
    cast_mut(&mut bytes[start..]).expect("code size divides the element size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_allocations_are_errors() {
        assert!(matches!(
            zeroed::<u8>(1 << 62),
            Err(CodecError::OutOfMemory { .. })
        ));
        assert!(matches!(
            zeroed::<u64>(usize::MAX / 4),
            Err(CodecError::OutOfMemory { .. })
        ));
        assert_eq!(zeroed::<f32>(5).unwrap(), vec![0.0; 5]);
        assert!(zeroed::<u16>(0).unwrap().is_empty());
    }

    #[test]
    fn the_tail_holds_one_code_per_element() {
        let mut out = zeroed::<f32>(10).unwrap();
        tail_mut::<f32, u16>(&mut out).copy_from_slice(&[7u16; 10]);
        assert_eq!(bytes_mut(&mut out)[20..22], 7u16.to_ne_bytes());
        assert_eq!(tail_mut::<f32, u8>(&mut out).len(), 10);
        assert_eq!(tail_mut::<u16, u16>(&mut [0u16; 3]).len(), 3);
    }
}
