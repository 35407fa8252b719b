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
/// (1/4096, about 0.025%) of the size at `MAX_PRECISION_BITS`: smaller tables decode faster,
/// but not at a visible cost in size.
const PRECISION_SLACK_DENOM: u128 = 4096;

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

    /// Appends the compact serialization: varint count, the present symbols as runs (varint
    /// run count, then per run a varint gap from the end of the previous run and a varint
    /// length - 1), one byte `k`, then every frequency minus one as an order-k Exp-Golomb code
    /// in a bit stream (least significant bit of each byte first, zero-padded to a byte), with
    /// the `k` in 0..=15 that makes the stream shortest (ties: the smallest).
    pub fn write(&self, out: &mut Vec<u8>) {
        put_varint(out, self.symbols.len() as u32);
        let mut runs: Vec<(u32, u32)> = Vec::new(); // (start, length)
        for &s in &self.symbols {
            match runs.last_mut() {
                Some((start, len)) if *start + *len == s => *len += 1,
                _ => runs.push((s, 1)),
            }
        }
        put_varint(out, runs.len() as u32);
        let mut next = 0u32;
        for &(start, len) in &runs {
            put_varint(out, start - next);
            put_varint(out, len - 1);
            next = start + len;
        }
        let k = (0..16u32)
            .min_by_key(|&k| {
                (
                    self.freqs
                        .iter()
                        .map(|&f| exp_golomb_bits(f - 1, k))
                        .sum::<u32>(),
                    k,
                )
            })
            .unwrap_or(0);
        out.push(k as u8);
        let mut bits = BitWriter::default();
        for &f in &self.freqs {
            let m = (f - 1) + (1 << k);
            let len = 32 - m.leading_zeros();
            bits.put(0, len - k - 1);
            for i in (0..len).rev() {
                bits.put((m >> i) & 1, 1);
            }
        }
        bits.finish(out);
    }

    /// Reads and fully validates a table written by `write`. Runs must be separated by gaps
    /// and the padding must be zero; any `k` is accepted (the writer picks the shortest).
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
        let n_runs = r.varint("frequency table runs")?;
        // Each run takes at least two bytes: reject a lying count before allocating for it.
        if n_runs == 0 || n_runs > count || n_runs as usize > r.remaining() / 2 {
            return Err(corrupt!(
                "frequency table has {n_runs} runs for {count} symbols"
            ));
        }
        let mut symbols = Vec::with_capacity(count as usize);
        let mut next = 0u64;
        for i in 0..n_runs {
            let gap = u64::from(r.varint("frequency table gap")?);
            let len = u64::from(r.varint("frequency table run")?) + 1;
            let start = next + gap;
            if (i > 0 && gap == 0)
                || start + len > u64::from(alphabet_limit)
                || symbols.len() as u64 + len > u64::from(count)
            {
                return Err(corrupt!(
                    "frequency table run {i} is not canonical or overruns"
                ));
            }
            symbols.extend(start as u32..(start + len) as u32);
            next = start + len;
        }
        if symbols.len() != count as usize {
            return Err(corrupt!(
                "frequency table runs cover {} of {count} symbols",
                symbols.len()
            ));
        }
        let k = u32::from(r.u8("frequency code parameter")?);
        if k > 15 {
            return Err(corrupt!("frequency code parameter {k} above 15"));
        }
        let mut bits = BitReader::new(r);
        let mut freqs = Vec::with_capacity(count as usize);
        let mut sum = 0u64;
        for _ in 0..count {
            let mut zeros = 0u32;
            while bits.get(1)? == 0 {
                zeros += 1;
                if zeros > 17 {
                    return Err(corrupt!("frequency code too long"));
                }
            }
            let m = (1u64 << (zeros + k)) | u64::from(bits.get(zeros + k)?);
            let freq = m - (1u64 << k) + 1;
            sum += freq;
            if sum > total {
                return Err(corrupt!("frequencies sum past {total}"));
            }
            freqs.push(freq as u32);
        }
        bits.finish()?;
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

/// Length in bits of the order-k Exp-Golomb code of `n`.
fn exp_golomb_bits(n: u32, k: u32) -> u32 {
    let len = 32 - (n + (1 << k)).leading_zeros();
    2 * len - k - 1
}

/// Bits packed least significant first; a value's bits go most significant first.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    /// Appends the low `count` bits of `value` (`count` <= 32), most significant first.
    fn put(&mut self, value: u32, count: u32) {
        for i in (0..count).rev() {
            self.acc |= u64::from((value >> i) & 1) << self.n;
            self.n += 1;
            if self.n == 8 {
                self.bytes.push(self.acc as u8);
                self.acc = 0;
                self.n = 0;
            }
        }
    }

    fn finish(mut self, out: &mut Vec<u8>) {
        if self.n > 0 {
            self.bytes.push(self.acc as u8);
        }
        out.extend_from_slice(&self.bytes);
    }
}

struct BitReader<'r, 'a> {
    r: &'r mut Reader<'a>,
    byte: u8,
    left: u32,
}

impl<'r, 'a> BitReader<'r, 'a> {
    fn new(r: &'r mut Reader<'a>) -> Self {
        BitReader {
            r,
            byte: 0,
            left: 0,
        }
    }

