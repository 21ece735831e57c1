//! In-process ticket store: the embedded default for a single instance.
//!
//! One mutex guards all state, which makes every transition trivially atomic; the critical
//! sections are a hash lookup and a few field writes. Expired records are swept lazily on
//! insert, bounded by the same retention the Redis backend uses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::device::{self, DeviceRequest, Poll, WrongCode};
use super::{
    Binding, ExchangeTicket, Hub, QrCode, QrStatus, Scanner, StoreError, Subscription, Take,
    TicketStore, TransitionError, RETAIN_AFTER_EXPIRY,
};
use crate::clock::{Clock, Millis};
use crate::domain::UserCode;

#[derive(Default)]
struct State {
    codes: HashMap<String, QrCode>,
    tickets: HashMap<String, ExchangeTicket>,
    cache: HashMap<String, (String, Millis)>,
    locks: HashMap<String, (String, Millis)>,
    /// Rate counters: count and the end of their window, by key and window index.
    counters: HashMap<(String, i64), (u64, Millis)>,
    /// Members held under a key, each until its time.
    held: HashMap<String, HashMap<String, Millis>>,
    /// Device authorization requests by random, and their randoms by user code.
    devices: HashMap<String, DeviceRequest>,
    user_codes: HashMap<String, String>,
    /// Inserts since the last sweep.
    since_sweep: usize,
}

pub struct MemoryStore {
    state: Mutex<State>,
    hub: Arc<Hub>,
    clock: Clock,
}

impl MemoryStore {
    pub fn new(clock: Clock) -> Self {
        Self {
            state: Mutex::default(),
            hub: Hub::new(),
            clock,
        }
    }

    #[cfg(test)]
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `f` to a live code under the lock and wakes its waiters on success.
    fn transition(
        &self,
        random: &str,
        now: Millis,
        f: impl FnOnce(&mut QrCode, &mut State) -> Result<(), TransitionError>,
    ) -> Result<QrCode, TransitionError> {
        let mut state = self.state();
        let mut qr = state
            .codes
            .get(random)
            .cloned()
            .ok_or(TransitionError::NotFound)?;
        if qr.status_at(now) == QrStatus::Expired {
            return Err(TransitionError::Expired);
        }
        f(&mut qr, &mut state)?;
        state.codes.insert(random.to_owned(), qr.clone());
        drop(state);
        self.hub.notify(random);
        Ok(qr)
    }
}

fn sweep(state: &mut State, now: Millis) {
    let retain = RETAIN_AFTER_EXPIRY.as_millis() as i64;
    state.codes.retain(|_, qr| qr.expires_at + retain > now);
    state.tickets.retain(|_, t| t.expires_at > now);
    state.cache.retain(|_, (_, exp)| *exp > now);
    state.locks.retain(|_, (_, exp)| *exp > now);
    state.counters.retain(|_, (_, end)| *end > now);
    for members in state.held.values_mut() {
        members.retain(|_, until| *until > now);
    }
    state.held.retain(|_, members| !members.is_empty());
    state.devices.retain(|_, d| d.expires_at + retain > now);
    let State {
        devices,
        user_codes,
        ..
    } = state;
    user_codes.retain(|_, random| devices.get(random).is_some_and(|d| d.expires_at > now));
    state.since_sweep = 0;
}

