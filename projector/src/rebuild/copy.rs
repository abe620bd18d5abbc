//! The rebuild's second pass: the fold written into the shadow tables set-based — posts with binary COPY on
//! one connection per core (bodies rendered off the async workers), the rest in unnest batches.

use sqlx::encode::{Encode, IsNull};
use sqlx::postgres::{PgArgumentBuffer, Postgres};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::fold::Folded;
use super::shadow::parallelism;
use super::{Progress, WRITE_CHUNK};
use crate::projections::posts::{FoldedAuthor, FoldedPost, PostRow, TagDelta};
use shared::store::db::begin_derived;

/// Writes the fold into the shadow tables (posts on several connections), then the rest and the shadow checkpoint.
/// Markdown is rendered here, once per post.
pub(super) async fn write_fold(
    pool: &PgPool,
    shadow: &str,
    name: &str,
    folded: Folded,
    progress: &dyn Progress,
) -> Result<(), sqlx::Error> {
    let Folded { fold, at, .. } = folded;
    // Posts on one connection per core: PostgreSQL computes (or takes from live) each row's search vector.
    let writers = parallelism();
    let mut parts: Vec<Vec<Vec<FoldedPost>>> = (0..writers).map(|_| Vec::new()).collect();
    let mut posts = fold.posts.into_values().peekable();
    let mut i = 0;
    while posts.peek().is_some() {
        parts[i % writers].push(posts.by_ref().take(WRITE_CHUNK).collect());
        i += 1;
    }
    let write_part = |chunks: Vec<Vec<FoldedPost>>| async move {
        let mut tx = begin_derived(pool, shadow).await?;
        for chunk in chunks {
            let n = chunk.len() as u64;
            let rows = tokio::task::spawn_blocking(move || chunk.into_iter().map(PostRow::from).collect::<Vec<_>>())
                .await
                .map_err(|e| sqlx::Error::Protocol(format!("rendering failed: {e}")))?;
            insert_posts(&mut tx, &rows).await?;
            progress.advance(n);
        }
        tx.commit().await
    };
    futures::future::try_join_all(parts.into_iter().map(write_part)).await?;

    let mut tx = begin_derived(pool, shadow).await?;
    let authors: Vec<FoldedAuthor> = fold.authors.into_values().collect();
    let count = |a: &FoldedAuthor| fold.author_counts.get(&a.author.id).copied().unwrap_or(0);
    for chunk in authors.chunks(WRITE_CHUNK) {
        sqlx::query!(
            "insert into post_authors (id, slug, name, avatar_url, bio, post_count, active)
             select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::bool[])",
            &chunk.iter().map(|a| a.author.id).collect::<Vec<_>>(),
            &chunk.iter().map(|a| a.author.slug.clone()).collect::<Vec<_>>(),
            &chunk.iter().map(|a| a.author.name.clone()).collect::<Vec<_>>(),
            &chunk.iter().map(|a| a.author.avatar_url.clone()).collect::<Vec<_>>() as _,
            &chunk.iter().map(|a| a.bio.clone()).collect::<Vec<_>>() as _,
            &chunk.iter().map(count).collect::<Vec<_>>(),
            &chunk.iter().map(|a| a.active).collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }
    // From an empty start every tag's delta is its count.
    let tags: Vec<(String, TagDelta)> = fold.tags.into_iter().collect();
    for chunk in tags.chunks(WRITE_CHUNK) {
        sqlx::query!(
            "insert into tags (slug, name, post_count) select * from unnest($1::text[], $2::text[], $3::int[])",
            &chunk.iter().map(|t| t.0.clone()).collect::<Vec<_>>(),
            &chunk.iter().map(|t| t.1.name.clone()).collect::<Vec<_>>(),
            &chunk.iter().map(|t| t.1.delta).collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }
    let history: Vec<(String, Uuid)> = fold.history.into_iter().filter_map(|(slug, id)| Some((slug, id?))).collect();
    for chunk in history.chunks(WRITE_CHUNK) {
        sqlx::query!(
            "insert into slug_history (slug, post_id) select * from unnest($1::text[], $2::uuid[])",
            &chunk.iter().map(|h| h.0.clone()).collect::<Vec<_>>(),
            &chunk.iter().map(|h| h.1).collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        "insert into checkpoints (name, transaction_id, global_position) values ($1, $2::bigint::text::xid8, $3)",
        name,
        at.transaction_id,
        at.global_position
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Writes a chunk of posts with binary COPY into the `posts` table the search path finds. Each value is
/// encoded by sqlx's own `Encode`, as the live projection's binds are: the same bytes reach PostgreSQL, and
/// nothing is escaped or parsed as text on either side.
async fn insert_posts(conn: &mut PgConnection, chunk: &[PostRow]) -> Result<(), sqlx::Error> {
    let text: usize = chunk.iter().map(|p| p.body_markdown.len() + p.body_html.len() + p.title.len()).sum();
    let mut buf = PgArgumentBuffer::default();
    buf.reserve(text + chunk.len() * 600);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&[0; 8]); // no flags, no header extension
    for p in chunk {
        buf.extend_from_slice(&21i16.to_be_bytes());
        field(&mut buf, &p.id)?;
        field(&mut buf, &p.slug)?;
        field(&mut buf, &p.status)?;
        field(&mut buf, &p.title)?;
        field(&mut buf, &p.summary)?;
        field(&mut buf, &p.body_markdown)?;
        field(&mut buf, &p.body_html)?;
        field(&mut buf, &p.cover_image_url)?;
        field(&mut buf, &p.tags)?;
        field(&mut buf, &p.author_id)?;
        field(&mut buf, &p.author)?;
        field(&mut buf, &p.reading_time_minutes)?;
        field(&mut buf, &p.comment_count)?;
        field(&mut buf, &p.version)?;
        field(&mut buf, &p.created_at)?;
        field(&mut buf, &p.updated_at)?;
        field(&mut buf, &p.published_at)?;
        field(&mut buf, &p.scheduled_at)?;
        field(&mut buf, &p.last_transaction_id)?; // xid8 is received as 8 bytes, as a bigint is sent
        field(&mut buf, &p.last_position)?;
        field(&mut buf, &p.cover_media_id)?;
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    let mut copy = conn
        .copy_in_raw(
            "copy posts (id, slug, status, title, summary, body_markdown, body_html, cover_image_url, tags, author_id,
                         author, reading_time_minutes, comment_count, version, created_at, updated_at, published_at,
                         scheduled_at, last_transaction_id, last_position, cover_media_id) from stdin (format binary)",
        )
        .await?;
    copy.send(buf.as_slice()).await?;
    copy.finish().await?;
    Ok(())
}

/// Appends one field of a binary COPY row: its length (-1 for NULL), then `value` as sqlx encodes it.
fn field<'q, T: Encode<'q, Postgres>>(buf: &mut PgArgumentBuffer, value: &T) -> Result<(), sqlx::Error> {
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    let len = match value.encode_by_ref(buf).map_err(sqlx::Error::Encode)? {
        IsNull::Yes => {
            buf.truncate(at + 4);
            -1
        }
        IsNull::No => i32::try_from(buf.len() - at - 4).map_err(|e| sqlx::Error::Encode(Box::new(e)))?,
    };
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}
