//! A read-only reader for GDBM files (what Fedora's, RHEL's and Arch's
//! `saslpasswd2` write), own code: no crate reads GDBM's on-disk format that
//! we could check against Cyrus's files, and the format is small.
//!
//! Format (GDBM's `gdbmdefs.h`): a header (magic, block size, where the
//! directory is, bucket size and elements per bucket, end of the allocated
//! file); the directory, an array of file offsets of buckets, where
//! neighbouring entries share a bucket; each bucket an array of elements
//! (hash value, -1 when empty, and the offset and sizes of the key and the
//! value stored one after the other). Offsets are 8 bytes in files written
//! with 64-bit `off_t` (`GDBM_MAGIC64`), 4 in `GDBM_MAGIC32` files; the
//! numsync variants only add fields after the header. Integers are in the
//! writer's byte order, told by the magic.
//!
//! Every offset and size is checked against the file before it is used,
//! and every bucket is read once, so a damaged file ends in an error.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::MigrateError;
use super::bdb::{Order, Pages};

const MAGIC32: u32 = 0x1357_9acd;
const MAGIC64: u32 = 0x1357_9acf;
const NUMSYNC32: u32 = 0x1357_9ad0;
const NUMSYNC64: u32 = 0x1357_9ad1;
const OMAGIC: u32 = 0x1357_9ace;
/// Free-space slots kept in each bucket's head (`BUCKET_AVAIL`).
const BUCKET_AVAIL: usize = 6;
/// Keys and values are read whole; GDBM has no limit, a sasldb needs far
/// less. Bounds what a damaged size field can make us allocate.
const MAX_ITEM: usize = 64 << 20;

/// Field offsets for one `off_t` width.
#[derive(Debug, Clone, Copy)]
struct Layout {
    off: usize,
    /// Header: dir, dir_size, dir_bits, bucket_size, bucket_elems, next_block.
    hdr: [usize; 6],
    /// Bucket: count, first element.
    bucket: [usize; 2],
    elem_size: usize,
    /// Element: data_pointer, key_size, data_size.
    elem: [usize; 3],
}

const L64: Layout = Layout {
    off: 8,
    hdr: [8, 16, 20, 24, 28, 32],
    // av_count(4) pad(4) 6 x {av_size(4) pad(4) av_adr(8)} bucket_bits(4) count(4)
    bucket: [8 + BUCKET_AVAIL * 16 + 4, 8 + BUCKET_AVAIL * 16 + 8],
    elem_size: 24,
    elem: [8, 16, 20],
};

const L32: Layout = Layout {
    off: 4,
    hdr: [8, 12, 16, 20, 24, 28],
    bucket: [4 + BUCKET_AVAIL * 8 + 4, 4 + BUCKET_AVAIL * 8 + 8],
    elem_size: 20,
    elem: [8, 12, 16],
};

/// An open GDBM file.
pub struct GdbmFile<P: Pages + ?Sized> {
    path: PathBuf,
    order: Order,
    layout: Layout,
    size: u64,
    dir: u64,
    dir_entries: usize,
    bucket_size: usize,
    bucket_elems: usize,
    pages: Box<P>,
}

fn bad(path: &Path, what: impl Into<String>) -> MigrateError {
    MigrateError::Bad {
        path: path.to_path_buf(),
        what: format!("GDBM file: {}", what.into()),
    }
}

impl GdbmFile<File> {
    pub fn open(path: &Path) -> Result<Self, MigrateError> {
        let file = File::open(path).map_err(|e| MigrateError::io(path, e))?;
        GdbmFile::with_pages(path, Box::new(file))
    }
}

