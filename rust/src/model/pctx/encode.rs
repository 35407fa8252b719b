//! The encoder of the parallel context coder (FORMAT.md 9.4): a sample's codes to a body of
//! chunks, and the parse of a body into its chunks' spans.

use super::*;

/// Codes the codes `q` of one sample (FORMAT.md 9.4). `fill[ch.of(i)]` is the code of zero of
/// element `i`'s quantization channel, which stands in for a missing neighbour.
///
/// # Panics
/// If a code or a fill is `2^bits` or more (the model's tables are read without bounds
/// checks at indices that follow from them; quantized codes never are).
pub fn encode(
    model: &Model,
    tables: &Tables,
    shape: &[usize],
    q: &[u8],
    fill: &[u8],
    fill_ch: Channels,
) -> Vec<u8> {
    let top = q.iter().chain(fill).fold(0u8, |m, &c| m | c);
    assert!(
        u32::from(top) >> model.bits == 0,
        "a code or fill of 2^{} or more",
        model.bits
    );
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
    let mut scratch = SCRATCH.with(|c| c.take());
    let EncodeScratch {
        decisions,
        words,
        e,
        sc,
    } = &mut scratch;
    if tables.predictor == Predictor::MedResidual {
        // Every entry is written before it is read (a neighbour's only after its element), so
        // what an earlier sample left is never used.
        e.resize(q.len(), 0);
    } else {
        e.clear();
    }
    for (
        k,
        chunk @ &Chunk {
            start,
            m,
            lanes,
            seg,
        },
    ) in parts.iter().enumerate()
    {
        // Every entry below m is written before it is read, so what an earlier chunk or
        // sample left is never used: grown, never cleared (a memset a chunk measured 3 %).
        if decisions.len() < m {
            decisions.resize(m, 0);
        }
        let raster = w.raster();
        for l in 0..lanes {
            let b = l * seg;
            if b >= m {
                break;
            }
            let run = Column {
                at: b,
                len: seg.min(m - b),
            };
            match (raster, tables.predictor) {
                (true, predictor) => {
                    let pass = match predictor {
                        Predictor::None => raster_pass::<0>,
                        Predictor::Med => raster_pass::<1>,
                        Predictor::MedResidual => raster_pass::<2>,
                    };
                    pass(tables, &w, q, e, fill, start + b, decisions, run, sc)
                }
                (false, predictor) => {
                    let mut c = Cursor::at(start + b, &w);
                    for s in 0..run.len {
                        let st = Step::at(s, &w);
                        let (ctx, pred) = match predictor {
                            Predictor::None => {
                                context_at::<0>(tables, &w, st, q, e, &c, fill[c.cf])
                            }
                            Predictor::Med => context_at::<1>(tables, &w, st, q, e, &c, fill[c.cf]),
                            Predictor::MedResidual => {
                                context_at::<2>(tables, &w, st, q, e, &c, fill[c.cf])
                            }
                        };
                        let t = tables.context_map[ctx] as usize;
                        let code = q[c.i] as i32;
                        let sym = if predictor.predicts() {
                            (code - pred) & mask
                        } else {
                            code
                        } as usize;
                        decisions[run.index(s)] = tables.intervals[(t << model.bits) + sym];
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
        // Each element emits at most one word; written without a branch, kept when emitted
        // (every word below the count is written, so the array is grown, never cleared).
        if words.len() < m + 32 {
            words.resize(m + 32, 0);
        }
        let mut n_words = 0usize;
        let mut row = [0u32; 32];
        // Every lane has an element at the steps below `full`: on AVX2 those go 8 lanes a
        // vector, after the steps above it (backwards, as every step).
        let full = m - (lanes - 1) * seg;
        #[cfg(target_arch = "x86_64")]
        let vector = lanes.is_multiple_of(8) && m < i32::MAX as usize && crate::cpu::avx2_popcnt();
        #[cfg(not(target_arch = "x86_64"))]
        let vector = false;
        let low = if vector { full } else { 0 };
        if lanes == 1 {
            // One lane (a sample under 8,192 elements): its state in a register, its words
            // appended as it goes, without `rans_step`'s arrays a step (NOTES 55).
            let mut v = x[0];
            for &e in decisions[..m].iter().rev() {
                let (next, word, out) = rans_put(v, e, p);
                words[n_words] = word;
                n_words += out as usize;
                v = next;
            }
            x[0] = v;
        } else {
            let active_at = chunk.active();
            for s in (low..seg).rev() {
                // Lanes that have an element at step s: a prefix (later lanes may be shorter).
                let active = active_at(s);
                for (l, r) in row[..active].iter_mut().enumerate() {
                    *r = decisions[l * seg + s];
                }
                n_words = rans_step(&mut x[..active], &row[..active], p, words, n_words);
            }
        }
        #[cfg(target_arch = "x86_64")]
        if vector {
            n_words = if lanes.is_multiple_of(16) && crate::cpu::avx512_decode() {
                // SAFETY: AVX-512 F, BW, VL and VBMI2 and POPCNT are present; `lanes` is a
                // multiple of 16 and at most 32, every lane has an element at the steps below
                // `full` (so `l · seg + s < m` is an index of `decisions`, below 2^31), and
                // `words` has 16 slots past any count of words the elements can emit.
                unsafe {
                    if lanes == 16 {
                        avx512_steps::<1>(decisions, seg, full, &mut x, p, words, n_words)
                    } else {
                        avx512_steps::<2>(decisions, seg, full, &mut x, p, words, n_words)
                    }
                }
            } else {
                // SAFETY: AVX2 and POPCNT are present; `lanes` is a multiple of 8 and at most
                // 32, every lane has an element at the steps below `full` (so `l · seg + s <
                // m` is an index of `decisions`, below 2^31), and `words` has 8 slots past any
                // count of words the elements can emit.
                unsafe { avx2_steps(decisions, seg, lanes, full, &mut x, p, words, n_words) }
            };
        }
        for &v in &x[..lanes] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        // The words in the order they were emitted, backwards (the decoder reads forwards).
        let at = out.len();
        out.resize(at + 2 * n_words, 0);
        for (b, &wd) in out[at..]
            .chunks_exact_mut(2)
            .zip(words[..n_words].iter().rev())
        {
            b.copy_from_slice(&wd.to_le_bytes());
        }
        if parts.len() > 1 {
            out[4 * k..4 * k + 4].copy_from_slice(&(n_words as u32).to_le_bytes());
        }
    }
    if scratch.bytes() <= KEEP_SCRATCH {
        SCRATCH.with(|c| c.replace(scratch));
    }
    out
}

/// The encoder's working arrays, kept from one sample to the next on each thread: fresh ones
/// each time cost the stem's encode a third of its time in page faults (benches/NOTES.md 45).
#[derive(Default)]
struct EncodeScratch {
    /// Per element of the chunk (lane by lane), the interval of its symbol, `cum | freq << 16`
    /// (Tables::intervals).
    decisions: Vec<u32>,
    words: Vec<u16>,
    /// The folded residual of every element, for the predictor whose context reads its
    /// neighbours' (each lane fills its segment before a later element of it looks).
    e: Vec<u8>,
    sc: RasterScratch,
}

impl EncodeScratch {
    fn bytes(&self) -> usize {
        4 * self.decisions.capacity() + 2 * self.words.capacity() + self.e.capacity()
    }
}

/// A thread keeps its scratch up to this many bytes (7 bytes an element: samples up to about
/// 600 K elements); a larger sample's is freed after it.
const KEEP_SCRATCH: usize = 4 << 20;

thread_local! {
    static SCRATCH: std::cell::RefCell<EncodeScratch> = Default::default();
}

/// Where a lane's decisions go in the chunk's array: its step `s` at `at + s`, `len` steps.
#[derive(Debug, Clone, Copy)]
struct Column {
    at: usize,
    len: usize,
}

impl Column {
    #[inline(always)]
    fn index(&self, s: usize) -> usize {
        self.at + s
    }
}

/// For 8 lanes' emit mask (bit j: lane j emits), the byte shuffle that takes their words,
/// lane 7 first (as `avx2_steps` lays them out: lane 7 at word 0), to the front, in that order.
#[cfg(target_arch = "x86_64")]
static COMPRESS: [[u8; 16]; 256] = {
    let mut t = [[0x80u8; 16]; 256];
    let mut mask = 0;
    while mask < 256 {
        let mut k = 0;
        let mut j = 8;
        while j > 0 {
            j -= 1;
            if mask >> j & 1 == 1 {
                // Lane j's word sits at word 7 - j.
                t[mask][2 * k] = (2 * (7 - j)) as u8;
                t[mask][2 * k + 1] = (2 * (7 - j) + 1) as u8;
                k += 1;
            }
        }
        mask += 1;
    }
    t
};

/// The encoder's steps `full - 1` down to 0 of a chunk of `lanes` lanes (a multiple of 8, all
/// active at those steps), 8 lanes a vector: `rans_step`'s arithmetic and words.
/// `decisions` holds the chunk's intervals lane by lane (`l · seg + s`).
///
/// # Safety
/// AVX2 and POPCNT must be available; `lanes` a multiple of 8 up to 32; `(lanes - 1) · seg +
/// full` at most `decisions.len()` and below 2^31; `words` must have room for 8 words past the
/// most the steps can emit (one an element) after `n_words`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx2_steps(
    decisions: &[u32],
    seg: usize,
    lanes: usize,
    full: usize,
    x: &mut [u32; 32],
    p: u32,
    words: &mut [u16],
    mut n_words: usize,
) -> usize {
    use std::arch::x86_64::*;
    let groups = lanes / 8;
    let mut xs = [_mm256_setzero_si256(); 4];
    let mut base = [_mm256_setzero_si256(); 4];
    for g in 0..groups {
        xs[g] = _mm256_loadu_si256(x.as_ptr().add(8 * g).cast());
        let l0 = (8 * g * seg) as i32;
        let sg = seg as i32;
        base[g] = _mm256_setr_epi32(
            l0,
            l0 + sg,
            l0 + 2 * sg,
            l0 + 3 * sg,
            l0 + 4 * sg,
            l0 + 5 * sg,
            l0 + 6 * sg,
            l0 + 7 * sg,
        );
    }
    let shift_p = _mm_cvtsi32_si128(p as i32);
    let shift_emit = _mm_cvtsi32_si128(32 - p as i32);
    let low16 = _mm256_set1_epi32(0xFFFF);
    let sign = _mm256_set1_epi32(i32::MIN);
    let two31 = _mm256_set1_pd(2147483648.0);
    // Per 128-bit half: the low words of its 4 lanes, last lane first, in its low 8 bytes.
    let rev_words = _mm256_setr_epi8(
        12, 13, 8, 9, 4, 5, 0, 1, -1, -1, -1, -1, -1, -1, -1, -1, 12, 13, 8, 9, 4, 5, 0, 1, -1, -1,
        -1, -1, -1, -1, -1, -1,
    );
    let dp = decisions.as_ptr().cast::<i32>();
    let wp = words.as_mut_ptr();
    for s in (0..full).rev() {
        let sv = _mm256_set1_epi32(s as i32);
        for g in (0..groups).rev() {
            let e = _mm256_i32gather_epi32::<4>(dp, _mm256_add_epi32(base[g], sv));
            let cum = _mm256_and_si256(e, low16);
            let freq = _mm256_srli_epi32::<16>(e);
            let v = xs[g];
            let limit = _mm256_sll_epi32(freq, shift_emit);
            let emit = _mm256_cmpeq_epi32(_mm256_max_epu32(v, limit), v);
            let mask = _mm256_movemask_ps(_mm256_castsi256_ps(emit)) as usize;
            let packed = _mm256_shuffle_epi8(v, rev_words);
            let ws = _mm_unpacklo_epi64(
                _mm256_extracti128_si256::<1>(packed),
                _mm256_castsi256_si128(packed),
            );
            let ws = _mm_shuffle_epi8(ws, _mm_loadu_si128(COMPRESS[mask].as_ptr().cast()));
            _mm_storeu_si128(wp.add(n_words).cast(), ws);
            n_words += (mask as u32).count_ones() as usize;
            let w = _mm256_blendv_epi8(v, _mm256_srli_epi32::<16>(v), emit);
            // w / freq exactly in binary64 (w < 2^32, freq < 2^16; the quotient is below
            // 2^(32 - p), so it fits an i32): w is converted through its sign-flipped i32.
            let wx = _mm256_xor_si256(w, sign);
            let q = |wi: __m128i, fi: __m128i| -> __m128i {
                let wd = _mm256_add_pd(_mm256_cvtepi32_pd(wi), two31);
                _mm256_cvttpd_epi32(_mm256_div_pd(wd, _mm256_cvtepi32_pd(fi)))
            };
            let quot = _mm256_set_m128i(
                q(
                    _mm256_extracti128_si256::<1>(wx),
                    _mm256_extracti128_si256::<1>(freq),
                ),
                q(_mm256_castsi256_si128(wx), _mm256_castsi256_si128(freq)),
            );
            xs[g] = _mm256_add_epi32(
                _mm256_add_epi32(_mm256_sll_epi32(quot, shift_p), cum),
                _mm256_sub_epi32(w, _mm256_mullo_epi32(quot, freq)),
            );
        }
    }
    for (g, v) in xs.iter().enumerate().take(groups) {
        _mm256_storeu_si256(x.as_mut_ptr().add(8 * g).cast(), *v);
    }
    n_words
}

/// `avx2_steps` with AVX-512, `VECS` vectors of 16 lanes (`lanes` 16 or 32), the lanes' states
/// held in binary64 (every value the arithmetic meets is an integer below 2^53, so exact):
/// `x' = w + q · (2^p - f) + cum` with `q = floor(w · r)` for a reciprocal `r` of `f` just
/// above `1 / f` (`reciprocal_above`), which gives the quotient exactly without a division
/// or a correction, so that a state's chain of dependent operations is short (benches/NOTES.md
/// 50). The words of the lanes that emit, highest lane first, are compressed in a register.
///
/// # Safety
/// AVX-512 F, BW, VL and VBMI2 and POPCNT must be available; `VECS` 1 or 2; `(lanes - 1) ·
/// seg + full` at most `decisions.len()` and below 2^31; `words` must have room for 16 words
/// past the most the steps can emit (one an element) after `n_words`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi2,popcnt")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx512_steps<const VECS: usize>(
    decisions: &[u32],
    seg: usize,
    full: usize,
    x: &mut [u32; 32],
    p: u32,
    words: &mut [u16],
    mut n_words: usize,
) -> usize {
    use std::arch::x86_64::*;
    let (vecs, lanes) = (VECS, 16 * VECS);
    // Lanes 8h..8h + 7 of the 32, as binary64.
    let mut xd = [_mm512_setzero_pd(); 4];
    let mut base = [_mm512_setzero_si512(); 2];
    let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for v in 0..vecs {
        for h in 0..2 {
            xd[2 * v + h] =
                _mm512_cvtepu32_pd(_mm256_loadu_si256(x.as_ptr().add(16 * v + 8 * h).cast()));
        }
        base[v] = _mm512_mullo_epi32(
            _mm512_add_epi32(iota, _mm512_set1_epi32(16 * v as i32)),
            _mm512_set1_epi32(seg as i32),
        );
    }
    let low16 = _mm512_set1_epi32(0xFFFF);
    // A lane emits when x >= f · 2^(32 - p); then w = floor(x / 2^16).
    let to_limit = _mm512_set1_pd((1u64 << (32 - p)) as f64);
    let slots = _mm512_set1_pd((1u64 << p) as f64);
    let word = _mm512_set1_pd(1.0 / 65536.0);
    // Word j of a vector's low words is lane 15 - j's.
    let reverse = _mm256_setr_epi16(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    let dp = decisions.as_ptr().cast::<i32>();
    let wp = words.as_mut_ptr();
    const DOWN: i32 = _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC;
    const PREFETCH: usize = 128;
    for s in (0..full).rev() {
        let sv = _mm512_set1_epi32(s as i32);
        // Each lane reads its own stream of intervals backwards, `seg` apart (32 streams of a
        // 2^16-element chunk span 256 KiB, a plane lane's 1.6 MiB): every 16 steps, the lines
        // 128 steps on are fetched (the gather waited on them: benches/NOTES.md 50).
        if s % 16 == 0 && s >= PREFETCH {
            for l in 0..lanes {
                _mm_prefetch::<_MM_HINT_T0>(dp.add(l * seg + s - PREFETCH).cast());
            }
        }
        for v in (0..vecs).rev() {
            let e = _mm512_i32gather_epi32::<4>(_mm512_add_epi32(base[v], sv), dp);
            let cum = _mm512_and_si512(e, low16);
            let freq = _mm512_srli_epi32::<16>(e);
            let halves =
                |a: __m512i| [_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64::<1>(a)];
            let (cums, freqs) = (halves(cum), halves(freq));
            let mut emit = 0u16;
            let mut low = [_mm256_setzero_si256(); 2];
            for h in 0..2 {
                let xh = xd[2 * v + h];
                let f = _mm512_cvtepu32_pd(freqs[h]);
                low[h] = _mm512_cvttpd_epu32(xh);
                let out = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(xh, _mm512_mul_pd(f, to_limit));
                emit |= (out as u16) << (8 * h);
                let w = _mm512_mask_roundscale_pd::<DOWN>(xh, out, _mm512_mul_pd(xh, word));
                let q = _mm512_roundscale_pd::<DOWN>(_mm512_mul_pd(w, reciprocal_above(f)));
                xd[2 * v + h] = _mm512_fmadd_pd(
                    q,
                    _mm512_sub_pd(slots, f),
                    _mm512_add_pd(w, _mm512_cvtepu32_pd(cums[h])),
                );
            }
            let lows = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low[0]), low[1]);
            let ws = _mm256_maskz_compress_epi16(
                emit.reverse_bits(),
                _mm256_permutexvar_epi16(reverse, _mm512_cvtepi32_epi16(lows)),
            );
            _mm256_storeu_si256(wp.add(n_words).cast(), ws);
            n_words += emit.count_ones() as usize;
        }
    }
    for (h, xh) in xd.iter().enumerate().take(2 * vecs) {
        _mm256_storeu_si256(x.as_mut_ptr().add(8 * h).cast(), _mm512_cvttpd_epu32(*xh));
    }
    n_words
}

/// For 8 lanes of `1 <= f < 2^16` (as binary64), a reciprocal `r` with `1 / f < r < (1 /
/// f)(1 + 2^-47)`, so that `floor(w · r) = floor(w / f)` for every `w < 2^32`: `w · r`
/// (rounded to nearest) is at least `w / f`, and at most `(w / f)(1 + 2^-46)`, less than
/// `1 / f` over it, the least distance from a quotient that is not whole to the next
/// integer. `vrcp14pd` (within 2^-14), two Newton steps (within about 2^-52), then raised by
/// 2^-48.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn reciprocal_above(f: std::arch::x86_64::__m512d) -> std::arch::x86_64::__m512d {
    use std::arch::x86_64::*;
    let one = _mm512_set1_pd(1.0);
    let r = _mm512_rcp14_pd(f);
    let r = _mm512_fmadd_pd(r, _mm512_fnmadd_pd(f, r, one), r);
    let r = _mm512_fmadd_pd(r, _mm512_fnmadd_pd(f, r, one), r);
    _mm512_mul_pd(r, _mm512_set1_pd(1.0 + f64::EPSILON * 16.0))
}

