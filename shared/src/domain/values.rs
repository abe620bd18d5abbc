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
string_newtype!(
    /// An image's alt text: trimmed, at most 500 characters, no control characters.
    AltText
);

pub const MAX_ALT_CHARS: usize = 500;

impl AltText {
    /// None for an empty text (no alt).
    pub fn parse(field: &str, raw: &str) -> Result<Option<Self>, FieldError> {
        let t = raw.trim();
        if t.chars().any(char::is_control) {
            return Err(FieldError::new(field, "must not hold control characters"));
        }
        if t.chars().count() > MAX_ALT_CHARS {
            return Err(FieldError::new(field, format!("must be at most {MAX_ALT_CHARS} characters")));
        }
        Ok((!t.is_empty()).then(|| AltText(t.to_string())))
    }
}

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

/// True for characters that are invisible or reorder text around them: controls, and the format
/// characters (zero-width spaces and joiners, bidirectional marks, embeddings, overrides and isolates, the
/// byte-order mark, soft hyphen, word joiner, variation selectors, tags, Hangul fillers…). Two names that
/// differ only by these look the same; an override can make text read backwards.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Refuses text holding an invisible or bidirectional control character (naming the first one).
pub fn refuse_invisible(field: &str, raw: &str) -> Result<(), FieldError> {
    match raw.chars().find(|c| is_invisible(*c)) {
        Some(c) => Err(FieldError::new(
            field,
            format!("must not contain invisible or bidirectional control characters (found U+{:04X})", u32::from(c)),
        )),
        None => Ok(()),
    }
}

/// Unicode compatibility normalisation (NFKC): full-width, ligature and other compatibility forms become
/// the plain characters they look like.
pub fn nfkc(raw: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    raw.nfkc().collect()
}

pub const MAX_NAME_CHARS: usize = 100;

/// The reservation key of an (already normalised) display name: its lower-case form.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

string_newtype!(
    /// An author's display name: NFKC-normalised, trimmed, 1–100 characters, nothing invisible.
    AuthorName
);

impl AuthorName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        refuse_invisible(field, raw)?;
        let n = nfkc(raw).split_whitespace().collect::<Vec<_>>().join(" ");
        if n.is_empty() || n.chars().count() > MAX_NAME_CHARS {
            return Err(FieldError::new(field, format!("must be 1 to {MAX_NAME_CHARS} characters")));
        }
        Ok(AuthorName(n))
    }

    /// The key two names share when they differ only by case: no two authors may have the same one.
    pub fn key(&self) -> String {
        name_key(&self.0)
    }
}

impl Email {
    /// NFKC-normalised, trimmed and lower-cased; ASCII only (an internationalised domain in its `xn--`
    /// form), so no address can pass for another by a look-alike letter from another script.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        refuse_invisible(field, raw)?;
        let e = nfkc(raw.trim()).to_lowercase();
        if !e.is_ascii() {
            return Err(FieldError::new(
                field,
                "must be an ASCII address (write an internationalised domain in its xn-- form)",
            ));
        }
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
    fn look_alike_emails_and_names_are_refused_or_folded_together() {
        for bad in ["a\u{200B}dmin@x.test", "\u{0430}dmin@x.test", "admin@x.test\u{202E}", "ad\u{00AD}min@x.test"] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?}");
        }
        // Full-width letters are the same address once normalised.
        assert_eq!(Email::parse("email", "ＡＤＭＩＮ@x.test").map(Email::into_string), Ok("admin@x.test".into()));
        assert!(AuthorName::parse("name", "Ada\u{200D}Lovelace").is_err());
        assert!(AuthorName::parse("name", "\u{202E}ecalevoL adA").is_err());
        let a = AuthorName::parse("name", "  Ada   Lovelace ").map(AuthorName::into_string);
        assert_eq!(a.as_deref(), Ok("Ada Lovelace"));
        let (x, y) = (AuthorName::parse("n", "ADA LOVELACE"), AuthorName::parse("n", "ａｄａ lovelace"));
        assert_eq!(x.map(|n| n.key()), y.map(|n| n.key()), "same key: case and width do not make a new name");
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
