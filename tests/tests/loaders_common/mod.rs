//! Helpers the loader e2e files share: a loader's view through the API, and waiting for its phase.

use ferry_tests::{base_url, call, http};
use serde_json::Value;
use std::time::{Duration, Instant};

/// `GET /loaders/{id}`, which must answer 200.
pub async fn loader(id: &str) -> Value {
    let (s, b) = call(http().get(format!("{}/loaders/{id}", base_url()))).await;
    assert_eq!(s, 200, "{b}");
    b
}

/// Waits up to `wait` for the loader to reach `phase` (failing at once if it fails) and returns its view.
/// A timeout fails with the loader's last view and the local stack's log lines about it, so a stall
/// seen only in CI can be told apart (tick lost, worker error, slow target).
pub async fn until_phase(id: &str, phase: &str, wait: Duration) -> Value {
    let start = Instant::now();
    loop {
        let l = loader(id).await;
        assert_ne!(l["phase"], "failed", "{l}");
        if l["phase"] == phase {
            return l;
        }
        if start.elapsed() >= wait {
            panic!(
                "timed out after {wait:?} waiting for loader {id} in {phase}; last view: {l}\n{}",
                log_lines(id)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The last lines of the watch and pump logs that mention `needle`.
fn log_lines(needle: &str) -> String {
    let dir = std::env::var("FERRY_STATE_DIR").unwrap_or_else(|_| ".ferry".into());
    let mut out = String::new();
    for name in ["watch", "pump"] {
        let path = format!("{dir}/logs/{name}.log");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let hits: Vec<&str> = text.lines().filter(|l| l.contains(needle)).collect();
        out += &format!("--- {path}: last of {} lines naming it\n", hits.len());
        for line in &hits[hits.len().saturating_sub(15)..] {
            out += &line.chars().take(400).collect::<String>();
            out.push('\n');
        }
    }
    out
}
