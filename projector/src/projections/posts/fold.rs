//! The `posts` projection's fold: post and author events applied in memory to the posts, authors, tag
//! counts and slug history they touch. The live projection folds each batch through it and writes the
//! changes; a rebuild folds the whole log through it and writes everything — one fold, so a rebuild
//! cannot disagree with live by construction.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use shared::domain::events::{AuthorProfileUpdated, AuthorRegistered};
use shared::domain::post::{self, Post, PostStatus};
use shared::domain::DomainEvent;
use shared::read::model::{tag_refs, AuthorRef, TagRef};
use shared::read::render;
use shared::store::event_store::RecordedEvent;
use shared::store::position::LogPosition;
use uuid::Uuid;

use super::PostEffect;
use crate::projections::ProjectionError;

/// A post's body as served: HTML and reading time, rendered from its Markdown.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body_html: String,
    pub reading_time_minutes: i32,
}

impl Rendered {
    pub fn of(markdown: &str) -> Self {
        Rendered {
            body_html: render::markdown_to_safe_html(markdown),
            reading_time_minutes: render::reading_time_minutes(markdown),
        }
    }
}

/// A post as its row holds it: the domain state (tags as the row keeps them) and what the row denormalises.
#[derive(Debug, Clone)]
pub struct FoldedPost {
    pub post: Post,
    pub author: AuthorRef,
    /// Kept by the `comments` projection; carried along, never changed here.
    pub comment_count: i32,
    /// The last event applied to the row.
    pub last: LogPosition,
    /// None when the body changed since it was last rendered (rendered when the row is written).
    pub rendered: Option<Rendered>,
}

impl FoldedPost {
    pub fn published(&self) -> bool {
        self.post.status == PostStatus::Published
    }

    /// The body as served, rendered now if it changed.
    pub fn rendered(&mut self) -> &Rendered {
        self.rendered.get_or_insert_with(|| Rendered::of(&self.post.body_markdown))
    }
}

/// An author as `post_authors` holds them (the published-post count is kept as deltas, see [`PostsFold`]).
#[derive(Debug, Clone)]
pub struct FoldedAuthor {
    pub author: AuthorRef,
    pub bio: Option<String>,
    pub active: bool,
}

/// A tag's published-post count change; `added` when some event started counting it (its row is then
/// created if missing, as it is on a post's first publication with the tag).
#[derive(Debug, Clone)]
pub struct TagDelta {
    pub name: String,
    pub delta: i32,
    pub added: bool,
}

/// The fold's state and what changed in it. Counts are deltas from what the fold started with: from an
/// empty start (a rebuild) they are the counts.
#[derive(Default)]
pub struct PostsFold {
    pub posts: HashMap<Uuid, FoldedPost>,
    /// The posts whose rows the fold started from: any other it writes is new to the table.
    pub loaded: HashSet<Uuid>,
    pub authors: HashMap<Uuid, FoldedAuthor>,
    /// Each author's posts the fold holds.
    by_author: HashMap<Uuid, Vec<Uuid>>,
    pub changed_posts: BTreeSet<Uuid>,
    pub changed_authors: BTreeSet<Uuid>,
    /// Authors whose name, slug or avatar changed, with the last such event: the posts of theirs that the
    /// fold does not hold must take the new author too.
    pub renamed: BTreeMap<Uuid, LogPosition>,
    /// Slug history changes: an old slug now pointing at its post (Some), or a slug leaving the history
    /// because its post has it again (None).
    pub history: BTreeMap<String, Option<Uuid>>,
    pub tags: BTreeMap<String, TagDelta>,
    pub author_counts: BTreeMap<Uuid, i32>,
}

impl PostsFold {
    /// A fold that starts from these rows (the live projection's, loaded for a batch).
    pub fn with(posts: Vec<FoldedPost>, authors: Vec<FoldedAuthor>) -> Self {
        let mut fold = PostsFold::default();
        for p in posts {
            fold.loaded.insert(p.post.id);
            fold.by_author.entry(p.post.author_id).or_default().push(p.post.id);
            fold.posts.insert(p.post.id, p);
        }
        fold.authors = authors.into_iter().map(|a| (a.author.id, a)).collect();
        fold
    }

