//! Media in: which files a run covers, where each one's output goes, and decoding a photo
//! upright (EXIF orientation applied) with its colour profile and EXIF kept for the writer.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use walkdir::WalkDir;

use crate::error::{Error, Result};

/// Extensions treated as photos when walking folders.
const PHOTO_EXTENSIONS: &[&str] = &["jpg", "jpeg", "jpe", "jfif", "png", "webp", "tif", "tiff", "bmp", "gif"];
/// Media blurgate cannot read yet: listed as failed so nobody assumes they were checked.
const UNSUPPORTED_MEDIA: &[&str] = &[
    "heic", "heif", "avif", "jxl", "dng", "cr2", "cr3", "nef", "arw", "orf", "rw2", "raf", "psd", "mp4", "mov", "m4v",
    "avi", "mkv", "webm", "3gp", "mts",
];

/// A file found in the inputs.
#[derive(Debug, Clone)]
pub struct Walked {
    pub input: PathBuf,
    /// Path relative to the folder it was found in (its name for a file given directly).
    pub rel: PathBuf,
    /// Known before decoding to be unreadable (unsupported media type).
    pub unsupported: Option<String>,
}

#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<Walked>,
    /// Files in the input folders that are not media (text, sidecars, symlinks).
    pub ignored: usize,
    /// The input folders.
    pub dirs: Vec<PathBuf>,
}

/// Run-state folders are named `.<output folder>.blurgate`; walks never enter them.
pub const STATE_SUFFIX: &str = ".blurgate";

fn is_state_dir(e: &walkdir::DirEntry) -> bool {
    let name = e.file_name().to_string_lossy();
    e.file_type().is_dir() && e.depth() > 0 && name.starts_with('.') && name.ends_with(STATE_SUFFIX)
}

/// Every photo under the inputs: folders recursively, files as given whatever their
/// extension. Symlinks are followed only while they stay inside their input folder, unless
/// `follow_symlinks`. Entries that cannot be read are listed as unreadable, not dropped.
pub fn walk(inputs: &[PathBuf], follow_symlinks: bool) -> Result<Walk> {
    let mut walk = Walk::default();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|e| Error::io(input, e))?;
        if !meta.is_dir() {
            let name =
                input.file_name().ok_or_else(|| Error::Usage(format!("{}: not a file name", input.display())))?;
            walk.files.push(Walked { input: input.clone(), rel: PathBuf::from(name), unsupported: None });
            continue;
        }
        walk.dirs.push(input.clone());
        let root = input.canonicalize().map_err(|e| Error::io(input, e))?;
        let entries =
            WalkDir::new(input).follow_links(true).sort_by_file_name().into_iter().filter_entry(|e| !is_state_dir(e));
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let path = e.path().unwrap_or(input).to_path_buf();
                    let rel = path.strip_prefix(input).unwrap_or(&path).to_path_buf();
                    walk.files.push(Walked { input: path, rel, unsupported: Some(format!("cannot read: {e}")) });
                    continue;
                }
            };
            if entry.path_is_symlink() && !follow_symlinks {
                let inside = entry.path().canonicalize().is_ok_and(|target| target.starts_with(&root));
                if !inside {
                    tracing::warn!(
                        "skipped {}: a symbolic link to outside {} (use --follow-symlinks to include it)",
                        entry.path().display(),
                        input.display()
                    );
                    walk.ignored += 1;
                    continue;
                }
            }
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = entry.path().strip_prefix(input).expect("walkdir yields paths under its root").to_path_buf();
            let unsupported = match classify(entry.path()) {
                Kind::Photo => None,
                Kind::Unsupported(ext) => Some(format!("unsupported format: .{ext} files cannot be checked yet")),
                Kind::Other => {
                    walk.ignored += 1;
                    continue;
                }
            };
            walk.files.push(Walked { input: entry.path().to_path_buf(), rel, unsupported });
        }
    }
    Ok(walk)
}

/// One file of a run and the path its redacted copy gets.
#[derive(Debug, Clone)]
pub struct Planned {
    pub input: PathBuf,
    pub output: PathBuf,
    /// Known at planning time to be unreadable (unsupported media type).
    pub unsupported: Option<String>,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub files: Vec<Planned>,
    /// Files in the input folders that are not media (text, sidecars, symlinks).
    pub ignored: usize,
}

