//! Lossy compression of a float feature tensor: quantize, choose dense or sparse (CSR of the
//! tensor reshaped to N x M), code each array as a rANS stream, frame it in the container.
//!
//! Payload of a feature container: one record holding the feature section, then the streams
//! (dense: the codes; csr: row counts, column indices, nonzero values).
//!
//! ```text
//! feature section
//!   u8  bits (1..=16)          u8 mode (0 dense, 1 csr)
//!   u8  axis (255: per tensor) u8 reserved (0)
//!   u64 clamped element count  u64 rows N (csr; 0 for dense)
//!   u32 parameter count (1, or the channel count)
//!   per parameter: f32 scale, i32 zero_point
//! ```

use crate::buffer::{self, Pod};
use crate::bytes::{put_u32, put_u64, put_varint, put_varint64, Reader};
use crate::container::{self, ElemType, FloatType, Header, Kind, StreamInfo};
use crate::context::{self, Geometry};
use crate::error::{corrupt, CodecError, Result};
use crate::pctx;
use crate::quant::{self, Affine, Channels, Code, NonFinite};
use crate::rans::Symbol;
use crate::sparse;
use crate::stream::{self, EncodeOptions, StreamPlan};

const NO_AXIS: u8 = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Dense = 0,
    Csr = 1,
    /// Codes of at most 8 bits, coded with adaptive neighbour contexts (`context`).
    Context = 2,
    /// Codes of at most 8 bits, coded by the parallel context coder with a model fitted to this
    /// tensor and stored in the container (`pctx`; compact containers only).
    Pctx = 3,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Dense => "dense",
            Mode::Csr => "csr",
            Mode::Context => "context",
            Mode::Pctx => "pcontext",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeChoice {
    Dense,
    Csr,
    /// Dense or CSR by their estimates (`auto_takes_csr`): the fast coders, which the GPU
    /// path reproduces.
    Auto,
    Context,
    Pctx,
    /// The smallest of auto's choice and the context coders (codes of at most 8 bits): in a
    /// compact container the shortest container, by its exact size.
    Best,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reshape {
    /// An explicit row count N.
    Rows(usize),
    /// The approximate model: predicted cost from the density alone.
    Model,
    /// Exact empirical entropies of every candidate N.
    Search,
}

/// Where the quantization range comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Range {
    /// The data's minimum and maximum (per channel with an axis).
    MinMax,
    /// Clip to these ranges first (one, or one per channel).
    Clip(Vec<(f32, f32)>),
    /// Scale and zero point calibrated ahead of time (one, or one per channel).
    Params(Vec<Affine>),
}

#[derive(Debug, Clone)]
pub struct FeatureOptions {
    pub bits: u8,
    /// The channel axis and its layout, or `None` for per-tensor parameters.
    pub axis: Option<(u8, Channels)>,
    pub range: Range,
    pub mode: ModeChoice,
    pub reshape: Reshape,
    pub non_finite: NonFinite,
    pub coder: EncodeOptions,
    /// The container version to write: `container::COMPACT_VERSION` (3) or 1 (section 6).
    pub version: u8,
}

/// One candidate row count with the predicted bytes of its row-count and column-index streams.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub rows: usize,
    /// By the approximate model; `None` where compressing ruled the candidate out without
    /// costing it (`plan` costs every one).
    pub model_bytes: Option<f64>,
    /// By exact empirical entropies, when searched.
    pub search_bytes: Option<f64>,
}

/// Quantization parameters per channel, and the range per channel outside which an element
/// counts as clipped.
struct Resolved {
    params: Vec<Affine>,
    ranges: Vec<(f32, f32)>,
    /// Every input value is finite.
    finite: bool,
    /// Elements can fall outside `ranges` (not for the data's own min/max when all finite).
    may_clip: bool,
}

/// Seconds spent in each stage of one compression or decompression.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stages {
    /// Range, quantization and clipping count (dequantization when decoding).
    pub quantize: f64,
    /// Histograms, nonzero positions, the choice of N and mode, CSR build (scatter when decoding).
    pub sparse: f64,
    /// rANS coding of the streams.
    pub entropy: f64,
    /// Header, feature section and checksum.
    pub container: f64,
}

struct Clock(std::time::Instant);

impl Clock {
    fn start() -> Self {
        Clock(std::time::Instant::now())
    }

    /// Seconds since the last lap.
    fn lap(&mut self) -> f64 {
        let now = std::time::Instant::now();
        let dt = (now - self.0).as_secs_f64();
        self.0 = now;
        dt
    }
}

/// Why the encoder chose its mode, as `plan()` reports it (formatted only when asked for).
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    Empty,
    /// The mode was asked for.
    Mode(&'static str),
    Auto {
        dense: f64,
        csr: f64,
        rows: usize,
        nonzeros: usize,
        total: usize,
    },
    /// `best` in version 1: the context record against auto's estimate.
    Best {
        context: usize,
        auto_mode: &'static str,
        auto_bytes: f64,
        took_context: bool,
    },
    /// `best` in the compact container: every candidate written, with its size.
    BestOf(Vec<(&'static str, usize)>),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Empty => write!(f, "empty tensor"),
            Reason::Mode(m) => write!(f, "mode={m}"),
            Reason::Auto {
                dense,
                csr,
                rows,
                nonzeros,
                total,
            } => write!(
                f,
                "auto: dense ~{dense:.0} bytes vs csr ~{csr:.0} bytes at N={rows} ({:.1}% nonzero)",
                100.0 * *nonzeros as f64 / *total as f64
            ),
            Reason::Best {
                context,
                auto_mode,
                auto_bytes,
                took_context: true,
            } => write!(
                f,
                "best: context {context} bytes vs {auto_mode} ~{auto_bytes:.0} bytes"
            ),
            Reason::Best {
                context,
                auto_mode,
                auto_bytes,
                took_context: false,
            } => write!(
                f,
                "best: {auto_mode} ~{auto_bytes:.0} bytes vs context {context} bytes"
            ),
            Reason::BestOf(sizes) => {
                write!(f, "best: ")?;
                for (i, (mode, n)) in sizes.iter().enumerate() {
                    write!(f, "{}{mode} {n} bytes", if i > 0 { ", " } else { "" })?;
                }
                Ok(())
            }
        }
    }
}

/// What the encoder predicted and chose.
#[derive(Debug, Clone)]
pub struct Plan {
    pub params: Vec<Affine>,
    pub clamped: u64,
    pub total: usize,
    pub nonzeros: usize,
    /// Predicted bytes of the dense stream.
    pub dense_bytes: f64,
    /// Predicted bytes of the values stream of the CSR form (independent of N).
    pub values_bytes: f64,
    pub candidates: Vec<Candidate>,
    pub rows: usize,
    pub csr_bytes: f64,
    pub mode: Mode,
    pub reason: Reason,
    pub seconds: Stages,
}

fn levels(bits: u8) -> i32 {
    (1i32 << bits) - 1
}

fn channels(opts: &FeatureOptions) -> Channels {
    opts.axis.map_or(Channels::TENSOR, |(_, c)| c)
}

