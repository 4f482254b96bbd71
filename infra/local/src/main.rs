//! `ferry-local`: the CLI over the ferry-local library (see its docs for what each command does).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{ArgGroup, Args, Parser, Subcommand};
use ferry_local::{clients::Clients, env, provision, pump, routes, state, template::Template};

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
    /// Check or rewrite the cargo lambda watch router in the root Cargo.toml.
    Routes(RoutesArgs),
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
#[command(group(ArgGroup::new("mode").required(true).args(["check", "write"])))]
struct RoutesArgs {
    /// Exit 1, with a diff, if the generated block differs from the template.
    #[arg(long)]
    check: bool,
    /// Rewrite the generated block (append it if missing).
    #[arg(long)]
    write: bool,
    /// The Cargo.toml holding the router (default: the repo root's).
    #[arg(long)]
    manifest: Option<PathBuf>,
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
        Command::Routes(args) => {
            let manifest = args
                .manifest
                .unwrap_or_else(|| state::repo_root().join("Cargo.toml"));
            let text = std::fs::read_to_string(&manifest)
                .with_context(|| format!("reading {}", manifest.display()))?;
            let block = routes::render_block(&template)?;
            if args.write {
                let new = routes::apply(&text, &block)?;
                if new == text {
                    println!("{}: router up to date", manifest.display());
                } else {
                    std::fs::write(&manifest, new)
                        .with_context(|| format!("writing {}", manifest.display()))?;
                    println!(
                        "{}: router rewritten from {}",
                        manifest.display(),
                        template_path.display()
                    );
                }
            } else if let Some(diff) = routes::check(&text, &block)? {
                eprint!("{}: {diff}", manifest.display());
                return Ok(ExitCode::from(1));
            } else {
                println!("{}: router matches the template", manifest.display());
            }
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
