//! The context coder (feature mode 2, FORMAT.md 6.11): quantization codes of at most 8 bits,
//! each coded by one rANS state with an adaptive frequency table chosen by its left and upper
//! neighbours.
//!
//! Why: a small feature map sent per image pays for a static table in every blob, and an
//! order-0 table ignores that ReLU maps come in spatial runs (a zero's neighbours are mostly
//! zero). Adaptive tables cost no bytes, and conditioning on two neighbours cuts the order-0
//! size by 15-40% on Fashion-MNIST and EfficientNet activations (benches/NOTES.md).
//!
//! The price is speed: one state, a serial model update per element; tens of MB/s rather than
//! the GB/s of the interleaved static coder. It is used when asked for (`mode="context"`) or when
//! `mode="best"` finds it smaller.

use crate::bytes::{put_u16, put_u32, Reader};
use crate::error::{corrupt, Result};
use crate::quant::Channels;

/// Frequencies of every adaptive table sum to `2^PROB_BITS`.
pub const PROB_BITS: u32 = 15;
const LOWER: u32 = 1 << 16;
/// Tokens: the folded code itself up to 4 bits; above, a bucket of it (`bucket`).
const MAX_TOKENS: usize = 16;
/// Up to this many bits the token is the folded code itself.
const DIRECT_BITS: u8 = 4;
/// Neighbour classes: folded value 0, 1, 2 or more.
const CLASSES: usize = 3;
const CONTEXTS: usize = CLASSES * CLASSES;
/// The largest code the context coder takes.
pub const MAX_BITS: u8 = 8;

/// Where an element's neighbours are: the last axis is a row of `width` elements, the one
/// before it has `height` rows (1 for tensors of fewer than two dimensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub width: usize,
    pub height: usize,
}

impl Geometry {
    pub fn of(shape: &[usize]) -> Geometry {
        let n = shape.len();
        Geometry {
            width: if n >= 1 { shape[n - 1].max(1) } else { 1 },
            height: if n >= 2 { shape[n - 2].max(1) } else { 1 },
        }
    }
}

/// The folding of code `q` around zero point `z` (levels `l`): 0 for `z`, then alternately
/// above and below (`z+1, z-1, z+2, …`) while both sides have room, then the longer side.
#[inline]
pub fn fold(q: i32, z: i32, l: i32) -> u32 {
    let d = q - z;
    let m = z.min(l - z);
    let a = d.abs();
    (if a <= m {
        2 * a - i32::from(d > 0)
    } else {
        m + a
    }) as u32
}

/// The inverse of `fold`; `u` must be at most `l`.
#[inline]
pub fn unfold(u: u32, z: i32, l: i32) -> i32 {
    let u = u as i32;
    let m = z.min(l - z);
    if u <= 2 * m {
        let a = (u + 1) / 2;
        if u % 2 == 1 {
            z + a
        } else {
            z - a
        }
    } else if l - z > z {
        z + (u - m)
    } else {
        z - (u - m)
    }
}

/// The bucket of a folded code `u` (codes of 5..8 bits): `u` itself below 4; above, two
/// buckets per power of two, `[2^k, 1.5·2^k)` and `[1.5·2^k, 2^(k+1))`, token `2k` or `2k+1`,
/// whose position inside the bucket follows as `k - 1` equiprobable bits.
/// Returns (token, offset bits, offset).
#[inline]
fn bucket(u: u32) -> (usize, u32, u32) {
    if u < 4 {
        return (u as usize, 0, 0);
    }
    let k = 31 - u.leading_zeros();
    let half = (u >> (k - 1)) & 1;
    let base = (2 + half) << (k - 1);
    ((2 * k + half) as usize, k - 1, u - base)
}

/// The first code of bucket `token` and the number of offset bits.
#[inline]
fn bucket_start(token: usize) -> (u32, u32) {
    if token < 4 {
        return (token as u32, 0);
    }
    let k = token as u32 / 2;
    let half = token as u32 % 2;
    ((2 + half) << (k - 1), k - 1)
}

