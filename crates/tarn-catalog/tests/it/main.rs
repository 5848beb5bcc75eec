//! tarn-catalog's integration tests, one binary. Every test of the catalog's behaviour runs
//! on SQLite and on PostgreSQL (`backends.rs`); `sqlite.rs` and `postgres.rs` hold what is
//! specific to one backend (old files, query plans, connecting, round trips).

mod backends;
mod branches;
mod conformance;
mod differential;
mod lake;
mod postgres;
mod registry;
mod sqlite;
