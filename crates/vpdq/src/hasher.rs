//! Video files to vPDQ features through libav, as the reference's `hashVideoFile`.

use std::path::Path;
use std::time::{Duration, Instant};

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling::{Context as Scaler, Flags};
use ffmpeg::util::frame::Video as VideoFrame;
use ffmpeg_next as ffmpeg;
use hashguard_pdq::{PdqHasher, RgbImage};

use crate::Feature;

/// How to hash a video.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoOptions {
    /// Seconds between hashed frames; 0 hashes every frame (the reference CLI's `-r 0`). The
    /// field's Python tools default to 1.
    pub seconds_per_hash: f64,
    /// Scale frames to NxN before hashing (the reference's `-s N`; aspect not kept), or `None`
    /// for native size.
    pub resize_to: Option<u32>,
    /// Refuse frames larger than this many pixels.
    pub max_frame_pixels: u64,
    /// Refuse videos longer than this many seconds (by header, and by decoded frames).
    pub max_duration_seconds: f64,
}

impl Default for VideoOptions {
    fn default() -> Self {
        VideoOptions {
            seconds_per_hash: 1.0,
            resize_to: None,
            max_frame_pixels: 8192 * 4320,
            max_duration_seconds: 4.0 * 3600.0,
        }
    }
}

/// Why a video could not be hashed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VideoError {
    /// libav could not open or read the container.
    #[error("cannot read video: {0}")]
    Open(String),
    /// The file has no video stream (e.g. audio only).
    #[error("no video stream (audio-only or not a video)")]
    NoVideoStream,
    /// The codec cannot be decoded.
    #[error("cannot decode video stream: {0}")]
    Codec(String),
    /// The stream's frame size is over the limit or zero.
    #[error("video frames of {width}x{height} are outside the limit of {limit} pixels")]
    FrameSize {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
        /// The limit in force.
        limit: u64,
    },
    /// The video is longer than allowed.
    #[error("video is longer than the limit of {limit} s")]
    TooLong {
        /// The limit in seconds.
        limit: f64,
    },
    /// Decoding failed part-way.
    #[error("corrupt video data: {0}")]
    Corrupt(String),
    /// The container declares more frames than could be decoded.
    #[error("truncated video: decoded {decoded} of {declared} frames")]
    Truncated {
        /// Frames decoded.
        decoded: u64,
        /// Frames the container declares.
        declared: u64,
    },
    /// Not a single frame could be decoded.
    #[error("no frames could be decoded")]
    NoFrames,
    /// The options are invalid.
    #[error("invalid options: {0}")]
    Options(String),
}

fn init() -> Result<(), VideoError> {
    static INIT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INIT.get_or_init(|| {
        ffmpeg::init().map_err(|e| e.to_string())?;
        // Per-file errors are returned as values; libav's own chatter would only repeat them.
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Quiet);
        Ok(())
    })
    .clone()
    .map_err(VideoError::Open)
}

/// Whether `bytes` (the start of a file) look like a video container this crate handles:
/// ISO BMFF (MP4, MOV, 3GP), Matroska/WebM, AVI, MPEG-TS/PS, FLV, Ogg, ASF/WMV.
pub fn is_video(bytes: &[u8]) -> bool {
    let at = |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
    at(4, b"ftyp")
        || at(4, b"moov")
        || at(4, b"mdat")
        || at(4, b"wide")
        || at(4, b"free")
        || at(0, &[0x1A, 0x45, 0xDF, 0xA3])
        || (at(0, b"RIFF") && at(8, b"AVI "))
        || (at(0, &[0x47]) && at(188, &[0x47]))
        || at(0, &[0x00, 0x00, 0x01, 0xBA])
        || at(0, b"FLV")
        || at(0, b"OggS")
        || at(0, &[0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11])
        || at(0, b"YUV4MPEG2")
}

/// The linked libavcodec's version as (major, minor, micro); FFmpeg 5.1 is 59.x, FFmpeg 8 is 62.x.
pub fn libavcodec_version() -> (u32, u32, u32) {
    let v = ffmpeg::codec::version();
    (v >> 16, (v >> 8) & 0xff, v & 0xff)
}

