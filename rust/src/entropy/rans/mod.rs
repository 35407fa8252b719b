//! The interleaved rANS coder for one chunk: 32-bit states, 16-bit renormalization words,
//! up to 32 lanes sharing one word stream in the order the decoder consumes it.
//!
//! Symbol `j` of a chunk belongs to lane `j % lanes`, step `j / lanes`. The decoder runs the
//! steps in order and, within a step, the lanes in increasing order; a lane that needs a word
//! after decoding its symbol takes the next word of the chunk. The encoder therefore runs the
//! steps backwards and the lanes in decreasing order, and reverses its words at the end. This is
//! the layout a warp decodes with one ballot per step.
//!
//! Full 32-lane steps run in a kernel chosen once per `Encoder`/`Decoder`: AVX2 on x86-64 CPUs that
//! have it (four vectors of eight states: table gathers, and the words handed to the lanes that
//! need them by a permutation looked up from the lanes' mask), NEON on aarch64 for the decoder
//! (`rans/neon.rs`: eight vectors of four states, the words handed out by `tbl`), else portable
//! branch-free Rust. On Intel CPUs with AVX-512 the decoder's steps run in `rans/avx512.rs` instead
//! (two vectors of sixteen states, the gather instruction, the words handed out by an expanding
//! load). Partial steps, chunks of fewer lanes and the last steps of a chunk (fewer than 32 words
//! left) take the checked reference loop. Every kernel produces exactly the reference's states,
//! words and symbols (the tests below compare them on random tables and data).

use std::mem::MaybeUninit;

use crate::entropy::freq::FreqTable;
use crate::error::{corrupt, Result};

#[cfg(target_arch = "aarch64")]
mod neon;

/// Lower bound of the normalized state interval `[RANS_L, 2^32)`.
pub const RANS_L: u32 = 1 << 16;
pub const MAX_LANES: usize = 32;

/// A symbol type the coder reads and writes.
pub trait Symbol: Copy + Send + Sync + Default + 'static {
    const BYTES: usize;
    fn index(self) -> usize;
    fn from_index(i: u32) -> Self;
    /// Counts of each symbol value, `1 << (8 * BYTES)` long.
    fn histogram(symbols: &[Self]) -> Vec<u64>;
    /// `symbols` as `u8`s when `Self` is `u8`: lets the vector kernels load and store symbols.
    #[doc(hidden)]
    fn as_u8s(_symbols: &[Self]) -> Option<&[u8]> {
        None
    }
    #[doc(hidden)]
    fn as_u8s_mut(_symbols: &mut [Self]) -> Option<&mut [u8]> {
        None
    }
    /// `symbols` as `u16`s when `Self` is `u16`.
    #[doc(hidden)]
    fn as_u16s(_symbols: &[Self]) -> Option<&[u16]> {
        None
    }
    #[doc(hidden)]
    fn as_u16s_mut(_symbols: &mut [Self]) -> Option<&mut [u16]> {
        None
    }
}

impl Symbol for u8 {
    const BYTES: usize = 1;
    #[inline(always)]
    fn index(self) -> usize {
        self as usize
    }
    #[inline(always)]
    fn from_index(i: u32) -> Self {
        i as u8
    }
    fn histogram(symbols: &[Self]) -> Vec<u64> {
        crate::entropy::histogram::histogram_u8(symbols)
    }
    fn as_u8s(symbols: &[Self]) -> Option<&[u8]> {
        Some(symbols)
    }
    fn as_u8s_mut(symbols: &mut [Self]) -> Option<&mut [u8]> {
        Some(symbols)
    }
}

impl Symbol for u16 {
    const BYTES: usize = 2;
    #[inline(always)]
    fn index(self) -> usize {
        self as usize
    }
    #[inline(always)]
    fn from_index(i: u32) -> Self {
        i as u16
    }
    fn histogram(symbols: &[Self]) -> Vec<u64> {
        crate::entropy::histogram::histogram_u16(symbols)
    }
    fn as_u16s(symbols: &[Self]) -> Option<&[u16]> {
        Some(symbols)
    }
    fn as_u16s_mut(symbols: &mut [Self]) -> Option<&mut [u16]> {
        Some(symbols)
    }
}

/// Per-symbol encoder constants; the coded state is `x + cum_freq + (x / freq) * cmpl_freq`,
/// and `x / freq` is computed two ways, both exact for every 32-bit `x` and branch-free:
/// - `code`: `((x * magic >> 32) + x) >> shift` in 64-bit arithmetic, with `magic =
///   div_magic(freq)` and `shift = ceil(log2 freq)` (`freq == 1`: both 0). Plain multiplies and
///   shifts, which leave the registers free: the loops over several lanes.
/// - `code_rcp`: `mulhi64(rcp, x)`, `rcp` Lemire's `floor((2^64 - 1) / freq) + 1` for
///   `freq >= 2`; for `freq == 1` `rcp` is 0 and `one_mask` adds `x` back. One widening
///   multiply, a cycle shorter: the one-lane loop, whose chain of states is its bound
///   (benches/NOTES.md 82).
///
/// An absent symbol is all zeros: it renormalizes whatever the state, then leaves it unchanged.
#[derive(Clone, Copy, Default)]
pub struct EncSymbol {
    rcp: u64,
    magic: u32,
    shift: u32,
    x_max: u32,
    cmpl_freq: u32,
    cum_freq: u32,
    one_mask: u32,
}

impl EncSymbol {
    /// The state after coding this symbol into the renormalized state `xr`.
    #[inline(always)]
    fn code(&self, xr: u32) -> u32 {
        let x = u64::from(xr);
        let q = (((x * u64::from(self.magic)) >> 32) + x) >> self.shift;
        xr.wrapping_add(self.cum_freq)
            .wrapping_add((q as u32).wrapping_mul(self.cmpl_freq))
    }

