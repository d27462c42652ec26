//! `blurgate review`: a person confirms or changes the decisions of a redact run, face by face.
//!
//! [`Review`] holds a report and applies decisions: each one renders the file's output again
//! from its input (checked against the report's sha256 first: a changed input is refused),
//! replaces it atomically, records who decided what in the audit log and rewrites the report.
//! A file held back for review is written once none of its uncertain faces is undecided.
//! [`ReviewServer`] serves the review page on a local address; every request must carry the
//! random token in its URL, and no cross-origin access is offered.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tiny_http::{Header, Method, Response, Server};

use crate::audit::{AuditLog, AuditTarget, Event};
use crate::detect::FaceBox;
use crate::digest::{hex, sha256_hex};
use crate::matching::{Action, Decision};
use crate::media::{self, jpeg, DecodeError, DecodeLimits, EncodeError};
use crate::redact::{Layer, Mask};
use crate::register::keystore;
use crate::report::{FaceReport, FileReport, FileStatus, Report, Reviewed, TextReport};
use crate::sheet::{self, FaceKind};

/// Long side of the images the review page shows.
const PAGE_SIDE: u32 = 960;
/// The detector's default first-pass size: the preview a JPEG rewrite blurs from when the
/// report does not say.
const DEFAULT_PREVIEW_SIDE: u32 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(transparent)]
    Blurgate(#[from] crate::Error),
    #[error("the report does not say how its copies were rendered (it is from an older version): redact the files again to review them")]
    NoRenderSettings,
    #[error("the report is of a dry run: nothing was written, so there is nothing to review")]
    DryRun,
    #[error("the report's output format {0:?} is not one this version writes")]
    UnknownOutputFormat(String),
    #[error("no face {face} in file {file} of the report")]
    NoSuchFace { file: usize, face: usize },
    #[error("{input} has no output to render (it failed, or it was held back by an older version)")]
    NotWritten { input: String },
    #[error("{input} changed since the report was written (its sha256 differs): not rendered again")]
    InputChanged { input: String },
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{input}: {err}")]
    Decode { input: String, err: DecodeError },
    #[error("{input}: {err}")]
    Encode { input: String, err: EncodeError },
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

type Result<T> = std::result::Result<T, ReviewError>;

/// A report under review.
pub struct Review {
    report: Report,
    path: PathBuf,
    audit: Option<AuditTarget>,
    operator: String,
    limits: DecodeLimits,
}

impl Review {
    /// Opens the report at `path`; decisions go to the audit log `audit` (checked now: its key
    /// must be at hand) and are signed `operator`.
    pub fn open(path: &Path, audit: Option<AuditTarget>, operator: &str) -> Result<Review> {
        let report = Report::read(path)?;
        if report.render.is_none() {
            return Err(ReviewError::NoRenderSettings);
        }
        if report.dry_run {
            return Err(ReviewError::DryRun);
        }
        if let Some(target) = &audit {
            AuditLog::open(target)?;
        }
        Ok(Review {
            report,
            path: path.to_path_buf(),
            audit,
            operator: operator.into(),
            limits: DecodeLimits::default(),
        })
    }

    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Face `face` of file `file` is to be `action`ed: the output is rendered again.
    pub fn decide(&mut self, file: usize, face: usize, action: Action) -> Result<()> {
        let mut changed = self.file(file)?.clone();
        let f = changed.faces.get_mut(face).ok_or(ReviewError::NoSuchFace { file, face })?;
        let before = f.action;
        f.action = action;
        f.reviewed = Some(self.signature(false));
        let (face_box, person) = (f.bbox, f.person.clone());
        self.apply(file, changed, face_box, Some(before), action, person)
    }

    /// The operator drew a face the detector missed, at `bbox` (`[x1, y1, x2, y2]` in the
    /// upright photo's pixels): it is redacted.
    pub fn draw(&mut self, file: usize, bbox: [f32; 4]) -> Result<()> {
        let mut changed = self.file(file)?.clone();
        let (w, h) = (changed.width.unwrap_or(0) as f32, changed.height.unwrap_or(0) as f32);
        let [x1, y1, x2, y2] = bbox.map(|v| v.max(0.0));
        let bbox = [x1.min(w), y1.min(h), x2.min(w), y2.min(h)];
        if bbox[2] - bbox[0] < 1.0 || bbox[3] - bbox[1] < 1.0 {
            return Err(ReviewError::NoSuchFace { file, face: changed.faces.len() });
        }
        changed.faces.push(FaceReport {
            bbox,
            score: 0.0,
            landmarks: [[0.0; 2]; 5],
            action: Action::Redacted,
            mask: None,
            decision: None,
            person: None,
            similarity: None,
            frame: None,
            time: None,
            reviewed: Some(self.signature(true)),
        });
        self.apply(file, changed, bbox, None, Action::Redacted, None)
    }

    fn file(&self, file: usize) -> Result<&FileReport> {
        self.report.files.get(file).ok_or(ReviewError::NoSuchFace { file, face: 0 })
    }

    fn signature(&self, drawn: bool) -> Reviewed {
        let at =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).expect("formats");
        Reviewed { by: self.operator.clone(), at, drawn }
    }

    /// Renders `changed` (file `file` with the decision applied), replaces its output, records
    /// the decision and rewrites the report; the old output is put back if the record fails.
    fn apply(
        &mut self,
        file: usize,
        mut changed: FileReport,
        face_box: [f32; 4],
        before: Option<Action>,
        action: Action,
        person: Option<String>,
    ) -> Result<()> {
        changed.review = changed.faces.iter().any(|f| f.decision == Some(Decision::Uncertain) && f.reviewed.is_none());
        let held = changed.status == FileStatus::Held;
        // A held file is written once none of its uncertain faces is left undecided.
        let write = !(held && changed.review);
        let output = match (&changed.output, &changed.pending_output) {
            (Some(o), _) => PathBuf::from(o),
            (None, Some(o)) if held => PathBuf::from(o),
            _ => return Err(ReviewError::NotWritten { input: changed.input.clone() }),
        };
        let old = std::fs::read(&output).ok();
        if write {
            let encoded = self.render(&mut changed)?;
            crate::storage::write_atomic(&output, &encoded)
                .map_err(|err| ReviewError::Io { path: output.clone(), err })?;
            changed.output = Some(output.display().to_string());
            changed.output_sha256 = Some(sha256_hex(&encoded));
            changed.pending_output = None;
        }
        if let Some(target) = &self.audit {
            let event = Event::Review {
                operator: self.operator.clone(),
                input: changed.input.clone(),
                input_sha256: changed.input_sha256.clone(),
                output: changed.output.clone(),
                output_sha256: changed.output_sha256.clone(),
                face_box,
                before,
                action,
                person,
            };
            if let Err(e) = AuditLog::open(target).and_then(|log| log.append(&event)) {
                let _ = match old.filter(|_| write) {
                    Some(old) => crate::storage::write_atomic(&output, &old),
                    None if write => std::fs::remove_file(&output),
                    None => Ok(()),
                };
                return Err(e.into());
            }
        }
        tracing::info!(file = %changed.input, ?action, operator = %self.operator, "review decision applied");
        self.report.files[file] = changed;
        self.report.recount();
        self.report.write(&self.path)?;
        Ok(())
    }

    /// The file's output, rendered from its input with the faces now to be redacted; its
    /// masks and status updated.
    fn render(&self, file: &mut FileReport) -> Result<Vec<u8>> {
        let settings = self.report.render.as_ref().ok_or(ReviewError::NoRenderSettings)?;
        let encode =
            settings.encode().ok_or_else(|| ReviewError::UnknownOutputFormat(settings.output_format.clone()))?;
        let redact = settings.redact();
        let input = PathBuf::from(&file.input);
        let bytes = std::fs::read(&input).map_err(|err| ReviewError::Io { path: input.clone(), err })?;
        if file.input_sha256.as_deref() != Some(sha256_hex(&bytes).as_str()) {
            return Err(ReviewError::InputChanged { input: file.input.clone() });
        }
        // The boxes to redact in each of `frames` frames (a still has one); a face without a
        // frame (one the operator drew on an animation) is redacted in every frame.
        let per_frame = |frames: usize| {
            let mut boxes: Vec<Vec<FaceBox>> = vec![Vec::new(); frames];
            for f in file.faces.iter().filter(|f| f.action == Action::Redacted) {
                match f.frame {
                    Some(i) => boxes[(i as usize).min(frames - 1)].push(sheet::face_box(f)),
                    None => boxes.iter_mut().for_each(|b| b.push(sheet::face_box(f))),
                }
            }
            boxes
        };
        // Text on a person goes with their face, unless the reviewer dropped it.
        let shown = |t: &&TextReport| {
            t.action == Action::Redacted && file.faces.get(t.face).is_some_and(|f| f.action == Action::Redacted)
        };
        let texts_per_frame = |frames: usize| {
            let mut boxes: Vec<Vec<FaceBox>> = vec![Vec::new(); frames];
            for t in file.texts.iter().filter(shown) {
                boxes[t.frame.map_or(0, |i| i as usize).min(frames - 1)].push(text_box(t));
            }
            boxes
        };
        let still = per_frame(1);
        let boxes = &still[0];
        let texts = texts_per_frame(1);
        let text_options = redact.for_text();
        let decode_err = |err| ReviewError::Decode { input: file.input.clone(), err };
        let encode_err = |err| ReviewError::Encode { input: file.input.clone(), err };
        let side = self.report.detection.as_ref().map_or(DEFAULT_PREVIEW_SIDE, |d| d.max_side);
        let jpeg = encode.keeps_jpeg().then(|| jpeg::preview(&bytes, self.limits, side)).flatten();
        let rewritten = jpeg.and_then(|p| {
            let layers = [Layer { boxes, options: redact }, Layer { boxes: &texts[0], options: text_options }];
            jpeg::rewrite(&bytes, p, &layers, &encode)
                .inspect_err(|e| {
                    tracing::warn!("{}: block-level JPEG rewrite failed ({e}); encoding it afresh", file.input)
                })
                .ok()
        });
        let (w, h) = (file.width.unwrap_or(0), file.height.unwrap_or(0));
        let encoded = match rewritten {
            Some(encoded) => encoded,
            None => {
                let mut photo = media::decode(&bytes, self.limits).map_err(decode_err)?;
                let frames = photo.animation.as_ref().map_or(1, |a| a.frames.len());
                photo.redact_frames(&per_frame(frames), &redact);
                photo.redact_frames(&texts_per_frame(frames), &text_options);
                media::encode(photo, &encode).map_err(encode_err)?
            }
        };
        for f in &mut file.faces {
            f.mask = (f.action == Action::Redacted).then(|| {
                let m = Mask::for_face(&sheet::face_box(f), &redact, w, h).area;
                [m.x1, m.y1, m.x2, m.y2].map(|v| (v * 10.0).round() / 10.0)
            });
        }
        for t in &mut file.texts {
            let redacted =
                t.action == Action::Redacted && file.faces.get(t.face).is_some_and(|f| f.action == Action::Redacted);
            t.mask = redacted.then(|| {
                let m = Mask::for_face(&text_box(t), &text_options, w, h).area;
                [m.x1, m.y1, m.x2, m.y2].map(|v| (v * 10.0).round() / 10.0)
            });
        }
        file.status = if boxes.is_empty() { FileStatus::Unchanged } else { FileStatus::Redacted };
        Ok(encoded)
    }

    /// The input (`output == false`) or output of file `file`, reduced for the page, as JPEG.
    fn image(&self, file: usize, output: bool) -> Result<Vec<u8>> {
        let f = self.file(file)?;
        let path = PathBuf::from(if output { f.output.as_deref().unwrap_or("") } else { &f.input });
        let bytes = std::fs::read(&path).map_err(|err| ReviewError::Io { path, err })?;
        let thumb =
            sheet::thumbnail(&bytes, PAGE_SIDE).map_err(|err| ReviewError::Decode { input: f.input.clone(), err })?;
        Ok(sheet::jpeg(&thumb))
    }

    /// Every face, uncertain ones first, for the page.
    fn faces(&self) -> serde_json::Value {
        let rank = |f: &FaceReport| match FaceKind::of(f) {
            FaceKind::Uncertain => 0,
            FaceKind::Matched => 1,
            FaceKind::RedactedByPolicy => 2,
            FaceKind::UnknownKept => 3,
        };
        let mut faces: Vec<PageFace> = self
            .report
            .files
            .iter()
            .enumerate()
            .flat_map(|(i, file)| {
                file.faces.iter().enumerate().map(move |(j, f)| PageFace {
                    file: i,
                    face: j,
                    rank: rank(f),
                    kind: FaceKind::of(f).class(),
                    title: sheet::face_title(f),
                    bbox: f.bbox,
                    action: f.action,
                    reviewed: f.reviewed.clone(),
                })
            })
            .collect();
        faces.sort_by_key(|f| (f.rank, f.file, f.face));
        let files: Vec<PageFile> = self
            .report
            .files
            .iter()
            .map(|f| PageFile {
                input: f.input.clone(),
                output: f.output.clone(),
                status: f.status,
                width: f.width,
                height: f.height,
                boxes: f.faces.iter().map(|x| x.bbox).collect(),
            })
            .collect();
        serde_json::json!({ "operator": self.operator, "summary": self.report.summary, "files": files, "faces": faces })
    }
}