/// `1 / f` raised by a factor `1 + 2^-48`, so that `floor(w · r) = floor(w / f)` exactly for
/// every `w < 2^32` and `f < 2^16` (as the AVX-512 steps' reciprocal: NOTES 50). The
/// division's quotient is within `2^-53` of `1 / f`, so `r` lies in `[1 / f, (1 + 2^-47) / f]`;
/// then `w · r` exceeds `w / f` by less than `2^-15 / f`, and its rounding by at most `2^-21`:
/// together less than the `1 / f` between `w / f` and the next integer when `w / f` is not
/// one, and never below `w / f` when it is.
#[inline(always)]
fn reciprocal_up(f: u32) -> f64 {
    (1.0 / f as f64) * (1.0 + f64::EPSILON * 16.0)
}

/// `floor(2^48 / f) + 1`: `floor(w · 2^16 · magic(f) / 2^64) = floor(w / f)` for every
/// `w < 2^32` and `0 < f < 2^16`. `magic(f)` exceeds `2^48 / f` by at most 1, so `w ·
/// magic(f) / 2^48` exceeds `w / f` by more than 0 and at most `w / 2^48 < 2^-16`: less than
/// the `1 / f > 2^-16` between `w / f` and the next integer when it is not one.
#[inline(always)]
fn magic(f: u32) -> u64 {
    (1u64 << 48) / u64::from(f) + 1
}

