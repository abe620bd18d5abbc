//! The live side of the `posts` projection: a batch's rows read into a fold, and the fold's changes
//! written back set-based — one read of the rows and authors, one statement per kind of change,
//! whatever the batch's length.

use std::collections::HashSet;

use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::fold::PostsFold;
use super::rows::{load_authors, load_rows, save_rows, PostRow};
use super::PostEffect;
use crate::projections::Applying;
use shared::domain::DomainEvent;

/// A fold over the rows and authors `batch` touches.
pub async fn load(conn: &mut PgConnection, batch: &[Applying<'_>]) -> Result<PostsFold, sqlx::Error> {
    let mut post_ids: Vec<Uuid> =
        batch.iter().filter(|a| a.decoded.is_post_event()).map(|a| a.event.stream_id).collect();
    post_ids.sort_unstable();
    post_ids.dedup();
    let posts: Vec<_> = load_rows(&mut *conn, &post_ids).await?.into_iter().map(PostRow::into_folded).collect();
    let mut author_ids: Vec<Uuid> = batch
        .iter()
        .filter_map(|a| match &a.decoded {
            DomainEvent::PostDrafted(d) if !posts.iter().any(|p| p.post.id == a.event.stream_id) => Some(d.author_id),
            e if e.is_post_event() => None,
            _ => Some(a.event.stream_id),
        })
        .collect();
    author_ids.sort_unstable();
    author_ids.dedup();
    let authors = load_authors(&mut *conn, &author_ids).await?;
    Ok(PostsFold::with(posts, authors))
}

/// Writes what changed in `fold`; the posts an author's rename reached in the table alone are queued as effects.
pub async fn write(
    mut fold: PostsFold,
    conn: &mut PgConnection,
    effects: &mut Vec<PostEffect>,
) -> Result<(), sqlx::Error> {
    let authors: Vec<_> = fold.changed_authors.iter().filter_map(|id| fold.authors.get(id)).collect();
    if !authors.is_empty() {
        sqlx::query!(
            "insert into post_authors (id, slug, name, avatar_url, bio, active)
             select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[])
             on conflict (id) do update set slug = excluded.slug, name = excluded.name,
                 avatar_url = excluded.avatar_url, bio = excluded.bio, active = excluded.active",
            &authors.iter().map(|a| a.author.id).collect::<Vec<_>>(),
            &authors.iter().map(|a| a.author.slug.clone()).collect::<Vec<_>>(),
            &authors.iter().map(|a| a.author.name.clone()).collect::<Vec<_>>(),
            &authors.iter().map(|a| a.author.avatar_url.clone()).collect::<Vec<_>>() as &[Option<String>],
            &authors.iter().map(|a| a.bio.clone()).collect::<Vec<_>>() as &[Option<String>],
            &authors.iter().map(|a| a.active).collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await?;
    }
    // A rename reaches the author's posts the fold does not hold in one statement each (it holds the
    // rest, renamed in memory and written below).
    for (author_id, at) in &fold.renamed {
        let Some(author) = fold.authors.get(author_id) else { continue };
        let held: Vec<Uuid> =
            fold.posts.values().filter(|p| p.post.author_id == *author_id).map(|p| p.post.id).collect();
        let changed = sqlx::query_scalar!(
            "update posts set author = $2, last_transaction_id = $3::bigint::text::xid8, last_position = $4
             where author_id = $1 and id <> all($5) returning id",
            author_id,
            Json(&author.author) as _,
            at.transaction_id,
            at.global_position,
            &held
        )
        .fetch_all(&mut *conn)
        .await?;
        effects.extend(changed.into_iter().map(PostEffect::Changed));
    }
    let rows: Vec<PostRow> =
        fold.changed_posts.iter().filter_map(|id| fold.posts.remove(id)).map(PostRow::from).collect();
    let new: Vec<Uuid> = rows.iter().map(|r| r.id).filter(|id| !fold.loaded.contains(id)).collect();
    let mut saved = save_rows(&mut *conn, &rows, new).await?;
    // The rows the readers are to hear of go to Redis as written here — with what the table holds under
    // this transaction's row lock: the comment count, the timestamps to the microsecond — instead of being
    // read back after commit.
    let written: HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
    let heard: HashSet<Uuid> = effects
        .iter()
        .filter_map(|e| match e {
            PostEffect::Changed(id) if written.contains(id) => Some(*id),
            _ => None,
        })
        .collect();
    effects.retain(|e| !matches!(e, PostEffect::Changed(id) if heard.contains(id)));
    for mut row in rows.into_iter().filter(|r| heard.contains(&r.id)) {
        if let Some(saved) = saved.remove(&row.id) {
            saved.apply(&mut row);
        }
        effects.push(PostEffect::Written(Box::new(row)));
    }
    let (mut current, mut slugs, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for (slug, post) in fold.history {
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
    let (added, removed): (Vec<_>, Vec<_>) = fold.tags.into_iter().partition(|(_, t)| t.added);
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
    let counts: Vec<(Uuid, i32)> = fold.author_counts.into_iter().filter(|(_, d)| *d != 0).collect();
    if !counts.is_empty() {
        let (ids, deltas): (Vec<Uuid>, Vec<i32>) = counts.into_iter().unzip();
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
