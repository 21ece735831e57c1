//! QR symbol encoding at error-correction level H, with a fast choice of the data mask.
//!
//! The `qrcode` crate does the segmenting, Reed–Solomon coding and module placement; what it
//! does slowly is choosing the mask: it clones the canvas eight times and scores each clone
//! module by module (ISO/IEC 18004:2015 §7.8.3), which is nearly all of its encode time. Here
//! the same score is computed over bit-packed rows and columns (one machine word per line),
//! a handful of shifts and popcounts per line and rule:
//!
//! - N1, runs of five or more equal modules: a run of length L scores L − 2;
//! - N2, 2×2 blocks of one colour: 3 each;
//! - N3, `1:1:3:1:1` finder-like patterns with four light modules on either side: 40 each;
//! - N4, the dark/light balance.
//!
//! The score is the `qrcode` crate's own, including its two documented readings of the
//! standard (N4 grows linearly, not in 5 % steps; N3 treats modules outside the symbol as
//! light), and ties go to the lowest mask number as in the crate, so the mask chosen — and
//! therefore every module — is exactly what the crate produces. A unit test holds the two
//! equal over many inputs. Symbols wider than 128 modules (version 28 and up, far beyond any
//! `scan_url`) fall back to the crate's own search.

use qrcode::canvas::{Canvas, MaskPattern, Module};
use qrcode::types::{Color, QrError};
use qrcode::EcLevel;

/// A QR symbol: `width × width` modules, row-major, `true` for dark. No quiet zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matrix {
    width: usize,
    dark: Vec<bool>,
}

impl Matrix {
    pub fn width(&self) -> usize {
        self.width
    }

    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        self.dark[y * self.width + x]
    }

    /// One row of modules.
    pub fn row(&self, y: usize) -> &[bool] {
        &self.dark[y * self.width..(y + 1) * self.width]
    }
}

/// Encodes `data` at error-correction level H in the smallest version that holds it.
pub fn encode(data: &[u8]) -> Result<Matrix, QrError> {
    encode_with_mask(data).map(|(m, _)| m)
}

/// As [`encode`], also naming the chosen mask (0–7).
pub fn encode_with_mask(data: &[u8]) -> Result<(Matrix, u8), QrError> {
    let bits = qrcode::bits::encode_auto(data, EcLevel::H)?;
    let version = bits.version();
    let (data_cw, ec_cw) =
        qrcode::ec::construct_codewords(&bits.into_bytes(), version, EcLevel::H)?;
    let mut canvas = Canvas::new(version, EcLevel::H);
    canvas.draw_all_functional_patterns();
    canvas.draw_data(&data_cw, &ec_cw);
    let width = version.width() as usize;
    if width <= 64 {
        Ok(choose::<u64>(&canvas, width))
    } else if width <= 128 {
        Ok(choose::<u128>(&canvas, width))
    } else {
        Ok(crate_choice(&canvas, width))
    }
}

const PATTERNS: [MaskPattern; 8] = [
    MaskPattern::Checkerboard,
    MaskPattern::HorizontalLines,
    MaskPattern::VerticalLines,
    MaskPattern::DiagonalLines,
    MaskPattern::LargeCheckerboard,
    MaskPattern::Fields,
    MaskPattern::Diamonds,
    MaskPattern::Meadow,
];

/// The slow path for very large symbols: the crate's own eight-way search.
fn crate_choice(canvas: &Canvas, width: usize) -> (Matrix, u8) {
    let masked = canvas.apply_best_mask();
    let w = width as i16;
    let mut dark = Vec::with_capacity(width * width);
    for y in 0..w {
        for x in 0..w {
            dark.push(masked.get(x, y).is_dark());
        }
    }
    let matrix = Matrix { width, dark };
    let mask = (0..8u8)
        .find(|&p| {
            let mut c = canvas.clone();
            c.apply_mask(PATTERNS[p as usize]);
            (0..w).all(|y| {
                (0..w).all(|x| c.get(x, y).is_dark() == matrix.is_dark(x as usize, y as usize))
            })
        })
        .unwrap_or(0);
    (matrix, mask)
}

