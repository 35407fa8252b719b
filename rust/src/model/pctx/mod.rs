//! The parallel context coder (FORMAT.md 9.4): quantization codes of at most 8 bits, each coded
//! with a *static* frequency table chosen by its already-decoded neighbours, in up to 32 lanes
//! that decode in lockstep.
//!
//! Why: a per-image activation map is small, so a table sent with it costs more than it saves,
//! and an order-0 table ignores that neighbouring activations are alike. The adaptive context
//! coder (`model::context`) fixes both but is serial. Here the tables come from a model fitted once
//! on calibration samples (`model::fit`) and shared out of band, as a zstd dictionary is: a blob
//! carries only its coded words. Static tables also make the coder parallel again: the sample
//! is cut into chunks, each chunk into `lanes` contiguous segments, and lane `l` decodes its
//! segment while the other lanes decode theirs, sharing one word stream in the order of the
//! static coder (a warp ballot per step on a GPU).
//!
//! The model: a predictor (none, or the median edge detector of LOCO-I / JPEG-LS) turns each
//! code into a symbol; three properties of the neighbourhood (the neighbours' codes, or the
//! local activity, the prediction and the previous residual of the lane, or with med-residual
//! the largest residual among the left, upper and upper-left neighbours) are mapped to classes
//! by lookup tables; the group of the element's channel and the three classes index a context map that
//! names one of up to 256 frequency tables. Fitting chooses all of it (classes, context map,
//! groups, tables) from data.
//!
//! Cost: one table lookup per property and per element, plus the rANS step: the same order of
//! work as the static coder, with small tables.

use crate::bytes::{put_u16, Reader};
use crate::entropy::rans::RANS_L;
use crate::entropy::stream::lanes_for;
use crate::error::{corrupt, CodecError, Result};
use crate::quant::Channels;

mod decode;
mod encode;
mod neighbours;
mod tables;

/// The vector raster decoder: 8 lanes a vector, every lane of the chunk active.
#[cfg(target_arch = "x86_64")]
mod avx2;
/// The same with AVX-512: 16 lanes a vector.
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

pub use decode::{decode, decode_padded, DECODE_PAD};
pub use encode::{encode, parse_body, ChunkSpan};
pub use neighbours::{fold, properties};
pub use tables::{device_geometry, DeviceTables, Tables, FAST_SLOT_BYTES, MAX_SLOT_TABLE};
// What the sibling files share (each takes `use super::*`).
#[cfg(target_arch = "x86_64")]
use decode::RasterLane;
use neighbours::*;
#[cfg(test)]
use {
    decode::{decode_into, Kernel},
    reference::*,
    tables::*,
};

/// Codes of at most this many bits (alphabets of at most 256 symbols).
pub const MAX_BITS: u8 = 8;
/// "No axis" in a model's axis fields.
pub const NO_AXIS: u8 = 255;
/// Samples of more elements are cut into chunks of this many (the last may be shorter).
pub const CHUNK_LOG2: u32 = 16;
pub const MAX_TABLES: usize = 256;
/// Classes per property.
pub const MAX_CLASSES: usize = 16;
/// Channel groups.
pub const MAX_GROUPS: usize = 64;
/// Frequencies of every table sum to `2^precision`, `bits + 1 <= precision <= MAX_PRECISION`.
pub const MAX_PRECISION: u8 = 15;

/// How a code becomes the symbol that is coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Predictor {
    /// The code itself; properties: the left, upper and upper-left neighbours' codes.
    None = 0,
    /// `(code - med) mod 2^bits` with the median edge detector `med` of the left, upper and
    /// upper-left codes; properties: the local activity, the prediction, and the folded
    /// residual of the previous element of the lane.
    Med = 1,
    /// The median edge detector as `Med`, with the third property the largest folded residual
    /// of the left, upper and upper-left neighbours (0 for a missing one) instead of the lane's
    /// previous one: how well the prediction did around the element, in two dimensions.
    /// Fitted codecs only (codec version 3).
    MedResidual = 2,
}

