//! `pressroom-ops seed`: authors and published posts appended through the event store, like the API
//! does, by several concurrent writers (for demos and benches).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use shared::domain::comment::Moderation;
use shared::domain::post::{self as post, Actor, DraftPost, EditPost, PostCommand};
use shared::domain::role::Role;
use shared::domain::slug::Slug;
use shared::domain::values::{parse_tags, BodyMarkdown, Email, FieldError, Summary, Title};
use shared::domain::StreamType;
use shared::store::db::StatementConnections;
use shared::store::event_store::{self, Metadata, NewStream};
use shared::store::grouped::GroupedAppends;
use shared::store::notify::{notify_appended, AppendSignal};
use shared::write::authors::{self, NewAuthor};
use shared::write::comments;
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
    /// Approved comments, spread over the new posts (submitted, then approved by a seed editor).
    #[arg(long, default_value_t = 0)]
    comments: u32,
    /// Append the posts' events in batches of 1,000 posts per transaction (the same events the API
    /// appends, decided by the same domain code) instead of one command at a time: for large benches.
    #[arg(long)]
    bulk: bool,
    /// Edits per post before it is published, each a revised body (a post's drafts, as authors write
    /// them): events per post become 2 + revisions.
    #[arg(long, default_value_t = 0)]
    revisions: u32,
}

/// Posts per transaction in `--bulk`.
const BULK_BATCH: u32 = 1_000;

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
        writers.push(writer(pool, i, Role::Author).await?);
    }
    let started = Instant::now();
    let signal = AppendSignal::new(pool.clone());
    if args.bulk {
        let ids = seed_bulk(pool, &writers, args.posts, args.revisions, &signal).await?;
        println!(
            "seeded {} authors and {} published posts ({} events) in {:.1} s",
            writers.len(),
            ids.len(),
            ids.len() * (2 + args.revisions as usize),
            started.elapsed().as_secs_f64()
        );
        seed_comments(pool, &ids, args.comments, args.concurrency, &signal).await?;
        return notify_appended(pool).await.map_err(Into::into);
    }
    let created = Arc::new(std::sync::Mutex::new(Vec::with_capacity(args.posts as usize)));
    let next = Arc::new(AtomicU32::new(0));
    let appends = GroupedAppends::new(StatementConnections::new(pool.clone(), args.concurrency.max(1)));
    let workers = (0..args.concurrency.max(1)).map(|_| {
        let (pool, appends, writers, next, total, created, signal) =
            (pool.clone(), appends.clone(), writers.clone(), next.clone(), args.posts, created.clone(), signal.clone());
        let revisions = args.revisions;
        tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return Ok::<(), anyhow::Error>(());
                }
                let id = seed_post(&pool, &appends, writers[n as usize % writers.len()], n, revisions).await?;
                signal.appended();
                if let Ok(mut created) = created.lock() {
                    created.push(id);
                }
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
    let ids = created.lock().map(|c| c.clone()).unwrap_or_default();
    seed_comments(pool, &ids, args.comments, args.concurrency, &signal).await?;
    // The last signal's NOTIFY may still be in flight when the process exits.
    notify_appended(pool).await.map_err(Into::into)
}

/// `--bulk`: each batch claims its slugs and appends every post's PostDrafted, its PostEdited revisions and
/// its PostPublished in one transaction, through the event store's bulk append. A slug someone already holds
/// drops that post from the batch. Returns the new post ids.
async fn seed_bulk(
    pool: &PgPool,
    writers: &[Actor],
    total: u32,
    revisions: u32,
    signal: &AppendSignal,
) -> anyhow::Result<Vec<uuid::Uuid>> {
    // Number after the posts that exist, so that a second bulk seed gets fresh slugs.
    let existing =
        sqlx::query_scalar!(r#"select count(*) as "n!" from events where stream_type = 'post' and version = 1"#)
            .fetch_one(pool)
            .await?;
    let offset = u32::try_from(existing).unwrap_or(0);
    let mut ids = Vec::with_capacity(total as usize);
    let mut from = 0;
    while from < total {
        let to = (from + BULK_BATCH).min(total);
        let mut drafted = Vec::new();
        for n in from..to {
            let actor = writers[n as usize % writers.len()];
            let draft = draft_post(actor, offset + n)?;
            let id = uuid::Uuid::now_v7();
            let slug = draft.slug.as_str().to_string();
            let now = Utc::now();
            let mut events = post::decide(None, actor, PostCommand::Draft(draft))?;
            let mut state = events.iter().fold(None, |s, e| post::apply(s, id, e, now));
            for r in 1..=revisions {
                let edited = post::decide(state.as_ref(), actor, revision(offset + n, r)?)?;
                state = edited.iter().fold(state, |s, e| post::apply(s, id, e, now));
                events.extend(edited);
            }
            events.extend(post::decide(state.as_ref(), actor, PostCommand::Publish { at: None, now })?);
            drafted.push((id, slug, events, Metadata { actor_id: Some(actor.id), ..Metadata::default() }));
        }
        let posts: Vec<NewStream> = drafted
            .iter()
            .map(|(id, slug, events, metadata)| NewStream {
                id: *id,
                stream_type: StreamType::Post,
                events,
                metadata,
                guard: None,
                slug: Some(slug),
            })
            .collect();
        let mut conn = pool.acquire().await?;
        let appended = event_store::append_new_streams(&mut conn, &posts).await?;
        signal.appended();
        ids.extend(drafted.iter().map(|(id, ..)| *id).filter(|id| appended.contains_key(id)));
        from = to;
        if from % 50_000 == 0 {
            eprintln!("seeded {from} of {total} posts");
        }
    }
    Ok(ids)
}

/// `--comments K`: K comments over `posts` (round robin), each submitted and approved by a seed editor.
async fn seed_comments(
    pool: &PgPool,
    posts: &[uuid::Uuid],
    total: u32,
    concurrency: u32,
    signal: &AppendSignal,
) -> anyhow::Result<()> {
    if total == 0 || posts.is_empty() {
        return Ok(());
    }
    let editor = writer(pool, 0, Role::Editor).await?;
    let started = Instant::now();
    let next = Arc::new(AtomicU32::new(0));
    let posts = Arc::new(posts.to_vec());
    let workers = (0..concurrency.max(1)).map(|_| {
        let (pool, next, posts, signal) = (pool.clone(), next.clone(), posts.clone(), signal.clone());
        tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return Ok::<(), anyhow::Error>(());
                }
                let post = posts[n as usize % posts.len()];
                let new = comments::NewComment {
                    author_name: format!("Reader {}", n % 97 + 1),
                    author_email: None,
                    body: format!("Comment {} — {}", n + 1, WORDS[n as usize % WORDS.len()]),
                };
                let (id, _) = comments::submit(&pool, post, new, &Metadata::default()).await?;
                comments::moderate(
                    &pool,
                    editor,
                    id,
                    Moderation::Approve,
                    &Metadata { actor_id: Some(editor.id), ..Metadata::default() },
                )
                .await?;
                signal.appended();
            }
        })
    });
    for w in futures::future::join_all(workers).await {
        w??;
    }
    println!("seeded {total} approved comments in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The i-th seed author (or editor), registered once (a second seed reuses it).
async fn writer(pool: &PgPool, i: u32, role: Role) -> anyhow::Result<Actor> {
    let address = format!("{}{i}@pressroom.local", if role == Role::Author { "writer" } else { role.as_str() });
    let new = NewAuthor {
        email: Email::parse("email", &address).map_err(field)?,
        name: if role == Role::Author { format!("Writer {i}") } else { format!("Writer {i} ({})", role.as_str()) },
        password: format!("writer-{i}-{}", uuid::Uuid::now_v7().simple()),
        role,
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
            Ok(Actor { id, role })
        }
        Err(e) => Err(e.into()),
    }
}

