//! Every error message the decoder can give is given by some input here: the source is scanned
//! for `corrupt!(...)` messages and for the labels of truncated reads, and each must be produced
//! by the structure-aware generator's cases or by the hand-made containers below. A check no
//! input can reach is dead code: remove it, or list it in `API_GUARDS` with the reason it stays.

mod blobgen;

use std::collections::BTreeSet;
use std::path::Path;

use blobgen::{decode, inspect, Body, Gen, StreamBody, CAP};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use splitans::{CodecError, EncodeOptions};

/// Messages no container can produce, kept because they guard a public Rust function against
/// arguments the container parsers never pass.
const API_GUARDS: &[(&str, &str)] = &[
    (
        "rANS chunk with {lanes} lanes",
        "rans::Decoder::decode_chunk takes any states slice; streams have 1..=32 lanes",
    ),
    (
        "not a feature container",
        "feature::read_meta takes any header; decoders call it for kind 3 only",
    ),
    (
        "context mode with {bits}-bit codes",
        "context::decode takes any width; read_meta refuses context mode above 8 bits",
    ),
];

/// Labels of reads that cannot run short: the magic is checked before it is read; the header's
/// bytes were read (shape) before `records` takes them; a section's parameters are counted
/// against its length before they are read; a context body is at least 4 bytes before its
/// state is read.
const UNTRUNCATABLE: &[&str] = &["magic", "header", "scale", "zero point", "context state"];

fn sources() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rust/src");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") {
            out.push(std::fs::read_to_string(p).unwrap());
        }
    }
    assert!(out.len() >= 10);
    out
}

/// The first string literal after each occurrence of `pat`.
fn literals_after(src: &str, pat: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find(pat) {
        rest = &rest[i + pat.len()..];
        let Some(q) = rest.find('"') else { break };
        // Only a literal that is the macro's or method's first argument (nothing but spaces and
        // newlines before it), or a `take(n, "label")`'s second.
        let before = &rest[..q];
        let ok = before.trim().is_empty()
            || (pat == ".take(" && before.contains(',') && !before.contains([';', '{', '"']));
        let tail = &rest[q + 1..];
        let end = tail.find('"').unwrap();
        if ok {
            out.push(tail[..end].to_string());
        }
    }
    out
}

/// Whether `message` fits `template` (a format string: `{...}` matches any text).
fn fits(template: &str, message: &str) -> bool {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        pieces.push(&rest[..i]);
        rest = &rest[rest[i..].find('}').unwrap() + i + 1..];
    }
    pieces.push(rest);
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if !message.starts_with(first) || !message.ends_with(last) {
        return false;
    }
    if pieces.len() == 1 {
        return message == first;
    }
    let mut pos = first.len();
    for p in &pieces[1..pieces.len() - 1] {
        match message[pos..].find(p) {
            Some(i) => pos += i + p.len(),
            None => return false,
        }
    }
    pos <= message.len() - last.len()
}

fn with_crc(mut data: Vec<u8>) -> Vec<u8> {
    let total = data.len() as u64;
    data[12..20].copy_from_slice(&total.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&data[..8]);
    h.update(&data[12..]);
    let crc = h.finalize();
    data[8..12].copy_from_slice(&crc.to_le_bytes());
    data
}

/// Containers that reach the checks random mutation rarely does.
fn hand_made() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let opts = EncodeOptions::default();
    let skew: Vec<u8> = (0..3000u32).map(|i| (i * i % 7) as u8).collect();
    let valid = splitans::encode_symbols(&skew, &opts).unwrap();
    // Every prefix (with its total_len and CRC set when long enough): header truncations.
    for len in 0..valid.len().min(120) {
        out.push(valid[..len].to_vec());
        if len >= 20 {
            out.push(with_crc(valid[..len].to_vec()));
        }
    }
    let blob = blobgen::Blob::parse(&valid).unwrap();
    let table_of = |b: &blobgen::Blob| match &b.records[0].body {
        Body::Stream(s) => match &s.body {
            StreamBody::Rans(r) => r.table.clone(),
            _ => unreachable!(),
        },
        _ => unreachable!(),
    };
    assert!(!table_of(&blob).freqs.is_empty());
    let set_table = |raw: &[u8], pad: bool| {
        // The stream's table replaced by `raw` bytes (symbols, runs, k and codes).
        let mut b = blob.clone();
        let Body::Stream(s) = &b.records[0].body else {
            unreachable!()
        };
        let mut bytes = Vec::new();
        let mut s = s.clone();
        s.body = StreamBody::Empty;
        s.mode = 3;
        let mut head = Vec::new();
        blobgen_stream_head(&s, &mut head);
        bytes.extend_from_slice(&head);
        bytes.extend_from_slice(&[12, 1, 16, 0]);
        bytes.extend_from_slice(raw);
        if pad {
            bytes.extend_from_slice(&[0; 64]);
        }
        b.records[0].body = Body::Bytes(bytes);
        b.write()
    };
    // A frequency code of 18 zero bits; a varint above 2^32 - 1; one of six bytes.
    out.push(set_table(&[2, 1, 0, 1, 0, 0, 0, 0], true));
    out.push(set_table(&[0xff, 0xff, 0xff, 0xff, 0x1f], true));
    out.push(set_table(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], true));
    // The stream ending inside a run whose varints are longer than the two bytes a run needs
    // at least: in its gap, then in its length.
    out.push(set_table(&[2, 1, 0x80, 0x80], false));
    out.push(set_table(&[2, 1, 0x81, 0x01], false));
    // Every record of a few containers cut at every length, lengths and CRC set to match.
    let x: Vec<f32> = (0..600)
        .map(|i| if i % 3 == 0 { (i % 17) as f32 } else { 0.0 })
        .collect();
    let opts = |mode| splitans::feature::FeatureOptions {
        bits: 6,
        axis: None,
        range: splitans::feature::Range::MinMax,
        mode,
        reshape: splitans::feature::Reshape::Rows(60),
        non_finite: splitans::quant::NonFinite::Error,
        coder: EncodeOptions::default(),
    };
    let feature = |mode| {
        splitans::feature::compress(
            &x,
            &[20, 30],
            splitans::container::FloatType::F32,
            &opts(mode),
        )
        .unwrap()
        .0
    };
    use splitans::feature::ModeChoice;
    for container in [
        valid.clone(),
        feature(ModeChoice::Csr),
        feature(ModeChoice::Context),
    ] {
        let b = blobgen::Blob::parse(&container).unwrap();
        for (i, r) in b.records.iter().enumerate() {
            let mut body = Vec::new();
            blobgen_write_body(&r.body, &mut body);
            for len in 0..body.len() {
                let mut cut = b.clone();
                cut.records[i].body = Body::Bytes(body[..len].to_vec());
                out.push(cut.write());
            }
        }
    }
    // One byte changed and the CRC left as it was.
    let mut bad = valid.clone();
    bad[40] ^= 1;
    out.push(bad);
    out
}

