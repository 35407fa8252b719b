//! The parallel context coder (FORMAT.md 9.4): quantization codes of at most 8 bits, each coded
//! with a *static* frequency table chosen by its already-decoded neighbours, in up to 32 lanes
//! that decode in lockstep.
//!
//! Why: a per-image activation map is small, so a table sent with it costs more than it saves,
//! and an order-0 table ignores that neighbouring activations are alike. The adaptive context
//! coder (`context.rs`) fixes both but is serial. Here the tables come from a model fitted once
//! on calibration samples (`fit.rs`) and shared out of band, as a zstd dictionary is: a blob
//! carries only its coded words. Static tables also make the coder parallel again: the sample
//! is cut into chunks, each chunk into `lanes` contiguous segments, and lane `l` decodes its
//! segment while the other lanes decode theirs, sharing one word stream in the order of the
//! static coder (a warp ballot per step on a GPU).
//!
//! The model: a predictor (none, or the median edge detector of LOCO-I / JPEG-LS) turns each
//! code into a symbol; three properties of the neighbourhood (the neighbours' codes, or the
//! local activity, the prediction and the previous residual) are mapped to classes by lookup
//! tables; the group of the element's channel and the three classes index a context map that
//! names one of up to 256 frequency tables. Fitting chooses all of it (classes, context map,
//! groups, tables) from data.
//!
//! Cost: one table lookup per property and per element, plus the rANS step: the same order of
//! work as the static coder, with small tables.

use crate::bytes::{put_u16, Reader};
use crate::error::{corrupt, CodecError, Result};
use crate::quant::Channels;
use crate::rans::RANS_L;
use crate::stream::lanes_for;

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
}

impl Predictor {
    pub fn from_code(c: u8) -> Option<Predictor> {
        match c {
            0 => Some(Predictor::None),
            1 => Some(Predictor::Med),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Predictor::None => "none",
            Predictor::Med => "med",
        }
    }

    /// Lengths of the three property class tables for `bits`-bit codes.
    pub fn property_lengths(self, bits: u8) -> [usize; 3] {
        let a = 1usize << bits;
        match self {
            Predictor::None => [a, a, a],
            Predictor::Med => [3 * (a - 1) + 1, a, a / 2 + 1],
        }
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
        if self.freqs.is_empty() || self.freqs.len() % a != 0 || self.tables() > MAX_TABLES {
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
        }
    }
}

/// Chunks of a sample of `n` elements: `(start, length, lanes)` each.
pub fn chunks(n: usize) -> Vec<(usize, usize, usize)> {
    let size = 1usize << CHUNK_LOG2;
    (0..n.div_ceil(size))
        .map(|k| {
            let start = k * size;
            let m = size.min(n - start);
            (start, m, lanes_for(m))
        })
        .collect()
}

/// What the coder looks up, built once per model: per table the cumulative frequencies (with
/// `2^p` appended) and a bucket index that gives the first candidate symbol of a slot, and the
/// property classes pre-scaled so that a context is a sum of four lookups.
#[derive(Debug)]
pub struct Tables {
    bits: u8,
    precision: u8,
    /// `bits + 3` bits of the slot (at most `precision`) select a bucket.
    bucket_bits: u8,
    /// `2^bits + 1` cumulative frequencies per table.
    cums: Vec<u16>,
    /// `cum | freq << 16` per table and symbol: one load for a symbol's interval.
    intervals: Vec<u32>,
    /// First symbol whose interval reaches into each bucket, per table.
    buckets: Vec<u8>,
    /// Alphabets of at most 16 symbols: per table `cum[1..16]`, 0xFFFF past the alphabet, so
    /// that a symbol is the count of entries at or below its slot (no branch, no bucket).
    search16: Vec<[u16; 16]>,
    /// `group · n_a · n_b · n_c` per index along the group axis.
    ctx_g: Vec<u32>,
    /// `class · n_b · n_c`, `class · n_c`, `class` per property value.
    ctx_a: Vec<u32>,
    ctx_b: Vec<u32>,
    ctx_c: Vec<u32>,
    context_map: Vec<u8>,
    predictor: Predictor,
    /// The symbol of every slot of every table (for the AVX2 decoder, when it fits in
    /// `MAX_SLOT_TABLE` bytes), and the context map, each followed by 3 bytes of padding so that
    /// a 4-byte gather at any entry stays inside. Empty on other CPUs (no gathers there: on
    /// aarch64 the scalar raster decoder runs, see benches/NOTES.md).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    slots: Vec<u8>,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    padded_map: Vec<u8>,
}

/// The largest slot table built for the vector decoder (tables x 2^precision bytes).
const MAX_SLOT_TABLE: usize = 4 << 20;

impl Tables {
    /// Tables of no model (a placeholder until one is built).
    pub fn empty() -> Tables {
        Tables {
            bits: 1,
            precision: 2,
            bucket_bits: 2,
            cums: Vec::new(),
            intervals: Vec::new(),
            buckets: Vec::new(),
            search16: Vec::new(),
            ctx_g: Vec::new(),
            ctx_a: Vec::new(),
            ctx_b: Vec::new(),
            ctx_c: Vec::new(),
            context_map: Vec::new(),
            predictor: Predictor::None,
            slots: Vec::new(),
            padded_map: Vec::new(),
        }
    }

    pub fn new(model: &Model) -> Tables {
        let a = model.alphabet();
        let p = model.precision;
        let bucket_bits = (model.bits + 3).min(p);
        let shift = p - bucket_bits;
        let mut cums = Vec::with_capacity(model.tables() * (a + 1));
        let mut buckets = vec![0u8; model.tables() << bucket_bits];
        for (t, row) in model.freqs.chunks(a).enumerate() {
            let base = cums.len();
            let mut cum = 0u32;
            for &f in row {
                cums.push(cum as u16);
                cum += f as u32;
            }
            cums.push(cum as u16);
            // Bucket b covers slots [b << shift, (b + 1) << shift): its first candidate is the
            // symbol holding its first slot.
            let mut s = 0usize;
            for b in 0..1usize << bucket_bits {
                let first = (b << shift) as u32;
                while cums[base + s + 1] as u32 <= first {
                    s += 1;
                }
                buckets[(t << bucket_bits) + b] = s as u8;
            }
        }
        let search16 = if a <= 16 {
            (0..model.tables())
                .map(|t| {
                    let mut row = [0xFFFFu16; 16];
                    row[..a - 1].copy_from_slice(&cums[t * (a + 1) + 1..t * (a + 1) + a]);
                    row
                })
                .collect()
        } else {
            Vec::new()
        };
        let intervals = cums
            .chunks(a + 1)
            .flat_map(|row| {
                row.windows(2)
                    .map(|w| w[0] as u32 | ((w[1] - w[0]) as u32) << 16)
            })
            .collect();
        let mut slots = Vec::new();
        let mut padded_map = Vec::new();
        if cfg!(target_arch = "x86_64") && model.tables() << p <= MAX_SLOT_TABLE {
            slots.reserve((model.tables() << p) + 3);
            for row in model.freqs.chunks(a) {
                for (s, &f) in row.iter().enumerate() {
                    slots.extend(std::iter::repeat_n(s as u8, f as usize));
                }
            }
            slots.extend_from_slice(&[0; 3]);
            padded_map.extend_from_slice(&model.context_map);
            padded_map.extend_from_slice(&[0; 3]);
        }
        let [na, nb, nc] = model.n_classes.map(|n| n as u32);
        Tables {
            bits: model.bits,
            precision: p,
            bucket_bits,
            cums,
            intervals,
            buckets,
            search16,
            slots,
            padded_map,
            ctx_g: model
                .groups
                .iter()
                .map(|&g| g as u32 * na * nb * nc)
                .collect(),
            ctx_a: model.classes[0]
                .iter()
                .map(|&c| c as u32 * nb * nc)
                .collect(),
            ctx_b: model.classes[1].iter().map(|&c| c as u32 * nc).collect(),
            ctx_c: model.classes[2].iter().map(|&c| c as u32).collect(),
            context_map: model.context_map.clone(),
            predictor: model.predictor,
        }
    }

    /// (cum, freq) of `sym` in table `t`.
    #[inline(always)]
    fn interval(&self, t: usize, sym: usize) -> (u32, u32) {
        let e = self.intervals[(t << self.bits) + sym];
        (e & 0xFFFF, e >> 16)
    }

    /// The symbol of `slot` in table `t` of an alphabet of at most 16 symbols: the number of
    /// cumulative frequencies (after the first) at or below the slot, sixteen compares that
    /// compile to a few vector instructions.
    #[inline(always)]
    fn find16(&self, t: usize, slot: u32) -> (usize, u32, u32) {
        self.with_interval(t, count_at_or_below(&self.search16[t], slot as u16))
    }

