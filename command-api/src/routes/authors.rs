//! Author management: registration (admin), profile and role changes, deactivation (admin).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{patch, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use shared::domain::author::{Author, AuthorCommand, ProfileChange};
use shared::domain::role::Role;
use shared::domain::slug::Slug;
use shared::domain::values::{AuthorName, Email, FieldError, HttpUrl};
use shared::http::{IdPath, JsonBody};
use shared::write::authors::{self as author_writes, NewAuthor};
use uuid::Uuid;

use super::{committed, idempotent, nullable, Checker};
use crate::error::{ApiError, ApiResult};
use crate::extract::{metadata, CurrentAuthor};
use crate::AppState;

const MAX_BIO_CHARS: usize = 2000;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/authors", idempotent(state, post(register)))
        .route("/v1/authors/{id}", idempotent(state, patch(update)))
        .route("/v1/authors/{id}/deactivate", idempotent(state, post(deactivate)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    email: String,
    name: String,
    password: String,
    role: String,
    slug: Option<String>,
    bio: Option<String>,
    avatar_url: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    name: Option<String>,
    slug: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    bio: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    avatar_url: Option<Option<String>>,
    role: Option<String>,
}

/// The author as the command API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthorBody {
    id: Uuid,
    email: String,
    name: String,
    slug: String,
    #[schema(value_type = String, example = "author")]
    role: Role,
    bio: Option<String>,
    avatar_url: Option<String>,
    active: bool,
    version: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<i64>,
}

impl AuthorBody {
    fn new(a: Author, position: Option<i64>) -> Self {
        AuthorBody {
            id: a.id,
            email: a.email,
            name: a.name,
            slug: a.slug,
            role: a.role,
            bio: a.bio,
            avatar_url: a.avatar_url,
            active: a.active,
            version: a.version,
            position,
        }
    }
}

fn name(field: &str, raw: &str) -> Result<String, FieldError> {
    AuthorName::parse(field, raw).map(AuthorName::into_string)
}

fn bio(raw: &str) -> Result<String, FieldError> {
    if raw.chars().count() > MAX_BIO_CHARS {
        return Err(FieldError::new("bio", format!("must be at most {MAX_BIO_CHARS} characters")));
    }
    Ok(raw.trim().to_string())
}

fn role(raw: &str) -> Result<Role, FieldError> {
    raw.parse().map_err(|e: String| FieldError::new("role", e))
}

fn slug(raw: &str) -> Result<Slug, FieldError> {
    Slug::parse(raw).map_err(|e| FieldError::new("slug", e.to_string()))
}

fn url(raw: &str) -> Result<String, FieldError> {
    HttpUrl::parse("avatar_url", raw).map(HttpUrl::into_string)
}

/// Register an author (admin).
#[utoipa::path(post, path = "/v1/authors", request_body = RegisterRequest, security(("bearer" = [])), tag = "authors",
    responses((status = 201, body = AuthorBody), (status = 409, body = shared::http::problem::ProblemDoc, description = "email taken")))]
#[tracing::instrument(skip_all)]
pub async fn register(
    State(state): State<AppState>,
    admin: CurrentAuthor,
    headers: HeaderMap,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> ApiResult<Response> {
    if admin.0.role != Role::Admin {
        return Err(ApiError::Forbidden("only admins may register authors".into()));
    }
    let mut c = Checker::default();
    let email = c.check(Email::parse("email", &req.email));
    let display_name = c.check(name("name", &req.name));
    let new_role = c.check(role(&req.role));
    let new_slug = req.slug.as_deref().and_then(|s| c.check(slug(s)));
    let new_bio = req.bio.as_deref().and_then(|b| c.check(bio(b)));
    let avatar_url = req.avatar_url.as_deref().and_then(|u| c.check(url(u)));
    if req.password.chars().count() < 8 {
        c.0.push(FieldError::new("password", "must be at least 8 characters"));
    }
    c.finish()?;
    let (Some(email), Some(name), Some(role)) = (email, display_name, new_role) else {
        return Err(ApiError::BadRequest("invalid author".into()));
    };
    let new = NewAuthor { email, name, password: req.password, role, slug: new_slug, bio: new_bio, avatar_url };
    let (author, appended) = shared::service::metrics::timed_query(
        "authors.register",
        "primary",
        author_writes::register(&state.pool, new, &metadata(&headers, Some(admin.0.id))),
    )
    .await?;
    Ok(committed(StatusCode::CREATED, appended.position, AuthorBody::new(author, Some(appended.position))))
}

/// Update a profile (self or admin); `role` only by an admin.
#[utoipa::path(patch, path = "/v1/authors/{id}", request_body = UpdateRequest, security(("bearer" = [])), tag = "authors",
    params(("id" = Uuid, Path)), responses((status = 200, body = AuthorBody)))]
#[tracing::instrument(skip_all, fields(author_id = %id))]
pub async fn update(
    State(state): State<AppState>,
    actor: CurrentAuthor,
    IdPath(id): IdPath,
    headers: HeaderMap,
    JsonBody(req): JsonBody<UpdateRequest>,
) -> ApiResult<Response> {
    let mut c = Checker::default();
    let change = ProfileChange {
        name: req.name.as_deref().and_then(|n| c.check(name("name", n))),
        slug: req.slug.as_deref().and_then(|s| c.check(slug(s))).map(Slug::into_string),
        bio: req.bio.map(|b| b.and_then(|b| c.check(bio(&b)))),
        avatar_url: req.avatar_url.map(|u| u.and_then(|u| c.check(url(&u)))),
    };
    let new_role = req.role.as_deref().and_then(|r| c.check(role(r)));
    c.finish()?;
    let mut commands = Vec::new();
    if let Some(r) = new_role {
        commands.push(AuthorCommand::ChangeRole(r));
    }
    commands.push(AuthorCommand::UpdateProfile(change));
    run(&state, &actor, id, commands, &headers).await
}

/// Deactivate an author (admin): they can no longer log in, and their tokens stop working.
#[utoipa::path(post, path = "/v1/authors/{id}/deactivate", security(("bearer" = [])), tag = "authors",
    params(("id" = Uuid, Path)), responses((status = 200, body = AuthorBody)))]
#[tracing::instrument(skip_all, fields(author_id = %id))]
pub async fn deactivate(
    State(state): State<AppState>,
    actor: CurrentAuthor,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> ApiResult<Response> {
    run(&state, &actor, id, vec![AuthorCommand::Deactivate], &headers).await
}

async fn run(
    state: &AppState,
    actor: &CurrentAuthor,
    id: Uuid,
    commands: Vec<AuthorCommand>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let meta = metadata(headers, Some(actor.0.id));
    let (author, appended) = shared::service::metrics::timed_query(
        "authors.execute",
        "primary",
        author_writes::execute(&state.pool, actor.actor(), id, commands, &meta),
    )
    .await?;
    let position = match appended {
        Some(a) => a.position,
        None => {
            let mut conn = state.pool.acquire().await?;
            shared::store::log::stream_last_position(&mut conn, id).await?
        }
    };
    Ok(committed(StatusCode::OK, position, AuthorBody::new(author, Some(position))))
}
