//! Lossy compression of a float feature tensor: quantize, choose dense or sparse (CSR of the
//! tensor reshaped to N x M), code each array as a rANS stream, frame it in the container.
//!
//! Options and planning (FORMAT.md 6.7, 6.8) and the encoder are here; the container's header
//! and feature section are written and parsed by `format::feature`, decoded by `decode`, and
//! described by `inspect`.

use crate::buffer::{self, Pod};
use crate::bytes::{put_u64, put_varint64};
use crate::entropy::freq;
use crate::entropy::rans::Symbol;
use crate::entropy::stream::{self, EncodeOptions, StreamPlan};
use crate::error::{corrupt, CodecError, Result};
use crate::format::container::{self, ElemType, FloatType, Header, StreamInfo};
use crate::format::feature::{self as feature_format, levels, Body, CsrViews, NO_AXIS};
use crate::layout::sparse;
use crate::model::context::{self, Geometry};
use crate::model::pctx;
use crate::quant::{self, Affine, Channels, Code, NonFinite};

mod decode;
mod inspect;

pub use decode::{
    decompress, decompress_into, decompress_parsed_into, decompress_to, Decoded, Output,
    OutputSlice,
};
// The parsed section is what decoding and `inspect` return.
pub use crate::format::feature::{parse, read_meta, FeatureMeta, Mode, Parsed};
pub use inspect::inspect;

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
pub(crate) struct Resolved {
    pub(crate) params: Vec<Affine>,
    pub(crate) ranges: Vec<(f32, f32)>,
    /// Every input value is finite.
    pub(crate) finite: bool,
    /// Elements can fall outside `ranges` (not for the data's own min/max when all finite).
    pub(crate) may_clip: bool,
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
    /// Whether the stages are timed at all: a caller that keeps only the blob or the array
    /// does not pay the clock reads (~0.25 µs of a small map's compress, NOTES.md 72).
    pub timed: bool,
}

/// A stage clock that reads the time only when `on`; its laps are 0 otherwise.
struct Clock(Option<std::time::Instant>);

impl Clock {
    fn start(on: bool) -> Self {
        Clock(on.then(std::time::Instant::now))
    }

