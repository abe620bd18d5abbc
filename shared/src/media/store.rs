//! The object store holding media bytes: the local filesystem (the embedded default, `.pressroom/media`) or
//! S3 and anything that speaks it (`s3://bucket/prefix` with the usual `AWS_*` variables, `AWS_ENDPOINT`
//! for R2, Garage or MinIO). A put is atomic in both: an object is whole or absent.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

/// A store that failed or cannot be opened; requests that need it answer 503.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("media store `{spec}` cannot be opened: {reason}")]
    Open { spec: String, reason: String },
    #[error("media store unavailable: {0}")]
    Unavailable(#[from] object_store::Error),
}

/// An object's key (its path under the store's root) and when it was written.
#[derive(Debug)]
pub struct Listed {
    pub key: String,
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone)]
pub struct MediaStore {
    inner: Arc<dyn ObjectStore>,
    /// The configured location, for logs and `status` (no credentials in it).
    pub location: String,
}

impl std::fmt::Debug for MediaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaStore").field("location", &self.location).finish()
    }
}

impl MediaStore {
    /// Opens `spec`: `s3://bucket[/prefix]`, `file:///abs/path`, or a filesystem path (created if missing).
    pub fn open(spec: &str) -> Result<Self, StoreError> {
        let open_err = |reason: String| StoreError::Open { spec: spec.to_string(), reason };
        let inner: Arc<dyn ObjectStore> = if spec.starts_with("s3://") {
            let url = url::Url::parse(spec).map_err(|e| open_err(e.to_string()))?;
            let bucket = url.host_str().ok_or_else(|| open_err("no bucket".into()))?;
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| open_err(e.to_string()))?;
            let prefix = url.path().trim_matches('/');
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
            }
        } else {
            let path = spec.strip_prefix("file://").unwrap_or(spec);
            std::fs::create_dir_all(path).map_err(|e| open_err(e.to_string()))?;
            let abs = std::fs::canonicalize(path).map_err(|e| open_err(e.to_string()))?;
            Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(abs)
                    .map_err(|e| open_err(e.to_string()))?
                    .with_automatic_cleanup(true),
            )
        };
        Ok(MediaStore { inner, location: spec.to_string() })
    }

    /// Writes an object whole (a reader sees all of it or nothing).
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.inner.put(&Path::from(key), PutPayload::from_bytes(bytes)).await?;
        Ok(())
    }

    /// Whether the object exists.
    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        match self.inner.head(&Path::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The object's bytes; None when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self.inner.get(&Path::from(key)).await {
            Ok(got) => Ok(Some(got.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// When the object was last written; None when it does not exist.
    pub async fn last_modified(&self, key: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        match self.inner.head(&Path::from(key)).await {
            Ok(meta) => Ok(Some(meta.last_modified)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object in the store.
    pub async fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let metas: Vec<_> = self.inner.list(None).try_collect().await?;
        Ok(metas.into_iter().map(|m| Listed { key: m.location.to_string(), last_modified: m.last_modified }).collect())
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.inner.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
