//! What every page's `<head>` says: title, description, canonical URL, Open Graph and Twitter tags, and
//! the JSON-LD block (schema.org), escaped so no value can end the `<script>` it sits in.

use serde_json::{json, Value};
use shared::read::model::{PostDetail, PostSummary};

use super::Site;

/// A page's head.
pub struct Head {
    pub title: String,
    pub description: String,
    /// Absolute, on `PRESSROOM_PUBLIC_URL`.
    pub canonical: String,
    /// `article` or `website`.
    pub og_type: &'static str,
    pub image: Option<SocialImage>,
    pub article: Option<ArticleMeta>,
    /// JSON-LD, already escaped for a `<script>` element.
    pub json_ld: String,
    /// The search box's value (the query on a search page).
    pub query: String,
    /// Pages no search engine should keep (search results, 404s).
    pub noindex: bool,
}

/// The image of a page's social cards (`og:image` and its size and alt when known).
pub struct SocialImage {
    pub url: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub alt: Option<String>,
}

/// The `article:*` Open Graph properties.
pub struct ArticleMeta {
    pub published: String,
    pub modified: String,
    pub author_url: String,
    pub tags: Vec<String>,
}

impl Head {
    /// A `website` page with this JSON-LD.
    pub fn website(site: &Site, title: String, description: String, path: &str, json_ld: &Value) -> Self {
        Head {
            title,
            description,
            canonical: format!("{}{path}", site.url),
            og_type: "website",
            image: None,
            article: None,
            json_ld: script_json(json_ld),
            query: String::new(),
            noindex: false,
        }
    }

    /// A post's head: `BlogPosting` and its `BreadcrumbList`.
    pub fn post(site: &Site, post: &PostDetail) -> Self {
        let s = &post.summary;
        let canonical = format!("{}/posts/{}", site.url, s.slug);
        let author_url = format!("{}/authors/{}", site.url, s.author.slug);
        let description = s.summary.clone().unwrap_or_else(|| shared::read::render::excerpt(&post.body_html, 160));
        let published = s.published_at.unwrap_or(s.updated_at).to_rfc3339();
        let modified = s.updated_at.to_rfc3339();
        let tags: Vec<String> = s.tags.iter().map(|t| t.name.clone()).collect();
        let mut crumbs = vec![crumb(1, &site.title, &format!("{}/", site.url))];
        if let Some(tag) = s.tags.first() {
            crumbs.push(crumb(2, &tag.name, &format!("{}/tags/{}", site.url, tag.slug)));
        }
        crumbs.push(crumb(crumbs.len() + 1, &s.title, &canonical));
        let mut posting = json!({
            "@type": "BlogPosting",
            "headline": s.title,
            "description": description,
            "datePublished": published,
            "dateModified": modified,
            "author": {"@type": "Person", "name": s.author.name, "url": author_url},
            "publisher": publisher(site),
            "mainEntityOfPage": {"@type": "WebPage", "@id": canonical},
            "url": canonical,
            "keywords": tags.join(", "),
            "wordCount": shared::read::render::word_count(&post.body_html),
        });
        // An uploaded cover's card-sized variant, else a cover URL given by hand.
        let image = match &post.cover {
            Some(cover) => {
                let (url, width, height) = cover.card();
                Some(SocialImage {
                    url: url.to_string(),
                    width: Some(width),
                    height: Some(height),
                    alt: cover.alt.clone(),
                })
            }
            None => post.cover_image_url.clone().map(|url| SocialImage { url, width: None, height: None, alt: None }),
        };
        if let Some(image) = &image {
            posting["image"] = match (image.width, image.height) {
                (Some(w), Some(h)) => json!([{"@type": "ImageObject", "url": image.url, "width": w, "height": h}]),
                _ => json!([image.url]),
            };
        }
        let graph = json!({"@context": "https://schema.org", "@graph": [
            posting,
            {"@type": "BreadcrumbList", "itemListElement": crumbs},
        ]});
        Head {
            title: format!("{} · {}", s.title, site.title),
            description,
            og_type: "article",
            image,
            article: Some(ArticleMeta { published, modified, author_url, tags }),
            json_ld: script_json(&graph),
            canonical,
            query: String::new(),
            noindex: false,
        }
    }
}

/// The site as the publisher of its posts.
pub fn publisher(site: &Site) -> Value {
    let mut org = json!({"@type": "Organization", "name": site.publisher, "url": format!("{}/", site.url)});
    if let Some(logo) = &site.logo_url {
        org["logo"] = json!({"@type": "ImageObject", "url": logo});
    }
    org
}

/// `WebSite` with its `SearchAction` (the home page).
pub fn website(site: &Site) -> Value {
    json!({
        "@context": "https://schema.org",
        "@type": "WebSite",
        "name": site.title,
        "description": site.description,
        "url": format!("{}/", site.url),
        "publisher": publisher(site),
        "potentialAction": {
            "@type": "SearchAction",
            "target": {"@type": "EntryPoint", "urlTemplate": format!("{}/search?q={{search_term_string}}", site.url)},
            "query-input": "required name=search_term_string",
        },
    })
}

/// A `CollectionPage` (a tag) or `ProfilePage` (an author) listing `posts`.
pub fn collection(site: &Site, kind: &str, name: &str, url: &str, posts: &[PostSummary]) -> Value {
    let items: Vec<Value> = posts
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"@type": "ListItem", "position": i + 1, "url": format!("{}/posts/{}", site.url, p.slug)}))
        .collect();
    let about = if kind == "ProfilePage" {
        json!({"@type": "Person", "name": name, "url": url})
    } else {
        json!({"@type": "Thing", "name": name})
    };
    json!({
        "@context": "https://schema.org",
        "@type": kind,
        "name": name,
        "url": url,
        "mainEntity": if kind == "ProfilePage" { about.clone() } else { json!({"@type": "ItemList", "itemListElement": items}) },
        "about": about,
        "isPartOf": {"@type": "WebSite", "name": site.title, "url": format!("{}/", site.url)},
    })
}

fn crumb(position: usize, name: &str, url: &str) -> Value {
    json!({"@type": "ListItem", "position": position, "name": name, "item": url})
}

/// JSON for a `<script type="application/ld+json">`: `<`, `>` and `&` as `\u` escapes, so no value
/// (a title of `</script>…`) can close the element or open a comment.
pub fn script_json(value: &Value) -> String {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "{}".into());
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_ld_cannot_close_its_script_element_and_still_parses_to_the_same_value() {
        let value = json!({"headline": "</script><script>alert(1)</script> & <!--"});
        let text = script_json(&value);
        assert!(!text.contains('<') && !text.contains('>') && !text.contains('&'), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).ok(), Some(value));
    }
}