    /// Seconds since the last lap.
    fn lap(&mut self) -> f64 {
        let Some(last) = self.0 else {
            return 0.0;
        };
        let now = std::time::Instant::now();
        self.0 = Some(now);
        (now - last).as_secs_f64()
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

fn channels(opts: &FeatureOptions) -> Channels {
    opts.axis.map_or(Channels::TENSOR, |(_, c)| c)
}

/// The quantization parameters per channel, and the range per channel outside which an element
/// counts as clipped: the clip range, the data's range, or what calibrated parameters represent
/// to within half a step.
fn resolve_params(x: &[f32], opts: &FeatureOptions) -> Result<Resolved> {
    let ch = channels(opts);
    resolve_with(
        &opts.range,
        opts.bits,
        ch.channels,
        || quant::min_max(x, ch),
        || quant::all_finite(x),
    )
}

/// `resolve_params` for `channels` channels with the data's two scans given: its range per
/// channel and whether it is all finite (`Range::MinMax`), and whether it is all finite (the
/// other ranges). The GPU path runs them on the device.
pub(crate) fn resolve_with(
    range: &Range,
    bits: u8,
    channels: usize,
    min_max: impl FnOnce() -> (Vec<(f32, f32)>, bool),
    all_finite: impl FnOnce() -> bool,
) -> Result<Resolved> {
    let want = channels;
    let check_len = |n: usize, what: &str| {
        if n == want || n == 1 {
            Ok(())
        } else {
            Err(CodecError::InvalidArgument(format!(
                "{what} has {n} entries, expected 1 or {want}"
            )))
        }
    };
    let (ranges, finite): (Vec<(f32, f32)>, bool) = match range {
        Range::MinMax => min_max(),
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
                all_finite(),
            )
        }
        Range::Params(params) => {
            check_len(params.len(), "scale/zero_point")?;
            let top = levels(bits);
            for a in params {
                if !(a.scale.is_finite() && a.scale >= 0.0)
                    || a.zero_point < 0
                    || a.zero_point > top
                {
                    return Err(CodecError::InvalidArgument(format!(
                        "scale {} / zero_point {} invalid for {} bits (scale finite and >= 0, zero_point in 0..={top})",
                        a.scale, a.zero_point, bits
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
                finite: all_finite(),
                may_clip: true,
            });
        }
    };
    let params = ranges
        .iter()
        .map(|&(lo, hi)| Affine::from_range(lo, hi, bits))
        .collect();
    let may_clip = !finite || *range != Range::MinMax;
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
        if n == 0 || !x_len.is_multiple_of(n) || x_len / n > sparse::MAX_COLS {
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
        Ok(prepare::<u8>(x, opts, search_all, true)?.plan)
    } else {
        Ok(prepare::<u16>(x, opts, search_all, true)?.plan)
    }
}

/// The codes, the plan, and the plans of the streams the chosen layout writes (made for the
/// estimates; the encoder reuses them).
struct Prepared<C> {
    q: Vec<C>,
    plan: Plan,
    streams: Vec<StreamPlan>,
}

/// `estimates`: every figure of the plan computed. Without it (a caller that keeps only the
/// blob), auto skips planning the CSR streams when lower bounds of their estimates
/// (`stream::estimated_len_floor`, then, where those leave CSR a chance,
/// `stream::estimated_len_floor_tight`) already lose to dense: the choice is the same, and the
/// plan's CSR figures are those bounds.
fn prepare<C: Code + Symbol>(
    x: &[f32],
    opts: &FeatureOptions,
    search_all: bool,
    estimates: bool,
) -> Result<Prepared<C>> {
    let ch = channels(opts);
    let mut clock = Clock::start(estimates);
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
            timed: estimates,
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
    // What auto compares: the record estimates, or in the compact container the same streams
    // framed as it frames them (FORMAT.md 6.8 step 7). Both are non-decreasing in each CSR
    // stream's estimate, so lower bounds of those give a lower bound of CSR's figure.
    let compare = |plan: &Plan, [r, c, v]: [f64; 3]| {
        if opts.version == container::COMPACT_VERSION {
            compact_estimates(plan.dense_bytes, [r, c, v], plan.rows, plan.nonzeros)
        } else {
            (plan.dense_bytes, r + c + v)
        }
    };
    // The histograms gathered for the floors, handed on to the planner if it runs after all.
    let mut gathered: [Option<freq::Gathered>; 3] = [None, None, None];
    if !estimates && matches!(opts.mode, ModeChoice::Auto | ModeChoice::Best) {
        let mut floor = |i: usize, h: &[u64], width: usize| {
            let (len, g) = stream::estimated_len_floor_gathered(h, width);
            gathered[i] = g;
            (8 + len) as f64
        };
        let mut floors = [
            floor(0, &row_hist, 2),
            floor(1, &col_hist, 2),
            floor(2, &values_hist, C::BYTES),
        ];
        let (dense_cmp, mut csr_floor) = compare(&plan, floors);
        if auto_takes_csr(dense_cmp, csr_floor) {
            // The plain floors leave CSR a chance. They bound each table at its least precision
            // and by the entropy, which is where a one-column CSR (the dense map's entropy by
            // the chain rule) ties with dense; bounding each precision's payload and table
            // (a few passes over the present symbols, the sort kept for the planner) rules out
            // what the table and its quantization cost (~1 % of an 8-bit map's values). Not
            // where the counts average fewer than 8 a symbol: the cheapest precision is then
            // within a bit or two of the least, the bound barely rises, and its passes would
            // only add to the plan (a 1x32x7x7 map's 8-bit values: 3-5 a symbol).
            let ns = [plan.rows, plan.nonzeros, plan.nonzeros];
            for (i, (g, width)) in gathered.iter_mut().zip([2, 2, C::BYTES]).enumerate() {
                if let Some(g) = g.as_mut().filter(|g| g.counts_average_at_least(8)) {
                    let tight = stream::estimated_len_floor_tight(g, ns[i], width, &opts.coder);
                    floors[i] = floors[i].max((8 + tight) as f64);
                }
            }
            csr_floor = compare(&plan, floors).1;
        }
        if !auto_takes_csr(dense_cmp, csr_floor) {
            plan.values_bytes = floors[2];
            plan.csr_bytes = floors.iter().sum();
            plan.mode = Mode::Dense;
            plan.reason = Reason::Auto {
                dense: dense_cmp,
                csr: csr_floor,
                rows: plan.rows,
                nonzeros: plan.nonzeros,
                total,
            };
            plan.seconds.sparse = clock.lap();
            return Ok(Prepared {
                q,
                plan,
                streams: vec![dense],
            });
        }
    }
    let [g_rows, g_cols, g_values] = gathered;
    let stream_plan = |counts: &[u64], g, width: usize| {
        StreamPlan::with_gathered(counts, g, width, &opts.coder)
    };
    let values = stream_plan(&values_hist, g_values, C::BYTES);
    plan.values_bytes = bytes(&values);
    let (row_plan, col_plan) = (
        stream_plan(&row_hist, g_rows, 2),
        stream_plan(&col_hist, g_cols, 2),
    );
    plan.csr_bytes = bytes(&row_plan) + bytes(&col_plan) + plan.values_bytes;
    let (dense_cmp, csr_cmp) = compare(
        &plan,
        [bytes(&row_plan), bytes(&col_plan), plan.values_bytes],
    );
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

/// Compresses a float32 feature tensor (C order) that had dtype `float_type`; returns the
/// container and the plan, every estimate in it computed.
pub fn compress(
    x: &[f32],
    shape: &[usize],
    float_type: FloatType,
    opts: &FeatureOptions,
) -> Result<(Vec<u8>, Plan)> {
    compress_with(x, shape, float_type, opts, true)
}

/// `compress`'s container alone, the same bytes: auto may skip planning CSR streams that
/// cannot be chosen (`prepare`; a 1x32x7x7 map compresses 9-18 % faster).
pub fn compress_blob(
    x: &[f32],
    shape: &[usize],
    float_type: FloatType,
    opts: &FeatureOptions,
) -> Result<Vec<u8>> {
    Ok(compress_with(x, shape, float_type, opts, false)?.0)
}

fn compress_with(
    x: &[f32],
    shape: &[usize],
    float_type: FloatType,
    opts: &FeatureOptions,
    estimates: bool,
) -> Result<(Vec<u8>, Plan)> {
    validate(x.len(), shape, opts)?;
    if opts.bits <= 8 {
        compress_typed::<u8>(x, shape, float_type, opts, estimates)
    } else {
        compress_typed::<u16>(x, shape, float_type, opts, estimates)
    }
}

fn compress_typed<C: Code + Symbol>(
    x: &[f32],
    shape: &[usize],
    float_type: FloatType,
    opts: &FeatureOptions,
    estimates: bool,
) -> Result<(Vec<u8>, Plan)> {
    let Prepared {
        q,
        mut plan,
        streams: plans,
    } = prepare::<C>(x, opts, false, estimates)?;
    // The stream plans made from prepare's histograms, for the mode it chose.
    let planned_mode = plan.mode;
    let mut clock = Clock::start(plan.seconds.timed);
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
    let sample = crate::model::fit::Sample {
        codes,
        shape,
        fills: &fills,
        fill_ch: ch,
    };
    let model = crate::model::fit::fit_one(&sample, opts.bits, opts.axis.map(|(a, _)| a as usize))?;
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
    let mut clock = Clock::start(plan.seconds.timed);
    let compact = opts.version == container::COMPACT_VERSION;
    let axis = opts.axis.map_or(NO_AXIS, |(a, _)| a);
    let mut out = Vec::new();
    feature_format::write_head(
        &mut out,
        compact,
        float_type,
        shape,
        opts.bits,
        mode,
        axis,
        &plan.params,
        plan.clamped,
        plan.rows,
    );
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

#[cfg(test)]
mod blob_tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `compress_blob`, which may skip planning CSR, writes `compress`'s bytes: on maps from
    /// all dense to nearly all zeros, both container versions, auto and best, per tensor and per
    /// channel, 2 to 12 bits. Both outcomes of the skip must occur.
    #[test]
    fn blob_alone_is_compress_bytes() {
        let mut rng = ChaCha8Rng::seed_from_u64(61);
        let (mut skipped, mut planned) = (0, 0);
        for round in 0..400 {
            let c = [1usize, 3, 16, 32][round % 4];
            let hw = [1usize, 7, 14, 28][(round / 4) % 4];
            let shape = vec![1, c, hw, hw];
            let n = c * hw * hw;
            let zeros = rng.gen_range(0.0..1.0f64);
            let x: Vec<f32> = (0..n)
                .map(|_| {
                    if rng.gen_bool(zeros) {
                        0.0
                    } else {
                        rng.gen::<f32>().powi(2) * 6.0
                    }
                })
                .collect();
            let opts = FeatureOptions {
                bits: [2u8, 4, 8, 12][round % 4],
                axis: (round % 3 == 0).then_some((
                    1,
                    Channels {
                        channels: c,
                        inner: hw * hw,
                    },
                )),
                range: Range::MinMax,
                mode: [ModeChoice::Auto, ModeChoice::Best][(round / 2) % 2],
                reshape: Reshape::Model,
                non_finite: NonFinite::Error,
                coder: EncodeOptions {
                    threads: 1,
                    ..Default::default()
                },
                version: [container::COMPACT_VERSION, 1][(round / 3) % 2],
            };
            let (want, _) = compress(&x, &shape, FloatType::F32, &opts).unwrap();
            let got = compress_blob(&x, &shape, FloatType::F32, &opts).unwrap();
            assert_eq!(got, want, "round {round}");
            let full = plan(&x, &shape, &opts, false).unwrap();
            let lean = if opts.bits <= 8 {
                prepare::<u8>(&x, &opts, false, false).unwrap().plan
            } else {
                prepare::<u16>(&x, &opts, false, false).unwrap().plan
            };
            assert_eq!(lean.mode, full.mode, "round {round}");
            if lean.csr_bytes == full.csr_bytes {
                planned += 1;
            } else {
                assert!(lean.csr_bytes < full.csr_bytes, "round {round}: not a floor");
                skipped += 1;
            }
        }
        assert!(skipped > 40 && planned > 40, "{skipped} skipped, {planned} planned");
    }

    /// 8 bits, per tensor, auto, the compact container, one thread.
    fn auto_8bit() -> FeatureOptions {
        FeatureOptions {
            bits: 8,
            axis: None,
            range: Range::MinMax,
            mode: ModeChoice::Auto,
            reshape: Reshape::Model,
            non_finite: NonFinite::Error,
            coder: EncodeOptions {
                threads: 1,
                ..Default::default()
            },
            version: container::COMPACT_VERSION,
        }
    }

    /// A dense 8-bit map (few zeros, ~200 codes in use: the real setting's maps of 8-31 K
    /// elements) ties with its one-column CSR on the plain floors, which bound the entropy and
    /// the least precision's table: the chain rule gives a one-column CSR the dense map's
    /// entropy. The tight floors (each precision's quantization loss and table) rule CSR out,
    /// so the blob alone plans no CSR stream, and writes `compress`'s bytes.
    #[test]
    fn tight_floors_skip_a_dense_maps_csr() {
        let mut rng = ChaCha8Rng::seed_from_u64(62);
        let shape = [1usize, 112, 14, 14];
        let x: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| {
                if rng.gen_bool(0.02) {
                    0.0
                } else {
                    (rng.gen::<f32>() + rng.gen::<f32>()) * 3.0
                }
            })
            .collect();
        let opts = auto_8bit();
        let full = plan(&x, &shape, &opts, false).unwrap();
        assert_eq!((full.mode, full.rows), (Mode::Dense, x.len()));
        // The plain floors of the one-column CSR's streams (row flags, one column, values)
        // leave CSR a chance.
        let q = prepare::<u8>(&x, &opts, false, true).unwrap().q;
        let mut values = crate::entropy::histogram::histogram_u8(&q);
        values[full.params[0].zero_point as usize] = 0;
        let nnz = full.nonzeros as u64;
        let floor = |h: &[u64], w| (8 + stream::estimated_len_floor(h, w)) as f64;
        let plain = [
            floor(&[x.len() as u64 - nnz, nnz], 2),
            floor(&[nnz], 2),
            floor(&values, 1),
        ];
        let (dense, csr) = compact_estimates(full.dense_bytes, plain, full.rows, full.nonzeros);
        assert!(auto_takes_csr(dense, csr), "dense {dense}, plain floors {csr}");
        let lean = prepare::<u8>(&x, &opts, false, false).unwrap().plan;
        assert_eq!(lean.mode, Mode::Dense);
        assert!(
            lean.csr_bytes < full.csr_bytes,
            "CSR planned: {} of {}",
            lean.csr_bytes,
            full.csr_bytes
        );
        let (want, _) = compress(&x, &shape, FloatType::F32, &opts).unwrap();
        assert_eq!(compress_blob(&x, &shape, FloatType::F32, &opts).unwrap(), want);
    }

    /// `compress`'s plan times its stages; the blob alone and its lean plan read no clock.
    #[test]
    fn only_a_plan_kept_is_timed() {
        let shape = [1usize, 64, 56, 56];
        let x: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|i| ((i * 7919) % 251) as f32 / 50.0)
            .collect();
        let opts = auto_8bit();
        let s = compress(&x, &shape, FloatType::F32, &opts).unwrap().1.seconds;
        assert!(s.timed && s.quantize > 0.0 && s.entropy > 0.0 && s.container > 0.0, "{s:?}");
        let lean = prepare::<u8>(&x, &opts, false, false).unwrap().plan.seconds;
        assert!(!lean.timed && lean.quantize == 0.0 && lean.sparse == 0.0, "{lean:?}");
        let mut off = Clock::start(false);
        assert_eq!(off.lap(), 0.0);
    }
}
