//! Whole operations built on the layers below: lossy compression of a feature tensor
//! ([`feature`]), fitted codecs shared by edge and server ([`codec`]), and many tensors in one
//! call ([`batch`]).

pub mod batch;
pub mod codec;
pub mod feature;
