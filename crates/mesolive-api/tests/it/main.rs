//! mesolive-api's integration tests, one binary: the decoders against hostile and arbitrary
//! payloads. They need nothing but this crate (`cargo test -p mesolive-api`).

mod decoders;
mod support;
