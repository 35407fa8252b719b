#!/usr/bin/env python3
"""benches/NOTES.md 44: ideal code lengths of the EfficientNet-Lite0 stem's codes under
med-residual contexts (NOTES 41's model), with a context from the previous channel added
(``prevchannel``) or with K per-sample table sets against one (``tablesets``). Ad-hoc study, not
a benchmark; needs numba:

    python benches/study_stem_contexts.py BITS [POINT] prevchannel|tablesets
"""
import sys
import numpy as np
import numba as nb
from splitans.eval import activations

bits = int(sys.argv[1]) if len(sys.argv) > 1 else 8
point = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] not in ("prevchannel", "tablesets") else "lite0.stem"
A = 1 << bits
cal, tst = activations.load(point)
lo, hi = min(0.0, float(cal.min())), float(cal.max())
scale = (hi - lo) / (A - 1)
zp = int(round(-lo / scale))
q = lambda x: np.clip(np.round(x / scale) + zp, 0, A - 1).astype(np.int32)
train = q(cal[:22]).reshape(22, -1, cal.shape[-2], cal.shape[-1])
test = q(tst[:8]).reshape(8, -1, cal.shape[-2], cal.shape[-1])
F = zp


@nb.njit(cache=True)
def run(img, kind, A, F, out_a, out_b, out_sym, wpa):
    # img: C x H x W codes. kind: 0 med, 1 grad, 2 gap, 3 wp, 4 avg, 5 med+err-energy
    C, H, W = img.shape
    k = 0
    mask = A - 1
    for c in range(C):
        # WP state per channel: errors of 4 sub-predictors and true error, per pixel
        err = np.zeros((4, H, W), np.int64)
        terr = np.zeros((H, W), np.int64)
        res = np.zeros((H, W), np.int64)
        for y in range(H):
            prev = 0
            for x in range(W):
                v = img[c, y, x]
                l = img[c, y, x - 1] if x > 0 else F
                u = img[c, y - 1, x] if y > 0 else F
                ul = img[c, y - 1, x - 1] if x > 0 and y > 0 else F
                ur = img[c, y - 1, x + 1] if y > 0 and x + 1 < W else u
                ll = img[c, y, x - 2] if x > 1 else l
                uu = img[c, y - 2, x] if y > 1 else u
                uur = img[c, y - 2, x + 1] if y > 1 and x + 1 < W else ur
                act = abs(l - ul) + abs(u - ul) + abs(ur - u)
                if ul >= max(l, u):
                    med = min(l, u)
                elif ul <= min(l, u):
                    med = max(l, u)
                else:
                    med = l + u - ul
                a = act
                if kind == 0:
                    p = med
                elif kind == 1:
                    p = min(max(l + u - ul, 0), A - 1)
                elif kind == 4:
                    p = (l + u + 1) >> 1
                elif kind == 2 or kind == 5:
                    dh = abs(l - ll) + abs(u - ul) + abs(u - ur)
                    dv = abs(l - ul) + abs(u - uu) + abs(ur - uur)
                    ew = res[y, x - 1] if x > 0 else 0
                    if kind == 5:
                        p = med
                    elif dv - dh > 80 * A // 256:
                        p = l
                    elif dh - dv > 80 * A // 256:
                        p = u
                    else:
                        t = (l + u) / 2.0 + (ur - ul) / 4.0
                        if dv - dh > 32 * A // 256:
                            t = (t + l) / 2
                        elif dv - dh > 8 * A // 256:
                            t = (3 * t + l) / 4
                        elif dh - dv > 32 * A // 256:
                            t = (t + u) / 2
                        elif dh - dv > 8 * A // 256:
                            t = (3 * t + u) / 4
                        p = int(t + 0.5)
                    en = dh + dv + 2 * abs(ew)
                    a = en
                else:  # wp, values scaled by 8
                    N = u * 8
                    Wv = l * 8
                    NE = ur * 8
                    NW = ul * 8
                    NN = uu * 8
                    teW = terr[y, x - 1] if x > 0 else 0
                    teN = terr[y - 1, x] if y > 0 else 0
                    teNW = terr[y - 1, x - 1] if x > 0 and y > 0 else teN
                    teNE = terr[y - 1, x + 1] if y > 0 and x + 1 < W else teN
                    sp0 = Wv + NE - N
                    sp1 = N - (((teW + teN + teNE) * 16) >> 5)
                    sp2 = Wv - (((teW + teN + teNW) * 10) >> 5)
                    sp3 = N - ((teNW * 7 + teN * 7 + teNE * 7) >> 5)
                    sps = (sp0, sp1, sp2, sp3)
                    wsum = 0.0
                    acc = 0.0
                    for i in range(4):
                        es = 0
                        if y > 0:
                            es += err[i, y - 1, x]
                            es += err[i, y - 1, x - 1] if x > 0 else err[i, y - 1, x]
                            es += err[i, y - 1, x + 1] if x + 1 < W else err[i, y - 1, x]
                        if x > 0:
                            es += err[i, y, x - 1]
                        if x > 1:
                            es += err[i, y, x - 2]
                        wgt = 1.0 / (es + 1.0) ** 1.0 * (13.0 if i == 0 else 12.0)
                        wsum += wgt
                        acc += wgt * sps[i]
                    pw = int(acc / wsum + 0.5)
                    if (teN ^ teW) >= 0 and (teN ^ teNW) >= 0:
                        pw = min(max(pw, min(Wv, min(N, NE))), max(Wv, max(N, NE)))
                    p = min(max((pw + 4) >> 3, 0), A - 1)
                    for i in range(4):
                        err[i, y, x] = (abs(sps[i] - v * 8) + 3) >> 3
                    terr[y, x] = pw - v * 8
                    mx = teW
                    if abs(teN) > abs(mx):
                        mx = teN
                    if abs(teNW) > abs(mx):
                        mx = teNW
                    if abs(teNE) > abs(mx):
                        mx = teNE
                    if wpa == 1:
                        a = abs(mx)
                    elif wpa == 2:
                        a = abs(teW) + abs(teN) + abs(teNW) + abs(teNE)
                r = (v - p) & mask
                res[y, x] = v - p
                out_a[k] = a
                out_b[k] = p
                out_sym[k] = r
                k += 1
    return k