    #[inline(always)]
    fn with_interval(&self, t: usize, sym: usize) -> (usize, u32, u32) {
        let (cum, freq) = self.interval(t, sym);
        (sym, cum, freq)
    }

    /// The symbol of `slot` in table `t`, with its (cum, freq).
    #[inline(always)]
    fn find(&self, t: usize, slot: u32) -> (usize, u32, u32) {
        let a = 1usize << self.bits;
        let row = &self.cums[t * (a + 1)..t * (a + 1) + a + 1];
        let mut sym = self.buckets
            [(t << self.bucket_bits) + (slot >> (self.precision - self.bucket_bits)) as usize]
            as usize;
        while row[sym + 1] as u32 <= slot {
            sym += 1;
        }
        let cum = row[sym] as u32;
        (sym, cum, row[sym + 1] as u32 - cum)
    }
}

/// How many of the 16 values are at most `s` (unsigned).
#[inline(always)]
fn count_at_or_below(row: &[u16; 16], s: u16) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86-64 baseline; the loads read the 32 bytes of `row`.
        unsafe {
            let sv = _mm_set1_epi16(s as i16);
            let lo = _mm_loadu_si128(row.as_ptr() as *const __m128i);
            let hi = _mm_loadu_si128(row.as_ptr().add(8) as *const __m128i);
            // c <= s exactly when the saturating difference c - s is 0.
            let z = _mm_setzero_si128();
            let a = _mm_cmpeq_epi16(_mm_subs_epu16(lo, sv), z);
            let b = _mm_cmpeq_epi16(_mm_subs_epu16(hi, sv), z);
            let bits = _mm_movemask_epi8(_mm_packs_epi16(a, b)) as u32;
            // The row is sorted, so the entries at or below `s` are a prefix: count the
            // trailing ones (a bit scan; POPCNT is not in the x86-64 baseline).
            (!bits | 0x1_0000).trailing_zeros() as usize
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::aarch64::*;
        // SAFETY: NEON is part of the aarch64 baseline; the loads read the 32 bytes of `row`.
        // A compare gives -1 (all ones) in each lane at or below `s`: minus the lane sum is the
        // count (at most 16, no overflow). Fewer steps from the slot to the symbol than the
        // compiler's version of the plain loop (which packs the lanes to a bit mask and counts
        // its bits).
        unsafe {
            let sv = vdupq_n_u16(s);
            let a = vcleq_u16(vld1q_u16(row.as_ptr()), sv);
            let b = vcleq_u16(vld1q_u16(row.as_ptr().add(8)), sv);
            let sum = vaddvq_s16(vaddq_s16(
                vreinterpretq_s16_u16(a),
                vreinterpretq_s16_u16(b),
            ));
            (-sum) as usize
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        count_at_or_below_portable(row, s)
    }
}

/// `count_at_or_below` in plain Rust: what the vector versions give (tests compare them).
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), allow(dead_code))]
#[inline(always)]
fn count_at_or_below_portable(row: &[u16; 16], s: u16) -> usize {
    row.iter().filter(|&&c| c <= s).count()
}

#[inline(always)]
fn med(l: i32, u: i32, ul: i32) -> i32 {
    let (lo, hi) = if l < u { (l, u) } else { (u, l) };
    if ul >= hi {
        lo
    } else if ul <= lo {
        hi
    } else {
        l + u - ul
    }
}

/// The three raw property values of element `i` (at step `s` of its lane segment) and its
/// prediction, from the codes `q` decoded (or known) so far: FORMAT.md 9.4. `residual_prev` is
/// the folded residual of the lane's previous element (0 for its first).
#[inline(always)]
pub fn properties(
    predictor: Predictor,
    lay: &Layout,
    q: &[u8],
    residual_prev: u32,
    fill: u8,
    i: usize,
    s: usize,
) -> (usize, usize, usize, i32) {
    let cx = i.checked_div(lay.sx).map_or(0, |v| v % lay.dx);
    let cy = i.checked_div(lay.sy).map_or(0, |v| v % lay.dy);
    let has_l = lay.sx > 0 && cx > 0 && s >= lay.sx;
    let has_u = lay.sy > 0 && cy > 0 && s >= lay.sy;
    let f = fill as i32;
    let l = if has_l { q[i - lay.sx] as i32 } else { f };
    let u = if has_u { q[i - lay.sy] as i32 } else { f };
    let ul = if has_l && has_u && s >= lay.sx + lay.sy {
        q[i - lay.sy - lay.sx] as i32
    } else {
        f
    };
    match predictor {
        Predictor::None => (l as usize, u as usize, ul as usize, 0),
        Predictor::Med => {
            let ur = if has_u && lay.sx > 0 && cx + 1 < lay.dx && s + lay.sx >= lay.sy {
                q[i - lay.sy + lay.sx] as i32
            } else {
                u
            };
            let act = (l - ul).abs() + (u - ul).abs() + (ur - u).abs();
            let p = med(l, u, ul);
            (act as usize, p as usize, residual_prev as usize, p)
        }
    }
}

/// The table and the prediction of element `i` (the reference coder's lookup).
#[cfg(test)]
#[inline(always)]
fn context(
    model: &Model,
    lay: &Layout,
    q: &[u8],
    residual_prev: u32,
    fill: u8,
    i: usize,
    s: usize,
) -> (usize, i32) {
    let (a, b, c, pred) = properties(model.predictor, lay, q, residual_prev, fill, i, s);
    let g = model.groups[lay.group.of(i)] as usize;
    let [ca, cb, cc] = &model.classes;
    let [na, nb, nc] = model.n_classes;
    let ctx = ((g * na as usize + ca[a] as usize) * nb as usize + cb[b] as usize) * nc as usize
        + cc[c] as usize;
    (model.context_map[ctx] as usize, pred)
}

/// The folded magnitude of a residual symbol: `min(r, 2^bits - r)`.
#[inline(always)]
pub fn fold(r: u32, bits: u8) -> u32 {
    r.min((1 << bits) - r)
}

/// Strides of the walk through a sample: the neighbour axes, the group axis and the
/// quantization channels, as periods of counters (no division per element).
#[derive(Debug, Clone, Copy)]
struct Walk {
    sx: usize,
    dx: usize,
    sy: usize,
    dy: usize,
    /// Counter periods: the stride, or `usize::MAX` for an axis that is not there.
    px: usize,
    py: usize,
    g_inner: usize,
    g_channels: usize,
    f_inner: usize,
    f_channels: usize,
}

impl Walk {
    fn new(lay: &Layout, fill_ch: Channels) -> Walk {
        Walk {
            sx: lay.sx,
            dx: lay.dx,
            sy: lay.sy,
            dy: lay.dy,
            px: if lay.sx > 0 { lay.sx } else { usize::MAX },
            py: if lay.sy > 0 { lay.sy } else { usize::MAX },
            g_inner: lay.group.inner.max(1),
            g_channels: lay.group.channels.max(1),
            f_inner: fill_ch.inner.max(1),
            f_channels: fill_ch.channels.max(1),
        }
    }
}

/// A lane's position: its next element and that element's coordinates.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    i: usize,
    cx: usize,
    rx: usize,
    cy: usize,
    ry: usize,
    cg: usize,
    rg: usize,
    cf: usize,
    rf: usize,
    /// Folded residual of the lane's previous element.
    prev: u32,
}

impl Cursor {
    fn at(i: usize, w: &Walk) -> Cursor {
        let split = |period: usize, len: usize| {
            if period == usize::MAX {
                (0, 0)
            } else {
                ((i / period) % len, i % period)
            }
        };
        let (cx, rx) = split(w.px, w.dx);
        let (cy, ry) = split(w.py, w.dy);
        let (cg, rg) = split(w.g_inner, w.g_channels);
        let (cf, rf) = split(w.f_inner, w.f_channels);
        Cursor {
            i,
            cx,
            rx,
            cy,
            ry,
            cg,
            rg,
            cf,
            rf,
            prev: 0,
        }
    }

    #[inline(always)]
    fn advance(&mut self, w: &Walk) {
        #[inline(always)]
        fn tick(c: &mut usize, r: &mut usize, period: usize, len: usize) {
            *r += 1;
            if *r == period {
                *r = 0;
                *c += 1;
                if *c == len {
                    *c = 0;
                }
            }
        }
        self.i += 1;
        tick(&mut self.cx, &mut self.rx, w.px, w.dx);
        tick(&mut self.cy, &mut self.ry, w.py, w.dy);
        tick(&mut self.cg, &mut self.rg, w.g_inner, w.g_channels);
        tick(&mut self.cf, &mut self.rf, w.f_inner, w.f_channels);
    }
}

/// Which neighbours the step `s` of a segment allows (the same for every lane).
#[derive(Debug, Clone, Copy)]
struct Step {
    l: bool,
    u: bool,
    ul: bool,
    ur: bool,
}

