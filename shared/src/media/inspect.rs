//! An upload, checked before anything is stored: the type sniffed from the bytes (SVG, AVIF and anything
//! else refused), the declared type compared, the dimensions bounded before decoding (bombs), the whole
//! image decoded (truncation), markup or trailing data refused (polyglots), EXIF/XMP/comments stripped
//! (the EXIF orientation applied to the pixels first), and the SHA-256 of the bytes that will be stored.

use std::io::Cursor;

use bytes::Bytes;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use img_parts::{ImageEXIF, ImageICC};
use sha2::{Digest, Sha256};

use super::MediaKind;

/// Why an upload is refused; nothing is stored for any of these.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediaError {
    /// 415: not an image type Pressroom takes, or not the type the request declared.
    #[error("{0}")]
    Unsupported(String),
    /// 422: an image type Pressroom takes, but these bytes are not a safe, whole image of it.
    #[error("{0}")]
    Invalid(String),
}

/// Bounds on what is decoded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Width × height above this is refused before decoding (a decompression bomb).
    pub max_pixels: u64,
}

/// A checked upload: what will be stored, and its facts.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub kind: MediaKind,
    pub width: u32,
    pub height: u32,
    /// The bytes to store: the upload with its metadata stripped.
    pub bytes: Bytes,
    /// SHA-256 of `bytes`, lowercase hex.
    pub hash: String,
}

/// The longest side accepted, whatever the pixel count.
const MAX_SIDE: u32 = 30_000;

/// Checks an upload (see the module doc). `declared` is the request's `Content-Type`, if any.
pub fn inspect(raw: Bytes, declared: Option<&str>, limits: Limits) -> Result<Inspected, MediaError> {
    let kind = sniff(&raw)?;
    if let Some(declared) = declared {
        match MediaKind::from_declared(declared) {
            Ok(Some(claimed)) if claimed != kind => {
                return Err(MediaError::Unsupported(format!(
                    "the bytes are a {} image, not {} as declared",
                    kind.as_str().to_uppercase(),
                    claimed.mime()
                )))
            }
            Ok(_) => {}
            Err(other) => {
                return Err(MediaError::Unsupported(format!(
                    "`{other}` is not an image type Pressroom takes (JPEG, PNG, GIF, WebP)"
                )))
            }
        }
    }
    if let Some(marker) = markup(&raw) {
        return Err(MediaError::Invalid(format!("the file also holds markup (`{marker}`): a polyglot is refused")));
    }
    let raw = trim_trailing(kind, raw)?;
    let (image, orientation) = decode(&raw, kind, limits)?;
    let (bytes, width, height) = if orientation == image::metadata::Orientation::NoTransforms {
        (strip(kind, raw)?, image.width(), image.height())
    } else {
        // The orientation lives in the EXIF that is stripped: it goes into the pixels instead.
        let mut image = image;
        image.apply_orientation(orientation);
        (reencode(&image, kind)?, image.width(), image.height())
    };
    let hash = crate::hex(&Sha256::digest(&bytes));
    Ok(Inspected { kind, width, height, bytes, hash })
}

/// The image type of the bytes, from their signature.
pub fn sniff(b: &[u8]) -> Result<MediaKind, MediaError> {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(MediaKind::Jpeg);
    }
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(MediaKind::Png);
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return Ok(MediaKind::Gif);
    }
    if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        return Ok(MediaKind::Webp);
    }
    if b.len() >= 12 && &b[4..8] == b"ftyp" {
        return Err(MediaError::Unsupported(
            "AVIF and HEIC images cannot be decoded by this build; upload JPEG, PNG, GIF or WebP".into(),
        ));
    }
    let head = String::from_utf8_lossy(&b[..b.len().min(1024)]).to_ascii_lowercase();
    if head.contains("<svg") {
        return Err(MediaError::Unsupported("SVG is refused: it can carry script".into()));
    }
    Err(MediaError::Unsupported("not a JPEG, PNG, GIF or WebP image".into()))
}

/// Markup a browser or an interpreter would act on, anywhere in the file. Only markers of five bytes or more:
/// compressed pixels hold any short byte string by chance (a 10 MB photo holds `<svg` one time in thirty).
fn markup(b: &[u8]) -> Option<&'static str> {
    const MARKERS: [&str; 6] = ["<script", "<html", "<?php", "<!doctype", "<iframe", "<object"];
    b.windows(9).find_map(|w| {
        if w[0] != b'<' {
            return None;
        }
        MARKERS.iter().copied().find(|m| w.len() >= m.len() && w[..m.len()].eq_ignore_ascii_case(m.as_bytes()))
    })
}

