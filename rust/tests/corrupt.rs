//! What the decoder does with damaged input: always an error, never a panic or a wrong array.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use splitans::{compress, decompress, encode_symbols, CodecError, EncodeOptions};

fn sample_blobs() -> Vec<Vec<u8>> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let skew: Vec<u8> = (0..3000)
        .map(|_| (rng.gen::<f64>().powi(4) * 40.0) as u8)
        .collect();
    let wide: Vec<u16> = (0..2000)
        .map(|_| (rng.gen::<f64>().powi(3) * 5000.0) as u16)
        .collect();
    let ints: Vec<i32> = (0..1500).map(|_| rng.gen_range(-70_000..70_000)).collect();
    vec![
        encode_symbols(&skew, &EncodeOptions::default()).unwrap(),
        encode_symbols(&wide, &EncodeOptions::default()).unwrap(),
        compress(&ints, &[30, 50], &EncodeOptions::default()).unwrap(),
        compress(&[3u8; 100], &[10, 10], &EncodeOptions::default()).unwrap(),
        compress::<u8>(&[], &[0], &EncodeOptions::default()).unwrap(),
    ]
}

/// Decodes an integer container of any dtype; the element count of what it decoded, which must
/// be the count its header declares.
fn decode_any(blob: &[u8]) -> Result<usize, CodecError> {
    let h = splitans::format::container::read_header(blob)?;
    let n = match h.int_dtype()? {
        splitans::DType::U8 => decompress::<u8>(blob, 1 << 30, 1)?.1.len(),
        splitans::DType::I8 => decompress::<i8>(blob, 1 << 30, 1)?.1.len(),
        splitans::DType::U16 => decompress::<u16>(blob, 1 << 30, 1)?.1.len(),
        splitans::DType::I16 => decompress::<i16>(blob, 1 << 30, 1)?.1.len(),
        splitans::DType::U32 => decompress::<u32>(blob, 1 << 30, 1)?.1.len(),
        splitans::DType::I32 => decompress::<i32>(blob, 1 << 30, 1)?.1.len(),
        splitans::DType::U64 => decompress::<u64>(blob, 1 << 30, 1)?.1.len(),
        splitans::DType::I64 => decompress::<i64>(blob, 1 << 30, 1)?.1.len(),
    };
    assert_eq!(
        n, h.count,
        "decoded {n} elements, the header declares {}",
        h.count
    );
    Ok(n)
}

#[test]
fn every_truncation_is_corrupt() {
    for blob in sample_blobs() {
        for len in 0..blob.len() {
            assert!(
                matches!(decode_any(&blob[..len]), Err(CodecError::Corrupt(_))),
                "len {len}"
            );
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert!(matches!(decode_any(&longer), Err(CodecError::Corrupt(_))));
    }
}

#[test]
fn every_single_bit_flip_is_detected() {
    for blob in sample_blobs() {
        for bit in 0..blob.len() * 8 {
            let mut bad = blob.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let err = decode_any(&bad).expect_err("flipped bit decoded");
            assert!(matches!(
                err,
                CodecError::Corrupt(_) | CodecError::UnsupportedVersion { .. }
            ));
        }
    }
}

#[test]
fn newer_version_is_unsupported() {
    let mut blob = sample_blobs().remove(0);
    blob[4] = 4;
    assert!(matches!(
        decode_any(&blob),
        Err(CodecError::UnsupportedVersion {
            found: 4,
            supported: 3
        })
    ));
    // A later compact container (first byte 0xF4..0xFF) too.
    let mut compact = vec![0xF5u8];
    compact.extend_from_slice(&[0; 12]);
    assert!(matches!(
        decode_any(&compact),
        Err(CodecError::UnsupportedVersion {
            found: 5,
            supported: 3
        })
    ));
}

#[test]
fn random_bytes_are_corrupt() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for len in [0usize, 1, 4, 20, 100, 10_000] {
        for _ in 0..50 {
            let mut junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if len >= 4 && rng.gen_bool(0.5) {
                junk[..4].copy_from_slice(b"SPNS");
                if len > 4 {
                    junk[4] = 1;
                }
            }
            assert!(decode_any(&junk).is_err());
        }
    }
}

/// Structure-level damage behind a recomputed checksum must still end in a documented error or
/// the declared length (`decode_any` checks it), never a panic: exercises the parsers past the
/// checksum. Both outcomes must occur, or the damage never got past the parsers.
#[test]
fn damage_behind_a_valid_checksum_never_panics() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let (mut decoded, mut refused) = (0, 0);
    for blob in sample_blobs() {
        for _ in 0..2000 {
            let mut bad = blob.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(12..bad.len().max(13)).min(bad.len() - 1);
                bad[i] = rng.gen();
            }
            let crc = {
                let mut h = crc32fast::Hasher::new();
                h.update(&bad[..8]);
                h.update(&bad[12..]);
                h.finalize()
            };
            bad[8..12].copy_from_slice(&crc.to_le_bytes());
            match decode_any(&bad) {
                Ok(_) => decoded += 1,
                Err(
                    CodecError::Corrupt(_)
                    | CodecError::OutputTooLarge { .. }
                    | CodecError::UnsupportedVersion { .. },
                ) => refused += 1,
                Err(e) => panic!("undocumented decoder error {e:?}"),
            }
        }
    }
    assert!(
        decoded > 100 && refused > 1000,
        "{decoded} decoded, {refused} refused"
    );
}

/// A symbols container must hold exactly one stream, whatever its checksum says.
#[test]
fn symbols_container_with_wrong_stream_count() {
    let blob = sample_blobs().remove(0);
    for streams in [0u8, 2] {
        let mut bad = blob.clone();
        bad[23] = streams;
        let mut h = crc32fast::Hasher::new();
        h.update(&bad[..8]);
        h.update(&bad[12..]);
        let crc = h.finalize();
        bad[8..12].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(decode_any(&bad), Err(CodecError::Corrupt(_))));
    }
}
