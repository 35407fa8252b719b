//! The frequency-table reader: any table it accepts must be a valid table, and the decoder
//! built from it must cover every slot.
#![no_main]
use libfuzzer_sys::fuzz_target;
use splitans::bytes::Reader;
use splitans::entropy::freq::FreqTable;
use splitans::entropy::rans::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let Some((&params, rest)) = data.split_first() else { return };
    let precision = params & 31;
    let alphabet = if params & 32 == 0 { 256 } else { 65536 };
    let mut r = Reader::new(rest);
    if let Ok(t) = FreqTable::read(&mut r, precision, alphabet) {
        assert!(t.symbols.len() >= 2);
        assert!(t.symbols.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(t.freqs.iter().map(|&f| u64::from(f)).sum::<u64>(), 1 << t.precision_bits);
        let _ = Decoder::new(&t);
        let _ = Encoder::new(&t, alphabet as usize);
        // The writer may pick another Exp-Golomb parameter than the input used, but what it
        // writes must read back as the same table.
        let mut again = Vec::new();
        t.write(&mut again);
        let back = FreqTable::read(&mut Reader::new(&again), precision, alphabet).unwrap();
        assert_eq!(back, t);
    }
});
