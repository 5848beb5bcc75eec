//! Integration tests of the tarn library (one binary: `cargo test -p tarn --test it`).

mod common;
