//! worker-ingest as a library: the engine, so tests and benches drive the same code in-process.

pub mod engine;
