//! Author roles, ordered like Ghost's: admin > editor > author > contributor.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Contributor,
    Author,
    Editor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Contributor => "contributor",
            Role::Author => "author",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// Editors and admins act on every post; others only on their own.
    pub fn acts_on_all_posts(self) -> bool {
        self >= Role::Editor
    }

    /// Contributors write drafts but cannot publish.
    pub fn can_publish(self) -> bool {
        self >= Role::Author
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "contributor" => Ok(Role::Contributor),
            "author" => Ok(Role::Author),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role `{other}` (admin, editor, author, contributor)")),
        }
    }
}
