//! Validated values: a command is built only from these, so the aggregates never see bad input.

use serde::{Deserialize, Serialize};

/// Field-level validation failure, reported as `errors: [{field, message}]` in a 422.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_BODY_BYTES: usize = 512 * 1024;
pub const MAX_SUMMARY_CHARS: usize = 1000;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_CHARS: usize = 50;

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);
        impl $name {
            pub fn as_str(&self) -> &str { &self.0 }
            pub fn into_string(self) -> String { self.0 }
        }
    };
}

string_newtype!(
    /// A post title: 1–200 characters after trimming.
    Title
);
string_newtype!(
    /// Markdown body, at most 512 KiB.
    BodyMarkdown
);
string_newtype!(
    /// A lowercased, syntactically valid email address.
    Email
);
string_newtype!(
    /// An absolute http(s) URL.
    HttpUrl
);
string_newtype!(
    /// A post summary, at most 1000 characters.
    Summary
);

impl Title {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let t = raw.trim();
        let n = t.chars().count();
        if n == 0 || n > MAX_TITLE_CHARS {
            return Err(FieldError::new(field, format!("must be 1 to {MAX_TITLE_CHARS} characters")));
        }
        Ok(Title(t.to_string()))
    }
}

impl BodyMarkdown {
    pub fn parse(field: &str, raw: String) -> Result<Self, FieldError> {
        if raw.len() > MAX_BODY_BYTES {
            return Err(FieldError::new(field, "must be at most 512 KiB"));
        }
        Ok(BodyMarkdown(raw))
    }
}

impl Summary {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let t = raw.trim();
        if t.chars().count() > MAX_SUMMARY_CHARS {
            return Err(FieldError::new(field, format!("must be at most {MAX_SUMMARY_CHARS} characters")));
        }
        Ok(Summary(t.to_string()))
    }
}

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let e = raw.trim().to_lowercase();
        let invalid = || FieldError::new(field, "must be a valid email address");
        let (local, domain) = e.split_once('@').ok_or_else(invalid)?;
        let ok = !local.is_empty()
            && local.len() <= 64
            && e.len() <= 254
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !e.chars().any(|c| c.is_whitespace() || c.is_control())
            && !domain.contains('@');
        if ok {
            Ok(Email(e))
        } else {
            Err(invalid())
        }
    }
}

/// The longest URL accepted (after normalising).
pub const MAX_URL_LEN: usize = 2048;

impl HttpUrl {
    /// Parses with a real URL parser: http or https, a host, no credentials, at most 2,048 characters;
    /// keeps the normalised form (characters such as `"` `<` `>` percent-encoded).
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let invalid = || FieldError::new(field, "must be an absolute http or https URL with a host");
        let url = url::Url::parse(raw.trim()).map_err(|_| invalid())?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(invalid());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FieldError::new(field, "must not carry a user name or password"));
        }
        let normalised = url.to_string();
        if normalised.len() > MAX_URL_LEN {
            return Err(FieldError::new(field, format!("must be at most {MAX_URL_LEN} characters")));
        }
        Ok(HttpUrl(normalised))
    }
}

/// Tag names: trimmed, 1–50 characters each, at most 20, duplicates (by slug) dropped.
pub fn parse_tags(field: &str, raw: &[String]) -> Result<Vec<String>, FieldError> {
    if raw.len() > MAX_TAGS {
        return Err(FieldError::new(field, format!("at most {MAX_TAGS} tags")));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for name in raw {
        let t = name.trim();
        if t.is_empty() || t.chars().count() > MAX_TAG_CHARS {
            return Err(FieldError::new(field, format!("each tag must be 1 to {MAX_TAG_CHARS} characters")));
        }
        let slug = super::slug::Slug::from_title(t)
            .ok_or_else(|| FieldError::new(field, format!("tag `{t}` has no letters or digits")))?;
        if seen.insert(slug) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(Email::parse("email", " A@Example.COM ").map(Email::into_string), Ok("a@example.com".into()));
        for bad in ["", "a", "a@b", "@b.c", "a@.c", "a b@c.d"] {
            assert!(Email::parse("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn titles_must_have_1_to_200_chars() {
        assert!(Title::parse("title", "   ").is_err());
        assert!(Title::parse("title", &"é".repeat(200)).is_ok());
        assert!(Title::parse("title", &"é".repeat(201)).is_err());
    }

    #[test]
    fn urls_must_be_http_or_https_with_a_host_and_are_stored_normalised() {
        assert!(HttpUrl::parse("u", "https://x.test/a.png").is_ok());
        for bad in ["javascript:alert(1)", "http://", "https://", "data:text/html,x", "https://u:p@x.test/"] {
            assert!(HttpUrl::parse("u", bad).is_err(), "{bad}");
        }
        let hostile = HttpUrl::parse("u", "https://x/\"><script>alert(1)</script>").map(HttpUrl::into_string);
        assert_eq!(hostile.as_deref(), Ok("https://x/%22%3E%3Cscript%3Ealert(1)%3C/script%3E"));
        assert_eq!(
            HttpUrl::parse("u", "HTTPS://Example.COM").map(HttpUrl::into_string).as_deref(),
            Ok("https://example.com/")
        );
        assert!(HttpUrl::parse("u", &format!("https://x.test/{}", "a".repeat(2100))).is_err());
    }

    #[test]
    fn tags_are_limited_and_deduplicated_by_slug() {
        let tags = parse_tags("tags", &["Rust".into(), "rust".into(), "Go".into()]);
        assert_eq!(tags, Ok(vec!["Rust".to_string(), "Go".to_string()]));
        let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert!(parse_tags("tags", &many).is_err());
    }
}