#[async_trait]
impl TicketStore for MemoryStore {
    async fn insert(&self, qr: &QrCode) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut state = self.state();
        state.since_sweep += 1;
        if state.since_sweep >= 1024 {
            sweep(&mut state, now);
        }
        state.codes.insert(qr.random.to_string(), qr.clone());
        Ok(())
    }

    async fn get(&self, random: &str) -> Result<Option<QrCode>, StoreError> {
        Ok(self.state().codes.get(random).cloned())
    }

    async fn scan(
        &self,
        random: &str,
        scanner: &Scanner,
        now: Millis,
    ) -> Result<QrCode, TransitionError> {
        self.transition(random, now, |qr, _| match (&qr.status, &qr.scanner) {
            (QrStatus::Pending, _) => {
                qr.status = QrStatus::Scanned;
                qr.scanner = Some(scanner.clone());
                Ok(())
            }
            (QrStatus::Scanned, Some(s)) if s.user_id == scanner.user_id => {
                qr.scanner = Some(scanner.clone());
                Ok(())
            }
            (QrStatus::Scanned, _) => Err(TransitionError::Conflict(
                "another user has scanned this QR code",
            )),
            _ => Err(TransitionError::Conflict(
                "this QR code has already been used",
            )),
        })
    }

    async fn confirm(
        &self,
        random: &str,
        ticket: &ExchangeTicket,
        now: Millis,
    ) -> Result<QrCode, TransitionError> {
        self.transition(random, now, |qr, state| {
            check_scanned_by(qr, &ticket.user_id)?;
            qr.status = QrStatus::Confirmed;
            qr.ticket = Some(ticket.ticket.clone());
            state.tickets.insert(ticket.ticket.clone(), ticket.clone());
            Ok(())
        })
    }

    async fn cancel(
        &self,
        random: &str,
        user_id: &str,
        reason: &str,
        now: Millis,
    ) -> Result<QrCode, TransitionError> {
        self.transition(random, now, |qr, _| {
            if qr.status != QrStatus::Pending {
                check_scanned_by(qr, user_id)?;
            }
            qr.status = QrStatus::Cancelled;
            qr.cancel_reason = Some(reason.to_owned());
            Ok(())
        })
    }

    async fn take_ticket(
        &self,
        ticket: &str,
        binding: &Binding,
        now: Millis,
    ) -> Result<Take, StoreError> {
        let mut state = self.state();
        let Some(t) = state.tickets.get(ticket) else {
            return Ok(Take::Missing);
        };
        if t.expires_at <= now {
            state.tickets.remove(ticket);
            return Ok(Take::Missing);
        }
        if t.require_binding && !binding.matches(&t.bind_hash, t.browser_hash.as_deref()) {
            return Ok(Take::NotBound);
        }
        Ok(state
            .tickets
            .remove(ticket)
            .map_or(Take::Missing, Take::Taken))
    }

    fn subscribe(&self, random: &str) -> Subscription {
        self.hub.subscribe(random)
    }

    async fn cache_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let now = self.clock.now();
        Ok(self
            .state()
            .cache
            .get(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(v, _)| v.clone()))
    }

    async fn cache_set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let exp = self.clock.now() + ttl.as_millis() as i64;
        self.state()
            .cache
            .insert(key.to_owned(), (value.to_owned(), exp));
        Ok(())
    }

    async fn cache_remove(&self, key: &str, expected: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.cache.get(key).is_some_and(|(v, _)| v == expected) {
            state.cache.remove(key);
        }
        Ok(())
    }

    async fn lock(&self, key: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        let now = self.clock.now();
        let mut state = self.state();
        if state.locks.get(key).is_some_and(|(_, exp)| *exp > now) {
            return Ok(None);
        }
        let token = crate::crypto::random_token(16);
        state.locks.insert(
            key.to_owned(),
            (token.clone(), now + ttl.as_millis() as i64),
        );
        Ok(Some(token))
    }

    async fn unlock(&self, key: &str, token: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.locks.get(key).is_some_and(|(t, _)| t == token) {
            state.locks.remove(key);
        }
        Ok(())
    }

    async fn hit(&self, key: &str, window: Duration, now: Millis) -> Result<u64, StoreError> {
        let (index, end) = super::window_of(window, now);
        let mut state = self.state();
        state.since_sweep += 1;
        if state.since_sweep >= 1024 {
            sweep(&mut state, now);
        }
        let counter = state
            .counters
            .entry((key.to_owned(), index))
            .or_insert((0, end));
        counter.0 += 1;
        Ok(counter.0)
    }

    async fn hold(
        &self,
        key: &str,
        member: &str,
        until: Millis,
        cap: u64,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        let members = state.held.entry(key.to_owned()).or_default();
        members.retain(|_, u| *u > now);
        if members.len() as u64 >= cap {
            return Ok(false);
        }
        members.insert(member.to_owned(), until);
        Ok(true)
    }

    async fn release(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        if let Some(members) = state.held.get_mut(key) {
            members.remove(member);
            if members.is_empty() {
                state.held.remove(key);
            }
        }
        Ok(())
    }

    async fn tally(&self, key: &str, bucket: i64, keep: Duration) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut state = self.state();
        let until = now + keep.as_millis() as i64;
        let counter = state
            .counters
            .entry((format!("tally:{key}"), bucket))
            .or_insert((0, until));
        counter.0 += 1;
        Ok(())
    }

    async fn tallies(&self, key: &str, buckets: &[i64]) -> Result<Vec<u64>, StoreError> {
        let now = self.clock.now();
        let state = self.state();
        let key = format!("tally:{key}");
        Ok(buckets
            .iter()
            .map(|b| {
                state
                    .counters
                    .get(&(key.clone(), *b))
                    .filter(|(_, until)| *until > now)
                    .map_or(0, |(n, _)| *n)
            })
            .collect())
    }

    async fn announce_config_change(&self) -> Result<(), StoreError> {
        self.hub.config_changed();
        Ok(())
    }

    fn config_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.hub.config_changes()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn device_insert(&self, req: &DeviceRequest) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut state = self.state();
        state.since_sweep += 1;
        if state.since_sweep >= 1024 {
            sweep(&mut state, now);
        }
        let taken = state
            .user_codes
            .get(req.user_code.as_str())
            .and_then(|random| state.devices.get(random))
            .is_some_and(|d| d.expires_at > now);
        if taken {
            return Ok(false);
        }
        state
            .user_codes
            .insert(req.user_code.to_string(), req.random.to_string());
        state.devices.insert(req.random.to_string(), req.clone());
        Ok(true)
    }

    async fn device_get(&self, random: &str) -> Result<Option<DeviceRequest>, StoreError> {
        Ok(self.state().devices.get(random).cloned())
    }

    async fn device_by_user_code(
        &self,
        user_code: &UserCode,
    ) -> Result<Option<DeviceRequest>, StoreError> {
        let now = self.clock.now();
        let state = self.state();
        Ok(state
            .user_codes
            .get(user_code.as_str())
            .and_then(|random| state.devices.get(random))
            .filter(|d| d.expires_at > now)
            .cloned())
    }

    async fn device_decide(
        &self,
        random: &str,
        user_id: &str,
        approve: bool,
        now: Millis,
    ) -> Result<DeviceRequest, TransitionError> {
        let mut state = self.state();
        let req = state
            .devices
            .get_mut(random)
            .ok_or(TransitionError::NotFound)?;
        device::decide(req, user_id, approve, now)?;
        Ok(req.clone())
    }

    async fn device_wrong_code(
        &self,
        random: &str,
        limit: u32,
        now: Millis,
    ) -> Result<WrongCode, StoreError> {
        let mut state = self.state();
        Ok(match state.devices.get_mut(random) {
            Some(req) => device::wrong_code(req, limit, now),
            None => WrongCode::NotPending,
        })
    }

    async fn device_poll(&self, random: &str, now: Millis) -> Result<Poll, StoreError> {
        let mut state = self.state();
        Ok(match state.devices.get_mut(random) {
            Some(req) => device::poll(req, now),
            None => Poll::Unknown,
        })
    }
}

/// The code is `scanned` and `user_id` is its scanner.
fn check_scanned_by(qr: &QrCode, user_id: &str) -> Result<(), TransitionError> {
    match (qr.status, &qr.scanner) {
        (QrStatus::Scanned, Some(s)) if s.user_id == user_id => Ok(()),
        (QrStatus::Scanned, _) => Err(TransitionError::Forbidden(
            "this QR code was scanned by another user",
        )),
        (QrStatus::Pending, _) => Err(TransitionError::Conflict(
            "the QR code has not been scanned",
        )),
        _ => Err(TransitionError::Conflict(
            "this QR code has already been used",
        )),
    }
}
