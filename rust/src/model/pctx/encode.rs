//! The encoder of the parallel context coder (FORMAT.md 9.4): a sample's codes to a body of
//! chunks, and the parse of a body into its chunks' spans.

use super::*;

/// Codes the codes `q` of one sample (FORMAT.md 9.4). `fill[ch.of(i)]` is the code of zero of
/// element `i`'s quantization channel, which stands in for a missing neighbour.
pub fn encode(
    model: &Model,
    tables: &Tables,
    shape: &[usize],
    q: &[u8],
    fill: &[u8],
    fill_ch: Channels,
) -> Vec<u8> {
    let lay = Layout::new(model, shape);
    debug_assert_eq!(lay.n, q.len());
    let w = Walk::new(&lay, fill_ch);
    let parts = lay.chunks();
    let mask = (1i32 << model.bits) - 1;
    let p = model.precision as u32;
    let mut out = Vec::with_capacity(q.len() / 2 + 16);
    if parts.len() > 1 {
        out.resize(4 * parts.len(), 0);
    }
    let mut decisions: Vec<(u32, u32)> = Vec::new();
    let mut words: Vec<u16> = Vec::new();
    // The folded residual of every element, for the predictor whose context reads its
    // neighbours' (each lane fills its segment before a later element of it looks).
    let mut e: Vec<u8> = if tables.predictor == Predictor::MedResidual {
        vec![0; q.len()]
    } else {
        Vec::new()
    };
    for (k, &Chunk {
        start,
        m,
        lanes,
        seg,
    }) in parts.iter().enumerate()
    {
        // (cum, freq) of every element of the chunk, in element order.
        decisions.clear();
        decisions.resize(m, (0, 0));
        let raster = w.sx == 1 && w.sy == w.dx && w.dx >= 2;
        for l in 0..lanes {
            let b = l * seg;
            if b >= m {
                break;
            }
            let run = &mut decisions[b..(b + seg).min(m)];
            match (raster, tables.predictor) {
                (true, Predictor::None) => {
                    encode_raster::<0>(tables, &w, q, &mut e, fill, start + b, run)
                }
                (true, Predictor::Med) => {
                    encode_raster::<1>(tables, &w, q, &mut e, fill, start + b, run)
                }
                (true, Predictor::MedResidual) => {
                    encode_raster::<2>(tables, &w, q, &mut e, fill, start + b, run)
                }
                (false, predictor) => {
                    let mut c = Cursor::at(start + b, &w);
                    for (s, d) in run.iter_mut().enumerate() {
                        let st = Step::at(s, &w);
                        let (ctx, pred) = match predictor {
                            Predictor::None => {
                                context_at::<0>(tables, &w, st, q, &e, &c, fill[c.cf])
                            }
                            Predictor::Med => {
                                context_at::<1>(tables, &w, st, q, &e, &c, fill[c.cf])
                            }
                            Predictor::MedResidual => {
                                context_at::<2>(tables, &w, st, q, &e, &c, fill[c.cf])
                            }
                        };
                        let t = tables.context_map[ctx] as usize;
                        let code = q[c.i] as i32;
                        let sym = if predictor.predicts() {
                            (code - pred) & mask
                        } else {
                            code
                        } as usize;
                        *d = tables.interval(t, sym);
                        c.prev = fold(sym as u32, model.bits);
                        if let Some(slot) = e.get_mut(c.i) {
                            *slot = c.prev as u8;
                        }
                        c.advance(&w);
                    }
                }
            }
        }
        let mut x = [RANS_L; 32];
        // Each element emits at most one word; written without a branch, kept when emitted.
        words.clear();
        words.resize(m + 1, 0);
        let mut n_words = 0usize;
        for s in (0..seg).rev() {
            // Lanes that have an element at step s: a prefix (later lanes may be shorter).
            let active = (m - s).div_ceil(seg).min(lanes);
            for l in (0..active).rev() {
                let (cum, freq) = decisions[l * seg + s];
                let v = x[l];
                let emit = v >= freq << (32 - p);
                words[n_words] = v as u16;
                n_words += emit as usize;
                let v = if emit { v >> 16 } else { v };
                // v / freq exactly: v < 2^32 and freq < 2^16, so the binary64 quotient is never
                // within rounding of the next integer.
                let quot = (v as f64 / freq as f64) as u32;
                x[l] = (quot << p) + (v - quot * freq) + cum;
            }
        }
        words.truncate(n_words);
        for &v in &x[..lanes] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.reserve(2 * words.len());
        for &wd in words.iter().rev() {
            out.extend_from_slice(&wd.to_le_bytes());
        }
        if parts.len() > 1 {
            out[4 * k..4 * k + 4].copy_from_slice(&(words.len() as u32).to_le_bytes());
        }
    }
    out
}