/// Whether mask `p` inverts the module at column `x`, row `y` (ISO/IEC 18004 Table 10).
const fn mask_bit(p: usize, x: usize, y: usize) -> bool {
    match p {
        0 => (x + y) % 2 == 0,
        1 => y % 2 == 0,
        2 => x % 3 == 0,
        3 => (x + y) % 3 == 0,
        4 => (y / 2 + x / 3) % 2 == 0,
        5 => (x * y) % 2 + (x * y) % 3 == 0,
        6 => ((x * y) % 2 + (x * y) % 3) % 2 == 0,
        _ => ((x + y) % 2 + (x * y) % 3) % 2 == 0,
    }
}

/// Every mask repeats every 6 columns and every 12 rows. `ROW_PATTERNS[p][y % 12]` has bit `x`
/// set where mask `p` inverts (x, y); `COL_PATTERNS[p][x % 6]` has bit `y` set likewise.
const ROW_PATTERNS: [[u128; 12]; 8] = {
    let mut t = [[0u128; 12]; 8];
    let mut p = 0;
    while p < 8 {
        let mut r = 0;
        while r < 12 {
            let mut x = 0;
            while x < 128 {
                if mask_bit(p, x, r) {
                    t[p][r] |= 1 << x;
                }
                x += 1;
            }
            r += 1;
        }
        p += 1;
    }
    t
};

const COL_PATTERNS: [[u128; 6]; 8] = {
    let mut t = [[0u128; 6]; 8];
    let mut p = 0;
    while p < 8 {
        let mut c = 0;
        while c < 6 {
            let mut y = 0;
            while y < 128 {
                if mask_bit(p, c, y) {
                    t[p][c] |= 1 << y;
                }
                y += 1;
            }
            c += 1;
        }
        p += 1;
    }
    t
};

/// The 15-bit format information for level H and masks 0–7 (BCH(15,5) codewords XOR 0x5412,
/// ISO/IEC 18004 Annex C), drawn most significant bit first.
const FORMAT_H: [u16; 8] = [
    0x1689, 0x13be, 0x1ce7, 0x19d0, 0x0762, 0x0255, 0x0d0c, 0x083b,
];

/// Where the format bits go, most significant first: around the top-left finder, and split
/// between the top-right and bottom-left ones (negative coordinates count from the far edge).
const FORMAT_MAIN: [(i16, i16); 15] = [
    (0, 8),
    (1, 8),
    (2, 8),
    (3, 8),
    (4, 8),
    (5, 8),
    (7, 8),
    (8, 8),
    (8, 7),
    (8, 5),
    (8, 4),
    (8, 3),
    (8, 2),
    (8, 1),
    (8, 0),
];
const FORMAT_SIDE: [(i16, i16); 15] = [
    (8, -1),
    (8, -2),
    (8, -3),
    (8, -4),
    (8, -5),
    (8, -6),
    (8, -7),
    (-8, 8),
    (-7, 8),
    (-6, 8),
    (-5, 8),
    (-4, 8),
    (-3, 8),
    (-2, 8),
    (-1, 8),
];

/// A line of up to 64 or 128 modules as the bits of one word; bit `i` is module `i`.
trait Line:
    Copy
    + Eq
    + std::ops::BitAnd<Output = Self>
    + std::ops::BitOr<Output = Self>
    + std::ops::BitXor<Output = Self>
    + std::ops::Not<Output = Self>
    + std::ops::Shl<u32, Output = Self>
    + std::ops::Shr<u32, Output = Self>
{
    const ZERO: Self;
    /// The low `n` bits set (n < word size).
    fn low(n: usize) -> Self;
    fn ones(self) -> u32;
    fn from_u128(v: u128) -> Self;
    fn bit(i: usize) -> Self;
}

impl Line for u64 {
    const ZERO: Self = 0;
    fn low(n: usize) -> Self {
        if n >= 64 {
            u64::MAX
        } else {
            (1 << n) - 1
        }
    }
    fn ones(self) -> u32 {
        self.count_ones()
    }
    fn from_u128(v: u128) -> Self {
        v as u64
    }
    fn bit(i: usize) -> Self {
        1 << i
    }
}

impl Line for u128 {
    const ZERO: Self = 0;
    fn low(n: usize) -> Self {
        if n >= 128 {
            u128::MAX
        } else {
            (1 << n) - 1
        }
    }
    fn ones(self) -> u32 {
        self.count_ones()
    }
    fn from_u128(v: u128) -> Self {
        v
    }
    fn bit(i: usize) -> Self {
        1 << i
    }
}

