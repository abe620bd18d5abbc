//! The author aggregate: registration, profile, role and deactivation.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::events::{AuthorRegistered, DomainEvent};
use super::role::Role;

/// An author as folded from their stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Author {
    pub id: Uuid,
    pub version: i32,
    pub email: String,
    pub name: String,
    pub slug: String,
    pub role: Role,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// Folds one event of the author's stream.
pub fn apply(
    state: Option<Author>,
    id: Uuid,
    event: &DomainEvent,
    recorded_at: DateTime<Utc>,
) -> Option<Author> {
    if let DomainEvent::AuthorRegistered(AuthorRegistered {
        email,
        name,
        slug,
        role,
        bio,
        avatar_url,
    }) = event
    {
        return Some(Author {
            id,
            version: 1,
            email: email.clone(),
            name: name.clone(),
            slug: slug.clone(),
            role: *role,
            bio: bio.clone(),
            avatar_url: avatar_url.clone(),
            active: true,
            created_at: recorded_at,
        });
    }
    let mut a = state?;
    a.version += 1;
    match event {
        DomainEvent::AuthorProfileUpdated(u) => {
            if let Some(n) = &u.name {
                a.name = n.clone();
            }
            if let Some(s) = &u.slug {
                a.slug = s.clone();
            }
            if let Some(e) = &u.email {
                a.email = e.clone();
            }
            if let Some(b) = &u.bio {
                a.bio = b.clone();
            }
            if let Some(v) = &u.avatar_url {
                a.avatar_url = v.clone();
            }
        }
        DomainEvent::AuthorRoleChanged(r) => a.role = r.role,
        DomainEvent::AuthorDeactivated(_) => a.active = false,
        _ => {}
    }
    Some(a)
}
