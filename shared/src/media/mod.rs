//! Media: what an uploaded image is (sniffed, checked, stripped of metadata), its responsive variants, its
//! public URLs, and the object store that holds the bytes. The write side, the projector's variant worker
//! and the query API's media route all go through here.

pub mod body;
pub mod inspect;
pub mod store;
pub mod urls;
pub mod variants;

use serde::{Deserialize, Serialize};

/// The image types Pressroom accepts (sniffed from the bytes, never from a header or a file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Jpeg,
    Png,
    Gif,
    Webp,
}

impl MediaKind {
    pub fn mime(self) -> &'static str {
        match self {
            MediaKind::Jpeg => "image/jpeg",
            MediaKind::Png => "image/png",
            MediaKind::Gif => "image/gif",
            MediaKind::Webp => "image/webp",
        }
    }

    /// The file extension of the original in URLs and object keys.
    pub fn ext(self) -> &'static str {
        match self {
            MediaKind::Jpeg => "jpg",
            MediaKind::Png => "png",
            MediaKind::Gif => "gif",
            MediaKind::Webp => "webp",
        }
    }

    /// The type a declared `Content-Type` names: `Ok(None)` when it claims nothing (absent, octet-stream),
    /// `Err` when it names something Pressroom does not take.
    pub fn from_declared(content_type: &str) -> Result<Option<Self>, String> {
        let mime = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        Ok(Some(match mime.as_str() {
            "" | "application/octet-stream" => return Ok(None),
            "image/jpeg" | "image/jpg" | "image/pjpeg" => MediaKind::Jpeg,
            "image/png" => MediaKind::Png,
            "image/gif" => MediaKind::Gif,
            "image/webp" => MediaKind::Webp,
            _ => return Err(mime),
        }))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Jpeg => "jpeg",
            MediaKind::Png => "png",
            MediaKind::Gif => "gif",
            MediaKind::Webp => "webp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [MediaKind::Jpeg, MediaKind::Png, MediaKind::Gif, MediaKind::Webp].into_iter().find(|k| k.as_str() == s)
    }
}

/// The media id of the content with this SHA-256 (hex): its first 128 bits, so the same bytes always get
/// the same id (and SQL can derive it: `substr(hash, 1, 32)::uuid`).
pub fn media_id(hash_hex: &str) -> Option<uuid::Uuid> {
    hash_hex.get(..32).and_then(|h| uuid::Uuid::try_parse(h).ok())
}

/// Whether `s` is a SHA-256 in lowercase hex (a media path segment).
pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
