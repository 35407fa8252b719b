//! Fitting a context model (`pctx::Model`) to calibration codes.
//!
//! Why a fitted model: every byte of a per-sample table is paid in every blob, so the model is
//! trained once, where a deployment calibrates anyway, and shared. What is trained: the layout
//! of the neighbourhood (which axes are "left" and "up", which axis holds the channels), the
//! predictor, the classes of each property (equal-mass bins of its calibration distribution),
//! groups of channels with alike code distributions (k-means on their histograms), and a
//! clustering of the contexts into at most 256 tables (k-means on the contexts' histograms
//! under the code length they would cost, as brotli clusters its context histograms).
//!
//! How the candidates are chosen: by the code length of held-out calibration samples (every
//! fourth sample) under tables trained on the others, quantized as they will be stored. Among
//! candidates within 0.3% of the best, the one with the fewest tables wins (smaller tables
//! decode faster). The chosen structure's tables then get their precision by the static coder's
//! rule (`choose_precision`: the smallest within 1/4096 of the cheapest on the held-out cost
//! with the coder's own loss, slot tables past `FAST_SLOT_BYTES` only where they save more
//! than 1/200), and the model is refitted on every sample.
//!
//! None of this is part of the format: a decoder needs only the model it is given.

use crate::error::{CodecError, Result};
pub use crate::model::pctx::FAST_SLOT_BYTES;
use crate::model::pctx::{
    chunks, fold, properties, Chunk, Layout, Model, Predictor, MAX_BITS, MAX_CLASSES, MAX_GROUPS,
    MAX_PRECISION, MAX_SLOT_TABLE, MAX_TABLES, NO_AXIS,
};
use crate::quant::Channels;

/// One calibration sample: its codes (C order), its shape, and the code of zero of each of its
/// quantization channels (`fill_ch`).
pub struct Sample<'a> {
    pub codes: &'a [u8],
    pub shape: &'a [usize],
    pub fills: &'a [u8],
    pub fill_ch: Channels,
}

/// Calibration samples. Their shapes have the same number of axes and differ at most along
/// the `variable_axes` of the options.
pub struct Calibration<'a> {
    pub samples: Vec<Sample<'a>>,
}

#[derive(Debug, Clone)]
pub struct FitOptions {
    pub bits: u8,
    /// Axes that may not hold the channel groups (a variable-length axis).
    pub variable_axes: Vec<usize>,
    /// A channel axis to try first (the quantizer's), if any.
    pub channel_axis: Option<usize>,
    /// Elements used to choose among candidates (whole samples, training and held-out).
    pub selection_elements: usize,
    /// Whether the model may use plane lanes (FORMAT.md 9.4; a fitted codec's, not a
    /// container's): taken where they change the layout and keep the first chunk's lanes.
    pub plane_lanes: bool,
}

impl FitOptions {
    pub fn new(bits: u8) -> FitOptions {
        FitOptions {
            bits,
            variable_axes: Vec::new(),
            channel_axis: None,
            selection_elements: 3 << 20,
            plane_lanes: false,
        }
    }
}

/// One candidate configuration and its held-out cost.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub axis_x: u8,
    pub axis_y: u8,
    pub axis_g: u8,
    /// Lanes of whole planes (FORMAT.md 9.4).
    pub plane_lanes: bool,
    pub predictor: Predictor,
    pub groups: usize,
    pub classes: usize,
    pub tables: usize,
    pub alpha: f64,
    /// Frequency precision of the tables (`choose_precision` for the chosen candidate).
    pub precision: u8,
    /// Held-out code length, bits per element.
    pub bits_per_element: f64,
}

/// What `fit` tried and chose.
#[derive(Debug, Clone)]
pub struct FitReport {
    pub tried: Vec<Candidate>,
    pub chosen: Candidate,
}

/// Precision of the tables for `bits`-bit codes while the structure is chosen (the chosen
/// structure then tries every precision, `choose_precision`).
pub fn precision_for(bits: u8) -> u8 {
    if bits <= 4 {
        12
    } else {
        14
    }
}


/// Bytes of the fitted decoder's slot tables: one byte a slot, `2^precision` slots a table.
pub fn slot_table_bytes(tables: usize, precision: u8) -> usize {
    tables << precision
}

