//! `pressroom-ops seed`: authors and published posts appended through the event store, like the API does.

use chrono::Utc;
use shared::domain::post::{Actor, DraftPost, PostCommand};
use shared::domain::role::Role;
use shared::domain::slug::Slug;
use shared::domain::values::{parse_tags, BodyMarkdown, Email, Summary, Title};
use shared::event_store::Metadata;
use shared::write::authors::{self, NewAuthor};
use shared::write::posts::{self, CreatePost};
use shared::write::WriteError;
use sqlx::PgPool;

#[derive(clap::Args)]
pub struct SeedArgs {
    #[arg(long, default_value_t = 5)]
    posts: u32,
    #[arg(long, default_value_t = 2)]
    authors: u32,
    /// Only seed when no post exists yet (for `./ops/up`, which seeds demo content once).
    #[arg(long)]
    if_empty: bool,
}

const TOPICS: &[&str] = &[
    "Rust",
    "Databases",
    "Event Sourcing",
    "Publishing",
    "Performance",
    "Operations",
];

pub async fn run(pool: &PgPool, args: SeedArgs) -> anyhow::Result<()> {
    if args.if_empty {
        let any = sqlx::query_scalar!(
            r#"select exists(select 1 from events where stream_type = 'post') as "any!""#
        )
        .fetch_one(pool)
        .await?;
        if any {
            println!("content exists; not seeding");
            return Ok(());
        }
    }
    let meta = Metadata::default();
    let mut writers = Vec::new();
    for i in 1..=args.authors.max(1) {
        let email = Email::parse("email", &format!("writer{i}@pressroom.local"))
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let new = NewAuthor {
            email,
            name: format!("Writer {i}"),
            password: format!("writer-{i}-{}", uuid::Uuid::now_v7().simple()),
            role: Role::Author,
            slug: None,
            bio: Some("Writes about systems.".into()),
            avatar_url: None,
        };
        match authors::register(pool, new, &meta).await {
            Ok((a, _)) => writers.push(Actor {
                id: a.id,
                role: a.role,
            }),
            Err(WriteError::EmailTaken) => {
                let id = sqlx::query_scalar!(
                    "select author_id from author_credentials where email = $1",
                    format!("writer{i}@pressroom.local")
                )
                .fetch_one(pool)
                .await?;
                writers.push(Actor {
                    id,
                    role: Role::Author,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    for n in 0..args.posts {
        let actor = writers[n as usize % writers.len()];
        let topic = TOPICS[n as usize % TOPICS.len()];
        let title = format!("{topic} notes #{}", n + 1);
        let body = format!(
            "## {topic}\n\nThis is a demo post about **{topic}**, number {}.\n\n- event sourced\n- projected\n- served from a replica\n",
            n + 1
        );
        let field =
            |e: shared::domain::values::FieldError| anyhow::anyhow!("{}: {}", e.field, e.message);
        let draft = DraftPost {
            author_id: actor.id,
            title: Title::parse("title", &title).map_err(field)?,
            slug: Slug::from_title(&title).ok_or_else(|| anyhow::anyhow!("no slug for {title}"))?,
            body_markdown: BodyMarkdown::parse("body", body).map_err(field)?,
            summary: Some(Summary::parse("summary", &format!("Notes on {topic}.")).map_err(field)?),
            tags: parse_tags("tags", &[topic.to_string(), "Demo".to_string()]).map_err(field)?,
            cover_image_url: None,
        };
        let (post, _) = posts::create(
            pool,
            actor,
            CreatePost {
                draft,
                explicit_slug: false,
            },
            &meta,
        )
        .await?;
        posts::execute(
            pool,
            actor,
            post.id,
            Some(1),
            PostCommand::Publish {
                at: None,
                now: Utc::now(),
            },
            &meta,
        )
        .await?;
    }
    println!(
        "seeded {} authors and {} published posts",
        writers.len(),
        args.posts
    );
    Ok(())
}
