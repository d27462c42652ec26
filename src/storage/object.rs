//! Objects in S3 (and S3-compatible servers), Google Cloud Storage and Azure Blob Storage,
//! through the `object_store` crate. Credentials, region and endpoint come from the usual
//! environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`); an endpoint given to blurgate
//! (`--endpoint`) wins. Calls are blocking for the worker pool, run on one small runtime.
//!
//! A reader never sees part of an object: a single PUT and a completed multipart upload are
//! the only ways an object appears under its key, and an upload that fails is aborted.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path as Key;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion, WriteMultipart,
};

use crate::error::{Error, Result};

/// Uploads larger than this go in parts, read from their file piece by piece.
const PART_BYTES: usize = 16 << 20;

/// How object stores are reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StoreOptions {
    /// Endpoint of an S3-compatible server or an Azure emulator (e.g. `http://127.0.0.1:8014`);
    /// `None`: from the environment, else the provider's own.
    pub endpoint: Option<String>,
}

impl StoreOptions {
    pub fn with_endpoint(self, endpoint: Option<String>) -> Self {
        StoreOptions { endpoint }
    }
}

/// One bucket (or container) and its client.
struct Bucket {
    /// `s3://bucket`, the prefix of every location in it.
    url: String,
    store: Arc<dyn ObjectStore>,
}

/// An object, or a prefix standing for a folder, in a bucket.
#[derive(Clone)]
pub struct ObjectLocation {
    bucket: Arc<Bucket>,
    /// Path in the bucket, `/`-separated, without a leading or trailing `/`; empty for the
    /// bucket itself.
    key: String,
}

impl fmt::Display for ObjectLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key.is_empty() {
            true => write!(f, "{}", self.bucket.url),
            false => write!(f, "{}/{}", self.bucket.url, self.key),
        }
    }
}

impl fmt::Debug for ObjectLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl PartialEq for ObjectLocation {
    fn eq(&self, other: &Self) -> bool {
        self.bucket.url == other.bucket.url && self.key == other.key
    }
}
impl Eq for ObjectLocation {}
impl Hash for ObjectLocation {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (&self.bucket.url, &self.key).hash(state)
    }
}
impl PartialOrd for ObjectLocation {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ObjectLocation {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.bucket.url, &self.key).cmp(&(&other.bucket.url, &other.key))
    }
}

/// What a listing says about an object without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub size: u64,
    pub e_tag: Option<String>,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("blurgate-store")
            .enable_all()
            .build()
            .expect("the object-store runtime starts")
    })
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

fn io_error(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            io::Error::new(io::ErrorKind::AlreadyExists, e)
        }
        other => io::Error::other(other),
    }
}

/// The schemes blurgate reads as object stores.
pub const SCHEMES: [&str; 3] = ["s3", "gs", "az"];

/// `s3://bucket/key`, `gs://…` or `az://container/…` as a location; `None` for anything
/// without one of those schemes (a local path).
pub fn parse(text: &str, options: &StoreOptions) -> Result<Option<ObjectLocation>> {
    let Some((scheme, rest)) = text.split_once("://") else { return Ok(None) };
    if !SCHEMES.contains(&scheme) {
        return Err(Error::UnknownScheme { location: text.into() });
    }
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::UnknownScheme { location: text.into() });
    }
    let bucket = bucket_for(scheme, bucket, options)?;
    Ok(Some(ObjectLocation { bucket, key: normalise(key) }))
}

fn normalise(key: &str) -> String {
    key.split('/').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("/")
}

/// One client per bucket and endpoint, shared by every location in it.
fn bucket_for(scheme: &str, name: &str, options: &StoreOptions) -> Result<Arc<Bucket>> {
    type Clients = HashMap<(String, StoreOptions), Arc<Bucket>>;
    static BUCKETS: OnceLock<Mutex<Clients>> = OnceLock::new();
    let url = format!("{scheme}://{name}");
    let mut buckets = BUCKETS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if let Some(b) = buckets.get(&(url.clone(), options.clone())) {
        return Ok(b.clone());
    }
    let endpoint = options.endpoint.as_deref();
    let http = endpoint.is_some_and(|e| e.starts_with("http://"));
    let store: object_store::Result<Arc<dyn ObjectStore>> = match scheme {
        "s3" => {
            let mut b = AmazonS3Builder::from_env().with_bucket_name(name);
            if let Some(e) = endpoint {
                b = b.with_endpoint(e).with_allow_http(http);
            }
            b.build().map(|s| Arc::new(s) as _)
        }
        "gs" => GoogleCloudStorageBuilder::from_env().with_bucket_name(name).build().map(|s| Arc::new(s) as _),
        _ => {
            let mut b = MicrosoftAzureBuilder::from_env().with_container_name(name);
            if let Some(e) = endpoint {
                b = b.with_endpoint(e.to_string()).with_allow_http(http);
            }
            b.build().map(|s| Arc::new(s) as _)
        }
    };
    let store = store.map_err(|e| Error::io(&url, io_error(e)))?;
    let bucket = Arc::new(Bucket { url: url.clone(), store });
    buckets.insert((url, options.clone()), bucket.clone());
    Ok(bucket)
}