/// The bytes up to the image's end: data after a JPEG's end of image (phones append previews) is cut;
/// after a PNG's IEND, a GIF's trailer or a WebP's RIFF length it is refused (a polyglot's hiding place).
fn trim_trailing(kind: MediaKind, raw: Bytes) -> Result<Bytes, MediaError> {
    let end = match kind {
        MediaKind::Jpeg => jpeg_end(&raw),
        MediaKind::Png => png_end(&raw),
        MediaKind::Webp => {
            let size = raw.get(4..8).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize);
            size.map(|s| s + 8 + (s % 2))
        }
        MediaKind::Gif => gif_end(&raw),
    };
    let Some(end) = end.filter(|&e| e <= raw.len()) else {
        return Err(MediaError::Invalid("the image is truncated or corrupt".into()));
    };
    if end < raw.len() && kind != MediaKind::Jpeg && raw[end..].iter().any(|&b| b != 0) {
        return Err(MediaError::Invalid("data follows the end of the image: a polyglot is refused".into()));
    }
    Ok(raw.slice(..end))
}

/// Just past the first end-of-image marker after the first start-of-scan.
fn jpeg_end(b: &[u8]) -> Option<usize> {
    let sos = b.windows(2).position(|w| w == [0xFF, 0xDA])?;
    b[sos..].windows(2).position(|w| w == [0xFF, 0xD9]).map(|p| sos + p + 2)
}

/// Just past the IEND chunk.
fn png_end(b: &[u8]) -> Option<usize> {
    let mut at = 8usize;
    loop {
        let len = u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize;
        let kind = b.get(at + 4..at + 8)?;
        let next = at.checked_add(12)?.checked_add(len)?;
        if kind == b"IEND" {
            return Some(next);
        }
        at = next;
    }
}

/// Just past the GIF trailer (0x3B), walking blocks.
fn gif_end(b: &[u8]) -> Option<usize> {
    let skip_sub_blocks = |mut at: usize| -> Option<usize> {
        loop {
            let n = *b.get(at)? as usize;
            at += 1 + n;
            if n == 0 {
                return Some(at);
            }
        }
    };
    let flags = *b.get(10)?;
    let mut at = 13 + if flags & 0x80 != 0 { 3 << ((flags & 7) + 1) } else { 0 };
    loop {
        match *b.get(at)? {
            0x3B => return Some(at + 1),
            0x21 => at = skip_sub_blocks(at + 2)?,
            0x2C => {
                let flags = *b.get(at + 9)?;
                at += 10 + if flags & 0x80 != 0 { 3 << ((flags & 7) + 1) } else { 0 };
                at = skip_sub_blocks(at + 1)?;
            }
            _ => return None,
        }
    }
}

/// Decodes the whole image within the limits; its EXIF orientation beside it.
fn decode(
    raw: &[u8],
    kind: MediaKind,
    limits: Limits,
) -> Result<(DynamicImage, image::metadata::Orientation), MediaError> {
    let corrupt = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => MediaError::Invalid("the image's dimensions are over the limit".into()),
        _ => MediaError::Invalid("the image is truncated or corrupt".into()),
    };
    let mut reader = ImageReader::with_format(Cursor::new(raw), format(kind));
    let (w, h) = reader.into_dimensions().map_err(corrupt)?;
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > limits.max_pixels {
        return Err(MediaError::Invalid(format!(
            "{w}×{h} pixels is over the limit of {} megapixels (a decompression bomb?)",
            limits.max_pixels / 1_000_000
        )));
    }
    reader = ImageReader::with_format(Cursor::new(raw), format(kind));
    let mut bounds = image::Limits::default();
    bounds.max_image_width = Some(MAX_SIDE);
    bounds.max_image_height = Some(MAX_SIDE);
    bounds.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(bounds);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    Ok((image, orientation))
}

pub(crate) fn format(kind: MediaKind) -> ImageFormat {
    match kind {
        MediaKind::Jpeg => ImageFormat::Jpeg,
        MediaKind::Png => ImageFormat::Png,
        MediaKind::Gif => ImageFormat::Gif,
        MediaKind::Webp => ImageFormat::WebP,
    }
}

