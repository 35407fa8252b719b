//! One coded stream of symbols: its header, frequency table, chunk directory and chunks,
//! or the raw, constant and empty forms that the encoder falls back to.

use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use crate::buffer::{zeroed, Pod};
use crate::bytes::{put_u16, put_u32, put_u64, Reader};
use crate::entropy::freq::{
    build_table_gathered, cost_fixed, FreqTable, Gathered, MAX_PRECISION_BITS,
};
use crate::entropy::rans::{Decoder, Encoder, Symbol, MAX_LANES};
use crate::error::{corrupt, CodecError, Result};

pub const MIN_CHUNK_LOG2: u8 = 8;
pub const MAX_CHUNK_LOG2: u8 = 24;
/// Default chunk sizes run from 2^16 to 2^18 symbols (see `chunk_log2_for`).
pub const DEFAULT_MIN_CHUNK_LOG2: u8 = 16;
pub const DEFAULT_MAX_CHUNK_LOG2: u8 = 18;

/// Fixed header of every stream: mode (u8), symbol width in bytes (u8), symbol count (u64).
pub const STREAM_HEADER_BYTES: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Empty = 0,
    Constant = 1,
    Raw = 2,
    Rans = 3,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Empty => "empty",
            Mode::Constant => "constant",
            Mode::Raw => "raw",
            Mode::Rans => "rans",
        }
    }
}

/// Encoder settings. `chunk_log2`: `None` picks per stream (`chunk_log2_for`). `threads`: 0
/// uses every core (rayon's global pool), 1 runs on the calling thread, k builds a pool of k.
#[derive(Debug, Clone, Copy, Default)]
pub struct EncodeOptions {
    pub precision_bits: Option<u8>,
    pub chunk_log2: Option<u8>,
    pub threads: usize,
}

impl EncodeOptions {
    pub fn validate(&self) -> Result<()> {
        if let Some(p) = self.precision_bits {
            if !(1..=MAX_PRECISION_BITS).contains(&p) {
                return Err(CodecError::InvalidArgument(format!(
                    "precision_bits must be in 1..=16, got {p}"
                )));
            }
        }
        if self
            .chunk_log2
            .is_some_and(|c| !(MIN_CHUNK_LOG2..=MAX_CHUNK_LOG2).contains(&c))
        {
            return Err(CodecError::InvalidArgument(format!(
                "chunk_symbols must be a power of two from 2^{MIN_CHUNK_LOG2} to 2^{MAX_CHUNK_LOG2}"
            )));
        }
        Ok(())
    }
}

/// Default chunk size for `n` symbols whose estimated cost (`cost_fixed`, in 1/65536 bits) is
/// `cost`: a power of two between 2^16 and 2^18, the larger of about n / 64 (floor) and the size
/// that gives each chunk 2^18 bits (32 KiB) of payload (ceiling). Each chunk costs its lanes'
/// final states (128 bytes at 32 lanes): that is 0.6% of a 2^16-symbol chunk of 2-bit codes,
/// 1.3% at 1.2 bits (a 4-bit ReLU map), so sparse streams take larger chunks; large streams
/// too, while still leaving 64 or more chunks for threads and 256 or more GPU warps from 16M
/// symbols up.
pub fn chunk_log2_for(n: usize, cost: u128) -> u8 {
    let floor_log2 = |v: u128| (127 - v.max(1).leading_zeros()) as u8;
    let by_count = floor_log2((n / 64) as u128);
    let want = ((n as u128) << 34).div_ceil(cost.max(1)); // 2^18 bits * 2^16 fixed point
    let by_payload = floor_log2(want) + u8::from(!want.is_power_of_two());
    by_count
        .max(by_payload)
        .clamp(DEFAULT_MIN_CHUNK_LOG2, DEFAULT_MAX_CHUNK_LOG2)
}

/// How a rANS stream is laid out, and the encoder's estimate of its length.
#[derive(Debug, Clone, Copy)]
pub struct RansPlan {
    pub chunk_log2: u8,
    pub lanes: usize,
    pub chunks: usize,
    /// Payload and table from `cost_fixed`, plus the header, parameters, chunk directory and
    /// final states.
    pub estimate: usize,
}

/// The chunk size, lanes and estimated length of a rANS stream of `n` symbols with histogram
/// `counts` coded with `table`.
pub fn rans_plan(counts: &[u64], table: &FreqTable, n: usize, opts: &EncodeOptions) -> RansPlan {
    rans_plan_costed(cost_fixed(counts, table), n, opts)
}

/// `rans_plan` from the table's `cost_fixed`, which `build_table_costed` returns.
pub fn rans_plan_costed(cost: u128, n: usize, opts: &EncodeOptions) -> RansPlan {
    let chunk_log2 = opts.chunk_log2.unwrap_or_else(|| chunk_log2_for(n, cost));
    let chunk = 1usize << chunk_log2;
    let lanes = stream_lanes(n, chunk, cost);
    let chunks = n.div_ceil(chunk);
    let overhead = STREAM_HEADER_BYTES + 4 + chunks * (4 + 4 * lanes);
    RansPlan {
        chunk_log2,
        lanes,
        chunks,
        estimate: (cost >> 19) as usize + overhead,
    }
}

/// Symbols below which a stream is coded on the calling thread whatever `threads` asks: handing
/// chunks to the pool and waking its threads costs ten to twenty microseconds, about what a
/// second core saves on 2^16 symbols (~30 us of coding). Streams of default-sized chunks
/// reach it with their second chunk; it keeps small chunks (`chunk_symbols`) of short
/// streams on one thread.
pub const INLINE_SYMBOLS: usize = 1 << 16;

/// The threads to code a stream of `n` symbols with: 1 below `INLINE_SYMBOLS`, else `threads`.
pub fn threads_for(n: usize, threads: usize) -> usize {
    if n < INLINE_SYMBOLS {
        1
    } else {
        threads
    }
}

/// Maps `f` over `items` with their indices on the requested number of threads, in order.
pub fn par_map<I, T, F>(items: Vec<I>, threads: usize, f: F) -> Vec<T>
where
    I: Send,
    T: Send,
    F: Fn((usize, I)) -> T + Sync + Send,
{
    if threads == 1 || items.len() <= 1 {
        return items.into_iter().enumerate().map(f).collect();
    }
    let run = || items.into_par_iter().enumerate().map(&f).collect();
    if threads == 0 {
        return run();
    }
    match pool(threads) {
        Some(pool) => pool.install(run),
        // Could not start threads: the work is still correct on this one.
        None => run(),
    }
}

/// Most threads a pool gets, whatever is asked: more only adds scheduling.
pub const MAX_THREADS: usize = 256;

/// A pool of `threads` threads, built on first use and kept: building one per call would start
/// and stop threads on every compress. At most 8 sizes are kept; past that, a pool is built for
/// the call.
type Pools = Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>>;

fn pool(threads: usize) -> Option<Arc<rayon::ThreadPool>> {
    static POOLS: OnceLock<Pools> = OnceLock::new();
    let threads = threads.min(MAX_THREADS);
    let build = || {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .ok()
            .map(Arc::new)
    };
    let Ok(mut pools) = POOLS.get_or_init(Default::default).lock() else {
        return build();
    };
    if let Some((_, p)) = pools.iter().find(|(n, _)| *n == threads) {
        return Some(Arc::clone(p));
    }
    let p = build()?;
    if pools.len() < 8 {
        pools.push((threads, Arc::clone(&p)));
    }
    Some(p)
}

