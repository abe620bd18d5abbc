//! The media aggregate: an image uploaded once per content hash, its alt text, and its deletion (after
//! which the same bytes may be uploaded again).

use uuid::Uuid;

use super::events::{DomainEvent, Empty, MediaAltChanged, MediaUploaded};
use super::post::Actor;
use super::DomainError;
use crate::media::MediaKind;

#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    pub id: Uuid,
    pub hash: String,
    pub kind: MediaKind,
    pub width: u32,
    pub height: u32,
    pub size: u64,
    pub alt: Option<String>,
    pub uploaded_by: Uuid,
    pub deleted: bool,
    pub version: i32,
}

/// What an author asks of a media stream.
#[derive(Debug, Clone)]
pub enum MediaCommand {
    Upload(MediaUploaded),
    SetAlt(Option<String>),
    Delete,
}

/// Decides a command. An upload of media that exists (and is not deleted) decides nothing: the same bytes
/// are the same media. Alt text and deletion are the uploader's, or an editor's.
pub fn decide(state: Option<&Media>, actor: Actor, command: MediaCommand) -> Result<Vec<DomainEvent>, DomainError> {
    let live = state.filter(|m| !m.deleted);
    match command {
        MediaCommand::Upload(_) if live.is_some() => Ok(vec![]),
        MediaCommand::Upload(u) => Ok(vec![DomainEvent::MediaUploaded(u)]),
        MediaCommand::SetAlt(alt) => {
            let m = live.ok_or(DomainError::NotFound("media"))?;
            allowed(m, actor)?;
            Ok(vec![DomainEvent::MediaAltChanged(MediaAltChanged { alt })])
        }
        MediaCommand::Delete => {
            let m = live.ok_or(DomainError::NotFound("media"))?;
            allowed(m, actor)?;
            Ok(vec![DomainEvent::MediaDeleted(Empty {})])
        }
    }
}

fn allowed(m: &Media, actor: Actor) -> Result<(), DomainError> {
    if m.uploaded_by == actor.id || actor.role.acts_on_all_posts() {
        Ok(())
    } else {
        Err(DomainError::Forbidden("only the uploader or an editor changes this media"))
    }
}

/// Folds one event into the state.
pub fn apply(state: Option<Media>, id: Uuid, event: &DomainEvent) -> Option<Media> {
    let version = state.as_ref().map_or(0, |m| m.version) + 1;
    match event {
        DomainEvent::MediaUploaded(u) => Some(Media {
            id,
            hash: u.hash.clone(),
            kind: u.kind,
            width: u.width,
            height: u.height,
            size: u.size,
            alt: u.alt.clone(),
            uploaded_by: u.uploaded_by,
            deleted: false,
            version,
        }),
        DomainEvent::MediaAltChanged(a) => state.map(|m| Media { alt: a.alt.clone(), version, ..m }),
        DomainEvent::MediaDeleted(_) => state.map(|m| Media { deleted: true, version, ..m }),
        _ => state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::role::Role;

    fn uploaded(by: Uuid) -> MediaUploaded {
        MediaUploaded {
            hash: "ab".repeat(32),
            kind: MediaKind::Png,
            width: 10,
            height: 5,
            size: 99,
            alt: None,
            uploaded_by: by,
        }
    }

    #[test]
    fn the_same_bytes_decide_nothing_until_deleted_and_only_the_uploader_or_an_editor_changes_them() {
        let (me, other) = (Uuid::now_v7(), Uuid::now_v7());
        let author = Actor { id: me, role: Role::Author };
        let events = decide(None, author, MediaCommand::Upload(uploaded(me))).unwrap_or_default();
        let state = events.iter().fold(None, |s, e| apply(s, Uuid::nil(), e));
        assert_eq!(state.as_ref().map(|m| m.version), Some(1));
        assert_eq!(decide(state.as_ref(), author, MediaCommand::Upload(uploaded(me))), Ok(vec![]));
        let stranger = Actor { id: other, role: Role::Author };
        assert!(matches!(decide(state.as_ref(), stranger, MediaCommand::Delete), Err(DomainError::Forbidden(_))));
        let editor = Actor { id: other, role: Role::Editor };
        let deleted = decide(state.as_ref(), editor, MediaCommand::Delete).unwrap_or_default();
        let state = deleted.iter().fold(state, |s, e| apply(s, Uuid::nil(), e));
        assert_eq!(decide(state.as_ref(), author, MediaCommand::Upload(uploaded(me))).map(|e| e.len()), Ok(1));
        assert_eq!(decide(state.as_ref(), author, MediaCommand::Delete), Err(DomainError::NotFound("media")));
    }
}
