//! The S3 loader's slice: bring every bucket to the layout (`Depth_{d}_Folder_{k}/` folders, files
//! `{n}.{ext}` numbered from 0 with the extension cycling through the formats), then CRUD files (put a
//! new one, overwrite one, delete one) keeping each folder's file count within `[min_files,
//! max_files]`. Writes go out as parallel PUTs (at most [`PUT_CONCURRENCY`] in flight), deletes as bulk
//! DeleteObjects.
//!
//! The slice keeps an inventory of the buckets (which file numbers each folder holds) in the warm
//! connection, valid only for the tick right after the one that built or updated it; any other tick
//! (a restart, another container, a failed slice) lists the buckets again, so the count is always the
//! buckets' own.

use super::engine::{CHECK_EVERY, CRUD_BATCH, Engine};
use super::s3files::{self, FileFormat};
use ferry_shared::domain::loader::{self, Loader, Op, Phase, Progress, S3Layout};
use ferry_shared::domain::now_rfc3339;
use ferry_shared::keys::Key;
use ferry_shared::loaders::s3::S3Target;
use ferry_shared::loaders::{TargetError, fitting};
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// PUTs in flight at once, at most.
const PUT_CONCURRENCY: usize = 16;
/// Bytes of files in flight at once, at most (but one file always goes): 16 PUTs of up to 4 MiB, one
/// of 64 MiB (the largest `file_size`), so a slice stays within its function's memory.
const PUT_BYTES_IN_FLIGHT: usize = 64 << 20;
/// Files written or deleted per fill plan (plans are made one after another as the fill's PUTs drain;
/// a planned batch always runs to its end).
const FILL_BATCH: usize = 64;
/// Bytes of files encoded per hand-off to the blocking pool (small files go in chunks of up to
/// [`PUT_CONCURRENCY`], files of this size or more one at a time).
const ENCODE_CHUNK_BYTES: usize = 256 * 1024;
/// Records of one file use sequence numbers `file << RECORD_BITS ..`: room for 2^20 records, more than
/// a 64 MiB file (the largest allowed) of 540-byte records holds.
const RECORD_BITS: u32 = 20;

/// PUTs in flight for files of `size` bytes: [`PUT_CONCURRENCY`], fewer when they would pass
/// [`PUT_BYTES_IN_FLIGHT`], at least one.
fn put_concurrency(size: usize) -> usize {
    fitting(PUT_BYTES_IN_FLIGHT, size, 1, PUT_CONCURRENCY)
}

pub struct S3Conn {
    pub target: S3Target,
    pub inventory: tokio::sync::Mutex<Option<Inventory>>,
}

/// What the buckets hold, per bucket and folder (in [`S3Layout::folders`] order).
pub struct Inventory {
    /// The tick this inventory is valid for.
    valid_for: u64,
    files: Vec<Vec<BTreeSet<u64>>>,
    /// Keys that are not layout files, per bucket.
    extras: Vec<Vec<String>>,
}

impl Inventory {
    fn count(&self) -> u64 {
        self.files
            .iter()
            .flat_map(|b| b.iter().map(|f| f.len() as u64))
            .sum()
    }
}

/// One planned change to a bucket.
enum Change {
    Put {
        bucket: usize,
        folder: usize,
        n: u64,
        new: bool,
    },
    Delete {
        bucket: usize,
        key: String,
    },
}

/// Why a slice's fill ended.
enum FillEnd {
    /// The buckets hold the layout.
    Filled,
    /// The loader was seen stopping.
    Stopping,
    /// The slice's time is up.
    SliceOver,
}

struct FillSlice {
    ops: u64,
    why: FillEnd,
}

fn formats(layout: &S3Layout) -> Result<Vec<FileFormat>, TargetError> {
    layout
        .file_formats
        .iter()
        .map(|f| {
            f.parse()
                .map_err(|e: s3files::UnknownFormat| TargetError::Refused(e.to_string()))
        })
        .collect()
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// What every step of one S3 slice works on: the loader, its store and its layout.
#[derive(Clone, Copy)]
struct SliceCx<'a> {
    l: &'a Loader,
    target: &'a S3Target,
    layout: &'a S3Layout,
    formats: &'a [FileFormat],
    folders: &'a [String],
}

