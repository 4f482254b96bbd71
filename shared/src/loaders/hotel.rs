//! Hotel documents, the original docloader's template, for every loader: the MongoDB, MySQL and DynamoDB
//! loaders (as a JSON map padded to exactly `document_size` bytes) and the S3 loader's files (the typed
//! [`Hotel`], which the file encoders pad to a file size). One generator: realistic fake values (the
//! `fake` crate), a function of (loader id, sequence) only, so every document is distinct and a re-run
//! is reproducible.

use fake::Fake;
use fake::RngExt;
use fake::faker::address::en::{BuildingNumber, CityName, CountryName, StreetName};
use fake::faker::internet::en::DomainSuffix;
use fake::faker::name::en::{FirstName, LastName, Name};
use fake::faker::phone_number::en::PhoneNumber;
use fake::rand::SeedableRng;
use fake::rand::rngs::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

const TYPES: [&str; 5] = ["Inn", "Hotel", "Suites", "Resort", "Lodge"];

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
    /// `YYYY-MM-DD`.
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

/// Values per field drawn once per process from the `fake` crate's English lists (with a fixed seed),
/// which each hotel then combines with its own random generator. Asking `fake` for every field of every
/// hotel cost more than the database write it fed (a MySQL fill spent a core on it); combinations of a
/// few hundred real values per field keep documents as varied and as realistic, and `name`, `url`,
/// `email` and `key` still embed the sequence number, so no two are alike.
struct Pools {
    cities: Vec<String>,
    last_names: Vec<String>,
    first_names: Vec<String>,
    names: Vec<String>,
    suffixes: Vec<String>,
    streets: Vec<String>,
    numbers: Vec<String>,
    countries: Vec<String>,
    phones: Vec<String>,
}

const POOL_SIZE: usize = 1024;

static POOLS: std::sync::LazyLock<Pools> = std::sync::LazyLock::new(|| {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x686f_7465_6c73);
    let r = &mut rng;
    let mut draw = |f: &dyn Fn(&mut Xoshiro256PlusPlus) -> String| -> Vec<String> {
        (0..POOL_SIZE).map(|_| f(r)).collect()
    };
    Pools {
        cities: draw(&|r| CityName().fake_with_rng(r)),
        last_names: draw(&|r| LastName().fake_with_rng(r)),
        first_names: draw(&|r| FirstName().fake_with_rng(r)),
        names: draw(&|r| Name().fake_with_rng(r)),
        suffixes: draw(&|r| DomainSuffix().fake_with_rng(r)),
        streets: draw(&|r| StreetName().fake_with_rng(r)),
        numbers: draw(&|r| BuildingNumber().fake_with_rng(r)),
        countries: draw(&|r| CountryName().fake_with_rng(r)),
        phones: draw(&|r| PhoneNumber().fake_with_rng(r)),
    }
});

fn pick<'a>(r: &mut Xoshiro256PlusPlus, values: &'a [String]) -> &'a str {
    &values[r.random_range(0..values.len())]
}

