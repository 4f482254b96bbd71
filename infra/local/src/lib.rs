//! ferry's local stack tooling, driven by `infra/template.yaml` (the single source of truth):
//! - [`provision`]: creates the template's tables, queues, buckets, schedule group and secrets on the
//!   local services and records them in `resources.json` ([`state`]);
//! - [`env`]: the functions' environment variables, resolved against what was provisioned;
//! - [`routes`] and [`gateway`]: the template's HttpApi routes, served locally as API Gateway serves them;
//! - [`pump`]: SQS -> function invocations and schedule firings, which AWS would do and the local
//!   services don't.
//!
//! The binary `ferry-local` is a thin CLI over these modules; the lead's infra tests call [`env`] and
//! [`routes`] directly.

pub mod clients;
pub mod env;
pub mod gateway;
pub mod provision;
pub mod pump;
pub mod resolve;
pub mod routes;
pub mod state;
pub mod template;

pub use env::{env_vars_of, function_env};
pub use routes::routes;
pub use template::Template;
