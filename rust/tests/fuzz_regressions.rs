//! Replays the fuzz seed corpus and every input the fuzzers ever found (fuzz/regressions/)
//! through the decoders: each must end in a value or an error, never a panic.

use std::fs;
use std::path::Path;

use splitans::bytes::Reader;
use splitans::decompress;
use splitans::entropy::freq::FreqTable;
use splitans::entropy::stream;
use splitans::format::container::{self, DType, ElemType};
use splitans::pipeline::feature;

const LIMIT: u64 = 64 << 20;

fn decode_any(data: &[u8]) {
    let Ok(h) = container::read_header(data) else {
        return;
    };
    if container::check_output_size(&h, LIMIT).is_err() {
        return;
    }
    let _ = match h.elem {
        ElemType::Int(DType::U8) => decompress::<u8>(data, LIMIT, 1).map(|_| ()),
        ElemType::Int(DType::I8) => decompress::<i8>(data, LIMIT, 1).map(|_| ()),
        ElemType::Int(DType::U16) => decompress::<u16>(data, LIMIT, 1).map(|_| ()),
        ElemType::Int(DType::I16) => decompress::<i16>(data, LIMIT, 1).map(|_| ()),
        ElemType::Int(DType::U32) => decompress::<u32>(data, LIMIT, 1).map(|_| ()),
        ElemType::Int(DType::I32) => decompress::<i32>(data, LIMIT, 1).map(|_| ()),
        ElemType::Int(DType::U64) => decompress::<u64>(data, LIMIT, 1).map(|_| ()),
        ElemType::Int(DType::I64) => decompress::<i64>(data, LIMIT, 1).map(|_| ()),
        ElemType::Float(_) => feature::decompress(data, &h, LIMIT, 1).map(|_| ()),
    };
}

fn files(dir: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(dir);
    let Ok(entries) = fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| (e.path().display().to_string(), fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn container_corpora_decode_without_panicking() {
    let all: Vec<_> = [
        "corpus/container_header",
        "corpus/decompress",
        "regressions",
    ]
    .iter()
    .flat_map(|d| files(d))
    .collect();
    assert!(
        all.len() >= 13,
        "seed corpus missing: run fuzz/make_corpus.py"
    );
    for (name, data) in &all {
        let r = std::panic::catch_unwind(|| decode_any(data));
        assert!(r.is_ok(), "{name} panicked");
    }
}

#[test]
fn stream_and_table_corpora_decode_without_panicking() {
    for (name, data) in files("corpus/stream_decode") {
        let (pick, rest) = data.split_first().unwrap();
        let mut r = Reader::new(rest);
        let ok = if pick & 1 == 0 {
            stream::decode::<u8>(&mut r, 1 << 24, 1).is_ok()
        } else {
            stream::decode::<u16>(&mut r, 1 << 24, 1).is_ok()
        };
        assert!(ok, "seed {name} is a valid stream and must decode");
    }
    for (name, data) in files("corpus/freq_table") {
        let (params, rest) = data.split_first().unwrap();
        let alphabet = if params & 32 == 0 { 256 } else { 65536 };
        assert!(
            FreqTable::read(&mut Reader::new(rest), params & 31, alphabet).is_ok(),
            "{name}"
        );
    }
}

/// Bare streams the fuzzer found (`stream_decode-*`, first byte as in the fuzz target): each must
/// decode or give an error, never panic.
#[test]
fn found_streams_decode_without_panicking() {
    let found: Vec<_> = files("regressions")
        .into_iter()
        .filter(|(n, _)| n.contains("stream_decode"))
        .collect();
    assert!(!found.is_empty());
    for (name, data) in found {
        let (pick, rest) = data.split_first().unwrap();
        let r = std::panic::catch_unwind(|| {
            let mut r = Reader::new(rest);
            if pick & 1 == 0 {
                stream::decode::<u8>(&mut r, 1 << 24, 1).map(|_| ())
            } else {
                stream::decode::<u16>(&mut r, 1 << 24, 1).map(|_| ())
            }
        });
        assert!(r.is_ok(), "{name} panicked");
    }
}

/// Tables the fuzzer found: each must read, re-serialize and read back to the same table.
#[test]
fn found_tables_round_trip() {
    for (name, data) in files("regressions")
        .into_iter()
        .filter(|(n, _)| n.contains("freq_table"))
    {
        let (params, rest) = data.split_first().unwrap();
        let alphabet = if params & 32 == 0 { 256 } else { 65536 };
        if let Ok(t) = FreqTable::read(&mut Reader::new(rest), params & 31, alphabet) {
            let mut again = Vec::new();
            t.write(&mut again);
            let back = FreqTable::read(&mut Reader::new(&again), params & 31, alphabet);
            assert_eq!(back.as_ref(), Ok(&t), "{name}");
        }
    }
}
