//! The context of an element in the parallel context coder (FORMAT.md 9.4): the median
//! predictor, the three properties of its neighbourhood, and the walk through a sample that
//! finds its neighbours with counters instead of a division per element.

use super::*;

#[inline(always)]
pub(super) fn med(l: i32, u: i32, ul: i32) -> i32 {
    // `lo` where ul >= hi, `hi` where ul <= lo, else l + u - ul: the gradient clamped to
    // [lo, hi], without a branch (a data-dependent one costs the scalar decoder its lanes'
    // overlap: benches/NOTES.md 52).
    let (lo, hi) = (l.min(u), l.max(u));
    (l + u - ul).max(lo).min(hi)
}

/// The three raw property values of element `i` (at step `s` of its lane segment) and its
/// prediction, from the codes `q` decoded (or known) so far: FORMAT.md 9.4. `residual_prev` is
/// the folded residual of the lane's previous element (0 for its first); `e` holds the folded
/// residual of every element decoded so far (read only by `MedResidual`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn properties(
    predictor: Predictor,
    lay: &Layout,
    q: &[u8],
    e: &[u8],
    residual_prev: u32,
    fill: u8,
    i: usize,
    s: usize,
) -> (usize, usize, usize, i32) {
    let cx = i.checked_div(lay.sx).map_or(0, |v| v % lay.dx);
    let cy = i.checked_div(lay.sy).map_or(0, |v| v % lay.dy);
    let has_l = lay.sx > 0 && cx > 0 && s >= lay.sx;
    let has_u = lay.sy > 0 && cy > 0 && s >= lay.sy;
    let has_ul = has_l && has_u && s >= lay.sx + lay.sy;
    let f = fill as i32;
    let l = if has_l { q[i - lay.sx] as i32 } else { f };
    let u = if has_u { q[i - lay.sy] as i32 } else { f };
    let ul = if has_ul {
        q[i - lay.sy - lay.sx] as i32
    } else {
        f
    };
    match predictor {
        Predictor::None => (l as usize, u as usize, ul as usize, 0),
        Predictor::Med | Predictor::MedResidual => {
            let ur = if has_u && lay.sx > 0 && cx + 1 < lay.dx && s + lay.sx >= lay.sy {
                q[i - lay.sy + lay.sx] as i32
            } else {
                u
            };
            let act = (l - ul).abs() + (u - ul).abs() + (ur - u).abs();
            let p = med(l, u, ul);
            let c = if predictor == Predictor::Med {
                residual_prev as usize
            } else {
                let at = |has: bool, j: usize| if has { e[j] as usize } else { 0 };
                at(has_l, i.wrapping_sub(lay.sx))
                    .max(at(has_u, i.wrapping_sub(lay.sy)))
                    .max(at(has_ul, i.wrapping_sub(lay.sy + lay.sx)))
            };
            (act as usize, p as usize, c, p)
        }
    }
}

/// The table and the prediction of element `i` (the reference coder's lookup).
#[cfg(test)]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn context(
    model: &Model,
    lay: &Layout,
    q: &[u8],
    e: &[u8],
    residual_prev: u32,
    fill: u8,
    i: usize,
    s: usize,
) -> (usize, i32) {
    let (a, b, c, pred) = properties(model.predictor, lay, q, e, residual_prev, fill, i, s);
    let g = model.groups[lay.group.of(i)] as usize;
    let [ca, cb, cc] = &model.classes;
    let [na, nb, nc] = model.n_classes;
    let ctx = ((g * na as usize + ca[a] as usize) * nb as usize + cb[b] as usize) * nc as usize
        + cc[c] as usize;
    (model.context_map[ctx] as usize, pred)
}

/// The folded magnitude of a residual symbol: `min(r, 2^bits - r)`.
#[inline(always)]
pub fn fold(r: u32, bits: u8) -> u32 {
    r.min((1 << bits) - r)
}