/// Lanes for chunks of up to `n` symbols (the smaller of the stream and the chunk size): 32 for
/// chunks of 2^16 symbols or more (the AVX2 and warp-wide paths need all 32), and for shorter
/// chunks one lane per 4096 symbols (a power of two, at least 1), where 32 final states
/// (128 bytes) would cost more than the parallelism buys: a 1x40x28x28 feature at 4 bits codes
/// to about 10 KB, and 128 bytes of states would be over 1% of it.
pub fn lanes_for(n: usize) -> usize {
    if n >= 1 << 16 {
        return MAX_LANES;
    }
    let want = (n / 4096).clamp(1, MAX_LANES);
    1 << (usize::BITS - 1 - want.leading_zeros())
}

/// The lanes the encoder gives the chunks of a stream of `n` symbols in chunks of `chunk`, whose
/// payload and table cost `cost` (1/65536 bit, `cost_fixed`) (FORMAT.md 5.5): `lanes_for(min(n,
/// chunk))`, raised for a stream of one chunk to the first of 32, 4 and 2 lanes above it that
/// leaves every lane at least 256 symbols and whose extra final states (4 bytes a lane) cost at
/// most 1/256 of the payload. On the scalar loops four lanes decode about a third faster than
/// one, whose steps are a chain; 32 take the vector kernels. Eight and sixteen are not offered:
/// on x86-64 they decode slower than four (NOTES 88; likely their states and the loop's other
/// values do not fit its sixteen registers).
pub fn stream_lanes(n: usize, chunk: usize, cost: u128) -> usize {
    let base = lanes_for(n.min(chunk));
    if n > chunk {
        return base;
    }
    let payload = cost >> 19;
    [MAX_LANES, 4, 2]
        .into_iter()
        .find(|&l| l > base && n >= 256 * l && (4 * 256 * (l - base)) as u128 <= payload)
        .unwrap_or(base)
}

/// The largest stream `encode` can produce for `n` symbols of `symbol_bytes` bytes: a raw
/// stream, or a constant one (two bytes of symbol) when that is longer. `None` when that does
/// not fit a `usize` (no such stream can exist in memory).
pub fn max_encoded_len(n: usize, symbol_bytes: usize) -> Option<usize> {
    n.checked_mul(symbol_bytes)?
        .max(2)
        .checked_add(STREAM_HEADER_BYTES)
}

/// The 10-byte stream header (FORMAT.md 4): mode, symbol width, symbol count.
pub fn write_header(out: &mut Vec<u8>, mode: Mode, symbol_bytes: usize, n: usize) {
    out.push(mode as u8);
    out.push(symbol_bytes as u8);
    put_u64(out, n as u64);
}

/// A constant stream (FORMAT.md 5.2): the header and the one symbol, two bytes.
pub fn write_constant(out: &mut Vec<u8>, symbol_bytes: usize, n: usize, symbol: u16) {
    write_header(out, Mode::Constant, symbol_bytes, n);
    put_u16(out, symbol);
}

/// A coded stream up to its chunks' states and words (FORMAT.md 5.2): the header, the coder's
/// parameters, the table and each chunk's word count. The CPU encoder writes its streams through
/// it, and the GPU path, which codes the chunks on the device, through `_core.gpu_stream_head`.
#[allow(clippy::too_many_arguments)]
pub fn write_rans_head(
    out: &mut Vec<u8>,
    symbol_bytes: usize,
    n: usize,
    precision_bits: u8,
    lanes: usize,
    chunk_log2: u8,
    table_bytes: &[u8],
    word_counts: impl IntoIterator<Item = u32>,
) {
    write_header(out, Mode::Rans, symbol_bytes, n);
    out.extend_from_slice(&[precision_bits, lanes as u8, chunk_log2, 0]);
    out.extend_from_slice(table_bytes);
    for w in word_counts {
        put_u32(out, w);
    }
}

/// The length of a coded stream whose table is `table_bytes` long, with `chunks` chunks of
/// `body` bytes of states and words in all: the encoder writes the raw stream instead when this
/// is not shorter (FORMAT.md 5.2 step 7).
pub fn coded_len(table_bytes: usize, chunks: usize, body: usize) -> usize {
    STREAM_HEADER_BYTES + 4 + table_bytes + 4 * chunks + body
}

fn write_raw<S: Symbol>(symbols: &[S], out: &mut Vec<u8>) {
    write_header(out, Mode::Raw, S::BYTES, symbols.len());
    out.reserve(symbols.len() * S::BYTES);
    for &s in symbols {
        out.extend_from_slice(&(s.index() as u16).to_le_bytes()[..S::BYTES]);
    }
}

/// What `encode` decides from a histogram before coding anything: the form of the stream and,
/// for rANS, its table and layout. Planning a stream once serves both the size estimate that
/// chooses a feature's layout and the encoder (`encode_planned`).
#[derive(Debug, Clone)]
pub struct StreamPlan {
    n: usize,
    symbol_bytes: usize,
    present: usize,
    /// The table and layout, when two or more symbols are present and `precision_bits` allows.
    rans: Option<(FreqTable, RansPlan)>,
}

impl StreamPlan {
    /// Plans `n = Σ counts` symbols of `symbol_bytes` bytes with histogram `counts` (indexed by
    /// symbol; any length that covers the symbols present).
    pub fn new(counts: &[u64], symbol_bytes: usize, opts: &EncodeOptions) -> StreamPlan {
        StreamPlan::with_gathered(counts, None, symbol_bytes, opts)
    }

    /// `new`, with the histogram already gathered (`estimated_len_floor_gathered`) if `g` is
    /// given.
    pub fn with_gathered(
        counts: &[u64],
        g: Option<Gathered>,
        symbol_bytes: usize,
        opts: &EncodeOptions,
    ) -> StreamPlan {
        let n = counts.iter().sum::<u64>() as usize;
        let present = counts.iter().filter(|&&c| c > 0).count();
        let rans = if present >= 2 {
            g.or_else(|| Gathered::new(counts))
                .and_then(|g| build_table_gathered(g, opts.precision_bits))
                .map(|(t, cost)| (t, rans_plan_costed(cost, n, opts)))
        } else {
            None
        };
        StreamPlan {
            n,
            symbol_bytes,
            present,
            rans,
        }
    }

    /// The length of the stream `encode` writes: exact for the empty, constant and raw forms,
    /// the encoder's own estimate for rANS.
    pub fn estimated_len(&self) -> usize {
        let raw = STREAM_HEADER_BYTES + self.n * self.symbol_bytes;
        match (self.n, self.present, &self.rans) {
            (0, _, _) => STREAM_HEADER_BYTES,
            (_, 1, _) => STREAM_HEADER_BYTES + 2,
            (_, _, Some((_, plan))) => plan.estimate.min(raw),
            (_, _, None) => raw,
        }
    }
}