/// The precision rule of the static coder (FORMAT.md 5.4) on the fitted codec's costs: from
/// `(precision, cost)` pairs in increasing precision, `tight` is the smallest precision within
/// 1/4096 of the cheapest. If the slot tables of `tables` tables at `tight` fit
/// `FAST_SLOT_BYTES`, it is the choice; otherwise the same rule among the precisions whose slot
/// tables fit gives `fit`, chosen unless `tight` saves more than 1/200 (0.5%) against it.
/// Precisions whose slot tables pass `MAX_SLOT_TABLE` (where the vector decoder gives way to
/// the scalar search) are left out when any other remains. `None` when `costs` is empty.
pub fn choose_precision(costs: &[(u8, f64)], tables: usize) -> Option<u8> {
    let built = |&&(p, _): &&(u8, f64)| slot_table_bytes(tables, p) <= MAX_SLOT_TABLE;
    let kept: Vec<(u8, f64)> = if costs.iter().any(|c| built(&c)) {
        costs.iter().filter(built).copied().collect()
    } else {
        costs.to_vec()
    };
    let costs = &kept[..];
    let fits = |p: u8| slot_table_bytes(tables, p) <= FAST_SLOT_BYTES;
    let tightest = |fast_only: bool| -> Option<(u8, f64)> {
        let set = costs.iter().filter(|&&(p, _)| !fast_only || fits(p));
        let least = set.clone().map(|&(_, c)| c).min_by(f64::total_cmp)?;
        set.copied().find(|&(_, c)| c * 4096.0 <= least * 4097.0)
    };
    let tight = tightest(false)?;
    if fits(tight.0) {
        return Some(tight.0);
    }
    Some(match tightest(true) {
        Some(fit) if fit.1 * 200.0 <= tight.1 * 201.0 => fit.0,
        _ => tight.0,
    })
}

/// Every precision a `bits`-bit model may have.
fn precisions(bits: u8) -> std::ops::RangeInclusive<u8> {
    (bits + 1).max(2)..=MAX_PRECISION
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Geometry {
    x: u8,
    y: u8,
    g: u8,
    /// Plane lanes (FORMAT.md 9.4).
    plane: bool,
}

/// Whether lanes of whole planes of the up axis `y` (FORMAT.md 9.4) change the layout of a
/// sample of `shape` while keeping its first chunk's lane count (its parallelism): a sample
/// whose planes are longer than the default's segments, such as a stem's 112 x 112 channels.
/// Elsewhere the default layout stands, and the codec keeps its older version.
pub fn plane_lanes_pay(shape: &[usize], y: u8) -> bool {
    if y == NO_AXIS || y as usize >= shape.len() {
        return false;
    }
    let n: usize = shape.iter().product();
    let plane: usize = shape[y as usize..].iter().product();
    if n == 0 || plane == 0 {
        return false;
    }
    let (default, planes) = (chunks(n, 0), chunks(n, plane));
    default != planes && default[0].lanes == planes[0].lanes
}

fn geometries(shape: &[usize], opts: &FitOptions) -> Vec<Geometry> {
    let d = shape.len();
    let axis = |a: usize| a as u8;
    let mut xy: Vec<(u8, u8)> = Vec::new();
    match d {
        0 => xy.push((NO_AXIS, NO_AXIS)),
        1 => xy.push((0, NO_AXIS)),
        _ => {
            xy.push((axis(d - 1), axis(d - 2)));
            if d >= 3 {
                // Channels last: the spatial axes are the two before.
                xy.push((axis(d - 2), axis(d - 3)));
            }
        }
    }
    let groupable =
        |a: usize| !opts.variable_axes.contains(&a) && shape[a] >= 2 && shape[a] <= 1 << 16;
    let mut gs: Vec<u8> = vec![NO_AXIS];
    if let Some(c) = opts.channel_axis.filter(|&c| c < d && groupable(c)) {
        gs.push(axis(c));
    }
    for a in 0..d {
        if groupable(a) && !gs.contains(&axis(a)) {
            gs.push(axis(a));
        }
    }
    let mut out = Vec::new();
    for &(x, y) in &xy {
        for &g in &gs {
            out.push(Geometry {
                x,
                y,
                g,
                plane: opts.plane_lanes && plane_lanes_pay(shape, y),
            });
        }
    }
    out
}

/// Raw properties of one element, before classes.
#[derive(Clone, Copy, Default)]
struct Element {
    a: u16,
    b: u8,
    c: u8,
    /// Index along the group axis.
    channel: u16,
    sym: u8,
}

fn skeleton(bits: u8, predictor: Predictor, geo: Geometry, group_len: usize) -> Model {
    Model {
        bits,
        predictor,
        axis_x: geo.x,
        axis_y: geo.y,
        axis_g: geo.g,
        groups: vec![0; group_len],
        n_groups: 1,
        classes: Default::default(),
        n_classes: [1, 1, 1],
        context_map: Vec::new(),
        precision: precision_for(bits),
        freqs: Vec::new(),
        plane_lanes: geo.plane,
    }
}

/// The properties and symbols of every element of `samples`, in the coder's lane order.
fn extract(cal: &Calibration, samples: &[usize], model: &Model) -> Vec<Element> {
    let mask = (1i32 << model.bits) - 1;
    let total: usize = samples.iter().map(|&k| cal.samples[k].codes.len()).sum();
    let mut out = Vec::with_capacity(total);
    for &k in samples {
        let sample = &cal.samples[k];
        let (q, fills) = (sample.codes, sample.fills);
        let lay = Layout::new(model, sample.shape);
        // Folded residuals of the elements so far (med-residual's third property).
        let mut res = if model.predictor == Predictor::MedResidual {
            vec![0u8; q.len()]
        } else {
            Vec::new()
        };
        for Chunk {
            start,
            m,
            lanes,
            seg,
        } in lay.chunks()
        {
            for l in 0..lanes {
                let b = start + l * seg;
                let e = (b + seg).min(start + m);
                let mut prev = 0u32;
                for i in b..e {
                    let fill = fills[sample.fill_ch.of(i)];
                    let (a, bb, c, pred) =
                        properties(model.predictor, &lay, q, &res, prev, fill, i, i - b);
                    let sym = match model.predictor {
                        Predictor::None => q[i] as u32,
                        Predictor::Med | Predictor::MedResidual => {
                            ((q[i] as i32 - pred) & mask) as u32
                        }
                    };
                    prev = fold(sym, model.bits);
                    if let Some(r) = res.get_mut(i) {
                        *r = prev as u8;
                    }
                    out.push(Element {
                        a: a as u16,
                        b: bb as u8,
                        c: c as u8,
                        channel: lay.group.of(i) as u16,
                        sym: sym as u8,
                    });
                }
            }
        }
    }
    out
}

/// Classes of a property from its histogram: `n` bins of equal mass over the values in
/// increasing order (a value heavier than a bin gets a class of its own), numbered 0, 1, ...
fn equal_mass_classes(hist: &[u64], n: usize) -> (Vec<u8>, u8) {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return (vec![0; hist.len()], 1);
    }
    let mut raw = Vec::with_capacity(hist.len());
    let mut before = 0u64;
    for &h in hist {
        raw.push(((before as u128 * n as u128) / total as u128).min(n as u128 - 1) as usize);
        before += h;
    }
    // Renumber the bins that occur to 0, 1, ... in order.
    let mut classes = Vec::with_capacity(hist.len());
    let mut last = usize::MAX;
    let mut next = 0u8;
    for &r in &raw {
        if r != last {
            if last != usize::MAX {
                next += 1;
            }
            last = r;
        }
        classes.push(next);
    }
    (classes, next + 1)
}

