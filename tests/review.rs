//! Seeing what happened: the HTML contact sheet (`redact --html`) and the review page
//! (`blurgate review`), the latter driven in a real browser (Debian's chromium through
//! chromedriver; skipped with a message where they are not installed).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::*;
use blurgate::jobs::{Review, ReviewError};
use blurgate::matching::{Action, Decision};
use blurgate::report::Report;

/// Inputs with a matched, an uncertain and an unknown (kept) face: obama3.jpg is enrolled as
/// P-0042, obama.jpg matches it (similarity about 0.78), obama2.jpg only uncertainly (about
/// 0.71, between the thresholds below), biden.jpg and the people of t1.jpg are unknown.
struct Scene {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    report: PathBuf,
    audit: PathBuf,
    sheet: PathBuf,
}

fn scene(extra: &[&str]) -> (Scene, Report) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for name in ["obama.jpg", "obama2.jpg", "biden.jpg", "t1.jpg"] {
        std::fs::copy(fixture(&format!("photos/{name}")), input.join(name)).unwrap();
    }
    std::fs::create_dir_all(dir.join("reg")).unwrap();
    let register = dir.join("reg/optouts.reg");
    run_ok(&["enroll", "--register", s(&register), "--id", "P-0042", s(&fixture("photos/obama3.jpg"))]);
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let (report, audit, sheet) = (dir.join("report.json"), dir.join("logs/audit.jsonl"), dir.join("sheet.html"));
    let mut args = vec!["--register", s(&register), "--match-threshold", "0.74", "--uncertain-threshold", "0.45"];
    args.extend(["--audit", s(&audit), "--html", s(&sheet)]);
    args.extend_from_slice(extra);
    let out = dir.join("out");
    let mut all = vec!["redact", s(&input), "--out", s(&out), "--report", s(&report), "-q"];
    all.extend(args);
    let o = blurgate(&all);
    // Exit code 1: a file was held back (--hold-uncertain).
    assert!(o.status.code() == Some(0) || extra.contains(&"--hold-uncertain"), "redact failed: {}", stderr(&o));
    let r = read_report(&report);
    (Scene { _tmp: tmp, dir, report, audit, sheet }, r)
}

fn file_index(r: &Report, name: &str) -> usize {
    r.files.iter().position(|f| f.input.ends_with(name)).unwrap_or_else(|| panic!("{name} not in the report"))
}

/// The data URIs of the `<img>`s in the sheet's section for `name` (before, after).
fn thumbnails(html: &str, name: &str) -> Vec<String> {
    let start = html.find(&format!("/{name}</h2>")).unwrap_or_else(|| panic!("{name} not in the sheet"));
    let section = &html[start..start + html[start..].find("</section>").unwrap()];
    section.split("src=\"").skip(1).map(|s| s[..s.find('"').unwrap()].to_string()).collect()
}

#[test]
fn the_sheet_is_small_self_contained_and_hides_opted_out_faces_unless_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let (report, sheet) = (tmp.path().join("r.json"), tmp.path().join("sheet.html"));
    let photos = fixture("photos/obama.jpg").parent().unwrap().to_path_buf();
    let r = redact_ok(&photos, &tmp.path().join("out"), &report, &["--html", s(&sheet)]);
    let html = std::fs::read_to_string(&sheet).unwrap();
    assert!(html.len() < 2 << 20, "the sheet of the fixture photos is {} bytes", html.len());
    for f in &r.files {
        assert!(html.contains(&f.input), "{} missing from the sheet", f.input);
    }
    assert!(!html.contains("http://") && !html.contains("https://"), "the sheet loads nothing from elsewhere");
    assert!(!html.contains("src=\"/") && !html.contains("href="), "the sheet links to no file");
    let s = &r.summary;
    for (label, n) in [("files", s.files), ("faces", s.faces), ("redacted", s.faces_redacted), ("failed", s.failed)] {
        assert!(html.contains(&format!("<span id=n-{label}><b>{n}</b>")), "summary {label} {n}");
    }

    // Before thumbnails: the matched and the uncertain opted-out faces are redacted there too;
    // --show-originals shows them; an unknown kept face is never touched.
    let (hidden, r) = scene(&[]);
    let (shown, _) = scene(&["--show-originals"]);
    let face = |name: &str| &r.files[file_index(&r, name)].faces[0];
    assert_eq!(face("obama.jpg").decision, Some(Decision::Matched));
    assert_eq!(face("obama2.jpg").decision, Some(Decision::Uncertain));
    assert_eq!((face("biden.jpg").decision, face("biden.jpg").action), (Some(Decision::Unknown), Action::Kept));
    let (hidden, shown) =
        (std::fs::read_to_string(&hidden.sheet).unwrap(), std::fs::read_to_string(&shown.sheet).unwrap());
    for name in ["obama.jpg", "obama2.jpg"] {
        assert_ne!(thumbnails(&hidden, name)[0], thumbnails(&shown, name)[0], "{name}: before thumbnail not redacted");
    }
    assert_eq!(thumbnails(&hidden, "biden.jpg"), thumbnails(&shown, "biden.jpg"));
    for kind in ["matched", "uncertain", "kept"] {
        assert!(hidden.contains(&format!("<rect class={kind} ")), "no {kind} box");
    }
    assert!(hidden.contains("P-0042 · similarity 0.7"), "hovering names the person and similarity");
}

