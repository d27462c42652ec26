//! The second pass: decode again, redact, encode into the input's container; audio copied.

use std::collections::HashMap;
use std::ffi::CString;
use std::path::Path;

use ff::format::context::Output;
use ff::util::format::Pixel;
use ff::Rational;
use ffmpeg_next as ff;

use super::decode::{turn, Decoding, Scaler};
use super::probe::Probe;
use super::{VideoCodec, VideoError, VideoOptions};
use crate::detect::FaceBox;
use crate::media::MetadataPolicy;
use crate::redact::{self, Mask, RedactOptions};

/// What [`transcode`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub frames: u64,
    /// The FFmpeg encoder used (`libx264`...).
    pub encoder: &'static str,
    /// The constant rate factor it ran at (`None`: Theora's fixed quality).
    pub crf: Option<u8>,
}

/// Display-matrix, HDR and 3D side data of the video stream, copied to the output stream.
const KEPT_SIDE_DATA: [ff::codec::packet::side_data::Type; 5] = {
    use ff::codec::packet::side_data::Type::*;
    [DisplayMatrix, Stereo3d, DataSpherical, MasteringDisplayMetadata, ContentLightLevel]
};
/// Tags kept without `--keep-metadata`, as for photos: the container's artist and copyright,
/// each stream's language.
const KEPT_TAGS: [&str; 2] = ["artist", "copyright"];
const KEPT_STREAM_TAGS: [&str; 1] = ["language"];

/// Redacts `source`'s video stream into `target`, in the container its final name
/// `container_of` calls for (the input's own: the names share the extension). `boxes(i)` are
/// the faces of frame `i`, in upright pixels. Every frame keeps its timestamps; audio is
/// copied packet for packet unless stripped. `progress(i)` hears of each frame.
pub fn transcode(
    source: &Path,
    target: &Path,
    container_of: &Path,
    options: &VideoOptions,
    redact: &RedactOptions,
    mut boxes: impl FnMut(u64) -> Vec<FaceBox>,
    mut progress: impl FnMut(u64),
) -> Result<Encoded, VideoError> {
    let (mut decoding, probe) = Decoding::open(source)?;
    let muxer = muxer_name(container_of)?;
    let output = ff::format::output_as(target, &muxer)
        .map_err(|err| VideoError::Ffmpeg { what: "creating the output container", err })?;
    let choice = choose(options, &muxer, &output, container_of)?;
    let mut output = Some(output);
    let mut writer: Option<Writer> = None;
    let mut early_audio = Vec::new();
    let mut frame = ff::frame::Video::empty();
    let mut scaler = Scaler::default();
    loop {
        let mut other = |packet: ff::Packet| match writer.as_mut() {
            Some(w) => w.copy(packet),
            None => {
                early_audio.push(packet);
                Ok(())
            }
        };
        if !decoding.next(&mut frame, &mut other)? {
            break;
        }
        let index = decoding.frames - 1;
        if writer.is_none() {
            let out = output.take().expect("the output until the first frame");
            let mut w = Writer::open(out, &decoding, &probe, &frame, &choice, options)?;
            for packet in early_audio.drain(..) {
                w.copy(packet)?;
            }
            writer = Some(w);
        }
        let w = writer.as_mut().expect("opened above");
        let mut picture = w.convert(&mut frame)?;
        let faces = boxes(index);
        if !faces.is_empty() {
            redact_frame(&mut picture, &faces, probe.rotation, redact, &mut scaler)?;
        }
        w.encode(Some(&picture))?;
        progress(index);
    }
    let mut w = writer.expect("a video that decoded has frames");
    w.encode(None)?;
    w.output.write_trailer().map_err(|err| VideoError::Ffmpeg { what: "finishing the output container", err })?;
    Ok(Encoded { frames: decoding.frames, encoder: choice.encoder, crf: choice.crf })
}

/// The muxer FFmpeg picks for a file of this name.
pub(super) fn muxer_name(path: &Path) -> Result<String, VideoError> {
    let name = CString::new(path.file_name().unwrap_or_default().to_string_lossy().as_bytes())
        .map_err(|_| VideoError::NoContainer(path.display().to_string()))?;
    super::init();
    // SAFETY: a NUL-terminated name; the result is a static muxer description or null.
    let format = unsafe { ff::ffi::av_guess_format(std::ptr::null(), name.as_ptr(), std::ptr::null()) };
    if format.is_null() {
        return Err(VideoError::NoContainer(path.display().to_string()));
    }
    // SAFETY: every muxer has a static name.
    Ok(unsafe { std::ffi::CStr::from_ptr((*format).name) }.to_string_lossy().into_owned())
}

