//! The byte layout of fitted codecs and their blobs (FORMAT.md 9.2 and 9.5): the codec's
//! serialization (magic, version, checksum, dtype, sample shape, quantizer record, then the
//! context model, whose own layout, 9.3, `pctx::Model` writes), and the 7-byte blob header with
//! the variable dimensions and per-sample parameters that follow it. Writers and parsers; what
//! the fields mean is `pipeline::codec`'s.

use crate::bytes::{put_varint, Reader};
use crate::error::{corrupt, CodecError, Result};
use crate::format::container::FloatType;
use crate::format::{BLOB_TAG, CODEC_MAGIC, CONTAINER_MAGIC};
use crate::layout::levels::Codebook;
use crate::model::pctx::{Model, NO_AXIS};
use crate::quant::{Affine, Channels};

/// The newest codec serialization this library reads and writes. A codec is written with the
/// oldest version that has everything it uses (`Codec::version`), so codecs of version 1
/// keep their bytes, and so their ids.
pub const VERSION: u8 = 4;
/// Codec flags (FORMAT.md 9.2), version 4: the model's lanes own whole planes (9.4).
pub const FLAG_PLANE_LANES: u8 = 1;
/// Tag, two bytes of the codec id, CRC-32.
pub const BLOB_HEADER_BYTES: usize = 7;
pub const MAX_NDIM: usize = 32;

/// How the body of a fitted blob holds the codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BlobKind {
    /// Coded by the context model (`pctx`).
    Coded = 0,
    /// Packed, `bits` bits a code: when coding does not pay.
    Raw = 1,
    /// Every code the same: one byte.
    Constant = 2,
}

impl BlobKind {
    pub fn name(self) -> &'static str {
        match self {
            BlobKind::Coded => "coded",
            BlobKind::Raw => "raw",
            BlobKind::Constant => "constant",
        }
    }
}

/// How values become codes and codes values (FORMAT.md 9.2: the quantizer kind).
#[derive(Debug, Clone, PartialEq)]
pub enum Quantizer {
    /// Kind 1. An affine grid fixed at fitting (from the calibration samples' range or a given
    /// clip, per tensor or per channel): no bytes per blob.
    Fixed {
        axis: Option<u8>,
        params: Vec<Affine>,
    },
    /// Kind 0. Each sample's own min/max: its parameters travel in its blob (5+ bytes a
    /// channel). Along a variable axis (version 2) that is one scale per token.
    PerSample { axis: Option<u8> },
    /// Kind 2 (version 2). A fixed affine grid whose values with `|x| <= dead_zone[c]` get the
    /// zero point: more exact zeros, error up to `max(scale / 2, dead_zone)`.
    DeadZone {
        axis: Option<u8>,
        params: Vec<Affine>,
        dead_zone: Vec<f32>,
    },
    /// Kind 3 (version 2). Trained non-uniform levels: channel `c` uses `books[index[c]]`.
    Levels {
        axis: Option<u8>,
        books: Vec<Codebook>,
        index: Vec<u32>,
    },
}

impl Quantizer {
    pub fn axis(&self) -> Option<u8> {
        match self {
            Quantizer::Fixed { axis, .. }
            | Quantizer::PerSample { axis }
            | Quantizer::DeadZone { axis, .. }
            | Quantizer::Levels { axis, .. } => *axis,
        }
    }

    /// The kind byte of the serialization.
    pub fn kind(&self) -> u8 {
        match self {
            Quantizer::PerSample { .. } => 0,
            Quantizer::Fixed { .. } => 1,
            Quantizer::DeadZone { .. } => 2,
            Quantizer::Levels { .. } => 3,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Quantizer::PerSample { .. } => "per-sample",
            Quantizer::Fixed { .. } => "fixed",
            Quantizer::DeadZone { .. } => "dead-zone",
            Quantizer::Levels { .. } => "levels",
        }
    }

