//! A database file read through a private layer of writes, so that a file
//! this process may not write (read-only media, another user's file) can
//! still be read when redb must repair it before reading. Every wfhost
//! process leaves its file as a crash would (see `Store::exit`), and redb
//! repairs such a file on open, which it cannot do in place here: the
//! repair's writes go to this layer, in memory, and the file is never
//! written.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use redb::StorageBackend;

use crate::lock::lock;

/// The size of the blocks the layer keeps.
const BLOCK: u64 = 4096;

/// The file, and what was written over it in this process.
pub(super) struct Overlay {
    file: File,
    layer: Mutex<Layer>,
}

struct Layer {
    /// The storage's length as redb set it.
    len: u64,
    /// Below this offset, bytes not written here are the file's; at and
    /// above it, zeros (the storage was cut shorter at some point).
    file_part: u64,
    /// Blocks written here, by index.
    blocks: HashMap<u64, Box<[u8]>>,
}

impl Overlay {
    /// The file `file`, opened for reading, with nothing written over it.
    pub(super) fn over(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Overlay {
            file,
            layer: Mutex::new(Layer {
                len,
                file_part: len,
                blocks: HashMap::new(),
            }),
        })
    }

    /// Block `index` as the storage holds it, before the writes of this
    /// layer.
    fn base_block(&self, index: u64, file_part: u64) -> io::Result<Box<[u8]>> {
        let mut block = vec![0; BLOCK as usize].into_boxed_slice();
        let start = index * BLOCK;
        let from_file = file_part.saturating_sub(start).min(BLOCK) as usize;
        if from_file > 0 {
            self.file.read_exact_at(&mut block[..from_file], start)?;
        }
        Ok(block)
    }
}

/// The blocks that the bytes `[offset, offset + len)` touch: each block's
/// index, where in the block the bytes start, and where in the bytes.
fn spans(offset: u64, len: usize) -> impl Iterator<Item = (u64, usize, std::ops::Range<usize>)> {
    let end = offset + len as u64;
    let mut at = offset;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let (index, within) = (at / BLOCK, (at % BLOCK) as usize);
        let take = (BLOCK as usize - within).min((end - at) as usize);
        let done = (at - offset) as usize;
        at += take as u64;
        Some((index, within, done..done + take))
    })
}

impl StorageBackend for Overlay {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(lock(&self.layer).len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let layer = lock(&self.layer);
        if offset.saturating_add(out.len() as u64) > layer.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "a read past the end of the database",
            ));
        }
        for (index, within, part) in spans(offset, out.len()) {
            let out = &mut out[part];
            match layer.blocks.get(&index) {
                Some(block) => out.copy_from_slice(&block[within..within + out.len()]),
                None => {
                    let start = index * BLOCK + within as u64;
                    let from_file = layer.file_part.saturating_sub(start).min(out.len() as u64);
                    let (file, zeros) = out.split_at_mut(from_file as usize);
                    self.file.read_exact_at(file, start)?;
                    zeros.fill(0);
                }
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut layer = lock(&self.layer);
        if len < layer.len {
            layer.blocks.retain(|index, _| index * BLOCK < len);
            let cut = (len % BLOCK) as usize;
            if let Some(block) = layer.blocks.get_mut(&(len / BLOCK)) {
                block[cut..].fill(0);
            }
            layer.file_part = layer.file_part.min(len);
        }
        layer.len = len;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut layer = lock(&self.layer);
        let file_part = layer.file_part;
        for (index, within, part) in spans(offset, data.len()) {
            let block = match layer.blocks.entry(index) {
                Entry::Occupied(block) => block.into_mut(),
                Entry::Vacant(block) => block.insert(self.base_block(index, file_part)?),
            };
            block[within..within + part.len()].copy_from_slice(&data[part]);
        }
        layer.len = layer.len.max(offset + data.len() as u64);
        Ok(())
    }
}

impl fmt::Debug for Overlay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Overlay")
            .field("blocks_written", &lock(&self.layer).blocks.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads see the file where nothing was written, the writes where
    /// they were, and zeros where the storage was cut and grown again;
    /// the file itself never changes.
    #[test]
    fn reads_see_the_writes_over_the_file_which_stays_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        let original: Vec<u8> = (0..3 * BLOCK + 100).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &original).unwrap();
        let overlay = Overlay::over(File::open(&path).unwrap()).unwrap();
        let read = |offset: u64, len: usize| {
            let mut out = vec![0; len];
            overlay.read(offset, &mut out).map(|()| out)
        };
        assert_eq!(read(0, original.len()).unwrap(), original);
        assert!(read(original.len() as u64 - 10, 11).is_err());

        overlay.write(BLOCK - 2, &[1, 2, 3, 4]).unwrap();
        let mut expected = original.clone();
        expected[BLOCK as usize - 2..BLOCK as usize + 2].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(read(0, expected.len()).unwrap(), expected);

        overlay.set_len(BLOCK + 1).unwrap();
        overlay.set_len(2 * BLOCK).unwrap();
        expected.truncate(BLOCK as usize + 1);
        expected.resize(2 * BLOCK as usize, 0);
        assert_eq!(read(0, expected.len()).unwrap(), expected);

        overlay.write(5 * BLOCK, &[9]).unwrap();
        assert_eq!(overlay.len().unwrap(), 5 * BLOCK + 1);
        assert_eq!(
            read(4 * BLOCK, BLOCK as usize + 1).unwrap()[BLOCK as usize],
            9
        );
        assert_eq!(std::fs::read(&path).unwrap(), original);
    }
}
