//! The fitted codec's decode and encode of one cached sample in a loop, without Python: what
//! the kernels cost (issue 24 item 3, benches/NOTES.md 46, 50). It reads the codec and blob that
//! `benches/fitted_loop.py` keeps in its cache, so run that once per point first:
//!
//! ```text
//! python benches/fitted_loop.py --point lite0.stem --call decode --n 1
//! cargo bench --bench fitted_decode -- lite0.stem lite0.block3.expand
//! SPLITANS_DISABLE_AVX512=1 cargo bench --bench fitted_decode -- lite0.stem
//! ```
//!
//! `FITTED_CACHE` names another cache folder (default `~/.cache/splitans/bench`). Prints, per
//! point, the median and the best of 5 rounds of 60 decodes (`Codec::decode_codes`, the output
//! allocated each call as the Python call does), then of 60 encodes of the decoded codes
//! (`Codec::encode_codes`: the codes to the same blob, without the quantization), in ms, and G
//! codes a second at the median.

use std::time::Instant;

use splitans::pipeline::codec::Codec;

fn main() {
    let dir = std::env::var("FITTED_CACHE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/splitans/bench",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    // `cargo bench` passes `--bench`; every other argument is a point.
    let points: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    for point in points {
        let read = |ext: &str| {
            let path = format!("{dir}/{point}.{ext}");
            std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{path}: {e} (run benches/fitted_loop.py first)"))
        };
        let codec = Codec::from_bytes(&read("codec")).expect("a codec");
        let blob = read("blob");
        let (info, q) = codec
            .decode_codes(&blob, 1 << 40)
            .expect("a blob of this codec");
        assert_eq!(codec.encode_codes(&q, &info.shape, &info.params), blob);
        let codes = q.len();
        let time = |f: &dyn Fn()| {
            let mut rounds: Vec<f64> = (0..5)
                .map(|_| {
                    let t = Instant::now();
                    for _ in 0..60 {
                        f();
                    }
                    t.elapsed().as_secs_f64() / 60.0
                })
                .collect();
            rounds.sort_by(f64::total_cmp);
            rounds
        };
        let decode = time(&|| {
            std::hint::black_box(codec.decode_codes(&blob, 1 << 40).unwrap());
        });
        let encode = time(&|| {
            std::hint::black_box(codec.encode_codes(&q, &info.shape, &info.params));
        });
        for (call, rounds) in [("decode", decode), ("encode", encode)] {
            println!(
                "{point} {call}: median {:.3} ms, best {:.3} ms, {:.3} G codes/s ({} codes, {} \
                 bytes)",
                rounds[2] * 1e3,
                rounds[0] * 1e3,
                codes as f64 / rounds[2] / 1e9,
                codes,
                blob.len()
            );
        }
    }
}
