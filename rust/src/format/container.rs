//! The versioned container around coded streams: header, checksum, dtype and shape, and the
//! mapping of integer elements onto streams of 8- or 16-bit symbols.
//!
//! ```text
//! offset size field
//!      0    4 magic "SPNS"
//!      4    1 version (1)
//!      5    1 flags (0; reserved)
//!      6    2 header_len = 24 + 8 * ndim
//!      8    4 crc32 (IEEE) of bytes [0, 8) followed by bytes [12, total_len)
//!     12    8 total_len: the whole container in bytes
//!     20    1 kind (1 symbols, 2 integer array)
//!     21    1 dtype code
//!     22    1 ndim
//!     23    1 stream count
//!     24  8*k shape, one u64 per dimension
//! then per stream: u64 byte length, stream bytes
//! ```

use crate::buffer::{self, Pod};
use crate::bytes::{put_u16, put_u64, Reader};
use crate::entropy::rans::Symbol;
use crate::entropy::stream::{self, EncodeOptions, StreamView};
use crate::format::{BLOB_TAG, COMPACT_NIBBLE, CONTAINER_MAGIC};
use crate::error::{corrupt, CodecError, Result};

/// The newest version this crate reads. `compress` of a float tensor writes version 3, the
/// compact container (FORMAT.md 10); integer arrays and `rans_encode` write version 1; with
/// `version=1` a feature is written as version 1, or 2 in context mode (FORMAT.md 8).
pub const VERSION: u8 = 3;
pub const COMPACT_VERSION: u8 = 3;
/// The first byte of a compact container (FORMAT.md 10.1): `0xF0 | version`.
pub const COMPACT_TAG: u8 = COMPACT_NIBBLE | COMPACT_VERSION;
/// Bytes of a compact container before its shape: tag, CRC-32, dtype, bits and mode, ndim.
pub const COMPACT_FIXED_BYTES: usize = 8;
/// The version of every container but the context-mode feature containers.
pub const BASE_VERSION: u8 = 1;
/// The version of a context-mode feature container written as version 1-2 (FORMAT.md 6.11).
pub const VERSION_CONTEXT: u8 = 2;
pub const FIXED_HEADER_BYTES: usize = 24;
pub const MAX_NDIM: usize = 32;
const CHECKSUM_OFFSET: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A 1-D array of u8 or u16 symbols coded as one stream (`rans_encode`).
    Symbols = 1,
    /// An integer array of any shape, coded losslessly (`compress`).
    Array = 2,
    /// A float feature tensor, quantized and coded dense or sparse (`pipeline::feature`).
    Feature = 3,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Symbols => "symbols",
            Kind::Array => "array",
            Kind::Feature => "feature",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DType {
    U8 = 1,
    I8 = 2,
    U16 = 3,
    I16 = 4,
    U32 = 5,
    I32 = 6,
    U64 = 7,
    I64 = 8,
}

impl DType {
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => DType::U8,
            2 => DType::I8,
            3 => DType::U16,
            4 => DType::I16,
            5 => DType::U32,
            6 => DType::I32,
            7 => DType::U64,
            8 => DType::I64,
            _ => return None,
        })
    }

    /// The dtype of a numpy name (`name`'s inverse).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            DType::U8,
            DType::I8,
            DType::U16,
            DType::I16,
            DType::U32,
            DType::I32,
            DType::U64,
            DType::I64,
        ]
        .into_iter()
        .find(|d| d.name() == name)
    }

    /// The numpy name of the dtype.
    pub fn name(self) -> &'static str {
        match self {
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::U16 => "uint16",
            DType::I16 => "int16",
            DType::U32 => "uint32",
            DType::I32 => "int32",
            DType::U64 => "uint64",
            DType::I64 => "int64",
        }
    }

    pub fn itemsize(self) -> usize {
        match self {
            DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::U32 | DType::I32 => 4,
            DType::U64 | DType::I64 => 8,
        }
    }

    /// 8-bit types are one stream of bytes; wider types are split into 16-bit planes
    /// (plane k holds bits 16k..16k+16), one stream each.
    pub fn planes(self) -> usize {
        (self.itemsize() / 2).max(1)
    }
}