impl Engine {
    pub(crate) async fn work_s3(
        &self,
        l: &Loader,
        p: &mut Progress,
        phase: &mut Phase,
        conn: &S3Conn,
    ) -> Result<(), TargetError> {
        let layout = l
            .spec
            .s3
            .clone()
            .ok_or_else(|| TargetError::Refused("the S3 loader has no layout".into()))?;
        let formats = formats(&layout)?;
        let folders = layout.folders();
        let mut guard = conn.inventory.lock().await;
        let cached = guard
            .take()
            .filter(|inv| p.counted && inv.valid_for == l.tick);
        let mut inv = match cached {
            Some(inv) => inv,
            None => {
                let inv = self
                    .s3_inventory(l, &conn.target, &layout, &folders, !p.counted)
                    .await?;
                p.count = inv.count();
                p.counted = true;
                inv
            }
        };
        if *phase == Phase::Pending {
            *phase = Phase::Loading;
        }
        let cx = SliceCx {
            l,
            target: &conn.target,
            layout: &layout,
            formats: &formats,
            folders: &folders,
        };
        let start = Instant::now();
        let mut spec = l.spec.clone();
        let mut last_check = Instant::now();
        let mut ops = 0u64;
        let mut rng =
            (chrono::Utc::now().timestamp_millis() as u64) ^ l.tick.wrapping_mul(0x9e37_79b9) | 1;
        while start.elapsed() < self.slice {
            if *phase == Phase::Loading {
                // The fill streams: batches are planned as the PUTs ahead of them drain, so the
                // pipeline never empties between batches; the stop check runs beside it.
                let end = self.fill_slice(&cx, &mut inv, p, start).await?;
                ops += end.ops;
                p.count = inv.count();
                match end.why {
                    FillEnd::Filled if spec.crud => {
                        *phase = Phase::Crud;
                        p.crud_started_at = Some(now_rfc3339());
                        last_check = Instant::now();
                        continue;
                    }
                    FillEnd::Filled => *phase = Phase::Completed,
                    FillEnd::Stopping | FillEnd::SliceOver => {}
                }
                break;
            }
            if last_check.elapsed() >= CHECK_EVERY {
                last_check = Instant::now();
                if let Ok(Some(fresh)) = self.store.get::<Loader>(&Key::loader(&l.loader_id)).await
                {
                    if fresh.value.phase == Phase::Stopping {
                        break;
                    }
                    spec.mix = fresh.value.spec.mix;
                    spec.rate_limit = fresh.value.spec.rate_limit;
                }
            }
            let changes = match *phase {
                Phase::Crud => {
                    if loader::crud_time_up(
                        p.crud_started_at.as_deref(),
                        spec.crud_minutes,
                        &now_rfc3339(),
                    ) {
                        *phase = Phase::Completed;
                        break;
                    }
                    let batch = match spec.rate_limit {
                        Some(r) => (u64::from(r) / 5).clamp(1, CRUD_BATCH),
                        None => CRUD_BATCH.min(FILL_BATCH as u64),
                    };
                    crud_plan(&mut inv, &layout, &folders, spec.mix, batch, &mut rng)
                }
                _ => break,
            };
            // The plan already moved the inventory; a failed batch leaves it unknown: the error
            // returns without putting it back, so the next slice lists the buckets again.
            let done = self.apply(&cx, changes, p).await?;
            ops += done;
            p.count = inv.count();
            if let Some(rate) = spec.rate_limit {
                let due = Duration::from_secs_f64(ops as f64 / f64::from(rate));
                let elapsed = start.elapsed();
                if due > elapsed {
                    tokio::time::sleep((due - elapsed).min(self.slice)).await;
                }
            }
        }
        p.count = inv.count();
        let secs = start.elapsed().as_secs_f64();
        p.ops_per_sec = if secs > 0.0 {
            (ops as f64 / secs * 10.0).round() / 10.0
        } else {
            0.0
        };
        inv.valid_for = l.tick + 1;
        *guard = Some(inv);
        Ok(())
    }

