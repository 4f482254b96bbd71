//! Hotel documents, the original docloader's template: realistic fake values (the `fake` crate), a
//! function of (loader id, sequence) only, so every document is distinct and a re-run is reproducible,
//! padded with a `padding` string to exactly `document_size` bytes of compact JSON.

use fake::Fake;
use fake::RngExt;
use fake::faker::address::en::{BuildingNumber, CityName, CountryName, StreetName};
use fake::faker::internet::en::DomainSuffix;
use fake::faker::name::en::{FirstName, LastName, Name};
use fake::faker::phone_number::en::PhoneNumber;
use fake::rand::SeedableRng;
use fake::rand::rngs::Xoshiro256PlusPlus;
use serde_json::{Map, Value, json};

const TYPES: [&str; 5] = ["Inn", "Hotel", "Suites", "Resort", "Lodge"];

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

/// The hotel document number `seq` of `loader_id`, without padding.
pub fn hotel(loader_id: &str, seq: u64) -> Map<String, Value> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed(loader_id, seq));
    let r = &mut rng;
    let city: String = CityName().fake_with_rng(r);
    let last: String = LastName().fake_with_rng(r);
    let kind = TYPES[r.random_range(0..TYPES.len())];
    let name = format!("{last} {city} {kind} #{seq}");
    let slug: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    let suffix: String = DomainSuffix().fake_with_rng(r);
    let first: String = FirstName().fake_with_rng(r);
    let likes: Vec<String> = (0..r.random_range(1..6))
        .map(|_| Name().fake_with_rng::<String, _>(r))
        .collect();
    let reviews: Vec<Value> = (0..r.random_range(1..4))
        .map(|_| {
            let day = r.random_range(1..29);
            let month = r.random_range(1..13);
            let year = r.random_range(2015..2026);
            json!({
                "date": format!("{year:04}-{month:02}-{day:02}"),
                "author": Name().fake_with_rng::<String, _>(r),
                "rating": {
                    "value": r.random_range(1..6),
                    "cleanliness": r.random_range(1..6),
                    "overall": r.random_range(1..6),
                },
            })
        })
        .collect();
    let street: String = StreetName().fake_with_rng(r);
    let number: String = BuildingNumber().fake_with_rng(r);
    let country: String = CountryName().fake_with_rng(r);
    let phone: String = PhoneNumber().fake_with_rng(r);
    let mut m = Map::new();
    m.insert("country".into(), json!(country));
    m.insert("address".into(), json!(format!("{number} {street}")));
    m.insert("free_parking".into(), json!(r.random_bool(0.5)));
    m.insert("city".into(), json!(city));
    m.insert("type".into(), json!(kind));
    m.insert("url".into(), json!(format!("https://www.{slug}.{suffix}")));
    m.insert("phone".into(), json!(phone));
    m.insert(
        "price".into(),
        json!(r.random_range(500..100_000) as f64 / 100.0),
    );
    m.insert(
        "avg_ratings".into(),
        json!(r.random_range(10..50) as f64 / 10.0),
    );
    m.insert("free_breakfast".into(), json!(r.random_bool(0.5)));
    m.insert("name".into(), json!(name));
    m.insert(
        "email".into(),
        json!(format!(
            "{}.{seq}@{slug}.{suffix}",
            first.to_ascii_lowercase()
        )),
    );
    m.insert("mutated".into(), json!(0));
    m.insert("key".into(), json!(key(loader_id, seq)));
    m.insert("public_likes".into(), json!(likes));
    m.insert("reviews".into(), json!(reviews));
    m
}

/// Adds `document_size` and a `padding` string so the compact JSON is exactly `size` bytes. A size
/// below the unpadded document gives the document with an empty padding (the smallest possible).
pub fn pad(mut doc: Map<String, Value>, size: usize) -> Map<String, Value> {
    doc.insert("document_size".into(), json!(size));
    doc.insert("padding".into(), json!(""));
    let len = serde_json::to_vec(&doc).map(|v| v.len()).unwrap_or(0);
    if size > len {
        doc.insert("padding".into(), json!("x".repeat(size - len)));
    }
    doc
}

/// Document `seq` of `loader_id` at `size` bytes.
pub fn document(loader_id: &str, seq: u64, size: usize) -> Map<String, Value> {
    pad(hotel(loader_id, seq), size)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for f in [
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
        ] {
            assert!(d.contains_key(f), "{f}");
        }
        assert!(d["reviews"][0]["rating"]["overall"].is_u64());
    }
}