/// The float dtype a feature tensor had, restored on decompression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FloatType {
    F16 = 9,
    BF16 = 10,
    F32 = 11,
    F64 = 12,
}

impl FloatType {
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            9 => FloatType::F16,
            10 => FloatType::BF16,
            11 => FloatType::F32,
            12 => FloatType::F64,
            _ => return None,
        })
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "float16" => FloatType::F16,
            "bfloat16" => FloatType::BF16,
            "float32" => FloatType::F32,
            "float64" => FloatType::F64,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            FloatType::F16 => "float16",
            FloatType::BF16 => "bfloat16",
            FloatType::F32 => "float32",
            FloatType::F64 => "float64",
        }
    }

    pub fn itemsize(self) -> usize {
        match self {
            FloatType::F16 | FloatType::BF16 => 2,
            FloatType::F32 => 4,
            FloatType::F64 => 8,
        }
    }
}

/// The element type recorded in a container's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    Int(DType),
    Float(FloatType),
}

impl ElemType {
    pub fn code(self) -> u8 {
        match self {
            ElemType::Int(d) => d as u8,
            ElemType::Float(f) => f as u8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ElemType::Int(d) => d.name(),
            ElemType::Float(f) => f.name(),
        }
    }

    /// Bytes per element of the decoded array (float features decode to float32).
    pub fn decoded_itemsize(self) -> usize {
        match self {
            ElemType::Int(d) => d.itemsize(),
            ElemType::Float(f) => f.itemsize().max(4),
        }
    }
}

/// An integer element type that the container stores.
pub trait Element: Pod + Default {
    const DTYPE: DType;
    fn to_bits(self) -> u64;
    fn from_bits(v: u64) -> Self;
    /// The elements as bytes when they are bytes already (uint8): coded without a copy.
    fn as_bytes(_data: &[Self]) -> Option<&[u8]> {
        None
    }
}

macro_rules! element {
    ($t:ty, $d:expr) => {
        element!($t, $d, {});
    };
    ($t:ty, $d:expr, { $($extra:item)* }) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            $($extra)*
            #[inline(always)]
            fn to_bits(self) -> u64 {
                self as u64
            }
            #[inline(always)]
            fn from_bits(v: u64) -> Self {
                v as $t
            }
        }
    };
}
element!(u8, DType::U8, {
    fn as_bytes(data: &[u8]) -> Option<&[u8]> {
        Some(data)
    }
});
element!(i8, DType::I8);
element!(u16, DType::U16);
element!(i16, DType::I16);
element!(u32, DType::U32);
element!(i32, DType::I32);
element!(u64, DType::U64);
element!(i64, DType::I64);

/// The size bound `compress` guarantees for an array of `n` elements of `dtype` with `ndim`
/// dimensions: each plane falls back to a raw stream when coding would not pay. `None` when the
/// bound does not fit a `usize` (no such array fits in memory either).
pub fn max_compressed_size(n: usize, dtype: DType, ndim: usize) -> Option<usize> {
    let symbol_bytes = dtype.itemsize().min(2);
    stream::max_encoded_len(n, symbol_bytes)?
        .checked_add(8)?
        .checked_mul(dtype.planes())?
        .checked_add(ndim.checked_mul(8)?.checked_add(FIXED_HEADER_BYTES)?)
}

fn checksum(blob: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&blob[..CHECKSUM_OFFSET]);
    h.update(&blob[CHECKSUM_OFFSET + 4..]);
    h.finalize()
}

