//! Bindings for the GPU path (`python/splitans/gpu.py`): everything of an encode or decode that
//! the CUDA kernels do not do.
//!
//! The kernels histogram, quantize and code chunks. Every choice that decides a byte comes from
//! the same Rust functions the CPU encoder calls: the frequency table and its precision, the
//! chunk size, the lanes, the raw-fallback estimate, the quantization parameters of a range, the
//! CSR row count. The GPU path copies a histogram (256 or 65536 counts) to the host, plans the
//! stream here and uploads the table, so its tables are the CPU's by construction. Decoding, the
//! container is validated here exactly as `decompress` validates it (header, checksum, size cap,
//! every stream's structure) before the kernels see any offset.

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::bytes::Reader;
use crate::entropy::freq::{build_table, FreqTable, MAX_PRECISION_BITS};
use crate::entropy::stream::{self, EncodeOptions, Mode, StreamView, STREAM_HEADER_BYTES};
use crate::error::{CodecError, Result};
use crate::format::container::{self, Kind};
use crate::layout::sparse;
use crate::pipeline::feature;
use crate::quant::{self, Affine};

fn coder_options(precision_bits: Option<u8>, chunk_log2: Option<u8>) -> Result<EncodeOptions> {
    let opts = EncodeOptions {
        precision_bits,
        chunk_log2,
        threads: 1,
    };
    opts.validate()?;
    Ok(opts)
}

fn check_counts(counts: &[u64], symbol_bytes: usize) -> PyResult<()> {
    if symbol_bytes != 1 && symbol_bytes != 2 {
        return Err(PyValueError::new_err("symbol_bytes must be 1 or 2"));
    }
    if counts.len() != 1 << (8 * symbol_bytes) {
        return Err(PyValueError::new_err(format!(
            "a histogram of {symbol_bytes}-byte symbols has {} counts, got {}",
            1usize << (8 * symbol_bytes),
            counts.len()
        )));
    }
    Ok(())
}

fn u32_array<'py>(py: Python<'py>, v: Vec<u32>) -> Bound<'py, PyArray1<u32>> {
    PyArray1::from_vec(py, v)
}

/// The stream the CPU encoder would write for symbols with histogram `counts` (FORMAT.md 5.2
/// steps 1–6): `mode` is "empty", "constant" (with `symbol`), "raw" (the estimate does not beat
/// it), or "rans" with everything the kernels need: `precision_bits`, `lanes`, `chunk_log2`,
/// `chunks`, the table (`symbols`, `freqs`, `cum_freqs`, `table_bytes`) and `raw_len`. Step 7
/// (raw when the coded chunks are not smaller after all) is the caller's, from the word counts.
#[pyfunction]
#[pyo3(signature = (counts, symbol_bytes, precision_bits, chunk_log2))]
fn gpu_plan_stream<'py>(
    py: Python<'py>,
    counts: PyReadonlyArray1<'py, u64>,
    symbol_bytes: usize,
    precision_bits: Option<u8>,
    chunk_log2: Option<u8>,
) -> PyResult<Bound<'py, PyDict>> {
    let counts = counts.as_slice()?;
    check_counts(counts, symbol_bytes)?;
    let opts = coder_options(precision_bits, chunk_log2)?;
    let d = PyDict::new(py);
    let n = usize::try_from(counts.iter().sum::<u64>())
        .map_err(|_| PyValueError::new_err("histogram total overflows"))?;
    d.set_item("n", n)?;
    d.set_item("raw_len", STREAM_HEADER_BYTES + n * symbol_bytes)?;
    if n == 0 {
        d.set_item("mode", Mode::Empty.name())?;
        return Ok(d);
    }
    let present = counts.iter().filter(|&&c| c > 0).count();
    if present == 1 {
        d.set_item("mode", Mode::Constant.name())?;
        d.set_item("symbol", counts.iter().position(|&c| c > 0))?;
        return Ok(d);
    }
    let planned = py.detach(|| -> Result<(FreqTable, stream::RansPlan)> {
        let table = build_table(counts, opts.precision_bits).ok_or_else(|| {
            CodecError::InvalidArgument(format!(
                "precision_bits={} cannot give each of {present} distinct symbols a nonzero frequency",
                opts.precision_bits.unwrap_or(MAX_PRECISION_BITS)
            ))
        })?;
        // Step 6 of FORMAT.md 5.2: the encoder's own layout and estimate.
        let plan = stream::rans_plan(counts, &table, n, &opts);
        Ok((table, plan))
    });
    let (table, plan) = planned?;
    let estimate = plan.estimate;
    let raw_len = STREAM_HEADER_BYTES + n * symbol_bytes;
    let mode = if estimate >= raw_len {
        Mode::Raw
    } else {
        Mode::Rans
    };
    let mut table_bytes = Vec::new();
    table.write(&mut table_bytes);
    d.set_item("mode", mode.name())?;
    d.set_item("estimate", estimate)?;
    d.set_item("precision_bits", table.precision_bits)?;
    d.set_item("chunk_log2", plan.chunk_log2)?;
    d.set_item("chunks", plan.chunks)?;
    d.set_item("lanes", plan.lanes)?;
    d.set_item("cum_freqs", u32_array(py, table.cum_freqs()))?;
    d.set_item("symbols", u32_array(py, table.symbols))?;
    d.set_item("freqs", u32_array(py, table.freqs))?;
    d.set_item("table_bytes", PyBytes::new(py, &table_bytes))?;
    Ok(d)
}

