//! Images in a post's body made responsive: each `<img>` of the sanitized HTML whose `src` is one of our
//! media URLs (`/media/<sha256>/…`, on the site or the media base) is rewritten with the image's `srcset`,
//! `sizes`, intrinsic `width`/`height` (no layout shift) and lazy loading; every other tag is left as it is.

use std::collections::HashMap;

use super::is_hash;
use super::urls::{Responsive, SIZES};

/// The hashes of the media images `html` shows (each once, in order of appearance).
pub fn image_hashes(html: &str, bases: &[&str]) -> Vec<String> {
    let mut hashes: Vec<String> = Vec::new();
    for tag in img_tags(html) {
        if let Some(hash) = tag.src().and_then(|src| media_hash(src, bases)) {
            if !hashes.iter().any(|h| h == hash) {
                hashes.push(hash.to_string());
            }
        }
    }
    hashes
}

/// `html` with the `<img>` of every image in `images` (by hash) rewritten; None when nothing changed.
pub fn with_responsive_images(html: &str, bases: &[&str], images: &HashMap<String, Responsive>) -> Option<String> {
    let mut out = String::with_capacity(html.len() + images.len() * 256);
    let mut copied = 0;
    for tag in img_tags(html) {
        let Some(image) = tag.src().and_then(|src| media_hash(src, bases)).and_then(|h| images.get(h)) else {
            continue;
        };
        out.push_str(&html[copied..tag.start]);
        out.push_str(&format!(
            r#"<img src="{}" srcset="{}" sizes="{SIZES}" width="{}" height="{}""#,
            escape(&image.src),
            escape(&image.srcset),
            image.width,
            image.height
        ));
        // The author's alt text as the sanitizer serialized it (already escaped).
        if let Some(alt) = tag.attr("alt") {
            out.push_str(&format!(r#" alt="{alt}""#));
        }
        out.push_str(r#" loading="lazy" decoding="async">"#);
        copied = tag.end;
    }
    (copied > 0).then(|| {
        out.push_str(&html[copied..]);
        out
    })
}

/// The media hash a `src` names, when it is one of our media URLs: `/media/<hash>/…` or `<base>/<hash>/…`.
fn media_hash<'a>(src: &'a str, bases: &[&str]) -> Option<&'a str> {
    let rest = std::iter::once("/media")
        .chain(bases.iter().copied())
        .find_map(|base| src.strip_prefix(base).and_then(|r| r.strip_prefix('/')))?;
    let (hash, _) = rest.split_once('/')?;
    is_hash(hash).then_some(hash)
}

/// URLs in attribute values: `&` and `"` escaped (the only characters a double-quoted value needs).
fn escape(url: &str) -> String {
    url.replace('&', "&amp;").replace('"', "&quot;")
}

/// One `<img …>` tag of serialized HTML: where it is and its attributes (values as serialized, escaped).
struct ImgTag<'a> {
    start: usize,
    end: usize,
    attrs: Vec<(&'a str, &'a str)>,
}

impl<'a> ImgTag<'a> {
    fn attr(&self, name: &str) -> Option<&'a str> {
        self.attrs.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }

    /// The `src`, unescaped as far as a URL needs (`&amp;`).
    fn src(&self) -> Option<&'a str> {
        self.attr("src").filter(|s| !s.contains('&'))
    }
}

/// The `<img>` tags of HTML as html5ever serializes it (what ammonia returns): attribute values always
/// double-quoted, `"` inside them escaped; a `>` inside a value (an alt text's) does not end the tag.
fn img_tags(html: &str) -> impl Iterator<Item = ImgTag<'_>> {
    let mut from = 0;
    std::iter::from_fn(move || loop {
        let start = from + html[from..].find("<img")?;
        let mut at = start + 4;
        from = at;
        let mut attrs = Vec::new();
        let bytes = html.as_bytes();
        loop {
            while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            let end = match bytes.get(at) {
                None => return None,
                Some(b'>') => Some(at + 1),
                Some(b'/') if bytes.get(at + 1) == Some(&b'>') => Some(at + 2),
                _ => None,
            };
            if let Some(end) = end {
                // The next search starts after this tag: an alt text may hold a `<img` of its own.
                from = end;
                return Some(ImgTag { start, end, attrs });
            }
            let name_len = html[at..].find(|c: char| c == '=' || c == '>' || c == '/' || c.is_ascii_whitespace());
            let Some(name_len) = name_len.filter(|&n| n > 0) else { break };
            let name = &html[at..at + name_len];
            at += name_len;
            if html[at..].starts_with("=\"") {
                let value_start = at + 2;
                let len = html[value_start..].find('"')?;
                attrs.push((name, &html[value_start..value_start + len]));
                at = value_start + len + 1;
            } else {
                attrs.push((name, ""));
            }
        }
        // Not a well-formed tag (a `<imgx`, say): look further on.
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hash(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn images() -> HashMap<String, Responsive> {
        let image = Responsive {
            src: format!("/media/{}/1280.webp", hash('a')),
            srcset: format!("/media/{0}/320.webp 320w, /media/{0}/original.png 2000w", hash('a')),
            width: 2000,
            height: 1000,
        };
        HashMap::from([(hash('a'), image)])
    }

    #[test]
    fn a_media_image_gets_its_srcset_size_and_lazy_loading_and_keeps_its_escaped_alt() {
        let html = format!(
            r#"<p>Look: <img src="/media/{}/640.webp" alt="a &quot;gradient&quot; > b" width="9"> and <img src="https://x.example/y.png" alt="other"></p>"#,
            hash('a')
        );
        assert_eq!(image_hashes(&html, &[]), vec![hash('a')]);
        let out = with_responsive_images(&html, &[], &images()).unwrap();
        assert_eq!(
            out,
            format!(
                r#"<p>Look: <img src="/media/{0}/1280.webp" srcset="/media/{0}/320.webp 320w, /media/{0}/original.png 2000w" sizes="{SIZES}" width="2000" height="1000" alt="a &quot;gradient&quot; > b" loading="lazy" decoding="async"> and <img src="https://x.example/y.png" alt="other"></p>"#,
                hash('a')
            )
        );
    }

    #[test]
    fn images_on_the_media_base_are_recognised_and_unknown_or_foreign_ones_left_alone() {
        let base = "https://cdn.example/m";
        let html = format!(
            r#"<img src="{base}/{0}/320.webp"><img src="/media/{1}/320.webp"><img src="https://evil.example/media/{0}/1.webp"><img src="/media/nothex/1.webp">"#,
            hash('a'),
            hash('b')
        );
        assert_eq!(image_hashes(&html, &[base]), vec![hash('a'), hash('b')]);
        let out = with_responsive_images(&html, &[base], &images()).unwrap();
        assert_eq!(out.matches("srcset=").count(), 1, "{out}");
        assert!(out.ends_with(&format!(
            r#"<img src="/media/{}/320.webp"><img src="https://evil.example/media/{}/1.webp"><img src="/media/nothex/1.webp">"#,
            hash('b'),
            hash('a')
        )));
        assert_eq!(with_responsive_images("<p>no images</p><imgx>", &[base], &images()), None);
        // Markup inside an alt text is the alt text's, not a tag.
        let tricky = format!(r#"<img src="/media/{}/1.webp" alt="<img src=/media/{}/2.webp>">"#, hash('a'), hash('b'));
        assert_eq!(image_hashes(&tricky, &[]), vec![hash('a')]);
        assert_eq!(with_responsive_images(&tricky, &[], &images()).unwrap().matches("<img").count(), 2);
    }
}
