//! Decoding a chunk's symbols straight to values, `map[symbol]`: a small feature's codes become
//! their dequantized values inside the decode loop, with no code array written and read back
//! (NOTES.md 76, 88). Lanes as in the parent module; one lane runs `decode_one_lane_as`, 2 to 16
//! lanes a copy of `decode_lanes`'s loop.

use super::{Cursor, Decoder, RANS_L};
use crate::error::{corrupt, Result};

impl Decoder {
    /// `decode_piece` of a chunk of 1, 2, 4, 8 or 16 lanes whose symbols are all below 256 (the
    /// caller checks the table), writing `map[symbol]` instead of the symbol: a small feature's
    /// codes go straight to their dequantized values, off the states' chains, with no pass over
    /// the codes after (NOTES.md 76, 88). Fails as `decode_piece` fails.
    pub fn decode_piece_mapped<T: Copy>(
        &self,
        c: &mut Cursor<'_>,
        out: &mut [T],
        map: &[T; 256],
    ) -> Result<()> {
        let emit = |s: u16| map[usize::from(s as u8)];
        if c.words.len() >= 2 {
            let (x, w, pos) = (&mut c.x, c.words, &mut c.pos);
            return match c.lanes {
                1 => self.decode_one_lane_as(&mut x[0], w, pos, out, emit),
                2 => self.decode_lanes_mapped::<T, 2>(&mut x[..2], w, pos, out, map),
                4 => self.decode_lanes_mapped::<T, 4>(&mut x[..4], w, pos, out, map),
                8 => self.decode_lanes_mapped::<T, 8>(&mut x[..8], w, pos, out, map),
                16 => self.decode_lanes_mapped::<T, 16>(&mut x[..16], w, pos, out, map),
                l => panic!("decode_piece_mapped: a chunk of {l} lanes"),
            };
        }
        // No words: every symbol is decoded without one (or the chunk is corrupt).
        let mut syms = vec![0u16; out.len()];
        self.decode_checked_lanes(&mut c.x[..c.lanes], c.words, &mut c.pos, &mut syms)?;
        for (o, &s) in out.iter_mut().zip(&syms) {
            *o = map[usize::from(s as u8)];
        }
        Ok(())
    }

    /// `decode_lanes` writing `map[symbol]` for each symbol (`decode_piece_mapped`). Its own
    /// copy of the loop: `decode_lanes` written as this loop with the symbol as its map
    /// decoded 8 lanes 11 % slower (NOTES.md 89).
    fn decode_lanes_mapped<T: Copy, const L: usize>(
        &self,
        x: &mut [u32],
        words: &[u8],
        pos: &mut usize,
        out: &mut [T],
        map: &[T; 256],
    ) -> Result<()> {
        let last = words.len() / 2 - 1;
        let (p, mask) = (self.precision_bits, (1u32 << self.precision_bits) - 1);
        // Exactly 2^p slots each (`new`): every masked slot is inside.
        let (fb, syms) = (&self.fb[..=mask as usize], &self.syms[..=mask as usize]);
        let mut xs: [u32; L] = x.try_into().expect("decode_lanes_mapped with L lanes");
        let mut ps = *pos;
        let full = out.len() - out.len() % L;
        for step in out[..full].chunks_exact_mut(L) {
            for (xl, o) in xs.iter_mut().zip(step) {
                let slot = (*xl & mask) as usize;
                // SAFETY: slot <= mask, and fb and syms hold mask + 1 entries.
                let (e, sym) = unsafe { (*fb.get_unchecked(slot), *syms.get_unchecked(slot)) };
                *o = map[usize::from(sym as u8)];
                let xn = (e >> 16).wrapping_mul(*xl >> p).wrapping_add(e & 0xffff);
                let i = 2 * ps.min(last);
                // SAFETY: i + 1 <= 2 * last + 1 < words.len() (last = words.len() / 2 - 1).
                let word = u32::from(u16::from_le_bytes(unsafe {
                    [*words.get_unchecked(i), *words.get_unchecked(i + 1)]
                }));
                let need = xn < RANS_L;
                *xl = std::hint::select_unpredictable(need, (xn << 16) | word, xn);
                ps += usize::from(need);
            }
        }
        if ps > last + 1 {
            return Err(corrupt!("rANS chunk ran out of words"));
        }
        x.copy_from_slice(&xs);
        *pos = ps;
        let mut tail = [0u16; L];
        let tail = &mut tail[..out.len() - full];
        self.decode_checked_lanes(x, words, pos, tail)?;
        for (o, &s) in out[full..].iter_mut().zip(tail.iter()) {
            *o = map[usize::from(s as u8)];
        }
        Ok(())
    }
}