/// A lower bound of `StreamPlan::new(counts, symbol_bytes, opts).estimated_len()` that builds
/// no table: exact for the empty and constant forms; for rANS `freq::cost_floor` and the least
/// framing (one chunk of one lane), never above the raw form's length. What lets a caller skip
/// planning streams that cannot be chosen.
pub fn estimated_len_floor(counts: &[u64], symbol_bytes: usize) -> usize {
    estimated_len_floor_gathered(counts, symbol_bytes).0
}

/// `estimated_len_floor` and the gathered histogram (`None` with fewer than two symbols), for
/// `StreamPlan::with_gathered` should the stream be planned after all.
pub fn estimated_len_floor_gathered(
    counts: &[u64],
    symbol_bytes: usize,
) -> (usize, Option<Gathered>) {
    let n = counts.iter().sum::<u64>() as usize;
    let raw = STREAM_HEADER_BYTES + n * symbol_bytes;
    if n == 0 {
        return (STREAM_HEADER_BYTES, None);
    }
    match Gathered::new(counts) {
        None => (STREAM_HEADER_BYTES + 2, None),
        Some(mut g) => {
            let cost = g.cost_floor();
            let len = (cost >> 19) as usize + STREAM_HEADER_BYTES + 4 + 4 + 4;
            (len.min(raw), Some(g))
        }
    }
}

/// `estimated_len_floor` of the `n` symbols gathered in `g`, tightened for the options the
/// stream will be planned with: the table's cost bounded precision by precision
/// (`Gathered::cost_floor_tight`: each precision's payload with its quantization loss, and its
/// table bytes), and a stream of one default-sized chunk charged its lanes' final states. A few
/// passes over the present symbols, kept in `g` for the planner: what a caller tries when the
/// plain floor did not rule the stream out.
pub fn estimated_len_floor_tight(
    g: &mut Gathered,
    n: usize,
    symbol_bytes: usize,
    opts: &EncodeOptions,
) -> usize {
    let raw = STREAM_HEADER_BYTES + n * symbol_bytes;
    // No precision allowed holds the symbols: the plan writes them raw.
    let Some(cost) = g.cost_floor_tight(opts.precision_bits) else {
        return raw;
    };
    // Default chunks hold at least 2^16 symbols: below that, one chunk of `stream_lanes`, whose
    // count never falls as the cost grows (so the floor's is at most the plan's).
    let lanes = if opts.chunk_log2.is_none() && n <= 1 << DEFAULT_MIN_CHUNK_LOG2 {
        stream_lanes(n, n, cost)
    } else {
        1
    };
    ((cost >> 19) as usize + STREAM_HEADER_BYTES + 4 + 4 + 4 * lanes).min(raw)
}

/// Predicts the length of the stream `encode` writes for symbols with histogram `counts`:
/// exact for the empty, constant and raw forms, the encoder's own estimate for rANS.
pub fn estimated_len(counts: &[u64], symbol_bytes: usize, opts: &EncodeOptions) -> usize {
    StreamPlan::new(counts, symbol_bytes, opts).estimated_len()
}

/// Encodes `symbols` as one stream appended to `out`. Never longer than `max_encoded_len`.
pub fn encode<S: Symbol>(symbols: &[S], opts: &EncodeOptions, out: &mut Vec<u8>) -> Result<()> {
    opts.validate()?;
    if symbols.is_empty() {
        write_header(out, Mode::Empty, S::BYTES, 0);
        return Ok(());
    }
    let plan = StreamPlan::new(&S::histogram(symbols), S::BYTES, opts);
    encode_planned(symbols, &plan, opts, out)
}

/// `encode` with the plan of these symbols (`StreamPlan::new` of their histogram with `opts`).
pub fn encode_planned<S: Symbol>(
    symbols: &[S],
    plan: &StreamPlan,
    opts: &EncodeOptions,
    out: &mut Vec<u8>,
) -> Result<()> {
    opts.validate()?;
    let n = symbols.len();
    assert!(
        n == plan.n && S::BYTES == plan.symbol_bytes,
        "a plan of {} {}-byte symbols for {n} of {}",
        plan.n,
        plan.symbol_bytes,
        S::BYTES
    );
    if n == 0 {
        write_header(out, Mode::Empty, S::BYTES, 0);
        return Ok(());
    }
    if plan.present == 1 {
        write_constant(out, S::BYTES, n, symbols[0].index() as u16);
        return Ok(());
    }
    let Some((table, rans)) = &plan.rans else {
        return Err(CodecError::InvalidArgument(format!(
            "precision_bits={} cannot give each of {} distinct symbols a nonzero frequency",
            opts.precision_bits.unwrap_or(MAX_PRECISION_BITS),
            plan.present
        )));
    };
    let (chunk_log2, lanes, n_chunks) = (rans.chunk_log2, rans.lanes, rans.chunks);
    let chunk = 1usize << chunk_log2;
    let raw_len = STREAM_HEADER_BYTES + n * S::BYTES;
    // Skip the coding work when even the estimate cannot beat the raw stream.
    if rans.estimate >= raw_len {
        write_raw(symbols, out);
        return Ok(());
    }
    let encoder = Encoder::for_lanes(table, 1 << (8 * S::BYTES), lanes);
    let pieces: Vec<&[S]> = symbols.chunks(chunk).collect();
    let parts = par_map(pieces, threads_for(n, opts.threads), |(_, piece)| {
        encoder.encode_chunk(piece, lanes)
    });
    let mut table_bytes = Vec::new();
    table.write(&mut table_bytes);
    let body: usize = parts.iter().map(|(s, w)| 4 * s.len() + 2 * w.len()).sum();
    let total = coded_len(table_bytes.len(), n_chunks, body);
    if total >= raw_len {
        write_raw(symbols, out);
        return Ok(());
    }
    out.reserve(total);
    write_rans_head(
        out,
        S::BYTES,
        n,
        table.precision_bits,
        lanes,
        chunk_log2,
        &table_bytes,
        parts.iter().map(|(_, words)| words.len() as u32),
    );
    for (states, words) in &parts {
        for &s in states {
            put_u32(out, s);
        }
        put_words(out, words);
    }
    Ok(())
}

/// Appends 16-bit words little-endian.
fn put_words(out: &mut Vec<u8>, words: &[u16]) {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: the words' memory is `2 * len` initialized bytes, in little-endian order on
        // this target; u8 has no alignment requirement.
        let bytes =
            unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), 2 * words.len()) };
        out.extend_from_slice(bytes);
    }
    #[cfg(not(target_endian = "little"))]
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// A parsed stream, borrowing its payload from the input.
pub struct StreamView<'a> {
    pub mode: Mode,
    pub symbol_bytes: usize,
    pub n: usize,
    pub encoded_len: usize,
    body: Body<'a>,
}

enum Body<'a> {
    Empty,
    Constant(u16),
    Raw(&'a [u8]),
    Rans {
        table: FreqTable,
        lanes: usize,
        chunk_log2: u8,
        /// Per chunk: initial states bytes and words bytes.
        chunks: Vec<(&'a [u8], &'a [u8])>,
    },
}

