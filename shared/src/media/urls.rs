//! Where media is read from: the object keys, and the public URLs built on them (the query API's
//! `/media/` or `PRESSROOM_MEDIA_PUBLIC_URL`, a bucket or CDN whose paths are the keys).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::variants::{height_at, widths_for};
use super::MediaKind;

/// The object key (and URL path under the media base) of the original.
pub fn original_key(hash: &str, kind: MediaKind) -> String {
    format!("{hash}/original.{}", kind.ext())
}

/// The object key (and URL path under the media base) of a WebP variant.
pub fn variant_key(hash: &str, width: u32) -> String {
    format!("{hash}/{width}.webp")
}

/// One variant as a client sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VariantRef {
    pub width: u32,
    pub height: u32,
    pub url: String,
}

/// An image as clients see it: what a post's `cover` and the media API answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MediaRef {
    pub id: Uuid,
    pub hash: String,
    #[serde(rename = "type")]
    pub kind: MediaKind,
    pub width: u32,
    pub height: u32,
    pub alt: Option<String>,
    /// The original (metadata stripped).
    pub url: String,
    /// WebP variants, narrowest first (each URL answers with the original until the variant is made).
    pub variants: Vec<VariantRef>,
}

impl MediaRef {
    /// The client view of an image under the media base URL `base` (no trailing slash), listing every variant
    /// its width calls for (their URLs answer with the original until they are made).
    pub fn new(
        base: &str,
        id: Uuid,
        hash: &str,
        kind: MediaKind,
        (width, height): (u32, u32),
        alt: Option<String>,
    ) -> Self {
        let variants = widths_for(width)
            .into_iter()
            .map(|w| VariantRef {
                width: w,
                height: height_at(w, width, height),
                url: format!("{base}/{}", variant_key(hash, w)),
            })
            .collect();
        MediaRef {
            id,
            hash: hash.to_string(),
            kind,
            width,
            height,
            alt,
            url: format!("{base}/{}", original_key(hash, kind)),
            variants,
        }
    }

    /// Keeps only the variants that exist: for a media base that is a bucket or CDN (which cannot fall back
    /// to the original), so a page never points at an object not written yet.
    pub fn made_only(mut self, made: &[u32]) -> Self {
        self.variants.retain(|v| made.contains(&v.width));
        self
    }

    /// How a page shows the image: the card-sized `src`, a `srcset` of every variant and the original, and
    /// the intrinsic size. URLs on the site's own origin (`site_url`) become paths, so a page works on
    /// whatever address it was fetched from.
    pub fn responsive(&self, site_url: &str) -> Responsive {
        let local = |url: &str| url.strip_prefix(site_url).filter(|p| p.starts_with('/')).unwrap_or(url).to_string();
        let mut srcset: Vec<String> = self.variants.iter().map(|v| format!("{} {}w", local(&v.url), v.width)).collect();
        srcset.push(format!("{} {}w", local(&self.url), self.width));
        Responsive { src: local(self.card().0), srcset: srcset.join(", "), width: self.width, height: self.height }
    }

    /// The image social cards use: the 1280 variant when there is one, else the widest, else the original.
    pub fn card(&self) -> (&str, u32, u32) {
        self.variants
            .iter()
            .rev()
            .find(|v| v.width <= 1280)
            .map_or((self.url.as_str(), self.width, self.height), |v| (v.url.as_str(), v.width, v.height))
    }
}

/// An image as a page's `<img>` shows it ([`MediaRef::responsive`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Responsive {
    pub src: String,
    pub srcset: String,
    pub width: u32,
    pub height: u32,
}

/// The `sizes` of a post's images: the width of the page's column.
pub const SIZES: &str = "(max-width: 44rem) 100vw, 44rem";

/// The media base URL: `PRESSROOM_MEDIA_PUBLIC_URL` when set, else the query API's `/media` under the
/// public URL.
pub fn base(public_url: &str, media_public_url: Option<&str>) -> String {
    media_public_url.map_or_else(|| format!("{public_url}/media"), |u| u.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ref_lists_the_variants_its_width_calls_for_and_cards_use_the_1280_one() {
        let hash = "ab".repeat(32);
        let r = MediaRef::new("https://s.example/media", Uuid::nil(), &hash, MediaKind::Jpeg, (2000, 1000), None);
        assert_eq!(r.variants.iter().map(|v| v.width).collect::<Vec<_>>(), vec![320, 640, 1280, 1920]);
        assert_eq!(r.card(), (format!("https://s.example/media/{hash}/1280.webp").as_str(), 1280, 640));
        assert_eq!(r.url, format!("https://s.example/media/{hash}/original.jpg"));
        let direct = r.made_only(&[320]);
        assert_eq!(direct.variants.len(), 1);
        assert_eq!(direct.card().1, 320);
        let none = direct.made_only(&[]);
        assert_eq!(none.card(), (none.url.as_str(), 2000, 1000));
    }
}