/// An encoder and its quality.
pub(super) struct Choice {
    pub encoder: &'static str,
    codec: VideoCodec,
    crf: Option<u8>,
    /// Tuned for a live stream: the fastest presets, no frame held back in the encoder.
    live: bool,
}

impl Choice {
    pub fn live(self) -> Choice {
        Choice { live: true, ..self }
    }
}

/// The encoder for `options` in this container: `auto` is H.264, but VP9 in WebM and Theora in
/// Ogg, which cannot hold H.264. A codec the container rejects fails the file.
pub(super) fn choose(options: &VideoOptions, muxer: &str, output: &Output, name: &Path) -> Result<Choice, VideoError> {
    let codec = match (options.codec, muxer) {
        (VideoCodec::Auto, "webm") => VideoCodec::Vp9,
        (VideoCodec::Auto, "ogg" | "ogv") => {
            return Ok(Choice { encoder: "libtheora", codec: VideoCodec::Auto, crf: None, live: false });
        }
        (VideoCodec::Auto, _) => VideoCodec::H264,
        (c, _) => c,
    };
    let (encoder, id, default_crf) = match codec {
        VideoCodec::H264 | VideoCodec::Auto => ("libx264", ff::codec::Id::H264, 18),
        VideoCodec::H265 => ("libx265", ff::codec::Id::HEVC, 20),
        VideoCodec::Vp9 => ("libvpx-vp9", ff::codec::Id::VP9, 24),
        VideoCodec::Av1 => ("libaom-av1", ff::codec::Id::AV1, 28),
    };
    // SAFETY: the output context's muxer description is valid while it lives.
    let fits = unsafe { ff::ffi::avformat_query_codec((*output.as_ptr()).oformat, id.into(), 0) };
    if fits == 0 {
        let container = name.extension().unwrap_or_default().to_string_lossy().into_owned();
        return Err(VideoError::ContainerRejects { codec: codec.name(), container });
    }
    Ok(Choice { encoder, codec, crf: Some(options.crf.unwrap_or(default_crf)), live: false })
}

/// The output container with its encoder, once the first frame has told the pixel format.
pub(super) struct Writer {
    pub output: Output,
    encoder: ff::encoder::Video,
    encoder_tb: Rational,
    input_tb: Rational,
    /// Output stream of each copied input stream, with both time bases.
    audio: HashMap<usize, (usize, Rational, Rational)>,
    /// Decoded frames' durations by pts (encoder time base), for their packets.
    durations: HashMap<i64, i64>,
    convert: Option<ff::software::scaling::Context>,
}

