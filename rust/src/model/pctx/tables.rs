//! The lookup tables of the parallel context coder (FORMAT.md 9.4), built once per model:
//! cumulative frequencies, the slot-to-symbol buckets and the pre-scaled property classes;
//! and the same tables and layout words as the GPU kernels take them.

use super::*;

/// What the coder looks up, built once per model: per table the cumulative frequencies (with
/// `2^p` appended) and a bucket index that gives the first candidate symbol of a slot, and the
/// property classes pre-scaled so that a context is a sum of four lookups.
#[derive(Debug)]
pub struct Tables {
    pub(super) bits: u8,
    pub(super) precision: u8,
    /// `bits + 3` bits of the slot (at most `precision`) select a bucket.
    pub(super) bucket_bits: u8,
    /// `2^bits + 1` cumulative frequencies per table.
    pub(super) cums: Vec<u16>,
    /// `cum | freq << 16` per table and symbol: one load for a symbol's interval.
    pub(super) intervals: Vec<u32>,
    /// First symbol whose interval reaches into each bucket, per table.
    pub(super) buckets: Vec<u8>,
    /// Alphabets of at most 16 symbols: per table `cum[1..16]`, 0xFFFF past the alphabet, so
    /// that a symbol is the count of entries at or below its slot (no branch, no bucket).
    pub(super) search16: Vec<[u16; 16]>,
    /// `group · n_a · n_b · n_c` per index along the group axis.
    pub(super) ctx_g: Vec<u32>,
    /// `class · n_b · n_c`, `class · n_c`, `class` per property value.
    pub(super) ctx_a: Vec<u32>,
    pub(super) ctx_b: Vec<u32>,
    pub(super) ctx_c: Vec<u32>,
    pub(super) context_map: Vec<u8>,
    pub(super) predictor: Predictor,
    /// The symbol of every slot of every table (for the vector decoders on x86-64, when it fits
    /// in `MAX_SLOT_TABLE` bytes; for the scalar decoder on other CPUs, in `FAST_SLOT_BYTES`),
    /// and on x86-64 the context map, each followed by 3 bytes of padding so that a 4-byte
    /// gather at any entry stays inside.
    pub(super) slots: Vec<u8>,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) padded_map: Vec<u8>,
    /// Where the slot table passes `FAST_SLOT_BYTES` (past this CPU's L2 with everything else
    /// a decoder reads): per table, the symbol of the first slot of each run of
    /// `2^(precision - coarse_bits)` slots, `tables << coarse_bits` bytes (at most
    /// `FAST_SLOT_BYTES`) and 3 of padding. The AVX2 decoder takes a lane's symbol from it
    /// and goes to the slot table only for the lanes whose slot lies past that symbol's
    /// interval (benches/NOTES.md 46; the AVX-512 decoder reads `runs`). Empty otherwise.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) coarse: Vec<u8>,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) coarse_bits: u8,
    /// The property classes as three 256-byte tables, for the AVX-512 decoder's in-register
    /// lookups (`vpermi2b`, benches/NOTES.md 47) in place of three gathers: `class_a`
    /// (unscaled), `class_b · n_c` and `class_c`, each padded with its last entry. Built with
    /// the slot table where every property's classes fit: those of `b` and `c` always (at most
    /// 256 values), those of `a` when its classes are the same from value 255 on (a lane's
    /// `a` is then looked up at `min(a, 255)`). Empty otherwise.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) class_bytes: Vec<[u8; 256]>,
    /// Where there is a coarse table: per table and run of 16 slots, the AVX-512 decoder's
    /// entry `sym0 | b1 << 8 | b2 << 12`: the run's first symbol and where in the run the next
    /// one and the one after start (1..15; 0 for no such symbol), so that a lane's symbol is
    /// `sym0 + (o >= b1) + (o >= b2)` for its slot's offset `o` in the run. A run of four
    /// symbols or more has `b1 = 0, b2 = 15`, and its lanes read the slot table. `tables <<
    /// (precision - 4)` entries (an eighth of the slot table's bytes) and one of padding
    /// (benches/NOTES.md 49). Empty otherwise.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) runs: Vec<u16>,
    /// The contexts a class of property `a` spans, `n_b · n_c`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) a_stride: u32,
}

/// Slot tables up to this many bytes decode fast. The AVX2 decoder gathers each lane's symbol
/// from one byte a slot (`pctx::Tables`: `tables << precision` bytes, every table live at once,
/// each element picking its table by its context). Measured (benches/NOTES.md 30,
/// `benches/fitted_precision.rs`): decode speed depends on these bytes whatever the number of
/// tables, falls gently up to 256 KiB (x0.88-0.96 of 8 KiB's) and steeply past it (x0.81-0.89
/// at 512 KiB, x0.65-0.69 at 2 MiB): the fitted decoder's fast region, where the static
/// coder's is L1 (`freq::L1_TABLE_BYTES`). The fit keeps below it where that costs little
/// (`fit::choose_precision`), and past it the vector decoders read a smaller table first
/// (`Tables::coarse`, `Tables::runs`).
pub const FAST_SLOT_BYTES: usize = 256 << 10;

/// `Tables::class_bytes` of a model's class tables, or nothing where those of `a` change
/// past value 255.
fn class_bytes(classes: &[Vec<u8>; 3], nc: u32) -> Vec<[u8; 256]> {
    let fits = |c: &[u8]| c.len() <= 256 || c[255..].iter().all(|&x| x == c[255]);
    if !classes.iter().all(|c| fits(c)) {
        return Vec::new();
    }
    classes
        .iter()
        .zip([1, nc, 1])
        .map(|(c, scale)| {
            let mut t = [0u8; 256];
            for (v, x) in t.iter_mut().enumerate() {
                // class · scale <= 15 · 16: a byte.
                *x = (c[v.min(c.len() - 1)] as u32 * scale) as u8;
            }
            t
        })
        .collect()
}