impl StreamView<'_> {
    pub fn table(&self) -> Option<&FreqTable> {
        match &self.body {
            Body::Rans { table, .. } => Some(table),
            _ => None,
        }
    }

    pub fn lanes(&self) -> usize {
        match &self.body {
            Body::Rans { lanes, .. } => *lanes,
            _ => 0,
        }
    }

    pub fn chunk_symbols(&self) -> usize {
        match &self.body {
            Body::Rans { chunk_log2, .. } => 1 << chunk_log2,
            _ => 0,
        }
    }
}

/// Parses and validates a stream's structure. `max_symbols` bounds the declared symbol count
/// before anything is allocated for it.
pub fn parse<'a>(r: &mut Reader<'a>, max_symbols: u64) -> Result<StreamView<'a>> {
    let start = r.position();
    let mode = r.u8("stream mode")?;
    let symbol_bytes = r.u8("stream symbol width")? as usize;
    if symbol_bytes != 1 && symbol_bytes != 2 {
        return Err(corrupt!(
            "stream symbol width {symbol_bytes} is not 1 or 2 bytes"
        ));
    }
    let n64 = r.u64("stream symbol count")?;
    if n64 > max_symbols {
        return Err(corrupt!(
            "stream declares {n64} symbols, more than the {max_symbols} expected"
        ));
    }
    // Below `max_symbols`, which the callers take from an array's element count: a usize.
    let n = usize::try_from(n64).unwrap_or(usize::MAX);
    parse_body(r, start, mode, symbol_bytes, n)
}

/// Parses a compact stream (FORMAT.md 10.3): the mode byte, then the body of a stream of `n`
/// symbols of `symbol_bytes` bytes, both implied by the container.
pub fn parse_compact<'a>(
    r: &mut Reader<'a>,
    symbol_bytes: usize,
    n: usize,
) -> Result<StreamView<'a>> {
    let start = r.position();
    let mode = r.u8("stream mode")?;
    parse_body(r, start, mode, symbol_bytes, n)
}

/// Encodes `symbols` as a compact stream (FORMAT.md 10.3): the stream `encode` writes, with
/// its width and count left out (the container implies them) — the same choices, 9 bytes less.
pub fn encode_compact<S: Symbol>(
    symbols: &[S],
    opts: &EncodeOptions,
    out: &mut Vec<u8>,
) -> Result<()> {
    let mut full = Vec::new();
    encode(symbols, opts, &mut full)?;
    out.push(full[0]);
    out.extend_from_slice(&full[STREAM_HEADER_BYTES..]);
    Ok(())
}

/// `encode_compact` with the plan of these symbols (`encode_planned`): the same bytes.
pub fn encode_compact_planned<S: Symbol>(
    symbols: &[S],
    plan: &StreamPlan,
    opts: &EncodeOptions,
    out: &mut Vec<u8>,
) -> Result<()> {
    let start = out.len();
    encode_planned(symbols, plan, opts, out)?;
    // The compact record keeps the mode byte and drops the rest of the stream header.
    out.drain(start + 1..start + STREAM_HEADER_BYTES);
    Ok(())
}

fn parse_body<'a>(
    r: &mut Reader<'a>,
    start: usize,
    mode: u8,
    symbol_bytes: usize,
    n: usize,
) -> Result<StreamView<'a>> {
    let alphabet = 1u32 << (8 * symbol_bytes);
    let (mode, body) = match mode {
        0 => {
            if n != 0 {
                return Err(corrupt!("empty stream declares {n} symbols"));
            }
            (Mode::Empty, Body::Empty)
        }
        1 => {
            let s = r.u16("constant symbol")?;
            if u32::from(s) >= alphabet || n == 0 {
                return Err(corrupt!("invalid constant stream"));
            }
            (Mode::Constant, Body::Constant(s))
        }
        2 => {
            let len = n.saturating_mul(symbol_bytes);
            (Mode::Raw, Body::Raw(r.take(len, "raw stream")?))
        }
        3 => {
            let precision_bits = r.u8("precision")?;
            let lanes = r.u8("lanes")? as usize;
            let chunk_log2 = r.u8("chunk size")?;
            let reserved = r.u8("reserved")?;
            if !(1..=MAX_LANES).contains(&lanes) || !lanes.is_power_of_two() {
                return Err(corrupt!(
                    "lane count {lanes} is not a power of two up to 32"
                ));
            }
            if !(MIN_CHUNK_LOG2..=MAX_CHUNK_LOG2).contains(&chunk_log2) || reserved != 0 {
                return Err(corrupt!(
                    "invalid chunk size 2^{chunk_log2} or reserved byte"
                ));
            }
            if n == 0 {
                return Err(corrupt!("rANS stream with no symbols"));
            }
            let table = FreqTable::read(r, precision_bits, alphabet)?;
            let n_chunks = n.div_ceil(1 << chunk_log2);
            // The directory is read before allocating for it: a lying count fails here.
            let dir = r.take(n_chunks.saturating_mul(4), "chunk directory")?;
            let mut chunks = Vec::with_capacity(n_chunks);
            for d in dir.chunks_exact(4) {
                let words = u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize;
                let states = r.take(4 * lanes, "chunk states")?;
                let words = r.take(2 * words, "chunk words")?;
                chunks.push((states, words));
            }
            (
                Mode::Rans,
                Body::Rans {
                    table,
                    lanes,
                    chunk_log2,
                    chunks,
                },
            )
        }
        m => return Err(corrupt!("unknown stream mode {m}")),
    };
    Ok(StreamView {
        mode,
        symbol_bytes,
        n,
        encoded_len: r.position() - start,
        body,
    })
}

/// Decodes a parsed stream into `out` (`out.len() == view.n`, `S::BYTES == view.symbol_bytes`).
/// Panics when `out` or `S` do not fit the view (a caller's error: the container parsers check
/// widths and counts before they call this).
pub fn decode_into<S: Symbol>(view: &StreamView<'_>, out: &mut [S], threads: usize) -> Result<()> {
    assert!(
        S::BYTES == view.symbol_bytes && out.len() == view.n,
        "decode_into: a stream of {} {}-byte symbols into {} of {} bytes",
        view.n,
        view.symbol_bytes,
        out.len(),
        S::BYTES
    );
    match &view.body {
        Body::Empty => Ok(()),
        Body::Constant(s) => {
            out.fill(S::from_index(u32::from(*s)));
            Ok(())
        }
        Body::Raw(bytes) => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(S::BYTES)) {
                let v = if S::BYTES == 1 {
                    u16::from(b[0])
                } else {
                    u16::from_le_bytes([b[0], b[1]])
                };
                *o = S::from_index(u32::from(v));
            }
            Ok(())
        }
        Body::Rans {
            table,
            lanes,
            chunk_log2,
            chunks,
        } => {
            let decoder = Decoder::for_lanes(table, *lanes);
            let chunk = 1usize << chunk_log2;
            let states: Vec<Vec<u32>> = chunks
                .iter()
                .map(|(s, _)| {
                    s.chunks_exact(4)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect()
                })
                .collect();
            // Chunks go in pairs, which the vector decoder interleaves.
            let mut pieces = out.chunks_mut(chunk);
            let mut pairs = Vec::with_capacity(chunks.len().div_ceil(2));
            while let Some(a) = pieces.next() {
                pairs.push((a, pieces.next()));
            }
            let tag =
                |i: usize, r: Result<()>| r.map_err(|e| corrupt!("chunk {i}: {}", message(&e)));
            let results = par_map(pairs, threads_for(view.n, threads), |(k, (a, b))| {
                let i = 2 * k;
                match b {
                    Some(b) => {
                        let (ra, rb) = decoder.decode_chunk_pair(
                            (&states[i], chunks[i].1, a),
                            (&states[i + 1], chunks[i + 1].1, b),
                        );
                        [tag(i, ra), tag(i + 1, rb)]
                    }
                    None => [
                        tag(i, decoder.decode_chunk(&states[i], chunks[i].1, a)),
                        Ok(()),
                    ],
                }
            });
            // The first failing chunk in order, as when each chunk was decoded on its own.
            results.into_iter().flatten().collect()
        }
    }
}

