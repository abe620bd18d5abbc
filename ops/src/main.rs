//! `pressroom-ops`: the operator CLI — migrations, the first admin, seeding, projection status and
//! skips, replica status, and the event log.

mod backup;
mod media;
mod projections;
mod seed;

use clap::{Parser, Subcommand};
use shared::domain::role::Role;
use shared::domain::values::Email;
use shared::store::event_store::Metadata;
use shared::write::authors::{self, NewAuthor};
use shared::write::WriteError;
use sqlx::PgPool;

/// mimalloc, as the services use: a rebuild renders every post, and glibc's malloc and free were a
/// tenth of the machine's cycles while it wrote rows (`perf record -a`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "pressroom-ops", about = "Operate a Pressroom deployment", version)]
struct Cli {
    /// Superuser connection for migrations and operator reads (the services use DATABASE_PRIMARY_URL).
    #[arg(
        long,
        env = "DATABASE_ADMIN_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:15432/pressroom",
        global = true
    )]
    admin_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations.
    Migrate,
    /// Register an admin with this email unless one exists (idempotent).
    CreateAdmin {
        /// The admin's email.
        #[arg(long, default_value = "admin@pressroom.local")]
        email: String,
        /// The password (at least 8 characters): this flag, PRESSROOM_ADMIN_PASSWORD, or one line on
        /// standard input when neither is given.
        #[arg(long, env = "PRESSROOM_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// The admin's display name.
        #[arg(long, default_value = "Admin")]
        name: String,
    },
    /// Administrator accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Append demo or bench content through the event store.
    Seed(seed::SeedArgs),
    /// Projection checkpoints, lag, skipping a poison event.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Replica health and lag.
    Replicas {
        #[command(subcommand)]
        command: ReplicasCommand,
    },
    /// A physical base backup (pg_basebackup) into a new folder; with the WAL archive it restores to any
    /// point in time.
    Backup(backup::BackupArgs),
    /// A new cluster from a base backup and the WAL archive, recovered to a point in time and promoted.
    Restore(backup::RestoreArgs),
    /// The event log.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Uploaded media and the variant worker's backlog.
    Media {
        #[command(subcommand)]
        command: MediaCommand,
    },
}

