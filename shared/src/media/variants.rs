//! Responsive variants: the widths made for an image (never wider than it), and the resize and WebP
//! encoding that makes them — CPU work for a blocking thread, never for a request.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageReader};

use super::MediaKind;

/// The widths every image gets a WebP variant at, when it is wider.
pub const WIDTHS: [u32; 4] = [320, 640, 1280, 1920];

/// WebP quality (0–100) of the variants.
pub const QUALITY: f32 = 80.0;

/// The variant widths of an image this wide (never upscaled).
pub fn widths_for(width: u32) -> Vec<u32> {
    WIDTHS.into_iter().filter(|&w| w < width).collect()
}

/// The height of the `width`-wide variant of a `w`×`h` image (aspect kept, at least 1).
pub fn height_at(width: u32, w: u32, h: u32) -> u32 {
    ((u64::from(h) * u64::from(width) + u64::from(w) / 2) / u64::from(w.max(1))).max(1) as u32
}

#[derive(Debug, thiserror::Error)]
pub enum VariantError {
    #[error("the original cannot be decoded: {0}")]
    Decode(#[from] image::ImageError),
    #[error("the WebP encoder refused the image: {0}")]
    Encode(String),
}

/// Every variant of an original (widest first), as `(width, WebP bytes)`. The original is decoded once
/// and each variant is resized from the next wider one.
pub fn make(original: &[u8], kind: MediaKind, widths: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, VariantError> {
    let mut image = ImageReader::with_format(Cursor::new(original), super::inspect::format(kind)).decode()?;
    let mut sorted = widths.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let mut out = Vec::with_capacity(sorted.len());
    for width in sorted {
        let height = height_at(width, image.width(), image.height());
        image = image.resize_exact(width, height, FilterType::CatmullRom);
        out.push((width, encode_webp(&image)?));
    }
    Ok(out)
}

/// Lossy WebP at [`QUALITY`] (with alpha when the image has it).
fn encode_webp(image: &DynamicImage) -> Result<Vec<u8>, VariantError> {
    let (w, h) = (image.width(), image.height());
    let memory = if image.color().has_alpha() {
        let rgba = image.to_rgba8();
        webp::Encoder::from_rgba(rgba.as_raw(), w, h).encode_simple(false, QUALITY)
    } else {
        let rgb = image.to_rgb8();
        webp::Encoder::from_rgb(rgb.as_raw(), w, h).encode_simple(false, QUALITY)
    };
    memory.map(|m| m.to_vec()).map_err(|e| VariantError::Encode(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_are_never_wider_than_the_original() {
        assert_eq!(widths_for(300), Vec::<u32>::new());
        assert_eq!(widths_for(1280), vec![320, 640]);
        assert_eq!(widths_for(4000), WIDTHS.to_vec());
        assert_eq!(height_at(640, 1280, 853), 427);
    }
}
