//! The feature section of a feature container (FORMAT.md 6.2, 6.6 steps 1-3; compact
//! containers: 10.1, 10.4 steps 7-12): its parse into `FeatureMeta` and the payload's stream
//! views, checked up to decoding; and the writer of the header and section.
//!
//! Payload of a feature container: one record holding the feature section, then the streams
//! (dense: the codes; csr: row counts, column indices, nonzero values).
//!
//! ```text
//! feature section
//!   u8  bits (1..=16)          u8 mode (0 dense, 1 csr)
//!   u8  axis (255: per tensor) u8 reserved (0)
//!   u64 clamped element count  u64 rows N (csr; 0 for dense)
//!   u32 parameter count (1, or the channel count)
//!   per parameter: f32 scale, i32 zero_point
//! ```

use crate::bytes::{put_u32, put_u64, put_varint, put_varint64, Reader};
use crate::entropy::stream::{self, STREAM_HEADER_BYTES};
use crate::error::{corrupt, CodecError, Result};
use crate::format::container::{self, ElemType, FloatType, Header, Kind};
use crate::layout::sparse;
use crate::model::context;
use crate::model::pctx;
use crate::quant::{self, Affine, Channels};

pub(crate) const NO_AXIS: u8 = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Dense = 0,
    Csr = 1,
    /// Codes of at most 8 bits, coded with adaptive neighbour contexts (`context`).
    Context = 2,
    /// Codes of at most 8 bits, coded by the parallel context coder with a model fitted to this
    /// tensor and stored in the container (`pctx`; compact containers only).
    Pctx = 3,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Dense => "dense",
            Mode::Csr => "csr",
            Mode::Context => "context",
            Mode::Pctx => "pcontext",
        }
    }
}

pub(crate) fn levels(bits: u8) -> i32 {
    (1i32 << bits) - 1
}

/// The feature section of a container, validated against its header.
#[derive(Debug, Clone)]
pub struct FeatureMeta {
    pub float_type: FloatType,
    pub bits: u8,
    pub mode: Mode,
    pub axis: Option<u8>,
    pub channels: Channels,
    pub clamped: u64,
    pub rows: usize,
    pub params: Vec<Affine>,
    pub section_bytes: usize,
}

/// Parses and validates the feature section against the header (FORMAT.md 6.6 step 2).
pub fn read_meta(section: &[u8], h: &Header) -> Result<FeatureMeta> {
    let float_type = match h.elem {
        ElemType::Float(f) => f,
        ElemType::Int(_) => return Err(corrupt!("not a feature container")),
    };
    let mut r = Reader::new(section);
    let bits = r.u8("bits")?;
    let mode = r.u8("mode")?;
    let axis = r.u8("axis")?;
    let reserved = r.u8("reserved")?;
    let clamped = r.u64("clamped count")?;
    let rows = r.u64("rows")?;
    let n_params = r.u32("parameter count")? as usize;
    if !(1..=quant::MAX_BITS).contains(&bits) || reserved != 0 {
        return Err(corrupt!("invalid bits {bits} or reserved byte"));
    }
    let mode = match (mode, h.streams) {
        (0, 1) => Mode::Dense,
        (1, 3) => Mode::Csr,
        (2, 1) if bits <= context::MAX_BITS && h.version >= 2 => Mode::Context,
        _ => return Err(corrupt!("feature mode {mode} with {} streams", h.streams)),
    };
    let (axis, channels) = if axis == NO_AXIS {
        (None, Channels::TENSOR)
    } else {
        let a = axis as usize;
        if a >= h.shape.len() {
            return Err(corrupt!("axis {a} of a {}-d tensor", h.shape.len()));
        }
        let inner = h.shape[a + 1..].iter().product::<usize>().max(1);
        (
            Some(axis),
            Channels {
                channels: h.shape[a],
                inner,
            },
        )
    };
    if n_params != channels.channels || n_params == 0 || r.remaining() != 8 * n_params {
        return Err(corrupt!(
            "{n_params} quantization parameters for {} channels",
            channels.channels
        ));
    }
    let mut params = Vec::with_capacity(n_params);
    for _ in 0..n_params {
        let scale = f32::from_le_bytes(r.u32("scale")?.to_le_bytes());
        let zero_point = r.u32("zero point")? as i32;
        if !(scale.is_finite() && scale >= 0.0) || zero_point < 0 || zero_point > levels(bits) {
            return Err(corrupt!("invalid scale {scale} or zero point {zero_point}"));
        }
        params.push(Affine { scale, zero_point });
    }
    let rows = match mode {
        Mode::Dense | Mode::Context if rows == 0 => 0,
        // At most one row per element: the row counts are a stream of `rows` symbols that the
        // output cap does not see, so an empty tensor has no valid CSR form.
        Mode::Csr
            if rows > 0
                && rows <= h.count as u64
                && h.count.is_multiple_of(rows as usize)
                && h.count / rows as usize <= sparse::MAX_COLS =>
        {
            rows as usize
        }
        _ => {
            return Err(corrupt!(
                "{rows} rows invalid for {} elements in {} mode",
                h.count,
                mode.name()
            ))
        }
    };
    Ok(FeatureMeta {
        float_type,
        bits,
        mode,
        axis,
        channels,
        clamped,
        rows,
        params,
        section_bytes: section.len(),
    })
}

