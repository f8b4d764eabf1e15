//! The `aws-replicator` command line. Errors become one clear message and exit code 1 here;
//! everything below returns typed errors.

use anyhow::{Context, Result, bail};
use aws_replicator::accounts::run::accounts_phase;
use aws_replicator::config::Config;
use aws_replicator::desired::{self, Scope, Settings};
use aws_replicator::directory::{self, World};
use aws_replicator::model::{ProjectKey, WorkspaceId};
use aws_replicator::observed::Observed;
use aws_replicator::plan::{self, Plan};
use aws_replicator::snapshot::Snapshot;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "aws-replicator",
    version,
    about = "Makes AWS follow meshStack: projects, accounts and who may do what."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines on standard error are written: `text` for people, `json` for a log
    /// collector (one object per line). The filter is `AWS_REPLICATOR_LOG`.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "AWS_REPLICATOR_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Work with the configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Show what a sync would change in AWS IAM Identity Center, and why.
    Plan(PlanArgs),
    /// Make AWS IAM Identity Center follow meshStack: plan, apply, check what was changed.
    ///
    /// Exit codes: 0 everything wanted is in sync; 1 an error, a refused plan or a failed
    /// operation; 3 what could be applied was, but something a person must fix stands in the
    /// way (a held project, a missing external role on the meshIdB path), named on standard
    /// error and in `--json`. An euid without an AWS user is a finding, not a failure.
    Sync(SyncArgs),
    /// Run as a service: sync on a schedule and on demand (webhook), serve /metrics.
    Serve {
        #[arg(long, env = "AWS_REPLICATOR_CONFIG", help = CONFIG_HELP)]
        config: PathBuf,
        /// Sync from this snapshot file (read again for every run) instead of the meshStack API.
        #[arg(long)]
        snapshot: Option<PathBuf>,
        /// Listen here instead of `replicator.serve.listen`.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Serve /metrics and health here instead of `replicator.serve.metrics-listen`.
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Read meshStack and write what it holds as a snapshot file.
    Snapshot {
        #[arg(long, env = "AWS_REPLICATOR_CONFIG", help = CONFIG_HELP)]
        config: PathBuf,
        /// Where to write the snapshot (standard output if omitted).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// meshIdB: the SAML role pairs (`role ARN,provider ARN`) each user's assertion must carry,
    /// as JSON.
    SamlRoles {
        #[arg(long, env = "AWS_REPLICATOR_CONFIG", help = CONFIG_HELP)]
        config: PathBuf,
        /// Read this snapshot file instead of the meshStack API.
        #[arg(long)]
        snapshot: Option<PathBuf>,
        /// Only this meshStack user.
        #[arg(long)]
        user: Option<String>,
    },
    /// Write the IAM policies and trust relationships the seed's account setup needs, from the
    /// config.
    Bootstrap {
        #[arg(long, env = "AWS_REPLICATOR_CONFIG", help = CONFIG_HELP)]
        config: PathBuf,
        /// The AWS account where `meshfed-service-user` lives.
        #[arg(long)]
        meshcloud_account_id: String,
        /// The folder to write into (created if needed).
        #[arg(long)]
        out: PathBuf,
        /// Write the configured ExternalIds into the files instead of a placeholder.
        #[arg(long)]
        reveal_external_id: bool,
    },
    /// Sync the shipped sample into the built-in AWS IAM Identity Center emulator, on loopback
    /// in this process, through the real SCIM and sso-admin clients: plan, apply, check, then
    /// repair drift made behind the replicator's back. Needs no AWS account and no credentials.
    Demo,
    /// Serve the AWS IAM Identity Center emulator on loopback, for trying the replicator by hand.
    Emulator {
        /// Port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// A state file to start from: the JSON of `/_emulator/state`, or an observed-state file
        /// as `plan --observed` reads it (e.g. config/sample-observed.json).
        #[arg(long)]
        state: Option<PathBuf>,
        /// The SCIM bearer token clients must send.
        #[arg(
            long,
            env = "AWS_REPLICATOR_EMULATOR_TOKEN",
            default_value = "emulator-token",
            hide_env_values = true
        )]
        token: String,
    },
}

