//! Histograms and the integer-only quantization of a histogram to a rANS frequency table.
//!
//! Everything here is integer arithmetic with a fully specified tie-break, so that a CUDA
//! implementation (or any other) builds the identical table from the same histogram.
//! `docs/FORMAT.md` describes the same algorithm step by step.

use crate::bytes::{put_varint, Reader};
use crate::error::{corrupt, Result};

/// Highest precision: with 32-bit states and 16-bit renormalization words the coder needs
/// `precision_bits <= 16` so that one renormalization step per symbol always suffices.
pub const MAX_PRECISION_BITS: u8 = 16;

/// The encoder takes the smallest precision whose estimated size is within this fraction
/// (1/512, about 0.2%) of the size at `MAX_PRECISION_BITS`: smaller tables decode faster.
const PRECISION_SLACK_DENOM: u128 = 512;

/// A quantized frequency table: the present symbols in increasing order and their
/// frequencies, every one at least 1, summing to exactly `1 << precision_bits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreqTable {
    pub precision_bits: u8,
    pub symbols: Vec<u32>,
    pub freqs: Vec<u32>,
}

impl FreqTable {
    /// Cumulative frequencies aligned with `symbols`: `cum_freqs[i] = sum(freqs[..i])`.
    pub fn cum_freqs(&self) -> Vec<u32> {
        let mut acc = 0u32;
        self.freqs
            .iter()
            .map(|&f| {
                let c = acc;
                acc += f;
                c
            })
            .collect()
    }

    /// Appends the compact serialization: varint count, then per symbol a varint gap
    /// (`symbol - previous - 1`, previous starting at -1) and a varint `freq - 1`.
    pub fn write(&self, out: &mut Vec<u8>) {
        put_varint(out, self.symbols.len() as u32);
        let mut next = 0u32;
        for (&s, &f) in self.symbols.iter().zip(&self.freqs) {
            put_varint(out, s - next);
            put_varint(out, f - 1);
            next = s + 1;
        }
    }

    /// Reads and fully validates a table written by `write`.
    pub fn read(r: &mut Reader<'_>, precision_bits: u8, alphabet_limit: u32) -> Result<Self> {
        if precision_bits == 0 || precision_bits > MAX_PRECISION_BITS {
            return Err(corrupt!("precision_bits {precision_bits} outside 1..=16"));
        }
        let total = 1u64 << precision_bits;
        let count = r.varint("frequency table size")?;
        if count < 2 || u64::from(count) > total || count > alphabet_limit {
            return Err(corrupt!(
                "frequency table lists {count} symbols (needs 2..={} at precision {precision_bits})",
                total.min(u64::from(alphabet_limit))
            ));
        }
        // Each entry takes at least two bytes: reject a lying count before allocating for it.
        if count as usize > r.remaining() / 2 {
            return Err(corrupt!(
                "frequency table of {count} symbols runs past the data"
            ));
        }
        let mut symbols = Vec::with_capacity(count as usize);
        let mut freqs = Vec::with_capacity(count as usize);
        let mut next = 0u64;
        let mut sum = 0u64;
        for _ in 0..count {
            let sym = next + u64::from(r.varint("frequency table symbol")?);
            let freq = u64::from(r.varint("frequency table frequency")?) + 1;
            if sym >= u64::from(alphabet_limit) {
                return Err(corrupt!(
                    "frequency table symbol {sym} outside the alphabet"
                ));
            }
            sum += freq;
            if sum > total {
                return Err(corrupt!("frequencies sum past {total}"));
            }
            symbols.push(sym as u32);
            freqs.push(freq as u32);
            next = sym + 1;
        }
        if sum != total {
            return Err(corrupt!("frequencies sum to {sum}, not {total}"));
        }
        Ok(FreqTable {
            precision_bits,
            symbols,
            freqs,
        })
    }
}