    /// The parameters every blob uses, when they are fixed (None: per sample). Their zero
    /// points are the codes of zero that the context model reads for missing neighbours; a
    /// codebook's entry has scale 0 and the code of zero.
    pub fn fixed_params(&self) -> Option<Vec<Affine>> {
        match self {
            Quantizer::PerSample { .. } => None,
            Quantizer::Fixed { params, .. } | Quantizer::DeadZone { params, .. } => {
                Some(params.clone())
            }
            Quantizer::Levels { books, index, .. } => Some(
                index
                    .iter()
                    .map(|&b| Affine {
                        scale: 0.0,
                        zero_point: books[b as usize].zero_code() as i32,
                    })
                    .collect(),
            ),
        }
    }
}

/// What a fitted blob's header says (`Codec::describe`).
#[derive(Debug, Clone)]
pub struct BlobInfo {
    pub kind: BlobKind,
    pub shape: Vec<usize>,
    pub params: Vec<Affine>,
    pub body_bytes: usize,
    pub header_bytes: usize,
}

impl BlobInfo {
    /// The number of elements of the sample.
    pub fn count(&self) -> usize {
        self.shape.iter().product()
    }
}

pub(crate) fn levels(bits: u8) -> i32 {
    (1i32 << bits) - 1
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn channels_of(shape: &[usize], axis: Option<u8>) -> Channels {
    match axis {
        None => Channels::TENSOR,
        Some(a) => Channels {
            channels: shape[a as usize].max(1),
            inner: shape[a as usize + 1..].iter().product::<usize>().max(1),
        },
    }
}

pub(crate) fn check_affine(a: &Affine, bits: u8) -> bool {
    a.scale.is_finite() && a.scale >= 0.0 && a.zero_point >= 0 && a.zero_point <= levels(bits)
}

/// Packs codes of `bits` bits, least significant bit first.
pub(crate) fn pack(q: &[u8], bits: u8, out: &mut Vec<u8>) {
    let mut acc = 0u32;
    let mut have = 0u32;
    for &c in q {
        acc |= (c as u32) << have;
        have += bits as u32;
        while have >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            have -= 8;
        }
    }
    if have > 0 {
        out.push(acc as u8);
    }
}

pub(crate) fn unpack(data: &[u8], bits: u8, q: &mut [u8]) -> Result<()> {
    let need = (q.len() * bits as usize).div_ceil(8);
    if data.len() != need {
        return Err(corrupt!(
            "raw body of {} bytes, {need} expected for {} codes of {bits} bits",
            data.len(),
            q.len()
        ));
    }
    let mask = (1u32 << bits) - 1;
    let mut acc = 0u32;
    let mut have = 0u32;
    let mut bytes = data.iter();
    for c in q.iter_mut() {
        while have < bits as u32 {
            acc |= (*bytes.next().unwrap_or(&0) as u32) << have;
            have += 8;
        }
        *c = (acc & mask) as u8;
        acc >>= bits;
        have -= bits as u32;
    }
    if acc != 0 {
        return Err(corrupt!("raw body has nonzero padding bits"));
    }
    Ok(())
}

pub(crate) fn write_quantizer(quantizer: &Quantizer, out: &mut Vec<u8>) {
    out.extend_from_slice(&[quantizer.kind(), quantizer.axis().unwrap_or(NO_AXIS)]);
    let put_f32 = |out: &mut Vec<u8>, v: f32| out.extend_from_slice(&v.to_le_bytes());
    match quantizer {
        Quantizer::PerSample { .. } => {}
        Quantizer::Fixed { params, .. } => {
            put_varint(out, params.len() as u32);
            for a in params {
                put_f32(out, a.scale);
                put_varint(out, a.zero_point as u32);
            }
        }
        Quantizer::DeadZone {
            params, dead_zone, ..
        } => {
            put_varint(out, params.len() as u32);
            for (a, &t) in params.iter().zip(dead_zone) {
                put_f32(out, a.scale);
                put_varint(out, a.zero_point as u32);
                put_f32(out, t);
            }
        }
        Quantizer::Levels { books, index, .. } => {
            put_varint(out, books.len() as u32);
            for b in books {
                put_varint(out, b.levels.len() as u32);
                for &v in b.levels.iter().chain(&b.thresholds) {
                    put_f32(out, v);
                }
            }
            put_varint(out, index.len() as u32);
            for &i in index {
                put_varint(out, i);
            }
        }
    }
}

