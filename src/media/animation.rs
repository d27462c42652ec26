//! Animated GIF, PNG (APNG) and WebP: every frame decoded as a full canvas, checked and
//! redacted like a still, and written back with its timing and loop count. Frames are
//! independent stills here (no tracking between them). Animated WebP is read (so `find` sees
//! every frame) but cannot be written back yet: it fails rather than lose its animation.

use std::io::Cursor;

use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::metadata::LoopCount;
use image::{AnimationDecoder, Delay, Frame, ImageFormat, RgbaImage};

use super::{DecodeError, DecodeLimits, EncodeError};

/// The frames of an animation, each the full canvas as it is shown.
pub struct Animation {
    pub frames: Vec<AnimationFrame>,
    pub loops: LoopCount,
}

pub struct AnimationFrame {
    pub rgba: RgbaImage,
    pub delay: Delay,
}

/// The animation in `bytes` of `format`, or `None` for a still (or a single-frame animation).
pub fn decode(bytes: &[u8], format: ImageFormat, limits: DecodeLimits) -> Result<Option<Animation>, DecodeError> {
    let image = |e| DecodeError::Damaged { format: format!("{format:?}").to_uppercase(), detail: e };
    let (loops, frames) = match format {
        ImageFormat::Gif => {
            let d = GifDecoder::new(Cursor::new(bytes)).map_err(image)?;
            (d.loop_count(), d.into_frames())
        }
        ImageFormat::Png => {
            let d = PngDecoder::new(Cursor::new(bytes)).map_err(image)?;
            if !d.is_apng().map_err(image)? {
                return Ok(None);
            }
            let d = d.apng().map_err(image)?;
            (d.loop_count(), d.into_frames())
        }
        ImageFormat::WebP => {
            let d = WebPDecoder::new(Cursor::new(bytes)).map_err(image)?;
            if !d.has_animation() {
                return Ok(None);
            }
            (d.loop_count(), d.into_frames())
        }
        _ => return Ok(None),
    };
    let mut out = Vec::new();
    let mut total = 0u64;
    for frame in frames {
        let frame = frame.map_err(image)?;
        let delay = frame.delay();
        let rgba = frame.into_buffer();
        total += rgba.as_raw().len() as u64;
        if total > limits.max_alloc || rgba.width().max(rgba.height()) > limits.max_side {
            return Err(DecodeError::PastLimits { width: rgba.width(), height: rgba.height() });
        }
        out.push(AnimationFrame { rgba, delay });
    }
    Ok((out.len() > 1).then_some(Animation { frames: out, loops }))
}

/// The animation in `format` (GIF or PNG), its timing and loop count kept.
pub fn encode(animation: Animation, format: ImageFormat) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    match format {
        ImageFormat::Gif => {
            let mut enc = GifEncoder::new_with_speed(&mut out, 10);
            enc.set_repeat(match animation.loops {
                LoopCount::Infinite => Repeat::Infinite,
                LoopCount::Finite(n) => Repeat::Finite(u16::try_from(n.get()).unwrap_or(u16::MAX)),
            })?;
            enc.encode_frames(animation.frames.into_iter().map(|f| Frame::from_parts(f.rgba, 0, 0, f.delay)))?;
        }
        ImageFormat::Png => {
            let (w, h) = animation.frames[0].rgba.dimensions();
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            let plays = match animation.loops {
                LoopCount::Infinite => 0,
                LoopCount::Finite(n) => n.get(),
            };
            enc.set_animated(animation.frames.len() as u32, plays)?;
            let mut writer = enc.write_header()?;
            for f in &animation.frames {
                let (num, den) = f.delay.numer_denom_ms();
                let (num, den) = fit_u16(num, den);
                writer.set_frame_delay(num, den)?;
                writer.write_image_data(f.rgba.as_raw())?;
            }
            writer.finish()?;
        }
        ImageFormat::WebP => return Err(EncodeError::AnimatedWebp),
        other => return Err(EncodeError::UnsupportedFormat(other)),
    }
    Ok(out)
}

/// A delay of `num / den` ms as a fraction of seconds in 16-bit parts (APNG's fcTL).
fn fit_u16(num: u32, den: u32) -> (u16, u16) {
    let (mut n, mut d) = (num as u64, den as u64 * 1000);
    while n > u16::MAX as u64 || d > u16::MAX as u64 {
        n = n.div_ceil(2);
        d = d.div_ceil(2);
    }
    (n as u16, d.max(1) as u16)
}
