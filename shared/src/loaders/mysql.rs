//! MySQL target (sqlx; MariaDB locally). Rows fill the table's own columns: each column takes the hotel
//! field of the same name (converted to the column's type, cut to its length), else a value derived
//! from the row's sequence; one text column always carries the document key, so every row is distinct.
//! Fill uses multi-row INSERTs over a small pool; deletes take the lowest primary keys first.

use super::{CONNECT_TIMEOUT, Creds, TargetError, check_identifier, hotel};
use crate::domain::loader::Target;
use futures::StreamExt;
use serde_json::Value;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{AssertSqlSafe, Row};

/// Connections in a loader's pool (worker-loader), and multi-row INSERTs in flight on them during a fill.
pub const POOL: u32 = 4;
pub const FILL_PARALLEL: usize = 4;
/// Rows per multi-row INSERT, and about the most bytes one carries: a table whose rows hold the padded
/// document (`size` bytes each) gets fewer rows per statement (far below the server's
/// `max_allowed_packet`, 16 MiB by default on MariaDB, 64 MiB on MySQL 8).
pub const ROWS_PER_INSERT: usize = 1000;
pub const MAX_STATEMENT_BYTES: usize = 4 << 20;

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub data_type: String,
    pub max_len: Option<u64>,
    pub auto_increment: bool,
    pub primary: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Int(i64),
    Float(f64),
    Text(String),
}

#[derive(Clone, Debug)]
pub struct Mysql {
    pool: MySqlPool,
    database: String,
    table: String,
}

fn classify(e: sqlx::Error) -> TargetError {
    match &e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => {
            TargetError::Unreachable(e.to_string())
        }
        sqlx::Error::Database(d) => {
            // 1044/1045: access denied; 1049: unknown database; 1146: no such table; 1064: syntax.
            let code = d.code().map(|c| c.to_string()).unwrap_or_default();
            if ["1044", "1045", "1049", "1146", "1064", "1054", "1050"].contains(&code.as_str())
                || d.message().contains("denied")
            {
                TargetError::Refused(d.message().to_string())
            } else {
                TargetError::Failed(d.message().to_string())
            }
        }
        _ => TargetError::Failed(e.to_string()),
    }
}

fn q(ident: &str) -> String {
    format!("`{}`", ident.replace('`', ""))
}

/// `table_columns` is SQL column definitions; refuse what could end the statement or hide code.
pub fn check_table_columns(cols: &str) -> Result<(), String> {
    if cols.trim().is_empty() {
        return Err("table_columns must not be empty".into());
    }
    for bad in [";", "--", "/*", "*/", "#"] {
        if cols.contains(bad) {
            return Err(format!("table_columns must not contain {bad:?}"));
        }
    }
    Ok(())
}

impl Mysql {
    /// Connects to the server (no database selected, so init_config can create it).
    pub async fn connect(
        target: &Target,
        creds: &Creds,
        database: &str,
        table: &str,
        connections: u32,
    ) -> Result<Mysql, TargetError> {
        check_identifier("database_name", database).map_err(TargetError::Refused)?;
        if !table.is_empty() {
            check_identifier("table_name", table).map_err(TargetError::Refused)?;
        }
        let host = target
            .host
            .as_deref()
            .ok_or_else(|| TargetError::Refused("host is required".into()))?;
        let mut opts = MySqlConnectOptions::new()
            .host(host)
            .port(target.port.unwrap_or(3306));
        if let Some(u) = &target.username {
            opts = opts.username(u);
        }
        if let Some(p) = &creds.password {
            opts = opts.password(p);
        }
        let pool = MySqlPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(opts)
            .await
            .map_err(classify)?;
        Ok(Mysql {
            pool,
            database: database.to_string(),
            table: table.to_string(),
        })
    }

    fn full(&self) -> String {
        format!("{}.{}", q(&self.database), q(&self.table))
    }

    /// Runs a statement without parameters over the text protocol. Not prepared on purpose: a
    /// prepared statement goes into the connection's statement cache, and statements whose text
    /// changes every time (keys inlined) keep evicting others; sqlx (0.9, no TCP_NODELAY) sends each
    /// eviction's COM_STMT_CLOSE right before the next command, which then waits out the server's
    /// delayed ACK: ~40 ms a statement, the whole cost of the CRUD loop's deletes before this.
    async fn exec(&self, sql: String) -> Result<u64, TargetError> {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(classify)
    }