/// The symbol before masking, as rows and as columns.
struct Planes<L> {
    /// Dark function modules (finders, timing, alignment, version info, the dark module).
    fixed: Vec<L>,
    /// Modules the mask applies to.
    maskable: Vec<L>,
    /// Dark data and error-correction modules before masking.
    data: Vec<L>,
}

impl<L: Line> Planes<L> {
    fn new(width: usize) -> Self {
        Planes {
            fixed: vec![L::ZERO; width],
            maskable: vec![L::ZERO; width],
            data: vec![L::ZERO; width],
        }
    }
}

/// Scores all eight masks over packed lines and keeps the lowest (the first on a tie).
fn choose<L: Line>(canvas: &Canvas, width: usize) -> (Matrix, u8) {
    let w = width as i16;
    let mut rows = Planes::<L>::new(width);
    let mut cols = Planes::<L>::new(width);
    for y in 0..width {
        for x in 0..width {
            let (fixed, maskable, data) = match canvas.get(x as i16, y as i16) {
                Module::Empty => (false, true, false),
                Module::Unmasked(c) => (false, true, c == Color::Dark),
                Module::Masked(c) => (c == Color::Dark, false, false),
            };
            if fixed {
                rows.fixed[y] = rows.fixed[y] | L::bit(x);
                cols.fixed[x] = cols.fixed[x] | L::bit(y);
            }
            if maskable {
                rows.maskable[y] = rows.maskable[y] | L::bit(x);
                cols.maskable[x] = cols.maskable[x] | L::bit(y);
            }
            if data {
                rows.data[y] = rows.data[y] | L::bit(x);
                cols.data[x] = cols.data[x] | L::bit(y);
            }
        }
    }
    let wrap = |v: i16| if v < 0 { (v + w) as usize } else { v as usize };
    let mut best: Option<(u32, u8, Vec<L>)> = None;
    let mut r = vec![L::ZERO; width];
    let mut c = vec![L::ZERO; width];
    for p in 0..8usize {
        for y in 0..width {
            let pattern = L::from_u128(ROW_PATTERNS[p][y % 12]);
            r[y] = rows.fixed[y] | ((rows.data[y] ^ pattern) & rows.maskable[y]);
        }
        for x in 0..width {
            let pattern = L::from_u128(COL_PATTERNS[p][x % 6]);
            c[x] = cols.fixed[x] | ((cols.data[x] ^ pattern) & cols.maskable[x]);
        }
        let format = FORMAT_H[p];
        for (i, (&a, &b)) in FORMAT_MAIN.iter().zip(FORMAT_SIDE.iter()).enumerate() {
            if format & (1 << (14 - i)) != 0 {
                for (x, y) in [a, b] {
                    let (x, y) = (wrap(x), wrap(y));
                    r[y] = r[y] | L::bit(x);
                    c[x] = c[x] | L::bit(y);
                }
            }
        }
        let score = penalty(&r, &c, width);
        if best.as_ref().is_none_or(|(s, _, _)| score < *s) {
            best = Some((score, p as u8, r.clone()));
        }
    }
    let (_, mask, lines) = best.expect("eight masks were scored");
    let mut dark = Vec::with_capacity(width * width);
    for line in &lines {
        for x in 0..width {
            dark.push(*line & L::bit(x) != L::ZERO);
        }
    }
    (Matrix { width, dark }, mask)
}

