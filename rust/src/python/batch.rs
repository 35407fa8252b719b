//! Bindings for `batch.rs`: decoding into numpy buffers (a new one per call, or the caller's),
//! and the batch calls `compress_many` / `decompress_many` build on.

use numpy::{
    Element as NpElement, PyArray1, PyArrayDescrMethods, PyArrayMethods, PyReadonlyArrayDyn,
    PyReadwriteArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::entropy::stream::par_map;
use crate::format::container::{self, DType, ElemType, FloatType, Header};
use crate::pipeline::batch::{self, FeatureItem, OutBuf};
use crate::pipeline::feature::OutputSlice;

use super::container::check_expected;
use super::options::CoderOptions;

/// What a decoded container is stored as in numpy: the dtype it decodes to (a feature's float16
/// and bfloat16 as their bits in uint16).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum OutKind {
    F32,
    F64,
    F16Bits,
    BF16Bits,
    Int(DType),
}

impl OutKind {
    /// The output of `h` (bfloat16 features: float32, or their bits with `bf16_bits`).
    fn of(h: &Header, bf16_bits: bool) -> OutKind {
        match h.elem {
            ElemType::Float(FloatType::F64) => OutKind::F64,
            ElemType::Float(FloatType::F16) => OutKind::F16Bits,
            ElemType::Float(FloatType::BF16) if bf16_bits => OutKind::BF16Bits,
            ElemType::Float(_) => OutKind::F32,
            ElemType::Int(d) => OutKind::Int(d),
        }
    }

    /// The dtype name of an output of this kind, as the Python layer names it.
    fn name(self) -> &'static str {
        match self {
            OutKind::F32 => "float32",
            OutKind::F64 => "float64",
            OutKind::F16Bits => "float16",
            OutKind::BF16Bits => "bfloat16",
            OutKind::Int(d) => d.name(),
        }
    }
}

/// Calls `$body` with `$t` bound to the numpy storage type of `$kind`.
macro_rules! with_storage {
    ($kind:expr, $t:ident => $body:expr) => {
        match $kind {
            OutKind::F32 => {
                type $t = f32;
                $body
            }
            OutKind::F64 => {
                type $t = f64;
                $body
            }
            OutKind::F16Bits | OutKind::BF16Bits | OutKind::Int(DType::U16) => {
                type $t = u16;
                $body
            }
            OutKind::Int(DType::U8) => {
                type $t = u8;
                $body
            }
            OutKind::Int(DType::I8) => {
                type $t = i8;
                $body
            }
            OutKind::Int(DType::I16) => {
                type $t = i16;
                $body
            }
            OutKind::Int(DType::U32) => {
                type $t = u32;
                $body
            }
            OutKind::Int(DType::I32) => {
                type $t = i32;
                $body
            }
            OutKind::Int(DType::U64) => {
                type $t = u64;
                $body
            }
            OutKind::Int(DType::I64) => {
                type $t = i64;
                $body
            }
        }
    };
}

