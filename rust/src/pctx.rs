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

use crate::bytes::{put_u16, put_u32, Reader};
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

/// Table lookups built once per model: cumulative frequencies and the symbol of every slot.
#[derive(Debug)]
pub struct Tables {
    bits: u8,
    precision: u8,
    /// (cum, freq) per table and symbol.
    entries: Vec<(u16, u16)>,
    /// Symbol per table and slot.
    slots: Vec<u8>,
}

impl Tables {
    /// Tables of no model (a placeholder until one is built).
    pub fn empty() -> Tables {
        Tables {
            bits: 1,
            precision: 2,
            entries: Vec::new(),
            slots: Vec::new(),
        }
    }

    pub fn new(model: &Model) -> Tables {
        let a = model.alphabet();
        let m = 1usize << model.precision;
        let mut entries = Vec::with_capacity(model.freqs.len());
        let mut slots = vec![0u8; model.tables() * m];
        for (t, row) in model.freqs.chunks(a).enumerate() {
            let mut cum = 0usize;
            for (s, &f) in row.iter().enumerate() {
                entries.push((cum as u16, f));
                slots[t * m + cum..t * m + cum + f as usize].fill(s as u8);
                cum += f as usize;
            }
        }
        Tables {
            bits: model.bits,
            precision: model.precision,
            entries,
            slots,
        }
    }
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

/// The table and the prediction of element `i`.
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
                decisions[i - start] = tables.entries[t * a + sym];
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
            put_u32(&mut out, v);
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
        decode_chunk(
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

#[allow(clippy::too_many_arguments)]
fn decode_chunk(
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
            let sym = tables.slots[(t << p) + slot as usize] as usize;
            let (cum, freq) = tables.entries[t * a + sym];
            let mut v = freq as u32 * (x[l] >> p) + slot - cum as u32;
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