/// Reads the quantizer fields of a serialization of `version` (9.2); the checks that need the
/// shape come later (`Codec::check`).
pub(crate) fn read_quantizer(r: &mut Reader<'_>, version: u8, bits: u8) -> Result<Quantizer> {
    let kind = r.u8("quantizer kind")?;
    let axis = r.u8("quantizer axis")?;
    let axis = (axis != NO_AXIS).then_some(axis);
    let f32_at = |r: &mut Reader<'_>, what: &str| -> Result<f32> {
        Ok(f32::from_le_bytes(r.u32(what)?.to_le_bytes()))
    };
    if kind > 1 && version < 2 {
        return Err(corrupt!(
            "quantizer kind {kind} in a version-{version} codec"
        ));
    }
    Ok(match kind {
        0 => Quantizer::PerSample { axis },
        1 | 2 => {
            let p = r.varint("parameter count")? as usize;
            let per = if kind == 1 { 5 } else { 9 };
            if p > r.remaining() / per {
                return Err(corrupt!("{p} quantization parameters (truncated)"));
            }
            let mut params = Vec::with_capacity(p);
            let mut dead_zone = Vec::with_capacity(if kind == 2 { p } else { 0 });
            for _ in 0..p {
                let scale = f32_at(r, "scale")?;
                let zero_point = r.varint("zero point")? as i32;
                params.push(Affine { scale, zero_point });
                if kind == 2 {
                    dead_zone.push(f32_at(r, "dead zone")?);
                }
            }
            if kind == 1 {
                Quantizer::Fixed { axis, params }
            } else {
                Quantizer::DeadZone {
                    axis,
                    params,
                    dead_zone,
                }
            }
        }
        3 => {
            let t = r.varint("codebook count")? as usize;
            if t > r.remaining() / 5 {
                return Err(corrupt!("{t} codebooks (truncated)"));
            }
            let mut books = Vec::with_capacity(t);
            for _ in 0..t {
                let k = r.varint("level count")? as usize;
                if k == 0 || k > 1usize << bits.min(8) || 8 * k - 4 > r.remaining() {
                    return Err(corrupt!(
                        "a codebook of {k} levels for {bits}-bit codes (or truncated)"
                    ));
                }
                let levels = (0..k)
                    .map(|_| f32_at(r, "level"))
                    .collect::<Result<Vec<_>>>()?;
                let thresholds = (1..k)
                    .map(|_| f32_at(r, "threshold"))
                    .collect::<Result<Vec<_>>>()?;
                books.push(Codebook { levels, thresholds });
            }
            let p = r.varint("codebook index count")? as usize;
            if p > r.remaining() {
                return Err(corrupt!("{p} codebook indices (truncated)"));
            }
            let index = (0..p)
                .map(|_| r.varint("codebook index"))
                .collect::<Result<Vec<_>>>()?;
            Quantizer::Levels { axis, books, index }
        }
        k => return Err(corrupt!("unknown quantizer kind {k}")),
    })
}

pub(crate) fn codec_crc(data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&data[..8]);
    h.update(&data[12..]);
    h.finalize()
}

pub(crate) fn blob_crc(id: &[u8; 32], blob: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(id);
    h.update(&blob[..3]);
    h.update(&blob[BLOB_HEADER_BYTES..]);
    h.finalize()
}

/// The fields of a codec serialization, read and checked field by field (FORMAT.md 9.2); the
/// checks across fields are `Codec`'s.
pub(crate) struct CodecFields {
    pub version: u8,
    pub float_type: FloatType,
    pub bits: u8,
    pub shape: Vec<Option<usize>>,
    pub quantizer: Quantizer,
    pub model: Model,
}