    /// `code` by the 64-bit reciprocal.
    #[inline(always)]
    fn code_rcp(&self, xr: u32) -> u32 {
        let q = ((u128::from(self.rcp) * u128::from(xr)) >> 64) as u32 | (xr & self.one_mask);
        xr.wrapping_add(self.cum_freq)
            .wrapping_add(q.wrapping_mul(self.cmpl_freq))
    }
}

pub struct Encoder {
    table: Vec<EncSymbol>,
    /// The table holds `EncSymbol::rcp` (an encoder for one lane), else `magic` and `shift`.
    by_rcp: bool,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    precision_bits: u32,
    /// Per symbol, for the vector kernel: `magic | (freq | cum_freq << 16) << 32`, where
    /// `magic = ceil(2^(32 + l) / freq) - 2^32` with `l = ceil(log2 freq)` (see `div_magic`).
    /// Absent symbols are 0. Empty without a vector kernel, and unless
    /// `1 <= precision_bits <= 16` and every freq is below `2^precision_bits` (a valid table),
    /// where `x >= x_max` is `x >> (32 - p) >= freq`.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    vt: Vec<u64>,
    kernel: Kernel,
}

/// `x / freq` for every `x < 2^32` and `1 <= freq <= 2^16` without a division, the way the
/// vector encoders compute it (`EncSymbol::code` in 64-bit arithmetic: `(t + x) >> l`):
/// with `l = ceil(log2 freq)` and `m = ceil(2^(32 + l) / freq)` (33 bits),
/// `x / freq = (x * m) >> (32 + l)`, since the error `x * (m - 2^(32 + l) / freq) / 2^(32 + l)`
/// is below `2^-l <= 1 / freq`, the least distance from `x / freq` up to the next integer. With
/// `t = (x * (m - 2^32)) >> 32` that is `(t + ((x - t) >> 1)) >> (l - 1)`. `freq == 1`
/// (`l = 0`) is `x` itself. Returns `m - 2^32`, which fits 32 bits.
fn div_magic(freq: u32) -> u32 {
    debug_assert!((2..=1 << 16).contains(&freq));
    let l = 32 - (freq - 1).leading_zeros();
    let m = (1u64 << (32 + l)).div_ceil(u64::from(freq));
    (m - (1 << 32)) as u32
}

impl Encoder {
    pub fn new(t: &FreqTable, alphabet: usize) -> Self {
        Self::for_lanes(t, alphabet, MAX_LANES)
    }

    /// The encoder for chunks of `lanes` lanes: the vector kernel's table (one entry for each
    /// of the `alphabet` symbols) is built only for 32 lanes, the only chunks it codes, and
    /// the other table only as far as the largest symbol of `t` (absent symbols code as in
    /// `new`).
    pub fn for_lanes(t: &FreqTable, alphabet: usize, lanes: usize) -> Self {
        let p = u32::from(t.precision_bits);
        let top = t.symbols.iter().max().map_or(0, |&s| s as usize + 1);
        // One of the two ways to divide, each a hardware division per symbol to set up
        // (`EncSymbol`): the reciprocal for the one-lane loop, the magic number otherwise.
        let by_rcp = lanes == 1;
        // The lanes loop indexes bytes into 256 entries without bounds checks (`put_lanes`).
        let len = if by_rcp { top } else { top.max(256) };
        let mut table = vec![EncSymbol::default(); len.min(alphabet)];
        for ((&s, &f), c) in t.symbols.iter().zip(&t.freqs).zip(t.cum_freqs()) {
            let mut e = EncSymbol {
                x_max: f << (32 - p),
                cmpl_freq: (1u32 << p) - f,
                cum_freq: c,
                ..EncSymbol::default()
            };
            if by_rcp {
                (e.rcp, e.one_mask) = match f {
                    1 => (0, u32::MAX),
                    _ => (u64::MAX / u64::from(f) + 1, 0),
                };
            } else if f >= 2 {
                (e.magic, e.shift) = (div_magic(f), 32 - (f - 1).leading_zeros());
            }
            table[s as usize] = e;
        }
        let kernel = Kernel::detect();
        let valid = kernel.encodes_vectors()
            && lanes == MAX_LANES
            && (1..=16).contains(&p)
            && t.freqs.iter().zip(t.cum_freqs()).all(|(&f, c)| {
                // Each frequency and cumulative frequency below 2^p (so below 2^16).
                (1..1 << p).contains(&f) && c < 1 << p
            });
        // An absent symbol keeps the all-zero entry, which the vector kernel codes exactly as
        // `put` codes `EncSymbol::default()`.
        let mut vt = Vec::new();
        if valid {
            vt.resize(alphabet, 0u64);
            for ((&s, &f), c) in t.symbols.iter().zip(&t.freqs).zip(t.cum_freqs()) {
                let magic = table[s as usize].magic;
                vt[s as usize] = u64::from(magic) | u64::from(f | (c << 16)) << 32;
            }
        }
        Encoder {
            table,
            by_rcp,
            precision_bits: p,
            vt,
            kernel,
        }
    }

    /// The constants of `sym`; a symbol beyond the table is absent (all zeros).
    #[inline(always)]
    fn entry(&self, sym: usize) -> EncSymbol {
        self.table.get(sym).copied().unwrap_or_default()
    }

    /// Encodes one chunk with one lane (the short streams `stream::stream_lanes` leaves one): the
    /// words go into a buffer with room for one per symbol, written unconditionally and kept when
    /// needed, as in `put`; returns the final state and the words in the order the decoder reads
    /// them.
    fn encode_one_lane<S: Symbol>(&self, symbols: &[S]) -> (u32, Vec<u16>) {
        if self.by_rcp {
            self.one_lane_by::<S, true>(symbols)
        } else {
            self.one_lane_by::<S, false>(symbols)
        }
    }

