//! The reference coder of the parallel context coder, element by element as FORMAT.md 9.4
//! says: the tests compare the fast encoder and decoders with it.

use super::*;

/// The chunks of FORMAT.md 9.4 as its text says, `(start, m, lanes, seg)` each, written apart
/// from `chunks` so that the tests compare the two: with plane lanes (`plane > 0`), planes of at
/// most 2^16 elements, the lanes of the default's first chunk and its segment rounded up to
/// whole planes.
#[cfg(test)]
pub(crate) fn chunks_reference(n: usize, plane: usize) -> Vec<(usize, usize, usize, usize)> {
    let mut out = Vec::new();
    let first = if n < 65536 { n } else { 65536 };
    let lanes_of = |m: usize| -> usize {
        if m >= 65536 {
            return 32;
        }
        let mut l = 1;
        while l * 2 <= 32 && l * 2 * 4096 <= m {
            l *= 2;
        }
        l
    };
    if (1..=65536).contains(&plane) && n > 0 {
        let lanes = lanes_of(first);
        let g0 = first.div_ceil(lanes);
        let mut g = plane;
        while g < g0 {
            g += plane;
        }
        let mut start = 0;
        while start < n {
            let m = (lanes * g).min(n - start);
            out.push((start, m, m.div_ceil(g), g));
            start += m;
        }
    } else {
        let mut start = 0;
        while start < n {
            let m = 65536.min(n - start);
            let lanes = lanes_of(m);
            out.push((start, m, lanes, m.div_ceil(lanes)));
            start += m;
        }
    }
    out
}

