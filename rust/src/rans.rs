//! The interleaved rANS coder for one chunk: 32-bit states, 16-bit renormalization words,
//! up to 32 lanes sharing one word stream in the order the decoder consumes it.
//!
//! Symbol `j` of a chunk belongs to lane `j % lanes`, step `j / lanes`. The decoder runs the
//! steps in order and, within a step, the lanes in increasing order; a lane that needs a word
//! after decoding its symbol takes the next word of the chunk. The encoder therefore runs the
//! steps backwards and the lanes in decreasing order, and reverses its words at the end. This is
//! the layout a warp decodes with one ballot per step.
//!
//! Full 32-lane steps run in a kernel chosen once per `Encoder`/`Decoder`: AVX2 on x86-64 CPUs
//! that have it (four vectors of eight states: table gathers, and the words handed to the lanes
//! that need them by a permutation looked up from the lanes' mask), NEON on aarch64 for the
//! decoder (`rans/neon.rs`: eight vectors of four states, the words handed out by `tbl`), else
//! portable branch-free Rust. Partial steps, chunks of fewer lanes and the last steps of a chunk (fewer than 32
//! words left) take the checked reference loop. Every kernel produces exactly the reference's
//! states, words and symbols (the tests below compare them on random tables and data).

use crate::error::{corrupt, Result};
use crate::freq::FreqTable;

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
        crate::freq::histogram_u8(symbols)
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
        crate::freq::histogram_u16(symbols)
    }
    fn as_u16s(symbols: &[Self]) -> Option<&[u16]> {
        Some(symbols)
    }
    fn as_u16s_mut(symbols: &mut [Self]) -> Option<&mut [u16]> {
        Some(symbols)
    }
}

/// Per-symbol encoder constants. `rcp` is Lemire's `floor((2^64 - 1) / freq) + 1`, which makes
/// `mulhi64(rcp, x) == x / freq` exactly for every 32-bit `x` and `freq >= 2`; for `freq == 1`
/// `rcp` is 0 and `one_mask` adds `x` back, so the step is branch-free.
#[derive(Clone, Copy, Default)]
pub struct EncSymbol {
    rcp: u64,
    x_max: u32,
    cmpl_freq: u32,
    cum_freq: u32,
    one_mask: u32,
}

