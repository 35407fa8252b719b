//! splitans: rANS compression of intermediate feature tensors for split computing.
//!
//! The codec is plain Rust: [`rans`] codes one chunk with interleaved lanes, [`freq`] builds the
//! frequency tables, [`stream`] frames one coded stream and [`container`] the versioned,
//! checksummed blob. The Python bindings (feature `python`) are a thin layer in `python/`.

pub mod batch;
pub mod buffer;
pub mod bytes;
pub mod codec;
pub mod container;
pub mod context;
pub mod cpu;
pub mod error;
pub mod feature;
pub mod fit;
pub mod freq;
pub mod levels;
pub mod pctx;
pub mod quant;
pub mod rans;
pub mod sparse;
pub mod stream;

#[cfg(feature = "python")]
mod python;

pub use container::{compress, encode_symbols, max_compressed_size, DType, Element, Header, Kind};
pub use error::{CodecError, Result};
pub use stream::EncodeOptions;

/// Decodes any container into elements of type `T` (its dtype), with a size cap.
pub fn decompress<T: Element>(
    blob: &[u8],
    max_output_bytes: u64,
    threads: usize,
) -> Result<(Header, Vec<T>)> {
    let h = container::read_header(blob)?;
    container::check_output_size(&h, max_output_bytes)?;
    let data = container::decompress_as(blob, &h, max_output_bytes, threads)?;
    Ok((h, data))
}