impl Step {
    #[inline(always)]
    fn at(s: usize, w: &Walk) -> Step {
        Step {
            l: w.sx > 0 && s >= w.sx,
            u: w.sy > 0 && s >= w.sy,
            ul: s >= w.sx + w.sy,
            ur: w.sx > 0 && s + w.sx >= w.sy,
        }
    }
}

#[inline(always)]
fn select(cond: bool, a: i32, b: i32) -> i32 {
    let m = -(cond as i32);
    (a & m) | (b & !m)
}

/// The context of the element at `c` and its prediction (FORMAT.md 9.4), from the codes known
/// so far.
#[inline(always)]
fn context_at<const MED: bool>(
    tb: &Tables,
    w: &Walk,
    st: Step,
    q: &[u8],
    c: &Cursor,
    fill: u8,
) -> (usize, i32) {
    let i = c.i;
    let has_l = st.l && c.cx > 0;
    let has_u = st.u && c.cy > 0;
    let has_ul = has_l && has_u && st.ul;
    let f = fill as i32;
    // Load from a valid index either way and select: no branch on the data.
    let l = select(has_l, q[if has_l { i - w.sx } else { i }] as i32, f);
    let u = select(has_u, q[if has_u { i - w.sy } else { i }] as i32, f);
    let ul = select(
        has_ul,
        q[if has_ul { i - w.sy - w.sx } else { i }] as i32,
        f,
    );
    let g = tb.ctx_g[c.cg];
    match MED {
        false => {
            let ctx = g + tb.ctx_a[l as usize] + tb.ctx_b[u as usize] + tb.ctx_c[ul as usize];
            (ctx as usize, 0)
        }
        true => {
            let has_ur = has_u && st.ur && c.cx + 1 < w.dx;
            let ur = select(
                has_ur,
                q[if has_ur { i - w.sy + w.sx } else { i }] as i32,
                u,
            );
            let act = (l - ul).abs() + (u - ul).abs() + (ur - u).abs();
            let pred = med(l, u, ul);
            let ctx =
                g + tb.ctx_a[act as usize] + tb.ctx_b[pred as usize] + tb.ctx_c[c.prev as usize];
            (ctx as usize, pred)
        }
    }
}

/// Codes the codes `q` of one sample (FORMAT.md 9.4). `fill[ch.of(i)]` is the code of zero of
/// element `i`'s quantization channel, which stands in for a missing neighbour.
pub fn encode(
    model: &Model,
    tables: &Tables,
    shape: &[usize],
    q: &[u8],
    fill: &[u8],
    fill_ch: Channels,
) -> Vec<u8> {
    let lay = Layout::new(model, shape);
    debug_assert_eq!(lay.n, q.len());
    let w = Walk::new(&lay, fill_ch);
    let parts = chunks(q.len());
    let mask = (1i32 << model.bits) - 1;
    let p = model.precision as u32;
    let mut out = Vec::with_capacity(q.len() / 2 + 16);
    if parts.len() > 1 {
        out.resize(4 * parts.len(), 0);
    }
    let mut decisions: Vec<(u32, u32)> = Vec::new();
    let mut words: Vec<u16> = Vec::new();
    for (k, &(start, m, lanes)) in parts.iter().enumerate() {
        let seg = m.div_ceil(lanes);
        // (cum, freq) of every element of the chunk, in element order.
        decisions.clear();
        decisions.resize(m, (0, 0));
        let raster = w.sx == 1 && w.sy == w.dx && w.dx >= 2;
        for l in 0..lanes {
            let b = l * seg;
            if b >= m {
                break;
            }
            let run = &mut decisions[b..(b + seg).min(m)];
            match (raster, tables.predictor == Predictor::Med) {
                (true, false) => encode_raster::<false>(tables, &w, q, fill, start + b, run),
                (true, true) => encode_raster::<true>(tables, &w, q, fill, start + b, run),
                (false, med) => {
                    let mut c = Cursor::at(start + b, &w);
                    for (s, d) in run.iter_mut().enumerate() {
                        let st = Step::at(s, &w);
                        let (ctx, pred) = if med {
                            context_at::<true>(tables, &w, st, q, &c, fill[c.cf])
                        } else {
                            context_at::<false>(tables, &w, st, q, &c, fill[c.cf])
                        };
                        let t = tables.context_map[ctx] as usize;
                        let code = q[c.i] as i32;
                        let sym = if med { (code - pred) & mask } else { code } as usize;
                        *d = tables.interval(t, sym);
                        c.prev = fold(sym as u32, model.bits);
                        c.advance(&w);
                    }
                }
            }
        }
        let mut x = [RANS_L; 32];
        // Each element emits at most one word; written without a branch, kept when emitted.
        words.clear();
        words.resize(m + 1, 0);
        let mut n_words = 0usize;
        for s in (0..seg).rev() {
            // Lanes that have an element at step s: a prefix (later lanes may be shorter).
            let active = (m - s).div_ceil(seg).min(lanes);
            for l in (0..active).rev() {
                let (cum, freq) = decisions[l * seg + s];
                let v = x[l];
                let emit = v >= freq << (32 - p);
                words[n_words] = v as u16;
                n_words += emit as usize;
                let v = if emit { v >> 16 } else { v };
                // v / freq exactly: v < 2^32 and freq < 2^16, so the binary64 quotient is never
                // within rounding of the next integer.
                let quot = (v as f64 / freq as f64) as u32;
                x[l] = (quot << p) + (v - quot * freq) + cum;
            }
        }
        words.truncate(n_words);
        for &v in &x[..lanes] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.reserve(2 * words.len());
        for &wd in words.iter().rev() {
            out.extend_from_slice(&wd.to_le_bytes());
        }
        if parts.len() > 1 {
            out[4 * k..4 * k + 4].copy_from_slice(&(words.len() as u32).to_le_bytes());
        }
    }
    out
}

/// Where one chunk of a body is: its element range and lanes, and the byte offsets (in the
/// body) of its lane states and of its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSpan {
    pub start: usize,
    pub elements: usize,
    pub lanes: usize,
    pub states_at: usize,
    pub words_at: usize,
    pub words: usize,
}

/// Parses the structure of a body of `n` elements (FORMAT.md 9.4): the chunk directory, and
/// that every chunk's states and words are there, nothing after. The states' values and the
/// words are checked by decoding.
pub fn parse_body(body: &[u8], n: usize) -> Result<Vec<ChunkSpan>> {
    let parts = chunks(n);
    let mut r = Reader::new(body);
    let mut counts = Vec::with_capacity(parts.len());
    if parts.len() > 1 {
        for _ in 0..parts.len() {
            counts.push(r.u32("chunk directory")? as usize);
        }
    }
    let mut spans = Vec::with_capacity(parts.len());
    for (k, &(start, m, lanes)) in parts.iter().enumerate() {
        let states_at = r.position();
        r.take(4 * lanes, "lane states")?;
        let words = if parts.len() > 1 {
            counts[k]
        } else {
            if r.remaining() % 2 != 0 {
                return Err(corrupt!("context body ends inside a word"));
            }
            r.remaining() / 2
        };
        if words > r.remaining() / 2 {
            return Err(corrupt!("chunk {k}: {words} words (truncated)"));
        }
        let words_at = r.position();
        r.take(2 * words, "words")?;
        spans.push(ChunkSpan {
            start,
            elements: m,
            lanes,
            states_at,
            words_at,
            words,
        });
    }
    if r.remaining() != 0 {
        return Err(corrupt!("{} bytes after the last chunk", r.remaining()));
    }
    Ok(spans)
}