fn blobgen_write_body(body: &Body, out: &mut Vec<u8>) {
    let mut b = blobgen::Blob::parse(
        &splitans::encode_symbols(&[1u8, 2], &EncodeOptions::default()).unwrap(),
    )
    .unwrap();
    b.records = vec![blobgen::Record {
        len: None,
        body: body.clone(),
    }];
    let bytes = b.write();
    let header = 24 + 8 * b.shape.len() + 8;
    out.extend_from_slice(&bytes[header..]);
}

fn blobgen_stream_head(s: &blobgen::Stream, out: &mut Vec<u8>) {
    out.push(s.mode);
    out.push(s.width);
    out.extend_from_slice(&s.n.to_le_bytes());
}

#[test]
fn every_decoder_message_is_reachable() {
    let src = sources();
    let mut templates = BTreeSet::new();
    let mut labels = BTreeSet::new();
    for s in &src {
        templates.extend(literals_after(s, "corrupt!("));
        for pat in [".u8(", ".u16(", ".u32(", ".u64(", ".varint(", ".take("] {
            labels.extend(literals_after(s, pat));
        }
    }
    templates.retain(|t| !t.starts_with("truncated {what}"));
    println!(
        "{} messages, {} read labels: {labels:?}",
        templates.len(),
        labels.len()
    );
    assert!(templates.len() >= 60, "{templates:#?}");
    assert!(labels.len() >= 40, "{labels:#?}");

    let mut messages = BTreeSet::new();
    let mut record = |data: &[u8]| {
        for r in [decode(data, CAP).map(|_| ()), inspect(data, CAP)] {
            if let Err(CodecError::Corrupt(m)) = r {
                messages.insert(m);
            }
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0xE220);
    let mut bytes = vec![0u8; 1024];
    for _ in 0..12_000 {
        rng.fill_bytes(&mut bytes);
        if let Some((_, _, data, _)) = blobgen::case(&mut Gen::new(&bytes)) {
            record(&data);
        }
    }
    for data in hand_made() {
        record(&data);
    }
    let missing: Vec<_> = templates
        .iter()
        .filter(|t| !API_GUARDS.iter().any(|(g, _)| g == t))
        .filter(|t| {
            !messages
                .iter()
                .any(|m| fits(t, m) || fits(&format!("chunk {{}}: {t}"), m))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "messages no input produced: {missing:#?}"
    );
    let missing: Vec<_> = labels
        .iter()
        .filter(|l| !UNTRUNCATABLE.contains(&l.as_str()))
        .filter(|l| {
            !messages
                .iter()
                .any(|m| m.starts_with(&format!("truncated {l}:")))
        })
        .collect();
    assert!(missing.is_empty(), "reads never truncated: {missing:#?}");
    // The guards are still in the source (or the list is stale).
    for (g, _) in API_GUARDS {
        assert!(
            templates.contains(*g),
            "{g} is no longer in the source: drop it from API_GUARDS"
        );
    }
}

#[test]
fn the_template_matcher_matches() {
    assert!(fits("a {x} b", "a 12 b"));
    assert!(!fits("a {x} b", "a 12 c"));
    assert!(fits("{} rows", "5 rows"));
    assert!(fits("exact", "exact"));
    assert!(!fits("exact", "exactly"));
    assert!(fits("x {} y {} z", "x 1 y 2 z"));
    assert!(!fits("x {} y {} z", "x 1 z"));
}