    /// `encode_one_lane` by `EncSymbol::code_rcp` (`RCP`) or `code`.
    #[inline(always)]
    fn one_lane_by<S: Symbol, const RCP: bool>(&self, symbols: &[S]) -> (u32, Vec<u16>) {
        let mut words = Vec::with_capacity(symbols.len() + 1);
        let buf = &mut words.spare_capacity_mut()[..symbols.len() + 1];
        let (mut x, mut k) = (RANS_L, 0usize);
        for s in symbols.iter().rev() {
            let e = self.entry(s.index());
            let need = x >= e.x_max;
            // At most one word per symbol: k <= symbols done < buf.len(). Written without a
            // bounds check, into a buffer not zeroed first (NOTES.md 86-87).
            debug_assert!(k < buf.len());
            // SAFETY: as above.
            unsafe { buf.get_unchecked_mut(k).write(x as u16) };
            k += usize::from(need);
            // The renormalized state chosen first, then one coding step: written as both
            // outcomes coded and one taken, LLVM (Rust 1.95) computed both and selected, two
            // 128-bit multiplies a symbol where Zen 1 has one multiplier (NOTES.md 71, 87).
            let xr = std::hint::select_unpredictable(need, x >> 16, x);
            x = if RCP { e.code_rcp(xr) } else { e.code(xr) };
        }
        // SAFETY: the loop wrote `buf[..k]`: `k` only grows past a position written just before.
        unsafe { words.set_len(k) };
        words.reverse();
        (x, words)
    }

    /// Encodes `sym` into state `x`; the word a renormalization emits goes to `buf[*k]` (written
    /// unconditionally, kept only when needed: branch-free, since whether a lane renormalizes is
    /// unpredictable). One step of at most 32 lanes goes through `buf`, so `*k < 32` here.
    #[inline(always)]
    fn put(&self, x: &mut u32, sym: usize, buf: &mut [u16; MAX_LANES], k: &mut usize) {
        let e = &self.entry(sym);
        let need = *x >= e.x_max;
        buf[*k & (MAX_LANES - 1)] = *x as u16;
        *k += usize::from(need);
        let xr = if need { *x >> 16 } else { *x };
        *x = if self.by_rcp {
            e.code_rcp(xr)
        } else {
            e.code(xr)
        };
    }

    /// Encodes one step: `step[l]` into lane `l`, lanes in decreasing order, pushing the words
    /// in the order they are emitted.
    #[inline(always)]
    fn put_step<S: Symbol>(&self, x: &mut [u32], step: &[S], words: &mut Vec<u16>) {
        let mut buf = [0u16; MAX_LANES];
        let mut k = 0;
        for (xl, s) in x.iter_mut().zip(step).rev() {
            self.put(xl, s.index(), &mut buf, &mut k);
        }
        words.extend_from_slice(&buf[..k]);
    }

    /// Encodes one chunk; returns the final states (the decoder's initial states) and the words
    /// in the order the decoder reads them. Every symbol must be in the table.
    pub fn encode_chunk<S: Symbol>(&self, symbols: &[S], lanes: usize) -> (Vec<u32>, Vec<u16>) {
        self.encode_chunk_with(self.kernel, symbols, lanes)
    }

    fn encode_chunk_with<S: Symbol>(
        &self,
        kernel: Kernel,
        symbols: &[S],
        lanes: usize,
    ) -> (Vec<u32>, Vec<u16>) {
        if lanes == 1 {
            let (x, words) = self.encode_one_lane(symbols);
            return (vec![x], words);
        }
        self.encode_steps(kernel, symbols, lanes)
    }

    /// `encode_chunk` for any number of lanes: the full steps of 2, 4, 8, 16 lanes by
    /// `put_lanes`, of 32 by `encode_fast`, of any other count by `put_step`.
    fn encode_steps<S: Symbol>(
        &self,
        kernel: Kernel,
        symbols: &[S],
        lanes: usize,
    ) -> (Vec<u32>, Vec<u16>) {
        let mut x = [RANS_L; MAX_LANES];
        // At most one word per symbol. The encoder emits them in the reverse of the decoder's
        // order; they are reversed once at the end. The spare `ENC_PAD` let a vector kernel
        // store 8 words at the end whatever the count.
        let mut words = Vec::with_capacity(symbols.len() + ENC_PAD);
        let tail = symbols.len() % lanes;
        let full = symbols.len() - tail;
        self.put_step(&mut x[..tail], &symbols[full..], &mut words);
        let steps = &symbols[..full];
        macro_rules! lanes {
            ($l:literal) => {
                self.put_lanes::<S, $l>((&mut x[..$l]).try_into().unwrap(), steps, &mut words)
            };
        }
        match lanes {
            MAX_LANES => self.encode_fast(kernel, &mut x, steps, &mut words),
            2 => lanes!(2),
            4 => lanes!(4),
            8 => lanes!(8),
            16 => lanes!(16),
            _ => self.put_steps_general(&mut x[..lanes], steps, &mut words),
        }
        words.reverse();
        (x[..lanes].to_vec(), words)
    }

    /// The full steps `symbols` (a multiple of `x.len()` long), last step first, by `put_step`:
    /// the general loop, and the reference of `put_lanes`.
    fn put_steps_general<S: Symbol>(&self, x: &mut [u32], symbols: &[S], words: &mut Vec<u16>) {
        for step in symbols.chunks_exact(x.len()).rev() {
            self.put_step(x, step, words);
        }
    }