/// The quantization parameters per channel, and the range per channel outside which an element
/// counts as clipped: the clip range, the data's range, or what calibrated parameters represent
/// to within half a step.
fn resolve_params(x: &[f32], opts: &FeatureOptions) -> Result<Resolved> {
    let ch = channels(opts);
    let want = ch.channels;
    let check_len = |n: usize, what: &str| {
        if n == want || n == 1 {
            Ok(())
        } else {
            Err(CodecError::InvalidArgument(format!(
                "{what} has {n} entries, expected 1 or {want}"
            )))
        }
    };
    let (ranges, finite): (Vec<(f32, f32)>, bool) = match &opts.range {
        Range::MinMax => quant::min_max(x, ch),
        Range::Clip(ranges) => {
            check_len(ranges.len(), "clip")?;
            for &(lo, hi) in ranges {
                if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                    return Err(CodecError::InvalidArgument(format!(
                        "clip range ({lo}, {hi}) is not finite lo <= hi"
                    )));
                }
            }
            (
                (0..want).map(|c| ranges[c.min(ranges.len() - 1)]).collect(),
                quant::all_finite(x),
            )
        }
        Range::Params(params) => {
            check_len(params.len(), "scale/zero_point")?;
            let top = levels(opts.bits);
            for a in params {
                if !(a.scale.is_finite() && a.scale >= 0.0)
                    || a.zero_point < 0
                    || a.zero_point > top
                {
                    return Err(CodecError::InvalidArgument(format!(
                        "scale {} / zero_point {} invalid for {} bits (scale finite and >= 0, zero_point in 0..={top})",
                        a.scale, a.zero_point, opts.bits
                    )));
                }
            }
            let params: Vec<Affine> = (0..want).map(|c| params[c.min(params.len() - 1)]).collect();
            let ranges = params
                .iter()
                .map(|a| {
                    let half = a.scale / 2.0;
                    (
                        -(a.zero_point as f32) * a.scale - half,
                        (top - a.zero_point) as f32 * a.scale + half,
                    )
                })
                .collect();
            return Ok(Resolved {
                params,
                ranges,
                finite: quant::all_finite(x),
                may_clip: true,
            });
        }
    };
    let params = ranges
        .iter()
        .map(|&(lo, hi)| Affine::from_range(lo, hi, opts.bits))
        .collect();
    let may_clip = !finite || opts.range != Range::MinMax;
    let ranges = ranges
        .iter()
        .map(|&(lo, hi)| (lo.min(0.0), hi.max(0.0)))
        .collect();
    Ok(Resolved {
        params,
        ranges,
        finite,
        may_clip,
    })
}

fn validate(x_len: usize, shape: &[usize], opts: &FeatureOptions) -> Result<()> {
    container::check_shape(x_len, shape, ElemType::Float(FloatType::F32))?;
    if !(1..=quant::MAX_BITS).contains(&opts.bits) {
        return Err(CodecError::InvalidArgument(format!(
            "bits must be in 1..=16, got {}",
            opts.bits
        )));
    }
    if let Reshape::Rows(n) = opts.reshape {
        if n == 0 || x_len % n != 0 || x_len / n > sparse::MAX_COLS {
            return Err(CodecError::InvalidArgument(format!(
                "reshape={n} must divide the {x_len} elements into rows of at most {} columns",
                sparse::MAX_COLS
            )));
        }
    }
    if opts.mode == ModeChoice::Context && opts.bits > context::MAX_BITS {
        return Err(CodecError::InvalidArgument(format!(
            "mode='context' takes at most {} bits, got {}",
            context::MAX_BITS,
            opts.bits
        )));
    }
    if opts.version != 1 && opts.version != container::COMPACT_VERSION {
        return Err(CodecError::InvalidArgument(format!(
            "version must be 1 or {}, got {}",
            container::COMPACT_VERSION,
            opts.version
        )));
    }
    if opts.mode == ModeChoice::Pctx {
        if opts.bits > pctx::MAX_BITS {
            return Err(CodecError::InvalidArgument(format!(
                "mode='pcontext' takes at most {} bits, got {}",
                pctx::MAX_BITS,
                opts.bits
            )));
        }
        if opts.version == 1 {
            return Err(CodecError::InvalidArgument(
                "mode='pcontext' needs the compact container: leave version at its default (3)"
                    .into(),
            ));
        }
    }
    opts.coder.validate()
}

/// The auto rule: CSR decodes several times slower than dense (three streams and a scatter),
/// so it is taken only when its estimate saves at least 1/256 (0.4%) of the dense estimate.
pub fn auto_takes_csr(dense_bytes: f64, csr_bytes: f64) -> bool {
    csr_bytes * 256.0 < dense_bytes * 255.0
}

/// Dense and CSR estimates in the compact container (FORMAT.md 10.2-10.3), from the record
/// estimates (`8 + estimated_len`) of the dense stream and of the CSR streams (row counts,
/// columns, values): a compact stream drops the record length (8 bytes) and its width and
/// count (9); CSR adds the varints `R`, `nnz`, `L0` and `L1`. Comparing record estimates
/// instead charges CSR's three streams 34 bytes more framing than dense's one, which decides
/// small maps (a 1x32x7x7 ReLU map at 8 bits: CSR 1,025 bytes, dense 1,042, but dense's record
/// estimate was the smaller).
pub fn compact_estimates(dense: f64, csr: [f64; 3], rows: usize, nonzeros: usize) -> (f64, f64) {
    const DROPPED: f64 = 17.0;
    let vlen = |v: f64| crate::bytes::varint64_len(v.max(0.0) as u64) as f64;
    let [r, c, v] = csr.map(|e| e - DROPPED);
    let framing = vlen(r) + vlen(c) + vlen(rows as f64) + vlen(nonzeros as f64);
    (dense - DROPPED, r + c + v + framing)
}

/// Quantizes and plans without coding: the predicted size of each mode and candidate N.
pub fn plan(x: &[f32], shape: &[usize], opts: &FeatureOptions, search_all: bool) -> Result<Plan> {
    validate(x.len(), shape, opts)?;
    if opts.bits <= 8 {
        Ok(prepare::<u8>(x, opts, search_all)?.plan)
    } else {
        Ok(prepare::<u16>(x, opts, search_all)?.plan)
    }
}

/// The codes, the plan, and the plans of the streams the chosen layout writes (made for the
/// estimates; the encoder reuses them).
struct Prepared<C> {
    q: Vec<C>,
    plan: Plan,
    streams: Vec<StreamPlan>,
}