struct Model {
    freqs: [[u16; MAX_TOKENS]; CONTEXTS],
    counts: [u16; CONTEXTS],
    tokens: usize,
}

impl Model {
    fn new(tokens: usize) -> Model {
        let f = (1u32 << PROB_BITS) / tokens as u32;
        let mut row = [0u16; MAX_TOKENS];
        row[..tokens].fill(f as u16);
        row[0] += ((1u32 << PROB_BITS) - f * tokens as u32) as u16;
        Model {
            freqs: [row; CONTEXTS],
            counts: [0; CONTEXTS],
            tokens,
        }
    }

    /// (start, frequency) of token `t` in context `c`.
    #[inline]
    fn interval(&self, c: usize, t: usize) -> (u32, u32) {
        let f = &self.freqs[c];
        let start: u32 = f[..t].iter().map(|&v| v as u32).sum();
        (start, f[t] as u32)
    }

    /// The token whose interval holds `slot`, with its (start, frequency).
    #[inline]
    fn find(&self, c: usize, slot: u32) -> (usize, u32, u32) {
        let f = &self.freqs[c];
        let mut start = 0u32;
        for (t, &v) in f[..self.tokens - 1].iter().enumerate() {
            let next = start + v as u32;
            if slot < next {
                return (t, start, v as u32);
            }
            start = next;
        }
        (self.tokens - 1, start, f[self.tokens - 1] as u32)
    }

    /// Moves a share `2^-rate` of every other token's frequency to `t`; the rate slows as the
    /// context sees more elements. Every frequency stays ≥ 1 and the sum stays `2^PROB_BITS`.
    #[inline]
    fn update(&mut self, c: usize, t: usize) {
        let n = self.counts[c];
        let rate = if n < 32 {
            4
        } else if n < 256 {
            5
        } else {
            6
        };
        self.counts[c] = n.saturating_add(1).min(256);
        let f = &mut self.freqs[c];
        let mut moved = 0u16;
        for v in f[..self.tokens].iter_mut() {
            let d = *v >> rate;
            *v -= d;
            moved += d;
        }
        f[t] += moved;
    }
}

#[inline]
fn class(u: u8) -> usize {
    (u as usize).min(CLASSES - 1)
}

/// The neighbour context of element `i` from the folded values before it.
#[inline]
fn context(u: &[u8], i: usize, g: Geometry) -> usize {
    let col = i % g.width;
    let row = (i / g.width) % g.height;
    let left = if col > 0 { class(u[i - 1]) } else { 0 };
    let up = if row > 0 { class(u[i - g.width]) } else { 0 };
    CLASSES * left + up
}

/// `2^bits` direct tokens up to 4 bits, `2·bits` buckets above (the last holds `2^bits - 1`).
fn tokens_for(bits: u8) -> usize {
    if bits <= DIRECT_BITS {
        1 << bits
    } else {
        2 * bits as usize
    }
}

