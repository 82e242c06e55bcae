//! Writing a new file's contents with runs of zero blocks left unwritten, so that they
//! become holes: a layer of 10 GiB of zeros costs no disk space, and sparse files keep
//! their holes even when the tar stored them densely.

use std::fs::File;
use std::io;

/// Holes are made of whole blocks of this size, aligned in the file (the page size and
/// the block size of ext4 and xfs).
pub const HOLE_BLOCK: u64 = 4096;

/// Writes the data of a newly created (empty) file at increasing offsets; aligned
/// all-zero blocks are skipped. [`HoleWriter::finish`] sets the final length, which
/// makes a trailing hole.
pub struct HoleWriter<'a> {
    file: &'a File,
    /// End of the data written so far.
    written_end: u64,
}

/// Is every byte zero? Sixteen bytes at a time; data blocks usually differ at once.
fn is_zero(block: &[u8]) -> bool {
    let mut words = block.chunks_exact(16);
    words
        .by_ref()
        .all(|w| u128::from_ne_bytes(w.try_into().expect("16 bytes")) == 0)
        && words.remainder().iter().all(|b| *b == 0)
}

impl<'a> HoleWriter<'a> {
    pub fn new(file: &'a File) -> Self {
        HoleWriter {
            file,
            written_end: 0,
        }
    }

    /// Write `data` at `offset`. Offsets must not go back: every byte of the file is
    /// written at most once, so a skipped block reads as zeros.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut run: Option<usize> = None;
        let mut i = 0usize;
        while i < data.len() {
            let pos = offset + i as u64;
            let to_boundary = (HOLE_BLOCK - pos % HOLE_BLOCK) as usize;
            let end = data.len().min(i + to_boundary);
            if is_zero(&data[i..end]) {
                if let Some(start) = run.take() {
                    self.pwrite_all(&data[start..i], offset + start as u64)?;
                }
            } else if run.is_none() {
                run = Some(i);
            }
            i = end;
        }
        if let Some(start) = run {
            self.pwrite_all(&data[start..], offset + start as u64)?;
        }
        Ok(())
    }

    fn pwrite_all(&mut self, mut data: &[u8], mut offset: u64) -> io::Result<()> {
        while !data.is_empty() {
            match rustix::io::pwrite(self.file, data, offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    data = &data[n..];
                    offset += n as u64;
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.written_end = self.written_end.max(offset);
        Ok(())
    }

    /// Give the file its length `size` (a hole after the last data written).
    pub fn finish(self, size: u64) -> io::Result<()> {
        if self.written_end < size {
            self.file.set_len(size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn written(chunks: &[(u64, Vec<u8>)], size: u64) -> (Vec<u8>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = File::create(&path).unwrap();
        let mut w = HoleWriter::new(&f);
        for (off, data) in chunks {
            w.write_at(*off, data).unwrap();
        }
        w.finish(size).unwrap();
        let mut out = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut out).unwrap();
        use std::os::unix::fs::MetadataExt;
        (out, f.metadata().unwrap().blocks() * 512)
    }

    #[test]
    fn zero_blocks_become_holes_and_data_stays() {
        let mut data = vec![0u8; 1 << 20];
        data[5] = 1; // first block has data
        data[(1 << 20) - 1] = 2; // so does the last
        let (out, used) = written(&[(0, data.clone())], 1 << 20);
        assert_eq!(out, data);
        assert!(used <= 4 * HOLE_BLOCK, "{used}");
    }

    #[test]
    fn unaligned_pieces_and_a_trailing_hole() {
        // Pieces that cut blocks in two; a zero piece between data in one block.
        let chunks = vec![
            (0, vec![7u8; 100]),
            (100, vec![0u8; 5000]),
            (5100, vec![9u8; 3]),
            (5103, vec![0u8; 20000]),
        ];
        let (out, _) = written(&chunks, 40000);
        let mut want = vec![0u8; 40000];
        want[..100].fill(7);
        want[5100..5103].fill(9);
        assert_eq!(out, want);
        let (out, used) = written(&[], 1 << 20);
        assert_eq!(out.len(), 1 << 20);
        assert_eq!(used, 0);
    }
}
