//! A small stand-in for the Lambda service, for tests that kill a function's process with SIGKILL.
//!
//! cargo lambda watch 1.9 does not start a function again after its process was killed (invocations
//! then hang), so a test that kills workers runs the REAL function binary under this host instead:
//! - the Lambda Invoke API (`POST /2015-03-31/functions/<name>/invocations`), which is what
//!   ferry-local's pump calls, on [`LambdaHost::invoke_url`];
//! - the Lambda Runtime API (`GET /2018-06-01/runtime/invocation/next`, `POST .../<id>/response`,
//!   `POST .../<id>/error`, `POST /2018-06-01/runtime/init/error`), which the function's
//!   lambda_runtime polls; each process gets a listener of its own (its `AWS_LAMBDA_RUNTIME_API`), so
//!   the host always knows which process took which invocation;
//! - a supervisor that runs one process at a time and, when it exits, fails the invocation it had
//!   taken as Lambda does (500, `Runtime.ExitError`), then starts a new one (after [`LambdaHost::release`]
//!   when the process was killed through [`LambdaHost::kill9`], so a test can read state in between).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{Notify, oneshot};

/// How an invocation ended.
enum Reply {
    Returned(Bytes),
    Failed(Bytes),
    Exited(String),
}

struct Invocation {
    id: String,
    payload: Bytes,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
struct Slots {
    /// Invocations no process has taken yet.
    pending: VecDeque<Invocation>,
    /// Taken invocations, by request id: (generation of the process that took it, reply).
    taken: HashMap<String, (u64, oneshot::Sender<Reply>)>,
    /// The generation of the running process, if one runs.
    alive: Option<u64>,
    pid: Option<u32>,
    /// A kill asked the supervisor to wait for `release` before starting the next process.
    hold: bool,
}

struct Inner {
    function: String,
    slots: Mutex<Slots>,
    /// A new pending invocation, or a generation change.
    wake: Notify,
    /// `release` after a held kill.
    released: Notify,
    /// Processes that exited (for any reason).
    exits: AtomicU64,
    invocations: AtomicU64,
}

/// What to run.
pub struct FunctionSpec {
    /// The function name the Invoke API answers to.
    pub name: String,
    pub binary: PathBuf,
    /// Variables set on top of this process's own environment.
    pub env: Vec<(String, String)>,
    /// Where the process's stdout and stderr go (appended).
    pub log: PathBuf,
    pub timeout: Duration,
}

pub struct LambdaHost {
    /// Base URL of the Invoke API.
    pub invoke_url: String,
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for LambdaHost {
    fn drop(&mut self) {
        // The supervisor owns the child (kill_on_drop): aborting it stops the process.
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl LambdaHost {
    pub async fn start(spec: FunctionSpec) -> LambdaHost {
        assert!(
            spec.binary.is_file(),
            "{} does not exist: build it first (cargo build -p {})",
            spec.binary.display(),
            spec.name
        );
        let inner = Arc::new(Inner {
            function: spec.name.clone(),
            slots: Mutex::new(Slots::default()),
            wake: Notify::new(),
            released: Notify::new(),
            exits: AtomicU64::new(0),
            invocations: AtomicU64::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let invoke_url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let supervisor = tokio::spawn(supervise(inner.clone(), spec));
        LambdaHost {
            invoke_url,
            inner,
            tasks: vec![server, supervisor],
        }
    }

    /// The running process's pid, once it runs.
    pub fn pid(&self) -> Option<u32> {
        let s = self.inner.slots.lock().unwrap();
        s.alive.and(s.pid)
    }

    /// Invocations a process has taken and not answered yet.
    pub fn busy(&self) -> usize {
        self.inner.slots.lock().unwrap().taken.len()
    }

    pub fn exits(&self) -> u64 {
        self.inner.exits.load(Ordering::SeqCst)
    }

    pub fn invocations(&self) -> u64 {
        self.inner.invocations.load(Ordering::SeqCst)
    }

    /// Sends SIGKILL (`kill -9`) to the running process and waits until the host has seen it exit
    /// (its invocation failed); no new process starts until [`release`](Self::release). Returns the
    /// killed pid, or `None` when no process was running.
    pub async fn kill9(&self) -> Option<u32> {
        let pid = {
            let mut s = self.inner.slots.lock().unwrap();
            let pid = s.alive.and(s.pid)?;
            s.hold = true;
            pid
        };
        let status = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -9 {pid} failed");
        let t0 = std::time::Instant::now();
        while self.inner.slots.lock().unwrap().alive.is_some() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "process {pid} still alive 30 s after kill -9"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Some(pid)
    }

    /// Lets the supervisor start the next process after a [`kill9`](Self::kill9).
    pub fn release(&self) {
        self.inner.slots.lock().unwrap().hold = false;
        self.inner.released.notify_waiters();
    }
}

/// Runs the function's processes one after the other, for as long as the host lives.
async fn supervise(inner: Arc<Inner>, spec: FunctionSpec) {
    let mut generation = 0u64;
    loop {
        generation += 1;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = listener.local_addr().unwrap().to_string();
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state((inner.clone(), generation));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .expect("open the function log");
        let mut child = tokio::process::Command::new(&spec.binary)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", spec.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("host-{generation}"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start the function process");
        {
            let mut s = inner.slots.lock().unwrap();
            s.alive = Some(generation);
            s.pid = child.id();
        }
        inner.wake.notify_waiters();
        let status = child.wait().await;
        // Under the slots lock: no `next` of this generation can take work from here on.
        let orphans: Vec<oneshot::Sender<Reply>> = {
            let mut s = inner.slots.lock().unwrap();
            s.alive = None;
            s.pid = None;
            let ids: Vec<String> = s
                .taken
                .iter()
                .filter(|(_, (g, _))| *g == generation)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| s.taken.remove(&id).map(|(_, r)| r))
                .collect()
        };
        inner.exits.fetch_add(1, Ordering::SeqCst);
        server.abort();
        inner.wake.notify_waiters();
        let why = match status {
            Ok(s) => format!("process exited: {s}"),
            Err(e) => format!("process lost: {e}"),
        };
        for r in orphans {
            let _ = r.send(Reply::Exited(why.clone()));
        }
        // Held by a kill: wait for the test to let the next process start.
        loop {
            let released = inner.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if !inner.slots.lock().unwrap().hold {
                break;
            }
            released.await;
        }
    }
}

fn error_body(kind: &str, message: &str) -> Bytes {
    Bytes::from(serde_json::json!({"errorType": kind, "errorMessage": message}).to_string())
}

/// The Invoke API: queue the event, wait for a process to answer it.
async fn invoke(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    payload: Bytes,
) -> Response {
    if name != inner.function {
        return (
            StatusCode::NOT_FOUND,
            error_body(
                "ResourceNotFoundException",
                &format!("Function not found: {name}"),
            ),
        )
            .into_response();
    }
    let (tx, rx) = oneshot::channel();
    let id = ferry_shared::domain::new_id();
    inner.invocations.fetch_add(1, Ordering::SeqCst);
    inner.slots.lock().unwrap().pending.push_back(Invocation {
        id,
        payload,
        reply: tx,
    });
    inner.wake.notify_waiters();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    match rx.await {
        Ok(Reply::Returned(body)) => (StatusCode::OK, headers, body).into_response(),
        Ok(Reply::Failed(body)) => {
            headers.insert(
                "x-amz-function-error",
                HeaderValue::from_static("Unhandled"),
            );
            (StatusCode::INTERNAL_SERVER_ERROR, headers, body).into_response()
        }
        Ok(Reply::Exited(why)) => {
            headers.insert(
                "x-amz-function-error",
                HeaderValue::from_static("Unhandled"),
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                headers,
                error_body("Runtime.ExitError", &why),
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            headers,
            error_body("ServiceException", "the host stopped"),
        )
            .into_response(),
    }
}

/// The Runtime API's long poll: hands the next invocation to the process of `generation`.
async fn next(State((inner, generation)): State<(Arc<Inner>, u64)>) -> Response {
    loop {
        let woken = inner.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        {
            let mut s = inner.slots.lock().unwrap();
            if s.alive != Some(generation) {
                return StatusCode::GONE.into_response();
            }
            if let Some(inv) = s.pending.pop_front() {
                s.taken.insert(inv.id.clone(), (generation, inv.reply));
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis()
                    + 300_000;
                let mut headers = HeaderMap::new();
                let h = |v: String| HeaderValue::from_str(&v).unwrap();
                headers.insert("lambda-runtime-aws-request-id", h(inv.id.clone()));
                headers.insert("lambda-runtime-deadline-ms", h(deadline.to_string()));
                headers.insert(
                    "lambda-runtime-invoked-function-arn",
                    h(format!(
                        "arn:aws:lambda:us-east-1:123456789012:function:{}",
                        inner.function
                    )),
                );
                headers.insert("lambda-runtime-trace-id", h(format!("Root=1-{}", inv.id)));
                headers.insert("content-type", HeaderValue::from_static("application/json"));
                return (StatusCode::OK, headers, inv.payload).into_response();
            }
        }
        // Re-check now and then as well: a wake-up can be taken by a waiter of a dead generation.
        let _ = tokio::time::timeout(Duration::from_millis(500), woken).await;
    }
}

fn settle(inner: &Inner, generation: u64, id: &str, reply: Reply) -> StatusCode {
    let mut s = inner.slots.lock().unwrap();
    match s.taken.get(id) {
        Some((g, _)) if *g == generation => {
            let (_, tx) = s.taken.remove(id).unwrap();
            let _ = tx.send(reply);
            StatusCode::ACCEPTED
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

async fn respond(
    State((inner, generation)): State<(Arc<Inner>, u64)>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    settle(&inner, generation, &id, Reply::Returned(body))
}

async fn fail(
    State((inner, generation)): State<(Arc<Inner>, u64)>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    settle(&inner, generation, &id, Reply::Failed(body))
}

async fn init_error(body: Bytes) -> StatusCode {
    eprintln!(
        "lambda host: the function failed to initialise: {}",
        String::from_utf8_lossy(&body)
    );
    StatusCode::ACCEPTED
}

/// A REAL worker binary under a [`LambdaHost`] of its own, fed from `queue_url` by ferry-local's SQS
/// loop (one poll loop, `batch_size` messages an invocation), with `env` on top of the test's own
/// environment (e.g. its queue URL, so its own messages go to that queue).
pub struct HostedWorker {
    pub host: LambdaHost,
    pump: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
    pub log: PathBuf,
}

impl HostedWorker {
    pub async fn start(
        sqs: &aws_sdk_sqs::Client,
        queue_url: &str,
        function: &str,
        name: &str,
        env: Vec<(String, String)>,
        batch_size: u32,
    ) -> HostedWorker {
        let queue_arn = ferry_local::pump::sqs::queue_arn(sqs, queue_url)
            .await
            .unwrap();
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| format!("{}/target", crate::env("FERRY_ROOT")));
        let log: PathBuf = format!("{}/logs/{name}.log", crate::env("FERRY_STATE_DIR")).into();
        let _ = std::fs::remove_file(&log);
        let host = LambdaHost::start(FunctionSpec {
            name: function.into(),
            binary: format!("{target}/debug/{function}").into(),
            env,
            log: log.clone(),
            timeout: Duration::from_secs(300),
        })
        .await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let pump = tokio::spawn(ferry_local::pump::sqs::run_source(
            ferry_local::pump::sqs::SqsSource {
                function: function.into(),
                queue_url: queue_url.to_string(),
                queue_arn,
                batch_size,
                report_batch_item_failures: true,
                invoke_timeout: Duration::from_secs(330),
                pollers: 1,
            },
            sqs.clone(),
            ferry_local::pump::sqs::Invoker::new(&host.invoke_url).unwrap(),
            ferry_local::pump::sqs::SqsLoopSettings {
                wait_time_secs: 1,
                retry_delay_secs: 0,
                region: crate::env("AWS_REGION"),
            },
            stopped,
        ));
        HostedWorker {
            host,
            pump,
            stop,
            log,
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.pump.await;
        drop(self.host);
    }
}

/// A queue of the test's own (10 min visibility), for a [`HostedWorker`].
pub async fn test_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "600",
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}