/// Codes `q` (C order, every code ≤ `2^bits - 1`, `bits` ≤ 8) with the channels' zero points:
/// the body of a mode-2 feature record (u32 state, then 16-bit words).
pub fn encode(q: &[u8], zero_points: &[i32], ch: Channels, g: Geometry, bits: u8) -> Vec<u8> {
    debug_assert!(bits <= MAX_BITS);
    let l = (1i32 << bits) - 1;
    let tokens = tokens_for(bits);
    let mut model = Model::new(tokens);
    let mut folded = vec![0u8; q.len()];
    // (start, frequency) of every decision in decode order; coded in reverse.
    let mut decisions: Vec<(u16, u16)> = Vec::with_capacity(q.len());
    const HALF: (u16, u16) = (0, 1 << (PROB_BITS - 1));
    for i in 0..q.len() {
        let z = zero_points[ch.of(i)];
        let u = fold(q[i] as i32, z, l);
        folded[i] = u as u8;
        let c = context(&folded, i, g);
        let (t, extra, offset) = if bits <= DIRECT_BITS {
            (u as usize, 0, 0)
        } else {
            bucket(u)
        };
        let (start, freq) = model.interval(c, t);
        decisions.push((start as u16, freq as u16));
        model.update(c, t);
        // The offset inside the bucket, most significant bit first, at probability 1/2.
        for b in (0..extra).rev() {
            let bit = (offset >> b) & 1;
            decisions.push(((bit << (PROB_BITS - 1)) as u16, HALF.1));
        }
    }
    let mut x: u32 = LOWER;
    let mut words: Vec<u16> = Vec::with_capacity(q.len() / 4 + 4);
    for &(start, freq) in decisions.iter().rev() {
        let (start, freq) = (start as u32, freq as u32);
        let x_max = freq << (32 - PROB_BITS);
        while x >= x_max {
            words.push(x as u16);
            x >>= 16;
        }
        x = ((x / freq) << PROB_BITS) + (x % freq) + start;
    }
    let mut out = Vec::with_capacity(4 + 2 * words.len());
    put_u32(&mut out, x);
    for &w in words.iter().rev() {
        put_u16(&mut out, w);
    }
    out
}

struct Decoder<'a> {
    x: u32,
    words: Reader<'a>,
}

impl Decoder<'_> {
    #[inline]
    fn advance(&mut self, start: u32, freq: u32, slot: u32) -> Result<()> {
        self.x = freq * (self.x >> PROB_BITS) + slot - start;
        if self.x < LOWER {
            self.x = (self.x << 16) | self.words.u16("context word")? as u32;
        }
        Ok(())
    }

    #[inline]
    fn bit(&mut self) -> Result<u32> {
        let slot = self.x & ((1 << PROB_BITS) - 1);
        let bit = slot >> (PROB_BITS - 1);
        self.advance(bit << (PROB_BITS - 1), 1 << (PROB_BITS - 1), slot)?;
        Ok(bit)
    }
}

