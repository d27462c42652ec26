//! JPEG: read and written through the system's libjpeg-turbo ([`libjpeg`]) where a photo can
//! be redacted block by block ([`preview`] then [`rewrite()`]), else decoded by the `image` crate
//! and encoded afresh ([`encode`]). [`markers`] reads the file's structure.

pub mod libjpeg;
pub mod markers;
mod rewrite;

use image::{DynamicImage, RgbImage};

pub use libjpeg::{decode_full, Coefficients, Header, LibjpegError, Rect, Turn};
pub use rewrite::rewrite;

use super::metadata::{icc_for_output, kept_exif};
use super::{DecodeError, DecodeLimits, EncodeError, EncodeOptions, Photo};

/// The quality of JPEGs encoded afresh when the run sets none.
pub const DEFAULT_QUALITY: u8 = 92;

/// The whole photo, upright. A cut-off file is refused: the decoder would fill it with grey and
/// report success, and a photo whose lower part is missing cannot be said to have been checked.
/// What the `image` crate cannot read (arithmetic coding, say) is read by libjpeg-turbo.
pub fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<Photo, DecodeError> {
    if !markers::is_complete(bytes) {
        return Err(DecodeError::JpegIncomplete);
    }
    match super::image::decode(bytes, limits) {
        Err(e) if !e.is_limit() => decode_with_libjpeg(bytes, limits).map_err(|libjpeg| match libjpeg {
            DecodeError::Libjpeg(libjpeg) => DecodeError::JpegUnreadable { first: Box::new(e), libjpeg },
            other => other,
        }),
        other => other,
    }
}

fn decode_with_libjpeg(bytes: &[u8], limits: DecodeLimits) -> Result<Photo, DecodeError> {
    let segments = markers::segments(bytes).ok_or(DecodeError::JpegIncomplete)?;
    let exif = markers::exif(&segments);
    let orientation = exif
        .and_then(|e| exif::Reader::new().read_raw(e.to_vec()).ok())
        .and_then(|p| p.get_field(exif::Tag::Orientation, exif::In::PRIMARY).and_then(|f| f.value.get_uint(0)))
        .unwrap_or(1);
    let header = Header::read(bytes)?;
    let (w, h) = (header.width, header.height);
    if w.max(h) > limits.max_side || w as u64 * h as u64 * 3 > limits.max_alloc {
        return Err(DecodeError::PastLimits { width: w, height: h });
    }
    let turn = Turn::from_exif(orientation).unwrap_or_default();
    let rgb = turn.apply(decode_full(bytes, &header, limits.max_alloc.saturating_mul(2))?);
    Ok(Photo {
        rgb,
        alpha: None,
        grey: false,
        format: super::Format::Image(image::ImageFormat::Jpeg),
        icc: markers::icc(&segments),
        exif: exif.map(<[u8]>::to_vec),
        deep: None,
        animation: None,
    })
}

/// The photo encoded afresh (at the run's quality, else [`DEFAULT_QUALITY`]) with the metadata
/// the policy allows.
pub fn encode(photo: Photo, options: &EncodeOptions) -> Result<Vec<u8>, EncodeError> {
    let exif = photo.exif.as_deref().and_then(|e| kept_exif(e, options.metadata));
    let img = super::image::compose(photo.rgb, photo.alpha, photo.grey);
    let icc = icc_for_output(photo.icc, photo.grey);
    encode_pixels(&img, options.jpeg_quality.unwrap_or(DEFAULT_QUALITY), icc, exif)
}

/// A JPEG read only as far as detection needs: its coefficients and a reduced copy made from
/// them by libjpeg's DCT scaling (one pass over the compressed data for both). The redacted
/// copy is then written block by block ([`rewrite()`]).
pub struct Preview<'a> {
    /// The photo as stored.
    pub header: Header,
    /// How it turns upright (EXIF orientation): the rewrite turns its blocks.
    pub turn: Turn,
    /// The photo upright at a reduced size, its long side at least the detector's first-pass
    /// size.
    pub rgb: RgbImage,
    /// The coefficients the preview was made from, kept for the rewrite.
    pub coefficients: Coefficients<'a>,
    /// Memory libjpeg may use for this photo.
    pub max_memory: u64,
}