#[derive(Serialize)]
struct PageFace {
    file: usize,
    face: usize,
    rank: u8,
    kind: &'static str,
    title: String,
    #[serde(rename = "box")]
    bbox: [f32; 4],
    action: Action,
    reviewed: Option<Reviewed>,
}

#[derive(Serialize)]
struct PageFile {
    input: String,
    output: Option<String>,
    status: FileStatus,
    width: Option<u32>,
    height: Option<u32>,
    boxes: Vec<[f32; 4]>,
}

#[derive(Deserialize)]
struct DecideBody {
    file: usize,
    face: usize,
    action: Action,
}

#[derive(Deserialize)]
struct DrawBody {
    file: usize,
    #[serde(rename = "box")]
    bbox: [f32; 4],
}

const PAGE: &str = include_str!("review_page.html");

/// The review page's server, bound but not yet serving.
pub struct ReviewServer {
    server: Server,
    addr: SocketAddr,
    token: String,
    review: Review,
}

impl ReviewServer {
    /// Listens on `addr` (port 0: any free port) with a fresh random token.
    pub fn bind(review: Review, addr: SocketAddr) -> Result<ReviewServer> {
        let server = Server::http(addr).map_err(|e| ReviewError::Bind { addr, reason: e.to_string() })?;
        let addr = server.server_addr().to_ip().unwrap_or(addr);
        Ok(ReviewServer { server, addr, token: hex(&keystore::random_key()), review })
    }

