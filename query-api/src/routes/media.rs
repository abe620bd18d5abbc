//! Media reads: `GET /media/{hash}/{variant}.{ext}` (the original or a WebP variant, immutable, with
//! ranges and ETags), and the one lookup of an image's facts the post routes use for covers and body images.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use shared::media::urls::{original_key, variant_key, MediaRef};
use shared::media::variants::{widths_for, WIDTHS};
use shared::media::{body, is_hash, media_id, MediaKind};
use shared::store::db::ReadRoute;
use uuid::Uuid;

use crate::error::{ReadError, ReadResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/media/{hash}/{file}", get(serve))
}

/// An image's facts as the read side knows them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MediaRow {
    pub id: Uuid,
    pub hash: String,
    pub kind: String,
    pub width: i32,
    pub height: i32,
    pub alt: Option<String>,
    pub deleted: bool,
    /// The widths whose variants exist.
    pub variant_widths: Vec<i32>,
}

impl MediaRow {
    fn kind(&self) -> Option<MediaKind> {
        MediaKind::parse(&self.kind)
    }
}

/// The media with this id: `read.media` on a replica, else (a projection that has not reached the upload
/// yet) folded from its events on the primary. None when there is none, or it is deleted. Kept in process
/// for [`crate::CACHE_TTL`] like posts, so a deletion shows within that — but only once all its variants
/// are made: an image still waiting for one is read again each time, so the variant is served as soon as
/// it exists.
pub async fn find(state: &AppState, id: Uuid) -> ReadResult<Option<MediaRow>> {
    if let Some(hit) = state.media.rows.get(&id).await {
        return Ok(hit);
    }
    let row = load(state, id).await?;
    let settled = row.as_ref().is_none_or(|m| m.variant_widths.len() == widths_for(m.width as u32).len());
    if settled {
        state.media.rows.insert(id, row.clone()).await;
    }
    Ok(row)
}

async fn load(state: &AppState, id: Uuid) -> ReadResult<Option<MediaRow>> {
    let (pool, _) = state.reads.route(ReadRoute::Replica);
    let row: Option<MediaRow> = sqlx::query_as(
        "select id, hash, kind, width, height, alt, deleted, variant_widths from read.media where id = $1",
    )
    .bind(id)
    .fetch_optional(&pool)
    .await?;
    if let Some(row) = row {
        return Ok((!row.deleted).then_some(row));
    }
    let mut conn = state.reads.acquire(ReadRoute::Primary).await?;
    let folded = shared::store::streams::load_media(&mut conn, id).await?;
    Ok(folded.filter(|m| !m.deleted).map(|m| MediaRow {
        id: m.id,
        hash: m.hash,
        kind: m.kind.as_str().to_string(),
        width: m.width as i32,
        height: m.height as i32,
        alt: m.alt,
        deleted: false,
        variant_widths: vec![],
    }))
}

/// An image as clients see it — a post's cover, an image in its body (None when the media is gone). Read
/// straight from a bucket or CDN (`PRESSROOM_MEDIA_PUBLIC_URL`), it lists only the variants already made:
/// nothing there falls back to the original the way `/media/` does.
pub async fn image(state: &AppState, id: Uuid) -> ReadResult<Option<MediaRef>> {
    Ok(find(state, id).await?.and_then(|m| {
        let kind = m.kind()?;
        let made: Vec<u32> = m.variant_widths.iter().map(|&w| w as u32).collect();
        let shown = MediaRef::new(&state.media.base, m.id, &m.hash, kind, (m.width as u32, m.height as u32), m.alt);
        Some(if state.media.direct { shown.made_only(&made) } else { shown })
    }))
}

