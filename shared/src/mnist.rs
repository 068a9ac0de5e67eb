//! Reader for the IDX files of the MNIST database, raw or gzip-compressed.
//!
//! The reader checks everything a header claims before trusting it: the magic number, the
//! 28×28 image size, that the item count fits the bytes that follow, that images and labels
//! agree in number and that every label is a digit. Memory grows only with the bytes actually
//! read, never with a count a header merely claims.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::{IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES};

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// One of the two MNIST splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The 60,000 training digits.
    Train,
    /// The 10,000 test digits.
    Test,
}

impl Split {
    /// Standard file stem of this split's images.
    pub fn images_stem(self) -> &'static str {
        match self {
            Split::Train => "train-images-idx3-ubyte",
            Split::Test => "t10k-images-idx3-ubyte",
        }
    }

    /// Standard file stem of this split's labels.
    pub fn labels_stem(self) -> &'static str {
        match self {
            Split::Train => "train-labels-idx1-ubyte",
            Split::Test => "t10k-labels-idx1-ubyte",
        }
    }
}

/// Defect found in an IDX file.
#[derive(Debug, thiserror::Error)]
pub enum IdxErrorKind {
    /// Reading failed.
    // The message includes the I/O error, so the error is not also its `source`, because a
    // report of the whole chain would print it twice.
    #[error("read failed: {0}")]
    Io(io::Error),
    /// The file does not start with the expected magic number.
    #[error("invalid magic number 0x{found:08x}, expected 0x{expected:08x} ({what})")]
    Magic {
        /// The magic number in the file.
        found: u32,
        /// The magic number this kind of file needs.
        expected: u32,
        /// The kind of file that was expected.
        what: &'static str,
    },
    /// The images are not 28×28.
    #[error("images are {rows}x{columns} pixels, expected 28x28")]
    Dimensions {
        /// Rows per image in the header.
        rows: u32,
        /// Columns per image in the header.
        columns: u32,
    },
    /// The header claims more items than the data holds.
    #[error("truncated: the header claims {claimed} items ({expected_bytes} bytes of data) but only {found_bytes} bytes follow")]
    Truncated {
        /// Item count in the header.
        claimed: u64,
        /// Data bytes the header implies.
        expected_bytes: u64,
        /// Data bytes present.
        found_bytes: u64,
    },
    /// Bytes follow the last item.
    #[error("unexpected bytes after the {claimed} items the header claims")]
    TrailingBytes {
        /// Item count in the header.
        claimed: u64,
    },
    /// The header claims an item count whose size overflows.
    #[error("the header claims {claimed} items, too many to address")]
    TooLarge {
        /// Item count in the header.
        claimed: u64,
    },
    /// A label is not a digit.
    #[error("label {value} at index {index} is not a digit 0-9")]
    LabelOutOfRange {
        /// Position of the label.
        index: usize,
        /// The label's value.
        value: u8,
    },
    /// The image and label files disagree in item count.
    #[error("{images} images but {labels} labels")]
    CountMismatch {
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },
}

/// An error reading an IDX file, with the file it concerns.
#[derive(Debug)]
pub struct IdxError {
    /// The file, or a name standing for the bytes read.
    pub file: String,
    /// The defect.
    pub kind: IdxErrorKind,
}

impl fmt::Display for IdxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.kind)
    }
}

impl std::error::Error for IdxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.kind.source()
    }
}

/// Labelled MNIST digits kept as bytes: 784 gray levels (0 = background) per image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mnist {
    /// `len() * 784` gray levels, image after image, row-major.
    pub images: Vec<u8>,
    /// One digit 0-9 per image.
    pub labels: Vec<u8>,
}

impl Mnist {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Returns whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Returns the 784 gray levels of image `index`.
    pub fn image(&self, index: usize) -> &[u8] {
        &self.images[index * IMAGE_PIXELS..(index + 1) * IMAGE_PIXELS]
    }

    /// Keeps only the first `limit` images.
    pub fn truncate(&mut self, limit: usize) {
        self.labels.truncate(limit);
        self.images.truncate(self.labels.len() * IMAGE_PIXELS);
    }

