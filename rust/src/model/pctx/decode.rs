//! The decoder of the parallel context coder (FORMAT.md 9.4): the portable lane decoders and the
//! raster decoder whose full chunks run in the AVX2 kernel where the CPU has it.

use super::*;

/// Decodes a body that `encode` wrote into `q` (its length is the sample's element count).
/// Every malformed body is Corrupt.
pub fn decode(
    model: &Model,
    tables: &Tables,
    shape: &[usize],
    body: &[u8],
    fill: &[u8],
    fill_ch: Channels,
    q: &mut [u8],
) -> Result<()> {
    let n = q.len();
    decode_into(model, tables, shape, body, fill, fill_ch, q, n, Kernel::Fastest)
}

/// Bytes that `decode_padded` needs past a sample's last code.
pub const DECODE_PAD: usize = 3;

/// `decode` into `q[..n]` of a buffer with `DECODE_PAD` bytes to spare after the sample's `n`
/// codes (their values on return are unspecified), so that no second buffer is needed.
pub fn decode_padded(
    model: &Model,
    tables: &Tables,
    shape: &[usize],
    body: &[u8],
    fill: &[u8],
    fill_ch: Channels,
    q: &mut [u8],
) -> Result<()> {
    let n = q.len().checked_sub(DECODE_PAD).ok_or_else(|| {
        CodecError::InvalidArgument(format!("a padded output of {} bytes", q.len()))
    })?;
    decode_into(model, tables, shape, body, fill, fill_ch, q, n, Kernel::Fastest)
}

/// Which raster decoders `decode_into` may run: the scalar one throughout (what CPUs without
/// AVX2 run), up to the AVX2 kernel reading its tables by the gather instruction or by scalar
/// loads, or the fastest this CPU has (the AVX-512 kernel where `cpu::avx512_decode` says so,
/// else the AVX2 kernel with the reads `cpu::fast_gather` picks). Tests compare them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
pub(super) enum Kernel {
    Scalar,
    Avx2Gathers,
    Avx2Loads,
    Fastest,
}

/// Decodes a sample of `n` elements into `q[..n]` with the raster decoders `kernel` allows.
#[allow(clippy::too_many_arguments)]
pub(super) fn decode_into(
    model: &Model,
    tables: &Tables,
    shape: &[usize],
    body: &[u8],
    fill: &[u8],
    fill_ch: Channels,
    q: &mut [u8],
    n: usize,
    kernel: Kernel,
) -> Result<()> {
    let lay = Layout::new(model, shape);
    if lay.n != n {
        return Err(CodecError::InvalidArgument(format!(
            "output of {n} elements for a sample of {}",
            lay.n
        )));
    }
    let w = Walk::new(&lay, fill_ch);
    let spans = parse_body(body, &lay.chunks())?;
    // Chunks of 8 lanes or more decode 8 lanes a vector (AVX2), whose byte gathers read 4 bytes
    // at an element: such samples decode into a buffer with 3 bytes to spare.
    let gathers = cfg!(target_arch = "x86_64")
        && kernel != Kernel::Scalar
        && spans.iter().any(|c| c.chunk.lanes >= 8);
    if q.len() < n + DECODE_PAD && gathers {
        let mut padded = crate::buffer::zeroed::<u8>(n + DECODE_PAD)?;
        decode_spans(tables, &w, &spans, body, fill, &mut padded, kernel)?;
        q[..n].copy_from_slice(&padded[..n]);
        return Ok(());
    }
    decode_spans(tables, &w, &spans, body, fill, q, kernel)
}

