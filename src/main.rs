//! The `scangate` command: parse the command line, load configuration, run.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use scangate::app::App;
use scangate::config::{Config, LogFormat};

#[derive(Parser)]
#[command(
    name = "scangate",
    version,
    about = "Self-hostable identity provider: log in by scanning a WeChat Mini Program code"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the embedded default with a demo app, a demo site and the WeChat and phone
    /// simulators under /_dev/.
    Dev {
        /// Optional configuration file layered under the dev defaults.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run in production.
    Serve {
        /// Configuration file (TOML); every key may be overridden by SCANGATE_* variables.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Manage the signing keys of the OpenID Connect issuers.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new signing key to a pool and sign with it from now on. The previous key stays
    /// in the JWKS until every token it signed has expired.
    Rotate {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The user pool whose key to rotate.
        #[arg(long, default_value = "default")]
        pool: String,
        /// Signature algorithm of the new key: RS256, ES256 or EdDSA.
        #[arg(long, default_value = "RS256", value_parser = ["RS256", "ES256", "EdDSA"])]
        alg: String,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let (config_path, dev) = match &cli.command {
        Command::Dev { config } => (config.clone(), true),
        Command::Serve { config } | Command::Migrate { config } => (config.clone(), false),
        Command::Keys {
            command: KeysCommand::Rotate { config, .. },
        } => (config.clone(), false),
    };
    let mut config = match Config::load(config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("scangate: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    config.dev_mode = dev;
    init_tracing(config.log_format);
    let result = match cli.command {
        Command::Migrate { .. } => migrate(&config).await,
        Command::Keys {
            command: KeysCommand::Rotate { pool, alg, .. },
        } => rotate(&config, &pool, &alg).await,
        Command::Dev { .. } | Command::Serve { .. } => serve(config).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("scangate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let dev = config.dev_mode;
    let app = App::build(config).await?;
    let url = app.state().config.public_url.clone();
    tracing::info!(port = app.port(), %url, "listening");
    if dev {
        eprintln!("\n  ScanGate dev mode is running.\n  Demo site:       {url}_dev/\n  Phone simulator: {url}_dev/phone\n");
    }
    app.run_until_stopped().await
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = scangate::store::Db::connect(&config.database_url, 2).await?;
    db.migrate().await?;
    println!("migrations applied");
    Ok(())
}

async fn rotate(config: &Config, pool: &str, alg: &str) -> anyhow::Result<()> {
    let alg = scangate::tokens::KeyAlg::parse(alg)
        .ok_or_else(|| anyhow::anyhow!("unknown algorithm {alg}"))?;
    let kid = scangate::tokens::rotate_keys(config, pool, alg).await?;
    println!(
        "pool {pool}: new {} signing key {kid} is active",
        alg.as_str()
    );
    Ok(())
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
