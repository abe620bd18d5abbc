//! Registering authors and checking credentials.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::WriteError;
use crate::domain::author::{self, Author, AuthorCommand};
use crate::domain::events::{AuthorProfileUpdated, AuthorRegistered};
use crate::domain::post::Actor;
use crate::domain::role::Role;
use crate::domain::slug::Slug;
use crate::domain::values::{Email, FieldError};
use crate::domain::{DomainEvent, StreamType};
use crate::http::auth;
use crate::store::event_store::{self, Appended, ExpectedVersion, Metadata};
use crate::store::streams;

/// A validated registration.
#[derive(Debug, Clone)]
pub struct NewAuthor {
    pub email: Email,
    pub name: String,
    pub password: String,
    pub role: Role,
    pub slug: Option<Slug>,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
}

/// Registers an author: reserves the email (with the password hash) and appends AuthorRegistered in one
/// transaction. A taken email is [`WriteError::EmailTaken`]; a generated slug clash gets `-2`, `-3`…
pub async fn register(pool: &PgPool, new: NewAuthor, metadata: &Metadata) -> Result<(Author, Appended), WriteError> {
    let hash = password_hash(&new.password).await?;
    let base = match new.slug {
        Some(s) => s,
        None => Slug::from_title(&new.name)
            .ok_or_else(|| WriteError::Validation(vec![FieldError::new("name", "must contain a letter or digit")]))?,
    };
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    let claimed = sqlx::query_scalar!(
        "insert into author_credentials (author_id, email, password_hash) values ($1, $2, $3)
         on conflict (email) do nothing returning author_id",
        id,
        new.email.as_str(),
        hash
    )
    .fetch_optional(&mut *tx)
    .await?;
    if claimed.is_none() {
        return Err(WriteError::EmailTaken);
    }
    claim_name(&mut tx, id, &new.name).await?;
    let slug = unique_author_slug(&mut tx, id, &base).await?;
    let event = DomainEvent::AuthorRegistered(AuthorRegistered {
        email: new.email.into_string(),
        name: new.name,
        slug: slug.into_string(),
        role: new.role,
        bio: new.bio,
        avatar_url: new.avatar_url,
    });
    let appended = event_store::append(
        &mut tx,
        id,
        StreamType::Author,
        ExpectedVersion::NoStream,
        std::slice::from_ref(&event),
        metadata,
    )
    .await?;
    tx.commit().await?;
    let author = author::apply(None, id, &event, chrono::Utc::now()).ok_or(WriteError::Concurrent)?;
    Ok((author, appended))
}

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// The argon2 hash of an acceptable password (at least [`MIN_PASSWORD_CHARS`] characters).
async fn password_hash(password: &str) -> Result<String, WriteError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(WriteError::Validation(vec![FieldError::new(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        )]));
    }
    auth::hash_password(password)
        .await
        .map_err(|e| WriteError::Validation(vec![FieldError::new("password", e.to_string())]))
}