    /// `put_steps_general` for `L` lanes, without its per-step buffer and copy: each lane's
    /// word is written at the end of `words` unconditionally and kept when the lane
    /// renormalizes, and the renormalization is a select rather than a branch (taken about one
    /// time in four at random). The `L` chains are independent but for the word position, so
    /// they overlap; the one-lane loop (`encode_one_lane`) keeps its branch, which measured
    /// faster there, where the chain is the bound (benches/NOTES.md 71).
    #[inline(always)]
    fn put_lanes<S: Symbol, const L: usize>(
        &self,
        x: &mut [u32; L],
        symbols: &[S],
        words: &mut Vec<u16>,
    ) {
        debug_assert!(symbols.len().is_multiple_of(L));
        if self.by_rcp {
            // An encoder made for one lane, asked for more: `put` codes with what it has.
            return self.put_steps_general(x, symbols, words);
        }
        let start = words.len();
        // Room for one word per symbol and the last unconditional write, not zeroed first.
        words.reserve(symbols.len() + 1);
        let buf = &mut words.spare_capacity_mut()[..symbols.len() + 1];
        let k = match self.table.get(..256) {
            // Bytes index a table of 256 entries without a bounds check (`for_lanes` makes
            // one at least that long for an alphabet of 256 or more).
            Some(t) if S::BYTES == 1 => {
                let t: &[EncSymbol; 256] = t.try_into().unwrap();
                lanes_loop(x, symbols, buf, |s: &S| t[s.index() & 255])
            }
            _ => lanes_loop(x, symbols, buf, |s: &S| self.entry(s.index())),
        };
        // SAFETY: `lanes_loop` wrote `buf[..k]`, the `k` words after `start`.
        unsafe { words.set_len(start + k) };
    }

    /// Encodes the full 32-lane steps `symbols` (a multiple of 32 long), last step first, into
    /// `x`, pushing the words onto `words` (which has room for `symbols.len() + ENC_PAD` more).
    fn encode_fast<S: Symbol>(
        &self,
        kernel: Kernel,
        x: &mut [u32; MAX_LANES],
        symbols: &[S],
        words: &mut Vec<u16>,
    ) {
        debug_assert!(symbols.len().is_multiple_of(MAX_LANES));
        #[cfg(target_arch = "x86_64")]
        if kernel.encodes_vectors() && !self.vt.is_empty() {
            // SAFETY: `encodes_vectors` holds only where the CPU has AVX2 and POPCNT (`Kernel::Avx2`
            // and `Kernel::Avx512` are only chosen there); the other requirements are checked by
            // `avx2::encode`.
            unsafe {
                if let Some(s) = S::as_u8s(symbols) {
                    return avx2::encode(self, x, s, words);
                }
                if let Some(s) = S::as_u16s(symbols) {
                    return avx2::encode(self, x, s, words);
                }
            }
        }
        let _ = kernel;
        self.put_lanes::<S, MAX_LANES>(x, symbols, words);
    }
}

/// `Encoder::put_lanes`'s steps with the constants `lookup` gives; returns how many words it wrote
/// to the front of `buf` (which has room for one per symbol and one more).
#[inline(always)]
fn lanes_loop<S: Symbol, const L: usize>(
    x: &mut [u32; L],
    symbols: &[S],
    buf: &mut [MaybeUninit<u16>],
    lookup: impl Fn(&S) -> EncSymbol,
) -> usize {
    let mut k = 0usize;
    for step in symbols.chunks_exact(L).rev() {
        for l in (0..L).rev() {
            let e = lookup(&step[l]);
            let xl = x[l];
            let need = xl >= e.x_max;
            // At most one word per symbol: k <= symbols done < buf.len(). Without a bounds check
            // the loop has no panic to write the states back for, and keeps them in registers
            // (NOTES.md 86).
            debug_assert!(k < buf.len());
            // SAFETY: as above.
            unsafe { buf.get_unchecked_mut(k).write(xl as u16) };
            k += usize::from(need);
            x[l] = e.code(std::hint::select_unpredictable(need, xl >> 16, xl));
        }
    }
    k
}

/// Spare word capacity for the vector encoder's 8-word stores (see `Encoder::encode_chunk`).
const ENC_PAD: usize = 8;

/// Which implementation runs the full 32-lane steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// Plain Rust: branch-free renormalization, no vector intrinsics.
    Portable,
    /// AVX2 gathers and a lane permutation for the word distribution (x86-64 only).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// The AVX2 kernels, but the decoder's full steps by AVX-512: the gather instruction and
    /// an expanding load for the word distribution (`rans/avx512.rs`; x86-64 only).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// The decoder's full steps by 128-bit SSE4.1 vectors of four states, `pshufb` for the word
    /// distribution (`rans/sse41.rs`; x86-64 only): where AVX2 is absent or split in halves. The
    /// encoder's steps run the AVX2 kernel where the CPU has AVX2, else the portable loop.
    #[cfg(target_arch = "x86_64")]
    Sse41,
    /// NEON for the decoder, `tbl` for the word distribution (aarch64 only); the encoder's
    /// steps run the portable loop.
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl Kernel {
    fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::avx512_decode() {
            return Kernel::Avx512;
        }
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::sse41_decode() {
            return Kernel::Sse41;
        }
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::avx2_popcnt() {
            return Kernel::Avx2;
        }
        #[cfg(target_arch = "aarch64")]
        if crate::cpu::neon() {
            return Kernel::Neon;
        }
        Kernel::Portable
    }

    /// Whether the kernel has a vector encoder (which reads `Encoder::vt`).
    fn encodes_vectors(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 | Kernel::Avx512 => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse41 => crate::cpu::avx2_popcnt(),
            _ => false,
        }
    }
}

/// A chunk's initial states as the 32-lane array the decoders work on (unused lanes at
/// `RANS_L`), after checking the lane count and that every state is normalized.
fn initial_states(states: &[u32]) -> Result<[u32; MAX_LANES]> {
    let lanes = states.len();
    if lanes == 0 || lanes > MAX_LANES {
        return Err(corrupt!("rANS chunk with {lanes} lanes"));
    }
    let mut x = [RANS_L; MAX_LANES];
    for (l, &s) in states.iter().enumerate() {
        if s < RANS_L {
            return Err(corrupt!("rANS state {s:#x} of lane {l} below 2^16"));
        }
        x[l] = s;
    }
    Ok(x)
}

/// A chunk being decoded a piece at a time (`Decoder::start`): its lanes' states and the next
/// word to read.
pub struct Cursor<'w> {
    x: [u32; MAX_LANES],
    lanes: usize,
    words: &'w [u8],
    pos: usize,
}

