//! The post aggregate: `decide` turns a command into events against the current state (pure, no I/O);
//! `apply` folds one event into the state and never decides anything.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::events::{DomainEvent, Empty, PostDrafted, PostEdited, PostPublished, PostScheduleCancelled, PostScheduled};
use super::role::Role;
use super::slug::Slug;
use super::values::{BodyMarkdown, HttpUrl, Summary, Title};
use super::DomainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PostStatus {
    Draft,
    Scheduled,
    Published,
    Deleted,
}

impl PostStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PostStatus::Draft => "draft",
            PostStatus::Scheduled => "scheduled",
            PostStatus::Published => "published",
            PostStatus::Deleted => "deleted",
        }
    }
}

/// A post as folded from its stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Post {
    pub id: Uuid,
    pub author_id: Uuid,
    pub version: i32,
    pub status: PostStatus,
    pub title: String,
    pub slug: String,
    pub body_markdown: String,
    pub summary: Option<String>,
    pub tags: Vec<String>,
    pub cover_image_url: Option<String>,
    /// An uploaded image as the cover (its variants are served for it).
    pub cover_media_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Published at least once (the public may have seen it): contributors may not delete or restore it.
    pub ever_published: bool,
    /// While scheduled: who scheduled it.
    pub scheduled_by: Option<Uuid>,
}

/// The author who scheduled a publish, as they are when it falls due (None: no such author any more).
#[derive(Debug, Clone, Copy)]
pub struct Requester {
    pub actor: Actor,
    pub active: bool,
}

/// Who is acting: the authenticated author and their role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub id: Uuid,
    pub role: Role,
}

#[derive(Debug, Clone)]
pub struct DraftPost {
    pub author_id: Uuid,
    pub title: Title,
    /// Resolved by the caller against the slug reservations.
    pub slug: Slug,
    pub body_markdown: BodyMarkdown,
    pub summary: Option<Summary>,
    pub tags: Vec<String>,
    pub cover_image_url: Option<HttpUrl>,
    /// Checked by the caller to name media that exists.
    pub cover_media_id: Option<Uuid>,
}

/// A partial edit; `None` leaves a field alone, `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct EditPost {
    pub title: Option<Title>,
    pub slug: Option<Slug>,
    pub body_markdown: Option<BodyMarkdown>,
    pub summary: Option<Option<Summary>>,
    pub tags: Option<Vec<String>>,
    pub cover_image_url: Option<Option<HttpUrl>>,
    pub cover_media_id: Option<Option<Uuid>>,
}

#[derive(Debug, Clone)]
pub enum PostCommand {
    Draft(DraftPost),
    Edit(EditPost),
    /// Publish now (`at` absent or not in the future) or schedule for `at`.
    Publish {
        at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    },
    /// Publish a scheduled post whose time has come (the scheduler's command) — or cancel the schedule
    /// when the author who asked for it may no longer publish the post.
    PublishDue {
        requester: Option<Requester>,
    },
    Unpublish,
    Delete,
    Restore,
}