/// The reference encoder, element by element as FORMAT.md 9.4 says (tests compare the fast
/// one with it).
#[cfg(test)]
pub(crate) fn encode_reference(
    model: &Model,
    tables: &Tables,
    shape: &[usize],
    q: &[u8],
    fill: &[u8],
    fill_ch: Channels,
) -> Vec<u8> {
    let lay = Layout::new(model, shape);
    debug_assert_eq!(lay.n, q.len());
    let parts = chunks_reference(q.len(), lay.plane);
    let a = model.alphabet();
    let mask = (a - 1) as i32;
    let mut out = Vec::with_capacity(q.len() / 2 + 16);
    let dir_at = out.len();
    if parts.len() > 1 {
        out.resize(4 * parts.len(), 0);
    }
    let mut decisions: Vec<(u16, u16)> = Vec::new();
    let mut words: Vec<u16> = Vec::new();
    // Folded residuals of the elements coded so far (med-residual's third property).
    let mut res = vec![0u8; q.len()];
    for (k, &(start, m, lanes, seg)) in parts.iter().enumerate() {
        // (cum, freq) of every element of the chunk, in element order.
        decisions.clear();
        decisions.resize(m, (0, 0));
        for l in 0..lanes {
            let b = start + l * seg;
            let e = (b + seg).min(start + m);
            let mut prev = 0u32;
            for i in b..e {
                let (t, pred) =
                    context(model, &lay, q, &res, prev, fill[fill_ch.of(i)], i, i - b);
                let sym = match model.predictor {
                    Predictor::None => q[i] as usize,
                    Predictor::Med | Predictor::MedResidual => {
                        ((q[i] as i32 - pred) & mask) as usize
                    }
                };
                prev = fold(sym as u32, model.bits);
                res[i] = prev as u8;
                decisions[i - start] = {
                    let (c, f) = tables.interval(t, sym);
                    (c as u16, f as u16)
                };
            }
        }
        let mut x = vec![RANS_L; lanes];
        words.clear();
        let p = model.precision as u32;
        for s in (0..seg).rev() {
            for l in (0..lanes).rev() {
                let j = l * seg + s;
                if j >= m || s >= seg {
                    continue;
                }
                let (cum, freq) = decisions[j];
                let (cum, freq) = (cum as u32, freq as u32);
                let x_max = freq << (32 - p);
                let mut v = x[l];
                if v >= x_max {
                    words.push(v as u16);
                    v >>= 16;
                }
                x[l] = ((v / freq) << p) + (v % freq) + cum;
            }
        }
        for &v in &x {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for &w in words.iter().rev() {
            put_u16(&mut out, w);
        }
        if parts.len() > 1 {
            let at = dir_at + 4 * k;
            out[at..at + 4].copy_from_slice(&(words.len() as u32).to_le_bytes());
        }
    }
    out
}

/// The reference decoder.
#[cfg(test)]
/// Decodes a body that `encode` wrote into `q` (its length is the sample's element count).
/// Every malformed body is Corrupt.
pub(crate) fn decode_reference(
    model: &Model,
    tables: &Tables,
    shape: &[usize],
    body: &[u8],
    fill: &[u8],
    fill_ch: Channels,
    q: &mut [u8],
) -> Result<()> {
    let lay = Layout::new(model, shape);
    if lay.n != q.len() {
        return Err(CodecError::InvalidArgument(format!(
            "output of {} elements for a sample of {}",
            q.len(),
            lay.n
        )));
    }
    let parts = chunks_reference(q.len(), lay.plane);
    let mut r = Reader::new(body);
    let mut counts = Vec::with_capacity(parts.len());
    if parts.len() > 1 {
        for _ in 0..parts.len() {
            counts.push(r.u32("chunk directory")? as usize);
        }
    }
    for (k, &(start, m, lanes, seg)) in parts.iter().enumerate() {
        let mut x = [0u32; 32];
        for (l, v) in x.iter_mut().enumerate().take(lanes) {
            *v = r.u32("lane state")?;
            if *v < RANS_L {
                return Err(corrupt!("chunk {k} lane {l}: state below 2^16"));
            }
        }
        let words = if parts.len() > 1 {
            let w = counts[k];
            if w > r.remaining() / 2 {
                return Err(corrupt!("chunk {k}: {w} words (truncated)"));
            }
            r.take(2 * w, "words")?
        } else {
            if !r.remaining().is_multiple_of(2) {
                return Err(corrupt!("context body ends inside a word"));
            }
            let n = r.remaining();
            r.take(n, "words")?
        };
        decode_chunk_reference(
            model, tables, &lay, start, m, lanes, seg, &mut x, words, fill, fill_ch, q,
        )
        .map_err(|e| match e {
            CodecError::Corrupt(msg) => corrupt!("chunk {k}: {msg}"),
            e => e,
        })?;
    }
    if r.remaining() != 0 {
        return Err(corrupt!("{} bytes after the last chunk", r.remaining()));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::too_many_arguments)]
fn decode_chunk_reference(
    model: &Model,
    tables: &Tables,
    lay: &Layout,
    start: usize,
    m: usize,
    lanes: usize,
    seg: usize,
    x: &mut [u32; 32],
    words: &[u8],
    fill: &[u8],
    fill_ch: Channels,
    q: &mut [u8],
) -> Result<()> {
    let a = model.alphabet();
    let p = tables.precision as u32;
    let slot_mask = (1u32 << p) - 1;
    let code_mask = (a - 1) as i32;
    let n_words = words.len() / 2;
    let mut pos = 0usize;
    let mut prev = [0u32; 32];
    // Folded residuals of the elements decoded so far (med-residual's third property).
    let mut res = vec![0u8; q.len()];
    for s in 0..seg {
        for l in 0..lanes {
            let j = l * seg + s;
            if j >= m {
                continue;
            }
            let i = start + j;
            let (t, pred) = context(model, lay, q, &res, prev[l], fill[fill_ch.of(i)], i, s);
            let slot = x[l] & slot_mask;
            let (sym, cum, freq) = tables.find(t, slot);
            let mut v = freq * (x[l] >> p) + slot - cum;
            if v < RANS_L {
                if pos == n_words {
                    return Err(corrupt!("ran out of words"));
                }
                v = (v << 16) | u16::from_le_bytes([words[2 * pos], words[2 * pos + 1]]) as u32;
                pos += 1;
            }
            x[l] = v;
            prev[l] = fold(sym as u32, tables.bits);
            res[i] = prev[l] as u8;
            q[i] = match model.predictor {
                Predictor::None => sym as u8,
                Predictor::Med | Predictor::MedResidual => {
                    ((sym as i32 + pred) & code_mask) as u8
                }
            };
        }
    }
    if pos != n_words {
        return Err(corrupt!("{} unread words", n_words - pos));
    }
    if x[..lanes].iter().any(|&v| v != RANS_L) {
        return Err(corrupt!("does not end in the encoder's initial state"));
    }
    Ok(())
}
