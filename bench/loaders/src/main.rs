//! bench-loaders: ferry's loader paths against named peers, each pair in one run on the same server.
//!
//! 1. MySQL fill (rows/s): worker-loader's fill path in-process (release): `fill_step` in steps of the
//!    engine's FILL_BATCH, each step `Mysql::insert` (hotel rows generated from (loader id, seq), prepared
//!    multi-row INSERTs over the engine's pool and parallelism). Peer: `LOAD DATA LOCAL INFILE` by the
//!    mariadb client of the very same rows (written to a TSV file beforehand, not timed) into an
//!    identical table of the same MariaDB. Goal >= 0.8x.
//! 2. MySQL CRUD (row operations/s): the engine's CRUD loop (plan_batch of CRUD_BATCH ops by the default
//!    1:1:1 mix within the buffer, delete oldest / multi-row insert / update by key), unthrottled, over
//!    the table just filled. Peer: `sysbench oltp_write_only` (2 updates, 1 delete, 1 insert per
//!    transaction, each a one-row write) on a table of the same size, at the engine's connection count.
//!    Both are counted as row writes per second. Goal >= 1.5x.
//! 3. MongoDB fill (docs/s): `Mongo::insert` in the engine's steps (`Mongo::fill_step`: on FerretDB
//!    one unordered insert_many of up to 10,000 documents or 8 MiB in flight) into FerretDB. Peer:
//!    bench/loaders/mongo_peer.py, pymongo insert_many (batch 1000, ordered=False) of the same
//!    documents pre-loaded in memory, at 1 and at 4 threads; the better is the peer figure. Goal >=
//!    1.0x. Beside it, the server's ceiling for batches of 1,000: a bare wire client sending the
//!    peer's own OP_MSG inserts pre-encoded (mongo_peer.py --wire).
//!
//! Rerun with the local stack up (`make up`); `make bench-loaders` (bench/loaders/run.sh) installs
//! sysbench and the pymongo venv if missing and runs this:
//!     source infra/local/scripts/env.sh && source $FERRY_STATE_DIR/function-env.sh
//!     cargo run --release -p bench-loaders -- [MYSQL_ROWS [MONGO_DOCS [CRUD_SECS [ROUNDS]]]]

use anyhow::{Context, Result, bail};
use ferry_shared::domain::loader::{self, FillStep, Mix, Target};
use ferry_shared::loaders::mongo::{self, Mongo};
use ferry_shared::loaders::mysql::{self, Column, Mysql, Val};
use ferry_shared::loaders::{Creds, hotel, update_targets};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The engine's own batch sizes, read from its source so the bench cannot drift from it.
const ENGINE_SRC: &str = include_str!("../../../functions/worker-loader/src/engine.rs");

fn engine_const(name: &str) -> Result<u64> {
    let prefix = format!("const {name}: u64 = ");
    ENGINE_SRC
        .lines()
        .find_map(|l| l.split_once(&prefix).map(|(_, rest)| rest.trim()))
        .and_then(|rest| rest.trim_end_matches(';').replace('_', "").parse().ok())
        .with_context(|| format!("worker-loader's engine.rs has no `{prefix}N;`"))
}

fn env(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set: source infra/local/scripts/env.sh and $FERRY_STATE_DIR/function-env.sh")
    })
}