/// What `gpu_stream_head` needs of a coded stream: precision_bits, lanes, chunk_log2,
/// table_bytes, word_counts, body_len.
type CodedHead<'py> = (u8, usize, u8, Vec<u8>, PyReadonlyArray1<'py, u32>, usize);

/// A stream's bytes before the data the device wrote (FORMAT.md 4, 5.2), as the CPU encoder
/// writes them: "empty" and "constant" (with `symbol`) streams whole, a "raw" stream's header
/// (its symbols follow), and a "rans" stream's header, coder parameters, table and chunk word
/// counts, from `coded` = (precision_bits, lanes, chunk_log2, table_bytes, word_counts,
/// body_len) — or `None` when that stream would not be shorter than the raw one (step 7: the
/// caller writes the raw stream then).
#[pyfunction]
#[pyo3(signature = (mode, symbol_bytes, n, *, symbol=None, coded=None))]
fn gpu_stream_head<'py>(
    py: Python<'py>,
    mode: &str,
    symbol_bytes: usize,
    n: usize,
    symbol: Option<u16>,
    coded: Option<CodedHead<'py>>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    if symbol_bytes != 1 && symbol_bytes != 2 {
        return Err(PyValueError::new_err("symbol_bytes must be 1 or 2"));
    }
    let coded_given = coded.is_some();
    let mut out = Vec::new();
    match (mode, symbol, coded) {
        ("empty", None, None) if n == 0 => {
            stream::write_header(&mut out, Mode::Empty, symbol_bytes, 0)
        }
        ("constant", Some(s), None) if n > 0 && (symbol_bytes == 2 || s < 256) => {
            stream::write_constant(&mut out, symbol_bytes, n, s);
        }
        ("raw", None, None) if n > 0 => stream::write_header(&mut out, Mode::Raw, symbol_bytes, n),
        ("rans", None, Some((precision_bits, lanes, chunk_log2, table, words, body)))
            if n > 0 && (1..=255).contains(&lanes) =>
        {
            let words = words.as_slice()?;
            if stream::coded_len(table.len(), words.len(), body)
                >= STREAM_HEADER_BYTES + n * symbol_bytes
            {
                return Ok(None);
            }
            stream::write_rans_head(
                &mut out,
                symbol_bytes,
                n,
                precision_bits,
                lanes,
                chunk_log2,
                &table,
                words.iter().copied(),
            );
        }
        _ => {
            return Err(PyValueError::new_err(format!(
                "no {mode:?} stream of {n} {symbol_bytes}-byte symbols with symbol={symbol:?} and \
                 coded parameters {}: empty needs n = 0; constant a symbol of that width; raw \
                 nothing more; rans (precision_bits, lanes 1..=255, chunk_log2, table_bytes, \
                 word_counts, body_len)",
                if coded_given { "given" } else { "absent" }
            )))
        }
    }
    Ok(Some(PyBytes::new(py, &out)))
}