    /// Reads `count` bits (<= 32), most significant first.
    fn get(&mut self, count: u32) -> Result<u32> {
        let mut v = 0u32;
        for _ in 0..count {
            if self.left == 0 {
                self.byte = self.r.u8("frequency codes")?;
                self.left = 8;
            }
            v = (v << 1) | u32::from(self.byte & 1);
            self.byte >>= 1;
            self.left -= 1;
        }
        Ok(v)
    }

    /// The padding after the last code must be zero.
    fn finish(self) -> Result<()> {
        if self.byte != 0 {
            return Err(corrupt!("nonzero padding after the frequency codes"));
        }
        Ok(())
    }
}

/// Histogram of 8-bit symbols. Eight sub-histograms, one per byte of each 8-byte word, hide
/// the store-to-load dependency of runs of equal bytes (long runs of zeros are common in
/// feature maps).
pub fn histogram_u8(symbols: &[u8]) -> Vec<u64> {
    let mut h = [[0u32; 256]; 8];
    // u32 counters are flushed every 2^30 symbols so they cannot overflow.
    let mut total = vec![0u64; 256];
    for block in symbols.chunks(1 << 30) {
        let mut words = block.chunks_exact(8);
        for w in &mut words {
            let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            for (j, hj) in h.iter_mut().enumerate() {
                hj[(v >> (8 * j)) as u8 as usize] += 1;
            }
        }
        for &s in words.remainder() {
            h[0][s as usize] += 1;
        }
        for (i, t) in total.iter_mut().enumerate() {
            *t += h.iter().map(|hj| u64::from(hj[i])).sum::<u64>();
        }
        h = [[0u32; 256]; 8];
    }
    total
}

/// Histogram of 16-bit symbols: u32 counters (flushed every 2^31 symbols), and for long inputs
/// four sub-histograms against the store-to-load dependency of runs of equal symbols.
pub fn histogram_u16(symbols: &[u16]) -> Vec<u64> {
    const N: usize = 1 << 16;
    let mut total = vec![0u64; N];
    if symbols.len() < 1 << 18 {
        // Short input: one table, cheaper to clear and to add up.
        let mut h = vec![0u32; N];
        for &s in symbols {
            h[s as usize] += 1;
        }
        for (t, &c) in total.iter_mut().zip(&h) {
            *t = u64::from(c);
        }
        return total;
    }
    let mut h = vec![0u32; 4 * N];
    for block in symbols.chunks(1 << 31) {
        let (h01, h23) = h.split_at_mut(2 * N);
        let (h0, h1) = h01.split_at_mut(N);
        let (h2, h3) = h23.split_at_mut(N);
        let mut quads = block.chunks_exact(4);
        for q in &mut quads {
            h0[q[0] as usize] += 1;
            h1[q[1] as usize] += 1;
            h2[q[2] as usize] += 1;
            h3[q[3] as usize] += 1;
        }
        for &s in quads.remainder() {
            h0[s as usize] += 1;
        }
        for (i, t) in total.iter_mut().enumerate() {
            *t += u64::from(h0[i]) + u64::from(h1[i]) + u64::from(h2[i]) + u64::from(h3[i]);
        }
        h.fill(0);
    }
    total
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

/// Precisions up to this keep the decode table small enough for L1 (4096 slots); above it the
/// AVX2 decoder's gathers miss and a 16 MiB stream decodes ~30% slower.
const FAST_PRECISION_BITS: u8 = 12;
/// Above `FAST_PRECISION_BITS` a precision must buy more than 1/512 (about 0.2%) of the size.
const FAST_SLACK_DENOM: u128 = 512;

/// Chooses the precision and builds the table. `tight`: the smallest precision, from the least
/// that can hold every present symbol up to 16, whose estimated cost is within 1/4096 of the
/// cost at 16 bits. If `tight` is above 12 but 12 bits come within 1/512, 12 bits instead.
/// Returns `None` when fewer than two symbols are present.
pub fn build_table(counts: &[u64], precision_bits: Option<u8>) -> Option<FreqTable> {
    if let Some(p) = precision_bits {
        return quantize(counts, p);
    }
    let present = counts.iter().filter(|&&c| c > 0).count() as u64;
    if present < 2 {
        return None;
    }
    let min_bits = ((64 - (present - 1).leading_zeros()) as u8).max(1); // ceil(log2(present))
    let best = quantize(counts, MAX_PRECISION_BITS)?;
    let best_cost = cost_fixed(counts, &best);
    let within =
        |t: &FreqTable, denom: u128| cost_fixed(counts, t) * denom <= best_cost * (denom + 1);
    let mut fast = None;
    for p in min_bits..MAX_PRECISION_BITS {
        let Some(t) = quantize(counts, p) else {
            continue;
        };
        if within(&t, PRECISION_SLACK_DENOM) {
            return Some(if p > FAST_PRECISION_BITS {
                fast.unwrap_or(t)
            } else {
                t
            });
        }
        if p == FAST_PRECISION_BITS && within(&t, FAST_SLACK_DENOM) {
            fast = Some(t);
        }
    }
    Some(fast.unwrap_or(best))
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
