//! Property tests of the pure parts: slugs, Markdown rendering and sanitising, search excerpts, event
//! encoding and decoding (with upcasting from stored JSON).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use shared::domain::events::{DomainEvent, PostDrafted, PostEdited, CURRENT_SCHEMA_VERSION};
use shared::domain::slug::{Slug, MAX_SLUG_LEN};
use shared::read::render::{highlighted_excerpt, markdown_to_safe_html, MATCH_END, MATCH_START};

fn is_slug_shaped(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SLUG_LEN
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

proptest! {
    #[test]
    fn any_title_gives_a_well_formed_slug_or_none_and_parsing_a_slug_keeps_it(title in "\\PC{0,300}") {
        if let Some(slug) = Slug::from_title(&title) {
            prop_assert!(is_slug_shaped(slug.as_str()), "{:?} -> {:?}", title, slug.as_str());
            prop_assert_eq!(Slug::parse(slug.as_str()).ok().map(Slug::into_string), Some(slug.as_str().to_string()));
            let suffixed = slug.with_suffix(12);
            prop_assert!(is_slug_shaped(suffixed.as_str()) && suffixed.as_str().ends_with("-12"));
        }
    }

    #[test]
    fn rendered_markdown_never_carries_scripts_handlers_or_javascript_urls(
        parts in proptest::collection::vec(prop_oneof![
            Just("<script>alert(1)</script>".to_string()),
            Just("<img src=x onerror=alert(1)>".to_string()),
            Just("[x](javascript:alert(1))".to_string()),
            Just("<a href=\"JaVaScRiPt:alert(1)\">y</a>".to_string()),
            Just("<svg onload=alert(1)>".to_string()),
            Just("<iframe src=//x>".to_string()),
            Just("<div style=\"background:url(javascript:x)\">".to_string()),
            "\\PC{0,40}",
        ], 0..12)
    ) {
        let html = markdown_to_safe_html(&parts.join("\n"));
        // Inside tags (text may mention anything: it is escaped).
        let tags: Vec<String> = html.split('<').skip(1).filter_map(|t| t.split('>').next()).map(str::to_lowercase).collect();
        for tag in &tags {
            for bad in ["script", "iframe", "svg", "onerror", "onload", "javascript:", "style="] {
                prop_assert!(!tag.contains(bad), "{} in <{}> of {}", bad, tag, html);
            }
        }
    }

    #[test]
    fn search_excerpts_carry_no_markup_but_balanced_marks(
        text in proptest::collection::vec(prop_oneof![
            "\\PC{0,20}".prop_map(|s| s),
            Just(MATCH_START.to_string()),
            Just(MATCH_END.to_string()),
            Just("<b onclick=x>".to_string()),
        ], 0..20)
    ) {
        let out = highlighted_excerpt(&text.concat());
        let stripped = out.replace("<mark>", "").replace("</mark>", "");
        prop_assert!(!stripped.contains('<') && !stripped.contains('>') && !stripped.contains('"'), "{}", out);
        prop_assert_eq!(out.matches("<mark>").count(), out.matches("</mark>").count());
    }

    #[test]
    fn events_decode_to_what_was_encoded(
        title in "\\PC{0,60}",
        body in "\\PC{0,200}",
        summary in proptest::option::of("\\PC{0,40}"),
        tags in proptest::collection::vec("\\PC{1,10}", 0..4),
    ) {
        let drafted = DomainEvent::PostDrafted(PostDrafted {
            author_id: uuid::Uuid::now_v7(),
            title: title.clone(),
            slug: "a-slug".into(),
            body_markdown: body,
            summary,
            tags,
            cover_image_url: None,
            cover_media_id: None,
        });
        let edited = DomainEvent::PostEdited(PostEdited { title: Some(title), ..PostEdited::default() });
        for event in [drafted, edited] {
            let stored = event.payload_json();
            let decoded = DomainEvent::decode(event.event_type(), CURRENT_SCHEMA_VERSION, &stored).unwrap();
            prop_assert_eq!(&decoded, &event);
            // An older schema version goes through the upcaster first and reads the same.
            let upcast = DomainEvent::decode(event.event_type(), CURRENT_SCHEMA_VERSION - 1, &stored).unwrap();
            prop_assert_eq!(&upcast, &event);
        }
    }
}

#[test]
fn unknown_types_and_future_versions_are_decode_errors_not_panics() {
    let payload = serde_json::value::RawValue::from_string("{}".into()).unwrap();
    assert!(DomainEvent::decode("PostVanished", CURRENT_SCHEMA_VERSION, &payload).is_err());
    assert!(DomainEvent::decode("PostDeleted", CURRENT_SCHEMA_VERSION + 1, &payload).is_err());
    let garbage = serde_json::value::RawValue::from_string("[1,2]".into()).unwrap();
    assert!(DomainEvent::decode("PostDrafted", CURRENT_SCHEMA_VERSION, &garbage).is_err());
}
