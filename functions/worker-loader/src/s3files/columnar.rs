//! Parquet with the parquet crate's own column writers: one row group, nested fields as standard
//! three-level Parquet LISTs of strings and of structs. Uncompressed and without dictionaries so that
//! the file's size follows its data (and no codec crate is compiled); the padding column has no
//! statistics, so padding adds its bytes once, not thrice.
//!
//! No Arrow: the file is written straight from the hotels, column by column, with each leaf's
//! definition and repetition levels; the Arrow writer this replaces linked ~1.4 MB of Arrow kernels
//! (casts, comparisons, selections) into the worker for the same bytes on disk (bench/RESULTS.md).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use parquet::basic::Compression;
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::record::{Field, Row};
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::ColumnPath;

use super::hotel::{Hotel, Rating, Review};

/// The hotel record as a Parquet schema; columns in the template's order. Every field is required;
/// the two lists may be empty.
const SCHEMA: &str = "
message hotel {
  required binary country (STRING);
  required binary address (STRING);
  required boolean free_parking;
  required binary city (STRING);
  required binary type (STRING);
  required binary url (STRING);
  required binary phone (STRING);
  required double price;
  required double avg_ratings;
  required boolean free_breakfast;
  required binary name (STRING);
  required binary email (STRING);
  required int64 mutated;
  required binary key (STRING);
  required int64 document_size;
  required group public_likes (LIST) {
    repeated group list {
      required binary element (STRING);
    }
  }
  required group reviews (LIST) {
    repeated group list {
      required group element {
        required binary date (STRING);
        required binary author (STRING);
        required group rating {
          required int64 value;
          required int64 cleanliness;
          required int64 overall;
        }
      }
    }
  }
  required binary padding (STRING);
}";

fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(None)
        .set_column_statistics_enabled(ColumnPath::from("padding"), EnabledStatistics::None)
        .build()
}

/// Definition and repetition levels of a list's leaves: an empty list is one slot at level 0, the
/// first element of a list starts a new row (repetition 0), the others repeat it (1).
struct Levels {
    def: Vec<i16>,
    rep: Vec<i16>,
}

impl Levels {
    fn of(lengths: impl Iterator<Item = usize>) -> Self {
        let (mut def, mut rep) = (Vec::new(), Vec::new());
        for n in lengths {
            if n == 0 {
                def.push(0);
                rep.push(0);
            }
            for i in 0..n {
                def.push(1);
                rep.push(i16::from(i > 0));
            }
        }
        Self { def, rep }
    }
}

/// One leaf column's values, in the schema's leaf order.
enum Leaf<'a> {
    Text(Vec<&'a str>),
    Flag(Vec<bool>),
    Real(Vec<f64>),
    Long(Vec<i64>),
}

fn leaves(hotels: &[Hotel]) -> Vec<(Leaf<'_>, Option<&'static str>)> {
    let text = |f: fn(&Hotel) -> &str| Leaf::Text(hotels.iter().map(f).collect());
    let flag = |f: fn(&Hotel) -> bool| Leaf::Flag(hotels.iter().map(f).collect());
    let real = |f: fn(&Hotel) -> f64| Leaf::Real(hotels.iter().map(f).collect());
    let long = |f: fn(&Hotel) -> i64| Leaf::Long(hotels.iter().map(f).collect());
    let reviews: Vec<&Review> = hotels.iter().flat_map(|h| &h.reviews).collect();
    let review_text = |f: fn(&Review) -> &str| Leaf::Text(reviews.iter().map(|r| f(r)).collect());
    let score = |f: fn(&Rating) -> i64| Leaf::Long(reviews.iter().map(|r| f(&r.rating)).collect());
    let (likes, review) = (Some("public_likes"), Some("reviews"));
    vec![
        (text(|h| &h.country), None),
        (text(|h| &h.address), None),
        (flag(|h| h.free_parking), None),
        (text(|h| &h.city), None),
        (text(|h| &h.kind), None),
        (text(|h| &h.url), None),
        (text(|h| &h.phone), None),
        (real(|h| h.price), None),
        (real(|h| h.avg_ratings), None),
        (flag(|h| h.free_breakfast), None),
        (text(|h| &h.name), None),
        (text(|h| &h.email), None),
        (long(|h| h.mutated), None),
        (text(|h| &h.key), None),
        (long(|h| h.document_size), None),
        (
            Leaf::Text(
                hotels
                    .iter()
                    .flat_map(|h| h.public_likes.iter().map(String::as_str))
                    .collect(),
            ),
            likes,
        ),
        (review_text(|r| &r.date), review),
        (review_text(|r| &r.author), review),
        (score(|r| r.value), review),
        (score(|r| r.cleanliness), review),
        (score(|r| r.overall), review),
        (text(|h| &h.padding), None),
    ]
}