pub(crate) fn write_header(
    out: &mut Vec<u8>,
    kind: Kind,
    elem: ElemType,
    shape: &[usize],
    streams: usize,
    version: u8,
) {
    out.extend_from_slice(&CONTAINER_MAGIC);
    out.push(version);
    out.push(0);
    put_u16(out, (FIXED_HEADER_BYTES + 8 * shape.len()) as u16);
    out.extend_from_slice(&[0; 4]); // checksum, filled last
    put_u64(out, 0); // total length, filled last
    out.extend_from_slice(&[kind as u8, elem.code(), shape.len() as u8, streams as u8]);
    for &d in shape {
        put_u64(out, d as u64);
    }
}

/// A container of version 1 (FORMAT.md 2) around streams already coded, each the bytes of a
/// whole stream (FORMAT.md 3): the header, one record per stream, then the length and checksum.
/// The GPU path's writer (its kernels code the streams); `encode_container` writes the same
/// bytes as it codes.
pub fn assemble(kind: Kind, elem: ElemType, shape: &[usize], streams: &[&[u8]]) -> Result<Vec<u8>> {
    if shape.len() > MAX_NDIM || streams.len() > u8::MAX as usize {
        return Err(CodecError::InvalidArgument(format!(
            "{} dimensions and {} streams: a container holds at most {MAX_NDIM} and 255",
            shape.len(),
            streams.len()
        )));
    }
    let payload: usize = streams.iter().map(|s| 8 + s.len()).sum();
    let mut out = Vec::with_capacity(FIXED_HEADER_BYTES + 8 * shape.len() + payload);
    write_header(&mut out, kind, elem, shape, streams.len(), BASE_VERSION);
    for s in streams {
        put_u64(&mut out, s.len() as u64);
        out.extend_from_slice(s);
    }
    Ok(finish(out))
}