/// Symbols `decode_convert` decodes at a time into a buffer on the stack, before handing them
/// on: small enough to stay in L1 beside the tables, a multiple of every lane count.
pub const PIECE_SYMBOLS: usize = 4096;

/// Decodes `view` and hands its symbols, a piece at a time, to `convert(symbols, out_piece,
/// first)`, which fills `out_piece` (as long as `symbols`) from them; `first` is the index of
/// the piece's first symbol in the stream. Nothing as large as the stream is held: the codes of
/// a feature go straight into its float output. Fails as `decode_into` fails (the first failing
/// chunk in order), whatever `convert` was handed before.
pub fn decode_convert<S: Symbol, O: Send>(
    view: &StreamView<'_>,
    out: &mut [O],
    threads: usize,
    convert: impl Fn(&[S], &mut [O], usize) + Sync,
) -> Result<()> {
    assert!(
        S::BYTES == view.symbol_bytes && out.len() == view.n,
        "decode_convert: a stream of {} {}-byte symbols into {} of {} bytes",
        view.n,
        view.symbol_bytes,
        out.len(),
        S::BYTES
    );
    // Pieces no longer than the stream: a short stream clears no 4096-symbol buffer.
    let piece = view.n.clamp(1, PIECE_SYMBOLS);
    match &view.body {
        Body::Empty => {}
        Body::Constant(c) => {
            let buf = vec![S::from_index(u32::from(*c)); piece];
            for (k, o) in out.chunks_mut(PIECE_SYMBOLS).enumerate() {
                convert(&buf[..o.len()], o, k * PIECE_SYMBOLS);
            }
        }
        Body::Raw(bytes) => {
            let mut buf = vec![S::default(); piece];
            for (k, o) in out.chunks_mut(PIECE_SYMBOLS).enumerate() {
                let first = k * PIECE_SYMBOLS;
                let raw = &bytes[first * S::BYTES..(first + o.len()) * S::BYTES];
                for (b, r) in buf.iter_mut().zip(raw.chunks_exact(S::BYTES)) {
                    let v = if S::BYTES == 1 {
                        u16::from(r[0])
                    } else {
                        u16::from_le_bytes([r[0], r[1]])
                    };
                    *b = S::from_index(u32::from(v));
                }
                convert(&buf[..o.len()], o, first);
            }
        }
        Body::Rans {
            table,
            lanes,
            chunk_log2,
            chunks,
        } => {
            let decoder = Decoder::for_lanes(table, *lanes);
            let chunk = 1usize << chunk_log2;
            let states = |i: usize| -> Vec<u32> {
                chunks[i]
                    .0
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            };
            let mut pieces = out.chunks_mut(chunk);
            let mut pairs = Vec::with_capacity(chunks.len().div_ceil(2));
            while let Some(a) = pieces.next() {
                pairs.push((a, pieces.next()));
            }
            let tag =
                |i: usize, r: Result<()>| r.map_err(|e| corrupt!("chunk {i}: {}", message(&e)));
            let one = |i: usize, o: &mut [O]| -> Result<()> {
                let mut buf = vec![S::default(); o.len().min(PIECE_SYMBOLS)];
                let mut c = decoder.start(&states(i), chunks[i].1)?;
                for (k, piece) in o.chunks_mut(PIECE_SYMBOLS).enumerate() {
                    let b = &mut buf[..piece.len()];
                    decoder.decode_piece(&mut c, b)?;
                    convert(b, piece, i * chunk + k * PIECE_SYMBOLS);
                }
                decoder.end(&c)
            };
            let results = par_map(pairs, threads_for(view.n, threads), |(k, (a, b))| {
                let i = 2 * k;
                let Some(b) = b else {
                    return [tag(i, one(i, a)), Ok(())];
                };
                let (sa, sb) = (states(i), states(i + 1));
                let (mut ca, mut cb) = match (
                    decoder.start(&sa, chunks[i].1),
                    decoder.start(&sb, chunks[i + 1].1),
                ) {
                    (Ok(ca), Ok(cb)) => (ca, cb),
                    // A chunk whose states are invalid fails at once; the other alone.
                    _ => return [tag(i, one(i, a)), tag(i + 1, one(i + 1, b))],
                };
                let (mut ba, mut bb) = (vec![S::default(); piece], vec![S::default(); piece]);
                let (mut ra, mut rb) = (Ok(()), Ok(()));
                let mut pa = a.chunks_mut(PIECE_SYMBOLS);
                let mut pb = b.chunks_mut(PIECE_SYMBOLS);
                let mut k = 0;
                loop {
                    let (oa, ob) = (pa.next(), pb.next());
                    let first = k * PIECE_SYMBOLS;
                    match (oa, ob) {
                        (Some(oa), Some(ob)) if ra.is_ok() && rb.is_ok() => {
                            let (xa, xb) = (&mut ba[..oa.len()], &mut bb[..ob.len()]);
                            let (r1, r2) = decoder.decode_piece_pair((&mut ca, xa), (&mut cb, xb));
                            if r1.is_ok() {
                                convert(xa, oa, i * chunk + first);
                            }
                            if r2.is_ok() {
                                convert(xb, ob, (i + 1) * chunk + first);
                            }
                            (ra, rb) = (r1, r2);
                        }
                        (None, None) => break,
                        (oa, ob) => {
                            // One chunk is done, shorter or failed: the other goes on alone.
                            for (o, c, r, x, base) in [
                                (oa, &mut ca, &mut ra, &mut ba, i * chunk),
                                (ob, &mut cb, &mut rb, &mut bb, (i + 1) * chunk),
                            ] {
                                if let (Some(o), true) = (o, r.is_ok()) {
                                    let xs = &mut x[..o.len()];
                                    *r = decoder.decode_piece(c, xs);
                                    if r.is_ok() {
                                        convert(xs, o, base + first);
                                    }
                                }
                            }
                        }
                    }
                    k += 1;
                }
                [
                    tag(i, ra.and_then(|_| decoder.end(&ca))),
                    tag(i + 1, rb.and_then(|_| decoder.end(&cb))),
                ]
            });
            results.into_iter().flatten().collect::<Result<()>>()?;
        }
    }
    Ok(())
}

