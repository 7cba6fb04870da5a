//! Per-client caps: how many connections or sockets one client address
//! holds at once. A slot is given back when it drops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts what each client address holds, up to `limit` each.
#[derive(Clone, Debug)]
pub struct ClientSlots {
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
    limit: usize,
}

/// One slot of one client; given back on drop.
#[derive(Debug)]
pub struct ClientSlot {
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl ClientSlots {
    pub fn new(limit: usize) -> ClientSlots {
        ClientSlots {
            held: Arc::default(),
            limit: limit.max(1),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A slot for `ip`, unless it holds `limit` already.
    pub fn try_take(&self, ip: IpAddr) -> Option<ClientSlot> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(ip).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            held: self.held.clone(),
            ip,
        })
    }

    /// How many slots `ip` holds.
    pub fn held(&self, ip: IpAddr) -> usize {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_address_and_given_back() {
        let slots = ClientSlots::new(2);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let first = slots.try_take(a).expect("a slot");
        let _second = slots.try_take(a).expect("a slot");
        assert!(slots.try_take(a).is_none());
        assert!(slots.try_take(b).is_some());
        drop(first);
        assert_eq!(slots.held(a), 1);
        assert!(slots.try_take(a).is_some());
    }
}
