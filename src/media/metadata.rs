//! The metadata policy: what EXIF a published copy keeps (never GPS, serials, maker notes or
//! a thumbnail of the unredacted photo unless asked, and then without the thumbnail).

use std::io::Cursor;

/// What metadata the published copy carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetadataPolicy {
    /// Keep only the colour profile and the Artist and Copyright tags: GPS, camera serials,
    /// maker notes, XMP (face-region names) and everything else are dropped.
    #[default]
    Strip,
    /// Keep the source EXIF (orientation reset, the pixels are upright) and colour profile.
    /// XMP is never written.
    Keep,
}

/// The colour profile, if it describes the colours written: an RGB profile for colour output,
/// a grey one for grey output. A CMYK photo's profile is dropped when its pixels are written
/// as RGB (a viewer would read RGB through it and show wrong colours).
pub fn icc_for_output(icc: Option<Vec<u8>>, grey: bool) -> Option<Vec<u8>> {
    let space = icc.as_ref()?.get(16..20)?;
    let fits = if grey { space == b"GRAY" } else { space == b"RGB " };
    if fits {
        icc
    } else {
        tracing::debug!("colour profile for {:?} dropped: the output is not in its colour space", space);
        None
    }
}

/// The part of a source EXIF block the policy lets through, if any.
pub fn kept_exif(exif: &[u8], policy: MetadataPolicy) -> Option<Vec<u8>> {
    match policy {
        MetadataPolicy::Strip => kept_tags(exif),
        MetadataPolicy::Keep => Some(with_upright_orientation(exif)),
    }
}

/// A new EXIF block with only Artist and Copyright from IFD0, or `None` when the source has
/// neither (or cannot be parsed: then nothing of it is kept).
fn kept_tags(exif: &[u8]) -> Option<Vec<u8>> {
    let parsed = exif::Reader::new().read_raw(exif.to_vec()).ok()?;
    let kept: Vec<&exif::Field> = parsed
        .fields()
        .filter(|f| f.ifd_num == exif::In::PRIMARY && matches!(f.tag, exif::Tag::Artist | exif::Tag::Copyright))
        .collect();
    if kept.is_empty() {
        return None;
    }
    let mut writer = exif::experimental::Writer::new();
    for f in &kept {
        writer.push_field(f);
    }
    let mut out = Cursor::new(Vec::new());
    writer.write(&mut out, parsed.little_endian()).ok()?;
    Some(out.into_inner())
}

