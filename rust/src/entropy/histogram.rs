//! Counting symbols: the histograms a frequency table is built from ([`super::freq`]).

/// Histogram of 8-bit symbols. Eight sub-histograms, one per byte of each 8-byte word, hide
/// the store-to-load dependency of runs of equal bytes (long runs of zeros are common in
/// feature maps).
pub fn histogram_u8(symbols: &[u8]) -> Vec<u64> {
    if symbols.len() < 4096 {
        // Short input: four tables of u16 counters (2 KiB to clear and add up), so that a run of
        // equal bytes is four interleaved chains of increments rather than one, each waiting on
        // the store before it (a 1x32x7x7 ReLU map is half zeros: one table made this 4 cycles a
        // symbol).
        let mut h = [[0u16; 256]; 4];
        let mut quads = symbols.chunks_exact(4);
        for q in &mut quads {
            for (j, hj) in h.iter_mut().enumerate() {
                hj[q[j] as usize] += 1;
            }
        }
        for &s in quads.remainder() {
            h[0][s as usize] += 1;
        }
        return (0..256)
            .map(|i| h.iter().map(|hj| u64::from(hj[i])).sum())
            .collect();
    }
    let mut h = [[0u32; 256]; 8];
    // u32 counters are flushed every 2^30 symbols so they cannot overflow.
    let mut total = vec![0u64; 256];
    for block in symbols.chunks(1 << 30) {
        let mut words = block.chunks_exact(8);
        for w in &mut words {
            // Byte loads straight into the counters' addresses: two instructions a symbol.
            for (j, hj) in h.iter_mut().enumerate() {
                hj[w[j] as usize] += 1;
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