def extract(imgs, kind, wpa=0):
    n = imgs.size
    a = np.zeros(n, np.int64); b = np.zeros(n, np.int64); s = np.zeros(n, np.int64); c = np.zeros(n, np.int64)
    ch = np.zeros(n, np.int64)
    k = 0
    per = imgs[0].size
    for img in imgs:
        m = run(np.ascontiguousarray(img), kind, A, F, a[k:k + per], b[k:k + per], s[k:k + per], wpa)
        ch[k:k + per] = np.repeat(np.arange(img.shape[0]), img.shape[1] * img.shape[2])
        k += m
    f = np.minimum(s, A - s)
    # previous folded residual along the row
    c[1:] = f[:-1]
    W = imgs.shape[-1]
    c[::W] = 0
    return a, b, c, s, ch


def classes(v, n, ref):
    qs = np.quantile(ref, np.linspace(0, 1, n + 1)[1:-1])
    return np.searchsorted(np.unique(qs), v, side="right")


def cost(tr, te, ncl=(10, 10, 8), groups=True, alpha=0.5):
    ta, tb, tc, ts, tch = tr
    ea, eb, ec, es, ech = te
    ctx_t = (classes(ta, ncl[0], ta) * ncl[1] + classes(tb, ncl[1], tb)) * ncl[2] + classes(np.minimum(tc, 255), ncl[2], tc)
    ctx_e = (classes(ea, ncl[0], ta) * ncl[1] + classes(eb, ncl[1], tb)) * ncl[2] + classes(np.minimum(ec, 255), ncl[2], tc)
    nctx = ncl[0] * ncl[1] * ncl[2]
    if groups:
        ctx_t = ctx_t + nctx * (tch % 4)
        ctx_e = ctx_e + nctx * (ech % 4)
        nctx *= 4
    cnt = np.bincount(ctx_t * A + ts, minlength=nctx * A).reshape(nctx, A).astype(np.float64) + alpha
    logp = np.log2(cnt / cnt.sum(1, keepdims=True))
    return -logp[ctx_e, es].sum() / es.size


def cvar(te, W, H, mode):
    a, b, c, s_, ch = te
    f = np.minimum(s_, A - s_).reshape(-1, H, W)
    eW = np.zeros_like(f); eW[:, :, 1:] = f[:, :, :-1]
    eN = np.zeros_like(f); eN[:, 1:, :] = f[:, :-1, :]
    eNW = np.zeros_like(f); eNW[:, 1:, 1:] = f[:, :-1, :-1]
    eNE = np.zeros_like(f); eNE[:, 1:, :-1] = f[:, :-1, 1:]
    if mode == 2:
        c2 = eW + eN
    elif mode == 3:
        c2 = np.maximum(np.maximum(eW, eN), np.maximum(eNW, eNE))
    elif mode == 4:
        c2 = eW + eN + (eNW + eNE) // 2
    elif mode == 5:
        c2 = np.maximum(eW, eN)
    elif mode == 6:
        c2 = np.maximum(np.maximum(eW, eN), eNE)
    elif mode == 7:
        c2 = np.maximum(np.maximum(eW, eN), eNW)
    return a, b, c2.ravel(), s_, ch