pub(crate) fn finish(mut out: Vec<u8>) -> Vec<u8> {
    let total = out.len() as u64;
    out[12..20].copy_from_slice(&total.to_le_bytes());
    let crc = checksum(&out);
    out[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    out
}

pub(crate) fn append_stream<S: Symbol>(
    out: &mut Vec<u8>,
    symbols: &[S],
    opts: &EncodeOptions,
) -> Result<()> {
    append_record(out, |out| stream::encode(symbols, opts, out))
}

/// `append_stream` with the stream's plan (`StreamPlan::new` of the symbols' histogram).
pub(crate) fn append_planned_stream<S: Symbol>(
    out: &mut Vec<u8>,
    symbols: &[S],
    plan: &stream::StreamPlan,
    opts: &EncodeOptions,
) -> Result<()> {
    append_record(out, |out| stream::encode_planned(symbols, plan, opts, out))
}

fn append_record(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> Result<()> {
    let len_at = out.len();
    put_u64(out, 0);
    write(out)?;
    let len = (out.len() - len_at - 8) as u64;
    out[len_at..len_at + 8].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

pub(crate) fn check_shape(data_len: usize, shape: &[usize], elem: ElemType) -> Result<()> {
    if shape.len() > MAX_NDIM {
        return Err(CodecError::InvalidArgument(format!(
            "arrays of more than {MAX_NDIM} dimensions are not supported"
        )));
    }
    // The decoder's rule: the nonzero dimensions' product must fit an isize, even beside a zero.
    let nonzero = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d.max(1)))
        .filter(|&c| c <= isize::MAX as usize / elem.decoded_itemsize())
        .ok_or_else(|| CodecError::InvalidArgument("shape overflows".into()))?;
    let count = if shape.contains(&0) { 0 } else { nonzero };
    if count != data_len {
        return Err(CodecError::InvalidArgument(format!(
            "shape {shape:?} holds {count} elements, data has {data_len}"
        )));
    }
    Ok(())
}

/// Compresses a C-ordered integer array losslessly.
pub fn compress<T: Element>(data: &[T], shape: &[usize], opts: &EncodeOptions) -> Result<Vec<u8>> {
    encode_container(Kind::Array, data, shape, opts)
}

/// Codes a 1-D array of u8 or u16 symbols as a single stream (`Kind::Symbols`).
pub fn encode_symbols<T: Element>(symbols: &[T], opts: &EncodeOptions) -> Result<Vec<u8>> {
    if !matches!(T::DTYPE, DType::U8 | DType::U16) {
        return Err(CodecError::InvalidArgument(format!(
            "rANS symbols must be uint8 or uint16, got {}",
            T::DTYPE.name()
        )));
    }
    encode_container(Kind::Symbols, symbols, &[symbols.len()], opts)
}

fn encode_container<T: Element>(
    kind: Kind,
    data: &[T],
    shape: &[usize],
    opts: &EncodeOptions,
) -> Result<Vec<u8>> {
    opts.validate()?;
    check_shape(data.len(), shape, ElemType::Int(T::DTYPE))?;
    let dtype = T::DTYPE;
    let mut out = Vec::with_capacity(FIXED_HEADER_BYTES + 8 * shape.len() + 64);
    write_header(
        &mut out,
        kind,
        ElemType::Int(dtype),
        shape,
        dtype.planes(),
        BASE_VERSION,
    );
    if let Some(bytes) = T::as_bytes(data) {
        append_stream(&mut out, bytes, opts)?;
    } else if dtype.itemsize() == 1 {
        let bytes: Vec<u8> = data.iter().map(|v| v.to_bits() as u8).collect();
        append_stream(&mut out, &bytes, opts)?;
    } else {
        for plane in 0..dtype.planes() {
            let shift = 16 * plane;
            let symbols: Vec<u16> = data.iter().map(|v| (v.to_bits() >> shift) as u16).collect();
            append_stream(&mut out, &symbols, opts)?;
        }
    }
    Ok(finish(out))
}

/// The validated header of a container.
#[derive(Debug, Clone)]
pub struct Header {
    pub version: u8,
    pub kind: Kind,
    pub elem: ElemType,
    pub shape: Vec<usize>,
    pub count: usize,
    pub streams: usize,
    pub header_len: usize,
}

/// Checks magic, version, length and checksum, then parses the header. Nothing of the payload
/// is trusted before the checksum matches.
pub fn read_header(blob: &[u8]) -> Result<Header> {
    if blob.is_empty() {
        return Err(corrupt!("empty input: a container is at least 8 bytes"));
    }
    if blob[0] == COMPACT_TAG {
        return read_compact_header(blob);
    }
    if blob[0] > COMPACT_TAG {
        // 0xF4..0xFF: a compact container of a later version.
        return Err(CodecError::UnsupportedVersion {
            found: blob[0] & 0x0F,
            supported: VERSION,
        });
    }
    if blob[0] & 0xF0 == BLOB_TAG {
        return Err(corrupt!(
            "this is a fitted codec's blob, not a self-contained container: decode it with the splitans.Codec that made it"
        ));
    }
    if blob.len() < 4 || blob[..4] != CONTAINER_MAGIC {
        return Err(corrupt!("not a splitans container (bad magic bytes)"));
    }
    let mut r = Reader::new(blob);
    r.take(4, "magic")?;
    let version = r.u8("version")?;
    if version >= COMPACT_VERSION {
        // Versions from 3 on are compact containers (tag 0xF0 | version), never "SPNS".
        return Err(CodecError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    if version == 0 {
        return Err(corrupt!("format version 0 does not exist"));
    }
    let flags = r.u8("flags")?;
    let header_len = r.u16("header length")? as usize;
    let crc = r.u32("checksum")?;
    let total = r.u64("total length")?;
    if total != blob.len() as u64 {
        return Err(corrupt!(
            "container declares {total} bytes but {} were given{}",
            blob.len(),
            if total > blob.len() as u64 {
                " (truncated)"
            } else {
                " (trailing bytes)"
            }
        ));
    }
    if checksum(blob) != crc {
        return Err(corrupt!("checksum mismatch"));
    }
    if flags != 0 {
        return Err(corrupt!("unknown flags {flags:#04x}"));
    }
    let kind = match r.u8("kind")? {
        1 => Kind::Symbols,
        2 => Kind::Array,
        3 => Kind::Feature,
        k => return Err(corrupt!("unknown container kind {k}")),
    };
    let code = r.u8("dtype")?;
    let elem = match kind {
        Kind::Feature => FloatType::from_code(code).map(ElemType::Float),
        _ => DType::from_code(code).map(ElemType::Int),
    }
    .ok_or_else(|| corrupt!("dtype code {code} invalid for a {} container", kind.name()))?;
    let ndim = r.u8("ndim")? as usize;
    let streams = r.u8("stream count")? as usize;
    if ndim > MAX_NDIM || header_len != FIXED_HEADER_BYTES + 8 * ndim {
        return Err(corrupt!(
            "header length {header_len} does not match {ndim} dimensions"
        ));
    }
    let mut shape = Vec::with_capacity(ndim);
    // numpy needs the bytes of the nonzero dimensions to fit in an isize, even when another
    // dimension is zero.
    let limit = isize::MAX as u64 / elem.decoded_itemsize() as u64;
    let mut nonzero: u64 = 1;
    for _ in 0..ndim {
        let d = r.u64("shape")?;
        nonzero = nonzero
            .checked_mul(d.max(1))
            .filter(|&c| c <= limit)
            .ok_or_else(|| corrupt!("shape has more elements than an array can hold"))?;
        shape.push(d as usize);
    }
    let count = if shape.contains(&0) {
        0
    } else {
        nonzero as usize
    };
    match (kind, elem) {
        (Kind::Symbols, ElemType::Int(DType::U8 | DType::U16)) if ndim == 1 && streams == 1 => {}
        (Kind::Symbols, _) => {
            return Err(corrupt!(
                "symbols container must be one stream of 1-D uint8 or uint16"
            ))
        }
        (Kind::Array, ElemType::Int(d)) if streams != d.planes() => {
            return Err(corrupt!(
                "{} needs {} streams, container has {streams}",
                d.name(),
                d.planes()
            ))
        }
        (Kind::Feature, _) if streams != 1 && streams != 3 => {
            return Err(corrupt!("feature container with {streams} streams"))
        }
        _ => {}
    }
    Ok(Header {
        version,
        kind,
        elem,
        shape,
        count,
        streams,
        header_len,
    })
}

/// The CRC-32 of a compact container: byte 0, then bytes [5, end).
pub(crate) fn compact_checksum(blob: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&blob[..1]);
    h.update(&blob[5..]);
    h.finalize()
}

/// The header of a compact container (FORMAT.md 10.1, 10.4 steps 1-6): everything up to the
/// end of the shape, which is `header_len`. The feature fields after it are `feature::parse`'s.
fn read_compact_header(blob: &[u8]) -> Result<Header> {
    if blob.len() < COMPACT_FIXED_BYTES {
        return Err(corrupt!(
            "a compact container has at least {COMPACT_FIXED_BYTES} bytes, got {} (truncated)",
            blob.len()
        ));
    }
    let crc = u32::from_le_bytes([blob[1], blob[2], blob[3], blob[4]]);
    if compact_checksum(blob) != crc {
        // No length field: a cut container fails here too.
        return Err(corrupt!(
            "checksum mismatch: the container is damaged or truncated"
        ));
    }
    let code = blob[5];
    let float = FloatType::from_code(code)
        .ok_or_else(|| corrupt!("dtype code {code} invalid for a feature container"))?;
    let bits_mode = blob[6];
    if bits_mode >> 6 != 0 {
        return Err(corrupt!("reserved bits of the bits/mode byte are set"));
    }
    let mode = bits_mode >> 4;
    let ndim = blob[7] as usize;
    if ndim > MAX_NDIM {
        return Err(corrupt!("{ndim} dimensions (at most {MAX_NDIM})"));
    }
    let elem = ElemType::Float(float);
    let mut r = Reader::new(blob);
    r.take(COMPACT_FIXED_BYTES, "header")?;
    let limit = isize::MAX as u64 / elem.decoded_itemsize() as u64;
    let mut nonzero: u64 = 1;
    let mut shape = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        let d = r.varint64("shape")?;
        nonzero = nonzero
            .checked_mul(d.max(1))
            .filter(|&c| c <= limit)
            .ok_or_else(|| corrupt!("shape has more elements than an array can hold"))?;
        shape.push(d as usize);
    }
    let count = if shape.contains(&0) {
        0
    } else {
        nonzero as usize
    };
    Ok(Header {
        version: COMPACT_VERSION,
        kind: Kind::Feature,
        elem,
        shape,
        count,
        streams: if mode == 1 { 3 } else { 1 },
        header_len: r.position(),
    })
}

/// Starts a compact container (FORMAT.md 10.1) up to the end of the shape; `finish_compact`
/// writes its CRC.
pub(crate) fn write_compact_header(
    out: &mut Vec<u8>,
    float: FloatType,
    bits: u8,
    mode: u8,
    shape: &[usize],
) {
    out.extend_from_slice(&[
        COMPACT_TAG,
        0,
        0,
        0,
        0,
        float as u8,
        (bits - 1) | mode << 4,
        shape.len() as u8,
    ]);
    for &d in shape {
        crate::bytes::put_varint64(out, d as u64);
    }
}

pub(crate) fn finish_compact(mut out: Vec<u8>) -> Vec<u8> {
    let crc = compact_checksum(&out);
    out[1..5].copy_from_slice(&crc.to_le_bytes());
    out
}

impl Header {
    /// The integer dtype of a symbols or array container.
    pub fn int_dtype(&self) -> Result<DType> {
        match self.elem {
            ElemType::Int(d) => Ok(d),
            ElemType::Float(f) => Err(CodecError::InvalidArgument(format!(
                "container holds a quantized {} feature, not integers",
                f.name()
            ))),
        }
    }
}

/// The length-prefixed records after the header: `count` of them, and nothing after.
pub fn records<'a>(blob: &'a [u8], h: &Header, count: usize) -> Result<Vec<&'a [u8]>> {
    let mut r = Reader::new(blob);
    r.take(h.header_len, "header")?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = r.u64("record length")?;
        // A length past the address space is as truncated as any other past the end.
        out.push(r.take(usize::try_from(len).unwrap_or(usize::MAX), "record")?);
    }
    if r.remaining() != 0 {
        return Err(corrupt!("{} bytes after the last stream", r.remaining()));
    }
    Ok(out)
}