/// A seed from the loader id and the sequence number (FNV-1a, then SplitMix64 to spread the bits).
fn seed(loader_id: &str, seq: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in loader_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The short form of a loader id used inside keys (its last 12 characters).
pub fn short_id(loader_id: &str) -> &str {
    let n = loader_id.len();
    &loader_id[n.saturating_sub(12)..]
}

/// The document's `key`: unique per loader and sequence.
pub fn key(loader_id: &str, seq: u64) -> String {
    format!("{}-{seq:012}", short_id(loader_id))
}

impl Hotel {
    /// Hotel number `seq` of `loader_id`: the same pair always gives the same hotel; `key`, `name` and
    /// `email` embed `seq`, so two hotels of one loader never share them. `document_size` is 0 and
    /// `padding` empty.
    pub fn generate(loader_id: &str, seq: u64) -> Hotel {
        Hotel::generate_with(loader_id, seq, true)
    }

    /// [`Hotel::generate`] without `public_likes` and `reviews` (left empty; every other field is the
    /// same): what a MySQL row whose columns name neither needs, without a dozen allocations per row.
    pub fn generate_flat(loader_id: &str, seq: u64) -> Hotel {
        Hotel::generate_with(loader_id, seq, false)
    }

    fn generate_with(loader_id: &str, seq: u64, nested: bool) -> Hotel {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed(loader_id, seq));
        let r = &mut rng;
        let p = &*POOLS;
        let city = pick(r, &p.cities).to_string();
        let last = pick(r, &p.last_names);
        let kind = TYPES[r.random_range(0..TYPES.len())];
        let name = format!("{last} {city} {kind} #{seq}");
        let slug: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let suffix = pick(r, &p.suffixes);
        let first = pick(r, &p.first_names);
        // The nested fields take the same draws either way, so the fields after them are the same.
        let mut public_likes = Vec::new();
        for _ in 0..r.random_range(1..6) {
            let like = pick(r, &p.names);
            if nested {
                public_likes.push(like.to_string());
            }
        }
        let mut reviews = Vec::new();
        for _ in 0..r.random_range(1..4) {
            let day = r.random_range(1..29);
            let month = r.random_range(1..13);
            let year = r.random_range(2015..2026);
            let author = pick(r, &p.names);
            let rating = Rating {
                value: r.random_range(1..6),
                cleanliness: r.random_range(1..6),
                overall: r.random_range(1..6),
            };
            if nested {
                reviews.push(Review {
                    date: format!("{year:04}-{month:02}-{day:02}"),
                    author: author.to_string(),
                    rating,
                });
            }
        }
        let street = pick(r, &p.streets);
        let number = pick(r, &p.numbers);
        let country = pick(r, &p.countries).to_string();
        let phone = pick(r, &p.phones).to_string();
        Hotel {
            country,
            address: format!("{number} {street}"),
            free_parking: r.random_bool(0.5),
            city,
            kind: kind.to_string(),
            url: format!("https://www.{slug}.{suffix}"),
            phone,
            // Whole cents and tenths: such values print and parse back to the same f64 in every text
            // format, so read-back compares with `==`.
            price: r.random_range(3_000..=90_000) as f64 / 100.0,
            avg_ratings: r.random_range(10..=50) as f64 / 10.0,
            free_breakfast: r.random_bool(0.5),
            name,
            email: format!("{}.{seq}@{slug}.{suffix}", first.to_ascii_lowercase()),
            mutated: 0,
            key: key(loader_id, seq),
            document_size: 0,
            public_likes,
            reviews,
            padding: String::new(),
        }
    }

    /// Field `name` (the template's names) when it is text, borrowed: what a MySQL row takes most of
    /// its columns from, without a copy per value.
    pub fn text(&self, name: &str) -> Option<&str> {
        Some(match name {
            "country" => &self.country,
            "address" => &self.address,
            "city" => &self.city,
            "type" => &self.kind,
            "url" => &self.url,
            "phone" => &self.phone,
            "name" => &self.name,
            "email" => &self.email,
            "key" => &self.key,
            _ => return None,
        })
    }

    /// Field `name` of the document (the template's names) as JSON, without building the whole
    /// document: what a loader that stores a few fields (MySQL columns) needs per row.
    pub fn field(&self, name: &str) -> Option<Value> {
        let s = |v: &String| Value::String(v.clone());
        Some(match name {
            "country" => s(&self.country),
            "address" => s(&self.address),
            "free_parking" => Value::Bool(self.free_parking),
            "city" => s(&self.city),
            "type" => Value::String(self.kind.clone()),
            "url" => s(&self.url),
            "phone" => s(&self.phone),
            "price" => json!(self.price),
            "avg_ratings" => json!(self.avg_ratings),
            "free_breakfast" => Value::Bool(self.free_breakfast),
            "name" => s(&self.name),
            "email" => s(&self.email),
            "mutated" => json!(self.mutated),
            "key" => s(&self.key),
            "public_likes" => serde_json::to_value(&self.public_likes).ok()?,
            "reviews" => serde_json::to_value(&self.reviews).ok()?,
            _ => return None,
        })
    }

    /// Sets `padding` to `len` filler bytes.
    pub fn set_padding(&mut self, len: usize) {
        self.padding = (b'a'..=b'z').cycle().take(len).map(char::from).collect();
    }
}

/// The template's fields in the original's order (the header of the CSV and TSV files).
pub const FIELDS: [&str; 18] = [
    "country",
    "address",
    "free_parking",
    "city",
    "type",
    "url",
    "phone",
    "price",
    "avg_ratings",
    "free_breakfast",
    "name",
    "email",
    "mutated",
    "key",
    "document_size",
    "public_likes",
    "reviews",
    "padding",
];

/// The hotel document number `seq` of `loader_id` as a JSON map, without `document_size` and padding.
pub fn hotel(loader_id: &str, seq: u64) -> Map<String, Value> {
    let mut m = match serde_json::to_value(Hotel::generate(loader_id, seq)) {
        Ok(Value::Object(m)) => m,
        _ => unreachable!("a Hotel serializes to a JSON object"),
    };
    m.remove("document_size");
    m.remove("padding");
    m
}

/// Document `seq` of `loader_id` at `size` bytes: [`padded`] as a JSON map.
pub fn document(loader_id: &str, seq: u64, size: usize) -> Map<String, Value> {
    match serde_json::to_value(padded(loader_id, seq, size)) {
        Ok(Value::Object(m)) => m,
        _ => unreachable!("a Hotel serializes to a JSON object"),
    }
}

