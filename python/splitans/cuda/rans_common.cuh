// splitans GPU path: the rANS coder of docs/FORMAT.md section 4, written once for the CUDA
// kernels and for plain host C++ (tests/cuda_host/driver.cpp compiles this header with g++ and
// checks it byte for byte against the Rust coder).
//
// Everything that decides a byte of output lives here: the per-lane encode and decode steps,
// where each lane's renormalization word goes (ballot + prefix popcount), and the whole chunk
// coders, written against a small "warp" interface. On the device `DeviceWarp` runs the code of
// one lane per thread and `ballot` is `__ballot_sync`; on the host `HostWarp` runs the same code
// for lanes 0..31 in turn and builds the ballot mask from their predicates. So the host test
// executes the kernels' own chunk logic, not a re-implementation of it.
#pragma once

#if defined(__CUDACC__)
#define SPN_HD __host__ __device__ __forceinline__
#else
#define SPN_HD inline
#endif

namespace spn {

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

/// Lower end of the normalized state interval [2^16, 2^32).
constexpr u32 RANS_L = 1u << 16;
constexpr u32 WARP_SIZE = 32;
constexpr u32 FULL_MASK = 0xffffffffu;

/// Encoder: symbols of a chunk are staged through shared memory this many at a time, per warp.
/// A multiple of 32, so a step (at most 32 symbols, starting at a multiple of the lane count)
/// never straddles two tiles.
constexpr u32 ENC_TILE = 1024;
/// Decoder: steps decoded between two refills of the word ring. A step consumes at most 32
/// words, so a batch needs at most DEC_BATCH * 32 words past the read position.
constexpr u32 DEC_BATCH = 32;
/// Decoder: words staged per warp (a power of two, at least DEC_BATCH * 32: refilling up to
/// pos + DEC_BATCH * 32 only overwrites words before pos, which are consumed).
constexpr u32 DEC_RING = 1024;
static_assert(ENC_TILE % WARP_SIZE == 0, "tiles hold whole steps");
static_assert(DEC_RING >= DEC_BATCH * WARP_SIZE && (DEC_RING & (DEC_RING - 1)) == 0, "ring size");

/// Per-chunk decoder status (0 = the chunk decoded and passed the end-of-chunk checks of 4.3).
enum DecStatus : u32 {
    DEC_OK = 0,
    DEC_BAD_INITIAL_STATE = 1,  // an initial state below 2^16
    DEC_OUT_OF_WORDS = 2,       // a lane needed a word after the last one
    DEC_UNREAD_WORDS = 3,       // words left when the chunk's symbols are done
    DEC_BAD_FINAL_STATE = 4,    // a lane did not end at 2^16 (the encoder's initial state)
};

// ---------------------------------------------------------------------------------------------
// Small integer helpers

SPN_HD u32 min_u32(u32 a, u32 b) { return a < b ? a : b; }
SPN_HD u64 min_u64(u64 a, u64 b) { return a < b ? a : b; }

SPN_HD u32 popc(u32 v) {
#if defined(__CUDA_ARCH__)
    return (u32)__popc(v);
#else
    return (u32)__builtin_popcount(v);
#endif
}

/// High 64 bits of the 128-bit product.
SPN_HD u64 mulhi64(u64 a, u64 b) {
#if defined(__CUDA_ARCH__)
    return __umul64hi(a, b);
#else
    return (u64)(((unsigned __int128)a * b) >> 64);
#endif
}

/// Little-endian loads and stores at any byte address (chunk data in a container has no
/// alignment: it follows a variable-length frequency table).
SPN_HD u32 load_u16_le(const u8* p) { return (u32)p[0] | ((u32)p[1] << 8); }
SPN_HD u32 load_u32_le(const u8* p) {
    return (u32)p[0] | ((u32)p[1] << 8) | ((u32)p[2] << 16) | ((u32)p[3] << 24);
}
SPN_HD void store_u16_le(u8* p, u32 v) {
    p[0] = (u8)v;
    p[1] = (u8)(v >> 8);
}
SPN_HD void store_u32_le(u8* p, u32 v) {
    p[0] = (u8)v;
    p[1] = (u8)(v >> 8);
    p[2] = (u8)(v >> 16);
    p[3] = (u8)(v >> 24);
}

/// Symbols in chunk `k` of a stream of `n` symbols cut into chunks of 2^chunk_log2 (5.2, 3.3).
SPN_HD u32 chunk_symbols(u64 n, u32 chunk_log2, u64 k) {
    const u64 start = k << chunk_log2;
    return (u32)(min_u64(start + (1ull << chunk_log2), n) - start);
}

// ---------------------------------------------------------------------------------------------
// Word placement inside a step (4.3): lane l of a step whose renormalizing lanes form `mask`
// takes the step's word number popc(mask & lanemask_lt(l)).

SPN_HD u32 lanemask_lt(u32 lane) { return (1u << lane) - 1u; }

/// Offset of `lane`'s word among the words of its step (decoder order: increasing lanes).
SPN_HD u32 word_rank(u32 mask, u32 lane) { return popc(mask & lanemask_lt(lane)); }

/// Encoder: the words of one step go just below `top` (the encoder fills a chunk's word buffer
/// from the end, steps last to first), in decoder order within the step.
SPN_HD u32 enc_word_slot(u32 top, u32 mask, u32 lane) {
    return top - popc(mask) + word_rank(mask, lane);
}

/// Decoder: a step that starts at word `pos` gives `lane` the word pos + rank.
SPN_HD u32 dec_word_slot(u32 pos, u32 mask, u32 lane) { return pos + word_rank(mask, lane); }

// ---------------------------------------------------------------------------------------------
// Encoder (4.4)

/// Per-symbol encoder constants: Lemire's reciprocal rcp = floor((2^64 - 1) / f) + 1 for f >= 2
/// (then mulhi64(rcp, x) = x div f for every 32-bit x), 0 for f = 1 (and absent symbols).
struct EncSym {
    u64 rcp;
    u32 freq;
    u32 cum;
};

SPN_HD EncSym enc_symbol(u32 freq, u32 cum) {
    EncSym e;
    e.rcp = freq >= 2 ? ~0ull / freq + 1ull : 0ull;
    e.freq = freq;
    e.cum = cum;
    return e;
}

/// Whether coding a symbol of frequency `freq` into `x` first emits a word:
/// x >= x_max = freq << (32 - p) (below 2^32 since freq < 2^p).
SPN_HD bool enc_needs_word(u32 x, u32 freq, u32 p) { return x >= (freq << (32u - p)); }

/// The renormalization: returns the emitted word (the low 16 bits) and shifts them out.
SPN_HD u16 enc_renorm(u32& x) {
    const u16 w = (u16)x;
    x >>= 16;
    return w;
}

/// Codes the symbol into the (renormalized) state:
/// x' = ((x div f) << p) + (x mod f) + cum = x + cum + q * (2^p - f) mod 2^32, q = x div f.
SPN_HD u32 enc_put(u32 x, const EncSym& e, u32 p) {
    const u32 q = e.freq >= 2 ? (u32)mulhi64(e.rcp, (u64)x) : x;
    return x + e.cum + q * ((1u << p) - e.freq);
}

// ---------------------------------------------------------------------------------------------
// Decoder (4.2)

/// Decode-table entry of a slot: freq << 16 | (slot - cum) (freq < 2^16 for a valid table).
SPN_HD u32 dec_table_entry(u32 freq, u32 cum, u32 slot) { return (freq << 16) | (slot - cum); }

/// The table entry i whose slots [cum_i, cum_i + freq_i) hold `slot`: the last i with
/// cum_i <= slot (cum ascending, cum_0 = 0, m >= 1).
SPN_HD u32 dec_find_entry(const u32* cum, u32 m, u32 slot) {
    u32 lo = 0, hi = m;  // cum[lo] <= slot < cum[hi] (cum[m] taken as +infinity)
    while (hi - lo > 1) {
        const u32 mid = lo + (hi - lo) / 2;
        if (cum[mid] <= slot) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

SPN_HD u32 dec_slot(u32 x, u32 p) { return x & ((1u << p) - 1u); }

/// x = freq * (x >> p) + (slot - cum), from the slot's table entry.
SPN_HD u32 dec_advance(u32 x, u32 entry, u32 p) { return (entry >> 16) * (x >> p) + (entry & 0xffffu); }

SPN_HD bool dec_needs_word(u32 x) { return x < RANS_L; }

SPN_HD u32 dec_renorm(u32 x, u32 word) { return (x << 16) | word; }

// ---------------------------------------------------------------------------------------------
// The warp interface of the chunk coders. `each(f)` runs f(lane) for the lanes this executor
// owns; `ballot(p)` is the mask of lanes whose p is set; `sync()` orders the lanes' memory
// accesses (shared memory written by one lane and read by another).

#if defined(__CUDACC__)
/// One lane per thread: a Lanes<T> is the calling thread's own value.
struct DeviceWarp {
    u32 lane;
    template <typename T>
    struct Lanes {
        T v;
        SPN_HD T& operator[](u32) { return v; }
        SPN_HD const T& operator[](u32) const { return v; }
    };
    template <class F>
    SPN_HD void each(F&& f) const {
        f(lane);
    }
    SPN_HD u32 ballot(const Lanes<bool>& p) const {
#if defined(__CUDA_ARCH__)
        return __ballot_sync(FULL_MASK, p.v);
#else
        return p.v ? 1u : 0u;  // not reached: DeviceWarp only runs in kernels
#endif
    }
    SPN_HD void sync() const {
#if defined(__CUDA_ARCH__)
        __syncwarp(FULL_MASK);
#endif
    }
};
#endif

/// All 32 lanes in one host thread, in increasing lane order within each phase.
struct HostWarp {
    template <typename T>
    struct Lanes {
        T v[WARP_SIZE];
        SPN_HD T& operator[](u32 l) { return v[l]; }
        SPN_HD const T& operator[](u32 l) const { return v[l]; }
    };
    template <class F>
    SPN_HD void each(F&& f) const {
        for (u32 l = 0; l < WARP_SIZE; ++l) f(l);
    }
    SPN_HD u32 ballot(const Lanes<bool>& p) const {
        u32 m = 0;
        for (u32 l = 0; l < WARP_SIZE; ++l) m |= (p.v[l] ? 1u : 0u) << l;
        return m;
    }
    SPN_HD void sync() const {}
};

// ---------------------------------------------------------------------------------------------
// Chunk coders. One warp codes one chunk of m >= 1 symbols with `lanes` (1..32, a power of two)
// interleaved states; lanes >= `lanes` idle. Symbol j belongs to lane j % lanes, step j / lanes.

/// Encodes a chunk (4.4): steps from the last to the first (the partial step first), in each
/// step every lane codes its symbol; the lanes that renormalize write their words just below
/// `top`, in increasing lane order, which is the decoder's reading order. The chunk's words end
/// up in words[m - W, m), W = *n_words. `tile` is ENC_TILE symbols of scratch (shared memory).
/// `table` is indexed by symbol; every symbol of the chunk must be in it.
template <class W, typename Sym>
SPN_HD void encode_chunk(const W& w, const Sym* syms, u32 m, u32 lanes, u32 p,
                         const EncSym* table, Sym* tile, u16* words, u32* states, u32* n_words) {
    typename W::template Lanes<u32> x;
    typename W::template Lanes<EncSym> e;
    typename W::template Lanes<bool> need;
    w.each([&](u32 l) { x[l] = RANS_L; });
    u32 top = m;
    u32 tile_start = (m - 1) / ENC_TILE * ENC_TILE;
    for (;;) {
        const u32 tile_end = min_u32(tile_start + ENC_TILE, m);
        w.sync();  // every lane is done with the previous tile
        w.each([&](u32 l) {
            for (u32 i = tile_start + l; i < tile_end; i += WARP_SIZE) tile[i - tile_start] = syms[i];
        });
        w.sync();
        const u32 first_step = tile_start / lanes;
        for (u32 s = (tile_end - 1) / lanes + 1; s-- > first_step;) {
            w.each([&](u32 l) {
                const u32 j = s * lanes + l;
                need[l] = false;
                e[l] = enc_symbol(0, 0);
                if (l < lanes && j < m) {
                    e[l] = table[tile[j - tile_start]];
                    need[l] = enc_needs_word(x[l], e[l].freq, p);
                }
            });
            const u32 mask = w.ballot(need);
            w.each([&](u32 l) {
                if (l < lanes && s * lanes + l < m) {
                    if (need[l]) words[enc_word_slot(top, mask, l)] = enc_renorm(x[l]);
                    x[l] = enc_put(x[l], e[l], p);
                }
            });
            top -= popc(mask);
        }
        if (tile_start == 0) break;
        tile_start -= ENC_TILE;
    }
    w.each([&](u32 l) {
        if (l < lanes) states[l] = x[l];
        if (l == 0) *n_words = m - top;
    });
}

/// Decodes a chunk (4.2, 4.3) from its little-endian initial states and words, and applies the
/// end-of-chunk checks; returns a DecStatus. `fb[slot]` is dec_table_entry, `dsym[slot]` the
/// slot's symbol (2^p entries each). `ring` is DEC_RING words of scratch (shared memory): the
/// words are staged there, refilled every DEC_BATCH steps.
template <class W, typename Sym>
SPN_HD u32 decode_chunk(const W& w, const u8* state_bytes, const u8* word_bytes, u32 n_words,
                        u32 m, u32 lanes, u32 p, const u32* fb, const u16* dsym, u16* ring,
                        Sym* out) {
    typename W::template Lanes<u32> x;
    typename W::template Lanes<bool> flag;
    w.each([&](u32 l) {
        x[l] = RANS_L;
        flag[l] = false;
        if (l < lanes) {
            x[l] = load_u32_le(state_bytes + 4 * l);
            flag[l] = x[l] < RANS_L;
        }
    });
    if (w.ballot(flag) != 0) return DEC_BAD_INITIAL_STATE;
    const u32 steps = (m + lanes - 1) / lanes;
    u32 pos = 0;     // words consumed
    u32 loaded = 0;  // words [0, loaded) have been staged in the ring
    for (u32 s0 = 0; s0 < steps; s0 += DEC_BATCH) {
        const u32 want = min_u32(pos + DEC_BATCH * WARP_SIZE, n_words);
        w.each([&](u32 l) {
            for (u32 i = loaded + l; i < want; i += WARP_SIZE)
                ring[i & (DEC_RING - 1)] = (u16)load_u16_le(word_bytes + 2 * i);
        });
        if (want > loaded) loaded = want;
        w.sync();
        const u32 s_end = min_u32(s0 + DEC_BATCH, steps);
        for (u32 s = s0; s < s_end; ++s) {
            w.each([&](u32 l) {
                const u32 j = s * lanes + l;
                flag[l] = false;
                if (l < lanes && j < m) {
                    const u32 slot = dec_slot(x[l], p);
                    out[j] = (Sym)dsym[slot];
                    x[l] = dec_advance(x[l], fb[slot], p);
                    flag[l] = dec_needs_word(x[l]);
                }
            });
            const u32 mask = w.ballot(flag);
            if (pos + popc(mask) > n_words) return DEC_OUT_OF_WORDS;
            w.each([&](u32 l) {
                if (flag[l]) x[l] = dec_renorm(x[l], ring[dec_word_slot(pos, mask, l) & (DEC_RING - 1)]);
            });
            pos += popc(mask);
        }
        w.sync();  // every lane has read its words before the next refill
    }
    if (pos != n_words) return DEC_UNREAD_WORDS;
    w.each([&](u32 l) { flag[l] = l < lanes && x[l] != RANS_L; });
    if (w.ballot(flag) != 0) return DEC_BAD_FINAL_STATE;
    return DEC_OK;
}

/// Writes a coded chunk in the container's layout (3.3): `lanes` u32 states, then the words,
/// little-endian, at `dst` (any alignment). Lane l of the executor writes every 32nd item.
template <class W>
SPN_HD void pack_chunk(const W& w, const u32* states, u32 lanes, const u16* words, u32 n_words,
                       u8* dst) {
    w.each([&](u32 l) {
        for (u32 i = l; i < lanes; i += WARP_SIZE) store_u32_le(dst + 4 * i, states[i]);
        for (u32 i = l; i < n_words; i += WARP_SIZE) store_u16_le(dst + 4 * lanes + 2 * i, words[i]);
    });
}

}  // namespace spn
