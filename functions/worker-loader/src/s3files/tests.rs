use std::collections::HashSet;

use super::*;

/// The loader id the test files' hotels belong to.
const ID: &str = "0190-s3-test";
const KIB: usize = 1024;
const SIZES: [usize; 4] = [KIB, 10 * KIB, 100 * KIB, 1024 * KIB];

/// The records a file from `first_seed` must hold, ignoring the fitted `padding`.
fn assert_generated(file: &EncodedFile, target: usize, first_seed: u64) {
    assert!(!file.hotels.is_empty(), "a file never holds 0 records");
    for (i, h) in file.hotels.iter().enumerate() {
        let mut expected = Hotel::generate(ID, first_seed + i as u64);
        expected.document_size = target as i64;
        expected.padding = h.padding.clone();
        assert_eq!(h, &expected, "record {i}");
    }
}

#[test]
fn formats_parse_from_lowercase_names_and_serde_and_reject_others() {
    for f in FileFormat::ALL {
        assert_eq!(f.ext().parse::<FileFormat>(), Ok(f));
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            format!("\"{}\"", f.ext())
        );
        assert_eq!(
            serde_json::from_str::<FileFormat>(&format!("\"{f}\"")).unwrap(),
            f
        );
    }
    assert_eq!(
        "xml".parse::<FileFormat>(),
        Err(UnknownFormat("xml".into()))
    );
    assert!("JSON".parse::<FileFormat>().is_err());
    assert!(serde_json::from_str::<FileFormat>("\"orc\"").is_err());
}

#[test]
fn cycle_gives_file_n_the_format_n_modulo_the_list() {
    use FileFormat::*;
    let formats = [Csv, Avro, Parquet];
    let got: Vec<_> = (0..7).map(|n| FileFormat::cycle(&formats, n)).collect();
    assert_eq!(got, [Csv, Avro, Parquet, Csv, Avro, Parquet, Csv]);
    assert_eq!(FileFormat::cycle(&[Tsv], u64::MAX), Tsv);
    assert_eq!(FileFormat::cycle(&[], 3), Json);
}

#[test]
fn every_format_reads_back_with_its_own_reader_as_the_generated_hotels() {
    for format in FileFormat::ALL {
        for (target, seed) in [(10 * KIB, 7), (100 * KIB, 1_000_000)] {
            let file = encode_file(format, target, ID, seed).unwrap();
            assert_generated(&file, target, seed);
            let read = decode(format, &file.bytes).unwrap();
            assert_eq!(read.len(), file.hotels.len(), "{format} {target}");
            assert!(read == file.hotels, "{format} {target}: records differ");
        }
    }
}

#[test]
fn json_csv_and_tsv_files_have_exactly_the_asked_size() {
    for format in [FileFormat::Json, FileFormat::Csv, FileFormat::Tsv] {
        for target in SIZES {
            let bytes = encode(format, target, ID, 99).unwrap();
            assert_eq!(bytes.len(), target, "{format} {target}");
        }
    }
}

#[test]
fn one_pass_json_csv_and_tsv_files_are_their_records_encoded_whole_at_any_size() {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for format in [FileFormat::Json, FileFormat::Csv, FileFormat::Tsv] {
        let codec = Codec::new(format, 5).unwrap();
        for _ in 0..40 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let target = 500 + (x % 200_000) as usize;
            let file = encode_file(format, target, ID, x % 1000).unwrap();
            assert_generated(&file, target, x % 1000);
            // The bytes written record by record are the file the codec writes from those records.
            assert!(
                codec.encode(&file.hotels).unwrap() == file.bytes,
                "{format} {target}"
            );
            let one = codec.encode(&file.hotels[..1]).unwrap().len();
            if one <= target {
                assert_eq!(file.bytes.len(), target, "{format} {target}");
            } else {
                assert_eq!(file.hotels.len(), 1, "{format} {target}");
            }
        }
    }
}

#[test]
fn avro_and_parquet_files_have_the_asked_size_unless_one_record_is_already_bigger() {
    for format in [FileFormat::Avro, FileFormat::Parquet] {
        let codec = Codec::new(format, 99).unwrap();
        for target in SIZES {
            let file = encode_file(format, target, ID, 99).unwrap();
            let mut first = file.hotels[0].clone();
            first.padding.clear();
            let smallest = codec.encode(&[first]).unwrap().len();
            if target < smallest {
                // Header, schema and footer leave no room: the file is the one-record minimum.
                assert_eq!(file.hotels.len(), 1, "{format} {target}");
                assert_eq!(file.bytes.len(), smallest, "{format} {target}");
            } else {
                assert_eq!(file.bytes.len(), target, "{format} {target}");
            }
        }
    }
}

#[test]
fn avro_and_parquet_cannot_fit_one_kib_but_json_csv_and_tsv_can() {
    // Pins the documented minimum sizes: if a dependency makes headers grow, the docs must change.
    for (format, fits) in [
        (FileFormat::Json, true),
        (FileFormat::Csv, true),
        (FileFormat::Tsv, true),
        (FileFormat::Avro, false),
        (FileFormat::Parquet, false),
    ] {
        assert_eq!(
            encode(format, KIB, ID, 99).unwrap().len() == KIB,
            fits,
            "{format}"
        );
    }
}