const CONFIG_HELP: &str = "The configuration file (Dhall; see config/example.dhall)";

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load, type-check and validate a configuration file.
    ///
    /// Secrets and other values imported with `env:` may be unset, so that a config can be
    /// checked where production secrets are not (a pull request): each stands in as a
    /// placeholder, and the check lists every variable the running service will need.
    Check {
        #[arg(long, env = "AWS_REPLICATOR_CONFIG", help = CONFIG_HELP)]
        config: PathBuf,
        /// Fail, naming every one, when an `env:` import is not set (the running service's
        /// view).
        #[arg(long)]
        require_secrets: bool,
    },
}

/// `--project` and `--workspace`: the scope a webhook names, from the command line.
#[derive(clap::Args, Default)]
struct ScopeArgs {
    /// Only this project, as `workspace.project` (repeatable). Groups of other projects are
    /// neither read for changes nor touched.
    #[arg(long = "project", value_name = "WS.PROJ", value_parser = parse_project)]
    projects: Vec<ProjectKey>,
    /// Only the projects of this workspace (repeatable).
    #[arg(long = "workspace", value_name = "WS", value_parser = parse_workspace)]
    workspaces: Vec<WorkspaceId>,
}

impl ScopeArgs {
    fn scope(&self) -> Scope {
        if self.projects.is_empty() && self.workspaces.is_empty() {
            return Scope::All;
        }
        Scope::workspaces(self.workspaces.iter().cloned())
            .union(&Scope::projects(self.projects.iter().cloned()))
    }
}

/// A meshStack identifier: lower-case letters, digits, `-` and `_`, as the webhook accepts.
fn identifier(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn parse_project(text: &str) -> Result<ProjectKey, String> {
    match text.split_once('.') {
        Some((workspace, project)) if identifier(workspace) && identifier(project) => {
            Ok(ProjectKey::new(workspace, project))
        }
        _ => Err(format!(
            "`{text}` is not a project; write it as workspace.project, e.g. acme.web (meshStack identifiers)"
        )),
    }
}

fn parse_workspace(text: &str) -> Result<WorkspaceId, String> {
    if identifier(text) {
        Ok(text.into())
    } else {
        Err(format!(
            "`{text}` is not a workspace identifier (lower-case letters, digits, - and _)"
        ))
    }
}

#[derive(clap::Args)]
struct PlanArgs {
    #[arg(long, env = "AWS_REPLICATOR_CONFIG", help = CONFIG_HELP)]
    config: PathBuf,
    /// Plan from a snapshot file instead of reading the meshStack API.
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// The directory to compare with: AWS IAM Identity Center as configured, or one in memory
    /// (the default when `--observed` is given).
    #[arg(long, value_enum)]
    directory: Option<DirectoryKind>,
    /// With `--directory memory`: what the directory holds (an observed-state JSON file);
    /// empty if omitted.
    #[arg(long)]
    observed: Option<PathBuf>,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
    /// Exit 0 when there is nothing to change, 2 when changes are pending, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
    /// Also write the JSON plan to this file (for `sync --plan`).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    scope: ScopeArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DirectoryKind {
    /// AWS IAM Identity Center: SCIM and sso-admin, as configured.
    Aws,
    /// An in-memory directory, filled from `--observed`.
    Memory,
}

#[derive(clap::Args)]
struct SyncArgs {
    #[arg(long, env = "AWS_REPLICATOR_CONFIG", help = CONFIG_HELP)]
    config: PathBuf,
    /// Sync from a snapshot file instead of reading the meshStack API.
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// Print the plan, the report and the remaining drift as JSON.
    #[arg(long)]
    json: bool,
    /// Apply even a plan that deletes more than `replicator.deletion-guard` allows (this run only).
    #[arg(long)]
    allow_mass_delete: bool,
    /// Apply exactly this saved plan (`plan --out`), for the scope it was made for, and only if
    /// AWS still reads as it did then; otherwise exit 1 and write nothing. Accounts are only
    /// read, never provisioned, in such a run.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["projects", "workspaces"])]
    plan: Option<PathBuf>,
    #[command(flatten)]
    scope: ScopeArgs,
}

/// A usage error's exit code (sysexits.h's `EX_USAGE`): not clap's 2, which is also `plan
/// --detailed-exitcode`'s "changes pending", so a typo in CI would read as pending changes.
const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are answers, not errors.
            return if e.use_stderr() {
                ExitCode::from(EX_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// How log lines are written to standard error.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// For people; coloured only when standard error is a terminal.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `message`, the fields), for a
    /// log collector.
    Json,
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = match format {
        // Colour codes only for a terminal: a file or a log collector would keep them verbatim.
        LogFormat::Text => layer.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(
            layer
                .with_filter(tracing_subscriber::EnvFilter::new(log_filter(
                    std::env::var("AWS_REPLICATOR_LOG").ok(),
                )))
                .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                    !muted(meta.target(), *meta.level())
                })),
        )
        .init();
}

