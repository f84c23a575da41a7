//! The cluster as the monitor currently knows it. Whoever follows the API (or the `--policy-from`
//! files, once) builds a whole new [`Cluster`] and [`ClusterView::set`]s it; every verdict reads
//! the snapshot of the moment with [`ClusterView::get`], so a reader never sees half an update.

use crate::policy::Cluster;
use std::sync::{Arc, RwLock};

#[derive(Debug, Default)]
pub struct ClusterView {
    current: RwLock<Arc<Cluster>>,
}

impl ClusterView {
    pub fn new(cluster: Cluster) -> ClusterView {
        ClusterView {
            current: RwLock::new(Arc::new(cluster)),
        }
    }

    /// The snapshot of the moment (cheap: one reference count).
    pub fn get(&self) -> Arc<Cluster> {
        // A writer that panicked left a whole snapshot behind: keep using it.
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replace the snapshot.
    pub fn set(&self, cluster: Cluster) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cluster);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_the_snapshot_readers_hold_theirs() {
        let view = ClusterView::new(Cluster::new());
        let before = view.get();
        let mut next = Cluster::new();
        next.set_root_namespace("mesh-root");
        view.set(next);
        assert_eq!(view.get().root_namespace(), "mesh-root");
        assert_ne!(before.root_namespace(), "mesh-root");
    }
}
