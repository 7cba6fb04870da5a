//! Files: [`StorageReader`] for queries, [`StorageWriter`] for mutations,
//! [`ActionStorage`] for actions. The bytes live in the deployment's file
//! store; their metadata in `_storage` ([`StoredFile`]).

use std::marker::PhantomData;

use crate::bindings::capstan::runtime::storage as host;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::system::StoredFile;

/// Download URLs, from a query.
#[derive(Debug)]
pub struct StorageReader<'a> {
    pub(crate) _context: PhantomData<&'a ()>,
}

impl StorageReader<'_> {
    /// Where the file can be downloaded (a URL serving ranges and `ETag`),
    /// or `None` if it does not exist. The URL is stable and
    /// unguessable: share it with whoever may read the file.
    pub fn get_url(&self, id: &Id<StoredFile>) -> Result<Option<String>> {
        host::get_url(id.as_str()).map_err(Error::from_host)
    }
}

/// Upload URLs, download URLs and deletes, from a mutation.
///
/// ```ignore
/// #[capstan::mutation]
/// pub fn generate_upload_url(ctx: &mut MutationCtx) -> capstan::Result<String> {
///     ctx.storage().generate_upload_url()
/// }
/// ```
/// The client POSTs the file to that URL (with its `Content-Type`) and
/// gets `{"storageId": "…"}` back, which it passes to another mutation.
#[derive(Debug)]
pub struct StorageWriter<'a> {
    pub(crate) _context: PhantomData<&'a mut ()>,
}

impl StorageWriter<'_> {
    /// A URL to POST one file to, valid for an hour.
    pub fn generate_upload_url(&mut self) -> Result<String> {
        host::generate_upload_url().map_err(Error::from_host)
    }

    /// See [`StorageReader::get_url`].
    pub fn get_url(&self, id: &Id<StoredFile>) -> Result<Option<String>> {
        host::get_url(id.as_str()).map_err(Error::from_host)
    }

    /// Deletes the file (from a mutation: when it commits).
    pub fn delete(&mut self, id: &Id<StoredFile>) -> Result<()> {
        host::delete(id.as_str()).map_err(Error::from_host)
    }
}

/// Everything files offer, from an action: also storing and reading bytes.
#[derive(Debug)]
pub struct ActionStorage<'a> {
    pub(crate) writer: StorageWriter<'a>,
}

impl<'a> std::ops::Deref for ActionStorage<'a> {
    type Target = StorageWriter<'a>;

    fn deref(&self) -> &StorageWriter<'a> {
        &self.writer
    }
}

impl<'a> std::ops::DerefMut for ActionStorage<'a> {
    fn deref_mut(&mut self) -> &mut StorageWriter<'a> {
        &mut self.writer
    }
}

impl ActionStorage<'_> {
    /// Stores `bytes` as a new file.
    pub fn store(&mut self, bytes: &[u8], content_type: Option<&str>) -> Result<Id<StoredFile>> {
        let id = host::store(bytes, content_type).map_err(Error::from_host)?;
        Ok(Id::from_string(id))
    }

    /// The file's bytes, or `None` if it does not exist.
    pub fn get(&mut self, id: &Id<StoredFile>) -> Result<Option<Vec<u8>>> {
        host::get(id.as_str()).map_err(Error::from_host)
    }
}
