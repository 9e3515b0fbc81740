//! The `stabledns` command: parses arguments, sets up logging and signals, and calls the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use stabledns::Config;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

// The binary's own modules, beside the library's in src/ but not part of it.
#[path = "cli/remote.rs"]
mod remote;
use remote::{diff_servers, served_zone};
use stabledns::why;

/// Where the package installs the config, and where every command looks without `--config`.
const DEFAULT_CONFIG: &str = "/etc/stabledns/stabledns.toml";

/// Authoritative DNS for EC2 fleets: stable names by role that survive instance replacement.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log lines as text (for people) or JSON (for log shippers); RUST_LOG sets the filter.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AuditFormat {
    Table,
    Json,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FailOn {
    Low,
    Medium,
    High,
}

/// `diff` found the servers serving different zones: exit 1, the differences already printed.
#[derive(Debug, thiserror::Error)]
#[error("the servers serve different zones")]
struct Differ;

/// `audit` found something at or above `--fail-on`: exit 1, the findings already printed.
#[derive(Debug, thiserror::Error)]
#[error("{0} finding(s) at or above --fail-on")]
struct AuditFailed(usize);

#[derive(Subcommand)]
enum Command {
    /// Serve the zone.
    Serve {
        /// The config file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Listen here instead of the config's `server.listen` (repeatable; port 0 picks one).
        #[arg(long)]
        listen: Vec<SocketAddr>,
        /// Forward to this resolver instead of the config's `forwarding.upstreams`
        /// (repeatable; only for views that may recurse).
        #[arg(long, value_name = "IP:PORT")]
        upstream: Vec<SocketAddr>,
        /// Serve the admin endpoints here instead of the config's `admin.listen`.
        #[arg(long, value_name = "IP:PORT")]
        admin_listen: Option<SocketAddr>,
    },
    /// Validate the config and the inventory, then exit.
    Check {
        /// The config file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Validate the config file only (what `systemctl reload` runs before SIGHUP): no
        /// inventory read, so an API outage cannot block a reload.
        #[arg(long)]
        config_only: bool,
    },
    /// Print a view's forward zone as a master file (for NSD, Knot or a diff).
    Zone {
        /// The config file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The view to print (default: the first configured).
        #[arg(long)]
        view: Option<String>,
        /// The zone to print, e.g. `10.in-addr.arpa.` (default: the forward zone); `list`
        /// prints the view's zones.
        #[arg(long)]
        zone: Option<String>,
        /// Print the zone the running server serves, read from its admin endpoint (the
        /// config's `admin.listen`, or `--admin`), instead of building it from the inventory.
        #[arg(long)]
        server: bool,
        /// The running server's admin address, for `--server`.
        #[arg(long, value_name = "IP:PORT", requires = "server")]
        admin: Option<SocketAddr>,
    },
    /// Publish a view's names to the Route 53 hosted zones of the config's `[[publish]]`:
    /// continuously, without serving DNS, unless `--dry-run` or `--once`.
    Publish {
        /// The config file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print the plan (creates, updates, deletes, conflicts, batches); change nothing.
        #[arg(long, conflicts_with = "once")]
        dry_run: bool,
        /// Sync once and exit (cron, Lambda, CI).
        #[arg(long)]
        once: bool,
    },
    /// Compare what two running servers serve (every view, every zone, serials included), from
    /// their admin endpoints: exit 0 when they agree, 1 naming the first names that differ.
    Diff {
        /// A server's admin address (`admin.listen`); give it twice, once per replica.
        #[arg(long = "server", value_name = "IP:PORT", required = true)]
        servers: Vec<SocketAddr>,
        /// At most this many differing names are printed.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Why a name answers what it does, or why it does not exist: every instance whose tags,
    /// groups or id the naming rules would make it of, and what became of each claim.
    Why {
        /// The config file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The name, relative (`db1`) or absolute (`db1.internal.`).
        name: String,
        /// The view to ask in (default: the first configured).
        #[arg(long)]
        view: Option<String>,
    },
    /// Audit the security groups: rules pinned to an instance's address (they break when it is
    /// replaced), rules to addresses nothing holds, admin ports open to the internet. Reads the
    /// EC2 API only; changes nothing. Exits 0 when clean, 1 with findings at or above
    /// `--fail-on`, 2 on errors.
    Audit {
        /// The config file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// `table` for people, `json` for tools.
        #[arg(long, value_enum, default_value_t = AuditFormat::Table)]
        format: AuditFormat,
        /// Exit 1 when a finding is at least this severe.
        #[arg(long, value_enum)]
        fail_on: Option<FailOn>,
    },
    /// Print every name the current inventory gives, with its records and instances.
    Names {
        /// The config file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The view to print (default: the first configured).
        #[arg(long)]
        view: Option<String>,
    },
}

/// glibc malloc tuned for a process that builds a large snapshot now and then and serves it
/// without allocating, unless `MALLOC_ARENA_MAX` / `MALLOC_TOP_PAD_` say otherwise:
/// - one arena: glibc gives threads that meet contention arenas of their own (up to 8 per
///   core); a snapshot built on a blocking thread then lives in a second arena, and what each
///   arena freed cannot serve the other (33 MB more RSS at 100,000 instances). Per-thread
///   caches still serve small allocations without the lock.
/// - the heap grows in 64 MB steps: every time the top of the heap ran out, glibc first
///   merged all its small free chunks (`malloc_consolidate`), a third of a 100k build's time.
///   Untouched pages cost no RSS, and the publish trims what is left.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let unset = |var: &str| std::env::var_os(var).is_none();
        // SAFETY: called before any other thread exists; mallopt only sets tunables.
        unsafe {
            if unset("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 1);
            }
            if unset("MALLOC_TOP_PAD_") {
                libc::mallopt(libc::M_TOP_PAD, 64 << 20);
            }
        }
    }
}