/// The source EXIF with IFD0's Orientation set to 1 (top-left) and no thumbnail, patched in
/// place so maker notes and their internal offsets survive. The thumbnail (IFD1) is a small
/// copy of the unredacted photo: it is unlinked and its bytes are zeroed.
fn with_upright_orientation(exif: &[u8]) -> Vec<u8> {
    let mut out = exif.to_vec();
    let le = match out.get(..2) {
        Some(b"II") => true,
        Some(b"MM") => false,
        _ => return out,
    };
    let u16_at = |b: &[u8], i: usize| {
        b.get(i..i + 2).map(|s| if le { u16::from_le_bytes([s[0], s[1]]) } else { u16::from_be_bytes([s[0], s[1]]) })
    };
    let u32_at = |b: &[u8], i: usize| {
        b.get(i..i + 4).map(|s| {
            let a = [s[0], s[1], s[2], s[3]];
            if le {
                u32::from_le_bytes(a)
            } else {
                u32::from_be_bytes(a)
            }
        })
    };
    // An IFD's entries as (entry offset, tag, type, value as a SHORT or LONG).
    let entries = |b: &[u8], ifd: usize| -> Vec<(usize, u16, u16, u32)> {
        let count = u16_at(b, ifd).unwrap_or(0) as usize;
        (0..count)
            .filter_map(|k| {
                let e = ifd + 2 + 12 * k;
                let (tag, ty) = (u16_at(b, e)?, u16_at(b, e + 2)?);
                let value = if ty == 3 { u32::from(u16_at(b, e + 8)?) } else { u32_at(b, e + 8)? };
                Some((e, tag, ty, value))
            })
            .collect()
    };
    let Some(ifd0) = u32_at(&out, 4).map(|o| o as usize) else { return out };
    for (e, tag, ty, _) in entries(&out, ifd0) {
        if tag == 0x0112 && ty == 3 {
            let one = if le { 1u16.to_le_bytes() } else { 1u16.to_be_bytes() };
            out[e + 8..e + 10].copy_from_slice(&one);
        }
    }
    let next_at = ifd0 + 2 + 12 * u16_at(&out, ifd0).unwrap_or(0) as usize;
    let Some(ifd1) = u32_at(&out, next_at).filter(|&o| o != 0).map(|o| o as usize) else { return out };
    let ifd1_entries = entries(&out, ifd1);
    let value = |tag: u16| ifd1_entries.iter().find(|e| e.1 == tag).map(|e| e.3 as usize);
    // A JPEG thumbnail, or a single-strip uncompressed one.
    for (start, len) in [(0x0201, 0x0202), (0x0111, 0x0117)] {
        if let (Some(at), Some(n)) = (value(start), value(len)) {
            let end = at.saturating_add(n).min(out.len());
            if at < end {
                out[at..end].fill(0);
            }
        }
    }
    out[next_at..next_at + 4].fill(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiff_with(le: bool, entries: &[(u16, u16, u32, [u8; 4])]) -> Vec<u8> {
        let mut b = if le { b"II*\0".to_vec() } else { b"MM\0*".to_vec() };
        let w16 = |v: u16| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let w32 = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        b.extend(w32(8));
        b.extend(w16(entries.len() as u16));
        for (tag, ty, count, value) in entries {
            b.extend(w16(*tag));
            b.extend(w16(*ty));
            b.extend(w32(*count));
            b.extend(value);
        }
        b.extend(w32(0));
        b
    }

    #[test]
    fn orientation_is_reset_in_both_byte_orders() {
        for le in [true, false] {
            let six = if le { [6, 0, 0, 0] } else { [0, 6, 0, 0] };
            let src = tiff_with(le, &[(0x010f, 2, 4, *b"Foo\0"), (0x0112, 3, 1, six)]);
            let out = with_upright_orientation(&src);
            let parsed = exif::Reader::new().read_raw(out).unwrap();
            let o = parsed.get_field(exif::Tag::Orientation, exif::In::PRIMARY).unwrap();
            assert_eq!(o.value.get_uint(0), Some(1));
            assert!(parsed.get_field(exif::Tag::Make, exif::In::PRIMARY).is_some());
        }
    }

    #[test]
    fn the_thumbnail_is_unlinked_and_erased() {
        // IFD0 (orientation 6) → IFD1 pointing at a JPEG thumbnail.
        let mut b = b"II*\0".to_vec();
        b.extend(8u32.to_le_bytes());
        b.extend(1u16.to_le_bytes());
        b.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
        let ifd1 = b.len() + 4;
        b.extend((ifd1 as u32).to_le_bytes());
        let thumb = ifd1 + 2 + 2 * 12 + 4;
        let picture = b"\xFF\xD8 a small copy of the unredacted photo \xFF\xD9";
        b.extend(2u16.to_le_bytes());
        for (tag, value) in [(0x0201u16, thumb as u32), (0x0202, picture.len() as u32)] {
            b.extend(tag.to_le_bytes());
            b.extend(4u16.to_le_bytes());
            b.extend(1u32.to_le_bytes());
            b.extend(value.to_le_bytes());
        }
        b.extend(0u32.to_le_bytes());
        b.extend_from_slice(picture);
        let before = exif::Reader::new().read_raw(b.clone()).unwrap();
        assert!(before.fields().any(|f| f.ifd_num == exif::In::THUMBNAIL));

        let out = with_upright_orientation(&b);
        assert_eq!(out.len(), b.len());
        assert!(!out.windows(8).any(|w| w == b"unredact"), "thumbnail bytes survived");
        let parsed = exif::Reader::new().read_raw(out).unwrap();
        assert!(parsed.fields().all(|f| f.ifd_num == exif::In::PRIMARY));
        assert_eq!(parsed.get_field(exif::Tag::Orientation, exif::In::PRIMARY).unwrap().value.get_uint(0), Some(1));
    }

    #[test]
    fn only_a_profile_of_the_written_colours_is_kept() {
        let profile = |space: &[u8; 4]| {
            let mut p = vec![0u8; 128];
            p[16..20].copy_from_slice(space);
            Some(p)
        };
        assert!(icc_for_output(profile(b"RGB "), false).is_some());
        assert!(icc_for_output(profile(b"CMYK"), false).is_none(), "a CMYK profile on RGB pixels");
        assert!(icc_for_output(profile(b"GRAY"), true).is_some());
        assert!(icc_for_output(profile(b"RGB "), true).is_none());
        assert!(icc_for_output(Some(vec![1, 2, 3]), false).is_none(), "not a profile");
    }

    #[test]
    fn strip_keeps_only_artist_and_copyright() {
        let src = tiff_with(true, &[(0x010f, 2, 4, *b"Foo\0"), (0x013b, 2, 4, *b"Ann\0")]);
        let out = kept_tags(&src).unwrap();
        let parsed = exif::Reader::new().read_raw(out).unwrap();
        let tags: Vec<_> = parsed.fields().map(|f| f.tag).collect();
        assert_eq!(tags, vec![exif::Tag::Artist]);
        let make_only = tiff_with(true, &[(0x010f, 2, 4, *b"Foo\0")]);
        assert!(kept_tags(&make_only).is_none());
    }
}