/// `stream::estimated_len` (FORMAT.md 6.8 `estimated_len`): the encoder's predicted stream
/// length for a histogram.
#[pyfunction]
#[pyo3(signature = (counts, symbol_bytes, precision_bits, chunk_log2))]
fn gpu_estimated_len(
    py: Python<'_>,
    counts: PyReadonlyArray1<'_, u64>,
    symbol_bytes: usize,
    precision_bits: Option<u8>,
    chunk_log2: Option<u8>,
) -> PyResult<usize> {
    let counts = counts.as_slice()?;
    check_counts(counts, symbol_bytes)?;
    let opts = coder_options(precision_bits, chunk_log2)?;
    Ok(py.detach(|| stream::estimated_len(counts, symbol_bytes, &opts)))
}

/// `Affine::from_range`: (scale, zero_point) covering `[lo, hi]` with `bits` bits.
#[pyfunction]
#[pyo3(signature = (lo, hi, bits))]
fn gpu_affine_from_range(lo: f32, hi: f32, bits: u8) -> PyResult<(f32, i32)> {
    if !(1..=quant::MAX_BITS).contains(&bits) {
        return Err(PyValueError::new_err(format!(
            "bits must be in 1..=16, got {bits}"
        )));
    }
    let a = Affine::from_range(lo, hi, bits);
    Ok((a.scale, a.zero_point))
}

/// The quantization parameters of the CPU encoder (`resolve_params`, FORMAT.md 6.7.2 and 6.7.5)
/// for `channels` channels, from one of: calibrated `params` (the scales and the zero points),
/// `clip` ranges, or the data's `min_max` per channel and whether it is all finite (the
/// device's scan). Returns the scales, the zero points, and the clipping ranges flattened (low,
/// high per channel), or None where no element can fall outside them.
#[pyfunction]
#[pyo3(signature = (bits, channels, params=None, clip=None, min_max=None))]
#[allow(clippy::type_complexity)]
fn gpu_resolve_params(
    bits: u8,
    channels: usize,
    params: Option<(Vec<f32>, Vec<i32>)>,
    clip: Option<Vec<(f32, f32)>>,
    min_max: Option<(Vec<(f32, f32)>, bool)>,
) -> PyResult<(Vec<f32>, Vec<i32>, Option<Vec<f32>>)> {
    if !(1..=quant::MAX_BITS).contains(&bits) {
        return Err(PyValueError::new_err(format!(
            "bits must be in 1..=16, got {bits}"
        )));
    }
    let (range, scan) = match (params, clip, min_max) {
        (Some((scale, zero_point)), None, None) => {
            if scale.len() != zero_point.len() {
                return Err(PyValueError::new_err(
                    "scale and zero_point differ in length",
                ));
            }
            let params = scale
                .into_iter()
                .zip(zero_point)
                .map(|(scale, zero_point)| Affine { scale, zero_point })
                .collect();
            (feature::Range::Params(params), None)
        }
        (None, Some(clip), None) => (feature::Range::Clip(clip), None),
        (None, None, Some(scan)) => (feature::Range::MinMax, Some(scan)),
        _ => {
            return Err(PyValueError::new_err(
                "pass exactly one of params, clip and min_max",
            ))
        }
    };
    // Finiteness is the caller's to check (the quantization kernel flags it) where it gave no
    // scan: only `may_clip` of a scanned range depends on it.
    let scan = scan.unwrap_or_default();
    let r = feature::resolve_with(&range, bits, channels, move || scan, || true)?;
    let ranges = r
        .may_clip
        .then(|| r.ranges.iter().flat_map(|&(lo, hi)| [lo, hi]).collect());
    Ok((
        r.params.iter().map(|a| a.scale).collect(),
        r.params.iter().map(|a| a.zero_point).collect(),
        ranges,
    ))
}