fn prepare<C: Code + Symbol>(
    x: &[f32],
    opts: &FeatureOptions,
    search_all: bool,
) -> Result<Prepared<C>> {
    let ch = channels(opts);
    let mut clock = Clock::start();
    let r = resolve_params(x, opts)?;
    let params = r.params;
    let mut q = vec![C::default(); x.len()];
    quant::quantize(x, &params, ch, opts.bits, opts.non_finite, r.finite, &mut q)?;
    let clamped = if r.may_clip {
        quant::count_outside(x, &r.ranges, ch)
    } else {
        0
    };
    let quantize_seconds = clock.lap();
    let total = x.len();
    // Final decisions use the encoder's own per-stream estimate (plus the 8-byte length prefix).
    let stream_plan = |counts: &[u64], width: usize| StreamPlan::new(counts, width, &opts.coder);
    let bytes = |p: &StreamPlan| (8 + p.estimated_len()) as f64;
    let dense_hist = C::histogram(&q);
    let dense = stream_plan(&dense_hist, C::BYTES);
    let mut plan = Plan {
        params,
        clamped,
        total,
        nonzeros: 0,
        dense_bytes: bytes(&dense),
        values_bytes: 0.0,
        candidates: Vec::new(),
        rows: 0,
        csr_bytes: f64::INFINITY,
        mode: Mode::Dense,
        reason: Reason::Empty,
        seconds: Stages {
            quantize: quantize_seconds,
            ..Stages::default()
        },
    };
    if matches!(
        opts.mode,
        ModeChoice::Dense | ModeChoice::Context | ModeChoice::Pctx
    ) || total == 0
    {
        plan.seconds.sparse = clock.lap();
        plan.mode = match opts.mode {
            ModeChoice::Context => Mode::Context,
            // An empty tensor has nothing to fit a model to: written dense (an empty stream).
            ModeChoice::Pctx if total > 0 => Mode::Pctx,
            _ => Mode::Dense,
        };
        plan.reason = if total == 0 {
            Reason::Empty
        } else if opts.mode == ModeChoice::Context {
            Reason::Mode("context")
        } else {
            Reason::Mode(plan.mode.name())
        };
        return Ok(Prepared {
            q,
            plan,
            streams: vec![dense],
        });
    }
    let zps: Vec<i32> = plan.params.iter().map(|a| a.zero_point).collect();
    // The nonzero values' histogram: the dense one without the zero point, per tensor.
    let values_hist = if ch.channels == 1 {
        let mut h = dense_hist;
        if let Some(c) = h.get_mut(zps[0] as usize) {
            *c = 0;
        }
        h
    } else {
        let mut h = vec![0u64; 1 << (8 * C::BYTES)];
        sparse::for_each_nonzero(&q, &zps, ch, |_, v| h[v.index()] += 1);
        h
    };
    plan.nonzeros = values_hist.iter().sum::<u64>() as usize;
    let values = stream_plan(&values_hist, C::BYTES);
    plan.values_bytes = bytes(&values);
    let search = search_all || opts.reshape == Reshape::Search;
    // Searching every candidate walks the nonzero positions once per candidate.
    let positions = if search {
        sparse::nonzero_positions(&q, &zps, ch)
    } else {
        Vec::new()
    };
    let nonzeros = plan.nonzeros;
    let rows = sparse::candidate_rows(total);
    // Compressing costs only what the choice needs; `plan` reports every candidate.
    let model_bytes: Vec<Option<f64>> = if search_all {
        rows.iter()
            .map(|&r| Some(sparse::model_cost(total, nonzeros, r)))
            .collect()
    } else if opts.reshape == Reshape::Model {
        sparse::model_argmin(total, nonzeros, &rows).1
    } else {
        vec![None; rows.len()]
    };
    plan.candidates = rows
        .iter()
        .zip(model_bytes)
        .map(|(&rows, model_bytes)| Candidate {
            rows,
            model_bytes,
            search_bytes: search.then(|| sparse::search_cost(&positions, total, rows)),
        })
        .collect();
    let argmin = |key: fn(&Candidate) -> Option<f64>| {
        plan.candidates
            .iter()
            .min_by(|a, b| {
                let inf = f64::INFINITY;
                key(a).unwrap_or(inf).total_cmp(&key(b).unwrap_or(inf))
            })
            .map_or(total, |c| c.rows)
    };
    plan.rows = match opts.reshape {
        Reshape::Rows(n) => n,
        Reshape::Model => argmin(|c| c.model_bytes),
        Reshape::Search => argmin(|c| c.search_bytes),
    };
    let (row_hist, col_hist) = if total == plan.rows {
        // One column: the row counts are the nonzero flags, known from the count alone.
        let nnz = plan.nonzeros as u64;
        (vec![total as u64 - nnz, nnz], vec![nnz])
    } else if search {
        sparse::row_col_histograms(&positions, total, plan.rows)
    } else {
        sparse::code_histograms(&q, &zps, ch, plan.rows)
    };
    let (row_plan, col_plan) = (stream_plan(&row_hist, 2), stream_plan(&col_hist, 2));
    plan.csr_bytes = bytes(&row_plan) + bytes(&col_plan) + plan.values_bytes;
    // What auto compares: the record estimates, or in the compact container the same streams
    // framed as it frames them (FORMAT.md 6.8 step 7).
    let (dense_cmp, csr_cmp) = if opts.version == container::COMPACT_VERSION {
        compact_estimates(
            plan.dense_bytes,
            [bytes(&row_plan), bytes(&col_plan), plan.values_bytes],
            plan.rows,
            plan.nonzeros,
        )
    } else {
        (plan.dense_bytes, plan.csr_bytes)
    };
    plan.mode = match opts.mode {
        ModeChoice::Csr => Mode::Csr,
        ModeChoice::Dense => Mode::Dense,
        ModeChoice::Auto | ModeChoice::Best if auto_takes_csr(dense_cmp, csr_cmp) => Mode::Csr,
        ModeChoice::Auto | ModeChoice::Best => Mode::Dense,
        ModeChoice::Context => Mode::Context,
        ModeChoice::Pctx => Mode::Pctx,
    };
    plan.reason = match opts.mode {
        ModeChoice::Auto | ModeChoice::Best => Reason::Auto {
            dense: dense_cmp,
            csr: csr_cmp,
            rows: plan.rows,
            nonzeros: plan.nonzeros,
            total,
        },
        _ => Reason::Mode(plan.mode.name()),
    };
    plan.seconds.sparse = clock.lap();
    let streams = if plan.mode == Mode::Csr {
        vec![row_plan, col_plan, values]
    } else {
        vec![dense]
    };
    Ok(Prepared { q, plan, streams })
}

/// Compresses a float32 feature tensor (C order) that had dtype `float_type`.
pub fn compress(
    x: &[f32],
    shape: &[usize],
    float_type: FloatType,
    opts: &FeatureOptions,
) -> Result<(Vec<u8>, Plan)> {
    validate(x.len(), shape, opts)?;
    if opts.bits <= 8 {
        compress_typed::<u8>(x, shape, float_type, opts)
    } else {
        compress_typed::<u16>(x, shape, float_type, opts)
    }
}

fn compress_typed<C: Code + Symbol>(
    x: &[f32],
    shape: &[usize],
    float_type: FloatType,
    opts: &FeatureOptions,
) -> Result<(Vec<u8>, Plan)> {
    let Prepared {
        q,
        mut plan,
        streams: plans,
    } = prepare::<C>(x, opts, false)?;
    // The stream plans made from prepare's histograms, for the mode it chose.
    let planned_mode = plan.mode;
    let mut clock = Clock::start();
    let compact = opts.version == container::COMPACT_VERSION;
    let context_ok = opts.bits <= context::MAX_BITS && !q.is_empty();
    let codes = || -> Vec<u8> { q.iter().map(|c| c.to_i32() as u8).collect() };
    let zps: Vec<i32> = plan.params.iter().map(|a| a.zero_point).collect();
    let context_body = || {
        context::encode(
            &codes(),
            &zps,
            channels(opts),
            Geometry::of(shape),
            opts.bits,
        )
    };
    let write_mode = |mode: Mode, plan: &mut Plan, body: Option<Payload>| {
        let planned = if mode == planned_mode {
            &plans[..]
        } else {
            &[]
        };
        write(&q, shape, float_type, opts, plan, mode, body, planned)
    };
    let blob = match (opts.mode, compact) {
        (ModeChoice::Context, _) if q.is_empty() => {
            // An empty tensor: nothing to code, an empty body.
            let body = context::encode(&[], &[0], Channels::TENSOR, Geometry::of(shape), opts.bits);
            write_mode(Mode::Context, &mut plan, Some(Payload::Context(body)))?
        }
        (ModeChoice::Context, _) => {
            let body = context_body();
            plan.seconds.entropy += clock.lap();
            write_mode(Mode::Context, &mut plan, Some(Payload::Context(body)))?
        }
        (ModeChoice::Pctx, _) if plan.mode == Mode::Pctx => {
            let payload = pctx_payload(&codes(), shape, &plan, opts)?;
            plan.seconds.entropy += clock.lap();
            write_mode(Mode::Pctx, &mut plan, Some(payload))?
        }
        (ModeChoice::Best, true) if context_ok => {
            // Every candidate written, the shortest kept (ties: the earlier, faster one).
            let auto_mode = plan.mode;
            let mut best = write_mode(auto_mode, &mut plan, None)?;
            let mut chosen = auto_mode;
            let mut sizes = vec![(auto_mode, best.len())];
            for mode in [Mode::Context, Mode::Pctx] {
                let payload = if mode == Mode::Context {
                    Payload::Context(context_body())
                } else {
                    pctx_payload(&codes(), shape, &plan, opts)?
                };
                let blob = write_mode(mode, &mut plan, Some(payload))?;
                sizes.push((mode, blob.len()));
                if blob.len() < best.len() {
                    best = blob;
                    chosen = mode;
                }
            }
            plan.seconds.entropy += clock.lap();
            plan.mode = chosen;
            plan.reason = Reason::BestOf(sizes.iter().map(|(m, n)| (m.name(), *n)).collect());
            best
        }
        (ModeChoice::Best, false) if context_ok => {
            // Version 1: the context record against auto's estimate (FORMAT.md 6.11).
            let body = context_body();
            let auto_bytes = if plan.mode == Mode::Csr {
                plan.csr_bytes
            } else {
                plan.dense_bytes
            };
            plan.seconds.entropy += clock.lap();
            let took_context = ((8 + body.len()) as f64) < auto_bytes;
            plan.reason = Reason::Best {
                context: 8 + body.len(),
                auto_mode: plan.mode.name(),
                auto_bytes,
                took_context,
            };
            if took_context {
                write_mode(Mode::Context, &mut plan, Some(Payload::Context(body)))?
            } else {
                let mode = plan.mode;
                write_mode(mode, &mut plan, None)?
            }
        }
        _ => {
            let mode = plan.mode;
            write_mode(mode, &mut plan, None)?
        }
    };
    plan.seconds.container += clock.lap();
    Ok((blob, plan))
}

