//! Metadata policy on real files: GPS, camera and maker data and XMP go; the colour profile,
//! Artist and Copyright stay; `--keep-metadata` opts out.

use std::path::Path;

use crate::common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn exif_of(path: &Path) -> Option<exif::Exif> {
    let file = std::fs::File::open(path).unwrap();
    exif::Reader::new().read_from_container(&mut std::io::BufReader::new(file)).ok()
}

fn tags(path: &Path) -> Vec<exif::Tag> {
    exif_of(path).map(|e| e.fields().map(|f| f.tag).collect()).unwrap_or_default()
}

fn has_gps(path: &Path) -> bool {
    exif_of(path).is_some_and(|e| e.fields().any(|f| f.ifd_num == exif::In::PRIMARY && f.tag.0 == exif::Context::Gps))
}

fn redact_one(input: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["redact", s(input), "--out", s(out), "-q"];
    args.extend_from_slice(extra);
    let o = blurgate(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn gps_and_camera_data_are_removed_unless_asked_to_keep() {
    let input = fixture("metadata/gps.jpg");
    assert!(has_gps(&input), "the fixture carries GPS");
    let tmp = tempfile::tempdir().unwrap();
    redact_one(&input, &tmp.path().join("strip"), &[]);
    let stripped = tmp.path().join("strip/gps.jpg");
    assert!(!has_gps(&stripped), "GPS must be removed");
    let left = tags(&stripped);
    for gone in [exif::Tag::Make, exif::Tag::Model, exif::Tag::ImageDescription, exif::Tag::GPSLatitude] {
        assert!(!left.contains(&gone), "{gone} must be removed: {left:?}");
    }

    redact_one(&input, &tmp.path().join("keep"), &["--keep-metadata"]);
    let kept = tmp.path().join("keep/gps.jpg");
    assert!(has_gps(&kept), "--keep-metadata keeps GPS");
    assert!(tags(&kept).contains(&exif::Tag::Make));
}

#[test]
fn artist_and_copyright_stay_xmp_and_maker_data_go() {
    let input = fixture("metadata/usa_railroad.jpg");
    let source = std::fs::read(&input).unwrap();
    let xmp = b"http://ns.adobe.com/xap";
    assert!(source.windows(xmp.len()).any(|w| w == xmp), "the fixture carries XMP");
    let tmp = tempfile::tempdir().unwrap();
    redact_one(&input, &tmp.path().join("out"), &[]);
    let output = tmp.path().join("out/usa_railroad.jpg");
    let exif = exif_of(&output).expect("Artist and Copyright kept in EXIF");
    let text = |t| exif.get_field(t, exif::In::PRIMARY).map(|f| f.display_value().to_string());
    assert!(text(exif::Tag::Artist).unwrap().contains("Ian Britton"));
    assert!(text(exif::Tag::Copyright).unwrap().contains("FreeFoto.com"));
    let left = tags(&output);
    assert_eq!(left.len(), 2, "only Artist and Copyright remain: {left:?}");
    let bytes = std::fs::read(&output).unwrap();
    assert!(!bytes.windows(xmp.len()).any(|w| w == xmp), "XMP must be removed");
    for camera in [&b"FUJIFILM"[..], b"FinePix"] {
        assert!(!bytes.windows(camera.len()).any(|w| w == camera), "camera data left in the file");
    }
}

#[test]
fn colour_profile_is_kept() {
    use image::ImageEncoder;
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("profiled.jpg");
    // An opaque profile payload: blurgate must carry it over byte for byte.
    let icc: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let img = rgb(&fixture("photos/obama.jpg"));
    let mut bytes = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90);
    enc.set_icc_profile(icc.clone()).unwrap();
    enc.write_image(&img, img.width(), img.height(), image::ExtendedColorType::Rgb8).unwrap();
    std::fs::write(&input, bytes).unwrap();
    redact_one(&input, &tmp.path().join("out"), &[]);
    let out = std::fs::read(tmp.path().join("out/profiled.jpg")).unwrap();
    let mut decoder =
        image::ImageReader::new(std::io::Cursor::new(out)).with_guessed_format().unwrap().into_decoder().unwrap();
    use image::ImageDecoder;
    assert_eq!(decoder.icc_profile().unwrap(), Some(icc));
}
