//! The command line: parses arguments and calls the library.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::{
    app::{self, Application},
    config::{Config, Overrides},
    domain::{
        organization::Organization,
        token::{Ability, NewToken},
        Timestamp,
    },
    notify::{email::Email, Mailer},
    store,
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
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
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
    let quiet = !matches!(cli.command, Command::Serve { .. });
    init_logging(quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info,sqlx=warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut overrides = Overrides {
        config_path: cli.config,
        database_url: cli.database_url,
        listen: None,
    };
    match cli.command {
        Command::Config => {
            print!("{}", Config::describe_defaults());
            Ok(())
        }
        Command::Serve { listen } => {
            overrides.listen = listen;
            serve(Config::load(&overrides)?).await
        }
        Command::Migrate => {
            let config = Config::load(&overrides)?;
            store::open(&config.database_url).await?;
            eprintln!("migrations applied to {}", config.database_url);
            Ok(())
        }
        Command::Token { action } => token(Config::load(&overrides)?, action).await,
        Command::SendTestEmail { to } => send_test_email(Config::load(&overrides)?, &to).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let shutdown = app::shutdown_signal();
    let app = Application::build(config.clone()).await?;
    let url = format!("http://{}", app.address());
    if let Some(owner) = app.first_start_token() {
        println!(
            "First start: created organization {} and its owner token (every ability).\n\
             It is shown only this once; store it now:\n\n    {}\n\n\
             Try it:  curl -H 'Authorization: Bearer {}' {url}/v3/extensions/event-webhooks\n",
            owner.token.organization_id, owner.plaintext, owner.plaintext
        );
    }
    eprintln!("tocsin {} listening on {url}", env!("CARGO_PKG_VERSION"));
    app.run_until(shutdown).await
}

async fn token(config: Config, action: TokenCommand) -> anyhow::Result<()> {
    let store = store::open(&config.database_url).await?;
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
                    store.create_token(&token).await?;
                    token
                }
                None => {
                    // Nothing exists yet: this token becomes the installation's first.
                    let org = Organization::new("Default");
                    let token = NewToken::generate(&org.id, &name, abilities);
                    if !store.bootstrap(&org, &token).await? {
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
            let tokens = store.list_tokens().await?;
            if tokens.is_empty() {
                eprintln!("no tokens yet: `tocsin serve` creates an owner token on first start");
            }
            for t in tokens {
                let state = match t.revoked_at {
                    Some(at) => format!("revoked {}", at.to_rfc3339()),
                    None => "active".to_owned(),
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
            if !store.revoke_token(&id, Timestamp::now()).await? {
                anyhow::bail!("no active token with id {id}: see `tocsin token list`");
            }
            eprintln!("token {id} revoked");
        }
    }
    Ok(())
}

async fn send_test_email(config: Config, to: &str) -> anyhow::Result<()> {
    let Some(mailer) = Mailer::new(&config.smtp)? else {
        anyhow::bail!("smtp.host is not set: configure [smtp] in tocsin.toml or TOCSIN_SMTP__HOST (see `tocsin config`)");
    };
    let email = Email {
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