fn decode_spans(
    tables: &Tables,
    w: &Walk,
    spans: &[ChunkSpan],
    body: &[u8],
    fill: &[u8],
    q: &mut [u8],
    kernel: Kernel,
) -> Result<()> {
    // The folded residual of every element, for the predictor whose context reads its
    // neighbours' (none where the vector kernels decode every element: they keep their own;
    // with no array `vector_chunk` takes only chunks that a kernel decodes whole).
    #[cfg(target_arch = "x86_64")]
    let kernels_only = w.raster()
        && spans
            .iter()
            .all(|c| vector_chunk::<2>(tables, &c.chunk, q, &[], kernel));
    #[cfg(not(target_arch = "x86_64"))]
    let kernels_only = false;
    let mut e: Vec<u8> = if tables.predictor == Predictor::MedResidual && !kernels_only {
        crate::buffer::zeroed::<u8>(q.len() + DECODE_PAD)?
    } else {
        Vec::new()
    };
    // A chunk's lane states, or the first lane whose state is below 2^16.
    let states = |c: &ChunkSpan| -> std::result::Result<[u32; 32], usize> {
        let mut x = [0u32; 32];
        for (l, v) in x.iter_mut().enumerate().take(c.chunk.lanes) {
            let at = c.states_at + 4 * l;
            *v = u32::from_le_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
            if *v < RANS_L {
                return Err(l);
            }
        }
        Ok(x)
    };
    let words = |c: &ChunkSpan| &body[c.words_at..c.words_at + 2 * c.words];
    let mut k = 0;
    while k < spans.len() {
        let c = &spans[k];
        let mut x = states(c).map_err(|l| corrupt!("chunk {k} lane {l}: state below 2^16"))?;
        // Two alike chunks go through the AVX-512 kernel together where they can (their
        // states valid; otherwise the first alone, so that errors come in chunk order).
        #[cfg(target_arch = "x86_64")]
        if let Some(d) = spans.get(k + 1) {
            let (a, b) = (&c.chunk, &d.chunk);
            let pair = w.raster()
                && match tables.predictor {
                    Predictor::None => paired_chunks::<0>(tables, a, b, q, &e, kernel),
                    Predictor::Med => paired_chunks::<1>(tables, a, b, q, &e, kernel),
                    Predictor::MedResidual => paired_chunks::<2>(tables, a, b, q, &e, kernel),
                };
            if let (true, Ok(mut x1)) = (pair, states(d)) {
                let (xs, ws) = ([&mut x, &mut x1], [words(c), words(d)]);
                let pair_of = match tables.predictor {
                    Predictor::None => decode_raster_pair::<0>,
                    Predictor::Med => decode_raster_pair::<1>,
                    Predictor::MedResidual => decode_raster_pair::<2>,
                };
                pair_of(tables, w, k, [a, b], xs, ws, fill, q, &mut e)?;
                k += 2;
                continue;
            }
        }
        decode_chunk(
            tables,
            w,
            &c.chunk,
            &mut x,
            words(c),
            fill,
            q,
            &mut e,
            kernel,
        )
        .map_err(|e| match e {
            CodecError::Corrupt(msg) => corrupt!("chunk {k}: {msg}"),
            e => e,
        })?;
        k += 1;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn decode_chunk(
    tb: &Tables,
    w: &Walk,
    c: &Chunk,
    x: &mut [u32; 32],
    words: &[u8],
    fill: &[u8],
    q: &mut [u8],
    e: &mut [u8],
    kernel: Kernel,
) -> Result<()> {
    match (tb.predictor, w.raster()) {
        (Predictor::None, true) => decode_raster::<0>(tb, w, c, x, words, fill, q, e, kernel),
        (Predictor::Med, true) => decode_raster::<1>(tb, w, c, x, words, fill, q, e, kernel),
        (Predictor::MedResidual, true) => {
            decode_raster::<2>(tb, w, c, x, words, fill, q, e, kernel)
        }
        (predictor, false) => {
            let lanes_of = match predictor {
                Predictor::None => decode_lanes::<0>,
                Predictor::Med => decode_lanes::<1>,
                Predictor::MedResidual => decode_lanes::<2>,
            };
            lanes_of(tb, w, c, x, words, fill, q, e)
        }
    }
}

/// The decoder of one chunk, specialized for the predictor. Words are handed out without a
/// branch (a lane that needs none reads one and keeps its state); a corrupt body that runs out
/// reads zeros and is refused at the end, when the count of words used differs from the count
/// given.
#[allow(clippy::too_many_arguments)]
fn decode_lanes<const P: u8>(
    tb: &Tables,
    w: &Walk,
    c: &Chunk,
    x: &mut [u32; 32],
    words: &[u8],
    fill: &[u8],
    q: &mut [u8],
    e: &mut [u8],
) -> Result<()> {
    let Chunk {
        start, lanes, seg, ..
    } = *c;
    let p = tb.precision as u32;
    let slot_mask = (1u32 << p) - 1;
    let code_mask = (1i32 << tb.bits) - 1;
    let n_words = words.len() / 2;
    // The words, then one zero that every read past the end lands on.
    let mut wbuf: Vec<u32> = Vec::with_capacity(n_words + 1);
    wbuf.extend(
        words
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as u32),
    );
    wbuf.push(0);
    let mut pos = 0usize;
    let mut cur = [Cursor::default(); 32];
    for (l, c) in cur.iter_mut().enumerate().take(lanes) {
        *c = Cursor::at(start + l * seg, w);
    }
    let active_at = c.active();
    for s in 0..seg {
        let st = Step::at(s, w);
        let active = active_at(s);
        for (c, xl) in cur[..active].iter_mut().zip(x[..active].iter_mut()) {
            let (ctx, pred) = context_at::<P>(tb, w, st, q, e, c, fill[c.cf]);
            let t = tb.context_map[ctx] as usize;
            let slot = *xl & slot_mask;
            let (sym, cum, freq) = tb.lookup(t, slot);
            let v = freq * (*xl >> p) + slot - cum;
            let need = v < RANS_L;
            let word = wbuf[pos.min(n_words)];
            *xl = std::hint::select_unpredictable(need, (v << 16) | word, v);
            pos += need as usize;
            q[c.i] = if P != 0 {
                ((sym as i32 + pred) & code_mask) as u8
            } else {
                sym as u8
            };
            c.prev = fold(sym as u32, tb.bits);
            if P == 2 {
                e[c.i] = c.prev as u8;
            }
            c.advance(w);
        }
    }
    if pos > n_words {
        return Err(corrupt!("ran out of words"));
    }
    if pos != n_words {
        return Err(corrupt!("{} unread words", n_words - pos));
    }
    if x[..lanes].iter().any(|&v| v != RANS_L) {
        return Err(corrupt!("does not end in the encoder's initial state"));
    }
    Ok(())
}

/// A lane of the raster decoder: its state, position, and the codes it carries from its
/// previous element (left, and the one above that, which is this element's upper left).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RasterLane {
    pub(super) x: u32,
    pub(super) i: usize,
    pub(super) cx: usize,
    pub(super) cy: usize,
    pub(super) cg: usize,
    pub(super) rg: usize,
    pub(super) cf: usize,
    pub(super) rf: usize,
    pub(super) prev: u32,
    pub(super) left: i32,
    pub(super) above: i32,
    /// The folded residual of the element above the previous one (med-residual).
    pub(super) eabove: u32,
}

