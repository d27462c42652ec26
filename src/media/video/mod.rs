//! Video in and out through FFmpeg's libraries (cargo feature `video`, on by default).
//!
//! A video is read twice: [`scan`] decodes every frame of its video stream and hands the
//! frames a caller asks for over as upright RGB (the display matrix applied), and
//! [`transcode`] decodes it again, redacts the boxes the caller gives for each frame and
//! encodes the result into the same container. Everything else is kept: each frame's
//! timestamps (variable frame rates included), the time base, the display matrix and the
//! colour tags; audio is copied packet for packet. Subtitle, data and attachment streams (which
//! can carry names) and any second video stream are dropped, and said so in [`Streams`].
//!
//! Without the feature only the options, the names and the content sniffing below exist, and a
//! video fails as unsupported.

#[cfg(feature = "video")]
mod decode;
#[cfg(feature = "video")]
mod encode;
#[cfg(feature = "video")]
mod live;
#[cfg(feature = "video")]
mod probe;

#[cfg(feature = "video")]
pub use decode::{scan, Frame};
#[cfg(feature = "video")]
pub use encode::transcode;
#[cfg(feature = "video")]
pub use live::{live_muxer, LiveAudio, LiveFrame, LiveInputOptions, LiveOutput, LiveOutputOptions, LiveSource};
#[cfg(feature = "video")]
pub use probe::{probe, Probe, StreamInfo, Streams};

use std::path::Path;

use super::MetadataPolicy;

/// File extensions read as video.
pub const EXTENSIONS: &[&str] =
    &["mp4", "m4v", "mov", "mkv", "webm", "avi", "ogv", "ogg", "3gp", "3g2", "mts", "m2ts", "ts", "mpg", "mpeg"];

/// Whether the name says video.
pub fn has_video_extension(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    EXTENSIONS.contains(&ext.as_str())
}

/// Whether the first bytes are a video container's: ISO BMFF (MP4, MOV, 3GP; HEIF, which
/// shares the box structure, is told apart by the caller first), Matroska/WebM, AVI, Ogg.
pub fn sniff(head: &[u8]) -> bool {
    let iso = head.len() >= 12 && matches!(&head[4..8], b"ftyp" | b"moov" | b"mdat" | b"wide" | b"free");
    let ebml = head.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]);
    let avi = head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"AVI ";
    iso || ebml || avi || head.starts_with(b"OggS")
}

/// The video encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VideoCodec {
    /// H.264 where the container takes it, VP9 for WebM, Theora for Ogg.
    #[default]
    Auto,
    /// H.264 (libx264).
    H264,
    /// H.265 (libx265).
    H265,
    /// VP9 (libvpx-vp9).
    Vp9,
    /// AV1 (libaom, slow).
    Av1,
}

impl VideoCodec {
    /// The name the report and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::Auto => "auto",
            VideoCodec::H264 => "h264",
            VideoCodec::H265 => "h265",
            VideoCodec::Vp9 => "vp9",
            VideoCodec::Av1 => "av1",
        }
    }
}

/// How a redacted video is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoOptions {
    pub codec: VideoCodec,
    /// Constant rate factor; `None`: the codec's "visually lossless" default (H.264 18, H.265
    /// 20, VP9 24, AV1 28). Theora, which has none, encodes at quality 8 of 10.
    pub crf: Option<u8>,
    /// Drop the audio streams instead of copying them.
    pub strip_audio: bool,
    /// Container and stream tags: by default only artist, copyright and the streams'
    /// language survive (titles, places and dates can name people).
    pub metadata: MetadataPolicy,
}

impl Default for VideoOptions {
    fn default() -> Self {
        VideoOptions { codec: VideoCodec::Auto, crf: None, strip_audio: false, metadata: MetadataPolicy::Strip }
    }
}

impl VideoOptions {
    pub fn with_codec(self, codec: VideoCodec) -> Self {
        VideoOptions { codec, ..self }
    }
    pub fn with_crf(self, crf: Option<u8>) -> Self {
        VideoOptions { crf, ..self }
    }
    pub fn with_strip_audio(self, strip_audio: bool) -> Self {
        VideoOptions { strip_audio, ..self }
    }
    pub fn with_metadata(self, metadata: MetadataPolicy) -> Self {
        VideoOptions { metadata, ..self }
    }
}

/// Why a video could not be read or written.
#[cfg(feature = "video")]
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("not a video FFmpeg can open (unknown, damaged or cut-short container: {0})")]
    Open(ffmpeg_next::Error),
    #[error("the file has no video stream")]
    NoVideoStream,
    #[error("no decoder for its {0} video")]
    NoDecoder(String),
    #[error("the video is damaged ({0})")]
    Damaged(ffmpeg_next::Error),
    #[error("the video is cut short: {decoded} frames decoded, its header promises {promised}")]
    CutShort { decoded: u64, promised: u64 },
    #[error("a frame of the video is damaged (frame {0})")]
    CorruptFrame(u64),
    #[error("the second reading gave {second} frames, the first {first}")]
    FramesChanged { first: u64, second: u64 },
    #[error("this FFmpeg has no {0} encoder")]
    NoEncoder(&'static str),
    #[error("a .{container} file cannot hold {codec} video (choose another --video-codec)")]
    ContainerRejects { codec: &'static str, container: String },
    #[error("no container format for {0}")]
    NoContainer(String),
    #[error("{what}: {err}")]
    Ffmpeg { what: &'static str, err: ffmpeg_next::Error },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

#[cfg(feature = "video")]
impl VideoError {
    /// Whether the input is at fault (it cannot be read as a whole, sound video), not the
    /// encoding or writing of the copy.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            VideoError::Open(_)
                | VideoError::NoVideoStream
                | VideoError::NoDecoder(_)
                | VideoError::Damaged(_)
                | VideoError::CutShort { .. }
                | VideoError::CorruptFrame(_)
        )
    }
}

/// Loads FFmpeg once and quiets its log (errors come back as values).
#[cfg(feature = "video")]
fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ffmpeg_next::init();
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_told_by_their_first_bytes() {
        assert!(sniff(b"\0\0\0\x20ftypisom\0\0\x02\0"));
        assert!(sniff(&[0x1a, 0x45, 0xdf, 0xa3, 0x01, 0, 0, 0]));
        assert!(sniff(b"RIFF\x10\0\0\0AVI LIST"));
        assert!(sniff(b"OggS\0\x02"));
        assert!(!sniff(b"RIFF\x10\0\0\0WEBPVP8 "));
        assert!(!sniff(b"\xff\xd8\xff\xe0"));
        assert!(has_video_extension(Path::new("a/b.MKV")) && !has_video_extension(Path::new("a.jpg")));
    }
}