/// The encoder's pass over one lane segment in the raster layout (see `decode_raster`): the
/// (cum, freq) of every element, with the left and upper-left codes carried.
fn encode_raster<const MED: bool>(
    tb: &Tables,
    w: &Walk,
    q: &[u8],
    fill: &[u8],
    first: usize,
    out: &mut [(u32, u32)],
) {
    let c = Cursor::at(first, w);
    let (mut cx, mut cy, mut cg, mut rg, mut cf, mut rf) = (c.cx, c.cy, c.cg, c.rg, c.cf, c.rf);
    let dx = w.dx;
    let code_mask = (1i32 << tb.bits) - 1;
    let (mut prev, mut left, mut above_prev) = (0u32, 0i32, 0i32);
    for (s, d) in out.iter_mut().enumerate() {
        let i = first + s;
        let f = fill[cf] as i32;
        let has_l = s >= 1 && cx > 0;
        let has_u = s >= dx && cy > 0;
        let has_ul = has_l && has_u && s > dx;
        let above = q[if has_u { i - dx } else { i }] as i32;
        let l = select(has_l, left, f);
        let u = select(has_u, above, f);
        let ul = select(has_ul, above_prev, f);
        let g = tb.ctx_g[cg];
        let code = q[i] as i32;
        let (ctx, sym) = if MED {
            let has_ur = has_u && cx + 1 < dx;
            let ur = select(has_ur, q[if has_ur { i + 1 - dx } else { i }] as i32, u);
            let act = (l - ul).abs() + (u - ul).abs() + (ur - u).abs();
            let pred = med(l, u, ul);
            (
                g + tb.ctx_a[act as usize] + tb.ctx_b[pred as usize] + tb.ctx_c[prev as usize],
                (code - pred) & code_mask,
            )
        } else {
            (
                g + tb.ctx_a[l as usize] + tb.ctx_b[u as usize] + tb.ctx_c[ul as usize],
                code,
            )
        };
        let t = tb.context_map[ctx as usize] as usize;
        *d = tb.interval(t, sym as usize);
        prev = fold(sym as u32, tb.bits);
        left = code;
        above_prev = above;
        cx += 1;
        if cx == dx {
            cx = 0;
            cy += 1;
            if cy == w.dy {
                cy = 0;
            }
        }
        rg += 1;
        if rg == w.g_inner {
            rg = 0;
            cg += 1;
            if cg == w.g_channels {
                cg = 0;
            }
        }
        rf += 1;
        if rf == w.f_inner {
            rf = 0;
            cf += 1;
            if cf == w.f_channels {
                cf = 0;
            }
        }
    }
}

/// Decodes a body that `encode` wrote into `q` (its length is the sample's element count).
/// Every malformed body is Corrupt.
pub fn decode(
    model: &Model,
    tables: &Tables,
    shape: &[usize],
    body: &[u8],
    fill: &[u8],
    fill_ch: Channels,
    q: &mut [u8],
) -> Result<()> {
    let n = q.len();
    decode_into(model, tables, shape, body, fill, fill_ch, q, n, true)
}

/// Bytes that `decode_padded` needs past a sample's last code.
pub const DECODE_PAD: usize = 3;

/// `decode` into `q[..n]` of a buffer with `DECODE_PAD` bytes to spare after the sample's `n`
/// codes (their values on return are unspecified), so that no second buffer is needed.
pub fn decode_padded(
    model: &Model,
    tables: &Tables,
    shape: &[usize],
    body: &[u8],
    fill: &[u8],
    fill_ch: Channels,
    q: &mut [u8],
) -> Result<()> {
    let n = q.len().checked_sub(DECODE_PAD).ok_or_else(|| {
        CodecError::InvalidArgument(format!("a padded output of {} bytes", q.len()))
    })?;
    decode_into(model, tables, shape, body, fill, fill_ch, q, n, true)
}

/// Decodes a sample of `n` elements into `q[..n]`, with the vector raster decoder where it runs
/// (`vector`) or the scalar one throughout (what CPUs without AVX2 run; tests compare the two).
#[allow(clippy::too_many_arguments)]
fn decode_into(
    model: &Model,
    tables: &Tables,
    shape: &[usize],
    body: &[u8],
    fill: &[u8],
    fill_ch: Channels,
    q: &mut [u8],
    n: usize,
    vector: bool,
) -> Result<()> {
    let lay = Layout::new(model, shape);
    if lay.n != n {
        return Err(CodecError::InvalidArgument(format!(
            "output of {n} elements for a sample of {}",
            lay.n
        )));
    }
    let w = Walk::new(&lay, fill_ch);
    let spans = parse_body(body, n)?;
    // Chunks of 8 lanes or more decode 8 lanes a vector (AVX2), whose byte gathers read 4 bytes
    // at an element: such samples decode into a buffer with 3 bytes to spare.
    let gathers = cfg!(target_arch = "x86_64") && vector && spans.iter().any(|c| c.lanes >= 8);
    if q.len() < n + DECODE_PAD && gathers {
        let mut padded = crate::buffer::zeroed::<u8>(n + DECODE_PAD)?;
        decode_spans(tables, &w, &spans, body, fill, &mut padded, vector)?;
        q[..n].copy_from_slice(&padded[..n]);
        return Ok(());
    }
    decode_spans(tables, &w, &spans, body, fill, q, vector)
}

fn decode_spans(
    tables: &Tables,
    w: &Walk,
    spans: &[ChunkSpan],
    body: &[u8],
    fill: &[u8],
    q: &mut [u8],
    vector: bool,
) -> Result<()> {
    for (k, c) in spans.iter().enumerate() {
        let mut x = [0u32; 32];
        for (l, v) in x.iter_mut().enumerate().take(c.lanes) {
            let at = c.states_at + 4 * l;
            *v = u32::from_le_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
            if *v < RANS_L {
                return Err(corrupt!("chunk {k} lane {l}: state below 2^16"));
            }
        }
        let words = &body[c.words_at..c.words_at + 2 * c.words];
        decode_chunk(
            tables, w, c.start, c.elements, c.lanes, &mut x, words, fill, q, vector,
        )
        .map_err(|e| match e {
            CodecError::Corrupt(msg) => corrupt!("chunk {k}: {msg}"),
            e => e,
        })?;
    }
    Ok(())
}

/// What the GPU kernels take (pctx_common.cuh): the layout words of a sample shape.
pub fn device_geometry(model: &Model, shape: &[usize], fill_ch: Channels) -> [u64; 11] {
    let lay = Layout::new(model, shape);
    let w = Walk::new(&lay, fill_ch);
    [
        w.sx as u64,
        w.dx as u64,
        w.sy as u64,
        w.dy as u64,
        w.g_inner as u64,
        w.g_channels as u64,
        w.f_inner as u64,
        w.f_channels as u64,
        model.bits as u64,
        model.precision as u64,
        (model.predictor == Predictor::Med) as u64,
    ]
}

/// The tables the GPU kernels read, as `Tables` holds them.
pub struct DeviceTables {
    pub ctx_g: Vec<u32>,
    pub ctx_a: Vec<u32>,
    pub ctx_b: Vec<u32>,
    pub ctx_c: Vec<u32>,
    pub context_map: Vec<u8>,
    pub cums: Vec<u16>,
}

