//! Shared by the file-reader fuzz targets: a real file damaged as the fuzz
//! input says, so mutations start from a valid structure instead of having
//! to find the magic numbers first.

/// `seed` with bytes XORed in (each 3-byte group of `data`: a 16-bit offset
/// and a mask) and, for some input lengths, cut short.
pub fn damage(seed: &[u8], data: &[u8]) -> Vec<u8> {
    let mut damaged = seed.to_vec();
    for (i, group) in data.chunks(3).enumerate() {
        if let [hi, lo, x] = *group {
            let at = (usize::from(hi) << 8 | usize::from(lo)) * 7 + i;
            if let Some(b) = damaged.get_mut(at % seed.len()) {
                *b ^= x;
            }
        }
    }
    if data.len() % 5 == 1 {
        damaged.truncate(data.len() * 97 % seed.len());
    }
    damaged
}