/// The CSR row count of `reshape="model"` (FORMAT.md 6.8 step 5): the first candidate with the
/// least `model_cost`, as `feature::prepare` chooses it.
#[pyfunction]
#[pyo3(signature = (total, nonzeros))]
fn gpu_model_rows(total: usize, nonzeros: usize) -> usize {
    sparse::candidate_rows(total)
        .into_iter()
        .map(|rows| (rows, sparse::model_cost(total, nonzeros, rows)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(total, |c| c.0)
}

/// The candidate row counts (divisors of `total` with at most 65535 columns), ascending.
#[pyfunction]
#[pyo3(signature = (total,))]
fn gpu_candidate_rows(total: usize) -> Vec<usize> {
    sparse::candidate_rows(total)
}

/// `search_cost` of one candidate from its row-count and column histograms (FORMAT.md 6.8).
#[pyfunction]
#[pyo3(signature = (row_hist, col_hist))]
fn gpu_search_cost(
    row_hist: PyReadonlyArray1<'_, u64>,
    col_hist: PyReadonlyArray1<'_, u64>,
) -> PyResult<f64> {
    let r = row_hist.as_slice()?;
    let c = col_hist.as_slice()?;
    Ok(sparse::entropy_cost_bytes(r.iter().copied())
        + sparse::entropy_cost_bytes(c.iter().copied()))
}

/// Where a parsed stream's pieces are in the container: `offset` is the stream's first byte.
/// Rans: per chunk the absolute offsets of its initial states and of its words, and its word
/// count. `view` has been validated by `stream::parse`, so the walk below cannot leave it.
/// `header` is the bytes before the stream's body: 10 (section 3.1), or 1 in a compact
/// container (the mode byte, FORMAT.md 10.3).
fn stream_layout<'py>(
    py: Python<'py>,
    blob: &[u8],
    offset: usize,
    view: &StreamView<'_>,
    header: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("mode", view.mode.name())?;
    d.set_item("n", view.n)?;
    d.set_item("symbol_bytes", view.symbol_bytes)?;
    d.set_item("offset", offset)?;
    let body = offset + header;
    match view.mode {
        Mode::Empty => {}
        Mode::Constant => {
            d.set_item("symbol", u16::from_le_bytes([blob[body], blob[body + 1]]))?;
        }
        Mode::Raw => d.set_item("data_offset", body)?,
        Mode::Rans => {
            let table = view
                .table()
                .ok_or_else(|| PyValueError::new_err("rANS stream without a table"))?;
            // The table's length: read it again where `stream::parse` read it (a re-serialized
            // table need not have the same length: the reader takes any Exp-Golomb k).
            let alphabet = 1u32 << (8 * view.symbol_bytes);
            let mut r = Reader::new(&blob[body + 4..offset + view.encoded_len]);
            FreqTable::read(&mut r, table.precision_bits, alphabet)?;
            let table_len = r.position();
            let lanes = view.lanes();
            let chunk = view.chunk_symbols();
            let n_chunks = view.n.div_ceil(chunk);
            let dir = body + 4 + table_len;
            let mut pos = dir + 4 * n_chunks;
            let mut state_offsets = Vec::with_capacity(n_chunks);
            let mut word_offsets = Vec::with_capacity(n_chunks);
            let mut word_counts = Vec::with_capacity(n_chunks);
            for k in 0..n_chunks {
                let w = &blob[dir + 4 * k..dir + 4 * k + 4];
                let words = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                state_offsets.push(pos as u64);
                word_offsets.push((pos + 4 * lanes) as u64);
                word_counts.push(words);
                pos += 4 * lanes + 2 * words as usize;
            }
            if pos != offset + view.encoded_len {
                return Err(CodecError::Corrupt("stream layout does not add up".into()).into());
            }
            d.set_item("precision_bits", table.precision_bits)?;
            d.set_item("lanes", lanes)?;
            d.set_item("chunk_log2", chunk.trailing_zeros())?;
            d.set_item("symbols", u32_array(py, table.symbols.clone()))?;
            d.set_item("freqs", u32_array(py, table.freqs.clone()))?;
            d.set_item("cum_freqs", u32_array(py, table.cum_freqs()))?;
            d.set_item("state_offsets", PyArray1::from_vec(py, state_offsets))?;
            d.set_item("word_offsets", PyArray1::from_vec(py, word_offsets))?;
            d.set_item("word_counts", u32_array(py, word_counts))?;
        }
    }
    Ok(d)
}

fn offset_in(blob: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - blob.as_ptr() as usize
}

/// Validates a container as `decompress` does before decoding (FORMAT.md 2.6 steps 1–15; for
/// a feature, 6.6 steps 1–2 and, dense, 3's parsing) and returns its layout: `kind`, `dtype`,
/// `shape`, `count`, and `streams` (per stream: mode, n, symbol_bytes, offsets; see
/// `stream_layout`). A feature adds `feature` (bits, mode, axis, channels, inner, clamped,
/// rows, scale, zero_point) and `records` ((offset, length) of each record); a CSR feature's
/// streams are parsed later, one by one, with `gpu_stream_layout`, since their lengths come from
/// the decoded row counts.
#[pyfunction]
#[pyo3(signature = (data, max_output_bytes, expect_shape=None, expect_dtype=None))]
fn gpu_layout<'py>(
    py: Python<'py>,
    data: &[u8],
    max_output_bytes: u64,
    expect_shape: Option<Vec<u64>>,
    expect_dtype: Option<&str>,
) -> PyResult<Bound<'py, PyDict>> {
    let h = container::read_header(data)?;
    super::container::check_expected(&h, expect_shape, expect_dtype)?;
    container::check_output_size(&h, max_output_bytes)?;
    let d = PyDict::new(py);
    d.set_item("kind", h.kind.name())?;
    d.set_item("dtype", h.elem.name())?;
    d.set_item("shape", PyTuple::new(py, &h.shape)?)?;
    d.set_item("count", h.count)?;
    let streams = PyList::empty(py);
    if h.kind != Kind::Feature {
        let width = h.int_dtype()?.itemsize().min(2);
        let records = container::records(data, &h, h.streams)?;
        let views = records
            .iter()
            .enumerate()
            .map(|(i, rec)| container::parse_stream(rec, i, h.count, width))
            .collect::<Result<Vec<_>>>()?;
        for (rec, view) in records.iter().zip(&views) {
            streams.append(stream_layout(
                py,
                data,
                offset_in(data, rec),
                view,
                STREAM_HEADER_BYTES,
            )?)?;
        }
    } else if h.version == container::COMPACT_VERSION {
        let parsed = feature::parse(data, &h, max_output_bytes)?;
        let meta = &parsed.meta;
        let f = PyDict::new(py);
        f.set_item("bits", meta.bits)?;
        f.set_item("mode", meta.mode.name())?;
        f.set_item("axis", meta.axis)?;
        f.set_item("channels", meta.channels.channels)?;
        f.set_item("inner", meta.channels.inner)?;
        f.set_item("clamped", meta.clamped)?;
        f.set_item("rows", meta.rows)?;
        f.set_item("nnz", parsed.nnz)?;
        f.set_item(
            "scale",
            meta.params.iter().map(|a| a.scale).collect::<Vec<_>>(),
        )?;
        f.set_item(
            "zero_point",
            meta.params.iter().map(|a| a.zero_point).collect::<Vec<_>>(),
        )?;
        d.set_item("feature", f)?;
        d.set_item("compact", true)?;
        // (offset, length) of the stream parts, after a placeholder for the feature section,
        // so that records[1..] line up with version 1's.
        let recs = PyList::empty(py);
        recs.append((0usize, 0usize))?;
        for &(offset, len) in &parsed.parts {
            recs.append((offset, len))?;
        }
        d.set_item("records", recs)?;
        if meta.mode == feature::Mode::Dense {
            let (offset, len) = parsed.parts[0];
            let width = if meta.bits <= 8 { 1 } else { 2 };
            let mut r = crate::bytes::Reader::new(&data[offset..offset + len]);
            let view = crate::entropy::stream::parse_compact(&mut r, width, h.count)?;
            streams.append(stream_layout(py, data, offset, &view, 1)?)?;
        }
    } else {
        let records = container::records(data, &h, 1 + h.streams)?;
        let meta = feature::read_meta(records[0], &h)?;
        let csr = meta.mode == feature::Mode::Csr;
        let f = PyDict::new(py);
        f.set_item("bits", meta.bits)?;
        f.set_item("mode", meta.mode.name())?;
        f.set_item("axis", meta.axis)?;
        f.set_item("channels", meta.channels.channels)?;
        f.set_item("inner", meta.channels.inner)?;
        f.set_item("clamped", meta.clamped)?;
        f.set_item("rows", meta.rows)?;
        f.set_item(
            "scale",
            meta.params.iter().map(|a| a.scale).collect::<Vec<_>>(),
        )?;
        f.set_item(
            "zero_point",
            meta.params.iter().map(|a| a.zero_point).collect::<Vec<_>>(),
        )?;
        d.set_item("feature", f)?;
        let recs = PyList::empty(py);
        for rec in &records {
            recs.append((offset_in(data, rec), rec.len()))?;
        }
        d.set_item("records", recs)?;
        // A context-mode record is no section-3 stream; the GPU path decodes it on the CPU.
        if !csr && meta.mode != feature::Mode::Context {
            let width = if meta.bits <= 8 { 1 } else { 2 };
            let view = container::parse_stream(records[1], 0, h.count, width)?;
            streams.append(stream_layout(
                py,
                data,
                offset_in(data, records[1]),
                &view,
                STREAM_HEADER_BYTES,
            )?)?;
        }
    }
    d.set_item("streams", streams)?;
    Ok(d)
}