    /// Loads a split from `dir`, where each file may be raw or end in `.gz`.
    pub fn load(dir: &Path, split: Split) -> Result<Self, IdxError> {
        let images_path = find_file(dir, split.images_stem())?;
        let labels_path = find_file(dir, split.labels_stem())?;
        let images = read_images(&images_path)?;
        let labels = read_labels(&labels_path)?;

        let image_count = images.len() / IMAGE_PIXELS;
        if image_count != labels.len() {
            return Err(IdxError {
                file: format!("{} and {}", images_path.display(), labels_path.display()),
                kind: IdxErrorKind::CountMismatch {
                    images: image_count,
                    labels: labels.len(),
                },
            });
        }
        Ok(Self { images, labels })
    }
}

/// Finds `stem.gz` or `stem` in `dir`, preferring the compressed file.
pub fn find_file(dir: &Path, stem: &str) -> Result<PathBuf, IdxError> {
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    let raw = dir.join(stem);
    if raw.is_file() {
        return Ok(raw);
    }
    Err(IdxError {
        file: gz.display().to_string(),
        kind: IdxErrorKind::Io(io::Error::new(
            io::ErrorKind::NotFound,
            format!("neither {stem}.gz nor {stem} exists"),
        )),
    })
}

/// Reads an image file and returns its gray levels, 784 per image.
pub fn read_images(path: &Path) -> Result<Vec<u8>, IdxError> {
    let name = path.display().to_string();
    let reader = open(path).map_err(|e| io_error(&name, e))?;
    parse_images(&name, reader)
}

/// Reads a label file and returns its labels.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, IdxError> {
    let name = path.display().to_string();
    let reader = open(path).map_err(|e| io_error(&name, e))?;
    parse_labels(&name, reader)
}

/// Parses an image file from a reader of its decompressed bytes. `name` labels errors.
pub fn parse_images(name: &str, mut reader: impl Read) -> Result<Vec<u8>, IdxError> {
    let error = |kind| IdxError {
        file: name.to_string(),
        kind,
    };

    let mut header = [0u8; 16];
    read_header(&mut reader, &mut header).map_err(error)?;
    let field = |i: usize| u32::from_be_bytes(header[i * 4..i * 4 + 4].try_into().unwrap());
    check_magic(field(0), IMAGES_MAGIC, "MNIST images").map_err(error)?;

    let (count, rows, columns) = (field(1), field(2), field(3));
    if rows as usize != IMAGE_SIDE || columns as usize != IMAGE_SIDE {
        return Err(error(IdxErrorKind::Dimensions { rows, columns }));
    }

    read_body(&mut reader, count as u64, IMAGE_PIXELS as u64).map_err(error)
}

/// Parses a label file from a reader of its decompressed bytes. `name` labels errors.
pub fn parse_labels(name: &str, mut reader: impl Read) -> Result<Vec<u8>, IdxError> {
    let error = |kind| IdxError {
        file: name.to_string(),
        kind,
    };

    let mut header = [0u8; 8];
    read_header(&mut reader, &mut header).map_err(error)?;
    let magic = u32::from_be_bytes(header[0..4].try_into().unwrap());
    check_magic(magic, LABELS_MAGIC, "MNIST labels").map_err(error)?;
    let count = u32::from_be_bytes(header[4..8].try_into().unwrap());

    let labels = read_body(&mut reader, count as u64, 1).map_err(error)?;
    if let Some(index) = labels.iter().position(|&l| l as usize >= NUM_CLASSES) {
        return Err(error(IdxErrorKind::LabelOutOfRange {
            index,
            value: labels[index],
        }));
    }
    Ok(labels)
}

/// Opens a file and undoes gzip compression when the file starts with the gzip magic bytes.
pub fn open(path: &Path) -> io::Result<Box<dyn Read>> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 2];
    let read = file.read(&mut magic)?;
    let file = BufReader::new(File::open(path)?);
    if read == 2 && magic == GZIP_MAGIC {
        Ok(Box::new(GzDecoder::new(file)))
    } else {
        Ok(Box::new(file))
    }
}

fn io_error(name: &str, error: io::Error) -> IdxError {
    IdxError {
        file: name.to_string(),
        kind: IdxErrorKind::Io(error),
    }
}

fn read_header(reader: &mut impl Read, header: &mut [u8]) -> Result<(), IdxErrorKind> {
    reader.read_exact(header).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => IdxErrorKind::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the file is shorter than its {}-byte header", header.len()),
        )),
        _ => IdxErrorKind::Io(e),
    })
}

