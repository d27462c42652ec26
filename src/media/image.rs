//! Still images through the `image` crate: PNG, WebP, TIFF, BMP, GIF (first frame), and JPEGs
//! that libjpeg cannot rewrite block by block (decoded here, encoded by [`super::jpeg`]).

use std::io::Cursor;

use image::codecs::{
    bmp::BmpEncoder, gif::GifEncoder, ico::IcoEncoder, png::PngEncoder, tiff::TiffEncoder, webp::WebPEncoder,
};
use image::{
    DynamicImage, GrayImage, ImageBuffer, ImageDecoder, ImageEncoder, ImageFormat, ImageReader, Limits, Luma, Rgba,
    RgbaImage,
};

use super::metadata::{icc_for_output, kept_exif};
use super::{DecodeError, DecodeLimits, Deep, EncodeError, EncodeOptions, Format, Photo};

/// The decoder's error in words people can act on, with its detail kept for a bug report.
fn explain(format: ImageFormat, e: image::ImageError) -> DecodeError {
    use image::ImageError as E;
    let format = format!("{format:?}").to_uppercase();
    match e {
        E::Limits(detail) => DecodeError::TooLarge(detail),
        E::Unsupported(detail) => DecodeError::Unsupported { format, detail },
        E::IoError(detail) if detail.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeError::CutShort { format, detail }
        }
        other => DecodeError::Damaged { format, detail: other },
    }
}

pub fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<Photo, DecodeError> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(DecodeError::Read)?;
    let format = reader.format().ok_or(DecodeError::UnknownFormat)?;
    let mut l = Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_alloc);
    reader.limits(l);
    let mut decoder = reader.into_decoder().map_err(|e| explain(format, e))?;
    let icc = decoder.icc_profile().ok().flatten();
    let exif = decoder.exif_metadata().ok().flatten();
    let orientation = decoder.orientation().map_err(|e| explain(format, e))?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| explain(format, e))?;
    img.apply_orientation(orientation);
    let colour = img.color();
    let alpha = colour.has_alpha().then(|| {
        let rgba = img.to_rgba8();
        GrayImage::from_fn(rgba.width(), rgba.height(), |x, y| image::Luma([rgba.get_pixel(x, y)[3]]))
    });
    // 16-bit samples are kept for formats that can write them back.
    let deep = (colour.bytes_per_pixel() / colour.channel_count() == 2
        && matches!(format, ImageFormat::Png | ImageFormat::Tiff))
    .then(|| {
        let rgba = img.to_rgba16();
        let alpha = colour
            .has_alpha()
            .then(|| ImageBuffer::from_fn(rgba.width(), rgba.height(), |x, y| Luma([rgba.get_pixel(x, y)[3]])));
        Deep { rgb: img.to_rgb16(), alpha, bits: 16 }
    });
    let animation = super::animation::decode(bytes, format, limits)?;
    Ok(Photo {
        rgb: img.to_rgb8(),
        alpha,
        grey: !colour.has_color(),
        format: Format::Image(format),
        icc,
        exif,
        deep,
        animation,
    })
}

/// Every format but JPEG, in the source's format with the metadata the policy allows.
pub fn encode(photo: Photo, options: &EncodeOptions) -> Result<Vec<u8>, EncodeError> {
    let Format::Image(format) = photo.format else { return Err(EncodeError::NotThisKind) };
    if let Some(animation) = photo.animation {
        return super::animation::encode(animation, format);
    }
    let exif = photo.exif.as_deref().and_then(|e| kept_exif(e, options.metadata));
    let icc = icc_for_output(photo.icc, photo.grey);
    let img = match photo.deep {
        Some(deep) => compose_deep(deep, photo.grey),
        None => compose(photo.rgb, photo.alpha, photo.grey),
    };
    let mut out = Cursor::new(Vec::new());
    match format {
        ImageFormat::Png => with_metadata(PngEncoder::new(&mut out), &img, icc, exif)?,
        ImageFormat::WebP => with_metadata(WebPEncoder::new_lossless(&mut out), &img, icc, exif)?,
        ImageFormat::Tiff => with_metadata(TiffEncoder::new(&mut out), &img, icc, None)?,
        ImageFormat::Bmp => img.write_with_encoder(BmpEncoder::new(&mut out))?,
        ImageFormat::Ico => img.write_with_encoder(IcoEncoder::new(&mut out))?,
        ImageFormat::Gif => GifEncoder::new(&mut out).encode_frame(image::Frame::new(img.to_rgba8()))?,
        other => return Err(EncodeError::UnsupportedFormat(other)),
    }
    Ok(out.into_inner())
}

fn with_metadata(
    mut enc: impl ImageEncoder,
    img: &DynamicImage,
    icc: Option<Vec<u8>>,
    exif: Option<Vec<u8>>,
) -> Result<(), image::ImageError> {
    // An encoder that cannot carry a profile or EXIF simply writes none: both are optional.
    if let Some(icc) = icc {
        let _ = enc.set_icc_profile(icc);
    }
    if let Some(exif) = exif {
        let _ = enc.set_exif_metadata(exif);
    }
    img.write_with_encoder(enc)
}

/// The deep samples, scaled to 16 bits, with their alpha and greyness.
fn compose_deep(mut deep: Deep, grey: bool) -> DynamicImage {
    if deep.bits < 16 {
        let max = (1u32 << deep.bits) - 1;
        let widen = |v: &mut u16| *v = (*v as u32 * 65535 / max) as u16;
        deep.rgb.iter_mut().for_each(widen);
        deep.alpha.iter_mut().for_each(|a| a.iter_mut().for_each(widen));
    }
    let img = match deep.alpha {
        Some(a) => {
            let mut rgba = ImageBuffer::new(deep.rgb.width(), deep.rgb.height());
            for ((dst, src), al) in rgba.pixels_mut().zip(deep.rgb.pixels()).zip(a.pixels()) {
                *dst = Rgba([src[0], src[1], src[2], al[0]]);
            }
            DynamicImage::ImageRgba16(rgba)
        }
        None => DynamicImage::ImageRgb16(deep.rgb),
    };
    match (grey, img.color().has_alpha()) {
        (true, true) => DynamicImage::ImageLumaA16(img.to_luma_alpha16()),
        (true, false) => DynamicImage::ImageLuma16(img.to_luma16()),
        _ => img,
    }
}

/// The redacted RGB with the source's alpha and greyness put back.
pub(super) fn compose(rgb: image::RgbImage, alpha: Option<image::GrayImage>, grey: bool) -> DynamicImage {
    let img = match alpha {
        Some(a) => {
            let mut rgba = RgbaImage::new(rgb.width(), rgb.height());
            for ((dst, src), al) in rgba.pixels_mut().zip(rgb.pixels()).zip(a.pixels()) {
                *dst = image::Rgba([src[0], src[1], src[2], al[0]]);
            }
            DynamicImage::ImageRgba8(rgba)
        }
        None => DynamicImage::ImageRgb8(rgb),
    };
    match (grey, img.color().has_alpha()) {
        (true, true) => DynamicImage::ImageLumaA8(img.to_luma_alpha8()),
        (true, false) => DynamicImage::ImageLuma8(img.to_luma8()),
        _ => img,
    }
}
