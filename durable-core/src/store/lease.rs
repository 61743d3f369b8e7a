use std::sync::Mutex;

use foldhash::HashMap;

use crate::error::StoreError;
use crate::time::Timestamp;

/// Leases kept in memory, for stores that one process owns.
///
/// When only one process can open a store (the sled store locks its directory), a
/// lease cannot outlive that process, so it need not be written down.
#[derive(Debug, Default)]
pub struct LeaseTable {
    leases: Mutex<HashMap<String, (u128, Timestamp)>>,
}

impl LeaseTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Grants `owner` the lease on `id` until `until`, unless another owner holds one
    /// that has not expired at `now`.
    pub fn claim(&self, id: &str, owner: u128, now: Timestamp, until: Timestamp) -> bool {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        match leases.get(id) {
            Some(&(holder, expires)) if holder != owner && expires > now => false,
            _ => {
                leases.insert(id.to_owned(), (owner, until));
                true
            }
        }
    }

    /// Whether `owner` may commit `id`: refused with [`StoreError::LeaseLost`] when another
    /// owner holds its lease, expired or not (it took the execution over). See
    /// [`Store::commit_leased`](crate::Store::commit_leased).
    pub fn check(&self, id: &str, owner: u128) -> Result<(), StoreError> {
        let leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        match leases.get(id) {
            Some(&(holder, _)) if holder != owner => {
                Err(StoreError::LeaseLost { id: id.to_owned() })
            }
            _ => Ok(()),
        }
    }

    /// Drops `owner`'s lease on `id`, if it holds it.
    pub fn release(&self, id: &str, owner: u128) {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if leases.get(id).is_some_and(|&(holder, _)| holder == owner) {
            leases.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_excludes_other_owners_until_it_expires() {
        let table = LeaseTable::new();
        let t = Timestamp::from_millis;
        assert!(table.claim("a", 1, t(0), t(100)));
        assert!(!table.claim("a", 2, t(50), t(150)));
        assert!(table.claim("a", 1, t(60), t(160)), "the holder renews");
        assert!(
            table.claim("a", 2, t(161), t(200)),
            "an expired lease is taken over"
        );
        table.release("a", 1);
        assert!(
            !table.claim("a", 3, t(170), t(300)),
            "release by a non-holder is a no-op"
        );
        table.release("a", 2);
        assert!(table.claim("a", 3, t(170), t(300)));
    }

    #[test]
    fn only_another_holder_refuses_a_commit() {
        let table = LeaseTable::new();
        let t = Timestamp::from_millis;
        assert!(table.check("a", 1).is_ok(), "nobody holds it");
        assert!(table.claim("a", 1, t(0), t(100)));
        assert!(table.check("a", 1).is_ok());
        assert!(matches!(
            table.check("a", 2),
            Err(StoreError::LeaseLost { id }) if id == "a"
        ));
        assert!(table.claim("a", 2, t(200), t(300)), "taken over");
        assert!(table.check("a", 1).is_err(), "even after it expires");
    }
}