/// Maps every input to its place under `out`: a folder's files keep their path relative to
/// the folder, a file named on the command line lands at the top. Refuses an output folder
/// inside an input folder (or the reverse) and two inputs that would share an output path.
pub fn plan(inputs: &[PathBuf], out: &Path, follow_symlinks: bool) -> Result<Plan> {
    let out_abs = absolute(out)?;
    let walk = walk(inputs, follow_symlinks)?;
    for dir in &walk.dirs {
        let dir_abs = absolute(dir)?;
        if out_abs.starts_with(&dir_abs) {
            return Err(Error::Usage(format!(
                "the output folder {} is inside the input folder {}: choose an --out outside it",
                out.display(),
                dir.display()
            )));
        }
        if dir_abs.starts_with(&out_abs) {
            return Err(Error::Usage(format!(
                "the input folder {} is inside the output folder {}: choose an --out elsewhere",
                dir.display(),
                out.display()
            )));
        }
    }
    let plan = Plan {
        files: walk
            .files
            .into_iter()
            .map(|w| Planned { output: out.join(&w.rel), input: w.input, unsupported: w.unsupported })
            .collect(),
        ignored: walk.ignored,
    };
    let mut seen = std::collections::HashMap::new();
    for f in &plan.files {
        // Relative paths come from walking real folders, but check anyway: nothing may be
        // written outside `out`.
        let escapes = f
            .output
            .strip_prefix(out)
            .map_or(true, |rel| rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))));
        if escapes {
            return Err(Error::Usage(format!("{}: its output path would leave {}", f.input.display(), out.display())));
        }
        if let Some(other) = seen.insert(f.output.clone(), f.input.clone()) {
            return Err(Error::Usage(format!(
                "{} and {} would both be written to {}: redact them in separate runs or into separate folders",
                other.display(),
                f.input.display(),
                f.output.display()
            )));
        }
        if absolute(&f.output)? == absolute(&f.input)? {
            return Err(Error::Usage(format!("{} would overwrite itself", f.input.display())));
        }
    }
    Ok(plan)
}

enum Kind {
    Photo,
    Unsupported(String),
    Other,
}

fn classify(path: &Path) -> Kind {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if PHOTO_EXTENSIONS.contains(&ext.as_str()) {
        Kind::Photo
    } else if UNSUPPORTED_MEDIA.contains(&ext.as_str()) {
        Kind::Unsupported(ext)
    } else {
        Kind::Other
    }
}

/// Absolute, lexically normalised path (the output folder may not exist yet).
fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    // Resolve symlinks of the part that exists so `out` inside `in` is caught through links.
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(p), Some(n)) => {
                rest.push(n.to_owned());
                existing = p;
            }
            _ => break,
        }
    }
    let mut resolved = existing.canonicalize().unwrap_or_else(|_| existing.to_path_buf());
    resolved.extend(rest.iter().rev());
    Ok(resolved)
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
#[derive(Debug, Clone, Copy)]
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

/// The decoder's error in words people can act on, with its detail kept for a bug report.
fn explain(format: ImageFormat, e: image::ImageError) -> String {
    use image::ImageError as E;
    let name = format!("{format:?}").to_uppercase();
    match e {
        E::Limits(detail) => {
            format!("the image is too large to process safely ({detail}); --max-dimension raises the size limit")
        }
        E::Unsupported(detail) => format!("this kind of {name} is not supported ({detail})"),
        E::IoError(detail) if detail.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("the {name} file is cut short ({detail})")
        }
        other => format!("the {name} file is damaged or not a valid {name} ({other})"),
    }
}

pub fn decode(bytes: &[u8], limits: DecodeLimits) -> std::result::Result<Photo, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    let format = reader.format().ok_or("not a photo format blurgate can read (unknown or damaged file header)")?;
    // The JPEG decoder fills a cut-off file with grey and reports success: a photo whose lower
    // part is missing cannot be said to have been checked.
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err("the JPEG file is cut short or damaged (its image data does not end properly)".into());
    }
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
    Ok(Photo { rgb: img.to_rgb8(), alpha, grey: !colour.has_color(), format, icc, exif })
}

/// Walks the JPEG's marker segments and entropy-coded scans and tells whether an end-of-image
/// marker follows the last scan.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    jpeg_segments(bytes).is_some()
}

/// One piece of a JPEG: a marker segment (marker and length included), an SOS segment with the
/// entropy-coded data of its scan, or the end-of-image marker.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub marker: u8,
    pub bytes: &'a [u8],
}

impl<'a> Segment<'a> {
    /// The segment's content after its length field.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(4..).unwrap_or_default()
    }
    /// APPn and comment segments: metadata, not image data.
    pub fn is_metadata(&self) -> bool {
        matches!(self.marker, 0xE0..=0xEF | 0xFE)
    }
}

