//! Media in and out, one module per kind: [`jpeg`] (libjpeg-turbo: previews from the DCT,
//! block-level rewrites), [`heif`] (HEIC and AVIF through libheif) and [`image`] (every other
//! still format, through the `image` crate). A [`MediaKind`] picks the module; [`metadata`]
//! holds the EXIF policy they share; [`video`] reads and writes videos through FFmpeg (feature
//! `video`). A new kind is one new module and one arm in each match below.

pub mod animation;
pub mod heif;
pub mod image;
pub mod jpeg;
pub mod metadata;
pub mod video;

use std::path::Path;

use ::image::{GrayImage, ImageBuffer, ImageFormat, Luma, Rgb, RgbImage};

use crate::detect::FaceBox;
use crate::redact::{self, Mask, RedactOptions};

pub use metadata::MetadataPolicy;

/// The kinds of media blurgate reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// JPEG: read and rewritten through libjpeg-turbo where it can be, else as [`MediaKind::Image`].
    Jpeg,
    /// PNG, WebP, TIFF, BMP, GIF and ICO, through the `image` crate.
    Image,
    /// HEIC and AVIF, through libheif.
    Heif,
    /// MP4, MOV, MKV, WebM, AVI, Ogg... through FFmpeg ([`video`]); the whole file is not read
    /// into memory, and `decode`/`encode` below refuse it.
    Video,
}

/// The format of a photo, as read and as written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Through the `image` crate (JPEG included; [`MediaKind::Jpeg`] rewrites it).
    Image(ImageFormat),
    Heif(heif::Codec),
}

/// What a file's name says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    Media(MediaKind),
    /// Media blurgate cannot read yet (the extension, lower case): listed as failed so nobody
    /// assumes it was checked.
    Unsupported(String),
    /// Not media (text, sidecars).
    Other,
}

const JPEG_EXTENSIONS: &[&str] = &["jpg", "jpeg", "jpe", "jfif", "mpo"];
const IMAGE_EXTENSIONS: &[&str] = &["png", "apng", "webp", "tif", "tiff", "bmp", "gif", "ico"];
const HEIF_EXTENSIONS: &[&str] = &["heic", "heif", "hif", "avif"];
const UNSUPPORTED_MEDIA: &[&str] = &["jxl", "dng", "cr2", "cr3", "nef", "arw", "orf", "rw2", "raf", "psd"];

impl MediaKind {
    /// The kind by file name (used when walking folders).
    pub fn classify(path: &Path) -> Classified {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if JPEG_EXTENSIONS.contains(&ext.as_str()) {
            Classified::Media(MediaKind::Jpeg)
        } else if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
            Classified::Media(MediaKind::Image)
        } else if HEIF_EXTENSIONS.contains(&ext.as_str()) {
            Classified::Media(MediaKind::Heif)
        } else if video::has_video_extension(path) {
            // Built without FFmpeg, a video fails as unsupported: never skipped unchecked.
            if cfg!(feature = "video") {
                Classified::Media(MediaKind::Video)
            } else {
                Classified::Unsupported(ext)
            }
        } else if UNSUPPORTED_MEDIA.contains(&ext.as_str()) {
            Classified::Unsupported(ext)
        } else {
            Classified::Other
        }
    }

    /// The kind by content (what decoding goes by).
    pub fn sniff(bytes: &[u8]) -> Option<MediaKind> {
        if heif::is_heif(bytes) {
            return Some(MediaKind::Heif);
        }
        if video::sniff(bytes) {
            return Some(MediaKind::Video);
        }
        match ::image::guess_format(bytes).ok()? {
            ImageFormat::Jpeg => Some(MediaKind::Jpeg),
            _ => Some(MediaKind::Image),
        }
    }

    fn of_format(format: Format) -> MediaKind {
        match format {
            Format::Image(ImageFormat::Jpeg) => MediaKind::Jpeg,
            Format::Image(_) => MediaKind::Image,
            Format::Heif(_) => MediaKind::Heif,
        }
    }
}

/// A decoded photo, upright, split into what redaction touches (RGB) and what it does not.
pub struct Photo {
    pub rgb: RgbImage,
    pub alpha: Option<GrayImage>,
    /// The source was greyscale: written back as greyscale.
    pub grey: bool,
    pub format: Format,
    pub icc: Option<Vec<u8>>,
    /// Raw EXIF (TIFF structure) of the source, orientation not yet reset.
    pub exif: Option<Vec<u8>>,
    /// The samples at their own depth when it is more than 8 bits.
    pub deep: Option<Deep>,
    /// Every frame of an animated GIF or PNG (then `rgb` and `alpha` are the first frame's).
    pub animation: Option<animation::Animation>,
}