/// A raster chunk ready to decode: its words (then 16 zeros that every read past the end lands
/// on: a vector's worth), the word position, and each lane's state and place.
struct RasterChunk {
    wbuf: Vec<u16>,
    n_words: usize,
    pos: usize,
    ln: [RasterLane; 32],
}

impl RasterChunk {
    fn new(w: &Walk, c: &Chunk, x: &[u32; 32], words: &[u8]) -> RasterChunk {
        let n_words = words.len() / 2;
        let mut wbuf: Vec<u16> = Vec::with_capacity(n_words + 16);
        wbuf.extend(
            words
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]])),
        );
        wbuf.extend_from_slice(&[0; 16]);
        let mut ln = [RasterLane::default(); 32];
        for (l, r) in ln.iter_mut().enumerate().take(c.lanes) {
            let cur = Cursor::at(c.start + l * c.seg, w);
            *r = RasterLane {
                x: x[l],
                i: cur.i,
                cx: cur.cx,
                cy: cur.cy,
                cg: cur.cg,
                rg: cur.rg,
                cf: cur.cf,
                rf: cur.rf,
                prev: 0,
                left: 0,
                above: 0,
                eabove: 0,
            };
        }
        RasterChunk {
            wbuf,
            n_words,
            pos: 0,
            ln,
        }
    }
}