/// Hotel `seq` of `loader_id` with `document_size` and a `padding` that make its compact JSON exactly
/// `size` bytes (the smallest possible, with an empty padding, when `size` is below the unpadded
/// hotel).
pub fn padded(loader_id: &str, seq: u64, size: usize) -> Hotel {
    /// Counts what is written (the JSON length without building the text).
    struct Len(usize);
    impl std::io::Write for Len {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Hotel::generate(loader_id, seq);
    h.document_size = size as i64;
    h.padding.clear();
    let mut len = Len(0);
    if serde_json::to_writer(&mut len, &h).is_ok() && size > len.0 {
        h.set_padding(size - len.0);
    }
    h
}

/// A MongoDB document: `_id` (the sequence number) first, where the server keeps it, then the hotel.
#[derive(Debug, Serialize)]
pub struct MongoDocument<'a> {
    #[serde(rename = "_id")]
    pub id: i64,
    #[serde(flatten)]
    pub hotel: &'a Hotel,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_the_documents_own_value() {
        for seq in 0..50 {
            let h = Hotel::generate("0190-loader", seq);
            let doc = hotel("0190-loader", seq);
            for (name, value) in &doc {
                assert_eq!(h.field(name).as_ref(), Some(value), "{name} of {seq}");
            }
            assert_eq!(h.field("no_such_field"), None);
        }
    }

    #[test]
    fn documents_are_exactly_the_asked_size() {
        for size in [1024, 4096, 65_536] {
            for seq in 0..20 {
                let d = document("0190-loader", seq, size);
                assert_eq!(serde_json::to_vec(&d).unwrap().len(), size, "seq {seq}");
            }
        }
    }

    #[test]
    fn a_size_below_the_template_gives_the_unpadded_document() {
        let d = document("a", 3, 10);
        assert_eq!(d["padding"], "");
    }

    #[test]
    fn documents_are_reproducible_and_distinct() {
        assert_eq!(hotel("a", 7), hotel("a", 7));
        assert_ne!(hotel("a", 7)["name"], hotel("a", 8)["name"]);
        assert_ne!(hotel("a", 7)["key"], hotel("b", 7)["key"]);
        let names: std::collections::HashSet<String> = (0..2000)
            .map(|s| hotel("a", s)["email"].to_string())
            .collect();
        assert_eq!(names.len(), 2000);
    }

    #[test]
    fn documents_follow_the_hotel_template() {
        let d = document("a", 1, 1024);
        for f in FIELDS {
            assert!(d.contains_key(f), "{f}");
        }
        assert!(d["reviews"][0]["rating"]["overall"].is_u64());
    }

    #[test]
    fn the_same_loader_and_seq_give_the_same_hotel_and_distinct_seqs_distinct_keys() {
        assert_eq!(Hotel::generate("l", 42), Hotel::generate("l", 42));
        assert_ne!(Hotel::generate("l", 42), Hotel::generate("l", 43));
        let seqs = (0..5_000u64).chain([u64::MAX, u64::MAX - 1, 1 << 63]);
        let keys: std::collections::HashSet<String> =
            seqs.clone().map(|s| Hotel::generate("l", s).key).collect();
        assert_eq!(keys.len(), seqs.count());
    }

    #[test]
    fn generated_hotels_have_realistic_values() {
        let hotels: Vec<Hotel> = (0..200).map(|s| Hotel::generate("l", s)).collect();
        for h in &hotels {
            for (field, value) in [
                ("country", &h.country),
                ("address", &h.address),
                ("city", &h.city),
                ("type", &h.kind),
                ("phone", &h.phone),
                ("name", &h.name),
            ] {
                assert!(!value.trim().is_empty(), "{field} empty in {h:?}");
            }
            assert!(h.url.starts_with("https://www."), "{}", h.url);
            let (user, domain) = h.email.split_once('@').expect("an email");
            assert!(!user.is_empty() && domain.contains('.'), "{}", h.email);
            assert!((30.0..=900.0).contains(&h.price), "{}", h.price);
            assert!((1.0..=5.0).contains(&h.avg_ratings), "{}", h.avg_ratings);
            assert!((1..=5).contains(&h.public_likes.len()));
            assert!((1..=3).contains(&h.reviews.len()));
            for r in &h.reviews {
                assert_eq!(r.date.len(), "2020-01-01".len(), "{}", r.date);
                assert!(!r.author.is_empty());
                for score in [r.rating.value, r.rating.cleanliness, r.rating.overall] {
                    assert!((1..=5).contains(&score));
                }
            }
            assert!(h.padding.is_empty() && h.document_size == 0 && h.mutated == 0);
        }
        // Values come from word lists, not a constant: 200 hotels show variety.
        let cities: std::collections::HashSet<_> = hotels.iter().map(|h| &h.city).collect();
        let countries: std::collections::HashSet<_> = hotels.iter().map(|h| &h.country).collect();
        assert!(cities.len() > 50 && countries.len() > 50);
    }

    #[test]
    fn a_flat_hotel_is_the_full_one_without_its_nested_fields() {
        for seq in 0..500 {
            let mut full = Hotel::generate("loader-f", seq);
            assert!(!full.public_likes.is_empty() && !full.reviews.is_empty());
            full.public_likes.clear();
            full.reviews.clear();
            assert_eq!(Hotel::generate_flat("loader-f", seq), full, "seq {seq}");
        }
    }

    #[test]
    fn the_json_document_is_the_typed_hotel() {
        let d = document("a", 9, 2048);
        let mut h: Hotel = serde_json::from_value(Value::Object(d)).unwrap();
        assert_eq!(h.document_size, 2048);
        h.document_size = 0;
        h.padding.clear();
        assert_eq!(h, Hotel::generate("a", 9));
    }
}