pub struct Encoder {
    table: Vec<EncSymbol>,
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

/// `x / freq` for every `x < 2^32` and `1 <= freq < 2^16` without a division, the way the
/// vector encoder computes it (and exactly what `put` computes with its 64-bit reciprocal):
/// with `l = ceil(log2 freq)` and `m = ceil(2^(32 + l) / freq)` (33 bits),
/// `x / freq = (x * m) >> (32 + l)`, since the error `x * (m - 2^(32 + l) / freq) / 2^(32 + l)`
/// is below `2^-l <= 1 / freq`, the least distance from `x / freq` up to the next integer. With
/// `t = (x * (m - 2^32)) >> 32` that is `(t + ((x - t) >> 1)) >> (l - 1)`. `freq == 1`
/// (`l = 0`) is `x` itself. Returns `m - 2^32`, which fits 32 bits.
fn div_magic(freq: u32) -> u32 {
    debug_assert!((2..1 << 16).contains(&freq));
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
        let mut table = vec![EncSymbol::default(); top.min(alphabet)];
        for ((&s, &f), c) in t.symbols.iter().zip(&t.freqs).zip(t.cum_freqs()) {
            table[s as usize] = EncSymbol {
                rcp: if f >= 2 {
                    u64::MAX / u64::from(f) + 1
                } else {
                    0
                },
                x_max: f << (32 - p),
                cmpl_freq: (1u32 << p) - f,
                cum_freq: c,
                one_mask: if f == 1 { u32::MAX } else { 0 },
            };
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
                let magic = if f >= 2 { div_magic(f) } else { 0 };
                vt[s as usize] = u64::from(magic) | u64::from(f | (c << 16)) << 32;
            }
        }
        Encoder {
            table,
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

    /// Encodes one chunk with one lane (every stream under 8192 symbols): the words go into a
    /// buffer with room for one per symbol, written unconditionally and kept when needed, as
    /// in `put`; returns the final state and the words in the order the decoder reads them.
    fn encode_one_lane<S: Symbol>(&self, symbols: &[S]) -> (u32, Vec<u16>) {
        let mut words = vec![0u16; symbols.len() + 1];
        let (mut x, mut k) = (RANS_L, 0usize);
        for s in symbols.iter().rev() {
            let e = self.entry(s.index());
            let need = x >= e.x_max;
            // At most one word per symbol: k <= symbols done < words.len().
            words[k] = x as u16;
            k += usize::from(need);
            let xr = if need { x >> 16 } else { x };
            let q = ((u128::from(e.rcp) * u128::from(xr)) >> 64) as u32 | (xr & e.one_mask);
            x = xr
                .wrapping_add(e.cum_freq)
                .wrapping_add(q.wrapping_mul(e.cmpl_freq));
        }
        words.truncate(k);
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
        let q = ((u128::from(e.rcp) * u128::from(xr)) >> 64) as u32 | (xr & e.one_mask);
        *x = xr
            .wrapping_add(e.cum_freq)
            .wrapping_add(q.wrapping_mul(e.cmpl_freq));
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

    /// `encode_chunk` for any number of lanes.
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
        if lanes == MAX_LANES {
            self.encode_fast(kernel, &mut x, &symbols[..full], &mut words);
        } else {
            for step in symbols[..full].chunks_exact(lanes).rev() {
                self.put_step(&mut x[..lanes], step, &mut words);
            }
        }
        words.reverse();
        (x[..lanes].to_vec(), words)
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
        debug_assert!(symbols.len() % MAX_LANES == 0);
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Avx2 && !self.vt.is_empty() {
            // SAFETY: `Kernel::Avx2` is only chosen where the CPU has AVX2 and POPCNT; the
            // other requirements are checked by `avx2::encode`.
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
        for step in symbols.chunks_exact(MAX_LANES).rev() {
            self.put_step(x, step, words);
        }
    }
}

/// Spare word capacity for the vector encoder's 8-word stores (see `Encoder::encode_chunk`).
const ENC_PAD: usize = 8;

/// Which implementation runs the full 32-lane steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// Plain Rust: branch-free renormalization, no `unsafe`.
    Portable,
    /// AVX2 gathers and a lane permutation for the word distribution (x86-64 only).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// NEON for the decoder, `tbl` for the word distribution (aarch64 only); the encoder's
    /// steps run the portable loop.
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl Kernel {
    fn detect() -> Kernel {
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
            Kernel::Avx2 => true,
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
        let mut fb = Vec::with_capacity(m);
        let mut syms = Vec::with_capacity(m + 1);
        for (&s, &f) in t.symbols.iter().zip(&t.freqs) {
            // freq < 2^16: a table has at least two symbols, so no freq reaches 2^precision.
            for i in 0..f.min((m - fb.len()) as u32) {
                fb.push((u32::from(f as u16) << 16) | u32::from(i as u16));
                syms.push(s as u16);
            }
        }
        // A valid table fills every slot exactly; pad anything else so that every slot reads
        // inside the tables (it then decodes garbage that the final check rejects).
        fb.resize(m, 0);
        syms.resize(m + 1, 0);
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
        #[cfg(target_arch = "aarch64")]
        if kernel == Kernel::Neon {
            // SAFETY: NEON is part of the aarch64 baseline; `packed` says the table is built.
            unsafe {
                if let (Some(oa), Some(ob)) = (S::as_u8s_mut(oa), S::as_u8s_mut(&mut *ob)) {
                    let a = (xa, wa, pa, oa);
                    let b = (xb, wb, pb, ob);
                    return if packed {
                        neon::decode_pair::<u8, true>(self, a, b)
                    } else {
                        neon::decode_pair::<u8, false>(self, a, b)
                    };
                }
                if let (Some(oa), Some(ob)) = (S::as_u16s_mut(oa), S::as_u16s_mut(ob)) {
                    let a = (xa, wa, pa, oa);
                    let b = (xb, wb, pb, ob);
                    return if packed {
                        neon::decode_pair::<u16, true>(self, a, b)
                    } else {
                        neon::decode_pair::<u16, false>(self, a, b)
                    };
                }
            }
            return (0, 0);
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Kernel::Avx2` (the only other vector kernel) is chosen where the CPU has AVX2
        // and POPCNT.
        unsafe {
            let _ = kernel;
            if let (Some(oa), Some(ob)) = (S::as_u8s_mut(oa), S::as_u8s_mut(&mut *ob)) {
                let a = (xa, wa, pa, oa);
                let b = (xb, wb, pb, ob);
                return if packed {
                    avx2::decode_pair::<u8, true>(self, a, b)
                } else {
                    avx2::decode_pair::<u8, false>(self, a, b)
                };
            }
            if let (Some(oa), Some(ob)) = (S::as_u16s_mut(oa), S::as_u16s_mut(ob)) {
                let a = (xa, wa, pa, oa);
                let b = (xb, wb, pb, ob);
                return if packed {
                    avx2::decode_pair::<u16, true>(self, a, b)
                } else {
                    avx2::decode_pair::<u16, false>(self, a, b)
                };
            }
        }
        (0, 0)
    }

    /// The reference decoder: steps in order, lanes in increasing order, one checked word read
    /// per lane that needs one. Decodes `out` with `x.len()` lanes from word `*pos` on.
    fn decode_checked<S: Symbol>(
        &self,
        x: &mut [u32],
        words: &[u8],
        pos: &mut usize,
        out: &mut [S],
    ) -> Result<()> {
        if x.len() == 1 && words.len() >= 2 {
            return self.decode_one_lane(&mut x[0], words, pos, out);
        }
        self.decode_checked_lanes(x, words, pos, out)
    }

    /// `decode_checked` for any number of lanes.
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

    /// `decode_checked` with one lane (every stream below 8192 symbols): the renormalization
    /// branch-free, since whether a symbol needs a word is unpredictable, and the check for
    /// running out of words after the loop: past the last word the loop rereads it, and the
    /// first symbol that found none makes the chunk fail as it would have at once (what was
    /// decoded after it is discarded with the error). `words` holds at least one word.
    fn decode_one_lane<S: Symbol>(
        &self,
        x: &mut u32,
        words: &[u8],
        pos: &mut usize,
        out: &mut [S],
    ) -> Result<()> {
        let last = words.len() / 2 - 1;
        let (p, mask) = (self.precision_bits, (1u32 << self.precision_bits) - 1);
        // Exactly 2^p slots each (`new`): every masked slot is inside.
        let (fb, syms) = (&self.fb[..=mask as usize], &self.syms[..=mask as usize]);
        let (mut xl, mut ps) = (*x, *pos);
        for o in out.iter_mut() {
            let slot = (xl & mask) as usize;
            let e = fb[slot];
            *o = S::from_index(u32::from(syms[slot]));
            xl = (e >> 16).wrapping_mul(xl >> p).wrapping_add(e & 0xffff);
            let i = 2 * ps.min(last);
            // SAFETY: i + 1 <= 2 * last + 1 < words.len() (last = words.len() / 2 - 1).
            let word = u32::from(u16::from_le_bytes(unsafe {
                [*words.get_unchecked(i), *words.get_unchecked(i + 1)]
            }));
            // All ones when the state needs a word (x < 2^16), from the sign of x - 2^16: both
            // candidates are computed beside the mask, and a mask rather than a select, which
            // compilers like to turn into a branch (unpredictable here).
            let m = ((i64::from(xl) - i64::from(RANS_L)) >> 63) as u32;
            xl = (((xl << 16) | word) & m) | (xl & !m);
            ps += (m & 1) as usize;
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
        match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                let packed = !self.packed.is_empty();
                // SAFETY: `Kernel::Avx2` is only chosen (by `Kernel::detect`, or by a test
                // after the same check) where the CPU has AVX2 and POPCNT.
                unsafe {
                    if let Some(o) = S::as_u8s_mut(out) {
                        return if packed {
                            avx2::decode::<u8, true>(self, x, words, pos, o)
                        } else {
                            avx2::decode::<u8, false>(self, x, words, pos, o)
                        };
                    }
                    if let Some(o) = S::as_u16s_mut(out) {
                        return if packed {
                            avx2::decode::<u16, true>(self, x, words, pos, o)
                        } else {
                            avx2::decode::<u16, false>(self, x, words, pos, o)
                        };
                    }
                }
                self.decode_portable(x, words, pos, out)
            }
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => {
                let packed = !self.packed.is_empty();
                // SAFETY: NEON is part of the aarch64 baseline; `packed` says the table is built.
                unsafe {
                    if let Some(o) = S::as_u8s_mut(out) {
                        return if packed {
                            neon::decode::<u8, true>(self, x, words, pos, o)
                        } else {
                            neon::decode::<u8, false>(self, x, words, pos, o)
                        };
                    }
                    if let Some(o) = S::as_u16s_mut(out) {
                        return if packed {
                            neon::decode::<u16, true>(self, x, words, pos, o)
                        } else {
                            neon::decode::<u16, false>(self, x, words, pos, o)
                        };
                    }
                }
                self.decode_portable(x, words, pos, out)
            }
            Kernel::Portable => self.decode_portable(x, words, pos, out),
        }
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
mod avx2 {
    use super::{Decoder, Encoder, ENC_PAD, MAX_LANES};
    use std::arch::x86_64::*;

    /// For each 8-lane mask of the lanes that read a word: per lane, its rank among those lanes
    /// (one byte per lane), i.e. which of the next eight words it takes.
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

    /// An output symbol type of the vector kernels.
    pub(super) trait Out: Copy {
        /// Stores step `s` (32 symbols, lanes 0..8 in `v[0]` and so on, each in the bits
        /// `sym_mask` of a 32-bit lane, at most the low 16) to `out[32 * s..32 * s + 32]`.
        ///
        /// # Safety
        /// AVX2 must be available and `32 * s + 32 <= out.len()`.
        unsafe fn store(out: &mut [Self], s: usize, v: [__m256i; 4], sym_mask: __m256i);
    }

    impl Out for u8 {
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn store(out: &mut [u8], s: usize, v: [__m256i; 4], _: __m256i) {
            let b = _mm256_set1_epi32(0xff);
            let a01 = _mm256_packus_epi32(_mm256_and_si256(v[0], b), _mm256_and_si256(v[1], b));
            let a23 = _mm256_packus_epi32(_mm256_and_si256(v[2], b), _mm256_and_si256(v[3], b));
            // Dwords [0a 1a 2a 3a 0b 1b 2b 3b] (a, b: the low and high four lanes of a vector).
            let bytes = _mm256_packus_epi16(a01, a23);
            let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
            let bytes = _mm256_permutevar8x32_epi32(bytes, order);
            // SAFETY: the caller guarantees that the 32 bytes at 32 * s are inside `out`.
            _mm256_storeu_si256(out.as_mut_ptr().add(32 * s).cast(), bytes);
        }
    }

    impl Out for u16 {
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn store(out: &mut [u16], s: usize, v: [__m256i; 4], w: __m256i) {
            let a01 = _mm256_packus_epi32(_mm256_and_si256(v[0], w), _mm256_and_si256(v[1], w));
            let a23 = _mm256_packus_epi32(_mm256_and_si256(v[2], w), _mm256_and_si256(v[3], w));
            let a01 = _mm256_permute4x64_epi64::<0b11_01_10_00>(a01);
            let a23 = _mm256_permute4x64_epi64::<0b11_01_10_00>(a23);
            let p = out.as_mut_ptr().add(32 * s);
            // SAFETY: the caller guarantees that the 32 symbols at 32 * s are inside `out`.
            _mm256_storeu_si256(p.cast(), a01);
            _mm256_storeu_si256(p.add(16).cast(), a23);
        }
    }

    /// `_mm256_i32gather_epi32::<4>(table, idx)` as eight scalar loads, which run faster than
    /// the gather instruction on the AMD cores measured (Zen 4: a microcoded gather; its loads
    /// folded into `vpinsrd` instead). `idx` lanes are read as unsigned.
    ///
    /// # Safety
    /// AVX2; `table + idx[k]` readable for every lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn gather(table: *const i32, idx: __m256i) -> __m256i {
        let lo = _mm256_castsi256_si128(idx);
        let hi = _mm256_extracti128_si256::<1>(idx);
        let (i01, i23) = (
            _mm_cvtsi128_si64(lo) as u64,
            _mm_extract_epi64::<1>(lo) as u64,
        );
        let (i45, i67) = (
            _mm_cvtsi128_si64(hi) as u64,
            _mm_extract_epi64::<1>(hi) as u64,
        );
        let t = |i: u64| *table.add(i as u32 as usize);
        let a = _mm_setr_epi32(t(i01), t(i01 >> 32), t(i23), t(i23 >> 32));
        let b = _mm_setr_epi32(t(i45), t(i45 >> 32), t(i67), t(i67 >> 32));
        _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(a), b)
    }

    /// `gather` of u16 entries, zero-extended.
    ///
    /// # Safety
    /// AVX2; `table + idx[k]` readable for every lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn gather_u16(table: *const u16, idx: __m256i) -> __m256i {
        let lo = _mm256_castsi256_si128(idx);
        let hi = _mm256_extracti128_si256::<1>(idx);
        let (i01, i23) = (
            _mm_cvtsi128_si64(lo) as u64,
            _mm_extract_epi64::<1>(lo) as u64,
        );
        let (i45, i67) = (
            _mm_cvtsi128_si64(hi) as u64,
            _mm_extract_epi64::<1>(hi) as u64,
        );
        let t = |i: u64| i32::from(*table.add(i as u32 as usize));
        let a = _mm_setr_epi32(t(i01), t(i01 >> 32), t(i23), t(i23 >> 32));
        let b = _mm_setr_epi32(t(i45), t(i45 >> 32), t(i67), t(i67 >> 32));
        _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(a), b)
    }

    /// One decode step of eight lanes `xv`, renormalized from the words at `*pos`; returns the
    /// symbols (in the low bits of each 32-bit lane).
    ///
    /// # Safety
    /// AVX2 and POPCNT must be available; `table` must hold `2^p` entries, `syms` (unless
    /// `PACKED`) `2^p + 1` u16s, `mask` must be `2^p - 1` in every lane, and 8 words (16 bytes)
    /// must be readable at `wp + 2 * *pos`.
    #[inline]
    #[target_feature(enable = "avx2,popcnt")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn lanes8<const PACKED: bool>(
        xv: &mut __m256i,
        table: *const i32,
        syms: *const i32,
        mask: __m256i,
        shift: __m128i,
        wp: *const u8,
        pos: &mut usize,
    ) -> __m256i {
        let slot = _mm256_and_si256(*xv, mask);
        // SAFETY: every slot is below 2^p (masked), so every 4-byte read is inside `table`
        // (2^p u32s) and `syms` (2^p + 1 u16s, read at byte offset 2 * slot).
        let e = gather(table, slot);
        let (freq, bias, sym) = if PACKED {
            let bias = _mm256_and_si256(_mm256_srli_epi32::<8>(e), _mm256_set1_epi32(0xfff));
            (_mm256_srli_epi32::<20>(e), bias, e)
        } else {
            let bias = _mm256_and_si256(e, _mm256_set1_epi32(0xffff));
            let sym = gather_u16(syms.cast(), slot);
            (_mm256_srli_epi32::<16>(e), bias, sym)
        };
        let x = _mm256_add_epi32(_mm256_mullo_epi32(freq, _mm256_srl_epi32(*xv, shift)), bias);
        let need = _mm256_cmpeq_epi32(_mm256_srli_epi32::<16>(x), _mm256_setzero_si256());
        let m = _mm256_movemask_ps(_mm256_castsi256_ps(need)) as usize & 0xff;
        // SAFETY: the caller guarantees 16 readable bytes at wp + 2 * pos.
        let w = _mm256_cvtepu16_epi32(_mm_loadu_si128(wp.add(2 * *pos).cast()));
        let ranks = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(EXPAND[m] as i64));
        let w = _mm256_permutevar8x32_epi32(w, ranks);
        *xv = _mm256_blendv_epi8(x, _mm256_or_si256(_mm256_slli_epi32::<16>(x), w), need);
        *pos += (m as u32).count_ones() as usize;
        sym
    }

    /// `Decoder::decode_fast` with AVX2: the 32 states in four vectors.
    ///
    /// # Safety
    /// AVX2 and POPCNT must be available.
    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn decode<O: Out, const PACKED: bool>(
        d: &Decoder,
        x: &mut [u32; MAX_LANES],
        words: &[u8],
        pos: &mut usize,
        out: &mut [O],
    ) -> usize {
        let p = d.precision_bits;
        // The tables hold exactly 2^p (+1) entries (`Decoder::new`); PACKED only when built.
        let table = if PACKED { &d.packed } else { &d.fb };
        assert!(p <= 16 && table.len() == 1 << p && d.syms.len() > 1 << p);
        let table = table.as_ptr().cast::<i32>();
        let syms = d.syms.as_ptr().cast::<i32>();
        let mask = _mm256_set1_epi32(((1u32 << p) - 1) as i32);
        let shift = _mm_cvtsi32_si128(p as i32);
        let sym_mask = _mm256_set1_epi32(if PACKED { 0xff } else { 0xffff });
        let n_words = words.len() / 2;
        // Keeps `n_words - ps` below from wrapping.
        assert!(*pos <= n_words);
        let wp = words.as_ptr();
        let steps = out.len() / MAX_LANES;
        let xp = x.as_mut_ptr().cast::<__m256i>();
        // SAFETY: `x` is 32 u32s: four unaligned 32-byte vectors.
        let mut x0 = _mm256_loadu_si256(xp);
        let mut x1 = _mm256_loadu_si256(xp.add(1));
        let mut x2 = _mm256_loadu_si256(xp.add(2));
        let mut x3 = _mm256_loadu_si256(xp.add(3));
        let mut ps = *pos;
        let mut s = 0;
        // SAFETY (reads of words): a step starts with at least 32 words left at `ps`, and its
        // k-th vector reads 8 words at `ps` plus at most 8 * k words taken by the vectors
        // before it, so every read ends at most 32 words past the step's start.
        while s < steps && n_words - ps >= MAX_LANES {
            let s0 = lanes8::<PACKED>(&mut x0, table, syms, mask, shift, wp, &mut ps);
            let s1 = lanes8::<PACKED>(&mut x1, table, syms, mask, shift, wp, &mut ps);
            let s2 = lanes8::<PACKED>(&mut x2, table, syms, mask, shift, wp, &mut ps);
            let s3 = lanes8::<PACKED>(&mut x3, table, syms, mask, shift, wp, &mut ps);
            // SAFETY: s < steps = out.len() / 32.
            O::store(out, s, [s0, s1, s2, s3], sym_mask);
            s += 1;
        }
        _mm256_storeu_si256(xp, x0);
        _mm256_storeu_si256(xp.add(1), x1);
        _mm256_storeu_si256(xp.add(2), x2);
        _mm256_storeu_si256(xp.add(3), x3);
        *pos = ps;
        s * MAX_LANES
    }

    /// One chunk's side of `decode_pair`: states, words, next word, output.
    pub(super) type Side<'a, O> = (
        &'a mut [u32; MAX_LANES],
        &'a [u8],
        &'a mut usize,
        &'a mut [O],
    );

    /// `decode` of two chunks at once, their steps interleaved (eight vectors of independent
    /// states), while both have steps and 32 words left; returns the symbols decoded in each.
    ///
    /// # Safety
    /// AVX2 and POPCNT must be available.
    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn decode_pair<O: Out, const PACKED: bool>(
        d: &Decoder,
        (xa, wa, pa, oa): Side<'_, O>,
        (xb, wb, pb, ob): Side<'_, O>,
    ) -> (usize, usize) {
        let p = d.precision_bits;
        let table = if PACKED { &d.packed } else { &d.fb };
        assert!(p <= 16 && table.len() == 1 << p && d.syms.len() > 1 << p);
        let table = table.as_ptr().cast::<i32>();
        let syms = d.syms.as_ptr().cast::<i32>();
        let mask = _mm256_set1_epi32(((1u32 << p) - 1) as i32);
        let shift = _mm_cvtsi32_si128(p as i32);
        let sym_mask = _mm256_set1_epi32(if PACKED { 0xff } else { 0xffff });
        let (na, nb) = (wa.len() / 2, wb.len() / 2);
        assert!(*pa <= na && *pb <= nb);
        let (wpa, wpb) = (wa.as_ptr(), wb.as_ptr());
        let steps = (oa.len() / MAX_LANES).min(ob.len() / MAX_LANES);
        let (xpa, xpb) = (
            xa.as_mut_ptr().cast::<__m256i>(),
            xb.as_mut_ptr().cast::<__m256i>(),
        );
        // SAFETY: each of `xa`, `xb` is 32 u32s: four unaligned 32-byte vectors.
        let mut a0 = _mm256_loadu_si256(xpa);
        let mut a1 = _mm256_loadu_si256(xpa.add(1));
        let mut a2 = _mm256_loadu_si256(xpa.add(2));
        let mut a3 = _mm256_loadu_si256(xpa.add(3));
        let mut b0 = _mm256_loadu_si256(xpb);
        let mut b1 = _mm256_loadu_si256(xpb.add(1));
        let mut b2 = _mm256_loadu_si256(xpb.add(2));
        let mut b3 = _mm256_loadu_si256(xpb.add(3));
        let (mut qa, mut qb) = (*pa, *pb);
        let mut s = 0;
        // SAFETY (reads of words): as in `decode`, for each chunk separately.
        while s < steps && na - qa >= MAX_LANES && nb - qb >= MAX_LANES {
            let sa0 = lanes8::<PACKED>(&mut a0, table, syms, mask, shift, wpa, &mut qa);
            let sb0 = lanes8::<PACKED>(&mut b0, table, syms, mask, shift, wpb, &mut qb);
            let sa1 = lanes8::<PACKED>(&mut a1, table, syms, mask, shift, wpa, &mut qa);
            let sb1 = lanes8::<PACKED>(&mut b1, table, syms, mask, shift, wpb, &mut qb);
            let sa2 = lanes8::<PACKED>(&mut a2, table, syms, mask, shift, wpa, &mut qa);
            let sb2 = lanes8::<PACKED>(&mut b2, table, syms, mask, shift, wpb, &mut qb);
            let sa3 = lanes8::<PACKED>(&mut a3, table, syms, mask, shift, wpa, &mut qa);
            let sb3 = lanes8::<PACKED>(&mut b3, table, syms, mask, shift, wpb, &mut qb);
            // SAFETY: s < steps, within both outputs.
            O::store(oa, s, [sa0, sa1, sa2, sa3], sym_mask);
            O::store(ob, s, [sb0, sb1, sb2, sb3], sym_mask);
            s += 1;
        }
        _mm256_storeu_si256(xpa, a0);
        _mm256_storeu_si256(xpa.add(1), a1);
        _mm256_storeu_si256(xpa.add(2), a2);
        _mm256_storeu_si256(xpa.add(3), a3);
        _mm256_storeu_si256(xpb, b0);
        _mm256_storeu_si256(xpb.add(1), b1);
        _mm256_storeu_si256(xpb.add(2), b2);
        _mm256_storeu_si256(xpb.add(3), b3);
        *pa = qa;
        *pb = qb;
        (s * MAX_LANES, s * MAX_LANES)
    }

    /// The vector encoder keeps lane `ENC_ORDER[i]` of its eight in 32-bit element `i`: the
    /// order in which two 4-entry gathers of lanes 0..4 and 4..8 come out of `shuffle_ps`.
    /// (`ENC_ORDER` is its own inverse.)
    const ENC_ORDER: [u32; 8] = [0, 1, 4, 5, 2, 3, 6, 7];

    /// For each 8-bit mask of the elements whose lanes emit a word: the `pshufb` control that
    /// moves their words (8 u16s in element order) to the bottom of the vector, highest lane
    /// first (the order in which the encoder emits them).
    static EMIT: [[u8; 16]; 256] = {
        let mut t = [[0x80u8; 16]; 256];
        let mut m = 0;
        while m < 256 {
            let mut j = 0;
            let mut lane = 8;
            while lane > 0 {
                lane -= 1;
                // The element holding `lane`.
                let i = ENC_ORDER[lane] as usize;
                if m >> i & 1 == 1 {
                    t[m][2 * j] = 2 * i as u8;
                    t[m][2 * j + 1] = 2 * i as u8 + 1;
                    j += 1;
                }
            }
            m += 1;
        }
        t
    };

    /// An input symbol type of the vector encoder.
    pub(super) trait In: Copy {
        /// Symbol `k` at `p`.
        ///
        /// # Safety
        /// `p + k` readable.
        unsafe fn get(p: *const Self, k: usize) -> usize;
    }

    impl In for u8 {
        #[inline(always)]
        unsafe fn get(p: *const u8, k: usize) -> usize {
            // SAFETY: readable by the caller's guarantee.
            usize::from(*p.add(k))
        }
    }

    impl In for u16 {
        #[inline(always)]
        unsafe fn get(p: *const u16, k: usize) -> usize {
            // SAFETY: readable by the caller's guarantee.
            usize::from(*p.add(k))
        }
    }

    /// One encode step of eight lanes `xv` (in `ENC_ORDER`) with the symbols of lanes 0..8 at
    /// `sp`; the words the lanes emit are stored at `wp`, highest lane first; returns their
    /// count.
    ///
    /// # Safety
    /// AVX2 and POPCNT must be available; 8 symbols readable at `sp`; `vt` must have an entry
    /// for each of them; 8 u16s must be writable at `wp`.
    #[inline]
    #[target_feature(enable = "avx2,popcnt")]
    unsafe fn enc8<I: In>(
        xv: &mut __m256i,
        sp: *const I,
        vt: *const i64,
        kshift: __m128i,
        big_m: __m256i,
        wp: *mut u16,
    ) -> usize {
        // SAFETY: every symbol has an 8-byte entry at vt + 8 * sym (caller). Scalar loads
        // folded into inserts run faster than `vpgatherdq` on the AMD cores measured.
        let e = |k: usize| *vt.add(I::get(sp, k));
        let a = _mm256_castsi256_ps(_mm256_setr_epi64x(e(0), e(1), e(2), e(3)));
        let b = _mm256_castsi256_ps(_mm256_setr_epi64x(e(4), e(5), e(6), e(7)));
        // Low and high halves of the entries, in ENC_ORDER.
        let magic = _mm256_castps_si256(_mm256_shuffle_ps::<0b10_00_10_00>(a, b));
        let fc = _mm256_castps_si256(_mm256_shuffle_ps::<0b11_01_11_01>(a, b));
        let freq = _mm256_and_si256(fc, _mm256_set1_epi32(0xffff));
        let cum = _mm256_srli_epi32::<16>(fc);
        let x = *xv;
        // x >= freq << (32 - p) exactly when x >> (32 - p) >= freq (freq < 2^p); both sides
        // are below 2^31, so the signed compare is right.
        let keep = _mm256_cmpgt_epi32(freq, _mm256_srl_epi32(x, kshift));
        let m = !_mm256_movemask_ps(_mm256_castsi256_ps(keep)) as usize & 0xff;
        // The low halves of the eight states, in element order, in the low 128 bits.
        let halves = _mm256_setr_epi8(
            0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 4, 5, 8, 9, 12, 13, -1,
            -1, -1, -1, -1, -1, -1, -1,
        );
        let w = _mm256_permute4x64_epi64::<0b1000>(_mm256_shuffle_epi8(x, halves));
        let ctl = _mm_loadu_si128(EMIT[m].as_ptr().cast());
        // SAFETY: 8 u16s are writable at wp (caller).
        _mm_storeu_si128(wp.cast(), _mm_shuffle_epi8(_mm256_castsi256_si128(w), ctl));
        let xr = _mm256_blendv_epi8(_mm256_srli_epi32::<16>(x), x, keep);
        // q = xr / freq by `div_magic`: t = (xr * magic) >> 32 in 64-bit lanes, even elements
        // then odd ones moved down, and l - 1 = floor(log2(freq - 1)) from the exponent of
        // the (exact) float freq - 1.
        let te = _mm256_srli_epi64::<32>(_mm256_mul_epu32(xr, magic));
        let to = _mm256_mul_epu32(_mm256_srli_epi64::<32>(xr), _mm256_srli_epi64::<32>(magic));
        let t = _mm256_blend_epi32::<0b1010_1010>(te, to);
        let one = _mm256_set1_epi32(1);
        let fm1 = _mm256_cvtepi32_ps(_mm256_sub_epi32(freq, one));
        let lm1 = _mm256_sub_epi32(
            _mm256_srli_epi32::<23>(_mm256_castps_si256(fm1)),
            _mm256_set1_epi32(127),
        );
        // lm1 is negative for freq == 1 (where q = xr) and at least 32 for freq == 0 (an
        // absent symbol: q = 0, as `put` computes with rcp == 0; srlv gives 0).
        let q = _mm256_srlv_epi32(
            _mm256_add_epi32(t, _mm256_srli_epi32::<1>(_mm256_sub_epi32(xr, t))),
            lm1,
        );
        let q = _mm256_castps_si256(_mm256_blendv_ps(
            _mm256_castsi256_ps(q),
            _mm256_castsi256_ps(xr),
            _mm256_castsi256_ps(lm1),
        ));
        let cmpl = _mm256_sub_epi32(big_m, freq);
        *xv = _mm256_add_epi32(_mm256_add_epi32(_mm256_mullo_epi32(q, cmpl), xr), cum);
        (m as u32).count_ones() as usize
    }

    /// `Encoder::encode_fast` with AVX2: the 32 states in four vectors.
    ///
    /// # Safety
    /// AVX2 and POPCNT must be available.
    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn encode<I: In>(
        e: &Encoder,
        x: &mut [u32; MAX_LANES],
        symbols: &[I],
        words: &mut Vec<u16>,
    ) {
        let p = e.precision_bits;
        // Every value of I has an entry: the gathers stay inside the table.
        assert!(e.vt.len() >= 1 << (8 * std::mem::size_of::<I>()) && (1..=16).contains(&p));
        assert!(symbols.len() % MAX_LANES == 0);
        // Each vector emits at most 8 words and stores 8 at the current end.
        words.reserve(symbols.len() + ENC_PAD);
        let vt = e.vt.as_ptr().cast::<i64>();
        let kshift = _mm_cvtsi32_si128(32 - p as i32);
        let big_m = _mm256_set1_epi32(1 << p);
        let order = _mm256_loadu_si256(ENC_ORDER.as_ptr().cast());
        let xp = x.as_mut_ptr().cast::<__m256i>();
        // SAFETY: `x` is 32 u32s: four unaligned 32-byte vectors.
        let mut x0 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(xp), order);
        let mut x1 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(xp.add(1)), order);
        let mut x2 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(xp.add(2)), order);
        let mut x3 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(xp.add(3)), order);
        let wp = words.as_mut_ptr();
        let mut len = words.len();
        // SAFETY (words): capacity >= len + symbols.len() + 8 at the start; every vector
        // stores 8 u16s at wp + len and then adds at most 8 to len, its lanes' symbol count,
        // so every store ends within the capacity.
        for step in symbols.chunks_exact(MAX_LANES).rev() {
            let sp = step.as_ptr();
            // SAFETY: step holds 32 symbols.
            len += enc8(&mut x3, sp.add(24), vt, kshift, big_m, wp.add(len));
            len += enc8(&mut x2, sp.add(16), vt, kshift, big_m, wp.add(len));
            len += enc8(&mut x1, sp.add(8), vt, kshift, big_m, wp.add(len));
            len += enc8(&mut x0, sp.add(0), vt, kshift, big_m, wp.add(len));
        }
        // SAFETY: the first `len` u16s of the buffer are initialized: the ones before are
        // `words`' own, the new ones were stored by `enc8` (the emitting lanes' words come
        // first in each store) and len <= capacity.
        words.set_len(len);
        _mm256_storeu_si256(xp, _mm256_permutevar8x32_epi32(x0, order));
        _mm256_storeu_si256(xp.add(1), _mm256_permutevar8x32_epi32(x1, order));
        _mm256_storeu_si256(xp.add(2), _mm256_permutevar8x32_epi32(x2, order));
        _mm256_storeu_si256(xp.add(3), _mm256_permutevar8x32_epi32(x3, order));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::freq::build_table;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Every kernel this machine runs (the portable one first, the reference of the others).
    fn kernels() -> Vec<Kernel> {
        let mut k = vec![Kernel::Portable];
        if Kernel::detect() != Kernel::Portable {
            k.push(Kernel::detect());
        }
        k
    }

    /// A random valid table at precision `p` over `alphabet` symbols, and its symbols.
    fn random_table(rng: &mut ChaCha8Rng, p: u8, alphabet: usize) -> FreqTable {
        let max_syms = alphabet.min(1 << p).min(600);
        let k = rng.gen_range(2..=max_syms.max(2));
        let mut counts = vec![0u64; alphabet];
        // Sometimes only small symbols (the packed decode table), sometimes anywhere.
        let span = if rng.gen_bool(0.5) {
            alphabet.min(256)
        } else {
            alphabet
        };
        let skew = rng.gen_range(0.0..3.0f64);
        let mut present = 0;
        while present < k {
            let s = rng.gen_range(0..span.max(k));
            if s < alphabet && counts[s] == 0 {
                counts[s] = 1 + (rng.gen::<f64>().powf(skew + 1.0) * 1e6) as u64;
                present += 1;
            }
        }
        build_table(&counts, Some(p)).unwrap()
    }

    /// `n` symbols drawn from the table's distribution (plus, if `absent`, a few symbols not in
    /// the table, which `put` still codes deterministically).
    fn random_symbols<S: Symbol>(
        rng: &mut ChaCha8Rng,
        t: &FreqTable,
        n: usize,
        absent: bool,
    ) -> Vec<S> {
        let cum = t.cum_freqs();
        (0..n)
            .map(|_| {
                if absent && rng.gen_bool(0.05) {
                    return S::from_index(rng.gen_range(0..1u32 << (8 * S::BYTES)));
                }
                let r = rng.gen_range(0..1u32 << t.precision_bits);
                let i = cum.partition_point(|&c| c <= r) - 1;
                S::from_index(t.symbols[i])
            })
            .collect()
    }

    #[test]
    fn div_magic_is_exact() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for f in 2u32..1 << 16 {
            let magic = div_magic(f);
            let l = 32 - (f - 1).leading_zeros();
            // The vector kernel's l - 1: the exponent of the float f - 1.
            assert_eq!(((f - 1) as f32).to_bits() >> 23, 127 + l - 1);
            let top = u32::MAX / f;
            let mut xs = vec![0u32, 1, f - 1, f, f + 1, u32::MAX, u32::MAX - 1];
            for k in [1, 2, 3, top / 2, top - 1, top] {
                xs.extend([
                    (k * f).wrapping_sub(1),
                    k * f,
                    (k * f).saturating_add(f - 1),
                ]);
            }
            xs.extend((0..24).map(|_| rng.gen::<u32>()));
            for x in xs {
                let t = ((u64::from(x) * u64::from(magic)) >> 32) as u32;
                let q = (t + ((x - t) >> 1)) >> (l - 1);
                assert_eq!(q, x / f, "x={x} f={f}");
            }
        }
    }

    fn check_encoders<S: Symbol>(rng: &mut ChaCha8Rng, alphabet: usize) {
        for p in 1..=16u8 {
            for _ in 0..6 {
                let t = random_table(rng, p, alphabet);
                let enc = Encoder::new(&t, alphabet);
                let dec = Decoder::new(&t);
                for &n in &[0usize, 1, 31, 32, 33, 64, 95, 1000, 4096 + 17] {
                    let lanes = 1 << rng.gen_range(0..=5);
                    for absent in [false, true] {
                        let data: Vec<S> = random_symbols(rng, &t, n, absent);
                        let want = enc.encode_chunk_with(Kernel::Portable, &data, lanes);
                        for k in kernels() {
                            let got = enc.encode_chunk_with(k, &data, lanes);
                            assert_eq!(got, want, "{k:?} p={p} n={n} lanes={lanes}");
                        }
                        if absent {
                            continue;
                        }
                        let bytes: Vec<u8> = want.1.iter().flat_map(|w| w.to_le_bytes()).collect();
                        for k in kernels() {
                            let mut out = vec![S::default(); n];
                            dec.decode_chunk_with(k, &want.0, &bytes, &mut out).unwrap();
                            assert!(out.iter().zip(&data).all(|(a, b)| a.index() == b.index()));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn one_lane_encodes_as_the_general_loop() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        for p in 1..=16u8 {
            for _ in 0..10 {
                let t = random_table(&mut rng, p, 256);
                for enc in [Encoder::new(&t, 256), Encoder::for_lanes(&t, 256, 1)] {
                    let n = rng.gen_range(0..3000);
                    let data: Vec<u8> = random_symbols(&mut rng, &t, n, true);
                    let got = enc.encode_chunk_with(Kernel::Portable, &data, 1);
                    let want = enc.encode_steps(Kernel::Portable, &data, 1);
                    assert_eq!(got, want, "p={p} n={n}");
                }
            }
        }
    }

    #[test]
    fn encoder_kernels_match_the_reference_u8() {
        check_encoders::<u8>(&mut ChaCha8Rng::seed_from_u64(2), 256);
    }

    #[test]
    fn encoder_kernels_match_the_reference_u16() {
        check_encoders::<u16>(&mut ChaCha8Rng::seed_from_u64(3), 1 << 16);
    }

    /// Runs `decode_fast` with `kernel` on `out.len()` symbols and returns what it did.
    fn fast<S: Symbol>(
        d: &Decoder,
        kernel: Kernel,
        x0: &[u32; MAX_LANES],
        words: &[u8],
        n: usize,
    ) -> (usize, [u32; MAX_LANES], usize, Vec<usize>) {
        let mut x = *x0;
        let mut pos = 0;
        let mut out = vec![S::default(); n];
        let done = d.decode_fast(kernel, &mut x, words, &mut pos, &mut out);
        let out = out[..done].iter().map(|s| s.index()).collect();
        (done, x, pos, out)
    }

    fn check_decoders<S: Symbol>(rng: &mut ChaCha8Rng, alphabet: usize) {
        for p in 1..=16u8 {
            for _ in 0..6 {
                let t = random_table(rng, p, alphabet);
                let mut decoders = vec![Decoder::new(&t)];
                if !decoders[0].packed.is_empty() {
                    // The same table through the two-table path.
                    let mut d = Decoder::new(&t);
                    d.packed = Vec::new();
                    decoders.push(d);
                }
                for d in &decoders {
                    for &n in &[0usize, 1, 31, 32, 33, 64, 100, 1000, 4096 + 17] {
                        // Arbitrary states and words: every state >= 2^16 decodes somewhere.
                        let x0: [u32; MAX_LANES] =
                            std::array::from_fn(|_| rng.gen_range(RANS_L..=u32::MAX));
                        let len = rng.gen_range(0..=2 * n + 80);
                        let words: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                        // The reference: the checked decoder, as far as the fast one went.
                        let want = fast::<S>(d, Kernel::Portable, &x0, &words, n);
                        let mut x = x0;
                        let mut pos = 0;
                        let mut out = vec![S::default(); want.0];
                        d.decode_checked(&mut x, &words, &mut pos, &mut out)
                            .unwrap();
                        let out: Vec<usize> = out.iter().map(|s| s.index()).collect();
                        assert_eq!((want.0, x, pos, out), want, "p={p} n={n}");
                        assert!(want.0 == n - n % 32 || words.len() / 2 - want.2 < 32);
                        for k in kernels() {
                            assert_eq!(fast::<S>(d, k, &x0, &words, n), want, "{k:?} p={p} n={n}");
                        }
                        // Whole chunks, with any lane count: same result, same symbols.
                        let lanes = 1 << rng.gen_range(0..=5);
                        let mut ref_out = vec![S::default(); n];
                        let r = d.decode_chunk_with(
                            Kernel::Portable,
                            &x0[..lanes],
                            &words,
                            &mut ref_out,
                        );
                        for k in kernels() {
                            let mut out = vec![S::default(); n];
                            let got = d.decode_chunk_with(k, &x0[..lanes], &words, &mut out);
                            assert_eq!(got, r);
                            assert!(out
                                .iter()
                                .zip(&ref_out)
                                .all(|(a, b)| a.index() == b.index()));
                        }
                    }
                }
            }
        }
    }

    /// Two chunks decoded as a pair give what each gives alone: symbols and result, for valid
    /// chunks of any lengths and for arbitrary states and words.
    fn check_pairs<S: Symbol>(rng: &mut ChaCha8Rng, alphabet: usize) {
        for p in [1u8, 5, 8, 11, 12, 13, 16] {
            for _ in 0..4 {
                let t = random_table(rng, p, alphabet);
                let enc = Encoder::new(&t, alphabet);
                let mut decoders = vec![Decoder::new(&t)];
                if !decoders[0].packed.is_empty() {
                    let mut d = Decoder::new(&t);
                    d.packed = Vec::new();
                    decoders.push(d);
                }
                for d in &decoders {
                    for _ in 0..6 {
                        let mut chunk = || -> (Vec<u32>, Vec<u8>, usize) {
                            let n = [0usize, 1, 32, 33, 100, 1000, 5000][rng.gen_range(0..7)];
                            let lanes = if rng.gen_bool(0.8) {
                                32
                            } else {
                                1 << rng.gen_range(0..5)
                            };
                            if rng.gen_bool(0.7) {
                                let data: Vec<S> = random_symbols(rng, &t, n, false);
                                let (st, w) = enc.encode_chunk(&data, lanes);
                                let mut bytes: Vec<u8> =
                                    w.iter().flat_map(|w| w.to_le_bytes()).collect();
                                if rng.gen_bool(0.2) && !bytes.is_empty() {
                                    let i = rng.gen_range(0..bytes.len());
                                    bytes[i] ^= 1 << rng.gen_range(0..8);
                                }
                                (st, bytes, n)
                            } else {
                                let st = (0..lanes)
                                    .map(|_| rng.gen_range(RANS_L - 3..=u32::MAX))
                                    .collect();
                                let len = rng.gen_range(0..=2 * n + 80);
                                (st, (0..len).map(|_| rng.gen()).collect(), n)
                            }
                        };
                        let (sa, wa, na) = chunk();
                        let (sb, wb, nb) = chunk();
                        let mut want_a = vec![S::default(); na];
                        let mut want_b = vec![S::default(); nb];
                        let ra = d.decode_chunk_with(Kernel::Portable, &sa, &wa, &mut want_a);
                        let rb = d.decode_chunk_with(Kernel::Portable, &sb, &wb, &mut want_b);
                        for k in kernels() {
                            let mut oa = vec![S::default(); na];
                            let mut ob = vec![S::default(); nb];
                            let got = d.decode_chunk_pair_with(
                                k,
                                (&sa, &wa, &mut oa),
                                (&sb, &wb, &mut ob),
                            );
                            assert_eq!(got, (ra.clone(), rb.clone()), "{k:?} p={p}");
                            if ra.is_ok() {
                                assert!(oa
                                    .iter()
                                    .zip(&want_a)
                                    .all(|(a, b)| a.index() == b.index()));
                            }
                            if rb.is_ok() {
                                assert!(ob
                                    .iter()
                                    .zip(&want_b)
                                    .all(|(a, b)| a.index() == b.index()));
                            }
                        }
                    }
                }
            }
        }
    }

    /// A chunk decoded in pieces (alone or paired) gives what it gives whole.
    #[test]
    fn pieces_decode_as_whole_chunks() {
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        for p in [4u8, 8, 11, 12, 15] {
            let t = random_table(&mut rng, p, 256);
            let enc = Encoder::new(&t, 256);
            let d = Decoder::new(&t);
            for _ in 0..20 {
                let n = rng.gen_range(0..20_000);
                let lanes = if rng.gen_bool(0.7) {
                    32
                } else {
                    1 << rng.gen_range(0..5)
                };
                let data: Vec<u8> = random_symbols(&mut rng, &t, n, false);
                let (st, w) = enc.encode_chunk(&data, lanes);
                let mut bytes: Vec<u8> = w.iter().flat_map(|w| w.to_le_bytes()).collect();
                if rng.gen_bool(0.3) && !bytes.is_empty() {
                    let i = rng.gen_range(0..bytes.len());
                    bytes[i] ^= 1 << rng.gen_range(0..8);
                }
                let mut whole = vec![0u8; n];
                let want = d.decode_chunk(&st, &bytes, &mut whole);
                let piece = 32 * rng.gen_range(1..200);
                for k in kernels() {
                    let mut got = vec![0u8; n];
                    let r = (|| {
                        let mut c = d.start(&st, &bytes)?;
                        for o in got.chunks_mut(piece) {
                            d.piece_with(k, &mut c, o, 0)?;
                        }
                        d.end(&c)
                    })();
                    assert_eq!(r, want, "{k:?} p={p} n={n} piece={piece}");
                    if r.is_ok() {
                        assert_eq!(got, whole);
                    }
                    // Paired with itself, piece by piece.
                    let (mut ga, mut gb) = (vec![0u8; n], vec![0u8; n]);
                    let (mut ca, mut cb) =
                        (d.start(&st, &bytes).unwrap(), d.start(&st, &bytes).unwrap());
                    let (mut ra, mut rb) = (Ok(()), Ok(()));
                    for (oa, ob) in ga.chunks_mut(piece).zip(gb.chunks_mut(piece)) {
                        let (x, y) = d.piece_pair_with(k, (&mut ca, oa), (&mut cb, ob));
                        (ra, rb) = (ra.and(x), rb.and(y));
                    }
                    let ra = ra.and_then(|_| d.end(&ca));
                    let rb = rb.and_then(|_| d.end(&cb));
                    assert_eq!((ra.clone(), rb), (want.clone(), want.clone()));
                    if ra.is_ok() {
                        assert!(ga == whole && gb == whole);
                    }
                }
            }
        }
    }

    #[test]
    fn pairs_decode_as_single_chunks_u8() {
        check_pairs::<u8>(&mut ChaCha8Rng::seed_from_u64(7), 256);
    }

    #[test]
    fn pairs_decode_as_single_chunks_u16() {
        check_pairs::<u16>(&mut ChaCha8Rng::seed_from_u64(8), 1 << 16);
    }

    /// The one-lane loop against the general one, on valid and arbitrary chunks.
    #[test]
    fn one_lane_decodes_as_the_general_loop() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for p in 1..=16u8 {
            for _ in 0..20 {
                let t = random_table(&mut rng, p, 256);
                let enc = Encoder::new(&t, 256);
                let d = Decoder::new(&t);
                let n = rng.gen_range(0..3000);
                let (st, bytes) = if rng.gen_bool(0.5) {
                    let data: Vec<u8> = random_symbols(&mut rng, &t, n, false);
                    let (st, w) = enc.encode_chunk(&data, 1);
                    let mut b: Vec<u8> = w.iter().flat_map(|w| w.to_le_bytes()).collect();
                    if rng.gen_bool(0.3) {
                        b.truncate(rng.gen_range(0..=b.len()));
                    }
                    (st[0], b)
                } else {
                    let len = rng.gen_range(0..=n);
                    (
                        rng.gen_range(RANS_L..=u32::MAX),
                        (0..len).map(|_| rng.gen()).collect(),
                    )
                };
                let (mut x1, mut p1, mut o1) = ([st], 0, vec![0u8; n]);
                let r1 = d.decode_checked(&mut x1, &bytes, &mut p1, &mut o1);
                let (mut x2, mut p2, mut o2) = ([st], 0, vec![0u8; n]);
                let r2 = d.decode_checked_lanes(&mut x2, &bytes, &mut p2, &mut o2);
                assert_eq!(r1, r2, "p={p} n={n}");
                if r1.is_ok() {
                    assert_eq!((x1, p1, &o1), (x2, p2, &o2));
                }
            }
        }
    }

    #[test]
    fn decoder_kernels_match_the_reference_u8() {
        check_decoders::<u8>(&mut ChaCha8Rng::seed_from_u64(4), 256);
    }

    #[test]
    fn decoder_kernels_match_the_reference_u16() {
        check_decoders::<u16>(&mut ChaCha8Rng::seed_from_u64(5), 1 << 16);
    }

    #[test]
    fn histograms_count_every_symbol() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        for n in [
            0usize,
            1,
            7,
            8,
            9,
            1000,
            (1 << 18) - 1,
            1 << 18,
            (1 << 18) + 3,
        ] {
            // Mostly zeros (runs), the rest anywhere.
            let wide: Vec<u16> = (0..n)
                .map(|_| if rng.gen_bool(0.7) { 0 } else { rng.gen() })
                .collect();
            let bytes: Vec<u8> = wide.iter().map(|&w| w as u8).collect();
            let mut want8 = vec![0u64; 256];
            bytes.iter().for_each(|&b| want8[b as usize] += 1);
            let mut want16 = vec![0u64; 1 << 16];
            wide.iter().for_each(|&w| want16[w as usize] += 1);
            assert_eq!(u8::histogram(&bytes), want8, "n={n}");
            assert_eq!(u16::histogram(&wide), want16, "n={n}");
        }
    }

    #[test]
    fn bad_lane_counts_are_errors() {
        let t = build_table(&[3, 1], Some(4)).unwrap();
        let d = Decoder::new(&t);
        let mut out = [0u8; 8];
        assert!(d.decode_chunk(&[], &[], &mut out).is_err());
        assert!(d.decode_chunk(&[RANS_L; 33], &[], &mut out).is_err());
    }
}