/// `decode_convert` of the real setting's small streams in one step: where `view` is a rANS
/// stream of one chunk of 1, 2, 4, 8 or 16 lanes (every stream below 65,536 symbols but those
/// `stream_lanes` gives 32) whose table holds no symbol above `top <= 255`, each decoded symbol
/// `s` is written as `map[s]`, and the result is `Some` of what `decode_convert` would return;
/// otherwise `None`, and nothing is written.
pub fn decode_mapped<T: Copy>(
    view: &StreamView<'_>,
    out: &mut [T],
    map: &[T; 256],
    top: u32,
) -> Option<Result<()>> {
    let Body::Rans {
        table,
        lanes: lanes @ (1 | 2 | 4 | 8 | 16),
        chunks,
        ..
    } = &view.body
    else {
        return None;
    };
    // The table's symbols are in increasing order: the last is the largest.
    let largest = table.symbols.last().copied().unwrap_or(0);
    if chunks.len() != 1 || out.len() != view.n || top > 255 || largest > top {
        return None;
    }
    let decoder = Decoder::for_lanes(table, *lanes);
    let (states, words) = chunks[0];
    let mut x = [0u32; 16];
    for (x, b) in x.iter_mut().zip(states.chunks_exact(4)) {
        *x = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    let r = decoder.start(&x[..*lanes], words).and_then(|mut c| {
        decoder.decode_piece_mapped(&mut c, out, map)?;
        decoder.end(&c)
    });
    Some(r.map_err(|e| corrupt!("chunk 0: {}", message(&e))))
}

/// Symbols that `Blocks` decodes at a time (whole chunks; one chunk when a chunk is larger).
/// 2^21 symbols are 2 or 4 MiB: enough chunks of the default sizes (2^16 to 2^18) to keep the
/// threads busy, small beside any output worth a block.
pub const BLOCK_SYMBOLS: usize = 1 << 21;

/// The symbols of one block of `view`: its length is `BLOCK_SYMBOLS` rounded to whole chunks (at
/// least one chunk), or the whole stream when that is shorter.
fn block_len(view: &StreamView<'_>) -> usize {
    match &view.body {
        Body::Empty => 0,
        Body::Rans { chunk_log2, .. } => {
            let chunk = 1usize << chunk_log2;
            view.n.min(chunk * (BLOCK_SYMBOLS / chunk).max(1))
        }
        _ => view.n.min(BLOCK_SYMBOLS),
    }
}

/// Bytes beyond `BLOCK_SYMBOLS` symbols that decoding `view` block by block holds: nonzero only
/// for a stream coded in chunks of more than 2^21 symbols (`chunk_symbols` above that), whose
/// chunks must be decoded whole. Decoders count these bytes against the output cap.
pub fn oversized_block_bytes(view: &StreamView<'_>) -> u64 {
    let len = block_len(view);
    if len > BLOCK_SYMBOLS {
        (len * view.symbol_bytes) as u64
    } else {
        0
    }
}

/// A stream decoded one block at a time into one reused buffer, so that reading a stream holds
/// a block, not the stream. Blocks come in order; a corrupt chunk fails the block holding it.
pub struct Blocks<'v, 'a, S: Symbol> {
    view: &'v StreamView<'a>,
    threads: usize,
    decoder: Option<Decoder>,
    /// The first symbol not handed out yet.
    next: usize,
    buf: Vec<S>,
}

impl<'v, 'a, S: Symbol + Pod> Blocks<'v, 'a, S> {
    /// Panics when `S` is not the stream's symbol width (a caller's error).
    pub fn new(view: &'v StreamView<'a>, threads: usize) -> Result<Self> {
        assert_eq!(
            S::BYTES,
            view.symbol_bytes,
            "Blocks of the wrong symbol width"
        );
        let mut buf = zeroed::<S>(block_len(view))?;
        let decoder = match &view.body {
            Body::Rans { table, lanes, .. } => Some(Decoder::for_lanes(table, *lanes)),
            Body::Constant(s) => {
                buf.fill(S::from_index(u32::from(*s)));
                None
            }
            _ => None,
        };
        Ok(Blocks {
            view,
            threads,
            decoder,
            next: 0,
            buf,
        })
    }

    /// Symbols not handed out yet.
    pub fn remaining(&self) -> usize {
        self.view.n - self.next
    }

    /// The next block of symbols, or `None` after the last.
    pub fn next_block(&mut self) -> Result<Option<&[S]>> {
        let start = self.next;
        let len = self.buf.len().min(self.view.n - start);
        if len == 0 {
            return Ok(None);
        }
        match &self.view.body {
            Body::Empty | Body::Constant(_) => {}
            Body::Raw(bytes) => {
                let w = S::BYTES;
                for (o, b) in self.buf[..len]
                    .iter_mut()
                    .zip(bytes[start * w..(start + len) * w].chunks_exact(w))
                {
                    let v = if w == 1 {
                        u16::from(b[0])
                    } else {
                        u16::from_le_bytes([b[0], b[1]])
                    };
                    *o = S::from_index(u32::from(v));
                }
            }
            Body::Rans {
                chunk_log2, chunks, ..
            } => {
                let decoder = self.decoder.as_ref().expect("a rANS stream has a decoder");
                let first = start >> chunk_log2;
                let pieces: Vec<&mut [S]> = self.buf[..len].chunks_mut(1 << chunk_log2).collect();
                let results = par_map(pieces, self.threads, |(i, piece)| {
                    let k = first + i;
                    let (states, words) = chunks[k];
                    let mut x = [0u32; MAX_LANES];
                    for (s, b) in x.iter_mut().zip(states.chunks_exact(4)) {
                        *s = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    }
                    decoder
                        .decode_chunk(&x[..states.len() / 4], words, piece)
                        .map_err(|e| corrupt!("chunk {k}: {}", message(&e)))
                });
                results.into_iter().collect::<Result<()>>()?;
            }
        }
        self.next = start + len;
        Ok(Some(&self.buf[..len]))
    }
}

/// The symbols of a stream one at a time, decoded a block at a time. The caller reads at most
/// the stream's symbol count.
pub struct SymbolReader<'v, 'a, S: Symbol> {
    blocks: Blocks<'v, 'a, S>,
    pos: usize,
    len: usize,
}

impl<'v, 'a, S: Symbol + Pod> SymbolReader<'v, 'a, S> {
    pub fn new(view: &'v StreamView<'a>, threads: usize) -> Result<Self> {
        Ok(SymbolReader {
            blocks: Blocks::new(view, threads)?,
            pos: 0,
            len: 0,
        })
    }

    /// The next symbol; decoding its block can fail. Panics past the stream's last symbol.
    #[inline(always)]
    pub fn read(&mut self) -> Result<S> {
        if self.pos == self.len {
            self.refill()?;
        }
        let s = self.blocks.buf[self.pos];
        self.pos += 1;
        Ok(s)
    }

    #[cold]
    fn refill(&mut self) -> Result<()> {
        let len = self
            .blocks
            .next_block()?
            .expect("read past the stream's symbol count")
            .len();
        self.pos = 0;
        self.len = len;
        Ok(())
    }
}

/// Calls `f(first, symbols)` for the blocks of `view` in order (`first`: the index of the
/// block's first symbol).
pub fn for_each_block<S: Symbol + Pod>(
    view: &StreamView<'_>,
    threads: usize,
    mut f: impl FnMut(usize, &[S]) -> Result<()>,
) -> Result<()> {
    let mut blocks = Blocks::<S>::new(view, threads)?;
    let mut first = 0;
    while let Some(b) = blocks.next_block()? {
        f(first, b)?;
        first += b.len();
    }
    Ok(())
}

/// The histogram of a stream's symbols (`1 << (8 * S::BYTES)` counts), decoded block by block.
pub fn histogram<S: Symbol + Pod>(view: &StreamView<'_>, threads: usize) -> Result<Vec<u64>> {
    let mut counts = vec![0u64; 1 << (8 * S::BYTES)];
    assert_eq!(
        S::BYTES,
        view.symbol_bytes,
        "histogram of the wrong symbol width"
    );
    if let Body::Constant(s) = &view.body {
        // Nothing to decode: a constant stream of 2^40 symbols is counted at once.
        counts[usize::from(*s)] = view.n as u64;
        return Ok(counts);
    }
    for_each_block::<S>(view, threads, |_, block| {
        if block.len() < counts.len() {
            // Fewer symbols than counters: counting beats clearing and adding a table.
            for &s in block {
                counts[s.index()] += 1;
            }
        } else {
            for (c, n) in counts.iter_mut().zip(S::histogram(block)) {
                *c += n;
            }
        }
        Ok(())
    })?;
    Ok(counts)
}

fn message(e: &CodecError) -> String {
    match e {
        CodecError::Corrupt(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Decodes one whole stream from `r`.
pub fn decode<S: Symbol + Pod>(
    r: &mut Reader<'_>,
    max_symbols: u64,
    threads: usize,
) -> Result<Vec<S>> {
    let view = parse(r, max_symbols)?;
    // The stream says its own symbol width: one of another width than asked for is refused
    // here (decode_into takes it as a caller's error and panics).
    if view.symbol_bytes != S::BYTES {
        return Err(corrupt!(
            "a stream of {}-byte symbols where {}-byte symbols were expected",
            view.symbol_bytes,
            S::BYTES
        ));
    }
    let mut out = zeroed::<S>(view.n)?;
    decode_into(&view, &mut out, threads)?;
    Ok(out)
}

#[cfg(test)]
mod lane_tests {
    use super::*;

    #[test]
    fn full_chunks_use_all_lanes() {
        assert_eq!(lanes_for(1 << 16), 32);
        assert_eq!(lanes_for(1 << 18), 32);
        assert_eq!(lanes_for(65_535), 8);
        assert_eq!(lanes_for(4095), 1);
        assert_eq!(lanes_for(0), 1);
    }

    /// `stream_lanes` at the real setting's sizes (payload bytes as `cost >> 19`), and its
    /// rules: never below `lanes_for`, raised only for one chunk, to 2, 4 or 32 with 256 symbols
    /// a lane and the extra states within 1/256 of the payload, never falling as the cost grows
    /// (what keeps `estimated_len_floor_tight` below the plan).
    #[test]
    fn one_chunk_takes_more_lanes_where_they_cost_little() {
        let bytes = |b: u128| b << 19;
        let chunk = 1 << 16;
        for (n, payload, want) in [
            (1568, 899, 1),
            (1568, 1024, 2),
            (3136, 1190, 2),
            (3136, 3100, 4),
            (6272, 1650, 2),
            (6272, 3072, 4),
            (6272, 3071, 2),
            (12_288, 2047, 2),
            (12_288, 2048, 4),
            (16_464, 8500, 4),
            (16_464, 28_672, 32),
            (40_000, 20_000, 8),
            (40_000, 24_576, 32),
            (511, 100_000, 1),
            (512, 100_000, 2),
        ] {
            assert_eq!(stream_lanes(n, chunk, bytes(payload)), want, "n {n}, {payload} bytes");
        }
        assert_eq!(stream_lanes(1 << 16, chunk, bytes(1)), 32);
        // Several chunks keep `lanes_for`'s count, however costly the symbols.
        assert_eq!(stream_lanes(20_000, 4096, bytes(1 << 20)), 1);
        assert_eq!(stream_lanes(200_000, chunk, bytes(1 << 20)), 32);
        for n in (0..70_000).step_by(97) {
            let mut last = 0;
            for payload in (0..40_000).step_by(61) {
                let l = stream_lanes(n, chunk, bytes(payload));
                let base = lanes_for(n.min(chunk));
                assert!(l >= last && l >= base && l.is_power_of_two(), "n {n}, {payload}");
                if l > base {
                    let cheap = 1024 * (l - base) as u128 <= payload;
                    assert!(n >= 256 * l && cheap && l != 8 && l != 16, "n {n}, {payload}");
                }
                last = l;
            }
        }
    }
}

#[cfg(test)]
mod floor_tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `estimated_len_floor` is below the planned estimate for every form, precision and chunk
    /// option (what lets the feature planner skip the CSR streams), and equal to it for the
    /// empty and constant forms.
    #[test]
    fn floor_is_below_the_estimate() {
        let mut rng = ChaCha8Rng::seed_from_u64(44);
        let (mut tight, mut gained, mut rans) = (0, 0, 0);
        let (mut within, mut within_plain) = (0, 0);
        for round in 0..3000 {
            let alphabet = [1usize, 2, 16, 256, 4096][round % 5];
            let n = [0u64, 1, 3, 40, 1568, 30_000, 300_000][round % 7];
            let skew = rng.gen_range(0.0..5.0f64);
            let mut counts = vec![0u64; alphabet];
            for _ in 0..n.min(40_000) {
                counts[(rng.gen::<f64>().powf(skew + 1.0) * alphabet as f64) as usize] +=
                    n.div_ceil(40_000);
            }
            let opts = EncodeOptions {
                precision_bits: [None, None, Some(1), Some(8), Some(16)][round % 5],
                chunk_log2: [None, Some(8)][round % 2],
                threads: 1,
            };
            let width = 1 + round % 2;
            let (floor, g) = estimated_len_floor_gathered(&counts, width);
            let est = StreamPlan::new(&counts, width, &opts).estimated_len();
            assert!(floor <= est, "round {round}: floor {floor} > estimate {est}");
            tight += usize::from(floor == est);
            if let Some(mut g) = g {
                let n = counts.iter().sum::<u64>() as usize;
                let t = estimated_len_floor_tight(&mut g, n, width, &opts);
                assert!(t <= est, "round {round}: tight floor {t} > estimate {est}");
                assert!(t >= floor, "round {round}: tight floor {t} < floor {floor}");
                // Planned from what the tight floor left in `g`: the same plan.
                let again = StreamPlan::with_gathered(&counts, Some(g), width, &opts);
                assert_eq!(again.estimated_len(), est, "round {round}");
                gained += usize::from(t > floor);
                within += usize::from((est - t) * 200 <= est);
                within_plain += usize::from((est - floor) * 200 <= est);
                rans += 1;
            }
            if counts.iter().filter(|&&c| c > 0).count() < 2 {
                assert_eq!(floor, est, "round {round}");
            }
        }
        assert!(tight > 300 && tight < 2700, "{tight} of 3000 equal");
        // One symbol nearly always, twenty once each: the high precisions (up to 16) are the
        // cheap ones, so a floor that left them out would lie above the estimate.
        for n in [100_000u64, 10_000_000] {
            let mut counts = vec![1u64; 21];
            counts[7] = n;
            let (floor, g) = estimated_len_floor_gathered(&counts, 1);
            let est = StreamPlan::new(&counts, 1, &EncodeOptions::default()).estimated_len();
            let t = estimated_len_floor_tight(&mut g.unwrap(), n as usize + 20, 1, &Default::default());
            assert!(floor <= t && t <= est, "n {n}: floors {floor}, {t}, estimate {est}");
        }
        // The tight floor earns its passes: above the plain one on a third or more of the rANS
        // streams, and within 0.5 % of the estimate on many more of them than the plain one.
        eprintln!(
            "tight floor: above the plain one on {gained} of {rans}, within 0.5 % on {within} \
             (the plain one on {within_plain})"
        );
        assert!(gained * 3 > rans, "{gained} of {rans}");
        assert!(within > within_plain + rans / 10, "{within} against {within_plain}");
    }

    /// Where the bound has no slack to speak of, it is the estimate: two equally frequent
    /// symbols (one bit each at precision 1, a one-byte table whatever the bound assumes) in one
    /// chunk of one lane are within a byte of the planned estimate, so the bound's framing
    /// (header, parameters, one chunk length, one final state) is the encoder's.
    #[test]
    fn floor_is_tight_where_the_cost_is_known() {
        for n in [16u64, 200, 1568, 4000] {
            let counts = [n / 2, n / 2];
            let floor = estimated_len_floor(&counts, 1);
            let est = StreamPlan::new(&counts, 1, &EncodeOptions::default()).estimated_len();
            assert!(floor <= est && est - floor <= 1, "n {n}: floor {floor}, estimate {est}");
        }
    }
}

#[cfg(test)]
mod convert_tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `decode_mapped` gives `decode_convert`'s result with each symbol looked up, for the
    /// streams it takes (one chunk of 1, 2, 4, 8 or 16 lanes whose table has no symbol above
    /// `top`, no words at all included), and declines every other stream untouched; on valid
    /// streams and altered ones (a bit flipped anywhere, so tables, states and words).
    #[test]
    fn decode_mapped_matches_decode_convert() {
        let mut rng = ChaCha8Rng::seed_from_u64(76);
        let map: [f32; 256] = std::array::from_fn(|i| i as f32 * 0.5 - 3.0);
        let (mut taken, mut failed, mut declined) = (0, 0, 0);
        for round in 0..4000 {
            let n = [1usize, 2, 3, 5, 17, 300, 1568, 8191, 8192, 20000][round % 10];
            let top: u32 = rng.gen_range(0..=255);
            // Up to 8 symbols past `top`, seldom: some tables hold one, some streams none.
            let spread = f64::from(rng.gen_range(1..=top + 9));
            let data: Vec<u8> = (0..n)
                .map(|_| ((rng.gen::<f64>().powi(3) * spread) as u32).min(255) as u8)
                .collect();
            // Five streams in six in 1, 2, 4, 8 or 16 lanes whatever their length (one lane: as
            // the encoder wrote every stream below 8,192 symbols before `stream_lanes`, NOTES
            // 88), the sixth as the encoder chooses.
            let opts = EncodeOptions::default();
            let mut plan = StreamPlan::new(&u8::histogram(&data), 1, &opts);
            let forced = [Some(1), Some(2), Some(4), Some(8), Some(16), None][round / 10 % 6];
            if let (Some(l), Some((_, rans))) = (forced, &mut plan.rans) {
                rans.lanes = l;
            }
            let mut blob = Vec::new();
            encode_planned(&data, &plan, &opts, &mut blob).unwrap();
            if round % 2 == 1 {
                let i = rng.gen_range(0..blob.len());
                blob[i] ^= 1 << rng.gen_range(0..8);
            }
            let Ok(view) = parse(&mut Reader::new(&blob), n as u64) else {
                continue;
            };
            let takes = match &view.body {
                Body::Rans {
                    table,
                    lanes,
                    chunks,
                    ..
                } => {
                    matches!(lanes, 1 | 2 | 4 | 8 | 16)
                        && chunks.len() == 1
                        && table.symbols.iter().all(|&s| s <= top)
                }
                _ => false,
            };
            let mut want = vec![0f32; view.n];
            let rw = decode_convert(&view, &mut want, 1, |s: &[u8], o: &mut [f32], _| {
                for (o, &s) in o.iter_mut().zip(s) {
                    *o = map[usize::from(s)];
                }
            });
            let mut got = vec![f32::NAN; view.n];
            match decode_mapped(&view, &mut got, &map, top) {
                None => {
                    assert!(!takes, "round {round}: declined");
                    assert!(got.iter().all(|v| v.is_nan()), "round {round}: written");
                    declined += 1;
                }
                Some(rg) => {
                    assert!(takes, "round {round}: taken");
                    assert_eq!(rg, rw, "round {round}");
                    if rw.is_ok() {
                        assert_eq!(got, want, "round {round}");
                    } else {
                        failed += 1;
                    }
                    taken += 1;
                }
            }
        }
        assert!(taken > 1400 && failed > 600 && declined > 1300, "{taken} {failed} {declined}");
    }

    /// `decode_convert` with the identity gives `decode_into`'s symbols and result, for every
    /// stream form, chunk size and thread count, on valid streams and altered ones.
    #[test]
    fn decode_convert_matches_decode_into() {
        let mut rng = ChaCha8Rng::seed_from_u64(15);
        for round in 0..120 {
            let n = [0usize, 1, 5000, 70_000, 300_000][round % 5];
            let data: Vec<u8> = match round % 3 {
                0 => (0..n)
                    .map(|_| (rng.gen::<f64>().powi(4) * 40.0) as u8)
                    .collect(),
                1 => vec![7; n],
                _ => (0..n).map(|_| rng.gen()).collect(),
            };
            let opts = EncodeOptions {
                chunk_log2: [None, Some(8), Some(12)][round % 3],
                ..Default::default()
            };
            let mut blob = Vec::new();
            encode(&data, &opts, &mut blob).unwrap();
            if round % 4 == 3 && blob.len() > 40 {
                let i = rng.gen_range(20..blob.len());
                blob[i] ^= 1 << rng.gen_range(0..8);
            }
            let Ok(view) = parse(&mut Reader::new(&blob), n as u64) else {
                continue;
            };
            for threads in [1, 2] {
                let mut want = vec![0u8; view.n];
                let rw = decode_into(&view, &mut want, threads);
                let mut got = vec![0u8; view.n];
                let rg =
                    decode_convert(&view, &mut got, threads, |s: &[u8], o: &mut [u8], first| {
                        assert!(first % PIECE_SYMBOLS == 0 || first % 256 == 0);
                        o.copy_from_slice(s);
                    });
                assert_eq!(rg, rw, "round {round} threads {threads}");
                if rw.is_ok() {
                    assert_eq!(got, want, "round {round}");
                }
            }
        }
    }
}
