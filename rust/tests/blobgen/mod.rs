//! A structure-aware generator of splitans containers, for the fuzz targets `structured` and
//! `inspect_agrees` and the bounded test `rust/tests/structured.rs`.
//!
//! Byte-level damage stops at the CRC (every single-bit flip fails it), so tests that flip bits
//! never reach the parsers behind it. This generator builds a *valid* container of every kind and
//! mode with the library's own encoder (`BUILDERS`: integer symbols and arrays of every dtype,
//! features dense, CSR, context and pcontext, empty and 0-d tensors, format versions 1, 2 and the
//! compact 3), parses it into
//! a model of its fields (`Blob`, written from FORMAT.md alone), changes fields of that model
//! (`mutate`: a shape dimension, a row count, a stream's symbol count, a frequency, a chunk's word
//! count, a record length, ...), and writes it back (`Blob::write`) with every length, total_len
//! and the CRC recomputed unless the mutation set one of them on purpose. `check` then decodes
//! the result: it must be an array of the declared shape or one of the documented errors, and
//! `inspect` must agree with `decompress` exactly.
//!
//! Extending it to a new container kind, mode or format:
//! 1. Add a builder (`fn(&mut Gen) -> Option<Vec<u8>>`, returning a valid container from the
//!    encoder) and list it in `BUILDERS`. That alone already works: a payload the model does not
//!    know is kept as opaque record bytes (`Body::Bytes`), which `mutate` edits byte-wise
//!    behind a recomputed CRC.
//! 2. To mutate its fields by name, teach `Blob::parse` its payload (a new `Body` variant, or a
//!    new `StreamBody`), `Blob::write` to serialize it, and `mutate` its fields (one `match` arm
//!    per field, in the style of the others). A different magic or header is a new `Blob::parse`
//!    branch keyed on the magic; `write` must then know where its checksum lives.
//! 3. If it decodes through a new entry point, add it to `decode` and `inspect` below (and the
//!    documented errors to `check`).
//!
//! `tests/test_structured.py` runs the same generator through the Python bindings
//! (`dump_cases_for_python` below).

#![allow(dead_code)]

use splitans::format::container::{self, DType, ElemType, FloatType};
use splitans::pipeline::feature::{
    self, FeatureOptions, ModeChoice, Output, Range, Reshape, Stages,
};
use splitans::quant::{Affine, Channels, NonFinite};
use splitans::{CodecError, EncodeOptions};

/// The cap `check` decodes under: large enough for every builder's output, small enough that a
/// mutated shape is refused (OutputTooLarge) before anything big is allocated.
pub const CAP: u64 = 64 << 20;

// ---------------------------------------------------------------------------------------------
// The source of choices: libFuzzer's bytes in the fuzz targets, a seeded stream in the tests.

pub struct Gen<'a> {
    data: &'a [u8],
    pos: usize,
    /// Whether builders may make streams of 2^16 symbols and more (32 lanes): the bounded test
    /// does; the fuzz targets keep cases small, for executions per second.
    pub large: bool,
}

