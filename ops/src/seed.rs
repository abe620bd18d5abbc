//! `pressroom-ops seed`: authors and published posts appended through the event store, like the API
//! does, by several concurrent writers (for demos and benches).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use shared::domain::post::{Actor, DraftPost, PostCommand};
use shared::domain::role::Role;
use shared::domain::slug::Slug;
use shared::domain::values::{parse_tags, BodyMarkdown, Email, FieldError, Summary, Title};
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
    /// Concurrent writers.
    #[arg(long, default_value_t = 8)]
    concurrency: u32,
    /// Only seed when no post exists yet (for `./ops/up`, which seeds demo content once).
    #[arg(long)]
    if_empty: bool,
}

const TOPICS: &[&str] = &["Rust", "Databases", "Event Sourcing", "Publishing", "Performance", "Operations"];
const WORDS: &[&str] = &[
    "event",
    "log",
    "replica",
    "projection",
    "cache",
    "latency",
    "throughput",
    "index",
    "query",
    "snapshot",
    "transaction",
    "consistency",
    "stream",
    "version",
    "editor",
    "reader",
    "feed",
    "slug",
    "draft",
    "publish",
];

pub async fn run(pool: &PgPool, args: SeedArgs) -> anyhow::Result<()> {
    if args.if_empty {
        let any = sqlx::query_scalar!(r#"select exists(select 1 from events where stream_type = 'post') as "any!""#)
            .fetch_one(pool)
            .await?;
        if any {
            println!("content exists; not seeding");
            return Ok(());
        }
    }
    let mut writers = Vec::new();
    for i in 1..=args.authors.max(1) {
        writers.push(writer(pool, i).await?);
    }
    let started = Instant::now();
    let next = Arc::new(AtomicU32::new(0));
    let workers = (0..args.concurrency.max(1)).map(|_| {
        let (pool, writers, next, total) = (pool.clone(), writers.clone(), next.clone(), args.posts);
        tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return Ok::<(), anyhow::Error>(());
                }
                seed_post(&pool, writers[n as usize % writers.len()], n).await?;
                if (n + 1) % 10_000 == 0 {
                    let rate = f64::from(n + 1) / started.elapsed().as_secs_f64();
                    eprintln!("seeded {} of {total} posts ({rate:.0} posts/s)", n + 1);
                }
            }
        })
    });
    for w in futures::future::join_all(workers).await {
        w??;
    }
    println!(
        "seeded {} authors and {} published posts in {:.1} s",
        writers.len(),
        args.posts,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The i-th seed author, registered once (a second seed reuses it).
async fn writer(pool: &PgPool, i: u32) -> anyhow::Result<Actor> {
    let address = format!("writer{i}@pressroom.local");
    let new = NewAuthor {
        email: Email::parse("email", &address).map_err(field)?,
        name: format!("Writer {i}"),
        password: format!("writer-{i}-{}", uuid::Uuid::now_v7().simple()),
        role: Role::Author,
        slug: None,
        bio: Some("Writes about systems.".into()),
        avatar_url: None,
    };
    match authors::register(pool, new, &Metadata::default()).await {
        Ok((a, _)) => Ok(Actor { id: a.id, role: a.role }),
        Err(WriteError::EmailTaken) => {
            let id = sqlx::query_scalar!("select author_id from author_credentials where email = $1", address)
                .fetch_one(pool)
                .await?;
            Ok(Actor { id, role: Role::Author })
        }
        Err(e) => Err(e.into()),
    }
}

fn field(e: FieldError) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", e.field, e.message)
}

/// One published post with a realistic Markdown body (heading, paragraphs, list, code block).
async fn seed_post(pool: &PgPool, actor: Actor, n: u32) -> anyhow::Result<()> {
    let meta = Metadata::default();
    let topic = TOPICS[n as usize % TOPICS.len()];
    let title = format!("{topic} notes #{}", n + 1);
    let mut body = format!("## {topic}\n\nThis is post number {} about **{topic}**.\n\n", n + 1);
    for p in 0..4u32 {
        let words: Vec<&str> = (0..40u32).map(|w| WORDS[((n + p * 7 + w * 3) as usize) % WORDS.len()]).collect();
        body.push_str(&words.join(" "));
        body.push_str(".\n\n");
    }
    body.push_str("- event sourced\n- projected\n- served from a replica\n\n```rust\nfn main() {}\n```\n");
    let second_tag = TOPICS[(n as usize / 3 + 1) % TOPICS.len()];
    let draft = DraftPost {
        author_id: actor.id,
        title: Title::parse("title", &title).map_err(field)?,
        slug: Slug::from_title(&title).ok_or_else(|| anyhow::anyhow!("no slug for {title}"))?,
        body_markdown: BodyMarkdown::parse("body", body).map_err(field)?,
        summary: Some(Summary::parse("summary", &format!("Notes on {topic}.")).map_err(field)?),
        tags: parse_tags("tags", &[topic.to_string(), second_tag.to_string()]).map_err(field)?,
        cover_image_url: None,
    };
    let (post, _) = posts::create(pool, actor, CreatePost { draft, explicit_slug: false }, &meta).await?;
    let publish = PostCommand::Publish { at: None, now: Utc::now() };
    posts::execute(pool, actor, post.id, Some(1), publish, &meta).await?;
    Ok(())
}
