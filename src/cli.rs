//! The command line: parses arguments and calls the library.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::{
    accounts::{self, NewUser, UserChange},
    app::{self, Application},
    config::{Config, LogFormat, Overrides},
    domain::{
        audit::{token_created, Actor},
        organization::Organization,
        token::{Ability, NewToken},
        user::{Manager, User},
        Timestamp,
    },
    notify::{email::Email, Mailer},
    secret_key::{self, KeyOrigin},
};

#[derive(Parser)]
#[command(
    name = "tocsin",
    version,
    about = "Outgoing webhooks for incident events"
)]
struct Cli {
    /// Settings file (default: tocsin.toml in the working directory, if present).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Overrides `database_url`.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// Overrides `listen`, e.g. 0.0.0.0:8080.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print every setting with its default and meaning.
    Config,
    /// Send a test e-mail with the [smtp] settings, and explain what fails.
    SendTestEmail {
        #[arg(long, value_name = "ADDRESS")]
        to: String,
    },
    /// Seal every stored secret again under a new key, in one transaction. Stop every
    /// node first. Without --new-key a key is generated: written to tocsin.key when that is
    /// where the key lives, else printed once for you to configure.
    RotateKey {
        /// The new key, base64 of 32 bytes (e.g. `openssl rand -base64 32`).
        #[arg(long, value_name = "BASE64")]
        new_key: Option<String>,
        /// Also writes the new key to this new file (mode 0600) before anything changes;
        /// with a configured key and no --new-key, instead of printing it.
        #[arg(long, value_name = "PATH")]
        new_key_file: Option<std::path::PathBuf>,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
    /// Manage the people who log in to the web UI and the API.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user and print their one-time setup link (24 h), alone, on standard output.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// owner, admin, member or viewer.
        #[arg(long)]
        role: String,
        /// Read the password from standard input instead of printing a setup link.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users (id, email, name, role, status, last login).
    List,
    /// Change a user's role (USER is an id or an email).
    SetRole { user: String, role: String },
    /// Disable a user: their sessions end at once and they cannot log in.
    Disable { user: String },
    /// Enable a disabled user again.
    Enable { user: String },
    /// End a user's password and sessions and print a new setup link.
    ResetPassword { user: String },
    /// Let a user whom failed logins locked out (10 in 15 minutes) log in again at once.
    Unlock { user: String },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it, alone, on standard output.
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated: read, manage-webhooks, ingest, admin.
        #[arg(long)]
        abilities: String,
    },
    /// List tokens (never their values).
    List,
    /// Revoke a token by id; it stops working at once.
    Revoke { id: String },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut overrides = Overrides {
        config_path: cli.config.clone(),
        database_url: cli.database_url.clone(),
        listen: None,
    };
    // `serve` sizes the runtime from its settings, so they are read before it starts; the
    // other commands are one conversation with the database and need one thread.
    let (mut builder, serving) = match &cli.command {
        Command::Serve { listen } => {
            overrides.listen = listen.clone();
            let config = match Config::load(&overrides) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(config.async_workers(cores));
            (builder, Some(config))
        }
        _ => (tokio::runtime::Builder::new_current_thread(), None),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, overrides, serving)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(quiet: bool, format: LogFormat) {
    let default = if quiet { "warn" } else { "info,sqlx=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    if format == LogFormat::Json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
        return;
    }
    // Colours only on a terminal: a log file or journal gets plain text, never escapes.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// `serving`: `serve`'s settings, read before the runtime started.
async fn run(cli: Cli, overrides: Overrides, serving: Option<Config>) -> anyhow::Result<()> {
    if let Some(config) = serving {
        init_logging(false, config.log_format);
        return serve(config).await;
    }
    init_logging(true, LogFormat::Text);
    match cli.command {
        Command::Config => {
            print!("{}", Config::describe_defaults());
            Ok(())
        }
        Command::Serve { .. } => unreachable!("serve's settings are read in main"),
        Command::Migrate => {
            let config = Config::load(&overrides)?;
            secret_key::open_store(&config).await?;
            eprintln!("migrations applied to {}", config.database_url);
            Ok(())
        }
        Command::RotateKey {
            new_key,
            new_key_file,
        } => {
            rotate_key(
                Config::load(&overrides)?,
                new_key.as_deref(),
                new_key_file.as_deref(),
            )
            .await
        }
        Command::Token { action } => token(Config::load(&overrides)?, action).await,
        Command::User { action } => user(Config::load(&overrides)?, action).await,
        Command::SendTestEmail { to } => send_test_email(Config::load(&overrides)?, &to).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let shutdown = app::shutdown_signal();
    let app = Application::build(config.clone()).await?;
    let url = format!("http://{}", app.address());
    if let (Some(owner), Some(setup)) = (app.first_start_token(), app.first_start_setup_url()) {
        println!(
            "First start: created organization {}.\n\n\
             1. Open this link in your browser to create your owner account (works once, for 24 hours):\n\n    {setup}\n\n\
             2. The owner API token (every ability), for scripts and the incident platform.\n   \
             It is shown only this once; store it now:\n\n    {}\n\n\
             Try it:  curl -H 'Authorization: Bearer {}' {url}/v3/extensions/event-webhooks\n",
            owner.token.organization_id, owner.plaintext, owner.plaintext
        );
    }
    if let KeyOrigin::File {
        path,
        created: true,
    } = app.key_origin()
    {
        println!(
            "Generated the secret key that seals webhook secrets and credentials in the database:

    {}

Back it up with the database: without it they cannot be read. Several nodes on one
PostgreSQL must share it (secret_key or TOCSIN_SECRET_KEY).
",
            path.display()
        );
    }
    // The runtime's own count, so what was asked for (`worker_threads`) can be checked.
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    let plural = if workers == 1 { "" } else { "s" };
    // The node's name is what `deliveries.lease_owner` holds for the work it has taken, so
    // an operator can tell which node holds what.
    let node = app.node();
    if config.log_format == LogFormat::Json {
        tracing::info!(url = %url, workers, node, "tocsin {} listening on {url}", env!("CARGO_PKG_VERSION"));
    } else {
        eprintln!(
            "tocsin {} listening on {url} ({workers} async worker thread{plural}; node {node})",
            env!("CARGO_PKG_VERSION")
        );
    }
    app.run_until(shutdown).await
}

async fn rotate_key(
    config: Config,
    new_key: Option<&str>,
    new_key_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    // Shown before the commit; a standard output nobody reads fails here and changes nothing.
    let mut show = |key: &str| -> std::io::Result<()> {
        use std::io::Write;
        eprintln!("the new key, shown only now (on standard output): set secret_key / TOCSIN_SECRET_KEY to it on every node before starting them");
        let mut out = std::io::stdout().lock();
        writeln!(out, "{key}")?;
        out.flush()
    };
    let rotated = secret_key::rotate(&config, new_key, new_key_file, &mut show).await?;
    eprintln!(
        "sealed {} values again under key {} (was {})",
        rotated.values, rotated.new_id, rotated.old_id
    );
    if let Some(path) = &rotated.written {
        eprintln!("{} holds the new key (mode 0600)", path.display());
    }
    match (&rotated.file, rotated.printed) {
        (Some(path), _) => eprintln!("{} now holds the new key", path.display()),
        (None, true) => eprintln!("the old key no longer opens the database: configure the new key printed above"),
        (None, false) => eprintln!(
            "set secret_key / TOCSIN_SECRET_KEY to the new key on every node before starting them; the old key no longer opens the database"
        ),
    }
    Ok(())
}

async fn token(config: Config, action: TokenCommand) -> anyhow::Result<()> {
    let store = secret_key::open_store(&config).await?.store;
    match action {
        TokenCommand::Create { name, abilities } => {
            let abilities =
                Ability::parse_list(&abilities).map_err(|e| anyhow::anyhow!("--abilities: {e}"))?;
            if name.trim().is_empty() {
                anyhow::bail!("--name must not be blank");
            }
            let token = match store.installation_organization().await? {
                Some(org) => {
                    let token = NewToken::generate(&org.id, &name, abilities);
                    store
                        .create_token(&token, &token_created(&token.token, &Actor::cli()))
                        .await?;
                    token
                }
                None => {
                    // Nothing exists yet: this token becomes the installation's first.
                    let org = Organization::new("Default");
                    let token = NewToken::generate(&org.id, &name, abilities);
                    if !store.bootstrap(&org, &token, None).await? {
                        anyhow::bail!("another process initialised the database at the same moment; run the command again");
                    }
                    eprintln!("created organization {}", org.id);
                    token
                }
            };
            eprintln!(
                "created token {} ({}) with abilities {}; it is shown only now:",
                token.token.id,
                token.token.name,
                Ability::join(&token.token.abilities)
            );
            println!("{}", token.plaintext);
        }
        TokenCommand::List => {
            let tokens = store.list_tokens(None).await?;
            if tokens.is_empty() {
                eprintln!("no tokens yet: `tocsin serve` creates an owner token on first start");
            }
            for t in tokens {
                let state = match (t.revoked_at, t.expires_at) {
                    (Some(at), _) => format!("revoked {}", at.to_rfc3339()),
                    (None, Some(at)) if !t.usable_at(Timestamp::now()) => {
                        format!("expired {}", at.to_rfc3339())
                    }
                    _ => "active".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\t{}\tcreated {}\t{}",
                    t.id,
                    t.organization_id,
                    t.name,
                    Ability::join(&t.abilities),
                    t.created_at.to_rfc3339(),
                    state
                );
            }
        }
        TokenCommand::Revoke { id } => {
            if store
                .revoke_token(None, &id, Timestamp::now(), &Actor::cli())
                .await?
                .is_none()
            {
                anyhow::bail!("no active token with id {id}: see `tocsin token list`");
            }
            eprintln!("token {id} revoked");
        }
    }
    Ok(())
}

async fn user(config: Config, action: UserCommand) -> anyhow::Result<()> {
    let store = secret_key::open_store(&config).await?.store;
    let Some(org) = store.installation_organization().await? else {
        anyhow::bail!("the database is empty: run `tocsin serve` once first; it creates the organization and prints the owner's setup link");
    };
    let actor = Actor::cli();
    let find = |key: String| {
        let store = store.clone();
        let org = org.id.clone();
        async move {
            let found = match store.user(&org, &key).await? {
                Some(u) => Some(u),
                None => store.user_by_email(&org, &key).await?,
            };
            found.ok_or_else(|| anyhow::anyhow!("no user {key}: see `tocsin user list`"))
        }
    };
    let link = |code: &str| accounts::setup_url(&config.public_url(), code);
    let update = |u: User, change: UserChange| {
        let store = store.clone();
        let org = org.id.clone();
        let actor = actor.clone();
        async move {
            accounts::update_user(store.as_ref(), &org, &u.id, change, Manager::Cli, &actor).await
        }
    };
    let disabled = |disabled: bool| UserChange {
        disabled: Some(disabled),
        ..UserChange::default()
    };
    match action {
        UserCommand::Create {
            email,
            name,
            role,
            password_stdin,
        } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                Some(line.trim_end_matches(['\r', '\n']).to_owned())
            } else {
                None
            };
            let input = NewUser {
                email,
                name,
                role,
                password,
            };
            let (user, code) =
                accounts::create_user(store.as_ref(), &org.id, input, Manager::Cli, &actor).await?;
            match code {
                Some(code) => {
                    eprintln!(
                        "created {} ({}, {}); send them this setup link (works once, for 24 hours):",
                        user.email,
                        user.id,
                        user.role.as_str()
                    );
                    println!("{}", link(&code));
                }
                None => eprintln!(
                    "created {} ({}, {}) with the password given; they can log in at {}/login",
                    user.email,
                    user.id,
                    user.role.as_str(),
                    config.public_url()
                ),
            }
        }
        UserCommand::List => {
            let users = store.list_users(&org.id).await?;
            if users.is_empty() {
                eprintln!("no users yet: open the setup link `tocsin serve` printed on its first start, or run `tocsin user create`");
            }
            let locked = accounts::lockouts(store.as_ref(), &users).await?;
            for u in users {
                let mut last = u.last_login_at.map_or_else(
                    || "never logged in".to_owned(),
                    |t| format!("last login {}", t.to_rfc3339()),
                );
                if let Some(wait) = locked.get(&u.id) {
                    last.push_str(&format!(
                        "; locked by failed logins for {} more min (tocsin user unlock {})",
                        wait.as_secs().div_ceil(60).max(1),
                        u.email
                    ));
                }
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{last}",
                    u.id,
                    u.email,
                    u.name,
                    u.role.as_str(),
                    u.status()
                );
            }
        }
        UserCommand::SetRole { user, role } => {
            let change = UserChange {
                role: Some(role),
                ..UserChange::default()
            };
            let u = update(find(user).await?, change).await?;
            eprintln!("{} is now {}", u.email, u.role.as_str());
        }
        UserCommand::Disable { user } => {
            let u = update(find(user).await?, disabled(true)).await?;
            eprintln!("{} is disabled; their sessions have ended", u.email);
        }
        UserCommand::Enable { user } => {
            let u = update(find(user).await?, disabled(false)).await?;
            eprintln!("{} is enabled", u.email);
        }
        UserCommand::ResetPassword { user } => {
            let u = find(user).await?;
            let (u, code) =
                accounts::reset_password(store.as_ref(), &org.id, &u.id, Manager::Cli, &actor)
                    .await?;
            eprintln!(
                "{}'s password and sessions have ended; send them this setup link (works once, for 24 hours):",
                u.email
            );
            println!("{}", link(&code));
        }
        UserCommand::Unlock { user } => {
            let u = find(user).await?;
            let u = accounts::unlock_login(store.as_ref(), &org.id, &u.id, Manager::Cli, &actor)
                .await?;
            eprintln!(
                "{}'s failed logins are forgotten: they may log in again now",
                u.email
            );
        }
    }
    Ok(())
}

async fn send_test_email(config: Config, to: &str) -> anyhow::Result<()> {
    let Some(mailer) = Mailer::new(&config.smtp)? else {
        anyhow::bail!("smtp.host is not set: configure [smtp] in tocsin.toml or TOCSIN_SMTP__HOST (see `tocsin config`)");
    };
    let email = Email {
        key: None,
        subject: "[tocsin] test e-mail".to_owned(),
        text: format!("This is a test e-mail from tocsin at {}. Failure notifications will arrive like this.\n", config.public_url()),
        html: format!("<p>This is a test e-mail from tocsin at {}. Failure notifications will arrive like this.</p>\n", config.public_url()),
    };
    let s = &config.smtp;
    eprintln!(
        "sending a test e-mail to {to} through {}:{} (tls = {})",
        s.host, s.port, s.tls
    );
    mailer
        .send(&[to.to_owned()], &email)
        .await
        .map_err(|e| anyhow::anyhow!("the test e-mail was not sent: {e}"))?;
    eprintln!("sent: the SMTP settings work");
    Ok(())
}
