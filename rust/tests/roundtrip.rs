//! Seeded round trips of the codec over distributions, sizes, dtypes and options.

use rand::distributions::{Distribution, WeightedIndex};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use splitans::format::container::{self, Kind};
use splitans::{compress, decompress, encode_symbols, max_compressed_size, DType, EncodeOptions};

const NO_LIMIT: u64 = u64::MAX;

fn skewed(rng: &mut ChaCha8Rng, n: usize, alphabet: usize) -> Vec<u32> {
    let weights: Vec<f64> = (0..alphabet).map(|i| 0.7f64.powi(i as i32)).collect();
    let d = WeightedIndex::new(&weights).unwrap();
    (0..n).map(|_| d.sample(rng) as u32).collect()
}

fn round_trip_u8(data: &[u8], opts: &EncodeOptions) -> Vec<u8> {
    let blob = encode_symbols(data, opts).unwrap();
    assert!(blob.len() <= max_compressed_size(data.len(), DType::U8, 1).unwrap());
    let (h, back) = decompress::<u8>(&blob, NO_LIMIT, opts.threads).unwrap();
    assert_eq!(h.kind, Kind::Symbols);
    assert_eq!(back, data);
    blob
}

#[test]
fn sizes_and_distributions_u8() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for &n in &[
        0usize, 1, 2, 31, 32, 33, 255, 256, 1000, 8191, 65535, 65536, 65537, 300_001,
    ] {
        let uniform: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
        let skew: Vec<u8> = skewed(&mut rng, n, 40)
            .into_iter()
            .map(|v| v as u8)
            .collect();
        let constant = vec![7u8; n];
        let two: Vec<u8> = (0..n)
            .map(|i| if i % 1000 == 0 { 255 } else { 0 })
            .collect();
        for data in [&uniform, &skew, &constant, &two] {
            for threads in [1, 0] {
                let opts = EncodeOptions {
                    threads,
                    ..Default::default()
                };
                round_trip_u8(data, &opts);
            }
        }
    }
}

#[test]
fn skewed_data_compresses_near_entropy() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let n = 1 << 20;
    let data: Vec<u8> = skewed(&mut rng, n, 60)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    let blob = round_trip_u8(&data, &EncodeOptions::default());
    let mut counts = [0f64; 256];
    for &b in &data {
        counts[b as usize] += 1.0;
    }
    let bound: f64 = counts
        .iter()
        .filter(|&&c| c > 0.0)
        .map(|&c| -c * (c / n as f64).log2())
        .sum::<f64>()
        / 8.0;
    let ratio = blob.len() as f64 / bound;
    assert!(ratio < 1.01, "size {} vs bound {bound:.0}", blob.len());
}

#[test]
fn every_precision_and_chunk_size() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let data: Vec<u8> = skewed(&mut rng, 20_000, 16)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    for p in 4..=16u8 {
        for chunk_log2 in [8u8, 12, 16, 24] {
            let opts = EncodeOptions {
                precision_bits: Some(p),
                chunk_log2: Some(chunk_log2),
                threads: 1,
            };
            round_trip_u8(&data, &opts);
        }
    }
}

#[test]
fn precision_too_small_for_alphabet_is_an_argument_error() {
    let data: Vec<u8> = (0..=255).collect();
    let opts = EncodeOptions {
        precision_bits: Some(7),
        ..Default::default()
    };
    assert!(matches!(
        encode_symbols(&data, &opts),
        Err(splitans::CodecError::InvalidArgument(_))
    ));
}

#[test]
fn wide_alphabets_u16() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let full: Vec<u16> = (0..=u16::MAX).chain(0..=u16::MAX).collect();
    let random: Vec<u16> = (0..100_000).map(|_| rng.gen()).collect();
    let skew: Vec<u16> = skewed(&mut rng, 100_000, 3000)
        .into_iter()
        .map(|v| (v * 17) as u16)
        .collect();
    let mut full_shuffled = full.clone();
    for i in (1..full_shuffled.len()).rev() {
        full_shuffled.swap(i, rng.gen_range(0..=i));
    }
    for data in [&full, &full_shuffled, &random, &skew] {
        let blob = encode_symbols(data, &EncodeOptions::default()).unwrap();
        let (_, back) = decompress::<u16>(&blob, NO_LIMIT, 0).unwrap();
        assert_eq!(&back, data);
    }
}

fn check_array<T: splitans::Element + PartialEq + std::fmt::Debug>(data: &[T], shape: &[usize]) {
    let blob = compress(data, shape, &EncodeOptions::default()).unwrap();
    let n: usize = shape.iter().product();
    assert!(blob.len() <= max_compressed_size(n, T::DTYPE, shape.len()).unwrap());
    let (h, back) = decompress::<T>(&blob, NO_LIMIT, 0).unwrap();
    assert_eq!(h.shape, shape);
    assert_eq!(h.elem, splitans::format::container::ElemType::Int(T::DTYPE));
    assert_eq!(back, data);
}

#[test]
fn integer_arrays_of_every_dtype() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let n = 3 * 5 * 700;
    let shape = [3usize, 5, 700];
    let small = |rng: &mut ChaCha8Rng| rng.gen_range(-300i64..300);
    let v: Vec<i64> = (0..n).map(|_| small(&mut rng)).collect();
    check_array(&v.iter().map(|&x| x as u8).collect::<Vec<_>>(), &shape);
    check_array(&v.iter().map(|&x| x as i8).collect::<Vec<_>>(), &shape);
    check_array(&v.iter().map(|&x| x as u16).collect::<Vec<_>>(), &shape);
    check_array(&v.iter().map(|&x| x as i16).collect::<Vec<_>>(), &shape);
    check_array(&v.iter().map(|&x| x as u32).collect::<Vec<_>>(), &shape);
    check_array(&v.iter().map(|&x| x as i32).collect::<Vec<_>>(), &shape);
    check_array(&v, &shape);
    check_array(
        &(0..n).map(|_| rng.gen::<u32>()).collect::<Vec<_>>(),
        &shape,
    );
    check_array(&[-5i32], &[]);
    check_array::<i16>(&[], &[0, 4]);
    check_array::<u8>(&[], &[0]);
}

#[test]
fn never_expands_beyond_the_bound() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for n in [10usize, 100, 1000, 10_000] {
        let data: Vec<u16> = (0..n).map(|_| rng.gen()).collect();
        let blob = encode_symbols(&data, &EncodeOptions::default()).unwrap();
        assert!(blob.len() <= max_compressed_size(n, DType::U16, 1).unwrap());
        let h = container::read_header(&blob).unwrap();
        assert_eq!(container::streams(&blob, &h).unwrap()[0].mode.name(), "raw");
    }
}

#[test]
fn output_limit_is_enforced_before_decoding() {
    let data = vec![1u8; 10_000];
    let blob = encode_symbols(&data, &EncodeOptions::default()).unwrap();
    assert!(matches!(
        decompress::<u8>(&blob, 9_999, 1),
        Err(splitans::CodecError::OutputTooLarge {
            needed: 10_000,
            limit: 9_999
        })
    ));
    assert!(decompress::<u8>(&blob, 10_000, 1).is_ok());
}

#[test]
fn threads_do_not_change_the_bytes() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let data: Vec<u8> = skewed(&mut rng, 1 << 20, 100)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    let a = encode_symbols(
        &data,
        &EncodeOptions {
            threads: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let b = encode_symbols(
        &data,
        &EncodeOptions {
            threads: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let c = encode_symbols(
        &data,
        &EncodeOptions {
            threads: 3,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
}
