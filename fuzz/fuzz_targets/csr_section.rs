//! The CSR reader: arbitrary row counts, column indices and values scattered into a tensor.
#![no_main]
use libfuzzer_sys::fuzz_target;
use splitans::sparse;

fuzz_target!(|input: (u16, Vec<u16>, Vec<u16>, Vec<u8>)| {
    let (cols, row_counts, col_indices, values) = input;
    let cols = usize::from(cols % 512) + 1;
    let total = row_counts.len() * cols;
    let mut out = vec![0u8; total];
    if sparse::scatter(&row_counts, &col_indices, &values, &mut out).is_ok() {
        let nnz: usize = row_counts.iter().map(|&c| c as usize).sum();
        assert_eq!(nnz, col_indices.len());
        assert!(col_indices.iter().all(|&c| (c as usize) < cols));
    }
});