impl Predictor {
    pub fn from_code(c: u8) -> Option<Predictor> {
        match c {
            0 => Some(Predictor::None),
            1 => Some(Predictor::Med),
            2 => Some(Predictor::MedResidual),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Predictor::None => "none",
            Predictor::Med => "med",
            Predictor::MedResidual => "med-residual",
        }
    }

    /// Lengths of the three property class tables for `bits`-bit codes.
    pub fn property_lengths(self, bits: u8) -> [usize; 3] {
        let a = 1usize << bits;
        match self {
            Predictor::None => [a, a, a],
            Predictor::Med | Predictor::MedResidual => [3 * (a - 1) + 1, a, a / 2 + 1],
        }
    }

    /// Whether the symbol is the residual of the median edge detector (else the code itself).
    pub fn predicts(self) -> bool {
        self != Predictor::None
    }
}

/// A fitted context model (FORMAT.md 9.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub bits: u8,
    pub predictor: Predictor,
    /// The axis along which "left" lies (usually the last), the axis of "up" (an outer one),
    /// and the axis whose index selects the channel group; `NO_AXIS` for none.
    pub axis_x: u8,
    pub axis_y: u8,
    pub axis_g: u8,
    /// Group of each index along `axis_g` (one entry when there is no such axis).
    pub groups: Vec<u8>,
    pub n_groups: u8,
    /// Class of each value of properties a, b and c.
    pub classes: [Vec<u8>; 3],
    pub n_classes: [u8; 3],
    /// Table of each context `((g * n_a + a) * n_b + b) * n_c + c`.
    pub context_map: Vec<u8>,
    pub precision: u8,
    /// `tables * 2^bits` frequencies, table after table; each table sums to `2^precision` and
    /// every frequency is at least 1 (every symbol can be coded in every context).
    pub freqs: Vec<u16>,
    /// Lanes that own whole planes of the up axis (FORMAT.md 9.4, *plane lanes*), so that no
    /// lane starts inside a plane without the row above. Not part of the model's bytes (9.3):
    /// a fitted codec carries it in its flags (version 4); containers never set it.
    pub plane_lanes: bool,
}

impl Model {
    pub fn alphabet(&self) -> usize {
        1 << self.bits
    }

    pub fn tables(&self) -> usize {
        self.freqs.len() / self.alphabet()
    }

    pub fn contexts(&self) -> usize {
        self.n_groups as usize
            * self
                .n_classes
                .iter()
                .map(|&n| n as usize)
                .product::<usize>()
    }

    /// Checks every invariant a decoder relies on, against a sample shape (`ndim` axes, the
    /// group axis of length `group_len`).
    pub fn validate(&self, ndim: usize, group_len: Option<usize>) -> Result<()> {
        let bad = |what: String| Err(corrupt!("context model: {what}"));
        if !(1..=MAX_BITS).contains(&self.bits) {
            return bad(format!("{} bits", self.bits));
        }
        let axis_ok = |a: u8| a == NO_AXIS || (a as usize) < ndim;
        if !axis_ok(self.axis_x) || !axis_ok(self.axis_y) || !axis_ok(self.axis_g) {
            return bad(format!(
                "axes x {} y {} group {} for {ndim} dimensions",
                self.axis_x, self.axis_y, self.axis_g
            ));
        }
        if self.axis_x != NO_AXIS && self.axis_y != NO_AXIS && self.axis_y >= self.axis_x {
            return bad("the up axis must be outside the left axis".into());
        }
        let want_groups = group_len.unwrap_or(1);
        if self.groups.len() != want_groups {
            return bad(format!(
                "{} group entries for {want_groups} channels",
                self.groups.len()
            ));
        }
        if self.n_groups == 0 || self.n_groups as usize > MAX_GROUPS {
            return bad(format!("{} groups", self.n_groups));
        }
        if self.groups.iter().any(|&g| g >= self.n_groups) {
            return bad("a channel group out of range".into());
        }
        let lengths = self.predictor.property_lengths(self.bits);
        for (k, (&n, classes)) in self.n_classes.iter().zip(&self.classes).enumerate() {
            if n == 0 || n as usize > MAX_CLASSES {
                return bad(format!("{n} classes for property {k}"));
            }
            if classes.len() != lengths[k] || classes.iter().any(|&c| c >= n) {
                return bad(format!("class table {k}"));
            }
        }
        if self.context_map.len() != self.contexts() {
            return bad(format!(
                "context map of {} entries for {} contexts",
                self.context_map.len(),
                self.contexts()
            ));
        }
        let a = self.alphabet();
        if self.freqs.is_empty() || !self.freqs.len().is_multiple_of(a) || self.tables() > MAX_TABLES {
            return bad(format!("{} frequencies", self.freqs.len()));
        }
        if self
            .context_map
            .iter()
            .any(|&t| t as usize >= self.tables())
        {
            return bad("a context names a missing table".into());
        }
        if self.precision <= self.bits || self.precision > MAX_PRECISION {
            return bad(format!(
                "precision {} for {}-bit codes",
                self.precision, self.bits
            ));
        }
        for (t, row) in self.freqs.chunks(a).enumerate() {
            let sum: u32 = row.iter().map(|&f| f as u32).sum();
            if row.contains(&0) || sum != 1 << self.precision {
                return bad(format!(
                    "table {t} sums to {sum}, not 2^{}, or has a zero",
                    self.precision
                ));
            }
        }
        Ok(())
    }

