//! An object store wrapper that counts requests and failures per storage
//! (`system.stats`, `/metrics`): an operator of an S3-backed server needs to
//! see how many requests queries cost and which storage is failing.

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use std::ops::Range;
use std::sync::Arc;
use strata_common::stats;

#[derive(Debug)]
pub(crate) struct Instrumented {
    storage: Arc<str>,
    inner: Arc<dyn ObjectStore>,
}

impl Instrumented {
    pub(crate) fn new(storage: &str, inner: Arc<dyn ObjectStore>) -> Instrumented {
        Instrumented {
            storage: storage.into(),
            inner,
        }
    }

    /// Counts one request and, unless it only found nothing, its failure.
    fn count<T>(&self, op: &'static str, result: Result<T>) -> Result<T> {
        stats::object_store_request(&self.storage, op);
        if let Err(e) = &result
            && !matches!(e, object_store::Error::NotFound { .. })
        {
            stats::object_store_error(&self.storage, op);
        }
        result
    }
}

impl std::fmt::Display for Instrumented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Instrumented({}, {})", self.storage, self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Instrumented {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let r = self.inner.put_opts(location, payload, opts).await;
        self.count("put", r)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let r = self.inner.put_multipart_opts(location, opts).await;
        self.count("put_multipart", r)
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head { "head" } else { "get" };
        let r = self.inner.get_opts(location, options).await;
        self.count(op, r)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        let r = self.inner.get_ranges(location, ranges).await;
        self.count("get_ranges", r)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let storage = self.storage.clone();
        self.inner
            .delete_stream(locations)
            .map(move |r| {
                stats::object_store_request(&storage, "delete");
                if let Err(e) = &r
                    && !matches!(e, object_store::Error::NotFound { .. })
                {
                    stats::object_store_error(&storage, "delete");
                }
                r
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        stats::object_store_request(&self.storage, "list");
        let storage = self.storage.clone();
        self.inner
            .list(prefix)
            .inspect(move |r| {
                if r.is_err() {
                    stats::object_store_error(&storage, "list");
                }
            })
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        stats::object_store_request(&self.storage, "list");
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let r = self.inner.list_with_delimiter(prefix).await;
        self.count("list", r)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let r = self.inner.copy_opts(from, to, options).await;
        self.count("copy", r)
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let r = self.inner.rename_opts(from, to, options).await;
        self.count("rename", r)
    }
}
