//! Domain types and their state transitions: pure functions `(state, command) -> Result<state, Conflict>`,
//! tested without I/O. Adapters apply them with conditional writes (see `store`).

pub mod events;
pub mod loader;
pub mod sync;
pub mod transfer;
pub mod user;

/// A transition the current state does not allow. Surfaces as 409 over HTTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Conflict(pub String);

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A new time-ordered id (UUIDv7): listings sorted by id are sorted by creation.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
