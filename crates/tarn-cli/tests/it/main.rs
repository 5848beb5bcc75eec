//! Process-level integration tests of the `tarn` binary: concurrent writers, killed writers,
//! bad input (SPEC §12), the input/output formats and `--json` contract (SPEC §11), `diff`,
//! `tarn intersect`, `tarn serve` (`serve`: the queue through kill -9, idempotency,
//! event streams, refusals), collections (SPEC §1), version control (`vc`: tags, branches, merges,
//! `--as-of`), SQL (`query`), the registry (SPEC §7) and the shared deployment (`backends`:
//! PostgreSQL + S3, SPEC §14) and how the binary is linked (`startup`). The process-level
//! tests of concurrency and crashes run on SQLite + local files and on PostgreSQL + S3 (with
//! the servers of scripts/with-services).

mod backends;
mod bad_input;
mod collection;
mod common;
mod concurrency;
mod crash;
mod diff;
mod formats;
mod intersect;
mod memory;
mod query;
mod registry;
mod serve;
mod startup;
mod vc;
