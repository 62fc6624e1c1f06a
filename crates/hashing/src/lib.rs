//! Bytes, files and streams to every hash the other parts need: the PDQ hash and quality of an
//! image (with, on request, its float coefficients and its 8 dihedral hashes), the vPDQ frame
//! hashes of a video, and the MD5 and SHA-256 of the bytes for exact-match banks.
//!
//! One pipeline for the command line, the server and the client SDK, so that all three hash a
//! file the same way:
//! - **Content decides.** The first [`SNIFF_BYTES`] bytes say whether an input is an image, a
//!   video or neither; nothing more is read from an input that is neither, whatever its size.
//! - **Bounded.** An image (or a video arriving as a stream) is read only up to
//!   [`Options::max_file_bytes`]; images are refused by their header's pixel count before any
//!   pixel buffer exists; videos by frame size and duration (see `hashguard_vpdq`).
//! - **The second hash** ([`second`]): the automatic check's perceptual hash of the visual
//!   derivative, from the same decoded pixels as PDQ ([`Hasher::second_hash_bytes`]).
//! - **One typed error.** [`HashError`] tells an unsupported format, corrupt or truncated data,
//!   a size over a limit and an I/O failure apart ([`HashError::kind`]), so a server can answer
//!   each with its own status and a CLI can print the reason.
//!
//! ```
//! use hashguard_hashing::{Hashed, Hasher, Options};
//! # let png = {
//! #     let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 9]));
//! #     let mut out = std::io::Cursor::new(Vec::new());
//! #     img.write_to(&mut out, image::ImageFormat::Png).unwrap();
//! #     out.into_inner()
//! # };
//! let mut hasher = Hasher::new(Options { digests: true, ..Options::default() });
//! let Hashed::Image { hash, digests, .. } = hasher.hash_bytes(&png)? else { unreachable!() };
//! assert!(hash.quality <= 100);
//! assert!(digests.is_some());
//! # Ok::<(), hashguard_hashing::HashError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hashguard_media::{DecodeOptions, MediaError};
use hashguard_pdq::{DihedralHashes, PdqFloats, PdqHasher, PdqOutput, RgbImage};
use hashguard_vpdq::{hash_video_file, Feature, VideoError, VideoOptions};
use md5::Md5;
use sha2::{Digest, Sha256};

pub mod second;
pub use second::{SecondHash, SecondHashError, SECOND_HASH_MAX_DISTANCE, SECOND_MATCH_THRESHOLD};

/// How many leading bytes are enough to recognise an image format or a video container.
pub const SNIFF_BYTES: usize = 512;

/// The default [`Options::max_file_bytes`]: far above any image within the default pixel limit
/// (100 megapixels of uncompressed 32-bit BMP are 400 MB), far below what would exhaust memory.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 1 << 30;

/// What to compute, and the limits that apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Image decoding: the pixel limit and EXIF orientation.
    pub decode: DecodeOptions,
    /// Video hashing: frame rate of hashing, resize, frame and duration limits.
    pub video: VideoOptions,
    /// Images, and videos that arrive as a stream, larger than this are refused.
    pub max_file_bytes: u64,
    /// Also compute an image's 8 dihedral hashes.
    pub dihedral: bool,
    /// Also compute an image's float coefficients (PDQF, what the private protocol's probes
    /// are derived from).
    pub floats: bool,
    /// Also compute the MD5 and SHA-256 of the bytes.
    pub digests: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            decode: DecodeOptions::default(),
            video: VideoOptions::default(),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            dihedral: false,
            floats: false,
            digests: false,
        }
    }
}

/// The MD5 and SHA-256 of an input's bytes, for exact-match banks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digests {
    /// MD5 of the bytes.
    pub md5: [u8; 16],
    /// SHA-256 of the bytes.
    pub sha256: [u8; 32],
}

impl Digests {
    /// The digests of `bytes`.
    pub fn of(bytes: &[u8]) -> Digests {
        Digests {
            md5: Md5::digest(bytes).into(),
            sha256: Sha256::digest(bytes).into(),
        }
    }

    /// Streams a file through both digests without holding it in memory.
    pub fn of_file(path: &Path) -> Result<Digests, HashError> {
        let mut file = std::fs::File::open(path)?;
        let (mut md5, mut sha256) = (Md5::new(), Sha256::new());
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            md5.update(&buf[..n]);
            sha256.update(&buf[..n]);
        }
        Ok(Digests {
            md5: md5.finalize().into(),
            sha256: sha256.finalize().into(),
        })
    }
}

