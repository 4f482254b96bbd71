//! Structured logs: JSON lines through `tracing`, level from `RUST_LOG` (default `info`).
//!
//! `RUST_LOG` takes a default level and per-target levels, e.g. `info` or `warn,worker_sync=debug`
//! (tracing-subscriber's `Targets` syntax: no span or field filters, so no regex engine in every
//! function). A value that does not parse falls back to `info`.
//!
//! Spans carry ids (job, run, loader, task), never secrets or whole requests.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// The filter for a `RUST_LOG` value: its directives, or `info` when unset or unparsable.
pub fn filter(rust_log: Option<&str>) -> Targets {
    rust_log
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// Installs the global JSON subscriber. Safe to call more than once (later calls are no-ops).
pub fn init() {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    let layer = fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_ansi(false)
        .with_filter(filter);
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;
    use tracing_subscriber::filter::LevelFilter;

    #[test]
    fn rust_log_sets_the_default_and_per_target_levels_and_bad_values_mean_info() {
        let f = filter(Some("warn,worker_sync=debug"));
        assert!(f.would_enable("worker_sync::engine", &Level::DEBUG));
        assert!(!f.would_enable("worker_sync::engine", &Level::TRACE));
        assert!(f.would_enable("aws_smithy_runtime", &Level::WARN));
        assert!(!f.would_enable("aws_smithy_runtime", &Level::INFO));
        assert_eq!(
            filter(Some("error")).default_level(),
            Some(LevelFilter::ERROR)
        );
        // A target alone means that target at every level and nothing else, as with EnvFilter.
        let only = filter(Some("worker_sync"));
        assert!(only.would_enable("worker_sync::copy", &Level::TRACE));
        assert!(!only.would_enable("hyper", &Level::ERROR));
        for unset in [None, Some(""), Some("  "), Some("a=loud"), Some("a=[span]")] {
            let f = filter(unset);
            assert_eq!(f.default_level(), Some(LevelFilter::INFO), "{unset:?}");
            assert!(!f.would_enable("ferry_shared", &Level::DEBUG), "{unset:?}");
        }
    }
}
