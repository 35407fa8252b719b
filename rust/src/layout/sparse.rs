//! The sparse representation: the quantized tensor, flattened in C order and viewed as N rows of
//! M columns, stored as per-row nonzero counts, column indices and nonzero values (CSR), each
//! coded as its own stream. "Zero" is the zero point: the code of 0.0 in the element's channel.
//!
//! Choosing N trades the row counts (N symbols) against the column indices (one per nonzero,
//! about log2 M bits each). `model_cost` predicts the coded size from the density alone, the
//! paper's approximate model; `search_cost` measures the exact empirical entropies for one N.

use crate::quant::{Channels, Code};

/// Column indices and row counts are 16-bit symbols.
pub const MAX_COLS: usize = 65_535;

/// Fixed bytes of a coded stream beyond its entropy: header, lengths, rANS parameters, states.
const STREAM_OVERHEAD_BYTES: f64 = 8.0 + 10.0 + 4.0 + 4.0 + 128.0;
/// Approximate serialized bytes per symbol of a frequency table (gap and frequency varints).
const TABLE_BYTES_PER_SYMBOL: f64 = 2.5;

/// Row counts N to consider: the divisors of `total` whose rows fit 16-bit column indices.
pub fn candidate_rows(total: usize) -> Vec<usize> {
    // Below 2^32 no number has more than 1,344 divisors, and sizes of feature maps a few dozen.
    let mut out = Vec::with_capacity(64);
    if total == 0 {
        return out;
    }
    let mut d = 1usize;
    while d * d <= total {
        if total.is_multiple_of(d) {
            for n in [d, total / d] {
                if total / n <= MAX_COLS && !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        d += 1;
    }
    out.sort_unstable();
    out
}

/// Calls `f(index, code)` for every element that is not its channel's zero point, in order.
#[inline(always)]
pub fn for_each_nonzero<C: Code>(
    q: &[C],
    zero_points: &[i32],
    ch: Channels,
    mut f: impl FnMut(usize, C),
) {
    if ch.channels == 1 {
        let z = zero_points[0];
        for (i, &v) in q.iter().enumerate() {
            if v.to_i32() != z {
                f(i, v);
            }
        }
    } else {
        for (block, run) in q.chunks(ch.inner).enumerate() {
            let z = zero_points[block % ch.channels];
            let base = block * ch.inner;
            for (i, &v) in run.iter().enumerate() {
                if v.to_i32() != z {
                    f(base + i, v);
                }
            }
        }
    }
}

/// Flat indices of the elements that are not their channel's zero point, ascending.
pub fn nonzero_positions<C: Code>(q: &[C], zero_points: &[i32], ch: Channels) -> Vec<usize> {
    let mut out = Vec::new();
    for_each_nonzero(q, zero_points, ch, |i, _| out.push(i));
    out
}

/// Histograms of the row counts and column indices of the CSR form with `rows` rows, from
/// the nonzero indices in increasing order.
fn histograms_of(
    nonzeros: impl FnOnce(&mut dyn FnMut(usize)),
    total: usize,
    rows: usize,
) -> (Vec<u64>, Vec<u64>) {
    let cols = total / rows;
    let mut row_hist = vec![0u64; cols + 1];
    let mut col_hist = vec![0u64; cols];
    let (mut row_start, mut k, mut rows_done) = (0usize, 0usize, 0usize);
    nonzeros(&mut |p| {
        while p >= row_start + cols {
            row_hist[k] += 1;
            k = 0;
            rows_done += 1;
            row_start += cols;
        }
        col_hist[p - row_start] += 1;
        k += 1;
    });
    if rows_done < rows {
        row_hist[k] += 1;
        row_hist[0] += (rows - rows_done - 1) as u64;
    }
    (row_hist, col_hist)
}

/// Row-count and column-index histograms for `rows` rows, scanning the codes.
pub fn code_histograms<C: Code>(
    q: &[C],
    zero_points: &[i32],
    ch: Channels,
    rows: usize,
) -> (Vec<u64>, Vec<u64>) {
    histograms_of(
        |f| for_each_nonzero(q, zero_points, ch, |i, _| f(i)),
        q.len(),
        rows,
    )
}

/// Estimated coded bytes of a stream with histogram `counts`: order-0 entropy, table, overhead.
pub fn entropy_cost_bytes(counts: impl Iterator<Item = u64> + Clone) -> f64 {
    let n: u64 = counts.clone().sum();
    if n == 0 {
        return STREAM_OVERHEAD_BYTES - 128.0;
    }
    let nf = n as f64;
    let mut bits = 0.0;
    let mut distinct = 0usize;
    for c in counts.filter(|&c| c > 0) {
        let c = c as f64;
        bits -= c * (c / nf).log2();
        distinct += 1;
    }
    if distinct == 1 {
        return STREAM_OVERHEAD_BYTES - 128.0 + 2.0;
    }
    bits / 8.0 + distinct as f64 * TABLE_BYTES_PER_SYMBOL + STREAM_OVERHEAD_BYTES
}

/// Row-count (indexed by count, `cols + 1` long) and column-index (`cols` long) histograms of
/// the CSR form with `rows` rows, from the nonzero positions.
pub fn row_col_histograms(positions: &[usize], total: usize, rows: usize) -> (Vec<u64>, Vec<u64>) {
    histograms_of(|f| positions.iter().for_each(|&p| f(p)), total, rows)
}

/// Exact empirical cost, in bytes, of the row-count and column-index streams for `rows` rows.
pub fn search_cost(positions: &[usize], total: usize, rows: usize) -> f64 {
    let (row_hist, col_hist) = row_col_histograms(positions, total, rows);
    entropy_cost_bytes(row_hist.into_iter()) + entropy_cost_bytes(col_hist.into_iter())
}

/// Entropy in bits of Binomial(m, d): the distribution of a row's nonzero count when nonzeros
/// fall independently with density d. Exact sum for small m, normal approximation beyond.
fn binomial_entropy_bits(m: usize, d: f64) -> f64 {
    if d <= 0.0 || d >= 1.0 || m == 0 {
        return 0.0;
    }
    let var = m as f64 * d * (1.0 - d);
    if var > 30.0 {
        return 0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E * var).log2();
    }
    // log pmf by recurrence from k = 0.
    let mut log_p = m as f64 * (1.0 - d).ln();
    let ratio = (d / (1.0 - d)).ln();
    let mut h = 0.0;
    for k in 0..=m {
        if k > 0 {
            log_p += ((m - k + 1) as f64 / k as f64).ln() + ratio;
        }
        let p = log_p.exp();
        if p > 0.0 {
            h -= p * log_p;
        }
    }
    h / std::f64::consts::LN_2
}

/// The approximate model: predicted bytes of the row-count and column-index streams for `rows`
/// rows, from the density alone (row counts binomial, column indices uniform over the row).
pub fn model_cost(total: usize, nnz: usize, rows: usize) -> f64 {
    let cols = total / rows;
    let d = nnz as f64 / total as f64;
    let row_bits = rows as f64 * binomial_entropy_bits(cols, d);
    let col_bits = nnz as f64 * (cols as f64).log2();
    // Distinct symbols the tables will list: counts within a few deviations, every column.
    let spread = (cols as f64 * d * (1.0 - d)).sqrt() * 8.0 + 1.0;
    let row_table = spread.min(cols as f64 + 1.0).min(rows as f64);
    let col_table = (cols as f64).min(nnz as f64);
    row_bits / 8.0
        + col_bits / 8.0
        + (row_table + col_table) * TABLE_BYTES_PER_SYMBOL
        + 2.0 * STREAM_OVERHEAD_BYTES
}

/// A lower bound of `model_cost(total, nnz, rows)` as computed (not only as a real number): the
/// same sum with the row-count bits, which are never negative, left out. Each step of the sum
/// rounds monotonically, so dropping a term `>= 0` cannot raise the result.
fn model_cost_lower_bound(total: usize, nnz: usize, rows: usize) -> f64 {
    let cols = total / rows;
    let d = nnz as f64 / total as f64;
    let col_bits = nnz as f64 * (cols as f64).log2();
    let spread = (cols as f64 * d * (1.0 - d)).sqrt() * 8.0 + 1.0;
    let row_table = spread.min(cols as f64 + 1.0).min(rows as f64);
    let col_table = (cols as f64).min(nnz as f64);
    col_bits / 8.0 + (row_table + col_table) * TABLE_BYTES_PER_SYMBOL + 2.0 * STREAM_OVERHEAD_BYTES
}

/// The candidate (of `candidates`, ascending) with the least `model_cost`, the first of equal
/// ones, as `min_by` over every candidate would choose it, and the costs it computed (`None`
/// for the candidates it ruled out). The model's exact sum costs up to `cols + 1` logarithms
/// and exponentials per candidate; the one-column candidate (the last, and usually the best)
/// is costed first, and a candidate whose lower bound is above the best so far is skipped.
pub fn model_argmin(total: usize, nnz: usize, candidates: &[usize]) -> (usize, Vec<Option<f64>>) {
    let mut costs = vec![None; candidates.len()];
    let Some(last) = candidates.len().checked_sub(1) else {
        return (total, costs);
    };
    let mut best = (model_cost(total, nnz, candidates[last]), last);
    costs[last] = Some(best.0);
    for (i, &rows) in candidates[..last].iter().enumerate() {
        // The bound leaves out a term that is 0 or more up to rounding (a sum of p·log p):
        // a margin far above any such rounding keeps the skip exact.
        if model_cost_lower_bound(total, nnz, rows) > best.0 + 1e-3 {
            continue;
        }
        let c = model_cost(total, nnz, rows);
        costs[i] = Some(c);
        if c < best.0 || (c == best.0 && i < best.1) {
            best = (c, i);
        }
    }
    (candidates[best.1], costs)
}

/// The three CSR arrays for `rows` rows, scanning the codes.
pub fn build<C: Code>(
    q: &[C],
    zero_points: &[i32],
    ch: Channels,
    rows: usize,
) -> (Vec<u16>, Vec<u16>, Vec<C>) {
    let cols = q.len() / rows;
    let mut counts = vec![0u16; rows];
    let mut col_indices = Vec::new();
    let mut values = Vec::new();
    let (mut row, mut row_start) = (0usize, 0usize);
    for_each_nonzero(q, zero_points, ch, |p, v| {
        while p >= row_start + cols {
            row += 1;
            row_start += cols;
        }
        counts[row] += 1;
        col_indices.push((p - row_start) as u16);
        values.push(v);
    });
    (counts, col_indices, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_divide_and_fit() {
        let c = candidate_rows(256 * 56 * 56);
        assert!(c
            .iter()
            .all(|&n| (256 * 56 * 56) % n == 0 && 256 * 56 * 56 / n <= MAX_COLS));
        assert!(c.contains(&256) && c.contains(&(256 * 56)));
        assert_eq!(candidate_rows(7), vec![1, 7]);
    }

    #[test]
    fn csr_round_trip() {
        let q: Vec<u8> = (0..600)
            .map(|i| {
                if i % 7 == 0 || i % 11 == 3 {
                    (i % 200) as u8 + 1
                } else {
                    0
                }
            })
            .collect();
        let pos = nonzero_positions(&q, &[0], Channels::TENSOR);
        for rows in candidate_rows(q.len()) {
            let (counts, cols, values) = build(&q, &[0], Channels::TENSOR, rows);
            assert_eq!(
                row_col_histograms(&pos, q.len(), rows),
                code_histograms(&q, &[0], Channels::TENSOR, rows)
            );
            // The decoder's scatter (feature::walk_csr) is tested through containers; here the
            // arrays are put back by hand.
            let mut out = vec![0u8; q.len()];
            let m = q.len() / rows;
            let mut k = 0;
            for (r, &c) in counts.iter().enumerate() {
                for _ in 0..c {
                    out[r * m + cols[k] as usize] = values[k];
                    k += 1;
                }
            }
            assert_eq!(k, cols.len());
            assert_eq!(out, q);
            assert!(search_cost(&pos, q.len(), rows) > 0.0);
            assert!(model_cost(q.len(), pos.len(), rows) > 0.0);
        }
    }

    #[test]
    fn pruned_model_argmin_is_the_full_argmin() {
        for total in [
            1usize,
            2,
            12,
            1568,
            6272,
            4096,
            802_816,
            100_000,
            65_536 * 3,
        ] {
            let cands = candidate_rows(total);
            for nnz in [0, 1, 2, total / 100, total / 3, total / 2, total - 1, total] {
                let full = cands
                    .iter()
                    .map(|&r| (model_cost(total, nnz, r), r))
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .map_or(total, |c| c.1);
                let (rows, costs) = model_argmin(total, nnz, &cands);
                assert_eq!(rows, full, "total {total} nnz {nnz}");
                for (&r, c) in cands.iter().zip(costs) {
                    if let Some(c) = c {
                        assert_eq!(c, model_cost(total, nnz, r));
                    }
                }
            }
        }
    }

    #[test]
    fn binomial_entropy_is_continuous_across_the_switch() {
        let a = binomial_entropy_bits(1000, 0.031);
        let b = binomial_entropy_bits(1000, 0.0315);
        assert!((a - b).abs() < 0.05, "{a} {b}");
    }
}
