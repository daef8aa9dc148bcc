//! A read-only reader for Berkeley DB hash files (what Debian's and Ubuntu's
//! `saslpasswd2` write: Berkeley DB 5.3, hash access method).
//!
//! Format (Berkeley DB's `db_page.h`; rpm's `bdb_ro.c` is another small
//! reader of it): page 0 is the hash meta page (page size, last page number,
//! the highest bucket and the `spares` table that maps a bucket to its first
//! page); every bucket is a chain of hash pages linked by `next_pgno`; each
//! hash page holds key/data items in pairs, each item either inline
//! (`H_KEYDATA`) or a reference to a chain of overflow pages (`H_OFFPAGE`).
//! Every integer is in the byte order of the machine that wrote the file,
//! told by the meta page's magic number.
//!
//! Why so many checks: Berkeley DB's own tools accept a file cut in half and
//! list part of it with exit 0. Here the meta page's last page number must
//! fit the file, every page read must name itself and have the expected
//! type, every item must lie inside its page, and no page is visited twice,
//! so a damaged file ends in an error, never in a partial listing or a loop.
//! Pages are read one at a time ([`Pages`]): memory stays bounded whatever
//! the file's size.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::MigrateError;

/// The hash magic number at offset 12 of the meta page.
pub const HASH_MAGIC: u32 = 0x0006_1561;
/// Other access methods' magics, to name them when refusing the file.
pub const BTREE_MAGIC: u32 = 0x0005_3162;
pub const QUEUE_MAGIC: u32 = 0x0004_2253;
pub const HEAP_MAGIC: u32 = 0x0007_4582;

const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
const P_HASH: u8 = 13;

const H_KEYDATA: u8 = 1;
const H_DUPLICATE: u8 = 2;
const H_OFFPAGE: u8 = 3;
const H_OFFDUP: u8 = 4;
/// Berkeley DB 6's external files ("blobs"), stored beside the database.
const H_BLOB: u8 = 5;

/// Generic page header: lsn(8) pgno(4) prev(4) next(4) entries(2)
/// hf_offset(2) level(1) type(1).
const PAGE_HEADER: usize = 26;
/// With checksums on, each page header is followed by Berkeley DB 5's
/// `PG_CHKSUM`: two unused bytes and a 4-byte checksum (not verified here:
/// the structural checks catch what a reader must not trust).
const CHKSUM_SIZE: usize = 6;
const DBMETA_CHKSUM: u8 = 0x01;
/// `spares` has one slot per doubling of the table.
const NCACHED: usize = 32;
const SPARES_OFFSET: usize = 96;
/// An `H_OFFPAGE` item: type(1) unused(3) pgno(4) tlen(4).
const HOFFPAGE_LEN: usize = 12;

/// Byte order of a file's integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Little,
    Big,
}

impl Order {
    pub(crate) fn u16(self, b: &[u8], at: usize) -> u16 {
        let a = [b[at], b[at + 1]];
        match self {
            Order::Little => u16::from_le_bytes(a),
            Order::Big => u16::from_be_bytes(a),
        }
    }

    pub(crate) fn u64(self, b: &[u8], at: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[at..at + 8]);
        match self {
            Order::Little => u64::from_le_bytes(a),
            Order::Big => u64::from_be_bytes(a),
        }
    }

    pub(crate) fn u32(self, b: &[u8], at: usize) -> u32 {
        let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        match self {
            Order::Little => u32::from_le_bytes(a),
            Order::Big => u32::from_be_bytes(a),
        }
    }
}

/// Random access to the file's bytes: a file (positioned reads, no
/// whole-file load) or a byte slice (tests, fuzzing).
pub trait Pages {
    fn size(&self) -> io::Result<u64>;
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl Pages for File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_exact_at(buf, offset)
    }
}

