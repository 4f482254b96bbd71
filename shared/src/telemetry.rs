//! Structured logs: JSON lines through `tracing`, level from `RUST_LOG` (default `info`).
//!
//! Spans carry ids (job, run, loader, task), never secrets or whole requests.

use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global JSON subscriber. Safe to call more than once (later calls are no-ops).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}