/// A numpy output borrowed for writing, typed by its kind.
enum Guard<'py> {
    F32(PyReadwriteArrayDyn<'py, f32>),
    F64(PyReadwriteArrayDyn<'py, f64>),
    F16(PyReadwriteArrayDyn<'py, u16>),
    BF16(PyReadwriteArrayDyn<'py, u16>),
    U8(PyReadwriteArrayDyn<'py, u8>),
    I8(PyReadwriteArrayDyn<'py, i8>),
    U16(PyReadwriteArrayDyn<'py, u16>),
    I16(PyReadwriteArrayDyn<'py, i16>),
    U32(PyReadwriteArrayDyn<'py, u32>),
    I32(PyReadwriteArrayDyn<'py, i32>),
    U64(PyReadwriteArrayDyn<'py, u64>),
    I64(PyReadwriteArrayDyn<'py, i64>),
}

fn contiguous<T>(r: Result<&mut [T], numpy::AsSliceError>) -> PyResult<&mut [T]> {
    r.map_err(|_| PyValueError::new_err("out must be C-contiguous"))
}

impl<'py> Guard<'py> {
    /// Borrows `a` for writing as an output of `kind` (its numpy dtype must be the storage type).
    fn new(a: &Bound<'py, PyAny>, kind: OutKind) -> PyResult<Guard<'py>> {
        Ok(match kind {
            OutKind::F32 => Guard::F32(a.extract()?),
            OutKind::F64 => Guard::F64(a.extract()?),
            OutKind::F16Bits => Guard::F16(a.extract()?),
            OutKind::BF16Bits => Guard::BF16(a.extract()?),
            OutKind::Int(DType::U8) => Guard::U8(a.extract()?),
            OutKind::Int(DType::I8) => Guard::I8(a.extract()?),
            OutKind::Int(DType::U16) => Guard::U16(a.extract()?),
            OutKind::Int(DType::I16) => Guard::I16(a.extract()?),
            OutKind::Int(DType::U32) => Guard::U32(a.extract()?),
            OutKind::Int(DType::I32) => Guard::I32(a.extract()?),
            OutKind::Int(DType::U64) => Guard::U64(a.extract()?),
            OutKind::Int(DType::I64) => Guard::I64(a.extract()?),
        })
    }

    fn buf(&mut self) -> PyResult<OutBuf<'_>> {
        Ok(match self {
            Guard::F32(g) => OutBuf::Feature(OutputSlice::F32(contiguous(g.as_slice_mut())?)),
            Guard::F64(g) => OutBuf::Feature(OutputSlice::F64(contiguous(g.as_slice_mut())?)),
            Guard::F16(g) => OutBuf::Feature(OutputSlice::F16Bits(contiguous(g.as_slice_mut())?)),
            Guard::BF16(g) => OutBuf::Feature(OutputSlice::BF16Bits(contiguous(g.as_slice_mut())?)),
            Guard::U8(g) => OutBuf::U8(contiguous(g.as_slice_mut())?),
            Guard::I8(g) => OutBuf::I8(contiguous(g.as_slice_mut())?),
            Guard::U16(g) => OutBuf::U16(contiguous(g.as_slice_mut())?),
            Guard::I16(g) => OutBuf::I16(contiguous(g.as_slice_mut())?),
            Guard::U32(g) => OutBuf::U32(contiguous(g.as_slice_mut())?),
            Guard::I32(g) => OutBuf::I32(contiguous(g.as_slice_mut())?),
            Guard::U64(g) => OutBuf::U64(contiguous(g.as_slice_mut())?),
            Guard::I64(g) => OutBuf::I64(contiguous(g.as_slice_mut())?),
        })
    }
}

/// A new numpy array for the decoded container: the header's shape, the kind's storage dtype,
/// not initialized (the decoder writes every element before Python can read it; numpy's
/// allocator skips the zeroing and, for a reused block, the page faults). A refused allocation
/// is numpy's `MemoryError`.
fn new_output<'py>(py: Python<'py>, h: &Header, kind: OutKind) -> PyResult<Bound<'py, PyAny>> {
    fn alloc<'py, T: NpElement>(py: Python<'py>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
        use numpy::npyffi::{self, npy_intp, PY_ARRAY_API};
        // The header's dimensions fit an isize (their bytes do: `read_header`).
        let mut dims: Vec<npy_intp> = shape.iter().map(|&d| d as npy_intp).collect();
        // SAFETY: PyArray_NewFromDescr with a dtype reference it steals, `dims.len()`
        // dimensions, no strides (C order), no data (numpy allocates) and flags 0 (C order);
        // it returns a new reference or NULL with an exception set. The elements are plain
        // numbers; none is read before the decoder has written it (on failure the array is
        // dropped unread).
        unsafe {
            let ptr = PY_ARRAY_API.PyArray_NewFromDescr(
                py,
                npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
                T::get_dtype(py).into_dtype_ptr(),
                dims.len() as std::os::raw::c_int,
                dims.as_mut_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
                std::ptr::null_mut(),
            );
            Bound::from_owned_ptr_or_err(py, ptr)
        }
    }
    // A refusal reads as the codec's own (`CodecError::OutOfMemory`), as for any other buffer.
    with_storage!(kind, T => alloc::<T>(py, &h.shape).map_err(|_| {
        let bytes = (h.count as u64).saturating_mul(std::mem::size_of::<T>() as u64);
        crate::CodecError::OutOfMemory { bytes }.into()
    }))
}

/// Outputs of at most this many elements decode without releasing the interpreter (a few
/// microseconds of work, about what releasing and taking it back costs; benches/NOTES.md 80).
const KEEP_GIL_ELEMENTS: usize = 4096;

/// The buffer of an array `new_output` made, as an output of `kind`: its elements written in
/// place without a borrow of it registered with rust-numpy (which costs a lookup in a shared
/// table and a release after; the array is not yet visible anywhere, so nothing else can
/// borrow it).
///
/// # Safety
/// `array` must come from `new_output(py, h, kind)` with `h.count == n`, and nothing else may
/// read or write it while the returned buffer lives.
unsafe fn fresh_buf<'a>(array: &'a Bound<'_, PyAny>, kind: OutKind, n: usize) -> OutBuf<'a> {
    use numpy::{IxDyn, PyArray, PyArrayMethods};
    use std::slice::from_raw_parts_mut as slice;
    // SAFETY: a numpy array (`new_output`); only its data pointer is read, whatever its dtype.
    let p = array.cast_unchecked::<PyArray<u8, IxDyn>>().data();
    // SAFETY (each slice): a C-contiguous array of `n` elements of the kind's storage type,
    // aligned by numpy's allocator, exclusively ours (the caller).
    match kind {
        OutKind::F32 => OutBuf::Feature(OutputSlice::F32(slice(p.cast(), n))),
        OutKind::F64 => OutBuf::Feature(OutputSlice::F64(slice(p.cast(), n))),
        OutKind::F16Bits => OutBuf::Feature(OutputSlice::F16Bits(slice(p.cast(), n))),
        OutKind::BF16Bits => OutBuf::Feature(OutputSlice::BF16Bits(slice(p.cast(), n))),
        OutKind::Int(DType::U8) => OutBuf::U8(slice(p, n)),
        OutKind::Int(DType::I8) => OutBuf::I8(slice(p.cast(), n)),
        OutKind::Int(DType::U16) => OutBuf::U16(slice(p.cast(), n)),
        OutKind::Int(DType::I16) => OutBuf::I16(slice(p.cast(), n)),
        OutKind::Int(DType::U32) => OutBuf::U32(slice(p.cast(), n)),
        OutKind::Int(DType::I32) => OutBuf::I32(slice(p.cast(), n)),
        OutKind::Int(DType::U64) => OutBuf::U64(slice(p.cast(), n)),
        OutKind::Int(DType::I64) => OutBuf::I64(slice(p.cast(), n)),
    }
}

/// Checks that the caller's output `a` (storage dtype `dtype`, standing for `kind_name`) fits
/// the container: its shape, and the dtype the container decodes to.
fn check_out(
    h: &Header,
    a: &Bound<'_, PyAny>,
    kind_name: &str,
    bf16_bits: bool,
) -> PyResult<OutKind> {
    let want = OutKind::of(h, kind_name == "bfloat16" || bf16_bits);
    if want.name() != kind_name {
        return Err(PyValueError::new_err(format!(
            "out has dtype {kind_name}; the container ({} {}) decodes to {}",
            h.kind.name(),
            h.elem.name(),
            want.name()
        )));
    }
    let shape = match a.cast::<numpy::PyUntypedArray>() {
        Ok(arr) => arr.shape().to_vec(),
        Err(_) => a.getattr("shape")?.extract()?,
    };
    if shape != h.shape {
        return Err(PyValueError::new_err(format!(
            "out has shape {:?}; the container holds an array of shape {:?}",
            shape, h.shape
        )));
    }
    Ok(want)
}

/// Decodes a container into a new array of its shape; returns (kind name, array, shape, dtype
/// name). A feature decodes to float32, float64 or float16 bits as its dtype asks (bfloat16:
/// float32, or its bits with `bf16_bits`), and names the dtype it had.
#[pyfunction]
#[pyo3(signature = (data, max_output_bytes, threads, expect_shape=None, expect_dtype=None, bf16_bits=false))]
pub fn decode<'py>(
    py: Python<'py>,
    data: &[u8],
    max_output_bytes: u64,
    threads: usize,
    expect_shape: Option<Vec<u64>>,
    expect_dtype: Option<&str>,
    bf16_bits: bool,
) -> PyResult<(&'static str, Bound<'py, PyAny>, Vec<usize>, &'static str)> {
    let h = container::read_header(data)?;
    check_expected(&h, expect_shape, expect_dtype)?;
    container::check_output_size(&h, max_output_bytes)?;
    // The container's structure is checked before its output is allocated.
    let prepared = batch::prepare(data, &h, max_output_bytes)?;
    let kind = OutKind::of(&h, bf16_bits);
    let array = new_output(py, &h, kind)?;
    // SAFETY: `array` was made just now by `new_output` for `h` and `kind`; nothing else holds
    // it until it is returned.
    let buf = unsafe { fresh_buf(&array, kind, h.count) };
    if h.count <= KEEP_GIL_ELEMENTS {
        batch::decode_prepared(&prepared, &h, threads, buf)?;
    } else {
        py.detach(|| batch::decode_prepared(&prepared, &h, threads, buf))?;
    }
    Ok((h.kind.name(), array, h.shape.clone(), h.elem.name()))
}

/// Decodes a container into the caller's C-contiguous numpy array `out`, whose storage dtype
/// stands for `out_dtype` (float16 and bfloat16 as uint16 bits): shape and dtype must be what
/// `decode` would return.
#[pyfunction]
#[pyo3(signature = (data, out, out_dtype, max_output_bytes, threads, expect_shape=None, expect_dtype=None))]
#[allow(clippy::too_many_arguments)]
fn decode_into<'py>(
    py: Python<'py>,
    data: &[u8],
    out: &Bound<'py, PyAny>,
    out_dtype: &str,
    max_output_bytes: u64,
    threads: usize,
    expect_shape: Option<Vec<u64>>,
    expect_dtype: Option<&str>,
) -> PyResult<()> {
    let h = container::read_header(data)?;
    check_expected(&h, expect_shape, expect_dtype)?;
    container::check_output_size(&h, max_output_bytes)?;
    let kind = check_out(&h, out, out_dtype, false)?;
    let mut guard = Guard::new(out, kind)?;
    let buf = guard.buf()?;
    py.detach(|| batch::decompress_into(data, &h, max_output_bytes, threads, buf))?;
    Ok(())
}

/// A decoded container's output allocated in Rust (for `decode_many`, which allocates with
/// the interpreter released), handed to numpy without a copy.
enum Owned {
    F32(Vec<f32>),
    F64(Vec<f64>),
    U16(Vec<u16>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
}

impl Owned {
    fn new(kind: OutKind, n: usize) -> crate::Result<Owned> {
        use crate::buffer::zeroed;
        Ok(match kind {
            OutKind::F32 => Owned::F32(zeroed(n)?),
            OutKind::F64 => Owned::F64(zeroed(n)?),
            OutKind::F16Bits | OutKind::BF16Bits | OutKind::Int(DType::U16) => {
                Owned::U16(zeroed(n)?)
            }
            OutKind::Int(DType::U8) => Owned::U8(zeroed(n)?),
            OutKind::Int(DType::I8) => Owned::I8(zeroed(n)?),
            OutKind::Int(DType::I16) => Owned::I16(zeroed(n)?),
            OutKind::Int(DType::U32) => Owned::U32(zeroed(n)?),
            OutKind::Int(DType::I32) => Owned::I32(zeroed(n)?),
            OutKind::Int(DType::U64) => Owned::U64(zeroed(n)?),
            OutKind::Int(DType::I64) => Owned::I64(zeroed(n)?),
        })
    }

    fn buf(&mut self, kind: OutKind) -> OutBuf<'_> {
        match (self, kind) {
            (Owned::F32(v), _) => OutBuf::Feature(OutputSlice::F32(v)),
            (Owned::F64(v), _) => OutBuf::Feature(OutputSlice::F64(v)),
            (Owned::U16(v), OutKind::F16Bits) => OutBuf::Feature(OutputSlice::F16Bits(v)),
            (Owned::U16(v), OutKind::BF16Bits) => OutBuf::Feature(OutputSlice::BF16Bits(v)),
            (Owned::U16(v), _) => OutBuf::U16(v),
            (Owned::U8(v), _) => OutBuf::U8(v),
            (Owned::I8(v), _) => OutBuf::I8(v),
            (Owned::I16(v), _) => OutBuf::I16(v),
            (Owned::U32(v), _) => OutBuf::U32(v),
            (Owned::I32(v), _) => OutBuf::I32(v),
            (Owned::U64(v), _) => OutBuf::U64(v),
            (Owned::I64(v), _) => OutBuf::I64(v),
        }
    }

    fn into_py<'py>(self, py: Python<'py>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
        fn wrap<'py, T: NpElement>(
            py: Python<'py>,
            v: Vec<T>,
            shape: &[usize],
        ) -> PyResult<Bound<'py, PyAny>> {
            Ok(PyArray1::from_vec(py, v).reshape(shape)?.into_any())
        }
        match self {
            Owned::F32(v) => wrap(py, v, shape),
            Owned::F64(v) => wrap(py, v, shape),
            Owned::U16(v) => wrap(py, v, shape),
            Owned::U8(v) => wrap(py, v, shape),
            Owned::I8(v) => wrap(py, v, shape),
            Owned::I16(v) => wrap(py, v, shape),
            Owned::U32(v) => wrap(py, v, shape),
            Owned::I32(v) => wrap(py, v, shape),
            Owned::U64(v) => wrap(py, v, shape),
            Owned::I64(v) => wrap(py, v, shape),
        }
    }
}

/// The output kind a dtype name stands for (`check_out`'s names).
fn kind_named(name: &str) -> Option<OutKind> {
    Some(match name {
        "float32" => OutKind::F32,
        "float64" => OutKind::F64,
        "float16" => OutKind::F16Bits,
        "bfloat16" => OutKind::BF16Bits,
        n => OutKind::Int(DType::from_name(n)?),
    })
}

/// `check_out` in plain Rust, for the checks made with the interpreter released.
fn fits(h: &Header, shape: &[usize], kind: OutKind) -> crate::Result<()> {
    let want = OutKind::of(h, kind == OutKind::BF16Bits);
    if want != kind {
        return Err(crate::CodecError::InvalidArgument(format!(
            "out has dtype {}; the container ({} {}) decodes to {}",
            kind.name(),
            h.kind.name(),
            h.elem.name(),
            want.name()
        )));
    }
    if shape != h.shape {
        return Err(crate::CodecError::InvalidArgument(format!(
            "out has shape {:?}; the container holds an array of shape {:?}",
            shape, h.shape
        )));
    }
    Ok(())
}

/// Reads, checks and parses one container of a batch.
fn open<'a>(blob: &'a [u8], max_output_bytes: u64) -> crate::Result<(Header, batch::Prepared<'a>)> {
    let h = container::read_header(blob)?;
    container::check_output_size(&h, max_output_bytes)?;
    let p = batch::prepare(blob, &h, max_output_bytes)?;
    Ok((h, p))
}

/// Decodes many containers with the interpreter released once, on `threads` threads (0: all
/// cores), one container per task. Into `outs` (with `out_dtypes`, as `decode_into`; every
/// container is read and checked against its buffer before any is decoded) when given, else
/// into new arrays. Returns, per container, (kind name, array, shape, dtype name). The first
/// container that fails, in order, raises its error, its message prefixed with its index.
#[pyfunction]
#[pyo3(signature = (blobs, outs, out_dtypes, max_output_bytes, threads, bf16_bits=false))]
#[allow(clippy::type_complexity)]
fn decode_many<'py>(
    py: Python<'py>,
    blobs: Vec<Bound<'py, PyBytes>>,
    outs: Option<Vec<Bound<'py, PyAny>>>,
    out_dtypes: Option<Vec<String>>,
    max_output_bytes: u64,
    threads: usize,
    bf16_bits: bool,
) -> PyResult<Vec<(&'static str, Bound<'py, PyAny>, Vec<usize>, &'static str)>> {
    let located = |i: usize, e: PyErr| -> PyErr {
        let msg = e.value(py).to_string();
        PyErr::from_type(e.get_type(py), format!("item {i}: {msg}"))
    };
    let first_error = |results: Vec<crate::Result<()>>| -> PyResult<()> {
        for (i, r) in results.into_iter().enumerate() {
            r.map_err(|e| located(i, e.into()))?;
        }
        Ok(())
    };
    let data: Vec<&[u8]> = blobs.iter().map(|b| b.as_bytes()).collect();
    match (outs, out_dtypes) {
        (Some(outs), Some(names)) if outs.len() == data.len() && names.len() == data.len() => {
            let mut guards = Vec::with_capacity(outs.len());
            let mut shapes = Vec::with_capacity(outs.len());
            for (i, (a, name)) in outs.iter().zip(&names).enumerate() {
                let kind = kind_named(name).ok_or_else(|| {
                    located(
                        i,
                        PyValueError::new_err(format!("unsupported output dtype {name}")),
                    )
                })?;
                guards.push((Guard::new(a, kind).map_err(|e| located(i, e))?, kind));
                shapes.push(a.getattr("shape")?.extract::<Vec<usize>>()?);
            }
            let mut bufs = Vec::with_capacity(guards.len());
            for (i, (g, kind)) in guards.iter_mut().enumerate() {
                bufs.push((g.buf().map_err(|e| located(i, e))?, *kind));
            }
            let results = py.detach(|| {
                let checked: Vec<crate::Result<(Header, batch::Prepared<'_>)>> =
                    par_map(data.clone(), threads, |(i, d)| {
                        let (h, p) = open(d, max_output_bytes)?;
                        fits(&h, &shapes[i], bufs[i].1)?;
                        Ok((h, p))
                    });
                let mut ready = Vec::with_capacity(checked.len());
                for r in checked {
                    match r {
                        Ok(x) => ready.push(x),
                        Err(e) => {
                            // Report the first failure in order: mark the rest as not run.
                            return Err((ready.len(), e));
                        }
                    }
                }
                let items = ready
                    .iter()
                    .zip(bufs)
                    .map(|((h, p), (b, _))| (p, h, b))
                    .collect();
                Ok(batch::decompress_many(items, threads))
            });
            match results {
                Err((i, e)) => return Err(located(i, e.into())),
                Ok(r) => first_error(r)?,
            }
            drop(guards);
            Ok(outs
                .into_iter()
                .zip(names)
                .zip(shapes)
                .map(|((a, _), shape)| ("", a, shape, ""))
                .collect())
        }
        (None, None) => {
            let decoded = py.detach(|| {
                par_map(
                    data.clone(),
                    threads,
                    |(_, d)| -> crate::Result<(Header, Owned)> {
                        let (h, p) = open(d, max_output_bytes)?;
                        let kind = OutKind::of(&h, bf16_bits);
                        let mut out = Owned::new(kind, h.count)?;
                        batch::decode_prepared(&p, &h, 1, out.buf(kind))?;
                        Ok((h, out))
                    },
                )
            });
            let mut arrays = Vec::with_capacity(decoded.len());
            for (i, r) in decoded.into_iter().enumerate() {
                let (h, out) = r.map_err(|e| located(i, e.into()))?;
                let a = out.into_py(py, &h.shape)?;
                arrays.push((h.kind.name(), a, h.shape, h.elem.name()));
            }
            Ok(arrays)
        }
        _ => Err(PyValueError::new_err(format!(
            "out must hold one array per blob ({} blobs)",
            data.len()
        ))),
    }
}

/// One float tensor of a batch: (float32 array, dtype name, axis, clip ranges, scale,
/// zero_point), as `_feature._prepare` makes it.
type FeatureArgs<'py> = (
    PyReadonlyArrayDyn<'py, f32>,
    String,
    Option<usize>,
    Option<Vec<(f32, f32)>>,
    Option<Vec<f32>>,
    Option<Vec<i32>>,
);

/// Compresses many float tensors with the interpreter released once, on the options' threads
/// (0: all cores), one tensor per task: each container is what `encode_feature` makes of it. The
/// first failing tensor, in order, raises its error with its index.
#[pyfunction]
#[pyo3(signature = (items, options))]
fn encode_feature_many<'py>(
    py: Python<'py>,
    items: Vec<FeatureArgs<'py>>,
    options: PyRef<'py, CoderOptions>,
) -> PyResult<Bound<'py, PyList>> {
    let located = |i: usize, e: PyErr| -> PyErr {
        let msg = e.value(py).to_string();
        PyErr::from_type(e.get_type(py), format!("item {i}: {msg}"))
    };
    let mut work = Vec::with_capacity(items.len());
    for (i, (x, dtype, axis, clip, scale, zero_point)) in items.iter().enumerate() {
        let float_type = FloatType::from_name(dtype).ok_or_else(|| {
            located(
                i,
                PyValueError::new_err(format!("unsupported float dtype {dtype}")),
            )
        })?;
        let shape = x.shape().to_vec();
        let opts = options
            .feature(
                &shape,
                *axis,
                clip.clone(),
                scale.clone(),
                zero_point.clone(),
                Some(1),
            )
            .map_err(|e| located(i, e))?;
        let data = x
            .as_slice()
            .map_err(|_| located(i, PyValueError::new_err("array must be C-contiguous")))?;
        work.push(FeatureItem {
            data,
            shape,
            float_type,
            opts,
        });
    }
    let threads = options.coder().threads;
    let blobs = py.detach(|| batch::compress_features(work, threads));
    let out = PyList::empty(py);
    for (i, b) in blobs.into_iter().enumerate() {
        out.append(PyBytes::new(py, &b.map_err(|e| located(i, e.into()))?))?;
    }
    Ok(out)
}

