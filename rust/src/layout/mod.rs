//! How quantization codes are arranged before entropy coding: the sparse (CSR) view of a
//! tensor (FORMAT.md 6.8) and the scalar quantizers beyond the affine grid (FORMAT.md 9.2).

pub mod levels;
pub mod sparse;
