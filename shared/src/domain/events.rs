//! Events v1: past-tense facts with an explicit type name and schema version. Stored payloads are upcast
//! to the current version here, before anything else sees them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::role::Role;

/// The kind of aggregate a stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    Author,
    Post,
    Comment,
    Media,
}

impl StreamType {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamType::Author => "author",
            StreamType::Post => "post",
            StreamType::Comment => "comment",
            StreamType::Media => "media",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorRegistered {
    pub email: String,
    pub name: String,
    pub slug: String,
    pub role: Role,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AuthorProfileUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `Some(None)` clears the bio.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub bio: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub avatar_url: Option<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorRoleChanged {
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostDrafted {
    pub author_id: Uuid,
    pub title: String,
    pub slug: String,
    pub body_markdown: String,
    pub summary: Option<String>,
    pub tags: Vec<String>,
    pub cover_image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover_media_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PostEdited {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_markdown: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub summary: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub cover_image_url: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub cover_media_id: Option<Option<Uuid>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostPublished {
    pub published_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostScheduled {
    pub at: DateTime<Utc>,
    /// Who asked: at the due time they must still be active and allowed to publish the post (absent in
    /// events recorded before this field: the post's author is taken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<Uuid>,
}

/// A scheduled publish that did not happen: the requester could no longer publish the post when it fell due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostScheduleCancelled {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommentSubmitted {
    pub post_id: Uuid,
    pub author_name: String,
    pub author_email: Option<String>,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CommentRejected {
    #[serde(default)]
    pub reason: Option<String>,
}

/// An image stored in the media store under `hash` (the bytes are never in the log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaUploaded {
    /// SHA-256 of the stored bytes (lowercase hex); the media id is its first 128 bits.
    pub hash: String,
    pub kind: crate::media::MediaKind,
    pub width: u32,
    pub height: u32,
    /// Bytes stored (after metadata was stripped).
    pub size: u64,
    pub alt: Option<String>,
    pub uploaded_by: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaAltChanged {
    pub alt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Empty {}

/// Every event type of v1. The variant name is the stored `event_type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "payload")]
pub enum DomainEvent {
    AuthorRegistered(AuthorRegistered),
    AuthorProfileUpdated(AuthorProfileUpdated),
    AuthorRoleChanged(AuthorRoleChanged),
    AuthorDeactivated(Empty),
    /// An operator set a new password (`pressroom-ops admin set-password`); the hash is never in the log.
    AuthorPasswordChanged(Empty),
    PostDrafted(PostDrafted),
    PostEdited(PostEdited),
    PostPublished(PostPublished),
    PostScheduled(PostScheduled),
    PostScheduleCancelled(PostScheduleCancelled),
    PostUnpublished(Empty),
    PostDeleted(Empty),
    PostRestored(Empty),
    CommentSubmitted(CommentSubmitted),
    CommentApproved(Empty),
    CommentRejected(CommentRejected),
    MediaUploaded(MediaUploaded),
    MediaAltChanged(MediaAltChanged),
    MediaDeleted(Empty),
}

/// The current schema version of every event type.
pub const CURRENT_SCHEMA_VERSION: i16 = 1;

/// A stored event that cannot be turned into a [`DomainEvent`] (a poison event for a projection).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("event type `{0}` is unknown")]
    UnknownType(String),
    #[error("schema version {version} of `{event_type}` is newer than this build understands")]
    FutureVersion { event_type: String, version: i16 },
    #[error("payload of `{event_type}` does not match its schema: {source}")]
    Payload { event_type: String, source: serde_json::Error },
}

impl DomainEvent {
    /// One of the events of a post's lifecycle (a post stream's own events).
    pub fn is_post_event(&self) -> bool {
        matches!(
            self,
            DomainEvent::PostDrafted(_)
                | DomainEvent::PostEdited(_)
                | DomainEvent::PostPublished(_)
                | DomainEvent::PostScheduled(_)
                | DomainEvent::PostScheduleCancelled(_)
                | DomainEvent::PostUnpublished(_)
                | DomainEvent::PostDeleted(_)
                | DomainEvent::PostRestored(_)
        )
    }

    pub fn event_type(&self) -> &'static str {
        match self {
            DomainEvent::AuthorRegistered(_) => "AuthorRegistered",
            DomainEvent::AuthorProfileUpdated(_) => "AuthorProfileUpdated",
            DomainEvent::AuthorRoleChanged(_) => "AuthorRoleChanged",
            DomainEvent::AuthorDeactivated(_) => "AuthorDeactivated",
            DomainEvent::AuthorPasswordChanged(_) => "AuthorPasswordChanged",
            DomainEvent::PostDrafted(_) => "PostDrafted",
            DomainEvent::PostEdited(_) => "PostEdited",
            DomainEvent::PostPublished(_) => "PostPublished",
            DomainEvent::PostScheduled(_) => "PostScheduled",
            DomainEvent::PostScheduleCancelled(_) => "PostScheduleCancelled",
            DomainEvent::PostUnpublished(_) => "PostUnpublished",
            DomainEvent::PostDeleted(_) => "PostDeleted",
            DomainEvent::PostRestored(_) => "PostRestored",
            DomainEvent::CommentSubmitted(_) => "CommentSubmitted",
            DomainEvent::CommentApproved(_) => "CommentApproved",
            DomainEvent::CommentRejected(_) => "CommentRejected",
            DomainEvent::MediaUploaded(_) => "MediaUploaded",
            DomainEvent::MediaAltChanged(_) => "MediaAltChanged",
            DomainEvent::MediaDeleted(_) => "MediaDeleted",
        }
    }

    /// The payload as stored in `events.payload`: JSON text serialized straight from the variant's fields
    /// (no `Value` tree in between), the `payload` member of the event's tagged serialization.
    pub fn payload_json(&self) -> Box<serde_json::value::RawValue> {
        use serde_json::value::to_raw_value as raw;
        let json = match self {
            DomainEvent::AuthorRegistered(p) => raw(p),
            DomainEvent::AuthorProfileUpdated(p) => raw(p),
            DomainEvent::AuthorRoleChanged(p) => raw(p),
            DomainEvent::PostDrafted(p) => raw(p),
            DomainEvent::PostEdited(p) => raw(p),
            DomainEvent::PostPublished(p) => raw(p),
            DomainEvent::PostScheduled(p) => raw(p),
            DomainEvent::PostScheduleCancelled(p) => raw(p),
            DomainEvent::CommentSubmitted(p) => raw(p),
            DomainEvent::CommentRejected(p) => raw(p),
            DomainEvent::MediaUploaded(p) => raw(p),
            DomainEvent::MediaAltChanged(p) => raw(p),
            DomainEvent::AuthorDeactivated(p)
            | DomainEvent::AuthorPasswordChanged(p)
            | DomainEvent::PostUnpublished(p)
            | DomainEvent::PostDeleted(p)
            | DomainEvent::PostRestored(p)
            | DomainEvent::CommentApproved(p)
            | DomainEvent::MediaDeleted(p) => raw(p),
        };
        // Plain structs of strings, numbers, ids and times always serialize: the fallback is never reached.
        json.unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned())
    }

    /// Decodes a stored event (its payload as stored, unparsed), upcasting older schema versions first.
    /// The current version is parsed once, straight into the typed event.
    pub fn decode(
        event_type: &str,
        schema_version: i16,
        payload: &serde_json::value::RawValue,
    ) -> Result<Self, DecodeError> {
        if schema_version > CURRENT_SCHEMA_VERSION {
            return Err(DecodeError::FutureVersion { event_type: event_type.to_string(), version: schema_version });
        }
        let payload_error = |source| {
            if KNOWN_TYPES.contains(&event_type) {
                DecodeError::Payload { event_type: event_type.to_string(), source }
            } else {
                DecodeError::UnknownType(event_type.to_string())
            }
        };
        let upcast_payload;
        let payload = if schema_version < CURRENT_SCHEMA_VERSION {
            let stored: serde_json::Value = serde_json::from_str(payload.get()).map_err(payload_error)?;
            upcast_payload = upcast(event_type, schema_version, stored).to_string();
            upcast_payload.as_str()
        } else {
            payload.get()
        };
        // The stored `{event_type, payload}` pair as one document, tag first: serde then reads the payload
        // straight into its variant (one copy of the text, one parse; no buffering of an untagged payload).
        let tag = serde_json::to_string(event_type).map_err(payload_error)?;
        let tagged = format!(r#"{{"event_type":{tag},"payload":{payload}}}"#);
        serde_json::from_str(&tagged).map_err(payload_error)
    }
}

/// Every event type name of v1.
pub const KNOWN_TYPES: &[&str] = &[
    "AuthorRegistered",
    "AuthorProfileUpdated",
    "AuthorRoleChanged",
    "AuthorDeactivated",
    "AuthorPasswordChanged",
    "PostDrafted",
    "PostEdited",
    "PostPublished",
    "PostScheduled",
    "PostScheduleCancelled",
    "PostUnpublished",
    "PostDeleted",
    "PostRestored",
    "CommentSubmitted",
    "CommentApproved",
    "CommentRejected",
    "MediaUploaded",
    "MediaAltChanged",
    "MediaDeleted",
];

/// Upcasters from older schema versions to the current one, keyed by (event type, version).
/// v1 is the first version, so there is nothing to transform yet; a v2 adds its step here.
fn upcast(_event_type: &str, _from_version: i16, payload: serde_json::Value) -> serde_json::Value {
    payload
}

mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(payload: serde_json::Value) -> Box<serde_json::value::RawValue> {
        serde_json::value::to_raw_value(&payload).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn events_round_trip_through_their_stored_form() {
        let e =
            DomainEvent::PostEdited(PostEdited { title: Some("T".into()), summary: Some(None), ..Default::default() });
        let back = DomainEvent::decode(e.event_type(), CURRENT_SCHEMA_VERSION, &e.payload_json());
        assert_eq!(back.ok(), Some(e));
    }

    #[test]
    fn the_payload_json_text_is_the_payload_member_of_the_tagged_event() {
        let events = [
            DomainEvent::PostEdited(PostEdited { title: Some("T".into()), summary: Some(None), ..Default::default() }),
            DomainEvent::PostDeleted(Empty {}),
            DomainEvent::CommentRejected(CommentRejected { reason: Some("spam \"quoted\"".into()) }),
        ];
        for e in events {
            let text: serde_json::Value = serde_json::from_str(e.payload_json().get()).unwrap_or_default();
            let tagged = serde_json::to_value(&e).unwrap_or_default();
            assert_eq!(text, tagged["payload"], "{}", e.event_type());
            let back = DomainEvent::decode(e.event_type(), CURRENT_SCHEMA_VERSION, &e.payload_json());
            assert_eq!(back.ok(), Some(e));
        }
    }

    #[test]
    fn unknown_types_and_bad_payloads_are_typed_decode_errors() {
        let r = DomainEvent::decode("Nope", 1, &raw(serde_json::json!({})));
        assert!(matches!(r, Err(DecodeError::UnknownType(_))));
        let r = DomainEvent::decode("PostPublished", 1, &raw(serde_json::json!({"x": 1})));
        assert!(matches!(r, Err(DecodeError::Payload { .. })));
        let r = DomainEvent::decode("PostPublished", 9, &raw(serde_json::json!({})));
        assert!(matches!(r, Err(DecodeError::FutureVersion { .. })));
    }
}