/// `Tables::runs` of a slot table (every table's slots, one after another).
fn runs(slots: &[u8]) -> Vec<u16> {
    let mut out: Vec<u16> = slots
        .chunks(16)
        .map(|run| {
            let mut at = (1..16).filter(|&j| run[j] != run[j - 1]);
            match (at.next(), at.next(), at.next()) {
                (_, _, Some(_)) => 15 << 12,
                (b1, b2, None) => {
                    run[0] as u16 | (b1.unwrap_or(0) as u16) << 8 | (b2.unwrap_or(0) as u16) << 12
                }
            }
        })
        .collect();
    out.push(0);
    out
}

/// The largest slot table built for the vector decoder (tables x 2^precision bytes); past it
/// the scalar decoder's search runs, 3-4x slower (the fit keeps below it where it can).
pub const MAX_SLOT_TABLE: usize = 4 << 20;

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
            coarse: Vec::new(),
            coarse_bits: 0,
            class_bytes: Vec::new(),
            runs: Vec::new(),
            a_stride: 0,
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
        // The vector decoders (x86-64) read slot tables up to `MAX_SLOT_TABLE`; the scalar one
        // only within `FAST_SLOT_BYTES` (`lookup`).
        let x86 = cfg!(target_arch = "x86_64");
        let built = if x86 { MAX_SLOT_TABLE } else { FAST_SLOT_BYTES };
        if model.tables() << p <= built {
            slots.reserve((model.tables() << p) + 3);
            for row in model.freqs.chunks(a) {
                for (s, &f) in row.iter().enumerate() {
                    slots.extend(std::iter::repeat_n(s as u8, f as usize));
                }
            }
            slots.extend_from_slice(&[0; 3]);
        }
        if x86 && !slots.is_empty() {
            padded_map.extend_from_slice(&model.context_map);
            padded_map.extend_from_slice(&[0; 3]);
        }
        let mut coarse = Vec::new();
        let mut coarse_bits = p;
        if !slots.is_empty() && model.tables() << p > FAST_SLOT_BYTES {
            while model.tables() << coarse_bits > FAST_SLOT_BYTES {
                coarse_bits -= 1;
            }
            let shift = p - coarse_bits;
            coarse.reserve((model.tables() << coarse_bits) + 3);
            for t in 0..model.tables() {
                coarse.extend((0..1usize << coarse_bits).map(|j| slots[(t << p) + (j << shift)]));
            }
            coarse.extend_from_slice(&[0; 3]);
        }
        let runs = if coarse.is_empty() {
            Vec::new()
        } else {
            runs(&slots[..model.tables() << p])
        };
        let [na, nb, nc] = model.n_classes.map(|n| n as u32);
        let class_bytes = if padded_map.is_empty() {
            Vec::new()
        } else {
            class_bytes(&model.classes, nc)
        };
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
            coarse,
            coarse_bits,
            class_bytes,
            runs,
            a_stride: nb * nc,
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
    pub(super) fn interval(&self, t: usize, sym: usize) -> (u32, u32) {
        let e = self.intervals[(t << self.bits) + sym];
        (e & 0xFFFF, e >> 16)
    }

    /// The symbol of `slot` in table `t` of an alphabet of at most 16 symbols: the number of
    /// cumulative frequencies (after the first) at or below the slot, sixteen compares that
    /// compile to a few vector instructions.
    #[inline(always)]
    pub(super) fn find16(&self, t: usize, slot: u32) -> (usize, u32, u32) {
        self.with_interval(t, count_at_or_below(&self.search16[t], slot as u16))
    }

    #[inline(always)]
    fn with_interval(&self, t: usize, sym: usize) -> (usize, u32, u32) {
        let (cum, freq) = self.interval(t, sym);
        (sym, cum, freq)
    }

    /// The symbol of `slot` in table `t`, with its (cum, freq), for the scalar decoder: one
    /// load from the slot table where it is built and within `FAST_SLOT_BYTES`, else the
    /// search (`find16`, `find`), whose bucket index and cumulative frequencies stay in cache
    /// where a larger slot table (or its runs) would not (benches/NOTES.md 52).
    #[inline(always)]
    pub(super) fn lookup(&self, t: usize, slot: u32) -> (usize, u32, u32) {
        if (1..=FAST_SLOT_BYTES + 3).contains(&self.slots.len()) {
            let sym = self.slots[(t << self.precision) | slot as usize];
            self.with_interval(t, sym as usize)
        } else if self.bits <= 4 {
            self.find16(t, slot)
        } else {
            self.find(t, slot)
        }
    }

    /// The symbol of `slot` in table `t`, with its (cum, freq).
    #[inline(always)]
    pub(super) fn find(&self, t: usize, slot: u32) -> (usize, u32, u32) {
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
pub(super) fn count_at_or_below(row: &[u16; 16], s: u16) -> usize {
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
pub(super) fn count_at_or_below_portable(row: &[u16; 16], s: u16) -> usize {
    row.iter().filter(|&&c| c <= s).count()
}

/// What the GPU kernels take (pctx_common.cuh): the layout words of a sample shape.
pub fn device_geometry(model: &Model, shape: &[usize], fill_ch: Channels) -> [u64; 12] {
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
        model.predictor as u64,
        lay.plane as u64,
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
