//! The `scangate` command: parse the command line, load configuration, run.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use scangate::app::{App, Runtime};
use scangate::config::{AppConfig, Config, LogFormat};

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
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run in production.
    Serve {
        /// Configuration file (TOML); every key may be overridden by SCANGATE_* variables.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        /// Configuration file (TOML); every key may be overridden by SCANGATE_* variables.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Manage the signing keys of the OpenID Connect issuers.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage apps (the sites that show QR codes; OpenID Connect clients).
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Manage admin console accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Copy the SQLite database, consistently, while ScanGate serves (PostgreSQL: use pg_dump).
    Backup {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The new file to write.
        #[arg(long)]
        to: PathBuf,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (file + environment) with secrets masked and every
    /// problem found; exit 1 if there is any.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AppCommand {
    /// Add an app, checked exactly like `[[apps]]` in the configuration. A confidential app
    /// gets a generated client secret, printed once.
    Create(Box<AppCreate>),
    /// List the stored apps (no secrets).
    List {
        /// Configuration file (TOML); every key may be overridden by SCANGATE_* variables.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct AppCreate {
    /// Configuration file (TOML); every key may be overridden by SCANGATE_* variables.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The app's client id (`app_id` of the APIs): 1–64 of A-Z a-z 0-9 . _ -
    #[arg(long)]
    client_id: String,
    /// Shown to the person who scans.
    #[arg(long)]
    name: String,
    /// AppID of the Mini Program that scans this app's codes (already stored: declare it
    /// under [[miniprograms]] and start the server once).
    #[arg(long)]
    miniprogram: String,
    /// Where the authorization endpoint may return (exact match); repeat for more.
    #[arg(long = "redirect-uri", required = true)]
    redirect_uris: Vec<String>,
    /// A browser origin allowed to call the PC API (CORS); repeat for more.
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
    /// Where RP-initiated logout may return (exact match); repeat for more.
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// The user pool.
    #[arg(long, default_value = "default")]
    pool: String,
    /// A public client (PKCE, no client secret).
    #[arg(long)]
    public: bool,
    /// Lifetime of the app's QR codes in seconds (30–3600).
    #[arg(long, default_value_t = 120)]
    qr_ttl_secs: u64,
    /// Do not bind QR codes to the browser that created them.
    #[arg(long)]
    no_binding: bool,
    /// Turn the match step off: no number on the PC to tap on the phone.
    #[arg(long)]
    no_match_number: bool,
    /// Whether the Mini Program asks for a phone number: required, optional or off.
    #[arg(long, default_value = "optional", value_parser = ["required", "optional", "off"])]
    phone: String,
    /// Logo: a file path, a data: URI or an https:// URL.
    #[arg(long)]
    logo: Option<String>,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Add an admin console account. The password is generated and printed once, unless
    /// --password-stdin.
    Create {
        /// Configuration file (TOML); every key may be overridden by SCANGATE_* variables.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// 3–64 of a-z 0-9 . _ -
        #[arg(long)]
        username: String,
        /// Read the password (at least 12 characters) from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// viewer (reads), admin (also changes apps and users) or owner (also pools and keys).
        #[arg(long, default_value = "owner")]
        role: String,
        /// Limit the account to one user pool; every pool when absent.
        #[arg(long)]
        pool: Option<String>,
    },
    /// Management API keys.
    Key {
        #[command(subcommand)]
        command: AdminKeyCommand,
    },
}

#[derive(Subcommand)]
enum AdminKeyCommand {
    /// Create a management API key; it is printed once and only its hash is stored.
    Create {
        /// Configuration file (TOML); every key may be overridden by SCANGATE_* variables.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// What the key is for, as the audit log names it (`key:NAME`).
        #[arg(long)]
        name: String,
        /// viewer (reads), admin (also changes apps and users) or owner (also pools and keys).
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Limit the key to one user pool; every pool when absent.
        #[arg(long)]
        pool: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new signing key to a pool and sign with it from now on. The previous key stays
    /// in the JWKS until every token it signed has expired.
    Rotate {
        /// Configuration file (TOML); every key may be overridden by SCANGATE_* variables.
        #[arg(long, value_name = "FILE")]
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
    if let Command::Config {
        command: ConfigCommand::Check { config },
    } = &cli.command
    {
        let report = scangate::ops::config_check::check(config.as_deref());
        print!("{}", report.render());
        return if report.is_ok() {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        };
    }
    let (config_path, dev) = match &cli.command {
        Command::Dev { config } => (config.clone(), true),
        Command::Serve { config } | Command::Migrate { config } => (config.clone(), false),
        Command::Keys {
            command: KeysCommand::Rotate { config, .. },
        }
        | Command::App {
            command: AppCommand::List { config },
        }
        | Command::Admin {
            command: AdminCommand::Create { config, .. },
        }
        | Command::Admin {
            command:
                AdminCommand::Key {
                    command: AdminKeyCommand::Create { config, .. },
                },
        } => (config.clone(), false),
        Command::App {
            command: AppCommand::Create(args),
        } => (args.config.clone(), false),
        Command::Backup { config, .. } => (config.clone(), false),
        Command::Config { .. } => unreachable!("answered above"),
    };
    let config = match Config::load(config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("scangate: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    let result = match cli.command {
        Command::Migrate { .. } => migrate(&config).await,
        Command::Keys {
            command: KeysCommand::Rotate { pool, alg, .. },
        } => rotate(&config, &pool, &alg).await,
        Command::App {
            command: AppCommand::Create(args),
        } => app_create(&config, *args).await,
        Command::App {
            command: AppCommand::List { .. },
        } => app_list(&config).await,
        Command::Admin {
            command:
                AdminCommand::Create {
                    username,
                    password_stdin,
                    role,
                    pool,
                    ..
                },
        } => admin_create(&config, &username, password_stdin, &role, pool.as_deref()).await,
        Command::Admin {
            command:
                AdminCommand::Key {
                    command:
                        AdminKeyCommand::Create {
                            name, role, pool, ..
                        },
                },
        } => admin_key_create(&config, &name, &role, pool.as_deref()).await,
        Command::Dev { .. } | Command::Serve { .. } => serve(config, dev).await,
        Command::Backup { to, .. } => backup(&config, &to).await,
        Command::Config { .. } => unreachable!("answered above"),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Once, on standard error, and never as a log line too: logs may carry colour
            // codes, and an operator reading a failed command wants the reason once.
            eprintln!("scangate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config, dev: bool) -> anyhow::Result<()> {
    let runtime = Runtime {
        dev,
        ..Runtime::default()
    };
    let app = App::build_with(config, runtime).await?;
    let config = &app.state().config;
    // Pages that answer, rather than the bare public URL (a JSON 404).
    let discovery = config.url("/oidc/.well-known/openid-configuration");
    let health = config.url("/healthz");
    tracing::info!(port = app.port(), %discovery, %health, "listening");
    if dev {
        eprintln!(
            "\n  ScanGate dev mode is running.\n  Demo site:       {}\n  Phone simulator: {}\n",
            config.url("/_dev/"),
            config.url("/_dev/phone")
        );
    }
    app.run_until_stopped().await
}

async fn backup(config: &Config, to: &std::path::Path) -> anyhow::Result<()> {
    let done = scangate::ops::backup::backup(config, to).await?;
    println!(
        "backup written: {} ({} bytes)",
        done.path.display(),
        done.bytes
    );
    if let Some(key) = done.key_file {
        println!(
            "keep {} with it: the backup cannot be opened without that key",
            key.display()
        );
    }
    Ok(())
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = scangate::store::Db::connect(&config.database_url, 2).await?;
    let applied = db.migrate().await?;
    println!("{}", scangate::cli::migrated(applied));
    Ok(())
}

async fn rotate(config: &Config, pool: &str, alg: &str) -> anyhow::Result<()> {
    let alg = scangate::tokens::KeyAlg::parse(alg)
        .ok_or_else(|| anyhow::anyhow!("unknown algorithm {alg}"))?;
    let kid = scangate::cli::rotate_keys(config, pool, alg).await?;
    println!("{}", scangate::cli::rotated(pool, alg.as_str(), &kid));
    Ok(())
}

async fn app_create(config: &Config, args: AppCreate) -> anyhow::Result<()> {
    let app = AppConfig {
        pool: args.pool,
        client_id: args.client_id,
        client_secret: None,
        name: args.name,
        logo: args.logo,
        redirect_uris: args.redirect_uris,
        post_logout_redirect_uris: args.post_logout_redirect_uris,
        allowed_origins: args.allowed_origins,
        miniprogram: args.miniprogram,
        qr_ttl_secs: args.qr_ttl_secs,
        require_binding: !args.no_binding,
        match_number: Some(!args.no_match_number),
        phone: match args.phone.as_str() {
            "required" => scangate::store::apps::PhoneAsk::Required,
            "off" => scangate::store::apps::PhoneAsk::Off,
            _ => scangate::store::apps::PhoneAsk::Optional,
        },
        ..AppConfig::default()
    };
    let created = scangate::cli::create_app(config, app, args.public).await?;
    println!("client_id:     {}", created.client_id);
    match created.client_secret {
        Some(secret) => {
            println!("client_secret: {secret}");
            println!("\nStore the client secret now: it cannot be shown again.");
        }
        None => println!("public client: no client secret (use PKCE)"),
    }
    Ok(())
}

async fn app_list(config: &Config) -> anyhow::Result<()> {
    let apps = scangate::cli::list_apps(config).await?;
    println!(
        "{:<24} {:<12} {:<20} {:<12} NAME",
        "CLIENT_ID", "POOL", "MINIPROGRAM", "TYPE"
    );
    for app in apps {
        let kind = if app.client_secret_hash.is_some() {
            "confidential"
        } else {
            "public"
        };
        println!(
            "{:<24} {:<12} {:<20} {:<12} {}",
            app.client_id, app.pool, app.miniprogram, kind, app.name
        );
    }
    Ok(())
}

async fn admin_create(
    config: &Config,
    username: &str,
    password_stdin: bool,
    role: &str,
    pool: Option<&str>,
) -> anyhow::Result<()> {
    let password = if password_stdin {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        let line = text.strip_suffix('\n').unwrap_or(&text);
        Some(line.strip_suffix('\r').unwrap_or(line).to_owned())
    } else {
        None
    };
    let generated = scangate::cli::create_admin(config, username, password, role, pool).await?;
    println!(
        "admin {username} created ({role}, {})",
        pool.unwrap_or("all pools")
    );
    if let Some(password) = generated {
        println!("password: {password}");
        println!("\nStore the password now: it cannot be shown again.");
    }
    Ok(())
}

async fn admin_key_create(
    config: &Config,
    name: &str,
    role: &str,
    pool: Option<&str>,
) -> anyhow::Result<()> {
    let (id, secret) = scangate::cli::create_api_key(config, name, role, pool).await?;
    println!("id:  {id}");
    println!("key: {secret}");
    println!("\nStore the key now: it cannot be shown again. Send it as Authorization: Bearer.");
    Ok(())
}

fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let colour = scangate::cli::log_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
