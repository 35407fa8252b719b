//! splitans: rANS compression of intermediate feature tensors for split computing.
//!
//! The crate is in layers; each uses only the layers listed above it (nothing points up):
//!
//! 1. foundation: [`error`], [`bytes`] (bounds-checked reading), [`buffer`] (fallible
//!    allocation), [`cpu`] (which vector kernels run);
//! 2. [`quant`]: the quantizers, float to integer codes and back;
//! 3. [`layout`]: how the codes are arranged before coding (CSR rows, trained levels);
//! 4. [`entropy`]: the interleaved rANS coder, its frequency tables, and one framed stream;
//! 5. [`model`]: the context coders (adaptive, and the parallel one with a fitted model);
//! 6. [`format`]: the byte layout of every blob (containers, feature section, fitted codecs);
//! 7. [`pipeline`]: whole operations: feature compression, fitted codecs, batches.
//!
//! The Python bindings (feature `python`) are a thin layer in `python/`.

/// Declares the layers: `pub` with the `internals` feature, which the fuzz targets, the
/// integration tests and the benches turn on (they test and time the layers one by one), and
/// private otherwise, so that a plain build exports only the API below. What only those
/// programs use is dead code to a plain build: it is checked in the `internals` build (the one
/// `cargo clippy --all-targets` makes).
macro_rules! layers {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "internals")]
        pub mod $name;
        #[cfg(not(feature = "internals"))]
        #[allow(dead_code, unused_imports)]
        mod $name;
    )*};
}

layers!(buffer, bytes, cpu, error);
layers!(quant);
layers!(layout);
layers!(entropy);
layers!(model);
layers!(format);
layers!(pipeline);

#[cfg(feature = "python")]
mod python;

pub use entropy::stream::EncodeOptions;
pub use error::{CodecError, Result};
pub use format::container::{
    compress, encode_symbols, max_compressed_size, DType, Element, Header, Kind,
};

/// Decodes any container into elements of type `T` (its dtype), with a size cap.
pub fn decompress<T: Element>(
    blob: &[u8],
    max_output_bytes: u64,
    threads: usize,
) -> Result<(Header, Vec<T>)> {
    let h = format::container::read_header(blob)?;
    format::container::check_output_size(&h, max_output_bytes)?;
    let data = format::container::decompress_as(blob, &h, max_output_bytes, threads)?;
    Ok((h, data))
}