impl Writer {
    pub fn open(
        mut output: Output,
        decoding: &Decoding,
        probe: &Probe,
        first: &ff::frame::Video,
        choice: &Choice,
        options: &VideoOptions,
    ) -> Result<Writer, VideoError> {
        let ffmpeg = |what| move |err| VideoError::Ffmpeg { what, err };
        let input = &decoding.input;
        let codec = ff::encoder::find_by_name(choice.encoder).ok_or(VideoError::NoEncoder(choice.encoder))?;
        let (w, h) = (first.width(), first.height());
        let format = pixel_format(&codec, first.format(), w, h);
        let global_header = output.format().flags().contains(ff::format::Flags::GLOBAL_HEADER);
        let mut context = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(ffmpeg("setting up the encoder"))?;
        // Theora counts frames in its time base; the others take the input's.
        let encoder_tb = if choice.encoder == "libtheora" && probe.frame_rate.numerator() > 0 {
            probe.frame_rate.invert()
        } else {
            probe.time_base
        };
        context.set_width(w);
        context.set_height(h);
        context.set_format(format);
        context.set_time_base(encoder_tb);
        if probe.frame_rate.numerator() > 0 {
            context.set_frame_rate(Some(probe.frame_rate));
        }
        context.set_aspect_ratio(first.aspect_ratio());
        context.set_colorspace(first.color_space());
        context.set_color_range(first.color_range());
        context.set_color_primaries(first.color_primaries());
        context.set_color_transfer_characteristic(first.color_transfer_characteristic());
        // SAFETY: both are plain fields of live contexts.
        unsafe { (*context.as_mut_ptr()).chroma_sample_location = (*first.as_ptr()).chroma_location };
        let mut flags = ff::codec::Flags::empty();
        if global_header {
            flags |= ff::codec::Flags::GLOBAL_HEADER;
        }
        let mut settings = ff::Dictionary::new();
        match (choice.codec, choice.crf) {
            (_, None) => {
                // Theora: fixed quality 8 of 10.
                flags |= ff::codec::Flags::QSCALE;
                context.set_global_quality(8 * ff::ffi::FF_QP2LAMBDA);
            }
            (VideoCodec::H264 | VideoCodec::Auto | VideoCodec::H265, Some(crf)) if choice.live => {
                settings.set("crf", &crf.to_string());
                settings.set("preset", "superfast");
                settings.set("tune", "zerolatency");
            }
            (VideoCodec::Vp9, Some(crf)) => {
                settings.set("crf", &crf.to_string());
                settings.set("b", "0");
                settings.set("row-mt", "1");
                settings.set("deadline", "good");
                settings.set("cpu-used", "4");
            }
            (VideoCodec::Av1, Some(crf)) => {
                settings.set("crf", &crf.to_string());
                settings.set("cpu-used", "6");
                settings.set("row-mt", "1");
            }
            (_, Some(crf)) => {
                settings.set("crf", &crf.to_string());
                settings.set("preset", "medium");
            }
        }
        // AVI stores no presentation times: frames must come out in the order they are shown.
        if output.format().name() == "avi" {
            context.set_max_b_frames(0);
        }
        context.set_flags(flags);
        let encoder = context.open_as_with(codec, settings).map_err(ffmpeg("opening the video encoder"))?;
        let in_video = input.stream(probe.streams.video.index).expect("the probed video stream");
        {
            let mut stream = output.add_stream(codec).map_err(ffmpeg("adding the video stream"))?;
            stream.set_parameters(&encoder);
            stream.set_time_base(probe.time_base);
            stream.set_avg_frame_rate(probe.frame_rate);
            stream.set_rate(in_video.rate());
            stream.set_metadata(tags(in_video.metadata(), &KEPT_STREAM_TAGS, options.metadata));
            // SAFETY: plain fields of live streams; new side data has the size asked for and is
            // filled at once.
            unsafe {
                let st = stream.as_mut_ptr();
                (*st).sample_aspect_ratio = (*first.as_ptr()).sample_aspect_ratio;
                (*st).disposition = (*in_video.as_ptr()).disposition;
                for data in in_video.side_data().filter(|d| KEPT_SIDE_DATA.contains(&d.kind())) {
                    let dst = ff::ffi::av_stream_new_side_data(st, data.kind().into(), data.data().len());
                    if dst.is_null() {
                        return Err(VideoError::Ffmpeg { what: "copying the display matrix", err: ff::Error::Unknown });
                    }
                    std::ptr::copy_nonoverlapping(data.data().as_ptr(), dst, data.data().len());
                }
            }
        }
        let mut audio = HashMap::new();
        if !options.strip_audio {
            for info in &probe.streams.audio {
                let ist = input.stream(info.index).expect("a probed stream");
                let mut stream = output
                    .add_stream(ff::encoder::find(ff::codec::Id::None))
                    .map_err(ffmpeg("adding an audio stream"))?;
                stream.set_parameters(ist.parameters());
                stream.set_time_base(ist.time_base());
                stream.set_metadata(tags(ist.metadata(), &KEPT_STREAM_TAGS, options.metadata));
                // SAFETY: plain fields of live streams; the muxer picks the tag for its format.
                unsafe {
                    (*(*stream.as_mut_ptr()).codecpar).codec_tag = 0;
                    (*stream.as_mut_ptr()).disposition = (*ist.as_ptr()).disposition;
                }
                audio.insert(info.index, (stream.index(), ist.time_base(), Rational(0, 1)));
            }
        }
        output.set_metadata(tags(input.metadata(), &KEPT_TAGS, options.metadata));
        // MP4 and MOV write edit lists in the movie's timescale (1/1000 by default): in the
        // video's own, the first frame's time survives exactly.
        let mut header = ff::Dictionary::new();
        header.set("movie_timescale", &probe.time_base.denominator().to_string());
        output.write_header_with(header).map_err(ffmpeg("writing the output header"))?;
        for (out, _, out_tb) in audio.values_mut() {
            *out_tb = output.stream(*out).expect("added above").time_base();
        }
        let convert = if format == first.format() {
            None
        } else {
            Some(
                ff::software::scaling::Context::get(
                    first.format(),
                    w,
                    h,
                    format,
                    w,
                    h,
                    ff::software::scaling::Flags::BICUBIC,
                )
                .map_err(ffmpeg("converting frames for the encoder"))?,
            )
        };
        Ok(Writer { output, encoder, encoder_tb, input_tb: probe.time_base, audio, durations: HashMap::new(), convert })
    }