/// The body of a context-coded container, made before the container is written.
enum Payload {
    Context(Vec<u8>),
    Pctx(Box<pctx::Model>, Vec<u8>),
}

/// A model fitted to the tensor's own codes and the body it codes them to (mode 3).
fn pctx_payload(
    codes: &[u8],
    shape: &[usize],
    plan: &Plan,
    opts: &FeatureOptions,
) -> Result<Payload> {
    let ch = channels(opts);
    let fills: Vec<u8> = plan.params.iter().map(|a| a.zero_point as u8).collect();
    let sample = crate::fit::Sample {
        codes,
        shape,
        fills: &fills,
        fill_ch: ch,
    };
    let model = crate::fit::fit_one(&sample, opts.bits, opts.axis.map(|(a, _)| a as usize))?;
    let tables = pctx::Tables::new(&model);
    let body = pctx::encode(&model, &tables, shape, codes, &fills, ch);
    Ok(Payload::Pctx(Box::new(model), body))
}

/// Writes the container of codes `q` in `mode` (dense and CSR coded here, the context bodies
/// given), version 1 or 3 as the options say.
/// Appends a stream of `symbols`, compact (FORMAT.md 10) or with its version-1 header, from
/// `plan` (made from their histogram) when there is one.
fn append<S: Symbol>(
    out: &mut Vec<u8>,
    symbols: &[S],
    plan: Option<&StreamPlan>,
    coder: &EncodeOptions,
    compact: bool,
) -> Result<()> {
    match (plan, compact) {
        (Some(p), true) => stream::encode_compact_planned(symbols, p, coder, out),
        (Some(p), false) => container::append_planned_stream(out, symbols, p, coder),
        (None, true) => stream::encode_compact(symbols, coder, out),
        (None, false) => container::append_stream(out, symbols, coder),
    }
}

#[allow(clippy::too_many_arguments)]
fn write<C: Code + Symbol>(
    q: &[C],
    shape: &[usize],
    float_type: FloatType,
    opts: &FeatureOptions,
    plan: &mut Plan,
    mode: Mode,
    payload: Option<Payload>,
    planned: &[StreamPlan],
) -> Result<Vec<u8>> {
    let mut clock = Clock::start();
    let compact = opts.version == container::COMPACT_VERSION;
    let axis = opts.axis.map_or(NO_AXIS, |(a, _)| a);
    let mut out = Vec::new();
    if compact {
        container::write_compact_header(&mut out, float_type, opts.bits, mode as u8, shape);
        out.push(axis);
        for a in &plan.params {
            out.extend_from_slice(&a.scale.to_le_bytes());
            put_varint(&mut out, a.zero_point as u32);
        }
        put_varint64(&mut out, plan.clamped);
    } else {
        let streams = if mode == Mode::Csr { 3 } else { 1 };
        let version = if mode == Mode::Context {
            container::VERSION_CONTEXT
        } else {
            container::BASE_VERSION
        };
        container::write_header(
            &mut out,
            Kind::Feature,
            ElemType::Float(float_type),
            shape,
            streams,
            version,
        );
        let mut section = vec![opts.bits, mode as u8, axis, 0];
        put_u64(&mut section, plan.clamped);
        put_u64(
            &mut section,
            if mode == Mode::Csr {
                plan.rows as u64
            } else {
                0
            },
        );
        put_u32(&mut section, plan.params.len() as u32);
        for a in &plan.params {
            section.extend_from_slice(&a.scale.to_le_bytes());
            section.extend_from_slice(&a.zero_point.to_le_bytes());
        }
        put_u64(&mut out, section.len() as u64);
        out.extend_from_slice(&section);
    }
    plan.seconds.container += clock.lap();
    match (mode, payload) {
        (Mode::Dense, _) => append(&mut out, q, planned.first(), &opts.coder, compact)?,
        (Mode::Csr, _) => {
            let zps: Vec<i32> = plan.params.iter().map(|a| a.zero_point).collect();
            let (counts, cols, values) = sparse::build(q, &zps, channels(opts), plan.rows);
            plan.seconds.sparse += clock.lap();
            // Planned from these arrays' exact histograms for the estimate (when this is the
            // mode prepare chose).
            if compact {
                put_varint64(&mut out, plan.rows as u64);
                put_varint64(&mut out, values.len() as u64);
                for (k, s) in [&counts, &cols].into_iter().enumerate() {
                    let mut rec = Vec::new();
                    append(&mut rec, s, planned.get(k), &opts.coder, true)?;
                    put_varint64(&mut out, rec.len() as u64);
                    out.extend_from_slice(&rec);
                }
                append(&mut out, &values, planned.get(2), &opts.coder, true)?;
            } else {
                append(&mut out, &counts, planned.first(), &opts.coder, false)?;
                append(&mut out, &cols, planned.get(1), &opts.coder, false)?;
                append(&mut out, &values, planned.get(2), &opts.coder, false)?;
            }
        }
        (Mode::Context, Some(Payload::Context(body))) => {
            if !compact {
                put_u64(&mut out, body.len() as u64);
            }
            out.extend_from_slice(&body);
        }
        (Mode::Pctx, Some(Payload::Pctx(model, body))) => {
            model.write(&mut out);
            out.extend_from_slice(&body);
        }
        (m, _) => unreachable!("{} is written with its payload", m.name()),
    }
    plan.seconds.entropy += clock.lap();
    let blob = if compact {
        container::finish_compact(out)
    } else {
        container::finish(out)
    };
    plan.seconds.container += clock.lap();
    Ok(blob)
}

/// The feature section of a container, validated against its header.
#[derive(Debug, Clone)]
pub struct FeatureMeta {
    pub float_type: FloatType,
    pub bits: u8,
    pub mode: Mode,
    pub axis: Option<u8>,
    pub channels: Channels,
    pub clamped: u64,
    pub rows: usize,
    pub params: Vec<Affine>,
    pub section_bytes: usize,
}

