//! The comment aggregate: submitted as pending, then approved or rejected by an editor.

use serde::Serialize;
use uuid::Uuid;

use super::events::{CommentRejected, CommentSubmitted, DomainEvent, Empty};
use super::post::Actor;
use super::DomainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CommentStatus {
    Pending,
    Approved,
    Rejected,
}

impl CommentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CommentStatus::Pending => "pending",
            CommentStatus::Approved => "approved",
            CommentStatus::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    pub id: Uuid,
    pub post_id: Uuid,
    pub status: CommentStatus,
    pub version: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moderation {
    Approve,
    Reject,
}

/// The event that submits a comment (the caller has checked that the post is published).
pub fn submit(post_id: Uuid, author_name: String, author_email: Option<String>, body: String) -> DomainEvent {
    DomainEvent::CommentSubmitted(CommentSubmitted { post_id, author_name, author_email, body })
}

/// Decides a moderation; editors and admins only.
pub fn decide(state: Option<&Comment>, actor: Actor, m: Moderation) -> Result<Vec<DomainEvent>, DomainError> {
    if !actor.role.acts_on_all_posts() {
        return Err(DomainError::Forbidden("only editors moderate comments"));
    }
    let c = state.ok_or(DomainError::NotFound("comment"))?;
    match (m, c.status) {
        (Moderation::Approve, CommentStatus::Pending) => Ok(vec![DomainEvent::CommentApproved(Empty {})]),
        (Moderation::Reject, CommentStatus::Pending | CommentStatus::Approved) => {
            Ok(vec![DomainEvent::CommentRejected(CommentRejected { reason: None })])
        }
        (_, s) => Err(DomainError::InvalidTransition(format!("the comment is already {}", s.as_str()))),
    }
}

pub fn apply(state: Option<Comment>, id: Uuid, event: &DomainEvent) -> Option<Comment> {
    if let DomainEvent::CommentSubmitted(s) = event {
        return Some(Comment { id, post_id: s.post_id, status: CommentStatus::Pending, version: 1 });
    }
    let mut c = state?;
    c.version += 1;
    match event {
        DomainEvent::CommentApproved(_) => c.status = CommentStatus::Approved,
        DomainEvent::CommentRejected(_) => c.status = CommentStatus::Rejected,
        _ => {}
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::role::Role;

    #[test]
    fn editors_approve_pending_comments_once_and_authors_cannot_moderate() {
        let id = Uuid::from_u128(3);
        let state = apply(None, id, &submit(Uuid::from_u128(1), "n".into(), None, "b".into()));
        let editor = Actor { id: Uuid::from_u128(2), role: Role::Editor };
        let author = Actor { id: Uuid::from_u128(4), role: Role::Author };
        assert!(matches!(decide(state.as_ref(), author, Moderation::Approve), Err(DomainError::Forbidden(_))));
        let events = decide(state.as_ref(), editor, Moderation::Approve).unwrap_or_default();
        let state = events.iter().fold(state, |s, e| apply(s, id, e));
        assert_eq!(state.as_ref().map(|c| c.status), Some(CommentStatus::Approved));
        assert!(matches!(decide(state.as_ref(), editor, Moderation::Approve), Err(DomainError::InvalidTransition(_))));
        assert!(decide(state.as_ref(), editor, Moderation::Reject).is_ok());
    }
}
