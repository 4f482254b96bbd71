//! api-events as a library: the router, so tests and benches call the handlers in-process.

pub mod routes;