impl ObjectLocation {
    fn key(&self) -> Key {
        Key::from(self.key.as_str())
    }

    pub fn join(&self, rel: &Path) -> ObjectLocation {
        let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        let key = if self.key.is_empty() { rel.join("/") } else { format!("{}/{}", self.key, rel.join("/")) };
        ObjectLocation { bucket: self.bucket.clone(), key: normalise(&key) }
    }

    pub fn parent(&self) -> ObjectLocation {
        let key = self.key.rsplit_once('/').map_or("", |(p, _)| p).to_string();
        ObjectLocation { bucket: self.bucket.clone(), key }
    }

    pub fn file_name(&self) -> Option<&str> {
        self.key.rsplit('/').next().filter(|n| !n.is_empty())
    }

    /// The path of `self` below `folder`, if it is below it.
    pub fn rel_to(&self, folder: &ObjectLocation) -> Option<PathBuf> {
        if self.bucket.url != folder.bucket.url {
            return None;
        }
        if folder.key.is_empty() {
            return Some(PathBuf::from(&self.key));
        }
        let rest = self.key.strip_prefix(&folder.key)?;
        match rest.strip_prefix('/') {
            Some(rel) => Some(PathBuf::from(rel)),
            None if rest.is_empty() => Some(PathBuf::new()),
            None => None,
        }
    }

    /// An object under this exact key is a file; a prefix with objects below it (or the
    /// bucket) is a folder.
    pub fn is_folder(&self) -> io::Result<bool> {
        if self.key.is_empty() {
            return Ok(true);
        }
        // The listing first: some servers (s3s-fs) fail a HEAD on a prefix.
        match block_on(self.bucket.store.list(Some(&self.key())).next()) {
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(io_error(e)),
            None => match block_on(self.bucket.store.head(&self.key())) {
                Ok(_) => Ok(false),
                Err(object_store::Error::NotFound { .. }) => {
                    Err(io::Error::new(io::ErrorKind::NotFound, "no such object, nor objects below it"))
                }
                Err(e) => Err(io_error(e)),
            },
        }
    }

    pub fn read(&self) -> io::Result<Vec<u8>> {
        block_on(async {
            let got = self.bucket.store.get(&self.key()).await.map_err(io_error)?;
            let mut bytes = Vec::with_capacity(got.meta.size as usize);
            let mut stream = got.into_stream();
            while let Some(chunk) = stream.next().await {
                bytes.extend_from_slice(&chunk.map_err(io_error)?);
            }
            Ok(bytes)
        })
    }

    pub fn read_head(&self, n: usize) -> io::Result<Vec<u8>> {
        let options = GetOptions { range: Some(GetRange::Bounded(0..n as u64)), ..Default::default() };
        match block_on(async { self.bucket.store.get_opts(&self.key(), options).await?.bytes().await }) {
            Ok(b) => Ok(b.to_vec()),
            // A range from 0 fails only on an empty object.
            Err(e) => match block_on(self.bucket.store.head(&self.key())) {
                Ok(meta) if meta.size == 0 => Ok(Vec::new()),
                _ => Err(io_error(e)),
            },
        }
    }

    /// The sha256 of the content, streamed.
    pub fn sha256(&self) -> io::Result<String> {
        use sha2::Digest;
        block_on(async {
            let mut stream = self.bucket.store.get(&self.key()).await.map_err(io_error)?.into_stream();
            let mut hasher = sha2::Sha256::new();
            while let Some(chunk) = stream.next().await {
                hasher.update(chunk.map_err(io_error)?);
            }
            Ok(crate::digest::hex(&hasher.finalize()))
        })
    }

    pub fn version(&self) -> io::Result<Version> {
        let meta = block_on(self.bucket.store.head(&self.key())).map_err(io_error)?;
        Ok(Version { size: meta.size, e_tag: meta.e_tag })
    }

    pub fn delete(&self) -> io::Result<()> {
        match block_on(self.bucket.store.delete(&self.key())) {
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            other => other.map_err(io_error),
        }
    }

    /// One PUT: the object appears whole or not at all.
    pub fn write(&self, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() > PART_BYTES {
            return self.upload(&mut io::Cursor::new(bytes));
        }
        block_on(self.bucket.store.put(&self.key(), PutPayload::from(bytes.to_vec()))).map(drop).map_err(io_error)
    }

