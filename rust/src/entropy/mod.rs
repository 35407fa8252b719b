//! Entropy coding: the interleaved rANS coder of one chunk ([`rans`]), the integer-only
//! frequency tables it codes with ([`freq`]), and one framed stream of chunks ([`stream`]).
//! FORMAT.md 3, 4 and 5.

pub mod freq;
pub mod rans;
pub mod stream;