    /// init_config: the database and the table from `table_columns`, if they do not exist.
    pub async fn init(&self, table_columns: &str) -> Result<(), TargetError> {
        check_table_columns(table_columns).map_err(TargetError::Refused)?;
        self.exec(format!(
            "CREATE DATABASE IF NOT EXISTS {}",
            q(&self.database)
        ))
        .await?;
        self.exec(format!(
            "CREATE TABLE IF NOT EXISTS {} ({table_columns})",
            self.full()
        ))
        .await?;
        Ok(())
    }

    pub async fn columns(&self) -> Result<Vec<Column>, TargetError> {
        let rows = sqlx::query(
            "SELECT CAST(column_name AS CHAR), CAST(data_type AS CHAR), character_maximum_length, \
             CAST(extra AS CHAR), CAST(column_key AS CHAR) FROM information_schema.columns \
             WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        )
        .bind(&self.database)
        .bind(&self.table)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        if rows.is_empty() {
            return Err(TargetError::Refused(format!(
                "table {}.{} does not exist (pass init_config with table_columns to create it)",
                self.database, self.table
            )));
        }
        Ok(rows
            .into_iter()
            .map(|r| Column {
                name: r.get::<String, _>(0),
                data_type: r.get::<String, _>(1).to_ascii_lowercase(),
                max_len: r.get::<Option<u64>, _>(2),
                auto_increment: r.get::<String, _>(3).contains("auto_increment"),
                primary: r.get::<String, _>(4) == "PRI",
            })
            .collect())
    }

    pub async fn count(&self) -> Result<u64, TargetError> {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            self.full()
        )))
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        Ok(n as u64)
    }

    /// The lowest and highest value of a numeric single-column primary key.
    pub async fn seq_bounds(&self, cols: &[Column]) -> Result<Option<(u64, u64)>, TargetError> {
        let Some(pk) = numeric_pk(cols) else {
            return Ok(None);
        };
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT CAST(MIN({0}) AS SIGNED), CAST(MAX({0}) AS SIGNED) FROM {1}",
            q(&pk.name),
            self.full()
        )))
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        let (lo, hi): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
        Ok(lo.zip(hi).map(|(l, h)| (l.max(0) as u64, h.max(0) as u64)))
    }

    /// Inserts rows `seqs` of `loader_id` with multi-row INSERTs, `parallel` statements at a time,
    /// each written by the generating thread while the previous ones run. A batch of the full size
    /// (up to [`ROWS_PER_INSERT`] rows, within 65,535 bound values and about [`MAX_STATEMENT_BYTES`])
    /// is one prepared statement with its values bound: one statement text per table, prepared once
    /// per connection, and the server parses no literal (0.93-1.0× LOAD DATA against 0.77× for the
    /// same rows inlined as SQL text, bench/RESULTS.md). Any other count (a fill's last batch, a CRUD
    /// batch) goes as SQL text with the values inlined (see [`sql_text`]): statements of every size
    /// would keep evicting each other from the connection's statement cache (see `exec`).
    pub async fn insert(
        &self,
        cols: &[Column],
        loader_id: &str,
        seqs: std::ops::Range<u64>,
        size: usize,
        parallel: usize,
    ) -> Result<u64, TargetError> {
        let used: Vec<Column> = cols.iter().filter(|c| !c.auto_increment).cloned().collect();
        if used.is_empty() {
            return Err(TargetError::Refused(
                "the table has no column to fill".into(),
            ));
        }
        let names = used
            .iter()
            .map(|c| q(&c.name))
            .collect::<Vec<_>>()
            .join(",");
        let head = format!("INSERT INTO {} ({names}) VALUES ", self.full());
        let refs: Vec<&Column> = used.iter().collect();
        let plan = RowPlan::new(&refs);
        // Rows of a table that stores the padded document are about `size` bytes long.
        let row_bytes = if plan.padded { size + 1024 } else { 1024 };
        let per = super::fitting(
            MAX_STATEMENT_BYTES,
            row_bytes,
            1,
            ROWS_PER_INSERT.min(65_535 / used.len()),
        );
        let tuple = format!("({})", vec!["?"; used.len()].join(","));
        let prepared =
            std::sync::Arc::new(format!("{head}{}", vec![tuple.as_str(); per].join(",")));
        let loader = loader_id.to_string();
        let statements = super::generate_ahead(seqs, per as u64, parallel + 1, move |r| {
            let rows = (r.end - r.start) as usize;
            if rows == per {
                let mut args = sqlx::mysql::MySqlArguments::default();
                let bound = r.into_iter().try_for_each(|seq| {
                    plan.bind(&loader, seq, size, &mut args)
                        .map_err(|e| e.to_string())
                });
                Statement::Bound(prepared.clone(), args, bound.err())
            } else {
                let mut sql = String::with_capacity(head.len() + rows * row_bytes / 4);
                for seq in r {
                    sql.push_str(if sql.is_empty() { &head } else { "," });
                    plan.write_sql(&loader, seq, size, &mut sql);
                }
                Statement::Text(sql)
            }
        });
        let results: Vec<Result<u64, TargetError>> = statements
            .map(|st| async move {
                let done = match st {
                    Statement::Bound(_, _, Some(e)) => {
                        return Err(TargetError::Refused(format!(
                            "a row's value cannot be sent: {e}"
                        )));
                    }
                    Statement::Bound(sql, args, None) => {
                        sqlx::query_with(AssertSqlSafe(sql), args)
                            .execute(&self.pool)
                            .await
                    }
                    Statement::Text(sql) => {
                        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&self.pool).await
                    }
                };
                done.map(|r| r.rows_affected()).map_err(classify)
            })
            .buffer_unordered(parallel.max(1))
            .collect()
            .await;
        results.into_iter().sum()
    }

    /// Updates the rows with these primary keys (or any rows without a numeric key); returns matches.
    pub async fn update(
        &self,
        cols: &[Column],
        seqs: &[u64],
        mutation: u64,
    ) -> Result<u64, TargetError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let Some(col) = cols
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case("mutated") && is_int(&c.data_type))
            .or_else(|| cols.iter().find(|c| !c.primary && !c.auto_increment))
        else {
            return Ok(0);
        };
        // Inlined, like the keys (see `exec`): a number, or text of letters, digits and a space.
        let value = if is_int(&col.data_type) {
            mutation.to_string()
        } else if is_float(&col.data_type) {
            format!("{:.1}", mutation as f64 / 10.0)
        } else {
            let text = format!("mutated {mutation}");
            format!("'{}'", cut_to(text.into(), col.max_len.map(|m| m as usize)))
        };
        let sql = match numeric_pk(cols) {
            Some(pk) => format!(
                "UPDATE {} SET {} = {value} WHERE {} IN ({})",
                self.full(),
                q(&col.name),
                q(&pk.name),
                seqs.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            None => format!(
                "UPDATE {} SET {} = {value} LIMIT {}",
                self.full(),
                q(&col.name),
                seqs.len()
            ),
        };
        // MySQL reports changed rows; every targeted row exists or was deleted, so this is a floor.
        self.exec(sql).await
    }

    /// Deletes the `n` rows with the lowest primary key at or above `from` (the lowest key the loader
    /// knows may exist: the range lets InnoDB skip the delete-marked records of earlier deletes that
    /// purge has not removed yet), in one statement; returns (deleted, a key below which none is
    /// left: `from + deleted - 1`, since the deleted keys are distinct integers from `from` on).
    pub async fn delete_oldest(
        &self,
        cols: &[Column],
        n: u64,
        from: u64,
    ) -> Result<(u64, Option<u64>), TargetError> {
        match numeric_pk(cols) {
            Some(pk) => {
                let deleted = self
                    .exec(format!(
                        "DELETE FROM {} WHERE {1} >= {from} ORDER BY {1} LIMIT {n}",
                        self.full(),
                        q(&pk.name)
                    ))
                    .await?;
                Ok((deleted, (deleted > 0).then(|| from + deleted - 1)))
            }
            None => Ok((
                self.exec(format!("DELETE FROM {} LIMIT {n}", self.full()))
                    .await?,
                None,
            )),
        }
    }

    pub async fn drop_database(&self) -> Result<(), TargetError> {
        self.exec(format!("DROP DATABASE IF EXISTS {}", q(&self.database)))
            .await
            .map(|_| ())
    }

    pub async fn drop_table(&self) -> Result<(), TargetError> {
        self.exec(format!("DROP TABLE IF EXISTS {}", self.full()))
            .await
            .map(|_| ())
    }
}

