//! The `gateway` command line: `serve` (default), `migrate`, `merchant create`,
//! `apikey create`, `apikey revoke` and `config`. Results a script needs (an
//! id, a key, the configuration) go alone to stdout; everything else to stderr.
//!
//! [`main`] is the bundled binary; [`main_with`] is the same command line in
//! an application's own binary, with its plugins, providers and handler
//! context linked in.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::invalidation::{Invalidation, CACHE_TTL};
use crate::domain::scopes::Scopes;
use crate::server::cluster::announce;
use crate::server::config::{Config, LogFormat};
use crate::server::dev_cli::DevCommand;
use crate::server::settings::effective_toml;
use crate::server::{create_merchant, ServerBuilder};
use crate::store::{Change, Store};
use crate::support::clock::now_ms;

/// The Gateway payments server.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
struct Cli {
    /// A TOML configuration file; `GATEWAY_*` environment variables override it.
    #[arg(long, global = true, env = "GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage merchants.
    Merchant {
        #[command(subcommand)]
        action: MerchantAction,
    },
    /// Manage API keys.
    Apikey {
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// Print the effective configuration (file, then environment, then
    /// defaults and what the mode decides) as TOML, secrets masked, and the
    /// providers a server would offer; exit non-zero if it would not start with them.
    #[command(name = "config")]
    ShowConfig,
    /// Developer commands against a running gateway (`listen`, `trigger`, `events resend`).
    #[command(flatten)]
    Dev(DevCommand),
}

#[derive(Debug, Subcommand)]
enum MerchantAction {
    /// Create a merchant; prints its id.
    Create {
        /// The merchant's name.
        #[arg(long, default_value = "merchant")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum ApiKeyAction {
    /// Create an API key; prints the key (shown this once).
    Create {
        /// The merchant id.
        #[arg(long)]
        merchant: String,
        /// Comma-separated scopes: payments:read,payments:write,merchant:read,merchant:write,webhooks:read.
        #[arg(
            long,
            default_value = "payments:read,payments:write,merchant:read,merchant:write,webhooks:read"
        )]
        scopes: String,
    },
    /// Revoke an API key by its id (`key_…`).
    Revoke {
        /// The merchant id.
        #[arg(long)]
        merchant: String,
        /// The key id.
        #[arg(long)]
        id: String,
    },
}

/// Runs the command line with the process arguments; returns the exit code.
/// The bundled `gateway` binary: [`main_with`] without customization.
pub fn main() -> ExitCode {
    main_with(|server| server)
}