/// The log filter from `AWS_REPLICATOR_LOG`, in `EnvFilter`'s syntax. The default is `warn`, plus
/// `info` for `serve` (`aws_replicator::server`): a run's start and end, listening, shutting
/// down. Those are routine, so they are not warnings (a warning should mean someone might act),
/// yet a service that logs nothing while it works cannot be told from one that hangs. The CLI
/// commands log nothing at `info` from that module, so they stay quiet.
fn log_filter(setting: Option<String>) -> String {
    setting
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "warn,aws_replicator::server=info".into())
}

/// Whether an event or span is dropped whatever the filter says: the AWS SDK's own (smithy
/// runtime, SigV4, credentials, config, the service crates) below `info`. Their debug and trace
/// logs print the request context and the signing: the access key id, signatures, session
/// tokens. There is no point inside them to redact, so they are muted at the source.
fn muted(target: &str, level: tracing::Level) -> bool {
    level > tracing::Level::INFO
        && target.starts_with("aws_")
        && !target.starts_with("aws_replicator")
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Config {
            command:
                ConfigCommand::Check {
                    config,
                    require_secrets,
                },
        } => config_check(&config, require_secrets),
        Command::Plan(args) => plan_command(args),
        Command::Sync(args) => sync_command(args),
        Command::Serve {
            config,
            snapshot,
            listen,
            metrics_listen,
        } => serve_command(&config, snapshot, listen, metrics_listen),
        Command::Snapshot { config, out } => snapshot_command(&config, out.as_deref()),
        Command::SamlRoles {
            config,
            snapshot,
            user,
        } => saml_roles_command(&config, snapshot.as_deref(), user.as_deref()),
        Command::Bootstrap {
            config,
            meshcloud_account_id,
            out,
            reveal_external_id,
        } => bootstrap_command(&config, &meshcloud_account_id, &out, reveal_external_id),
        Command::Demo => aws_replicator_demo(),
        Command::Emulator { port, state, token } => emulator_command(port, state.as_deref(), token),
    }
}

fn load_config(path: &Path) -> Result<Config> {
    Ok(Config::load(path)?)
}