    /// Applies one event (`recorded`, decoded as `event`), queuing the after-commit effects it has.
    pub fn apply(
        &mut self,
        recorded: &RecordedEvent,
        event: &DomainEvent,
        effects: &mut Vec<PostEffect>,
    ) -> Result<(), ProjectionError> {
        let invalid = |reason: String| ProjectionError::Invalid { position: recorded.global_position, reason };
        let (id, at) = (recorded.stream_id, recorded.log_position());
        match event {
            DomainEvent::AuthorRegistered(AuthorRegistered { name, slug, avatar_url, bio, .. }) => {
                let author = AuthorRef { id, slug: slug.clone(), name: name.clone(), avatar_url: avatar_url.clone() };
                let entry =
                    self.authors.entry(id).or_insert(FoldedAuthor { author: author.clone(), bio: None, active: true });
                entry.author = author;
                entry.bio = bio.clone();
                self.changed_authors.insert(id);
                Ok(())
            }
            DomainEvent::AuthorProfileUpdated(AuthorProfileUpdated { name, slug, avatar_url, bio, .. }) => {
                let a = self
                    .authors
                    .get_mut(&id)
                    .ok_or_else(|| invalid(format!("profile update for unknown author {id}")))?;
                if let Some(bio) = bio {
                    a.bio = bio.clone();
                }
                self.changed_authors.insert(id);
                if name.is_none() && slug.is_none() && avatar_url.is_none() {
                    return Ok(()); // nothing a post shows changed
                }
                a.author.name = name.clone().unwrap_or_else(|| a.author.name.clone());
                a.author.slug = slug.clone().unwrap_or_else(|| a.author.slug.clone());
                a.author.avatar_url = avatar_url.clone().unwrap_or_else(|| a.author.avatar_url.clone());
                for post_id in self.by_author.get(&id).into_iter().flatten() {
                    if let Some(p) = self.posts.get_mut(post_id) {
                        p.author = a.author.clone();
                        p.last = at;
                        self.changed_posts.insert(*post_id);
                        effects.push(PostEffect::Changed(*post_id));
                    }
                }
                self.renamed.insert(id, at);
                Ok(())
            }
            DomainEvent::AuthorDeactivated(_) => {
                // Off the public directory; their published posts stay as they are. An author without a
                // row has nothing to hide.
                if let Some(a) = self.authors.get_mut(&id) {
                    a.active = false;
                    self.changed_authors.insert(id);
                }
                Ok(())
            }
            e if e.is_post_event() => self.apply_post(recorded, event, effects).map_err(invalid),
            _ => Ok(()),
        }
    }

    fn apply_post(
        &mut self,
        recorded: &RecordedEvent,
        event: &DomainEvent,
        effects: &mut Vec<PostEffect>,
    ) -> Result<(), String> {
        let (id, version, at) = (recorded.stream_id, recorded.version, recorded.log_position());
        if self.posts.get(&id).is_some_and(|p| p.post.version >= version) {
            return Ok(()); // already applied (a rebuild's catch-up or a replay over existing rows)
        }
        let existing = self.posts.remove(&id);
        let mut folded = post::apply(existing.as_ref().map(|p| p.post.clone()), id, event, recorded.recorded_at)
            .ok_or_else(|| format!("{} for post {id}, which has no PostDrafted", recorded.event_type))?;
        if folded.version != version {
            return Err(format!("post {id} would be at version {}, event is {version}", folded.version));
        }
        // The row keeps tags as {slug, name}: names without a slug do not survive.
        let tags = tag_refs(&folded.tags);
        folded.tags = tags.iter().map(|t| t.name.clone()).collect();
        let (author, comment_count, rendered) = match existing.as_ref() {
            Some(p) => {
                let same_body = p.post.body_markdown == folded.body_markdown;
                (p.author.clone(), p.comment_count, p.rendered.clone().filter(|_| same_body))
            }
            None => {
                let author = self.authors.get(&folded.author_id).map(|a| a.author.clone());
                let author = author.ok_or_else(|| format!("post {id} names unknown author {}", folded.author_id))?;
                self.by_author.entry(folded.author_id).or_default().push(id);
                (author, 0, None)
            }
        };
        let row = FoldedPost { post: folded, author, comment_count, last: at, rendered };
        if let Some(old) = existing.as_ref().filter(|p| p.post.slug != row.post.slug) {
            self.history.insert(old.post.slug.clone(), Some(id));
            self.history.insert(row.post.slug.clone(), None);
            effects.push(PostEffect::SlugRetired {
                slug: old.post.slug.clone(),
                transaction_id: at.transaction_id,
                position: at.global_position,
            });
        }
        let before = existing.as_ref().map(|p| (p.published(), tag_refs(&p.post.tags)));
        self.count(
            before.as_ref().map(|(published, tags)| (*published, tags.as_slice())),
            (row.published(), &tags),
            row.post.author_id,
        );
        // A post that had no row before is a new draft (or published within this fold): its slug was
        // never public, so no cache entry or list page can hold it. Redis hears of it once it is published.
        if existing.is_some() || row.published() {
            effects.push(PostEffect::Changed(id));
        }
        self.posts.insert(id, row);
        self.changed_posts.insert(id);
        Ok(())
    }