    /// A copied stream's packet written as it came (timestamps rescaled only); other
    /// streams' packets are dropped.
    pub fn copy(&mut self, mut packet: ff::Packet) -> Result<(), VideoError> {
        let Some(&(out, in_tb, out_tb)) = self.audio.get(&packet.stream()) else { return Ok(()) };
        packet.rescale_ts(in_tb, out_tb);
        packet.set_position(-1);
        packet.set_stream(out);
        packet.write_interleaved(&mut self.output).map_err(|err| VideoError::Ffmpeg { what: "writing audio", err })
    }

    /// The decoded frame in the encoder's pixel format and time base (made writable).
    pub fn convert(&mut self, frame: &mut ff::frame::Video) -> Result<ff::frame::Video, VideoError> {
        let mut picture = match &mut self.convert {
            Some(context) => {
                let mut converted = ff::frame::Video::empty();
                context
                    .run(frame, &mut converted)
                    .map_err(|err| VideoError::Ffmpeg { what: "converting a frame", err })?;
                converted
            }
            None => {
                // SAFETY: the decoder may still reference the frame's buffers: make ours own.
                let e = unsafe { ff::ffi::av_frame_make_writable(frame.as_mut_ptr()) };
                if e < 0 {
                    return Err(VideoError::Ffmpeg { what: "copying a frame", err: ff::Error::from(e) });
                }
                frame.clone()
            }
        };
        let rescale = |v: i64| ff::rescale::Rescale::rescale(&v, self.input_tb, self.encoder_tb);
        let pts = frame.pts().map(rescale);
        picture.set_pts(pts);
        picture.set_kind(ff::picture::Type::None);
        // SAFETY: a plain field of a live frame (FFmpeg 5.1's name for the duration).
        let duration = unsafe { (*frame.as_ptr()).pkt_duration };
        if let (Some(pts), true) = (pts, duration > 0) {
            self.durations.insert(pts, rescale(duration));
        }
        Ok(picture)
    }

    /// Sends a frame (`None`: the end) and writes every packet the encoder has ready.
    pub fn encode(&mut self, picture: Option<&ff::frame::Video>) -> Result<(), VideoError> {
        let ffmpeg = |what| move |err| VideoError::Ffmpeg { what, err };
        match picture {
            Some(p) => self.encoder.send_frame(p).map_err(ffmpeg("encoding a frame"))?,
            None => self.encoder.send_eof().map_err(ffmpeg("finishing the encoding"))?,
        }
        let out_tb = self.output.stream(0).expect("the video stream").time_base();
        loop {
            let mut packet = ff::Packet::empty();
            match self.encoder.receive_packet(&mut packet) {
                Ok(()) => {}
                Err(ff::Error::Eof) => return Ok(()),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => return Ok(()),
                Err(err) => return Err(VideoError::Ffmpeg { what: "encoding a frame", err }),
            }
            if let Some(d) = packet.pts().and_then(|pts| self.durations.remove(&pts)) {
                if packet.duration() == 0 {
                    packet.set_duration(d);
                }
            }
            packet.set_stream(0);
            packet.rescale_ts(self.encoder_tb, out_tb);
            packet.write_interleaved(&mut self.output).map_err(ffmpeg("writing video"))?;
        }
    }
}

/// The encoder's pixel format closest to the decoded one: the same where the encoder takes it
/// (10-bit stays 10-bit), and never chroma subsampled along an odd side, which the encoders
/// refuse (an odd-sized 4:2:0 video becomes 4:4:4 rather than losing or inventing a pixel row).
fn pixel_format(codec: &ff::Codec, source: Pixel, w: u32, h: u32) -> Pixel {
    let all: Vec<Pixel> = codec.video().ok().and_then(|v| v.formats()).map(|f| f.collect()).unwrap_or_default();
    let fits = |p: &Pixel| {
        // SAFETY: a descriptor of a known format, or null.
        let d = unsafe { ff::ffi::av_pix_fmt_desc_get((*p).into()) };
        !d.is_null()
            && unsafe {
                (w.is_multiple_of(2) || (*d).log2_chroma_w == 0) && (h.is_multiple_of(2) || (*d).log2_chroma_h == 0)
            }
    };
    let usable: Vec<Pixel> = all.iter().copied().filter(fits).collect();
    let list = if usable.is_empty() { all } else { usable };
    if list.is_empty() || list.contains(&source) {
        return source;
    }
    let mut raw: Vec<ff::ffi::AVPixelFormat> = list.iter().map(|&p| p.into()).collect();
    raw.push(ff::ffi::AVPixelFormat::AV_PIX_FMT_NONE);
    let mut loss = 0;
    // SAFETY: a NONE-terminated list.
    Pixel::from(unsafe { ff::ffi::avcodec_find_best_pix_fmt_of_list(raw.as_ptr(), source.into(), 0, &mut loss) })
}

