//! Integration tests of the tarn library, in one binary: `cargo test -p tarn --test it`.
//!
//! - `model`: random mutation sequences against a plain-vector model of SPEC §3.
//! - `failpoints`: failures injected at each I/O step of a write (SPEC §2, §12).
//! - `bad_input`: every wrong input is rejected clearly and leaves the lake unchanged (§12).
//! - `freq_model`: the same model with frequency row-group targets (planning on a window).
//! - `branches`: branches, tags and pinned lake states against a model (docs/design/0003).
//! - `diff`: `Lake::diff` against a brute-force model, and which row groups it reads.
//! - `intersect`: iterating datasets in step (SPEC §4) against a brute-force model, and its
//!   memory bound.
//! - `collection`: `#[derive(tarn::Key)]`, collection discovery, filters, the first-write check.
//! - `coalescing`: trailing coalescing through a lake: appends follow `tarn::coalesce`'s plan,
//!   write amplification, both rules, the tail's read cost (SPEC §3.5, design/0007).
//! - `versions`: row-group-granular rewrites, ref forms, no-op writes, vacuum (§1–§5).
//! - `refs`: every ref form at its edges, tags, refs on branches, lake states (§5, 0003).
//! - `retention`: vacuum with branches, tags and merges; repeated fast-forwards (§2, 0003).

mod common;

mod bad_input;
mod branches;
mod coalescing;
mod collection;
mod diff;
mod failpoints;
mod freq_model;
mod intersect;
mod model;
mod refs;
mod retention;
mod streaming;
mod versions;