/// Histogram of 8-bit symbols. Four sub-histograms hide the store-to-load dependency of
/// runs of equal bytes.
pub fn histogram_u8(symbols: &[u8]) -> Vec<u64> {
    let mut h = [[0u32; 256]; 4];
    // u32 counters are flushed every 2^30 symbols so they cannot overflow.
    let mut total = vec![0u64; 256];
    for block in symbols.chunks(1 << 30) {
        let mut quads = block.chunks_exact(4);
        for q in &mut quads {
            h[0][q[0] as usize] += 1;
            h[1][q[1] as usize] += 1;
            h[2][q[2] as usize] += 1;
            h[3][q[3] as usize] += 1;
        }
        for &s in quads.remainder() {
            h[0][s as usize] += 1;
        }
        for (i, t) in total.iter_mut().enumerate() {
            *t += u64::from(h[0][i]) + u64::from(h[1][i]) + u64::from(h[2][i]) + u64::from(h[3][i]);
        }
        h = [[0u32; 256]; 4];
    }
    total
}

/// Histogram of 16-bit symbols.
pub fn histogram_u16(symbols: &[u16]) -> Vec<u64> {
    let mut h = vec![0u64; 1 << 16];
    for &s in symbols {
        h[s as usize] += 1;
    }
    h
}

/// Quantizes `counts` (indexed by symbol) to frequencies summing to `1 << precision_bits`.
///
/// Largest-remainder apportionment with a floor of one: walking the present symbols from the
/// rarest, each symbol whose proportional share of the budget left is below one gets exactly
/// one and leaves the pool; every other symbol gets the floor of its share, and the units left
/// over go one each to the largest remainders (ties to the smaller symbol). Returns `None` when
/// fewer than two symbols are present or there are more than `1 << precision_bits`.
pub fn quantize(counts: &[u64], precision_bits: u8) -> Option<FreqTable> {
    let total = 1u64 << precision_bits;
    let mut present: Vec<(u64, u32)> = counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(s, &c)| (c, s as u32))
        .collect();
    if present.len() < 2 || present.len() as u64 > total {
        return None;
    }
    let mut freq_of: Vec<(u32, u32)> = Vec::with_capacity(present.len()); // (symbol, freq)
                                                                          // Rarest first; among equal counts the order does not change the result.
    present.sort_unstable();
    let mut budget = u128::from(total);
    let mut mass: u128 = present.iter().map(|&(c, _)| u128::from(c)).sum();
    let mut first_free = 0;
    for &(c, s) in &present {
        if u128::from(c) * budget >= mass {
            break;
        }
        freq_of.push((s, 1));
        budget -= 1;
        mass -= u128::from(c);
        first_free += 1;
    }
    let rest = &present[first_free..];
    if !rest.is_empty() {
        let mut shares: Vec<(u128, u32, u32)> = Vec::with_capacity(rest.len()); // (rem, sym, freq)
        let mut given: u128 = 0;
        for &(c, s) in rest {
            let scaled = u128::from(c) * budget;
            let f = scaled / mass;
            given += f;
            shares.push((scaled % mass, s, f as u32));
        }
        let left = (budget - given) as usize;
        if left > 0 {
            // Largest remainder first, smaller symbol first among equal remainders. Keys are
            // unique (symbols are), so any selection algorithm gives the same set.
            let key =
                |a: &(u128, u32, u32), b: &(u128, u32, u32)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
            if left < shares.len() {
                shares.select_nth_unstable_by(left - 1, key);
            }
            for sh in shares.iter_mut().take(left) {
                sh.2 += 1;
            }
        }
        freq_of.extend(shares.iter().map(|&(_, s, f)| (s, f)));
    }
    freq_of.sort_unstable();
    Some(FreqTable {
        precision_bits,
        symbols: freq_of.iter().map(|&(s, _)| s).collect(),
        freqs: freq_of.iter().map(|&(_, f)| f).collect(),
    })
}