/// Parses and validates the feature section against the header (FORMAT.md 6.6 step 2).
pub fn read_meta(section: &[u8], h: &Header) -> Result<FeatureMeta> {
    let float_type = match h.elem {
        ElemType::Float(f) => f,
        ElemType::Int(_) => return Err(corrupt!("not a feature container")),
    };
    let mut r = Reader::new(section);
    let bits = r.u8("bits")?;
    let mode = r.u8("mode")?;
    let axis = r.u8("axis")?;
    let reserved = r.u8("reserved")?;
    let clamped = r.u64("clamped count")?;
    let rows = r.u64("rows")?;
    let n_params = r.u32("parameter count")? as usize;
    if !(1..=quant::MAX_BITS).contains(&bits) || reserved != 0 {
        return Err(corrupt!("invalid bits {bits} or reserved byte"));
    }
    let mode = match (mode, h.streams) {
        (0, 1) => Mode::Dense,
        (1, 3) => Mode::Csr,
        (2, 1) if bits <= context::MAX_BITS && h.version >= 2 => Mode::Context,
        _ => return Err(corrupt!("feature mode {mode} with {} streams", h.streams)),
    };
    let (axis, channels) = if axis == NO_AXIS {
        (None, Channels::TENSOR)
    } else {
        let a = axis as usize;
        if a >= h.shape.len() {
            return Err(corrupt!("axis {a} of a {}-d tensor", h.shape.len()));
        }
        let inner = h.shape[a + 1..].iter().product::<usize>().max(1);
        (
            Some(axis),
            Channels {
                channels: h.shape[a],
                inner,
            },
        )
    };
    if n_params != channels.channels || n_params == 0 || r.remaining() != 8 * n_params {
        return Err(corrupt!(
            "{n_params} quantization parameters for {} channels",
            channels.channels
        ));
    }
    let mut params = Vec::with_capacity(n_params);
    for _ in 0..n_params {
        let scale = f32::from_le_bytes(r.u32("scale")?.to_le_bytes());
        let zero_point = r.u32("zero point")? as i32;
        if !(scale.is_finite() && scale >= 0.0) || zero_point < 0 || zero_point > levels(bits) {
            return Err(corrupt!("invalid scale {scale} or zero point {zero_point}"));
        }
        params.push(Affine { scale, zero_point });
    }
    let rows = match mode {
        Mode::Dense | Mode::Context if rows == 0 => 0,
        // At most one row per element: the row counts are a stream of `rows` symbols that the
        // output cap does not see, so an empty tensor has no valid CSR form.
        Mode::Csr
            if rows > 0
                && rows <= h.count as u64
                && h.count % rows as usize == 0
                && h.count / rows as usize <= sparse::MAX_COLS =>
        {
            rows as usize
        }
        _ => {
            return Err(corrupt!(
                "{rows} rows invalid for {} elements in {} mode",
                h.count,
                mode.name()
            ))
        }
    };
    Ok(FeatureMeta {
        float_type,
        bits,
        mode,
        axis,
        channels,
        clamped,
        rows,
        params,
        section_bytes: section.len(),
    })
}

/// The element type a feature decodes to. The codec dequantizes in float32 (FORMAT.md 6.4);
/// the other outputs are converted from that value as the buffer is filled, so no float32
/// array is ever held beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    F32,
    /// Exact widening.
    F64,
    /// IEEE binary16 bit patterns, saturating: `quant::f16_bits`.
    F16Bits,
    /// bfloat16 bit patterns, saturating: `quant::bf16_bits`.
    BF16Bits,
}

impl Output {
    /// Bytes per element of the output.
    pub fn itemsize(self) -> usize {
        match self {
            Output::F32 => 4,
            Output::F64 => 8,
            Output::F16Bits | Output::BF16Bits => 2,
        }
    }
}

/// A decoded feature, in the element type that was asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16Bits(Vec<u16>),
    BF16Bits(Vec<u16>),
}

/// A feature container's payload, parsed and checked up to decoding (FORMAT.md 6.6 steps 1–3).
pub struct Parsed<'a> {
    pub meta: FeatureMeta,
    body: Body<'a>,
    /// A compact container's payload parts as (offset, length) in the blob: the stream of a
    /// dense one, the three streams of a CSR one, the body of a context one (empty for
    /// versions 1-2, whose records `container::records` gives).
    pub parts: Vec<(usize, usize)>,
    /// The nonzero count a compact CSR container states (0 otherwise).
    pub nnz: usize,
}

/// The three streams of a CSR container.
struct CsrViews<'a> {
    counts: stream::StreamView<'a>,
    cols: stream::StreamView<'a>,
    values: stream::StreamView<'a>,
}

enum Body<'a> {
    Dense(stream::StreamView<'a>),
    Csr(Box<CsrViews<'a>>),
    /// The context body (FORMAT.md 6.11), read by `context::decode`.
    Context(&'a [u8]),
    /// The model stored in the container (checked against the shape), its tables, and the body
    /// (FORMAT.md 9.4) `pctx::decode` reads.
    Pctx(Box<(pctx::Model, pctx::Tables)>, &'a [u8]),
}

impl Parsed<'_> {
    fn views(&self) -> Vec<&stream::StreamView<'_>> {
        match &self.body {
            Body::Dense(v) => vec![v],
            Body::Csr(c) => vec![&c.counts, &c.cols, &c.values],
            Body::Context(_) | Body::Pctx(..) => Vec::new(),
        }
    }
}

/// Parses a CSR column-index or value stream: at most `max_n` symbols of `width` bytes filling
/// its record (its exact count, the sum of the row counts, is checked while decoding).
fn parse_nonzeros<'a>(
    record: &'a [u8],
    i: usize,
    max_n: usize,
    width: usize,
) -> Result<stream::StreamView<'a>> {
    let mut sr = Reader::new(record);
    let view = stream::parse(&mut sr, max_n as u64)?;
    if sr.remaining() != 0 {
        return Err(corrupt!(
            "stream {i} ends after {} of its {} bytes",
            sr.position(),
            record.len()
        ));
    }
    if view.symbol_bytes != width {
        return Err(corrupt!(
            "stream {i} has {}-byte symbols, expected {width}",
            view.symbol_bytes
        ));
    }
    Ok(view)
}

/// Reads the records and the feature section, parses the streams, and checks what decoding
/// will hold against `max_output_bytes` (the header's check, 2.6 step 13, is the caller's):
/// the output plus `stream::oversized_block_bytes` of every stream.
pub fn parse<'a>(blob: &'a [u8], h: &Header, max_output_bytes: u64) -> Result<Parsed<'a>> {
    if h.version == container::COMPACT_VERSION {
        let parsed = parse_compact(blob, h)?;
        let views = parsed.views();
        container::check_working_size(h, views.iter().copied(), max_output_bytes)?;
        return Ok(parsed);
    }
    let records = container::records(blob, h, 1 + h.streams)?;
    let meta = read_meta(records[0], h)?;
    let width = if meta.bits <= 8 { 1 } else { 2 };
    let body = match meta.mode {
        Mode::Pctx => unreachable!("read_meta refuses mode 3 in a version-1 container"),
        Mode::Context => Body::Context(records[1]),
        Mode::Dense => Body::Dense(container::parse_stream(records[1], 0, h.count, width)?),
        Mode::Csr => {
            let counts = container::parse_stream(records[1], 0, meta.rows, 2)?;
            let cols = parse_nonzeros(records[2], 1, h.count, 2)?;
            let values = parse_nonzeros(records[3], 2, h.count, width)?;
            if cols.n != values.n {
                return Err(corrupt!(
                    "{} column indices but {} values",
                    cols.n,
                    values.n
                ));
            }
            Body::Csr(Box::new(CsrViews {
                counts,
                cols,
                values,
            }))
        }
    };
    let parsed = Parsed {
        meta,
        body,
        parts: Vec::new(),
        nnz: 0,
    };
    let views = parsed.views();
    container::check_working_size(h, views.iter().copied(), max_output_bytes)?;
    Ok(parsed)
}