impl Tables {
    pub fn device(&self) -> DeviceTables {
        DeviceTables {
            ctx_g: self.ctx_g.clone(),
            ctx_a: self.ctx_a.clone(),
            ctx_b: self.ctx_b.clone(),
            ctx_c: self.ctx_c.clone(),
            context_map: self.context_map.clone(),
            cums: self.cums.clone(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn decode_chunk(
    tb: &Tables,
    w: &Walk,
    start: usize,
    m: usize,
    lanes: usize,
    x: &mut [u32; 32],
    words: &[u8],
    fill: &[u8],
    q: &mut [u8],
    vector: bool,
) -> Result<()> {
    let small = tb.bits <= 4;
    if w.sx == 1 && w.sy == w.dx && w.dx >= 2 {
        return match tb.predictor == Predictor::Med {
            false => decode_raster::<false>(tb, w, start, m, lanes, x, words, fill, q, vector),
            true => decode_raster::<true>(tb, w, start, m, lanes, x, words, fill, q, vector),
        };
    }
    match (tb.predictor == Predictor::Med, small) {
        (false, false) => decode_lanes::<false, false>(tb, w, start, m, lanes, x, words, fill, q),
        (false, true) => decode_lanes::<false, true>(tb, w, start, m, lanes, x, words, fill, q),
        (true, false) => decode_lanes::<true, false>(tb, w, start, m, lanes, x, words, fill, q),
        (true, true) => decode_lanes::<true, true>(tb, w, start, m, lanes, x, words, fill, q),
    }
}

/// The decoder of one chunk, specialized for the predictor and the alphabet size. Words are
/// handed out without a branch (a lane that needs none reads one and keeps its state); a
/// corrupt body that runs out reads zeros and is refused at the end, when the count of words
/// used differs from the count given.
#[allow(clippy::too_many_arguments)]
fn decode_lanes<const MED: bool, const SMALL: bool>(
    tb: &Tables,
    w: &Walk,
    start: usize,
    m: usize,
    lanes: usize,
    x: &mut [u32; 32],
    words: &[u8],
    fill: &[u8],
    q: &mut [u8],
) -> Result<()> {
    let seg = m.div_ceil(lanes);
    let p = tb.precision as u32;
    let slot_mask = (1u32 << p) - 1;
    let code_mask = (1i32 << tb.bits) - 1;
    let n_words = words.len() / 2;
    // The words, then one zero that every read past the end lands on.
    let mut wbuf: Vec<u32> = Vec::with_capacity(n_words + 1);
    wbuf.extend(
        words
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as u32),
    );
    wbuf.push(0);
    let mut pos = 0usize;
    let mut cur = [Cursor::default(); 32];
    for (l, c) in cur.iter_mut().enumerate().take(lanes) {
        *c = Cursor::at(start + l * seg, w);
    }
    for s in 0..seg {
        let st = Step::at(s, w);
        let active = (m - s).div_ceil(seg).min(lanes);
        for (c, xl) in cur[..active].iter_mut().zip(x[..active].iter_mut()) {
            let (ctx, pred) = context_at::<MED>(tb, w, st, q, c, fill[c.cf]);
            let t = tb.context_map[ctx] as usize;
            let slot = *xl & slot_mask;
            let (sym, cum, freq) = if SMALL {
                tb.find16(t, slot)
            } else {
                tb.find(t, slot)
            };
            let v = freq * (*xl >> p) + slot - cum;
            let need = v < RANS_L;
            let word = wbuf[pos.min(n_words)];
            *xl = if need { (v << 16) | word } else { v };
            pos += need as usize;
            q[c.i] = if MED {
                ((sym as i32 + pred) & code_mask) as u8
            } else {
                sym as u8
            };
            c.prev = fold(sym as u32, tb.bits);
            c.advance(w);
        }
    }
    if pos > n_words {
        return Err(corrupt!("ran out of words"));
    }
    if pos != n_words {
        return Err(corrupt!("{} unread words", n_words - pos));
    }
    if x[..lanes].iter().any(|&v| v != RANS_L) {
        return Err(corrupt!("does not end in the encoder's initial state"));
    }
    Ok(())
}

/// A lane of the raster decoder: its state, position, and the codes it carries from its
/// previous element (left, and the one above that, which is this element's upper left).
#[derive(Debug, Clone, Copy, Default)]
struct RasterLane {
    x: u32,
    i: usize,
    cx: usize,
    cy: usize,
    cg: usize,
    rg: usize,
    cf: usize,
    rf: usize,
    prev: u32,
    left: i32,
    above: i32,
}

/// The decoder for the usual layout — left is the previous element (the last axis), up is the
/// previous row — where a lane's left and upper-left neighbours are the codes it decoded and
/// loaded one step before: one or two loads per element instead of three or four.
#[allow(clippy::too_many_arguments)]
fn decode_raster<const MED: bool>(
    tb: &Tables,
    w: &Walk,
    start: usize,
    m: usize,
    lanes: usize,
    x: &mut [u32; 32],
    words: &[u8],
    fill: &[u8],
    q: &mut [u8],
    vector: bool,
) -> Result<()> {
    let seg = m.div_ceil(lanes);
    let dx = w.dx;
    let p = tb.precision as u32;
    let slot_mask = (1u32 << p) - 1;
    let code_mask = (1i32 << tb.bits) - 1;
    let n_words = words.len() / 2;
    // The words, then zeros that every read past the end lands on (8: a vector's worth).
    let mut wbuf: Vec<u16> = Vec::with_capacity(n_words + 8);
    wbuf.extend(
        words
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]])),
    );
    wbuf.extend_from_slice(&[0; 8]);
    let mut pos = 0usize;
    let mut ln = [RasterLane::default(); 32];
    for (l, r) in ln.iter_mut().enumerate().take(lanes) {
        let c = Cursor::at(start + l * seg, w);
        *r = RasterLane {
            x: x[l],
            i: c.i,
            cx: c.cx,
            cy: c.cy,
            cg: c.cg,
            rg: c.rg,
            cf: c.cf,
            rf: c.rf,
            prev: 0,
            left: 0,
            above: 0,
        };
    }
    let small = tb.bits <= 4;
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut s_first = 0;
    #[cfg(not(target_arch = "x86_64"))]
    let _ = vector;
    #[cfg(target_arch = "x86_64")]
    {
        // Every lane has an element at steps below `full`: those go 8 lanes at a time.
        let full = m - (lanes - 1) * seg;
        if lanes % 8 == 0
            && !tb.slots.is_empty()
            && q.len() >= start + m + 3
            && start + m < i32::MAX as usize
            && vector
            && crate::cpu::avx2_popcnt()
        {
            let fill32: Vec<u32> = fill.iter().map(|&f| f as u32).collect();
            // SAFETY: AVX2 and POPCNT are present; the slot table is built and padded, `q`
            // has 3 bytes past the sample (checked), `wbuf` 8 words past the body, `fill32` one
            // entry per channel (the counters stay below `f_channels`), indices fit an i32.
            pos = unsafe {
                avx2::steps::<MED>(
                    tb, w, lanes, 0, full, &mut ln, &wbuf, n_words, pos, &fill32, q,
                )
            };
            s_first = full;
        }
    }
    for s in s_first..seg {
        let st = Step::at(s, w);
        let active = (m - s).div_ceil(seg).min(lanes);
        for r in ln[..active].iter_mut() {
            let i = r.i;
            let f = fill[r.cf] as i32;
            let has_l = st.l && r.cx > 0;
            let has_u = st.u && r.cy > 0;
            let has_ul = has_l && has_u && st.ul;
            let above = q[if has_u { i - dx } else { i }] as i32;
            let l = select(has_l, r.left, f);
            let u = select(has_u, above, f);
            let ul = select(has_ul, r.above, f);
            let g = tb.ctx_g[r.cg];
            let (ctx, pred) = if MED {
                let has_ur = has_u && r.cx + 1 < dx;
                let ur = select(has_ur, q[if has_ur { i + 1 - dx } else { i }] as i32, u);
                let act = (l - ul).abs() + (u - ul).abs() + (ur - u).abs();
                let pred = med(l, u, ul);
                (
                    g + tb.ctx_a[act as usize]
                        + tb.ctx_b[pred as usize]
                        + tb.ctx_c[r.prev as usize],
                    pred,
                )
            } else {
                (
                    g + tb.ctx_a[l as usize] + tb.ctx_b[u as usize] + tb.ctx_c[ul as usize],
                    0,
                )
            };
            let t = tb.context_map[ctx as usize] as usize;
            let slot = r.x & slot_mask;
            let (sym, cum, freq) = if small {
                tb.find16(t, slot)
            } else {
                tb.find(t, slot)
            };
            let v = freq * (r.x >> p) + slot - cum;
            let need = v < RANS_L;
            let word = wbuf[pos.min(n_words)] as u32;
            r.x = if need { (v << 16) | word } else { v };
            pos += need as usize;
            let code = if MED {
                (sym as i32 + pred) & code_mask
            } else {
                sym as i32
            };
            q[i] = code as u8;
            r.prev = fold(sym as u32, tb.bits);
            r.left = code;
            r.above = above;
            r.i = i + 1;
            r.cx += 1;
            if r.cx == dx {
                r.cx = 0;
                r.cy += 1;
                if r.cy == w.dy {
                    r.cy = 0;
                }
            }
            r.rg += 1;
            if r.rg == w.g_inner {
                r.rg = 0;
                r.cg += 1;
                if r.cg == w.g_channels {
                    r.cg = 0;
                }
            }
            r.rf += 1;
            if r.rf == w.f_inner {
                r.rf = 0;
                r.cf += 1;
                if r.cf == w.f_channels {
                    r.cf = 0;
                }
            }
        }
    }
    for (l, r) in ln.iter().enumerate().take(lanes) {
        x[l] = r.x;
    }
    if pos > n_words {
        return Err(corrupt!("ran out of words"));
    }
    if pos != n_words {
        return Err(corrupt!("{} unread words", n_words - pos));
    }
    if x[..lanes].iter().any(|&v| v != RANS_L) {
        return Err(corrupt!("does not end in the encoder's initial state"));
    }
    Ok(())
}