    /// Replaces the object only if it is still `expected` (a conditional PUT on its ETag), so
    /// that a file changed after it was checked is not overwritten with a copy of the old one.
    /// A store without conditional PUT (Garage; `AWS_CONDITIONAL_PUT=disabled`) gets a plain
    /// PUT, with a warning.
    pub fn replace(&self, bytes: &[u8], expected: &Version) -> io::Result<()> {
        let Some(e_tag) = expected.e_tag.clone() else { return self.write(bytes) };
        let mode = PutMode::Update(UpdateVersion { e_tag: Some(e_tag), version: None });
        let options = PutOptions { mode, ..Default::default() };
        match block_on(self.bucket.store.put_opts(&self.key(), PutPayload::from(bytes.to_vec()), options)) {
            Ok(_) => Ok(()),
            Err(object_store::Error::Precondition { .. }) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the object changed after it was checked: not replaced (check it again)",
            )),
            Err(object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. }) => {
                tracing::warn!("{self}: the store has no conditional PUT; replaced unconditionally");
                self.write(bytes)
            }
            Err(e) => Err(io_error(e)),
        }
    }

    /// Uploads a local file in parts of [`PART_BYTES`], never holding it whole; the object
    /// appears only when the upload completes, and a failed upload is aborted.
    pub fn upload_file(&self, file: &Path) -> io::Result<()> {
        self.upload(&mut std::fs::File::open(file)?)
    }

    fn upload(&self, source: &mut dyn Read) -> io::Result<()> {
        block_on(async {
            let upload = self.bucket.store.put_multipart(&self.key()).await.map_err(io_error)?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let mut buf = vec![0; 1 << 20];
            loop {
                let n = match source.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        let _ = writer.abort().await;
                        return Err(e);
                    }
                };
                if let Err(e) = writer.wait_for_capacity(4).await {
                    return Err(io_error(e));
                }
                writer.write(&buf[..n]);
            }
            writer.finish().await.map(drop).map_err(io_error)
        })
    }

    /// Downloads the object into `file`, piece by piece.
    pub fn download(&self, file: &mut std::fs::File) -> io::Result<()> {
        use std::io::Write;
        block_on(async {
            let mut stream = self.bucket.store.get(&self.key()).await.map_err(io_error)?.into_stream();
            while let Some(chunk) = stream.next().await {
                file.write_all(&chunk.map_err(io_error)?)?;
            }
            file.flush()
        })
    }

    /// Every object below this prefix with its path below it and version, sorted by key;
    /// the store pages the listing.
    pub fn list(&self) -> io::Result<Vec<(ObjectLocation, PathBuf, Version)>> {
        let prefix = (!self.key.is_empty()).then(|| self.key());
        let metas: Vec<object_store::ObjectMeta> =
            block_on(self.bucket.store.list(prefix.as_ref()).try_collect()).map_err(io_error)?;
        let mut found: Vec<_> = metas
            .into_iter()
            .filter_map(|m| {
                let location = self.at(m.location);
                let rel = location.rel_to(self).filter(|r| !r.as_os_str().is_empty())?;
                Some((location, rel, Version { size: m.size, e_tag: m.e_tag }))
            })
            .collect();
        found.sort_by(|a, b| a.0.key.cmp(&b.0.key));
        Ok(found)
    }

    /// The prefixes directly below this one, sorted.
    pub fn subfolders(&self) -> io::Result<Vec<ObjectLocation>> {
        Ok(self.level()?.common_prefixes.into_iter().map(|p| self.at(p)).collect())
    }

    /// The objects directly in this prefix (not below), sorted.
    pub fn files_here(&self) -> io::Result<Vec<ObjectLocation>> {
        Ok(self.level()?.objects.into_iter().map(|m| self.at(m.location)).collect())
    }

    /// One level of the listing, sorted.
    fn level(&self) -> io::Result<object_store::ListResult> {
        let prefix = (!self.key.is_empty()).then(|| self.key());
        let mut listed = block_on(self.bucket.store.list_with_delimiter(prefix.as_ref())).map_err(io_error)?;
        listed.common_prefixes.sort();
        listed.objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(listed)
    }

    fn at(&self, key: Key) -> ObjectLocation {
        ObjectLocation { bucket: self.bucket.clone(), key: key.to_string() }
    }

    /// Whether `self` is `other` or lies below it.
    pub fn is_within(&self, other: &ObjectLocation) -> bool {
        self.rel_to(other).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(url: &str) -> ObjectLocation {
        parse(url, &StoreOptions::default()).unwrap().unwrap()
    }

    #[test]
    fn keys_join_and_relate_like_paths() {
        let folder = at("s3://events/2026//publish/");
        assert_eq!(folder.to_string(), "s3://events/2026/publish");
        let file = folder.join(Path::new("day1/a.jpg"));
        assert_eq!(file.to_string(), "s3://events/2026/publish/day1/a.jpg");
        assert_eq!(file.rel_to(&folder), Some(PathBuf::from("day1/a.jpg")));
        assert_eq!(file.parent().parent(), folder);
        assert_eq!(file.file_name(), Some("a.jpg"));
        // A sibling prefix that starts with the same letters is not inside.
        assert!(!at("s3://events/2026/publish-old/a.jpg").is_within(&folder));
        assert!(!at("s3://other/2026/publish/a.jpg").is_within(&folder));
        assert!(file.is_within(&at("s3://events")));
    }

    #[test]
    fn only_known_schemes_are_object_stores() {
        assert!(parse("photos/2026", &StoreOptions::default()).unwrap().is_none());
        assert!(parse("ftp://host/x", &StoreOptions::default()).is_err());
        assert!(parse("s3://", &StoreOptions::default()).is_err());
    }
}