#[test]
fn parquet_files_have_one_row_group_and_avro_files_carry_the_hotel_schema() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let bytes = encode(FileFormat::Parquet, 100 * KIB, ID, 1).unwrap();
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
    assert_eq!(reader.metadata().num_row_groups(), 1);

    let bytes = encode(FileFormat::Avro, 10 * KIB, ID, 1).unwrap();
    let reader = apache_avro::Reader::new(&bytes[..]).unwrap();
    assert_eq!(
        reader.writer_schema(),
        &apache_avro::Schema::parse_str(avro::SCHEMA).unwrap()
    );
}

#[test]
fn tsv_separates_columns_with_tabs_and_csv_with_commas() {
    let tsv = encode(FileFormat::Tsv, 2 * KIB, ID, 5).unwrap();
    let csv = encode(FileFormat::Csv, 2 * KIB, ID, 5).unwrap();
    let header = |b: &[u8]| String::from_utf8(b.split(|c| *c == b'\n').next().unwrap().to_vec());
    assert!(
        header(&tsv)
            .unwrap()
            .starts_with("country\taddress\tfree_parking\t")
    );
    assert!(
        header(&csv)
            .unwrap()
            .starts_with("country,address,free_parking,")
    );
    // Each reader needs its own delimiter: a TSV read as CSV does not give the hotels back.
    assert!(decode(FileFormat::Csv, &tsv).is_err());
}

#[test]
fn a_target_smaller_than_one_record_still_holds_one_record() {
    for format in FileFormat::ALL {
        for target in [0, 10] {
            let file = encode_file(format, target, ID, 3).unwrap();
            assert_eq!(file.hotels.len(), 1, "{format} {target}");
            assert_eq!(decode(format, &file.bytes).unwrap(), file.hotels);
        }
    }
}

#[test]
fn the_same_request_gives_the_same_bytes_and_another_seed_other_records() {
    for format in FileFormat::ALL {
        let a = encode(format, 5 * KIB, ID, 11).unwrap();
        assert_eq!(a, encode(format, 5 * KIB, ID, 11).unwrap(), "{format}");
        let other = decode(format, &encode(format, 5 * KIB, ID, 12_000).unwrap()).unwrap();
        let keys: HashSet<_> = decode(format, &a)
            .unwrap()
            .into_iter()
            .map(|h| h.key)
            .collect();
        assert!(other.iter().all(|h| !keys.contains(&h.key)), "{format}");
    }
}

#[test]
fn avro_size_is_exact_even_where_the_padding_length_varint_grows() {
    // Avro writes a string's length as a zigzag varint: 1 byte up to 63, 2 bytes from 64. A file that
    // needs exactly 64 more bytes cannot get them from the last record's padding alone (63 gives +63,
    // 64 gives +65); the fitter must put a byte elsewhere.
    let codec = Codec::new(FileFormat::Avro, 5).unwrap();
    let mut hotels = encode_file(FileFormat::Avro, 20 * KIB, ID, 5)
        .unwrap()
        .hotels;
    for h in &mut hotels {
        h.padding.clear();
    }
    let unpadded = codec.encode(&hotels).unwrap().len();
    let target = unpadded + 64;
    let file = encode_file(FileFormat::Avro, target, ID, 5).unwrap();
    assert_eq!(
        file.hotels.len(),
        hotels.len(),
        "same count: 64 bytes hold no record"
    );
    assert_eq!(file.bytes.len(), target);
    assert_eq!(decode(FileFormat::Avro, &file.bytes).unwrap(), file.hotels);
}

#[test]
fn parquet_lists_round_trip_when_empty_or_full_and_are_standard_three_level_lists() {
    let mut hotels: Vec<Hotel> = (0..6).map(|i| Hotel::generate(ID, 40 + i)).collect();
    hotels[0].public_likes.clear();
    hotels[2].reviews.clear();
    hotels[3].public_likes.clear();
    hotels[3].reviews.clear();
    hotels[5].public_likes = vec![String::new(), "x".into()];
    let bytes = columnar::encode(&hotels).unwrap();
    assert_eq!(decode(FileFormat::Parquet, &bytes).unwrap(), hotels);

    use parquet::basic::ConvertedType;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
    let meta = reader.metadata().file_metadata();
    assert_eq!(meta.num_rows(), 6);
    let root = meta.schema_descr().root_schema();
    let field = |name: &str| {
        root.get_fields()
            .iter()
            .find(|f| f.name() == name)
            .unwrap()
            .clone()
    };
    for list in ["public_likes", "reviews"] {
        let f = field(list);
        assert_eq!(f.get_basic_info().converted_type(), ConvertedType::LIST);
        assert_eq!(f.get_fields()[0].name(), "list");
        assert_eq!(f.get_fields()[0].get_fields()[0].name(), "element");
    }
    // 22 leaves: 15 scalars, the likes, five review leaves, the padding.
    assert_eq!(meta.schema_descr().num_columns(), 22);
}
