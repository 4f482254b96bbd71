//! CSV and TSV: a header row, then one row per hotel. The nested fields (`public_likes`, `reviews`) are
//! JSON-encoded in their own column, so every row has the same 18 columns and reads back losslessly.

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::hotel::{Hotel, Review};

/// The row shape: [`Hotel`] with its two nested fields as JSON text.
#[derive(Serialize, Deserialize)]
struct Row {
    country: String,
    address: String,
    free_parking: bool,
    city: String,
    #[serde(rename = "type")]
    kind: String,
    url: String,
    phone: String,
    price: f64,
    avg_ratings: f64,
    free_breakfast: bool,
    name: String,
    email: String,
    mutated: i64,
    key: String,
    document_size: i64,
    public_likes: String,
    reviews: String,
    padding: String,
}

impl Row {
    fn from_hotel(h: &Hotel) -> anyhow::Result<Row> {
        Ok(Row {
            country: h.country.clone(),
            address: h.address.clone(),
            free_parking: h.free_parking,
            city: h.city.clone(),
            kind: h.kind.clone(),
            url: h.url.clone(),
            phone: h.phone.clone(),
            price: h.price,
            avg_ratings: h.avg_ratings,
            free_breakfast: h.free_breakfast,
            name: h.name.clone(),
            email: h.email.clone(),
            mutated: h.mutated,
            key: h.key.clone(),
            document_size: h.document_size,
            public_likes: serde_json::to_string(&h.public_likes)?,
            reviews: serde_json::to_string(&h.reviews)?,
            padding: h.padding.clone(),
        })
    }

    fn into_hotel(self) -> anyhow::Result<Hotel> {
        let public_likes: Vec<String> =
            serde_json::from_str(&self.public_likes).context("public_likes column")?;
        let reviews: Vec<Review> = serde_json::from_str(&self.reviews).context("reviews column")?;
        Ok(Hotel {
            country: self.country,
            address: self.address,
            free_parking: self.free_parking,
            city: self.city,
            kind: self.kind,
            url: self.url,
            phone: self.phone,
            price: self.price,
            avg_ratings: self.avg_ratings,
            free_breakfast: self.free_breakfast,
            name: self.name,
            email: self.email,
            mutated: self.mutated,
            key: self.key,
            document_size: self.document_size,
            public_likes,
            reviews,
            padding: self.padding,
        })
    }
}

const HEADER: [&str; 18] = ferry_shared::loaders::hotel::FIELDS;

/// The one writer configuration of both [`encode`] and [`encode_row`].
fn writer<W: std::io::Write>(delimiter: u8, out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .from_writer(out)
}

/// The whole file: header plus rows. It is exactly the header followed by each row's [`encode_row`],
/// because the csv writer encodes each record independently of the others.
pub(super) fn encode(delimiter: u8, hotels: &[Hotel]) -> anyhow::Result<Vec<u8>> {
    let mut w = writer(delimiter, Vec::new());
    w.write_record(HEADER)?;
    for h in hotels {
        w.serialize(Row::from_hotel(h)?)?;
    }
    Ok(w.into_inner()?)
}

/// Appends one hotel's row, exactly as [`encode`] writes it.
pub(super) fn encode_row(delimiter: u8, hotel: &Hotel, out: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut w = writer(delimiter, out);
    w.serialize(Row::from_hotel(hotel)?)?;
    w.flush()?;
    Ok(())
}

/// Reads a file back with the csv crate's own reader, checking the header.
pub fn decode(delimiter: u8, bytes: &[u8]) -> anyhow::Result<Vec<Hotel>> {
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(bytes);
    let header = r.headers()?.clone();
    anyhow::ensure!(header.iter().eq(HEADER), "unexpected header {header:?}");
    r.deserialize::<Row>()
        .map(|row| row?.into_hotel())
        .collect()
}