/// `blurgate review` in the background, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn review(scene: &Scene) -> Server {
    let mut child = command()
        .args(["review", "--report", s(&scene.report), "--operator", "alice", "--audit", s(&scene.audit)])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("http://127.0.0.1:") && line.contains("/?t="), "review printed {line:?}");
    Server { child, url: line.trim().to_string() }
}

/// A plain HTTP/1.1 request: status, head, body.
fn http(method: &str, url: &str, body: Option<&Value>) -> (u16, String, Vec<u8>) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let path = if path.is_empty() { "/" } else { path };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver keeps the connection open whatever the request says: read what the head
    // announces, not to the end.
    let (mut raw, mut buf) = (Vec::new(), [0u8; 65536]);
    let mut read = |raw: &mut Vec<u8>| {
        let n = stream.read(&mut buf).unwrap();
        raw.extend_from_slice(&buf[..n]);
        n
    };
    let split = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        assert!(read(&mut raw) > 0, "connection closed before a response head");
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let lower = head.to_ascii_lowercase();
    let length =
        lower.lines().find_map(|l| l.strip_prefix("content-length:")).map(|v| v.trim().parse::<usize>().unwrap());
    let chunked = lower.contains("transfer-encoding: chunked");
    loop {
        let body = &raw[split + 4..];
        let complete = match length {
            Some(n) => body.len() >= n,
            None if chunked => body.ends_with(b"0\r\n\r\n"),
            None => false,
        };
        if complete || read(&mut raw) == 0 {
            break;
        }
    }
    let mut payload = raw[split + 4..].to_vec();
    if chunked {
        payload = dechunk(&payload);
    }
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("a status code");
    (status, head, payload)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 4 + size..];
    }
}

#[test]
fn the_review_server_refuses_requests_without_its_token() {
    let (scene, _) = scene(&[]);
    let server = review(&scene);
    let base = server.url.split("/?t=").next().unwrap().to_string();
    let token = server.url.split("/?t=").nth(1).unwrap().to_string();
    let wrong = format!("{}{}", &token[..token.len() - 1], if token.ends_with('0') { "1" } else { "0" });
    for path in ["/", "/faces", "/image?file=0&which=input"] {
        assert_eq!(http("GET", &format!("{base}{path}"), None).0, 403, "{path} without a token");
        let sep = if path.contains('?') { '&' } else { '?' };
        assert_eq!(http("GET", &format!("{base}{path}{sep}t={wrong}"), None).0, 403, "{path} with a wrong token");
    }
    let decide = json!({"file": 0, "face": 0, "action": "redacted"});
    assert_eq!(http("POST", &format!("{base}/decide"), Some(&decide)).0, 403);
    let (status, head, body) = http("GET", &server.url, None);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("blurgate review"));
    assert!(!head.to_ascii_lowercase().contains("access-control-allow"), "no CORS: {head}");
    let (status, head, _) = http("OPTIONS", &format!("{base}/decide?t={token}"), None);
    assert!(status >= 400 && !head.to_ascii_lowercase().contains("access-control-allow"), "{status} {head}");
    assert!(!std::fs::read_to_string(&scene.audit).unwrap().contains("\"review\""), "nothing was decided");
}