fn check_magic(found: u32, expected: u32, what: &'static str) -> Result<(), IdxErrorKind> {
    if found == expected {
        Ok(())
    } else {
        Err(IdxErrorKind::Magic {
            found,
            expected,
            what,
        })
    }
}

/// Reads exactly `count * item_size` bytes and checks that nothing follows them.
fn read_body(reader: &mut impl Read, count: u64, item_size: u64) -> Result<Vec<u8>, IdxErrorKind> {
    let expected = count
        .checked_mul(item_size)
        .filter(|&bytes| usize::try_from(bytes).is_ok())
        .ok_or(IdxErrorKind::TooLarge { claimed: count })?;

    // `take` bounds the read, and `read_to_end` grows the buffer with the bytes that arrive,
    // so a header that lies about its count cannot make this allocate more than the data.
    let mut body = Vec::new();
    reader
        .take(expected + 1)
        .read_to_end(&mut body)
        .map_err(IdxErrorKind::Io)?;

    let found = body.len() as u64;
    if found < expected {
        return Err(IdxErrorKind::Truncated {
            claimed: count,
            expected_bytes: expected,
            found_bytes: found,
        });
    }
    if found > expected {
        return Err(IdxErrorKind::TrailingBytes { claimed: count });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_file(count: u32, rows: u32, columns: u32, pixels: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for field in [IMAGES_MAGIC, count, rows, columns] {
            bytes.extend(field.to_be_bytes());
        }
        bytes.extend(std::iter::repeat_n(7u8, pixels));
        bytes
    }

    fn label_file(labels: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend(LABELS_MAGIC.to_be_bytes());
        bytes.extend((labels.len() as u32).to_be_bytes());
        bytes.extend(labels);
        bytes
    }

    #[test]
    fn images_parse_when_well_formed() {
        let images = parse_images("x", &image_file(2, 28, 28, 2 * 784)[..]).unwrap();
        assert_eq!(images.len(), 2 * 784);
    }

    #[test]
    fn images_reject_wrong_magic() {
        let mut bytes = image_file(1, 28, 28, 784);
        bytes[3] = 0x01;
        let error = parse_images("x", &bytes[..]).unwrap_err();
        assert!(matches!(error.kind, IdxErrorKind::Magic { found: 0x801, .. }), "{error}");
    }

    #[test]
    fn images_reject_other_sizes() {
        let error = parse_images("x", &image_file(1, 32, 28, 32 * 28)[..]).unwrap_err();
        assert!(matches!(error.kind, IdxErrorKind::Dimensions { rows: 32, columns: 28 }));
    }

    #[test]
    fn images_reject_truncated_data() {
        let error = parse_images("x", &image_file(3, 28, 28, 2 * 784 + 5)[..]).unwrap_err();
        assert!(matches!(
            error.kind,
            IdxErrorKind::Truncated { claimed: 3, found_bytes: 1573, .. }
        ));
    }

    #[test]
    fn images_reject_huge_claimed_count_without_allocating() {
        // 4 billion images would be 3 TB; only the 10 bytes present may be buffered.
        let error = parse_images("x", &image_file(u32::MAX, 28, 28, 10)[..]).unwrap_err();
        assert!(matches!(error.kind, IdxErrorKind::Truncated { found_bytes: 10, .. }));
    }

    #[test]
    fn images_reject_trailing_bytes() {
        let error = parse_images("x", &image_file(1, 28, 28, 785)[..]).unwrap_err();
        assert!(matches!(error.kind, IdxErrorKind::TrailingBytes { claimed: 1 }));
    }

    #[test]
    fn images_reject_short_header() {
        let error = parse_images("x", &image_file(1, 28, 28, 0)[..10]).unwrap_err();
        assert!(matches!(error.kind, IdxErrorKind::Io(_)));
        assert!(error.to_string().contains("16-byte header"), "{error}");
    }

    #[test]
    fn labels_reject_non_digits() {
        let error = parse_labels("labels.idx", &label_file(&[1, 2, 10])[..]).unwrap_err();
        assert!(matches!(error.kind, IdxErrorKind::LabelOutOfRange { index: 2, value: 10 }));
        assert!(error.to_string().starts_with("labels.idx: "), "{error}");
    }

    #[test]
    fn labels_reject_image_magic() {
        let error = parse_labels("x", &image_file(1, 28, 28, 784)[..]).unwrap_err();
        assert!(matches!(error.kind, IdxErrorKind::Magic { .. }));
    }
}