/// Decodes a mode-2 body into `out` (its length is the element count). Every malformed body is
/// Corrupt: a state out of range, a missing word, a code above `2^bits - 1`, words left over or
/// a final state other than the encoder's initial one.
pub fn decode(
    body: &[u8],
    zero_points: &[i32],
    ch: Channels,
    g: Geometry,
    bits: u8,
    out: &mut [u8],
) -> Result<()> {
    if bits > MAX_BITS {
        return Err(corrupt!("context mode with {bits}-bit codes"));
    }
    if body.len() < 4 || !body.len().is_multiple_of(2) {
        return Err(corrupt!(
            "context body of {} bytes (a u32 state and 16-bit words)",
            body.len()
        ));
    }
    let mut r = Reader::new(body);
    let x = r.u32("context state")?;
    if x < LOWER {
        return Err(corrupt!("context state {x} below 2^16"));
    }
    let mut d = Decoder { x, words: r };
    let l = (1i32 << bits) - 1;
    let tokens = tokens_for(bits);
    let mut model = Model::new(tokens);
    let mask = (1u32 << PROB_BITS) - 1;
    for i in 0..out.len() {
        let c = context(out, i, g);
        let slot = d.x & mask;
        let (t, start, freq) = model.find(c, slot);
        d.advance(start, freq, slot)?;
        model.update(c, t);
        let mut u = t as u32;
        if bits > DIRECT_BITS {
            let (base, extra) = bucket_start(t);
            let mut offset = 0u32;
            for _ in 0..extra {
                offset = (offset << 1) | d.bit()?;
            }
            u = base + offset;
        }
        // Every token covers codes <= l (FORMAT.md 6.11 Tokens; `buckets_cover_every_code_once`),
        // so a decoded value needs no range check.
        debug_assert!(u as i32 <= l);
        // `out` holds folded values while decoding (the contexts read them), codes at the end.
        out[i] = u as u8;
    }
    if d.x != LOWER || d.words.remaining() != 0 {
        return Err(corrupt!(
            "context body does not end where the encoder began ({} words left)",
            d.words.remaining() / 2
        ));
    }
    for (i, v) in out.iter_mut().enumerate() {
        *v = unfold(*v as u32, zero_points[ch.of(i)], l) as u8;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_token_decodes_past_the_code_range() {
        // Why `decode` needs no range check: the largest value of every token is <= l.
        for bits in 1..=MAX_BITS {
            let l = (1u32 << bits) - 1;
            for t in 0..tokens_for(bits) {
                let top = if bits <= DIRECT_BITS {
                    t as u32
                } else {
                    let (base, extra) = bucket_start(t);
                    base + (1 << extra) - 1
                };
                assert!(top <= l, "bits {bits} token {t}: {top}");
            }
        }
    }

    #[test]
    fn buckets_cover_every_code_once() {
        for bits in 5..=8u8 {
            let l = (1u32 << bits) - 1;
            assert_eq!(bucket(l).0, tokens_for(bits) - 1);
            for u in 0..=l {
                let (t, extra, offset) = bucket(u);
                assert!(offset < 1 << extra);
                assert_eq!(bucket_start(t), (u - offset, extra), "u {u}");
            }
        }
    }

    #[test]
    fn fold_is_a_bijection() {
        for bits in 1..=8u8 {
            let l = (1i32 << bits) - 1;
            for z in 0..=l {
                let mut seen = vec![false; (l + 1) as usize];
                for q in 0..=l {
                    let u = fold(q, z, l);
                    assert!(u as i32 <= l, "bits {bits} z {z} q {q} -> {u}");
                    assert!(!seen[u as usize]);
                    seen[u as usize] = true;
                    assert_eq!(unfold(u, z, l), q);
                }
                assert_eq!(fold(z, z, l), 0);
            }
        }
    }

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    #[test]
    fn round_trips_every_width_and_zero_point() {
        let mut seed = 7u64;
        for bits in 1..=8u8 {
            let l = (1u64 << bits) - 1;
            for &(n, w, h) in &[
                (0usize, 1usize, 1usize),
                (1, 1, 1),
                (37, 37, 1),
                (600, 10, 6),
            ] {
                let channels = Channels {
                    channels: 3,
                    inner: 7,
                };
                let zps: Vec<i32> = (0..3).map(|_| (lcg(&mut seed) % (l + 1)) as i32).collect();
                // Sparse, with runs, and some wide values.
                let q: Vec<u8> = (0..n)
                    .map(|i| {
                        let r = lcg(&mut seed);
                        if r.is_multiple_of(3) {
                            (r % (l + 1)) as u8
                        } else {
                            zps[channels.of(i)] as u8
                        }
                    })
                    .collect();
                let g = Geometry {
                    width: w,
                    height: h,
                };
                let body = encode(&q, &zps, channels, g, bits);
                let mut out = vec![0u8; n];
                decode(&body, &zps, channels, g, bits, &mut out).unwrap();
                assert_eq!(out, q, "bits {bits} n {n}");
                // Truncation and trailing words are refused.
                let mut short = vec![0u8; n];
                if body.len() > 4 {
                    assert!(
                        decode(&body[..body.len() - 2], &zps, channels, g, bits, &mut short)
                            .is_err()
                    );
                }
                let mut long = body.clone();
                long.extend_from_slice(&[0, 0]);
                assert!(decode(&long, &zps, channels, g, bits, &mut short).is_err());
            }
        }
    }

    #[test]
    fn neighbours_pay_off_on_runs() {
        // Blocks of zeros and of ones: the context coder must beat the order-0 entropy (1 bit).
        let g = Geometry {
            width: 64,
            height: 64,
        };
        let q: Vec<u8> = (0..4096)
            .map(|i| u8::from((i / 64 / 8 + i % 64 / 8) % 2 == 0))
            .collect();
        let body = encode(&q, &[0], Channels::TENSOR, g, 2);
        assert!(body.len() < 4096 / 8 / 2, "{} bytes", body.len());
    }
}