/// The browser and its driver: `BLURGATE_CHROMIUM` / `BLURGATE_CHROMEDRIVER`, else on PATH.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let find = |var: &str, names: &[&str]| {
        std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_file()).or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path).flat_map(|d| names.iter().map(move |n| d.join(n))).find(|p| p.is_file())
        })
    };
    Some((
        find("BLURGATE_CHROMIUM", &["chromium", "chromium-browser", "google-chrome"])?,
        find("BLURGATE_CHROMEDRIVER", &["chromedriver"])?,
    ))
}

/// A chromedriver session on a headless chromium; both end when dropped.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http("DELETE", &format!("{}/session/{}", self.base, self.session), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let (session, profile) =
            std::panic::catch_unwind(|| Browser::session(&base, port, chromium)).unwrap_or_else(|e| {
                let _ = driver.kill();
                let _ = driver.wait();
                std::panic::resume_unwind(e)
            });
        Browser { driver, base, session, _profile: profile }
    }

    fn session(base: &str, port: u16, chromium: &Path) -> (String, tempfile::TempDir) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        // Headless as root in a closed network: no sandbox, and nothing that phones home.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": s(chromium), "args": args}}}});
        let (status, _, body) = http("POST", &format!("{base}/session"), Some(&caps));
        let reply: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 200, "no browser session: {reply}");
        (reply["value"]["sessionId"].as_str().unwrap().to_string(), profile)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let (status, _, reply) = http(method, &url, body.as_ref());
        let reply: Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(status, 200, "{method} {path}: {reply}");
        reply["value"].clone()
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn script(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({ "script": script, "args": [] })))
    }

    fn element(&self, css: &str) -> String {
        let found = self.call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("{css}: {found}")).to_string()
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// A mouse drag between two points given from the element's centre.
    fn drag(&self, css: &str, from: (i64, i64), to: (i64, i64)) {
        let origin = json!({ ELEMENT: self.element(css) });
        let actions = json!({"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "origin": origin, "x": from.0, "y": from.1},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerMove", "origin": origin, "x": to.0, "y": to.1, "duration": 100},
                {"type": "pointerUp", "button": 0}]}]});
        self.call("POST", "/actions", Some(actions));
    }

    /// One key pressed and released, as the keyboard would.
    fn key(&self, key: &str) {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard",
            "actions": [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]});
        self.call("POST", "/actions", Some(actions));
    }

    fn wait_for(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.script(script) != Value::Bool(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, name: &str) {
        let png = base64::engine::general_purpose::STANDARD
            .decode(self.call("GET", "/screenshot", None).as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let mut dirs = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR"))];
        // BLURGATE_SCREENSHOTS=docs renews the README's pictures.
        dirs.extend(std::env::var_os("BLURGATE_SCREENSHOTS").map(|d| root().join(d)));
        for dir in dirs {
            std::fs::write(dir.join(name), &png).unwrap();
        }
    }
}

/// Mean absolute difference of the two photos over a box, per channel.
fn box_diff(a: &Path, b: &Path, bbox: [f32; 4]) -> f64 {
    let (a, b) = (rgb(a), rgb(b));
    let [x1, y1, x2, y2] = bbox.map(|v| v as u32);
    let (mut sum, mut n) = (0u64, 0u64);
    for y in y1..y2.min(a.height()) {
        for x in x1..x2.min(a.width()) {
            sum += diff(&a, &b, x, y) as u64;
            n += 3;
        }
    }
    sum as f64 / n as f64
}

#[test]
fn the_sheet_and_the_review_page_work_in_a_browser() {
    let Some((chromium, chromedriver)) = browser() else {
        // CI installs them (scripts/setup.sh) and says so: there a missing browser is a failure.
        assert!(std::env::var_os("BLURGATE_REQUIRE_BROWSER").is_none(), "no chromium and chromedriver");
        eprintln!("skipped: no chromium and chromedriver (Debian: apt-get install chromium chromium-driver)");
        return;
    };
    let (scene, r) = scene(&[]);
    let (uncertain, unknown) = (file_index(&r, "obama2.jpg"), file_index(&r, "biden.jpg"));
    let (u, k) = (&r.files[uncertain], &r.files[unknown]);
    assert_eq!((u.faces[0].decision, u.faces[0].action), (Some(Decision::Uncertain), Action::Redacted));
    assert_eq!((k.faces[0].decision, k.faces[0].action), (Some(Decision::Unknown), Action::Kept));
    let path = |p: &Option<String>| scene.dir.join(p.as_deref().unwrap());
    let (u_in, u_out, k_in, k_out) =
        (PathBuf::from(&u.input), path(&u.output), PathBuf::from(&k.input), path(&k.output));
    let (u_box, k_box) = (u.faces[0].bbox, k.faces[0].bbox);
    assert!(box_diff(&u_in, &u_out, u_box) > 10.0, "the uncertain face starts redacted");
    assert!(box_diff(&k_in, &k_out, k_box) < 5.0, "the unknown face starts kept");

    let browser = Browser::start(&chromium, &chromedriver);
    // The contact sheet of every fixture photo opens from a file, at once.
    let tmp = tempfile::tempdir().unwrap();
    let (all, photos) = (tmp.path().join("all.html"), fixture("photos/obama.jpg").parent().unwrap().to_path_buf());
    redact_ok(&photos, &tmp.path().join("out"), &tmp.path().join("r.json"), &["--html", s(&all)]);
    let loaded = "const t = performance.getEntriesByType('navigation')[0]; return !!t && t.loadEventEnd > 0;";
    for sheet in [&all, &scene.sheet] {
        browser.open(&format!("file://{}", sheet.display()));
        browser.wait_for("the sheet", loaded);
        let ms = browser
            .script("const t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd - t.startTime;");
        let (ms, size) = (ms.as_f64().unwrap(), std::fs::metadata(sheet).unwrap().len());
        eprintln!("contact sheet {}: {size} bytes, loaded in {ms:.0} ms", sheet.display());
        assert!(ms < 1000.0 && size < 2 << 20, "the sheet took {ms} ms to load");
    }
    browser.screenshot("review-sheet.png");
    // The filters hide what is unticked.
    browser.click("#filters input[value=kept]");
    let shown =
        "return [...document.querySelectorAll('main section')].filter(s => !s.classList.contains('hidden')).length";
    assert_eq!(browser.script(shown), json!(2), "only the matched and uncertain files stay");

    let server = review(&scene);
    browser.open(&server.url);
    browser.wait_for("the faces", "return document.querySelectorAll('#list button').length === 9");
    let first = browser.script("return document.querySelector('#list button').dataset.file");
    assert_eq!(first, json!(uncertain.to_string()), "uncertain faces come first");
    // The uncertain face is kept with the keyboard, the unknown one redacted with the button.
    browser.key("k");
    browser.wait_for("the first decision", "return document.body.dataset.applied === '1'");
    browser.click(&format!("#list button[data-file='{unknown}'][data-face='0']"));
    browser.wait_for(
        "the unknown face",
        &format!("return document.querySelector('#list .cur').dataset.file === '{unknown}'"),
    );
    browser.click("#redact");
    browser.wait_for("the second decision", "return document.body.dataset.applied === '2'");
    let redacted = std::fs::read(&k_out).unwrap();
    // A missed face: D, then a box dragged on biden.jpg's original.
    browser.click(&format!("#list button[data-file='{unknown}'][data-face='0']"));
    browser.wait_for(
        "the original",
        "const i = document.getElementById('img-in'); return i.complete && i.naturalWidth > 0",
    );
    browser.key("d");
    browser.drag("#img-in", (-40, -40), (40, 40));
    browser.wait_for("the drawn face", "return document.body.dataset.applied === '3'");
    assert_ne!(std::fs::read(&k_out).unwrap(), redacted, "the drawn face is redacted too");
    browser.click(&format!("#list button[data-file='{uncertain}'][data-face='0']"));
    browser.wait_for("the images", "return [...document.images].every(i => i.complete && i.naturalWidth > 0)");
    browser.screenshot("review-page.png");

    assert!(box_diff(&u_in, &u_out, u_box) < 5.0, "the uncertain face, kept, is visible in the output");
    assert!(box_diff(&k_in, &k_out, k_box) > 10.0, "the unknown face, redacted, is hidden in the output");
    let log = std::fs::read_to_string(&scene.audit).unwrap();
    let reviews: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone())
        .filter(|e| e["type"] == "review")
        .collect();
    assert_eq!(reviews.len(), 3, "{log}");
    assert_eq!((&reviews[2]["input"], &reviews[2]["action"]), (&json!(k.input), &json!("redacted")));
    assert!(reviews[2].get("before").is_none(), "a drawn face had no decision before");
    for (e, input, before, action) in
        [(&reviews[0], &u.input, "redacted", "kept"), (&reviews[1], &k.input, "kept", "redacted")]
    {
        assert_eq!((&e["operator"], &e["input"]), (&json!("alice"), &json!(input)));
        assert_eq!((&e["before"], &e["action"]), (&json!(before), &json!(action)));
    }
    assert_eq!(reviews[2]["output_sha256"], json!(blurgate::digest::sha256_hex(&std::fs::read(&k_out).unwrap())));
    run_ok(&["audit", "verify", s(&scene.audit)]);
    let after = read_report(&scene.report);
    let (u2, k2) = (&after.files[uncertain].faces[0], &after.files[unknown].faces[0]);
    assert_eq!((u2.action, k2.action), (Action::Kept, Action::Redacted));
    assert_eq!(u2.reviewed.as_ref().map(|r| r.by.as_str()), Some("alice"));
    assert!(!after.files[uncertain].review, "nothing left to review in that file");
    let drawn = &after.files[unknown].faces;
    assert!(drawn.len() == 2 && drawn[1].reviewed.as_ref().is_some_and(|r| r.drawn), "{drawn:?}");
}