    /// FORMAT.md 9.3.
    pub fn write(&self, out: &mut Vec<u8>) {
        use crate::bytes::put_varint;
        out.extend_from_slice(&[
            self.bits,
            self.predictor as u8,
            self.axis_x,
            self.axis_y,
            self.axis_g,
            self.precision,
            self.n_groups,
        ]);
        put_varint(out, self.groups.len() as u32);
        out.extend_from_slice(&self.groups);
        for k in 0..3 {
            out.push(self.n_classes[k]);
            out.extend_from_slice(&self.classes[k]);
        }
        out.extend_from_slice(&self.context_map);
        put_u16(out, self.tables() as u16);
        for &f in &self.freqs {
            put_varint(out, f as u32);
        }
    }

    /// Reads what `write` wrote; `validate` must follow (it needs the sample shape).
    pub fn read(r: &mut Reader<'_>) -> Result<Model> {
        let bits = r.u8("model bits")?;
        let predictor = r.u8("predictor")?;
        let predictor = Predictor::from_code(predictor)
            .ok_or_else(|| corrupt!("context model: unknown predictor {predictor}"))?;
        if !(1..=MAX_BITS).contains(&bits) {
            return Err(corrupt!("context model: {bits} bits"));
        }
        let axis_x = r.u8("axis")?;
        let axis_y = r.u8("axis")?;
        let axis_g = r.u8("axis")?;
        let precision = r.u8("precision")?;
        let n_groups = r.u8("group count")?;
        let n = r.varint("group entries")? as usize;
        if n > r.remaining() {
            return Err(corrupt!("context model: {n} group entries (truncated)"));
        }
        let groups = r.take(n, "groups")?.to_vec();
        let lengths = predictor.property_lengths(bits);
        let mut n_classes = [0u8; 3];
        let mut classes: [Vec<u8>; 3] = Default::default();
        for k in 0..3 {
            n_classes[k] = r.u8("class count")?;
            classes[k] = r.take(lengths[k], "class table")?.to_vec();
        }
        let contexts = n_groups as usize * n_classes.iter().map(|&c| c as usize).product::<usize>();
        let context_map = r.take(contexts, "context map")?.to_vec();
        let tables = r.u16("table count")? as usize;
        let a = 1usize << bits;
        if tables == 0 || tables > MAX_TABLES {
            return Err(corrupt!("context model: {tables} tables"));
        }
        let mut freqs = Vec::with_capacity(tables * a);
        for _ in 0..tables * a {
            let f = r.varint("frequency")?;
            freqs.push(u16::try_from(f).map_err(|_| corrupt!("context model: frequency {f}"))?);
        }
        Ok(Model {
            bits,
            predictor,
            axis_x,
            axis_y,
            axis_g,
            groups,
            n_groups,
            classes,
            n_classes,
            context_map,
            precision,
            freqs,
            plane_lanes: false,
        })
    }
}

