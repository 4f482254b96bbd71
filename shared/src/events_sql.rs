//! The events tables in MySQL (sqlx): the connection from a Secrets Manager secret, the schema
//! ([`MIGRATOR`], applied by worker-ingest only), the load protocol and the time-range query.
//!
//! Loads (see the migration for the tables): a load's batches are committed together with its
//! checkpoint, guarded by the previous offset, so a batch is written once even when two invocations
//! race on the same load (the loser's update matches no row and it stops); the last batch, the end of
//! the load and the swap of the file's current load are one transaction.

use crate::domain::events::{Event, QueryCursor, RangeQuery, Rejections};
use chrono::NaiveDateTime;
use serde::Deserialize;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{QueryBuilder, Row};
use std::time::Duration;

/// The events schema, embedded at compile time from `shared/migrations/events`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/events");

/// Rows per INSERT statement: 5 parameters a row stays under MySQL's 65,535 placeholders.
pub const MAX_ROWS_PER_INSERT: usize = 10_000;
/// Times a batch is written again after a deadlock or lock-wait timeout.
const LOCK_RETRIES: u32 = 5;

/// MySQL's deadlock (1213) and lock wait timeout (1205) errors: the transaction was rolled back and can
/// simply be run again.
pub fn is_lock_conflict(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .is_some_and(|m| matches!(m.number(), 1205 | 1213))
}

/// Batches of at least this many rows are inserted by two connections at once.
pub const PARALLEL_MIN_ROWS: usize = 2_000;

/// One multi-row INSERT of `rows` under `load_id`; a row already there (same load, time and line) is
/// left as it is, so writing a batch again never duplicates or fails.
async fn insert_rows<'c, E>(
    exec: E,
    load_id: u64,
    rows: &[NumberedEvent],
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::MySql>,
{
    let mut qb =
        QueryBuilder::new("INSERT INTO events (load_id, event_time, seq, email, session_id) ");
    qb.push_values(rows, |mut b, (seq, e)| {
        b.push_bind(load_id)
            .push_bind(e.event_time)
            .push_bind(*seq)
            .push_bind(&e.email)
            .push_bind(&e.session_id);
    });
    qb.push(" ON DUPLICATE KEY UPDATE seq = seq");
    qb.build().execute(exec).await.map(|_| ())
}

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("{0}")]
    Secret(#[from] crate::secrets::SecretError),
    #[error("the database secret is not JSON {{host, port, username, password, dbname}}: {0}")]
    BadSecret(String),
    #[error("mysql: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrating the events schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The secret's JSON (the shape RDS-managed secrets use). No Debug: it holds the password.
#[derive(Deserialize)]
struct DbSecret {
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    username: String,
    password: String,
    dbname: String,
}

fn default_port() -> u16 {
    3306
}

/// Connection options from the secret's value.
pub fn options_from_secret(value: &str) -> Result<MySqlConnectOptions, SqlError> {
    let s: DbSecret = serde_json::from_str(value).map_err(|e| {
        // serde's message names the field and position, never the value.
        SqlError::BadSecret(e.to_string())
    })?;
    Ok(MySqlConnectOptions::new()
        .host(&s.host)
        .port(s.port)
        .username(&s.username)
        .password(&s.password)
        .database(&s.dbname))
}

/// A pool over the events tables.
#[derive(Clone, Debug)]
pub struct EventsDb {
    pool: MySqlPool,
}

/// A load as SQL records it: the exact checkpoint to resume from.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    pub load_id: u64,
    pub filename: String,
    pub etag: String,
    pub state: String,
    pub byte_offset: u64,
    pub line_no: u64,
    pub accepted: u64,
    pub rejections: Rejections,
    pub started_at: NaiveDateTime,
}

impl Load {
    pub fn is_loading(&self) -> bool {
        self.state == "loading"
    }
}

/// Where a batch ends: the checkpoint written with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub byte_offset: u64,
    pub line_no: u64,
    pub accepted: u64,
    pub rejections: Rejections,
}

/// One row to insert: its line number and event.
pub type NumberedEvent = (u64, Event);