/// `--log-format json`: the commands' warnings go to the log as JSON lines too.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A command's warning: `warning: …` on stdout (`check`) or stderr (the others) for people, a
/// JSON log line with `--log-format json`.
fn warning(text: &str, on_stdout: bool) {
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!("{text}");
    } else if on_stdout {
        println!("warning: {text}");
    } else {
        eprintln!("warning: {text}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // hickory logs every request at info; that is a query log, not an operator's log.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,hickory_server=warn,hickory_net=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => {
            logs.json().init();
            JSON_LOGS.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    tune_malloc();
    // Their contract: 1 is for findings (differences), errors are 2.
    let audit = matches!(cli.command, Command::Audit { .. } | Command::Diff { .. });
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
        .and_then(|rt| rt.block_on(run(cli.command)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<AuditFailed>().is_some() => ExitCode::from(1),
        Err(e) if e.downcast_ref::<Differ>().is_some() => ExitCode::from(1),
        Err(e) => {
            let line = error_line(&e);
            // In JSON mode every line is JSON, the last one too.
            match cli.log_format {
                LogFormat::Json => tracing::error!("{line}"),
                LogFormat::Text => eprintln!("stabledns: {line}"),
            }
            // The audit's own contract: 1 is for findings, errors are 2.
            if audit {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// An error and its causes on one line, each cause once: many errors already say their
/// source in their own message ("failed to read …: No such file or directory"), and the
/// chain would say it again. A port below 1024 refused says how to grant the capability.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    let refused_bind = e
        .chain()
        .any(|c| matches!(c.downcast_ref(), Some(stabledns::Error::Bind(_))))
        && e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
        });
    if refused_bind {
        line.push_str(
            " (a port below 1024 needs CAP_NET_BIND_SERVICE: run it from the systemd unit in \
             contrib/systemd, which grants it, or `sudo setcap cap_net_bind_service=+ep \
             $(command -v stabledns)`)",
        );
    }
    line
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            config: path,
            listen,
            upstream,
            admin_listen,
        } => {
            // The flags override the file at start and at every reload alike.
            let load = move || -> anyhow::Result<Config> {
                let mut config = Config::load(&path)?;
                if !listen.is_empty() {
                    config.server.listen.clone_from(&listen);
                }
                if let Some(addr) = admin_listen {
                    // The file's allowlists stay; only the address is the flag's.
                    match &mut config.admin {
                        Some(admin) => admin.listen = addr,
                        None => config.admin = Some(stabledns::config::AdminConfig::on(addr)),
                    }
                }
                if !upstream.is_empty() {
                    config
                        .set_upstreams(upstream.clone())
                        .map_err(|e| anyhow::anyhow!("--upstream does not apply: {e}"))?;
                }
                Ok(config)
            };
            let config = load()?;
            let shutdown = CancellationToken::new();
            tokio::spawn(signal_shutdown(shutdown.clone()));
            let (reloads, reload_rx) = tokio::sync::mpsc::channel(4);
            tokio::spawn(signal_reload(reloads, load));
            stabledns::run(config, reload_rx, shutdown).await?;
        }
        Command::Check {
            config,
            config_only: true,
        } => {
            let config = Config::load(&config)?;
            for w in &config.warnings {
                warning(w, true);
            }
            println!(
                "{}: OK: the config is valid (the inventory was not read)",
                config.path.display()
            );
        }
        Command::Check { config, .. } => {
            let config = Config::load(&config)?;
            let (snapshot, timing) = load_snapshot_timed(&config, false).await?;
            for w in config.warnings.iter().chain(&snapshot.warnings) {
                warning(w, true);
            }
            // Not a config error: systemd's StateDirectory= creates the directory at start.
            if let Some(dir) = (config.inventory.state_file.as_deref())
                .and_then(std::path::Path::parent)
                .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
            {
                warning(
                    &format!(
                        "inventory.state_file: the directory {} does not exist, so the server \
                         could not keep its state (the systemd unit's StateDirectory= creates \
                         /var/lib/stabledns)",
                        dir.display()
                    ),
                    true,
                );
            }
            if snapshot.instance_count == 0 && !config.inventory.allow_empty_fleet {
                anyhow::bail!(
                    "{}: the inventory returned no instances: check [[inventory.filters]], the \
                     regions and the account (set inventory.allow_empty_fleet = true if the \
                     fleet really is empty)",
                    config.path.display()
                );
            }
            match stabledns::refresh::slot_mode(&config) {
                (text, true) => warning(&text, true),
                (text, false) => println!("{text}"),
            }
            let views: Vec<String> = snapshot
                .views
                .iter()
                .map(|v| format!("{} {}", v.name, v.name_count()))
                .collect();
            println!(
                "{}: OK: zone {}, {} instances (read in {} ms, snapshot built in {} ms), names per \
                 view: {}; listening on {}",
                config.path.display(),
                config.zone.apex,
                snapshot.instance_count,
                timing.0.as_millis(),
                timing.1.as_millis(),
                views.join(", "),
                config
                    .server
                    .listen
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Command::Publish {
            config,
            dry_run,
            once,
        } => {
            let config = Config::load(&config)?;
            if config.publish.is_empty() {
                anyhow::bail!("{}: no [[publish]] zones", config.path.display());
            }
            if !dry_run && !once {
                // Publish-only: the refresh loop and the publisher, no DNS listeners.
                let shutdown = CancellationToken::new();
                tokio::spawn(signal_shutdown(shutdown.clone()));
                let (reloads, reload_rx) = tokio::sync::mpsc::channel(4);
                let path = config.path.clone();
                tokio::spawn(signal_reload(reloads, move || Ok(Config::load(&path)?)));
                stabledns::run_publisher(config, reload_rx, shutdown).await?;
                return Ok(());
            }
            // `--once` keeps slot numbers in the fleet as `serve` does; a dry run changes
            // nothing, and prints the numbers those writes would keep.
            let snapshot = load_snapshot_timed(&config, !dry_run).await?.0;
            let mut failed = 0;
            let mut zones = 0;
            let budgets = stabledns::publish::budget::Budgets::default();
            for publish in &config.publish {
                for target in publish.targets() {
                    zones += 1;
                    match stabledns::publish::sync(publish, &target, &snapshot, dry_run, &budgets)
                        .await
                    {
                        Ok(report) => print!("{report}"),
                        Err(e) => {
                            failed += 1;
                            eprintln!("error: zone {}: {e}", target.zone_id);
                        }
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {zones} zones failed");
            }
        }
        Command::Diff { servers, limit } => {
            let [a, b] = servers[..] else {
                anyhow::bail!(
                    "--server takes two admin addresses, one per replica (got {})",
                    servers.len()
                );
            };
            let report = diff_servers(a, b, limit).await?;
            print!("{}", report.text);
            if report.differ {
                return Err(Differ.into());
            }
        }
        Command::Why { config, name, view } => {
            let config = Config::load(&config)?;
            let snapshot = load_snapshot(&config).await?;
            let v = pick_view(&snapshot, view.as_deref())?;
            print!("{}", why(&config, &snapshot, v, &name)?);
        }
        Command::Names { config, view } => {
            let config = Config::load(&config)?;
            let snapshot = load_snapshot(&config).await?;
            for w in &snapshot.warnings {
                warning(w, false);
            }
            print_rows(&pick_view(&snapshot, view.as_deref())?.rows());
        }
        Command::Audit {
            config,
            format,
            fail_on,
        } => {
            let config = Config::load(&config)?;
            let findings = audit(&config).await?;
            match format {
                AuditFormat::Table => print!("{}", stabledns::audit::table(&findings)),
                AuditFormat::Json => println!("{}", serde_json::to_string_pretty(&findings)?),
                AuditFormat::Sarif => {
                    let log = stabledns::audit::sarif(&findings, env!("CARGO_PKG_VERSION"));
                    println!("{}", serde_json::to_string_pretty(&log)?);
                }
            }
            let floor = fail_on.map(|f| match f {
                FailOn::Low => stabledns::audit::Severity::Low,
                FailOn::Medium => stabledns::audit::Severity::Medium,
                FailOn::High => stabledns::audit::Severity::High,
            });
            if let Some(floor) = floor {
                let n = findings.iter().filter(|f| f.severity >= floor).count();
                if n > 0 {
                    return Err(AuditFailed(n).into());
                }
            }
        }
        Command::Zone {
            config,
            view,
            zone,
            server: true,
            admin,
        } => {
            let config = Config::load(&config)?;
            let admin = admin
                .or(config.admin.as_ref().map(|a| a.listen))
                .context("--server reads the zone from the admin endpoint, and the config has no [admin] listen: pass --admin IP:PORT")?;
            print!(
                "{}",
                served_zone(admin, view.as_deref(), zone.as_deref()).await?
            );
        }
        Command::Zone {
            config, view, zone, ..
        } => {
            let config = Config::load(&config)?;
            let snapshot = load_snapshot(&config).await?;
            for w in &snapshot.warnings {
                warning(w, false);
            }
            let v = pick_view(&snapshot, view.as_deref())?;
            let apexes: Vec<String> = v.zone_apexes().map(|a| a.to_string()).collect();
            match zone.as_deref() {
                Some("list") => apexes.iter().for_each(|a| println!("{a}")),
                Some(apex) => {
                    let name = hickory_proto::rr::LowerName::from(
                        hickory_proto::rr::Name::from_ascii(apex)
                            .with_context(|| format!("--zone {apex} is not a domain name"))?,
                    );
                    let text = v.zone_file(Some(&name)).with_context(|| {
                        format!(
                            "view {} serves no zone {apex}; it serves {}",
                            v.name,
                            apexes.join(", ")
                        )
                    })?;
                    print!("{text}");
                }
                None => print!("{}", v.zone_file(None).unwrap_or_default()),
            }
        }
    }
    Ok(())
}

/// The audit's findings for the fleet and firewall the config's EC2 inventory reads now, each
/// instance called as the server would serve it (after the state file's snapshot, as `serve`
/// starts from it).
async fn audit(config: &Config) -> anyhow::Result<Vec<stabledns::audit::Finding>> {
    use stabledns::audit::watch::{Names, audit};
    // The state file's departures name whoever held a stale address; without one the audit
    // still runs.
    let saved = match config
        .inventory
        .state_file
        .as_deref()
        .map(stabledns::state::load)
    {
        Some(Ok(saved)) => saved,
        Some(Err(e)) => {
            warning(&e.to_string(), false);
            None
        }
        None => None,
    };
    let departed = saved
        .as_ref()
        .map(|s| s.departed.clone())
        .unwrap_or_default();
    let previous = saved.map(|saved| stabledns::refresh::from_state(config, saved));
    audit(config, Names::Built(previous.as_ref()), &departed)
        .await
        .with_context(|| config.path.display().to_string())
}

async fn load_snapshot(config: &Config) -> anyhow::Result<stabledns::zone::Snapshot> {
    Ok(load_snapshot_timed(config, false).await?.0)
}

/// The snapshot the inventory gives now, and how long reading and building took. With
/// `write_tags`, the slot tags the fleet lacks are written first, as `serve` does, so that a
/// `publish --once` from a timer keeps slot numbers in the fleet too.
async fn load_snapshot_timed(
    config: &Config,
    write_tags: bool,
) -> anyhow::Result<(stabledns::zone::Snapshot, (Duration, Duration))> {
    let started = Instant::now();
    let source = stabledns::inventory::Source::from_config(&config.inventory).await;
    let fetched = source
        .fetch()
        .await
        .with_context(|| format!("failed to load the inventory from {}", source.describe()))?;
    for why in &fetched.skipped {
        warning(why, false);
    }
    let read = started.elapsed();
    // The server's own pipeline: after the state file's fleet (its serial and slot numbers,
    // when there is one), so the serial and slots printed are the ones it serves.
    let started = Instant::now();
    let previous = config
        .inventory
        .state_file
        .as_deref()
        .and_then(|p| stabledns::state::load(p).ok().flatten())
        .map(|saved| stabledns::refresh::from_state(config, saved));
    let changed_at = fetched.changed_at;
    let mut fleet = stabledns::inventory::fleet(fetched.instances);
    let (mut snapshot, mut changed) =
        stabledns::refresh::build_next(config, &fleet, previous.as_ref());
    if write_tags {
        let tagged = stabledns::refresh::tag_slots(config, &source, &fleet, &snapshot).await;
        if let Some(patched) = tagged.fleet {
            fleet = patched;
            (snapshot, changed) = stabledns::refresh::build_next(config, &fleet, previous.as_ref());
        }
        if tagged.failed > 0 {
            warning(
                &format!("{} slot tag writes failed (see the log)", tagged.failed),
                false,
            );
        }
    }
    if changed {
        let newest = stabledns::refresh::newest_change(&fleet, changed_at);
        stabledns::refresh::stamp(&mut snapshot, previous.as_ref(), newest);
    }
    Ok((snapshot, (read, started.elapsed())))
}

/// A view by name, or the first one.
fn pick_view<'a>(
    snapshot: &'a stabledns::zone::Snapshot,
    view: Option<&str>,
) -> anyhow::Result<&'a stabledns::zone::ViewZone> {
    match view {
        Some(name) => snapshot.view(name).with_context(|| {
            let names: Vec<&str> = snapshot.views.iter().map(|v| v.name.as_str()).collect();
            format!("no view `{name}`; the config has {}", names.join(", "))
        }),
        None => snapshot.views.first().context("no view is configured"),
    }
}

fn print_rows(rows: &[stabledns::zone::Row]) {
    let table: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.rtype.to_string(),
                r.targets.join(" "),
                if r.instances.is_empty() {
                    "-".to_owned()
                } else {
                    r.instances.join(" ")
                },
            ]
        })
        .collect();
    let header = ["NAME", "TYPE", "TARGET", "INSTANCES"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&table) {
        println!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
}

/// SIGHUP reads the config again and hands it (or why it failed) to the server.
async fn signal_reload(
    reloads: tokio::sync::mpsc::Sender<Result<Config, String>>,
    load: impl Fn() -> anyhow::Result<Config> + Send + 'static,
) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload by restarting");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the config");
        let next = tokio::task::block_in_place(&load).map_err(|e| format!("{e:#}"));
        if reloads.send(next).await.is_err() {
            return;
        }
    }
}

/// SIGINT or SIGTERM starts a graceful shutdown.
async fn signal_shutdown(token: CancellationToken) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    token.cancel();
}
