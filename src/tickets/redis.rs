//! Redis ticket store (placeholder; implementation pending).

use std::time::Duration;

use async_trait::async_trait;

use super::{Binding, ExchangeTicket, QrCode, Scanner, StoreError, Subscription, Take, TicketStore, TransitionError};
use crate::clock::{Clock, Millis};

pub struct RedisStore {
    hub: std::sync::Arc<super::Hub>,
}

impl RedisStore {
    pub async fn connect(_url: &str, _prefix: &str, _clock: Clock) -> anyhow::Result<Self> {
        anyhow::bail!("the Redis ticket store is not implemented yet")
    }
}

#[async_trait]
impl TicketStore for RedisStore {
    async fn insert(&self, _qr: &QrCode) -> Result<(), StoreError> {
        unimplemented!()
    }
    async fn get(&self, _random: &str) -> Result<Option<QrCode>, StoreError> {
        unimplemented!()
    }
    async fn scan(&self, _random: &str, _scanner: &Scanner, _now: Millis) -> Result<QrCode, TransitionError> {
        unimplemented!()
    }
    async fn confirm(&self, _random: &str, _ticket: &ExchangeTicket, _now: Millis) -> Result<QrCode, TransitionError> {
        unimplemented!()
    }
    async fn cancel(&self, _random: &str, _user_id: &str, _now: Millis) -> Result<QrCode, TransitionError> {
        unimplemented!()
    }
    async fn take_ticket(&self, _ticket: &str, _binding: &Binding, _now: Millis) -> Result<Take, StoreError> {
        unimplemented!()
    }
    fn subscribe(&self, random: &str) -> Subscription {
        self.hub.subscribe(random)
    }
    async fn cache_get(&self, _key: &str) -> Result<Option<String>, StoreError> {
        unimplemented!()
    }
    async fn cache_set(&self, _key: &str, _value: &str, _ttl: Duration) -> Result<(), StoreError> {
        unimplemented!()
    }
    async fn cache_remove(&self, _key: &str, _expected: &str) -> Result<(), StoreError> {
        unimplemented!()
    }
    async fn lock(&self, _key: &str, _ttl: Duration) -> Result<Option<String>, StoreError> {
        unimplemented!()
    }
    async fn unlock(&self, _key: &str, _token: &str) -> Result<(), StoreError> {
        unimplemented!()
    }
    async fn ping(&self) -> Result<(), StoreError> {
        unimplemented!()
    }
}