impl<P: Pages + ?Sized> GdbmFile<P> {
    pub fn with_pages(path: &Path, pages: Box<P>) -> Result<Self, MigrateError> {
        let size = pages.size().map_err(|e| MigrateError::io(path, e))?;
        let mut h = [0u8; 40];
        if size < h.len() as u64 {
            return Err(bad(
                path,
                format!("truncated: {size} bytes, shorter than the header"),
            ));
        }
        pages
            .read_at(&mut h, 0)
            .map_err(|e| MigrateError::io(path, e))?;
        let magic_le = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let magic_be = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let (order, magic) = if [MAGIC32, MAGIC64, NUMSYNC32, NUMSYNC64, OMAGIC].contains(&magic_le)
        {
            (Order::Little, magic_le)
        } else {
            (Order::Big, magic_be)
        };
        let layout = match magic {
            MAGIC64 | NUMSYNC64 => L64,
            MAGIC32 | NUMSYNC32 => L32,
            OMAGIC => {
                return Err(bad(
                    path,
                    "the format of GDBM before 1.9 is not supported; convert it with that version's gdbm_dump",
                ));
            }
            _ => return Err(bad(path, "no GDBM magic number")),
        };
        let block_size = order.u32(&h, 4) as usize;
        let get = |i: usize| -> u64 {
            let at = layout.hdr[i];
            if i == 0 || i == 5 {
                read_off(order, layout, &h, at)
            } else {
                u64::from(order.u32(&h, at))
            }
        };
        let (dir, dir_size, dir_bits) = (get(0), get(1), get(2));
        let (bucket_size, bucket_elems, next_block) = (get(3) as usize, get(4) as usize, get(5));
        if size < next_block {
            return Err(bad(
                path,
                format!(
                    "truncated: the header says the file ends at {next_block} bytes, it has {size}"
                ),
            ));
        }
        if block_size < 512 || block_size as u64 > size {
            return Err(bad(path, format!("damaged: block size {block_size}")));
        }
        let dir_entries = 1usize
            .checked_shl(dir_bits as u32)
            .filter(|_| dir_bits < 32);
        let dir_ok = dir_entries
            .and_then(|n| n.checked_mul(layout.off))
            .is_some_and(|b| {
                b as u64 == dir_size && dir.checked_add(dir_size).is_some_and(|e| e <= size)
            });
        if !dir_ok {
            return Err(bad(
                path,
                format!("damaged: a directory of {dir_size} bytes at {dir} for {dir_bits} bits"),
            ));
        }
        let bucket_fits = bucket_elems
            .checked_mul(layout.elem_size)
            .and_then(|b| b.checked_add(layout.bucket[1]))
            .is_some_and(|b| b <= bucket_size && bucket_size as u64 <= size);
        if bucket_elems == 0 || !bucket_fits {
            return Err(bad(
                path,
                format!("damaged: {bucket_elems} elements in buckets of {bucket_size} bytes"),
            ));
        }
        Ok(GdbmFile {
            path: path.to_path_buf(),
            order,
            layout,
            size,
            dir,
            dir_entries: dir_entries.unwrap_or(0),
            bucket_size,
            bucket_elems,
            pages,
        })
    }

    fn read(&self, buf: &mut [u8], at: u64, what: &str) -> Result<(), MigrateError> {
        let end = at.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.size) {
            return Err(bad(
                &self.path,
                format!(
                    "damaged: {what} at {at} ({} bytes) lies past the end of the file",
                    buf.len()
                ),
            ));
        }
        self.pages
            .read_at(buf, at)
            .map_err(|e| MigrateError::io(&self.path, e))
    }

    /// Call `f` with every key and value in `gdbm_firstkey`/`gdbm_nextkey`
    /// order (directory order, each bucket once, element by element).
    pub fn for_each(
        &self,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), MigrateError>,
    ) -> Result<(), MigrateError> {
        let (o, l) = (self.order, self.layout);
        let mut dir = vec![0u8; self.dir_entries * l.off];
        self.read(&mut dir, self.dir, "the directory")?;
        let mut seen = std::collections::HashSet::new();
        let mut bucket = vec![0u8; self.bucket_size];
        let mut item = Vec::new();
        // In a sound file buckets and records never share bytes, so all
        // reads together stay within the file's size; a crafted file whose
        // buckets overlap and point at one record again and again would
        // otherwise be read for practically ever.
        let mut budget = self.size.saturating_mul(2);
        let mut spend = |n: usize| -> Result<(), MigrateError> {
            budget = budget.checked_sub(n as u64).ok_or_else(|| {
                bad(
                    &self.path,
                    "damaged: buckets and records overlap (more read than the file holds)",
                )
            })?;
            Ok(())
        };
        for i in 0..self.dir_entries {
            let at = read_off(o, l, &dir, i * l.off);
            if !seen.insert(at) {
                continue; // neighbouring entries share a bucket
            }
            spend(bucket.len())?;
            self.read(&mut bucket, at, "a bucket")?;
            let count = o.u32(&bucket, l.bucket[0]) as usize;
            if count > self.bucket_elems {
                return Err(bad(
                    &self.path,
                    format!("damaged: the bucket at {at} claims {count} elements"),
                ));
            }
            for e in 0..self.bucket_elems {
                let base = l.bucket[1] + e * l.elem_size;
                if o.u32(&bucket, base) == u32::MAX {
                    continue; // empty slot (hash value -1)
                }
                let ptr = read_off(o, l, &bucket, base + l.elem[0]);
                let key_size = o.u32(&bucket, base + l.elem[1]) as usize;
                let data_size = o.u32(&bucket, base + l.elem[2]) as usize;
                let total = key_size.saturating_add(data_size);
                if key_size == 0 || total > MAX_ITEM {
                    return Err(bad(
                        &self.path,
                        format!(
                            "damaged: an element of the bucket at {at} holds {key_size}+{data_size} bytes"
                        ),
                    ));
                }
                if ptr.checked_add(total as u64).is_none_or(|e| e > self.size) {
                    return Err(bad(
                        &self.path,
                        format!(
                            "damaged: a record at {ptr} ({total} bytes) lies past the end of the file"
                        ),
                    ));
                }
                spend(total)?;
                item.resize(total, 0);
                self.read(&mut item, ptr, "a record")?;
                let (k, v) = item.split_at(key_size);
                f(k, v)?;
            }
        }
        Ok(())
    }
}

