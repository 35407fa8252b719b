//! Decoding any container into a caller's buffer, and coding many tensors in one call.
//!
//! Why: a server that batches requests wants to hand the codec a list and its own output
//! buffers once, with the interpreter released once, instead of paying a call's fixed cost (a
//! few microseconds of argument handling and allocation) per tensor, and wants small tensors
//! spread over its cores (one tensor per thread: a small map is a single chunk, which no
//! thread can split). Each item is coded exactly as the single call codes it.

use crate::entropy::stream::{par_map, EncodeOptions, StreamView};
use crate::error::{CodecError, Result};
use crate::format::container::{self, DType, ElemType, Header};
use crate::pipeline::feature::{self, FeatureOptions, OutputSlice, Stages};

/// A caller's buffer for one decoded container: a feature's output type, or an integer array
/// of the container's dtype.
pub enum OutBuf<'a> {
    Feature(OutputSlice<'a>),
    U8(&'a mut [u8]),
    I8(&'a mut [i8]),
    U16(&'a mut [u16]),
    I16(&'a mut [i16]),
    U32(&'a mut [u32]),
    I32(&'a mut [i32]),
    U64(&'a mut [u64]),
    I64(&'a mut [i64]),
}

/// A container parsed and checked up to decoding (its structure, and what decoding holds
/// against the cap): what a caller checks before it allocates the output.
// One per item of a batch, held while it decodes: boxing the feature variant would cost an
// allocation per item for no saving.
#[allow(clippy::large_enum_variant)]
pub enum Prepared<'a> {
    Feature(feature::Parsed<'a>),
    Ints(Vec<StreamView<'a>>),
}

/// Parses `blob` (header `h`, read and checked against the cap) up to decoding.
pub fn prepare<'a>(blob: &'a [u8], h: &Header, max_output_bytes: u64) -> Result<Prepared<'a>> {
    match h.elem {
        ElemType::Float(_) => Ok(Prepared::Feature(feature::parse(
            blob,
            h,
            max_output_bytes,
        )?)),
        ElemType::Int(_) => {
            let views = container::streams(blob, h)?;
            container::check_working_size(h, views.iter(), max_output_bytes)?;
            Ok(Prepared::Ints(views))
        }
    }
}

/// Decodes a prepared container into `out`, which must suit it: a feature output for a feature,
/// the container's dtype for integers.
pub fn decode_prepared(
    p: &Prepared<'_>,
    h: &Header,
    threads: usize,
    out: OutBuf<'_>,
) -> Result<()> {
    let misfit = || {
        Err(CodecError::InvalidArgument(format!(
            "the container holds {}, which does not decode into this buffer",
            h.elem.name()
        )))
    };
    let ints = |d: DType| -> Result<()> {
        if h.int_dtype()? == d {
            Ok(())
        } else {
            misfit()
        }
    };
    match (p, out) {
        (Prepared::Feature(f), OutBuf::Feature(o)) => {
            feature::decompress_parsed_into(f, h, threads, o, &mut Stages::default())
        }
        (Prepared::Ints(v), o) => match o {
            OutBuf::U8(o) => {
                ints(DType::U8).and_then(|_| container::decode_views_into(v, threads, o))
            }
            OutBuf::I8(o) => {
                ints(DType::I8).and_then(|_| container::decode_views_into(v, threads, o))
            }
            OutBuf::U16(o) => {
                ints(DType::U16).and_then(|_| container::decode_views_into(v, threads, o))
            }
            OutBuf::I16(o) => {
                ints(DType::I16).and_then(|_| container::decode_views_into(v, threads, o))
            }
            OutBuf::U32(o) => {
                ints(DType::U32).and_then(|_| container::decode_views_into(v, threads, o))
            }
            OutBuf::I32(o) => {
                ints(DType::I32).and_then(|_| container::decode_views_into(v, threads, o))
            }
            OutBuf::U64(o) => {
                ints(DType::U64).and_then(|_| container::decode_views_into(v, threads, o))
            }
            OutBuf::I64(o) => {
                ints(DType::I64).and_then(|_| container::decode_views_into(v, threads, o))
            }
            OutBuf::Feature(_) => misfit(),
        },
        (Prepared::Feature(_), _) => misfit(),
    }
}

/// Decodes `blob` (header `h`, read and checked against the cap) into `out`.
pub fn decompress_into(
    blob: &[u8],
    h: &Header,
    max_output_bytes: u64,
    threads: usize,
    out: OutBuf<'_>,
) -> Result<()> {
    decode_prepared(&prepare(blob, h, max_output_bytes)?, h, threads, out)
}

/// Decodes every prepared container into its buffer on `threads` threads (0: all cores), one
/// item per task and each item on one thread; the results in order.
pub fn decompress_many(
    items: Vec<(&Prepared<'_>, &Header, OutBuf<'_>)>,
    threads: usize,
) -> Vec<Result<()>> {
    par_map(items, threads, |(_, (p, h, out))| {
        decode_prepared(p, h, 1, out)
    })
}

/// One float tensor to compress: its float32 data (C order), shape, original dtype and options.
pub struct FeatureItem<'a> {
    pub data: &'a [f32],
    pub shape: Vec<usize>,
    pub float_type: container::FloatType,
    pub opts: FeatureOptions,
}

/// `feature::compress_blob` of every item on `threads` threads (0: all cores), each item on one
/// thread (its own `opts.coder.threads` is ignored); the containers, in order.
pub fn compress_features(items: Vec<FeatureItem<'_>>, threads: usize) -> Vec<Result<Vec<u8>>> {
    par_map(items, threads, |(_, mut it)| {
        it.opts.coder.threads = 1;
        feature::compress_blob(it.data, &it.shape, it.float_type, &it.opts)
    })
}

/// Maps `f` over `items` on `threads` threads, each item on one thread with `opts.threads = 1`.
pub fn compress_each<I: Send, F>(
    items: Vec<I>,
    opts: &EncodeOptions,
    threads: usize,
    f: F,
) -> Vec<Result<Vec<u8>>>
where
    F: Fn(I, &EncodeOptions) -> Result<Vec<u8>> + Sync + Send,
{
    let one = EncodeOptions {
        threads: 1,
        ..*opts
    };
    par_map(items, threads, |(_, it)| f(it, &one))
}
