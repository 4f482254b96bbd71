//! Operations on a loader's target that api-loaders has worker-loader do, through a synchronous Lambda
//! Invoke: the reachability check before a start, the count, and the drops. The worker links the
//! MongoDB driver anyway; linking it into the API function as well would take that one over its 10 MB
//! budget (issue #2, bench/RESULTS.md). MongoDB only: the other kinds' drivers are small, and their
//! routes call them in place.
//!
//! The request carries the target's credentials (a password or a connection string): it goes from one
//! ferry function to another over the Lambda API (TLS, IAM-signed; payloads are not logged), and
//! neither side logs it (`Creds`' Debug is redacted).

use super::{Creds, TargetError};
use crate::domain::loader::{Kind, Target};
use serde::{Deserialize, Serialize};

/// What to do on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetOp {
    /// Connect and make sure the server answers (a start's reachability check).
    Check,
    /// Count the documents of `collection`.
    Count,
    DropDatabase,
    DropCollection,
}

/// A direct invocation of worker-loader. `target_op` is what tells it apart from an SQS event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRequest {
    pub target_op: TargetOp,
    pub kind: Kind,
    pub target: Target,
    #[serde(default)]
    pub creds: Creds,
    pub database: String,
    #[serde(default)]
    pub collection: String,
}

/// A failed operation: the target's error, and whether it happened while connecting (reaching and
/// authenticating to the server) or in the operation itself, so the API can name the right field.
#[derive(Debug)]
pub struct TargetFailure {
    pub connecting: bool,
    pub error: TargetError,
}

/// worker-loader's answer: the operation's result, or the target's error in the words the API maps to
/// an HTTP status (`Unreachable` 502, `Refused` 4xx, `Failed` 502).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TargetReply {
    Done {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
    },
    Unreachable {
        message: String,
        connecting: bool,
    },
    Refused {
        message: String,
        connecting: bool,
    },
    Failed {
        message: String,
        connecting: bool,
    },
}

impl From<Result<Option<u64>, TargetFailure>> for TargetReply {
    fn from(r: Result<Option<u64>, TargetFailure>) -> Self {
        let TargetFailure { connecting, error } = match r {
            Ok(count) => return TargetReply::Done { count },
            Err(f) => f,
        };
        match error {
            TargetError::Unreachable(message) => TargetReply::Unreachable {
                message,
                connecting,
            },
            TargetError::Refused(message) => TargetReply::Refused {
                message,
                connecting,
            },
            TargetError::Failed(message) => TargetReply::Failed {
                message,
                connecting,
            },
        }
    }
}

impl From<TargetReply> for Result<Option<u64>, TargetFailure> {
    fn from(r: TargetReply) -> Self {
        let (connecting, error) = match r {
            TargetReply::Done { count } => return Ok(count),
            TargetReply::Unreachable {
                message,
                connecting,
            } => (connecting, TargetError::Unreachable(message)),
            TargetReply::Refused {
                message,
                connecting,
            } => (connecting, TargetError::Refused(message)),
            TargetReply::Failed {
                message,
                connecting,
            } => (connecting, TargetError::Failed(message)),
        };
        Err(TargetFailure { connecting, error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip_and_an_sqs_event_is_not_a_request() {
        let req: TargetRequest = serde_json::from_value(serde_json::json!({
            "target_op": "drop_collection", "kind": "mongo",
            "target": {"host": "127.0.0.1", "port": 27017},
            "creds": {"password": "pw"}, "database": "d", "collection": "c"
        }))
        .unwrap();
        assert_eq!(req.target_op, TargetOp::DropCollection);
        assert!(!format!("{req:?}").contains("pw"), "creds are redacted");
        assert!(
            serde_json::from_value::<TargetRequest>(serde_json::json!({"Records": []})).is_err()
        );
        let fail = |connecting, error| Err(TargetFailure { connecting, error });
        for r in [
            Ok(Some(7)),
            Ok(None),
            fail(true, TargetError::Unreachable("u".into())),
            fail(false, TargetError::Refused("r".into())),
            fail(true, TargetError::Failed("f".into())),
        ] {
            let text = format!("{r:?}");
            let reply = TargetReply::from(r);
            let back: TargetReply =
                serde_json::from_str(&serde_json::to_string(&reply).unwrap()).unwrap();
            let again: Result<Option<u64>, TargetFailure> = back.into();
            assert_eq!(format!("{again:?}"), text);
        }
    }
}