/// Parses the stream record at `data[offset .. offset + length]` (from `gpu_layout`'s
/// `records`), which must hold exactly `n` symbols of `symbol_bytes` bytes (FORMAT.md 6.6
/// step 3), and returns its layout.
#[pyfunction]
#[pyo3(signature = (data, offset, length, index, n, symbol_bytes, compact=false))]
#[allow(clippy::too_many_arguments)]
fn gpu_stream_layout<'py>(
    py: Python<'py>,
    data: &[u8],
    offset: usize,
    length: usize,
    index: usize,
    n: usize,
    symbol_bytes: usize,
    compact: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let record = offset
        .checked_add(length)
        .and_then(|end| data.get(offset..end))
        .ok_or_else(|| PyValueError::new_err("record outside the data"))?;
    let view = if compact {
        // A compact stream (FORMAT.md 10.3) holds exactly `n` symbols and fills its part.
        let mut r = crate::bytes::Reader::new(record);
        let view = crate::entropy::stream::parse_compact(&mut r, symbol_bytes, n)?;
        if r.remaining() != 0 {
            return Err(crate::error::CodecError::Corrupt(format!(
                "stream {index} ends after {} of its {} bytes",
                r.position(),
                record.len()
            ))
            .into());
        }
        view
    } else {
        container::parse_stream(record, index, n, symbol_bytes)?
    };
    stream_layout(
        py,
        data,
        offset,
        &view,
        if compact { 1 } else { STREAM_HEADER_BYTES },
    )
}