pub struct Decoder {
    precision_bits: u32,
    /// `freq << 16 | bias` per slot (`bias = slot - cum_freq`), exactly `2^precision_bits` long.
    fb: Vec<u32>,
    /// The symbol of each slot, `2^precision_bits + 1` long: the last entry is padding, so that
    /// a 4-byte read at the last slot stays inside the table (what the AVX2 gather does).
    syms: Vec<u16>,
    /// `freq << 20 | bias << 8 | sym` per slot when every frequency is below 2^12 and every
    /// symbol below 2^8 (8-bit symbols at precision <= 12): one table read per symbol. Else
    /// empty, as on CPUs without a vector kernel.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(dead_code)
    )]
    packed: Vec<u32>,
    kernel: Kernel,
}

impl Decoder {
    /// The decoder for `t`. Panics if `t.precision_bits > 16` (`FreqTable::read` never returns
    /// such a table).
    pub fn new(t: &FreqTable) -> Self {
        Self::for_lanes(t, MAX_LANES)
    }

    /// The decoder for chunks of `lanes` lanes: the vector kernel's packed table is built only
    /// for 32 lanes, the only chunks it decodes.
    pub fn for_lanes(t: &FreqTable, lanes: usize) -> Self {
        assert!(t.precision_bits <= 16, "precision_bits above 16");
        let p = u32::from(t.precision_bits);
        let m = 1usize << p;
        // Written in whole blocks of 8 slots, the last block of a symbol running into the next
        // symbol's slots (which it then overwrites) or into 8 slots of slack: most symbols
        // take one block, so the fill has no loop whose count varies from symbol to symbol
        // (NOTES.md 66). A valid table fills every slot exactly; anything else leaves zeros
        // at the end, so that every slot reads inside the tables (it then decodes garbage
        // that the final check rejects).
        const B: usize = 8;
        let mut fb = vec![0u32; m + B];
        let mut syms = vec![0u16; m + 1 + B];
        let mut at = 0;
        for (&s, &f) in t.symbols.iter().zip(&t.freqs) {
            let n = (f as usize).min(m - at);
            // freq < 2^16: a table has at least two symbols, so no freq reaches 2^precision.
            let hi = u32::from(f as u16) << 16;
            let mut i = 0;
            // at + i < m at every block's start (i < n <= m - at, or i = 0 and at <= m): the
            // block ends inside the slack.
            loop {
                let block: [u32; B] = std::array::from_fn(|k| hi | (i + k) as u32);
                fb[at + i..at + i + B].copy_from_slice(&block);
                syms[at + i..at + i + B].fill(s as u16);
                i += B;
                if i >= n {
                    break;
                }
            }
            at += n;
        }
        fb.truncate(m);
        syms.truncate(m + 1);
        fb[at..].fill(0);
        syms[at..].fill(0);
        let kernel = Kernel::detect();
        let packed = if kernel != Kernel::Portable
            && lanes == MAX_LANES
            && fb.iter().all(|&e| e >> 16 < 1 << 12)
            && syms.iter().all(|&s| s < 1 << 8)
        {
            fb.iter()
                .zip(&syms)
                .map(|(&e, &s)| ((e >> 16) << 20) | ((e & 0xffff) << 8) | u32::from(s))
                .collect()
        } else {
            Vec::new()
        };
        Decoder {
            precision_bits: p,
            fb,
            syms,
            packed,
            kernel,
        }
    }

    /// One decode step of one lane, without renormalization; returns the symbol.
    #[inline(always)]
    fn step(&self, x: &mut u32) -> u16 {
        let slot = (*x & ((1u32 << self.precision_bits) - 1)) as usize;
        let e = self.fb[slot];
        *x = (e >> 16)
            .wrapping_mul(*x >> self.precision_bits)
            .wrapping_add(e & 0xffff);
        self.syms[slot]
    }

    /// Decodes `out.len()` symbols from one chunk's initial states and its words (`words` holds
    /// little-endian u16s), and checks that the chunk ends exactly where the encoder began: all
    /// states back at `RANS_L`, all words consumed. Altered input that breaks this is corrupt.
    pub fn decode_chunk<S: Symbol>(
        &self,
        states: &[u32],
        words: &[u8],
        out: &mut [S],
    ) -> Result<()> {
        self.decode_chunk_with(self.kernel, states, words, out)
    }

    fn decode_chunk_with<S: Symbol>(
        &self,
        kernel: Kernel,
        states: &[u32],
        words: &[u8],
        out: &mut [S],
    ) -> Result<()> {
        let mut c = self.start(states, words)?;
        self.piece_with(kernel, &mut c, out, 0)?;
        self.end(&c)
    }

    /// Decodes two chunks (each as `decode_chunk` would) with their steps interleaved where a
    /// vector kernel runs both: every lane of a chunk waits on its own table lookups and word,
    /// so a second chunk's independent lanes fill that latency. Returns each chunk's result.
    pub fn decode_chunk_pair<S: Symbol>(
        &self,
        a: (&[u32], &[u8], &mut [S]),
        b: (&[u32], &[u8], &mut [S]),
    ) -> (Result<()>, Result<()>) {
        self.decode_chunk_pair_with(self.kernel, a, b)
    }

    fn decode_chunk_pair_with<S: Symbol>(
        &self,
        kernel: Kernel,
        (sa, wa, oa): (&[u32], &[u8], &mut [S]),
        (sb, wb, ob): (&[u32], &[u8], &mut [S]),
    ) -> (Result<()>, Result<()>) {
        match (self.start(sa, wa), self.start(sb, wb)) {
            (Ok(mut ca), Ok(mut cb)) => {
                let (ra, rb) = self.piece_pair_with(kernel, (&mut ca, oa), (&mut cb, ob));
                (
                    ra.and_then(|_| self.end(&ca)),
                    rb.and_then(|_| self.end(&cb)),
                )
            }
            // One chunk's states are invalid: it fails; the other decodes alone.
            (ra, rb) => (
                ra.and_then(|mut c| {
                    self.piece_with(kernel, &mut c, oa, 0)?;
                    self.end(&c)
                }),
                rb.and_then(|mut c| {
                    self.piece_with(kernel, &mut c, ob, 0)?;
                    self.end(&c)
                }),
            ),
        }
    }

