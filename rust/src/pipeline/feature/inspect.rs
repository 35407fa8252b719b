//! Inspecting a feature container: its feature section and per-stream statistics, checked
//! exactly as decoding checks them, without holding the output.

use super::decode::{walk_csr, CsrVisitor};
use super::*;

/// The feature section and the per-stream statistics of a feature container. Checks exactly
/// what `decompress` checks, in the same order (so both accept the same containers and fail
/// with the same error), without holding the output: the streams are decoded block by block
/// into histograms (a context body into one byte per element).
pub fn inspect(
    blob: &[u8],
    h: &Header,
    max_output_bytes: u64,
    threads: usize,
) -> Result<(FeatureMeta, Vec<StreamInfo>)> {
    let p = parse(blob, h, max_output_bytes)?;
    let infos = match &p.body {
        Body::Context(body) => {
            let zps: Vec<i32> = p.meta.params.iter().map(|a| a.zero_point).collect();
            let mut q = buffer::zeroed::<u8>(h.count)?;
            context::decode(
                body,
                &zps,
                p.meta.channels,
                Geometry::of(&h.shape),
                p.meta.bits,
                &mut q,
            )?;
            let (distinct_symbols, alphabet_size, bound) =
                container::symbol_stats(&u8::histogram(&q));
            vec![StreamInfo {
                mode: "context",
                symbols: q.len(),
                symbol_bytes: 1,
                distinct_symbols,
                alphabet_size,
                precision_bits: context::PROB_BITS as u8,
                lanes: 1,
                chunk_symbols: q.len(),
                compressed_bytes: body.len(),
                entropy_bound_bytes: bound,
            }]
        }
        Body::Pctx(model, body) => {
            let fills: Vec<u8> = p.meta.params.iter().map(|a| a.zero_point as u8).collect();
            let mut q = buffer::zeroed::<u8>(h.count)?;
            pctx::decode(
                &model.0,
                &model.1,
                &h.shape,
                body,
                &fills,
                p.meta.channels,
                &mut q,
            )?;
            let (distinct_symbols, alphabet_size, bound) =
                container::symbol_stats(&u8::histogram(&q));
            let chunks = pctx::chunks(h.count, 0);
            vec![StreamInfo {
                mode: "pcontext",
                symbols: q.len(),
                symbol_bytes: 1,
                distinct_symbols,
                alphabet_size,
                precision_bits: model.0.precision,
                lanes: chunks.first().map_or(0, |c| c.lanes),
                chunk_symbols: chunks.first().map_or(0, |c| c.m),
                compressed_bytes: body.len(),
                entropy_bound_bytes: bound,
            }]
        }
        Body::Dense(view) => {
            let counts = if p.meta.bits <= 8 {
                stream::histogram::<u8>(view, threads)?
            } else {
                stream::histogram::<u16>(view, threads)?
            };
            // Checked after every chunk decoded, as `decompress` does.
            if p.meta.bits < 16
                && counts[levels(p.meta.bits) as usize + 1..]
                    .iter()
                    .any(|&c| c > 0)
            {
                return Err(corrupt!("a code exceeds the {}-bit range", p.meta.bits));
            }
            vec![container::stream_info_of(view, &counts)]
        }
        Body::Csr(csr) => {
            let CsrViews {
                counts,
                cols,
                values,
            } = csr.as_ref();
            let mut hist = CsrHistograms {
                counts: vec![0; 1 << 16],
                cols: vec![0; 1 << 16],
                values: vec![0; 1 << (8 * values.symbol_bytes)],
            };
            if p.meta.bits <= 8 {
                walk_csr::<u8>(&p, h, threads, &mut hist)?;
            } else {
                walk_csr::<u16>(&p, h, threads, &mut hist)?;
            }
            vec![
                container::stream_info_of(counts, &hist.counts),
                container::stream_info_of(cols, &hist.cols),
                container::stream_info_of(values, &hist.values),
            ]
        }
    };
    Ok((p.meta, infos))
}

/// Histograms of the three CSR streams.
struct CsrHistograms {
    counts: Vec<u64>,
    cols: Vec<u64>,
    values: Vec<u64>,
}

impl<C: Symbol> CsrVisitor<C> for CsrHistograms {
    fn row_counts(&mut self, counts: &[u16]) {
        for (h, n) in self.counts.iter_mut().zip(u16::histogram(counts)) {
            *h += n;
        }
    }
    #[inline(always)]
    fn nonzero(&mut self, _: usize, col: u16, value: C) {
        self.cols[col as usize] += 1;
        self.values[value.index()] += 1;
    }
}
