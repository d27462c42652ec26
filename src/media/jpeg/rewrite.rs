//! The redacted copy of a JPEG, written block by block from its coefficients.

use image::RgbImage;

use super::markers::{self, Segment};
use super::{Preview, Rect, Turn};
use crate::detect::FaceBox;
use crate::media::metadata::{kept_exif, MetadataPolicy};
use crate::media::{EncodeError, EncodeOptions};
use crate::redact::{self, Layer, Mask};

/// The redacted copy of a JPEG, written block by block: the faces' rectangles are decoded at
/// full size from the preview's coefficients and redacted ([`redact::redact_from_preview`]),
/// and the blocks under the masks are encoded again with the photo's own quantisation tables;
/// every other block keeps its coefficients, so the rest of the photo is exactly as it was.
/// With no face, only the metadata changes. The layers are redacted in turn; their boxes are upright; an EXIF-rotated photo is
/// redacted as stored and its blocks are turned upright as it is written (which turns each
/// block's coefficients, losing nothing).
pub fn rewrite(
    source: &[u8],
    preview: Preview<'_>,
    layers: &[Layer],
    options: &EncodeOptions,
) -> Result<Vec<u8>, EncodeError> {
    let (header, turn) = (preview.header, preview.turn);
    // Redaction runs on the photo as stored; its blocks turn upright as they are written.
    let (w, h) = (header.width, header.height);
    let stored: Vec<Vec<FaceBox>> = layers
        .iter()
        .map(|layer| {
            layer
                .boxes
                .iter()
                .map(|f| {
                    let (ax, ay) = turn.to_stored(f.x1, f.y1, w, h);
                    let (bx, by) = turn.to_stored(f.x2, f.y2, w, h);
                    FaceBox { x1: ax.min(bx), y1: ay.min(by), x2: ax.max(bx), y2: ay.max(by) }
                })
                .collect()
        })
        .collect();
    // Each box's mask with the full (unclipped) box its ellipse is drawn in.
    let masks: Vec<(Mask, FaceBox)> = layers
        .iter()
        .zip(&stored)
        .flat_map(|(layer, boxes)| {
            boxes.iter().map(|f| (Mask::for_face(f, &layer.options, w, h), layer.options.mask_box(f)))
        })
        .collect();
    let mut rects: Vec<Rect> = Vec::new();
    for (mask, _) in &masks {
        let (x0, y0, x1, y1) = mask.bounds();
        let mut rect = header.aligned(x0, y0, x1, y1);
        // Overlapping regions become one, so no block is replaced twice.
        while let Some(i) = rects.iter().position(|r| r.intersects(&rect)) {
            rect = rect.union(&rects.swap_remove(i));
        }
        rects.push(rect);
    }
    let kept = markers::segments(source).ok_or(EncodeError::JpegStructure)?;
    let Preview { rgb: upright, mut coefficients, .. } = preview;
    let written = match rects.iter().copied().reduce(|a, b| a.union(&b)) {
        None if turn == Turn::default() => None,
        None => Some(coefficients.write(turn)?),
        Some(all) => {
            // Only the faces' rectangles of this canvas are decoded and read back: the rest of
            // it stays zero pages, never touched.
            let mut pixels = RgbImage::new(all.w, all.h);
            for r in &rects {
                coefficients.decode(*r, &mut pixels, (all.x, all.y))?;
            }
            let mut small = turn.inverse().apply(upright);
            for (layer, boxes) in layers.iter().zip(&stored) {
                redact::redact_from_preview(&mut pixels, (all.x, all.y), &mut small, (w, h), boxes, &layer.options);
            }
            for r in &rects {
                coefficients.replace(*r, &pixels, (all.x, all.y), &changed_imcus(*r, header.mcu, &masks))?;
            }
            Some(coefficients.write(turn)?)
        }
    };
    let image = match &written {
        Some(bytes) => markers::segments(bytes).ok_or(EncodeError::JpegStructure)?,
        None => kept.clone(),
    };
    Ok(with_kept_metadata(&kept, &image, options.metadata, turn.transpose))
}