/// Samples deeper than 8 bits (16-bit PNG and TIFF, 10-bit HEIF), so that the output keeps
/// them: detection and redaction work on [`Photo::rgb`], and [`Photo::redact`] carries what the
/// masks changed over; every other sample is written back exactly as it was read.
pub struct Deep {
    pub rgb: ImageBuffer<Rgb<u16>, Vec<u16>>,
    pub alpha: Option<ImageBuffer<Luma<u16>, Vec<u16>>>,
    /// Significant bits per sample (16 for PNG and TIFF, 10 or 12 for HEIF).
    pub bits: u8,
}

impl Photo {
    /// The pictures to look for faces in: every frame of an animation, else the photo.
    pub fn frames(&self) -> Vec<std::borrow::Cow<'_, RgbImage>> {
        match &self.animation {
            Some(a) => a
                .frames
                .iter()
                .map(|f| std::borrow::Cow::Owned(::image::DynamicImage::from(f.rgba.clone()).into_rgb8()))
                .collect(),
            None => vec![std::borrow::Cow::Borrowed(&self.rgb)],
        }
    }

    /// Redacts `faces[i]` in frame `i` of an animation (its alpha kept), or `faces[0]` in a
    /// still through [`Photo::redact`].
    pub fn redact_frames(&mut self, faces: &[Vec<FaceBox>], options: &RedactOptions) {
        let Some(animation) = &mut self.animation else {
            return self.redact(faces.first().map_or(&[][..], Vec::as_slice), options);
        };
        for (frame, boxes) in animation.frames.iter_mut().zip(faces).filter(|(_, b)| !b.is_empty()) {
            let mut rgb = ::image::DynamicImage::from(frame.rgba.clone()).into_rgb8();
            redact::redact(&mut rgb, boxes, options);
            for (dst, src) in frame.rgba.pixels_mut().zip(rgb.pixels()) {
                dst.0[..3].copy_from_slice(&src.0);
            }
        }
    }

    /// Redacts `faces` (detected boxes) in the 8-bit pixels and in the deep samples, where
    /// every masked pixel takes the redacted value at full depth.
    pub fn redact(&mut self, faces: &[FaceBox], options: &RedactOptions) {
        redact::redact(&mut self.rgb, faces, options);
        let Some(deep) = &mut self.deep else { return };
        let max = (1u32 << deep.bits) - 1;
        let (w, h) = self.rgb.dimensions();
        for face in faces {
            let (mask, full) = (Mask::for_face(face, options, w, h), options.mask_box(face));
            let (_, y0, _, y1) = mask.bounds();
            for y in y0..y1.min(h) {
                for x in mask.row_span(y, &full) {
                    let p = self.rgb.get_pixel(x, y).0;
                    deep.rgb.put_pixel(x, y, Rgb(p.map(|v| ((v as u32 * max + 127) / 255) as u16)));
                }
            }
        }
    }
}

/// Limits applied before any pixel buffer is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_side: u32,
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        // 512 MiB of pixels is 178 megapixels of RGB: above any camera, far below a bomb.
        DecodeLimits { max_side: 30_000, max_alloc: 512 << 20 }
    }
}

impl DecodeLimits {
    pub fn with_max_side(self, max_side: u32) -> Self {
        DecodeLimits { max_side, ..self }
    }
}

/// The format of the published copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Each file in its own format (and bit depth, where the format's encoder can write it).
    #[default]
    Keep,
    Jpeg,
    Png,
}

/// How a published copy is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodeOptions {
    pub metadata: MetadataPolicy,
    /// `None`: JPEG sources keep their own quantisation and only redacted blocks are encoded
    /// again ([`jpeg::rewrite`]); JPEGs encoded afresh get [`jpeg::DEFAULT_QUALITY`].
    pub jpeg_quality: Option<u8>,
    pub output: OutputFormat,
}

impl EncodeOptions {
    pub fn with_output(self, output: OutputFormat) -> Self {
        EncodeOptions { output, ..self }
    }

    /// The extension outputs get when the format is not kept.
    pub fn extension(&self) -> Option<&'static str> {
        match self.output {
            OutputFormat::Keep => None,
            OutputFormat::Jpeg => Some("jpg"),
            OutputFormat::Png => Some("png"),
        }
    }

    /// Whether a JPEG may be rewritten block by block (its own quality kept, JPEG out).
    pub fn keeps_jpeg(&self) -> bool {
        self.jpeg_quality.is_none() && self.output != OutputFormat::Png
    }

    pub fn with_metadata(self, metadata: MetadataPolicy) -> Self {
        EncodeOptions { metadata, ..self }
    }
    pub fn with_jpeg_quality(self, jpeg_quality: Option<u8>) -> Self {
        EncodeOptions { jpeg_quality, ..self }
    }
}