fn field(e: FieldError) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", e.field, e.message)
}

/// One published post with a realistic Markdown body; returns its id.
async fn seed_post(
    pool: &PgPool,
    appends: &GroupedAppends,
    actor: Actor,
    n: u32,
    revisions: u32,
) -> anyhow::Result<uuid::Uuid> {
    let meta = Metadata { actor_id: Some(actor.id), ..Metadata::default() };
    let draft = draft_post(actor, n)?;
    let (post, _) = posts::create(appends, actor, None, &CreatePost { draft, explicit_slug: false }, &meta).await?;
    for r in 1..=revisions {
        posts::execute(pool, actor, post.id, Some(r as i32), revision(n, r)?, &meta).await?;
    }
    let publish = PostCommand::Publish { at: None, now: Utc::now() };
    posts::execute(pool, actor, post.id, Some(revisions as i32 + 1), publish, &meta).await?;
    Ok(post.id)
}

/// The r-th revision of the n-th seed post: its body, rewritten and grown by a paragraph per revision.
fn revision(n: u32, r: u32) -> anyhow::Result<PostCommand> {
    let mut body = draft_body(n);
    for p in 0..r {
        let words: Vec<&str> = (0..30u32).map(|w| WORDS[((n + r * 11 + p * 5 + w) as usize) % WORDS.len()]).collect();
        body.push_str(&format!("\n\n_Revision {}:_ {}.", p + 1, words.join(" ")));
    }
    let body = BodyMarkdown::parse("body", body).map_err(field)?;
    Ok(PostCommand::Edit(EditPost { body_markdown: Some(body), ..EditPost::default() }))
}

/// The n-th seed post's first body: heading, paragraphs, a list and a code block.
fn draft_body(n: u32) -> String {
    let topic = TOPICS[n as usize % TOPICS.len()];
    let mut body = format!("## {topic}\n\nThis is post number {} about **{topic}**.\n\n", n + 1);
    for p in 0..4u32 {
        let words: Vec<&str> = (0..40u32).map(|w| WORDS[((n + p * 7 + w * 3) as usize) % WORDS.len()]).collect();
        body.push_str(&words.join(" "));
        body.push_str(".\n\n");
    }
    body.push_str("- event sourced\n- projected\n- served from a replica\n\n```rust\nfn main() {}\n```\n");
    body
}

/// The n-th seed draft: a realistic Markdown body (heading, paragraphs, list, code block) and two tags.
fn draft_post(actor: Actor, n: u32) -> anyhow::Result<DraftPost> {
    let topic = TOPICS[n as usize % TOPICS.len()];
    let title = format!("{topic} notes #{}", n + 1);
    let body = draft_body(n);
    let second_tag = TOPICS[(n as usize / 3 + 1) % TOPICS.len()];
    let draft = DraftPost {
        author_id: actor.id,
        title: Title::parse("title", &title).map_err(field)?,
        slug: Slug::from_title(&title).ok_or_else(|| anyhow::anyhow!("no slug for {title}"))?,
        body_markdown: BodyMarkdown::parse("body", body).map_err(field)?,
        summary: Some(Summary::parse("summary", &format!("Notes on {topic}.")).map_err(field)?),
        tags: parse_tags("tags", &[topic.to_string(), second_tag.to_string()]).map_err(field)?,
        cover_image_url: None,
        cover_media_id: None,
    };
    Ok(draft)
}