#[test]
fn a_decision_on_a_changed_input_is_refused_and_a_drawn_face_is_redacted() {
    let (scene, r) = scene(&[]);
    // The audit key the binary made in the tests' key store (see `command`).
    let key = Path::new(env!("CARGO_TARGET_TMPDIR")).join("blurgate-keys/audit.key");
    let target = blurgate::audit::AuditTarget::new(&scene.audit, Some(&key));
    let mut review = Review::open(&scene.report, Some(target), "bob").unwrap();
    // A face the detector "missed": a box drawn over biden.jpg's kept face is redacted.
    let biden = file_index(&r, "biden.jpg");
    let (input, output) =
        (PathBuf::from(&r.files[biden].input), PathBuf::from(r.files[biden].output.as_ref().unwrap()));
    let drawn = [440.0, 180.0, 700.0, 550.0];
    assert!(box_diff(&input, &output, drawn) < 5.0);
    review.draw(biden, drawn).unwrap();
    assert!(box_diff(&input, &output, drawn) > 10.0, "the drawn box is redacted");
    let f = &read_report(&scene.report).files[biden];
    assert_eq!(f.faces.len(), 2);
    assert!(f.faces[1].reviewed.as_ref().is_some_and(|r| r.drawn && r.by == "bob"));
    assert_eq!(f.status, blurgate::report::FileStatus::Redacted);
    // An input changed since the run is not rendered again: the output stays as it was.
    let obama = file_index(&r, "obama.jpg");
    let (input, output) =
        (PathBuf::from(&r.files[obama].input), PathBuf::from(r.files[obama].output.as_ref().unwrap()));
    std::fs::copy(fixture("photos/obama2.jpg"), &input).unwrap();
    let before = std::fs::read(&output).unwrap();
    let e = review.decide(obama, 0, Action::Kept).unwrap_err();
    assert!(matches!(e, ReviewError::InputChanged { .. }), "{e}");
    assert_eq!(std::fs::read(&output).unwrap(), before);
    assert_eq!(read_report(&scene.report).files[obama].faces[0].action, Action::Redacted);
    let log = std::fs::read_to_string(&scene.audit).unwrap();
    assert_eq!(log.matches("\"type\":\"review\"").count(), 1, "only the drawn face was recorded");
}

#[test]
fn a_held_file_is_written_once_its_uncertain_face_is_decided() {
    let (scene, r) = scene(&["--hold-uncertain"]);
    let held = file_index(&r, "obama2.jpg");
    let f = &r.files[held];
    assert_eq!((f.status, f.output.as_ref()), (blurgate::report::FileStatus::Held, None));
    let output = PathBuf::from(f.pending_output.as_ref().expect("where it goes once reviewed"));
    assert!(!output.exists());
    let key = Path::new(env!("CARGO_TARGET_TMPDIR")).join("blurgate-keys/audit.key");
    let target = blurgate::audit::AuditTarget::new(&scene.audit, Some(&key));
    let mut review = Review::open(&scene.report, Some(target), "carol").unwrap();
    review.decide(held, 0, Action::Kept).unwrap();
    assert!(box_diff(Path::new(&f.input), &output, f.faces[0].bbox) < 5.0, "written with the face kept");
    let after = &read_report(&scene.report).files[held];
    assert_eq!(after.status, blurgate::report::FileStatus::Unchanged);
    assert_eq!(after.output.as_deref(), Some(s(&output)));
    assert!(after.pending_output.is_none() && !after.review);
    assert_eq!(read_report(&scene.report).summary.held, 0);
}
