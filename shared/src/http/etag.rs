//! Entity tags derived from the bytes a read serves, and conditional (`If-None-Match` → 304) answers.
//!
//! A tag is a digest of the representation itself, so it changes whenever any byte does (a comment
//! count, an author's new name, a tag count) and two instances serving the same bytes agree on it.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The strong ETag of `body`: the first 128 bits of its SHA-256, quoted.
pub fn of(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let mut tag = String::with_capacity(34);
    tag.push('"');
    crate::hex_into(&mut tag, &digest[..16]);
    tag.push('"');
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// True when the request's `If-None-Match` names `etag` (weak comparison, as RFC 9110 asks for GET) or `*`.
pub fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else { return false };
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag))
}

/// A 200 with `body` (of `content_type`) and its ETag, or a bodiless 304 when the client has it.
pub fn conditional(headers: &HeaderMap, content_type: &'static str, body: Bytes, etag: HeaderValue) -> Response {
    let mut res = if not_modified(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut res = body.into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        res
    };
    res.headers_mut().insert(header::ETAG, etag);
    res
}

/// [`conditional`] for a body that has no ETag yet.
pub fn respond(headers: &HeaderMap, content_type: &'static str, body: impl Into<Bytes>) -> Response {
    let body = body.into();
    let etag = of(&body);
    conditional(headers, content_type, body, etag)
}

/// A JSON document for discovery (`/mcp/tools`, `/mcp/metadata`): ETag'd and cacheable for five minutes.
pub fn cacheable_json(headers: &HeaderMap, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut res = respond(headers, "application/json", body);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_changed_byte_changes_the_tag_and_equal_bytes_give_equal_tags() {
        assert_eq!(of(b"{\"comment_count\":0}"), of(b"{\"comment_count\":0}"));
        assert_ne!(of(b"{\"comment_count\":0}"), of(b"{\"comment_count\":1}"));
        assert_eq!(of(b"").len(), 34);
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star_but_not_other_tags() {
        let tag = of(b"x");
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")));
            h
        };
        let t = tag.to_str().unwrap_or_default().to_string();
        assert!(not_modified(&with(&t), &tag));
        assert!(not_modified(&with(&format!("\"other\", W/{t}")), &tag));
        assert!(not_modified(&with("*"), &tag));
        assert!(!not_modified(&with("\"other\""), &tag));
        assert!(!not_modified(&HeaderMap::new(), &tag));
    }

    #[test]
    fn a_matching_request_gets_a_bodiless_304_with_the_tag() {
        let tag = of(b"body");
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, tag.clone());
        let res = conditional(&h, "application/json", Bytes::from_static(b"body"), tag.clone());
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(res.headers().get(header::ETAG), Some(&tag));
        let res = conditional(&HeaderMap::new(), "application/json", Bytes::from_static(b"body"), tag);
        assert_eq!(res.status(), StatusCode::OK);
    }
}
