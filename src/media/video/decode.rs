//! Decoding the video stream frame by frame (both passes), and frames as upright RGB.

use std::path::Path;

use ff::format::context::Input;
use ff::software::scaling;
use ff::util::format::Pixel;
use ffmpeg_next as ff;
use image::{imageops, RgbImage};

use super::probe::{self, Probe};
use super::VideoError;

/// The video stream of an open input, decoded in presentation order.
pub(super) struct Decoding {
    pub input: Input,
    decoder: ff::decoder::Video,
    index: usize,
    /// Frames returned so far.
    pub frames: u64,
    promised: u64,
    size: (u32, u32),
    draining: bool,
}

impl Decoding {
    pub fn open(path: &Path) -> Result<(Decoding, Probe), VideoError> {
        Decoding::from_input(probe::open(path)?)
    }

    /// Decoding of an input already open (a live source opened with its own options).
    pub fn from_input(input: Input) -> Result<(Decoding, Probe), VideoError> {
        let probe = probe::describe(&input)?;
        let index = probe.streams.video.index;
        let stream = input.stream(index).expect("the probed video stream");
        let mut context = ff::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|err| VideoError::Ffmpeg { what: "reading the video stream's parameters", err })?;
        context.set_threading(ff::threading::Config {
            kind: ff::threading::Type::Frame,
            count: 0,
            ..Default::default()
        });
        let decoder =
            context.decoder().video().map_err(|_| VideoError::NoDecoder(probe.streams.video.codec.clone()))?;
        let decoding = Decoding {
            input,
            decoder,
            index,
            frames: 0,
            promised: probe.promised_frames,
            size: (probe.width, probe.height),
            draining: false,
        };
        Ok((decoding, probe))
    }

    /// The next frame into `frame` (its pts set to the best-effort timestamp); `false` at the
    /// end. Packets of the other streams go to `other` in file order. Any read or decoding
    /// error, a corrupt frame, a size change, or fewer frames than the header promises fails.
    pub fn next(
        &mut self,
        frame: &mut ff::frame::Video,
        other: &mut dyn FnMut(ff::Packet) -> Result<(), VideoError>,
    ) -> Result<bool, VideoError> {
        loop {
            match self.decoder.receive_frame(frame) {
                Ok(()) => {
                    if frame.is_corrupt() || (frame.width(), frame.height()) != self.size {
                        return Err(VideoError::CorruptFrame(self.frames));
                    }
                    let pts = frame.timestamp();
                    frame.set_pts(pts);
                    self.frames += 1;
                    return Ok(true);
                }
                Err(ff::Error::Eof) => return self.end(),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {}
                Err(e) => return Err(VideoError::Damaged(e)),
            }
            if self.draining {
                return self.end();
            }
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.index => {
                    self.decoder.send_packet(&packet).map_err(VideoError::Damaged)?;
                }
                Ok(()) => other(packet)?,
                Err(ff::Error::Eof) => {
                    self.decoder.send_eof().map_err(VideoError::Damaged)?;
                    self.draining = true;
                }
                Err(e) => return Err(VideoError::Damaged(e)),
            }
        }
    }

    fn end(&self) -> Result<bool, VideoError> {
        // MP4 and MOV count their frames; an edit list may hide a few at the start.
        if self.frames + self.promised / 20 + 2 < self.promised || self.frames == 0 {
            return Err(VideoError::CutShort { decoded: self.frames, promised: self.promised });
        }
        Ok(false)
    }
}

/// One decoded frame of [`scan`].
pub struct Frame<'a> {
    frame: &'a ff::frame::Video,
    index: u64,
    rotation: u32,
    scaler: &'a mut Scaler,
}

impl Frame<'_> {
    /// Its place in presentation order, from 0.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The frame as shown (display matrix applied) in RGB, scaled down so that its long side
    /// is at most `max_side` (`None`: full size).
    pub fn upright_rgb(&mut self, max_side: Option<u32>) -> Result<RgbImage, VideoError> {
        upright_rgb(self.frame, self.rotation, self.scaler, max_side)
    }
}

/// `frame` as shown (turned clockwise by `rotation`) in RGB, its long side at most `max_side`.
pub(super) fn upright_rgb(
    frame: &ff::frame::Video,
    rotation: u32,
    scaler: &mut Scaler,
    max_side: Option<u32>,
) -> Result<RgbImage, VideoError> {
    let (w, h) = (frame.width(), frame.height());
    let scale = max_side.map_or(1.0, |m| (m as f64 / w.max(h) as f64).min(1.0));
    let size = (((w as f64 * scale).round() as u32).max(1), ((h as f64 * scale).round() as u32).max(1));
    let rgb = scaler.rgb(frame, size)?;
    Ok(turn(rgb, rotation))
}