/// Parses one stream record, which must hold exactly `n` symbols of `symbol_bytes` bytes.
pub fn parse_stream<'a>(
    record: &'a [u8],
    i: usize,
    n: usize,
    symbol_bytes: usize,
) -> Result<StreamView<'a>> {
    let mut sr = Reader::new(record);
    let view = stream::parse(&mut sr, n as u64)?;
    if view.n != n || sr.remaining() != 0 {
        return Err(corrupt!(
            "stream {i} holds {} symbols in {} of {} bytes, expected {n} symbols",
            view.n,
            sr.position(),
            record.len()
        ));
    }
    if view.symbol_bytes != symbol_bytes {
        return Err(corrupt!(
            "stream {i} has {}-byte symbols, expected {symbol_bytes}",
            view.symbol_bytes
        ));
    }
    Ok(view)
}

/// Parses every stream of an integer container whose header is already validated.
pub fn streams<'a>(blob: &'a [u8], h: &Header) -> Result<Vec<StreamView<'a>>> {
    let dtype = h.int_dtype()?;
    records(blob, h, h.streams)?
        .into_iter()
        .enumerate()
        .map(|(i, rec)| parse_stream(rec, i, h.count, dtype.itemsize().min(2)))
        .collect()
}

/// Decodes a container into elements of type `T`, which must be the container's dtype. The
/// header is validated and checked against `max_output_bytes` by the caller
/// (`check_output_size`); this parses every stream, checks the working buffers too
/// (`check_working_size`), and decodes into one output buffer: 8- and 16-bit dtypes directly,
/// wider ones plane by plane, a block at a time.
pub fn decompress_as<T: Element>(
    blob: &[u8],
    h: &Header,
    max_output_bytes: u64,
    threads: usize,
) -> Result<Vec<T>> {
    check_dtype::<T>(h)?;
    let views = streams(blob, h)?;
    check_working_size(h, views.iter(), max_output_bytes)?;
    let mut out = buffer::zeroed::<T>(h.count)?;
    decode_views(&views, threads, &mut out)?;
    Ok(out)
}

