//! The `posts` projection: post rows with rendered bodies and denormalised authors and tags, slug history,
//! and a write-through of each published post to Redis after commit.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use shared::domain::events::{AuthorProfileUpdated, AuthorRegistered};
use shared::domain::post::{self, Post, PostStatus};
use shared::domain::DomainEvent;
use shared::event_store::RecordedEvent;
use shared::position::LogPosition;
use shared::read_model::{tag_refs, AuthorRef, CachedPost, PostDetail, PostSummary, TagRef};
use shared::render;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use tracing::Instrument;

use super::{Applying, Projection, ProjectionError};
use crate::redis_sink::{PostWrite, RedisSink};

/// After-commit work: refresh a post's Redis entry, or retire a slug it no longer answers to.
#[derive(Debug)]
pub enum PostEffect {
    Changed(Uuid),
    SlugRetired { slug: String, transaction_id: i64, position: i64 },
}

pub struct PostsProjection {
    pool: PgPool,
    redis: RedisSink,
}

impl PostsProjection {
    pub fn new(pool: PgPool, redis: RedisSink) -> Self {
        Self { pool, redis }
    }
}

/// A row of `posts`.
#[derive(Debug, Clone)]
pub struct PostRow {
    pub id: Uuid,
    pub slug: String,
    pub status: String,
    pub title: String,
    pub summary: Option<String>,
    pub body_markdown: String,
    pub body_html: String,
    pub cover_image_url: Option<String>,
    pub tags: Json<Vec<TagRef>>,
    pub author_id: Uuid,
    pub author: Json<AuthorRef>,
    pub reading_time_minutes: i32,
    pub comment_count: i32,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub last_transaction_id: i64,
    pub last_position: i64,
}

impl PostRow {
    fn to_domain(&self) -> Post {
        Post {
            id: self.id,
            author_id: self.author_id,
            version: self.version,
            status: parse_status(&self.status),
            title: self.title.clone(),
            slug: self.slug.clone(),
            body_markdown: self.body_markdown.clone(),
            summary: self.summary.clone(),
            tags: self.tags.0.iter().map(|t| t.name.clone()).collect(),
            cover_image_url: self.cover_image_url.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            published_at: self.published_at,
            scheduled_at: self.scheduled_at,
            // Not kept in the read row: projections fold, they never decide with these.
            ever_published: self.published_at.is_some(),
            scheduled_by: None,
        }
    }

    /// The public detail this row serves.
    pub fn to_detail(&self) -> PostDetail {
        PostDetail {
            summary: PostSummary {
                id: self.id,
                slug: self.slug.clone(),
                title: self.title.clone(),
                summary: self.summary.clone(),
                author: self.author.0.clone(),
                tags: self.tags.0.clone(),
                published_at: self.published_at,
                updated_at: self.updated_at,
                reading_time_minutes: self.reading_time_minutes,
                comment_count: self.comment_count,
            },
            body_html: self.body_html.clone(),
            version: self.version,
            cover_image_url: self.cover_image_url.clone(),
            status: self.status.clone(),
        }
    }
}

fn parse_status(s: &str) -> PostStatus {
    match s {
        "scheduled" => PostStatus::Scheduled,
        "published" => PostStatus::Published,
        "deleted" => PostStatus::Deleted,
        _ => PostStatus::Draft,
    }
}