/// The vector raster decoder: 8 lanes a vector, every lane of the chunk active.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{RasterLane, Tables, Walk};
    use std::arch::x86_64::*;

    /// Per 8-lane mask of the lanes that take a word: each lane's rank among them, one byte a
    /// lane (which of the next eight words it takes).
    static EXPAND: [u64; 256] = {
        let mut t = [0u64; 256];
        let mut m = 0;
        while m < 256 {
            let mut k = 0u64;
            let mut l = 0;
            while l < 8 {
                if m >> l & 1 == 1 {
                    t[m] |= k << (8 * l);
                    k += 1;
                }
                l += 1;
            }
            m += 1;
        }
        t
    };

    /// The state of 8 lanes, one array per field (RasterLane transposed).
    #[derive(Clone, Copy, Default)]
    struct Group {
        x: [u32; 8],
        i: [u32; 8],
        cx: [u32; 8],
        cy: [u32; 8],
        cg: [u32; 8],
        rg: [u32; 8],
        cf: [u32; 8],
        rf: [u32; 8],
        prev: [u32; 8],
        left: [u32; 8],
        above: [u32; 8],
    }

    #[inline(always)]
    unsafe fn ld(a: &[u32; 8]) -> __m256i {
        _mm256_loadu_si256(a.as_ptr().cast())
    }

    #[inline(always)]
    unsafe fn st(a: &mut [u32; 8], v: __m256i) {
        _mm256_storeu_si256(a.as_mut_ptr().cast(), v)
    }

    /// Bytes at `base + idx` (each gather reads 4 bytes: 3 bytes of padding must follow).
    #[inline(always)]
    unsafe fn bytes(base: *const u8, idx: __m256i) -> __m256i {
        _mm256_and_si256(
            _mm256_i32gather_epi32::<1>(base.cast(), idx),
            _mm256_set1_epi32(0xff),
        )
    }

    #[inline(always)]
    unsafe fn words32(base: *const u32, idx: __m256i) -> __m256i {
        _mm256_i32gather_epi32::<4>(base.cast(), idx)
    }

    /// Advances counters (c, r) with period `period` and length `len` by one element.
    #[inline(always)]
    unsafe fn tick(c: __m256i, r: __m256i, period: __m256i, len: __m256i) -> (__m256i, __m256i) {
        let r = _mm256_add_epi32(r, _mm256_set1_epi32(1));
        let wrap = _mm256_cmpeq_epi32(r, period);
        let r = _mm256_andnot_si256(wrap, r);
        let c = _mm256_sub_epi32(c, wrap);
        let c = _mm256_andnot_si256(_mm256_cmpeq_epi32(c, len), c);
        (c, r)
    }

    /// Steps `s_begin..s_end` of a chunk whose `lanes` (a multiple of 8) lanes all have an
    /// element at each of those steps: the scalar raster decoder's arithmetic, 8 lanes at a time.
    /// Returns the word position.
    ///
    /// # Safety
    /// AVX2 and POPCNT must be available; `tb.slots` must be built; `q` must hold every element
    /// index of the sample plus 3 bytes; `words` must hold `n_words` words plus 8; `fill` one
    /// entry per quantization channel; every index below 2^31.
    #[target_feature(enable = "avx2,popcnt")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn steps<const MED: bool>(
        tb: &Tables,
        w: &Walk,
        lanes: usize,
        s_begin: usize,
        s_end: usize,
        ln: &mut [RasterLane; 32],
        words: &[u16],
        n_words: usize,
        mut pos: usize,
        fill: &[u32],
        q: &mut [u8],
    ) -> usize {
        let groups = lanes / 8;
        let mut g = [Group::default(); 4];
        for (k, grp) in g.iter_mut().enumerate().take(groups) {
            for j in 0..8 {
                let r = &ln[8 * k + j];
                grp.x[j] = r.x;
                grp.i[j] = r.i as u32;
                grp.cx[j] = r.cx as u32;
                grp.cy[j] = r.cy as u32;
                grp.cg[j] = r.cg as u32;
                grp.rg[j] = r.rg as u32;
                grp.cf[j] = r.cf as u32;
                grp.rf[j] = r.rf as u32;
                grp.prev[j] = r.prev;
                grp.left[j] = r.left as u32;
                grp.above[j] = r.above as u32;
            }
        }
        let p = tb.precision as i32;
        let shift_p = _mm_cvtsi32_si128(p);
        let shift_bits = _mm_cvtsi32_si128(tb.bits as i32);
        let slot_mask = _mm256_set1_epi32((1 << p) - 1);
        let code_mask = _mm256_set1_epi32((1 << tb.bits) - 1);
        let alphabet = _mm256_set1_epi32(1 << tb.bits);
        let zero = _mm256_setzero_si256();
        let dx = _mm256_set1_epi32(w.dx as i32);
        let dx1 = _mm256_set1_epi32(w.dx as i32 - 1);
        let dy = _mm256_set1_epi32(w.dy as i32);
        let g_inner = _mm256_set1_epi32(w.g_inner as i32);
        let g_channels = _mm256_set1_epi32(w.g_channels as i32);
        let f_inner = _mm256_set1_epi32(w.f_inner as i32);
        let f_channels = _mm256_set1_epi32(w.f_channels as i32);
        let qp = q.as_mut_ptr();
        let ctx_g = tb.ctx_g.as_ptr();
        let ctx_a = tb.ctx_a.as_ptr();
        let ctx_b = tb.ctx_b.as_ptr();
        let ctx_c = tb.ctx_c.as_ptr();
        let map = tb.padded_map.as_ptr();
        let slots = tb.slots.as_ptr();
        let intervals = tb.intervals.as_ptr();
        let fillp = fill.as_ptr();
        let mut codes = [0u32; 8];
        let mut index = [0u32; 8];
        for s in s_begin..s_end {
            let flag = |c: bool| _mm256_set1_epi32(-(c as i32));
            let step_l = flag(s >= 1);
            let step_u = flag(s >= w.dx);
            let step_ul = flag(s > w.dx);
            for grp in g.iter_mut().take(groups) {
                let x = ld(&grp.x);
                let i = ld(&grp.i);
                let cx = ld(&grp.cx);
                let cy = ld(&grp.cy);
                let has_l = _mm256_and_si256(_mm256_cmpgt_epi32(cx, zero), step_l);
                let has_u = _mm256_and_si256(_mm256_cmpgt_epi32(cy, zero), step_u);
                let has_ul = _mm256_and_si256(_mm256_and_si256(has_l, has_u), step_ul);
                let f = words32(fillp, ld(&grp.cf));
                // i - dx where there is a row above, else i itself (a valid, unused index).
                let above = bytes(qp, _mm256_sub_epi32(i, _mm256_and_si256(dx, has_u)));
                let l = _mm256_blendv_epi8(f, ld(&grp.left), has_l);
                let u = _mm256_blendv_epi8(f, above, has_u);
                let ul = _mm256_blendv_epi8(f, ld(&grp.above), has_ul);
                let gctx = words32(ctx_g, ld(&grp.cg));
                let (ctx, pred) = if MED {
                    let has_ur = _mm256_and_si256(has_u, _mm256_cmpgt_epi32(dx1, cx));
                    let ur_raw = bytes(qp, _mm256_sub_epi32(i, _mm256_and_si256(dx1, has_ur)));
                    let ur = _mm256_blendv_epi8(u, ur_raw, has_ur);
                    let act = _mm256_add_epi32(
                        _mm256_add_epi32(
                            _mm256_abs_epi32(_mm256_sub_epi32(l, ul)),
                            _mm256_abs_epi32(_mm256_sub_epi32(u, ul)),
                        ),
                        _mm256_abs_epi32(_mm256_sub_epi32(ur, u)),
                    );
                    let lo = _mm256_min_epi32(l, u);
                    let hi = _mm256_max_epi32(l, u);
                    let grad = _mm256_sub_epi32(_mm256_add_epi32(l, u), ul);
                    // ul >= hi: lo; ul <= lo: hi; else l + u - ul.
                    let ge_hi = _mm256_cmpeq_epi32(_mm256_max_epi32(ul, hi), ul);
                    let le_lo = _mm256_cmpeq_epi32(_mm256_min_epi32(ul, lo), ul);
                    let pred = _mm256_blendv_epi8(_mm256_blendv_epi8(grad, hi, le_lo), lo, ge_hi);
                    let ctx = _mm256_add_epi32(
                        _mm256_add_epi32(gctx, words32(ctx_a, act)),
                        _mm256_add_epi32(words32(ctx_b, pred), words32(ctx_c, ld(&grp.prev))),
                    );
                    (ctx, pred)
                } else {
                    let ctx = _mm256_add_epi32(
                        _mm256_add_epi32(gctx, words32(ctx_a, l)),
                        _mm256_add_epi32(words32(ctx_b, u), words32(ctx_c, ul)),
                    );
                    (ctx, zero)
                };
                let t = bytes(map, ctx);
                let slot = _mm256_and_si256(x, slot_mask);
                let sym = bytes(slots, _mm256_or_si256(_mm256_sll_epi32(t, shift_p), slot));
                let e = words32(
                    intervals,
                    _mm256_or_si256(_mm256_sll_epi32(t, shift_bits), sym),
                );
                let cum = _mm256_and_si256(e, _mm256_set1_epi32(0xffff));
                let freq = _mm256_srli_epi32::<16>(e);
                let xn = _mm256_add_epi32(
                    _mm256_mullo_epi32(freq, _mm256_srl_epi32(x, shift_p)),
                    _mm256_sub_epi32(slot, cum),
                );
                let need = _mm256_cmpeq_epi32(_mm256_srli_epi32::<16>(xn), zero);
                let m = _mm256_movemask_ps(_mm256_castsi256_ps(need)) as usize & 0xff;
                let at = pos.min(n_words);
                let wv = _mm256_cvtepu16_epi32(_mm_loadu_si128(words.as_ptr().add(at).cast()));
                let ranks = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(EXPAND[m] as i64));
                let wv = _mm256_permutevar8x32_epi32(wv, ranks);
                st(
                    &mut grp.x,
                    _mm256_blendv_epi8(xn, _mm256_or_si256(_mm256_slli_epi32::<16>(xn), wv), need),
                );
                pos += (m as u32).count_ones() as usize;
                let code = if MED {
                    _mm256_and_si256(_mm256_add_epi32(sym, pred), code_mask)
                } else {
                    sym
                };
                st(&mut codes, code);
                st(&mut index, i);
                for j in 0..8 {
                    *qp.add(index[j] as usize) = codes[j] as u8;
                }
                st(
                    &mut grp.prev,
                    _mm256_min_epu32(sym, _mm256_sub_epi32(alphabet, sym)),
                );
                st(&mut grp.left, code);
                st(&mut grp.above, above);
                st(&mut grp.i, _mm256_add_epi32(i, _mm256_set1_epi32(1)));
                let (cx, wrap_x) = {
                    let c = _mm256_add_epi32(cx, _mm256_set1_epi32(1));
                    let wrap = _mm256_cmpeq_epi32(c, dx);
                    (_mm256_andnot_si256(wrap, c), wrap)
                };
                st(&mut grp.cx, cx);
                let cy = _mm256_sub_epi32(cy, wrap_x);
                st(
                    &mut grp.cy,
                    _mm256_andnot_si256(_mm256_cmpeq_epi32(cy, dy), cy),
                );
                let (cg, rg) = tick(ld(&grp.cg), ld(&grp.rg), g_inner, g_channels);
                st(&mut grp.cg, cg);
                st(&mut grp.rg, rg);
                let (cf, rf) = tick(ld(&grp.cf), ld(&grp.rf), f_inner, f_channels);
                st(&mut grp.cf, cf);
                st(&mut grp.rf, rf);
            }
        }
        for (k, grp) in g.iter().enumerate().take(groups) {
            for j in 0..8 {
                let r = &mut ln[8 * k + j];
                r.x = grp.x[j];
                r.i = grp.i[j] as usize;
                r.cx = grp.cx[j] as usize;
                r.cy = grp.cy[j] as usize;
                r.cg = grp.cg[j] as usize;
                r.rg = grp.rg[j] as usize;
                r.cf = grp.cf[j] as usize;
                r.rf = grp.rf[j] as usize;
                r.prev = grp.prev[j];
                r.left = grp.left[j] as i32;
                r.above = grp.above[j] as i32;
            }
        }
        pos
    }
}