/// The auto rule of `feature::auto_takes_csr`, from the two estimates.
#[pyfunction]
fn gpu_auto_takes_csr(dense_bytes: f64, csr_bytes: f64) -> bool {
    feature::auto_takes_csr(dense_bytes, csr_bytes)
}

/// The estimates auto compares in the compact container (`feature::compact_estimates`): from
/// the record estimates of the dense stream and of the three CSR streams.
#[pyfunction]
#[pyo3(signature = (dense_bytes, rows_bytes, cols_bytes, values_bytes, rows, nonzeros))]
fn gpu_compact_estimates(
    dense_bytes: f64,
    rows_bytes: f64,
    cols_bytes: f64,
    values_bytes: f64,
    rows: usize,
    nonzeros: usize,
) -> (f64, f64) {
    feature::compact_estimates(
        dense_bytes,
        [rows_bytes, cols_bytes, values_bytes],
        rows,
        nonzeros,
    )
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(gpu_auto_takes_csr, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_compact_estimates, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_plan_stream, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_stream_head, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_estimated_len, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_affine_from_range, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_resolve_params, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_model_rows, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_candidate_rows, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_search_cost, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_layout, m)?)?;
    m.add_function(wrap_pyfunction!(gpu_stream_layout, m)?)?;
    Ok(())
}
