//! Media in and out, one module per kind: [`jpeg`] (libjpeg-turbo: previews from the DCT,
//! block-level rewrites) and [`image`] (every other still format, through the `image` crate).
//! A [`MediaKind`] picks the module; [`metadata`] holds the EXIF policy they share. A new kind
//! (video next) is one new module and one arm in each match below.

pub mod image;
pub mod jpeg;
pub mod metadata;

use std::path::Path;

use ::image::{GrayImage, ImageFormat, RgbImage};

pub use metadata::MetadataPolicy;

/// The kinds of media blurgate reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// JPEG: read and rewritten through libjpeg-turbo where it can be, else as [`MediaKind::Image`].
    Jpeg,
    /// PNG, WebP, TIFF, BMP and GIF (first frame), through the `image` crate.
    Image,
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

const JPEG_EXTENSIONS: &[&str] = &["jpg", "jpeg", "jpe", "jfif"];
const IMAGE_EXTENSIONS: &[&str] = &["png", "webp", "tif", "tiff", "bmp", "gif"];
const UNSUPPORTED_MEDIA: &[&str] = &[
    "heic", "heif", "avif", "jxl", "dng", "cr2", "cr3", "nef", "arw", "orf", "rw2", "raf", "psd", "mp4", "mov", "m4v",
    "avi", "mkv", "webm", "3gp", "mts",
];

impl MediaKind {
    /// The kind by file name (used when walking folders).
    pub fn classify(path: &Path) -> Classified {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if JPEG_EXTENSIONS.contains(&ext.as_str()) {
            Classified::Media(MediaKind::Jpeg)
        } else if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
            Classified::Media(MediaKind::Image)
        } else if UNSUPPORTED_MEDIA.contains(&ext.as_str()) {
            Classified::Unsupported(ext)
        } else {
            Classified::Other
        }
    }

    /// The kind by content (what decoding goes by).
    pub fn sniff(bytes: &[u8]) -> Option<MediaKind> {
        match ::image::guess_format(bytes).ok()? {
            ImageFormat::Jpeg => Some(MediaKind::Jpeg),
            _ => Some(MediaKind::Image),
        }
    }

    fn of_format(format: ImageFormat) -> MediaKind {
        if format == ImageFormat::Jpeg {
            MediaKind::Jpeg
        } else {
            MediaKind::Image
        }
    }
}

/// A decoded photo, upright, split into what redaction touches (RGB) and what it does not.
pub struct Photo {
    pub rgb: RgbImage,
    pub alpha: Option<GrayImage>,
    /// The source was greyscale: written back as greyscale.
    pub grey: bool,
    pub format: ImageFormat,
    pub icc: Option<Vec<u8>>,
    /// Raw EXIF (TIFF structure) of the source, orientation not yet reset.
    pub exif: Option<Vec<u8>>,
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

/// How a published copy is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodeOptions {
    pub metadata: MetadataPolicy,
    /// `None`: JPEG sources keep their own quantisation and only redacted blocks are encoded
    /// again ([`jpeg::rewrite`]); JPEGs encoded afresh get [`jpeg::DEFAULT_QUALITY`].
    pub jpeg_quality: Option<u8>,
}

impl EncodeOptions {
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
}

impl DecodeError {
    /// The photo exceeds [`DecodeLimits`].
    pub fn is_limit(&self) -> bool {
        matches!(self, DecodeError::TooLarge(_))
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
    #[error("{0}")]
    Image(#[from] ::image::ImageError),
    #[error("{0}")]
    JpegEncoder(#[from] jpeg_encoder::EncodingError),
    #[error(transparent)]
    Libjpeg(#[from] jpeg::LibjpegError),
}

/// Decodes a photo upright (EXIF orientation applied) with its colour profile and EXIF kept
/// for the writer; the kind is told by the content, not the name.
pub fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<Photo, DecodeError> {
    match MediaKind::sniff(bytes) {
        Some(MediaKind::Jpeg) => jpeg::decode(bytes, limits),
        Some(MediaKind::Image) => image::decode(bytes, limits),
        None => Err(DecodeError::UnknownFormat),
    }
}

/// The photo, encoded in its source format with the metadata the policy allows.
pub fn encode(photo: Photo, options: &EncodeOptions) -> Result<Vec<u8>, EncodeError> {
    match MediaKind::of_format(photo.format) {
        MediaKind::Jpeg => jpeg::encode(photo, options),
        MediaKind::Image => image::encode(photo, options),
    }
}
