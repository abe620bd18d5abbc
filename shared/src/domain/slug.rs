//! Slugs: lowercase ASCII words joined by single `-`, at most 80 characters, transliterated from any script.

use serde::{Deserialize, Serialize};

pub const MAX_SLUG_LEN: usize = 80;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slug(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SlugError {
    #[error("slug is empty after normalising to a-z, 0-9 and -")]
    Empty,
    #[error("slug is longer than {MAX_SLUG_LEN} characters after normalising")]
    TooLong,
    #[error("slug must not contain invisible or bidirectional control characters")]
    Invisible,
}

impl Slug {
    /// Normalises an explicit slug; an empty or over-long result is an error.
    pub fn parse(raw: &str) -> Result<Self, SlugError> {
        // Normalising would drop them silently; an explicit slug that holds them is refused instead.
        if raw.chars().any(super::values::is_invisible) {
            return Err(SlugError::Invisible);
        }
        let s = normalise(raw);
        if s.is_empty() {
            return Err(SlugError::Empty);
        }
        if s.len() > MAX_SLUG_LEN {
            return Err(SlugError::TooLong);
        }
        Ok(Slug(s))
    }

    /// Derives a slug from a title, cutting at a word boundary to fit; `None` when nothing survives.
    pub fn from_title(title: &str) -> Option<Self> {
        let s = normalise(title);
        if s.is_empty() {
            return None;
        }
        Some(Slug(truncate_words(&s, MAX_SLUG_LEN)))
    }

    /// The `n`-th candidate for a generated slug: `base`, `base-2`, `base-3`…, still within the length limit.
    pub fn with_suffix(&self, n: u32) -> Slug {
        if n <= 1 {
            return self.clone();
        }
        let suffix = format!("-{n}");
        let base = truncate_words(&self.0, MAX_SLUG_LEN - suffix.len());
        Slug(format!("{base}{suffix}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn normalise(raw: &str) -> String {
    let ascii = deunicode::deunicode(raw).to_lowercase();
    let mut out = String::with_capacity(ascii.len());
    for word in ascii.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(word);
    }
    out
}

fn truncate_words(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let cut = &s[..max];
    match cut.rfind('-') {
        Some(i) if i > 0 => cut[..i].to_string(),
        _ => cut.trim_end_matches('-').to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transliterates_and_joins_words_with_single_dashes() {
        let s = Slug::from_title("  Ünïcödé — Crème Brûlée!! 2026 ").map(Slug::into_string);
        assert_eq!(s.as_deref(), Some("unicode-creme-brulee-2026"));
    }

    #[test]
    fn explicit_slug_that_normalises_to_nothing_is_rejected() {
        assert_eq!(Slug::parse("--- !!"), Err(SlugError::Empty));
    }

    #[test]
    fn explicit_slug_over_80_chars_is_rejected_but_titles_are_cut_at_a_word() {
        let long = "word ".repeat(30);
        assert_eq!(Slug::parse(&long), Err(SlugError::TooLong));
        let s = Slug::from_title(&long).map(Slug::into_string).unwrap_or_default();
        assert!(s.len() <= MAX_SLUG_LEN && !s.ends_with('-'), "{s}");
    }

    #[test]
    fn suffixes_count_from_two_and_keep_the_limit() {
        let base = Slug::from_title(&"abcdefghij ".repeat(10)).unwrap_or_else(|| Slug("x".into()));
        assert_eq!(base.with_suffix(1), base);
        let second = base.with_suffix(2);
        assert!(second.as_str().ends_with("-2") && second.as_str().len() <= MAX_SLUG_LEN);
    }
}
