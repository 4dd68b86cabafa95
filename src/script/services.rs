//! What the host lends to scripts: the store and (when configured) the WeChat API. Shared by
//! every worker, so everything here is `Send + Sync`.

use std::sync::Arc;

use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// Host services reachable from Lua bindings.
#[derive(Clone)]
pub struct Services {
    /// Script data (`wx.store`) and the host's own records.
    pub store: Arc<dyn Store>,
}

impl Services {
    /// Services over the given store.
    pub fn new(store: Arc<dyn Store>) -> Services {
        Services { store }
    }

    /// Services on a private in-memory store: tests and one-off checks.
    pub fn in_memory() -> Result<Services, StoreError> {
        Ok(Services::new(Arc::new(SqliteStore::open_in_memory()?)))
    }
}