def prevchannel():
    H, W = train.shape[-2:]
    C = train.shape[1]
    tr = extract(train, 0); te = extract(test, 0)
    base_tr = cvar(tr, W, H, 7); base_te = cvar(te, W, H, 7)
    print(bits, "med-residual", round(cost(base_tr, base_te), 4), flush=True)

    def prevch(imgs, mode):
        I = imgs.reshape(-1, C, H, W)
        if mode == 0:   # co-located code of the previous channel
            d = np.full_like(I, F); d[:, 1:] = I[:, :-1]
        elif mode == 1: # previous channel, one step back (left neighbour), realizable in lockstep
            d = np.full_like(I, F); d[:, 1:, :, 1:] = I[:, :-1, :, :-1]
        elif mode == 2: # previous channel co-located, zero or not
            d = np.zeros_like(I); d[:, 1:] = (I[:, :-1] != F)
        elif mode == 3: # prev channel, one step back, zero or not
            d = np.zeros_like(I); d[:, 1:, :, 1:] = (I[:, :-1, :, :-1] != F)
        return d.ravel()

    def cost4(trp, tep, dtr, dte, nd, ncl=(10, 10, 8), alpha=0.5):
        ta, tb, tc, ts, tch = trp
        ea, eb, ec, es, ech = tep
        ctx_t = (classes(ta, ncl[0], ta) * ncl[1] + classes(tb, ncl[1], tb)) * ncl[2] + classes(np.minimum(tc, 255), ncl[2], tc)
        ctx_e = (classes(ea, ncl[0], ta) * ncl[1] + classes(eb, ncl[1], tb)) * ncl[2] + classes(np.minimum(ec, 255), ncl[2], tc)
        nctx = ncl[0] * ncl[1] * ncl[2]
        ctx_t = ctx_t + nctx * (tch % 4); ctx_e = ctx_e + nctx * (ech % 4); nctx *= 4
        ctx_t = ctx_t * nd + classes(dtr, nd, dtr) if nd > 2 else ctx_t * 2 + (dtr != 0)
        ctx_e = ctx_e * nd + classes(dte, nd, dtr) if nd > 2 else ctx_e * 2 + (dte != 0)
        nctx *= nd
        cnt = np.bincount(ctx_t * A + ts, minlength=nctx * A).reshape(nctx, A).astype(np.float64) + alpha
        logp = np.log2(cnt / cnt.sum(1, keepdims=True))
        return -logp[ctx_e, es].sum() / es.size

    for mode, nd in ((0, 4), (1, 4), (2, 2), (3, 2), (0, 8), (1, 8)):
        print(bits, "prev-channel mode", mode, "classes", nd, round(cost4(base_tr, base_te, prevch(train, mode), prevch(test, mode), nd), 4), flush=True)



def tablesets():
    H, W = train.shape[-2:]
    C = train.shape[1]
    ntr, nte = len(train), len(test)
    tr = extract(train, 0); te = extract(test, 0)
    btr = cvar(tr, W, H, 7); bte = cvar(te, W, H, 7)
    ncl = (10, 10, 8)
    def ctx_of(p, ref):
        a, b, c, s, ch = p
        ra, rb, rc = ref[0], ref[1], ref[2]
        ctx = (classes(a, ncl[0], ra) * ncl[1] + classes(b, ncl[1], rb)) * ncl[2] + classes(np.minimum(c, 255), ncl[2], rc)
        return ctx + 800 * (ch % 4), s
    NCTX = 3200
    ctr, s_tr = ctx_of(btr, btr); cte, s_te = ctx_of(bte, btr)
    per = C * H * W
    def logp_of(ctx, s, alpha=0.5):
        cnt = np.bincount(ctx * A + s, minlength=NCTX * A).reshape(NCTX, A).astype(np.float64) + alpha
        return np.log2(cnt / cnt.sum(1, keepdims=True))
    def sample_cost(lp, ctx, s, n):
        return np.array([-lp[ctx[k*per:(k+1)*per], s[k*per:(k+1)*per]].sum() for k in range(n)])
    lp1 = logp_of(ctr, s_tr)
    single = sample_cost(lp1, cte, s_te, nte)
    print(bits, "one table set: bits/el", round(single.sum() / (nte * per), 4), flush=True)
    rng = np.random.default_rng(0)
    for K in (2, 3, 4):
        # init by per-sample cost under the single set (sorted split)
        base = sample_cost(lp1, ctr, s_tr, ntr)
        order = np.argsort(base)
        assign = np.zeros(ntr, int)
        for j, k in enumerate(order):
            assign[k] = j * K // ntr
        for it in range(6):
            lps = []
            for g in range(K):
                idx = np.concatenate([np.arange(k*per, (k+1)*per) for k in range(ntr) if assign[k] == g]) if (assign == g).any() else np.arange(0)
                lps.append(logp_of(ctr[idx], s_tr[idx]))
            costs = np.stack([sample_cost(lp, ctr, s_tr, ntr) for lp in lps])
            new = costs.argmin(0)
            if (new == assign).all():
                break
            assign = new
        tc = np.stack([sample_cost(lp, cte, s_te, nte) for lp in lps])
        print(bits, f"K={K} sets: train groups {np.bincount(assign, minlength=K).tolist()}, test picks {tc.argmin(0).tolist()}, "
              f"bits/el {tc.min(0).sum() / (nte * per):.4f} ({tc.min(0).sum() / single.sum() - 1:+.2%})", flush=True)



{"prevchannel": prevchannel, "tablesets": tablesets}[sys.argv[-1] if sys.argv[-1] in ("prevchannel", "tablesets") else "prevchannel"]()
