//! Entropy coding: the interleaved rANS coder of one chunk ([`rans`]), the integer-only
//! frequency tables it codes with ([`freq`]), the histograms they are built from
//! ([`histogram`]), and one framed stream of chunks ([`stream`]). FORMAT.md 3, 4 and 5.

pub mod freq;
pub mod histogram;
pub mod rans;
pub mod stream;