    /// Starts decoding a chunk a piece at a time: checks its states. Then `decode_piece` (or
    /// `decode_piece_pair`) over its symbols in order, then `end`.
    pub fn start<'w>(&self, states: &[u32], words: &'w [u8]) -> Result<Cursor<'w>> {
        Ok(Cursor {
            x: initial_states(states)?,
            lanes: states.len(),
            words,
            pos: 0,
        })
    }

    /// Decodes the chunk's next `out.len()` symbols, a multiple of its lanes unless they are
    /// its last. After an error the cursor is spent (the chunk failed).
    pub fn decode_piece<S: Symbol>(&self, c: &mut Cursor<'_>, out: &mut [S]) -> Result<()> {
        self.piece_with(self.kernel, c, out, 0)
    }

    /// `decode_piece` of two chunks, interleaved as `decode_chunk_pair` does.
    pub fn decode_piece_pair<S: Symbol>(
        &self,
        a: (&mut Cursor<'_>, &mut [S]),
        b: (&mut Cursor<'_>, &mut [S]),
    ) -> (Result<()>, Result<()>) {
        self.piece_pair_with(self.kernel, a, b)
    }

    /// Checks that a chunk decoded to its last symbol ended exactly where the encoder began:
    /// all words read, all states back at `RANS_L`.
    pub fn end(&self, c: &Cursor<'_>) -> Result<()> {
        let n_words = c.words.len() / 2;
        if c.pos != n_words {
            return Err(corrupt!("rANS chunk has {} unread words", n_words - c.pos));
        }
        if c.x[..c.lanes].iter().any(|&s| s != RANS_L) {
            return Err(corrupt!("rANS chunk does not end in the initial state"));
        }
        Ok(())
    }

    fn piece_pair_with<S: Symbol>(
        &self,
        kernel: Kernel,
        (ca, oa): (&mut Cursor<'_>, &mut [S]),
        (cb, ob): (&mut Cursor<'_>, &mut [S]),
    ) -> (Result<()>, Result<()>) {
        #[cfg_attr(
            not(any(target_arch = "x86_64", target_arch = "aarch64")),
            allow(unused_mut)
        )]
        let (mut da, mut db) = (0, 0);
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if kernel != Kernel::Portable && ca.lanes == MAX_LANES && cb.lanes == MAX_LANES {
            (da, db) = self.decode_fast_pair(
                kernel,
                &mut ca.x,
                ca.words,
                &mut ca.pos,
                oa,
                &mut cb.x,
                cb.words,
                &mut cb.pos,
                ob,
            );
        }
        (
            self.piece_with(kernel, ca, oa, da),
            self.piece_with(kernel, cb, ob, db),
        )
    }

    /// Decodes the rest of a piece whose first `done` symbols (whole 32-lane steps) are done.
    fn piece_with<S: Symbol>(
        &self,
        kernel: Kernel,
        c: &mut Cursor<'_>,
        out: &mut [S],
        mut done: usize,
    ) -> Result<()> {
        if c.lanes == MAX_LANES {
            done += self.decode_fast(kernel, &mut c.x, c.words, &mut c.pos, &mut out[done..]);
        }
        self.decode_checked(&mut c.x[..c.lanes], c.words, &mut c.pos, &mut out[done..])
    }

    /// Two chunks' full 32-lane steps, interleaved, while both have steps and 32 words left;
    /// returns the symbols decoded in each (whole steps).
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[allow(clippy::too_many_arguments)]
    fn decode_fast_pair<S: Symbol>(
        &self,
        kernel: Kernel,
        xa: &mut [u32; MAX_LANES],
        wa: &[u8],
        pa: &mut usize,
        oa: &mut [S],
        xb: &mut [u32; MAX_LANES],
        wb: &[u8],
        pb: &mut usize,
        ob: &mut [S],
    ) -> (usize, usize) {
        let packed = !self.packed.is_empty();
        // Returns the kernel module's `decode_pair` of u8 or u16 symbols, if `S` is either.
        macro_rules! pair {
            ($k:ident) => {{
                if let (Some(oa), Some(ob)) = (S::as_u8s_mut(oa), S::as_u8s_mut(&mut *ob)) {
                    let (a, b) = ((xa, wa, pa, oa), (xb, wb, pb, ob));
                    return if packed {
                        $k::decode_pair::<u8, true>(self, a, b)
                    } else {
                        $k::decode_pair::<u8, false>(self, a, b)
                    };
                }
                if let (Some(oa), Some(ob)) = (S::as_u16s_mut(oa), S::as_u16s_mut(ob)) {
                    let (a, b) = ((xa, wa, pa, oa), (xb, wb, pb, ob));
                    return if packed {
                        $k::decode_pair::<u16, true>(self, a, b)
                    } else {
                        $k::decode_pair::<u16, false>(self, a, b)
                    };
                }
            }};
        }
        #[cfg(target_arch = "aarch64")]
        if kernel == Kernel::Neon {
            // SAFETY: NEON is part of the aarch64 baseline; `packed` says the table is built.
            unsafe { pair!(neon) }
            return (0, 0);
        }
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Sse41 {
            // SAFETY: `Kernel::Sse41` is only chosen (by `Kernel::detect`, or by a test) where
            // `cpu::sse41_available` holds: SSE4.1 and POPCNT.
            unsafe { pair!(sse41) }
            return (0, 0);
        }
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Avx512 {
            // SAFETY: `Kernel::Avx512` is only chosen (by `Kernel::detect`, or by a test) where
            // `cpu::avx512_decode_available` holds: AVX2, POPCNT, AVX-512 F/BW/VL/VBMI2.
            unsafe { pair!(avx512) }
            return (0, 0);
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Kernel::Avx2` (the only other vector kernel) is chosen where the CPU has AVX2
        // and POPCNT.
        unsafe {
            let _ = kernel;
            pair!(avx2)
        }
        (0, 0)
    }

    /// Decodes `out` with `x.len()` lanes from word `*pos` on, running out of words checked: by
    /// the branch-free loops of 1, 2, 4, 8 and 16 lanes where they apply, else by the reference
    /// loop `decode_checked_lanes` (which the tests hold them to).
    fn decode_checked<S: Symbol>(
        &self,
        x: &mut [u32],
        words: &[u8],
        pos: &mut usize,
        out: &mut [S],
    ) -> Result<()> {
        if words.len() >= 2 {
            match x.len() {
                1 => return self.decode_one_lane(&mut x[0], words, pos, out),
                2 => return self.decode_lanes::<S, 2>(x, words, pos, out),
                4 => return self.decode_lanes::<S, 4>(x, words, pos, out),
                8 => return self.decode_lanes::<S, 8>(x, words, pos, out),
                16 => return self.decode_lanes::<S, 16>(x, words, pos, out),
                _ => {}
            }
        }
        self.decode_checked_lanes(x, words, pos, out)
    }

    /// `decode_checked` with `L` lanes (`x.len() == L`; chunks below 65,536 symbols have 2 to
    /// 16, `stream::stream_lanes`), `words` holding at least one word: the whole steps as the
    /// one-lane loop decodes, renormalized by selects rather than branches (whether a lane needs
    /// a word is unpredictable; `decode_checked_lanes` mispredicted about one branch in four
    /// symbols: NOTES.md 81), the `L` states' chains independent but for the word position, and
    /// the check for running out of words after the loop (past the last word every read rereads
    /// it, and the chunk fails as it would have at the first symbol that found none). The last,
    /// partial step goes to `decode_checked_lanes`.
    fn decode_lanes<S: Symbol, const L: usize>(
        &self,
        x: &mut [u32],
        words: &[u8],
        pos: &mut usize,
        out: &mut [S],
    ) -> Result<()> {
        let last = words.len() / 2 - 1;
        let (p, mask) = (self.precision_bits, (1u32 << self.precision_bits) - 1);
        // Exactly 2^p slots each (`new`): every masked slot is inside.
        let (fb, syms) = (&self.fb[..=mask as usize], &self.syms[..=mask as usize]);
        let mut xs: [u32; L] = x.try_into().expect("decode_lanes with L lanes");
        let mut ps = *pos;
        let full = out.len() - out.len() % L;
        for step in out[..full].chunks_exact_mut(L) {
            for (xl, o) in xs.iter_mut().zip(step) {
                let slot = (*xl & mask) as usize;
                // SAFETY: slot <= mask, and fb and syms hold mask + 1 entries.
                let (e, sym) = unsafe { (*fb.get_unchecked(slot), *syms.get_unchecked(slot)) };
                *o = S::from_index(u32::from(sym));
                let xn = (e >> 16).wrapping_mul(*xl >> p).wrapping_add(e & 0xffff);
                let i = 2 * ps.min(last);
                // SAFETY: i + 1 <= 2 * last + 1 < words.len() (last = words.len() / 2 - 1).
                let word = u32::from(u16::from_le_bytes(unsafe {
                    [*words.get_unchecked(i), *words.get_unchecked(i + 1)]
                }));
                let need = xn < RANS_L;
                *xl = std::hint::select_unpredictable(need, (xn << 16) | word, xn);
                ps += usize::from(need);
            }
        }
        if ps > last + 1 {
            return Err(corrupt!("rANS chunk ran out of words"));
        }
        x.copy_from_slice(&xs);
        *pos = ps;
        self.decode_checked_lanes(x, words, pos, &mut out[full..])
    }

    /// The reference decoder, for any number of lanes: steps in order, lanes in increasing
    /// order, one checked word read per lane that needs one.
    fn decode_checked_lanes<S: Symbol>(
        &self,
        x: &mut [u32],
        words: &[u8],
        pos: &mut usize,
        out: &mut [S],
    ) -> Result<()> {
        let n_words = words.len() / 2;
        for step in out.chunks_mut(x.len()) {
            for (xl, o) in x.iter_mut().zip(step) {
                *o = S::from_index(u32::from(self.step(xl)));
                if *xl < RANS_L {
                    if *pos >= n_words {
                        return Err(corrupt!("rANS chunk ran out of words"));
                    }
                    let word = u16::from_le_bytes([words[2 * *pos], words[2 * *pos + 1]]);
                    *xl = (*xl << 16) | u32::from(word);
                    *pos += 1;
                }
            }
        }
        Ok(())
    }

    /// `decode_checked` with one lane (the short streams of `stream::stream_lanes`): the
    /// renormalization branch-free, since whether a symbol needs a word is unpredictable, and the
    /// check for running out of words after the loop: past the last word the loop rereads it, and
    /// the first symbol that found none makes the chunk fail as it would have at once (what was
    /// decoded after it is discarded with the error). `words` holds at least one word.
    fn decode_one_lane<S: Symbol>(
        &self,
        x: &mut u32,
        words: &[u8],
        pos: &mut usize,
        out: &mut [S],
    ) -> Result<()> {
        self.decode_one_lane_as(x, words, pos, out, |s| S::from_index(u32::from(s)))
    }

    /// `decode_one_lane` writing `emit(symbol)` for each symbol.
    #[inline(always)]
    fn decode_one_lane_as<T>(
        &self,
        x: &mut u32,
        words: &[u8],
        pos: &mut usize,
        out: &mut [T],
        emit: impl Fn(u16) -> T,
    ) -> Result<()> {
        let last = words.len() / 2 - 1;
        let (p, mask) = (self.precision_bits, (1u32 << self.precision_bits) - 1);
        // Exactly 2^p slots each (`new`): every masked slot is inside.
        let (fb, syms) = (&self.fb[..=mask as usize], &self.syms[..=mask as usize]);
        let (mut xl, mut ps) = (*x, *pos);
        // Each entry `freq << 16 | bias` read as its two u16 halves (`hi`: the index of the
        // high one), so that the frequency comes straight from a load into the multiply, with
        // no shift on the state's chain: one-lane decode 16 % faster on Zen 3 (NOTES.md 64).
        let hi = usize::from(cfg!(target_endian = "little"));
        // The next slot is carried beside the state and chosen between two masked values: the
        // state's low bits, or (after a renormalization) the word's, since `p <= 16` makes
        // `((x << 16) | word) & mask` the word's. Masking after the choice would put the `and`
        // on the chain (NOTES.md 65); `wmask` is `mask` hidden from the optimizer, which would
        // otherwise fold `select(c, a & m, b & m)` back into `select(c, a, b) & m`.
        let wmask = std::hint::black_box(mask);
        let mut slot = (xl & mask) as usize;
        for o in out.iter_mut() {
            // SAFETY: slot <= mask (both candidates are masked; `wmask` is `mask`), fb holds
            // mask + 1 u32s (both halves of entry `slot`) and syms mask + 1 symbols.
            let (freq, bias, sym) = unsafe {
                let e = fb.as_ptr().add(slot).cast::<u16>();
                (u32::from(*e.add(hi)), u32::from(*e.add(1 - hi)), *syms.get_unchecked(slot))
            };
            *o = emit(sym);
            xl = freq.wrapping_mul(xl >> p).wrapping_add(bias);
            let i = 2 * ps.min(last);
            // SAFETY: i + 1 <= 2 * last + 1 < words.len() (last = words.len() / 2 - 1).
            let word = u32::from(u16::from_le_bytes(unsafe {
                [*words.get_unchecked(i), *words.get_unchecked(i + 1)]
            }));
            // Whether the state needs a word (x < 2^16) is unpredictable: selects, not branches.
            let need = xl < RANS_L;
            slot = std::hint::select_unpredictable(need, word & wmask, xl & mask) as usize;
            xl = std::hint::select_unpredictable(need, (xl << 16) | word, xl);
            ps += usize::from(need);
        }
        (*x, *pos) = (xl, ps);
        if ps > last + 1 {
            return Err(corrupt!("rANS chunk ran out of words"));
        }
        Ok(())
    }

    /// Decodes full 32-lane steps from the start of `out` while at least 32 words remain (so
    /// that no read inside a step needs a check); returns how many symbols it decoded. What is
    /// left goes to `decode_checked`, which continues from the same `x` and `pos`.
    fn decode_fast<S: Symbol>(
        &self,
        kernel: Kernel,
        x: &mut [u32; MAX_LANES],
        words: &[u8],
        pos: &mut usize,
        out: &mut [S],
    ) -> usize {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        let packed = !self.packed.is_empty();
        // Returns the kernel module's `decode` of u8 or u16 symbols, if `S` is either.
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        macro_rules! fast {
            ($k:ident) => {{
                if let Some(o) = S::as_u8s_mut(out) {
                    return if packed {
                        $k::decode::<u8, true>(self, x, words, pos, o)
                    } else {
                        $k::decode::<u8, false>(self, x, words, pos, o)
                    };
                }
                if let Some(o) = S::as_u16s_mut(out) {
                    return if packed {
                        $k::decode::<u16, true>(self, x, words, pos, o)
                    } else {
                        $k::decode::<u16, false>(self, x, words, pos, o)
                    };
                }
            }};
        }
        match kernel {
            // SAFETY: `Kernel::Avx2` is only chosen (by `Kernel::detect`, or by a test after the
            // same check) where the CPU has AVX2 and POPCNT.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { fast!(avx2) },
            // SAFETY: `Kernel::Avx512` is only chosen (by `Kernel::detect`, or by a test) where
            // `cpu::avx512_decode_available` holds: AVX2, POPCNT, AVX-512 F/BW/VL/VBMI2.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => unsafe { fast!(avx512) },
            // SAFETY: `Kernel::Sse41` is only chosen (by `Kernel::detect`, or by a test) where
            // `cpu::sse41_available` holds: SSE4.1 and POPCNT.
            #[cfg(target_arch = "x86_64")]
            Kernel::Sse41 => unsafe { fast!(sse41) },
            // SAFETY: NEON is part of the aarch64 baseline; `packed` says the table is built.
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => unsafe { fast!(neon) },
            Kernel::Portable => {}
        }
        self.decode_portable(x, words, pos, out)
    }

    /// `decode_fast` in plain Rust.
    fn decode_portable<S: Symbol>(
        &self,
        x: &mut [u32; MAX_LANES],
        words: &[u8],
        pos: &mut usize,
        out: &mut [S],
    ) -> usize {
        let mut done = 0;
        for step in out.chunks_exact_mut(MAX_LANES) {
            // A full step reads at most one word per lane: check once for all of them.
            let Some(w) = words
                .get(2 * *pos..2 * *pos + 2 * MAX_LANES)
                .and_then(|w| <&[u8; 2 * MAX_LANES]>::try_from(w).ok())
            else {
                break;
            };
            // Decode every lane first (independent chains), then renormalize branch-free
            // (whether a lane reads is unpredictable): only the running word count links them.
            for (xl, o) in x.iter_mut().zip(step) {
                *o = S::from_index(u32::from(self.step(xl)));
            }
            let mut k = 0usize;
            for xl in x.iter_mut() {
                // Arithmetic rather than a select, which compilers like to turn into a branch.
                let need = u32::from(*xl < RANS_L);
                let i = 2 * (k & (MAX_LANES - 1));
                let word = u32::from(u16::from_le_bytes([w[i], w[i + 1]]));
                *xl = (*xl << (16 * need)) | (word & need.wrapping_neg());
                k += need as usize;
            }
            *pos += k;
            done += MAX_LANES;
        }
        done
    }
}

/// The AVX2 kernels.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
/// The AVX-512 decode kernels.
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod sse41;
/// Decoding straight to values (`Decoder::decode_piece_mapped`).
mod mapped;

#[cfg(test)]
mod tests;