/// The total penalty of a masked symbol given as rows and columns. It exceeds the crate's
/// figure by the constant 720 (the nine finder-pattern matches per direction that the crate
/// subtracts), which changes no comparison.
fn penalty<L: Line>(rows: &[L], cols: &[L], width: usize) -> u32 {
    let within1 = L::low(width - 1);
    let within6 = L::low(width - 6);
    let mut score = 0;
    let mut dark = 0;
    for lines in [rows, cols] {
        for &line in lines {
            // N1: `same` marks i where modules i and i+1 agree; `five` marks the first module
            // of each window of five equal ones; a run of L ≥ 5 has L − 4 such windows and one
            // start, and scores (L − 4) + 2.
            let same = !(line ^ (line >> 1)) & within1;
            let five = same & (same >> 1) & (same >> 2) & (same >> 3);
            let starts = five & !(same << 1);
            score += five.ones() + 2 * starts.ones();
            // N3: dark-light-dark-dark-dark-light-dark starting at j, with no dark module in
            // the four before it or in the four after it.
            let finder = line
                & !(line >> 1)
                & (line >> 2)
                & (line >> 3)
                & (line >> 4)
                & !(line >> 5)
                & (line >> 6)
                & within6;
            if finder != L::ZERO {
                let before = (line << 1) | (line << 2) | (line << 3) | (line << 4);
                let after = (line >> 7) | (line >> 8) | (line >> 9) | (line >> 10);
                score += 40 * (finder & (!before | !after)).ones();
            }
        }
    }
    // N2: 2×2 blocks of one colour.
    for pair in rows.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let block = !(a ^ (a >> 1)) & !(b ^ (b >> 1)) & !(a ^ b) & within1;
        score += 3 * block.ones();
    }
    // N4: the share of dark modules, in half-percent steps away from 50 %.
    for &row in rows {
        dark += row.ones() as usize;
    }
    let ratio = dark * 200 / (width * width);
    score + ratio.abs_diff(100) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use qrcode::types::Version;
    use qrcode::QrCode;

    fn crate_matrix(data: &[u8]) -> Matrix {
        let code = QrCode::with_error_correction_level(data, EcLevel::H).unwrap();
        let width = code.width();
        let dark = code
            .to_colors()
            .into_iter()
            .map(|c| c == Color::Dark)
            .collect();
        Matrix { width, dark }
    }

    /// A deterministic generator so failures reproduce.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn the_chosen_mask_and_every_module_match_the_qrcode_crate() {
        let mut rng = XorShift(0x5eed_cafe_f00d_d00d);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut masks = [0usize; 8];
        let mut versions = std::collections::BTreeSet::new();
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        // Realistic scan URLs: every length of random a public URL may carry.
        for i in 0..1500 {
            let n = 16 + i % 40;
            let random: String = (0..n)
                .map(|_| alphabet[(rng.next() % 64) as usize] as char)
                .collect();
            inputs.push(format!("https://login.example.com/q/{random}").into_bytes());
        }
        // Arbitrary bytes, numeric and alphanumeric data of every length up to version ~27.
        for len in 1..=700usize {
            let step = if len < 200 { 1 } else { 7 };
            if len % step != 0 {
                continue;
            }
            inputs.push((0..len).map(|_| rng.next() as u8).collect());
            inputs.push((0..len).map(|_| b'0' + (rng.next() % 10) as u8).collect());
            inputs.push(
                (0..len)
                    .map(|_| b"ABC123 $%*+-./:"[(rng.next() % 15) as usize])
                    .collect(),
            );
        }
        for data in &inputs {
            let Ok((ours, mask)) = encode_with_mask(data) else {
                assert!(QrCode::with_error_correction_level(data, EcLevel::H).is_err());
                continue;
            };
            let theirs = crate_matrix(data);
            assert_eq!(
                ours,
                theirs,
                "modules differ for {:?}",
                String::from_utf8_lossy(data)
            );
            masks[mask as usize] += 1;
            versions.insert(ours.width());
        }
        // The inputs exercise every mask and both word sizes.
        assert!(masks.iter().all(|&n| n > 0), "masks chosen: {masks:?}");
        assert!(versions.iter().any(|&w| w <= 64) && versions.iter().any(|&w| w > 64));
    }

    #[test]
    fn the_format_bits_sit_where_the_crate_draws_them() {
        for v in [1, 2, 6, 7, 14, 27] {
            let version = Version::Normal(v);
            let w = version.width();
            for (p, pattern) in PATTERNS.iter().enumerate() {
                let mut c = Canvas::new(version, EcLevel::H);
                c.draw_all_functional_patterns();
                c.apply_mask(*pattern);
                for (i, (&a, &b)) in FORMAT_MAIN.iter().zip(FORMAT_SIDE.iter()).enumerate() {
                    let want = FORMAT_H[p] & (1 << (14 - i)) != 0;
                    for (x, y) in [a, b] {
                        let (x, y) = (x.rem_euclid(w), y.rem_euclid(w));
                        assert_eq!(c.get(x, y).is_dark(), want, "v{v} mask {p} bit {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_too_long_input_is_refused() {
        assert!(encode(&[b'x'; 4000]).is_err());
    }
}
