//! The elements of a workflow's top-level chain, kept out of memory.
//!
//! Every workflow is a chain of elements: a lone canvas is a chain of one.
//! Each element is written once, as native JSON, to a spool — memory while
//! the spool is small, an unnamed temporary file beyond that — and read back
//! one at a time, so that a 100,000-step workflow is never in memory whole
//! (Celery's protocol 2 keeps a chain as a flat list for the same reason).

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use wfhost_canvas::{Canvas, StepOptions};

/// Spools up to this many bytes in memory; a longer workflow moves to a file.
const IN_MEMORY_BYTES: usize = 256 << 10;

/// Bytes read from a spool file at a time.
const READ_CHUNK: usize = 64 << 10;

/// The top-level chain of a workflow, element by element, in order.
pub struct Elements {
    spool: Spool,
    len: usize,
}

enum Spool {
    Memory(Vec<u8>),
    File { file: File, size: u64 },
}

impl Elements {
    /// No elements yet.
    pub fn new() -> Self {
        Elements {
            spool: Spool::Memory(Vec::new()),
            len: 0,
        }
    }

    /// The elements of `canvas` as a workflow: a chain's items, or the
    /// canvas alone.
    pub fn of(canvas: &Canvas) -> io::Result<Self> {
        let mut elements = Elements::new();
        match canvas {
            Canvas::Chain(items) => items.iter().try_for_each(|item| elements.push(item))?,
            other => elements.push(other)?,
        }
        Ok(elements)
    }

    /// How many elements there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends one element.
    pub fn push(&mut self, canvas: &Canvas) -> io::Result<()> {
        // Serializing plain JSON values cannot fail.
        let json = serde_json::to_vec(canvas).unwrap_or_default();
        self.push_json(&json)
    }

    /// Appends one element given as the native JSON the host wrote (an
    /// element read back from the store); it is read as a canvas when the
    /// workflow is prepared.
    pub fn push_json(&mut self, json: &[u8]) -> io::Result<()> {
        let length = u32::try_from(json.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "an element over 4 GiB"))?;
        let mut framed = Vec::with_capacity(4 + json.len());
        framed.extend_from_slice(&length.to_le_bytes());
        framed.extend_from_slice(json);
        match &mut self.spool {
            Spool::Memory(bytes) if bytes.len() + framed.len() <= IN_MEMORY_BYTES => {
                bytes.extend_from_slice(&framed);
            }
            Spool::Memory(bytes) => {
                let mut file = tempfile::tempfile()?;
                file.write_all(bytes)?;
                file.write_all(&framed)?;
                let size = (bytes.len() + framed.len()) as u64;
                self.spool = Spool::File { file, size };
            }
            Spool::File { file, size } => {
                file.write_all(&framed)?;
                *size += framed.len() as u64;
            }
        }
        self.len += 1;
        Ok(())
    }

    /// The elements in order, each as its native JSON.
    pub fn json(&self) -> JsonReader<'_> {
        JsonReader {
            elements: self,
            offset: 0,
            buffer: Vec::new(),
            start: 0,
        }
    }

    /// The same elements with `callbacks` given to the whole chain they
    /// make, as [`Canvas::link`] and [`Canvas::link_error`] give them to a
    /// chain: each element gets the errbacks, the last the callbacks.
    pub fn with_chain_callbacks(&self, callbacks: &StepOptions) -> io::Result<Elements> {
        let mut linked = Elements::new();
        let last = self.len.checked_sub(1);
        for (index, canvas) in self.canvases().enumerate() {
            let mut canvas = canvas?;
            for errback in &callbacks.link_error {
                canvas.link_error(errback.clone());
            }
            if Some(index) == last {
                for callback in &callbacks.link {
                    canvas.link(callback.clone());
                }
            }
            linked.push(&canvas)?;
        }
        Ok(linked)
    }

    /// The elements in order, each parsed.
    pub fn canvases(&self) -> impl Iterator<Item = io::Result<Canvas>> + '_ {
        self.json()
            .enumerate()
            .map(|(index, json)| decode_element(&json?, index))
    }

    /// The whole workflow as one canvas: the element itself when there is
    /// one, a chain otherwise. It is in memory whole (as a fleet is sent
    /// it: every message at once).
    #[cfg(any(test, feature = "worker"))]
    pub fn to_canvas(&self) -> io::Result<Canvas> {
        let mut items = self.canvases().collect::<io::Result<Vec<_>>>()?;
        Ok(match items.len() {
            1 => items.remove(0),
            _ => Canvas::Chain(items),
        })
    }
}

impl Spool {
    fn size(&self) -> u64 {
        match self {
            Spool::Memory(bytes) => bytes.len() as u64,
            Spool::File { size, .. } => *size,
        }
    }