/// A feature container's payload, parsed and checked up to decoding (FORMAT.md 6.6 steps 1–3).
pub struct Parsed<'a> {
    pub meta: FeatureMeta,
    pub(crate) body: Body<'a>,
    /// A compact container's payload parts as (offset, length) in the blob: the stream of a
    /// dense one, the three streams of a CSR one, the body of a context one (empty for
    /// versions 1-2, whose records `container::records` gives).
    pub parts: Vec<(usize, usize)>,
    /// The nonzero count a compact CSR container states (0 otherwise).
    pub nnz: usize,
}

/// The three streams of a CSR container.
pub(crate) struct CsrViews<'a> {
    pub(crate) counts: stream::StreamView<'a>,
    pub(crate) cols: stream::StreamView<'a>,
    pub(crate) values: stream::StreamView<'a>,
}

pub(crate) enum Body<'a> {
    Dense(stream::StreamView<'a>),
    Csr(Box<CsrViews<'a>>),
    /// The context body (FORMAT.md 6.11), read by `context::decode`.
    Context(&'a [u8]),
    /// The model stored in the container (checked against the shape), its tables, and the body
    /// (FORMAT.md 9.4) `pctx::decode` reads.
    Pctx(Box<(pctx::Model, pctx::Tables)>, &'a [u8]),
}

impl Parsed<'_> {
    fn views(&self) -> Vec<&stream::StreamView<'_>> {
        match &self.body {
            Body::Dense(v) => vec![v],
            Body::Csr(c) => vec![&c.counts, &c.cols, &c.values],
            Body::Context(_) | Body::Pctx(..) => Vec::new(),
        }
    }
}

/// Parses a CSR column-index or value stream: at most `max_n` symbols of `width` bytes filling
/// its record (its exact count, the sum of the row counts, is checked while decoding).
fn parse_nonzeros<'a>(
    record: &'a [u8],
    i: usize,
    max_n: usize,
    width: usize,
) -> Result<stream::StreamView<'a>> {
    let mut sr = Reader::new(record);
    let view = stream::parse(&mut sr, max_n as u64)?;
    if sr.remaining() != 0 {
        return Err(corrupt!(
            "stream {i} ends after {} of its {} bytes",
            sr.position(),
            record.len()
        ));
    }
    if view.symbol_bytes != width {
        return Err(corrupt!(
            "stream {i} has {}-byte symbols, expected {width}",
            view.symbol_bytes
        ));
    }
    Ok(view)
}

