//! Support for the decoder tests.

pub(crate) mod events;
