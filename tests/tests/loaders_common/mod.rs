//! Helpers the loader e2e files share: a loader's view through the API, and waiting for its phase.

use ferry_tests::{base_url, call, eventually, http};
use serde_json::Value;
use std::time::Duration;

/// `GET /loaders/{id}`, which must answer 200.
pub async fn loader(id: &str) -> Value {
    let (s, b) = call(http().get(format!("{}/loaders/{id}", base_url()))).await;
    assert_eq!(s, 200, "{b}");
    b
}

/// Waits up to `wait` for the loader to reach `phase` (failing at once if it fails) and returns its view.
pub async fn until_phase(id: &str, phase: &str, wait: Duration) -> Value {
    eventually(&format!("loader {id} in {phase}"), wait, || async {
        let l = loader(id).await;
        assert_ne!(l["phase"], "failed", "{l}");
        (l["phase"] == phase).then_some(l)
    })
    .await
}