/// Runs the whole `gateway` command line (`serve`, `migrate`, `merchant`,
/// `apikey`, `config`) with the process arguments, the server built by
/// `customize`: the application's handler plugins, providers and handler
/// context. A binary that is the gateway with the application's handlers
/// linked in is one line:
///
/// ```no_run
/// // In the application: its plugin crate declares `PLUGIN` and its handlers…
/// gateway_core::declare_plugin!(PLUGIN);
///
/// /// …and something they find in their context.
/// #[derive(Default)]
/// struct OrderBook;
///
/// fn main() -> std::process::ExitCode {
///     gateway_server::cli::main_with(|server| {
///         server
///             .plugin(&PLUGIN)
///             .handler_context(|ctx| ctx.with_extension(OrderBook::default()))
///     })
/// }
/// ```
///
/// `customize` is called once, by the commands that build a server: `serve`
/// (the default), and `config`, which reports the providers that server
/// would offer (without starting it). The configuration is read as for the
/// bundled binary (`--config`, `GATEWAY_*`), so every setting applies.
/// Naming a plugin keeps the linker from dropping its crate, and the server
/// refuses to start if its handlers are missing.
pub fn main_with(customize: impl FnOnce(ServerBuilder) -> ServerBuilder + 'static) -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Dev(command)) = cli.command {
        // These call a running gateway: no server configuration is read.
        return match actix_web::rt::System::new().block_on(crate::server::dev_cli::run(command)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("gateway: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("gateway: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    let runtime = actix_web::rt::System::new();
    let command = cli.command.unwrap_or(Command::Serve);
    match runtime.block_on(run(command, config, Box::new(customize))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gateway: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What an application adds to the server it runs ([`main_with`]).
type Customize = Box<dyn FnOnce(ServerBuilder) -> ServerBuilder>;

fn init_logging(config: &Config) {
    let level = match config.log_level.as_str() {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn run(command: Command, config: Config, customize: Customize) -> Result<(), String> {
    match command {
        Command::Serve => serve(config, customize).await,
        Command::ShowConfig => show_config(config, customize),
        Command::Dev(command) => crate::server::dev_cli::run(command).await,
        Command::Migrate => {
            open(&config).await?;
            eprintln!("gateway: database is up to date");
            Ok(())
        }
        Command::Merchant {
            action: MerchantAction::Create { name },
        } => {
            let store = open(&config).await?;
            let (id, _) = create_merchant(&*store, &name, None)
                .await
                .map_err(|error| error.to_string())?;
            println!("{id}");
            Ok(())
        }
        Command::Apikey {
            action: ApiKeyAction::Create { merchant, scopes },
        } => {
            let scopes = Scopes::parse_list(&scopes).map_err(|bad| format!("unknown scope {bad:?}"))?;
            if scopes.is_empty() {
                return Err("give the key at least one scope".to_owned());
            }
            let store = open(&config).await?;
            if store
                .merchant(&merchant)
                .await
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(format!("no merchant {merchant:?}"));
            }
            let (row, key) =
                crate::app::merchants::new_key_row(&merchant, scopes).map_err(|error| error.to_string())?;
            store
                .commit(vec![Change::InsertApiKey(row)])
                .await
                .map_err(|error| error.to_string())?;
            println!("{key}");
            Ok(())
        }
        Command::Apikey {
            action: ApiKeyAction::Revoke { merchant, id },
        } => {
            let opened = crate::store::open(&config.database_url)
                .await
                .map_err(|error| format!("cannot open the database: {error}"))?;
            let store = opened.store;
            let keys = store.api_keys(&merchant).await.map_err(|e| e.to_string())?;
            if !keys.iter().any(|key| key.id == id && key.revoked_at.is_none()) {
                return Err(format!("merchant {merchant:?} has no active key {id:?}"));
            }
            store
                .commit(vec![Change::RevokeApiKey {
                    merchant_id: merchant,
                    id: id.clone(),
                    at: now_ms(),
                }])
                .await
                .map_err(|error| error.to_string())?;
            // Running servers on PostgreSQL hear of it at once; any server stops trusting its cache within the TTL.
            let announced = match opened.postgres {
                Some(pool) => announce(&pool, &Invalidation::ApiKey { key_id: id })
                    .await
                    .map_err(|error| tracing::warn!(%error, "telling the running servers failed"))
                    .is_ok(),
                None => false,
            };
            let within = if announced {
                "at once".to_owned()
            } else {
                format!("within {} s", CACHE_TTL.as_secs())
            };
            eprintln!("gateway: key revoked (running servers stop accepting it {within})");
            Ok(())
        }
    }
}

/// Prints the effective configuration, then the providers a server would
/// offer with it (or, on stderr, why it would not start with them).
fn show_config(config: Config, customize: Customize) -> Result<(), String> {
    if let Some(warning) = &config.mode_warning {
        eprintln!("gateway: {warning}");
    }
    print!("{}", effective_toml(&config));
    let (offered, default) = customize(ServerBuilder::new(config))
        .check_providers()
        .map_err(|error| error.to_string())?;
    println!(
        "# providers offered: {}; default: {}",
        if offered.is_empty() {
            "none".to_owned()
        } else {
            offered.join(", ")
        },
        default.as_deref().unwrap_or("none")
    );
    Ok(())
}

/// Creates a merchant and an API key with the comma-separated `scopes` in the
/// database `config` names; returns the merchant id and the key. (What
/// `gateway merchant create` and `gateway apikey create` do, for scripts and tests.)
pub async fn create_merchant_with_key(
    config: &Config,
    name: &str,
    scopes: &str,
) -> Result<(String, String), String> {
    let scopes = Scopes::parse_list(scopes).map_err(|bad| format!("unknown scope {bad:?}"))?;
    let store = open(config).await?;
    let (id, key) = create_merchant(&*store, name, Some(scopes))
        .await
        .map_err(|error| error.to_string())?;
    Ok((id, key.unwrap_or_default()))
}

async fn open(config: &Config) -> Result<std::sync::Arc<dyn Store>, String> {
    crate::store::open(&config.database_url)
        .await
        .map(|opened| opened.store)
        .map_err(|error| format!("cannot open the database: {error}"))
}

async fn serve(config: Config, customize: Customize) -> Result<(), String> {
    let server = customize(ServerBuilder::new(config))
        .start()
        .await
        .map_err(|error| error.to_string())?;
    if let Some(key) = server.sandbox_key() {
        println!("Sandbox merchant API key (shown once): {key}");
        println!(
            "Try: curl -s http://{}/v1/payments -H 'X-API-Key: {key}' -H 'Content-Type: application/json' \
             -d '{{\"amount\": 10.00, \"currency\": \"USD\", \"payment_method\": \"pm_card_visa\"}}'",
            server.addr()
        );
    }
    server.run_until_signal().await;
    Ok(())
}