/// `decompress_as` into `out` (`h.count` elements): nothing as large as the output is
/// allocated. `out` is overwritten, also when decoding fails.
pub fn decompress_into<T: Element>(
    blob: &[u8],
    h: &Header,
    max_output_bytes: u64,
    threads: usize,
    out: &mut [T],
) -> Result<()> {
    check_dtype::<T>(h)?;
    if out.len() != h.count {
        return Err(CodecError::InvalidArgument(format!(
            "the container holds {} elements, the output has room for {}",
            h.count,
            out.len()
        )));
    }
    let views = streams(blob, h)?;
    check_working_size(h, views.iter(), max_output_bytes)?;
    decode_views_into(&views, threads, out)
}

/// Decodes the parsed streams of an integer container (`streams`, checked against the cap)
/// into `out`, whose element type must be the container's.
pub fn decode_views_into<T: Element>(
    views: &[StreamView<'_>],
    threads: usize,
    out: &mut [T],
) -> Result<()> {
    if T::DTYPE.planes() > 1 {
        // The planes are or-ed into the elements.
        out.fill(T::default());
    }
    decode_views(views, threads, out)
}

fn check_dtype<T: Element>(h: &Header) -> Result<()> {
    let dtype = h.int_dtype()?;
    if T::DTYPE != dtype {
        return Err(CodecError::InvalidArgument(format!(
            "container holds {}, not {}",
            dtype.name(),
            T::DTYPE.name()
        )));
    }
    Ok(())
}

fn decode_views<T: Element>(views: &[StreamView<'_>], threads: usize, out: &mut [T]) -> Result<()> {
    match T::DTYPE.itemsize() {
        1 => stream::decode_into(&views[0], buffer::bytes_mut(out), threads)?,
        2 => {
            let symbols = buffer::cast_mut::<u16>(buffer::bytes_mut(out))
                .expect("16-bit elements are u16 symbols");
            stream::decode_into(&views[0], symbols, threads)?
        }
        _ => {
            for (k, view) in views.iter().enumerate() {
                let shift = 16 * k;
                stream::for_each_block::<u16>(view, threads, |first, plane| {
                    for (o, &p) in out[first..first + plane.len()].iter_mut().zip(plane) {
                        *o = T::from_bits(o.to_bits() | (u64::from(p) << shift));
                    }
                    Ok(())
                })?;
            }
        }
    }
    Ok(())
}

/// What decoding holds beyond the output must fit the cap too: the output plus the bytes of
/// streams whose chunks are too large to decode in blocks (`stream::oversized_block_bytes`:
/// only chunks of more than 2^21 symbols). Checked after the streams are parsed, before the
/// output is allocated; `decompress` and `inspect` apply it alike.
pub fn check_working_size<'v, 'a: 'v>(
    h: &Header,
    views: impl Iterator<Item = &'v StreamView<'a>>,
    max_output_bytes: u64,
) -> Result<()> {
    let extra = views.fold(0u64, |a, v| {
        a.saturating_add(stream::oversized_block_bytes(v))
    });
    if extra == 0 {
        return Ok(());
    }
    let needed = (h.count as u64)
        .saturating_mul(h.elem.decoded_itemsize() as u64)
        .saturating_add(extra);
    if needed > max_output_bytes {
        return Err(CodecError::OutputTooLarge {
            needed,
            limit: max_output_bytes,
        });
    }
    Ok(())
}

/// Checks the decoded size against `max_output_bytes` before anything is allocated for it.
pub fn check_output_size(h: &Header, max_output_bytes: u64) -> Result<()> {
    let needed = (h.count as u64).saturating_mul(h.elem.decoded_itemsize() as u64);
    if needed > max_output_bytes {
        return Err(CodecError::OutputTooLarge {
            needed,
            limit: max_output_bytes,
        });
    }
    Ok(())
}

/// What `inspect` reports about one stream.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    pub mode: &'static str,
    pub symbols: usize,
    pub symbol_bytes: usize,
    pub distinct_symbols: usize,
    pub alphabet_size: usize,
    pub precision_bits: u8,
    pub lanes: usize,
    pub chunk_symbols: usize,
    pub compressed_bytes: usize,
    /// n * H / 8 for the order-0 entropy H of the decoded symbols.
    pub entropy_bound_bytes: f64,
}

