//! Python bindings: a thin layer over the codec. Arrays come in as numpy views, the work runs
//! with the interpreter released, results go back as owned buffers.

mod batch;
mod codec;
mod container;
mod errors;
mod feature;
mod format;
mod gpu;
mod options;

use pyo3::prelude::*;

/// The output cap of `splitans.DEFAULT_MAX_OUTPUT_BYTES` (4 GiB), for native defaults.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1 << 32;

/// The vector kernel sets that run on this CPU (`cpu.rs`): `["avx2"]`, `["neon"]` or `[]`.
#[pyfunction]
fn simd_kernels() -> Vec<&'static str> {
    crate::cpu::kernels()
}

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(simd_kernels, m)?)?;
    errors::register(m)?;
    batch::register(m)?;
    codec::register(m)?;
    container::register(m)?;
    feature::register(m)?;
    format::register(m)?;
    gpu::register(m)?;
    options::register(m)?;
    Ok(())
}