/// Decodes every frame of `path`'s video stream in presentation order and calls `each` on it;
/// returns the number of frames. Memory stays that of one frame (and the decoder's).
pub fn scan<E: From<VideoError>>(path: &Path, mut each: impl FnMut(Frame) -> Result<(), E>) -> Result<u64, E> {
    let (mut decoding, probe) = Decoding::open(path)?;
    let mut frame = ff::frame::Video::empty();
    let mut scaler = Scaler::default();
    while decoding.next(&mut frame, &mut |_| Ok(()))? {
        each(Frame { frame: &frame, index: decoding.frames - 1, rotation: probe.rotation, scaler: &mut scaler })?;
    }
    Ok(decoding.frames)
}

/// Turns a stored frame clockwise by `rotation` degrees (upright), or back with `360 - r`.
pub(super) fn turn(rgb: RgbImage, rotation: u32) -> RgbImage {
    match rotation % 360 {
        90 => imageops::rotate90(&rgb),
        180 => imageops::rotate180(&rgb),
        270 => imageops::rotate270(&rgb),
        _ => rgb,
    }
}

/// swscale contexts kept between frames: one to RGB at a size, one back.
#[derive(Default)]
pub(super) struct Scaler {
    to: Option<(ToRgb, scaling::Context)>,
    from: Option<(FromRgb, scaling::Context)>,
}

/// Source format and size, and RGB size, of a conversion to RGB.
type ToRgb = (Pixel, u32, u32, u32, u32);
/// Target format and size of a conversion from RGB.
type FromRgb = (Pixel, u32, u32);

// SAFETY: a swscale context is plain memory used by one thread at a time (the owner's).
unsafe impl Send for Scaler {}

impl Scaler {
    /// `frame` in RGB at `size`.
    pub fn rgb(&mut self, frame: &ff::frame::Video, size: (u32, u32)) -> Result<RgbImage, VideoError> {
        let key = (frame.format(), frame.width(), frame.height(), size.0, size.1);
        if self.to.as_ref().is_none_or(|(k, _)| *k != key) {
            let context =
                scaling::Context::get(key.0, key.1, key.2, Pixel::RGB24, size.0, size.1, scaling::Flags::BILINEAR)
                    .map_err(|err| VideoError::Ffmpeg { what: "converting a frame to RGB", err })?;
            self.to = Some((key, context));
        }
        let (_, context) = self.to.as_mut().expect("set above");
        let mut rgb = ff::frame::Video::empty();
        context.run(frame, &mut rgb).map_err(|err| VideoError::Ffmpeg { what: "converting a frame to RGB", err })?;
        let (stride, row) = (rgb.stride(0), size.0 as usize * 3);
        let data = rgb.data(0);
        let mut out = Vec::with_capacity(row * size.1 as usize);
        for y in 0..size.1 as usize {
            out.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        Ok(RgbImage::from_raw(size.0, size.1, out).expect("rows of the frame's size"))
    }

    /// `rgb` converted to `format` (same size) in `out`.
    pub fn unrgb(&mut self, rgb: &RgbImage, format: Pixel, out: &mut ff::frame::Video) -> Result<(), VideoError> {
        let (w, h) = rgb.dimensions();
        let key = (format, w, h);
        if self.from.as_ref().is_none_or(|(k, _)| *k != key) {
            let context = scaling::Context::get(Pixel::RGB24, w, h, format, w, h, scaling::Flags::BILINEAR)
                .map_err(|err| VideoError::Ffmpeg { what: "converting a frame from RGB", err })?;
            self.from = Some((key, context));
        }
        let mut frame = ff::frame::Video::new(Pixel::RGB24, w, h);
        let stride = frame.stride(0);
        let row = w as usize * 3;
        let data = frame.data_mut(0);
        for (y, src) in rgb.as_raw().chunks_exact(row).enumerate() {
            data[y * stride..y * stride + row].copy_from_slice(src);
        }
        let (_, context) = self.from.as_mut().expect("set above");
        context.run(&frame, out).map_err(|err| VideoError::Ffmpeg { what: "converting a frame from RGB", err })
    }
}