/// Decides the events for `command` given the folded `state` (None: the stream does not exist).
pub fn decide(state: Option<&Post>, actor: Actor, command: PostCommand) -> Result<Vec<DomainEvent>, DomainError> {
    let post = match (state, &command) {
        (None, PostCommand::Draft(d)) => {
            if d.author_id != actor.id && !actor.role.acts_on_all_posts() {
                return Err(DomainError::Forbidden("only editors may draft posts for other authors"));
            }
            return Ok(vec![DomainEvent::PostDrafted(PostDrafted {
                author_id: d.author_id,
                title: d.title.as_str().to_string(),
                slug: d.slug.as_str().to_string(),
                body_markdown: d.body_markdown.as_str().to_string(),
                summary: d.summary.as_ref().map(|s| s.as_str().to_string()),
                tags: d.tags.clone(),
                cover_image_url: d.cover_image_url.as_ref().map(|u| u.as_str().to_string()),
                cover_media_id: d.cover_media_id,
            })]);
        }
        (Some(_), PostCommand::Draft(_)) => return Err(DomainError::InvalidTransition("post already exists".into())),
        (None, _) => return Err(DomainError::NotFound("post")),
        (Some(p), _) => p,
    };
    authorize(post, actor, &command)?;
    let invalid =
        |what: &str| Err(DomainError::InvalidTransition(format!("cannot {what} a {} post", post.status.as_str())));
    let event = match command {
        PostCommand::Draft(_) => return invalid("draft"),
        PostCommand::Edit(edit) => {
            if post.status == PostStatus::Deleted {
                return invalid("edit");
            }
            DomainEvent::PostEdited(PostEdited {
                title: edit.title.map(Title::into_string),
                slug: edit.slug.map(Slug::into_string).filter(|s| *s != post.slug),
                body_markdown: edit.body_markdown.map(BodyMarkdown::into_string),
                summary: edit.summary.map(|s| s.map(Summary::into_string)),
                tags: edit.tags,
                cover_image_url: edit.cover_image_url.map(|u| u.map(HttpUrl::into_string)),
                cover_media_id: edit.cover_media_id,
            })
        }
        PostCommand::Publish { at, now } => match post.status {
            PostStatus::Draft | PostStatus::Scheduled => match at {
                Some(at) if at > now => DomainEvent::PostScheduled(PostScheduled { at, requested_by: Some(actor.id) }),
                _ => DomainEvent::PostPublished(PostPublished { published_at: now }),
            },
            _ => return invalid("publish"),
        },
        PostCommand::PublishDue { requester } => match (post.status, post.scheduled_at) {
            (PostStatus::Scheduled, Some(at)) => match refusal(post, requester) {
                None => DomainEvent::PostPublished(PostPublished { published_at: at }),
                Some(reason) => DomainEvent::PostScheduleCancelled(PostScheduleCancelled { reason: reason.into() }),
            },
            _ => return invalid("publish on schedule"),
        },
        PostCommand::Unpublish => match post.status {
            PostStatus::Published | PostStatus::Scheduled => DomainEvent::PostUnpublished(Empty {}),
            _ => return invalid("unpublish"),
        },
        PostCommand::Delete => match post.status {
            PostStatus::Deleted => return invalid("delete"),
            _ => DomainEvent::PostDeleted(Empty {}),
        },
        PostCommand::Restore => match post.status {
            PostStatus::Deleted => DomainEvent::PostRestored(Empty {}),
            _ => return invalid("restore"),
        },
    };
    Ok(vec![event])
}

/// Why the author who scheduled `post` may not have it published now, if they may not.
fn refusal(post: &Post, requester: Option<Requester>) -> Option<&'static str> {
    let Some(requester) = requester else {
        return Some("the author who scheduled it no longer exists");
    };
    if !requester.active {
        return Some("the author who scheduled it was deactivated");
    }
    let publish = PostCommand::PublishDue { requester: None };
    authorize(post, requester.actor, &publish).err().map(|_| "the author who scheduled it may no longer publish it")
}

fn authorize(post: &Post, actor: Actor, command: &PostCommand) -> Result<(), DomainError> {
    if actor.role.acts_on_all_posts() {
        return Ok(());
    }
    if post.author_id != actor.id {
        return Err(DomainError::Forbidden("only editors may act on other authors' posts"));
    }
    match command {
        PostCommand::Publish { .. } | PostCommand::Unpublish | PostCommand::PublishDue { .. }
            if !actor.role.can_publish() =>
        {
            Err(DomainError::Forbidden("contributors cannot publish or unpublish"))
        }
        PostCommand::Edit(_) if !actor.role.can_publish() && post.status != PostStatus::Draft => {
            Err(DomainError::Forbidden("contributors can only edit their drafts"))
        }
        // Deleting or restoring changes what the public sees as much as unpublishing does.
        PostCommand::Delete | PostCommand::Restore if !actor.role.can_publish() && post.ever_published => {
            Err(DomainError::Forbidden("contributors may delete or restore only posts that were never published"))
        }
        _ => Ok(()),
    }
}