/// Every segment after SOI, through the end-of-image marker that follows the last scan (what
/// comes after it, such as a second picture some cameras append, is not part of the photo).
/// `None` for a file that is not a JPEG or is cut short.
pub fn jpeg_segments(bytes: &[u8]) -> Option<Vec<Segment<'_>>> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut segments = Vec::new();
    let mut i = 2;
    loop {
        while bytes.get(i..i + 2) == Some(&[0xFF, 0xFF]) {
            i += 1; // fill byte
        }
        if *bytes.get(i)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(i + 1)?;
        let end = match marker {
            0xD9 => {
                segments.push(Segment { marker, bytes: &bytes[i..i + 2] });
                return Some(segments);
            }
            0x01 | 0xD0..=0xD7 => i + 2,
            _ => {
                let len = bytes.get(i + 2..i + 4).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize)?;
                let mut end = i + 2 + len;
                if marker == 0xDA {
                    // Entropy-coded data runs to the next marker that is not a stuffed zero or
                    // a restart marker.
                    loop {
                        end += bytes.get(end..)?.iter().position(|&b| b == 0xFF)?;
                        match *bytes.get(end + 1)? {
                            0x00 | 0xD0..=0xD7 | 0xFF => end += 1,
                            _ => break,
                        }
                    }
                }
                end
            }
        };
        segments.push(Segment { marker, bytes: bytes.get(i..end)? });
        i = end;
    }
}

/// The EXIF block (TIFF structure) among a JPEG's segments, if it has one.
pub fn jpeg_exif<'a>(segments: &[Segment<'a>]) -> Option<&'a [u8]> {
    segments.iter().find_map(|s| (s.marker == 0xE1).then(|| s.payload().strip_prefix(b"Exif\0\0")).flatten())
}

/// A JPEG read only as far as detection needs: its coefficients and a reduced copy made from
/// them by libjpeg's DCT scaling (one pass over the compressed data for both). The redacted
/// copy is then written block by block ([`crate::media_out::rewrite_jpeg`]).
pub struct JpegPreview<'a> {
    /// The photo as stored.
    pub header: crate::jpeg::Header,
    /// How it turns upright (EXIF orientation): the rewrite turns its blocks.
    pub turn: crate::jpeg::Turn,
    /// The photo upright at a reduced size, its long side at least the detector's first-pass
    /// size.
    pub rgb: RgbImage,
    /// The coefficients the preview was made from, kept for the rewrite.
    pub coefficients: crate::jpeg::Coefficients<'a>,
    /// Memory libjpeg may use for this photo.
    pub max_memory: u64,
}

impl JpegPreview<'_> {
    /// The photo's upright size.
    pub fn size(&self) -> (u32, u32) {
        self.turn.upright(self.header.width, self.header.height)
    }
}

/// The preview of a JPEG that can be redacted block by block: complete, 8-bit YCbCr or
/// greyscale, upright or with blocks that turn upright whole (a mirrored side a whole number of
/// iMCUs, as the sides of phone and camera photos are) and within `limits`. `None` for any other
/// file: the caller decodes it in full, which also explains what is wrong with a bad one.
pub fn jpeg_preview(bytes: &[u8], limits: DecodeLimits, min_side: u32) -> Option<JpegPreview<'_>> {
    let segments = jpeg_segments(bytes)?;
    let mut orientation = 1;
    if let Some(exif) = jpeg_exif(&segments) {
        let parsed = exif::Reader::new().read_raw(exif.to_vec()).ok()?;
        let field = parsed.get_field(exif::Tag::Orientation, exif::In::PRIMARY);
        orientation = field.map_or(Some(1), |f| f.value.get_uint(0))?;
    }
    let turn = crate::jpeg::Turn::from_exif(orientation)?;
    let header = crate::jpeg::Header::read(bytes).ok()?;
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
    match crate::jpeg::Coefficients::read(bytes, &header, scale, max_memory) {
        Ok((coefficients, stored)) => {
            Some(JpegPreview { header, turn, rgb: turn.apply(stored), coefficients, max_memory })
        }
        Err(e) => {
            tracing::debug!("libjpeg could not decode the preview ({e}); decoding in full");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
        out
    }

    #[test]
    fn complete_jpeg_is_accepted_and_every_cut_is_refused() {
        let whole = jpeg(64, 48);
        assert!(jpeg_is_complete(&whole));
        let mut trailing = whole.clone();
        trailing.extend_from_slice(b"trailing bytes some cameras add");
        assert!(jpeg_is_complete(&trailing));
        for cut in (0..whole.len() - 1).step_by(7) {
            assert!(!jpeg_is_complete(&whole[..cut]), "cut at {cut} of {}", whole.len());
        }
    }

    #[test]
    fn truncated_jpeg_does_not_decode() {
        let whole = jpeg(64, 48);
        assert!(decode(&whole, DecodeLimits::default()).is_ok());
        let err = decode(&whole[..whole.len() * 2 / 3], DecodeLimits::default()).err().unwrap();
        assert!(err.contains("cut short"), "{err}");
    }
}