/// Serializes a codec's fields (FORMAT.md 9.2), `version` as labelled.
pub(crate) fn write_codec(
    version: u8,
    float_type: FloatType,
    bits: u8,
    shape: &[Option<usize>],
    quantizer: &Quantizer,
    model: &Model,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&CODEC_MAGIC);
    let flags = if model.plane_lanes {
        FLAG_PLANE_LANES
    } else {
        0
    };
    out.extend_from_slice(&[version, flags, 0, 0]);
    out.extend_from_slice(&[0; 8]); // CRC and total length, filled last
    out.extend_from_slice(&[float_type as u8, bits, shape.len() as u8]);
    for d in shape {
        put_varint(&mut out, d.map_or(0, |d| d as u32 + 1));
    }
    write_quantizer(quantizer, &mut out);
    model.write(&mut out);
    let total = out.len() as u32;
    out[12..16].copy_from_slice(&total.to_le_bytes());
    let crc = codec_crc(&out);
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Reads a codec serialization (FORMAT.md 9.2) up to its last byte: magic, version, flags,
/// checksum and length, then the fields.
pub(crate) fn read_codec(data: &[u8]) -> Result<CodecFields> {
    if data.len() < 4 || data[..4] != CODEC_MAGIC {
        return Err(corrupt!("not a splitans codec (bad magic bytes)"));
    }
    let mut r = Reader::new(data);
    r.take(4, "magic")?;
    let version = r.u8("codec version")?;
    if version > VERSION {
        return Err(CodecError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    if version == 0 {
        return Err(corrupt!("codec version 0 does not exist"));
    }
    let head = r.take(3, "flags")?;
    let flags = head[0];
    if flags & !FLAG_PLANE_LANES != 0 || head[1..] != [0, 0] {
        return Err(corrupt!(
            "codec flags {flags:#04x} or reserved bytes not 0 (flags has one bit, 0x01)"
        ));
    }
    let crc = r.u32("codec checksum")?;
    let total = r.u32("codec length")? as usize;
    if total != data.len() {
        return Err(corrupt!(
            "codec declares {total} bytes but {} were given",
            data.len()
        ));
    }
    if codec_crc(data) != crc {
        return Err(corrupt!("codec checksum mismatch"));
    }
    let code = r.u8("dtype")?;
    let float_type =
        FloatType::from_code(code).ok_or_else(|| corrupt!("codec dtype code {code}"))?;
    let bits = r.u8("bits")?;
    let ndim = r.u8("ndim")? as usize;
    if ndim > MAX_NDIM {
        return Err(corrupt!("codec sample of {ndim} dimensions"));
    }
    let mut shape = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        let d = r.varint("sample shape")?;
        shape.push(if d == 0 { None } else { Some(d as usize - 1) });
    }
    let quantizer = read_quantizer(&mut r, version, bits)?;
    let mut model = Model::read(&mut r)?;
    model.plane_lanes = flags & FLAG_PLANE_LANES != 0;
    if r.remaining() != 0 {
        return Err(corrupt!("{} bytes after the model", r.remaining()));
    }
    Ok(CodecFields {
        version,
        float_type,
        bits,
        shape,
        quantizer,
        model,
    })
}

/// A blob around a body (FORMAT.md 9.5) for the codec of id `id`, sample shape `codec_shape`
/// and `quantizer`: the header, the variable lengths of `shape`, per-sample parameters, the
/// body, and the CRC.
pub(crate) fn write_blob(
    id: &[u8; 32],
    kind: BlobKind,
    codec_shape: &[Option<usize>],
    quantizer: &Quantizer,
    shape: &[usize],
    params: &[Affine],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 32);
    out.extend_from_slice(&[BLOB_TAG | kind as u8, id[0], id[1], 0, 0, 0, 0]);
    for (a, d) in codec_shape.iter().enumerate() {
        if d.is_none() {
            put_varint(&mut out, shape[a] as u32);
        }
    }
    if let Quantizer::PerSample { .. } = quantizer {
        for a in params {
            out.extend_from_slice(&a.scale.to_le_bytes());
            put_varint(&mut out, a.zero_point as u32);
        }
    }
    out.extend_from_slice(body);
    let crc = blob_crc(id, &out);
    out[3..7].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Parses and checks a blob's header, variable dimensions and parameters (FORMAT.md 9.5) for
/// the codec of id `id`: everything but the body, which starts at `header_bytes`.
pub(crate) fn read_blob_header(
    blob: &[u8],
    id: &[u8; 32],
    float_type: FloatType,
    bits: u8,
    codec_shape: &[Option<usize>],
    quantizer: &Quantizer,
    max_output_bytes: u64,
) -> Result<BlobInfo> {
    if blob.is_empty() {
        return Err(corrupt!("empty input"));
    }
    if (blob.len() >= 4 && blob[..4] == CONTAINER_MAGIC) || blob[0] & 0xF0 == 0xF0 {
        return Err(corrupt!(
            "this is a self-contained splitans container, not a fitted-codec blob: decode it with splitans.decompress()"
        ));
    }
    if blob[0] & 0xF0 != BLOB_TAG {
        return Err(corrupt!(
            "not a fitted-codec blob (first byte {:#04x})",
            blob[0]
        ));
    }
    if blob.len() < BLOB_HEADER_BYTES {
        return Err(corrupt!(
            "a fitted blob has at least {BLOB_HEADER_BYTES} bytes, got {} (truncated)",
            blob.len()
        ));
    }
    let kind = match blob[0] & 0x0F {
        0 => BlobKind::Coded,
        1 => BlobKind::Raw,
        2 => BlobKind::Constant,
        k => return Err(corrupt!("unknown fitted blob kind {k}")),
    };
    if blob[1..3] != id[..2] {
        return Err(corrupt!(
            "this blob was made by another codec (id {}…), not this one ({}…)",
            hex(&blob[1..3]),
            hex(&id[..2])
        ));
    }
    let crc = u32::from_le_bytes([blob[3], blob[4], blob[5], blob[6]]);
    if blob_crc(id, blob) != crc {
        return Err(corrupt!(
            "checksum mismatch: the blob is damaged, or was made by another codec whose id starts with the same 2 bytes"
        ));
    }
    let mut r = Reader::new(blob);
    r.take(BLOB_HEADER_BYTES, "header")?;
    let mut shape = Vec::with_capacity(codec_shape.len());
    for d in codec_shape {
        shape.push(match d {
            Some(d) => *d,
            None => r.varint("variable dimension")? as usize,
        });
    }
    let count = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&c| c <= isize::MAX as u64 / 8)
        .ok_or_else(|| corrupt!("sample shape {shape:?} overflows"))?;
    // The decoded itemsize (FORMAT.md 6.1): 4 for the half types, which decode through float32.
    let needed = count.saturating_mul(float_type.itemsize().max(4) as u64);
    if needed > max_output_bytes {
        return Err(CodecError::OutputTooLarge {
            needed,
            limit: max_output_bytes,
        });
    }
    let params = match (quantizer.fixed_params(), quantizer) {
        (Some(params), _) => params,
        (None, q) => {
            let ch = channels_of(&shape, q.axis());
            let mut params = Vec::with_capacity(ch.channels);
            for _ in 0..ch.channels {
                let scale = f32::from_le_bytes(r.u32("scale")?.to_le_bytes());
                let zero_point = r.varint("zero point")? as i32;
                let a = Affine { scale, zero_point };
                if !check_affine(&a, bits) {
                    return Err(corrupt!("invalid scale {scale} or zero point {zero_point}"));
                }
                params.push(a);
            }
            params
        }
    };
    Ok(BlobInfo {
        kind,
        shape,
        params,
        body_bytes: r.remaining(),
        header_bytes: r.position(),
    })
}