/// Folds one event of the post's stream into its state. `recorded_at` stamps `updated_at`.
pub fn apply(state: Option<Post>, id: Uuid, event: &DomainEvent, recorded_at: DateTime<Utc>) -> Option<Post> {
    if let DomainEvent::PostDrafted(d) = event {
        return Some(Post {
            id,
            author_id: d.author_id,
            version: 1,
            status: PostStatus::Draft,
            title: d.title.clone(),
            slug: d.slug.clone(),
            body_markdown: d.body_markdown.clone(),
            summary: d.summary.clone(),
            tags: d.tags.clone(),
            cover_image_url: d.cover_image_url.clone(),
            cover_media_id: d.cover_media_id,
            created_at: recorded_at,
            updated_at: recorded_at,
            published_at: None,
            scheduled_at: None,
            ever_published: false,
            scheduled_by: None,
        });
    }
    let mut p = state?;
    p.version += 1;
    p.updated_at = recorded_at;
    match event {
        DomainEvent::PostEdited(e) => {
            if let Some(t) = &e.title {
                p.title = t.clone();
            }
            if let Some(s) = &e.slug {
                p.slug = s.clone();
            }
            if let Some(b) = &e.body_markdown {
                p.body_markdown = b.clone();
            }
            if let Some(s) = &e.summary {
                p.summary = s.clone();
            }
            if let Some(t) = &e.tags {
                p.tags = t.clone();
            }
            if let Some(c) = &e.cover_image_url {
                p.cover_image_url = c.clone();
            }
            if let Some(c) = e.cover_media_id {
                p.cover_media_id = c;
            }
        }
        DomainEvent::PostPublished(e) => {
            p.status = PostStatus::Published;
            p.published_at = Some(e.published_at);
            p.scheduled_at = None;
            p.scheduled_by = None;
            p.ever_published = true;
        }
        DomainEvent::PostScheduled(e) => {
            p.status = PostStatus::Scheduled;
            p.scheduled_at = Some(e.at);
            p.published_at = Some(e.at);
            p.scheduled_by = Some(e.requested_by.unwrap_or(p.author_id));
        }
        DomainEvent::PostUnpublished(_) | DomainEvent::PostRestored(_) | DomainEvent::PostScheduleCancelled(_) => {
            p.status = PostStatus::Draft;
            p.published_at = None;
            p.scheduled_at = None;
            p.scheduled_by = None;
        }
        DomainEvent::PostDeleted(_) => p.status = PostStatus::Deleted,
        _ => {}
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::values::parse_tags;

    fn actor(role: Role) -> Actor {
        Actor { id: Uuid::from_u128(1), role }
    }

    fn drafted(author: Uuid) -> Option<Post> {
        let draft = DraftPost {
            author_id: author,
            title: Title::parse("title", "Hello").ok()?,
            slug: Slug::parse("hello").ok()?,
            body_markdown: BodyMarkdown::parse("body", "# hi".into()).ok()?,
            summary: None,
            tags: parse_tags("tags", &["Rust".into()]).ok()?,
            cover_image_url: None,
            cover_media_id: None,
        };
        let events = decide(None, Actor { id: author, role: Role::Author }, PostCommand::Draft(draft)).ok()?;
        events.iter().fold(None, |s, e| apply(s, Uuid::from_u128(9), e, Utc::now()))
    }

    fn given_then(state: Option<Post>, by: Actor, cmd: PostCommand) -> Result<Option<Post>, DomainError> {
        let events = decide(state.as_ref(), by, cmd)?;
        Ok(events.iter().fold(state, |s, e| apply(s, Uuid::from_u128(9), e, Utc::now())))
    }

    #[test]
    fn drafting_then_publishing_now_makes_a_published_post_at_version_2() {
        let now = Utc::now();
        let p =
            given_then(drafted(actor(Role::Author).id), actor(Role::Author), PostCommand::Publish { at: None, now });
        let p = p.ok().flatten();
        assert_eq!(
            p.as_ref().map(|p| (p.status, p.version, p.published_at)),
            Some((PostStatus::Published, 2, Some(now)))
        );
    }

    #[test]
    fn publishing_in_the_future_schedules_with_published_at_equal_to_at() {
        let now = Utc::now();
        let at = now + chrono::Duration::hours(1);
        let p = given_then(
            drafted(actor(Role::Author).id),
            actor(Role::Author),
            PostCommand::Publish { at: Some(at), now },
        );
        let p = p.ok().flatten();
        assert_eq!(p.map(|p| (p.status, p.published_at)), Some((PostStatus::Scheduled, Some(at))));
    }

    #[test]
    fn contributors_cannot_publish_and_authors_cannot_touch_others_posts() {
        let mine = drafted(actor(Role::Contributor).id);
        let r = decide(mine.as_ref(), actor(Role::Contributor), PostCommand::Publish { at: None, now: Utc::now() });
        assert!(matches!(r, Err(DomainError::Forbidden(_))));
        let theirs = drafted(Uuid::from_u128(2));
        let r = decide(theirs.as_ref(), actor(Role::Author), PostCommand::Delete);
        assert!(matches!(r, Err(DomainError::Forbidden(_))));
        assert!(decide(theirs.as_ref(), actor(Role::Editor), PostCommand::Delete).is_ok());
    }

    #[test]
    fn contributors_delete_and_restore_only_posts_that_were_never_published() {
        let contributor = actor(Role::Contributor);
        let draft = drafted(contributor.id);
        assert!(given_then(draft.clone(), contributor, PostCommand::Delete).is_ok());
        let published = given_then(draft, actor(Role::Editor), PostCommand::Publish { at: None, now: Utc::now() });
        let published = published.ok().flatten();
        assert!(matches!(
            given_then(published.clone(), contributor, PostCommand::Delete),
            Err(DomainError::Forbidden(_))
        ));
        let unpublished = given_then(published, actor(Role::Editor), PostCommand::Unpublish).ok().flatten();
        assert!(matches!(
            given_then(unpublished.clone(), contributor, PostCommand::Delete),
            Err(DomainError::Forbidden(_))
        ));
        let deleted = given_then(unpublished, actor(Role::Editor), PostCommand::Delete).ok().flatten();
        assert!(matches!(given_then(deleted, contributor, PostCommand::Restore), Err(DomainError::Forbidden(_))));
    }

    #[test]
    fn a_deleted_post_cannot_be_published_or_edited_until_restored_to_draft() {
        let deleted =
            given_then(drafted(actor(Role::Author).id), actor(Role::Author), PostCommand::Delete).ok().flatten();
        let r = decide(deleted.as_ref(), actor(Role::Author), PostCommand::Publish { at: None, now: Utc::now() });
        assert!(matches!(r, Err(DomainError::InvalidTransition(_))));
        assert!(matches!(
            decide(deleted.as_ref(), actor(Role::Author), PostCommand::Edit(EditPost::default())),
            Err(DomainError::InvalidTransition(_))
        ));
        let restored = given_then(deleted, actor(Role::Author), PostCommand::Restore).ok().flatten();
        assert_eq!(restored.map(|p| (p.status, p.version)), Some((PostStatus::Draft, 3)));
    }

    #[test]
    fn commands_on_a_missing_post_are_not_found() {
        assert_eq!(decide(None, actor(Role::Admin), PostCommand::Delete), Err(DomainError::NotFound("post")));
    }
}