/// k-means of histograms (rows of `hist`, `a` symbols each) into at most `k` clusters under
/// cross-entropy: returns the cluster of each row. Rows with no counts join the heaviest
/// cluster. Seeds: the `k` heaviest rows.
fn cluster(hist: &[u64], a: usize, k: usize, iters: usize) -> Vec<usize> {
    let rows = hist.len() / a;
    let mass: Vec<u64> = hist.chunks(a).map(|r| r.iter().sum()).collect();
    let mut order: Vec<usize> = (0..rows).filter(|&r| mass[r] > 0).collect();
    order.sort_by_key(|&r| (std::cmp::Reverse(mass[r]), r));
    if order.is_empty() {
        return vec![0; rows];
    }
    let k = k.min(order.len());
    // Sparse rows: (symbol, count).
    let sparse: Vec<Vec<(u32, f64)>> = hist
        .chunks(a)
        .map(|r| {
            r.iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(|(s, &c)| (s as u32, c as f64))
                .collect()
        })
        .collect();
    let mut assign = vec![usize::MAX; rows];
    for (j, &r) in order.iter().take(k).enumerate() {
        assign[r] = j;
    }
    let mut centroids = vec![0f64; k * a];
    let mut logs = vec![0f64; k * a];
    for it in 0..=iters {
        // Centroids of the current assignment (the seeds alone at first).
        centroids.fill(0.0);
        for &r in &order {
            if assign[r] != usize::MAX {
                for &(s, c) in &sparse[r] {
                    centroids[assign[r] * a + s as usize] += c;
                }
            }
        }
        for j in 0..k {
            let row = &centroids[j * a..(j + 1) * a];
            let total: f64 = row.iter().sum::<f64>() + 0.5 * a as f64;
            for s in 0..a {
                logs[j * a + s] = ((row[s] + 0.5) / total).ln();
            }
        }
        if it == iters {
            break;
        }
        let mut changed = false;
        for &r in &order {
            let mut best = (f64::NEG_INFINITY, 0usize);
            for j in 0..k {
                let lj = &logs[j * a..(j + 1) * a];
                let v: f64 = sparse[r].iter().map(|&(s, c)| c * lj[s as usize]).sum();
                if v > best.0 {
                    best = (v, j);
                }
            }
            if assign[r] != best.1 {
                assign[r] = best.1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // Number the clusters that ended up used, heaviest first; empty rows join cluster 0.
    let mut weight = vec![0u64; k];
    for &r in &order {
        weight[assign[r]] += mass[r];
    }
    let mut rank: Vec<usize> = (0..k).filter(|&j| weight[j] > 0).collect();
    rank.sort_by_key(|&j| (std::cmp::Reverse(weight[j]), j));
    let mut renumber = vec![0usize; k];
    for (new, &old) in rank.iter().enumerate() {
        renumber[old] = new;
    }
    assign
        .iter()
        .map(|&j| if j == usize::MAX { 0 } else { renumber[j] })
        .collect()
}

/// Frequencies summing to `2^precision`, every one at least 1, from counts smoothed by `alpha`.
pub fn table_from_counts(counts: &[u64], precision: u8, alpha: f64) -> Vec<u16> {
    let a = counts.len();
    let total = 1u64 << precision;
    let mass: f64 = counts.iter().map(|&c| c as f64).sum::<f64>() + alpha * a as f64;
    let targets: Vec<f64> = counts
        .iter()
        .map(|&c| (c as f64 + alpha) / mass * total as f64)
        .collect();
    let mut f: Vec<u64> = targets.iter().map(|&t| (t.floor() as u64).max(1)).collect();
    let mut sum: u64 = f.iter().sum();
    // Hand out what is left by the largest remainders (ties: lower symbol), or take back from
    // the largest frequencies, never below 1.
    if sum < total {
        let mut order: Vec<usize> = (0..a).collect();
        order.sort_by(|&x, &y| {
            let rx = targets[x] - f[x] as f64;
            let ry = targets[y] - f[y] as f64;
            ry.total_cmp(&rx).then(x.cmp(&y))
        });
        let mut i = 0;
        while sum < total {
            f[order[i % a]] += 1;
            sum += 1;
            i += 1;
        }
    }
    while sum > total {
        let j = (0..a)
            .max_by_key(|&s| (f[s], std::cmp::Reverse(s)))
            .unwrap_or(0);
        if f[j] <= 1 {
            break;
        }
        let take = (sum - total).min(f[j] - 1).min((f[j] / 2).max(1));
        f[j] -= take;
        sum -= take;
    }
    f.into_iter().map(|v| v as u16).collect()
}

/// Group of each channel: k-means of the channels' code histograms into at most `k` groups.
fn channel_groups(elements: &[Element], channels: usize, a: usize, k: usize) -> (Vec<u8>, u8) {
    if channels <= 1 || k <= 1 {
        return (vec![0; channels.max(1)], 1);
    }
    let mut hist = vec![0u64; channels * a];
    for e in elements {
        hist[e.channel as usize * a + e.sym as usize] += 1;
    }
    let assign = cluster(&hist, a, k, 10);
    let n = assign.iter().max().map_or(1, |&m| m + 1);
    (assign.into_iter().map(|g| g as u8).collect(), n as u8)
}

/// A model with its structure chosen (geometry, predictor, groups, classes) and its contexts
/// counted: what the table clustering and the held-out scoring start from.
struct Counted {
    model: Model,
    /// Counts per context (before clustering) and symbol.
    counts: Vec<u64>,
}

fn count(
    elements: &[Element],
    bits: u8,
    predictor: Predictor,
    geo: Geometry,
    group_len: usize,
    n_groups: usize,
    n_classes: usize,
) -> Counted {
    let a = 1usize << bits;
    let mut model = skeleton(bits, predictor, geo, group_len);
    let (groups, ng) = channel_groups(elements, group_len, a, n_groups);
    model.groups = groups;
    model.n_groups = ng;
    let lengths = predictor.property_lengths(bits);
    let mut hists = [
        vec![0u64; lengths[0]],
        vec![0u64; lengths[1]],
        vec![0u64; lengths[2]],
    ];
    for e in elements {
        hists[0][e.a as usize] += 1;
        hists[1][e.b as usize] += 1;
        hists[2][e.c as usize] += 1;
    }
    for (k, hist) in hists.iter().enumerate() {
        let (c, n) = equal_mass_classes(hist, n_classes);
        model.classes[k] = c;
        model.n_classes[k] = n;
    }
    let contexts = model.contexts();
    let mut counts = vec![0u64; contexts * a];
    for e in elements {
        counts[context_of(&model, e) * a + e.sym as usize] += 1;
    }
    Counted { model, counts }
}

#[inline]
fn context_of(model: &Model, e: &Element) -> usize {
    let [ca, cb, cc] = &model.classes;
    let [na, nb, nc] = model.n_classes;
    let g = model.groups[e.channel as usize] as usize;
    ((g * na as usize + ca[e.a as usize] as usize) * nb as usize + cb[e.b as usize] as usize)
        * nc as usize
        + cc[e.c as usize] as usize
}

/// Clustered contexts: the table of each context and each table's summed counts.
type Clustered = (Vec<u8>, Vec<u64>);

/// Clusters the contexts of `c` into at most `k` tables.
fn cluster_tables(c: &Counted, k: usize) -> Clustered {
    let a = c.model.alphabet();
    let assign = cluster(&c.counts, a, k, 8);
    let tables = assign.iter().max().map_or(1, |&m| m + 1);
    let mut sums = vec![0u64; tables * a];
    for (ctx, &t) in assign.iter().enumerate() {
        for s in 0..a {
            sums[t * a + s] += c.counts[ctx * a + s];
        }
    }
    (assign.iter().map(|&t| t as u8).collect(), sums)
}

/// The model of `c` with clustered tables `(context map, sums)` quantized at `precision`.
fn with_tables(c: &Counted, clustered: &Clustered, alpha: f64, precision: u8) -> Model {
    let a = c.model.alphabet();
    let mut model = c.model.clone();
    model.precision = precision;
    model.context_map = clustered.0.clone();
    model.freqs = clustered
        .1
        .chunks(a)
        .flat_map(|row| table_from_counts(row, precision, alpha))
        .collect();
    model
}

/// Clusters the contexts of `c` into at most `k` tables and quantizes them at the precision of
/// `c`'s skeleton.
fn finish(c: &Counted, k: usize, alpha: f64) -> Model {
    with_tables(c, &cluster_tables(c, k), alpha, c.model.precision)
}

/// Code length in bits of `elements` under `model`.
fn cost(model: &Model, elements: &[Element]) -> f64 {
    let a = model.alphabet();
    let p = model.precision as f64;
    let logs: Vec<f64> = model.freqs.iter().map(|&f| p - (f as f64).log2()).collect();
    elements
        .iter()
        .map(|e| logs[model.context_map[context_of(model, e)] as usize * a + e.sym as usize])
        .sum()
}

/// `Σ_t (n_t - Σ_s c_ts² / n_t)` over the tables of `model` for `elements` (`c_ts`: how many
/// of them table `t` codes as `s`): what the coder's own loss grows with (`freq::coder_loss`).
fn table_spread(model: &Model, elements: &[Element]) -> f64 {
    let a = model.alphabet();
    let mut counts = vec![0u64; model.tables() * a];
    for e in elements {
        counts[model.context_map[context_of(model, e)] as usize * a + e.sym as usize] += 1;
    }
    counts
        .chunks(a)
        .map(|row| {
            let n: u64 = row.iter().sum();
            if n == 0 {
                return 0.0;
            }
            let sq: f64 = row.iter().map(|&c| (c as f64) * (c as f64)).sum();
            n as f64 - sq / n as f64
        })
        .sum()
}

/// The coder's own loss in bits at precision `p` (32-bit states renormalized 16 bits at a
/// time), `5/1024 · spread · 4^(p-16)`: the static coder's model (benches/NOTES.md 28).
fn coder_loss_bits(spread: f64, p: u8) -> f64 {
    5.0 / 1024.0 * spread * 4f64.powi(i32::from(p) - 16)
}

/// `(precision, cost)` for every precision a `bits`-bit model may have: `code_length` of the
/// clustered tables of `c` quantized at it, plus the coder's own loss on `elements`.
fn precision_costs(
    c: &Counted,
    clustered: &Clustered,
    alpha: f64,
    elements: &[Element],
    code_length: impl Fn(&Model) -> f64,
) -> Vec<(u8, f64)> {
    let spread = table_spread(
        &with_tables(c, clustered, alpha, c.model.precision),
        elements,
    );
    precisions(c.model.bits)
        .map(|p| {
            let m = with_tables(c, clustered, alpha, p);
            (p, code_length(&m) + coder_loss_bits(spread, p))
        })
        .collect()
}

/// Training and held-out samples for the selection: every fourth sample is held out, and both
/// sets are cut to the element budget.
fn split(cal: &Calibration, budget: usize) -> (Vec<usize>, Vec<usize>) {
    let samples = cal.samples.len();
    let (mut train, mut held) = (Vec::new(), Vec::new());
    let (mut in_train, mut in_held) = (0usize, 0usize);
    for k in 0..samples {
        let n = cal.samples[k].codes.len();
        if samples >= 2 && k % 4 == 3 {
            if in_held < budget / 4 || held.is_empty() {
                held.push(k);
                in_held += n;
            }
        } else if in_train < budget || train.is_empty() {
            train.push(k);
            in_train += n;
        }
    }
    if held.is_empty() {
        held = train.clone();
    }
    (train, held)
}

/// The predictors a fitted codec may use (`fit_one`'s models, carried in self-contained
/// containers, keep to the first two).
const PREDICTORS: [Predictor; 3] = [Predictor::None, Predictor::Med, Predictor::MedResidual];

/// Fits a model to the calibration codes (see the module documentation).
pub fn fit(cal: &Calibration, opts: &FitOptions) -> Result<(Model, FitReport)> {
    let bits = opts.bits;
    if !(1..=MAX_BITS).contains(&bits) {
        return Err(CodecError::InvalidArgument(format!(
            "a context model takes codes of 1..={MAX_BITS} bits, got {bits}"
        )));
    }
    let samples = cal.samples.len();
    let Some(first) = cal.samples.first() else {
        return Err(CodecError::InvalidArgument(
            "fitting needs at least one calibration sample".into(),
        ));
    };
    let shape = first.shape;
    let top = (1u16 << bits) - 1;
    for s in &cal.samples {
        if s.shape.len() != shape.len() || s.codes.len() != s.shape.iter().product::<usize>() {
            return Err(CodecError::InvalidArgument(
                "calibration samples differ in their number of axes or size".into(),
            ));
        }
        if s.codes.iter().any(|&c| c as u16 > top) {
            return Err(CodecError::InvalidArgument(format!(
                "a calibration code exceeds {bits} bits"
            )));
        }
    }
    let fixed = |a: usize| cal.samples.iter().all(|s| s.shape[a] == shape[a]);
    let mut opts = opts.clone();
    for a in 0..shape.len() {
        if !fixed(a) && !opts.variable_axes.contains(&a) {
            opts.variable_axes.push(a);
        }
    }
    let (train, held) = split(cal, opts.selection_elements);
    let group_len = |g: u8| {
        if g == NO_AXIS {
            1
        } else {
            shape[g as usize]
        }
    };
    let mut tried = Vec::new();
    let score =
        |model: &Model, held_el: &[Element]| cost(model, held_el) / held_el.len().max(1) as f64;
    let configs: [(usize, usize); 3] = [(1, 6), (4, 8), (16, 12)];
    let ks: &[usize] = if bits <= 4 { &[16, 64, 256] } else { &[16, 64] };
    // 1. The geometry, with a middling model of each predictor.
    let mut best_geo = None;
    for geo in geometries(shape, &opts) {
        for predictor in PREDICTORS {
            let sk = skeleton(bits, predictor, geo, group_len(geo.g));
            let tr = extract(cal, &train, &sk);
            let he = extract(cal, &held, &sk);
            let c = count(&tr, bits, predictor, geo, group_len(geo.g), 4, 8);
            let m = finish(&c, 64, 0.1);
            let v = score(&m, &he);
            if best_geo.is_none_or(|(bv, _)| v < bv) {
                best_geo = Some((v, geo));
            }
        }
    }
    let geo = best_geo.map(|(_, g)| g).unwrap_or(Geometry {
        x: NO_AXIS,
        y: NO_AXIS,
        g: NO_AXIS,
        plane: false,
    });
    // 2. Predictor, groups, classes, tables and smoothing for that geometry.
    for predictor in PREDICTORS {
        let sk = skeleton(bits, predictor, geo, group_len(geo.g));
        let tr = extract(cal, &train, &sk);
        let he = extract(cal, &held, &sk);
        for &(ng, ncl) in &configs {
            if ng > 1 && geo.g == NO_AXIS {
                continue;
            }
            let c = count(&tr, bits, predictor, geo, group_len(geo.g), ng, ncl);
            for &k in ks {
                for alpha in [0.05, 0.5] {
                    let m = finish(&c, k, alpha);
                    let cand = Candidate {
                        axis_x: geo.x,
                        axis_y: geo.y,
                        axis_g: geo.g,
                        plane_lanes: geo.plane,
                        predictor,
                        groups: m.n_groups as usize,
                        classes: ncl,
                        tables: m.tables(),
                        alpha,
                        precision: m.precision,
                        bits_per_element: score(&m, &he),
                    };
                    tried.push(cand);
                }
            }
        }
    }
    // Med-residual decodes and encodes 25-30 % slower than med (a gather and a store more an
    // element; benches/NOTES.md 41): its candidates stand only where the best of them saves
    // more than 1/200 against the best of the others, the rule of slot tables past the fast
    // bytes (`choose_precision`).
    let least = |slow: bool| {
        tried
            .iter()
            .filter(|c| (c.predictor == Predictor::MedResidual) == slow)
            .map(|c| c.bits_per_element)
            .min_by(f64::total_cmp)
    };
    let slow_stands = match (least(true), least(false)) {
        (Some(slow), Some(fast)) => slow * 200.0 < fast * 199.0,
        _ => true,
    };
    let standing = |c: &&Candidate| slow_stands || c.predictor != Predictor::MedResidual;
    let best_v = tried
        .iter()
        .filter(standing)
        .map(|c| c.bits_per_element)
        .min_by(f64::total_cmp)
        .expect("at least one candidate");
    // Fewest tables within 0.3% of the best.
    let chosen = tried
        .iter()
        .filter(standing)
        .filter(|c| c.bits_per_element <= best_v * 1.003 + 1e-9)
        .min_by(|x, y| {
            (x.tables, x.groups)
                .cmp(&(y.tables, y.groups))
                .then(x.bits_per_element.total_cmp(&y.bits_per_element))
        })
        .cloned()
        .expect("the best is within its own margin");
    let mut chosen = chosen;
    let geo = Geometry {
        x: chosen.axis_x,
        y: chosen.axis_y,
        g: chosen.axis_g,
        plane: chosen.plane_lanes,
    };
    let sk = skeleton(bits, chosen.predictor, geo, group_len(geo.g));
    // 3. The precision of its tables, by the static coder's rule on the held-out cost.
    {
        let tr = extract(cal, &train, &sk);
        let he = extract(cal, &held, &sk);
        let c = count(
            &tr,
            bits,
            chosen.predictor,
            geo,
            group_len(geo.g),
            chosen.groups.max(1),
            chosen.classes,
        );
        let clustered = cluster_tables(&c, chosen.tables.max(1));
        let costs = precision_costs(&c, &clustered, chosen.alpha, &he, |m| cost(m, &he));
        // The refit below clusters into at most `chosen.tables` tables: its slot tables are at
        // most that many.
        let tables = chosen.tables.max(1);
        chosen.precision = choose_precision(&costs, tables).expect("at least one precision");
        if let Some(&(_, v)) = costs.iter().find(|&&(p, _)| p == chosen.precision) {
            chosen.bits_per_element = v / he.len().max(1) as f64;
        }
    }
    // 4. Refit the chosen configuration on every sample.
    let all: Vec<usize> = (0..samples).collect();
    let every = extract(cal, &all, &sk);
    let c = count(
        &every,
        bits,
        chosen.predictor,
        geo,
        group_len(geo.g),
        chosen.groups.max(1),
        chosen.classes,
    );
    let model = with_tables(
        &c,
        &cluster_tables(&c, chosen.tables.max(1)),
        chosen.alpha,
        chosen.precision,
    );
    debug_assert!(model.tables() <= MAX_TABLES && model.precision <= MAX_PRECISION);
    debug_assert!(model.n_classes.iter().all(|&n| n as usize <= MAX_CLASSES));
    debug_assert!((model.n_groups as usize) <= MAX_GROUPS);
    model.validate(shape.len(), (geo.g != NO_AXIS).then(|| group_len(geo.g)))?;
    Ok((model, FitReport { tried, chosen }))
}

/// A model for one tensor that will carry it (`mode="pcontext"` of a self-contained container):
/// small candidates (at most 16 tables and 4 channel groups, the usual geometry: left is the
/// last axis, up the one before, the groups along the quantization axis or the channel axis of
/// a CHW map), scored by the tensor's own code length plus the model's serialized bytes.
pub fn fit_one(sample: &Sample, bits: u8, channel_axis: Option<usize>) -> Result<Model> {
    if !(1..=MAX_BITS).contains(&bits) {
        return Err(CodecError::InvalidArgument(format!(
            "a context model takes codes of 1..={MAX_BITS} bits, got {bits}"
        )));
    }
    let shape = sample.shape;
    let d = shape.len();
    let groupable = |a: usize| a < d && shape[a] >= 2 && shape[a] <= 1 << 16;
    let g = channel_axis
        .or_else(|| (d >= 3).then(|| d - 3))
        .filter(|&a| groupable(a));
    let geo = Geometry {
        x: if d >= 1 { (d - 1) as u8 } else { NO_AXIS },
        y: if d >= 2 { (d - 2) as u8 } else { NO_AXIS },
        g: g.map_or(NO_AXIS, |a| a as u8),
        plane: false,
    };
    let group_len = g.map_or(1, |a| shape[a]);
    let cal = Calibration {
        samples: vec![Sample {
            codes: sample.codes,
            shape: sample.shape,
            fills: sample.fills,
            fill_ch: sample.fill_ch,
        }],
    };
    // Code length plus the model's own bytes.
    let score = |model: &Model, elements: &[Element]| {
        let mut bytes = Vec::new();
        model.write(&mut bytes);
        cost(model, elements) + 8.0 * bytes.len() as f64
    };
    let mut best: Option<(f64, Counted, Clustered)> = None;
    for predictor in [Predictor::None, Predictor::Med] {
        let sk = skeleton(bits, predictor, geo, group_len);
        let elements = extract(&cal, &[0], &sk);
        for (ng, ncl, k) in [(1, 3, 4), (1, 6, 8), (1, 6, 16), (4, 6, 16)] {
            if ng > 1 && g.is_none() {
                continue;
            }
            let c = count(&elements, bits, predictor, geo, group_len, ng, ncl);
            let clustered = cluster_tables(&c, k);
            let v = score(
                &with_tables(&c, &clustered, 0.5, c.model.precision),
                &elements,
            );
            if best.as_ref().is_none_or(|(b, ..)| v < *b) {
                best = Some((v, c, clustered));
            }
        }
    }
    let (_, c, clustered) = best.expect("at least one candidate");
    let elements = extract(&cal, &[0], &c.model);
    // The precision of the chosen candidate's tables, by the static coder's rule.
    let costs = precision_costs(&c, &clustered, 0.5, &elements, |m| score(m, &elements));
    let precision = choose_precision(&costs, clustered.1.len() >> bits).expect("a precision");
    let model = with_tables(&c, &clustered, 0.5, precision);
    model.validate(d, g.map(|a| shape[a]))?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(precision, cost)` at precisions 9, 10, ...
    fn costs(c: &[f64]) -> Vec<(u8, f64)> {
        (9u8..).zip(c.iter().copied()).collect()
    }

    #[test]
    fn smallest_precision_within_1_in_4096_of_the_cheapest() {
        // p = 11 is the cheapest (4096), p = 10 exactly 1/4096 above it, p = 9 just past that.
        let c = costs(&[4097.001, 4097.0, 4096.0, 4096.5, 4096.5, 4096.5, 4096.5]);
        assert_eq!(choose_precision(&c, 1), Some(10));
        let c = costs(&[4097.001, 4097.001, 4096.0, 4096.5, 4096.5, 4096.5, 4096.5]);
        assert_eq!(choose_precision(&c, 1), Some(11));
        assert_eq!(choose_precision(&[], 1), None);
    }

    #[test]
    fn slot_tables_past_the_fast_bytes_only_where_they_save_more_than_1_in_200() {
        // The cheapest is p = 13 (1000); p = 12 costs 0.4% more.
        let c = costs(&[1020.0, 1010.0, 1006.0, 1004.0, 1000.0, 1000.0, 1000.0]);
        // 64 tables: up to p = 12 (256 KiB) fits, and is taken.
        assert_eq!(slot_table_bytes(64, 12), FAST_SLOT_BYTES);
        assert_eq!(choose_precision(&c, 64), Some(12));
        // 16 tables: p = 13 (128 KiB) fits, so it is taken.
        assert_eq!(choose_precision(&c, 16), Some(13));
        // 128 tables: up to p = 11 fits, 0.6% dearer: the big tables.
        assert_eq!(choose_precision(&c, 128), Some(13));
        // 256 tables: only p = 9 fits, 2% dearer.
        assert_eq!(choose_precision(&c, 256), Some(13));
        // 1024 tables (a limit case): p = 13 would build 8 MiB of slot tables, past
        // MAX_SLOT_TABLE, so p = 12 (4 MiB, the scalar search past it) though 0.4% dearer.
        assert_eq!(slot_table_bytes(1024, 12), MAX_SLOT_TABLE);
        assert_eq!(choose_precision(&c, 1024), Some(12));
        // With no precision under the limit, the rule runs on them all.
        assert_eq!(choose_precision(&c, 1 << 20), Some(13));
        // Exactly 1/200 more keeps the tables that fit; a little more does not.
        let c = costs(&[1020.0, 1010.0, 1006.0, 1005.0, 1000.0, 1000.0, 1000.0]);
        assert_eq!(choose_precision(&c, 64), Some(12));
        let c = costs(&[1020.0, 1010.0, 1006.0, 1005.001, 1000.0, 1000.0, 1000.0]);
        assert_eq!(choose_precision(&c, 64), Some(13));
    }

    #[test]
    fn among_the_tables_that_fit_the_smallest_within_1_in_4096_of_their_cheapest() {
        // 64 tables: p <= 12 fits; the cheapest of those is p = 12 (4100), p = 11 within
        // 1/4096 of it; p = 13 is cheaper still but out of the fast bytes, 0.1% better only.
        let c = costs(&[4200.0, 4150.0, 4101.0, 4100.0, 4096.0, 4096.0, 4096.0]);
        assert_eq!(choose_precision(&c, 64), Some(11));
    }

    /// A 1x64x48x48 8-bit map of skewed, spatially smooth codes (a ReLU activation's shape).
    fn relu_like(seed: u64) -> Vec<u8> {
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as f64 / (1u64 << 31) as f64
        };
        let (c, h, w) = (64, 48, 48);
        let mut out = Vec::with_capacity(c * h * w);
        for _ in 0..c {
            let mut row = vec![0f64; w];
            for _ in 0..h {
                let mut left = 0f64;
                for v in row.iter_mut() {
                    let z = (next() - 0.5) * 3.0;
                    left = 0.5 * left + 0.3 * *v + z;
                    *v = left;
                    out.push((left.max(0.0) * 40.0).min(255.0) as u8);
                }
            }
        }
        out
    }

    #[test]
    fn fit_one_picks_the_rule_on_real_stream_lengths() {
        // The chosen precision's real body is within 1/200 (plus the slack) of the smallest
        // body over every precision, and its slot tables are fast unless that cost more.
        let codes = relu_like(7);
        let shape = [64usize, 48, 48];
        let fills = [0u8];
        let sample = Sample {
            codes: &codes,
            shape: &shape,
            fills: &fills,
            fill_ch: Channels::TENSOR,
        };
        let model = fit_one(&sample, 8, Some(0)).unwrap();
        let real = |m: &Model| {
            let tb = crate::model::pctx::Tables::new(m);
            let mut head = Vec::new();
            m.write(&mut head);
            (crate::model::pctx::encode(m, &tb, &shape, &codes, &fills, Channels::TENSOR).len()
                + head.len()) as f64
        };
        // The chosen structure's tables at every precision, from the sample's own counts
        // (what `fit_one` quantizes).
        let a = model.alphabet();
        let cal = Calibration {
            samples: vec![Sample { ..sample }],
        };
        let mut counts = vec![0u64; model.tables() * a];
        for e in extract(&cal, &[0], &model) {
            counts[model.context_map[context_of(&model, &e)] as usize * a + e.sym as usize] += 1;
        }
        let lengths: Vec<(u8, f64)> = precisions(8)
            .map(|p| {
                let mut m = model.clone();
                m.precision = p;
                m.freqs = counts
                    .chunks(a)
                    .flat_map(|row| table_from_counts(row, p, 0.5))
                    .collect();
                (p, real(&m))
            })
            .collect();
        assert_eq!(
            lengths.iter().find(|l| l.0 == model.precision).map(|l| l.1),
            Some(real(&model)),
            "the same tables"
        );
        let least = lengths.iter().map(|l| l.1).fold(f64::MAX, f64::min);
        let mine = real(&model);
        assert!(
            mine <= least * 1.006,
            "{} against {least} ({lengths:?})",
            mine
        );
        // No larger than the smallest precision whose real length is within 1/1000 of the least
        // (the estimate and the real length differ by less than that).
        let small = lengths.iter().find(|l| l.1 <= least * 1.001).unwrap().0;
        assert!(
            model.precision <= small,
            "p {} {lengths:?}",
            model.precision
        );
        let fits = slot_table_bytes(model.tables(), model.precision) <= FAST_SLOT_BYTES;
        let best_fit = lengths
            .iter()
            .filter(|l| slot_table_bytes(model.tables(), l.0) <= FAST_SLOT_BYTES)
            .map(|l| l.1)
            .fold(f64::MAX, f64::min);
        assert!(
            fits || best_fit > mine * 1.004,
            "p {} {lengths:?}",
            model.precision
        );
    }
}
