//! `capstan`: create, develop, serve, deploy and run Capstan apps.
//!
//! # Layout
//! - `main.rs`: the command line (clap) and each command.
//! - `build.rs`: building an app crate into its component.
//! - `remote.rs`: talking to a running server's admin and HTTP APIs.

mod build;
mod remote;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use capstan_server::deployment::AppConfig;
use capstan_server::{AdminKey, Server, ServerConfig};
use clap::{Parser, Subcommand};

use crate::remote::Remote;

const DEFAULT_URL: &str = "http://127.0.0.1:3210";
const DEV_DATA: &str = ".capstan";

#[derive(Parser)]
#[command(
    name = "capstan",
    version,
    about = "Capstan: a self-hostable backend for apps"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where a server is and how to prove admin rights to it.
#[derive(clap::Args)]
struct Target {
    /// The server's URL.
    #[arg(long, global = true, env = "CAPSTAN_URL", default_value = DEFAULT_URL)]
    url: String,
    /// The admin key; by default read from ./.capstan/admin_key.
    #[arg(long, global = true, env = "CAPSTAN_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new app crate in DIR, ready to build.
    New { dir: PathBuf },
    /// Build the app in DIR (default: here), serve it on 127.0.0.1:3210 with
    /// the store in DIR/.capstan, and rebuild and redeploy on every change.
    Dev {
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[arg(long, default_value_t = 3210)]
        port: u16,
    },
    /// Run a production server from a config file or flags.
    Serve {
        /// A TOML file like deploy/capstan.toml.
        #[arg(long, conflicts_with_all = ["data_dir", "listen"])]
        config: Option<PathBuf>,
        #[arg(long, env = "CAPSTAN_DATA_DIR", default_value = "/var/lib/capstan")]
        data_dir: PathBuf,
        #[arg(long, env = "CAPSTAN_LISTEN", default_value = "127.0.0.1:3210")]
        listen: SocketAddr,
        /// Keep the store in this PostgreSQL database, shared by every node
        /// given the same URL (`postgres://user:password@host/db`).
        #[arg(
            long,
            env = "CAPSTAN_DATABASE_URL",
            hide_env_values = true,
            conflicts_with = "config"
        )]
        database_url: Option<String>,
    },
    /// Build the app in DIR, optimised (or take --component files), and deploy it.
    Deploy {
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Deploy these component files instead of building DIR.
        #[arg(long)]
        component: Vec<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Run a function: `capstan run counter:increment '{"by": 2}'`.
    Run {
        path: String,
        #[arg(default_value = "{}")]
        args: String,
        #[command(flatten)]
        target: Target,
    },
    /// Call an HTTP action: `capstan http POST /webhooks/payment --body '{…}'`
    /// sends to the server's `/http/webhooks/payment`. Prints the response
    /// body; the status and headers go to stderr.
    Http {
        /// GET, POST, PUT, PATCH, DELETE, …
        method: String,
        /// The route's path, as the app declares it.
        path: String,
        /// The request body.
        #[arg(long, default_value = "")]
        body: String,
        /// A header, `Name: value`; repeat for more.
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        #[arg(long, env = "CAPSTAN_URL", default_value = DEFAULT_URL)]
        url: String,
    },
    /// The cron jobs (last and next run) and the newest scheduled runs with
    /// their state.
    Jobs {
        /// How many scheduled runs, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        target: Target,
    },
    /// Write a snapshot of every table (and, with --include-file-storage,
    /// every stored file) to a ZIP in Convex's export layout.
    Export {
        /// Where to write the ZIP.
        #[arg(long)]
        path: PathBuf,
        #[arg(long)]
        include_file_storage: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Load a snapshot (from `capstan export`, or Convex's `npx convex
    /// export`) into a deployment that runs the same app and has no data
    /// in the snapshot's tables yet. Ids and creation times are kept.
    Import {
        #[arg(long)]
        path: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Deployment environment variables.
    Env {
        #[command(subcommand)]
        command: EnvCommand,
        #[command(flatten)]
        target: Target,
    },
    /// The newest admin actions (deploys, variables, keys), with their
    /// time, source address and outcome.
    Audit {
        /// How many, newest last.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        target: Target,
    },
    /// Sign-in emails and texts `capstan dev` kept instead of sending them
    /// (no AUTH_SMTP_URL set), newest last.
    Outbox {
        #[arg(long, default_value = DEV_DATA)]
        data_dir: PathBuf,
        /// How many, newest last.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Print the admin key of the server whose data is in --data-dir,
    /// rotate it (`capstan keys rotate`), or manage service keys
    /// (`capstan keys service create|list|revoke`).
    Keys {
        #[arg(long, default_value = DEV_DATA)]
        data_dir: PathBuf,
        #[command(subcommand)]
        command: Option<KeysCommand>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Replace the admin key: through the running server at --url, or,
    /// with --offline, in --data-dir of a stopped one. The new key is
    /// printed; the old one stops working.
    Rotate {
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Built-in auth's signing keys: `rotate` makes a new one (the old one
    /// stays published until its tokens expire); `import` takes Convex
    /// Auth's JWT_PRIVATE_KEY so users moving over stay signed in.
    Auth {
        #[command(subcommand)]
        command: AuthKeysCommand,
        #[command(flatten)]
        target: Target,
    },
    /// Named keys with which servers call functions, internal ones included,
    /// as `Authorization: Bearer <key>`; functions see a service identity.
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum AuthKeysCommand {
    Rotate {
        /// RS256 (default), ES256 or EdDSA.
        #[arg(long, default_value = "RS256")]
        algorithm: String,
    },
    Import {
        /// A file holding the key; by default the JWT_PRIVATE_KEY variable.
        #[arg(long)]
        private_key_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ServiceCommand {
    /// Create a key. It is printed once; the server keeps only its digest.
    Create {
        name: String,
        /// Make it stop working after this many seconds.
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// The keys' names and creation times.
    List,
    /// Revoke a key: calls with it fail from now on.
    Revoke { name: String },
}

#[derive(Subcommand)]
enum EnvCommand {
    Set { name: String, value: String },
    Get { name: String },
    List,
    Unset { name: String },
}

fn main() -> std::process::ExitCode {
    // `CAPSTAN_LOG` filters (`capstan=debug`); `CAPSTAN_LOG_FORMAT=json`
    // writes one JSON object a line, with the socket's and call's spans,
    // for a log collector.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAPSTAN_LOG")
                .unwrap_or_else(|_| "capstan=info,warn".into()),
        )
        .with_writer(std::io::stderr);
    if std::env::var("CAPSTAN_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        logs.json()
            .with_current_span(true)
            .with_span_list(true)
            .init();
    } else {
        logs.init();
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One clear line; causes joined.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::New { dir } => new_app(&dir),
        Command::Dev { dir, port } => dev(&dir, port).await,
        Command::Serve {
            config,
            data_dir,
            listen,
            database_url,
        } => {
            let config = match config {
                Some(path) => ServerConfig::from_file(&path)?,
                None => {
                    let mut config = ServerConfig::new(data_dir, listen);
                    config.postgres = database_url
                        .filter(|url| !url.is_empty())
                        .map(capstan_server::PostgresConfig::new);
                    config
                }
            };
            serve(config.with_secrets_from_env()).await
        }
        Command::Deploy {
            dir,
            component,
            target,
        } => {
            let components = if component.is_empty() {
                vec![build::build(&dir, build::Profile::Release)?]
            } else {
                component
                    .iter()
                    .map(|path| {
                        std::fs::read(path)
                            .with_context(|| format!("cannot read {}", path.display()))
                    })
                    .collect::<anyhow::Result<_>>()?
            };
            let config = build::app_config(&dir)?;
            let summary = Remote::new(&target.url, admin_key(target.admin_key)?)
                .deploy(&components, &config)
                .await?;
            println!("{}", describe_deploy(&summary));
            Ok(())
        }
        Command::Run { path, args, target } => {
            let args: serde_json::Value =
                serde_json::from_str(&args).context("the arguments are not valid JSON")?;
            let remote = Remote::new(&target.url, admin_key(target.admin_key)?);
            let value = remote.run(&path, args).await?;
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(())
        }
        Command::Http {
            method,
            path,
            body,
            headers,
            url,
        } => http_action(&url, &method, &path, body, &headers).await,
        Command::Jobs { limit, target } => {
            let remote = Remote::new(&target.url, admin_key(target.admin_key)?);
            let jobs = remote.jobs().await?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
            println!("cron jobs:");
            for cron in jobs["crons"].as_array().into_iter().flatten() {
                println!(
                    "  {}\t{}\t{}\tlast: {}\tnext: {}",
                    cron["name"].as_str().unwrap_or("?"),
                    cron["schedule"].as_str().unwrap_or("?"),
                    cron["function"].as_str().unwrap_or("?"),
                    match cron["lastRun"].as_f64() {
                        Some(at) => format!(
                            "{} ({})",
                            relative(at, now),
                            cron["lastState"].as_str().unwrap_or("?")
                        ),
                        None => "never".into(),
                    },
                    cron["nextRun"]
                        .as_f64()
                        .map_or("-".into(), |at| relative(at, now)),
                );
            }
            println!("scheduled runs, newest first:");
            for job in jobs["scheduled"]
                .as_array()
                .into_iter()
                .flatten()
                .take(limit)
            {
                let state = &job["state"];
                println!(
                    "  {}\t{}\t{}\t{}{}",
                    job["_id"].as_str().unwrap_or("?"),
                    job["name"].as_str().unwrap_or("?"),
                    state["kind"].as_str().unwrap_or("?"),
                    job["scheduledTime"]
                        .as_f64()
                        .map_or("-".into(), |at| relative(at, now)),
                    state["error"]
                        .as_str()
                        .map(|e| format!("\t{e}"))
                        .unwrap_or_default(),
                );
            }
            Ok(())
        }
        Command::Export {
            path,
            include_file_storage,
            target,
        } => {
            let remote = Remote::new(&target.url, admin_key(target.admin_key)?);
            let bytes = remote.export(&path, include_file_storage).await?;
            println!("wrote {} ({bytes} bytes)", path.display());
            Ok(())
        }
        Command::Import { path, target } => {
            let remote = Remote::new(&target.url, admin_key(target.admin_key)?);
            let imported = remote.import(&path).await?;
            println!(
                "imported {} documents in {} tables and {} files",
                imported["documents"], imported["tables"], imported["files"]
            );
            Ok(())
        }
        Command::Env { command, target } => {
            let remote = Remote::new(&target.url, admin_key(target.admin_key)?);
            match command {
                EnvCommand::Set { name, value } => remote.set_env(&name, Some(&value)).await,
                EnvCommand::Unset { name } => remote.set_env(&name, None).await,
                EnvCommand::Get { name } => match remote.env().await?.get(&name) {
                    Some(value) => {
                        println!("{value}");
                        Ok(())
                    }
                    None => bail!("{name} is not set"),
                },
                EnvCommand::List => {
                    for (name, value) in remote.env().await? {
                        println!("{name}={value}");
                    }
                    Ok(())
                }
            }
        }
        Command::Keys {
            command: Some(KeysCommand::Service { command, target }),
            ..
        } => {
            let remote = Remote::new(&target.url, admin_key(target.admin_key)?);
            match command {
                ServiceCommand::Create { name, expires_in } => {
                    let key = remote.create_service_key(&name, expires_in).await?;
                    println!("{key}");
                    eprintln!("service key {name:?} created; it is not shown again");
                    Ok(())
                }
                ServiceCommand::List => {
                    for key in remote.service_keys().await? {
                        let expires = match key["expiresAt"].as_u64() {
                            Some(at) => format!("\texpires {at}"),
                            None => String::new(),
                        };
                        println!(
                            "{}\tcreated {}{expires}",
                            key["name"].as_str().unwrap_or("?"),
                            key["createdAt"]
                        );
                    }
                    Ok(())
                }
                ServiceCommand::Revoke { name } => remote.revoke_service_key(&name).await,
            }
        }
        Command::Keys {
            data_dir,
            command: Some(KeysCommand::Rotate { offline, target }),
        } => {
            let key = if offline {
                AdminKey::rotate_in(&data_dir).map_err(anyhow::Error::msg)?
            } else {
                Remote::new(&target.url, admin_key(target.admin_key)?)
                    .rotate_admin_key()
                    .await?
            };
            println!("{key}");
            eprintln!("admin key rotated; the old one no longer works");
            Ok(())
        }
        Command::Keys {
            command: Some(KeysCommand::Auth { command, target }),
            ..
        } => {
            let remote = Remote::new(&target.url, admin_key(target.admin_key)?);
            let kid = match command {
                AuthKeysCommand::Rotate { algorithm } => {
                    remote
                        .auth_keys("rotate", serde_json::json!({ "algorithm": algorithm }))
                        .await?
                }
                AuthKeysCommand::Import { private_key_file } => {
                    let key = match private_key_file {
                        Some(path) => std::fs::read_to_string(&path)
                            .with_context(|| format!("cannot read {}", path.display()))?,
                        None => std::env::var("JWT_PRIVATE_KEY").map_err(|_| {
                            anyhow::anyhow!("pass --private-key-file or set JWT_PRIVATE_KEY")
                        })?,
                    };
                    remote
                        .auth_keys("import", serde_json::json!({ "jwtPrivateKey": key }))
                        .await?
                }
            };
            println!("{kid}");
            eprintln!(
                "tokens are now signed with key {kid}; earlier keys stay published until their tokens expire"
            );
            Ok(())
        }
        Command::Outbox { data_dir, limit } => {
            let path = data_dir.join("dev_outbox.jsonl");
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                eprintln!("no messages in {}", path.display());
            }
            for line in &lines[lines.len().saturating_sub(limit)..] {
                let message: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                println!(
                    "to {} ({}): {}\n{}\n",
                    message["to"].as_str().unwrap_or("?"),
                    message["channel"].as_str().unwrap_or("?"),
                    message["subject"].as_str().unwrap_or(""),
                    message["text"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        Command::Audit { limit, target } => {
            let remote = Remote::new(&target.url, admin_key(target.admin_key)?);
            for entry in remote.audit(limit).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    entry["timeMs"],
                    entry["action"].as_str().unwrap_or("?"),
                    entry["target"].as_str().unwrap_or("-"),
                    entry["source"].as_str().unwrap_or("?"),
                    entry["outcome"].as_str().unwrap_or("?"),
                );
            }
            Ok(())
        }
        Command::Keys {
            data_dir,
            command: None,
        } => match AdminKey::read(&data_dir) {
            Some(key) => {
                println!("{}", key.expose());
                Ok(())
            }
            None => bail!(
                "no admin key in {}; start the server there first",
                data_dir.display()
            ),
        },
    }
}

fn admin_key(explicit: Option<String>) -> anyhow::Result<String> {
    if let Some(key) = explicit {
        return Ok(key);
    }
    match AdminKey::read(Path::new(DEV_DATA)) {
        Some(key) => Ok(key.expose()),
        None => bail!(
            "no admin key: pass --admin-key, set CAPSTAN_ADMIN_KEY, or run from the directory of `capstan dev`"
        ),
    }
}

/// The app config of `dir` as the server reads it.
fn dev_config(dir: &Path) -> anyhow::Result<AppConfig> {
    serde_json::from_value(build::app_config(dir)?).with_context(|| {
        format!(
            "{} is not a valid app config",
            dir.join(build::APP_CONFIG).display()
        )
    })
}

fn describe_deploy(summary: &serde_json::Value) -> String {
    let mut text = format!(
        "deployed {} ({} functions; {} compiled, {} from cache)",
        summary["deployment"].as_str().unwrap_or("?"),
        summary["functions"],
        summary["compiled"],
        summary["loadedFromCache"]
    );
    for warning in summary["warnings"].as_array().into_iter().flatten() {
        text.push_str("\nwarning: ");
        text.push_str(warning.as_str().unwrap_or_default());
    }
    text
}

async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let server = Server::start(config).await?;
    eprintln!("capstan is serving at {}", server.url());
    let token = server.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        token.cancel();
    });
    server.run_until_stopped().await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn dev(dir: &Path, port: u16) -> anyhow::Result<()> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{} does not exist", dir.display()))?;
    eprintln!("building {} …", dir.display());
    let component = build::build(&dir, build::Profile::Debug)?;
    let listen: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut config = ServerConfig::new(dir.join(DEV_DATA), listen);
    // A developer reads what their functions log where they call them.
    config.logs_to_clients = true;
    // Sign-in emails go to the console and `capstan outbox` until an SMTP
    // server is configured.
    config.dev_outbox = true;
    // Actions may call services on this machine (a local mail catcher, a
    // stand-in API); `capstan serve` refuses loopback unless configured.
    config.platform.fetch.allowed_networks = vec!["127.0.0.0/8".into(), "::1/128".into()];
    let server = Server::start(config).await?;
    let summary = server
        .app
        .deploy(vec![component], dev_config(&dir)?)
        .await?;
    eprintln!(
        "capstan dev: serving {} at {} ({} functions)\nadmin key: capstan keys --data-dir {}\nsign-in emails (until AUTH_SMTP_URL is set): capstan outbox, or {}",
        dir.display(),
        server.url(),
        summary.functions,
        dir.join(DEV_DATA).display(),
        dir.join(DEV_DATA).join("dev_outbox.jsonl").display()
    );
    let token = server.shutdown_token();
    let stop = token.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stop.cancel();
    });
    let app = server.app.clone();
    let watched = dir.clone();
    let watcher = tokio::spawn(async move {
        let mut last = build::fingerprint(&watched);
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            let now = build::fingerprint(&watched);
            if now == last {
                continue;
            }
            last = now;
            eprintln!("change detected: rebuilding …");
            let built = {
                let watched = watched.clone();
                tokio::task::spawn_blocking(move || build::build(&watched, build::Profile::Debug))
                    .await
            };
            match built {
                Ok(Ok(component)) => match async {
                    let config = dev_config(&watched).map_err(|e| format!("{e:#}"))?;
                    app.deploy(vec![component], config)
                        .await
                        .map_err(|e| e.to_string())
                }
                .await
                {
                    Ok(summary) => eprintln!("redeployed ({} functions)", summary.functions),
                    Err(e) => eprintln!("deploy refused: {e}"),
                },
                Ok(Err(e)) => eprintln!("build failed: {e:#}"),
                Err(e) => eprintln!("build failed: {e}"),
            }
        }
    });
    server.run_until_stopped().await?;
    watcher.abort();
    Ok(())
}

fn new_app(dir: &Path) -> anyhow::Result<()> {
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("{} already exists and is not empty", dir.display());
    }
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .with_context(|| format!("{} is not a valid crate name", dir.display()))?;
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/rust");
    let sdk = sdk.canonicalize().unwrap_or(sdk);
    std::fs::create_dir_all(dir.join("src"))?;
    let manifest = include_str!("../template/Cargo.toml.in")
        .replace("{name}", name)
        .replace("{sdk}", &sdk.display().to_string())
        .replace("{{", "{")
        .replace("}}", "}");
    std::fs::write(dir.join("Cargo.toml"), manifest)?;
    // The template is the counter example, so it is built and tested with it.
    std::fs::write(
        dir.join("src/lib.rs"),
        include_str!("../../../examples/counter/src/lib.rs"),
    )?;
    std::fs::write(
        dir.join("src/counter.rs"),
        include_str!("../../../examples/counter/src/counter.rs"),
    )?;
    std::fs::create_dir_all(dir.join(".cargo"))?;
    std::fs::write(
        dir.join(".cargo/config.toml"),
        include_str!("../template/cargo-config.toml"),
    )?;
    std::fs::write(dir.join(".gitignore"), "/target\n/.capstan\n")?;
    println!(
        "created {}: cd {} && capstan dev",
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// `at` (ms since the epoch) next to `now`: "in 3 s", "2 min ago".
fn relative(at: f64, now: f64) -> String {
    let seconds = ((at - now) / 1000.0).round() as i64;
    let magnitude = seconds.unsigned_abs();
    let amount = match magnitude {
        0..120 => format!("{magnitude} s"),
        120..7200 => format!("{} min", magnitude / 60),
        7200..172_800 => format!("{} h", magnitude / 3600),
        _ => format!("{} days", magnitude / 86_400),
    };
    if seconds >= 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// `capstan http`: one request to an HTTP action. The admin key is not
/// sent: the app's code would see it.
async fn http_action(
    url: &str,
    method: &str,
    path: &str,
    body: String,
    headers: &[String],
) -> anyhow::Result<()> {
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .with_context(|| format!("{method:?} is not an HTTP method"))?;
    if !path.starts_with('/') {
        anyhow::bail!("the path starts with `/`: {path:?}");
    }
    let mut request = reqwest::Client::new()
        .request(method, format!("{}/http{path}", url.trim_end_matches('/')))
        .body(body);
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("a header is `Name: value`, not {header:?}"))?;
        request = request.header(name.trim(), value.trim());
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    eprintln!("{}", response.status());
    for (name, value) in response.headers() {
        eprintln!("{name}: {}", value.to_str().unwrap_or("(not text)"));
    }
    let status = response.status();
    let text = response.text().await?;
    println!("{text}");
    if !status.is_success() {
        anyhow::bail!("the HTTP action answered {status}");
    }
    Ok(())
}