/// `floor(w / f)` for `w < 2^32` and `0 < f < 2^16`, with only a multiply on `w`'s chain. On
/// x86-64, by `magic` (an integer division, then one 64 x 64 -> 128-bit multiply on the chain):
/// one-lane encodes 27-32 % faster than by `reciprocal_up` (a conversion, a multiply and a
/// conversion back on the chain; benches/NOTES.md 61). Elsewhere by `reciprocal_up`: a 64-bit
/// `udiv` of a 33-48-bit quotient takes up to 36 cycles on the Cortex-A72 (a binary64 `fdiv`
/// at most 18), and no ARM core was measured.
#[inline(always)]
fn quotient(w: u32, f: u32) -> u32 {
    if cfg!(target_arch = "x86_64") {
        ((u128::from(u64::from(w) << 16) * u128::from(magic(f))) >> 64) as u32
    } else {
        quotient_binary64(w, f)
    }
}

/// `floor(w / f)` by `reciprocal_up`, for the same `w` and `f` as `quotient`.
#[inline(always)]
fn quotient_binary64(w: u32, f: u32) -> u32 {
    (w as f64 * reciprocal_up(f)) as u32
}

/// One encoder step of the lanes `x` (the lanes active at that step), whose elements have the
/// intervals `row` (`cum | freq << 16`), at precision `p`: the lanes' words go into `words`
/// from `n_words` on, the highest lane first (FORMAT.md 9.4: the decoder reads them lowest lane
/// first). Returns the new count of words; `words` must have room for `x.len()` more. In two
/// loops: the states of every lane, then the words, a branch-free append. The lanes do not
/// depend on each other, so from 8 lanes on the states take the binary64 quotient, which the
/// compiler vectorizes across them, division included (`quotient`'s integer one does not
/// vectorize: 4-5 % slower there, benches/NOTES.md 61).
#[inline]
fn rans_step(x: &mut [u32], row: &[u32], p: u32, words: &mut [u16], mut n_words: usize) -> usize {
    let mut low = [0u16; 32];
    let mut emit = [0u8; 32];
    let k = x.len();
    let lanes = x.iter_mut().zip(row).zip(&mut low[..k]).zip(&mut emit[..k]);
    let states = |quot: fn(u32, u32) -> u32| {
        for (((v, &e), lo), em) in lanes {
            let out;
            (*v, *lo, out) = rans_put_by(*v, e, p, quot);
            *em = out as u8;
        }
    };
    if k >= 8 {
        states(quotient_binary64);
    } else {
        states(quotient);
    }
    for j in (0..k).rev() {
        words[n_words] = low[j];
        n_words += emit[j] as usize;
    }
    n_words
}