impl Pages for [u8] {
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// What the meta page says.
#[derive(Debug, Clone)]
pub struct Meta {
    pub order: Order,
    pub version: u32,
    pub page_size: usize,
    pub last_pgno: u32,
    pub max_bucket: u32,
    /// Number of keys as last counted by Berkeley DB (a hint, not checked).
    pub nelem: u32,
    spares: [u32; NCACHED],
    /// Where the item index starts on a page.
    header: usize,
}

/// An open hash file.
pub struct HashFile<P: Pages + ?Sized> {
    path: PathBuf,
    meta: Meta,
    pages: Box<P>,
}

impl<P: Pages + ?Sized> std::fmt::Debug for HashFile<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashFile")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .finish()
    }
}

fn bad(path: &Path, what: impl Into<String>) -> MigrateError {
    MigrateError::Bad {
        path: path.to_path_buf(),
        what: format!("Berkeley DB hash file: {}", what.into()),
    }
}

/// Parse and check the meta page (the first 512 bytes of the file).
pub fn parse_meta(path: &Path, head: &[u8], file_size: u64) -> Result<Meta, MigrateError> {
    if head.len() < 512 {
        return Err(bad(path, "shorter than its meta page"));
    }
    let order = if u32::from_le_bytes([head[12], head[13], head[14], head[15]]) == HASH_MAGIC {
        Order::Little
    } else if u32::from_be_bytes([head[12], head[13], head[14], head[15]]) == HASH_MAGIC {
        Order::Big
    } else {
        return Err(bad(path, "no hash magic number at offset 12"));
    };
    let version = order.u32(head, 16);
    // 8: Berkeley DB 4.0 to 4.5, 9: 4.6 to 5.3, 10: 6.x.
    if !(8..=10).contains(&version) {
        return Err(bad(
            path,
            format!("hash version {version} is not supported (8 to 10 are)"),
        ));
    }
    let page_size = order.u32(head, 20) as usize;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(bad(path, format!("page size {page_size} is invalid")));
    }
    if head[24] != 0 {
        return Err(bad(path, "the file is encrypted"));
    }
    if head[25] != P_HASHMETA {
        return Err(bad(
            path,
            format!("page 0 has type {}, not a hash meta page", head[25]),
        ));
    }
    if order.u32(head, 8) != 0 {
        return Err(bad(path, "page 0 does not name itself"));
    }
    let header = if head[26] & DBMETA_CHKSUM != 0 {
        PAGE_HEADER + CHKSUM_SIZE
    } else {
        PAGE_HEADER
    };
    let last_pgno = order.u32(head, 32);
    let need = (u64::from(last_pgno) + 1) * page_size as u64;
    if file_size < need {
        return Err(bad(
            path,
            format!(
                "truncated: the meta page says {} pages of {page_size} bytes ({need} bytes), the file has {file_size} bytes",
                u64::from(last_pgno) + 1
            ),
        ));
    }
    if !file_size.is_multiple_of(page_size as u64) {
        return Err(bad(
            path,
            format!("damaged: {file_size} bytes is not a whole number of {page_size}-byte pages"),
        ));
    }
    let max_bucket = order.u32(head, 72);
    let mut spares = [0u32; NCACHED];
    for (i, s) in spares.iter_mut().enumerate() {
        *s = order.u32(head, SPARES_OFFSET + 4 * i);
    }
    Ok(Meta {
        order,
        version,
        page_size,
        last_pgno,
        max_bucket,
        nelem: order.u32(head, 88),
        spares,
        header,
    })
}

impl HashFile<File> {
    /// Open a file and check its meta page.
    pub fn open(path: &Path) -> Result<Self, MigrateError> {
        let file = File::open(path).map_err(|e| MigrateError::io(path, e))?;
        HashFile::with_pages(path, Box::new(file))
    }
}

