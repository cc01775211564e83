//! Reading a document from a file or standard input, bounded: at most
//! [`MAX_DOCUMENT_BYTES`] + 1 bytes are ever read, so `/dev/zero` or an endless pipe is refused
//! after 4 MiB instead of growing until memory runs out, and text that is not UTF-8 is refused
//! with the offset of its first bad byte.

use super::tree::MAX_DOCUMENT_BYTES;
use std::io::Read;
use std::path::Path;

/// The name [`read_input`] gives standard input in messages.
pub const STDIN_NAME: &str = "<stdin>";

/// A document could not be read as text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// Opening or reading failed (the system's reason is the error's source).
    #[error("cannot read {name}")]
    Io {
        /// The path, or [`STDIN_NAME`].
        name: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// More than [`MAX_DOCUMENT_BYTES`] bytes; reading stopped one byte past the limit.
    #[error("{name}: larger than {limit} bytes, the limit for a document")]
    TooLarge {
        /// The path, or [`STDIN_NAME`].
        name: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// Not UTF-8: the first `offset` bytes are valid, the next is not.
    #[error("{name}: not UTF-8 text (byte {offset})")]
    NotUtf8 {
        /// The path, or [`STDIN_NAME`].
        name: String,
        /// Offset of the first byte that is not valid UTF-8.
        offset: usize,
    },
}

/// Reads the document at `path`, or standard input for `-`. Returns the name to show in
/// messages (the path, or [`STDIN_NAME`]) and the text.
pub fn read_input(path: &str) -> Result<(String, String), InputError> {
    if path == "-" {
        let text = read_bounded(STDIN_NAME, std::io::stdin().lock(), 0)?;
        return Ok((STDIN_NAME.to_string(), text));
    }
    let io = |source| InputError::Io { name: path.to_string(), source };
    let file = std::fs::File::open(Path::new(path)).map_err(io)?;
    // The size, when the file has one (not for devices and pipes), saves regrowing the buffer.
    let hint = file.metadata().map_or(0, |m| usize::try_from(m.len()).unwrap_or(usize::MAX));
    let text = read_bounded(path, file, hint)?;
    Ok((path.to_string(), text))
}

/// Reads all of `reader` as UTF-8 text, refusing more than [`MAX_DOCUMENT_BYTES`] bytes
/// without reading further. `name` is for messages; `size_hint` presizes the buffer.
pub fn read_bounded(name: &str, reader: impl Read, size_hint: usize) -> Result<String, InputError> {
    // One byte past the limit tells "exactly the limit" from "more".
    let cap = MAX_DOCUMENT_BYTES + 1;
    let mut bytes = Vec::with_capacity(size_hint.min(cap));
    reader
        .take(cap as u64)
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Io { name: name.to_string(), source })?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(InputError::TooLarge { name: name.to_string(), limit: MAX_DOCUMENT_BYTES });
    }
    String::from_utf8(bytes)
        .map_err(|e| InputError::NotUtf8 { name: name.to_string(), offset: e.utf8_error().valid_up_to() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An endless reader that counts what was taken from it.
    struct Endless<'a>(&'a mut usize);

    impl Read for Endless<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(b' ');
            *self.0 += buf.len();
            Ok(buf.len())
        }
    }

    /// See: issue 11. The CLI read all of `/dev/zero` before checking the size.
    #[test]
    fn endless_input_is_refused_after_the_limit() {
        let mut taken = 0;
        let e = read_bounded("zero", Endless(&mut taken), 0).unwrap_err();
        assert!(matches!(e, InputError::TooLarge { limit: MAX_DOCUMENT_BYTES, .. }), "{e}");
        assert_eq!(taken, MAX_DOCUMENT_BYTES + 1);
        assert_eq!(e.to_string(), format!("zero: larger than {MAX_DOCUMENT_BYTES} bytes, the limit for a document"));
    }

    #[test]
    fn exactly_the_limit_is_read() {
        let text = " ".repeat(MAX_DOCUMENT_BYTES);
        assert_eq!(read_bounded("t", text.as_bytes(), text.len()).unwrap().len(), MAX_DOCUMENT_BYTES);
    }

    #[test]
    fn not_utf8_names_the_byte() {
        let e = read_bounded("t", &b"<a>\xff</a>"[..], 0).unwrap_err();
        assert!(matches!(e, InputError::NotUtf8 { offset: 3, .. }), "{e}");
        assert_eq!(e.to_string(), "t: not UTF-8 text (byte 3)");
    }

    #[test]
    fn dev_zero_is_refused() {
        if Path::new("/dev/zero").exists() {
            let e = read_input("/dev/zero").unwrap_err();
            assert!(matches!(e, InputError::TooLarge { .. }), "{e}");
        }
    }

    #[test]
    fn missing_file_names_it() {
        let e = read_input("no-such-file.xml").unwrap_err();
        assert_eq!(e.to_string(), "cannot read no-such-file.xml");
        assert!(std::error::Error::source(&e).is_some());
    }
}