/// A state `v` after it codes an element of interval `e` (`cum | freq << 16`) at precision
/// `p`, the word it would emit (its low 16 bits) and whether it does.
#[inline(always)]
fn rans_put(v: u32, e: u32, p: u32) -> (u32, u16, bool) {
    // w / freq exactly, by a multiply: the division is off the state's chain (it needs only
    // the interval), which is what a lane's steps wait on (benches/NOTES.md 55, 61).
    rans_put_by(v, e, p, quotient)
}

/// `rans_put` with the quotient `quot(w, freq)`, which must be `floor(w / freq)`.
#[inline(always)]
fn rans_put_by(v: u32, e: u32, p: u32, quot: impl Fn(u32, u32) -> u32) -> (u32, u16, bool) {
    let (cum, freq) = (e & 0xFFFF, e >> 16);
    let out = v >= freq << (32 - p);
    let w = if out { v >> 16 } else { v };
    let quot = quot(w, freq);
    ((quot << p) + (w - quot * freq) + cum, v as u16, out)
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

/// Per-lane scratch of the raster encoder: per element of a piece its three property indices
/// and its residual symbol.
#[derive(Default)]
pub(super) struct RasterScratch {
    pa: Vec<u16>,
    pb: Vec<u8>,
    pc: Vec<u8>,
    sym: Vec<u8>,
}

/// The encoder's pass over one lane segment in the raster layout (see `decode_raster`): the
/// interval of every element, into the lane's column `col` of `out`; predictor `P` 0 (none),
/// 1 (med) or 2 (med-residual, which writes each element's folded residual into `e` and reads
/// its neighbours').
///
/// The encoder knows every code, so little is carried from element to element: the segment
/// goes in pieces along which the row, the presence of a row above, the group and the fill are
/// the same (cut at row ends, at step `dx` and at the group and fill counters' wraps). A
/// piece's first and last elements (the only ones that can lack a left, upper-left or
/// upper-right neighbour) take the element-by-element rule; the others go through loops of
/// plain loads at fixed offsets, which the compiler vectorizes (`interior`). Then the piece's
/// table lookups.
///
/// It runs `encode_raster`, compiled for AVX2 where the CPU has it (its loops then vectorize 8
/// lanes of 32 bits wide instead of the x86-64 baseline's 4), and for a predictor's pass with
/// AVX-512 where the AVX-512 kernels run (16).
#[allow(clippy::too_many_arguments)]
fn raster_pass<const P: u8>(
    tb: &Tables,
    w: &Walk,
    q: &[u8],
    e: &mut [u8],
    fill: &[u8],
    first: usize,
    out: &mut [u32],
    col: Column,
    sc: &mut RasterScratch,
) {
    // The predictors' arithmetic at 512 bits: the stem's encode 4-14 % faster; without a
    // predictor (copies) it measured 3 % slower (benches/NOTES.md 50).
    #[cfg(target_arch = "x86_64")]
    if P != 0 && crate::cpu::avx512_decode() {
        // SAFETY: AVX-512 F, BW and VL are present.
        return unsafe { encode_raster_avx512::<P>(tb, w, q, e, fill, first, out, col, sc) };
    }
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx2() {
        // SAFETY: AVX2 is present.
        return unsafe { encode_raster_avx2::<P>(tb, w, q, e, fill, first, out, col, sc) };
    }
    encode_raster::<P>(tb, w, q, e, fill, first, out, col, sc)
}

/// `encode_raster` compiled for a CPU's features: `$name` with `$features` enabled.
macro_rules! encode_raster_for {
    ($name:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $name<const P: u8>(
            tb: &Tables,
            w: &Walk,
            q: &[u8],
            e: &mut [u8],
            fill: &[u8],
            first: usize,
            out: &mut [u32],
            col: Column,
            sc: &mut RasterScratch,
        ) {
            encode_raster::<P>(tb, w, q, e, fill, first, out, col, sc)
        }
    };
}
encode_raster_for!(encode_raster_avx2, "avx2");
encode_raster_for!(encode_raster_avx512, "avx2,avx512f,avx512bw,avx512vl");

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn encode_raster<const P: u8>(
    tb: &Tables,
    w: &Walk,
    q: &[u8],
    e: &mut [u8],
    fill: &[u8],
    first: usize,
    out: &mut [u32],
    col: Column,
    sc: &mut RasterScratch,
) {
    let c = Cursor::at(first, w);
    let (mut cx, mut cy, mut cg, mut rg, mut cf, mut rf) = (c.cx, c.cy, c.cg, c.rg, c.cf, c.rf);
    let dx = w.dx;
    let len = col.len;
    let mask = (1i32 << tb.bits) - 1;
    let alphabet = 1i32 << tb.bits;
    let fold = |r: i32| r.min(alphabet - r);
    if sc.sym.len() < dx {
        sc.pa.resize(dx, 0);
        sc.pb.resize(dx, 0);
        sc.pc.resize(dx, 0);
        sc.sym.resize(dx, 0);
    }
    // The folded residual of the lane's previous element (med's residual property).
    let mut prev = 0i32;
    let mut s = 0;
    while s < len {
        // A counter of one channel never moves its channel (its period may be 1).
        let to_wrap = |inner: usize, r: usize, channels: usize| {
            if channels > 1 {
                inner - r
            } else {
                usize::MAX
            }
        };
        let mut n = (dx - cx)
            .min(len - s)
            .min(to_wrap(w.g_inner, rg, w.g_channels))
            .min(to_wrap(w.f_inner, rf, w.f_channels));
        if s < dx {
            n = n.min(dx - s);
        }
        let has_u = s >= dx && cy > 0;
        let f = fill[cf] as i32;
        let at = first + s;
        // Element `j` of the piece by the rule (FORMAT.md 9.4); `prev` as above. Returns its
        // folded residual.
        let one = |j: usize, prev: i32, e: &mut [u8], sc: &mut RasterScratch| -> i32 {
            let i = at + j;
            let has_l = s + j >= 1 && cx + j > 0;
            let has_ul = has_l && has_u && s + j > dx;
            let l = select(has_l, q[if has_l { i - 1 } else { i }] as i32, f);
            let u = select(has_u, q[if has_u { i - dx } else { i }] as i32, f);
            let ul = select(has_ul, q[if has_ul { i - dx - 1 } else { i }] as i32, f);
            let code = q[i] as i32;
            if P == 0 {
                (sc.pa[j], sc.pb[j], sc.pc[j], sc.sym[j]) =
                    (l as u16, u as u8, ul as u8, code as u8);
                return 0;
            }
            let has_ur = has_u && cx + j + 1 < dx;
            let ur = select(has_ur, q[if has_ur { i + 1 - dx } else { i }] as i32, u);
            let act = (l - ul).abs() + (u - ul).abs() + (ur - u).abs();
            let pred = med(l, u, ul);
            let sym = (code - pred) & mask;
            let pc = if P == 2 {
                let el = select(has_l, e[if has_l { i - 1 } else { i }] as i32, 0);
                let eu = select(has_u, e[if has_u { i - dx } else { i }] as i32, 0);
                let eul = select(has_ul, e[if has_ul { i - dx - 1 } else { i }] as i32, 0);
                e[i] = fold(sym) as u8;
                el.max(eu).max(eul)
            } else {
                prev
            };
            (sc.pa[j], sc.pb[j], sc.pc[j], sc.sym[j]) =
                (act as u16, pred as u8, pc as u8, sym as u8);
            fold(sym)
        };
        let mut last = one(0, prev, e, sc);
        if n >= 3 {
            interior::<P>(q, e, at, n, dx, has_u, f, tb.bits, sc);
        }
        if n >= 2 {
            let before = if P == 1 {
                fold(sc.sym[n - 2] as i32)
            } else {
                0
            };
            last = one(n - 1, before, e, sc);
        }
        prev = last;
        let g = tb.ctx_g[cg];
        lookups(tb, g, sc, n, &mut out[col.index(s)..col.index(s) + n]);
        s += n;
        advance(&mut cy, &mut cx, n, dx, w.dy);
        if w.g_channels > 1 {
            advance(&mut cg, &mut rg, n, w.g_inner, w.g_channels);
        }
        if w.f_channels > 1 {
            advance(&mut cf, &mut rf, n, w.f_inner, w.f_channels);
        }
    }
}

/// Advances a counter pair by `by` elements that do not pass its next wrap: `r` counts the
/// elements of a period of `inner`, `c` the period among `len`.
#[inline(always)]
fn advance(c: &mut usize, r: &mut usize, by: usize, inner: usize, len: usize) {
    *r += by;
    if *r == inner {
        *r = 0;
        *c += 1;
        if *c == len {
            *c = 0;
        }
    }
}

/// The intervals of a piece's `n` elements from the scratch's property indices and symbols,
/// `g` the piece's group offset: the context map's table, then the symbol's interval in it.
#[inline(always)]
fn lookups(tb: &Tables, g: u32, sc: &RasterScratch, n: usize, out: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    let done =
        if n >= 8 && !tb.padded_map.is_empty() && crate::cpu::avx2() && crate::cpu::fast_gather() {
            let done = if n >= 16 && !tb.class_bytes.is_empty() && crate::cpu::avx512_decode() {
                // SAFETY: AVX-512 F, BW and VBMI are present; the class bytes and the padded map
                // are built, and every context and (table, symbol) index is below 2^31.
                unsafe { lookups_avx512(tb, g, sc, n, out) }
            } else {
                0
            };
            // SAFETY: AVX2 is present; the padded map is built (3 bytes past its end), and every
            // index is a property value, context or (table, symbol) of the model, below 2^31.
            unsafe { lookups_avx2(tb, g, sc, done, n, out) }
        } else {
            0
        };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    // SAFETY: the scratch's entries below `n` are property values and symbols of codes below
    // 2^bits (`encode` checks its codes and fills), so every index is inside its table.
    unsafe { lookups_loop(tb, g, sc, done, n, out) }
}

/// `lookups` for the elements `from..n`, one at a time by plain loads: what CPUs other than
/// Intel's run for every element (on AMD's Zen 3 it encodes the stem 5-7 % faster than the
/// gather instruction or eight loads a vector, and without bounds checks the portable build's
/// encode 22-25 % faster than the checked loop it replaces: benches/NOTES.md 57), and Intel's
/// for the last few.
///
/// # Safety
/// `n` at most the scratch's and `out`'s lengths; every `pa`, `pb` and `pc` of `from..n` a
/// value of its property (below `ctx_a.len()`, `ctx_b.len()`, `ctx_c.len()`), every `sym`
/// below `2^bits`, and `g` a group's context offset, so that the context and the (table,
/// symbol) index are inside the context map and the intervals.
#[inline(always)]
unsafe fn lookups_loop(
    tb: &Tables,
    g: u32,
    sc: &RasterScratch,
    from: usize,
    n: usize,
    out: &mut [u32],
) {
    let (a, b, c) = (tb.ctx_a.as_ptr(), tb.ctx_b.as_ptr(), tb.ctx_c.as_ptr());
    let (map, iv) = (tb.context_map.as_ptr(), tb.intervals.as_ptr());
    let (pa, pb, pc) = (sc.pa.as_ptr(), sc.pb.as_ptr(), sc.pc.as_ptr());
    let (sym, o) = (sc.sym.as_ptr(), out.as_mut_ptr());
    for j in from..n {
        let ctx = g
            + *a.add(*pa.add(j) as usize)
            + *b.add(*pb.add(j) as usize)
            + *c.add(*pc.add(j) as usize);
        let t = *map.add(ctx as usize) as usize;
        *o.add(j) = *iv.add((t << tb.bits) | *sym.add(j) as usize);
    }
}

/// `lookups` for the elements from `from` on, 8 at a time by the gather instruction, as many
/// as leave fewer than 8 of the `n` (Intel CPUs: `cpu::fast_gather`); returns where it
/// stopped.
///
/// # Safety
/// AVX2 must be available, `tb.padded_map` built, `n` at most the scratch's and `out`'s
/// lengths.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lookups_avx2(
    tb: &Tables,
    g: u32,
    sc: &RasterScratch,
    from: usize,
    n: usize,
    out: &mut [u32],
) -> usize {
    use std::arch::x86_64::*;
    let gv = _mm256_set1_epi32(g as i32);
    let shift = _mm_cvtsi32_si128(tb.bits as i32);
    let byte = _mm256_set1_epi32(0xFF);
    let (a, b, c) = (tb.ctx_a.as_ptr(), tb.ctx_b.as_ptr(), tb.ctx_c.as_ptr());
    let map = tb.padded_map.as_ptr();
    let iv = tb.intervals.as_ptr();
    let end = from + ((n - from) & !7);
    let mut j = from;
    while j < end {
        let pa = _mm256_cvtepu16_epi32(_mm_loadu_si128(sc.pa.as_ptr().add(j).cast()));
        let pb = _mm256_cvtepu8_epi32(_mm_loadl_epi64(sc.pb.as_ptr().add(j).cast()));
        let pc = _mm256_cvtepu8_epi32(_mm_loadl_epi64(sc.pc.as_ptr().add(j).cast()));
        let sym = _mm256_cvtepu8_epi32(_mm_loadl_epi64(sc.sym.as_ptr().add(j).cast()));
        let ctx = _mm256_add_epi32(
            _mm256_add_epi32(gv, _mm256_i32gather_epi32::<4>(a.cast(), pa)),
            _mm256_add_epi32(
                _mm256_i32gather_epi32::<4>(b.cast(), pb),
                _mm256_i32gather_epi32::<4>(c.cast(), pc),
            ),
        );
        let t = _mm256_and_si256(_mm256_i32gather_epi32::<1>(map.cast(), ctx), byte);
        let e = _mm256_i32gather_epi32::<4>(
            iv.cast(),
            _mm256_or_si256(_mm256_sll_epi32(t, shift), sym),
        );
        _mm256_storeu_si256(out.as_mut_ptr().add(j).cast(), e);
        j += 8;
    }
    end
}