impl<'a> Gen<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Gen {
            data,
            pos: 0,
            large: true,
        }
    }

    pub fn small(data: &'a [u8]) -> Self {
        Gen {
            data,
            pos: 0,
            large: false,
        }
    }

    /// The next byte; zeros once the input is used up, so every input gives one case.
    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n <= 256 {
            u64::from(self.byte()) % n
        } else {
            self.u64() % n
        }
    }

    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A value near an edge or near `cur`: what breaks parsers.
    pub fn interesting(&mut self, cur: u64, max: u64) -> u64 {
        match self.below(12) {
            0 => 0,
            1 => 1,
            2 => 2,
            3 => max,
            4 => max.saturating_sub(1),
            5 => cur.wrapping_add(1) & max,
            6 => cur.wrapping_sub(1) & max,
            7 => cur.saturating_mul(2).min(max),
            8 => cur / 2,
            9 => (1u64 << self.below(64)) & max,
            10 => cur ^ (1 << self.below(64.min(64 - max.leading_zeros() as u64).max(1))),
            _ => self.u64() & max,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model: a container's fields, as FORMAT.md names them.

#[derive(Clone, Debug, PartialEq)]
pub struct Blob {
    pub magic: [u8; 4],
    pub version: u8,
    pub flags: u8,
    /// `None`: `24 + 8·ndim`.
    pub header_len: Option<u16>,
    /// `None`: the real length.
    pub total_len: Option<u64>,
    pub kind: u8,
    pub dtype: u8,
    pub n_streams: u8,
    pub shape: Vec<u64>,
    pub records: Vec<Record>,
    /// Bytes after the last record (none in a valid container).
    pub trailing: Vec<u8>,
    /// A compact container (FORMAT.md 10) is this model instead: the fields above then only
    /// describe it (kind 3, its dtype, version 3, its shape) and `write` ignores them.
    pub compact: Option<Compact>,
}

/// A compact feature container (FORMAT.md 10.1).
#[derive(Clone, Debug, PartialEq)]
pub struct Compact {
    pub tag: u8,
    pub dtype: u8,
    /// `bits - 1` in bits 0-3, the mode in bits 4-5, reserved bits 6-7.
    pub bits_mode: u8,
    /// `None`: `shape.len()`.
    pub ndim: Option<u8>,
    pub shape: Vec<u64>,
    pub axis: u8,
    /// (scale bits, zero point).
    pub params: Vec<(u32, u32)>,
    pub clamped: u64,
    pub payload: CompactPayload,
    /// Bytes after the payload (none in a valid container).
    pub trailing: Vec<u8>,
}

/// The payload by mode (FORMAT.md 10.2); its streams are compact streams (10.3), modelled as
/// version-1 streams whose width and count the container gives.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum CompactPayload {
    Dense(Stream),
    Csr {
        rows: u64,
        nnz: u64,
        /// Byte lengths of the row-count and column streams; `None`: the real ones.
        lens: [Option<u64>; 2],
        counts: Stream,
        cols: Stream,
        values: Stream,
    },
    Context {
        x0: u32,
        words: Vec<u16>,
    },
    /// pcontext (a model, 9.3, and a body, 9.4), or anything edited byte-wise.
    Bytes(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// `None`: the body's length.
    pub len: Option<u64>,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Section(Section),
    Stream(Stream),
    /// A context-mode body (FORMAT.md 6.11).
    Context {
        x0: u32,
        words: Vec<u16>,
    },
    /// Anything the model does not know field by field.
    Bytes(Vec<u8>),
}

/// The feature section (FORMAT.md 6.2).
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    pub bits: u8,
    pub mode: u8,
    pub axis: u8,
    pub reserved: u8,
    pub clamped: u64,
    pub rows: u64,
    /// `None`: `params.len()`.
    pub count: Option<u32>,
    /// (scale bits, zero point bits).
    pub params: Vec<(u32, u32)>,
}

/// A stream (FORMAT.md 3).
#[derive(Clone, Debug, PartialEq)]
pub struct Stream {
    pub mode: u8,
    pub width: u8,
    pub n: u64,
    pub body: StreamBody,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StreamBody {
    Empty,
    Constant(u16),
    Raw(Vec<u8>),
    Rans(Rans),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rans {
    pub precision: u8,
    pub lanes: u8,
    pub chunk_log2: u8,
    pub reserved: u8,
    pub table: Table,
    /// Word count of each chunk, as the directory states it.
    pub dir: Vec<u32>,
    pub chunks: Vec<Chunk>,
}

/// A frequency table (FORMAT.md 3.4): runs of present symbols and Exp-Golomb frequencies.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub m: u32,
    /// `None`: `runs.len()`.
    pub run_count: Option<u32>,
    /// (gap, len - 1).
    pub runs: Vec<(u32, u32)>,
    pub k: u8,
    pub freqs: Vec<u32>,
    /// Value of the padding bits after the last code (0 in a valid table).
    pub padding: u8,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Chunk {
    pub states: Vec<u32>,
    pub words: Vec<u16>,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn varint(&mut self) -> Option<u32> {
        let mut v = 0u64;
        for i in 0..5 {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return u32::try_from(v).ok();
            }
        }
        None
    }
    fn varint64(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn rest(&self) -> usize {
        self.data.len() - self.pos
    }
}

fn put_varint(out: &mut Vec<u8>, v: u32) {
    put_varint64(out, u64::from(v));
}

fn put_varint64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Table {
    fn parse(c: &mut Cursor<'_>) -> Option<Table> {
        let m = c.varint()?;
        let r = c.varint()?;
        let mut runs = Vec::new();
        let mut total = 0u64;
        for _ in 0..r {
            let gap = c.varint()?;
            let len1 = c.varint()?;
            total += u64::from(len1) + 1;
            runs.push((gap, len1));
        }
        let k = c.u8()?;
        // Exp-Golomb codes, bytes filled from the low bit.
        let (mut byte, mut left) = (0u8, 0u32);
        let mut bit = |c: &mut Cursor<'_>| -> Option<u32> {
            if left == 0 {
                byte = c.u8()?;
                left = 8;
            }
            let b = u32::from(byte & 1);
            byte >>= 1;
            left -= 1;
            Some(b)
        };
        let mut freqs = Vec::new();
        for _ in 0..total.min(u64::from(m)) {
            let mut z = 0;
            while bit(c)? == 0 {
                z += 1;
                if z > 20 {
                    return None;
                }
            }
            let mut b = 0u64;
            for _ in 0..z + u32::from(k) {
                b = (b << 1) | u64::from(bit(c)?);
            }
            let u = (1u64 << (z + u32::from(k))) + b;
            freqs.push((u - (1 << k) + 1) as u32);
        }
        Some(Table {
            m,
            run_count: None,
            runs,
            k,
            freqs,
            padding: byte,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        put_varint(out, self.m);
        put_varint(out, self.run_count.unwrap_or(self.runs.len() as u32));
        for &(gap, len1) in &self.runs {
            put_varint(out, gap);
            put_varint(out, len1);
        }
        out.push(self.k);
        let (mut acc, mut n) = (0u32, 0u32);
        let mut put = |out: &mut Vec<u8>, v: u32| {
            acc |= v << n;
            n += 1;
            if n == 8 {
                out.push(acc as u8);
                acc = 0;
                n = 0;
            }
        };
        let k = u32::from(self.k.min(31));
        for &f in &self.freqs {
            let u = u64::from(f.max(1) - 1) + (1u64 << k);
            let len = 64 - u.leading_zeros();
            for _ in 0..len - k - 1 {
                put(out, 0);
            }
            for i in (0..len).rev() {
                put(out, ((u >> i) & 1) as u32);
            }
        }
        if n > 0 {
            out.push(acc as u8 | (self.padding << n));
        }
    }
}

impl Stream {
    fn parse(c: &mut Cursor<'_>) -> Option<Stream> {
        let mode = c.u8()?;
        let width = c.u8()?;
        let n = c.u64()?;
        let body = match mode {
            0 => StreamBody::Empty,
            1 => StreamBody::Constant(c.u16()?),
            2 => StreamBody::Raw(
                c.take(usize::try_from(n).ok()?.checked_mul(width as usize)?)?
                    .to_vec(),
            ),
            3 => {
                let precision = c.u8()?;
                let lanes = c.u8()?;
                let chunk_log2 = c.u8()?;
                let reserved = c.u8()?;
                let table = Table::parse(c)?;
                let chunk_count = n.div_ceil(1u64 << chunk_log2.min(63)) as usize;
                if chunk_count > c.rest() / 4 {
                    return None;
                }
                let dir: Vec<u32> = (0..chunk_count).map(|_| c.u32()).collect::<Option<_>>()?;
                let mut chunks = Vec::new();
                for &w in &dir {
                    let states = (0..lanes).map(|_| c.u32()).collect::<Option<_>>()?;
                    let words = (0..w).map(|_| c.u16()).collect::<Option<_>>()?;
                    chunks.push(Chunk { states, words });
                }
                StreamBody::Rans(Rans {
                    precision,
                    lanes,
                    chunk_log2,
                    reserved,
                    table,
                    dir,
                    chunks,
                })
            }
            _ => return None,
        };
        Some(Stream {
            mode,
            width,
            n,
            body,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.push(self.mode);
        out.push(self.width);
        out.extend_from_slice(&self.n.to_le_bytes());
        match &self.body {
            StreamBody::Empty => {}
            StreamBody::Constant(s) => out.extend_from_slice(&s.to_le_bytes()),
            StreamBody::Raw(b) => out.extend_from_slice(b),
            StreamBody::Rans(r) => {
                out.extend_from_slice(&[r.precision, r.lanes, r.chunk_log2, r.reserved]);
                r.table.write(out);
                for &w in &r.dir {
                    out.extend_from_slice(&w.to_le_bytes());
                }
                for ch in &r.chunks {
                    for s in &ch.states {
                        out.extend_from_slice(&s.to_le_bytes());
                    }
                    for w in &ch.words {
                        out.extend_from_slice(&w.to_le_bytes());
                    }
                }
            }
        }
    }
}

impl Section {
    fn parse(b: &[u8]) -> Option<Section> {
        let mut c = Cursor { data: b, pos: 0 };
        let bits = c.u8()?;
        let mode = c.u8()?;
        let axis = c.u8()?;
        let reserved = c.u8()?;
        let clamped = c.u64()?;
        let rows = c.u64()?;
        let count = c.u32()?;
        let params = (0..count)
            .map(|_| Some((c.u32()?, c.u32()?)))
            .collect::<Option<Vec<_>>>()?;
        (c.rest() == 0).then_some(Section {
            bits,
            mode,
            axis,
            reserved,
            clamped,
            rows,
            count: None,
            params,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.bits, self.mode, self.axis, self.reserved]);
        out.extend_from_slice(&self.clamped.to_le_bytes());
        out.extend_from_slice(&self.rows.to_le_bytes());
        out.extend_from_slice(&self.count.unwrap_or(self.params.len() as u32).to_le_bytes());
        for &(s, z) in &self.params {
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&z.to_le_bytes());
        }
    }
}

impl Body {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Body::Section(s) => s.write(out),
            Body::Stream(s) => s.write(out),
            Body::Context { x0, words } => {
                out.extend_from_slice(&x0.to_le_bytes());
                for w in words {
                    out.extend_from_slice(&w.to_le_bytes());
                }
            }
            Body::Bytes(b) => out.extend_from_slice(b),
        }
    }
}

impl Stream {
    /// A compact stream (FORMAT.md 10.3) of `n` symbols of `width` bytes in exactly `bytes`.
    fn parse_compact(bytes: &[u8], width: u8, n: u64) -> Option<Stream> {
        let (&mode, rest) = bytes.split_first()?;
        let mut full = vec![mode, width];
        full.extend_from_slice(&n.to_le_bytes());
        full.extend_from_slice(rest);
        let mut c = Cursor {
            data: &full,
            pos: 0,
        };
        let s = Stream::parse(&mut c)?;
        (c.rest() == 0).then_some(s)
    }

    /// The version-1 stream less its width byte and symbol count.
    fn write_compact(&self, out: &mut Vec<u8>) {
        let mut full = Vec::new();
        self.write(&mut full);
        out.push(full[0]);
        out.extend_from_slice(&full[10..]);
    }
}

impl Compact {
    fn parse(data: &[u8]) -> Option<Compact> {
        let mut c = Cursor { data, pos: 0 };
        let tag = c.u8()?;
        let _crc = c.u32()?;
        let dtype = c.u8()?;
        let bits_mode = c.u8()?;
        let ndim = c.u8()?;
        let shape = (0..ndim)
            .map(|_| c.varint64())
            .collect::<Option<Vec<_>>>()?;
        let axis = c.u8()?;
        let channels = if axis == 255 {
            1
        } else {
            *shape.get(axis as usize)?
        };
        let params = (0..channels)
            .map(|_| Some((c.u32()?, c.varint()?)))
            .collect::<Option<Vec<_>>>()?;
        let clamped = c.varint64()?;
        let n: u64 = shape.iter().product();
        let width = if bits_mode & 0x0f < 8 { 1 } else { 2 };
        let payload = match bits_mode >> 4 {
            0 => CompactPayload::Dense(Stream::parse_compact(c.take(c.rest())?, width, n)?),
            1 => {
                let rows = c.varint64()?;
                let nnz = c.varint64()?;
                let l0 = usize::try_from(c.varint64()?).ok()?;
                let counts = Stream::parse_compact(c.take(l0)?, 2, rows)?;
                let l1 = usize::try_from(c.varint64()?).ok()?;
                let cols = Stream::parse_compact(c.take(l1)?, 2, nnz)?;
                let values = Stream::parse_compact(c.take(c.rest())?, width, nnz)?;
                CompactPayload::Csr {
                    rows,
                    nnz,
                    lens: [None, None],
                    counts,
                    cols,
                    values,
                }
            }
            2 => {
                let x0 = c.u32()?;
                let words = (0..c.rest() / 2).map(|_| c.u16()).collect::<Option<_>>()?;
                if c.rest() != 0 {
                    return None;
                }
                CompactPayload::Context { x0, words }
            }
            _ => CompactPayload::Bytes(c.take(c.rest())?.to_vec()),
        };
        Some(Compact {
            tag,
            dtype,
            bits_mode,
            ndim: None,
            shape,
            axis,
            params,
            clamped,
            payload,
            trailing: Vec::new(),
        })
    }

    fn write_payload(&self, out: &mut Vec<u8>) {
        match &self.payload {
            CompactPayload::Dense(s) => s.write_compact(out),
            CompactPayload::Csr {
                rows,
                nnz,
                lens,
                counts,
                cols,
                values,
            } => {
                put_varint64(out, *rows);
                put_varint64(out, *nnz);
                for (s, len) in [counts, cols].into_iter().zip(lens) {
                    let mut rec = Vec::new();
                    s.write_compact(&mut rec);
                    put_varint64(out, len.unwrap_or(rec.len() as u64));
                    out.extend_from_slice(&rec);
                }
                values.write_compact(out);
            }
            CompactPayload::Context { x0, words } => {
                out.extend_from_slice(&x0.to_le_bytes());
                for w in words {
                    out.extend_from_slice(&w.to_le_bytes());
                }
            }
            CompactPayload::Bytes(b) => out.extend_from_slice(b),
        }
    }

    /// The container's bytes, its CRC (FORMAT.md 10.1) recomputed.
    fn write(&self) -> Vec<u8> {
        let mut out = vec![self.tag, 0, 0, 0, 0, self.dtype, self.bits_mode];
        out.push(self.ndim.unwrap_or(self.shape.len() as u8));
        for &d in &self.shape {
            put_varint64(&mut out, d);
        }
        out.push(self.axis);
        for &(scale, zero_point) in &self.params {
            out.extend_from_slice(&scale.to_le_bytes());
            put_varint(&mut out, zero_point);
        }
        put_varint64(&mut out, self.clamped);
        self.write_payload(&mut out);
        out.extend_from_slice(&self.trailing);
        let mut h = crc32fast::Hasher::new();
        h.update(&out[..1]);
        h.update(&out[5..]);
        let crc = h.finalize();
        out[1..5].copy_from_slice(&crc.to_le_bytes());
        out
    }

    fn streams_mut(&mut self) -> Vec<&mut Stream> {
        match &mut self.payload {
            CompactPayload::Dense(s) => vec![s],
            CompactPayload::Csr {
                counts,
                cols,
                values,
                ..
            } => vec![counts, cols, values],
            _ => Vec::new(),
        }
    }
}

impl Blob {
    /// The model of a container (one the encoder wrote: anything malformed is `None`).
    pub fn parse(data: &[u8]) -> Option<Blob> {
        if data.first() == Some(&0xF3) {
            let c = Compact::parse(data)?;
            return Some(Blob {
                magic: *b"SPNS",
                version: 3,
                flags: 0,
                header_len: None,
                total_len: None,
                kind: 3,
                dtype: c.dtype,
                n_streams: 0,
                shape: c.shape.clone(),
                records: Vec::new(),
                trailing: Vec::new(),
                compact: Some(c),
            });
        }
        let mut c = Cursor { data, pos: 0 };
        let magic: [u8; 4] = c.take(4)?.try_into().ok()?;
        let version = c.u8()?;
        let flags = c.u8()?;
        let header_len = c.u16()?;
        let _crc = c.u32()?;
        let total_len = c.u64()?;
        let kind = c.u8()?;
        let dtype = c.u8()?;
        let ndim = c.u8()?;
        let n_streams = c.u8()?;
        if total_len != data.len() as u64 || header_len as usize != 24 + 8 * ndim as usize {
            return None;
        }
        let shape = (0..ndim).map(|_| c.u64()).collect::<Option<Vec<_>>>()?;
        let mut bodies: Vec<&[u8]> = Vec::new();
        while c.rest() > 0 {
            let len = usize::try_from(c.u64()?).ok()?;
            bodies.push(c.take(len)?);
        }
        let mut records = Vec::new();
        let feature_mode = if kind == 3 {
            Some(Section::parse(bodies.first()?)?.mode)
        } else {
            None
        };
        for (i, b) in bodies.iter().enumerate() {
            let body = match (feature_mode, i) {
                (Some(_), 0) => Body::Section(Section::parse(b)?),
                (Some(2), _) => {
                    let mut cc = Cursor { data: b, pos: 0 };
                    let x0 = cc.u32()?;
                    let words = (0..cc.rest() / 2)
                        .map(|_| cc.u16())
                        .collect::<Option<_>>()?;
                    Body::Context { x0, words }
                }
                _ => {
                    let mut cc = Cursor { data: b, pos: 0 };
                    let s = Stream::parse(&mut cc)?;
                    if cc.rest() != 0 {
                        return None;
                    }
                    Body::Stream(s)
                }
            };
            records.push(Record { len: None, body });
        }
        Some(Blob {
            magic,
            version,
            flags,
            header_len: None,
            total_len: None,
            kind,
            dtype,
            n_streams,
            shape,
            records,
            trailing: Vec::new(),
            compact: None,
        })
    }

    /// The container's bytes: lengths, total_len and the CRC (FORMAT.md 2.2 or 10.1)
    /// recomputed except where a field was set on purpose.
    pub fn write(&self) -> Vec<u8> {
        if let Some(c) = &self.compact {
            return c.write();
        }
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic);
        out.push(self.version);
        out.push(self.flags);
        let header_len = self
            .header_len
            .unwrap_or((24 + 8 * self.shape.len()) as u16);
        out.extend_from_slice(&header_len.to_le_bytes());
        out.extend_from_slice(&[0; 12]);
        out.extend_from_slice(&[
            self.kind,
            self.dtype,
            self.shape.len() as u8,
            self.n_streams,
        ]);
        for d in &self.shape {
            out.extend_from_slice(&d.to_le_bytes());
        }
        for r in &self.records {
            let mut body = Vec::new();
            r.body.write(&mut body);
            out.extend_from_slice(&r.len.unwrap_or(body.len() as u64).to_le_bytes());
            out.extend_from_slice(&body);
        }
        out.extend_from_slice(&self.trailing);
        let total = self.total_len.unwrap_or(out.len() as u64);
        out[12..20].copy_from_slice(&total.to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&out[..8]);
        h.update(&out[12..]);
        let crc = h.finalize();
        out[8..12].copy_from_slice(&crc.to_le_bytes());
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Builders: valid containers of every kind and mode, from the library's encoder.

pub type Builder = fn(&mut Gen) -> Option<Vec<u8>>;

/// One builder per container kind and mode. Extend here (see the module documentation).
pub const BUILDERS: &[(&str, Builder)] = &[
    ("symbols u8", build_symbols8),
    ("symbols u16", build_symbols16),
    ("array", build_array),
    ("feature dense", build_dense),
    ("feature csr", build_csr),
    ("feature context", build_context),
    ("feature best", build_best),
    ("compact dense", build_compact_dense),
    ("compact csr", build_compact_csr),
    ("compact context", build_compact_context),
    ("compact pcontext", build_compact_pcontext),
    ("compact best", build_compact_best),
];

fn coder(g: &mut Gen) -> EncodeOptions {
    EncodeOptions {
        precision_bits: g.chance(4).then(|| g.range(12, 16) as u8),
        // Small chunks give several chunks (and partial last ones) from a few hundred symbols.
        chunk_log2: if g.chance(3) {
            None
        } else {
            Some(g.range(8, 10) as u8)
        },
        threads: 1,
    }
}

/// Up to `max` elements: usually a few hundred, sometimes enough for 32 lanes.
fn length(g: &mut Gen, max: u64) -> usize {
    match g.below(10) {
        0 => 0,
        1 => 1,
        2 => g.range(2, 40) as usize,
        3 if g.large => g.range(65_536, 70_000).min(max) as usize,
        3 => g.range(200, 3000).min(max) as usize,
        _ => g.range(2, if g.large { 2000 } else { 600 }).min(max) as usize,
    }
}

/// A shape: 0-d, empty (a zero dimension), or up to 4 dimensions of about `len` elements.
fn shape(g: &mut Gen, len: usize) -> Vec<usize> {
    match g.below(8) {
        0 => vec![],
        1 => {
            let mut s = vec![g.range(1, 5) as usize, 0, g.range(1, 3) as usize];
            s.truncate(g.range(1, 3) as usize);
            if !s.contains(&0) {
                s.push(0);
            }
            s
        }
        _ => {
            let len = len.max(1);
            let mut s = vec![len];
            for _ in 0..g.below(4) {
                let d = g.pick(&[1usize, 2, 3, 4, 8]);
                if s[0] % d == 0 {
                    s[0] /= d;
                    s.push(d);
                }
            }
            s
        }
    }
}

fn count(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn symbols(g: &mut Gen, n: usize, alphabet: u32) -> Vec<u32> {
    let kind = g.below(4);
    let a = g.range(1, u64::from(alphabet)) as u32;
    let seed = g.u32();
    let mut x = seed | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            match kind {
                0 => x % a,
                1 => (x % 97).min(x % 13) % a,
                2 => ((i as u32) / 7) % a,
                _ => {
                    if x % 10 < 8 {
                        0
                    } else {
                        x % a
                    }
                }
            }
        })
        .collect()
}

fn build_symbols8(g: &mut Gen) -> Option<Vec<u8>> {
    let n = length(g, 70_000);
    let s: Vec<u8> = symbols(g, n, 256).into_iter().map(|v| v as u8).collect();
    splitans::encode_symbols(&s, &coder(g)).ok()
}

fn build_symbols16(g: &mut Gen) -> Option<Vec<u8>> {
    let n = length(g, 70_000);
    let s: Vec<u16> = symbols(g, n, 65_536)
        .into_iter()
        .map(|v| v as u16)
        .collect();
    splitans::encode_symbols(&s, &coder(g)).ok()
}

fn build_array(g: &mut Gen) -> Option<Vec<u8>> {
    let n = length(g, 20_000);
    let sh = shape(g, n);
    let n = count(&sh);
    let v = symbols(g, n, u32::MAX);
    let wide = |v: &u32| (u64::from(*v) * 0x1_0001) ^ (u64::from(*v) << 40);
    let opts = coder(g);
    match g.below(8) {
        0 => splitans::compress(&v.iter().map(|&x| x as u8).collect::<Vec<_>>(), &sh, &opts),
        1 => splitans::compress(&v.iter().map(|&x| x as i8).collect::<Vec<_>>(), &sh, &opts),
        2 => splitans::compress(&v.iter().map(|&x| x as u16).collect::<Vec<_>>(), &sh, &opts),
        3 => splitans::compress(&v.iter().map(|&x| x as i16).collect::<Vec<_>>(), &sh, &opts),
        4 => splitans::compress(&v.to_vec(), &sh, &opts),
        5 => splitans::compress(&v.iter().map(|&x| x as i32).collect::<Vec<_>>(), &sh, &opts),
        6 => splitans::compress(&v.iter().map(wide).collect::<Vec<_>>(), &sh, &opts),
        _ => splitans::compress(
            &v.iter().map(|x| wide(x) as i64).collect::<Vec<_>>(),
            &sh,
            &opts,
        ),
    }
    .ok()
}

fn floats(g: &mut Gen, n: usize) -> Vec<f32> {
    let density = g.pick(&[0u32, 5, 30, 80, 100]);
    let scale = g.pick(&[1e-3f32, 1.0, 7.5, 3e4]);
    let shift = g.pick(&[0.0f32, -0.5, 2.0]);
    symbols(g, n, 1 << 20)
        .into_iter()
        .map(|v| {
            if v % 100 < density {
                (v as f32 / (1 << 20) as f32 + shift) * scale
            } else {
                0.0
            }
        })
        .collect()
}

fn feature(g: &mut Gen, mode: ModeChoice, max_bits: u8) -> Option<Vec<u8>> {
    feature_version(g, mode, max_bits, 1)
}

fn feature_version(g: &mut Gen, mode: ModeChoice, max_bits: u8, version: u8) -> Option<Vec<u8>> {
    let n = length(g, 20_000);
    let sh = shape(g, n);
    let n = count(&sh);
    let x = floats(g, n);
    let bits = g.range(1, u64::from(max_bits)) as u8;
    let axis = if !sh.is_empty() && !sh.contains(&0) && g.chance(3) {
        let a = g.below(sh.len() as u64) as usize;
        Some((
            a as u8,
            Channels {
                channels: sh[a],
                inner: sh[a + 1..].iter().product::<usize>().max(1),
            },
        ))
    } else {
        None
    };
    let channels = axis.map_or(1, |(_, c)| c.channels);
    let range = match g.below(4) {
        0 => Range::Clip(vec![(-1.0, g.range(0, 40) as f32 / 4.0)]),
        1 => Range::Params(
            (0..if g.chance(2) { 1 } else { channels })
                .map(|_| Affine {
                    scale: g.range(0, 100) as f32 / 64.0,
                    zero_point: g.below(1 << bits) as i32,
                })
                .collect(),
        ),
        _ => Range::MinMax,
    };
    let divisors: Vec<usize> = (1..=n.max(1))
        .filter(|d| n.is_multiple_of(*d) && n / d <= 65_535)
        .take(64)
        .collect();
    let reshape = match g.below(3) {
        0 => Reshape::Model,
        1 if n <= 4000 => Reshape::Search,
        _ => Reshape::Rows(g.pick(&divisors)),
    };
    let opts = FeatureOptions {
        bits,
        axis,
        range,
        mode,
        reshape,
        non_finite: NonFinite::Error,
        coder: coder(g),
        version,
    };
    let ft = g.pick(&[
        FloatType::F16,
        FloatType::BF16,
        FloatType::F32,
        FloatType::F64,
    ]);
    feature::compress(&x, &sh, ft, &opts).ok().map(|(b, _)| b)
}

fn build_dense(g: &mut Gen) -> Option<Vec<u8>> {
    feature(g, ModeChoice::Dense, 16)
}

fn build_csr(g: &mut Gen) -> Option<Vec<u8>> {
    feature(g, ModeChoice::Csr, 16)
}

fn build_context(g: &mut Gen) -> Option<Vec<u8>> {
    feature(g, ModeChoice::Context, 8)
}

fn build_best(g: &mut Gen) -> Option<Vec<u8>> {
    let mode = g.pick(&[ModeChoice::Auto, ModeChoice::Best]);
    feature(g, mode, 16)
}

fn build_compact_dense(g: &mut Gen) -> Option<Vec<u8>> {
    feature_version(g, ModeChoice::Dense, 16, 3)
}

fn build_compact_csr(g: &mut Gen) -> Option<Vec<u8>> {
    feature_version(g, ModeChoice::Csr, 16, 3)
}

fn build_compact_context(g: &mut Gen) -> Option<Vec<u8>> {
    feature_version(g, ModeChoice::Context, 8, 3)
}

fn build_compact_pcontext(g: &mut Gen) -> Option<Vec<u8>> {
    feature_version(g, ModeChoice::Pctx, 8, 3)
}

fn build_compact_best(g: &mut Gen) -> Option<Vec<u8>> {
    let mode = g.pick(&[ModeChoice::Auto, ModeChoice::Best]);
    feature_version(g, mode, 16, 3)
}

/// A valid container from a builder chosen by `g`, with its model; sometimes written as
/// format version 2, which every kind accepts (FORMAT.md 8). The model must write back the
/// encoder's bytes exactly.
pub fn valid(g: &mut Gen) -> Option<(&'static str, Vec<u8>, Blob)> {
    let (name, build) = BUILDERS[g.below(BUILDERS.len() as u64) as usize];
    let bytes = build(g)?;
    let mut blob = Blob::parse(&bytes)
        .unwrap_or_else(|| panic!("{name}: the model cannot parse what the encoder wrote"));
    assert_eq!(
        blob.write(),
        bytes,
        "{name}: the model does not write back the encoder's bytes"
    );
    if blob.version == 1 && g.chance(8) {
        blob.version = 2;
        return Some((name, blob.write(), blob));
    }
    Some((name, bytes, blob))
}

// ---------------------------------------------------------------------------------------------
// Mutations: one field of the model, behind a recomputed checksum.

/// Every field name `mutate` returns (the bounded test checks that each is mutated).
pub const FIELDS: &[&str] = &[
    "version",
    "flags",
    "header_len",
    "total_len",
    "kind",
    "dtype",
    "n_streams",
    "shape dimension",
    "ndim",
    "record length",
    "records",
    "trailing bytes",
    "record bytes",
    "section bits",
    "section mode",
    "section axis",
    "section reserved",
    "section clamped",
    "section rows",
    "section parameter count",
    "section scale",
    "section zero point",
    "stream mode",
    "stream width",
    "stream symbol count",
    "constant symbol",
    "raw symbol",
    "rans precision",
    "rans lanes",
    "rans chunk size",
    "rans reserved",
    "table symbol count",
    "table run count",
    "table run",
    "table k",
    "table frequency",
    "table padding",
    "chunk directory",
    "chunk state",
    "chunk word",
    "chunk word count",
    "chunks",
    "context state",
    "context word",
    "context word count",
    "compact tag",
    "compact dtype",
    "compact bits",
    "compact mode",
    "compact reserved bits",
    "compact ndim",
    "compact shape dimension",
    "compact dimensions",
    "compact axis",
    "compact scale",
    "compact zero point",
    "compact parameters",
    "compact clamped",
    "compact rows",
    "compact nnz",
    "compact stream length",
    "compact trailing bytes",
    "compact payload bytes",
];

fn streams_mut(blob: &mut Blob) -> Vec<&mut Stream> {
    blob.records
        .iter_mut()
        .filter_map(|r| match &mut r.body {
            Body::Stream(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// Changes one field of `blob`; returns its name (for the tests' coverage count).
pub fn mutate(blob: &mut Blob, g: &mut Gen) -> &'static str {
    for _ in 0..8 {
        if let Some(name) = try_mutate(blob, g) {
            return name;
        }
    }
    // Nothing applicable (an empty payload): a header field always is.
    if let Some(c) = &mut blob.compact {
        c.trailing = vec![g.byte(); g.range(1, 9) as usize];
        return "compact trailing bytes";
    }
    blob.version = g.pick(&[0, 1, 2, 3]);
    "version"
}

fn try_mutate(blob: &mut Blob, g: &mut Gen) -> Option<&'static str> {
    if let Some(c) = &mut blob.compact {
        let name = mutate_compact(c, g)?;
        blob.shape = c.shape.clone();
        return Some(name);
    }
    Some(match g.below(40) {
        0 => {
            blob.version = g.interesting(u64::from(blob.version), 255) as u8;
            "version"
        }
        1 => {
            blob.flags = g.interesting(0, 255) as u8;
            "flags"
        }
        2 => {
            blob.header_len = Some(g.interesting(24 + 8 * blob.shape.len() as u64, 0xffff) as u16);
            "header_len"
        }
        3 => {
            let real = blob.write().len() as u64;
            blob.total_len = Some(g.interesting(real, u64::MAX));
            "total_len"
        }
        4 => {
            blob.kind = g.interesting(u64::from(blob.kind), 255) as u8;
            "kind"
        }
        5 => {
            blob.dtype = g.range(0, 13) as u8;
            "dtype"
        }
        6 => {
            blob.n_streams = g.interesting(u64::from(blob.n_streams), 255) as u8;
            "n_streams"
        }
        7 => {
            if blob.shape.is_empty() {
                return None;
            }
            let i = g.below(blob.shape.len() as u64) as usize;
            blob.shape[i] = g.interesting(blob.shape[i], u64::MAX);
            "shape dimension"
        }
        8 => {
            if g.chance(2) && blob.shape.len() < 40 {
                let at = g.below(blob.shape.len() as u64 + 1) as usize;
                blob.shape.insert(at, g.pick(&[0, 1, 2, 1 << 20]));
            } else if !blob.shape.is_empty() {
                blob.shape.remove(g.below(blob.shape.len() as u64) as usize);
            } else {
                return None;
            }
            "ndim"
        }
        9 => {
            if blob.records.is_empty() {
                return None;
            }
            let i = g.below(blob.records.len() as u64) as usize;
            let mut body = Vec::new();
            blob.records[i].body.write(&mut body);
            blob.records[i].len = Some(g.interesting(body.len() as u64, u64::MAX));
            "record length"
        }
        10 => {
            match g.below(3) {
                0 if !blob.records.is_empty() => {
                    blob.records
                        .remove(g.below(blob.records.len() as u64) as usize);
                }
                1 if !blob.records.is_empty() => {
                    let i = g.below(blob.records.len() as u64) as usize;
                    blob.records.push(blob.records[i].clone());
                }
                _ if blob.records.len() >= 2 => {
                    let i = g.below(blob.records.len() as u64) as usize;
                    let j = g.below(blob.records.len() as u64) as usize;
                    blob.records.swap(i, j);
                }
                _ => return None,
            }
            "records"
        }
        11 => {
            blob.trailing = vec![g.byte(); g.range(1, 9) as usize];
            "trailing bytes"
        }
        12..=17 => return mutate_section(blob, g),
        18..=32 => return mutate_stream(blob, g),
        33..=35 => return mutate_context(blob, g),
        _ => {
            // Byte-level damage inside one record, behind the recomputed CRC: what the model
            // does not name (non-minimal varints, padding bits, half fields).
            if blob.records.is_empty() {
                return None;
            }
            let i = g.below(blob.records.len() as u64) as usize;
            let mut body = Vec::new();
            blob.records[i].body.write(&mut body);
            if body.is_empty() {
                return None;
            }
            for _ in 0..g.range(1, 3) {
                let at = g.below(body.len() as u64) as usize;
                body[at] = g.byte();
            }
            if g.chance(4) {
                body.truncate(g.below(body.len() as u64) as usize);
            }
            blob.records[i].body = Body::Bytes(body);
            "record bytes"
        }
    })
}

fn mutate_section(blob: &mut Blob, g: &mut Gen) -> Option<&'static str> {
    let s = blob.records.iter_mut().find_map(|r| match &mut r.body {
        Body::Section(s) => Some(s),
        _ => None,
    })?;
    Some(match g.below(9) {
        0 => {
            s.bits = g.interesting(u64::from(s.bits), 255) as u8;
            "section bits"
        }
        1 => {
            s.mode = g.range(0, 4) as u8;
            "section mode"
        }
        2 => {
            s.axis = g.pick(&[0, 1, 2, 3, 31, 32, 254, 255]);
            "section axis"
        }
        3 => {
            s.reserved = g.range(1, 255) as u8;
            "section reserved"
        }
        4 => {
            s.clamped = g.interesting(s.clamped, u64::MAX);
            "section clamped"
        }
        5 => {
            s.rows = g.interesting(s.rows, u64::MAX);
            "section rows"
        }
        6 => {
            s.count = Some(g.interesting(s.params.len() as u64, u64::from(u32::MAX)) as u32);
            "section parameter count"
        }
        7 => {
            if s.params.is_empty() {
                return None;
            }
            let i = g.below(s.params.len() as u64) as usize;
            let any = g.u32();
            s.params[i].0 = g.pick(&[
                0x7f80_0000,
                0xff80_0000,
                0x7fc0_0000,
                0x8000_0000,
                0xbf80_0000,
                0x0000_0001,
                0x7f7f_ffff,
                any,
            ]);
            "section scale"
        }
        _ => {
            if s.params.is_empty() {
                return None;
            }
            let i = g.below(s.params.len() as u64) as usize;
            s.params[i].1 = g.interesting(u64::from(s.params[i].1), u64::from(u32::MAX)) as u32;
            "section zero point"
        }
    })
}

fn mutate_stream(blob: &mut Blob, g: &mut Gen) -> Option<&'static str> {
    let mut streams = streams_mut(blob);
    if streams.is_empty() {
        return None;
    }
    let i = g.below(streams.len() as u64) as usize;
    mutate_one_stream(&mut *streams[i], g, false)
}

/// One field of a stream; a compact stream (`compact`) has no width or count of its own.
fn mutate_one_stream(s: &mut Stream, g: &mut Gen, compact: bool) -> Option<&'static str> {
    Some(match g.below(20) {
        0 => {
            s.mode = g.range(0, 5) as u8;
            "stream mode"
        }
        1 if !compact => {
            s.width = g.range(0, 3) as u8;
            "stream width"
        }
        2 | 3 if !compact => {
            s.n = g.interesting(s.n, u64::MAX);
            "stream symbol count"
        }
        1..=3 => return None,
        4 => {
            let StreamBody::Constant(v) = &mut s.body else {
                return None;
            };
            *v = g.interesting(u64::from(*v), 0xffff) as u16;
            "constant symbol"
        }
        5 => {
            let StreamBody::Raw(b) = &mut s.body else {
                return None;
            };
            if b.is_empty() {
                return None;
            }
            let at = g.below(b.len() as u64) as usize;
            let any = g.byte();
            b[at] = g.pick(&[0, 1, 0x0f, 0x10, 0xff, any]);
            "raw symbol"
        }
        _ => return mutate_rans(s, g),
    })
}

fn mutate_rans(s: &mut Stream, g: &mut Gen) -> Option<&'static str> {
    let StreamBody::Rans(r) = &mut s.body else {
        return None;
    };
    Some(match g.below(16) {
        0 => {
            r.precision = g.interesting(u64::from(r.precision), 255) as u8;
            "rans precision"
        }
        1 => {
            r.lanes = g.pick(&[0, 1, 2, 3, 4, 8, 16, 31, 32, 33, 64]);
            "rans lanes"
        }
        2 => {
            r.chunk_log2 = g.interesting(u64::from(r.chunk_log2), 255) as u8;
            "rans chunk size"
        }
        3 => {
            r.reserved = g.range(1, 255) as u8;
            "rans reserved"
        }
        4 => {
            r.table.m = g.interesting(u64::from(r.table.m), u64::from(u32::MAX)) as u32;
            "table symbol count"
        }
        5 => {
            r.table.run_count =
                Some(g.interesting(r.table.runs.len() as u64, u64::from(u32::MAX)) as u32);
            "table run count"
        }
        6 => {
            let i = g.below(r.table.runs.len().max(1) as u64) as usize;
            let run = r.table.runs.get_mut(i)?;
            if g.chance(2) {
                run.0 = g.interesting(u64::from(run.0), 0xffff_ffff) as u32;
            } else {
                run.1 = g.interesting(u64::from(run.1), 0xffff_ffff) as u32;
            }
            "table run"
        }
        7 => {
            r.table.k = g.interesting(u64::from(r.table.k), 20) as u8;
            "table k"
        }
        8 | 9 => {
            let i = g.below(r.table.freqs.len().max(1) as u64) as usize;
            let f = r.table.freqs.get_mut(i)?;
            *f = g.interesting(u64::from(*f), 1 << 17).max(1) as u32;
            "table frequency"
        }
        10 => {
            r.table.padding = g.range(1, 127) as u8;
            "table padding"
        }
        11 => {
            let i = g.below(r.dir.len().max(1) as u64) as usize;
            let d = r.dir.get_mut(i)?;
            *d = g.interesting(u64::from(*d), u64::from(u32::MAX)) as u32;
            "chunk directory"
        }
        12 => {
            let i = g.below(r.chunks.len().max(1) as u64) as usize;
            let ch = r.chunks.get_mut(i)?;
            let j = g.below(ch.states.len().max(1) as u64) as usize;
            let st = ch.states.get_mut(j)?;
            let any = g.u32();
            *st = g.pick(&[
                0,
                0xffff,
                0x1_0000,
                0x1_0001,
                u32::MAX,
                st.wrapping_add(1),
                any,
            ]);
            "chunk state"
        }
        13 => {
            let i = g.below(r.chunks.len().max(1) as u64) as usize;
            let ch = r.chunks.get_mut(i)?;
            if ch.words.is_empty() {
                return None;
            }
            let j = g.below(ch.words.len() as u64) as usize;
            ch.words[j] ^= 1 << g.below(16);
            "chunk word"
        }
        14 => {
            // Words added or dropped, the directory kept consistent with them.
            let i = g.below(r.chunks.len().max(1) as u64) as usize;
            let ch = r.chunks.get_mut(i)?;
            if g.chance(2) || ch.words.is_empty() {
                ch.words.push(g.u32() as u16);
            } else {
                ch.words.pop();
            }
            r.dir[i] = ch.words.len() as u32;
            "chunk word count"
        }
        _ => {
            // A chunk dropped or repeated, with its directory entry.
            if g.chance(2) && r.chunks.len() > 1 {
                let i = g.below(r.chunks.len() as u64) as usize;
                r.chunks.remove(i);
                r.dir.remove(i);
            } else {
                let i = g.below(r.chunks.len().max(1) as u64) as usize;
                let ch = r.chunks.get(i)?.clone();
                r.dir.push(ch.words.len() as u32);
                r.chunks.push(ch);
            }
            "chunks"
        }
    })
}

fn mutate_context(blob: &mut Blob, g: &mut Gen) -> Option<&'static str> {
    let (x0, words) = blob.records.iter_mut().find_map(|r| match &mut r.body {
        Body::Context { x0, words } => Some((x0, words)),
        _ => None,
    })?;
    mutate_context_body(x0, words, g)
}

