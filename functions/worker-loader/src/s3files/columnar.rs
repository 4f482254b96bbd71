//! Parquet through arrow: one record batch, one row group, nested fields as real Parquet lists and
//! structs. Uncompressed and without dictionaries so that the file's size follows its data (and no codec
//! crate is compiled); the padding column has no statistics, so padding adds its bytes once, not thrice.

use std::sync::Arc;

use anyhow::Context;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, ListArray, RecordBatch, StringArray,
    StructArray,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::hotel::{Hotel, Rating, Review};

fn rating_fields() -> Fields {
    Fields::from(vec![
        Field::new("value", DataType::Int64, false),
        Field::new("cleanliness", DataType::Int64, false),
        Field::new("overall", DataType::Int64, false),
    ])
}

fn review_fields() -> Fields {
    Fields::from(vec![
        Field::new("date", DataType::Utf8, false),
        Field::new("author", DataType::Utf8, false),
        Field::new("rating", DataType::Struct(rating_fields()), false),
    ])
}

fn like_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Utf8, false))
}

fn review_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(review_fields()), false))
}

/// The hotel record as an Arrow schema; columns in the template's order.
pub fn schema() -> SchemaRef {
    let s = |name: &str| Field::new(name, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        s("country"),
        s("address"),
        Field::new("free_parking", DataType::Boolean, false),
        s("city"),
        s("type"),
        s("url"),
        s("phone"),
        Field::new("price", DataType::Float64, false),
        Field::new("avg_ratings", DataType::Float64, false),
        Field::new("free_breakfast", DataType::Boolean, false),
        s("name"),
        s("email"),
        Field::new("mutated", DataType::Int64, false),
        s("key"),
        Field::new("document_size", DataType::Int64, false),
        Field::new("public_likes", DataType::List(like_item()), false),
        Field::new("reviews", DataType::List(review_item()), false),
        s("padding"),
    ]))
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn batch(hotels: &[Hotel]) -> anyhow::Result<RecordBatch> {
    let text = |f: fn(&Hotel) -> &str| strings(hotels.iter().map(f));
    let flags = |f: fn(&Hotel) -> bool| -> ArrayRef {
        Arc::new(BooleanArray::from(hotels.iter().map(f).collect::<Vec<_>>()))
    };
    let reals = |f: fn(&Hotel) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(hotels.iter().map(f)))
    };
    let longs = |f: fn(&Hotel) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(hotels.iter().map(f)))
    };

    let likes = ListArray::try_new(
        like_item(),
        OffsetBuffer::from_lengths(hotels.iter().map(|h| h.public_likes.len())),
        strings(
            hotels
                .iter()
                .flat_map(|h| h.public_likes.iter().map(String::as_str)),
        ),
        None,
    )?;

    let all: Vec<&Review> = hotels.iter().flat_map(|h| &h.reviews).collect();
    let rating = |f: fn(&Rating) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            all.iter().map(|r| f(&r.rating)),
        ))
    };
    let ratings = StructArray::try_new(
        rating_fields(),
        vec![
            rating(|r| r.value),
            rating(|r| r.cleanliness),
            rating(|r| r.overall),
        ],
        None,
    )?;
    let reviews = StructArray::try_new(
        review_fields(),
        vec![
            strings(all.iter().map(|r| r.date.as_str())),
            strings(all.iter().map(|r| r.author.as_str())),
            Arc::new(ratings),
        ],
        None,
    )?;
    let reviews = ListArray::try_new(
        review_item(),
        OffsetBuffer::from_lengths(hotels.iter().map(|h| h.reviews.len())),
        Arc::new(reviews),
        None,
    )?;

    Ok(RecordBatch::try_new(
        schema(),
        vec![
            text(|h| &h.country),
            text(|h| &h.address),
            flags(|h| h.free_parking),
            text(|h| &h.city),
            text(|h| &h.kind),
            text(|h| &h.url),
            text(|h| &h.phone),
            reals(|h| h.price),
            reals(|h| h.avg_ratings),
            flags(|h| h.free_breakfast),
            text(|h| &h.name),
            text(|h| &h.email),
            longs(|h| h.mutated),
            text(|h| &h.key),
            longs(|h| h.document_size),
            Arc::new(likes),
            Arc::new(reviews),
            text(|h| &h.padding),
        ],
    )?)
}

fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(None)
        .set_column_statistics_enabled(ColumnPath::from("padding"), EnabledStatistics::None)
        .build()
}