/// (distinct symbols, alphabet size = largest symbol + 1, order-0 bound n·H/8 in bytes) of a
/// histogram: the statistics `inspect` reports for every stream.
pub fn symbol_stats(counts: &[u64]) -> (usize, usize, f64) {
    let n = counts.iter().sum::<u64>() as f64;
    let bits: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let c = c as f64;
            -c * (c / n).log2()
        })
        .sum();
    (
        counts.iter().filter(|&&c| c > 0).count(),
        counts.iter().rposition(|&c| c > 0).map_or(0, |i| i + 1),
        bits / 8.0,
    )
}

/// Describes one parsed stream; decodes it block by block to measure the entropy of its
/// symbols.
pub fn stream_info(v: &StreamView<'_>, threads: usize) -> Result<StreamInfo> {
    let counts = if v.symbol_bytes == 1 {
        stream::histogram::<u8>(v, threads)?
    } else {
        stream::histogram::<u16>(v, threads)?
    };
    Ok(stream_info_of(v, &counts))
}

/// What `inspect` reports of the parsed stream `v` whose symbols have the histogram `counts`.
pub fn stream_info_of(v: &StreamView<'_>, counts: &[u64]) -> StreamInfo {
    let (distinct_symbols, alphabet_size, entropy_bound_bytes) = symbol_stats(counts);
    StreamInfo {
        mode: v.mode.name(),
        symbols: v.n,
        symbol_bytes: v.symbol_bytes,
        distinct_symbols,
        alphabet_size,
        precision_bits: v.table().map_or(0, |t| t.precision_bits),
        lanes: v.lanes(),
        chunk_symbols: v.chunk_symbols(),
        compressed_bytes: v.encoded_len,
        entropy_bound_bytes,
    }
}

/// Describes every stream of an integer container whose header is validated and checked
/// against the cap. Checks what `decompress_as` checks, in the same order, without holding the
/// array (the streams are decoded block by block into histograms).
pub fn inspect_streams(
    blob: &[u8],
    h: &Header,
    max_output_bytes: u64,
    threads: usize,
) -> Result<Vec<StreamInfo>> {
    let views = streams(blob, h)?;
    check_working_size(h, views.iter(), max_output_bytes)?;
    views.iter().map(|v| stream_info(v, threads)).collect()
}

/// Describes every stream of a valid integer container; decodes them to measure their entropy.
pub fn inspect(blob: &[u8], max_output_bytes: u64) -> Result<(Header, Vec<StreamInfo>)> {
    let h = read_header(blob)?;
    check_output_size(&h, max_output_bytes)?;
    let infos = inspect_streams(blob, &h, max_output_bytes, 0)?;
    Ok((h, infos))
}