/// The feature fields and payload of a compact container (FORMAT.md 10.1, 10.4 steps 7-12),
/// after the header `read_header` read.
fn parse_compact<'a>(blob: &'a [u8], h: &Header) -> Result<Parsed<'a>> {
    let float_type = match h.elem {
        ElemType::Float(f) => f,
        ElemType::Int(_) => return Err(corrupt!("not a feature container")),
    };
    let bits = (blob[6] & 0x0F) + 1;
    let mode = match blob[6] >> 4 {
        0 => Mode::Dense,
        1 => Mode::Csr,
        2 => Mode::Context,
        _ => Mode::Pctx,
    };
    if matches!(mode, Mode::Context | Mode::Pctx) && bits > context::MAX_BITS {
        return Err(corrupt!("{} mode with {bits}-bit codes", mode.name()));
    }
    let mut r = Reader::new(blob);
    r.take(h.header_len, "header")?;
    let axis = r.u8("axis")?;
    let (axis, channels) = if axis == NO_AXIS {
        (None, Channels::TENSOR)
    } else {
        let a = axis as usize;
        if a >= h.shape.len() || h.shape[a] == 0 {
            return Err(corrupt!("axis {a} of a tensor of shape {:?}", h.shape));
        }
        (
            Some(axis),
            Channels {
                channels: h.shape[a],
                inner: h.shape[a + 1..].iter().product::<usize>().max(1),
            },
        )
    };
    // Each parameter takes at least 5 bytes: a count beyond that is truncated input.
    if channels.channels > r.remaining() / 5 {
        return Err(corrupt!(
            "{} quantization parameters in {} bytes (truncated)",
            channels.channels,
            r.remaining()
        ));
    }
    let mut params = Vec::with_capacity(channels.channels);
    for _ in 0..channels.channels {
        let scale = f32::from_le_bytes(r.u32("scale")?.to_le_bytes());
        let zero_point = r.varint("zero point")?;
        if !(scale.is_finite() && scale >= 0.0) || zero_point > levels(bits) as u32 {
            return Err(corrupt!("invalid scale {scale} or zero point {zero_point}"));
        }
        params.push(Affine {
            scale,
            zero_point: zero_point as i32,
        });
    }
    let clamped = r.varint64("clamped count")?;
    // Axis, parameters and clamped count: what section 6.2 holds in version 1.
    let section_bytes = r.position() - h.header_len;
    let width = if bits <= 8 { 1 } else { 2 };
    let mut rows = 0usize;
    let mut nnz_stated = 0usize;
    let mut parts = Vec::new();
    let body = match mode {
        Mode::Dense => {
            parts.push((r.position(), r.remaining()));
            let view = stream::parse_compact(&mut r, width, h.count)?;
            if r.remaining() != 0 {
                return Err(corrupt!("{} bytes after the codes", r.remaining()));
            }
            Body::Dense(view)
        }
        Mode::Csr => {
            let n_rows = r.varint64("rows")?;
            if n_rows == 0
                || n_rows > h.count as u64
                || h.count % n_rows as usize != 0
                || h.count / n_rows as usize > sparse::MAX_COLS
            {
                return Err(corrupt!(
                    "{n_rows} rows invalid for {} elements in csr mode",
                    h.count
                ));
            }
            rows = n_rows as usize;
            let nnz = r.varint64("nonzero count")?;
            if nnz > h.count as u64 {
                return Err(corrupt!("{nnz} nonzeros in {} elements", h.count));
            }
            let nnz = nnz as usize;
            nnz_stated = nnz;
            let mut record = |what: &str| -> Result<&'a [u8]> {
                let len = r.varint64(what)?;
                let len = usize::try_from(len).map_err(|_| corrupt!("{what} of {len} bytes"))?;
                parts.push((r.position(), len));
                r.take(len, what)
            };
            let counts_rec = record("row-count stream length")?;
            let cols_rec = record("column stream length")?;
            parts.push((r.position(), r.remaining()));
            let whole =
                |rec: &'a [u8], i: usize, w: usize, n: usize| -> Result<stream::StreamView<'a>> {
                    let mut sr = Reader::new(rec);
                    let view = stream::parse_compact(&mut sr, w, n)?;
                    if sr.remaining() != 0 {
                        return Err(corrupt!(
                            "stream {i} ends after {} of its {} bytes",
                            sr.position(),
                            rec.len()
                        ));
                    }
                    Ok(view)
                };
            let counts = whole(counts_rec, 0, 2, rows)?;
            let cols = whole(cols_rec, 1, 2, nnz)?;
            let values = stream::parse_compact(&mut r, width, nnz)?;
            if r.remaining() != 0 {
                return Err(corrupt!("{} bytes after the values", r.remaining()));
            }
            Body::Csr(Box::new(CsrViews {
                counts,
                cols,
                values,
            }))
        }
        Mode::Context => {
            let n = r.remaining();
            parts.push((r.position(), n));
            Body::Context(r.take(n, "context body")?)
        }
        Mode::Pctx => {
            let model = pctx::Model::read(&mut r)?;
            let group_len = (model.axis_g != pctx::NO_AXIS)
                .then(|| h.shape.get(model.axis_g as usize).copied().unwrap_or(0));
            model.validate(h.shape.len(), group_len)?;
            if model.bits != bits {
                return Err(corrupt!("a {}-bit model for {bits}-bit codes", model.bits));
            }
            let tables = pctx::Tables::new(&model);
            let n = r.remaining();
            parts.push((r.position(), n));
            Body::Pctx(Box::new((model, tables)), r.take(n, "context body")?)
        }
    };
    Ok(Parsed {
        parts,
        nnz: nnz_stated,
        meta: FeatureMeta {
            float_type,
            bits,
            mode,
            axis,
            channels,
            clamped,
            rows,
            params,
            section_bytes,
        },
        body,
    })
}

/// What a CSR walk hands out: every row-count block, and every nonzero with its flat index.
trait CsrVisitor<C> {
    fn row_counts(&mut self, counts: &[u16]);
    fn nonzero(&mut self, index: usize, col: u16, value: C);
}

/// Decodes the three CSR streams together, block by block, and checks them (FORMAT.md 6.6
/// steps 3–5): the row counts add up to the number of column indices and values, columns
/// increase strictly within a row and stay below `M`, values stay within `bits`.
fn walk_csr<C: Code + Symbol + Pod>(
    p: &Parsed<'_>,
    h: &Header,
    threads: usize,
    visit: &mut impl CsrVisitor<C>,
) -> Result<()> {
    let Body::Csr(csr) = &p.body else {
        unreachable!("walk_csr takes a CSR container");
    };
    let m = h.count / p.meta.rows;
    let top = if p.meta.bits < 16 {
        levels(p.meta.bits)
    } else {
        i32::MAX
    };
    let nnz = csr.cols.n;
    let mut row_blocks = stream::Blocks::<u16>::new(&csr.counts, threads)?;
    let mut col_reader = stream::SymbolReader::new(&csr.cols, threads)?;
    let mut value_reader = stream::SymbolReader::<C>::new(&csr.values, threads)?;
    let mut row = 0usize;
    let mut taken = 0usize;
    while let Some(block) = row_blocks.next_block()? {
        visit.row_counts(block);
        for &count in block {
            let base = row * m;
            let mut next = 0usize;
            if count as usize > nnz - taken {
                return Err(corrupt!(
                    "row counts add up to more than the {nnz} column indices and values"
                ));
            }
            taken += count as usize;
            for _ in 0..count {
                let c = col_reader.read()?;
                let v = value_reader.read()?;
                let col = c as usize;
                if col < next || col >= m {
                    return Err(corrupt!("column {col} out of order or range in row {row}"));
                }
                if v.to_i32() > top {
                    return Err(corrupt!("a code exceeds the {}-bit range", p.meta.bits));
                }
                visit.nonzero(base + col, c, v);
                next = col + 1;
            }
            row += 1;
        }
    }
    if taken != nnz {
        return Err(corrupt!(
            "row counts add up to {taken} nonzeros, the column indices and values hold {nnz}"
        ));
    }
    Ok(())
}