impl<P: Pages + ?Sized> HashFile<P> {
    /// Read from any byte source; `path` only names it in messages.
    pub fn with_pages(path: &Path, pages: Box<P>) -> Result<Self, MigrateError> {
        let size = pages.size().map_err(|e| MigrateError::io(path, e))?;
        let mut head = [0u8; 512];
        if size < head.len() as u64 {
            return Err(bad(path, "shorter than its meta page"));
        }
        pages
            .read_at(&mut head, 0)
            .map_err(|e| MigrateError::io(path, e))?;
        let meta = parse_meta(path, &head, size)?;
        Ok(HashFile {
            path: path.to_path_buf(),
            meta,
            pages,
        })
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The first page of a bucket: the bucket number plus the spares entry
    /// of the doubling it belongs to.
    fn bucket_page(&self, bucket: u32) -> Result<u32, MigrateError> {
        let doubling = (u64::from(bucket) + 1).next_power_of_two().trailing_zeros() as usize;
        let spare = *self
            .meta
            .spares
            .get(doubling)
            .ok_or_else(|| bad(&self.path, format!("bucket {bucket} is out of range")))?;
        bucket
            .checked_add(spare)
            .filter(|&p| p != 0)
            .ok_or_else(|| bad(&self.path, format!("bucket {bucket} maps to no valid page")))
    }

    fn read_page(
        &self,
        pgno: u32,
        want: &[u8],
        seen: &mut Visited,
        buf: &mut [u8],
    ) -> Result<(), MigrateError> {
        let path = &self.path;
        if pgno == 0 || pgno > self.meta.last_pgno {
            return Err(bad(
                path,
                format!(
                    "damaged: a link to page {pgno}, outside pages 1..={}",
                    self.meta.last_pgno
                ),
            ));
        }
        if !seen.insert(pgno) {
            return Err(bad(
                path,
                format!("damaged: page {pgno} is reached twice (a loop or a shared page)"),
            ));
        }
        self.pages
            .read_at(buf, u64::from(pgno) * self.meta.page_size as u64)
            .map_err(|e| MigrateError::io(path, e))?;
        let named = self.meta.order.u32(buf, 8);
        if named != pgno {
            return Err(bad(
                path,
                format!("damaged: page {pgno} says it is page {named} (zeroed or overwritten)"),
            ));
        }
        let ty = buf[25];
        if !want.contains(&ty) {
            return Err(bad(
                path,
                format!("damaged: page {pgno} has type {ty}, expected {want:?}"),
            ));
        }
        Ok(())
    }

    /// Call `f` with every key and value, in Berkeley DB's cursor order
    /// (bucket by bucket, page by page, item by item). Stops at the first
    /// error, from the file or from `f`.
    pub fn for_each(
        &self,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), MigrateError>,
    ) -> Result<(), MigrateError> {
        let ps = self.meta.page_size;
        let mut seen = Visited::new(self.meta.last_pgno);
        let mut page = vec![0u8; ps];
        let mut ovfl = vec![0u8; ps];
        let mut key_buf = Vec::new();
        let mut val_buf = Vec::new();
        for bucket in 0..=self.meta.max_bucket {
            let mut pgno = self.bucket_page(bucket)?;
            loop {
                self.read_page(pgno, &[P_HASH, P_HASH_UNSORTED], &mut seen, &mut page)?;
                let items = self.items(pgno, &page)?;
                for pair in items.chunks_exact(2) {
                    let key = self.item(&page, pair[0], &mut key_buf, &mut ovfl, &mut seen)?;
                    let key = key.unwrap_or(&key_buf);
                    let val = self.item(&page, pair[1], &mut val_buf, &mut ovfl, &mut seen)?;
                    let val = val.unwrap_or(&val_buf);
                    f(key, val)?;
                }
                pgno = self.meta.order.u32(&page, 16);
                if pgno == 0 {
                    break;
                }
            }
        }
        Ok(())
    }

