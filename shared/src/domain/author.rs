//! The author aggregate: registration, profile, role and deactivation.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::events::{AuthorProfileUpdated, AuthorRegistered, AuthorRoleChanged, DomainEvent, Empty};
use super::post::Actor;
use super::role::Role;
use super::DomainError;

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
pub fn apply(state: Option<Author>, id: Uuid, event: &DomainEvent, recorded_at: DateTime<Utc>) -> Option<Author> {
    if let DomainEvent::AuthorRegistered(AuthorRegistered { email, name, slug, role, bio, avatar_url }) = event {
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

/// A validated profile change; `Some(None)` clears bio or avatar.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub bio: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
}

#[derive(Debug, Clone)]
pub enum AuthorCommand {
    UpdateProfile(ProfileChange),
    ChangeRole(Role),
    Deactivate,
}

/// Decides author events. Authors edit their own profile; only admins change roles, deactivate, or
/// edit others.
pub fn decide(state: Option<&Author>, actor: Actor, command: AuthorCommand) -> Result<Vec<DomainEvent>, DomainError> {
    let author = state.ok_or(DomainError::NotFound("author"))?;
    let is_admin = actor.role == Role::Admin;
    if !is_admin && actor.id != author.id {
        return Err(DomainError::Forbidden("only admins may change other authors"));
    }
    if !author.active {
        return Err(DomainError::InvalidTransition("the author is deactivated".into()));
    }
    let event = match command {
        AuthorCommand::UpdateProfile(c) => {
            let changed = AuthorProfileUpdated {
                name: c.name.filter(|n| *n != author.name),
                slug: c.slug.filter(|s| *s != author.slug),
                email: None,
                bio: c.bio.filter(|b| *b != author.bio),
                avatar_url: c.avatar_url.filter(|a| *a != author.avatar_url),
            };
            if changed == AuthorProfileUpdated::default() {
                return Ok(vec![]);
            }
            DomainEvent::AuthorProfileUpdated(changed)
        }
        AuthorCommand::ChangeRole(role) => {
            if !is_admin {
                return Err(DomainError::Forbidden("only admins may change roles"));
            }
            if actor.id == author.id && role != Role::Admin {
                return Err(DomainError::InvalidTransition("admins cannot demote themselves".into()));
            }
            if role == author.role {
                return Ok(vec![]);
            }
            DomainEvent::AuthorRoleChanged(AuthorRoleChanged { role })
        }
        AuthorCommand::Deactivate => {
            if !is_admin {
                return Err(DomainError::Forbidden("only admins may deactivate authors"));
            }
            if actor.id == author.id {
                return Err(DomainError::InvalidTransition("admins cannot deactivate themselves".into()));
            }
            DomainEvent::AuthorDeactivated(Empty {})
        }
    };
    Ok(vec![event])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(id: Uuid, role: Role) -> Option<Author> {
        let e = DomainEvent::AuthorRegistered(AuthorRegistered {
            email: "a@b.c".into(),
            name: "A".into(),
            slug: "a".into(),
            role,
            bio: None,
            avatar_url: None,
        });
        apply(None, id, &e, Utc::now())
    }

    #[test]
    fn authors_edit_themselves_but_not_others_and_never_their_role() {
        let me = Uuid::from_u128(1);
        let state = registered(me, Role::Author);
        let actor = Actor { id: me, role: Role::Author };
        let change = ProfileChange { name: Some("B".into()), ..Default::default() };
        assert!(decide(state.as_ref(), actor, AuthorCommand::UpdateProfile(change.clone())).is_ok());
        assert!(matches!(
            decide(state.as_ref(), actor, AuthorCommand::ChangeRole(Role::Admin)),
            Err(DomainError::Forbidden(_))
        ));
        let other = Actor { id: Uuid::from_u128(2), role: Role::Editor };
        assert!(matches!(
            decide(state.as_ref(), other, AuthorCommand::UpdateProfile(change)),
            Err(DomainError::Forbidden(_))
        ));
    }

    #[test]
    fn admins_change_roles_and_deactivate_and_a_deactivated_author_changes_no_more() {
        let id = Uuid::from_u128(1);
        let admin = Actor { id: Uuid::from_u128(9), role: Role::Admin };
        let state = registered(id, Role::Contributor);
        let events = decide(state.as_ref(), admin, AuthorCommand::Deactivate).unwrap_or_default();
        let state = events.iter().fold(state, |s, e| apply(s, id, e, Utc::now()));
        assert_eq!(state.as_ref().map(|a| a.active), Some(false));
        assert!(decide(state.as_ref(), admin, AuthorCommand::ChangeRole(Role::Editor)).is_err());
    }
}