/// `v` as an SQL literal, the same under every `sql_mode`: numbers as they print (a non-finite float
/// as NULL), text quoted with quotes doubled, or as a hex literal with a utf8mb4 introducer when it
/// holds a backslash (whose meaning inside quotes depends on NO_BACKSLASH_ESCAPES). What the tests
/// check [`RowPlan::write_sql`] against.
#[cfg(test)]
fn sql_value(v: &Val, out: &mut String) {
    match v {
        Val::Int(i) => sql_int(*i, out),
        Val::Float(f) => sql_float(*f, out),
        Val::Text(s) => sql_text(s, out),
    }
}

fn sql_int(i: i64, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(out, "{i}");
}

fn sql_float(f: f64, out: &mut String) {
    use std::fmt::Write;
    if f.is_finite() {
        let _ = write!(out, "{f}");
    } else {
        out.push_str("NULL");
    }
}

fn sql_text(s: &str, out: &mut String) {
    use std::fmt::Write;
    if s.contains('\\') {
        out.push_str("_utf8mb4 X'");
        for b in s.bytes() {
            let _ = write!(out, "{b:02x}");
        }
        out.push('\'');
        return;
    }
    out.push('\'');
    let mut rest = s;
    while let Some(i) = rest.find('\'') {
        out.push_str(&rest[..=i]);
        out.push('\'');
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('\'');
}

fn is_int(t: &str) -> bool {
    matches!(
        t,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "bit" | "year"
    )
}

fn is_float(t: &str) -> bool {
    matches!(t, "float" | "double" | "decimal" | "numeric" | "real")
}

fn is_text(t: &str) -> bool {
    t.contains("char") || t.contains("text") || t == "json" || t == "longtext" || t == "enum"
}

pub fn numeric_pk(cols: &[Column]) -> Option<&Column> {
    let pks: Vec<&Column> = cols.iter().filter(|c| c.primary).collect();
    match pks.as_slice() {
        [pk] if is_int(&pk.data_type) => Some(pk),
        _ => None,
    }
}

/// Hotel field names a column may go by.
fn field_for(column: &str) -> String {
    let c = column.to_ascii_lowercase();
    match c.as_str() {
        "avg_rating" | "rating" => "avg_ratings".into(),
        "hotel_name" | "title" => "name".into(),
        "likes" => "public_likes".into(),
        "review" => "reviews".into(),
        "size" => "document_size".into(),
        _ => c,
    }
}

/// The values of row `seq` for `cols`, in order (see [`RowPlan`]).
#[cfg(test)]
fn row_values(cols: &[&Column], loader_id: &str, seq: u64, size: usize) -> Vec<Val> {
    RowPlan::new(cols).values(loader_id, seq, size)
}

/// What a column holds, read once from its type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// An integer: a boolean or number field, else `seq` (`tinyint` and `bit`: its parity; `year`: a
    /// year of this century).
    Int,
    Flag,
    Year,
    /// A float: a number field, else a value derived from `seq`.
    Float,
    /// A date (`date`), or a date and time (any other date or time type): derived from `seq`.
    Date,
    DateTime,
    /// Anything else takes a text field; `textual` columns (char, text, json, enum) also take other
    /// fields as their JSON text. Without such a field: the column's name and the document key.
    Text {
        textual: bool,
    },
}