    /// The fill's part of a slice: fill batches planned one after another, their files encoded and
    /// PUT through one pipeline (a batch is planned when the one before it is under way, not done),
    /// until the buckets hold the layout, the slice is over, or the loader is seen stopping (checked
    /// every [`CHECK_EVERY`] beside the pipeline). What is planned is always run to its end.
    async fn fill_slice(
        &self,
        cx: &SliceCx<'_>,
        inv: &mut Inventory,
        p: &mut Progress,
        start: Instant,
    ) -> Result<FillSlice, TargetError> {
        let SliceCx {
            l, layout, folders, ..
        } = *cx;
        let filled = AtomicBool::new(false);
        let stopping = AtomicBool::new(false);
        let slice = self.slice;
        let mut batch = Vec::new().into_iter();
        let changes = std::iter::from_fn(|| {
            loop {
                if let Some(c) = batch.next() {
                    return Some(c);
                }
                if stopping.load(Ordering::Relaxed) || start.elapsed() >= slice {
                    return None;
                }
                let next = fill_plan(inv, layout, folders);
                if next.is_empty() {
                    filled.store(true, Ordering::Relaxed);
                    return None;
                }
                batch = next.into_iter();
            }
        });
        let watch = async {
            loop {
                tokio::time::sleep(CHECK_EVERY).await;
                if let Ok(Some(fresh)) = self.store.get::<Loader>(&Key::loader(&l.loader_id)).await
                    && fresh.value.phase == Phase::Stopping
                {
                    stopping.store(true, Ordering::Relaxed);
                    return;
                }
            }
        };
        let work = self.apply(cx, changes, p);
        tokio::pin!(work);
        let ops = tokio::select! {
            done = &mut work => done?,
            () = watch => work.await?,
        };
        let why = if filled.load(Ordering::Relaxed) {
            FillEnd::Filled
        } else if stopping.load(Ordering::Relaxed) {
            FillEnd::Stopping
        } else {
            FillEnd::SliceOver
        };
        Ok(FillSlice { ops, why })
    }

    /// Lists every bucket (creating missing ones first when `create`) and sorts its keys into layout
    /// files and extras.
    async fn s3_inventory(
        &self,
        l: &Loader,
        target: &S3Target,
        layout: &S3Layout,
        folders: &[String],
        create: bool,
    ) -> Result<Inventory, TargetError> {
        let index: HashMap<&str, usize> = folders
            .iter()
            .enumerate()
            .map(|(i, f)| (f.as_str(), i))
            .collect();
        let set: HashSet<String> = folders.iter().cloned().collect();
        let mut files = Vec::new();
        let mut extras = Vec::new();
        for bucket in &l.target.buckets {
            if create && !target.exists(bucket).await? {
                target.create_bucket(bucket, &l.loader_id).await?;
            }
            let mut per_folder = vec![BTreeSet::new(); folders.len()];
            let mut other = Vec::new();
            for key in target.list(bucket).await? {
                match layout.classify(&set, &key) {
                    Some((folder, n)) => {
                        per_folder[index[folder]].insert(n);
                    }
                    None => other.push(key),
                }
            }
            files.push(per_folder);
            extras.push(other);
        }
        Ok(Inventory {
            valid_for: l.tick,
            files,
            extras,
        })
    }

    /// Runs a batch of changes: PUTs in parallel (each file encoded off the async threads), deletes in
    /// bulk per bucket. Returns the operations done.
    async fn apply(
        &self,
        cx: &SliceCx<'_>,
        changes: impl IntoIterator<Item = Change, IntoIter: Send> + Send,
        p: &mut Progress,
    ) -> Result<u64, TargetError> {
        let SliceCx {
            l,
            target,
            layout,
            formats,
            folders,
        } = *cx;
        let mut deletes: HashMap<usize, Vec<String>> = HashMap::new();
        let next_seq = &mut p.next_seq;
        // Deletes are gathered for bulk requests at the end; PUTs are described as the changes come.
        let mut puts = changes.into_iter().filter_map(|c| match c {
            Change::Delete { bucket, key } => {
                deletes.entry(bucket).or_default().push(key);
                None
            }
            Change::Put {
                bucket,
                folder,
                n,
                new,
            } => {
                let first_seq = *next_seq << RECORD_BITS;
                *next_seq += 1;
                Some((
                    l.target.buckets[bucket].clone(),
                    layout.key(&folders[folder], n),
                    FileFormat::cycle(formats, n),
                    first_seq,
                    new,
                ))
            }
        });
        let size = layout.file_size as usize;
        let puts_in_flight = put_concurrency(size);
        // Files are encoded a chunk at a time on the blocking pool (one hand-off per chunk, not per
        // file), up to one chunk per core at once (as many as PUTs in flight, for large files),
        // ahead of the PUTs that send them.
        let per_chunk = fitting(ENCODE_CHUNK_BYTES, size, 1, PUT_CONCURRENCY);
        let cores = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(puts_in_flight);
        let chunks = std::iter::from_fn(|| {
            let chunk: Vec<_> = puts.by_ref().take(per_chunk).collect();
            (!chunk.is_empty()).then_some(chunk)
        });
        let written: Vec<bool> = futures::stream::iter(chunks)
            .map(|chunk| {
                let loader_id = l.loader_id.clone();
                async move {
                    tokio::task::spawn_blocking(move || {
                        chunk
                            .into_iter()
                            .map(|(bucket, key, format, first_seq, new)| {
                                s3files::encode(format, size, &loader_id, first_seq)
                                    .map(|bytes| (bucket, key, bytes, new))
                                    .map_err(|e| {
                                        TargetError::Failed(format!("encoding a file: {e:#}"))
                                    })
                            })
                            .collect::<Vec<_>>()
                    })
                    .await
                    .map_err(|e| TargetError::Failed(format!("encoding a file: {e}")))
                }
            })
            .buffered(cores)
            .map_ok(futures::stream::iter)
            .try_flatten()
            .map_ok(|(bucket, key, bytes, new)| async move {
                target.put(&bucket, &key, bytes).await?;
                Ok::<bool, TargetError>(new)
            })
            .try_buffer_unordered(puts_in_flight)
            .try_collect()
            .await?;
        let inserted = written.iter().filter(|n| **n).count() as u64;
        let updated = written.len() as u64 - inserted;
        let mut deleted = 0;
        for (bucket, keys) in deletes {
            deleted += target.delete(&l.target.buckets[bucket], &keys).await?;
        }
        p.ops.inserted += inserted;
        p.ops.updated += updated;
        p.ops.deleted += deleted;
        Ok(inserted + updated + deleted)
    }
}