/// Reads the records and the feature section, parses the streams, and checks what decoding
/// will hold against `max_output_bytes` (the header's check, 2.6 step 13, is the caller's):
/// the output plus `stream::oversized_block_bytes` of every stream.
pub fn parse<'a>(blob: &'a [u8], h: &Header, max_output_bytes: u64) -> Result<Parsed<'a>> {
    if h.version == container::COMPACT_VERSION {
        let parsed = parse_compact(blob, h)?;
        let views = parsed.views();
        container::check_working_size(h, views.iter().copied(), max_output_bytes)?;
        return Ok(parsed);
    }
    let records = container::records(blob, h, 1 + h.streams)?;
    let meta = read_meta(records[0], h)?;
    let width = if meta.bits <= 8 { 1 } else { 2 };
    let body = match meta.mode {
        Mode::Pctx => unreachable!("read_meta refuses mode 3 in a version-1 container"),
        Mode::Context => Body::Context(records[1]),
        Mode::Dense => Body::Dense(container::parse_stream(records[1], 0, h.count, width)?),
        Mode::Csr => {
            let counts = container::parse_stream(records[1], 0, meta.rows, 2)?;
            let cols = parse_nonzeros(records[2], 1, h.count, 2)?;
            let values = parse_nonzeros(records[3], 2, h.count, width)?;
            if cols.n != values.n {
                return Err(corrupt!(
                    "{} column indices but {} values",
                    cols.n,
                    values.n
                ));
            }
            Body::Csr(Box::new(CsrViews {
                counts,
                cols,
                values,
            }))
        }
    };
    let parsed = Parsed {
        meta,
        body,
        parts: Vec::new(),
        nnz: 0,
    };
    let views = parsed.views();
    container::check_working_size(h, views.iter().copied(), max_output_bytes)?;
    Ok(parsed)
}

