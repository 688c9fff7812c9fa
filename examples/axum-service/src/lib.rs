//! The example service's parts that its tests and benchmark use too: the SQLite session store
//! and the session-cleanup job. `main.rs` is the service.

pub mod cleanup;
pub mod store;