/// Where the time of one [`hash_video_file_timed`] call went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Demuxing and decoding (libav), including frames that are not hashed.
    pub decode: Duration,
    /// Conversion of hashed frames to RGB24 (swscale).
    pub convert: Duration,
    /// PDQ hashing of the converted frames.
    pub hash: Duration,
    /// Frames decoded.
    pub frames_decoded: u64,
    /// Frames hashed.
    pub frames_hashed: u64,
}

/// Hashes the video at `path`, returning its features in frame order.
pub fn hash_video_file(path: &Path, options: &VideoOptions) -> Result<Vec<Feature>, VideoError> {
    hash_video_file_timed(path, options).map(|(features, _)| features)
}

/// [`hash_video_file`], also reporting the time spent in each stage (for benchmarks).
pub fn hash_video_file_timed(
    path: &Path,
    options: &VideoOptions,
) -> Result<(Vec<Feature>, StageTimes), VideoError> {
    let started = Instant::now();
    if !(options.seconds_per_hash >= 0.0 && options.seconds_per_hash.is_finite()) {
        return Err(VideoError::Options("seconds per hash must be >= 0".into()));
    }
    if let Some(n) = options.resize_to {
        let pixels = u64::from(n) * u64::from(n);
        if n == 0 || pixels > options.max_frame_pixels {
            return Err(VideoError::Options(format!(
                "resize size {n} gives frames of {n}x{n} = {pixels} pixels; it must be between \
                 1 and the frame limit of {} pixels",
                options.max_frame_pixels
            )));
        }
    }
    // libav refuses Y4M frames over its own size limit with an unrelated error code ("Device
    // or resource busy"); the header says the size, so the frame limit is checked first.
    if let Some((width, height)) = y4m_frame_size(path) {
        check_size(width, height, options)?;
    }
    init()?;
    let mut input = ffmpeg::format::input(path).map_err(|e| VideoError::Open(e.to_string()))?;
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or(VideoError::NoVideoStream)?;
    let stream_index = stream.index();
    let rate = {
        let avg = stream.avg_frame_rate();
        if avg.numerator() != 0 && avg.denominator() != 0 {
            avg
        } else {
            stream.rate()
        }
    };
    let fps = if rate.denominator() != 0 {
        rate.numerator() as f64 / rate.denominator() as f64
    } else {
        0.0
    };
    if !(fps > 0.0 && fps.is_finite()) {
        return Err(VideoError::Corrupt("the stream has no frame rate".into()));
    }
    let declared_frames = u64::try_from(stream.frames()).unwrap_or(0);
    let max_frames = (options.max_duration_seconds * fps).ceil() as u64;
    if declared_frames > max_frames {
        return Err(VideoError::TooLong {
            limit: options.max_duration_seconds,
        });
    }

    let context = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
        .map_err(|e| VideoError::Codec(e.to_string()))?;
    let mut decoder = context
        .decoder()
        .video()
        .map_err(|e| VideoError::Codec(e.to_string()))?;
    check_size(decoder.width(), decoder.height(), options)?;

    let frame_mod = ((options.seconds_per_hash * fps) as i64).max(1) as u64;
    let mut state = FrameState {
        options,
        fps,
        frame_mod,
        max_frames,
        frame_number: 0,
        scaler: None,
        decoded: VideoFrame::empty(),
        rgb: VideoFrame::empty(),
        hasher: PdqHasher::new(),
        features: Vec::new(),
        times: StageTimes::default(),
    };
    for (packet_stream, packet) in input.packets() {
        if packet_stream.index() != stream_index {
            continue;
        }
        // A packet the decoder rejects is corrupt data; the reference skips it and goes on, and
        // so do we, but a file where nothing decodes is an error below.
        if decoder.send_packet(&packet).is_ok() {
            state.drain(&mut decoder)?;
        }
    }
    decoder
        .send_eof()
        .map_err(|e| VideoError::Corrupt(e.to_string()))?;
    state.drain(&mut decoder)?;

    if state.frame_number == 0 {
        return Err(VideoError::NoFrames);
    }
    if declared_frames > state.frame_number {
        return Err(VideoError::Truncated {
            decoded: state.frame_number,
            declared: declared_frames,
        });
    }
    let mut times = state.times;
    times.frames_decoded = state.frame_number;
    times.frames_hashed = state.features.len() as u64;
    times.decode = started
        .elapsed()
        .saturating_sub(times.convert)
        .saturating_sub(times.hash);
    Ok((state.features, times))
}