/// Whether the vector kernels can decode chunk `c`'s first steps (`kernel` allowing): 8 lanes
/// or a multiple, the slot table built, `q` holding the chunk (3 bytes more without a
/// predictor: the AVX2 kernel gathers the code above) and so `e` for med-residual, unless `e`
/// is empty and the kernel decodes every step of the chunk (no folded residual is then read
/// after it, nor written), and indices that fit an i32.
#[cfg(target_arch = "x86_64")]
fn vector_chunk<const P: u8>(tb: &Tables, c: &Chunk, q: &[u8], e: &[u8], kernel: Kernel) -> bool {
    c.lanes.is_multiple_of(8)
        && !tb.slots.is_empty()
        && q.len() >= c.start + c.m + if P == 0 { 3 } else { 0 }
        && (P != 2 || e.len() >= c.start + c.m || e.is_empty() && c.m == c.lanes * c.seg)
        && c.start + c.m < i32::MAX as usize
        && kernel != Kernel::Scalar
        && crate::cpu::avx2_popcnt()
}

/// Whether two chunks decode together in the AVX-512 kernel: each a vector chunk of 32 lanes
/// whose every lane has `seg` elements (no step left to the scalar decoder), alike. (Only a
/// sample's last chunk can have fewer lanes than its first, which has 32 or at most 8: FORMAT.md
/// 9.4.)
#[cfg(target_arch = "x86_64")]
fn paired_chunks<const P: u8>(
    tb: &Tables,
    a: &Chunk,
    b: &Chunk,
    q: &[u8],
    e: &[u8],
    kernel: Kernel,
) -> bool {
    let whole = |c: &Chunk| c.lanes == 32 && c.m == c.lanes * c.seg;
    kernel == Kernel::Fastest
        && whole(a)
        && (b.lanes, b.m, b.seg) == (a.lanes, a.m, a.seg)
        && vector_chunk::<P>(tb, a, q, e, kernel)
        && vector_chunk::<P>(tb, b, q, e, kernel)
        && crate::cpu::avx512_decode()
}

/// Decodes two chunks that `paired_chunks` accepts together; an error names the chunk (`k` or
/// `k + 1`).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn decode_raster_pair<const P: u8>(
    tb: &Tables,
    w: &Walk,
    k: usize,
    c: [&Chunk; 2],
    x: [&mut [u32; 32]; 2],
    words: [&[u8]; 2],
    fill: &[u8],
    q: &mut [u8],
    e: &mut [u8],
) -> Result<()> {
    let [mut r0, mut r1] = [0, 1].map(|j| RasterChunk::new(w, c[j], x[j], words[j]));
    let lanes = 32;
    let fill32: Vec<u32> = fill.iter().map(|&f| f as u32).collect();
    let ring = (w.dx + 1) * lanes;
    let [mut rows0, mut rows1] = [0, 1].map(|_| vec![0u8; ring]);
    let [mut erows0, mut erows1] = [0, 1].map(|_| vec![0u8; if P == 2 { ring } else { 0 }]);
    {
        let mut chunks = [
            avx512::Lanes {
                ln: &mut r0.ln,
                words: &r0.wbuf,
                n_words: r0.n_words,
                pos: 0,
                rows: &mut rows0,
                erows: &mut erows0,
            },
            avx512::Lanes {
                ln: &mut r1.ln,
                words: &r1.wbuf,
                n_words: r1.n_words,
                pos: 0,
                rows: &mut rows1,
                erows: &mut erows1,
            },
        ];
        // SAFETY: AVX-512 F, BW, VL, VBMI and VBMI2 and POPCNT are present, the slot table is
        // built and padded, `q` (and `e`) hold both chunks and their indices fit an i32
        // (`paired_chunks`); each ring holds `dx + 1` rows of `lanes` bytes and each `wbuf` 16
        // words past its body; `fill32` one entry per channel; the raster layout has `dx` at
        // least 2; every lane has an element at each of the `seg` steps.
        unsafe { avx512::steps::<P, 2, 2, 4>(tb, w, c[0].seg, &fill32, q, e, &mut chunks) };
        r0.pos = chunks[0].pos;
        r1.pos = chunks[1].pos;
    }
    let named = |j: usize| {
        move |e: CodecError| match e {
            CodecError::Corrupt(msg) => corrupt!("chunk {}: {msg}", k + j),
            e => e,
        }
    };
    let [x0, x1] = x;
    raster_tail::<P>(tb, w, c[0], &mut r0, c[0].seg, x0, fill, q, e).map_err(named(0))?;
    raster_tail::<P>(tb, w, c[1], &mut r1, c[1].seg, x1, fill, q, e).map_err(named(1))
}

