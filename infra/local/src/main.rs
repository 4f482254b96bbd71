//! `ferry-local`: the CLI over the ferry-local library (see its docs for what each command does).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use ferry_local::{
    clients::Clients, env, gateway, provision, pump, routes, state, template::Template,
};

#[derive(Parser)]
#[command(
    name = "ferry-local",
    about = "ferry's local stack, driven by infra/template.yaml"
)]
struct Cli {
    /// The SAM template (default: infra/template.yaml in the repo root).
    #[arg(long, global = true)]
    template: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the template's tables, queues, buckets, schedule groups and secrets (idempotent) and write
    /// $FERRY_STATE_DIR/resources.json.
    Provision,
    /// Print `export KEY='VALUE'` lines: every function's environment variables, resolved.
    Env,
    /// Serve the template's HttpApi routes as API Gateway does, invoking the functions through the
    /// Lambda Invoke API of cargo lambda watch.
    Gateway(GatewayArgs),
    /// Feed SQS messages to the functions through cargo lambda watch and fire stored schedules.
    Pump(PumpArgs),
    /// Create a user, or reset its password and roles, in the provisioned table.
    CreateUser(CreateUserArgs),
}

#[derive(Args)]
struct CreateUserArgs {
    /// The user name.
    name: String,
    /// A file whose first line is the password (kept out of argv and shell history).
    #[arg(long)]
    password_file: PathBuf,
    /// Roles to grant (repeatable; default: admin).
    #[arg(long = "role", default_values_t = ["admin".to_string()])]
    roles: Vec<String>,
}

#[derive(Args)]
struct GatewayArgs {
    /// Where to listen (default: 127.0.0.1:$FERRY_API_PORT, else 127.0.0.1:9000).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// The Lambda Invoke API (default: $FERRY_WATCH_URL, else http://127.0.0.1:9001).
    #[arg(long)]
    lambda_url: Option<String>,
}

#[derive(Args)]
struct PumpArgs {
    /// Fire only schedules of these groups (repeatable; default: the template's schedule groups and
    /// `default`).
    #[arg(long = "schedule-group")]
    schedule_groups: Vec<String>,
    /// Fire the schedules of every group.
    #[arg(long, conflicts_with = "schedule_groups")]
    all_schedule_groups: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ferry-local: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let template_path = cli
        .template
        .clone()
        .unwrap_or_else(state::default_template_path);
    let template = Template::load(&template_path)?;
    match cli.command {
        Command::Provision => {
            let clients = Clients::from_env().await;
            let naming = provision::Naming::default();
            let recorded =
                provision::provision(&template, &clients, &naming, &mut |line| println!("{line}"))
                    .await?;
            let path = recorded.save(&state::state_dir())?;
            println!("wrote {}", path.display());
        }
        Command::Env => {
            let st = state::State::load(&state::state_dir())?;
            print!("{}", env::render_exports(&env::union_env(&template, &st)?));
        }
        Command::Gateway(args) => {
            ferry_shared::telemetry::init();
            routes::check_unique(&template)?;
            let listen = match args.listen {
                Some(a) => a,
                None => {
                    let port: u16 = std::env::var("FERRY_API_PORT")
                        .ok()
                        .map(|p| p.parse())
                        .transpose()
                        .context("FERRY_API_PORT must be a port number")?
                        .unwrap_or(9000);
                    std::net::SocketAddr::from(([127, 0, 0, 1], port))
                }
            };
            let lambda_url = args
                .lambda_url
                .or_else(|| std::env::var("FERRY_WATCH_URL").ok())
                .unwrap_or_else(|| "http://127.0.0.1:9001".into());
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                wait_for_signal().await;
                let _ = tx.send(true);
            });
            gateway::serve(&template, listen, &lambda_url, rx).await?;
        }
        Command::Pump(args) => {
            ferry_shared::telemetry::init();
            let st = state::State::load(&state::state_dir())?;
            let clients = Clients::from_env().await;
            let settings = pump::PumpSettings::from_env()?;
            // By default only the stack's own schedule groups (those the template declares) and
            // `default`, as deployed: a test's private group is left to that test's own pump.
            let groups = if args.all_schedule_groups {
                pump::schedules::GroupFilter::all()
            } else if args.schedule_groups.is_empty() {
                pump::schedules::GroupFilter::only(
                    st.0.values()
                        .filter(|r| r.kind == "AWS::Scheduler::ScheduleGroup")
                        .map(|r| r.reference.clone())
                        .chain(std::iter::once("default".to_string())),
                )
            } else {
                pump::schedules::GroupFilter::only(args.schedule_groups)
            };
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("stop requested; finishing in-flight invocations");
                let _ = tx.send(true);
            });
            pump::run(&template, &st, &clients, &settings, groups, rx).await?;
        }
        Command::CreateUser(args) => {
            let st = state::State::load(&state::state_dir())?;
            // The table is whatever the login function is given, so users land where /login looks.
            let fn_env = env::function_env_with(&template, &st, "api-jobs")?;
            let table = fn_env
                .get("TABLE_NAME")
                .context("api-jobs has no TABLE_NAME in the template")?;
            let password = std::fs::read_to_string(&args.password_file)
                .with_context(|| format!("reading {}", args.password_file.display()))?;
            let password = password.lines().next().unwrap_or("").to_string();
            let aws = ferry_shared::aws::load().await;
            let store =
                ferry_shared::store::Store::new(aws_sdk_dynamodb::Client::new(&aws), table.clone());
            ferry_shared::auth::put_user(&store, &args.name, &password, args.roles.clone(), true)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "user {} ready (roles: {})",
                args.name,
                args.roles.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the pump");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