/// An input's hashes.
#[derive(Debug, Clone, PartialEq)]
pub enum Hashed {
    /// A still image.
    Image {
        /// PDQ hash and quality.
        hash: PdqOutput,
        /// The float coefficients, when asked for ([`Options::floats`]).
        floats: Option<Box<PdqFloats>>,
        /// The 8 dihedral hashes, when asked for ([`Options::dihedral`]).
        dihedral: Option<Box<DihedralHashes>>,
        /// MD5 and SHA-256 of the bytes, when asked for ([`Options::digests`]).
        digests: Option<Digests>,
    },
    /// A video: its vPDQ frame features.
    Video {
        /// One feature per hashed frame.
        features: Vec<Feature>,
        /// MD5 and SHA-256 of the bytes, when asked for.
        digests: Option<Digests>,
    },
}

/// The broad reason an input could not be hashed (what a server's answer depends on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Neither a supported image nor a supported video (or an unsupported variant of one).
    Unsupported,
    /// A supported format, but the data is corrupt, truncated or empty.
    Corrupt,
    /// Over a limit: bytes, pixels, frame size, duration.
    TooLarge,
    /// Reading failed.
    Io,
}

/// Why an input could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The input has no bytes.
    #[error("empty file")]
    Empty,
    /// The first bytes match no supported image format and no video container.
    #[error(
        "not a supported image (first bytes {magic}); supported: JPEG, PNG, GIF, WebP, BMP, \
         TIFF; nor a supported video"
    )]
    UnsupportedFormat {
        /// The first bytes, in hex.
        magic: String,
    },
    /// The input is larger than [`Options::max_file_bytes`].
    #[error("larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in force.
        limit: u64,
    },
    /// A path that names a directory.
    #[error("is a directory")]
    Directory,
    /// The image could not be decoded (corrupt, truncated, too many pixels, unsupported).
    #[error(transparent)]
    Image(MediaError),
    /// The video could not be hashed.
    #[error(transparent)]
    Video(VideoError),
    /// Reading (or spooling a streamed video to a temporary file) failed.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
}

impl HashError {
    /// The broad reason.
    pub fn kind(&self) -> ErrorKind {
        match self {
            HashError::UnsupportedFormat { .. } | HashError::Directory => ErrorKind::Unsupported,
            HashError::Empty => ErrorKind::Corrupt,
            HashError::TooLarge { .. } => ErrorKind::TooLarge,
            HashError::Io(_) => ErrorKind::Io,
            HashError::Image(e) => match e {
                MediaError::Empty
                | MediaError::NoPixels { .. }
                | MediaError::Truncated { .. }
                | MediaError::Corrupt { .. } => ErrorKind::Corrupt,
                MediaError::UnknownFormat { .. } | MediaError::Unsupported { .. } => {
                    ErrorKind::Unsupported
                }
                MediaError::TooManyPixels { .. } => ErrorKind::TooLarge,
            },
            HashError::Video(e) => match e {
                VideoError::FrameSize { .. } | VideoError::TooLong { .. } => ErrorKind::TooLarge,
                VideoError::NoVideoStream | VideoError::Codec(_) | VideoError::Options(_) => {
                    ErrorKind::Unsupported
                }
                VideoError::Open(_)
                | VideoError::Corrupt(_)
                | VideoError::Truncated { .. }
                | VideoError::NoFrames => ErrorKind::Corrupt,
            },
        }
    }
}

/// An opened input whose first bytes have been read; the rest is read as the format needs.
pub struct Source {
    head: Vec<u8>,
    rest: Box<dyn Read>,
    /// A regular file can be opened again (libav reads videos from a path) and has a size.
    regular_file: Option<(PathBuf, u64)>,
}

impl Source {
    /// Opens a path. A regular file is read from its path as needed; a FIFO or a device is
    /// read once, as a stream, so nothing is lost to recognising the format.
    pub fn open_path(path: &Path) -> Result<Source, HashError> {
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(HashError::Directory);
        }
        let regular_file = meta.is_file().then(|| (path.to_path_buf(), meta.len()));
        Source::start(Box::new(file), regular_file)
    }

    /// A stream (standard input, a socket): read once; a video is spooled to a private
    /// temporary file for libav.
    pub fn from_reader(reader: impl Read + 'static) -> Result<Source, HashError> {
        Source::start(Box::new(reader), None)
    }

    fn start(
        mut reader: Box<dyn Read>,
        regular_file: Option<(PathBuf, u64)>,
    ) -> Result<Source, HashError> {
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        (&mut reader)
            .take(SNIFF_BYTES as u64)
            .read_to_end(&mut head)?;
        Ok(Source {
            head,
            rest: reader,
            regular_file,
        })
    }

    /// The whole input, refused once it passes `limit` bytes: reading stops there, so an
    /// endless or huge stream costs at most `limit` bytes.
    fn read_all(mut self, limit: u64) -> Result<Vec<u8>, HashError> {
        if self
            .regular_file
            .as_ref()
            .is_some_and(|(_, size)| *size > limit)
        {
            return Err(HashError::TooLarge { limit });
        }
        let mut bytes = std::mem::take(&mut self.head);
        let budget = (limit + 1).saturating_sub(bytes.len() as u64);
        self.rest.take(budget).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(HashError::TooLarge { limit });
        }
        Ok(bytes)
    }
}

