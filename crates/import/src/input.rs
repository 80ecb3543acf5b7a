//! Opening a file as a stream of its uncompressed bytes: gzip (all members) or zstd (all frames) by
//! extension or magic bytes, else plain; the bytes read from disk are counted as they go.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How a file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Counts the bytes read through it into a shared cell.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Reads up to `buf.len()` bytes, fewer only at the end of the file.
fn read_prefix(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The compression of a file, from its name or else its first bytes.
fn detect(path: &Path, head: &[u8]) -> Compression {
    match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => return Compression::Gzip,
        Some("zst") => return Compression::Zstd,
        _ => {}
    }
    if head.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(&ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// An opened file: its uncompressed bytes, and how many bytes of the file have been read so far.
pub(crate) struct Input {
    pub reader: Box<dyn Read>,
    pub disk_read: Rc<Cell<u64>>,
    pub compression: Compression,
}

/// Opens `path` for streaming.
pub(crate) fn open(path: &Path) -> io::Result<Input> {
    let mut f = File::open(path)?;
    let mut head = [0u8; 4];
    let n = read_prefix(&mut f, &mut head)?;
    f.seek(SeekFrom::Start(0))?;
    let compression = detect(path, &head[..n]);
    let disk_read = Rc::new(Cell::new(0));
    let counted = Counting {
        inner: f,
        count: disk_read.clone(),
    };
    let reader: Box<dyn Read> = match compression {
        Compression::None => Box::new(counted),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            256 << 10,
            counted,
        ))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(
            BufReader::with_capacity(256 << 10, counted),
        )?),
    };
    Ok(Input {
        reader,
        disk_read,
        compression,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(path: &Path) -> (Vec<u8>, u64, Compression) {
        let mut input = open(path).unwrap();
        let mut out = Vec::new();
        input.reader.read_to_end(&mut out).unwrap();
        (out, input.disk_read.get(), input.compression)
    }

    #[test]
    fn plain_gzip_members_and_zstd_frames() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.log");
        std::fs::write(&plain, b"one\ntwo\n").unwrap();
        assert_eq!(
            read_all(&plain),
            (b"one\ntwo\n".to_vec(), 8, Compression::None)
        );

        // two gzip members, no .gz extension: found by magic bytes
        let gz = dir.path().join("b.log");
        let mut bytes = Vec::new();
        for part in [&b"one\n"[..], &b"two\n"[..]] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).unwrap();
            bytes.extend(e.finish().unwrap());
        }
        std::fs::write(&gz, &bytes).unwrap();
        let (out, disk, c) = read_all(&gz);
        assert_eq!((out.as_slice(), c), (&b"one\ntwo\n"[..], Compression::Gzip));
        assert_eq!(disk, bytes.len() as u64);

        // two zstd frames
        let zst = dir.path().join("c.zst");
        let mut bytes = zstd::bulk::compress(b"one\n", 1).unwrap();
        bytes.extend(zstd::bulk::compress(b"two\n", 1).unwrap());
        std::fs::write(&zst, &bytes).unwrap();
        let (out, disk, c) = read_all(&zst);
        assert_eq!((out.as_slice(), c), (&b"one\ntwo\n"[..], Compression::Zstd));
        assert_eq!(disk, bytes.len() as u64);

        // a tiny file shorter than any magic
        let tiny = dir.path().join("d");
        std::fs::write(&tiny, b"x").unwrap();
        assert_eq!(read_all(&tiny), (b"x".to_vec(), 1, Compression::None));
    }

    #[test]
    fn corrupt_gzip_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.gz");
        std::fs::write(&p, b"\x1f\x8bthis is not deflate at all").unwrap();
        let mut input = open(&p).unwrap();
        let mut out = Vec::new();
        assert!(input.reader.read_to_end(&mut out).is_err());
    }
}
