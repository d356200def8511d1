//! Live shared documents (Yjs, through yrs) a host holds while sockets edit them: one per key
//! per host, shared by that host's sockets. Replicas keep their copies converged by passing
//! every update through the bus (applying an update twice changes nothing); sections load,
//! persist and read them. A document is held while it has holders; whoever keeps it closes
//! it once the last one left ([`LiveDocs::close_if_idle`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;
use yrs::sync::Awareness;
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

/// One live document and its awareness (who is there, their cursors).
pub struct LiveDoc {
    pub key: Uuid,
    awareness: Mutex<Awareness>,
    holders: AtomicUsize,
    /// Signalled when a holder leaves.
    pub left: tokio::sync::Notify,
}

impl LiveDoc {
    /// A document from its whole state as a v1 update.
    pub fn load(key: Uuid, state: &[u8]) -> anyhow::Result<LiveDoc> {
        let doc = Doc::new();
        let update = Update::decode_v1(state).map_err(|e| anyhow::anyhow!("{e}"))?;
        doc.transact_mut()
            .apply_update(update)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(LiveDoc {
            key,
            awareness: Mutex::new(Awareness::new(doc)),
            holders: AtomicUsize::new(0),
            left: tokio::sync::Notify::new(),
        })
    }

    /// The document and awareness, locked (briefly: no awaiting while held).
    pub fn lock(&self) -> MutexGuard<'_, Awareness> {
        self.awareness
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The whole state as one v1 update.
    pub fn state(&self) -> Vec<u8> {
        self.lock()
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    pub fn holders(&self) -> usize {
        self.holders.load(Ordering::SeqCst)
    }
}

/// A socket's hold on a live document; dropping it tells the keeper.
pub struct Holder(pub Arc<LiveDoc>);

impl Drop for Holder {
    fn drop(&mut self) {
        self.0.holders.fetch_sub(1, Ordering::SeqCst);
        self.0.left.notify_waiters();
    }
}

/// The live documents of this host, by key.
#[derive(Clone, Default)]
pub struct LiveDocs(Arc<Mutex<HashMap<Uuid, Arc<LiveDoc>>>>);

impl LiveDocs {
    fn map(&self) -> MutexGuard<'_, HashMap<Uuid, Arc<LiveDoc>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A hold on the document of `key`, if this host has it open.
    pub fn join(&self, key: Uuid) -> Option<Holder> {
        let map = self.map();
        let doc = map.get(&key)?;
        doc.holders.fetch_add(1, Ordering::SeqCst);
        Some(Holder(doc.clone()))
    }

    /// Opens `doc` (or, when another task opened the same key first, joins that one): a hold
    /// on it, and whether it is new here (its keeper is then the caller's to start).
    pub fn open(&self, doc: LiveDoc) -> (Holder, bool) {
        let mut map = self.map();
        let (doc, new) = match map.get(&doc.key) {
            Some(open) => (open.clone(), false),
            None => {
                let doc = Arc::new(doc);
                map.insert(doc.key, doc.clone());
                (doc, true)
            }
        };
        doc.holders.fetch_add(1, Ordering::SeqCst);
        (Holder(doc), new)
    }

    /// Closes the document of `key` when nobody holds it; whether it was closed.
    pub fn close_if_idle(&self, key: Uuid) -> bool {
        let mut map = self.map();
        match map.get(&key) {
            Some(doc) if doc.holders() == 0 => {
                map.remove(&key);
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// How many documents are open (for metrics and the benchmark).
    pub fn open_count(&self) -> usize {
        self.map().len()
    }
}
