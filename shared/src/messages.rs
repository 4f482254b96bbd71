//! The typed messages the workers consume. Every queue carries exactly one of these enums, tagged by
//! `kind`, so an unknown or malformed body fails to decode and is reported as a failed record.

pub use crate::domain::sync::ObjectRef;
use crate::domain::sync::{Side, Trigger};
use serde::{Deserialize, Serialize};

/// Messages on the sync queue. `StartRun` is also what every job's schedule sends (its Input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SyncMessage {
    StartRun {
        job_id: String,
        #[serde(default)]
        trigger: Trigger,
        /// Set when the API already created the run (run now); absent for scheduled firings.
        #[serde(default)]
        run_id: Option<String>,
    },
    /// Page `page` (0-based) of one listing of a run; `token` is S3's continuation token (none for the
    /// first page). Each page sends its objects' copy messages, then the next page.
    ListPage {
        job_id: String,
        run_id: String,
        side: Side,
        page: u32,
        #[serde(default)]
        token: Option<String>,
        /// How many times a redelivered copy of this message was re-sent fresh (see worker-sync).
        #[serde(default)]
        hops: u32,
    },
    /// Copy these objects of a run (small objects travel in groups, a big one alone).
    CopyObjects {
        job_id: String,
        run_id: String,
        objects: Vec<ObjectRef>,
        #[serde(default)]
        hops: u32,
        /// The delivery this work belongs to as a lease holder (worker-sync): the first delivery's SQS
        /// message id, kept when a redelivery is re-sent fresh, so the re-sent message takes over the
        /// lease its crashed predecessor left instead of waiting for it to lapse.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<String>,
    },
    /// Copy parts `first..=last` of a big object whose multipart upload exists; the message that
    /// checkpoints the last missing part completes the upload.
    CopyParts {
        job_id: String,
        run_id: String,
        object: ObjectRef,
        first: u64,
        last: u64,
        #[serde(default)]
        hops: u32,
        /// The delivery this work belongs to as a lease holder (worker-sync): the first delivery's SQS
        /// message id, kept when a redelivery is re-sent fresh, so the re-sent message takes over the
        /// lease its crashed predecessor left instead of waiting for it to lapse.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<String>,
    },
}

/// Messages on the loader queue: tick `tick` of loader `loader_id` (see ARCHITECTURE §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LoaderMessage {
    Tick { loader_id: String, tick: u64 },
}

/// Messages on the transfer queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransferMessage {
    /// Build (or go on building) the zip download of a task.
    BuildZip { task_id: String },
}

/// Messages on the ingest queue: S3 notifications from the ingest bucket, the `s3:TestEvent` S3 sends
/// when a notification is configured, or an explicit request from `POST /events/ingest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IngestMessage {
    Request(IngestRequest),
    S3Test(S3TestEvent),
    S3(aws_lambda_events_s3::S3Notification),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum IngestRequest {
    Ingest {
        bucket: String,
        key: String,
    },
    /// The next slice of load `load_id` of `key`, sent by the worker whose invocation ran out of its time
    /// slice; it resumes from the load's checkpoint if the object still has `etag`.
    Continue {
        bucket: String,
        key: String,
        load_id: u64,
        etag: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3TestEvent {
    pub event: String,
    pub bucket: String,
}

/// The parts of an S3 event notification ferry reads (kept here so the pure crate needs no AWS types).
pub mod aws_lambda_events_s3 {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    pub struct S3Notification {
        pub records: Vec<S3Record>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct S3Record {
        pub event_name: String,
        pub s3: S3Entity,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct S3Entity {
        pub bucket: S3Bucket,
        pub object: S3Object,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct S3Bucket {
        pub name: String,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct S3Object {
        /// URL-encoded, `+` for spaces, as S3 sends it.
        pub key: String,
        #[serde(default)]
        pub size: Option<u64>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_input_decodes_as_start_run() {
        let m: SyncMessage =
            serde_json::from_str(r#"{"kind":"start_run","job_id":"j1","trigger":"schedule"}"#)
                .unwrap();
        assert_eq!(
            m,
            SyncMessage::StartRun {
                job_id: "j1".into(),
                trigger: Trigger::Schedule,
                run_id: None
            }
        );
    }

    #[test]
    fn every_sync_message_kind_round_trips() {
        let obj = ObjectRef {
            key: "a b/ü".into(),
            size: 3,
            etag: Some("\"e\"".into()),
            last_modified: None,
        };
        let all = [
            SyncMessage::ListPage {
                job_id: "j".into(),
                run_id: "r".into(),
                side: Side::Destination,
                page: 2,
                token: Some("t".into()),
                hops: 0,
            },
            SyncMessage::CopyObjects {
                job_id: "j".into(),
                run_id: "r".into(),
                objects: vec![obj.clone()],
                hops: 1,
                lease: Some("m-1".into()),
            },
            SyncMessage::CopyParts {
                job_id: "j".into(),
                run_id: "r".into(),
                object: obj,
                first: 1,
                last: 64,
                hops: 0,
                lease: None,
            },
        ];
        for m in all {
            let text = serde_json::to_string(&m).unwrap();
            assert_eq!(
                serde_json::from_str::<SyncMessage>(&text).unwrap(),
                m,
                "{text}"
            );
        }
    }

    #[test]
    fn unknown_kinds_and_fields_do_not_decode() {
        assert!(
            serde_json::from_str::<SyncMessage>(r#"{"kind":"explode","job_id":"j1"}"#).is_err()
        );
        assert!(
            serde_json::from_str::<SyncMessage>(r#"{"kind":"start_run","job_id":"j1","x":1}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<LoaderMessage>(r#"{"kind":"tick","loader_id":"l"}"#).is_err()
        );
    }

    #[test]
    fn ingest_queue_accepts_requests_test_events_and_notifications() {
        let req: IngestMessage =
            serde_json::from_str(r#"{"kind":"ingest","bucket":"b","key":"k"}"#).unwrap();
        assert!(matches!(req, IngestMessage::Request(_)));
        let cont: IngestMessage = serde_json::from_str(
            r#"{"kind":"continue","bucket":"b","key":"k","load_id":7,"etag":"e"}"#,
        )
        .unwrap();
        assert!(matches!(
            cont,
            IngestMessage::Request(IngestRequest::Continue { load_id: 7, .. })
        ));
        let test: IngestMessage = serde_json::from_str(
            r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"t","Bucket":"b","RequestId":"r","HostId":"h"}"#,
        )
        .unwrap();
        assert!(matches!(test, IngestMessage::S3Test(_)));
        let n: IngestMessage = serde_json::from_str(
            r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a%2Fb.txt","size":3}}}]}"#,
        )
        .unwrap();
        assert!(matches!(n, IngestMessage::S3(_)));
    }
}
