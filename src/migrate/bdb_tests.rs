//! The reader against files built here byte by byte, so every damage a test
//! needs can be planted; real files from Berkeley DB's tools are in
//! `tests/cli/migrate.rs`.

use super::*;

const PS: usize = 512;

enum Item<'a> {
    Inline(&'a [u8]),
    /// Stored on overflow pages, `chunk` bytes per page.
    Overflow(&'a [u8], usize),
}

/// A hash file: one page per bucket (pages 1..=n), overflow pages after.
struct Builder {
    order: Order,
    pages: Vec<Vec<u8>>,
}

impl Builder {
    fn new(order: Order) -> Self {
        Builder {
            order,
            pages: vec![vec![0u8; PS]],
        }
    }

    fn put16(&self, page: &mut [u8], at: usize, v: u16) {
        let b = match self.order {
            Order::Little => v.to_le_bytes(),
            Order::Big => v.to_be_bytes(),
        };
        page[at..at + 2].copy_from_slice(&b);
    }

    fn put32(&self, page: &mut [u8], at: usize, v: u32) {
        let b = match self.order {
            Order::Little => v.to_le_bytes(),
            Order::Big => v.to_be_bytes(),
        };
        page[at..at + 4].copy_from_slice(&b);
    }

    fn new_page(&mut self, ty: u8) -> usize {
        let n = self.pages.len();
        let mut p = vec![0u8; PS];
        self.put32(&mut p, 8, n as u32);
        p[25] = ty;
        self.pages.push(p);
        n
    }

    fn overflow(&mut self, data: &[u8], chunk: usize) -> u32 {
        let first = self.pages.len() as u32;
        let chunks: Vec<&[u8]> = data.chunks(chunk).collect();
        for (i, c) in chunks.iter().enumerate() {
            let n = self.new_page(P_OVERFLOW);
            let mut p = std::mem::take(&mut self.pages[n]);
            let next = if i + 1 < chunks.len() {
                n as u32 + 1
            } else {
                0
            };
            self.put32(&mut p, 16, next);
            self.put16(&mut p, 22, c.len() as u16);
            p[PAGE_HEADER..PAGE_HEADER + c.len()].copy_from_slice(c);
            self.pages[n] = p;
        }
        first
    }

    /// Buckets are pages 1..=buckets.len(); overflow pages follow.
    fn build(mut self, buckets: &[&[(Item, Item)]]) -> Vec<u8> {
        for _ in buckets {
            self.new_page(P_HASH);
        }
        for (b, pairs) in buckets.iter().enumerate() {
            let pgno = b + 1;
            let mut page = std::mem::take(&mut self.pages[pgno]);
            let mut top = PS;
            let mut n = 0;
            for (k, v) in pairs.iter() {
                for item in [k, v] {
                    let bytes = match item {
                        Item::Inline(d) => [&[H_KEYDATA][..], d].concat(),
                        Item::Overflow(d, chunk) => {
                            let first = self.overflow(d, *chunk);
                            let mut h = vec![H_OFFPAGE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                            self.put32(&mut h, 4, first);
                            self.put32(&mut h, 8, d.len() as u32);
                            h
                        }
                    };
                    top -= bytes.len();
                    page[top..top + bytes.len()].copy_from_slice(&bytes);
                    self.put16(&mut page, PAGE_HEADER + 2 * n, top as u16);
                    n += 1;
                }
            }
            self.put16(&mut page, 20, n as u16);
            self.put16(&mut page, 22, top as u16);
            self.pages[pgno] = page;
        }
        let last = self.pages.len() as u32 - 1;
        let mut meta = std::mem::take(&mut self.pages[0]);
        let magic = match self.order {
            Order::Little => HASH_MAGIC.to_le_bytes(),
            Order::Big => HASH_MAGIC.to_be_bytes(),
        };
        meta[12..16].copy_from_slice(&magic);
        self.put32(&mut meta, 16, 9);
        self.put32(&mut meta, 20, PS as u32);
        meta[25] = P_HASHMETA;
        self.put32(&mut meta, 32, last);
        self.put32(&mut meta, 72, buckets.len() as u32 - 1);
        for i in 0..NCACHED {
            self.put32(&mut meta, SPARES_OFFSET + 4 * i, 1);
        }
        self.pages[0] = meta;
        self.pages.concat()
    }
}

use crate::migrate::{Records, collect};

fn read(bytes: &[u8]) -> Result<Records, String> {
    let file = HashFile::with_pages(Path::new("t.db"), Box::<[u8]>::from(bytes))
        .map_err(|e| e.to_string())?;
    collect(|f| file.for_each(f))
}

fn sample(order: Order, big: &[u8]) -> Vec<u8> {
    Builder::new(order).build(&[
        &[
            (
                Item::Inline(b"alice\0example.org\0userPassword"),
                Item::Inline(b"pw-a"),
            ),
            (
                Item::Inline(b"bob\0example.org\0userPassword"),
                Item::Overflow(big, 200),
            ),
        ],
        &[(
            Item::Overflow(b"carol\0other.net\0userPassword", 7),
            Item::Inline(b""),
        )],
    ])
}

fn expected(big: &[u8]) -> Records {
    vec![
        (
            b"alice\0example.org\0userPassword".to_vec(),
            b"pw-a".to_vec(),
        ),
        (b"bob\0example.org\0userPassword".to_vec(), big.to_vec()),
        (b"carol\0other.net\0userPassword".to_vec(), Vec::new()),
    ]
}

#[test]
fn both_byte_orders_and_overflow_items() {
    let big: Vec<u8> = (0..1500u32).map(|i| (i % 251) as u8).collect();
    for order in [Order::Little, Order::Big] {
        assert_eq!(read(&sample(order, &big)), Ok(expected(&big)), "{order:?}");
    }
}

#[test]
fn every_cut_is_an_error_never_a_partial_listing() {
    let file = sample(Order::Little, &[7u8; 900]);
    for len in 0..file.len() {
        let r = read(&file[..len]);
        let e = r.err().unwrap_or_default();
        assert!(e.starts_with("t.db: "), "cut at {len}: {e}");
    }
    let e = read(&file[..file.len() - PS]).err().unwrap_or_default();
    assert!(e.contains("truncated: the meta page says"), "{e}");
}

fn damaged(f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut file = sample(Order::Big, &[1u8; 900]);
    f(&mut file);
    read(&file).err().unwrap_or_default()
}

#[test]
fn loops_and_bad_links_are_refused() {
    // Bucket 0's page links to itself.
    let e = damaged(|f| f[PS + 16..PS + 20].copy_from_slice(&1u32.to_be_bytes()));
    assert!(e.contains("page 1 is reached twice"), "{e}");
    // An overflow chain (pages 3..) whose second page links back to the first.
    let e = damaged(|f| f[4 * PS + 16..4 * PS + 20].copy_from_slice(&3u32.to_be_bytes()));
    assert!(e.contains("page 3 is reached twice"), "{e}");
    // A link past the last page.
    let e = damaged(|f| f[PS + 16..PS + 20].copy_from_slice(&999u32.to_be_bytes()));
    assert!(e.contains("a link to page 999"), "{e}");
}

#[test]
fn zeroed_pages_and_wild_items_are_refused() {
    let e = damaged(|f| f[2 * PS..3 * PS].fill(0));
    assert!(e.contains("page 2 says it is page 0"), "{e}");
    // Item 0 of page 1 pointing into the index.
    let e = damaged(|f| f[PS + 26..PS + 28].copy_from_slice(&2u16.to_be_bytes()));
    assert!(e.contains("item 0 of page 1 lies outside its page"), "{e}");
    // An odd item count: a key without its value.
    let e = damaged(|f| f[PS + 20..PS + 22].copy_from_slice(&3u16.to_be_bytes()));
    assert!(e.contains("claims 3 items"), "{e}");
    // An overflow item longer than its chain.
    let e = damaged(|f| {
        let top = u16::from_be_bytes([f[2 * PS + 26], f[2 * PS + 27]]) as usize;
        f[2 * PS + top + 8..2 * PS + top + 12].copy_from_slice(&100u32.to_be_bytes());
    });
    assert!(
        e.contains("an overflow chain ends after 28 of 100 bytes"),
        "{e}"
    );
}

#[test]
fn meta_page_checks() {
    let e = damaged(|f| f[20..24].copy_from_slice(&1000u32.to_be_bytes()));
    assert!(e.contains("page size 1000 is invalid"), "{e}");
    let e = damaged(|f| f[24] = 1);
    assert!(e.contains("encrypted"), "{e}");
    let e = damaged(|f| f[16..20].copy_from_slice(&3u32.to_be_bytes()));
    assert!(e.contains("hash version 3"), "{e}");
    let e = damaged(|f| f.push(0));
    assert!(e.contains("not a whole number"), "{e}");
}