/// Writes decoded nonzeros into the codes, which hold every element's zero point.
struct Scatter<'c, C>(&'c mut [C]);

impl<C: Copy> CsrVisitor<C> for Scatter<'_, C> {
    fn row_counts(&mut self, _: &[u16]) {}
    #[inline(always)]
    fn nonzero(&mut self, index: usize, _: u16, value: C) {
        self.0[index] = value;
    }
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

/// Decodes the codes of every element into `codes` (`h.count` long): dense, CSR (scattered over
/// the channels' zero points) or context. Dense codes are not checked against `bits` here (the
/// dequantization does it, after every chunk decoded).
fn decode_codes<C: Code + Symbol + Pod>(
    p: &Parsed<'_>,
    h: &Header,
    threads: usize,
    codes: &mut [C],
    stages: &mut Stages,
) -> Result<()> {
    let mut clock = Clock::start();
    match &p.body {
        Body::Dense(view) => {
            stream::decode_into(view, codes, threads)?;
            stages.entropy += clock.lap();
        }
        Body::Context(body) => {
            let zps: Vec<i32> = p.meta.params.iter().map(|a| a.zero_point).collect();
            let codes = C::as_u8s_mut(codes).expect("context codes are bytes");
            context::decode(
                body,
                &zps,
                p.meta.channels,
                Geometry::of(&h.shape),
                p.meta.bits,
                codes,
            )?;
            stages.entropy += clock.lap();
        }
        Body::Pctx(model, body) => {
            let fills: Vec<u8> = p.meta.params.iter().map(|a| a.zero_point as u8).collect();
            let codes = C::as_u8s_mut(codes).expect("context codes are bytes");
            pctx::decode(
                &model.0,
                &model.1,
                &h.shape,
                body,
                &fills,
                p.meta.channels,
                codes,
            )?;
            stages.entropy += clock.lap();
        }
        Body::Csr(_) => {
            for_each_channel_run(codes.len(), p.meta.channels, 0, codes.len(), |a, b, c| {
                codes[a..b].fill(C::from_i32(p.meta.params[c].zero_point))
            });
            walk_csr(p, h, threads, &mut Scatter(codes))?;
            // The streams are decoded block by block as the scatter consumes them.
            stages.sparse += clock.lap();
        }
    }
    Ok(())
}

/// Calls `f(start, end, channel)` for the runs of `[from, to)` that lie in one channel.
#[inline]
fn for_each_channel_run(
    n: usize,
    ch: Channels,
    from: usize,
    to: usize,
    f: impl FnMut(usize, usize, usize),
) {
    debug_assert!(to <= n);
    ch.runs(from, to, f);
}

/// Elements dequantized per pass of `dequantize_in_place`.
const DEQUANT_BLOCK: usize = 1 << 14;

/// Dequantizes the codes held in the tail of `out`'s bytes (`buffer::tail_mut`) into `out`, in
/// place, front to back: a block of codes is copied out before its elements are written, and an
/// element's bytes end at or before the code of any later element. With `check`, a code above
/// `bits` is Corrupt.
fn dequantize_in_place<O: Pod, C: Code + Pod>(
    out: &mut [O],
    meta: &FeatureMeta,
    check: bool,
    conv: impl Fn(f32) -> O,
) -> Result<()> {
    let n = out.len();
    let top = levels(meta.bits);
    let check = check && meta.bits < 16;
    let mut codes = [C::default(); DEQUANT_BLOCK];
    let mut start = 0;
    while start < n {
        let end = (start + DEQUANT_BLOCK).min(n);
        let block = &mut codes[..end - start];
        block.copy_from_slice(&buffer::tail_mut::<O, C>(out)[start..end]);
        if check && block.iter().fold(0, |m, c| m.max(c.to_i32())) > top {
            return Err(corrupt!("a code exceeds the {}-bit range", meta.bits));
        }
        for_each_channel_run(n, meta.channels, start, end, |a, b, c| {
            let Affine { scale, zero_point } = meta.params[c];
            for (o, &q) in out[a..b].iter_mut().zip(&block[a - start..b - start]) {
                *o = conv((q.to_i32() - zero_point) as f32 * scale);
            }
        });
        start = end;
    }
    Ok(())
}

fn decode_as<O: Pod + Send, C: Code + Symbol + Pod>(
    p: &Parsed<'_>,
    h: &Header,
    threads: usize,
    stages: &mut Stages,
    conv: impl Fn(f32) -> O + Sync,
) -> Result<Vec<O>> {
    let mut out = buffer::zeroed::<O>(h.count)?;
    decode_into_slice::<O, C>(p, h, threads, &mut out, stages, conv)?;
    Ok(out)
}

/// Decodes into `out` (`h.count` long). Dense codes go straight from the decoder's pieces into
/// `out` (`dense_fused`); CSR and context codes are decoded into the tail of `out`'s bytes and
/// dequantized in place.
fn decode_into_slice<O: Pod + Send, C: Code + Symbol + Pod>(
    p: &Parsed<'_>,
    h: &Header,
    threads: usize,
    out: &mut [O],
    stages: &mut Stages,
    conv: impl Fn(f32) -> O + Sync,
) -> Result<()> {
    assert_eq!(
        out.len(),
        h.count,
        "decode_into_slice: output of the wrong length"
    );
    if let Body::Dense(view) = &p.body {
        let mut clock = Clock::start();
        dense_fused::<O, C>(view, &p.meta, threads, out, conv)?;
        stages.entropy += clock.lap();
        return Ok(());
    }
    decode_codes::<C>(p, h, threads, buffer::tail_mut::<O, C>(out), stages)?;
    let mut clock = Clock::start();
    dequantize_in_place::<O, C>(out, &p.meta, false, conv)?;
    stages.quantize += clock.lap();
    Ok(())
}

/// The dense codes dequantized as they are decoded, a piece of 4096 at a time: no code array is
/// written or read back. Codes above `bits` make the container corrupt (FORMAT.md 6.6 step 4),
/// reported as `dequantize_in_place` reports them: after every chunk decoded.
fn dense_fused<O: Pod + Send, C: Code + Symbol + Pod>(
    view: &stream::StreamView<'_>,
    meta: &FeatureMeta,
    threads: usize,
    out: &mut [O],
    conv: impl Fn(f32) -> O + Sync,
) -> Result<()> {
    // A float32 output is converted by the identity (`decode_output`).
    let f32_out = std::any::TypeId::of::<O>() == std::any::TypeId::of::<f32>();
    let n = out.len();
    let top = levels(meta.bits);
    let highest = std::sync::atomic::AtomicI32::new(0);
    stream::decode_convert::<C, O>(view, out, threads, |codes, piece, first| {
        if meta.bits < 16 {
            let m = codes.iter().fold(0, |m, c| m.max(c.to_i32()));
            highest.fetch_max(m, std::sync::atomic::Ordering::Relaxed);
        }
        for_each_channel_run(n, meta.channels, first, first + codes.len(), |a, b, c| {
            let Affine { scale, zero_point } = meta.params[c];
            let (codes, piece) = (
                &codes[a - first..b - first],
                &mut piece[a - first..b - first],
            );
            // float32 output (the identity conversion): the vector loop.
            match (f32_out, buffer::cast_mut::<f32>(buffer::bytes_mut(piece))) {
                (true, Some(out)) => quant::dequantize_run_f32(codes, out, meta.params[c]),
                _ => dequantize_run(codes, piece, zero_point, scale, &conv),
            }
        });
    })?;
    if meta.bits < 16 && highest.into_inner() > top {
        return Err(corrupt!("a code exceeds the {}-bit range", meta.bits));
    }
    Ok(())
}