#[derive(Subcommand)]
enum MediaCommand {
    /// Images, images waiting for variants, failing ones, and the oldest wait.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Position, head, lag and state of every projection.
    Status {
        /// One JSON document instead of a table (`{projections: [...]}`).
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a projection's tables from position 0 beside the live ones, verify, and swap them in.
    Rebuild {
        /// The projection: posts.
        #[arg(value_name = "NAME")]
        name: String,
        /// Swap even when the rebuilt tables differ from live (after a deliberate projection change).
        #[arg(long)]
        accept_changes: bool,
        /// Print the report as JSON instead of progress bars and a table.
        #[arg(long)]
        json: bool,
        /// Redis the projector writes through to (its namespace is bumped after the swap).
        #[arg(long, env = "REDIS_URL", hide_env_values = true, default_value = "redis://127.0.0.1:16379")]
        redis_url: String,
        /// The deployment's Redis key prefix.
        #[arg(long, env = "PRESSROOM_REDIS_PREFIX", default_value = "pressroom")]
        redis_prefix: String,
    },
    /// Move a halted projection past the event it cannot apply (recorded in `projection_skips`).
    Skip {
        /// The halted projection (posts or comments).
        #[arg(value_name = "NAME")]
        name: String,
        /// The global position of the event it cannot apply (the next one after its checkpoint).
        #[arg(value_name = "POSITION")]
        position: i64,
        /// Why it is skipped, for the audit record in `projection_skips`.
        #[arg(long)]
        reason: String,
        /// Who skips it (default: the operating-system user running the command).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Set an author's password, read from standard input (one line); the change is recorded in their
    /// stream as `AuthorPasswordChanged`, without the hash.
    SetPassword {
        /// The author's email, e.g. admin@pressroom.local.
        email: String,
    },
}

#[derive(Subcommand)]
enum ReplicasCommand {
    /// Replication state and lag of every replica, as the primary sees them.
    Status {
        /// One JSON document instead of a table (`{replicas: [...]}`).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// The newest events as JSON lines.
    Tail {
        /// Only this stream (a post's, author's or comment's id).
        #[arg(long)]
        stream: Option<uuid::Uuid>,
        /// How many of the newest events.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    shared::service::telemetry::init_cli();
    match &cli.command {
        Command::Backup(args) => return backup::backup(&cli.admin_url, args),
        Command::Restore(args) => return backup::restore(args),
        _ => {}
    }
    let pool = shared::store::db::pool(&cli.admin_url, 8, "pressroom-ops")?;
    match cli.command {
        Command::Migrate => {
            shared::MIGRATOR.run(&pool).await?;
            println!("migrations applied");
        }
        Command::CreateAdmin { email, password, name } => {
            let password = match password {
                Some(p) => p,
                None => read_password_line("create-admin")?,
            };
            create_admin(&pool, &email, &password, &name).await?
        }
        Command::Admin { command: AdminCommand::SetPassword { email } } => set_password(&pool, &email).await?,
        Command::Seed(args) => seed::run(&pool, args).await?,
        Command::Projections { command } => match command {
            ProjectionsCommand::Status { json } => projections::status(&pool, json).await?,
            ProjectionsCommand::Rebuild { name, accept_changes, json, redis_url, redis_prefix } => {
                let keys = shared::read::redis_keys::RedisKeys::new(&redis_prefix);
                projections::rebuild(&pool, &name, accept_changes, json, redis_url, keys).await?
            }
            ProjectionsCommand::Skip { name, position, reason, by } => {
                let by = by.unwrap_or_else(projections::operating_user);
                projections::skip(&pool, &name, position, &reason, &by).await?
            }
        },
        Command::Replicas { command: ReplicasCommand::Status { json } } => projections::replicas(&pool, json).await?,
        Command::Events { command: EventsCommand::Tail { stream, limit } } => {
            projections::tail(&pool, stream, limit).await?
        }
        Command::Media { command: MediaCommand::Status { json } } => media::status(&pool, json).await?,
        Command::Backup(_) | Command::Restore(_) => {}
    }
    Ok(())
}

/// One line of standard input: a password given without a flag or variable.
fn read_password_line(command: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line)?;
    if read == 0 || line.trim().is_empty() {
        anyhow::bail!(
            "{command} needs a password: --password, PRESSROOM_ADMIN_PASSWORD, or one line on standard input"
        );
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// The reasons of a validation failure, field by field.
fn reasons(errors: &[shared::domain::values::FieldError]) -> String {
    errors.iter().map(|e| format!("{} {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
}

async fn set_password(pool: &PgPool, email: &str) -> anyhow::Result<()> {
    let email = Email::parse("email", email).map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?;
    let password = read_password_line("admin set-password")?;
    let password = password.as_str();
    let metadata = Metadata::default();
    match authors::set_password(pool, &email, password, &metadata).await {
        Ok(Some(appended)) => {
            println!("password of {} changed (recorded at position {})", email.as_str(), appended.position);
            Ok(())
        }
        Ok(None) => anyhow::bail!("no author has the email {}", email.as_str()),
        Err(WriteError::Validation(errors)) => {
            anyhow::bail!("{} (the password is read from standard input)", reasons(&errors))
        }
        Err(e) => Err(e.into()),
    }
}

async fn create_admin(pool: &PgPool, email: &str, password: &str, name: &str) -> anyhow::Result<()> {
    let email = Email::parse("email", email).map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?;
    let new = NewAuthor {
        email: email.clone(),
        name: name.to_string(),
        password: password.to_string(),
        role: Role::Admin,
        slug: None,
        bio: None,
        avatar_url: None,
    };
    match authors::register(pool, new, &Metadata::default()).await {
        Ok((a, appended)) => println!("admin {} registered as {} at position {}", a.email, a.id, appended.position),
        Err(WriteError::EmailTaken) => println!("admin {} already exists", email.as_str()),
        Err(WriteError::Validation(errors)) => anyhow::bail!("{}", reasons(&errors)),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