/// Where one chunk of a body is: the chunk (its elements, lanes and segment), and the byte
/// offsets (in the body) of its lane states and of its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSpan {
    pub chunk: Chunk,
    pub states_at: usize,
    pub words_at: usize,
    pub words: usize,
}

/// Parses the structure of a body of the chunks `parts` (`Layout::chunks`, FORMAT.md 9.4): the
/// chunk directory, and that every chunk's states and words are there, nothing after. The
/// states' values and the words are checked by decoding.
pub fn parse_body(body: &[u8], parts: &[Chunk]) -> Result<Vec<ChunkSpan>> {
    let mut r = Reader::new(body);
    let mut counts = Vec::with_capacity(parts.len());
    if parts.len() > 1 {
        for _ in 0..parts.len() {
            counts.push(r.u32("chunk directory")? as usize);
        }
    }
    let mut spans = Vec::with_capacity(parts.len());
    for (k, &chunk) in parts.iter().enumerate() {
        let states_at = r.position();
        r.take(4 * chunk.lanes, "lane states")?;
        let words = if parts.len() > 1 {
            counts[k]
        } else {
            if !r.remaining().is_multiple_of(2) {
                return Err(corrupt!("context body ends inside a word"));
            }
            r.remaining() / 2
        };
        if words > r.remaining() / 2 {
            return Err(corrupt!("chunk {k}: {words} words (truncated)"));
        }
        let words_at = r.position();
        r.take(2 * words, "words")?;
        spans.push(ChunkSpan {
            chunk,
            states_at,
            words_at,
            words,
        });
    }
    if r.remaining() != 0 {
        return Err(corrupt!("{} bytes after the last chunk", r.remaining()));
    }
    Ok(spans)
}

/// The encoder's pass over one lane segment in the raster layout (see `decode_raster`): the
/// (cum, freq) of every element, with the left and upper-left codes carried; predictor `P` 0
/// (none), 1 (med) or 2 (med-residual, which writes each element's folded residual into `e`
/// and reads its neighbours').
fn encode_raster<const P: u8>(
    tb: &Tables,
    w: &Walk,
    q: &[u8],
    e: &mut [u8],
    fill: &[u8],
    first: usize,
    out: &mut [(u32, u32)],
) {
    let c = Cursor::at(first, w);
    let (mut cx, mut cy, mut cg, mut rg, mut cf, mut rf) = (c.cx, c.cy, c.cg, c.rg, c.cf, c.rf);
    let dx = w.dx;
    let code_mask = (1i32 << tb.bits) - 1;
    let (mut prev, mut left, mut above_prev) = (0u32, 0i32, 0i32);
    for (s, d) in out.iter_mut().enumerate() {
        let i = first + s;
        let f = fill[cf] as i32;
        let has_l = s >= 1 && cx > 0;
        let has_u = s >= dx && cy > 0;
        let has_ul = has_l && has_u && s > dx;
        let above = q[if has_u { i - dx } else { i }] as i32;
        let l = select(has_l, left, f);
        let u = select(has_u, above, f);
        let ul = select(has_ul, above_prev, f);
        let g = tb.ctx_g[cg];
        let code = q[i] as i32;
        let (ctx, sym) = if P != 0 {
            let has_ur = has_u && cx + 1 < dx;
            let ur = select(has_ur, q[if has_ur { i + 1 - dx } else { i }] as i32, u);
            let act = (l - ul).abs() + (u - ul).abs() + (ur - u).abs();
            let pred = med(l, u, ul);
            let prop_c = if P == 2 {
                let el = select(has_l, prev as i32, 0);
                let eu = select(has_u, e[if has_u { i - dx } else { i }] as i32, 0);
                let eul = select(has_ul, e[if has_ul { i - dx - 1 } else { i }] as i32, 0);
                el.max(eu).max(eul) as usize
            } else {
                prev as usize
            };
            (
                g + tb.ctx_a[act as usize] + tb.ctx_b[pred as usize] + tb.ctx_c[prop_c],
                (code - pred) & code_mask,
            )
        } else {
            (
                g + tb.ctx_a[l as usize] + tb.ctx_b[u as usize] + tb.ctx_c[ul as usize],
                code,
            )
        };
        let t = tb.context_map[ctx as usize] as usize;
        *d = tb.interval(t, sym as usize);
        prev = fold(sym as u32, tb.bits);
        if P == 2 {
            e[i] = prev as u8;
        }
        left = code;
        above_prev = above;
        cx += 1;
        if cx == dx {
            cx = 0;
            cy += 1;
            if cy == w.dy {
                cy = 0;
            }
        }
        rg += 1;
        if rg == w.g_inner {
            rg = 0;
            cg += 1;
            if cg == w.g_channels {
                cg = 0;
            }
        }
        rf += 1;
        if rf == w.f_inner {
            rf = 0;
            cf += 1;
            if cf == w.f_channels {
                cf = 0;
            }
        }
    }
}