/// One row of a query's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub event_time: NaiveDateTime,
    pub seq: u64,
    pub email: String,
    pub session_id: String,
}

/// What committing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    Yes,
    /// The load moved on without us (another invocation committed this range, or a newer load
    /// superseded it): nothing was written.
    LostRace,
}

fn load_from_row(r: &sqlx::mysql::MySqlRow) -> Result<Load, SqlError> {
    let rejections: String = r.try_get("rejections")?;
    Ok(Load {
        load_id: r.try_get("load_id")?,
        filename: r.try_get("filename")?,
        etag: r.try_get("source_etag")?,
        state: r.try_get("state")?,
        byte_offset: r.try_get("byte_offset")?,
        line_no: r.try_get("line_no")?,
        accepted: r.try_get("accepted")?,
        rejections: serde_json::from_str(&rejections).unwrap_or_default(),
        started_at: r.try_get("started_at")?,
    })
}

macro_rules! select_load {
    ($rest:literal) => {
        concat!(
            "SELECT load_id, filename, source_etag, CAST(state AS CHAR) AS state, byte_offset, ",
            "line_no, accepted, rejections, started_at FROM event_loads ",
            $rest
        )
    };
}

fn rejections_json(r: &Rejections) -> String {
    serde_json::to_string(r).unwrap_or_else(|_| "{}".into())
}

impl EventsDb {
    /// Connects with the secret `secret_id` (JSON {host, port, username, password, dbname}). With
    /// `lazy`, connections open on first use, so a function that also serves other routes starts even
    /// when MySQL is down.
    pub async fn from_secret(
        secrets: &aws_sdk_secretsmanager::Client,
        secret_id: &str,
        max_connections: u32,
        lazy: bool,
    ) -> Result<EventsDb, SqlError> {
        let value = crate::secrets::get_string(secrets, secret_id).await?;
        let options = options_from_secret(&value)?;
        Self::connect(options, max_connections, lazy).await
    }