/// Sets a new password for the author with this email (an operator's act): the hash replaces the old one
/// and `AuthorPasswordChanged` (no hash, no password) is appended to their stream in the same transaction,
/// so the change is on record. None when no author has the email.
pub async fn set_password(
    pool: &PgPool,
    email: &Email,
    password: &str,
    metadata: &Metadata,
) -> Result<Option<Appended>, WriteError> {
    let hash = password_hash(password).await?;
    let mut tx = pool.begin().await?;
    let Some(id) = sqlx::query_scalar!(
        "update author_credentials set password_hash = $2 where email = $1 returning author_id",
        email.as_str(),
        hash
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let version = streams::load_author(&mut tx, id).await?.map_or(0, |a| a.version);
    let event = DomainEvent::AuthorPasswordChanged(Default::default());
    let appended = event_store::append(
        &mut tx,
        id,
        StreamType::Author,
        ExpectedVersion::Exact(version),
        std::slice::from_ref(&event),
        metadata,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(appended))
}

/// A table of keys each held by one author: (table, key column).
type Reservations = (&'static str, &'static str);
const NAMES: Reservations = ("author_name_reservations", "name_key");
const SLUGS: Reservations = ("author_slug_reservations", "slug");

/// Claims `key` in `table` for author `id`; true when it is (now or already) theirs.
async fn reserve(
    conn: &mut PgConnection,
    (table, column): Reservations,
    key: &str,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let owner: Uuid = sqlx::query_scalar(&format!(
        "insert into {table} ({column}, author_id) values ($1, $2)
         on conflict ({column}) do update set {column} = excluded.{column} returning author_id"
    ))
    .bind(key)
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(owner == id)
}

/// Reserves `name` (as its case-folded key) for author `id` and frees the name they had before; a name
/// another author holds is [`WriteError::NameTaken`].
async fn claim_name(conn: &mut PgConnection, id: Uuid, name: &str) -> Result<(), WriteError> {
    let key = crate::domain::values::name_key(name);
    if !reserve(&mut *conn, NAMES, &key, id).await? {
        return Err(WriteError::NameTaken(name.to_string()));
    }
    sqlx::query!("delete from author_name_reservations where author_id = $1 and name_key <> $2", id, key)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Claims the first free author slug among `base`, `base-2`, `base-3`…
async fn unique_author_slug(conn: &mut PgConnection, id: Uuid, base: &Slug) -> Result<Slug, WriteError> {
    for n in 1..=1000u32 {
        let candidate = base.with_suffix(n);
        let got = sqlx::query_scalar!(
            "insert into author_slug_reservations (slug, author_id) values ($1, $2) on conflict (slug) do nothing returning slug",
            candidate.as_str(),
            id
        )
        .fetch_optional(&mut *conn)
        .await?;
        if got.is_some() {
            return Ok(candidate);
        }
    }
    Err(WriteError::SlugTaken(base.to_string()))
}

/// Checks an email and password; returns the active author. Unknown email, wrong password and a
/// deactivated author are indistinguishable (`None`), in time as well as in result.
pub async fn authenticate(pool: &PgPool, email: &str, password: &str) -> Result<Option<Author>, sqlx::Error> {
    let email = crate::domain::values::nfkc(email.trim()).to_lowercase();
    let row = sqlx::query!("select author_id, password_hash from author_credentials where email = $1", email)
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else {
        auth::verify_password_dummy(password).await;
        return Ok(None);
    };
    if !auth::verify_password(password, &row.password_hash).await {
        return Ok(None);
    }
    let mut conn = pool.acquire().await?;
    Ok(streams::load_author(&mut conn, row.author_id).await?.filter(|a| a.active))
}

/// Runs profile, role or deactivation commands on an author, all or nothing, in one append. A new slug
/// is reserved in the same transaction; a taken one is [`WriteError::SlugTaken`].
pub async fn execute(
    pool: &PgPool,
    actor: Actor,
    id: Uuid,
    commands: Vec<AuthorCommand>,
    metadata: &Metadata,
) -> Result<(Author, Option<Appended>), WriteError> {
    let mut tx = pool.begin().await?;
    let state = streams::load_author(&mut tx, id).await?;
    let version = state.as_ref().map_or(0, |a| a.version);
    let now = chrono::Utc::now();
    let mut events = Vec::new();
    let mut folded = state.clone();
    for command in commands {
        let new = author::decide(folded.as_ref(), actor, command)?;
        folded = new.iter().fold(folded, |s, e| author::apply(s, id, e, now));
        events.extend(new);
    }
    for e in &events {
        if let DomainEvent::AuthorProfileUpdated(AuthorProfileUpdated { name: Some(name), .. }) = e {
            claim_name(&mut tx, id, name).await?;
        }
        if let DomainEvent::AuthorProfileUpdated(AuthorProfileUpdated { slug: Some(slug), .. }) = e {
            if !reserve(&mut tx, SLUGS, slug, id).await? {
                return Err(WriteError::SlugTaken(slug.clone()));
            }
        }
    }
    if events.is_empty() {
        let author = state.ok_or(crate::domain::DomainError::NotFound("author"))?;
        return Ok((author, None));
    }
    let appended =
        event_store::append(&mut tx, id, StreamType::Author, ExpectedVersion::Exact(version), &events, metadata)
            .await?;
    tx.commit().await?;
    Ok((folded.ok_or(WriteError::Concurrent)?, Some(appended)))
}