/// `lookups` for the first multiple of 16 of the `n` elements, 16 at a time, the property
/// classes looked up in registers (`Tables::class_bytes`, as the AVX-512 decoder does:
/// benches/NOTES.md 47, 50) instead of three gathers; returns how many.
///
/// # Safety
/// AVX-512 F, BW and VBMI must be available, `tb.padded_map` and `tb.class_bytes` built, `n`
/// at most the scratch's and `out`'s lengths.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn lookups_avx512(
    tb: &Tables,
    g: u32,
    sc: &RasterScratch,
    n: usize,
    out: &mut [u32],
) -> usize {
    use super::avx512::{bytes, lookup256};
    use std::arch::x86_64::*;
    let mut cls = [[_mm512_setzero_si512(); 4]; 3];
    for (r, t) in cls.iter_mut().zip(&tb.class_bytes) {
        for (j, v) in r.iter_mut().enumerate() {
            *v = _mm512_loadu_si512(t.as_ptr().add(64 * j).cast());
        }
    }
    let gv = _mm512_set1_epi32(g as i32);
    let a_stride = _mm512_set1_epi32(tb.a_stride as i32);
    let byte_max = _mm512_set1_epi32(255);
    let shift = _mm_cvtsi32_si128(tb.bits as i32);
    let iv = tb.intervals.as_ptr();
    let end = n & !15;
    let mut j = 0;
    while j < end {
        let pa = _mm512_cvtepu16_epi32(_mm256_loadu_si256(sc.pa.as_ptr().add(j).cast()));
        let pb = _mm512_cvtepu8_epi32(_mm_loadu_si128(sc.pb.as_ptr().add(j).cast()));
        let pc = _mm512_cvtepu8_epi32(_mm_loadu_si128(sc.pc.as_ptr().add(j).cast()));
        let sym = _mm512_cvtepu8_epi32(_mm_loadu_si128(sc.sym.as_ptr().add(j).cast()));
        // class_a · n_b · n_c <= 15 · 256: the low 16 bits of each lane's product.
        let a = _mm512_mullo_epi16(lookup256(&cls[0], _mm512_min_epu32(pa, byte_max)), a_stride);
        let ctx = _mm512_add_epi32(
            _mm512_add_epi32(gv, a),
            _mm512_add_epi32(lookup256(&cls[1], pb), lookup256(&cls[2], pc)),
        );
        let t = bytes(tb.padded_map.as_ptr(), ctx);
        let e = _mm512_i32gather_epi32::<4>(
            _mm512_or_si512(_mm512_sll_epi32(t, shift), sym),
            iv.cast(),
        );
        _mm512_storeu_si512(out.as_mut_ptr().add(j).cast(), e);
        j += 16;
    }
    end
}