fn read_off(o: Order, l: Layout, b: &[u8], at: usize) -> u64 {
    if l.off == 8 {
        o.u64(b, at)
    } else {
        u64::from(o.u32(b, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GDBM file with one bucket, built here so damage can be planted.
    fn file(order: Order, records: &[(&[u8], &[u8])]) -> Vec<u8> {
        let l = L64;
        let w32 = |v: u32| match order {
            Order::Little => v.to_le_bytes(),
            Order::Big => v.to_be_bytes(),
        };
        let w64 = |v: u64| match order {
            Order::Little => v.to_le_bytes(),
            Order::Big => v.to_be_bytes(),
        };
        let mut f = vec![0u8; 3 * 512];
        let (dir, bucket, data) = (512usize, 1024usize, 3 * 512usize);
        f[0..4].copy_from_slice(&w32(MAGIC64));
        f[4..8].copy_from_slice(&w32(512));
        f[8..16].copy_from_slice(&w64(dir as u64));
        f[16..20].copy_from_slice(&w32(16)); // two entries, one bucket
        f[20..24].copy_from_slice(&w32(1));
        f[24..28].copy_from_slice(&w32(512));
        let elems = (512 - l.bucket[1]) / l.elem_size;
        f[28..32].copy_from_slice(&w32(elems as u32));
        f[dir..dir + 8].copy_from_slice(&w64(bucket as u64));
        f[dir + 8..dir + 16].copy_from_slice(&w64(bucket as u64));
        for e in 0..elems {
            let base = bucket + l.bucket[1] + e * l.elem_size;
            f[base..base + 4].copy_from_slice(&w32(u32::MAX));
        }
        f[bucket + l.bucket[0]..bucket + l.bucket[0] + 4]
            .copy_from_slice(&w32(records.len() as u32));
        for (e, (k, v)) in records.iter().enumerate() {
            let base = bucket + l.bucket[1] + e * l.elem_size;
            let ptr = f.len().max(data);
            f[base..base + 4].copy_from_slice(&w32(e as u32));
            f[base + 8..base + 16].copy_from_slice(&w64(ptr as u64));
            f[base + 16..base + 20].copy_from_slice(&w32(k.len() as u32));
            f[base + 20..base + 24].copy_from_slice(&w32(v.len() as u32));
            f.extend_from_slice(k);
            f.extend_from_slice(v);
        }
        let end = f.len() as u64;
        f[32..40].copy_from_slice(&w64(end));
        f
    }

    fn read(bytes: &[u8]) -> Result<crate::migrate::Records, String> {
        let g = GdbmFile::with_pages(Path::new("g"), Box::<[u8]>::from(bytes))
            .map_err(|e| e.to_string())?;
        crate::migrate::collect(|f| g.for_each(f))
    }

    #[test]
    fn both_orders_and_every_cut() {
        let recs: [(&[u8], &[u8]); 2] = [(b"a\0r\0userPassword", b"pw"), (b"b\0r\0x", &[7u8; 700])];
        for order in [Order::Little, Order::Big] {
            let f = file(order, &recs);
            let got = read(&f);
            let want: Vec<_> = recs.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            assert_eq!(got, Ok(want), "{order:?}");
            for cut in 0..f.len() {
                let e = read(&f[..cut]).err().unwrap_or_default();
                assert!(e.starts_with("g: GDBM file: "), "cut {cut}: {e}");
            }
        }
    }

    #[test]
    fn wild_offsets_and_sizes_are_refused() {
        let f = file(Order::Little, &[(b"a\0r\0p", b"v")]);
        let elem = 1024 + L64.bucket[1];
        let mut g = f.clone();
        g[elem + 8..elem + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(read(&g).err().unwrap_or_default().contains("past the end"));
        let mut g = f.clone();
        g[elem + 20..elem + 24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read(&g).err().unwrap_or_default().contains("holds"));
        let mut g = f.clone();
        g[20..24].copy_from_slice(&40u32.to_le_bytes());
        assert!(read(&g).err().unwrap_or_default().contains("directory"));
        let mut g = f;
        g[0..4].copy_from_slice(&OMAGIC.to_le_bytes());
        assert!(read(&g).err().unwrap_or_default().contains("before 1.9"));
    }
}
