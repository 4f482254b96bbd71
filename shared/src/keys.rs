//! The single-table key layout. Handlers never build key strings by hand: they ask this module.
//!
//! | item | pk | sk | gsi1pk | gsi1sk |
//! |---|---|---|---|---|
//! | user | `USER#{name}` | `PROFILE` | | |
//! | sync job | `JOB#{id}` | `JOB` | `JOBS` | `{created}#{id}` |
//! | run | `JOB#{job}` | `RUN#{run}` | | |
//! | object record | `RUN#{run}` | `OBJ#{key}` | | |
//! | listing page done | `RUN#{run}` | `PAGE#{side}#{page:06}` | | |
//! | loader | `LOADER#{id}` | `LOADER` | `LOADERS` | `{created}#{id}` |
//! | loader target lock | `LOADERTARGET#{target}` | `LOCK` | | |
//! | ingest file | `FILE#{name}` | `FILE` | `FILES` | `{updated}#{name}` |
//! | task | `TASK#{id}` | `TASK` | `TASKS#{owner}` | `{created}#{id}` |
//! | transfer file | `TFILES#{owner}` | `TFILE#{name}` | | |
//! | api job (on-demand run request) | `APIJOB#{id}` | `APIJOB` | `APIJOBS` | `{created}#{id}` |
//! | parameter set | `PARAMS#{project}#{env}` | `ACTION#{action}` | | |
//!
//! Free-form parts (object keys, file names) always come last in a key, so a `#` inside them cannot
//! make two different items share a key.

use serde::{Deserialize, Serialize};

/// Primary key of an item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

/// Key of an item in the `gsi1` listing index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexKey {
    pub gsi1pk: String,
    pub gsi1sk: String,
}

/// The partition of a listing, queried on `gsi1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing(pub String);

/// Prefix of the sort keys of one item kind inside a partition (runs of a job, objects of a run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Children {
    pub pk: String,
    pub sk_prefix: &'static str,
}

fn k(pk: String, sk: impl Into<String>) -> Key {
    Key { pk, sk: sk.into() }
}

impl Key {
    pub fn user(name: &str) -> Key {
        k(format!("USER#{name}"), "PROFILE")
    }
    pub fn job(id: &str) -> Key {
        k(format!("JOB#{id}"), "JOB")
    }
    pub fn run(job: &str, run: &str) -> Key {
        k(format!("JOB#{job}"), format!("RUN#{run}"))
    }
    pub fn object(run: &str, object_key: &str) -> Key {
        k(format!("RUN#{run}"), format!("OBJ#{object_key}"))
    }
    /// Marks page `page` of a run's `side` listing as fully handed on (objects and next page sent).
    pub fn run_page(run: &str, side: &str, page: u32) -> Key {
        k(format!("RUN#{run}"), format!("PAGE#{side}#{page:06}"))
    }
    pub fn loader(id: &str) -> Key {
        k(format!("LOADER#{id}"), "LOADER")
    }
    /// The "one loader per target" lock: which loader last claimed the target `lock_key`.
    pub fn loader_target(lock_key: &str) -> Key {
        k(format!("LOADERTARGET#{lock_key}"), "LOCK")
    }
    pub fn ingest_file(name: &str) -> Key {
        k(format!("FILE#{name}"), "FILE")
    }
    /// A file an account uploaded through a transfer task.
    pub fn transfer_file(owner: &str, name: &str) -> Key {
        k(format!("TFILES#{owner}"), format!("TFILE#{name}"))
    }
    pub fn task(id: &str) -> Key {
        k(format!("TASK#{id}"), "TASK")
    }
    pub fn api_job(id: &str) -> Key {
        k(format!("APIJOB#{id}"), "APIJOB")
    }
    /// A parameter set; `project` and `env` are validated names (no `#`).
    pub fn params(project: &str, env: &str, action: &str) -> Key {
        k(
            format!("PARAMS#{project}#{env}"),
            format!("ACTION#{action}"),
        )
    }
}

impl IndexKey {
    pub fn job(created_rfc3339: &str, id: &str) -> IndexKey {
        IndexKey {
            gsi1pk: "JOBS".into(),
            gsi1sk: format!("{created_rfc3339}#{id}"),
        }
    }
    pub fn loader(created_rfc3339: &str, id: &str) -> IndexKey {
        IndexKey {
            gsi1pk: "LOADERS".into(),
            gsi1sk: format!("{created_rfc3339}#{id}"),
        }
    }
    pub fn ingest_file(updated_rfc3339: &str, name: &str) -> IndexKey {
        IndexKey {
            gsi1pk: "FILES".into(),
            gsi1sk: format!("{updated_rfc3339}#{name}"),
        }
    }
    pub fn api_job(created_rfc3339: &str, id: &str) -> IndexKey {
        IndexKey {
            gsi1pk: "APIJOBS".into(),
            gsi1sk: format!("{created_rfc3339}#{id}"),
        }
    }
    pub fn task(owner: &str, created_rfc3339: &str, id: &str) -> IndexKey {
        IndexKey {
            gsi1pk: format!("TASKS#{owner}"),
            gsi1sk: format!("{created_rfc3339}#{id}"),
        }
    }
}

impl Listing {
    pub fn jobs() -> Listing {
        Listing("JOBS".into())
    }
    pub fn loaders() -> Listing {
        Listing("LOADERS".into())
    }
    pub fn ingest_files() -> Listing {
        Listing("FILES".into())
    }
    pub fn api_jobs() -> Listing {
        Listing("APIJOBS".into())
    }
    pub fn tasks_of(owner: &str) -> Listing {
        Listing(format!("TASKS#{owner}"))
    }
}

impl Children {
    pub fn runs_of(job: &str) -> Children {
        Children {
            pk: format!("JOB#{job}"),
            sk_prefix: "RUN#",
        }
    }
    pub fn transfer_files_of(owner: &str) -> Children {
        Children {
            pk: format!("TFILES#{owner}"),
            sk_prefix: "TFILE#",
        }
    }
    pub fn objects_of(run: &str) -> Children {
        Children {
            pk: format!("RUN#{run}"),
            sk_prefix: "OBJ#",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_with_separators_stay_distinct() {
        assert_ne!(Key::object("r1", "a#b"), Key::object("r1#a", "b"));
        assert_eq!(Key::object("r1", "a#b").sk, "OBJ#a#b");
    }

    #[test]
    fn runs_share_their_job_partition() {
        let run = Key::run("j1", "r1");
        let children = Children::runs_of("j1");
        assert_eq!(run.pk, children.pk);
        assert!(run.sk.starts_with(children.sk_prefix));
    }
}