async fn load_rows(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<PostRow>, sqlx::Error> {
    sqlx::query_as!(
        PostRow,
        r#"select id, slug, status, title, summary, body_markdown, body_html, cover_image_url,
                  tags as "tags: Json<Vec<TagRef>>", author_id, author as "author: Json<AuthorRef>",
                  reading_time_minutes, comment_count, version, created_at, updated_at, published_at, scheduled_at,
                  last_transaction_id::text::bigint as "last_transaction_id!", last_position
           from posts where id = any($1)"#,
        ids
    )
    .fetch_all(conn)
    .await
}

/// Upserts `rows` in one statement (the generated search vector is computed by PostgreSQL).
async fn save_rows(conn: &mut PgConnection, rows: &[&PostRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&PostRow) -> String| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    let opt = |f: fn(&PostRow) -> Option<String>| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    let time = |f: fn(&PostRow) -> Option<DateTime<Utc>>| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    let int = |f: fn(&PostRow) -> i32| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    let json = |v: serde_json::Result<String>| v.unwrap_or_default();
    sqlx::query!(
        r#"insert into posts (id, slug, status, title, summary, body_markdown, body_html, cover_image_url, tags,
                                  author_id, author, reading_time_minutes, comment_count, version, created_at,
                                  updated_at, published_at, scheduled_at, last_transaction_id, last_position)
           select id, slug, status, title, summary, body_markdown, body_html, cover_image_url, tags::jsonb,
                  author_id, author::jsonb, reading_time_minutes, comment_count, version, created_at,
                  updated_at, published_at, scheduled_at, last_transaction_id::text::xid8, last_position
           from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::text[], $9::text[], $10::uuid[], $11::text[], $12::int[], $13::int[], $14::int[],
                       $15::timestamptz[], $16::timestamptz[], $17::timestamptz[], $18::timestamptz[],
                       $19::bigint[], $20::bigint[])
                as r(id, slug, status, title, summary, body_markdown, body_html, cover_image_url, tags, author_id,
                     author, reading_time_minutes, comment_count, version, created_at, updated_at, published_at,
                     scheduled_at, last_transaction_id, last_position)
           on conflict (id) do update set
               slug = excluded.slug, status = excluded.status, title = excluded.title, summary = excluded.summary,
               body_markdown = excluded.body_markdown, body_html = excluded.body_html,
               cover_image_url = excluded.cover_image_url, tags = excluded.tags, author = excluded.author,
               reading_time_minutes = excluded.reading_time_minutes, version = excluded.version,
               updated_at = excluded.updated_at, published_at = excluded.published_at,
               scheduled_at = excluded.scheduled_at, last_transaction_id = excluded.last_transaction_id,
               last_position = excluded.last_position"#,
        &rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        &col(|r| r.slug.clone()),
        &col(|r| r.status.clone()),
        &col(|r| r.title.clone()),
        &opt(|r| r.summary.clone()) as &[Option<String>],
        &col(|r| r.body_markdown.clone()),
        &col(|r| r.body_html.clone()),
        &opt(|r| r.cover_image_url.clone()) as &[Option<String>],
        &rows.iter().map(|r| json(serde_json::to_string(&r.tags.0))).collect::<Vec<_>>(),
        &rows.iter().map(|r| r.author_id).collect::<Vec<_>>(),
        &rows.iter().map(|r| json(serde_json::to_string(&r.author.0))).collect::<Vec<_>>(),
        &int(|r| r.reading_time_minutes),
        &int(|r| r.comment_count),
        &int(|r| r.version),
        &time(|r| Some(r.created_at)) as &[Option<DateTime<Utc>>],
        &time(|r| Some(r.updated_at)) as &[Option<DateTime<Utc>>],
        &time(|r| r.published_at) as &[Option<DateTime<Utc>>],
        &time(|r| r.scheduled_at) as &[Option<DateTime<Utc>>],
        &rows.iter().map(|r| r.last_transaction_id).collect::<Vec<_>>(),
        &rows.iter().map(|r| r.last_position).collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// How one post's change moves the published-post counts: the tags it stops and starts counting for, and
/// its author's delta. The live projection and the rebuild's fold both count through this.
pub(crate) struct CountChange {
    pub gone: Vec<TagRef>,
    pub added: Vec<TagRef>,
    pub author_delta: i32,
}

/// `before` and `after` are (published, tags) of the post; `before` is None for a new post.
pub(crate) fn count_change(before: Option<(bool, &[TagRef])>, after: (bool, &[TagRef])) -> CountChange {
    let counted = |(published, tags): (bool, &[TagRef])| if published { tags.to_vec() } else { Vec::new() };
    let old = before.map(counted).unwrap_or_default();
    let new = counted(after);
    CountChange {
        gone: old.iter().filter(|t| !new.iter().any(|n| n.slug == t.slug)).cloned().collect(),
        added: new.iter().filter(|t| !old.iter().any(|o| o.slug == t.slug)).cloned().collect(),
        author_delta: i32::from(after.0) - i32::from(before.is_some_and(|b| b.0)),
    }
}

/// A tag's count change over a run of events; `added` when some event started counting it (the row is
/// then created if missing, as it is on a post's first publication with the tag).
struct TagDelta {
    name: String,
    delta: i32,
    added: bool,
}

/// A run of post events folded in memory from the rows they touch, then written set-based: one read of
/// the rows and their authors, one upsert of the changed rows, one statement each for slug history, tag
/// and author counts, whatever the run's length. The result equals applying the events one by one.
#[derive(Default)]
struct PostRun {
    rows: HashMap<Uuid, PostRow>,
    authors: HashMap<Uuid, AuthorRef>,
    changed: Vec<Uuid>,
    /// Slug history changes: an old slug now pointing at its post (Some), or a slug leaving the history
    /// because its post has it again (None).
    history: BTreeMap<String, Option<Uuid>>,
    tags: BTreeMap<String, TagDelta>,
    author_counts: BTreeMap<Uuid, i32>,
}

impl PostRun {
    async fn load(conn: &mut PgConnection, run: &[Applying<'_>]) -> Result<Self, sqlx::Error> {
        let mut ids: Vec<Uuid> = run.iter().map(|a| a.event.stream_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let rows: HashMap<Uuid, PostRow> = load_rows(&mut *conn, &ids).await?.into_iter().map(|r| (r.id, r)).collect();
        let mut author_ids: Vec<Uuid> = run
            .iter()
            .filter(|a| !rows.contains_key(&a.event.stream_id))
            .filter_map(|a| match &a.decoded {
                DomainEvent::PostDrafted(d) => Some(d.author_id),
                _ => None,
            })
            .collect();
        author_ids.sort_unstable();
        author_ids.dedup();
        let authors = if author_ids.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as!(
                AuthorRef,
                "select id, slug, name, avatar_url from post_authors where id = any($1)",
                &author_ids
            )
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect()
        };
        Ok(PostRun { rows, authors, ..PostRun::default() })
    }

    /// Folds one event into the run, exactly as the projection applies it.
    fn apply(
        &mut self,
        event: &RecordedEvent,
        decoded: &DomainEvent,
        effects: &mut Vec<PostEffect>,
    ) -> Result<(), ProjectionError> {
        let id = event.stream_id;
        let existing = self.rows.get(&id);
        if existing.is_some_and(|r| r.version >= event.version) {
            return Ok(()); // already applied (a rebuild or replay over existing rows)
        }
        let invalid = |reason: String| ProjectionError::Invalid { position: event.global_position, reason };
        let folded = post::apply(existing.map(PostRow::to_domain), id, decoded, event.recorded_at)
            .ok_or_else(|| invalid(format!("{} for post {id}, which has no PostDrafted", event.event_type)))?;
        if folded.version != event.version {
            return Err(invalid(format!(
                "post {id} would be at version {}, event is {}",
                folded.version, event.version
            )));
        }
        let author = match existing {
            Some(r) => r.author.0.clone(),
            None => self
                .authors
                .get(&folded.author_id)
                .cloned()
                .ok_or_else(|| invalid(format!("post {id} names unknown author {}", folded.author_id)))?,
        };
        let body_html = match existing {
            Some(r) if r.body_markdown == folded.body_markdown => r.body_html.clone(),
            _ => render::markdown_to_safe_html(&folded.body_markdown),
        };
        let row = PostRow {
            id,
            slug: folded.slug.clone(),
            status: folded.status.as_str().to_string(),
            title: folded.title.clone(),
            summary: folded.summary.clone(),
            reading_time_minutes: render::reading_time_minutes(&folded.body_markdown),
            body_markdown: folded.body_markdown,
            body_html,
            cover_image_url: folded.cover_image_url,
            tags: Json(tag_refs(&folded.tags)),
            author_id: folded.author_id,
            author: Json(author),
            comment_count: existing.map_or(0, |r| r.comment_count),
            version: folded.version,
            created_at: folded.created_at,
            updated_at: folded.updated_at,
            published_at: folded.published_at,
            scheduled_at: folded.scheduled_at,
            last_transaction_id: event.transaction_id,
            last_position: event.global_position,
        };
        // The history keeps the slugs a post no longer has (its current one is in `posts`).
        if let Some(old) = existing.filter(|r| r.slug != row.slug) {
            self.history.insert(old.slug.clone(), Some(id));
            self.history.insert(row.slug.clone(), None);
        }
        let published = |r: &PostRow| r.status == "published";
        let change =
            count_change(existing.map(|r| (published(r), r.tags.0.as_slice())), (published(&row), &row.tags.0));
        for gone in change.gone {
            self.tags.entry(gone.slug).or_insert(TagDelta { name: gone.name, delta: 0, added: false }).delta -= 1;
        }
        for added in change.added {
            let t = self.tags.entry(added.slug).or_insert(TagDelta { name: added.name, delta: 0, added: true });
            t.delta += 1;
            t.added = true;
        }
        if change.author_delta != 0 {
            *self.author_counts.entry(row.author_id).or_default() += change.author_delta;
        }
        if let Some(old) = existing.filter(|r| r.slug != row.slug) {
            effects.push(PostEffect::SlugRetired {
                slug: old.slug.clone(),
                transaction_id: event.transaction_id,
                position: event.global_position,
            });
        }
        // A post that had no row before is a new draft (or published within this batch): its slug was
        // never public, so no cache entry or list page can hold it. Redis hears of it once it is published.
        if existing.is_some() || published(&row) {
            effects.push(PostEffect::Changed(id));
        }
        self.rows.insert(id, row);
        if !self.changed.contains(&id) {
            self.changed.push(id);
        }
        Ok(())
    }

    async fn write(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let rows: Vec<&PostRow> = self.changed.iter().filter_map(|id| self.rows.get(id)).collect();
        save_rows(&mut *conn, &rows).await?;
        let (mut current, mut slugs, mut ids) = (Vec::new(), Vec::new(), Vec::new());
        for (slug, post) in self.history {
            match post {
                Some(id) => {
                    slugs.push(slug);
                    ids.push(id);
                }
                None => current.push(slug),
            }
        }
        if !current.is_empty() {
            sqlx::query!("delete from slug_history where slug = any($1)", &current).execute(&mut *conn).await?;
        }
        if !slugs.is_empty() {
            sqlx::query!(
                "insert into slug_history (slug, post_id) select * from unnest($1::text[], $2::uuid[])
                 on conflict (slug) do update set post_id = excluded.post_id",
                &slugs,
                &ids
            )
            .execute(&mut *conn)
            .await?;
        }
        let (added, removed): (Vec<_>, Vec<_>) = self.tags.into_iter().partition(|(_, t)| t.added);
        if !added.is_empty() {
            sqlx::query!(
                "insert into tags (slug, name, post_count) select * from unnest($1::text[], $2::text[], $3::int[])
                 on conflict (slug) do update set post_count = tags.post_count + excluded.post_count",
                &added.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
                &added.iter().map(|(_, t)| t.name.clone()).collect::<Vec<_>>(),
                &added.iter().map(|(_, t)| t.delta).collect::<Vec<_>>(),
            )
            .execute(&mut *conn)
            .await?;
        }
        let removed: Vec<_> = removed.into_iter().filter(|(_, t)| t.delta != 0).collect();
        if !removed.is_empty() {
            sqlx::query!(
                "update tags set post_count = post_count + d.delta
                 from unnest($1::text[], $2::int[]) as d(slug, delta) where tags.slug = d.slug",
                &removed.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
                &removed.iter().map(|(_, t)| t.delta).collect::<Vec<_>>(),
            )
            .execute(&mut *conn)
            .await?;
        }
        if !self.author_counts.is_empty() {
            let (ids, deltas): (Vec<Uuid>, Vec<i32>) = self.author_counts.into_iter().unzip();
            sqlx::query!(
                "update post_authors set post_count = post_count + d.delta
                 from unnest($1::uuid[], $2::int[]) as d(id, delta) where post_authors.id = d.id",
                &ids,
                &deltas
            )
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

impl PostsProjection {
    /// Applies a run of post events (no author event among them) set-based.
    async fn apply_post_run(
        &self,
        conn: &mut PgConnection,
        run: &[Applying<'_>],
        effects: &mut Vec<PostEffect>,
    ) -> Result<(), ProjectionError> {
        let mut folded = PostRun::load(&mut *conn, run).await?;
        for a in run {
            a.span.in_scope(|| folded.apply(a.event, &a.decoded, effects))?;
        }
        folded.write(conn).await?;
        Ok(())
    }

    async fn apply_author_event(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
        decoded: &DomainEvent,
        effects: &mut Vec<PostEffect>,
    ) -> Result<(), ProjectionError> {
        let id = event.stream_id;
        let author = match decoded {
            DomainEvent::AuthorRegistered(AuthorRegistered { name, slug, avatar_url, .. }) => {
                let bio = match decoded {
                    DomainEvent::AuthorRegistered(r) => r.bio.clone(),
                    _ => None,
                };
                sqlx::query!(
                    "insert into post_authors (id, slug, name, avatar_url, bio) values ($1, $2, $3, $4, $5)
                     on conflict (id) do update set slug = excluded.slug, name = excluded.name,
                         avatar_url = excluded.avatar_url, bio = excluded.bio",
                    id,
                    slug,
                    name,
                    avatar_url.as_deref(),
                    bio
                )
                .execute(&mut *conn)
                .await?;
                return Ok(());
            }
            DomainEvent::AuthorProfileUpdated(AuthorProfileUpdated { name, slug, avatar_url, .. }) => {
                let Some(mut a) = load_author(&mut *conn, id).await? else {
                    return Err(ProjectionError::Invalid {
                        position: event.global_position,
                        reason: format!("profile update for unknown author {id}"),
                    });
                };
                if let DomainEvent::AuthorProfileUpdated(AuthorProfileUpdated { bio: Some(bio), .. }) = decoded {
                    sqlx::query!("update post_authors set bio = $2 where id = $1", id, bio.as_deref())
                        .execute(&mut *conn)
                        .await?;
                }
                if name.is_none() && slug.is_none() && avatar_url.is_none() {
                    return Ok(()); // nothing a post shows changed
                }
                a.name = name.clone().unwrap_or(a.name);
                a.slug = slug.clone().unwrap_or(a.slug);
                a.avatar_url = avatar_url.clone().unwrap_or(a.avatar_url);
                a
            }
            DomainEvent::AuthorDeactivated(_) => {
                // Off the public directory; their published posts stay as they are.
                sqlx::query!("update post_authors set active = false where id = $1", id).execute(&mut *conn).await?;
                return Ok(());
            }
            _ => return Ok(()),
        };
        sqlx::query!(
            "insert into post_authors (id, slug, name, avatar_url) values ($1, $2, $3, $4)
             on conflict (id) do update set slug = excluded.slug, name = excluded.name, avatar_url = excluded.avatar_url",
            author.id,
            author.slug,
            author.name,
            author.avatar_url
        )
        .execute(&mut *conn)
        .await?;
        // One set-based update for every post of the author, stamped with this event's position.
        let changed = sqlx::query_scalar!(
            "update posts set author = $2, last_transaction_id = $3::bigint::text::xid8, last_position = $4
             where author_id = $1 returning id",
            id,
            Json(&author) as _,
            event.transaction_id,
            event.global_position
        )
        .fetch_all(&mut *conn)
        .await?;
        effects.extend(changed.into_iter().map(PostEffect::Changed));
        Ok(())
    }
}

async fn load_author(conn: &mut PgConnection, id: Uuid) -> Result<Option<AuthorRef>, sqlx::Error> {
    sqlx::query_as!(AuthorRef, "select id, slug, name, avatar_url from post_authors where id = $1", id)
        .fetch_optional(conn)
        .await
}

/// The event types the `posts` projection reads (the rebuild's fold reads the same).
pub const EVENT_TYPES: &[&str] = &["Post%", "AuthorRegistered", "AuthorProfileUpdated", "AuthorDeactivated"];

/// Whether the `posts` projection reads events of this type.
pub fn handles(event_type: &str) -> bool {
    super::matches_types(EVENT_TYPES, event_type)
}

impl Projection for PostsProjection {
    type Effect = PostEffect;

    fn name(&self) -> &'static str {
        "posts"
    }

    fn event_types(&self) -> &'static [&'static str] {
        EVENT_TYPES
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
        decoded: &DomainEvent,
        effects: &mut Vec<PostEffect>,
    ) -> Result<(), ProjectionError> {
        let one = [Applying { event, decoded: decoded.clone(), span: tracing::Span::current() }];
        self.apply_all(conn, &one, effects).await
    }

    /// Runs of post events are folded and written set-based; author events, rare, apply one by one
    /// between them (a rename updates every one of the author's posts in one statement).
    async fn apply_all(
        &self,
        conn: &mut PgConnection,
        batch: &[Applying<'_>],
        effects: &mut Vec<PostEffect>,
    ) -> Result<(), ProjectionError> {
        let mut rest = batch;
        while let Some(first) = rest.first() {
            if first.decoded.is_post_event() {
                let len = rest.iter().position(|a| !a.decoded.is_post_event()).unwrap_or(rest.len());
                self.apply_post_run(&mut *conn, &rest[..len], effects).await?;
                rest = &rest[len..];
            } else {
                self.apply_author_event(&mut *conn, first.event, &first.decoded, effects)
                    .instrument(first.span.clone())
                    .await?;
                rest = &rest[1..];
            }
        }
        Ok(())
    }

    async fn redo_effects(&self, since: LogPosition) -> bool {
        let changed = sqlx::query_scalar!(
            "select id from read.posts where (last_transaction_id, last_position) > ($1::bigint::text::xid8, $2)",
            since.transaction_id,
            since.global_position
        )
        .fetch_all(&self.pool)
        .await;
        let changed = match changed {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot find the posts whose Redis entries to redo");
                return false;
            }
        };
        if !changed.is_empty() {
            tracing::info!(posts = changed.len(), "redoing Redis entries not known to have landed");
        }
        for ids in changed.chunks(1_000) {
            let retired = sqlx::query!(
                r#"select h.slug, p.last_transaction_id::text::bigint as "tx!", p.last_position
                   from read.slug_history h join read.posts p on p.id = h.post_id
                   where p.id = any($1) and h.slug <> p.slug"#,
                ids
            )
            .fetch_all(&self.pool)
            .await;
            let Ok(retired) = retired else { return false };
            let mut effects: Vec<PostEffect> = ids.iter().copied().map(PostEffect::Changed).collect();
            effects.extend(retired.into_iter().map(|r| PostEffect::SlugRetired {
                slug: r.slug,
                transaction_id: r.tx,
                position: r.last_position,
            }));
            if !self.after_commit(effects).await {
                return false;
            }
        }
        true
    }

    async fn after_commit(&self, effects: Vec<PostEffect>) -> bool {
        if effects.is_empty() {
            return true;
        }
        let mut ids: Vec<Uuid> = Vec::new();
        let mut retired: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for e in effects {
            match e {
                PostEffect::Changed(id) if !ids.contains(&id) => ids.push(id),
                PostEffect::Changed(_) => {}
                PostEffect::SlugRetired { slug, transaction_id, position } => {
                    retired.insert(slug, (transaction_id, position));
                }
            }
        }
        let rows = async {
            let mut tx = self.pool.begin().await?;
            crate::runner::set_search_path(&mut tx, crate::runner::LIVE_SCHEMA).await?;
            load_rows(&mut tx, &ids).await
        }
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read back projected posts for Redis; redone later");
                return false;
            }
        };
        let mut writes = Vec::with_capacity(rows.len() + retired.len());
        for (slug, (transaction_id, position)) in retired {
            writes.push(PostWrite { slug, transaction_id, position, entry: None });
        }
        for r in rows {
            let entry = (r.status == "published").then(|| CachedPost {
                transaction_id: r.last_transaction_id,
                position: r.last_position,
                post: r.to_detail(),
            });
            writes.push(PostWrite {
                slug: r.slug.clone(),
                transaction_id: r.last_transaction_id,
                position: r.last_position,
                entry,
            });
        }
        self.redis.write_posts(writes).await
    }
}
