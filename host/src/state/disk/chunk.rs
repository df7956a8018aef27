//! A chunk of the outbox: the outputs of one plugin's consecutive entries,
//! stored as one value of `processed_output_chunks`, keyed by (`plugin`,
//! the first entry's sequence).
//!
//! One B-tree insert a record of about 1.3 KB, two or three to a leaf page,
//! made the outbox's appends a quarter of the commit thread's time: each
//! insert copied and split leaves (BENCHMARKS.md, the hot path, item 23).
//! A commit now writes each plugin's outputs as a few values of up to
//! [`CHUNK_BYTES`], one insert each. The ids stay one entry a sequence in
//! `processed_ids`: they are what the index of processed ids is rebuilt
//! from, and small.
//!
//! The encoding: the number of entries `n` (u32, little-endian), the end
//! offset of each entry's outputs in the bytes that follow (`n` u32s), then
//! the outputs one after another.

/// A chunk is closed once the next outputs would take it past this size
/// (a chunk always holds at least one entry, whatever its size). Large
/// enough that a commit of the payment plugin's 500-record batches writes
/// a few dozen values, small enough that a lookup of one redelivered
/// event's outputs reads a modest page.
pub(super) const CHUNK_BYTES: usize = 60 * 1024;

/// Outputs gathered into one chunk, not yet written.
pub(super) struct Builder {
    /// The sequence of the first entry.
    pub(super) first: u64,
    ends: Vec<u32>,
    bytes: Vec<u8>,
}

impl Builder {
    /// An empty chunk whose first entry will be `first`.
    pub(super) fn new(first: u64) -> Self {
        Builder {
            first,
            ends: Vec::new(),
            bytes: Vec::new(),
        }
    }

    /// The sequence the next entry takes.
    pub(super) fn next(&self) -> u64 {
        self.first + self.ends.len() as u64
    }

    /// Whether `len` more bytes of outputs belong in this chunk.
    pub(super) fn fits(&self, len: usize) -> bool {
        self.ends.is_empty() || self.bytes.len() + len <= CHUNK_BYTES
    }

    /// Whether the chunk holds no entry.
    pub(super) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Adds the next entry's outputs.
    pub(super) fn push(&mut self, outputs: &[u8]) -> anyhow::Result<()> {
        self.bytes.extend_from_slice(outputs);
        let end = u32::try_from(self.bytes.len())
            .map_err(|_| anyhow::anyhow!("a chunk of the outbox over 4 GiB"))?;
        self.ends.push(end);
        Ok(())
    }

    /// The chunk's encoding.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 4 * self.ends.len() + self.bytes.len());
        out.extend_from_slice(&(self.ends.len() as u32).to_le_bytes());
        for end in &self.ends {
            out.extend_from_slice(&end.to_le_bytes());
        }
        out.extend_from_slice(&self.bytes);
        out
    }
}

/// The outputs of entry `i` (counted from the chunk's first) of an encoded
/// chunk; `None` when the chunk has no such entry or is not a chunk.
pub(super) fn entry(chunk: &[u8], i: u64) -> Option<&[u8]> {
    let word = |at: usize| -> Option<usize> {
        let bytes = chunk.get(at..at + 4)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?) as usize)
    };
    let n = word(0)?;
    let i = usize::try_from(i).ok().filter(|&i| i < n)?;
    let body = 4 + 4 * n;
    let start = if i == 0 { 0 } else { word(4 + 4 * (i - 1))? };
    let end = word(4 + 4 * i)?;
    chunk.get(body + start..body + end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_gives_back_each_entry() {
        let mut chunk = Builder::new(7);
        for outputs in [&b"first"[..], b"", b"third"] {
            assert!(chunk.fits(outputs.len()));
            chunk.push(outputs).unwrap();
        }
        assert_eq!(chunk.next(), 10);
        let encoded = chunk.encode();
        assert_eq!(entry(&encoded, 0), Some(&b"first"[..]));
        assert_eq!(entry(&encoded, 1), Some(&b""[..]));
        assert_eq!(entry(&encoded, 2), Some(&b"third"[..]));
        assert_eq!(entry(&encoded, 3), None);
        assert_eq!(entry(&encoded[..10], 2), None, "a cut chunk");
        assert_eq!(entry(b"", 0), None);
    }

    #[test]
    fn a_chunk_closes_at_its_size_but_takes_one_entry_of_any() {
        let mut chunk = Builder::new(0);
        assert!(chunk.fits(CHUNK_BYTES * 2));
        chunk.push(&vec![0; CHUNK_BYTES - 10]).unwrap();
        assert!(chunk.fits(10));
        assert!(!chunk.fits(11));
    }
}