/// The feature fields and payload of a compact container (FORMAT.md 10.1, 10.4 steps 7-12),
/// after the header `read_header` read.
fn parse_compact<'a>(blob: &'a [u8], h: &Header) -> Result<Parsed<'a>> {
    let float_type = match h.elem {
        ElemType::Float(f) => f,
        ElemType::Int(_) => return Err(corrupt!("not a feature container")),
    };
    let bits = (blob[6] & 0x0F) + 1;
    let mode = match blob[6] >> 4 {
        0 => Mode::Dense,
        1 => Mode::Csr,
        2 => Mode::Context,
        _ => Mode::Pctx,
    };
    if matches!(mode, Mode::Context | Mode::Pctx) && bits > context::MAX_BITS {
        return Err(corrupt!("{} mode with {bits}-bit codes", mode.name()));
    }
    let mut r = Reader::new(blob);
    r.take(h.header_len, "header")?;
    let axis = r.u8("axis")?;
    let (axis, channels) = if axis == NO_AXIS {
        (None, Channels::TENSOR)
    } else {
        let a = axis as usize;
        if a >= h.shape.len() || h.shape[a] == 0 {
            return Err(corrupt!("axis {a} of a tensor of shape {:?}", h.shape));
        }
        (
            Some(axis),
            Channels {
                channels: h.shape[a],
                inner: h.shape[a + 1..].iter().product::<usize>().max(1),
            },
        )
    };
    // Each parameter takes at least 5 bytes: a count beyond that is truncated input.
    if channels.channels > r.remaining() / 5 {
        return Err(corrupt!(
            "{} quantization parameters in {} bytes (truncated)",
            channels.channels,
            r.remaining()
        ));
    }
    let mut params = Vec::with_capacity(channels.channels);
    for _ in 0..channels.channels {
        let scale = f32::from_le_bytes(r.u32("scale")?.to_le_bytes());
        let zero_point = r.varint("zero point")?;
        if !(scale.is_finite() && scale >= 0.0) || zero_point > levels(bits) as u32 {
            return Err(corrupt!("invalid scale {scale} or zero point {zero_point}"));
        }
        params.push(Affine {
            scale,
            zero_point: zero_point as i32,
        });
    }
    let clamped = r.varint64("clamped count")?;
    // Axis, parameters and clamped count: what section 6.2 holds in version 1.
    let section_bytes = r.position() - h.header_len;
    let width = if bits <= 8 { 1 } else { 2 };
    let mut rows = 0usize;
    let mut nnz_stated = 0usize;
    let mut parts = Vec::new();
    let body = match mode {
        Mode::Dense => {
            parts.push((r.position(), r.remaining()));
            let view = stream::parse_compact(&mut r, width, h.count)?;
            if r.remaining() != 0 {
                return Err(corrupt!("{} bytes after the codes", r.remaining()));
            }
            Body::Dense(view)
        }
        Mode::Csr => {
            let n_rows = r.varint64("rows")?;
            if n_rows == 0
                || n_rows > h.count as u64
                || !h.count.is_multiple_of(n_rows as usize)
                || h.count / n_rows as usize > sparse::MAX_COLS
            {
                return Err(corrupt!(
                    "{n_rows} rows invalid for {} elements in csr mode",
                    h.count
                ));
            }
            rows = n_rows as usize;
            let nnz = r.varint64("nonzero count")?;
            if nnz > h.count as u64 {
                return Err(corrupt!("{nnz} nonzeros in {} elements", h.count));
            }
            let nnz = nnz as usize;
            nnz_stated = nnz;
            let mut record = |what: &str| -> Result<&'a [u8]> {
                let len = r.varint64(what)?;
                let len = usize::try_from(len).map_err(|_| corrupt!("{what} of {len} bytes"))?;
                parts.push((r.position(), len));
                r.take(len, what)
            };
            let counts_rec = record("row-count stream length")?;
            let cols_rec = record("column stream length")?;
            parts.push((r.position(), r.remaining()));
            let whole =
                |rec: &'a [u8], i: usize, w: usize, n: usize| -> Result<stream::StreamView<'a>> {
                    let mut sr = Reader::new(rec);
                    let view = stream::parse_compact(&mut sr, w, n)?;
                    if sr.remaining() != 0 {
                        return Err(corrupt!(
                            "stream {i} ends after {} of its {} bytes",
                            sr.position(),
                            rec.len()
                        ));
                    }
                    Ok(view)
                };
            let counts = whole(counts_rec, 0, 2, rows)?;
            let cols = whole(cols_rec, 1, 2, nnz)?;
            let values = stream::parse_compact(&mut r, width, nnz)?;
            if r.remaining() != 0 {
                return Err(corrupt!("{} bytes after the values", r.remaining()));
            }
            Body::Csr(Box::new(CsrViews {
                counts,
                cols,
                values,
            }))
        }
        Mode::Context => {
            let n = r.remaining();
            parts.push((r.position(), n));
            Body::Context(r.take(n, "context body")?)
        }
        Mode::Pctx => {
            let model = pctx::Model::read(&mut r)?;
            if model.predictor == pctx::Predictor::MedResidual {
                return Err(corrupt!(
                    "predictor {} is a fitted codec's (codec version 3), not a container's",
                    model.predictor as u8
                ));
            }
            let group_len = (model.axis_g != pctx::NO_AXIS)
                .then(|| h.shape.get(model.axis_g as usize).copied().unwrap_or(0));
            model.validate(h.shape.len(), group_len)?;
            if model.bits != bits {
                return Err(corrupt!("a {}-bit model for {bits}-bit codes", model.bits));
            }
            let tables = pctx::Tables::new(&model);
            let n = r.remaining();
            parts.push((r.position(), n));
            Body::Pctx(Box::new((model, tables)), r.take(n, "context body")?)
        }
    };
    Ok(Parsed {
        parts,
        nnz: nnz_stated,
        meta: FeatureMeta {
            float_type,
            bits,
            mode,
            axis,
            channels,
            clamped,
            rows,
            params,
            section_bytes,
        },
        body,
    })
}

