//! MongoDB target (the `mongodb` crate; FerretDB locally). Documents get `_id` = their sequence number,
//! so the oldest are deleted first and updates can address them without a query.

use super::{CONNECT_TIMEOUT, Creds, TargetError, hotel, percent_encoded};
use crate::domain::loader::Target;
use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{Bson, Document, RawDocumentBuf, doc};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};

/// Documents per insert_many during a fill on MongoDB, at most (see [`BATCH_BYTES`]).
pub const DOCS_PER_INSERT: u64 = 1000;
/// Documents per insert_many on FerretDB, at most: it takes fewer, larger insert messages faster
/// (40,000 hotels of 1 KiB sent by a bare wire client, one message in flight: 1,000 a message 5,650
/// docs/s, 4,000: 6,900, 10,000: 7,300, 40,000: 7,900; bench/RESULTS.md).
pub const DOCS_PER_INSERT_FERRETDB: u64 = 10_000;
/// Bytes of documents per insert_many, at most: with large documents a batch holds fewer of them, so
/// the batches generated ahead and in flight stay within tens of MiB whatever `document_size` is.
pub const BATCH_BYTES: usize = 8 << 20;
/// insert_many calls in flight during a fill: MongoDB takes them in parallel; FerretDB (its SQLite
/// backend writes one transaction at a time) is fastest with one, the next batch generated meanwhile
/// (bench/RESULTS.md: 1 in flight 5,956 docs/s, 2: 5,388, 4: 5,228).
pub const PARALLEL: usize = 4;
pub const PARALLEL_FERRETDB: usize = 1;

#[derive(Clone, Debug)]
pub struct Mongo {
    client: Client,
    db: Database,
    coll: Collection<Document>,
    /// insert_many calls in flight during a fill, by server (see [`PARALLEL`]).
    parallel: usize,
    /// Documents per insert_many at most, by server (see [`DOCS_PER_INSERT`]).
    max_docs: u64,
}

/// Document `seq` of `loader_id` at `size` bytes (its JSON without `_id`, as [`hotel::document`]) as
/// BSON: `_id` first, then the hotel template's fields in its order.
pub fn raw_document(loader_id: &str, seq: u64, size: usize) -> Result<RawDocumentBuf, TargetError> {
    let h = hotel::padded(loader_id, seq, size);
    mongodb::bson::serialize_to_raw_document_buf(&hotel::MongoDocument {
        id: seq as i64,
        hotel: &h,
    })
    .map_err(|e| TargetError::Failed(format!("encoding document {seq}: {e}")))
}

/// Documents of `size` bytes per insert_many on a server taking `max_docs` at most.
fn docs_per_insert(max_docs: u64, size: usize) -> u64 {
    super::fitting(BATCH_BYTES, size, 1, max_docs as usize) as u64
}

fn classify(e: mongodb::error::Error) -> TargetError {
    use mongodb::error::ErrorKind as K;
    match *e.kind {
        K::ServerSelection { .. } | K::Io(_) | K::DnsResolve { .. } => {
            TargetError::Unreachable(e.to_string())
        }
        K::Authentication { .. } | K::InvalidArgument { .. } => TargetError::Refused(e.to_string()),
        _ => TargetError::Failed(e.to_string()),
    }
}

/// The connection string: `atlas_url` when given (any mongodb:// or mongodb+srv:// string), else built
/// from host, port, username and password.
pub fn url(target: &Target, creds: &Creds) -> Result<String, TargetError> {
    if let Some(u) = &creds.atlas_url {
        return Ok(u.clone());
    }
    let host = target
        .host
        .as_deref()
        .ok_or_else(|| TargetError::Refused("ip is required".into()))?;
    let port = target.port.unwrap_or(27017);
    let auth = match (&target.username, &creds.password) {
        (Some(u), Some(p)) if !u.is_empty() => {
            format!("{}:{}@", percent_encoded(u), percent_encoded(p))
        }
        (Some(u), None) if !u.is_empty() => format!("{}@", percent_encoded(u)),
        _ => String::new(),
    };
    Ok(format!("mongodb://{auth}{host}:{port}/"))
}

/// The host part of a connection string (for the allow-list).
pub fn hosts_of(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let hosts = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| {
            if let Some(v6) = h.strip_prefix('[') {
                v6.split(']').next().unwrap_or("").to_string()
            } else {
                h.split(':').next().unwrap_or("").to_string()
            }
        })
        .collect()
}