/// The decoder for the usual layout — left is the previous element (the last axis), up is the
/// previous row — where a lane's left and upper-left neighbours are the codes it decoded and
/// loaded one step before: one or two loads per element instead of three or four. Predictor
/// `P`: 0 none, 1 med, 2 med-residual (which reads and writes the folded residuals `e`).
#[allow(clippy::too_many_arguments)]
fn decode_raster<const P: u8>(
    tb: &Tables,
    w: &Walk,
    c: &Chunk,
    x: &mut [u32; 32],
    words: &[u8],
    fill: &[u8],
    q: &mut [u8],
    e: &mut [u8],
    kernel: Kernel,
) -> Result<()> {
    let mut rc = RasterChunk::new(w, c, x, words);
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut s_first = 0;
    #[cfg(not(target_arch = "x86_64"))]
    let _ = kernel;
    #[cfg(target_arch = "x86_64")]
    if vector_chunk::<P>(tb, c, q, e, kernel) {
        let lanes = c.lanes;
        // Every lane has an element at steps below `full`: those go 8 or 16 lanes at a time.
        let full = c.m - (lanes - 1) * c.seg;
        let fill32: Vec<u32> = fill.iter().map(|&f| f as u32).collect();
        let ring = (w.dx + 1) * lanes;
        let mut rows = vec![0u8; ring];
        let mut erows = vec![0u8; if P == 2 { ring } else { 0 }];
        if lanes.is_multiple_of(16) && kernel == Kernel::Fastest && crate::cpu::avx512_decode() {
            let mut chunks = [avx512::Lanes {
                ln: &mut rc.ln,
                words: &rc.wbuf,
                n_words: rc.n_words,
                pos: 0,
                rows: &mut rows,
                erows: &mut erows,
            }];
            // SAFETY: AVX-512 F, BW, VL, VBMI and VBMI2 and POPCNT are present; the slot table
            // is built and padded; `q` (and `e` for med-residual) hold the chunk and its indices
            // fit an i32 (`vector_chunk`); `rows` (and `erows`) hold `dx + 1` rows of `lanes`
            // bytes; `wbuf` has 16 words past the body; `fill32` one entry per channel (the
            // counters stay below `f_channels`); the raster layout has `dx` at least 2; every
            // lane has an element at steps below `full`.
            unsafe {
                if lanes == 16 {
                    avx512::steps::<P, 1, 1, 1>(tb, w, full, &fill32, q, e, &mut chunks);
                } else {
                    avx512::steps::<P, 2, 1, 2>(tb, w, full, &fill32, q, e, &mut chunks);
                }
            }
            rc.pos = chunks[0].pos;
        } else {
            // SAFETY: AVX2 and POPCNT are present; the slot table is built and padded; `q`
            // (and `e` for med-residual) hold the chunk, `q` 3 bytes more without a predictor
            // (`vector_chunk`); `rows` (and `erows`) hold `dx + 1` rows of `lanes` bytes;
            // `wbuf` has 8 words past the body; `fill32` one entry per channel (the counters
            // stay below `f_channels`); indices fit an i32; the raster layout has `dx` at
            // least 2.
            let gathers = match kernel {
                Kernel::Avx2Gathers => true,
                Kernel::Avx2Loads => false,
                _ => crate::cpu::fast_gather(),
            };
            let steps = if gathers {
                avx2::steps::<P, true>
            } else {
                avx2::steps::<P, false>
            };
            rc.pos = unsafe {
                steps(
                    tb, w, lanes, 0, full, &mut rc.ln, &rc.wbuf, rc.n_words, 0, &fill32, q, e,
                    &mut rows, &mut erows,
                )
            };
        }
        s_first = full;
    }
    raster_tail::<P>(tb, w, c, &mut rc, s_first, x, fill, q, e)
}