    /// The item extents of a hash page, checked: (start, end) per item.
    fn items(&self, pgno: u32, page: &[u8]) -> Result<Vec<(usize, usize)>, MigrateError> {
        let o = self.meta.order;
        let ps = self.meta.page_size;
        let entries = usize::from(o.u16(page, 20));
        let index_end = self.meta.header + 2 * entries;
        if entries % 2 != 0 || index_end > ps {
            return Err(bad(
                &self.path,
                format!("damaged: page {pgno} claims {entries} items"),
            ));
        }
        let mut out = Vec::with_capacity(entries);
        let mut end = ps;
        for i in 0..entries {
            let start = usize::from(o.u16(page, self.meta.header + 2 * i));
            if start < index_end || start >= end {
                return Err(bad(
                    &self.path,
                    format!("damaged: item {i} of page {pgno} lies outside its page"),
                ));
            }
            out.push((start, end));
            end = start;
        }
        Ok(out)
    }

    /// One item: `Some(bytes)` when inline on the page, `None` when it was
    /// assembled from overflow pages into `buf`.
    fn item<'p>(
        &self,
        page: &'p [u8],
        (start, end): (usize, usize),
        buf: &mut Vec<u8>,
        ovfl: &mut [u8],
        seen: &mut Visited,
    ) -> Result<Option<&'p [u8]>, MigrateError> {
        let o = self.meta.order;
        match page[start] {
            H_KEYDATA => Ok(Some(&page[start + 1..end])),
            H_OFFPAGE if end - start >= HOFFPAGE_LEN => {
                let first = o.u32(page, start + 4);
                let total = o.u32(page, start + 8) as usize;
                self.overflow(first, total, buf, ovfl, seen)?;
                Ok(None)
            }
            H_DUPLICATE | H_OFFDUP => Err(bad(
                &self.path,
                "holds duplicate keys, which a sasldb never has",
            )),
            H_BLOB => Err(bad(
                &self.path,
                "holds a value in an external (blob) file, which a sasldb never has",
            )),
            t => Err(bad(&self.path, format!("damaged: an item of type {t}"))),
        }
    }

    fn overflow(
        &self,
        mut pgno: u32,
        total: usize,
        buf: &mut Vec<u8>,
        page: &mut [u8],
        seen: &mut Visited,
    ) -> Result<(), MigrateError> {
        let hdr = self.meta.header;
        // A value cannot be longer than the pages that could hold it.
        let room = self.meta.last_pgno as usize * (self.meta.page_size - hdr);
        if total > room {
            return Err(bad(
                &self.path,
                format!("damaged: an overflow item of {total} bytes, more than the file holds"),
            ));
        }
        buf.clear();
        buf.reserve(total);
        while buf.len() < total {
            if pgno == 0 {
                return Err(bad(
                    &self.path,
                    format!(
                        "damaged: an overflow chain ends after {} of {total} bytes",
                        buf.len()
                    ),
                ));
            }
            self.read_page(pgno, &[P_OVERFLOW], seen, page)?;
            let len = usize::from(self.meta.order.u16(page, 22));
            if len == 0 || hdr + len > page.len() || buf.len() + len > total {
                return Err(bad(
                    &self.path,
                    format!("damaged: overflow page {pgno} holds {len} bytes"),
                ));
            }
            buf.extend_from_slice(&page[hdr..hdr + len]);
            pgno = self.meta.order.u32(page, 16);
        }
        Ok(())
    }
}

/// Pages visited so far: one bit per page of the file, so every page is
/// read at most once and no chain can loop.
struct Visited(Vec<u64>);

impl Visited {
    fn new(last_pgno: u32) -> Self {
        Visited(vec![0; (last_pgno as usize + 1).div_ceil(64)])
    }

    /// False when already visited.
    fn insert(&mut self, pgno: u32) -> bool {
        let (word, bit) = (pgno as usize / 64, 1u64 << (pgno % 64));
        match self.0.get_mut(word) {
            Some(w) if *w & bit == 0 => {
                *w |= bit;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
#[path = "bdb_tests.rs"]
mod tests;
