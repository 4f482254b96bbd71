//! A streaming ZIP writer whose whole state is data ([`Entry`] list and the byte offset), so a build
//! can stop after any file, be saved, and go on in another invocation.
//!
//! Entries are stored (no compression: the files are moved, not shrunk), with UTF-8 names (flag bit
//! 11) and a data descriptor after each file's bytes (flag bit 3), whose CRC-32 is computed while the
//! bytes stream through. ZIP64 records are written where a size, an offset or the entry count does not
//! fit the classic fields (APPNOTE 6.3.x, sections 4.3.9, 4.4.x, 4.5.3).

use serde::{Deserialize, Serialize};

const LOCAL: u32 = 0x0403_4b50;
const DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;
const END64: u32 = 0x0606_4b50;
const LOCATOR64: u32 = 0x0706_4b50;
/// Data descriptor follows the data; names are UTF-8.
const FLAGS: u16 = 0x0008 | 0x0800;
const MAX32: u64 = 0xFFFF_FFFF;

/// One file written, as the central directory needs it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub crc: u32,
    pub size: u64,
    /// Offset of its local header.
    pub offset: u64,
    pub dos_time: u16,
    pub dos_date: u16,
}

impl Entry {
    fn zip64(&self) -> bool {
        self.size >= MAX32 || self.offset >= MAX32
    }
}

/// MS-DOS time and date of an RFC 3339 time (UTC), as ZIP headers keep them; 1980-01-01 if unparsable.
pub fn dos_time(rfc3339: &str) -> (u16, u16) {
    use chrono::{Datelike, Timelike};
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) if t.year() >= 1980 => {
            let t = t.with_timezone(&chrono::Utc);
            let time =
                ((t.hour() as u16) << 11) | ((t.minute() as u16) << 5) | (t.second() as u16 / 2);
            let date =
                (((t.year() - 1980) as u16) << 9) | ((t.month() as u16) << 5) | t.day() as u16;
            (time, date)
        }
        _ => (0, (1 << 5) | 1),
    }
}

fn version_needed(zip64: bool) -> u16 {
    if zip64 { 45 } else { 20 }
}

/// The local header of a file of `size` bytes (known ahead: the store lists it); the bytes follow.
pub fn local_header(name: &str, size: u64, dos_time: u16, dos_date: u16) -> Vec<u8> {
    let zip64 = size >= MAX32;
    let mut h = Vec::with_capacity(30 + name.len() + 20);
    h.extend_from_slice(&LOCAL.to_le_bytes());
    h.extend_from_slice(&version_needed(zip64).to_le_bytes());
    h.extend_from_slice(&FLAGS.to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes()); // stored
    h.extend_from_slice(&dos_time.to_le_bytes());
    h.extend_from_slice(&dos_date.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes()); // CRC: in the descriptor
    let field = if zip64 { MAX32 as u32 } else { 0 };
    h.extend_from_slice(&field.to_le_bytes());
    h.extend_from_slice(&field.to_le_bytes());
    h.extend_from_slice(&(name.len() as u16).to_le_bytes());
    h.extend_from_slice(&(if zip64 { 20u16 } else { 0 }).to_le_bytes());
    h.extend_from_slice(name.as_bytes());
    if zip64 {
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
    }
    h
}

/// The data descriptor after a file's bytes.
pub fn descriptor(crc: u32, size: u64) -> Vec<u8> {
    let mut d = Vec::with_capacity(24);
    d.extend_from_slice(&DESCRIPTOR.to_le_bytes());
    d.extend_from_slice(&crc.to_le_bytes());
    if size >= MAX32 {
        d.extend_from_slice(&size.to_le_bytes());
        d.extend_from_slice(&size.to_le_bytes());
    } else {
        d.extend_from_slice(&(size as u32).to_le_bytes());
        d.extend_from_slice(&(size as u32).to_le_bytes());
    }
    d
}

