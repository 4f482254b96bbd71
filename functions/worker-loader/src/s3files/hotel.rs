//! The original loader's "hotel" document, generated deterministically from a seed with realistic values
//! from the `fake` crate.

use fake::Fake;
use fake::faker::address::en::{BuildingNumber, CityName, CountryName, StreetName};
use fake::faker::internet::en::{DomainSuffix, Username};
use fake::faker::name::en::{LastName, Name};
use fake::faker::phone_number::en::PhoneNumber;
use fake::rand::rngs::ChaCha8Rng;
use fake::rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// One hotel record, field for field the original's template (same names, same order; `type` is `kind`
/// in Rust). Integers are `i64` because Avro and Parquet have no unsigned 64-bit type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hotel {
    pub country: String,
    pub address: String,
    pub free_parking: bool,
    pub city: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    pub phone: String,
    pub price: f64,
    pub avg_ratings: f64,
    pub free_breakfast: bool,
    pub name: String,
    pub email: String,
    pub mutated: i64,
    pub key: String,
    /// The size the document was asked to have: 0 from [`Hotel::generate`]; in an S3 file, the file's
    /// target size (constant per file, so it never moves the size being fitted).
    pub document_size: i64,
    pub public_likes: Vec<String>,
    pub reviews: Vec<Review>,
    /// Filler that makes a record (or a file) exactly the asked size; ASCII letters only, so one
    /// character is one byte in every encoding and never needs quoting or escaping.
    pub padding: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// `YYYY-MM-DD`, as in the MongoDB/MySQL loaders' documents (`ferry_shared::loaders::hotel`).
    pub date: String,
    pub author: String,
    pub rating: Rating,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    pub value: i64,
    pub cleanliness: i64,
    pub overall: i64,
}

const KINDS: [&str; 8] = [
    "Hotel",
    "Inn",
    "Motel",
    "Resort",
    "Hostel",
    "Lodge",
    "Suites",
    "Guest House",
];

impl Hotel {
    /// The hotel for `seed`: the same seed always gives the same hotel (ChaCha8 is a portable,
    /// reproducible generator), and distinct seeds give distinct keys (the key embeds a bijection of
    /// the seed). `document_size` is 0 and `padding` empty.
    pub fn generate(seed: u64) -> Hotel {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let kind = KINDS[rng.random_range(0..KINDS.len())].to_string();
        let city: String = CityName().fake_with_rng(&mut rng);
        let family: String = LastName().fake_with_rng(&mut rng);
        let name = format!("{family} {kind} {city}");
        let suffix: String = DomainSuffix().fake_with_rng(&mut rng);
        let domain = format!("{}.{suffix}", slug(&format!("{family}{kind}")));
        let user: String = Username().fake_with_rng(&mut rng);
        let building: String = BuildingNumber().fake_with_rng(&mut rng);
        let street: String = StreetName().fake_with_rng(&mut rng);
        let likes = rng.random_range(1..=5);
        let public_likes = (0..likes)
            .map(|_| Name().fake_with_rng::<String, _>(&mut rng))
            .collect();
        let review_count = rng.random_range(1..=3);
        let reviews = (0..review_count).map(|_| review(&mut rng)).collect();
        Hotel {
            country: CountryName().fake_with_rng(&mut rng),
            address: format!("{building} {street}"),
            free_parking: rng.random_bool(0.5),
            city,
            kind,
            url: format!("https://www.{domain}/"),
            phone: PhoneNumber().fake_with_rng(&mut rng),
            // Whole cents and tenths: such values print and parse back to the same f64 in every text
            // format, so read-back compares with `==`.
            price: rng.random_range(3_000..=90_000) as f64 / 100.0,
            avg_ratings: rng.random_range(10..=50) as f64 / 10.0,
            free_breakfast: rng.random_bool(0.5),
            name,
            email: format!("{}@{domain}", user.to_lowercase()),
            mutated: 0,
            key: key(seed, &mut rng),
            document_size: 0,
            public_likes,
            reviews,
            padding: String::new(),
        }
    }

    /// Sets `padding` to `len` filler bytes.
    pub fn set_padding(&mut self, len: usize) {
        self.padding = filler(len);
    }
}

fn review(rng: &mut ChaCha8Rng) -> Review {
    let date = format!(
        "{:04}-{:02}-{:02}",
        rng.random_range(2015..=2025),
        rng.random_range(1..=12),
        rng.random_range(1..=28),
    );
    Review {
        date,
        author: Name().fake_with_rng(rng),
        rating: Rating {
            value: rng.random_range(1..=5),
            cleanliness: rng.random_range(1..=5),
            overall: rng.random_range(1..=5),
        },
    }
}

/// A UUID-shaped key whose last 64 bits are a bijection of the seed, so distinct seeds never collide.
fn key(seed: u64, rng: &mut ChaCha8Rng) -> String {
    let random: u64 = rng.random();
    let unique = mix(seed);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        random >> 32,
        (random >> 16) & 0xffff,
        random & 0xfff,
        unique >> 48,
        unique & 0xffff_ffff_ffff
    )
}

/// SplitMix64's finaliser: every step (xor-shift, odd multiply) is invertible, so this is a bijection.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn slug(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn filler(len: usize) -> String {
    (b'a'..=b'z').cycle().take(len).map(char::from).collect()
}