/// `out[i] = conv(f32(codes[i] - zero_point) * scale)` (FORMAT.md 6.4).
#[inline(always)]
fn dequantize_run<O, C: Code>(
    codes: &[C],
    out: &mut [O],
    zero_point: i32,
    scale: f32,
    conv: &impl Fn(f32) -> O,
) {
    for (o, &q) in out.iter_mut().zip(codes) {
        *o = conv((q.to_i32() - zero_point) as f32 * scale);
    }
}

fn decode_output<C: Code + Symbol + Pod>(
    p: &Parsed<'_>,
    h: &Header,
    threads: usize,
    output: Output,
    stages: &mut Stages,
) -> Result<Decoded> {
    Ok(match output {
        Output::F32 => Decoded::F32(decode_as::<f32, C>(p, h, threads, stages, |x| x)?),
        Output::F64 => Decoded::F64(decode_as::<f64, C>(p, h, threads, stages, f64::from)?),
        Output::F16Bits => {
            Decoded::F16Bits(decode_as::<u16, C>(p, h, threads, stages, quant::f16_bits)?)
        }
        Output::BF16Bits => Decoded::BF16Bits(decode_as::<u16, C>(
            p,
            h,
            threads,
            stages,
            quant::bf16_bits,
        )?),
    })
}

/// Decodes a feature container whose header is validated (and checked against the cap) into
/// `output`, adding the seconds of each stage to `stages`. It holds the output and a few small
/// buffers (2 MiB per CSR stream): the codes are decoded into the output's own bytes and
/// dequantized in place, and the CSR streams are decoded block by block as they are scattered.
pub fn decompress_to(
    blob: &[u8],
    h: &Header,
    max_output_bytes: u64,
    threads: usize,
    output: Output,
    stages: &mut Stages,
) -> Result<(FeatureMeta, Decoded)> {
    let mut clock = Clock::start();
    let p = parse(blob, h, max_output_bytes)?;
    stages.container += clock.lap();
    let out = if p.meta.bits <= 8 {
        decode_output::<u8>(&p, h, threads, output, stages)?
    } else {
        decode_output::<u16>(&p, h, threads, output, stages)?
    };
    Ok((p.meta, out))
}

/// A caller's buffer to decode a feature into, `h.count` elements of the chosen output type.
pub enum OutputSlice<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
    /// float16 bit patterns (`quant::f16_bits`).
    F16Bits(&'a mut [u16]),
    /// bfloat16 bit patterns (`quant::bf16_bits`).
    BF16Bits(&'a mut [u16]),
}

impl OutputSlice<'_> {
    fn len(&self) -> usize {
        match self {
            OutputSlice::F32(o) => o.len(),
            OutputSlice::F64(o) => o.len(),
            OutputSlice::F16Bits(o) | OutputSlice::BF16Bits(o) => o.len(),
        }
    }
}

/// `decompress_to` into the caller's buffer (`h.count` elements): only small buffers are
/// allocated. The buffer is overwritten, also when decoding fails.
pub fn decompress_into(
    blob: &[u8],
    h: &Header,
    max_output_bytes: u64,
    threads: usize,
    out: OutputSlice<'_>,
    stages: &mut Stages,
) -> Result<FeatureMeta> {
    if out.len() != h.count {
        return Err(CodecError::InvalidArgument(format!(
            "the container holds {} elements, the output has room for {}",
            h.count,
            out.len()
        )));
    }
    let mut clock = Clock::start();
    let p = parse(blob, h, max_output_bytes)?;
    stages.container += clock.lap();
    decompress_parsed_into(&p, h, threads, out, stages)?;
    Ok(p.meta)
}

/// `decompress_into` of a container already parsed (`parse`): what a caller that must know the
/// container valid before it allocates the output calls.
pub fn decompress_parsed_into(
    p: &Parsed<'_>,
    h: &Header,
    threads: usize,
    out: OutputSlice<'_>,
    stages: &mut Stages,
) -> Result<()> {
    if out.len() != h.count {
        return Err(CodecError::InvalidArgument(format!(
            "the container holds {} elements, the output has room for {}",
            h.count,
            out.len()
        )));
    }
    fn run<C: Code + Symbol + Pod>(
        p: &Parsed<'_>,
        h: &Header,
        threads: usize,
        out: OutputSlice<'_>,
        stages: &mut Stages,
    ) -> Result<()> {
        match out {
            OutputSlice::F32(o) => decode_into_slice::<f32, C>(p, h, threads, o, stages, |x| x),
            OutputSlice::F64(o) => decode_into_slice::<f64, C>(p, h, threads, o, stages, f64::from),
            OutputSlice::F16Bits(o) => {
                decode_into_slice::<u16, C>(p, h, threads, o, stages, quant::f16_bits)
            }
            OutputSlice::BF16Bits(o) => {
                decode_into_slice::<u16, C>(p, h, threads, o, stages, quant::bf16_bits)
            }
        }
    }
    if p.meta.bits <= 8 {
        run::<u8>(p, h, threads, out, stages)
    } else {
        run::<u16>(p, h, threads, out, stages)
    }
}

/// Decodes a feature container whose header is validated: the dequantized float32 values.
pub fn decompress(
    blob: &[u8],
    h: &Header,
    max_output_bytes: u64,
    threads: usize,
) -> Result<(FeatureMeta, Vec<f32>)> {
    let (meta, out) = decompress_to(
        blob,
        h,
        max_output_bytes,
        threads,
        Output::F32,
        &mut Stages::default(),
    )?;
    let Decoded::F32(values) = out else {
        unreachable!("asked for float32");
    };
    Ok((meta, values))
}

fn stream_info_of(v: &stream::StreamView<'_>, counts: &[u64], mode: &'static str) -> StreamInfo {
    let (distinct_symbols, alphabet_size, entropy_bound_bytes) = container::symbol_stats(counts);
    StreamInfo {
        mode,
        symbols: v.n,
        symbol_bytes: v.symbol_bytes,
        distinct_symbols,
        alphabet_size,
        precision_bits: v.table().map_or(0, |t| t.precision_bits),
        lanes: v.lanes(),
        chunk_symbols: v.chunk_symbols(),
        compressed_bytes: v.encoded_len,
        entropy_bound_bytes,
    }
}

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
            let chunks = pctx::chunks(h.count);
            vec![StreamInfo {
                mode: "pcontext",
                symbols: q.len(),
                symbol_bytes: 1,
                distinct_symbols,
                alphabet_size,
                precision_bits: model.0.precision,
                lanes: chunks.first().map_or(0, |c| c.2),
                chunk_symbols: chunks.first().map_or(0, |c| c.1),
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
            vec![stream_info_of(view, &counts, view.mode.name())]
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
                stream_info_of(counts, &hist.counts, counts.mode.name()),
                stream_info_of(cols, &hist.cols, cols.mode.name()),
                stream_info_of(values, &hist.values, values.mode.name()),
            ]
        }
    };
    Ok((p.meta, infos))
}