/// The next fill batch, applied to the inventory: extras out, then per folder the numbers at or above
/// `num_files_per_level` out and the missing ones below it in. Empty when the buckets hold the layout.
fn fill_plan(inv: &mut Inventory, layout: &S3Layout, folders: &[String]) -> Vec<Change> {
    let mut out = Vec::new();
    let want = u64::from(layout.num_files_per_level);
    for (b, extras) in inv.extras.iter_mut().enumerate() {
        // Deletes are cheap (1000 per request): take every extra at once.
        out.extend(
            extras
                .drain(..)
                .map(|key| Change::Delete { bucket: b, key }),
        );
    }
    for (b, bucket) in inv.files.iter_mut().enumerate() {
        for (f, files) in bucket.iter_mut().enumerate() {
            let surplus: Vec<u64> = files.range(want..).copied().collect();
            for n in surplus {
                files.remove(&n);
                out.push(Change::Delete {
                    bucket: b,
                    key: layout.key(&folders[f], n),
                });
            }
            for n in 0..want {
                if out.len() >= FILL_BATCH {
                    return out;
                }
                if files.insert(n) {
                    out.push(Change::Put {
                        bucket: b,
                        folder: f,
                        n,
                        new: true,
                    });
                }
            }
        }
    }
    out
}

/// A CRUD batch, applied to the inventory: each operation picks a random folder of a random bucket and
/// an operation by the mix that keeps that folder within `[min_files, max_files]`. A new file takes the
/// folder's highest number + 1; an overwrite or delete a random existing file. A file is touched at
/// most once per batch (the batch's PUTs run in parallel).
fn crud_plan(
    inv: &mut Inventory,
    layout: &S3Layout,
    folders: &[String],
    mix: loader::Mix,
    batch: u64,
    rng: &mut u64,
) -> Vec<Change> {
    let mut out = Vec::new();
    let mut touched: HashSet<(usize, usize, u64)> = HashSet::new();
    let buckets = inv.files.len();
    if buckets == 0 || folders.is_empty() {
        return out;
    }
    // One operation per folder a batch: the batch's PUTs and DELETEs run at once, so a folder touched
    // twice could be seen outside its band in between.
    let mut folders_touched: HashSet<(usize, usize)> = HashSet::new();
    for _ in 0..batch {
        let b = (xorshift(rng) % buckets as u64) as usize;
        let f = (xorshift(rng) % folders.len() as u64) as usize;
        if !folders_touched.insert((b, f)) {
            continue;
        }
        let files = &mut inv.files[b][f];
        let roll = (xorshift(rng) >> 32) as u32;
        let op = loader::pick_op_within(
            files.len() as u64,
            layout.min_files.into(),
            layout.max_files.into(),
            mix,
            roll,
        );
        let pick = |files: &BTreeSet<u64>, r: u64| -> Option<u64> {
            if files.is_empty() {
                None
            } else {
                files.iter().nth((r % files.len() as u64) as usize).copied()
            }
        };
        match op {
            Op::Insert => {
                // After a delete of the highest file in this batch, the next number may be that
                // file's: skip rather than race a PUT against its DELETE.
                let n = files.last().map_or(0, |m| m + 1);
                if touched.insert((b, f, n)) {
                    files.insert(n);
                    out.push(Change::Put {
                        bucket: b,
                        folder: f,
                        n,
                        new: true,
                    });
                }
            }
            Op::Update => {
                if let Some(n) = pick(files, xorshift(rng))
                    && touched.insert((b, f, n))
                {
                    out.push(Change::Put {
                        bucket: b,
                        folder: f,
                        n,
                        new: false,
                    });
                }
            }
            Op::Delete => {
                if let Some(n) = pick(files, xorshift(rng))
                    && touched.insert((b, f, n))
                {
                    files.remove(&n);
                    out.push(Change::Delete {
                        bucket: b,
                        key: layout.key(&folders[f], n),
                    });
                }
            }
        }
    }
    out
}

