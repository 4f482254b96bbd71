//! Avro object container files: the hotel schema below, no compression (so the size follows the data and
//! no codec crate is compiled), every record in one block, and a sync marker derived from the first seed
//! so that the same request always gives the same bytes.

use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{Reader, Schema, Writer};

use super::hotel::Hotel;

/// The hotel record as an Avro schema (namespace `ferry.loader`).
pub const SCHEMA: &str = r#"{
  "type": "record", "name": "Hotel", "namespace": "ferry.loader",
  "fields": [
    {"name": "country", "type": "string"},
    {"name": "address", "type": "string"},
    {"name": "free_parking", "type": "boolean"},
    {"name": "city", "type": "string"},
    {"name": "type", "type": "string"},
    {"name": "url", "type": "string"},
    {"name": "phone", "type": "string"},
    {"name": "price", "type": "double"},
    {"name": "avg_ratings", "type": "double"},
    {"name": "free_breakfast", "type": "boolean"},
    {"name": "name", "type": "string"},
    {"name": "email", "type": "string"},
    {"name": "mutated", "type": "long"},
    {"name": "key", "type": "string"},
    {"name": "document_size", "type": "long"},
    {"name": "public_likes", "type": {"type": "array", "items": "string"}},
    {"name": "reviews", "type": {"type": "array", "items": {
      "type": "record", "name": "Review",
      "fields": [
        {"name": "date", "type": "string"},
        {"name": "author", "type": "string"},
        {"name": "rating", "type": {
          "type": "record", "name": "Rating",
          "fields": [
            {"name": "value", "type": "long"},
            {"name": "cleanliness", "type": "long"},
            {"name": "overall", "type": "long"}
          ]}}
      ]}}},
    {"name": "padding", "type": "string"}
  ]
}"#;

pub(super) struct Avro {
    schema: Schema,
    marker: [u8; 16],
}

impl Avro {
    pub(super) fn new(first_seed: u64) -> anyhow::Result<Avro> {
        let mut marker = [0u8; 16];
        marker[..8].copy_from_slice(&first_seed.to_le_bytes());
        marker[8..].copy_from_slice(b"ferry-s3");
        Ok(Avro {
            schema: Schema::parse_str(SCHEMA)?,
            marker,
        })
    }

    pub(super) fn encode(&self, hotels: &[Hotel]) -> anyhow::Result<Vec<u8>> {
        let mut writer = Writer::builder()
            .schema(&self.schema)
            .writer(Vec::new())
            .marker(self.marker)
            // One block for the whole file, so its size moves with the data alone. The writer allocates
            // block_size up front, hence a bound rather than usize::MAX.
            .block_size(hotels.iter().map(datum_bound).sum::<usize>() + 1)
            .build()?;
        for h in hotels {
            writer.append_ser(h)?;
        }
        Ok(writer.into_inner()?)
    }

    /// Bytes the hotel's datum takes inside the block (exact but for the block header's two varints).
    pub(super) fn datum_len(&self, hotel: &Hotel) -> anyhow::Result<usize> {
        let datum = GenericDatumWriter::builder(&self.schema).build()?;
        Ok(datum.write_ser_to_vec(hotel)?.len())
    }
}

/// An upper bound on a hotel's datum: every string, long and array block count costs at most its bytes
/// plus a 10-byte varint; doubles 8 bytes, booleans 1.
fn datum_bound(h: &Hotel) -> usize {
    let strings = [
        &h.country, &h.address, &h.city, &h.kind, &h.url, &h.phone, &h.name, &h.email, &h.key,
        &h.padding,
    ];
    let fixed: usize = strings.iter().map(|s| s.len() + 10).sum::<usize>() + 2 * 8 + 2 + 2 * 10;
    let likes: usize = h.public_likes.iter().map(|s| s.len() + 10).sum::<usize>() + 20;
    let reviews: usize = h
        .reviews
        .iter()
        .map(|r| r.date.len() + r.author.len() + 20 + 3 * 10)
        .sum::<usize>()
        + 20;
    fixed + likes + reviews
}

/// Reads a container file back with `apache_avro::Reader` (the writer's schema comes from the header).
pub fn decode(bytes: &[u8]) -> anyhow::Result<Vec<Hotel>> {
    Reader::new(bytes)?
        .into_deser_iter::<Hotel>()
        .map(|h| Ok(h?))
        .collect()
}