/// Where an element's neighbours are, for one sample shape.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub n: usize,
    /// Stride and length of the left axis (stride 0: no left neighbour).
    pub sx: usize,
    pub dx: usize,
    pub sy: usize,
    pub dy: usize,
    /// Channel layout of the group axis.
    pub group: Channels,
    /// The plane span `sy * dy` with plane lanes and an up axis, else 0 (FORMAT.md 9.4).
    pub plane: usize,
}

impl Layout {
    pub fn new(model: &Model, shape: &[usize]) -> Layout {
        let stride = |a: usize| shape[a + 1..].iter().product::<usize>();
        let axis = |a: u8| {
            if a == NO_AXIS || shape[a as usize] == 0 {
                (0, 1)
            } else {
                (stride(a as usize), shape[a as usize])
            }
        };
        let (sx, dx) = axis(model.axis_x);
        let (sy, dy) = axis(model.axis_y);
        let group = if model.axis_g == NO_AXIS {
            Channels::TENSOR
        } else {
            let a = model.axis_g as usize;
            Channels {
                channels: shape[a].max(1),
                inner: stride(a).max(1),
            }
        };
        Layout {
            n: shape.iter().product(),
            sx,
            dx,
            sy,
            dy,
            group,
            plane: if model.plane_lanes { sy * dy } else { 0 },
        }
    }

    /// The chunks of this sample (FORMAT.md 9.4).
    pub fn chunks(&self) -> Vec<Chunk> {
        chunks(self.n, self.plane)
    }
}

/// One chunk of a sample: elements `[start, start + m)` in `lanes` segments of `seg` elements
/// (lane `l` owns `[l * seg, min((l + 1) * seg, m))` of the chunk; the last lanes may be
/// shorter, or empty with the default rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub start: usize,
    pub m: usize,
    pub lanes: usize,
    pub seg: usize,
}

impl Chunk {
    /// The number of lanes with an element at each step, `min(ceil((m - s) / seg), lanes)`
    /// for step `s < seg`, without a division a step: the first `m div seg` lanes are whole,
    /// and one more holds the `m mod seg` elements after them (`m <= lanes · seg`, so that is
    /// never more than `lanes`). A division a step was 4-5 % of a one-lane decode on Zen 3
    /// (benches/NOTES.md 62).
    #[inline]
    pub(crate) fn active(&self) -> impl Fn(usize) -> usize {
        let (whole, rest) = (self.m / self.seg, self.m % self.seg);
        move |s| whole + usize::from(s < rest)
    }
}

/// Lanes may own whole planes of at most this many elements; a longer plane is cut as without
/// plane lanes.
pub const MAX_PLANE: usize = 1 << 16;

/// Chunks of a sample of `n` elements (FORMAT.md 9.4). `plane` is 0 for the default rule: chunks
/// of 2^16 elements, `lanes_for(m)` lanes of `ceil(m / lanes)`. With plane lanes, `plane` is
/// the plane span (which divides `n`): the default's first chunk sets the lane count `L` and a
/// nominal segment `g0`, rounded up to whole planes `g`; chunks hold `L` segments of `g`, the
/// last one `ceil(m / g)`, so every lane starts at a plane's first element.
pub fn chunks(n: usize, plane: usize) -> Vec<Chunk> {
    if n == 0 {
        return Vec::new();
    }
    if plane == 0 || plane > MAX_PLANE {
        let size = 1usize << CHUNK_LOG2;
        return (0..n.div_ceil(size))
            .map(|k| {
                let start = k * size;
                let m = size.min(n - start);
                let lanes = lanes_for(m);
                Chunk {
                    start,
                    m,
                    lanes,
                    seg: m.div_ceil(lanes),
                }
            })
            .collect();
    }
    let first = n.min(1 << CHUNK_LOG2);
    let lanes = lanes_for(first);
    let seg = first.div_ceil(lanes).div_ceil(plane) * plane;
    let size = lanes * seg;
    (0..n.div_ceil(size))
        .map(|k| {
            let start = k * size;
            let m = size.min(n - start);
            Chunk {
                start,
                m,
                lanes: m.div_ceil(seg),
                seg,
            }
        })
        .collect()
}
