//! The rebuild's second pass: the fold written into the shadow tables set-based — posts with COPY on
//! one connection per core (bodies rendered off the async workers), the rest in unnest batches.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
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

/// Writes a chunk of posts with COPY (text format) into the `posts` table the search path finds.
async fn insert_posts(conn: &mut PgConnection, chunk: &[PostRow]) -> Result<(), sqlx::Error> {
    // Sized for the text (escapes add a little), so the buffer is not copied again as it grows.
    let text: usize = chunk.iter().map(|p| p.body_markdown.len() + p.body_html.len() + p.title.len()).sum();
    let mut rows = String::with_capacity(text + text / 8 + chunk.len() * 600);
    for p in chunk {
        let owned = |v: String| Some(Cow::Owned(v));
        fn borrowed(v: &str) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(v))
        }
        let fields: [Option<Cow<'_, str>>; 21] = [
            owned(p.id.to_string()),
            borrowed(&p.slug),
            borrowed(&p.status),
            borrowed(&p.title),
            p.summary.as_deref().map(Cow::Borrowed),
            borrowed(&p.body_markdown),
            borrowed(&p.body_html),
            p.cover_image_url.as_deref().map(Cow::Borrowed),
            owned(serde_json::to_string(&p.tags.0).unwrap_or_default()),
            owned(p.author_id.to_string()),
            owned(serde_json::to_string(&p.author.0).unwrap_or_default()),
            owned(p.reading_time_minutes.to_string()),
            owned(p.comment_count.to_string()),
            owned(p.version.to_string()),
            owned(copy_time(p.created_at)),
            owned(copy_time(p.updated_at)),
            p.published_at.map(copy_time).map(Cow::Owned),
            p.scheduled_at.map(copy_time).map(Cow::Owned),
            owned(p.last_transaction_id.to_string()),
            owned(p.last_position.to_string()),
            p.cover_media_id.map(|m| Cow::Owned(m.to_string())),
        ];
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                rows.push('\t');
            }
            match field {
                None => rows.push_str("\\N"),
                Some(v) => copy_escape(&mut rows, v),
            }
        }
        rows.push('\n');
    }
    let mut copy = conn
        .copy_in_raw(
            "copy posts (id, slug, status, title, summary, body_markdown, body_html, cover_image_url, tags, author_id,
                         author, reading_time_minutes, comment_count, version, created_at, updated_at, published_at,
                         scheduled_at, last_transaction_id, last_position, cover_media_id) from stdin",
        )
        .await?;
    copy.send(rows.as_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// A timestamp as PostgreSQL stores it: microseconds, truncated as sqlx's binary encoding truncates
/// (PostgreSQL would round the nanoseconds of a longer text form).
fn copy_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Appends `value` in COPY text format: backslash, tab, newline and carriage return escaped.
fn copy_escape(out: &mut String, value: &str) {
    let mut plain = 0;
    for (i, b) in value.bytes().enumerate() {
        let escaped = match b {
            b'\\' => "\\\\",
            b'\t' => "\\t",
            b'\n' => "\\n",
            b'\r' => "\\r",
            _ => continue,
        };
        // ASCII bytes never occur inside a multi-byte character: `i` is a character boundary.
        out.push_str(&value[plain..i]);
        out.push_str(escaped);
        plain = i + 1;
    }
    out.push_str(&value[plain..]);
}

#[cfg(test)]
mod tests {
    use super::copy_escape;

    #[test]
    fn copy_escape_escapes_only_copy_specials_and_keeps_multibyte_text_whole() {
        let mut out = String::from("x\t");
        copy_escape(&mut out, "é\\\tñ\n—\r");
        assert_eq!(out, "x\té\\\\\\tñ\\n—\\r");
        let mut plain = String::new();
        copy_escape(&mut plain, "Éclair — no specials");
        assert_eq!(plain, "Éclair — no specials");
    }
}
