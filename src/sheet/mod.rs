//! The contact sheet (`redact --html`, later `check --html`): one self-contained HTML page made
//! from a [`Report`], with a before/after thumbnail pair per file and every face's box coloured
//! by its decision. It needs nothing else to open (no external assets, no network), and it is a
//! document that can leak, so the "before" thumbnails are small and have the faces of
//! registered people who are redacted redacted too, unless [`SheetOptions::show_originals`].
//!
//! A video will get one row per track (its thumbnail the track's best frame) beside a photo's
//! pair: [`FaceKind`] and the page's filters do not depend on the medium.

use std::fmt::Write as _;
use std::io::Cursor;
use std::path::Path;

use base64::Engine as _;
use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;

use crate::detect::FaceBox;
use crate::error::{Error, Result};
use crate::matching::{Action, Decision};
use crate::media::{self, jpeg, DecodeLimits};
use crate::redact::{self, RedactOptions};
use crate::report::{FaceReport, FileReport, FileStatus, Report};

/// Long side of the thumbnails, in pixels.
pub const THUMB_SIDE: u32 = 320;
const THUMB_QUALITY: u8 = 75;

#[derive(Debug, Clone, Copy)]
pub struct SheetOptions {
    /// Show registered people's faces unredacted in the "before" thumbnails.
    pub show_originals: bool,
    /// Long side of the thumbnails.
    pub side: u32,
}

impl Default for SheetOptions {
    fn default() -> Self {
        SheetOptions { show_originals: false, side: THUMB_SIDE }
    }
}

/// How a face's box is coloured and filtered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaceKind {
    /// Matched a register entry.
    Matched,
    /// Matched only uncertainly: a person should look.
    Uncertain,
    /// Not matched and kept visible.
    UnknownKept,
    /// Redacted because the policy redacts it (every face, or everyone not consenting), or
    /// drawn by an operator.
    RedactedByPolicy,
}

impl FaceKind {
    pub fn of(face: &FaceReport) -> FaceKind {
        match (face.decision, face.action) {
            (Some(Decision::Matched), _) => FaceKind::Matched,
            (Some(Decision::Uncertain), _) => FaceKind::Uncertain,
            (_, Action::Kept) => FaceKind::UnknownKept,
            (_, Action::Redacted) => FaceKind::RedactedByPolicy,
        }
    }

    /// The CSS class (and filter name).
    pub fn class(self) -> &'static str {
        match self {
            FaceKind::Matched => "matched",
            FaceKind::Uncertain => "uncertain",
            FaceKind::UnknownKept => "kept",
            FaceKind::RedactedByPolicy => "policy",
        }
    }
}

/// A face whose pixels the sheet never shows by default: a registered person who is redacted.
fn hidden_in_before(face: &FaceReport) -> bool {
    face.person.is_some() && face.action == Action::Redacted
}

/// The photo upright, its long side at most `side` (JPEGs are decoded reduced, from their DCT).
pub fn thumbnail(bytes: &[u8], side: u32) -> std::result::Result<RgbImage, media::DecodeError> {
    let limits = DecodeLimits::default();
    let rgb = match jpeg::preview(bytes, limits, side) {
        Some(p) => p.rgb,
        None => media::decode(bytes, limits)?.rgb,
    };
    let (w, h) = rgb.dimensions();
    let scale = side as f32 / w.max(h) as f32;
    if scale >= 1.0 {
        return Ok(rgb);
    }
    let (tw, th) = (((w as f32 * scale).round() as u32).max(1), ((h as f32 * scale).round() as u32).max(1));
    Ok(image::imageops::thumbnail(&rgb, tw, th))
}

/// `faces` (boxes in a `width`-pixel-wide photo) redacted in its thumbnail.
pub fn redact_thumbnail(thumb: &mut RgbImage, width: u32, faces: &[FaceBox], options: &RedactOptions) {
    let k = thumb.width() as f32 / width.max(1) as f32;
    let scaled: Vec<FaceBox> =
        faces.iter().map(|f| FaceBox { x1: f.x1 * k, y1: f.y1 * k, x2: f.x2 * k, y2: f.y2 * k }).collect();
    redact::redact(thumb, &scaled, options);
}

/// The image as a small JPEG.
pub fn jpeg(img: &RgbImage) -> Vec<u8> {
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(Cursor::new(&mut jpeg), THUMB_QUALITY).encode_image(img).expect("encodes in memory");
    jpeg
}

/// A JPEG data URI of the image.
pub fn data_uri(img: &RgbImage) -> String {
    format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(jpeg(img)))
}

pub fn face_box(face: &FaceReport) -> FaceBox {
    let [x1, y1, x2, y2] = face.bbox;
    FaceBox { x1, y1, x2, y2 }
}

