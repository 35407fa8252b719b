//! The interleaved rANS coder for one chunk: 32-bit states, 16-bit renormalization words,
//! up to 32 lanes sharing one word stream in the order the decoder consumes it.
//!
//! Symbol `j` of a chunk belongs to lane `j % lanes`, step `j / lanes`. The decoder runs the
//! steps in order and, within a step, the lanes in increasing order; a lane that needs a word
//! after decoding its symbol takes the next word of the chunk. The encoder therefore runs the
//! steps backwards and the lanes in decreasing order, and reverses its words at the end. This is
//! the layout a warp decodes with one ballot per step.

use crate::error::{corrupt, Result};
use crate::freq::FreqTable;

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
}

impl Encoder {
    pub fn new(t: &FreqTable, alphabet: usize) -> Self {
        let p = u32::from(t.precision_bits);
        let mut table = vec![EncSymbol::default(); alphabet];
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
        Encoder { table }
    }

    /// Encodes `sym` into state `x`; the word a renormalization emits goes to `buf[*pos - 1]`
    /// (written unconditionally, kept only when needed: branch-free, since whether a lane
    /// renormalizes is unpredictable).
    #[inline(always)]
    fn put(&self, x: &mut u32, sym: usize, buf: &mut [u16], pos: &mut usize) {
        let e = &self.table[sym];
        let need = *x >= e.x_max;
        buf[*pos - 1] = *x as u16;
        *pos -= usize::from(need);
        let xr = if need { *x >> 16 } else { *x };
        let q = ((u128::from(e.rcp) * u128::from(xr)) >> 64) as u32 | (xr & e.one_mask);
        *x = xr
            .wrapping_add(e.cum_freq)
            .wrapping_add(q.wrapping_mul(e.cmpl_freq));
    }

    /// Encodes one chunk; returns the final states (the decoder's initial states) and the words
    /// in the order the decoder reads them. Every symbol must be in the table.
    pub fn encode_chunk<S: Symbol>(&self, symbols: &[S], lanes: usize) -> (Vec<u32>, Vec<u16>) {
        let mut x = [RANS_L; MAX_LANES];
        // At most one word per symbol; words fill the buffer from the end, so they come out in
        // the decoder's order without a reversal.
        let mut buf = vec![0u16; symbols.len() + 1];
        let mut pos = buf.len();
        let tail = symbols.len() % lanes;
        let full = symbols.len() - tail;
        for l in (0..tail).rev() {
            self.put(&mut x[l], symbols[full + l].index(), &mut buf, &mut pos);
        }
        if lanes == MAX_LANES {
            for step in symbols[..full].chunks_exact(MAX_LANES).rev() {
                for l in (0..MAX_LANES).rev() {
                    self.put(&mut x[l], step[l].index(), &mut buf, &mut pos);
                }
            }
        } else {
            for step in symbols[..full].chunks_exact(lanes).rev() {
                for l in (0..lanes).rev() {
                    self.put(&mut x[l], step[l].index(), &mut buf, &mut pos);
                }
            }
        }
        buf.drain(..pos);
        (x[..lanes].to_vec(), buf)
    }
}

/// One decode-table slot: `x' = freq * (x >> p) + bias` with `bias = slot - cum_freq`.
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct DecSlot {
    freq: u16,
    bias: u16,
    sym: u16,
}

pub struct Decoder {
    precision_bits: u32,
    slots: Vec<DecSlot>,
}

impl Decoder {
    pub fn new(t: &FreqTable) -> Self {
        let mut slots = Vec::with_capacity(1 << t.precision_bits);
        for (&s, &f) in t.symbols.iter().zip(&t.freqs) {
            // freq < 2^16: a table has at least two symbols, so no freq reaches 2^precision.
            for i in 0..f {
                slots.push(DecSlot {
                    freq: f as u16,
                    bias: i as u16,
                    sym: s as u16,
                });
            }
        }
        Decoder {
            precision_bits: u32::from(t.precision_bits),
            slots,
        }
    }

    #[inline(always)]
    fn step(&self, x: &mut u32) -> u16 {
        let mask = (1u32 << self.precision_bits) - 1;
        let e = self.slots[(*x & mask) as usize];
        *x = u32::from(e.freq) * (*x >> self.precision_bits) + u32::from(e.bias);
        e.sym
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
        let lanes = states.len();
        let mut x = [RANS_L; MAX_LANES];
        for (l, &s) in states.iter().enumerate() {
            if s < RANS_L {
                return Err(corrupt!("rANS state {s:#x} of lane {l} below 2^16"));
            }
            x[l] = s;
        }
        let n_words = words.len() / 2;
        let mut pos = 0usize;
        for step in out.chunks_mut(lanes) {
            if step.len() == MAX_LANES && n_words - pos >= MAX_LANES {
                // Fast path: a full step reads at most one word per lane, so no bounds checks;
                // branch-free renormalization, since whether a lane reads is unpredictable.
                let w: &[u8; 2 * MAX_LANES] =
                    match words[2 * pos..2 * pos + 2 * MAX_LANES].try_into() {
                        Ok(w) => w,
                        Err(_) => return Err(corrupt!("rANS chunk ran out of words")),
                    };
                // Decode every lane first (independent chains), then renormalize: only the
                // running word count links the lanes.
                for l in 0..MAX_LANES {
                    step[l] = S::from_index(u32::from(self.step(&mut x[l])));
                }
                let mut k = 0usize;
                for xl in x.iter_mut() {
                    let need = *xl < RANS_L;
                    let i = 2 * (k & (MAX_LANES - 1));
                    let word = u32::from(u16::from_le_bytes([w[i], w[i + 1]]));
                    *xl = if need { (*xl << 16) | word } else { *xl };
                    k += usize::from(need);
                }
                pos += k;
            } else {
                for (l, o) in step.iter_mut().enumerate() {
                    *o = S::from_index(u32::from(self.step(&mut x[l])));
                    if x[l] < RANS_L {
                        if pos >= n_words {
                            return Err(corrupt!("rANS chunk ran out of words"));
                        }
                        let word = u16::from_le_bytes([words[2 * pos], words[2 * pos + 1]]);
                        x[l] = (x[l] << 16) | u32::from(word);
                        pos += 1;
                    }
                }
            }
        }
        if pos != n_words {
            return Err(corrupt!("rANS chunk has {} unread words", n_words - pos));
        }
        if x[..lanes].iter().any(|&s| s != RANS_L) {
            return Err(corrupt!("rANS chunk does not end in the initial state"));
        }
        Ok(())
    }
}
