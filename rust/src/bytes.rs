//! Bounds-checked little-endian reading and writing. Every read of input goes through `Reader`,
//! so a short or lying input becomes a `Corrupt` error instead of a panic.

use crate::error::{corrupt, Result};

pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The bytes not yet read (without reading them).
    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(corrupt!(
                "truncated {what}: needs {n} bytes at offset {}, {} left",
                self.pos,
                self.remaining()
            ));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self, what: &str) -> Result<u64> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Unsigned LEB128, at most 5 bytes, value must fit in u32 and be minimally encoded.
    pub fn varint(&mut self, what: &str) -> Result<u32> {
        let mut value: u64 = 0;
        for i in 0..5 {
            let byte = self.u8(what)?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && byte == 0 {
                    return Err(corrupt!("non-canonical varint in {what}"));
                }
                return u32::try_from(value).map_err(|_| corrupt!("varint overflow in {what}"));
            }
        }
        Err(corrupt!("varint longer than 5 bytes in {what}"))
    }
}

impl Reader<'_> {
    /// Unsigned LEB128 of up to 64 bits (FORMAT.md 10.1): at most 10 bytes, minimally encoded.
    pub fn varint64(&mut self, what: &str) -> Result<u64> {
        let mut value: u64 = 0;
        for i in 0..9 {
            let byte = self.u8(what)?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && byte == 0 {
                    return Err(corrupt!("non-canonical varint in {what}"));
                }
                return Ok(value);
            }
        }
        // The tenth byte holds bit 63 only, and ends the varint.
        match self.u8(what)? {
            0 => Err(corrupt!("non-canonical varint in {what}")),
            1 => Ok(value | 1 << 63),
            _ => Err(corrupt!("varint overflow in {what}")),
        }
    }
}

pub fn put_varint64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The length of what `put_varint64` (or `put_varint`) writes for `v`.
pub fn varint64_len(v: u64) -> usize {
    1 + (63 - (v | 1).leading_zeros() as usize) / 7
}

pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