/// Which iMCUs (of size `mcu`) of `rect` some mask (with its full box) covers a pixel of, row
/// by row: only those are encoded again; the others, the corners of an ellipse's rectangle,
/// keep their coefficients exactly.
fn changed_imcus(rect: Rect, mcu: (u32, u32), masks: &[(Mask, FaceBox)]) -> Vec<bool> {
    let (mw, mh) = mcu;
    let columns = rect.w.div_ceil(mw) as usize;
    let mut changed = vec![false; columns * rect.h.div_ceil(mh) as usize];
    for (mask, full) in masks {
        let (_, y0, _, y1) = mask.bounds();
        for y in y0.max(rect.y)..y1.min(rect.y + rect.h) {
            let span = mask.row_span(y, full);
            let (x0, x1) = (span.start.max(rect.x), span.end.min(rect.x + rect.w));
            if x0 < x1 {
                let row = ((y - rect.y) / mh) as usize * columns;
                changed[row + ((x0 - rect.x) / mw) as usize..=row + ((x1 - 1 - rect.x) / mw) as usize].fill(true);
            }
        }
    }
    changed
}

/// The image data of `image` (the segments of a YCbCr or greyscale JPEG) under a JFIF header
/// and the metadata of `kept` (the source's segments) that the policy keeps: the ICC profile,
/// and the EXIF as [`super::encode`] keeps it. Every other APPn and comment segment is dropped,
/// wherever it stands, and so is anything after the end-of-image marker (some cameras append a
/// second, unredacted picture there).
fn with_kept_metadata(kept: &[Segment], image: &[Segment], policy: MetadataPolicy, transposed: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(image.iter().map(|s| s.bytes.len()).sum::<usize>() + 1024);
    out.extend_from_slice(&[0xFF, 0xD8]);
    out.extend_from_slice(&jfif_segment(kept, transposed));
    let exif = markers::exif(kept).and_then(|e| kept_exif(e, policy));
    if let Some(exif) = exif {
        let len = exif.len() + 8;
        if len <= usize::from(u16::MAX) {
            out.extend_from_slice(&[0xFF, 0xE1]);
            out.extend_from_slice(&(len as u16).to_be_bytes());
            out.extend_from_slice(b"Exif\0\0");
            out.extend_from_slice(&exif);
        } else {
            tracing::warn!("EXIF block of {} bytes does not fit one JPEG segment: not kept", exif.len());
        }
    }
    for s in kept.iter().filter(|s| s.marker == 0xE2 && s.payload().starts_with(b"ICC_PROFILE\0")) {
        out.extend_from_slice(s.bytes);
    }
    // The image data, with any metadata segment between its scans left out.
    for s in image.iter().filter(|s| !s.is_metadata()) {
        out.extend_from_slice(s.bytes);
    }
    out
}

/// A JFIF APP0 segment (it says the colours are YCbCr) with the source's pixel density when it
/// has a sound one (its axes swapped for a `transposed` image). Written afresh: a source's JFIF
/// can carry a thumbnail (a small copy of the unredacted photo), and its Adobe segment, left
/// out, could claim other colours.
fn jfif_segment(source: &[Segment], transposed: bool) -> [u8; 18] {
    let (mut units, mut x, mut y) = (0u8, [0, 1], [0, 1]);
    let found = source.iter().find(|s| s.marker == 0xE0 && s.payload().starts_with(b"JFIF\0"));
    if let Some(&[u, x1, x2, y1, y2]) = found.and_then(|s| s.payload().get(7..12)) {
        if u <= 2 && [x1, x2] != [0, 0] && [y1, y2] != [0, 0] {
            (units, x, y) = (u, [x1, x2], [y1, y2]);
        }
    }
    if transposed {
        (x, y) = (y, x);
    }
    [0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1, 1, units, x[0], x[1], y[0], y[1], 0, 0]
}