/// What the first bytes of an input are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Image,
    Video,
}

/// Recognises an input by its first bytes, or says why it cannot be hashed.
fn recognise(head: &[u8]) -> Result<Kind, HashError> {
    if hashguard_vpdq::is_video(head) {
        Ok(Kind::Video)
    } else if hashguard_media::sniff(head).is_some() {
        Ok(Kind::Image)
    } else if head.is_empty() {
        Err(HashError::Empty)
    } else {
        let magic: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Err(HashError::UnsupportedFormat {
            magic: magic.join(" "),
        })
    }
}

/// Hashes inputs with one set of options, reusing its scratch buffers. Keep one per thread.
pub struct Hasher {
    options: Options,
    pdq: PdqHasher,
}

impl Hasher {
    /// A hasher with these options.
    pub fn new(options: Options) -> Hasher {
        Hasher {
            options,
            pdq: PdqHasher::new(),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Hashes a file (or a FIFO or device, read as a stream).
    pub fn hash_path(&mut self, path: &Path) -> Result<Hashed, HashError> {
        self.hash_source(Source::open_path(path)?)
    }

    /// Hashes bytes held in memory (an upload, say). A video is written to a private
    /// temporary file for libav.
    pub fn hash_bytes(&mut self, bytes: &[u8]) -> Result<Hashed, HashError> {
        let limit = self.options.max_file_bytes;
        if bytes.len() as u64 > limit {
            return Err(HashError::TooLarge { limit });
        }
        let head = &bytes[..bytes.len().min(SNIFF_BYTES)];
        match recognise(head)? {
            Kind::Image => self.hash_image(bytes),
            Kind::Video => self.hash_video_bytes(bytes),
        }
    }

    /// Hashes an opened input: nothing past its first bytes is read unless they are an image
    /// or a video.
    pub fn hash_source(&mut self, source: Source) -> Result<Hashed, HashError> {
        let limit = self.options.max_file_bytes;
        match recognise(&source.head)? {
            Kind::Video => match &source.regular_file {
                Some((path, _)) => {
                    let digests = self
                        .options
                        .digests
                        .then(|| Digests::of_file(path))
                        .transpose()?;
                    self.hash_video_file(path, digests)
                }
                None => self.hash_video_bytes(&source.read_all(limit)?),
            },
            Kind::Image => self.hash_image(&source.read_all(limit)?),
        }
    }

    fn hash_video_bytes(&mut self, bytes: &[u8]) -> Result<Hashed, HashError> {
        let digests = self.options.digests.then(|| Digests::of(bytes));
        let mut file = tempfile::NamedTempFile::new()?;
        file.write_all(bytes)?;
        file.flush()?;
        self.hash_video_file(file.path(), digests)
    }

    fn hash_video_file(
        &mut self,
        path: &Path,
        digests: Option<Digests>,
    ) -> Result<Hashed, HashError> {
        let features = hash_video_file(path, &self.options.video).map_err(HashError::Video)?;
        Ok(Hashed::Video { features, digests })
    }

    /// The second hash ([`SecondHash`]) of an image held in memory, decoded exactly as
    /// [`Hasher::hash_bytes`] decodes it for PDQ (same decoder, pixel limit and EXIF
    /// orientation), so that a list's value and the client's derivative start from the same
    /// pixels. Videos have none: they are refused as unsupported.
    pub fn second_hash_bytes(&self, bytes: &[u8]) -> Result<SecondHash, HashError> {
        let limit = self.options.max_file_bytes;
        if bytes.len() as u64 > limit {
            return Err(HashError::TooLarge { limit });
        }
        let head = &bytes[..bytes.len().min(SNIFF_BYTES)];
        if recognise(head)? == Kind::Video {
            return Err(HashError::UnsupportedFormat {
                magic: "a video (the second hash is for still images)".to_string(),
            });
        }
        let image =
            hashguard_media::decode(bytes, &self.options.decode).map_err(HashError::Image)?;
        SecondHash::of_rgb(&image.rgb, image.width, image.height).map_err(|e| {
            HashError::Image(MediaError::Corrupt {
                format: image.format,
                reason: e.to_string(),
            })
        })
    }

    fn hash_image(&mut self, bytes: &[u8]) -> Result<Hashed, HashError> {
        let digests = self.options.digests.then(|| Digests::of(bytes));
        let image =
            hashguard_media::decode(bytes, &self.options.decode).map_err(HashError::Image)?;
        let view = RgbImage::new(&image.rgb, image.width, image.height).map_err(|e| {
            HashError::Image(MediaError::Corrupt {
                format: image.format,
                reason: e.to_string(),
            })
        })?;
        // The floats give the hash too; computing them instead of the hash costs nothing more.
        let (hash, floats) = if self.options.floats {
            let floats = self.pdq.floats_rgb(&view);
            let hash = PdqOutput {
                hash: floats.hash(),
                quality: floats.quality,
            };
            (hash, Some(Box::new(floats)))
        } else {
            (self.pdq.hash_rgb(&view), None)
        };
        let dihedral = self
            .options
            .dihedral
            .then(|| Box::new(self.pdq.dihedral_rgb(&view)));
        Ok(Hashed::Image {
            hash,
            floats,
            dihedral,
            digests,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png() -> Vec<u8> {
        let img = image::RgbImage::from_fn(80, 60, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 4) as u8, ((x * y) % 251) as u8])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn bytes_paths_and_streams_hash_alike() {
        let bytes = png();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.png");
        std::fs::write(&path, &bytes).unwrap();
        let options = Options {
            dihedral: true,
            floats: true,
            digests: true,
            ..Options::default()
        };
        let mut hasher = Hasher::new(options);
        let from_bytes = hasher.hash_bytes(&bytes).unwrap();
        assert_eq!(hasher.hash_path(&path).unwrap(), from_bytes);
        let stream = Source::from_reader(std::io::Cursor::new(bytes.clone())).unwrap();
        assert_eq!(hasher.hash_source(stream).unwrap(), from_bytes);
        let Hashed::Image {
            hash,
            floats: Some(floats),
            dihedral: Some(_),
            digests: Some(d),
        } = from_bytes
        else {
            panic!("not everything asked for was computed");
        };
        assert_eq!(floats.hash(), hash.hash);
        assert_eq!(d, Digests::of(&bytes));
        // The plain hash equals the floats' hash.
        let Hashed::Image { hash: plain, .. } =
            Hasher::new(Options::default()).hash_bytes(&bytes).unwrap()
        else {
            panic!()
        };
        assert_eq!(plain, hash);
    }

    #[test]
    fn second_hash_of_bytes_is_of_the_decoded_pixels() {
        let bytes = png();
        let hasher = Hasher::new(Options::default());
        let decoded = image::load_from_memory(&bytes).unwrap().into_rgb8();
        assert_eq!(
            hasher.second_hash_bytes(&bytes).unwrap(),
            SecondHash::of_rgb(decoded.as_raw(), 80, 60).unwrap()
        );
        let kind = |r: Result<SecondHash, HashError>| r.unwrap_err().kind();
        assert_eq!(kind(hasher.second_hash_bytes(b"")), ErrorKind::Corrupt);
        assert_eq!(
            kind(hasher.second_hash_bytes(b"hello")),
            ErrorKind::Unsupported
        );
        assert_eq!(
            kind(hasher.second_hash_bytes(&bytes[..60])),
            ErrorKind::Corrupt
        );
        let small = Hasher::new(Options {
            max_file_bytes: 100,
            ..Options::default()
        });
        assert_eq!(kind(small.second_hash_bytes(&bytes)), ErrorKind::TooLarge);
    }

    #[test]
    fn errors_tell_their_kind() {
        let mut hasher = Hasher::new(Options {
            max_file_bytes: 100,
            ..Options::default()
        });
        let kind = |r: Result<Hashed, HashError>| r.unwrap_err().kind();
        assert_eq!(kind(hasher.hash_bytes(b"")), ErrorKind::Corrupt);
        assert_eq!(
            kind(hasher.hash_bytes(b"hello, world")),
            ErrorKind::Unsupported
        );
        assert_eq!(kind(hasher.hash_bytes(&png())), ErrorKind::TooLarge);
        let truncated = &png()[..60];
        assert_eq!(kind(hasher.hash_bytes(truncated)), ErrorKind::Corrupt);
        let missing = Path::new("/nonexistent/x.png");
        assert_eq!(kind(hasher.hash_path(missing)), ErrorKind::Io);
        assert_eq!(
            kind(hasher.hash_path(Path::new("/"))),
            ErrorKind::Unsupported
        );
        // An endless stream is read only up to the limit.
        let endless = std::io::repeat(0x89).take(u64::MAX);
        let mut png_then_endless = png()[..8].to_vec();
        png_then_endless.extend(std::iter::repeat_n(0u8, 10));
        let source =
            Source::from_reader(std::io::Cursor::new(png_then_endless).chain(endless)).unwrap();
        assert_eq!(kind(hasher.hash_source(source)), ErrorKind::TooLarge);
    }
}