struct PlannedColumn {
    name: String,
    /// The hotel field the column takes (see [`field_for`]).
    field: String,
    kind: Kind,
    max_len: Option<usize>,
}

/// How a table's columns are filled, worked out once per statement rather than per row: each column
/// takes the hotel field of its name (converted to its type, cut to its length), else a value derived
/// from the row's sequence; one text column always carries the document key, so every row is distinct.
pub struct RowPlan {
    columns: Vec<PlannedColumn>,
    /// Padding to `size` costs a serialisation of the whole document: only for a table that stores it.
    padded: bool,
    /// Whether a column holds `public_likes` or `reviews`.
    nested: bool,
    /// The column that gets the key appended when no column carries it.
    key_column: Option<usize>,
}

/// One multi-row INSERT of a fill: a full batch's prepared text with its bound values (and the error
/// of a value that could not be encoded), or any other count's SQL text.
enum Statement {
    Bound(
        std::sync::Arc<String>,
        sqlx::mysql::MySqlArguments,
        Option<String>,
    ),
    Text(String),
}

/// A hotel field as the row's source holds it.
enum Got<'a> {
    Text(&'a str),
    Json(std::borrow::Cow<'a, Value>),
}

/// One value of a row, borrowing the row's hotel where it can.
#[derive(Debug)]
enum Cell<'a> {
    Int(i64),
    Float(f64),
    Text(std::borrow::Cow<'a, str>),
}

fn cut_to(s: std::borrow::Cow<'_, str>, max: Option<usize>) -> std::borrow::Cow<'_, str> {
    match max {
        // A string of at most `m` bytes has at most `m` characters: only longer ones are counted.
        Some(m) if s.len() > m && s.chars().count() > m => {
            s.chars().take(m).collect::<String>().into()
        }
        _ => s,
    }
}

impl RowPlan {
    pub fn new(cols: &[&Column]) -> RowPlan {
        let columns: Vec<PlannedColumn> = cols
            .iter()
            .map(|c| {
                let t = c.data_type.as_str();
                let kind = if is_int(t) {
                    match t {
                        "tinyint" | "bit" => Kind::Flag,
                        "year" => Kind::Year,
                        _ => Kind::Int,
                    }
                } else if is_float(t) {
                    Kind::Float
                } else if t.contains("date") || t.contains("time") {
                    if t == "date" {
                        Kind::Date
                    } else {
                        Kind::DateTime
                    }
                } else {
                    Kind::Text {
                        textual: is_text(t),
                    }
                };
                PlannedColumn {
                    name: c.name.clone(),
                    field: field_for(&c.name),
                    kind,
                    max_len: c.max_len.map(|m| m as usize),
                }
            })
            .collect();
        let padded = columns
            .iter()
            .any(|c| matches!(c.field.as_str(), "padding" | "document_size"));
        let nested = columns
            .iter()
            .any(|c| matches!(c.field.as_str(), "public_likes" | "reviews"));
        let key_column = cols
            .iter()
            .position(|c| is_text(&c.data_type) && c.data_type != "json" && c.data_type != "enum");
        RowPlan {
            columns,
            padded,
            nested,
            key_column,
        }
    }

    /// The values of row `seq`, in column order.
    pub fn values(&self, loader_id: &str, seq: u64, size: usize) -> Vec<Val> {
        let mut out = Vec::with_capacity(self.columns.len());
        self.with_cells(loader_id, seq, size, |cells| {
            out.extend(cells.iter().map(|c| match c {
                Cell::Int(i) => Val::Int(*i),
                Cell::Float(f) => Val::Float(*f),
                Cell::Text(s) => Val::Text(s.to_string()),
            }))
        });
        out
    }

    /// Row `seq` as the SQL tuple of a multi-row INSERT, `(v1,v2,…)`, appended to `sql`.
    pub fn write_sql(&self, loader_id: &str, seq: u64, size: usize, sql: &mut String) {
        self.with_cells(loader_id, seq, size, |cells| {
            sql.push('(');
            for (i, c) in cells.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                match c {
                    Cell::Int(v) => sql_int(*v, sql),
                    Cell::Float(v) => sql_float(*v, sql),
                    Cell::Text(s) => sql_text(s, sql),
                }
            }
            sql.push(')');
        })
    }

    /// Row `seq`'s values added to a prepared statement's arguments, in column order.
    pub fn bind(
        &self,
        loader_id: &str,
        seq: u64,
        size: usize,
        args: &mut sqlx::mysql::MySqlArguments,
    ) -> Result<(), sqlx::error::BoxDynError> {
        use sqlx::Arguments;
        let mut out = Ok(());
        self.with_cells(loader_id, seq, size, |cells| {
            for c in cells {
                let r = match c {
                    Cell::Int(v) => args.add(*v),
                    // As the SQL text writes it: a value that is not a number is NULL.
                    Cell::Float(v) => args.add(Some(*v).filter(|f| f.is_finite())),
                    Cell::Text(s) => args.add(s.as_ref()),
                };
                if r.is_err() {
                    out = r;
                    return;
                }
            }
        });
        out
    }

    fn with_cells(&self, loader_id: &str, seq: u64, size: usize, f: impl FnOnce(&[Cell<'_>])) {
        if self.padded {
            let doc = hotel::document(loader_id, seq, size);
            self.cells(seq, &hotel::key(loader_id, seq), f, |name| {
                match doc.get(name)? {
                    Value::String(s) => Some(Got::Text(s)),
                    v => Some(Got::Json(std::borrow::Cow::Borrowed(v))),
                }
            })
        } else {
            // Only the fields the columns name are read from the typed hotel: no JSON map per row, and
            // no nested lists unless a column holds one.
            let h = if self.nested {
                hotel::Hotel::generate(loader_id, seq)
            } else {
                hotel::Hotel::generate_flat(loader_id, seq)
            };
            self.cells(seq, &h.key, f, |name| match h.text(name) {
                Some(s) => Some(Got::Text(s)),
                None => h.field(name).map(|v| Got::Json(std::borrow::Cow::Owned(v))),
            })
        }
    }

    fn cells<'a>(
        &self,
        seq: u64,
        key: &str,
        f: impl FnOnce(&[Cell<'_>]),
        field: impl Fn(&str) -> Option<Got<'a>>,
    ) {
        let mut carries_key = false;
        let mut cells: Vec<Cell<'a>> = self
            .columns
            .iter()
            .map(|c| {
                let got = field(&c.field);
                let number = match &got {
                    Some(Got::Json(v)) => Some(v.as_ref()),
                    _ => None,
                };
                match c.kind {
                    Kind::Int | Kind::Flag | Kind::Year => Cell::Int(match number {
                        Some(Value::Bool(b)) => *b as i64,
                        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0).round() as i64,
                        _ if c.kind == Kind::Flag => (seq % 2) as i64,
                        _ if c.kind == Kind::Year => 2000 + (seq % 100) as i64,
                        _ => seq as i64,
                    }),
                    Kind::Float => Cell::Float(match number {
                        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
                        _ => (seq % 100_000) as f64 / 100.0,
                    }),
                    Kind::Date | Kind::DateTime => {
                        let day = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()
                            + chrono::Days::new(seq % 3650);
                        Cell::Text(
                            if c.kind == Kind::Date {
                                day.to_string()
                            } else {
                                format!(
                                    "{day} {:02}:{:02}:{:02}",
                                    seq % 24,
                                    seq % 60,
                                    (seq / 60) % 60
                                )
                            }
                            .into(),
                        )
                    }
                    Kind::Text { textual } => {
                        let s = match got {
                            Some(Got::Text(s)) => s.into(),
                            Some(Got::Json(other)) if textual => other.to_string().into(),
                            _ => format!("{}-{key}", c.name).into(),
                        };
                        let s = cut_to(s, c.max_len);
                        if !carries_key && s.contains(key) {
                            carries_key = true;
                        }
                        Cell::Text(s)
                    }
                }
            })
            .collect();
        if !carries_key
            && let Some(i) = self.key_column
            && let Cell::Text(s) = &cells[i]
        {
            // The key when the column has room for it, else the sequence (distinct within the loader).
            let max = self.columns[i].max_len;
            let suffix = match max {
                Some(m) if m < key.len() + 8 => format!(" #{seq}"),
                _ => format!(" {key}"),
            };
            let room = max.map(|m| m.saturating_sub(suffix.len()));
            let mut whole: String = match room {
                Some(r) => s.chars().take(r).collect(),
                None => s.to_string(),
            };
            whole.push_str(&suffix);
            cells[i] = Cell::Text(cut_to(whole.into(), max));
        }
        f(&cells)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, t: &str, len: Option<u64>) -> Column {
        Column {
            name: name.into(),
            data_type: t.into(),
            max_len: len,
            auto_increment: false,
            primary: false,
        }
    }

    #[test]
    fn a_rows_sql_text_is_its_values_as_literals() {
        // The fill writes rows with `write_sql`; the bench's LOAD DATA peer and the tests read `values`.
        let sets = [
            vec![
                col("name", "varchar", Some(255)),
                col("price", "double", None),
                col("free_parking", "tinyint", None),
                col("mutated", "bigint", None),
                col("y", "year", None),
                col("t", "datetime", None),
            ],
            vec![
                col("address", "varchar", Some(20)),
                col("padding", "text", None),
                col("likes", "json", None),
                col("price", "varchar", Some(5)),
            ],
        ];
        for set in &sets {
            let refs: Vec<&Column> = set.iter().collect();
            let plan = RowPlan::new(&refs);
            for seq in 0..200 {
                let mut sql = String::new();
                plan.write_sql("loader-x", seq, 600, &mut sql);
                let mut want = String::from("(");
                for (i, v) in plan.values("loader-x", seq, 600).iter().enumerate() {
                    if i > 0 {
                        want.push(',');
                    }
                    sql_value(v, &mut want);
                }
                want.push(')');
                assert_eq!(sql, want);
            }
        }
    }

    #[test]
    fn values_are_literals_under_every_sql_mode() {
        let lit = |v: Val| {
            let mut s = String::new();
            sql_value(&v, &mut s);
            s
        };
        assert_eq!(lit(Val::Int(-42)), "-42");
        assert_eq!(lit(Val::Float(123.45)), "123.45");
        assert_eq!(lit(Val::Float(f64::NAN)), "NULL");
        assert_eq!(lit(Val::Text("O'Hara's Inn".into())), "'O''Hara''s Inn'");
        assert_eq!(lit(Val::Text("a\\'b".into())), "_utf8mb4 X'615c2762'");
        assert_eq!(lit(Val::Text("café".into())), "'café'");
    }

    #[test]
    fn rows_fill_the_tables_own_columns_and_are_distinct() {
        let cols = [
            col("address", "varchar", Some(255)),
            col("avg_rating", "float", None),
            col("city", "varchar", Some(255)),
            col("country", "varchar", Some(255)),
        ];
        let refs: Vec<&Column> = cols.iter().collect();
        let rows: std::collections::HashSet<String> = (0..3000)
            .map(|s| format!("{:?}", row_values(&refs, "loader-x", s, 1024)))
            .collect();
        assert_eq!(rows.len(), 3000);
        let r = row_values(&refs, "loader-x", 5, 1024);
        assert!(matches!(&r[1], Val::Float(f) if (1.0..=5.0).contains(f)));
        let doc = hotel::hotel("loader-x", 5);
        assert!(matches!(&r[2], Val::Text(s) if *s == doc["city"]));
    }

    #[test]
    fn text_is_cut_to_the_column_length_and_keeps_the_key() {
        let cols = [col("address", "varchar", Some(20))];
        let refs: Vec<&Column> = cols.iter().collect();
        let Val::Text(s) = &row_values(&refs, "loader-x", 77, 512)[0] else {
            panic!()
        };
        assert!(s.chars().count() <= 20);
        assert!(s.ends_with(" #77"), "{s}");
    }

    #[test]
    fn a_padding_column_gets_the_documents_padding_and_others_skip_it() {
        let cols = [
            col("city", "varchar", Some(255)),
            col("padding", "text", None),
        ];
        let refs: Vec<&Column> = cols.iter().collect();
        let doc = hotel::document("loader-x", 9, 2048);
        let r = row_values(&refs, "loader-x", 9, 2048);
        assert!(matches!(&r[1], Val::Text(p) if p.starts_with(doc["padding"].as_str().unwrap())));
        let plain = row_values(&refs[..1], "loader-x", 9, 2048);
        assert!(matches!(&plain[0], Val::Text(c) if c.starts_with(doc["city"].as_str().unwrap())));
    }

    #[test]
    fn table_columns_cannot_smuggle_statements() {
        assert!(check_table_columns("id INT PRIMARY KEY, a VARCHAR(10)").is_ok());
        assert!(check_table_columns("a INT); DROP TABLE x; --").is_err());
        assert!(check_table_columns("").is_err());
    }
}
