//! Media commands: upload an image (multipart with one file, or the raw bytes), set its alt text, delete it.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use shared::domain::media::Media;
use shared::domain::values::{AltText, FieldError};
use shared::http::{IdPath, JsonBody};
use shared::media::inspect::{self, Limits, MediaError};
use shared::media::urls::MediaRef;
use shared::write::media as media_writes;

use super::{committed, idempotent, nullable};
use crate::error::{ApiError, ApiResult};
use crate::extract::{metadata, CurrentAuthor};
use crate::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    // Room for the multipart framing around the largest file.
    let limit = state.config.media.max_bytes.saturating_add(64 * 1024);
    Router::new()
        .route("/v1/media", post(upload).layer(DefaultBodyLimit::max(limit)))
        .route("/v1/media/{id}", idempotent(state, patch(edit).delete(delete)))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct UploadParams {
    /// Alt text for a raw-body upload (a multipart upload sends an `alt` field).
    alt: Option<String>,
}

/// A multipart upload: the image as `file`, and optional `alt` text.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    #[schema(format = Binary, value_type = String)]
    file: Vec<u8>,
    alt: Option<String>,
}

/// An alt-text change; `null` or `""` clears it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMediaRequest {
    #[serde(default, deserialize_with = "nullable")]
    alt: Option<Option<String>>,
}

/// Upload an image (JPEG, PNG, GIF or WebP; the type is read from the bytes). The same bytes give the
/// same media (200 the second time).
#[utoipa::path(post, path = "/v1/media", tag = "media", security(("bearer" = [])), params(UploadParams),
    request_body(content((UploadForm = "multipart/form-data"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png"),
        (Vec<u8> = "image/gif"), (Vec<u8> = "image/webp"))),
    responses((status = 201, body = MediaRef, headers(("Pressroom-Position" = i64))),
        (status = 200, body = MediaRef, description = "these bytes were uploaded before"),
        (status = 400, body = shared::http::problem::ProblemDoc), (status = 401, body = shared::http::problem::ProblemDoc),
        (status = 403, body = shared::http::problem::ProblemDoc),
        (status = 413, body = shared::http::problem::ProblemDoc, description = "over PRESSROOM_MEDIA_MAX_BYTES"),
        (status = 415, body = shared::http::problem::ProblemDoc, description = "not an accepted image type, or not the declared one"),
        (status = 422, body = shared::http::problem::ProblemDoc, description = "truncated, too many pixels, or a polyglot")))]
#[tracing::instrument(skip_all)]
pub async fn upload(
    State(state): State<AppState>,
    author: CurrentAuthor,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Response> {
    let declared = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (bytes, part_type, alt) = if declared.starts_with("multipart/form-data") {
        read_multipart(request, &state).await?
    } else {
        let bytes = Bytes::from_request(request, &state).await.map_err(too_large)?;
        (bytes, Some(declared), params.alt)
    };
    let alt = AltText::parse("alt", alt.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::Validation(vec![e]))?
        .map(AltText::into_string);
    if bytes.is_empty() {
        return Err(ApiError::Validation(vec![FieldError::new("file", "is empty")]));
    }
    let limits = Limits { max_pixels: state.config.media.max_pixels };
    let checked = tokio::task::spawn_blocking(move || inspect::inspect(bytes, part_type.as_deref(), limits))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?
        .map_err(|e| match e {
            MediaError::Unsupported(why) => ApiError::UnsupportedMedia(why),
            MediaError::Invalid(why) => ApiError::Validation(vec![FieldError::new("file", why)]),
        })?;
    let meta = metadata(&headers, Some(author.0.id));
    let uploaded = media_writes::upload(&state.pool, &state.media, author.actor(), checked, alt, &meta).await?;
    let body = media_ref(&state, &uploaded.media);
    Ok(match uploaded.appended {
        Some(appended) => committed(StatusCode::CREATED, appended.position, body),
        None => (StatusCode::OK, Json(body)).into_response(),
    })
}

/// The file part (its bytes and declared type) and the `alt` field of a multipart upload.
async fn read_multipart(request: Request, state: &AppState) -> ApiResult<(Bytes, Option<String>, Option<String>)> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large_problem()
        } else {
            ApiError::BadRequest(format!("the multipart body cannot be read: {}", e.body_text()))
        }
    };
    let mut form = Multipart::from_request(request, state).await.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (mut file, mut alt) = (None, None);
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name() {
            Some("file") if file.is_none() => {
                let part_type = field.content_type().map(str::to_string);
                file = Some((field.bytes().await.map_err(bad)?, part_type));
            }
            Some("file") => return Err(ApiError::BadRequest("send one `file` per upload".into())),
            Some("alt") => alt = Some(field.text().await.map_err(bad)?),
            _ => {}
        }
    }
    let (bytes, part_type) =
        file.ok_or_else(|| ApiError::Validation(vec![FieldError::new("file", "a `file` part is required")]))?;
    Ok((bytes, part_type, alt))
}

fn too_large(e: axum::extract::rejection::BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large_problem()
    } else {
        ApiError::BadRequest(e.body_text())
    }
}

fn too_large_problem() -> ApiError {
    ApiError::TooLarge("the file is over PRESSROOM_MEDIA_MAX_BYTES".into())
}

/// Set or clear the alt text.
#[utoipa::path(patch, path = "/v1/media/{id}", tag = "media", security(("bearer" = [])), request_body = EditMediaRequest,
    params(("id" = uuid::Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "replay-safe retries")),
    responses((status = 200, body = MediaRef, headers(("Pressroom-Position" = i64))),
        (status = 403, body = shared::http::problem::ProblemDoc), (status = 404, body = shared::http::problem::ProblemDoc),
        (status = 422, body = shared::http::problem::ProblemDoc)))]
#[tracing::instrument(skip_all)]
pub async fn edit(
    State(state): State<AppState>,
    author: CurrentAuthor,
    IdPath(id): IdPath,
    headers: HeaderMap,
    JsonBody(req): JsonBody<EditMediaRequest>,
) -> ApiResult<Response> {
    let alt = match req.alt {
        None => return Err(ApiError::Validation(vec![FieldError::new("alt", "is the one field to change")])),
        Some(alt) => AltText::parse("alt", alt.as_deref().unwrap_or_default())
            .map_err(|e| ApiError::Validation(vec![e]))?
            .map(AltText::into_string),
    };
    let meta = metadata(&headers, Some(author.0.id));
    let (media, appended) = media_writes::set_alt(&state.pool, author.actor(), id, alt, &meta).await?;
    Ok(committed(StatusCode::OK, appended.position, media_ref(&state, &media)))
}

/// Delete an image; refused (409) while a published or scheduled post uses it.
#[utoipa::path(delete, path = "/v1/media/{id}", tag = "media", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "replay-safe retries")),
    responses((status = 204, headers(("Pressroom-Position" = i64))),
        (status = 403, body = shared::http::problem::ProblemDoc), (status = 404, body = shared::http::problem::ProblemDoc),
        (status = 409, body = shared::http::problem::ProblemDoc, description = "a published or scheduled post uses it")))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    State(state): State<AppState>,
    author: CurrentAuthor,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let meta = metadata(&headers, Some(author.0.id));
    let (_, appended) = media_writes::delete(&state.pool, author.actor(), id, &meta).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(shared::store::position::POSITION_HEADER, appended.position.into());
    Ok(res)
}

/// The client view of a media under this deployment's media base URL.
pub fn media_ref(state: &AppState, m: &Media) -> MediaRef {
    MediaRef::new(&state.config.media_base(), m.id, &m.hash, m.kind, (m.width, m.height), m.alt.clone())
}