impl Mongo {
    pub async fn connect(
        target: &Target,
        creds: &Creds,
        database: &str,
        collection: &str,
    ) -> Result<Mongo, TargetError> {
        // Connecting is where the credentials meet the driver: its errors are scrubbed of them.
        let classify = |e| classify(e).scrubbed(creds);
        let mut opts = ClientOptions::parse(url(target, creds)?)
            .await
            .map_err(classify)?;
        opts.connect_timeout = Some(CONNECT_TIMEOUT);
        opts.server_selection_timeout = Some(CONNECT_TIMEOUT);
        opts.app_name = Some("ferry-loader".into());
        let client = Client::with_options(opts).map_err(classify)?;
        let db = client.database(database);
        db.run_command(doc! {"ping": 1}).await.map_err(classify)?;
        let ferretdb = db
            .run_command(doc! {"buildInfo": 1})
            .await
            .is_ok_and(|b| b.contains_key("ferretdbVersion"));
        let coll = db.collection::<Document>(collection);
        Ok(Mongo {
            client,
            db,
            coll,
            parallel: if ferretdb {
                PARALLEL_FERRETDB
            } else {
                PARALLEL
            },
            max_docs: if ferretdb {
                DOCS_PER_INSERT_FERRETDB
            } else {
                DOCS_PER_INSERT
            },
        })
    }

    /// Documents of `size` bytes per insert_many: the server's cap, fewer when they would pass
    /// [`BATCH_BYTES`], at least one.
    pub fn docs_per_insert(&self, size: usize) -> u64 {
        docs_per_insert(self.max_docs, size)
    }

    /// Documents per fill step (a stop is seen between steps): one insert_many for each call in flight.
    pub fn fill_step(&self, size: usize) -> u64 {
        self.docs_per_insert(size) * self.parallel as u64
    }

    pub async fn count(&self) -> Result<u64, TargetError> {
        self.coll.count_documents(doc! {}).await.map_err(classify)
    }

    async fn edge_id(&self, dir: i32) -> Result<Option<u64>, TargetError> {
        let d = self
            .coll
            .find_one(doc! {"_id": {"$type": "number"}})
            .sort(doc! {"_id": dir})
            .projection(doc! {"_id": 1})
            .await
            .map_err(classify)?;
        Ok(d.and_then(|d| id_of(&d)))
    }

    /// The lowest and highest numeric `_id` present.
    pub async fn seq_bounds(&self) -> Result<Option<(u64, u64)>, TargetError> {
        Ok(match (self.edge_id(1).await?, self.edge_id(-1).await?) {
            (Some(lo), Some(hi)) => Some((lo, hi)),
            _ => None,
        })
    }