#[cfg(all(test, feature = "files"))]
mod tests {
    use super::*;

    fn layout() -> S3Layout {
        S3Layout {
            num_buckets: 2,
            depth_level: 2,
            num_folders_per_level: 2,
            num_files_per_level: 5,
            file_size: 100,
            file_formats: vec!["json".into(), "csv".into()],
            min_files: 3,
            max_files: 7,
        }
    }

    #[test]
    fn large_files_go_fewer_at_a_time() {
        assert_eq!(put_concurrency(1024), PUT_CONCURRENCY);
        assert_eq!(put_concurrency(4 << 20), 16);
        assert_eq!(put_concurrency(8 << 20), 8);
        assert_eq!(put_concurrency(64 << 20), 1);
        assert_eq!(put_concurrency(0), PUT_CONCURRENCY);
    }

    fn empty(l: &S3Layout) -> Inventory {
        let folders = l.folders().len();
        Inventory {
            valid_for: 0,
            files: vec![vec![BTreeSet::new(); folders]; l.num_buckets as usize],
            extras: vec![Vec::new(); l.num_buckets as usize],
        }
    }

    #[test]
    fn fill_plans_bring_every_folder_to_exactly_the_layout() {
        let l = layout();
        let folders = l.folders();
        let mut inv = empty(&l);
        inv.files[0][1].extend([0, 7, 9]);
        inv.extras[1].push("stray.txt".into());
        let mut puts = 0;
        let mut deletes = Vec::new();
        loop {
            let plan = fill_plan(&mut inv, &l, &folders);
            if plan.is_empty() {
                break;
            }
            assert!(plan.len() <= FILL_BATCH + 3);
            for c in plan {
                match c {
                    Change::Put { new, .. } => {
                        assert!(new);
                        puts += 1
                    }
                    Change::Delete { key, .. } => deletes.push(key),
                }
            }
        }
        let expected: BTreeSet<u64> = (0..5).collect();
        for b in &inv.files {
            for f in b {
                assert_eq!(f, &expected);
            }
        }
        assert_eq!(puts, 2 * 7 * 5 - 1);
        deletes.sort();
        assert_eq!(
            deletes,
            [
                "Depth_1_Folder_1/7.csv",
                "Depth_1_Folder_1/9.csv",
                "stray.txt"
            ]
        );
    }

    #[test]
    fn crud_plans_keep_every_folder_within_the_band_and_touch_a_folder_once_per_batch() {
        let l = layout();
        let folders = l.folders();
        let mut inv = empty(&l);
        while !fill_plan(&mut inv, &l, &folders).is_empty() {}
        let mut rng = 12345u64;
        let mut kinds = [0u32; 3];
        for _ in 0..300 {
            let plan = crud_plan(&mut inv, &l, &folders, loader::Mix::default(), 50, &mut rng);
            let mut keys = HashSet::new();
            let mut touched = HashSet::new();
            for c in &plan {
                let (bucket, key) = match c {
                    Change::Put {
                        bucket, folder, n, ..
                    } => (*bucket, l.key(&folders[*folder], *n)),
                    Change::Delete { bucket, key } => (*bucket, key.clone()),
                };
                let folder = key.rfind('/').map_or("", |i| &key[..=i]).to_string();
                assert!(
                    touched.insert((bucket, folder)),
                    "a folder touched twice in one batch"
                );
            }
            for c in &plan {
                let key = match c {
                    Change::Put {
                        bucket,
                        folder,
                        n,
                        new,
                    } => {
                        kinds[usize::from(!*new)] += 1;
                        (*bucket, l.key(&folders[*folder], *n))
                    }
                    Change::Delete { bucket, key } => {
                        kinds[2] += 1;
                        (*bucket, key.clone())
                    }
                };
                assert!(keys.insert(key), "a file touched twice in one batch");
            }
            for b in &inv.files {
                for f in b {
                    assert!((3..=7).contains(&f.len()), "{}", f.len());
                }
            }
        }
        assert!(kinds.iter().all(|k| *k > 100), "{kinds:?}");
    }
}