impl Preview<'_> {
    /// The photo's upright size.
    pub fn size(&self) -> (u32, u32) {
        self.turn.upright(self.header.width, self.header.height)
    }
}

/// The preview of a JPEG that can be redacted block by block: complete, 8-bit YCbCr or
/// greyscale, upright or with blocks that turn upright whole (a mirrored side a whole number of
/// iMCUs, as the sides of phone and camera photos are) and within `limits`. `None` for any other
/// file: the caller decodes it in full, which also explains what is wrong with a bad one.
pub fn preview(bytes: &[u8], limits: DecodeLimits, min_side: u32) -> Option<Preview<'_>> {
    let segments = markers::segments(bytes)?;
    let mut orientation = 1;
    if let Some(exif) = markers::exif(&segments) {
        let parsed = exif::Reader::new().read_raw(exif.to_vec()).ok()?;
        let field = parsed.get_field(exif::Tag::Orientation, exif::In::PRIMARY);
        orientation = field.map_or(Some(1), |f| f.value.get_uint(0))?;
    }
    let turn = Turn::from_exif(orientation)?;
    let header = Header::read(bytes).ok()?;
    let (w, h) = (header.width, header.height);
    let pixels = w as u64 * h as u64 * 3;
    if !header.supported
        || !turn.fits(&header)
        || w == 0
        || h == 0
        || w.max(h) > limits.max_side
        || pixels > limits.max_alloc
    {
        return None;
    }
    let long = w.max(h);
    let scale = (1..=8).find(|k| (long * k).div_ceil(8) >= min_side.min(long)).unwrap_or(8);
    let max_memory = limits.max_alloc.saturating_mul(2);
    match Coefficients::read(bytes, &header, scale, max_memory) {
        Ok((coefficients, stored)) => Some(Preview { header, turn, rgb: turn.apply(stored), coefficients, max_memory }),
        Err(e) => {
            tracing::debug!("libjpeg could not decode the preview ({e}); decoding in full");
            None
        }
    }
}

/// JPEG through `jpeg-encoder` (SIMD; about twice the speed of `image`'s encoder on 12 MP).
fn encode_pixels(
    img: &DynamicImage,
    quality: u8,
    icc: Option<Vec<u8>>,
    exif: Option<Vec<u8>>,
) -> Result<Vec<u8>, EncodeError> {
    use jpeg_encoder::{ColorType, Encoder};
    let (w, h) = (u16::try_from(img.width()), u16::try_from(img.height()));
    let (Ok(w), Ok(h)) = (w, h) else { return Err(EncodeError::TooLargeForJpeg) };
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, quality);
    if let Some(icc) = icc {
        enc.add_icc_profile(&icc)?;
    }
    if let Some(exif) = exif {
        let mut segment = b"Exif\0\0".to_vec();
        segment.extend_from_slice(&exif);
        if enc.add_app_segment(1, &segment).is_err() {
            tracing::warn!("EXIF block of {} bytes does not fit one JPEG segment: not kept", exif.len());
        }
    }
    let result = match img {
        DynamicImage::ImageLuma8(g) => enc.encode(g.as_raw(), w, h, ColorType::Luma),
        DynamicImage::ImageRgb8(rgb) => enc.encode(rgb.as_raw(), w, h, ColorType::Rgb),
        other => enc.encode(other.to_rgb8().as_raw(), w, h, ColorType::Rgb),
    };
    result?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_jpeg_does_not_decode() {
        let whole = markers::tests::jpeg(64, 48);
        assert!(decode(&whole, DecodeLimits::default()).is_ok());
        let err = decode(&whole[..whole.len() * 2 / 3], DecodeLimits::default()).err().unwrap();
        assert!(err.to_string().contains("cut short"), "{err}");
    }
}