/// `log2(v)` in 16.16 fixed point, for `v >= 1`, by repeated squaring: integer-only and exact
/// to the bit on every platform, so encoders that choose a precision with it agree.
pub fn log2_fixed(v: u32) -> u64 {
    debug_assert!(v >= 1);
    let e = 31 - v.leading_zeros();
    let mut m = u64::from(v) << (31 - e); // 1.m with 31 fraction bits, in [2^31, 2^32)
    let mut r = u64::from(e) << 16;
    for bit in (0..16).rev() {
        m = (m * m) >> 31;
        if m >= 1 << 32 {
            m >>= 1;
            r |= 1 << bit;
        }
    }
    r
}

/// Estimated size of coding `counts` with `table`, in 1/65536 bits: payload bits from the
/// order-0 code lengths plus eight bits per serialized table byte.
pub fn cost_fixed(counts: &[u64], table: &FreqTable) -> u128 {
    let p = u64::from(table.precision_bits) << 16;
    let mut cost: u128 = 0;
    for (&s, &f) in table.symbols.iter().zip(&table.freqs) {
        cost += u128::from(counts[s as usize]) * u128::from(p - log2_fixed(f));
    }
    let mut buf = Vec::new();
    table.write(&mut buf);
    cost + (buf.len() as u128) * 8 * 65536
}

/// Chooses the precision and builds the table: the smallest precision, from the least that
/// can hold every present symbol up to 16, whose estimated cost is within 1/512 of the cost at
/// 16 bits. Returns `None` when fewer than two symbols are present.
pub fn build_table(counts: &[u64], precision_bits: Option<u8>) -> Option<FreqTable> {
    if let Some(p) = precision_bits {
        return quantize(counts, p);
    }
    let present = counts.iter().filter(|&&c| c > 0).count() as u64;
    if present < 2 {
        return None;
    }
    let min_bits = (64 - (present - 1).leading_zeros()) as u8; // ceil(log2(present))
    let best = quantize(counts, MAX_PRECISION_BITS)?;
    let best_cost = cost_fixed(counts, &best);
    for p in min_bits.max(1)..MAX_PRECISION_BITS {
        if let Some(t) = quantize(counts, p) {
            if cost_fixed(counts, &t) * PRECISION_SLACK_DENOM
                <= best_cost * (PRECISION_SLACK_DENOM + 1)
            {
                return Some(t);
            }
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_fixed_matches_float() {
        for v in [1u32, 2, 3, 5, 7, 100, 4095, 4096, 65535, 65536, u32::MAX] {
            let exact = (v as f64).log2() * 65536.0;
            let got = log2_fixed(v) as f64;
            assert!((exact - got).abs() <= 2.0, "v={v} exact={exact} got={got}");
        }
    }

    #[test]
    fn quantize_sums_and_floors() {
        let mut counts = vec![0u64; 300];
        counts[0] = 1_000_000;
        counts[1] = 1;
        counts[299] = 3;
        counts[7] = 500;
        for p in 2..=16 {
            let t = quantize(&counts, p).unwrap();
            assert_eq!(t.freqs.iter().map(|&f| u64::from(f)).sum::<u64>(), 1 << p);
            assert!(t.freqs.iter().all(|&f| f >= 1));
            assert_eq!(t.symbols, vec![0, 1, 7, 299]);
        }
    }

    #[test]
    fn quantize_is_proportional_when_exact() {
        let counts = vec![1u64, 1, 2, 4];
        let t = quantize(&counts, 3).unwrap();
        assert_eq!(t.freqs, vec![1, 1, 2, 4]);
    }

    #[test]
    fn quantize_full_alphabet() {
        let counts = vec![7u64; 1 << 16];
        let t = quantize(&counts, 16).unwrap();
        assert!(t.freqs.iter().all(|&f| f == 1));
        assert!(quantize(&counts, 15).is_none());
    }

    #[test]
    fn table_serialization_round_trips() {
        let mut counts = vec![0u64; 65536];
        for (i, c) in counts.iter_mut().enumerate().step_by(97) {
            *c = (i as u64 % 13) + 1;
        }
        let t = build_table(&counts, None).unwrap();
        let mut buf = Vec::new();
        t.write(&mut buf);
        let back = FreqTable::read(&mut Reader::new(&buf), t.precision_bits, 1 << 16).unwrap();
        assert_eq!(back, t);
    }
}
