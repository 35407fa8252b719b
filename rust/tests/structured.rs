//! The structure-aware generator (`blobgen`) behind the checksum, bounded for CI: valid
//! containers of every kind and mode, mutated field by field with lengths and CRC recomputed,
//! must decode to an array of the declared shape or fail with a documented error, and `inspect`
//! must agree with `decompress` on every one. The fuzz targets `structured` and
//! `inspect_agrees` run the same generator without a bound.

mod blobgen;

use std::collections::BTreeMap;

use blobgen::{case, check, valid, Gen, Outcome, BUILDERS, FIELDS};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use splitans::CodecError;

const CASES: usize = 15_000;

fn variant(e: &CodecError) -> &'static str {
    match e {
        CodecError::Corrupt(_) => "Corrupt",
        CodecError::UnsupportedVersion { .. } => "UnsupportedVersion",
        CodecError::OutputTooLarge { .. } => "OutputTooLarge",
        CodecError::InvalidArgument(_) => "InvalidArgument",
        CodecError::OutOfMemory { .. } => "OutOfMemory",
    }
}

#[test]
fn mutated_containers_decode_to_their_shape_or_a_documented_error() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5EED);
    let mut bytes = vec![0u8; 1024];
    let mut builders: BTreeMap<&str, usize> = BTreeMap::new();
    let mut fields: BTreeMap<&str, usize> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut messages: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..CASES {
        rng.fill_bytes(&mut bytes);
        let Some((name, mutated, _, outcome)) = case(&mut Gen::new(&bytes)) else {
            continue;
        };
        *builders.entry(name).or_default() += 1;
        for f in mutated {
            *fields.entry(f).or_default() += 1;
        }
        let o = match &outcome {
            Outcome::Decoded(_) => "decoded".to_string(),
            Outcome::Failed(e) => variant(e).to_string(),
        };
        *outcomes.entry(o).or_default() += 1;
        if let Outcome::Failed(CodecError::Corrupt(m)) = &outcome {
            // The message without its numbers: which check refused the container.
            let template = m
                .split(' ')
                .map(|w| {
                    if w.chars().any(|c| c.is_ascii_digit()) {
                        "#"
                    } else {
                        w
                    }
                })
                .collect::<Vec<_>>()
                .join(" ");
            *messages.entry(template).or_default() += 1;
        }
    }
    println!("builders {builders:?}\noutcomes {outcomes:?}\nfields {fields:?}");
    println!(
        "{} distinct Corrupt checks reached: {messages:#?}",
        messages.len()
    );
    for (name, _) in BUILDERS {
        assert!(
            builders.get(name).copied().unwrap_or(0) >= 1000,
            "{name}: {builders:?}"
        );
    }
    for o in ["decoded", "Corrupt", "UnsupportedVersion", "OutputTooLarge"] {
        assert!(
            outcomes.get(o).copied().unwrap_or(0) >= 10,
            "{o}: {outcomes:?}"
        );
    }
    // The mutations reach deep: most of the decoder's distinct checks refuse some case.
    assert!(
        messages.len() >= 60,
        "{} checks: {messages:#?}",
        messages.len()
    );
    // Every field the mutator names was changed, many times, and no other.
    for f in FIELDS {
        assert!(fields.get(f).copied().unwrap_or(0) >= 50, "{f}: {fields:?}");
    }
    assert_eq!(fields.len(), FIELDS.len(), "{fields:?}");
}

#[test]
fn builders_cover_every_kind_mode_version_and_shape() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut bytes = vec![0u8; 1024];
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..4000 {
        rng.fill_bytes(&mut bytes);
        let Some((_, data, blob)) = valid(&mut Gen::new(&bytes)) else {
            continue;
        };
        assert!(matches!(check(&data), Outcome::Decoded(_)));
        let mode = match &blob.compact {
            Some(c) => Some(c.bits_mode >> 4),
            None => blob.records.first().map(|r| match &r.body {
                blobgen::Body::Section(s) => s.mode,
                _ => 9,
            }),
        };
        let shape = if blob.shape.is_empty() {
            "0-d"
        } else if blob.shape.contains(&0) {
            "empty"
        } else {
            "nonempty"
        };
        for key in [
            format!("kind {} dtype {}", blob.kind, blob.dtype),
            format!("kind {} mode {mode:?}", blob.kind),
            format!("kind {} version {}", blob.kind, blob.version),
            format!("kind {} {shape}", blob.kind),
            format!("kind {} mode {mode:?} {shape}", blob.kind),
        ] {
            *seen.entry(key).or_default() += 1;
        }
    }
    let want = [
        "kind 1 dtype 1",
        "kind 1 dtype 3",
        "kind 2 dtype 1",
        "kind 2 dtype 2",
        "kind 2 dtype 3",
        "kind 2 dtype 4",
        "kind 2 dtype 5",
        "kind 2 dtype 6",
        "kind 2 dtype 7",
        "kind 2 dtype 8",
        "kind 3 dtype 9",
        "kind 3 dtype 10",
        "kind 3 dtype 11",
        "kind 3 dtype 12",
        "kind 3 mode Some(0)",
        "kind 3 mode Some(1)",
        "kind 3 mode Some(2)",
        "kind 1 version 2",
        "kind 2 version 2",
        "kind 3 version 1",
        "kind 3 version 2",
        "kind 2 0-d",
        "kind 2 empty",
        "kind 3 mode Some(0) 0-d",
        "kind 3 mode Some(0) empty",
        "kind 3 mode Some(1) 0-d",
        "kind 3 mode Some(2) 0-d",
        "kind 3 mode Some(2) empty",
        "kind 3 version 3",
        "kind 3 mode Some(3)",
        "kind 3 mode Some(3) 0-d",
    ];
    for k in want {
        assert!(seen.get(k).copied().unwrap_or(0) >= 5, "{k}: {seen:#?}");
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// For tests/test_structured.py: with SPLITANS_BLOBGEN_DIR set, writes 3000 generated cases
/// (`NNNN.bin`) and `cases.json` with what the Rust decoder made of each.
#[test]
#[ignore]
fn dump_cases_for_python() {
    let Ok(dir) = std::env::var("SPLITANS_BLOBGEN_DIR") else {
        panic!("set SPLITANS_BLOBGEN_DIR");
    };
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0xB10B);
    let mut bytes = vec![0u8; 1024];
    let mut rows = Vec::new();
    let mut i = 0;
    while rows.len() < 3000 {
        rng.fill_bytes(&mut bytes);
        let Some((name, fields, data, outcome)) = case(&mut Gen::new(&bytes)) else {
            continue;
        };
        let file = format!("{i:04}.bin");
        std::fs::write(dir.join(&file), &data).unwrap();
        i += 1;
        let (kind, message) = match &outcome {
            Outcome::Decoded(n) => ("decoded".to_string(), n.to_string()),
            Outcome::Failed(e) => (variant(e).to_string(), e.to_string()),
        };
        rows.push(format!(
            "{{\"file\": {}, \"builder\": {}, \"fields\": [{}], \"outcome\": {}, \"message\": {}}}",
            json_str(&file),
            json_str(name),
            fields
                .iter()
                .map(|f| json_str(f))
                .collect::<Vec<_>>()
                .join(", "),
            json_str(&kind),
            json_str(&message)
        ));
    }
    std::fs::write(
        dir.join("cases.json"),
        format!("[\n{}\n]\n", rows.join(",\n")),
    )
    .unwrap();
}