pub(super) fn encode(hotels: &[Hotel]) -> anyhow::Result<Vec<u8>> {
    let mut writer = ArrowWriter::try_new(Vec::new(), schema(), Some(properties()))?;
    writer.write(&batch(hotels)?)?;
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

/// Reads a file back with parquet's arrow reader.
pub fn decode(bytes: &[u8]) -> anyhow::Result<Vec<Hotel>> {
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))?.build()?;
    let mut hotels = Vec::new();
    for batch in reader {
        hotels.extend(from_batch(&batch?)?);
    }
    Ok(hotels)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> anyhow::Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .with_context(|| format!("no column {name}"))
}

fn text_column<'a>(batch: &'a RecordBatch, name: &str) -> anyhow::Result<&'a StringArray> {
    column(batch, name)?
        .as_string_opt::<i32>()
        .with_context(|| format!("column {name} is not utf8"))
}

fn from_batch(batch: &RecordBatch) -> anyhow::Result<Vec<Hotel>> {
    let text = |name| text_column(batch, name);
    let flag = |name| {
        column(batch, name)?
            .as_boolean_opt()
            .with_context(|| format!("column {name} is not boolean"))
    };
    let real = |name| {
        column(batch, name)?
            .as_primitive_opt::<Float64Type>()
            .with_context(|| format!("column {name} is not float64"))
    };
    let long = |name| {
        column(batch, name)?
            .as_primitive_opt::<Int64Type>()
            .with_context(|| format!("column {name} is not int64"))
    };
    let list = |name| {
        column(batch, name)?
            .as_list_opt::<i32>()
            .with_context(|| format!("column {name} is not a list"))
    };
    let (country, address, city, kind, url, phone) = (
        text("country")?,
        text("address")?,
        text("city")?,
        text("type")?,
        text("url")?,
        text("phone")?,
    );
    let (name, email, key, padding) = (
        text("name")?,
        text("email")?,
        text("key")?,
        text("padding")?,
    );
    let (free_parking, free_breakfast) = (flag("free_parking")?, flag("free_breakfast")?);
    let (price, avg_ratings) = (real("price")?, real("avg_ratings")?);
    let (mutated, document_size) = (long("mutated")?, long("document_size")?);
    let (likes, reviews) = (list("public_likes")?, list("reviews")?);

    (0..batch.num_rows())
        .map(|i| {
            let row_likes = likes.value(i);
            let row_likes = row_likes
                .as_string_opt::<i32>()
                .context("public_likes items are not utf8")?;
            Ok(Hotel {
                country: country.value(i).to_string(),
                address: address.value(i).to_string(),
                free_parking: free_parking.value(i),
                city: city.value(i).to_string(),
                kind: kind.value(i).to_string(),
                url: url.value(i).to_string(),
                phone: phone.value(i).to_string(),
                price: price.value(i),
                avg_ratings: avg_ratings.value(i),
                free_breakfast: free_breakfast.value(i),
                name: name.value(i).to_string(),
                email: email.value(i).to_string(),
                mutated: mutated.value(i),
                key: key.value(i).to_string(),
                document_size: document_size.value(i),
                public_likes: row_likes.iter().flatten().map(str::to_string).collect(),
                reviews: reviews_of(reviews.value(i).as_ref())?,
                padding: padding.value(i).to_string(),
            })
        })
        .collect()
}

fn reviews_of(array: &dyn Array) -> anyhow::Result<Vec<Review>> {
    let reviews = array
        .as_struct_opt()
        .context("reviews items are not structs")?;
    let text = |name: &str| {
        reviews
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .with_context(|| format!("review {name} is not utf8"))
    };
    let (date, author) = (text("date")?, text("author")?);
    let rating = reviews
        .column_by_name("rating")
        .and_then(|c| c.as_struct_opt())
        .context("review rating is not a struct")?;
    let score = |name: &str| {
        rating
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .with_context(|| format!("rating {name} is not int64"))
    };
    let (value, cleanliness, overall) = (score("value")?, score("cleanliness")?, score("overall")?);
    Ok((0..reviews.len())
        .map(|i| Review {
            date: date.value(i).to_string(),
            author: author.value(i).to_string(),
            rating: Rating {
                value: value.value(i),
                cleanliness: cleanliness.value(i),
                overall: overall.value(i),
            },
        })
        .collect())
}