/// Strides of the walk through a sample: the neighbour axes, the group axis and the
/// quantization channels, as periods of counters (no division per element).
#[derive(Debug, Clone, Copy)]
pub(super) struct Walk {
    pub(super) sx: usize,
    pub(super) dx: usize,
    pub(super) sy: usize,
    pub(super) dy: usize,
    /// Counter periods: the stride, or `usize::MAX` for an axis that is not there.
    pub(super) px: usize,
    pub(super) py: usize,
    pub(super) g_inner: usize,
    pub(super) g_channels: usize,
    pub(super) f_inner: usize,
    pub(super) f_channels: usize,
}

impl Walk {
    pub(super) fn new(lay: &Layout, fill_ch: Channels) -> Walk {
        Walk {
            sx: lay.sx,
            dx: lay.dx,
            sy: lay.sy,
            dy: lay.dy,
            px: if lay.sx > 0 { lay.sx } else { usize::MAX },
            py: if lay.sy > 0 { lay.sy } else { usize::MAX },
            g_inner: lay.group.inner.max(1),
            g_channels: lay.group.channels.max(1),
            f_inner: fill_ch.inner.max(1),
            f_channels: fill_ch.channels.max(1),
        }
    }

    /// Whether left is the previous element (the last axis) and up the previous row (the
    /// axis before it, rows of at least 2): the layout the raster coders take, where a lane's
    /// upper neighbours are its own codes `dx` and `dx - 1` steps before.
    pub(super) fn raster(&self) -> bool {
        self.sx == 1 && self.sy == self.dx && self.dx >= 2
    }

    /// Steps until the first of some lanes (their group and fill counters' `rg`, `rf`) crosses
    /// a group or a quantization channel: the vector decoders' counter events. Counters of one
    /// channel have none; `usize::MAX` where neither counter has more.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) fn steps_to_event(&self, rg: &[u32], rf: &[u32]) -> usize {
        let first = |r: &[u32], period: usize| r.iter().map(|&r| period - r as usize).min();
        let g = (self.g_channels > 1)
            .then(|| first(rg, self.g_inner))
            .flatten();
        let f = (self.f_channels > 1)
            .then(|| first(rf, self.f_inner))
            .flatten();
        g.into_iter().chain(f).min().unwrap_or(usize::MAX)
    }

    /// A lane's `rg`, `rf` after a vector kernel's `steps` steps, from its counters as the
    /// kernel left them, `since` steps after their last event (none of which wraps a counter
    /// of more than one channel); the kernels do not tick a counter of one channel at all.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) fn counters_after(
        &self,
        rg: u32,
        rf: u32,
        since: usize,
        steps: usize,
    ) -> (usize, usize) {
        let at = |r: u32, channels: usize, inner: usize| {
            if channels > 1 {
                r as usize + since
            } else {
                (r as usize + steps) % inner
            }
        };
        (
            at(rg, self.g_channels, self.g_inner),
            at(rf, self.f_channels, self.f_inner),
        )
    }
}

/// A lane's position: its next element and that element's coordinates.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Cursor {
    pub(super) i: usize,
    pub(super) cx: usize,
    pub(super) rx: usize,
    pub(super) cy: usize,
    pub(super) ry: usize,
    pub(super) cg: usize,
    pub(super) rg: usize,
    pub(super) cf: usize,
    pub(super) rf: usize,
    /// Folded residual of the lane's previous element.
    pub(super) prev: u32,
}

impl Cursor {
    pub(super) fn at(i: usize, w: &Walk) -> Cursor {
        let split = |period: usize, len: usize| {
            if period == usize::MAX {
                (0, 0)
            } else {
                ((i / period) % len, i % period)
            }
        };
        let (cx, rx) = split(w.px, w.dx);
        let (cy, ry) = split(w.py, w.dy);
        let (cg, rg) = split(w.g_inner, w.g_channels);
        let (cf, rf) = split(w.f_inner, w.f_channels);
        Cursor {
            i,
            cx,
            rx,
            cy,
            ry,
            cg,
            rg,
            cf,
            rf,
            prev: 0,
        }
    }