fn config_check(path: &Path, require_secrets: bool) -> Result<ExitCode> {
    // Runs before any other thread starts: unset `env:` imports stand in as placeholders.
    let (config, needed) = Config::check_without_env(path)?;
    let needed_lines: Vec<String> = needed
        .iter()
        .map(|n| {
            if n.fields.is_empty() {
                n.name.clone()
            } else {
                format!("{} (for {})", n.name, n.fields.join(", "))
            }
        })
        .collect();
    if require_secrets && !needed.is_empty() {
        bail!(
            "{}: {} environment variable(s) the config imports are not set: {}; export them, or check without --require-secrets",
            path.display(),
            needed.len(),
            needed_lines.join("; ")
        );
    }
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    if needed.is_empty() {
        println!("{}: OK", path.display());
    } else {
        println!(
            "{}: OK, with placeholders for {} unset environment variable(s)",
            path.display(),
            needed.len()
        );
    }
    for line in config.summary() {
        println!("  {line}");
    }
    if !needed.is_empty() {
        println!("The running service will need these environment variables:");
        for line in &needed_lines {
            println!("  {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// What meshStack holds (all of it, or only `scope`), from the API or a snapshot file. A
/// project the scope names that meshStack (or the file) lacks fails the read.
fn read_snapshot(config: &Config, snapshot: Option<&Path>, scope: &Scope) -> Result<Snapshot> {
    match snapshot {
        Some(path) => {
            let snapshot = Snapshot::from_file(path)?;
            if snapshot.platform != config.platform {
                bail!(
                    "snapshot {} was taken for platform {}, but the config is for {}; take a new one with `aws-replicator snapshot`",
                    path.display(),
                    snapshot.platform,
                    config.platform
                );
            }
            let missing = aws_replicator::meshstack::missing_projects(&snapshot, scope);
            if !missing.is_empty() {
                let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
                bail!(
                    "snapshot {} has no project {}; check --project, or take a new snapshot with `aws-replicator snapshot`",
                    path.display(),
                    names.join(", ")
                );
            }
            Ok(snapshot)
        }
        None => runtime()?
            .block_on(aws_replicator::meshstack::read_scope(config, scope))
            .map_err(Into::into),
    }
}

fn read_observed(path: Option<&Path>) -> Result<Observed> {
    match path {
        None => Ok(Observed::default()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read observed state {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("observed state {} is not valid", path.display()))
        }
    }
}

fn plan_command(args: PlanArgs) -> Result<ExitCode> {
    let config = load_config(&args.config)?;
    let scope = args.scope.scope();
    if config.mesh_idb.is_some() {
        let snapshot = read_snapshot(&config, args.snapshot.as_deref(), &scope)?;
        let output = Output {
            json: args.json,
            out: args.out.as_deref(),
        };
        return idb_command(
            &config,
            &snapshot,
            &scope,
            true,
            output,
            args.detailed_exitcode,
        );
    }
    let sso = config.require_sso()?;
    let snapshot = read_snapshot(&config, args.snapshot.as_deref(), &scope)?;
    let crawl = (scope == Scope::All)
        .then(|| aws_replicator::meshstack::crawl::describe(&snapshot, &config));
    let kind = args.directory.unwrap_or(if args.observed.is_some() {
        DirectoryKind::Memory
    } else {
        DirectoryKind::Aws
    });
    if kind == DirectoryKind::Aws && args.observed.is_some() {
        bail!("--observed describes an in-memory directory; use it with --directory memory");
    }
    // Accounts are read from AWS Organizations only when AWS is the directory.
    let (accounts, snapshot) = if kind == DirectoryKind::Aws {
        accounts_dry_run(&config, &snapshot, &scope)?
    } else {
        (Default::default(), snapshot)
    };
    let desired = desired::desired(&snapshot, &Settings::new(&config, sso), &scope);
    let observed = match kind {
        DirectoryKind::Memory => {
            let world = World::new(read_observed(args.observed.as_deref())?);
            runtime()?.block_on(directory::observe(
                &world,
                &world,
                &desired,
                directory::AssignmentReads::PerGroup,
            ))?
        }
        DirectoryKind::Aws => {
            let (scim, admin) = aws_replicator::sso::connect(&config, sso, None)?;
            let reads = aws_replicator::sso::sync_settings(&config).reads;
            runtime()?
                .block_on(directory::observe(&scim, &admin, &desired, reads))
                .context("cannot read AWS IAM Identity Center")?
        }
    };
    let plan = plan::plan(&desired, &observed);
    let document = WithAccounts {
        document: &plan,
        accounts: (!config.accounts.landing_zones.is_empty()).then_some(&accounts),
    };
    if let Some(out) = &args.out {
        let file = std::fs::File::create(out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        write_json(&document, file).with_context(|| format!("cannot write {}", out.display()))?;
    }
    if args.json {
        write_json(&document, std::io::stdout().lock())?;
    } else {
        print!("{}", accounts.render());
        print!("{}", plan.render_text());
    }
    let share = config.replicator.drift_scan.share;
    if scope == Scope::All && share > 0.0 {
        let reads = aws_replicator::sso::sync_settings(&config).reads;
        let cycle = aws_replicator::scan::cycle(&desired, reads, share);
        eprintln!(
            "serve's drift scan (replicator.drift-scan, {} % of the rates): one cycle over {cycle}",
            share * 100.0
        );
    }
    if let Some(crawl) = crawl {
        eprintln!("{crawl}");
    }
    if accounts.pending_steps() > 0 && args.detailed_exitcode {
        return Ok(ExitCode::from(2));
    }
    Ok(exit_code(&plan, args.detailed_exitcode))
}

/// A plan saved by `plan --out`, if this binary and this config can apply it: the same JSON
/// format version, the same platform instance, the SSO path.
fn read_saved_plan(path: &Path, config: &Config) -> Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the saved plan {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a saved plan (not JSON); write one with `aws-replicator plan --out`",
            path.display()
        )
    })?;
    if value["path"] == "mesh-idb" {
        bail!(
            "the saved plan {} is a meshIdB plan; `sync --plan` applies IAM Identity Center plans only",
            path.display()
        );
    }
    let version = value["format_version"].as_u64();
    if version != Some(u64::from(plan::PLAN_FORMAT_VERSION)) {
        bail!(
            "the saved plan {} has format_version {}, but this aws-replicator applies version {}; make the plan again with this version",
            path.display(),
            version.map_or_else(|| "none".to_string(), |v| v.to_string()),
            plan::PLAN_FORMAT_VERSION
        );
    }
    let saved: Plan = serde_json::from_value(value).with_context(|| {
        format!(
            "the saved plan {} is not a plan this version wrote; make it again with `aws-replicator plan --out`",
            path.display()
        )
    })?;
    if saved.platform != config.platform {
        bail!(
            "the saved plan {} was made for platform {}, but the config is for {}; plan again with this config",
            path.display(),
            saved.platform,
            config.platform
        );
    }
    Ok(saved)
}

fn sync_command(args: SyncArgs) -> Result<ExitCode> {
    use aws_replicator::apply::Status;
    use indicatif::{ProgressBar, ProgressStyle};
    use std::io::IsTerminal;

    let config = load_config(&args.config)?;
    let saved = match &args.plan {
        Some(path) => Some(read_saved_plan(path, &config)?),
        None => None,
    };
    let scope = match &saved {
        Some(saved) => saved.scope.clone(),
        None => args.scope.scope(),
    };
    if config.mesh_idb.is_some() {
        if saved.is_some() {
            bail!(
                "iam-configuration.mesh-idb is set: `sync --plan` applies IAM Identity Center plans only"
            );
        }
        let snapshot = read_snapshot(&config, args.snapshot.as_deref(), &scope)?;
        let output = Output {
            json: args.json,
            out: None,
        };
        return idb_command(&config, &snapshot, &scope, false, output, false);
    }
    let sso = config.require_sso()?;
    let snapshot = read_snapshot(&config, args.snapshot.as_deref(), &scope)?;
    let audit = audit_of(&config)?;
    // Accounts first: a new project's account must exist before its groups are assigned to it.
    // A saved plan was reviewed as it is: its run provisions nothing beside it.
    let (accounts, snapshot) = runtime()?
        .block_on(accounts_phase(
            &config,
            &snapshot,
            &scope,
            saved.is_some(),
            &audit,
            None,
        ))
        .context("cannot provision accounts")?;
    if !args.json {
        print!("{}", accounts.render());
    }
    let desired = desired::desired(&snapshot, &Settings::new(&config, sso), &scope);
    let (scim, admin) = aws_replicator::sso::connect(&config, sso, None)?;
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} changes, {elapsed} ({eta} left)")
                .expect("the template is valid"),
        )
    } else {
        ProgressBar::hidden()
    };
    let json = args.json;
    let show = |plan: &Plan| {
        if !json {
            print!("{}", plan.render_text());
        }
        bar.set_length(plan.ops.len() as u64);
    };
    let done = |outcome: &aws_replicator::apply::Outcome| {
        bar.inc(1);
        if bar.is_hidden() && outcome.status == Status::Ok {
            tracing::info!(op = outcome.op, "applied");
        }
    };
    let mut settings = aws_replicator::sso::sync_settings(&config);
    if args.allow_mass_delete {
        settings.guard = None;
    }
    let result = match saved {
        None => runtime()?
            .block_on(aws_replicator::sync::sync(
                &desired, &scim, &admin, settings, &audit, show, &done,
            ))
            .context("cannot sync AWS IAM Identity Center")?,
        Some(saved) => {
            let path = args.plan.as_deref().expect("a saved plan has a path");
            runtime()?
                .block_on(aws_replicator::sync::sync_saved(
                    saved, &desired, &scim, &admin, settings, &audit, show, &done,
                ))
                .with_context(|| format!("the saved plan {} was not applied", path.display()))?
        }
    };
    bar.finish_and_clear();
    let report = &result.report;
    if json {
        let document = WithAccounts {
            document: &result,
            accounts: (!config.accounts.landing_zones.is_empty()).then_some(&accounts),
        };
        write_json(&document, std::io::stdout().lock())?;
    } else if let Some(tripped) = &result.refused {
        println!("Refused, nothing applied: {tripped}");
    } else {
        for problem in report.problems(&result.plan) {
            println!("! {problem}");
        }
        println!(
            "Applied {} change(s), {} failed, {} skipped; {} SCIM and {} sso-admin call(s) (estimated {} and {}), {} and {} read(s). {} change(s) left.",
            report.applied,
            report.failed,
            report.skipped,
            result.calls.scim,
            result.calls.sso_admin,
            result.calls.scim_estimate,
            result.calls.sso_admin_estimate,
            result.calls.scim_reads,
            result.calls.sso_admin_reads,
            result.remaining.ops.len()
        );
    }
    if !json && !config.accounts.landing_zones.is_empty() {
        println!(
            "Accounts: {} in landing zones, {} failed, {} step(s) left.",
            accounts.accounts.len(),
            accounts.failed(),
            accounts.pending_steps()
        );
    }
    let ok = result.is_success() && accounts.failed() == 0;
    if ok && !result.held.is_empty() {
        eprintln!(
            "sync: applied what it could, but {} project(s) are held until a person fixes what the findings (!) name: {}",
            result.held.len(),
            result
                .held
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(sync_exit_code(ok, !result.held.is_empty()))
}

/// `sync`'s exit code: 0 everything wanted is in sync; 1 an error or a failed operation; 3 what
/// could be applied was, but something a person must fix stands in the way (a held project,
/// a missing external role). Findings alone (an euid without an AWS user) are not failures.
fn sync_exit_code(ok: bool, needs_a_person: bool) -> ExitCode {
    if !ok {
        ExitCode::from(1)
    } else if needs_a_person {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

fn serve_command(
    config: &Path,
    snapshot: Option<PathBuf>,
    listen: Option<std::net::SocketAddr>,
    metrics_listen: Option<std::net::SocketAddr>,
) -> Result<ExitCode> {
    let mut config = load_config(config)?;
    if let Some(address) = metrics_listen {
        config.replicator.serve.metrics_listen = Some(address.to_string());
    }
    let listen = match listen {
        Some(address) => address,
        None => config
            .replicator
            .serve
            .listen
            .parse()
            .context("replicator.serve.listen is not an address")?,
    };
    log_start(&config, listen);
    runtime()?.block_on(async {
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM can be caught");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        aws_replicator::server::serve(
            config,
            aws_replicator::server::ServeOptions { listen, snapshot },
            shutdown,
        )
        .await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `serve`'s first line: what is running (version, build target), for which platform instance,
/// who may call `/v1/*`, and whether it shares the writing with other replicas. Logged under
/// `aws_replicator::server`, so the default filter shows it.
fn log_start(config: &aws_replicator::config::Config, listen: std::net::SocketAddr) {
    let serve = &config.replicator.serve;
    let webhook_auth = match (&serve.webhook_token, &serve.webhook_hmac_secret) {
        (Some(_), Some(_)) => "bearer token or HMAC-SHA256 signature",
        (Some(_), None) => "bearer token",
        (None, Some(_)) => "HMAC-SHA256 signature",
        (None, None) => "none configured: POST /v1/sync and GET /v1/runs answer 403",
    };
    let lease = config
        .replicator
        .leader_election
        .as_ref()
        .map(|le| format!("{}/{}", le.namespace, le.lease_name));
    tracing::info!(
        target: "aws_replicator::server",
        version = env!("CARGO_PKG_VERSION"),
        os = std::env::consts::OS,
        arch = std::env::consts::ARCH,
        platform = %config.platform,
        %listen,
        webhook_auth,
        leader_election = lease.is_some(),
        lease = lease.as_deref().unwrap_or("none"),
        "starting aws-replicator {}",
        env!("CARGO_PKG_VERSION"),
    );
}

fn bootstrap_command(
    config: &Path,
    meshcloud_account_id: &str,
    out: &Path,
    reveal_external_id: bool,
) -> Result<ExitCode> {
    // The files hold placeholders for the ExternalIds unless asked to reveal them, so no
    // secret needs to be set (as for `config check`); runs before any other thread starts.
    let config = if reveal_external_id {
        load_config(config)?
    } else {
        Config::check_without_env(config)?.0
    };
    let files = aws_replicator::bootstrap::files(
        &config,
        &aws_replicator::bootstrap::Options {
            meshcloud_account_id,
            reveal_external_id,
        },
    )?;
    println!("Wrote into {}:", out.display());
    for (name, text) in files {
        let path = out.join(&name);
        std::fs::create_dir_all(path.parent().expect("files sit in a folder"))
            .with_context(|| format!("cannot create {}", out.display()))?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!(
            "  {}\n      {}",
            path.display(),
            aws_replicator::bootstrap::what_to_do(&name)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn exit_code(plan: &Plan, detailed: bool) -> ExitCode {
    if detailed && !plan.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// The accounts as they are and the steps they still need, writing nothing; the snapshot
/// with the ids of accounts that exist.
fn accounts_dry_run(
    config: &Config,
    snapshot: &Snapshot,
    scope: &Scope,
) -> Result<(aws_replicator::accounts::run::Report, Snapshot)> {
    runtime()?
        .block_on(accounts_phase(
            config,
            snapshot,
            scope,
            true,
            &aws_replicator::audit::Audit::discard(),
            None,
        ))
        .context("cannot read the organization's accounts")
}

fn audit_of(config: &Config) -> Result<aws_replicator::audit::Audit> {
    Ok(match &config.replicator.audit_log {
        Some(file) => aws_replicator::audit::Audit::file(Path::new(file))
            .with_context(|| format!("cannot open the audit log {file} (replicator.audit-log)"))?,
        None => aws_replicator::audit::Audit::stderr(),
    })
}

/// Where a command's JSON document goes: standard output with `--json`, a file with `--out`.
struct Output<'a> {
    json: bool,
    out: Option<&'a Path>,
}

/// `plan` (dry run) and `sync` for the meshIdB path: accounts first, then each project
/// account's SAML provider and roles.
fn idb_command(
    config: &Config,
    snapshot: &Snapshot,
    scope: &Scope,
    dry_run: bool,
    output: Output,
    detailed: bool,
) -> Result<ExitCode> {
    let audit = if dry_run {
        aws_replicator::audit::Audit::discard()
    } else {
        audit_of(config)?
    };
    let rt = runtime()?;
    let (accounts, snapshot) = rt
        .block_on(accounts_phase(
            config, snapshot, scope, dry_run, &audit, None,
        ))
        .context("cannot provision accounts")?;
    let ids = accounts.account_ids();
    let iam = rt
        .block_on(aws_replicator::idb::run::iam_phase(
            config, &snapshot, &ids, dry_run, &audit, None,
        ))
        .context("cannot reconcile meshIdB roles")?;
    let doc = serde_json::to_string_pretty(&serde_json::json!({
        "format_version": aws_replicator::idb::PLAN_FORMAT_VERSION,
        "platform": config.platform,
        "path": "mesh-idb",
        "accounts": accounts,
        "mesh_idb": iam,
    }))?;
    if let Some(out) = output.out {
        std::fs::write(out, &doc).with_context(|| format!("cannot write {}", out.display()))?;
    }
    if output.json {
        println!("{doc}");
    } else {
        print!("{}", accounts.render());
        print!("{}", iam.render());
        let verb = if dry_run { "to do" } else { "left" };
        println!(
            "meshIdB: {} account(s), {} change(s) {}, {} applied, {} failed, {} finding(s).",
            iam.accounts.len(),
            iam.pending(),
            verb,
            iam.done(),
            iam.failed(),
            iam.findings().count()
        );
    }
    let pending = accounts.pending_steps() + iam.pending();
    let failed = accounts.failed() + iam.failed() > 0;
    if dry_run {
        return Ok(if failed {
            ExitCode::from(1)
        } else if detailed && pending > 0 {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        });
    }
    let missing: Vec<String> = iam
        .findings()
        .filter(|f| {
            matches!(
                f,
                aws_replicator::idb::IamFinding::ExternalRoleMissing { .. }
            )
        })
        .map(ToString::to_string)
        .collect();
    if !failed && !missing.is_empty() {
        eprintln!(
            "sync: applied what it could, but a person must act: {}",
            missing.join("; ")
        );
    }
    Ok(sync_exit_code(!failed, !missing.is_empty()))
}

fn saml_roles_command(
    config: &Path,
    snapshot: Option<&Path>,
    user: Option<&str>,
) -> Result<ExitCode> {
    let config = load_config(config)?;
    if config.mesh_idb.is_none() {
        bail!("iam-configuration.mesh-idb is not set: SAML roles exist only on the meshIdB path");
    }
    let snapshot = read_snapshot(&config, snapshot, &Scope::All)?;
    let (accounts, snapshot) = accounts_dry_run(&config, &snapshot, &Scope::All)?;
    let mut roles = aws_replicator::idb::saml_roles(&snapshot, &config, &accounts.account_ids());
    if let Some(user) = user {
        roles.retain(|u, _| u == user);
    }
    let doc = serde_json::json!({ "platform": config.platform, "users": roles });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(ExitCode::SUCCESS)
}

fn snapshot_command(config: &Path, out: Option<&Path>) -> Result<ExitCode> {
    let config = load_config(config)?;
    let snapshot = read_snapshot(&config, None, &Scope::All)?;
    match out {
        Some(path) => std::fs::File::create(path)
            .map_err(anyhow::Error::from)
            .and_then(|file| write_json(&snapshot, file))
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => write_json(&snapshot, std::io::stdout().lock())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A JSON document with the account phase's report beside its own fields, when landing zones
/// are configured.
#[derive(serde::Serialize)]
struct WithAccounts<'a, T: serde::Serialize> {
    #[serde(flatten)]
    document: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    accounts: Option<&'a aws_replicator::accounts::run::Report>,
}

/// Writes `value` as pretty JSON and a newline, as it is serialized: a plan or snapshot of a
/// large estate is hundreds of megabytes, and a JSON tree or string of it several times that.
fn write_json(value: &impl serde::Serialize, to: impl std::io::Write) -> Result<()> {
    use std::io::Write;
    let mut to = std::io::BufWriter::new(to);
    serde_json::to_writer_pretty(&mut to, value)?;
    writeln!(to)?;
    to.flush()?;
    Ok(())
}

fn emulator_command(port: u16, state: Option<&Path>, token: String) -> Result<ExitCode> {
    use aws_replicator::emulator::{Emulator, EmulatorConfig, store::State};
    let emulator = Emulator::new(EmulatorConfig {
        token: aws_replicator::secret::Secret::new(token),
        ..EmulatorConfig::default()
    });
    if let Some(path) = state {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read emulator state {}", path.display()))?;
        let state = match serde_json::from_str::<State>(&text) {
            Ok(state) => state,
            Err(as_state) => match serde_json::from_str::<Observed>(&text) {
                Ok(observed) => State::from_observed(&observed),
                Err(as_observed) => bail!(
                    "{} is neither an emulator state (the JSON of GET /_emulator/state: {as_state}) nor an observed state (as `plan --observed` reads it: {as_observed})",
                    path.display()
                ),
            },
        };
        emulator.load(state);
    }
    runtime()?.block_on(async {
        let running = emulator
            .serve(port)
            .await
            .context("cannot listen on 127.0.0.1")?;
        println!("AWS IAM Identity Center emulator");
        println!(
            "  SCIM endpoint:  {} (iam-configuration.aws-sso.scim-endpoint; the token is --token's, \
             AWS_REPLICATOR_EMULATOR_TOKEN's or emulator-token)",
            running.scim_endpoint()
        );
        println!(
            "  sso-admin:      {0} (export AWS_ENDPOINT_URL_SSO_ADMIN={0}; not AWS_ENDPOINT_URL, \
             which would send STS and Organizations here too, and they are not emulated)",
            running.endpoint()
        );
        println!("  instance ARN:   {}", emulator.config().instance_arn);
        println!("  state:          {}/_emulator/state", running.endpoint());
        println!(
            "  request log:    {}/_emulator/requests",
            running.endpoint()
        );
        println!("Ctrl-C stops it.");
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
        Ok(ExitCode::SUCCESS)
    })
}

fn aws_replicator_demo() -> Result<ExitCode> {
    runtime()?.block_on(aws_replicator::demo::run(&mut std::io::stdout().lock()))?;
    Ok(ExitCode::SUCCESS)
}