/// INSERTs in flight during the MySQL fill: the engine's, or BENCH_MYSQL_PARALLEL (for tuning it).
fn fill_parallel() -> usize {
    std::env::var("BENCH_MYSQL_PARALLEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(mysql::FILL_PARALLEL)
}

const DB: &str = "bench_loaders";
/// The hotel template's scalar fields as a table (what a user's `table_columns` would typically be).
const COLUMNS: &str = "id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255), \
    address VARCHAR(255), city VARCHAR(255), country VARCHAR(255), email VARCHAR(255), \
    phone VARCHAR(64), url VARCHAR(255), price DOUBLE, avg_ratings DOUBLE, free_parking TINYINT, \
    free_breakfast TINYINT, mutated BIGINT";
const DOC_SIZE: usize = 1024;

fn mariadb(sql: &str) -> Result<String> {
    let out = Command::new("mariadb")
        .args([
            "--no-defaults",
            "--local-infile=1",
            "-N",
            "-h127.0.0.1",
            &format!("-P{}", env("FERRY_MARIADB_PORT")?),
            "-uferry",
            "-e",
            sql,
        ])
        .env("MYSQL_PWD", env("FERRY_MYSQL_PASSWORD")?)
        .output()
        .context("running the mariadb client")?;
    if !out.status.success() {
        bail!("mariadb: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn mysql_target() -> Result<(Target, Creds)> {
    Ok((
        Target {
            host: Some("127.0.0.1".into()),
            port: Some(env("FERRY_MARIADB_PORT")?.parse()?),
            username: Some("ferry".into()),
            ..Target::default()
        },
        Creds {
            password: Some(env("FERRY_MYSQL_PASSWORD")?),
            ..Creds::default()
        },
    ))
}

fn tsv_field(v: &Val, out: &mut Vec<u8>) {
    match v {
        Val::Int(i) => write!(out, "{i}").unwrap(),
        Val::Float(f) => write!(out, "{f}").unwrap(),
        Val::Text(s) => {
            for b in s.bytes() {
                match b {
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    _ => out.push(b),
                }
            }
        }
    }
}

/// The median of per-round ratios (each round's ferry and peer run seconds apart, so a slow spell of
/// this shared machine hits both): steadier than the ratio of the two bests.
/// Prints the per-round ratios and their median, and whether it meets `goal` (None: a reference
/// figure with no goal).
fn median_line(what: &str, mut ratios: Vec<f64>, goal: Option<f64>) {
    ratios.sort_by(f64::total_cmp);
    let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    let n = ratios.len();
    let median = if n == 0 {
        return;
    } else if n % 2 == 1 {
        ratios[n / 2]
    } else {
        (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0
    };
    let verdict = match goal {
        Some(g) if median >= g => format!(" (goal >= {g}: met)"),
        Some(g) => format!(" (goal >= {g}: NOT met)"),
        None => String::new(),
    };
    println!(
        "{what}: per-round ratios {}, median {median:.2}{verdict}",
        shown.join(" ")
    );
}

fn ratio_line(what: &str, ferry: f64, peer: f64, peer_name: &str, goal: f64) {
    let r = ferry / peer;
    println!(
        "{what}: ferry {ferry:.0}/s, {peer_name} {peer:.0}/s, ratio {r:.2} (goal >= {goal}: {})",
        if r >= goal { "met" } else { "NOT met" }
    );
}

struct Args {
    mysql_rows: u64,
    mongo_docs: u64,
    crud_secs: u64,
    rounds: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut a = std::env::args().skip(1);
    let mut next =
        |d: u64| -> Result<u64> { Ok(a.next().map(|s| s.parse()).transpose()?.unwrap_or(d)) };
    let args = Args {
        mysql_rows: next(300_000)?,
        mongo_docs: next(40_000)?,
        crud_secs: next(20)?,
        rounds: next(2)? as usize,
    };
    let mysql_fill_batch = engine_const("MYSQL_FILL_BATCH")?;
    let crud_batch = engine_const("CRUD_BATCH")?;
    println!(
        "engine: MYSQL_FILL_BATCH {mysql_fill_batch}, CRUD_BATCH {crud_batch}; mysql pool {} connections, {} INSERTs in flight",
        mysql::POOL,
        fill_parallel()
    );
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let want = |s: &str| only.is_empty() || only.split(',').any(|o| o == s);
    if want("mysql") {
        bench_mysql(&args, mysql_fill_batch, crud_batch).await?;
    }
    if want("mongo") {
        bench_mongo(&args).await?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------ MySQL

async fn bench_mysql(args: &Args, fill_batch: u64, crud_batch: u64) -> Result<()> {
    let (target, creds) = mysql_target()?;
    mariadb(&format!("CREATE DATABASE IF NOT EXISTS {DB}"))?;
    let loader_id = "bench-loaders-mysql-0001";
    let n = args.mysql_rows;

    // The peer's input: exactly the rows ferry will insert, as TSV (not timed).
    let tsv = std::env::temp_dir().join(format!("ferry-bench-loaders-{}.tsv", std::process::id()));
    mariadb(&format!(
        "DROP TABLE IF EXISTS {DB}.hotels; CREATE TABLE {DB}.hotels ({COLUMNS})"
    ))?;
    let m = Mysql::connect(&target, &creds, DB, "hotels", mysql::POOL).await?;
    let cols = m.columns().await?;
    let used: Vec<&Column> = cols.iter().filter(|c| !c.auto_increment).collect();
    let names: Vec<&str> = used.iter().map(|c| c.name.as_str()).collect();
    let plan = mysql::RowPlan::new(&used);
    {
        let mut out = Vec::with_capacity(n as usize * 220);
        for seq in 0..n {
            for (i, v) in plan.values(loader_id, seq, DOC_SIZE).iter().enumerate() {
                if i > 0 {
                    out.push(b'\t');
                }
                tsv_field(v, &mut out);
            }
            out.push(b'\n');
        }
        std::fs::write(&tsv, out)?;
    }

    {
        let t0 = Instant::now();
        let k = n.min(20_000);
        let mut sql = String::new();
        for seq in 0..k {
            sql.clear();
            plan.write_sql(loader_id, seq, DOC_SIZE, &mut sql);
            std::hint::black_box(&sql);
        }
        println!(
            "mysql rows: generation alone {:.0} rows/s on one thread",
            k as f64 / t0.elapsed().as_secs_f64()
        );
    }
    let mut best_ferry = 0f64;
    let mut best_peer = 0f64;
    let mut ratios = Vec::new();
    for round in 1..=args.rounds {
        // ferry: the engine's fill loop.
        mariadb(&format!("TRUNCATE TABLE {DB}.hotels"))?;
        let t0 = Instant::now();
        let (mut count, mut next_seq) = (0u64, 0u64);
        while let FillStep::Insert(k) = loader::fill_step(count, n, fill_batch) {
            count += m
                .insert(
                    &cols,
                    loader_id,
                    next_seq..next_seq + k,
                    DOC_SIZE,
                    fill_parallel(),
                )
                .await?;
            next_seq += k;
        }
        let ferry = n as f64 / t0.elapsed().as_secs_f64();
        let rows = m.count().await?;
        if rows != n {
            bail!("ferry filled {rows} rows, not {n}");
        }

        // peer: LOAD DATA LOCAL INFILE of the same rows into an identical table.
        mariadb(&format!(
            "DROP TABLE IF EXISTS {DB}.hotels_peer; CREATE TABLE {DB}.hotels_peer ({COLUMNS})"
        ))?;
        let t0 = Instant::now();
        mariadb(&format!(
            "LOAD DATA LOCAL INFILE '{}' INTO TABLE {DB}.hotels_peer ({})",
            tsv.display(),
            names.join(",")
        ))?;
        let peer = n as f64 / t0.elapsed().as_secs_f64();
        let peer_rows: u64 = mariadb(&format!("SELECT COUNT(*) FROM {DB}.hotels_peer"))?
            .trim()
            .parse()?;
        if peer_rows != n {
            bail!("LOAD DATA loaded {peer_rows} rows, not {n}");
        }
        // The same rows on both sides (ids aside: parallel INSERTs take them in a different order).
        let sum = |t: &str| {
            mariadb(&format!(
                "SELECT SUM(CRC32(CONCAT_WS('|', {}))) FROM {DB}.{t}",
                names.join(",")
            ))
        };
        if sum("hotels")? != sum("hotels_peer")? {
            bail!("ferry's rows and the peer's differ");
        }
        println!(
            "mysql fill round {round}: {n} rows, ferry {ferry:.0} rows/s, LOAD DATA {peer:.0} rows/s (same rows)"
        );
        best_ferry = best_ferry.max(ferry);
        best_peer = best_peer.max(peer);
        ratios.push(ferry / peer);
    }
    let _ = std::fs::remove_file(&tsv);
    ratio_line(
        "MySQL fill rows/s (best of rounds)",
        best_ferry,
        best_peer,
        "LOAD DATA LOCAL INFILE",
        0.8,
    );
    median_line("MySQL fill", ratios, Some(0.8));

    // CRUD over the filled table (n rows), then sysbench over a table of the same size; CRUD_SECS 0
    // skips it (sysbench reads --time=0 as "run forever").
    let secs = args.crud_secs;
    if secs == 0 {
        return mariadb(&format!("DROP DATABASE {DB}")).map(drop);
    }
    let mut best_ferry = 0f64;
    let mut best_peer = 0f64;
    let sb = Sysbench::new(n)?;
    sb.prepare()?;
    for round in 1..=args.rounds {
        let ferry = ferry_crud(
            &m,
            &cols,
            loader_id,
            n,
            crud_batch,
            Duration::from_secs(secs),
        )
        .await?;
        let peer = sb.run(secs)?;
        println!(
            "mysql crud round {round}: ferry {ferry:.0} row ops/s, sysbench oltp_write_only ({} threads) {peer:.0} row writes/s",
            mysql::POOL
        );
        best_ferry = best_ferry.max(ferry);
        best_peer = best_peer.max(peer);
    }
    ratio_line(
        "MySQL CRUD row ops/s (best of rounds)",
        best_ferry,
        best_peer,
        "sysbench oltp_write_only",
        1.5,
    );
    mariadb(&format!("DROP DATABASE {DB}"))?;
    Ok(())
}

/// The engine's CRUD phase (worker-loader engine.rs, `Phase::Crud` without a rate limit), op for op.
async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let t = Instant::now();
    let r = f.await;
    (r, t.elapsed())
}

async fn ferry_crud(
    m: &Mysql,
    cols: &[Column],
    loader_id: &str,
    target: u64,
    batch: u64,
    dur: Duration,
) -> Result<f64> {
    let mut count = m.count().await?;
    let (mut low, hi) = m.seq_bounds(cols).await?.context("the table has no rows")?;
    let mut next_seq = hi + 1;
    let buffer = 500;
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut ops = 0u64;
    let mut updates = 0u64;
    let mut spent = [Duration::ZERO; 3];
    let start = Instant::now();
    while start.elapsed() < dur {
        let rolls: Vec<u32> = (0..batch)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng >> 32) as u32
            })
            .collect();
        let plan = loader::plan_batch(count, target, buffer, Mix::default(), rolls);
        // As the engine: the deletes first, then the inserts and updates at once on the pool.
        let (d, td) = timed(async {
            if plan.deleted > 0 {
                m.delete_oldest(cols, plan.deleted, low).await
            } else {
                Ok((0, None))
            }
        })
        .await;
        let (deleted, max) = d?;
        if let Some(max) = max {
            low = low.max(max + 1);
        }
        count = count.saturating_sub(deleted);
        let seqs = update_targets(low, next_seq, plan.updated, rng);
        let ((i, ti), (u, tu)) = tokio::join!(
            timed(async {
                if plan.inserted > 0 {
                    m.insert(
                        cols,
                        loader_id,
                        next_seq..next_seq + plan.inserted,
                        DOC_SIZE,
                        mysql::FILL_PARALLEL,
                    )
                    .await
                } else {
                    Ok(0)
                }
            }),
            timed(async {
                if plan.updated > 0 {
                    m.update(cols, &seqs, updates + plan.updated).await
                } else {
                    Ok(0)
                }
            }),
        );
        count += i?;
        next_seq += plan.inserted;
        u?;
        updates += plan.updated;
        spent[0] += td;
        spent[1] += ti;
        spent[2] += tu;
        ops += plan.total();
    }
    println!(
        "  ferry crud time: delete {:.1} s, insert {:.1} s, update {:.1} s",
        spent[0].as_secs_f64(),
        spent[1].as_secs_f64(),
        spent[2].as_secs_f64()
    );
    let real = m.count().await?;
    if real.abs_diff(target) > buffer {
        bail!("ferry's CRUD left the buffer: {real} rows for target {target} ± {buffer}");
    }
    Ok(ops as f64 / start.elapsed().as_secs_f64())
}

struct Sysbench {
    common: Vec<String>,
}

impl Sysbench {
    fn new(rows: u64) -> Result<Sysbench> {
        Ok(Sysbench {
            common: vec![
                "oltp_write_only".into(),
                "--db-driver=mysql".into(),
                "--mysql-host=127.0.0.1".into(),
                format!("--mysql-port={}", env("FERRY_MARIADB_PORT")?),
                "--mysql-user=ferry".into(),
                format!("--mysql-password={}", env("FERRY_MYSQL_PASSWORD")?),
                format!("--mysql-db={DB}"),
                "--tables=1".into(),
                format!("--table-size={rows}"),
                format!("--threads={}", mysql::POOL),
            ],
        })
    }

    fn sysbench(&self, extra: &[String]) -> Result<String> {
        let out = Command::new("sysbench")
            .args(&self.common)
            .args(extra)
            .output()
            .context("running sysbench (apt-get install sysbench; bench/loaders/run.sh does)")?;
        if !out.status.success() {
            bail!(
                "sysbench: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn prepare(&self) -> Result<()> {
        mariadb(&format!("DROP TABLE IF EXISTS {DB}.sbtest1"))?;
        self.sysbench(&["prepare".into()]).map(|_| ())
    }

    /// Row writes per second: sysbench's `write:` queries (each one-row UPDATE, DELETE or INSERT) over
    /// its own total time.
    fn run(&self, secs: u64) -> Result<f64> {
        let out = self.sysbench(&[
            format!("--time={secs}"),
            "--report-interval=0".into(),
            "run".into(),
        ])?;
        let field = |name: &str| -> Result<f64> {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches('s').trim().parse().ok())
                .with_context(|| format!("no `{name}` in sysbench's output:\n{out}"))
        };
        Ok(field("write:")? / field("total time:")?)
    }
}

// ------------------------------------------------------------------------------------------ MongoDB

fn peer_python() -> PathBuf {
    std::env::var_os("BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(&std::env::var("HOME").unwrap_or_default())
                .join(".cache/ferry/venv-bench/bin/python")
        })
}

async fn bench_mongo(args: &Args) -> Result<()> {
    let port = env("FERRY_FERRETDB_PORT")?;
    let target = Target {
        host: Some("127.0.0.1".into()),
        port: Some(port.parse()?),
        ..Target::default()
    };
    let loader_id = "bench-loaders-mongo-0001";
    let n = args.mongo_docs;
    let db = "bench_loaders";

    // The peer's input: the same documents (with the same `_id`), one JSON per line (not timed).
    let docs =
        std::env::temp_dir().join(format!("ferry-bench-loaders-{}.jsonl", std::process::id()));
    {
        let mut out = Vec::with_capacity(n as usize * (DOC_SIZE + 16));
        for seq in 0..n {
            let h = hotel::padded(loader_id, seq, DOC_SIZE);
            let d = hotel::MongoDocument {
                id: seq as i64,
                hotel: &h,
            };
            serde_json::to_writer(&mut out, &d)?;
            out.push(b'\n');
        }
        std::fs::write(&docs, out)?;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("mongo_peer.py");
    let python = peer_python();

    {
        let t0 = Instant::now();
        let k = n.min(5_000);
        for seq in 0..k {
            std::hint::black_box(mongo::raw_document(loader_id, seq, DOC_SIZE)?);
        }
        println!(
            "mongo docs: generation alone {:.0} docs/s on one thread",
            k as f64 / t0.elapsed().as_secs_f64()
        );
    }
    let ferry_round = || async {
        let m = Mongo::connect(&target, &Creds::default(), db, "ferry").await?;
        m.drop_collection().await?;
        let t0 = Instant::now();
        let (mut count, mut next_seq) = (0u64, 0u64);
        while let FillStep::Insert(k) = loader::fill_step(count, n, m.fill_step(DOC_SIZE)) {
            count += m
                .insert(loader_id, next_seq..next_seq + k, DOC_SIZE)
                .await?;
            next_seq += k;
        }
        let ferry = n as f64 / t0.elapsed().as_secs_f64();
        let got = m.count().await?;
        if got != n {
            bail!("ferry inserted {got} documents, not {n}");
        }
        m.drop_collection().await?;
        Ok(ferry)
    };
    // threads 0: the bare-wire client (pre-encoded OP_MSG inserts of 1,000, no driver), the server's
    // ceiling for that message size.
    let peer_round = |threads: u32| {
        let mode = match threads {
            0 => vec!["--wire".to_string()],
            t => vec!["--threads".to_string(), t.to_string()],
        };
        let out = Command::new(&python)
            .arg(&script)
            .args(["--port", &port, "--db", db, "--collection", "peer"])
            .args(&mode)
            .arg(&docs)
            .output()
            .with_context(|| {
                format!(
                    "running {} (bench/loaders/run.sh makes the venv)",
                    python.display()
                )
            })?;
        if !out.status.success() {
            bail!("mongo_peer.py: {}", String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = serde_json::from_str(text.trim())
            .with_context(|| format!("mongo_peer.py printed {text}"))?;
        let rate = v["docs_per_sec"].as_f64().context("docs_per_sec")?;
        if v["count"].as_u64() != Some(n) {
            bail!("pymongo inserted {} documents, not {n}", v["count"]);
        }
        Ok(rate)
    };
    let mut best_ferry = 0f64;
    let mut best_peer = (0f64, 0u32);
    let mut ratios = Vec::new();
    let (mut ferry_of_ceiling, mut peer_of_ceiling) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        // Who goes first alternates, so neither side always follows the other's drop of 40,000
        // documents (FerretDB's SQLite file and WAL carry it into the next writer's time).
        let ferry_first = round % 2 == 1;
        let mut ferry = None;
        if ferry_first {
            ferry = Some(ferry_round().await?);
        }
        let mut round_peer = 0f64;
        let ceiling = peer_round(0)?;
        println!(
            "mongo fill round {round}: bare wire client (pre-encoded OP_MSG of 1,000: the ceiling for that size) {ceiling:.0} docs/s"
        );
        for threads in [1u32, 4] {
            let rate = peer_round(threads)?;
            println!(
                "mongo fill round {round}: pymongo insert_many(1000) x{threads} threads {rate:.0} docs/s"
            );
            if rate > best_peer.0 {
                best_peer = (rate, threads);
            }
            round_peer = round_peer.max(rate);
        }
        let ferry = match ferry {
            Some(f) => f,
            None => ferry_round().await?,
        };
        println!(
            "mongo fill round {round}: ferry {ferry:.0} docs/s ({})",
            if ferry_first {
                "first"
            } else {
                "after the peers"
            }
        );
        best_ferry = best_ferry.max(ferry);
        ratios.push(ferry / round_peer);
        ferry_of_ceiling.push(ferry / ceiling);
        peer_of_ceiling.push(round_peer / ceiling);
    }
    ratio_line(
        "MongoDB fill docs/s (best of rounds)",
        best_ferry,
        best_peer.0,
        &format!("pymongo insert_many(1000) x{}", best_peer.1),
        1.0,
    );
    median_line(
        "MongoDB fill (ferry / the round's better pymongo)",
        ratios,
        Some(1.0),
    );
    median_line(
        "MongoDB fill (ferry / the bare wire client)",
        ferry_of_ceiling,
        None,
    );
    median_line(
        "MongoDB fill (the better pymongo / the bare wire client)",
        peer_of_ceiling,
        None,
    );
    let _ = std::fs::remove_file(&docs);
    let m = Mongo::connect(&target, &Creds::default(), db, "ferry").await?;
    m.drop_database().await?;
    Ok(())
}
