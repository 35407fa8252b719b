//! The CSR reader: arbitrary row counts, column indices and values, framed as a valid CSR
//! feature container (raw streams, correct lengths and CRC) and decoded by `feature::decompress`,
//! which scatters them (`feature::walk_csr`). A decode must place exactly those nonzeros.
#![no_main]
use libfuzzer_sys::fuzz_target;
use splitans::format::container;
use splitans::pipeline::feature;

fn raw_stream(out: &mut Vec<u8>, width: u8, symbols: &[u16]) {
    let mut body = vec![2, width];
    body.extend_from_slice(&(symbols.len() as u64).to_le_bytes());
    for &s in symbols {
        body.extend_from_slice(&s.to_le_bytes()[..width as usize]);
    }
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
}

fuzz_target!(|input: (u16, Vec<u16>, Vec<u16>, Vec<u8>)| {
    let (cols, row_counts, col_indices, values) = input;
    let m = usize::from(cols % 512) + 1;
    let rows = row_counts.len();
    let n = rows * m;
    let mut blob = b"SPNS\x01\x00".to_vec();
    blob.extend_from_slice(&32u16.to_le_bytes());
    blob.extend_from_slice(&[0; 12]);
    blob.extend_from_slice(&[3, 11, 1, 3]);
    blob.extend_from_slice(&(n as u64).to_le_bytes());
    let mut section = vec![8, 1, 255, 0];
    section.extend_from_slice(&0u64.to_le_bytes());
    section.extend_from_slice(&(rows as u64).to_le_bytes());
    section.extend_from_slice(&1u32.to_le_bytes());
    section.extend_from_slice(&1f32.to_le_bytes());
    section.extend_from_slice(&0i32.to_le_bytes());
    blob.extend_from_slice(&(section.len() as u64).to_le_bytes());
    blob.extend_from_slice(&section);
    raw_stream(&mut blob, 2, &row_counts);
    raw_stream(&mut blob, 2, &col_indices);
    raw_stream(&mut blob, 1, &values.iter().map(|&v| u16::from(v)).collect::<Vec<_>>());
    let total = blob.len() as u64;
    blob[12..20].copy_from_slice(&total.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&blob[..8]);
    h.update(&blob[12..]);
    let crc = h.finalize();
    blob[8..12].copy_from_slice(&crc.to_le_bytes());
    let Ok(header) = container::read_header(&blob) else {
        return;
    };
    if let Ok((_, out)) = feature::decompress(&blob, &header, 64 << 20, 1) {
        let nnz: usize = row_counts.iter().map(|&c| c as usize).sum();
        assert_eq!(nnz, col_indices.len());
        assert_eq!(nnz, values.len());
        assert!(col_indices.iter().all(|&c| (c as usize) < m));
        assert_eq!(out.iter().filter(|&&v| v != 0.0).count(), values.iter().filter(|&&v| v != 0).count());
    }
});