/// `html` (a post's body) with its media images made responsive ([`shared::media::body`]): each known,
/// undeleted image gets its variants' `srcset` and its intrinsic size; anything else is left as it is.
pub async fn responsive_body(state: &AppState, html: String) -> ReadResult<String> {
    let bases = [state.media.base.as_str()];
    let hashes = body::image_hashes(&html, &bases);
    if hashes.is_empty() {
        return Ok(html);
    }
    let mut images = HashMap::with_capacity(hashes.len());
    for hash in hashes {
        let Some(id) = media_id(&hash) else { continue };
        if let Some(found) = image(state, id).await?.filter(|m| m.hash == hash) {
            images.insert(hash, found.responsive(&state.site.url));
        }
    }
    Ok(body::with_responsive_images(&html, &bases, &images).unwrap_or(html))
}

/// Serve an image: `original.<ext>` or `<width>.webp` (320, 640, 1280, 1920). A variant not made yet
/// redirects (307, not cached) to the original.
#[utoipa::path(get, path = "/media/{hash}/{file}", tag = "media",
    params(("hash" = String, Path, description = "SHA-256 of the image"), ("file" = String, Path, description = "original.<ext> or <width>.webp"),
        ("Range" = Option<String>, Header), ("If-None-Match" = Option<String>, Header)),
    responses((status = 200, description = "the image", content_type = "image/*"), (status = 206, description = "a range of it"),
        (status = 304, description = "not modified"), (status = 307, description = "variant not made yet: the original"),
        (status = 404, body = shared::http::problem::ProblemDoc), (status = 416, description = "range not satisfiable")))]