/// Writes the header and the feature section of a container whose payload the caller appends:
/// FORMAT.md 6.2 (versions 1-2: the header, then the section as the first record) or 10.1
/// (compact: axis, parameters and clamped count after the header). `rows` is the CSR row count,
/// stored only in CSR mode.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_head(
    out: &mut Vec<u8>,
    compact: bool,
    float_type: FloatType,
    shape: &[usize],
    bits: u8,
    mode: Mode,
    axis: u8,
    params: &[Affine],
    clamped: u64,
    rows: usize,
) {
    if compact {
        container::write_compact_header(out, float_type, bits, mode as u8, shape);
        out.push(axis);
        for a in params {
            out.extend_from_slice(&a.scale.to_le_bytes());
            put_varint(out, a.zero_point as u32);
        }
        put_varint64(out, clamped);
    } else {
        let streams = if mode == Mode::Csr { 3 } else { 1 };
        let version = if mode == Mode::Context {
            container::VERSION_CONTEXT
        } else {
            container::BASE_VERSION
        };
        container::write_header(
            out,
            Kind::Feature,
            ElemType::Float(float_type),
            shape,
            streams,
            version,
        );
        let mut section = vec![bits, mode as u8, axis, 0];
        put_u64(&mut section, clamped);
        put_u64(
            &mut section,
            if mode == Mode::Csr { rows as u64 } else { 0 },
        );
        put_u32(&mut section, params.len() as u32);
        for a in params {
            section.extend_from_slice(&a.scale.to_le_bytes());
            section.extend_from_slice(&a.zero_point.to_le_bytes());
        }
        put_u64(out, section.len() as u64);
        out.extend_from_slice(&section);
    }
}

/// A feature container around streams already coded, each the bytes of a whole version-1
/// stream (FORMAT.md 3: the 10-byte stream header, then the body): the codes (dense), or the
/// row counts, column indices and `nnz` values (CSR). Version 1 holds them as records (6.2);
/// the compact container (`compact`, 10.2) as compact streams (10.3: the mode byte, then the
/// body), the first two of a CSR one after their lengths. The GPU path's writer (its kernels
/// code the streams); `pipeline::feature` writes the same bytes as it codes.
#[allow(clippy::too_many_arguments)]
pub fn assemble(
    compact: bool,
    float_type: FloatType,
    shape: &[usize],
    bits: u8,
    mode: Mode,
    axis: u8,
    params: &[Affine],
    clamped: u64,
    rows: usize,
    nnz: usize,
    streams: &[&[u8]],
) -> Result<Vec<u8>> {
    let expected = match mode {
        Mode::Dense => 1,
        Mode::Csr => 3,
        Mode::Context | Mode::Pctx => {
            return Err(CodecError::InvalidArgument(format!(
                "{} containers are not assembled from streams",
                mode.name()
            )))
        }
    };
    if streams.len() != expected || streams.iter().any(|s| s.len() < STREAM_HEADER_BYTES) {
        return Err(CodecError::InvalidArgument(format!(
            "a {} container takes {expected} whole streams",
            mode.name()
        )));
    }
    if shape.len() > container::MAX_NDIM {
        return Err(CodecError::InvalidArgument(format!(
            "arrays of more than {} dimensions are not supported",
            container::MAX_NDIM
        )));
    }
    let mut out = Vec::with_capacity(64 + streams.iter().map(|s| 8 + s.len()).sum::<usize>());
    write_head(
        &mut out, compact, float_type, shape, bits, mode, axis, params, clamped, rows,
    );
    if !compact {
        for s in streams {
            put_u64(&mut out, s.len() as u64);
            out.extend_from_slice(s);
        }
        return Ok(container::finish(out));
    }
    let put_compact = |out: &mut Vec<u8>, s: &[u8]| {
        out.push(s[0]);
        out.extend_from_slice(&s[STREAM_HEADER_BYTES..]);
    };
    if mode == Mode::Csr {
        put_varint64(&mut out, rows as u64);
        put_varint64(&mut out, nnz as u64);
        for s in &streams[..2] {
            put_varint64(&mut out, (1 + s.len() - STREAM_HEADER_BYTES) as u64);
            put_compact(&mut out, s);
        }
    }
    put_compact(&mut out, streams[expected - 1]);
    Ok(container::finish_compact(out))
}