/// Why a file could not be decoded, in words people can act on (the decoder's detail kept for
/// a bug report).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a photo format blurgate can read (unknown or damaged file header)")]
    UnknownFormat,
    #[error("{0}")]
    Read(std::io::Error),
    #[error("the JPEG file is cut short or damaged (its image data does not end properly)")]
    JpegIncomplete,
    #[error("the image is too large to process safely ({0})")]
    TooLarge(::image::error::LimitError),
    #[error("this kind of {format} is not supported ({detail})")]
    Unsupported { format: String, detail: ::image::error::UnsupportedError },
    #[error("the {format} file is cut short ({detail})")]
    CutShort { format: String, detail: std::io::Error },
    #[error("the {format} file is damaged or not a valid {format} ({detail})")]
    Damaged { format: String, detail: ::image::ImageError },
    #[error(transparent)]
    Libjpeg(#[from] jpeg::LibjpegError),
    #[error("{first}; libjpeg-turbo cannot read it either ({libjpeg})")]
    JpegUnreadable { first: Box<DecodeError>, libjpeg: jpeg::LibjpegError },
    #[error("the image is too large to process safely ({width}x{height})")]
    PastLimits { width: u32, height: u32 },
    #[error(transparent)]
    Libheif(#[from] heif::LibheifError),
    #[error("a video: only `blurgate redact` reads videos")]
    Video,
    #[cfg(feature = "video")]
    #[error(transparent)]
    Ffmpeg(video::VideoError),
}

impl DecodeError {
    /// The photo exceeds [`DecodeLimits`].
    pub fn is_limit(&self) -> bool {
        matches!(self, DecodeError::TooLarge(_) | DecodeError::PastLimits { .. })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("writing {0:?} is not supported")]
    UnsupportedFormat(ImageFormat),
    #[error("JPEG cannot be larger than 65535 pixels a side")]
    TooLargeForJpeg,
    #[error("the JPEG's structure is damaged")]
    JpegStructure,
    #[error("this encoder cannot write that format")]
    NotThisKind,
    #[error("an animation can only be written as GIF or PNG")]
    AnimationAsStill,
    #[error("animated WebP cannot be written yet: not published rather than reduced to one frame")]
    AnimatedWebp,
    #[error("{0}")]
    Png(#[from] png::EncodingError),
    #[error("{0}")]
    Image(#[from] ::image::ImageError),
    #[error("{0}")]
    JpegEncoder(#[from] jpeg_encoder::EncodingError),
    #[error(transparent)]
    Libjpeg(#[from] jpeg::LibjpegError),
    #[error(transparent)]
    Libheif(#[from] heif::LibheifError),
    #[cfg(feature = "video")]
    #[error(transparent)]
    Ffmpeg(video::VideoError),
}

/// What of the file the output does not carry, beyond the metadata policy, in words for the
/// report: the output holds the primary picture only (and never a thumbnail, depth map or gain
/// map).
pub fn left_out(bytes: &[u8]) -> Option<String> {
    let (n, what) = match MediaKind::sniff(bytes)? {
        MediaKind::Jpeg => (jpeg::markers::appended_pictures(bytes), "picture(s) after the first (MPO, gain map)"),
        MediaKind::Heif => (heif::other_images(bytes), "image(s) besides the primary one"),
        MediaKind::Image | MediaKind::Video => (0, ""),
    };
    (n > 0).then(|| format!("{n} more {what}: only the primary picture was checked and written"))
}

/// Whether `input` is a video: by its name, else by its first bytes.
pub fn is_video(input: &crate::storage::Location) -> bool {
    input.file_name().is_some_and(|n| video::has_video_extension(std::path::Path::new(n)))
        || input.read_head(64).is_ok_and(|head| MediaKind::sniff(&head) == Some(MediaKind::Video))
}

/// Decodes a photo upright (EXIF orientation applied) with its colour profile and EXIF kept
/// for the writer; the kind is told by the content, not the name.
pub fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<Photo, DecodeError> {
    match MediaKind::sniff(bytes) {
        Some(MediaKind::Jpeg) => jpeg::decode(bytes, limits),
        Some(MediaKind::Image) => image::decode(bytes, limits),
        Some(MediaKind::Heif) => heif::decode(bytes, limits),
        Some(MediaKind::Video) => Err(DecodeError::Video),
        None => Err(DecodeError::UnknownFormat),
    }
}

/// The photo, encoded in its source format (or the one `options` asks for) with the metadata
/// the policy allows.
pub fn encode(mut photo: Photo, options: &EncodeOptions) -> Result<Vec<u8>, EncodeError> {
    match options.output {
        OutputFormat::Keep => {}
        OutputFormat::Jpeg => (photo.format, photo.deep) = (Format::Image(ImageFormat::Jpeg), None),
        OutputFormat::Png => photo.format = Format::Image(ImageFormat::Png),
    }
    let animatable = matches!(photo.format, Format::Image(ImageFormat::Gif | ImageFormat::Png | ImageFormat::WebP));
    if photo.animation.is_some() && !animatable {
        return Err(EncodeError::AnimationAsStill);
    }
    match MediaKind::of_format(photo.format) {
        MediaKind::Jpeg => jpeg::encode(photo, options),
        MediaKind::Image => image::encode(photo, options),
        MediaKind::Heif => heif::encode(photo, options),
        MediaKind::Video => Err(EncodeError::NotThisKind),
    }
}