pub(super) fn encode(hotels: &[Hotel]) -> anyhow::Result<Vec<u8>> {
    let schema = Arc::new(parse_message_type(SCHEMA)?);
    let mut writer = SerializedFileWriter::new(Vec::new(), schema, Arc::new(properties()))?;
    let like_levels = Levels::of(hotels.iter().map(|h| h.public_likes.len()));
    let review_levels = Levels::of(hotels.iter().map(|h| h.reviews.len()));
    let mut row_group = writer.next_row_group()?;
    for (leaf, list) in leaves(hotels) {
        let mut column = row_group
            .next_column()?
            .context("the schema has fewer leaf columns than the hotel")?;
        let levels = list.map(|l| match l {
            "public_likes" => &like_levels,
            _ => &review_levels,
        });
        let (def, rep) = (
            levels.map(|l| l.def.as_slice()),
            levels.map(|l| l.rep.as_slice()),
        );
        match (column.untyped(), leaf) {
            (ColumnWriter::ByteArrayColumnWriter(w), Leaf::Text(values)) => {
                let values: Vec<ByteArray> = values
                    .into_iter()
                    .map(|s| ByteArray::from(s.as_bytes().to_vec()))
                    .collect();
                w.write_batch(&values, def, rep)?
            }
            (ColumnWriter::BoolColumnWriter(w), Leaf::Flag(values)) => {
                w.write_batch(&values, def, rep)?
            }
            (ColumnWriter::DoubleColumnWriter(w), Leaf::Real(values)) => {
                w.write_batch(&values, def, rep)?
            }
            (ColumnWriter::Int64ColumnWriter(w), Leaf::Long(values)) => {
                w.write_batch(&values, def, rep)?
            }
            _ => bail!("a hotel field does not match its Parquet column's type"),
        };
        column.close()?;
    }
    if row_group.next_column()?.is_some() {
        bail!("the schema has more leaf columns than the hotel");
    }
    row_group.close()?;
    Ok(writer.into_inner()?)
}

/// What a hotel roughly adds to the file: PLAIN byte arrays cost a 4-byte length each, numbers 8 bytes,
/// and the list levels about a byte per value. Only a first guess; the fitting loop measures.
pub(super) fn estimated_len(h: &Hotel) -> usize {
    let strings = [
        &h.country, &h.address, &h.city, &h.kind, &h.url, &h.phone, &h.name, &h.email, &h.key,
        &h.padding,
    ];
    let scalars: usize = strings.iter().map(|s| s.len() + 4).sum::<usize>() + 4 * 8 + 1;
    let likes: usize = h.public_likes.iter().map(|s| s.len() + 5).sum();
    let reviews: usize = h
        .reviews
        .iter()
        .map(|r| r.date.len() + r.author.len() + 8 + 3 * 8 + 5)
        .sum();
    scalars + likes + reviews
}

/// Reads a file back with parquet's record reader, by column name.
pub fn decode(bytes: &[u8]) -> anyhow::Result<Vec<Hotel>> {
    let reader = SerializedFileReader::new(bytes::Bytes::copy_from_slice(bytes))?;
    reader.get_row_iter(None)?.map(|row| hotel(&row?)).collect()
}

/// A row's fields by name.
struct Named<'a>(HashMap<&'a str, &'a Field>);

impl<'a> Named<'a> {
    fn of(row: &'a Row) -> Self {
        Self(
            row.get_column_iter()
                .map(|(name, field)| (name.as_str(), field))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> anyhow::Result<&'a Field> {
        self.0
            .get(name)
            .copied()
            .with_context(|| format!("no column {name}"))
    }

    fn text(&self, name: &str) -> anyhow::Result<String> {
        match self.get(name)? {
            Field::Str(s) => Ok(s.clone()),
            other => bail!("column {name} is not a string: {other:?}"),
        }
    }

    fn flag(&self, name: &str) -> anyhow::Result<bool> {
        match self.get(name)? {
            Field::Bool(b) => Ok(*b),
            other => bail!("column {name} is not boolean: {other:?}"),
        }
    }

    fn real(&self, name: &str) -> anyhow::Result<f64> {
        match self.get(name)? {
            Field::Double(x) => Ok(*x),
            other => bail!("column {name} is not a double: {other:?}"),
        }
    }

    fn long(&self, name: &str) -> anyhow::Result<i64> {
        match self.get(name)? {
            Field::Long(x) => Ok(*x),
            other => bail!("column {name} is not int64: {other:?}"),
        }
    }

    fn group(&self, name: &str) -> anyhow::Result<&'a Row> {
        match self.get(name)? {
            Field::Group(row) => Ok(row),
            other => bail!("column {name} is not a group: {other:?}"),
        }
    }

    fn list(&self, name: &str) -> anyhow::Result<&'a [Field]> {
        match self.get(name)? {
            Field::ListInternal(list) => Ok(list.elements()),
            other => bail!("column {name} is not a list: {other:?}"),
        }
    }
}

fn hotel(row: &Row) -> anyhow::Result<Hotel> {
    let f = Named::of(row);
    let public_likes = f
        .list("public_likes")?
        .iter()
        .map(|like| match like {
            Field::Str(s) => Ok(s.clone()),
            other => bail!("public_likes item is not a string: {other:?}"),
        })
        .collect::<anyhow::Result<_>>()?;
    let reviews = f
        .list("reviews")?
        .iter()
        .map(|review| match review {
            Field::Group(review) => {
                let r = Named::of(review);
                let rating = Named::of(r.group("rating")?);
                Ok(Review {
                    date: r.text("date")?,
                    author: r.text("author")?,
                    rating: Rating {
                        value: rating.long("value")?,
                        cleanliness: rating.long("cleanliness")?,
                        overall: rating.long("overall")?,
                    },
                })
            }
            other => bail!("reviews item is not a group: {other:?}"),
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Hotel {
        country: f.text("country")?,
        address: f.text("address")?,
        free_parking: f.flag("free_parking")?,
        city: f.text("city")?,
        kind: f.text("type")?,
        url: f.text("url")?,
        phone: f.text("phone")?,
        price: f.real("price")?,
        avg_ratings: f.real("avg_ratings")?,
        free_breakfast: f.flag("free_breakfast")?,
        name: f.text("name")?,
        email: f.text("email")?,
        mutated: f.long("mutated")?,
        key: f.text("key")?,
        document_size: f.long("document_size")?,
        public_likes,
        reviews,
        padding: f.text("padding")?,
    })
}
