//! Context coders: codes of at most 8 bits coded by tables chosen from their neighbours.
//! [`context`] adapts its tables as it codes (feature mode 2, FORMAT.md 6.11); [`pctx`] codes
//! with static tables from a model fitted once ([`fit`]) and decodes in parallel lanes
//! (FORMAT.md 9.4).

pub mod context;
pub mod fit;
pub mod pctx;