/// Elements `1..n - 1` of a piece of the raster encoder (`encode_raster`) starting at element
/// `at`: each has its left and upper-left neighbours, and its upper and upper-right ones when
/// `has_u` (else the fill `f` stands in for them), so every neighbour is a load at a fixed
/// offset. Writes the scratch's entries `1..n - 1`, and the folded residuals into `e` for
/// med-residual.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn interior<const P: u8>(
    q: &[u8],
    e: &mut [u8],
    at: usize,
    n: usize,
    dx: usize,
    has_u: bool,
    f: i32,
    bits: u8,
    sc: &mut RasterScratch,
) {
    let (lo, hi) = (at + 1, at + n - 1);
    let mask = (1i32 << bits) - 1;
    let alphabet = 1i32 << bits;
    let cur = &q[lo..hi];
    let left = &q[lo - 1..hi - 1];
    let pa = &mut sc.pa[1..n - 1];
    let pb = &mut sc.pb[1..n - 1];
    let pc = &mut sc.pc[1..n - 1];
    if P == 0 {
        for (a, &l) in pa.iter_mut().zip(left) {
            *a = l as u16;
        }
        sc.sym[1..n - 1].copy_from_slice(cur);
        if has_u {
            pb.copy_from_slice(&q[lo - dx..hi - dx]);
            pc.copy_from_slice(&q[lo - dx - 1..hi - dx - 1]);
        } else {
            pb.fill(f as u8);
            pc.fill(f as u8);
        }
        return;
    }
    let sy = &mut sc.sym[1..n - 1];
    // The rule of `context_at` for an element that has every neighbour (or, without a row
    // above, the fill for each upper one).
    let one = |c: u8, l: u8, u: i32, ul: i32, ur: i32| -> (u16, u8, u8) {
        let l = l as i32;
        let act = (l - ul).abs() + (u - ul).abs() + (ur - u).abs();
        // med: l + u - ul clamped to [min(l, u), max(l, u)].
        let pred = (l + u - ul).clamp(l.min(u), l.max(u));
        let sym = (c as i32 - pred) & mask;
        (act as u16, pred as u8, sym as u8)
    };
    let outs = pa.iter_mut().zip(pb.iter_mut()).zip(sy.iter_mut());
    if has_u {
        let up = &q[lo - dx..hi - dx];
        let upl = &q[lo - dx - 1..hi - dx - 1];
        let upr = &q[lo - dx + 1..hi - dx + 1];
        for ((((((a, b), y), &c), &l), &u), (&ul, &ur)) in
            outs.zip(cur).zip(left).zip(up).zip(upl.iter().zip(upr))
        {
            (*a, *b, *y) = one(c, l, u as i32, ul as i32, ur as i32);
        }
    } else {
        for (((a, b), y), (&c, &l)) in outs.zip(cur.iter().zip(left)) {
            (*a, *b, *y) = one(c, l, f, f, f);
        }
    }
    let fold = |r: u8| (r as i32).min(alphabet - r as i32) as u8;
    if P == 2 {
        for (v, &r) in e[lo..hi].iter_mut().zip(sy.iter()) {
            *v = fold(r);
        }
        // The largest folded residual of the left, upper and upper-left neighbours.
        let el = &e[lo - 1..hi - 1];
        if has_u {
            let eu = &e[lo - dx..hi - dx];
            let eul = &e[lo - dx - 1..hi - dx - 1];
            for (c, ((&l, &u), &ul)) in pc.iter_mut().zip(el.iter().zip(eu).zip(eul)) {
                *c = l.max(u).max(ul);
            }
        } else {
            pc.copy_from_slice(el);
        }
    } else {
        // The previous element's folded residual: entries 0..n - 2 of the piece's symbols.
        for (c, &r) in pc.iter_mut().zip(&sc.sym[..n - 2]) {
            *c = fold(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// For every `f` below 2^16, the `w` where a reciprocal's error shows, in threes of eight:
    /// just below, at and just above multiples of `f` (small, random and the largest below
    /// 2^32), and 2^32 - 1.
    fn quotients() -> impl Iterator<Item = (u32, [u32; 8])> {
        let mut seed = 7u64;
        (1..=u16::MAX as u32).flat_map(move |f| {
            let top = u32::MAX / f;
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let k = [
                1,
                2,
                3,
                top / 2,
                top - 1,
                top,
                (seed >> 33) as u32 % top + 1,
                1 << 16,
            ];
            (0..3).map(move |shift| {
                let mut w = [0u32; 8];
                for (x, &k) in w.iter_mut().zip(&k) {
                    let at = (k.min(top) as u64 * f as u64) as u32;
                    *x = match shift {
                        0 => at - 1,
                        1 => at,
                        _ => at.saturating_add(f - 1),
                    };
                }
                if shift == 2 {
                    w[7] = u32::MAX;
                }
                (f, w)
            })
        })
    }

    /// The AVX2 lookups (by the gather instruction) and the loop of plain loads against
    /// bounds-checked indexing, on random models and property values (each machine's encoder
    /// runs the first or the second for most elements: `cpu::fast_gather`).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_lookups_agree_with_the_loop() {
        use super::super::tests::{lcg, random_model};
        if !crate::cpu::avx2() {
            return;
        }
        let mut seed = 11u64;
        let mut checked = 0;
        for round in 0..60 {
            let bits = [2, 4, 7, 8][round % 4];
            let predictor = [Predictor::None, Predictor::Med, Predictor::MedResidual][round % 3];
            let m = random_model(&mut seed, bits, predictor, &[3, 9, 11]);
            let tb = Tables::new(&m);
            if tb.padded_map.is_empty() {
                continue;
            }
            let n = 8 * (round % 5) + round % 8;
            let lens = predictor.property_lengths(bits);
            let mut draw = |len: usize| lcg(&mut seed) as usize % len;
            let sc = RasterScratch {
                pa: (0..n).map(|_| draw(lens[0]) as u16).collect(),
                pb: (0..n).map(|_| draw(lens[1]) as u8).collect(),
                pc: (0..n).map(|_| draw(lens[2]) as u8).collect(),
                sym: (0..n).map(|_| draw(1 << bits) as u8).collect(),
            };
            let g = tb.ctx_g[draw(tb.ctx_g.len())];
            let want: Vec<u32> = (0..n)
                .map(|j| {
                    let ctx = g
                        + tb.ctx_a[sc.pa[j] as usize]
                        + tb.ctx_b[sc.pb[j] as usize]
                        + tb.ctx_c[sc.pc[j] as usize];
                    let t = m.context_map[ctx as usize] as usize;
                    tb.intervals[(t << bits) + sc.sym[j] as usize]
                })
                .collect();
            let mut out = vec![0u32; n];
            // SAFETY: AVX2 is present, the padded map built, `n` the scratch's length, and
            // every value drawn within its property's, the symbols' or the groups' range.
            let end = unsafe { lookups_avx2(&tb, g, &sc, 0, n, &mut out) };
            assert_eq!(end, n & !7);
            assert_eq!(out[..end], want[..end], "gathers, round {round}");
            let mut out = vec![0u32; n];
            // SAFETY: as above.
            unsafe { lookups_loop(&tb, g, &sc, 0, n, &mut out) };
            assert_eq!(out, want, "loop, round {round}");
            checked += usize::from(n >= 8);
        }
        assert!(checked >= 20, "{checked}");
    }

    /// `floor(w · reciprocal_up(f)) = floor(w / f)`, the portable steps' quotient.
    #[test]
    fn reciprocal_up_gives_the_quotient() {
        for (f, w) in quotients() {
            for x in w {
                assert_eq!((x as f64 * reciprocal_up(f)) as u32, x / f, "{x} / {f}");
            }
        }
    }

    /// `floor(w · 2^16 · magic(f) / 2^64) = floor(w / f)`, the portable steps' quotient on
    /// x86-64 (`quotient`, tested on every architecture).
    #[test]
    fn magic_gives_the_quotient() {
        for (f, w) in quotients() {
            for x in w {
                let q = (u128::from(u64::from(x) << 16) * u128::from(magic(f))) >> 64;
                assert_eq!(q, u128::from(x / f), "{x} / {f}");
                assert_eq!(quotient(x, f), x / f, "{x} / {f}");
            }
        }
    }

    /// `floor(w · reciprocal_above(f)) = floor(w / f)`, the AVX-512 steps' quotient.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn reciprocal_above_gives_the_quotient() {
        if !crate::cpu::avx512_decode_available() {
            return;
        }
        #[target_feature(enable = "avx512f")]
        unsafe fn floors(w: &[u32; 8], f: &[u32; 8]) -> [u32; 8] {
            use std::arch::x86_64::*;
            let w = _mm512_cvtepu32_pd(_mm256_loadu_si256(w.as_ptr().cast()));
            let f = _mm512_cvtepu32_pd(_mm256_loadu_si256(f.as_ptr().cast()));
            let q = _mm512_roundscale_pd::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(
                _mm512_mul_pd(w, reciprocal_above(f)),
            );
            let mut out = [0u32; 8];
            _mm256_storeu_si256(out.as_mut_ptr().cast(), _mm512_cvttpd_epu32(q));
            out
        }
        for (f, w) in quotients() {
            // SAFETY: AVX-512 F is present.
            let got = unsafe { floors(&w, &[f; 8]) };
            for (x, g) in w.iter().zip(got) {
                assert_eq!(g, x / f, "{x} / {f}");
            }
        }
    }
}