pub async fn serve(
    State(state): State<AppState>,
    Path((hash, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> ReadResult<Response> {
    let not_found = || ReadError::NotFound("media");
    let (stem, ext) = file.rsplit_once('.').ok_or_else(not_found)?;
    let id = is_hash(&hash).then(|| media_id(&hash)).flatten().ok_or_else(not_found)?;
    let media = find(&state, id).await?.filter(|m| m.hash == hash).ok_or_else(not_found)?;
    let kind = media.kind().ok_or_else(not_found)?;
    let original = original_key(&hash, kind);
    let (key, mime, etag) = if stem == "original" && ext == kind.ext() {
        (original.clone(), kind.mime(), format!("\"{hash}\""))
    } else {
        let width: u32 = stem.parse().map_err(|_| not_found())?;
        if ext != "webp" || !WIDTHS.contains(&width) {
            return Err(not_found());
        }
        if !media.variant_widths.contains(&(width as i32)) {
            return Ok(not_made_yet(&original));
        }
        (variant_key(&hash, width), "image/webp", format!("\"{hash}-{width}\""))
    };
    let etag = HeaderValue::from_str(&etag).map_err(|_| not_found())?;
    if shared::http::etag::not_modified(&headers, &etag) {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        immutable(res.headers_mut(), &etag);
        return Ok(res);
    }
    let Some(bytes) = state.media.object(&key).await? else {
        if key == original {
            tracing::error!(%key, "media is recorded but its original is missing from the store");
            return Err(not_found());
        }
        return Ok(not_made_yet(&original));
    };
    Ok(ranged(bytes, mime, &etag, &headers))
}

/// 307 to the original, never cached: the variant will exist soon.
fn not_made_yet(original: &str) -> Response {
    let mut res = StatusCode::TEMPORARY_REDIRECT.into_response();
    let h = res.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/media/{original}")).unwrap_or(HeaderValue::from_static("/")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn immutable(h: &mut HeaderMap, etag: &HeaderValue) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    h.insert(header::ETAG, etag.clone());
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // A file that is somehow also markup still runs nothing when opened directly.
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
}

/// 200 with the object, or 206 with the one range asked for (416 when it lies past the end).
fn ranged(bytes: Bytes, mime: &'static str, etag: &HeaderValue, headers: &HeaderMap) -> Response {
    let len = bytes.len() as u64;
    let if_range_ok = headers.get(header::IF_RANGE).is_none_or(|v| v == etag);
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).filter(|_| if_range_ok).and_then(parse_range);
    let mut res = match range {
        None => (StatusCode::OK, bytes).into_response(),
        Some(r) => match r.resolve(len) {
            Some((start, end)) => {
                let mut res = (StatusCode::PARTIAL_CONTENT, bytes.slice(start as usize..=end as usize)).into_response();
                let range = format!("bytes {start}-{end}/{len}");
                if let Ok(v) = HeaderValue::from_str(&range) {
                    res.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                res
            }
            None => {
                let mut res = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    res.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return res;
            }
        },
    };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    immutable(h, etag);
    res
}

/// One byte range of a `Range` header (several ranges, or another unit, are ignored: the whole object).
#[derive(Debug, PartialEq)]
enum ByteRange {
    From(u64, Option<u64>),
    Last(u64),
}

impl ByteRange {
    /// The inclusive bounds within an object of `len` bytes; None when unsatisfiable.
    fn resolve(&self, len: u64) -> Option<(u64, u64)> {
        match *self {
            ByteRange::From(start, _) if start >= len => None,
            ByteRange::From(start, end) => Some((start, end.map_or(len - 1, |e| e.min(len - 1)))),
            ByteRange::Last(0) => None,
            ByteRange::Last(n) => Some((len.saturating_sub(n), len.checked_sub(1)?)),
        }
    }
}

fn parse_range(v: &str) -> Option<ByteRange> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.trim().split_once('-')?;
    match (a.trim(), b.trim()) {
        ("", n) => Some(ByteRange::Last(n.parse().ok()?)),
        (s, "") => Some(ByteRange::From(s.parse().ok()?, None)),
        (s, e) => {
            let (s, e) = (s.parse().ok()?, e.parse().ok()?);
            (s <= e).then_some(ByteRange::From(s, Some(e)))
        }
    }
}

/// The media store as the query API reads it, with the objects most read kept in memory (they never change).
pub struct MediaReads {
    pub store: shared::media::store::MediaStore,
    /// The base URL clients read media from.
    pub base: String,
    /// Clients read media straight from the store's public URL, not through `/media/`.
    pub direct: bool,
    objects: moka::future::Cache<String, Bytes>,
    rows: moka::future::Cache<Uuid, Option<MediaRow>>,
}

/// Objects above this are read from the store each time rather than kept.
const MAX_CACHED_OBJECT: usize = 2 * 1024 * 1024;

impl MediaReads {
    pub fn new(store: shared::media::store::MediaStore, base: String, direct: bool) -> Self {
        let objects = moka::future::Cache::builder()
            .weigher(|_: &String, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
            .max_capacity(128 * 1024 * 1024)
            .build();
        let rows = moka::future::Cache::builder().max_capacity(10_000).time_to_live(crate::CACHE_TTL).build();
        MediaReads { store, base, direct, objects, rows }
    }

    /// An object's bytes (None when the store does not have it).
    pub async fn object(&self, key: &str) -> ReadResult<Option<Bytes>> {
        if let Some(hit) = self.objects.get(key).await {
            return Ok(Some(hit));
        }
        let read = self.store.get(key).await.map_err(|e| ReadError::Store(Arc::new(e)))?;
        if let Some(bytes) = read.as_ref().filter(|b| b.len() <= MAX_CACHED_OBJECT) {
            self.objects.insert(key.to_string(), bytes.clone()).await;
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_rfc_9110() {
        assert_eq!(parse_range("bytes=0-99").and_then(|r| r.resolve(1000)), Some((0, 99)));
        assert_eq!(parse_range("bytes=990-").and_then(|r| r.resolve(1000)), Some((990, 999)));
        assert_eq!(parse_range("bytes=-10").and_then(|r| r.resolve(1000)), Some((990, 999)));
        assert_eq!(parse_range("bytes=0-5000").and_then(|r| r.resolve(1000)), Some((0, 999)));
        assert_eq!(parse_range("bytes=1000-").map(|r| r.resolve(1000)), Some(None));
        assert_eq!(parse_range("bytes=0-1,5-6"), None);
        assert_eq!(parse_range("items=0-1"), None);
        assert_eq!(parse_range("bytes=5-1"), None);
    }
}