/// The steps of a raster chunk from `s_first` on, one element at a time, then the checks that
/// the chunk used its words exactly and ended in the encoder's initial states (left in `x`).
#[allow(clippy::too_many_arguments)]
fn raster_tail<const P: u8>(
    tb: &Tables,
    w: &Walk,
    c: &Chunk,
    rc: &mut RasterChunk,
    s_first: usize,
    x: &mut [u32; 32],
    fill: &[u8],
    q: &mut [u8],
    e: &mut [u8],
) -> Result<()> {
    let Chunk { lanes, seg, .. } = *c;
    let dx = w.dx;
    let p = tb.precision as u32;
    let slot_mask = (1u32 << p) - 1;
    let code_mask = (1i32 << tb.bits) - 1;
    let n_words = rc.n_words;
    let wbuf = &rc.wbuf;
    let ln = &mut rc.ln;
    let mut pos = rc.pos;
    let active_at = c.active();
    for s in s_first..seg {
        let st = Step::at(s, w);
        let active = active_at(s);
        for r in ln[..active].iter_mut() {
            let i = r.i;
            let f = fill[r.cf] as i32;
            let has_l = st.l && r.cx > 0;
            let has_u = st.u && r.cy > 0;
            let has_ul = has_l && has_u && st.ul;
            let above = q[if has_u { i - dx } else { i }] as i32;
            let l = select(has_l, r.left, f);
            let u = select(has_u, above, f);
            let ul = select(has_ul, r.above, f);
            let g = tb.ctx_g[r.cg];
            let (ctx, pred) = if P != 0 {
                let has_ur = has_u && r.cx + 1 < dx;
                let ur = select(has_ur, q[if has_ur { i + 1 - dx } else { i }] as i32, u);
                let act = (l - ul).abs() + (u - ul).abs() + (ur - u).abs();
                let pred = med(l, u, ul);
                let prop_c = if P == 2 {
                    let el = select(has_l, r.prev as i32, 0);
                    let eu = select(has_u, e[if has_u { i - dx } else { i }] as i32, 0);
                    let eul = select(has_ul, e[if has_ul { i - dx - 1 } else { i }] as i32, 0);
                    el.max(eu).max(eul) as usize
                } else {
                    r.prev as usize
                };
                (
                    g + tb.ctx_a[act as usize] + tb.ctx_b[pred as usize] + tb.ctx_c[prop_c],
                    pred,
                )
            } else {
                (
                    g + tb.ctx_a[l as usize] + tb.ctx_b[u as usize] + tb.ctx_c[ul as usize],
                    0,
                )
            };
            let t = tb.context_map[ctx as usize] as usize;
            let slot = r.x & slot_mask;
            let (sym, cum, freq) = tb.lookup(t, slot);
            let v = freq * (r.x >> p) + slot - cum;
            let need = v < RANS_L;
            let word = wbuf[pos.min(n_words)] as u32;
            r.x = std::hint::select_unpredictable(need, (v << 16) | word, v);
            pos += need as usize;
            let code = if P != 0 {
                (sym as i32 + pred) & code_mask
            } else {
                sym as i32
            };
            q[i] = code as u8;
            r.prev = fold(sym as u32, tb.bits);
            if P == 2 {
                e[i] = r.prev as u8;
                r.eabove = e[if has_u { i - dx } else { i }] as u32;
            }
            r.left = code;
            r.above = above;
            r.i = i + 1;
            r.cx += 1;
            if r.cx == dx {
                r.cx = 0;
                r.cy += 1;
                if r.cy == w.dy {
                    r.cy = 0;
                }
            }
            r.rg += 1;
            if r.rg == w.g_inner {
                r.rg = 0;
                r.cg += 1;
                if r.cg == w.g_channels {
                    r.cg = 0;
                }
            }
            r.rf += 1;
            if r.rf == w.f_inner {
                r.rf = 0;
                r.cf += 1;
                if r.cf == w.f_channels {
                    r.cf = 0;
                }
            }
        }
    }
    for (l, r) in ln.iter().enumerate().take(lanes) {
        x[l] = r.x;
    }
    if pos > n_words {
        return Err(corrupt!("ran out of words"));
    }
    if pos != n_words {
        return Err(corrupt!("{} unread words", n_words - pos));
    }
    if x[..lanes].iter().any(|&v| v != RANS_L) {
        return Err(corrupt!("does not end in the encoder's initial state"));
    }
    Ok(())
}