    /// Moves the tag and author published-post counts by one post's change; `before` and `after` are
    /// (published, tags) of the post, `before` None for a new post.
    fn count(&mut self, before: Option<(bool, &[TagRef])>, after: (bool, &[TagRef]), author: Uuid) {
        let counted = |(published, tags): (bool, &[TagRef])| if published { tags.to_vec() } else { Vec::new() };
        let old = before.map(counted).unwrap_or_default();
        let new = counted(after);
        for gone in old.iter().filter(|t| !new.iter().any(|n| n.slug == t.slug)) {
            let t = self.tags.entry(gone.slug.clone());
            t.or_insert(TagDelta { name: gone.name.clone(), delta: 0, added: false }).delta -= 1;
        }
        for added in new.iter().filter(|t| !old.iter().any(|o| o.slug == t.slug)) {
            let t = self.tags.entry(added.slug.clone()).or_insert(TagDelta {
                name: added.name.clone(),
                delta: 0,
                added: true,
            });
            t.delta += 1;
            t.added = true;
        }
        let author_delta = i32::from(after.0) - i32::from(before.is_some_and(|b| b.0));
        if author_delta != 0 {
            *self.author_counts.entry(author).or_default() += author_delta;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::events::{Empty, PostDrafted, PostPublished};
    use shared::domain::role::Role;
    use sqlx::types::Json;

    /// `event` as stored at `position` (its transaction numbered alike).
    fn recorded(stream_id: Uuid, version: i32, position: i64, event: &DomainEvent) -> RecordedEvent {
        RecordedEvent {
            global_position: position,
            transaction_id: position,
            event_id: Uuid::now_v7(),
            stream_id,
            stream_type: String::new(),
            version,
            event_type: event.event_type().to_string(),
            schema_version: 1,
            payload: Json(event.payload_json()),
            metadata: serde_json::Value::Null,
            recorded_at: chrono::Utc::now(),
        }
    }

    /// Feeds `events` (stream id, version, event) through `fold` at consecutive positions.
    fn feed(fold: &mut PostsFold, events: Vec<(Uuid, i32, DomainEvent)>) -> Vec<PostEffect> {
        let mut effects = Vec::new();
        for (n, (stream_id, version, event)) in events.into_iter().enumerate() {
            let recorded = recorded(stream_id, version, n as i64 + 1, &event);
            fold.apply(&recorded, &event, &mut effects).unwrap_or_else(|e| panic!("{e}"));
        }
        effects
    }

    fn registered(name: &str) -> DomainEvent {
        DomainEvent::AuthorRegistered(AuthorRegistered {
            email: "a@example.com".into(),
            name: name.into(),
            slug: name.to_lowercase(),
            role: Role::Author,
            bio: None,
            avatar_url: None,
        })
    }

    fn drafted(author_id: Uuid, tags: &[&str]) -> DomainEvent {
        DomainEvent::PostDrafted(PostDrafted {
            author_id,
            title: "Title".into(),
            slug: "title".into(),
            body_markdown: "Body".into(),
            summary: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            cover_image_url: None,
            cover_media_id: None,
        })
    }

    #[test]
    fn a_rename_reaches_a_post_drafted_earlier_in_the_same_fold_and_is_left_for_the_rest_of_the_table() {
        let (author, post) = (Uuid::now_v7(), Uuid::now_v7());
        let rename = DomainEvent::AuthorProfileUpdated(AuthorProfileUpdated {
            name: Some("Renamed".into()),
            ..AuthorProfileUpdated::default()
        });
        let mut fold = PostsFold::default();
        feed(&mut fold, vec![(author, 1, registered("Ada")), (post, 1, drafted(author, &[])), (author, 2, rename)]);
        assert_eq!(fold.posts[&post].author.name, "Renamed");
        assert_eq!(fold.posts[&post].last.global_position, 3, "the row is stamped with the rename");
        assert_eq!(fold.renamed.get(&author).map(|at| at.global_position), Some(3));
    }

    #[test]
    fn publishing_then_unpublishing_counts_a_tag_once_and_takes_it_back() {
        let (author, post) = (Uuid::now_v7(), Uuid::now_v7());
        let mut fold = PostsFold::default();
        let published = DomainEvent::PostPublished(PostPublished { published_at: chrono::Utc::now() });
        let effects = feed(
            &mut fold,
            vec![(author, 1, registered("Bo")), (post, 1, drafted(author, &["Rust"])), (post, 2, published.clone())],
        );
        assert_eq!(fold.tags["rust"].delta, 1);
        assert_eq!(fold.author_counts[&author], 1);
        assert!(matches!(effects.as_slice(), [PostEffect::Changed(id)] if *id == post), "{effects:?}");
        feed(&mut fold, vec![(post, 3, DomainEvent::PostUnpublished(Empty {}))]);
        assert_eq!((fold.tags["rust"].delta, fold.tags["rust"].added), (0, true), "the tag row stays, at zero");
        assert_eq!(fold.author_counts[&author], 0);
    }

    #[test]
    fn an_event_already_applied_is_passed_by_and_a_gap_in_versions_halts() {
        let (author, post) = (Uuid::now_v7(), Uuid::now_v7());
        let mut fold = PostsFold::default();
        feed(&mut fold, vec![(author, 1, registered("Cy")), (post, 1, drafted(author, &[]))]);
        let again = feed(&mut fold, vec![(post, 1, drafted(author, &[]))]);
        assert!(again.is_empty());
        let recorded = recorded(post, 5, 9, &DomainEvent::PostDeleted(Empty {}));
        let err = fold.apply(&recorded, &DomainEvent::PostDeleted(Empty {}), &mut Vec::new());
        assert!(matches!(err, Err(ProjectionError::Invalid { position: 9, .. })), "{err:?}");
    }
}