/// The frame size a YUV4MPEG2 file's header declares (`W<width>` and `H<height>` in its first
/// line), or `None` for any other file or a header without both.
fn y4m_frame_size(path: &Path) -> Option<(u32, u32)> {
    use std::io::Read;
    let mut head = Vec::with_capacity(256);
    std::fs::File::open(path)
        .ok()?
        .take(256)
        .read_to_end(&mut head)
        .ok()?;
    let line = head.split(|&b| b == b'\n').next()?;
    let mut fields = line.split(|&b| b == b' ');
    if fields.next()? != b"YUV4MPEG2" {
        return None;
    }
    let (mut width, mut height) = (None, None);
    for field in fields {
        let number = || {
            std::str::from_utf8(field.get(1..)?)
                .ok()?
                .parse::<u32>()
                .ok()
        };
        match field.first() {
            Some(b'W') => width = number(),
            Some(b'H') => height = number(),
            _ => {}
        }
    }
    Some((width?, height?))
}

fn check_size(width: u32, height: u32, options: &VideoOptions) -> Result<(), VideoError> {
    if width == 0 || height == 0 || (width as u64) * (height as u64) > options.max_frame_pixels {
        return Err(VideoError::FrameSize {
            width,
            height,
            limit: options.max_frame_pixels,
        });
    }
    Ok(())
}

struct FrameState<'a> {
    options: &'a VideoOptions,
    fps: f64,
    frame_mod: u64,
    max_frames: u64,
    frame_number: u64,
    scaler: Option<(Scaler, Pixel, u32, u32)>,
    decoded: VideoFrame,
    rgb: VideoFrame,
    hasher: PdqHasher,
    features: Vec<Feature>,
    times: StageTimes,
}

impl FrameState<'_> {
    /// Takes every frame the decoder has ready.
    fn drain(&mut self, decoder: &mut ffmpeg::decoder::Video) -> Result<(), VideoError> {
        while decoder.receive_frame(&mut self.decoded).is_ok() {
            let number = self.frame_number;
            self.frame_number += 1;
            if self.frame_number > self.max_frames {
                return Err(VideoError::TooLong {
                    limit: self.options.max_duration_seconds,
                });
            }
            if number.is_multiple_of(self.frame_mod) {
                self.hash_current(number)?;
            }
        }
        Ok(())
    }

    fn hash_current(&mut self, number: u64) -> Result<(), VideoError> {
        let (w, h, format) = (
            self.decoded.width(),
            self.decoded.height(),
            self.decoded.format(),
        );
        check_size(w, h, self.options)?;
        let (dw, dh) = match self.options.resize_to {
            Some(n) => (n, n),
            None => (w, h),
        };
        // Frame size or format can change mid-stream; rebuild the scaler when they do.
        let stale =
            !matches!(&self.scaler, Some((_, f, sw, sh)) if *f == format && *sw == w && *sh == h);
        if stale {
            let scaler = Scaler::get(format, w, h, Pixel::RGB24, dw, dh, Flags::AREA)
                .map_err(|e| VideoError::Codec(format!("no conversion to RGB: {e}")))?;
            self.scaler = Some((scaler, format, w, h));
        }
        let Some((scaler, ..)) = self.scaler.as_mut() else {
            return Err(VideoError::Codec("no scaler".into()));
        };
        let convert_start = Instant::now();
        scaler
            .run(&self.decoded, &mut self.rgb)
            .map_err(|e| VideoError::Corrupt(e.to_string()))?;
        // A frame libav could not allocate has no planes; reading it would panic.
        if self.rgb.planes() == 0 || self.rgb.width() != dw || self.rgb.height() != dh {
            return Err(VideoError::Codec(format!(
                "cannot convert a {w}x{h} frame to {dw}x{dh} RGB"
            )));
        }
        let hash_start = Instant::now();
        self.times.convert += hash_start - convert_start;
        let image = RgbImage::with_stride(
            self.rgb.data(0),
            dw as usize,
            dh as usize,
            self.rgb.stride(0),
        )
        .map_err(|e| VideoError::Corrupt(e.to_string()))?;
        let out = self.hasher.hash_rgb(&image);
        self.times.hash += hash_start.elapsed();
        self.features.push(Feature {
            frame: number,
            quality: out.quality,
            hash: out.hash,
            timestamp: number as f32 / self.fps as f32,
        });
        Ok(())
    }
}