/// Compresses many C-contiguous integer arrays (`dtypes` name each) losslessly, as `encode`
/// with kind 2, with the interpreter released once, on the options' threads, one array per
/// task (the options' coder settings only: integers take none of the lossy ones).
#[pyfunction]
#[pyo3(signature = (arrays, dtypes, options))]
fn encode_many<'py>(
    py: Python<'py>,
    arrays: Vec<Bound<'py, PyAny>>,
    dtypes: Vec<String>,
    options: PyRef<'py, CoderOptions>,
) -> PyResult<Bound<'py, PyList>> {
    let located = |i: usize, e: PyErr| -> PyErr {
        let msg = e.value(py).to_string();
        PyErr::from_type(e.get_type(py), format!("item {i}: {msg}"))
    };
    /// One borrowed integer array.
    enum Ints<'py> {
        U8(PyReadonlyArrayDyn<'py, u8>),
        I8(PyReadonlyArrayDyn<'py, i8>),
        U16(PyReadonlyArrayDyn<'py, u16>),
        I16(PyReadonlyArrayDyn<'py, i16>),
        U32(PyReadonlyArrayDyn<'py, u32>),
        I32(PyReadonlyArrayDyn<'py, i32>),
        U64(PyReadonlyArrayDyn<'py, u64>),
        I64(PyReadonlyArrayDyn<'py, i64>),
    }
    /// A borrowed slice of one, with its shape.
    enum Slice<'a> {
        U8(&'a [u8]),
        I8(&'a [i8]),
        U16(&'a [u16]),
        I16(&'a [i16]),
        U32(&'a [u32]),
        I32(&'a [i32]),
        U64(&'a [u64]),
        I64(&'a [i64]),
    }
    if arrays.len() != dtypes.len() {
        return Err(PyValueError::new_err("one dtype per array"));
    }
    let mut borrowed = Vec::with_capacity(arrays.len());
    for (i, (a, d)) in arrays.iter().zip(&dtypes).enumerate() {
        let b = match d.as_str() {
            "uint8" => Ints::U8(a.extract()?),
            "int8" => Ints::I8(a.extract()?),
            "uint16" => Ints::U16(a.extract()?),
            "int16" => Ints::I16(a.extract()?),
            "uint32" => Ints::U32(a.extract()?),
            "int32" => Ints::I32(a.extract()?),
            "uint64" => Ints::U64(a.extract()?),
            "int64" => Ints::I64(a.extract()?),
            other => {
                return Err(located(
                    i,
                    PyValueError::new_err(format!("unsupported dtype {other}")),
                ))
            }
        };
        borrowed.push(b);
    }
    let contiguous_err = |i: usize| located(i, PyValueError::new_err("array must be C-contiguous"));
    let mut items = Vec::with_capacity(borrowed.len());
    for (i, b) in borrowed.iter().enumerate() {
        macro_rules! slice {
            ($g:expr, $v:ident) => {
                (
                    Slice::$v($g.as_slice().map_err(|_| contiguous_err(i))?),
                    $g.shape().to_vec(),
                )
            };
        }
        items.push(match b {
            Ints::U8(g) => slice!(g, U8),
            Ints::I8(g) => slice!(g, I8),
            Ints::U16(g) => slice!(g, U16),
            Ints::I16(g) => slice!(g, I16),
            Ints::U32(g) => slice!(g, U32),
            Ints::I32(g) => slice!(g, I32),
            Ints::U64(g) => slice!(g, U64),
            Ints::I64(g) => slice!(g, I64),
        });
    }
    let opts = options.coder();
    let threads = opts.threads;
    let blobs = py.detach(|| {
        batch::compress_each(items, &opts, threads, |(s, shape), o| match s {
            Slice::U8(d) => container::compress(d, &shape, o),
            Slice::I8(d) => container::compress(d, &shape, o),
            Slice::U16(d) => container::compress(d, &shape, o),
            Slice::I16(d) => container::compress(d, &shape, o),
            Slice::U32(d) => container::compress(d, &shape, o),
            Slice::I32(d) => container::compress(d, &shape, o),
            Slice::U64(d) => container::compress(d, &shape, o),
            Slice::I64(d) => container::compress(d, &shape, o),
        })
    });
    let out = PyList::empty(py);
    for (i, b) in blobs.into_iter().enumerate() {
        out.append(PyBytes::new(py, &b.map_err(|e| located(i, e.into()))?))?;
    }
    Ok(out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_function(wrap_pyfunction!(decode_into, m)?)?;
    m.add_function(wrap_pyfunction!(decode_many, m)?)?;
    m.add_function(wrap_pyfunction!(encode_feature_many, m)?)?;
    m.add_function(wrap_pyfunction!(encode_many, m)?)?;
    Ok(())
}