/// The bytes without EXIF (GPS included), XMP, IPTC or comments; the ICC profile stays (colours).
fn strip(kind: MediaKind, raw: Bytes) -> Result<Bytes, MediaError> {
    let corrupt = |_| MediaError::Invalid("the image's metadata is malformed".into());
    Ok(match kind {
        MediaKind::Jpeg => {
            let mut jpeg = img_parts::jpeg::Jpeg::from_bytes(raw).map_err(corrupt)?;
            jpeg.set_exif(None);
            // APP1 (EXIF, XMP), APP13 (IPTC), COM: everything but JFIF (APP0), ICC (APP2) and Adobe (APP14).
            jpeg.segments_mut().retain(|s| !matches!(s.marker(), 0xE1 | 0xED | 0xFE));
            jpeg.encoder().bytes()
        }
        MediaKind::Png => {
            let mut png = img_parts::png::Png::from_bytes(raw).map_err(corrupt)?;
            png.set_exif(None);
            png.chunks_mut().retain(|c| !matches!(&c.kind(), b"tEXt" | b"zTXt" | b"iTXt" | b"tIME" | b"eXIf"));
            png.encoder().bytes()
        }
        MediaKind::Webp => {
            let mut webp = img_parts::webp::WebP::from_bytes(raw).map_err(corrupt)?;
            let icc = webp.icc_profile();
            webp.set_exif(None);
            webp.remove_chunks_by_id(*b"XMP ");
            webp.set_icc_profile(icc);
            webp.encoder().bytes()
        }
        // GIF has no EXIF; its comment blocks are inert text.
        MediaKind::Gif => raw,
    })
}

/// Re-encodes pixels in the original's type (after the orientation was applied).
fn reencode(image: &DynamicImage, kind: MediaKind) -> Result<Bytes, MediaError> {
    let mut out = Cursor::new(Vec::new());
    let result = match kind {
        MediaKind::Jpeg => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(image),
        _ => image.write_to(&mut out, format(kind)),
    };
    result.map_err(|e| MediaError::Invalid(format!("the image cannot be re-encoded: {e}")))?;
    Ok(Bytes::from(out.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_pixels: 50_000_000 };

    fn encoded(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        let written = DynamicImage::ImageRgb8(img).write_to(&mut out, format);
        assert!(written.is_ok());
        out.into_inner()
    }

    /// A JPEG whose EXIF says "rotate 90° clockwise to display" (orientation 6).
    fn rotated_jpeg(w: u32, h: u32) -> Vec<u8> {
        let jpeg = encoded(w, h, ImageFormat::Jpeg);
        let exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0";
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(exif);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn the_exif_orientation_goes_into_the_pixels_before_the_exif_is_stripped() {
        let checked = inspect(Bytes::from(rotated_jpeg(40, 20)), Some("image/jpeg"), LIMITS);
        let checked = checked.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((checked.width, checked.height), (20, 40));
        assert!(!checked.bytes.windows(4).any(|w| w == b"Exif"));
        let stored = image::load_from_memory(&checked.bytes).map(|i| (i.width(), i.height()));
        assert_eq!(stored.ok(), Some((20, 40)));
    }

    #[test]
    fn the_type_comes_from_the_bytes_and_must_match_the_declared_one() {
        let png = encoded(4, 4, ImageFormat::Png);
        assert_eq!(sniff(&png), Ok(MediaKind::Png));
        assert!(matches!(
            inspect(Bytes::from(png.clone()), Some("image/gif"), LIMITS),
            Err(MediaError::Unsupported(_))
        ));
        assert!(inspect(Bytes::from(png), Some("application/octet-stream"), LIMITS).is_ok());
        assert!(
            matches!(sniff(b"<svg xmlns='http://www.w3.org/2000/svg'/>"), Err(MediaError::Unsupported(m)) if m.contains("SVG"))
        );
        assert!(matches!(sniff(b"\0\0\0\x1cftypheic\0\0\0\0"), Err(MediaError::Unsupported(m)) if m.contains("AVIF")));
    }

    #[test]
    fn trailing_bytes_are_refused_after_a_png_and_cut_after_a_jpeg() {
        let mut png = encoded(4, 4, ImageFormat::Png);
        png.extend_from_slice(b"PK\x03\x04 a zip after the image");
        assert!(matches!(inspect(Bytes::from(png), None, LIMITS), Err(MediaError::Invalid(_))));
        let mut jpeg = encoded(8, 8, ImageFormat::Jpeg);
        let len = jpeg.len();
        jpeg.extend_from_slice(b"appended preview bytes");
        let checked = inspect(Bytes::from(jpeg), None, LIMITS).unwrap_or_else(|e| panic!("{e}"));
        assert!(checked.bytes.len() <= len && checked.bytes.ends_with(&[0xFF, 0xD9]));
        let gif = encoded(3, 3, ImageFormat::Gif);
        assert_eq!(gif_end(&gif), Some(gif.len()));
    }
}