/// The tags of `dict` that survive: all with [`MetadataPolicy::Keep`], else those in `kept`.
fn tags(dict: ff::DictionaryRef, kept: &[&str], policy: MetadataPolicy) -> ff::Dictionary<'static> {
    dict.iter()
        .filter(|(k, _)| policy == MetadataPolicy::Keep || kept.iter().any(|t| t.eq_ignore_ascii_case(k)))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Redacts `faces` (upright pixels) in `frame`: the frame goes to RGB, is turned upright,
/// redacted, turned back and converted again, and only the masks' rectangles (to the chroma
/// grid) are copied back, so the rest of the frame keeps its samples exactly.
pub(super) fn redact_frame(
    frame: &mut ff::frame::Video,
    faces: &[FaceBox],
    rotation: u32,
    options: &RedactOptions,
    scaler: &mut Scaler,
) -> Result<(), VideoError> {
    let (w, h) = (frame.width(), frame.height());
    let mut upright = turn(scaler.rgb(frame, (w, h))?, rotation);
    redact::redact(&mut upright, faces, options);
    let (uw, uh) = upright.dimensions();
    let rects: Vec<(u32, u32, u32, u32)> = faces
        .iter()
        .map(|f| Mask::for_face(f, options, uw, uh).bounds())
        .map(|(u0, v0, u1, v1)| match rotation % 360 {
            90 => (v0, h.saturating_sub(u1), v1, h.saturating_sub(u0)),
            180 => (w.saturating_sub(u1), h.saturating_sub(v1), w.saturating_sub(u0), h.saturating_sub(v0)),
            270 => (w.saturating_sub(v1), u0, w.saturating_sub(v0), u1),
            _ => (u0, v0, u1, v1),
        })
        .collect();
    let stored = turn(upright, (360 - rotation % 360) % 360);
    let mut redacted = ff::frame::Video::empty();
    scaler.unrgb(&stored, frame.format(), &mut redacted)?;
    for rect in rects {
        copy_rect(&redacted, frame, rect);
    }
    Ok(())
}

/// Copies the pixels of `rect` (x0, y0, x1, y1), widened to whole chroma samples, from `src`
/// to `dst` (same format and size), plane by plane.
pub(super) fn copy_rect(src: &ff::frame::Video, dst: &mut ff::frame::Video, rect: (u32, u32, u32, u32)) {
    // SAFETY: the descriptor of the frames' (software) format.
    let desc = unsafe { &*ff::ffi::av_pix_fmt_desc_get(src.format().into()) };
    let (sw, sh) = (1u32 << desc.log2_chroma_w, 1u32 << desc.log2_chroma_h);
    let (w, h) = (dst.width(), dst.height());
    let x0 = rect.0.min(w) / sw * sw;
    let y0 = rect.1.min(h) / sh * sh;
    let x1 = rect.2.min(w).div_ceil(sw) * sw;
    let y1 = rect.3.min(h).div_ceil(sh) * sh;
    let rgb = desc.flags & ff::ffi::AV_PIX_FMT_FLAG_RGB as u64 != 0;
    for plane in 0..dst.planes() {
        let comps = &desc.comp[..desc.nb_components as usize];
        let step = comps.iter().filter(|c| c.plane as usize == plane).map(|c| c.step).max().unwrap_or(1) as usize;
        let chroma = !rgb && comps.iter().enumerate().any(|(i, c)| c.plane as usize == plane && (i == 1 || i == 2));
        let (px, py) = if chroma { (desc.log2_chroma_w, desc.log2_chroma_h) } else { (0, 0) };
        let (cx0, cx1) = ((x0 >> px) as usize * step, (x1.div_ceil(1 << px)) as usize * step);
        let (cy0, cy1) = ((y0 >> py) as usize, y1.div_ceil(1 << py) as usize);
        let (ss, ds) = (src.stride(plane), dst.stride(plane));
        let rows = dst.plane_height(plane) as usize;
        for y in cy0..cy1.min(rows) {
            dst.data_mut(plane)[y * ds + cx0..y * ds + cx1]
                .copy_from_slice(&src.data(plane)[y * ss + cx0..y * ss + cx1]);
        }
    }
}