    /// Inserts documents `seqs` of `loader_id`: unordered insert_many of [`Mongo::docs_per_insert`],
    /// [`PARALLEL`] at a time (one on FerretDB), the next batches generated meanwhile. Returns how
    /// many were inserted.
    pub async fn insert(
        &self,
        loader_id: &str,
        seqs: std::ops::Range<u64>,
        size: usize,
    ) -> Result<u64, TargetError> {
        let loader = loader_id.to_string();
        let parallel = self.parallel;
        // Documents are made as BSON bytes on the blocking pool, ahead of the call in flight: the
        // driver then copies them into its message instead of encoding a document tree per call.
        let per_insert = self.docs_per_insert(size);
        let batches = super::generate_ahead(seqs, per_insert, parallel + 1, move |r| {
            r.map(|seq| raw_document(&loader, seq, size))
                .collect::<Result<Vec<RawDocumentBuf>, TargetError>>()
        });
        let raw = self.coll.clone_with_type::<RawDocumentBuf>();
        let raw = &raw;
        let results: Vec<Result<u64, TargetError>> = batches
            .map(|c| async move {
                let c = c?;
                let n = c.len() as u64;
                match raw.insert_many(c).ordered(false).await {
                    Ok(r) => Ok(r.inserted_ids.len() as u64),
                    Err(e) => match *e.kind {
                        mongodb::error::ErrorKind::InsertMany(ref f) => {
                            // Duplicate ids (a redone slice) are not new documents.
                            let failed = f.write_errors.as_ref().map_or(0, |w| w.len()) as u64;
                            Ok(n.saturating_sub(failed))
                        }
                        _ => Err(classify(e)),
                    },
                }
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
        results.into_iter().sum()
    }

    /// Bumps `mutated` and refreshes `price` on the documents with these ids; returns how many matched.
    pub async fn update(&self, seqs: &[u64], mutation: u64) -> Result<u64, TargetError> {
        let results: Vec<Result<u64, TargetError>> = futures::stream::iter(seqs.to_vec())
            .map(|seq| async move {
                self.coll
                    .update_one(
                        doc! {"_id": seq as i64},
                        doc! {"$set": {"mutated": mutation as i64, "price": ((seq * 7919 + mutation) % 100_000) as f64 / 100.0}},
                    )
                    .await
                    .map(|r| r.matched_count)
                    .map_err(classify)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().sum()
    }

    /// Deletes the `n` documents with the lowest `_id`; returns (deleted, highest numeric id deleted).
    pub async fn delete_oldest(&self, n: u64) -> Result<(u64, Option<u64>), TargetError> {
        let ids: Vec<Bson> = self
            .coll
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .projection(doc! {"_id": 1})
            .limit(n as i64)
            .await
            .map_err(classify)?
            .map_ok(|d| d.get("_id").cloned().unwrap_or(Bson::Null))
            .try_collect()
            .await
            .map_err(classify)?;
        let max = ids
            .iter()
            .filter_map(|b| match b {
                Bson::Int64(v) => Some(*v as u64),
                Bson::Int32(v) => Some(*v as u64),
                _ => None,
            })
            .max();
        if ids.is_empty() {
            return Ok((0, None));
        }
        let r = self
            .coll
            .delete_many(doc! {"_id": {"$in": ids}})
            .await
            .map_err(classify)?;
        Ok((r.deleted_count, max))
    }

    pub async fn drop_database(&self) -> Result<(), TargetError> {
        self.db.drop().await.map_err(classify)
    }

    pub async fn drop_collection(&self) -> Result<(), TargetError> {
        self.coll.drop().await.map_err(classify)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn id_of(d: &Document) -> Option<u64> {
    match d.get("_id")? {
        Bson::Int64(v) => Some(*v as u64),
        Bson::Int32(v) => Some(*v as u64),
        Bson::Double(v) => Some(*v as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_batches_hold_the_servers_cap_or_fewer_large_documents() {
        assert_eq!(docs_per_insert(DOCS_PER_INSERT, 1024), 1000);
        assert_eq!(docs_per_insert(DOCS_PER_INSERT_FERRETDB, 1024), 8192);
        assert_eq!(docs_per_insert(DOCS_PER_INSERT_FERRETDB, 100), 10_000);
        // document_size's upper bound (1,000,000 bytes): 8 documents, 8 MB, a batch.
        assert_eq!(docs_per_insert(DOCS_PER_INSERT, 1_000_000), 8);
        assert_eq!(docs_per_insert(DOCS_PER_INSERT, 20_000_000), 1);
        assert_eq!(docs_per_insert(DOCS_PER_INSERT, 0), 1000);
    }

    #[test]
    fn raw_documents_are_the_padded_hotel_with_its_id_first_in_template_order() {
        for seq in [0, 7, 123_456] {
            let raw = raw_document("0190-loader", seq, 1024).unwrap();
            let keys: Vec<&str> = raw.iter().map(|e| e.unwrap().0.as_str()).collect();
            let mut want = vec!["_id"];
            want.extend(hotel::FIELDS);
            assert_eq!(keys, want);
            let doc = Document::try_from(&raw).unwrap();
            assert_eq!(doc.get_i64("_id").unwrap(), seq as i64);
            assert_eq!(doc.get_i64("document_size").unwrap(), 1024);
            let back: hotel::Hotel = mongodb::bson::deserialize_from_document(doc).unwrap();
            assert_eq!(back, hotel::padded("0190-loader", seq, 1024));
        }
    }

    #[test]
    fn url_is_built_from_fields_or_taken_from_atlas_url() {
        let t = Target {
            host: Some("10.0.0.5".into()),
            port: Some(27018),
            username: Some("u@x".into()),
            ..Target::default()
        };
        let c = Creds {
            password: Some("p:w/".into()),
            ..Creds::default()
        };
        assert_eq!(
            url(&t, &c).unwrap(),
            "mongodb://u%40x:p%3Aw%2F@10.0.0.5:27018/"
        );
        let a = Creds {
            atlas_url: Some("mongodb+srv://u:p@c0.ab.mongodb.net/?retryWrites=true".into()),
            ..Creds::default()
        };
        assert!(url(&t, &a).unwrap().starts_with("mongodb+srv://"));
    }

    #[test]
    fn hosts_are_read_from_connection_strings() {
        assert_eq!(
            hosts_of("mongodb://u:p@h1:1,h2:2/db?x=1"),
            vec!["h1".to_string(), "h2".to_string()]
        );
        assert_eq!(
            hosts_of("mongodb+srv://c0.ab.mongodb.net/"),
            vec!["c0.ab.mongodb.net"]
        );
        assert_eq!(hosts_of("mongodb://[::1]:27017"), vec!["::1"]);
    }
}
