//! ferry's shared library: what every function uses, so that each `main.rs` only wires.
//!
//! Pure modules (always built): [`config`], [`telemetry`], [`keys`], [`schedule`], [`domain`],
//! [`messages`]. Adapters and edges sit behind features so a function compiles only what it uses:
//! `dynamo` ([`store`]), `sqs` ([`queue`]), `secrets` ([`secrets`]), `http` ([`http`]), `auth` ([`auth`]),
//! `worker` ([`worker`]), `events-sql` ([`events_sql`]), `dynamo` + `sqs` ([`runs`]).

pub mod config;
pub mod domain;
pub mod keys;
pub mod messages;
pub mod schedule;
pub mod telemetry;

#[cfg(feature = "auth")]
pub mod auth;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "events-sql")]
pub mod events_sql;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "loaders")]
pub mod loaders;
#[cfg(feature = "sqs")]
pub mod queue;
#[cfg(all(feature = "dynamo", feature = "sqs"))]
pub mod runs;
#[cfg(feature = "secrets")]
pub mod secrets;
#[cfg(feature = "dynamo")]
pub mod store;
#[cfg(feature = "worker")]
pub mod worker;
