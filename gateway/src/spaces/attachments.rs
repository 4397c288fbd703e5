//! Attachments: binary files up to 64 MiB (drawings, scans) that records refer to by
//! content hash. They are received and served in chunks, each sealed on its own (its key as
//! associated data), so that neither side holds more than a chunk in flight and a transfer
//! can be refused between any two chunks.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{AttachmentRef, DataCode, DataError, Sealed, Spaces, hex, open_sealed};
use crate::store::Stored;

/// Bytes per chunk: a chunk in base64 JSON fits the default 1 MiB message limit.
pub const ATTACHMENT_CHUNK_BYTES: usize = 512 * 1024;
/// Largest attachment.
pub const MAX_ATTACHMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Most attachments per record.
const MAX_ATTACHMENTS: usize = 16;

/// Where an attachment's chunks are, by content hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AttachmentIndex {
    upload: String,
    size: u64,
    chunks: u32,
}

impl Stored for AttachmentIndex {
    const VERSION: u8 = 1;
}

fn index_key(sha256: &str) -> Vec<u8> {
    format!("index/{sha256}").into_bytes()
}

fn chunk_key(upload: &str, index: u32) -> Vec<u8> {
    let mut key = format!("chunk/{upload}/").into_bytes();
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// An attachment being received.
pub struct Upload<'a> {
    spaces: &'a Spaces,
    id: String,
    hasher: Sha256,
    size: u64,
    chunks: u32,
    buffer: Zeroizing<Vec<u8>>,
}

impl Upload<'_> {
    /// Takes more bytes; full chunks are sealed and stored as they fill.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<(), DataError> {
        self.size += bytes.len() as u64;
        if self.size > MAX_ATTACHMENT_BYTES {
            return Err(DataError::new(
                DataCode::Malformed,
                format!("an attachment may hold at most {MAX_ATTACHMENT_BYTES} bytes"),
            ));
        }
        self.hasher.update(bytes);
        while !bytes.is_empty() {
            let room = ATTACHMENT_CHUNK_BYTES - self.buffer.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.buffer.extend_from_slice(now);
            bytes = rest;
            if self.buffer.len() == ATTACHMENT_CHUNK_BYTES {
                self.flush_chunk()?;
            }
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<(), DataError> {
        let key = chunk_key(&self.id, self.chunks);
        let sealed = self.spaces.seal(&key, &self.buffer)?;
        self.spaces.chunks.put(&key, &sealed)?;
        self.chunks += 1;
        self.buffer.clear();
        Ok(())
    }

    /// Seals the last chunk, makes everything durable, and indexes the content by its hash.
    /// The same content uploaded twice is kept once.
    pub fn finish(mut self) -> Result<AttachmentRef, DataError> {
        if self.size == 0 {
            return Err(DataError::new(
                DataCode::Malformed,
                "an attachment cannot be empty",
            ));
        }
        if !self.buffer.is_empty() {
            self.flush_chunk()?;
        }
        let sha256 = hex(&self.hasher.clone().finalize());
        let known = self
            .spaces
            .chunks
            .get::<AttachmentIndex>(&index_key(&sha256))?;
        if known.is_some() {
            self.discard();
        } else {
            let index = AttachmentIndex {
                upload: self.id.clone(),
                size: self.size,
                chunks: self.chunks,
            };
            // Chunks reach disk with the index, at the uploader's commit.
            self.spaces.chunks.put(&index_key(&sha256), &index)?;
        }
        Ok(AttachmentRef {
            name: String::new(),
            sha256,
            size: self.size,
        })
    }

    /// Drops what was received (a failed or refused upload).
    pub fn discard(&self) {
        for index in 0..self.chunks {
            let _ = self.spaces.chunks.remove(&chunk_key(&self.id, index));
        }
    }
}

impl Spaces {
    /// Starts receiving an attachment.
    pub fn upload(&self) -> Upload<'_> {
        Upload {
            spaces: self,
            id: uuid::Uuid::new_v4().simple().to_string(),
            hasher: Sha256::new(),
            size: 0,
            chunks: 0,
            buffer: Zeroizing::new(Vec::with_capacity(ATTACHMENT_CHUNK_BYTES)),
        }
    }

    /// The attachments a record refers to must be held; their sizes are taken from them.
    pub(super) fn check_attachments(
        &self,
        wanted: Vec<AttachmentRef>,
    ) -> Result<Vec<AttachmentRef>, DataError> {
        if wanted.len() > MAX_ATTACHMENTS {
            return Err(DataError::new(
                DataCode::Malformed,
                format!("a record may have at most {MAX_ATTACHMENTS} attachments"),
            ));
        }
        wanted
            .into_iter()
            .map(|mut attachment| {
                let index = self
                    .chunks
                    .get::<AttachmentIndex>(&index_key(&attachment.sha256))?
                    .ok_or_else(|| {
                        DataError::new(
                            DataCode::NotFound,
                            format!("no attachment {} was uploaded", attachment.sha256),
                        )
                    })?;
                attachment.size = index.size;
                Ok(attachment)
            })
            .collect()
    }

    /// Chunk `index` of the attachment with this hash, and whether it is the last.
    pub fn chunk(&self, sha256: &str, index: u32) -> Result<(Zeroizing<Vec<u8>>, bool), DataError> {
        let attachment = self
            .chunks
            .get::<AttachmentIndex>(&index_key(sha256))?
            .ok_or_else(|| DataError::new(DataCode::NotFound, format!("no attachment {sha256}")))?;
        if index >= attachment.chunks {
            return Err(DataError::new(
                DataCode::NotFound,
                format!("attachment {sha256} has {} chunks", attachment.chunks),
            ));
        }
        let key = chunk_key(&attachment.upload, index);
        let sealed: Sealed = self.chunks.get(&key)?.ok_or_else(|| {
            DataError::new(
                DataCode::Tampered,
                format!("chunk {index} of {sha256} is missing"),
            )
        })?;
        let bytes = open_sealed(&self.cipher, &key, &sealed).ok_or_else(|| {
            DataError::new(
                DataCode::Tampered,
                format!("chunk {index} of {sha256} was altered at rest"),
            )
        })?;
        Ok((bytes, index + 1 == attachment.chunks))
    }

    /// The whole attachment, checked against its hash.
    pub fn attachment(&self, sha256: &str) -> Result<Vec<u8>, DataError> {
        let mut content = Vec::new();
        let mut index = 0;
        loop {
            let (bytes, last) = self.chunk(sha256, index)?;
            content.extend_from_slice(&bytes);
            if last {
                break;
            }
            index += 1;
        }
        if hex(&Sha256::digest(&content)) != sha256 {
            return Err(DataError::new(
                DataCode::Tampered,
                format!("attachment {sha256} does not match its hash"),
            ));
        }
        Ok(content)
    }
}