    #[inline(always)]
    pub(super) fn advance(&mut self, w: &Walk) {
        #[inline(always)]
        fn tick(c: &mut usize, r: &mut usize, period: usize, len: usize) {
            *r += 1;
            if *r == period {
                *r = 0;
                *c += 1;
                if *c == len {
                    *c = 0;
                }
            }
        }
        self.i += 1;
        tick(&mut self.cx, &mut self.rx, w.px, w.dx);
        tick(&mut self.cy, &mut self.ry, w.py, w.dy);
        tick(&mut self.cg, &mut self.rg, w.g_inner, w.g_channels);
        tick(&mut self.cf, &mut self.rf, w.f_inner, w.f_channels);
    }
}

/// Which neighbours the step `s` of a segment allows (the same for every lane).
#[derive(Debug, Clone, Copy)]
pub(super) struct Step {
    pub(super) l: bool,
    pub(super) u: bool,
    pub(super) ul: bool,
    pub(super) ur: bool,
}

impl Step {
    #[inline(always)]
    pub(super) fn at(s: usize, w: &Walk) -> Step {
        Step {
            l: w.sx > 0 && s >= w.sx,
            u: w.sy > 0 && s >= w.sy,
            ul: s >= w.sx + w.sy,
            ur: w.sx > 0 && s + w.sx >= w.sy,
        }
    }
}

#[inline(always)]
pub(super) fn select(cond: bool, a: i32, b: i32) -> i32 {
    let m = -(cond as i32);
    (a & m) | (b & !m)
}

/// The context of the element at `c` and its prediction (FORMAT.md 9.4), from the codes known
/// so far: predictor `P` 0 (none), 1 (med) or 2 (med-residual, which reads the folded
/// residuals `e` of the neighbours; the other two ignore `e`).
#[inline(always)]
pub(super) fn context_at<const P: u8>(
    tb: &Tables,
    w: &Walk,
    st: Step,
    q: &[u8],
    e: &[u8],
    c: &Cursor,
    fill: u8,
) -> (usize, i32) {
    let i = c.i;
    let has_l = st.l && c.cx > 0;
    let has_u = st.u && c.cy > 0;
    let has_ul = has_l && has_u && st.ul;
    let f = fill as i32;
    // Load from a valid index either way and select: no branch on the data.
    let l = select(has_l, q[if has_l { i - w.sx } else { i }] as i32, f);
    let u = select(has_u, q[if has_u { i - w.sy } else { i }] as i32, f);
    let ul = select(
        has_ul,
        q[if has_ul { i - w.sy - w.sx } else { i }] as i32,
        f,
    );
    let g = tb.ctx_g[c.cg];
    if P == 0 {
        let ctx = g + tb.ctx_a[l as usize] + tb.ctx_b[u as usize] + tb.ctx_c[ul as usize];
        return (ctx as usize, 0);
    }
    let has_ur = has_u && st.ur && c.cx + 1 < w.dx;
    let ur = select(
        has_ur,
        q[if has_ur { i - w.sy + w.sx } else { i }] as i32,
        u,
    );
    let act = (l - ul).abs() + (u - ul).abs() + (ur - u).abs();
    let pred = med(l, u, ul);
    let prop_c = if P == 1 {
        c.prev as usize
    } else {
        let el = select(has_l, e[if has_l { i - w.sx } else { i }] as i32, 0);
        let eu = select(has_u, e[if has_u { i - w.sy } else { i }] as i32, 0);
        let eul = select(
            has_ul,
            e[if has_ul { i - w.sy - w.sx } else { i }] as i32,
            0,
        );
        el.max(eu).max(eul) as usize
    };
    let ctx = g + tb.ctx_a[act as usize] + tb.ctx_b[pred as usize] + tb.ctx_c[prop_c];
    (ctx as usize, pred)
}