fn mutate_context_body(x0: &mut u32, words: &mut Vec<u16>, g: &mut Gen) -> Option<&'static str> {
    Some(match g.below(4) {
        0 => {
            let any = g.u32();
            *x0 = g.pick(&[0, 0xffff, 0x1_0000, 0x1_0001, u32::MAX, any]);
            "context state"
        }
        1 if !words.is_empty() => {
            let j = g.below(words.len() as u64) as usize;
            words[j] ^= 1 << g.below(16);
            "context word"
        }
        2 => {
            if g.chance(2) || words.is_empty() {
                words.push(g.u32() as u16);
            } else {
                words.pop();
            }
            "context word count"
        }
        _ => return None,
    })
}

fn mutate_compact(c: &mut Compact, g: &mut Gen) -> Option<&'static str> {
    Some(match g.below(32) {
        0 => {
            c.tag = g.pick(&[0xF0, 0xF1, 0xF2, 0xF4, 0xFF, 0x53, 0xE0, 0x00]);
            "compact tag"
        }
        1 => {
            c.dtype = g.range(0, 13) as u8;
            "compact dtype"
        }
        2 => {
            c.bits_mode = (c.bits_mode & 0xF0) | g.below(16) as u8;
            "compact bits"
        }
        3 => {
            c.bits_mode = (c.bits_mode & 0xCF) | (g.below(4) as u8) << 4;
            "compact mode"
        }
        4 => {
            c.bits_mode |= g.pick(&[0x40, 0x80, 0xC0]);
            "compact reserved bits"
        }
        5 => {
            c.ndim = Some(g.interesting(c.shape.len() as u64, 255) as u8);
            "compact ndim"
        }
        6 | 7 => {
            if c.shape.is_empty() {
                return None;
            }
            let i = g.below(c.shape.len() as u64) as usize;
            c.shape[i] = g.interesting(c.shape[i], u64::MAX);
            "compact shape dimension"
        }
        8 => {
            if g.chance(2) && c.shape.len() < 40 {
                let at = g.below(c.shape.len() as u64 + 1) as usize;
                c.shape.insert(at, g.pick(&[0, 1, 2, 1 << 20]));
            } else if !c.shape.is_empty() {
                c.shape.remove(g.below(c.shape.len() as u64) as usize);
            } else {
                return None;
            }
            "compact dimensions"
        }
        9 => {
            c.axis = g.pick(&[0, 1, 2, 3, 31, 32, 254, 255]);
            "compact axis"
        }
        10 => {
            if c.params.is_empty() {
                return None;
            }
            let i = g.below(c.params.len() as u64) as usize;
            let any = g.u32();
            c.params[i].0 = g.pick(&[
                0x7f80_0000,
                0xff80_0000,
                0x7fc0_0000,
                0x8000_0000,
                0xbf80_0000,
                0x0000_0001,
                0x7f7f_ffff,
                any,
            ]);
            "compact scale"
        }
        11 => {
            if c.params.is_empty() {
                return None;
            }
            let i = g.below(c.params.len() as u64) as usize;
            c.params[i].1 = g.interesting(u64::from(c.params[i].1), u64::from(u32::MAX)) as u32;
            "compact zero point"
        }
        12 => {
            if g.chance(2) || c.params.is_empty() {
                let p = c.params.first().copied().unwrap_or((0x3f80_0000, 0));
                c.params.push(p);
            } else {
                c.params.pop();
            }
            "compact parameters"
        }
        13 => {
            c.clamped = g.interesting(c.clamped, u64::MAX);
            "compact clamped"
        }
        14 => {
            let CompactPayload::Csr { rows, .. } = &mut c.payload else {
                return None;
            };
            *rows = g.interesting(*rows, u64::MAX);
            "compact rows"
        }
        15 => {
            let CompactPayload::Csr { nnz, .. } = &mut c.payload else {
                return None;
            };
            *nnz = g.interesting(*nnz, u64::MAX);
            "compact nnz"
        }
        16 => {
            let real = {
                let CompactPayload::Csr { counts, cols, .. } = &c.payload else {
                    return None;
                };
                let k = g.below(2) as usize;
                let mut rec = Vec::new();
                [counts, cols][k].write_compact(&mut rec);
                (k, rec.len() as u64)
            };
            let CompactPayload::Csr { lens, .. } = &mut c.payload else {
                unreachable!()
            };
            lens[real.0] = Some(g.interesting(real.1, u64::MAX));
            "compact stream length"
        }
        17 => {
            c.trailing = vec![g.byte(); g.range(1, 9) as usize];
            "compact trailing bytes"
        }
        18..=25 => {
            let mut streams = c.streams_mut();
            if streams.is_empty() {
                return None;
            }
            let i = g.below(streams.len() as u64) as usize;
            return mutate_one_stream(&mut *streams[i], g, true);
        }
        26 | 27 => {
            let CompactPayload::Context { x0, words } = &mut c.payload else {
                return None;
            };
            return mutate_context_body(x0, words, g);
        }
        _ => {
            // Byte-level damage in the payload (a pcontext model and body: bytes only).
            let mut body = Vec::new();
            c.write_payload(&mut body);
            if body.is_empty() {
                return None;
            }
            for _ in 0..g.range(1, 3) {
                let at = g.below(body.len() as u64) as usize;
                body[at] = g.byte();
            }
            if g.chance(4) {
                body.truncate(g.below(body.len() as u64) as usize);
            }
            c.payload = CompactPayload::Bytes(body);
            "compact payload bytes"
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Decoding, as the Python bindings do, and what every outcome must satisfy.

/// `decompress` as `_core.decode` runs it: the element count of the output.
pub fn decode(data: &[u8], cap: u64) -> Result<usize, CodecError> {
    let h = container::read_header(data)?;
    container::check_output_size(&h, cap)?;
    let n = match h.elem {
        ElemType::Int(d) => match d {
            DType::U8 => container::decompress_as::<u8>(data, &h, cap, 1)?.len(),
            DType::I8 => container::decompress_as::<i8>(data, &h, cap, 1)?.len(),
            DType::U16 => container::decompress_as::<u16>(data, &h, cap, 1)?.len(),
            DType::I16 => container::decompress_as::<i16>(data, &h, cap, 1)?.len(),
            DType::U32 => container::decompress_as::<u32>(data, &h, cap, 1)?.len(),
            DType::I32 => container::decompress_as::<i32>(data, &h, cap, 1)?.len(),
            DType::U64 => container::decompress_as::<u64>(data, &h, cap, 1)?.len(),
            DType::I64 => container::decompress_as::<i64>(data, &h, cap, 1)?.len(),
        },
        ElemType::Float(f) => {
            let output = match f {
                FloatType::F16 => Output::F16Bits,
                FloatType::BF16 => Output::BF16Bits,
                FloatType::F32 => Output::F32,
                FloatType::F64 => Output::F64,
            };
            let (_, out) =
                feature::decompress_to(data, &h, cap, 1, output, &mut Stages::default())?;
            match out {
                feature::Decoded::F32(v) => v.len(),
                feature::Decoded::F64(v) => v.len(),
                feature::Decoded::F16Bits(v) | feature::Decoded::BF16Bits(v) => v.len(),
            }
        }
    };
    assert_eq!(n, h.count, "decoded {n} elements of a declared {}", h.count);
    Ok(n)
}

/// `inspect` as `_core.inspect` runs it.
pub fn inspect(data: &[u8], cap: u64) -> Result<(), CodecError> {
    let h = container::read_header(data)?;
    container::check_output_size(&h, cap)?;
    match h.elem {
        ElemType::Int(_) => container::inspect_streams(data, &h, cap, 1).map(|_| ()),
        ElemType::Float(_) => feature::inspect(data, &h, cap, 1).map(|_| ()),
    }
}

/// What a case ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Decoded(usize),
    Failed(CodecError),
}

/// Decodes `data` and checks every promise: an array of the declared element count, or a
/// documented decoder error (Corrupt, UnsupportedVersion, OutputTooLarge; never
/// InvalidArgument nor a panic), and `inspect` failing exactly when and as `decompress` does.
pub fn check(data: &[u8]) -> Outcome {
    let d = decode(data, CAP);
    let i = inspect(data, CAP);
    match (&d, &i) {
        (Ok(_), Ok(())) => {}
        (Err(a), Err(b)) => assert_eq!(a, b, "inspect and decompress fail differently"),
        _ => panic!("inspect and decompress disagree: decompress {d:?}, inspect {i:?}"),
    }
    match d {
        Ok(n) => Outcome::Decoded(n),
        Err(e) => {
            assert!(
                matches!(
                    e,
                    CodecError::Corrupt(_)
                        | CodecError::UnsupportedVersion { .. }
                        | CodecError::OutputTooLarge { .. }
                ),
                "undocumented decoder error {e:?}"
            );
            Outcome::Failed(e)
        }
    }
}

/// One case from `g`: a valid container (which must decode), then 1–4 mutations. Returns the
/// builder's name, the fields mutated, the mutated bytes and their outcome.
pub fn case(g: &mut Gen) -> Option<(&'static str, Vec<&'static str>, Vec<u8>, Outcome)> {
    let (name, bytes, mut blob) = valid(g)?;
    assert!(
        matches!(check(&bytes), Outcome::Decoded(_)),
        "{name}: a fresh container must decode"
    );
    let fields = (0..g.range(1, 4)).map(|_| mutate(&mut blob, g)).collect();
    let data = blob.write();
    let outcome = check(&data);
    Some((name, fields, data, outcome))
}
