//! A JPEG's structure: marker segments, entropy-coded scans, the end-of-image marker and the
//! EXIF block, read without decoding.

/// Walks the JPEG's marker segments and entropy-coded scans and tells whether an end-of-image
/// marker follows the last scan.
pub fn is_complete(bytes: &[u8]) -> bool {
    segments(bytes).is_some()
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
pub fn segments(bytes: &[u8]) -> Option<Vec<Segment<'_>>> {
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

/// Pictures stored after the end-of-image marker: the second and later pictures of an MPO
/// (stereo or multi-picture cameras) and Ultra HDR gain maps. blurgate writes the primary
/// picture only.
pub fn appended_pictures(bytes: &[u8]) -> usize {
    // A picture's length: SOI and its segments through EOI.
    let length = |pic: &[u8]| segments(pic).map(|s| 2 + s.iter().map(|s| s.bytes.len()).sum::<usize>());
    let Some(mut rest) = length(bytes).and_then(|n| bytes.get(n..)) else { return 0 };
    let mut count = 0;
    // Each further picture is skipped whole, so the thumbnails inside it are not counted.
    while let Some(at) = rest.windows(3).position(|w| w == [0xFF, 0xD8, 0xFF]) {
        count += 1;
        match length(&rest[at..]) {
            Some(n) => rest = &rest[at + n..],
            None => break,
        }
    }
    count
}

/// The ICC profile carried in APP2 `ICC_PROFILE` segments, joined in their order.
pub fn icc(segments: &[Segment]) -> Option<Vec<u8>> {
    let mut chunks: Vec<(u8, &[u8])> = segments
        .iter()
        .filter(|s| s.marker == 0xE2)
        .filter_map(|s| s.payload().strip_prefix(b"ICC_PROFILE\0"))
        .filter_map(|p| Some((*p.first()?, p.get(2..)?)))
        .collect();
    chunks.sort_by_key(|(n, _)| *n);
    let icc: Vec<u8> = chunks.into_iter().flat_map(|(_, c)| c.iter().copied()).collect();
    (!icc.is_empty()).then_some(icc)
}

/// The EXIF block (TIFF structure) among a JPEG's segments, if it has one.
pub fn exif<'a>(segments: &[Segment<'a>]) -> Option<&'a [u8]> {
    segments.iter().find_map(|s| (s.marker == 0xE1).then(|| s.payload().strip_prefix(b"Exif\0\0")).flatten())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use image::RgbImage;

    pub(crate) fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
        out
    }

    #[test]
    fn complete_jpeg_is_accepted_and_every_cut_is_refused() {
        let whole = jpeg(64, 48);
        assert!(is_complete(&whole));
        let mut trailing = whole.clone();
        trailing.extend_from_slice(b"trailing bytes some cameras add");
        assert!(is_complete(&trailing));
        assert_eq!(appended_pictures(&trailing), 0);
        let mut mpo = whole.clone();
        mpo.extend_from_slice(&whole);
        assert_eq!(appended_pictures(&mpo), 1, "a second picture after the first");
        for cut in (0..whole.len() - 1).step_by(7) {
            assert!(!is_complete(&whole[..cut]), "cut at {cut} of {}", whole.len());
        }
    }
}