/// Text safe inside HTML elements and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What hovering over a face says.
pub fn face_title(face: &FaceReport) -> String {
    let mut t = format!(
        "{} · {}",
        FaceKind::of(face).class(),
        if face.action == Action::Redacted { "redacted" } else { "kept" }
    );
    if let Some(p) = &face.person {
        let _ = write!(t, " · {p}");
    }
    if let Some(s) = face.similarity {
        let _ = write!(t, " · similarity {s:.3}");
    }
    let _ = write!(t, " · score {:.2}", face.score);
    if let Some(r) = &face.reviewed {
        let _ = write!(t, " · reviewed by {} at {}", r.by, r.at);
    }
    t
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f4f4;color:#222}
header{position:sticky;top:0;background:#222;color:#eee;padding:8px 16px;z-index:1}
h1{font-size:18px;margin:0 0 4px}
.summary span{margin-right:14px}
#filters label{margin-right:14px;cursor:pointer;white-space:nowrap}
.sw{display:inline-block;width:12px;height:12px;border:2px solid;margin-right:4px;vertical-align:-2px}
main{display:flex;flex-wrap:wrap;gap:12px;padding:12px}
section{background:#fff;border-radius:6px;padding:8px;box-shadow:0 1px 3px #0003;max-width:680px}
section.hidden{display:none}
h2{font-size:13px;margin:0 0 4px;word-break:break-all}
.meta{font-size:12px;color:#555;margin:0 0 6px}
.pair{display:flex;gap:8px}
figure{margin:0}
figcaption{font-size:11px;color:#666;text-align:center}
.frame{position:relative;line-height:0}
.frame img{display:block}
.frame svg{position:absolute;left:0;top:0;width:100%;height:100%}
.missing{width:200px;height:150px;display:flex;align-items:center;justify-content:center;background:#ddd;color:#666;line-height:1.4;font-size:12px;text-align:center}
rect{fill:transparent;stroke-width:3;vector-effect:non-scaling-stroke}
rect:hover{fill:#fff4}
.matched{stroke:#d62728;border-color:#d62728}
.uncertain{stroke:#ff9f1c;border-color:#ff9f1c}
.kept{stroke:#2ca02c;border-color:#2ca02c}
.policy{stroke:#1f77b4;border-color:#1f77b4}
.failed{stroke:#7f3fbf;border-color:#7f3fbf}
.sw.none{border-color:#999}
section.st-failed{outline:3px solid #7f3fbf}
.skipped{font-size:12px;color:#555;padding:0 16px 16px}
"#;

const SCRIPT: &str = r#"
const boxes=[...document.querySelectorAll('#filters input')];
function apply(){const on=new Set(boxes.filter(b=>b.checked).map(b=>b.value));
document.querySelectorAll('main section').forEach(s=>{const k=s.dataset.kinds.split(' ');
s.classList.toggle('hidden',!k.some(x=>on.has(x)));});
document.querySelectorAll('rect').forEach(r=>{r.style.display=on.has(r.dataset.kind)?'':'none';});}
boxes.forEach(b=>b.addEventListener('change',apply));
"#;

/// The sheet for `report`, its thumbnails made from the files the report names.
pub fn contact_sheet(report: &Report, options: &SheetOptions) -> String {
    let s = &report.summary;
    let faces: Vec<&FaceReport> = report.files.iter().flat_map(|f| &f.faces).collect();
    let count = |k: FaceKind| faces.iter().filter(|f| FaceKind::of(f) == k).count();
    let mut html = String::with_capacity(1 << 20);
    html.push_str("<!doctype html><html lang=en><head><meta charset=utf-8><title>blurgate contact sheet</title>");
    let _ =
        write!(html, "<style>{STYLE}</style></head><body><header><h1>blurgate contact sheet</h1><div class=summary>");
    for (label, n) in [
        ("files", s.files),
        ("faces", s.faces),
        ("redacted", s.faces_redacted),
        ("uncertain", s.faces_uncertain),
        ("failed", s.failed),
        ("skipped", s.skipped),
    ] {
        let _ = write!(html, "<span id=n-{label}><b>{n}</b> {label}</span>");
    }
    html.push_str("</div><div id=filters>");
    let filters = [
        ("matched", "matched", count(FaceKind::Matched)),
        ("uncertain", "uncertain", count(FaceKind::Uncertain)),
        ("kept", "unknown, kept", count(FaceKind::UnknownKept)),
        ("policy", "redacted by policy", count(FaceKind::RedactedByPolicy)),
        ("failed", "failed", s.failed),
        (
            "none",
            "no faces",
            report.files.iter().filter(|f| f.faces.is_empty() && f.status != FileStatus::Failed).count(),
        ),
    ];
    for (value, label, n) in filters {
        let _ = write!(
            html,
            "<label><input type=checkbox value={value} checked><span class=\"sw {value}\"></span>{label} ({n})</label>"
        );
    }
    html.push_str("</div></header><main>");
    let redact_options = report.render.as_ref().map(|r| r.redact()).unwrap_or_default();
    for file in report.files.iter().filter(|f| f.status != FileStatus::Skipped) {
        file_card(&mut html, file, &redact_options, options);
    }
    html.push_str("</main>");
    let skipped: Vec<&FileReport> = report.files.iter().filter(|f| f.status == FileStatus::Skipped).collect();
    if !skipped.is_empty() {
        html.push_str("<div class=skipped><b>Skipped (not media):</b> ");
        for f in skipped {
            let _ = write!(html, "{} ({}); ", escape(&f.input), escape(f.reason.as_deref().unwrap_or("")));
        }
        html.push_str("</div>");
    }
    let _ = write!(html, "<script>{SCRIPT}</script></body></html>");
    html
}

fn file_card(html: &mut String, file: &FileReport, redact_options: &RedactOptions, options: &SheetOptions) {
    let mut kinds: Vec<&str> = file.faces.iter().map(|f| FaceKind::of(f).class()).collect();
    if file.status == FileStatus::Failed {
        kinds.push("failed");
    } else if file.faces.is_empty() {
        kinds.push("none");
    }
    kinds.sort_unstable();
    kinds.dedup();
    let status = format!("{:?}", file.status).to_lowercase();
    let _ = write!(
        html,
        "<section class=st-{status} data-kinds=\"{}\"><h2>{}</h2><p class=meta>{status}",
        kinds.join(" "),
        escape(&file.input)
    );
    if let Some(e) = &file.error {
        let _ = write!(html, ": {}", escape(e));
    }
    if let (Some(w), Some(h)) = (file.width, file.height) {
        let _ = write!(html, " · {w}×{h} · {} face{}", file.faces.len(), if file.faces.len() == 1 { "" } else { "s" });
    }
    html.push_str("</p><div class=pair>");
    let before = std::fs::read(&file.input).ok().and_then(|b| thumbnail(&b, options.side).ok()).map(|mut t| {
        let hidden: Vec<FaceBox> = file.faces.iter().filter(|f| hidden_in_before(f)).map(face_box).collect();
        if !options.show_originals && !hidden.is_empty() {
            let width = file.width.unwrap_or(t.width());
            redact_thumbnail(&mut t, width, &hidden, redact_options);
        }
        t
    });
    let after = file.output.as_ref().and_then(|o| std::fs::read(o).ok()).and_then(|b| thumbnail(&b, options.side).ok());
    figure(html, file, before.as_ref(), "before", "input unreadable");
    let missing = match file.status {
        FileStatus::Held => "held for review: not written",
        FileStatus::Failed => "failed: not written",
        _ => "output missing",
    };
    figure(html, file, after.as_ref(), "after", missing);
    html.push_str("</div></section>");
}

fn figure(html: &mut String, file: &FileReport, thumb: Option<&RgbImage>, caption: &str, missing: &str) {
    html.push_str("<figure>");
    match (thumb, file.width, file.height) {
        (Some(t), Some(w), Some(h)) => {
            let _ = write!(
                html,
                "<div class=frame><img width={} height={} alt=\"{caption}\" src=\"{}\"><svg viewBox=\"0 0 {w} {h}\" preserveAspectRatio=none>",
                t.width(),
                t.height(),
                data_uri(t)
            );
            for face in &file.faces {
                let [x1, y1, x2, y2] = face.bbox;
                let kind = FaceKind::of(face).class();
                let _ = write!(
                    html,
                    "<rect class={kind} data-kind={kind} x={x1} y={y1} width={} height={}><title>{}</title></rect>",
                    x2 - x1,
                    y2 - y1,
                    escape(&face_title(face))
                );
            }
            html.push_str("</svg></div>");
        }
        _ => {
            let _ = write!(html, "<div class=missing>{missing}</div>");
        }
    }
    let _ = write!(html, "<figcaption>{caption}</figcaption></figure>");
}

/// Writes the sheet to `path` atomically.
pub fn write(report: &Report, path: &Path, options: &SheetOptions) -> Result<()> {
    let html = contact_sheet(report, options);
    crate::storage::write_atomic(path, html.as_bytes()).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn a_sheet_names_every_file_and_embeds_no_external_asset() {
        let mut faceless = FileReport::new(&"missing/<b>.jpg");
        faceless.status = FileStatus::Failed;
        faceless.error = Some("cut short".into());
        let report = Report::new(vec![faceless], 1.0);
        let html = contact_sheet(&report, &SheetOptions::default());
        assert!(html.contains("missing/&lt;b&gt;.jpg") && html.contains("failed: not written"));
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src=\"/"));
    }
}