/// The central directory and end records, for an archive whose directory starts at `cd_offset`.
pub fn central_directory(entries: &[Entry], cd_offset: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let big_size = e.size >= MAX32;
        let big_offset = e.offset >= MAX32;
        let mut extra = Vec::new();
        if big_size || big_offset {
            let mut body = Vec::new();
            if big_size {
                body.extend_from_slice(&e.size.to_le_bytes());
                body.extend_from_slice(&e.size.to_le_bytes());
            }
            if big_offset {
                body.extend_from_slice(&e.offset.to_le_bytes());
            }
            extra.extend_from_slice(&1u16.to_le_bytes());
            extra.extend_from_slice(&(body.len() as u16).to_le_bytes());
            extra.extend_from_slice(&body);
        }
        let size32 = if big_size {
            MAX32 as u32
        } else {
            e.size as u32
        };
        let offset32 = if big_offset {
            MAX32 as u32
        } else {
            e.offset as u32
        };
        out.extend_from_slice(&CENTRAL.to_le_bytes());
        out.extend_from_slice(&((3u16 << 8) | 45).to_le_bytes()); // made by: Unix, 4.5
        out.extend_from_slice(&version_needed(e.zip64()).to_le_bytes());
        out.extend_from_slice(&FLAGS.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&e.dos_time.to_le_bytes());
        out.extend_from_slice(&e.dos_date.to_le_bytes());
        out.extend_from_slice(&e.crc.to_le_bytes());
        out.extend_from_slice(&size32.to_le_bytes());
        out.extend_from_slice(&size32.to_le_bytes());
        out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // comment
        out.extend_from_slice(&0u16.to_le_bytes()); // disk
        out.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        out.extend_from_slice(&(0o100644u32 << 16).to_le_bytes()); // a regular file, rw-r--r--
        out.extend_from_slice(&offset32.to_le_bytes());
        out.extend_from_slice(e.name.as_bytes());
        out.extend_from_slice(&extra);
    }
    let cd_size = out.len() as u64;
    let count = entries.len() as u64;
    let end64_offset = cd_offset + cd_size;
    let zip64 = count >= 0xFFFF || cd_size >= MAX32 || cd_offset >= MAX32;
    if zip64 {
        out.extend_from_slice(&END64.to_le_bytes());
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&((3u16 << 8) | 45).to_le_bytes());
        out.extend_from_slice(&45u16.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&cd_size.to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&LOCATOR64.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&end64_offset.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
    }
    let count16 = if zip64 { 0xFFFF } else { count as u16 };
    out.extend_from_slice(&END.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&count16.to_le_bytes());
    out.extend_from_slice(&count16.to_le_bytes());
    out.extend_from_slice(&(if zip64 { MAX32 as u32 } else { cd_size as u32 }).to_le_bytes());
    out.extend_from_slice(
        &(if zip64 {
            MAX32 as u32
        } else {
            cd_offset as u32
        })
        .to_le_bytes(),
    );
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Writes `files` as the engine does, in one go.
    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut entries = Vec::new();
        for (name, bytes) in files {
            let (t, d) = dos_time("2026-12-04T10:11:12Z");
            let offset = out.len() as u64;
            out.extend(local_header(name, bytes.len() as u64, t, d));
            out.extend_from_slice(bytes);
            let crc = crc32fast::hash(bytes);
            out.extend(descriptor(crc, bytes.len() as u64));
            entries.push(Entry {
                name: name.to_string(),
                crc,
                size: bytes.len() as u64,
                offset,
                dos_time: t,
                dos_date: d,
            });
        }
        let cd = out.len() as u64;
        out.extend(central_directory(&entries, cd));
        out
    }

    #[test]
    fn a_reader_gets_every_file_back_byte_for_byte() {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let files: Vec<(&str, &[u8])> =
            vec![("a.txt", b"hello"), ("empty", b""), ("données é.bin", &big)];
        let bytes = archive(&files);
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(z.len(), 3);
        for (name, want) in &files {
            let mut f = z.by_name(name).unwrap();
            let mut got = Vec::new();
            f.read_to_end(&mut got).unwrap();
            assert_eq!(&got, want, "{name}");
            let m = f.last_modified().unwrap();
            assert_eq!(
                (
                    m.year(),
                    m.month(),
                    m.day(),
                    m.hour(),
                    m.minute(),
                    m.second()
                ),
                (2026, 12, 4, 10, 11, 12)
            );
        }
    }

    #[test]
    fn an_empty_archive_is_a_valid_zip() {
        let bytes = archive(&[]);
        assert_eq!(bytes.len(), 22);
        assert_eq!(
            zip::ZipArchive::new(std::io::Cursor::new(bytes))
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn zip64_fields_appear_only_where_classic_ones_overflow() {
        let e = Entry {
            name: "huge".into(),
            crc: 1,
            size: 5 << 30,
            offset: 6 << 30,
            dos_time: 0,
            dos_date: 33,
        };
        let cd = central_directory(std::slice::from_ref(&e), 12 << 30);
        // The central header's extra field: tag 1, 24 bytes (sizes and offset).
        let extra_at = 46 + e.name.len();
        assert_eq!(&cd[extra_at..extra_at + 4], &[1, 0, 24, 0]);
        assert_eq!(
            u64::from_le_bytes(cd[extra_at + 4..extra_at + 12].try_into().unwrap()),
            5 << 30
        );
        assert_eq!(
            u64::from_le_bytes(cd[extra_at + 20..extra_at + 28].try_into().unwrap()),
            6 << 30
        );
        // A ZIP64 end record and locator precede the classic end record.
        let tail = &cd[cd.len() - 22 - 20 - 56..];
        assert_eq!(u32::from_le_bytes(tail[..4].try_into().unwrap()), END64);
        assert_eq!(descriptor(7, 5 << 30).len(), 24);
        assert_eq!(descriptor(7, 5).len(), 16);
        assert_eq!(local_header("huge", 5 << 30, 0, 33).len(), 30 + 4 + 20);
        assert_eq!(local_header("small", 5, 0, 33).len(), 30 + 5);
    }

    #[test]
    fn dos_times_round_to_two_seconds_and_clamp_before_1980() {
        assert_eq!(dos_time("1970-01-01T00:00:00Z"), (0, 33));
        assert_eq!(dos_time("nonsense"), (0, 33));
        let (t, d) = dos_time("2026-12-04T10:11:13+01:00");
        assert_eq!((t >> 11, (t >> 5) & 63, (t & 31) * 2), (9, 11, 12));
        assert_eq!((d >> 9, (d >> 5) & 15, d & 31), (46, 12, 4));
    }
}