    /// Fills `buffer` from `offset` on; the caller keeps within the size.
    fn read_exact_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<()> {
        match self {
            Spool::Memory(bytes) => {
                let from = offset as usize;
                buffer.copy_from_slice(&bytes[from..from + buffer.len()]);
                Ok(())
            }
            Spool::File { file, .. } => file.read_exact_at(buffer, offset),
        }
    }
}

impl Default for Elements {
    fn default() -> Self {
        Elements::new()
    }
}

impl fmt::Debug for Elements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Elements({} elements)", self.len)
    }
}

/// Reads element `index`'s native JSON (as [`Elements::json`] gives it)
/// back into a canvas. The host wrote it, from a canvas the strict parser
/// made, so it is read back by serde alone; what does not read back (a
/// damaged database, say) is an error naming the element.
pub fn decode_element(json: &[u8], index: usize) -> io::Result<Canvas> {
    serde_json::from_slice(json).map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("element {index} of the stored workflow does not read back: {err}"),
        )
    })
}

/// Reads the elements' JSON in order; each reader has its own position, so
/// that one prepared workflow can run several times at once.
pub struct JsonReader<'a> {
    elements: &'a Elements,
    /// Where the next read from the spool starts.
    offset: u64,
    /// Bytes read but not yet returned, from `start` on.
    buffer: Vec<u8>,
    start: usize,
}

impl JsonReader<'_> {
    /// Makes `wanted` unread bytes available, unless the spool ends first.
    fn fill(&mut self, wanted: usize) -> io::Result<bool> {
        if self.buffer.len() - self.start >= wanted {
            return Ok(true);
        }
        let spool = &self.elements.spool;
        let missing = wanted - (self.buffer.len() - self.start);
        let available = spool.size().saturating_sub(self.offset) as usize;
        if available < missing {
            return Ok(false);
        }
        let take = available.min(missing.max(READ_CHUNK));
        self.buffer.drain(..self.start);
        self.start = 0;
        let old = self.buffer.len();
        self.buffer.resize(old + take, 0);
        spool.read_exact_at(&mut self.buffer[old..], self.offset)?;
        self.offset += take as u64;
        Ok(true)
    }
}

impl Iterator for JsonReader<'_> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut read = || -> io::Result<Option<Vec<u8>>> {
            if !self.fill(4)? {
                return Ok(None);
            }
            let header: [u8; 4] = self.buffer[self.start..self.start + 4]
                .try_into()
                .unwrap_or_default();
            let length = u32::from_le_bytes(header) as usize;
            self.start += 4;
            if !self.fill(length)? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the workflow's spool ends inside an element",
                ));
            }
            let json = self.buffer[self.start..self.start + length].to_vec();
            self.start += length;
            Ok(Some(json))
        };
        read().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfhost_canvas::{group, sig};

    fn chain(length: usize) -> Canvas {
        Canvas::Chain(
            (0..length)
                .map(|i| sig("math.add").args((i, 1)).into())
                .collect(),
        )
    }

    #[test]
    fn a_long_chain_moves_to_a_file_and_reads_back_in_order() {
        let canvas = chain(20_000);
        let elements = Elements::of(&canvas).unwrap();
        assert!(matches!(elements.spool, Spool::File { .. }));
        assert_eq!(elements.len(), 20_000);
        assert_eq!(elements.to_canvas().unwrap(), canvas);
        // Two readers at once keep their own places.
        let mut first = elements.json();
        let mut second = elements.json();
        first.next();
        assert_eq!(
            second.next().unwrap().unwrap(),
            br#"{"task":"math.add","args":[0,1]}"#
        );
        assert_eq!(
            first.next().unwrap().unwrap(),
            br#"{"task":"math.add","args":[1,1]}"#
        );
    }

    #[test]
    fn a_short_one_stays_in_memory_and_a_lone_canvas_is_one_element() {
        let elements = Elements::of(&chain(3)).unwrap();
        assert!(matches!(elements.spool, Spool::Memory(_)));
        assert_eq!(elements.to_canvas().unwrap(), chain(3));
        let lone = group([sig("m.a"), sig("m.b")]);
        let elements = Elements::of(&lone).unwrap();
        assert_eq!(elements.len(), 1);
        assert_eq!(elements.to_canvas().unwrap(), lone);
    }

    /// Stored JSON that is not a canvas (a damaged database) is refused
    /// when it is read, naming the element.
    #[test]
    fn stored_json_that_is_not_a_canvas_is_refused() {
        let mut elements = Elements::new();
        elements.push_json(br#"{"task": "m.a"}"#).unwrap();
        elements.push_json(br#"{"tusk": "m.a"}"#).unwrap();
        let read: Vec<io::Result<Canvas>> = elements.canvases().collect();
        assert_eq!(read[0].as_ref().unwrap(), &Canvas::from(sig("m.a")));
        let err = read[1].as_ref().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("element 1"), "{err}");
    }
}