    /// The page's address, token included: whoever has it can decide faces.
    pub fn url(&self) -> String {
        format!("http://{}/?t={}", self.addr, self.token)
    }

    /// Answers requests until the process ends.
    pub fn serve(mut self) -> Result<()> {
        loop {
            let mut request = match self.server.recv() {
                Ok(r) => r,
                Err(e) => return Err(ReviewError::Io { path: PathBuf::from(self.addr.to_string()), err: e }),
            };
            let (path, query) = request.url().split_once('?').unwrap_or((request.url(), ""));
            let (path, query) = (path.to_string(), query.to_string());
            let param = |name: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
            };
            let response = if !same(param("t").as_deref().unwrap_or(""), &self.token) {
                text(403, "forbidden: this page needs the token from the URL blurgate review printed")
            } else {
                let mut body = String::new();
                let _ = request.as_reader().take(1 << 16).read_to_string(&mut body);
                self.answer(request.method(), &path, &|n| param(n), &body)
            };
            let _ = request.respond(response.with_header(header("Cache-Control", "no-store")));
        }
    }

    fn answer(
        &mut self,
        method: &Method,
        path: &str,
        param: &dyn Fn(&str) -> Option<String>,
        body: &str,
    ) -> Response<std::io::Cursor<Vec<u8>>> {
        let number = |n: &str| param(n).and_then(|v| v.parse::<usize>().ok());
        let outcome = match (method, path) {
            (Method::Get, "/") => {
                return Response::from_string(PAGE).with_header(header("Content-Type", "text/html; charset=utf-8"))
            }
            (Method::Get, "/faces") => return json(&self.review.faces()),
            (Method::Get, "/image") => {
                let Some(file) = number("file") else { return text(400, "file=N needed") };
                return match self.review.image(file, param("which").as_deref() == Some("output")) {
                    Ok(jpeg) => Response::from_data(jpeg).with_header(header("Content-Type", "image/jpeg")),
                    Err(e) => text(404, &e.to_string()),
                };
            }
            (Method::Post, "/decide") => match serde_json::from_str::<DecideBody>(body) {
                Ok(d) => self.review.decide(d.file, d.face, d.action),
                Err(e) => return text(400, &e.to_string()),
            },
            (Method::Post, "/draw") => match serde_json::from_str::<DrawBody>(body) {
                Ok(d) => self.review.draw(d.file, d.bbox),
                Err(e) => return text(400, &e.to_string()),
            },
            _ => return text(404, "not found"),
        };
        match outcome {
            Ok(()) => json(&self.review.faces()),
            Err(e) => {
                tracing::warn!("review: {e}");
                text(409, &e.to_string())
            }
        }
    }
}

/// Token comparison in constant time.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

fn text(code: u16, message: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(message)
        .with_status_code(code)
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

fn json(value: &serde_json::Value) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(value.to_string()).with_header(header("Content-Type", "application/json"))
}

/// A text region's box as the redaction takes it.
fn text_box(t: &TextReport) -> FaceBox {
    let [x1, y1, x2, y2] = t.bbox;
    FaceBox { x1, y1, x2, y2 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd") && !same("ab", "abc") && !same("", "abc"));
    }
}