/// The reference encoder, element by element as FORMAT.md 9.4 says (tests compare the fast
/// one with it).
#[cfg(test)]
pub(crate) fn encode_reference(
    model: &Model,
    tables: &Tables,
    shape: &[usize],
    q: &[u8],
    fill: &[u8],
    fill_ch: Channels,
) -> Vec<u8> {
    let lay = Layout::new(model, shape);
    debug_assert_eq!(lay.n, q.len());
    let parts = chunks(q.len());
    let a = model.alphabet();
    let mask = (a - 1) as i32;
    let mut out = Vec::with_capacity(q.len() / 2 + 16);
    let dir_at = out.len();
    if parts.len() > 1 {
        out.resize(4 * parts.len(), 0);
    }
    let mut decisions: Vec<(u16, u16)> = Vec::new();
    let mut words: Vec<u16> = Vec::new();
    for (k, &(start, m, lanes)) in parts.iter().enumerate() {
        let seg = m.div_ceil(lanes);
        // (cum, freq) of every element of the chunk, in element order.
        decisions.clear();
        decisions.resize(m, (0, 0));
        for l in 0..lanes {
            let b = start + l * seg;
            let e = (b + seg).min(start + m);
            let mut prev = 0u32;
            for i in b..e {
                let (t, pred) = context(model, &lay, q, prev, fill[fill_ch.of(i)], i, i - b);
                let sym = match model.predictor {
                    Predictor::None => q[i] as usize,
                    Predictor::Med => ((q[i] as i32 - pred) & mask) as usize,
                };
                prev = fold(sym as u32, model.bits);
                decisions[i - start] = {
                    let (c, f) = tables.interval(t, sym);
                    (c as u16, f as u16)
                };
            }
        }
        let mut x = vec![RANS_L; lanes];
        words.clear();
        let p = model.precision as u32;
        for s in (0..seg).rev() {
            for l in (0..lanes).rev() {
                let j = l * seg + s;
                if j >= m || s >= seg {
                    continue;
                }
                let (cum, freq) = decisions[j];
                let (cum, freq) = (cum as u32, freq as u32);
                let x_max = freq << (32 - p);
                let mut v = x[l];
                if v >= x_max {
                    words.push(v as u16);
                    v >>= 16;
                }
                x[l] = ((v / freq) << p) + (v % freq) + cum;
            }
        }
        for &v in &x {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for &w in words.iter().rev() {
            put_u16(&mut out, w);
        }
        if parts.len() > 1 {
            let at = dir_at + 4 * k;
            out[at..at + 4].copy_from_slice(&(words.len() as u32).to_le_bytes());
        }
    }
    out
}

/// The reference decoder.
#[cfg(test)]
/// Decodes a body that `encode` wrote into `q` (its length is the sample's element count).
/// Every malformed body is Corrupt.
pub(crate) fn decode_reference(
    model: &Model,
    tables: &Tables,
    shape: &[usize],
    body: &[u8],
    fill: &[u8],
    fill_ch: Channels,
    q: &mut [u8],
) -> Result<()> {
    let lay = Layout::new(model, shape);
    if lay.n != q.len() {
        return Err(CodecError::InvalidArgument(format!(
            "output of {} elements for a sample of {}",
            q.len(),
            lay.n
        )));
    }
    let parts = chunks(q.len());
    let mut r = Reader::new(body);
    let mut counts = Vec::with_capacity(parts.len());
    if parts.len() > 1 {
        for _ in 0..parts.len() {
            counts.push(r.u32("chunk directory")? as usize);
        }
    }
    for (k, &(start, m, lanes)) in parts.iter().enumerate() {
        let mut x = [0u32; 32];
        for (l, v) in x.iter_mut().enumerate().take(lanes) {
            *v = r.u32("lane state")?;
            if *v < RANS_L {
                return Err(corrupt!("chunk {k} lane {l}: state below 2^16"));
            }
        }
        let words = if parts.len() > 1 {
            let w = counts[k];
            if w > r.remaining() / 2 {
                return Err(corrupt!("chunk {k}: {w} words (truncated)"));
            }
            r.take(2 * w, "words")?
        } else {
            if r.remaining() % 2 != 0 {
                return Err(corrupt!("context body ends inside a word"));
            }
            let n = r.remaining();
            r.take(n, "words")?
        };
        decode_chunk_reference(
            model, tables, &lay, start, m, lanes, &mut x, words, fill, fill_ch, q,
        )
        .map_err(|e| match e {
            CodecError::Corrupt(msg) => corrupt!("chunk {k}: {msg}"),
            e => e,
        })?;
    }
    if r.remaining() != 0 {
        return Err(corrupt!("{} bytes after the last chunk", r.remaining()));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::too_many_arguments)]
fn decode_chunk_reference(
    model: &Model,
    tables: &Tables,
    lay: &Layout,
    start: usize,
    m: usize,
    lanes: usize,
    x: &mut [u32; 32],
    words: &[u8],
    fill: &[u8],
    fill_ch: Channels,
    q: &mut [u8],
) -> Result<()> {
    let seg = m.div_ceil(lanes);
    let a = model.alphabet();
    let p = tables.precision as u32;
    let slot_mask = (1u32 << p) - 1;
    let code_mask = (a - 1) as i32;
    let n_words = words.len() / 2;
    let mut pos = 0usize;
    let mut prev = [0u32; 32];
    for s in 0..seg {
        for l in 0..lanes {
            let j = l * seg + s;
            if j >= m {
                continue;
            }
            let i = start + j;
            let (t, pred) = context(model, lay, q, prev[l], fill[fill_ch.of(i)], i, s);
            let slot = x[l] & slot_mask;
            let (sym, cum, freq) = tables.find(t, slot);
            let mut v = freq * (x[l] >> p) + slot - cum;
            if v < RANS_L {
                if pos == n_words {
                    return Err(corrupt!("ran out of words"));
                }
                v = (v << 16) | u16::from_le_bytes([words[2 * pos], words[2 * pos + 1]]) as u32;
                pos += 1;
            }
            x[l] = v;
            prev[l] = fold(sym as u32, tables.bits);
            q[i] = match model.predictor {
                Predictor::None => sym as u8,
                Predictor::Med => ((sym as i32 + pred) & code_mask) as u8,
            };
        }
    }
    if pos != n_words {
        return Err(corrupt!("{} unread words", n_words - pos));
    }
    if x[..lanes].iter().any(|&v| v != RANS_L) {
        return Err(corrupt!("does not end in the encoder's initial state"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::{fit, table_from_counts, Calibration, FitOptions, Sample};

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    /// A valid model with random classes, context map and tables.
    fn random_model(seed: &mut u64, bits: u8, predictor: Predictor, shape: &[usize]) -> Model {
        let d = shape.len();
        let a = 1usize << bits;
        let (axis_x, axis_y) = match d {
            0 => (NO_AXIS, NO_AXIS),
            1 => (0, NO_AXIS),
            _ => ((d - 1) as u8, (d - 2) as u8),
        };
        let axis_g = if d >= 3 { 0 } else { NO_AXIS };
        let group_len = if axis_g == NO_AXIS { 1 } else { shape[0] };
        let n_groups = (lcg(seed) % 3 + 1) as u8;
        let n_classes = [
            (lcg(seed) % 4 + 1) as u8,
            (lcg(seed) % 4 + 1) as u8,
            (lcg(seed) % 3 + 1) as u8,
        ];
        let lengths = predictor.property_lengths(bits);
        let classes = [0, 1, 2].map(|k| {
            (0..lengths[k])
                .map(|_| (lcg(seed) % n_classes[k] as u64) as u8)
                .collect::<Vec<u8>>()
        });
        let tables = (lcg(seed) % 5 + 1) as usize;
        let contexts = n_groups as usize * n_classes.iter().map(|&c| c as usize).product::<usize>();
        let precision = bits + 1 + (lcg(seed) % (MAX_PRECISION - bits) as u64) as u8;
        let mut freqs = Vec::new();
        for _ in 0..tables {
            let counts: Vec<u64> = (0..a).map(|_| lcg(seed) % 50 * (lcg(seed) % 2)).collect();
            freqs.extend(table_from_counts(&counts, precision, 0.01));
        }
        Model {
            bits,
            predictor,
            axis_x,
            axis_y,
            axis_g,
            groups: (0..group_len)
                .map(|_| (lcg(seed) % n_groups as u64) as u8)
                .collect(),
            n_groups,
            classes,
            n_classes,
            context_map: (0..contexts)
                .map(|_| (lcg(seed) % tables as u64) as u8)
                .collect(),
            precision,
            freqs,
        }
    }

    fn sparse_codes(seed: &mut u64, n: usize, bits: u8, zero: u8) -> Vec<u8> {
        let a = 1u64 << bits;
        (0..n)
            .map(|_| {
                let r = lcg(seed);
                if r % 3 == 0 {
                    (r / 3 % a) as u8
                } else {
                    zero
                }
            })
            .collect()
    }

    #[test]
    fn round_trips_random_models() {
        let mut seed = 11u64;
        let shapes: &[&[usize]] = &[
            &[],
            &[0],
            &[1],
            &[37],
            &[3, 5, 7],
            &[2, 40, 30],
            &[1, 3, 150, 200],
            &[80000],
        ];
        for bits in 1..=MAX_BITS {
            for predictor in [Predictor::None, Predictor::Med] {
                for &shape in shapes {
                    let m = random_model(&mut seed, bits, predictor, shape);
                    let group_len = (m.axis_g != NO_AXIS).then(|| shape[0]);
                    m.validate(shape.len(), group_len).unwrap();
                    let mut bytes = Vec::new();
                    m.write(&mut bytes);
                    let mut r = Reader::new(&bytes);
                    assert_eq!(Model::read(&mut r).unwrap(), m);
                    assert_eq!(r.remaining(), 0);
                    let n: usize = shape.iter().product();
                    let zero = (lcg(&mut seed) % (1 << bits)) as u8;
                    let q = sparse_codes(&mut seed, n, bits, zero);
                    let tables = Tables::new(&m);
                    let body = encode(&m, &tables, shape, &q, &[zero], Channels::TENSOR);
                    let reference =
                        encode_reference(&m, &tables, shape, &q, &[zero], Channels::TENSOR);
                    assert_eq!(body, reference, "bits {bits} {predictor:?} {shape:?}");
                    let mut slow = vec![0u8; n];
                    decode_reference(
                        &m,
                        &tables,
                        shape,
                        &body,
                        &[zero],
                        Channels::TENSOR,
                        &mut slow,
                    )
                    .unwrap();
                    assert_eq!(slow, q);
                    let mut back = vec![0u8; n];
                    decode(
                        &m,
                        &tables,
                        shape,
                        &body,
                        &[zero],
                        Channels::TENSOR,
                        &mut back,
                    )
                    .unwrap();
                    assert_eq!(back, q, "bits {bits} {predictor:?} {shape:?}");
                    // The scalar decoder throughout, as CPUs without the vector one run it.
                    let mut scalar = vec![0u8; n];
                    decode_into(
                        &m,
                        &tables,
                        shape,
                        &body,
                        &[zero],
                        Channels::TENSOR,
                        &mut scalar,
                        n,
                        false,
                    )
                    .unwrap();
                    assert_eq!(scalar, q, "scalar: bits {bits} {predictor:?} {shape:?}");
                    if body.len() >= 2 {
                        let mut out = vec![0u8; n];
                        let short = &body[..body.len() - 2];
                        assert!(decode(
                            &m,
                            &tables,
                            shape,
                            short,
                            &[zero],
                            Channels::TENSOR,
                            &mut out
                        )
                        .is_err());
                        let mut long = body.clone();
                        long.extend_from_slice(&[0, 0]);
                        assert!(decode(
                            &m,
                            &tables,
                            shape,
                            &long,
                            &[zero],
                            Channels::TENSOR,
                            &mut out
                        )
                        .is_err());
                    }
                }
            }
        }
    }

    #[test]
    fn counts_at_or_below_match_the_portable_loop() {
        let mut seed = 3u64;
        for _ in 0..2000 {
            // A sorted row as `Tables::new` builds them: cumulative frequencies, then 0xFFFF.
            let len = (lcg(&mut seed) % 17) as usize;
            let mut row = [0xFFFFu16; 16];
            let mut c = 0u32;
            for e in row.iter_mut().take(len) {
                c = (c + (lcg(&mut seed) % 4096) as u32).min(0xFFFF);
                *e = c as u16;
            }
            for s in [0u16, 1, 0xFFFE, 0xFFFF, row[0], row[len.saturating_sub(1)]]
                .into_iter()
                .chain((0..8).map(|_| lcg(&mut seed) as u16))
            {
                assert_eq!(
                    count_at_or_below(&row, s),
                    count_at_or_below_portable(&row, s),
                    "{row:?} {s}"
                );
            }
        }
    }

    #[test]
    fn fitted_model_codes_structure_below_order0() {
        // Blocks of equal codes in 8 channels of 32x32: neighbours predict well.
        let mut seed = 5u64;
        let shape = [8usize, 32, 32];
        let n: usize = shape.iter().product();
        let bits = 4u8;
        let sample = |seed: &mut u64| -> Vec<u8> {
            let base: Vec<u8> = (0..8 * 4 * 4).map(|_| (lcg(seed) % 16) as u8).collect();
            (0..n)
                .map(|i| {
                    let (c, y, x) = (i / 1024, i / 32 % 32, i % 32);
                    let v = base[c * 16 + y / 8 * 4 + x / 8];
                    if lcg(seed) % 10 == 0 {
                        (lcg(seed) % 16) as u8
                    } else {
                        v
                    }
                })
                .collect()
        };
        let codes: Vec<Vec<u8>> = (0..12).map(|_| sample(&mut seed)).collect();
        let cal = Calibration {
            samples: codes
                .iter()
                .map(|c| Sample {
                    codes: c,
                    shape: &shape,
                    fills: &[0],
                    fill_ch: Channels::TENSOR,
                })
                .collect(),
        };
        let (model, report) = fit(&cal, &FitOptions::new(bits)).unwrap();
        assert!(!report.tried.is_empty());
        let tables = Tables::new(&model);
        let test = sample(&mut seed);
        let body = encode(&model, &tables, &shape, &test, &[0], Channels::TENSOR);
        let mut back = vec![0u8; n];
        decode(
            &model,
            &tables,
            &shape,
            &body,
            &[0],
            Channels::TENSOR,
            &mut back,
        )
        .unwrap();
        assert_eq!(back, test);
        // Order-0 entropy of the test sample, in bytes.
        let mut hist = [0f64; 16];
        for &c in &test {
            hist[c as usize] += 1.0;
        }
        let h: f64 = hist
            .iter()
            .filter(|&&c| c > 0.0)
            .map(|&c| -c * (c / n as f64).log2())
            .sum::<f64>()
            / 8.0;
        assert!(
            (body.len() as f64) < 0.6 * h,
            "{} bytes vs order-0 {h:.0}",
            body.len()
        );
    }
}
