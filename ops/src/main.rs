//! `pressroom-ops`: the operator CLI — migrations, the first admin, demo/bench seeding, projection status.

mod seed;

use clap::{Parser, Subcommand};
use shared::domain::role::Role;
use shared::domain::values::Email;
use shared::event_store::Metadata;
use shared::write::authors::{self, NewAuthor};
use shared::write::WriteError;
use sqlx::PgPool;

#[derive(Parser)]
#[command(
    name = "pressroom-ops",
    about = "Operate a Pressroom deployment",
    version
)]
struct Cli {
    /// Superuser connection for migrations and operator reads (the services use DATABASE_PRIMARY_URL).
    #[arg(
        long,
        env = "DATABASE_ADMIN_URL",
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
        #[arg(long, default_value = "admin@pressroom.local")]
        email: String,
        #[arg(long, env = "PRESSROOM_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, default_value = "Admin")]
        name: String,
    },
    /// Append demo or bench content through the event store.
    Seed(seed::SeedArgs),
    /// Projection checkpoints and lag.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Position, head, lag and state of every projection.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let pool = shared::db::pool(&cli.admin_url, 8, "pressroom-ops")?;
    match cli.command {
        Command::Migrate => {
            shared::MIGRATOR.run(&pool).await?;
            println!("migrations applied");
        }
        Command::CreateAdmin {
            email,
            password,
            name,
        } => create_admin(&pool, &email, &password, &name).await?,
        Command::Seed(args) => seed::run(&pool, args).await?,
        Command::Projections {
            command: ProjectionsCommand::Status { json },
        } => projections_status(&pool, json).await?,
    }
    Ok(())
}

async fn create_admin(
    pool: &PgPool,
    email: &str,
    password: &str,
    name: &str,
) -> anyhow::Result<()> {
    let email =
        Email::parse("email", email).map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?;
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
        Ok((a, appended)) => println!(
            "admin {} registered as {} at position {}",
            a.email, a.id, appended.position
        ),
        Err(WriteError::EmailTaken) => println!("admin {} already exists", email.as_str()),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct ProjectionStatus {
    name: String,
    position: i64,
    head: i64,
    lag_events: i64,
    lag_seconds: f64,
    state: String,
    error: Option<String>,
}

async fn projections_status(pool: &PgPool, json: bool) -> anyhow::Result<()> {
    let rows = sqlx::query!(
        r#"select c.name, c.global_position, c.state, c.error,
                  (select coalesce(max(global_position), 0) from events) as "head!",
                  (select count(*) from events e
                    where (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position)) as "lag_events!",
                  coalesce(extract(epoch from now() - (select min(e.recorded_at) from events e
                    where (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position))), 0)::float8 as "lag_seconds!"
           from read.checkpoints c order by c.name"#
    )
    .fetch_all(pool)
    .await?;
    let statuses: Vec<ProjectionStatus> = rows
        .into_iter()
        .map(|r| ProjectionStatus {
            name: r.name,
            position: r.global_position,
            head: r.head,
            lag_events: r.lag_events,
            lag_seconds: r.lag_seconds,
            state: r.state,
            error: r.error,
        })
        .collect();
    if json {
        println!("{}", serde_json::json!({ "projections": statuses }));
    } else {
        println!(
            "{:<12} {:>10} {:>10} {:>10} {:>10}  state",
            "projection", "position", "head", "lag", "lag_s"
        );
        for s in statuses {
            println!(
                "{:<12} {:>10} {:>10} {:>10} {:>10.1}  {}{}",
                s.name,
                s.position,
                s.head,
                s.lag_events,
                s.lag_seconds,
                s.state,
                s.error.map(|e| format!(" ({e})")).unwrap_or_default()
            );
        }
    }
    Ok(())
}
