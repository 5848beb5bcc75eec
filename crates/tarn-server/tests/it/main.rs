//! The HTTP contract of `tarn serve` (SPEC §9), driven through `app(state)` without a socket.

mod api;
mod queue;
