//! Thumbnails of uploaded images, so lists never load the full picture.
//! Decoding an untrusted image is where decompression bombs go off, so the
//! dimensions are read from the header first and refused when too large,
//! and the decoder runs under allocation limits. Callers run this on a
//! blocking thread.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::attachments::policy::Kind;
use crate::error::{AppError, AppResult};

/// Longest side of a thumbnail, in pixels.
pub const THUMB_SIDE: u32 = 320;
/// Largest image accepted, per side and in total.
pub const MAX_SIDE: u32 = 8000;
pub const MAX_PIXELS: u64 = 40_000_000;
/// Most memory one decode may allocate.
const MAX_ALLOC: u64 = 256 * 1024 * 1024;

/// An image's size and its thumbnail.
pub struct Thumbnail {
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
    pub mime: &'static str,
}

fn format_of(kind: Kind) -> Option<ImageFormat> {
    match kind {
        Kind::Jpeg => Some(ImageFormat::Jpeg),
        Kind::Png => Some(ImageFormat::Png),
        Kind::Gif => Some(ImageFormat::Gif),
        Kind::Webp => Some(ImageFormat::WebP),
        _ => None,
    }
}

fn unreadable(e: image::ImageError) -> AppError {
    tracing::debug!(error = %e, "image refused");
    AppError::Unprocessable("the image could not be read".into())
}

/// Decodes a raster image (its first frame) and makes a thumbnail of at
/// most [`THUMB_SIDE`] pixels a side: PNG when it has transparency, else
/// JPEG. None for kinds that are not raster images.
pub fn make(kind: Kind, bytes: &[u8]) -> AppResult<Option<Thumbnail>> {
    let Some(format) = format_of(kind) else {
        return Ok(None);
    };
    let reader = || {
        let mut r = ImageReader::with_format(Cursor::new(bytes), format);
        let mut limits = Limits::default();
        limits.max_image_width = Some(MAX_SIDE);
        limits.max_image_height = Some(MAX_SIDE);
        limits.max_alloc = Some(MAX_ALLOC);
        r.limits(limits);
        r
    };
    let (w, h) = reader().into_dimensions().map_err(|e| match e {
        image::ImageError::Limits(_) => too_large(),
        other => unreadable(other),
    })?;
    if w == 0 || h == 0 {
        return Err(AppError::Unprocessable("the image is empty".into()));
    }
    if w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(too_large());
    }
    let mut decoder = reader().into_decoder().map_err(unreadable)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut full = DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    full.apply_orientation(orientation);
    let (width, height) = (full.width(), full.height());
    let small = if width > THUMB_SIDE || height > THUMB_SIDE {
        full.thumbnail(THUMB_SIDE, THUMB_SIDE)
    } else {
        full
    };
    let mut out = Cursor::new(Vec::new());
    let mime = if small.color().has_alpha() {
        small
            .write_to(&mut out, ImageFormat::Png)
            .map_err(internal)?;
        "image/png"
    } else {
        JpegEncoder::new_with_quality(&mut out, 80)
            .encode_image(&small.to_rgb8())
            .map_err(internal)?;
        "image/jpeg"
    };
    Ok(Some(Thumbnail {
        width,
        height,
        bytes: out.into_inner(),
        mime,
    }))
}

fn too_large() -> AppError {
    AppError::Unprocessable(format!(
        "images may be at most {MAX_SIDE}×{MAX_SIDE} pixels and {} megapixels",
        MAX_PIXELS / 1_000_000
    ))
}

fn internal(e: image::ImageError) -> AppError {
    AppError::Internal(format!("thumbnail encoding: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, alpha: bool) -> Vec<u8> {
        let img = if alpha {
            DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
                w,
                h,
                image::Rgba([1, 2, 3, 4]),
            ))
        } else {
            DynamicImage::ImageRgb8(image::RgbImage::from_pixel(w, h, image::Rgb([200, 10, 10])))
        };
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// PNG's chunk checksum, so a doctored header still looks genuine.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn thumbnails_fit_the_box_and_keep_the_aspect() {
        let t = make(Kind::Png, &png(1000, 500, false)).unwrap().unwrap();
        assert_eq!((t.width, t.height), (1000, 500));
        assert_eq!(t.mime, "image/jpeg");
        let thumb = image::load_from_memory(&t.bytes).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 160));
        let t = make(Kind::Png, &png(10, 10, true)).unwrap().unwrap();
        assert_eq!(t.mime, "image/png");
    }

    #[test]
    fn huge_dimensions_are_refused_before_decoding() {
        // A PNG header claiming 100000×100000 pixels, with no data at all.
        let mut bomb = png(1, 1, false);
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = make(Kind::Png, &bomb).err().expect("refused");
        assert_eq!(err.status().as_u16(), 422);
    }

    #[test]
    fn documents_get_no_thumbnail_and_broken_images_are_refused() {
        assert!(make(Kind::Pdf, b"%PDF-1.4").unwrap().is_none());
        let mut broken = png(50, 50, false);
        broken.truncate(40);
        assert_eq!(
            make(Kind::Png, &broken).err().unwrap().status().as_u16(),
            422
        );
    }
}