    pub async fn connect(
        options: MySqlConnectOptions,
        max_connections: u32,
        lazy: bool,
    ) -> Result<EventsDb, SqlError> {
        let pool = MySqlPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10));
        let pool = if lazy {
            pool.connect_lazy_with(options)
        } else {
            pool.connect_with(options).await?
        };
        Ok(EventsDb { pool })
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Applies the schema's migrations (a no-op when they are applied). Several instances cold-starting
    /// at once all run this: sqlx takes an advisory lock, yet one instance was seen to find the other's
    /// migration half-applied ("dirty": MySQL DDL is not transactional, so sqlx marks a migration
    /// applied only after it ran) and exit. A dirty schema is therefore awaited for a few seconds before
    /// it counts as an error.
    pub async fn migrate(&self) -> Result<(), SqlError> {
        let mut attempt = 0;
        loop {
            match MIGRATOR.run(&self.pool).await {
                Err(sqlx::migrate::MigrateError::Dirty(version)) if attempt < 20 => {
                    attempt += 1;
                    tracing::warn!(
                        version,
                        attempt,
                        "schema migration in progress elsewhere; waiting"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                other => return Ok(other?),
            }
        }
    }

    pub async fn load(&self, load_id: u64) -> Result<Option<Load>, SqlError> {
        let row = sqlx::query(select_load!("WHERE load_id = ?"))
            .bind(load_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(load_from_row).transpose()
    }

    /// The newest unfinished load of `filename` from the object version `etag`, if any: what a
    /// redelivered request resumes.
    pub async fn unfinished_load(
        &self,
        filename: &str,
        etag: &str,
    ) -> Result<Option<Load>, SqlError> {
        let row = sqlx::query(select_load!(
            "WHERE filename = ? AND state = 'loading' AND source_etag = ? ORDER BY load_id DESC LIMIT 1"
        ))
        .bind(filename)
        .bind(etag)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(load_from_row).transpose()
    }

    /// Starts a new load of `filename`; unfinished older loads of the file are superseded (their
    /// workers stop at their next batch).
    pub async fn start_load(
        &self,
        filename: &str,
        etag: &str,
        now: NaiveDateTime,
    ) -> Result<Load, SqlError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE event_loads SET state = 'superseded', updated_at = ? \
             WHERE filename = ? AND state = 'loading'",
        )
        .bind(now)
        .bind(filename)
        .execute(&mut *tx)
        .await?;
        let id = sqlx::query(
            "INSERT INTO event_loads (filename, source_etag, rejections, started_at, updated_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(filename)
        .bind(etag)
        .bind(rejections_json(&Rejections::default()))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .last_insert_id();
        tx.commit().await?;
        Ok(Load {
            load_id: id,
            filename: filename.to_string(),
            etag: etag.to_string(),
            state: "loading".into(),
            byte_offset: 0,
            line_no: 0,
            accepted: 0,
            rejections: Rejections::default(),
            started_at: now,
        })
    }

    /// Writes `rows` and moves the checkpoint of load `load_id` from `from_offset` to `to`, in one
    /// transaction. With `finish`, the load also ends and becomes the file's current load (unless a
    /// newer load of the file already is).
    ///
    /// A deadlock or lock-wait timeout (the two connections of a batch, or another file's garbage
    /// collection, in the server's lock graph) rolls the transaction back; the batch is then written
    /// again, a few times, before the error goes up (rows the side connection committed are no-ops the
    /// second time).
    pub async fn commit_batch(
        &self,
        load: &Load,
        from_offset: u64,
        to: &Progress,
        rows: &[NumberedEvent],
        finish: bool,
        now: NaiveDateTime,
    ) -> Result<Committed, SqlError> {
        let mut attempt = 0;
        loop {
            match self
                .commit_batch_once(load, from_offset, to, rows, finish, now)
                .await
            {
                Err(SqlError::Db(e)) if attempt < LOCK_RETRIES && is_lock_conflict(&e) => {
                    attempt += 1;
                    tracing::info!(load_id = load.load_id, attempt, error = %e, "batch rolled back by a lock conflict; writing it again");
                    tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
                }
                other => return other,
            }
        }
    }

    async fn commit_batch_once(
        &self,
        load: &Load,
        from_offset: u64,
        to: &Progress,
        rows: &[NumberedEvent],
        finish: bool,
        now: NaiveDateTime,
    ) -> Result<Committed, SqlError> {
        let mut tx = self.pool.begin().await?;
        // The guard first: it locks the load's row, so a racing invocation waits here and then finds
        // the offset moved.
        let claimed = sqlx::query(
            "UPDATE event_loads SET byte_offset = ?, line_no = ?, accepted = ?, rejections = ?, \
             updated_at = ?, state = IF(?, 'done', state) \
             WHERE load_id = ? AND state = 'loading' AND byte_offset = ?",
        )
        .bind(to.byte_offset)
        .bind(to.line_no)
        .bind(to.accepted)
        .bind(rejections_json(&to.rejections))
        .bind(now)
        .bind(finish)
        .bind(load.load_id)
        .bind(from_offset)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            tx.rollback().await?;
            return Ok(Committed::LostRace);
        }
        // A big batch is written by two connections at once, so the server parses and inserts on two
        // threads: one half inside the transaction, the other half alongside it (autocommit), started
        // only once the guard above holds the load's row. If the transaction then fails, those rows
        // stay without the checkpoint moving: the retry writes the same (load_id, event_time, seq)
        // keys again, which the upsert turns into no-ops, and they are never visible before the load
        // is swapped in (a superseded load's rows are collected by load_id like the rest).
        let (side, main) = if rows.len() >= PARALLEL_MIN_ROWS {
            rows.split_at(rows.len() / 2)
        } else {
            (&rows[..0], rows)
        };
        let pool = &self.pool;
        let side_half = async {
            for chunk in side.chunks(MAX_ROWS_PER_INSERT) {
                insert_rows(pool, load.load_id, chunk).await?;
            }
            Ok::<_, sqlx::Error>(())
        };
        let main_half = async {
            for chunk in main.chunks(MAX_ROWS_PER_INSERT) {
                insert_rows(&mut *tx, load.load_id, chunk).await?;
            }
            Ok::<_, sqlx::Error>(())
        };
        futures::try_join!(side_half, main_half)?;
        if finish {
            sqlx::query(
                "INSERT INTO event_files (filename, load_id, swapped_at) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE \
                 swapped_at = IF(VALUES(load_id) > load_id, VALUES(swapped_at), swapped_at), \
                 load_id = GREATEST(load_id, VALUES(load_id))",
            )
            .bind(&load.filename)
            .bind(load.load_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Committed::Yes)
    }

    /// Deletes the rows of `filename`'s loads that queries can no longer see (replaced or superseded),
    /// in chunks so no transaction grows large. Returns the rows deleted.
    pub async fn collect_garbage(&self, filename: &str) -> Result<u64, SqlError> {
        let stale: Vec<u64> = sqlx::query_scalar(
            "SELECT l.load_id FROM event_loads l \
             LEFT JOIN event_files f ON f.filename = l.filename AND f.load_id = l.load_id \
             WHERE l.filename = ? AND l.state <> 'loading' AND f.load_id IS NULL",
        )
        .bind(filename)
        .fetch_all(&self.pool)
        .await?;
        let mut deleted = 0;
        for id in stale {
            loop {
                let n = sqlx::query("DELETE FROM events WHERE load_id = ? LIMIT 20000")
                    .bind(id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                deleted += n;
                if n == 0 {
                    break;
                }
            }
            sqlx::query("DELETE FROM event_loads WHERE load_id = ?")
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        Ok(deleted)
    }

    /// The current load of `filename`, if it was ever loaded.
    pub async fn current_load(&self, filename: &str) -> Result<Option<u64>, SqlError> {
        Ok(
            sqlx::query_scalar("SELECT load_id FROM event_files WHERE filename = ?")
                .bind(filename)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Rows of `filename`'s current load (one consistent read).
    pub async fn count_current(&self, filename: &str) -> Result<u64, SqlError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM event_files f JOIN events e ON e.load_id = f.load_id \
             WHERE f.filename = ?",
        )
        .bind(filename)
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    /// One page of `q`, in time order (then line order), and the cursor of the next page if there is
    /// one. The join reads the current load and its rows in one statement, i.e. one snapshot.
    pub async fn query(
        &self,
        q: &RangeQuery,
    ) -> Result<(Vec<EventRow>, Option<QueryCursor>), SqlError> {
        let mut qb = QueryBuilder::new(
            "SELECT e.event_time, e.seq, e.email, e.session_id \
             FROM event_files f JOIN events e ON e.load_id = f.load_id WHERE f.filename = ",
        );
        qb.push_bind(&q.filename)
            .push(" AND e.event_time >= ")
            .push_bind(q.from)
            .push(" AND e.event_time <= ")
            .push_bind(q.to);
        if let Some(c) = &q.after {
            qb.push(" AND (e.event_time > ")
                .push_bind(c.event_time)
                .push(" OR (e.event_time = ")
                .push_bind(c.event_time)
                .push(" AND e.seq > ")
                .push_bind(c.seq)
                .push("))");
        }
        qb.push(" ORDER BY e.event_time, e.seq LIMIT ")
            .push_bind(q.limit as u64 + 1);
        let rows = qb.build().fetch_all(&self.pool).await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(EventRow {
                    event_time: r.try_get("event_time")?,
                    seq: r.try_get("seq")?,
                    email: r.try_get("email")?,
                    session_id: r.try_get("session_id")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let next = if out.len() > q.limit as usize {
            out.truncate(q.limit as usize);
            out.last().map(|r| QueryCursor {
                event_time: r.event_time,
                seq: r.seq,
            })
        } else {
            None
        };
        Ok((out, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_json_gives_options_and_errors_never_echo_the_value() {
        let ok = options_from_secret(
            r#"{"host":"db","port":3307,"username":"u","password":"hunter2","dbname":"d"}"#,
        )
        .unwrap();
        assert_eq!(ok.get_host(), "db");
        assert_eq!(ok.get_port(), 3307);
        let err = options_from_secret(r#"{"host":"db","username":"u","password":"hunter2"}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("dbname"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
