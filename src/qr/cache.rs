//! Rendered images, kept until their QR code expires, within a memory budget.
//!
//! One entry per (random, size, format, branding). Concurrent requests for an image not yet
//! made wait for one render instead of each making it. Entries leave when their code expires
//! (looked at on every lookup and from the front of the queue on every insert), and the oldest
//! leave first whenever the total size passes the budget, so memory stays bounded however
//! many codes are created.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::render::Format;

/// A finished image.
#[derive(Debug)]
pub struct Image {
    pub bytes: axum::body::Bytes,
    pub content_type: &'static str,
    /// A strong validator: a digest of the bytes, quoted.
    pub etag: String,
}

impl Image {
    pub fn new(bytes: Vec<u8>, format: Format) -> Image {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(&bytes);
        Image {
            etag: format!("\"{}\"", hex::encode(&digest[..16])),
            bytes: bytes.into(),
            content_type: format.content_type(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageKey {
    pub random: crate::domain::Random,
    pub size: u32,
    pub format: Format,
    /// The branding's fingerprint: new branding, new images.
    pub branding: u64,
}

struct Slot {
    cell: Arc<OnceCell<Arc<Image>>>,
    expires_at: i64,
    bytes: usize,
    generation: u64,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<ImageKey, Slot>,
    order: VecDeque<(ImageKey, u64)>,
    bytes: usize,
    next_generation: u64,
}

pub struct ImageCache {
    inner: Mutex<Inner>,
    /// Most bytes of image data kept.
    budget: usize,
    /// Most entries kept (bounds the bookkeeping of entries still rendering).
    max_entries: usize,
}

impl ImageCache {
    pub fn new(budget: usize, max_entries: usize) -> ImageCache {
        ImageCache {
            inner: Mutex::new(Inner::default()),
            budget,
            max_entries,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached image, if made and not expired.
    pub fn peek(&self, key: &ImageKey, now: i64) -> Option<Arc<Image>> {
        let inner = self.lock();
        let slot = inner.slots.get(key).filter(|s| s.expires_at > now)?;
        slot.cell.get().cloned()
    }

    /// The image for `key`, rendered by `render` if nobody has yet; kept until `expires_at`.
    pub async fn get_or_render<F, Fut, E>(
        &self,
        key: ImageKey,
        now: i64,
        expires_at: i64,
        render: F,
    ) -> Result<Arc<Image>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Image, E>>,
    {
        let (cell, generation) = {
            let mut inner = self.lock();
            let live = inner
                .slots
                .get(&key)
                .filter(|s| s.expires_at > now)
                .map(|s| (Arc::clone(&s.cell), s.generation));
            match live {
                Some(found) => found,
                None => {
                    if let Some(old) = inner.slots.remove(&key) {
                        inner.bytes -= old.bytes;
                    }
                    let generation = inner.next_generation;
                    inner.next_generation += 1;
                    let cell = Arc::new(OnceCell::new());
                    inner.slots.insert(
                        key.clone(),
                        Slot {
                            cell: Arc::clone(&cell),
                            expires_at,
                            bytes: 0,
                            generation,
                        },
                    );
                    inner.order.push_back((key.clone(), generation));
                    self.evict(&mut inner, now);
                    (cell, generation)
                }
            }
        };
        let made_here = AtomicBool::new(false);
        let result = cell
            .get_or_try_init(|| async {
                made_here.store(true, Ordering::Relaxed);
                render().await.map(Arc::new)
            })
            .await
            .cloned();
        let made = made_here.load(Ordering::Relaxed);
        let mut guard = self.lock();
        let inner = &mut *guard;
        let current = inner
            .slots
            .get_mut(&key)
            .filter(|s| s.generation == generation);
        match (&result, current) {
            (Ok(image), Some(slot)) if made => {
                slot.bytes = image.bytes.len();
                inner.bytes += image.bytes.len();
                self.evict(inner, now);
            }
            // A failed render leaves nothing behind; the next request tries again.
            (Err(_), Some(slot)) if slot.cell.get().is_none() => {
                inner.slots.remove(&key);
            }
            _ => {}
        }
        result
    }

    /// Drops expired entries from the front, then the oldest until within budget.
    fn evict(&self, inner: &mut Inner, now: i64) {
        while let Some((key, generation)) = inner.order.front().cloned() {
            let slot = inner.slots.get(&key).filter(|s| s.generation == generation);
            let over = inner.bytes > self.budget || inner.order.len() > self.max_entries;
            match slot {
                // Already replaced or removed: just forget the queue entry.
                None => {}
                Some(s) if over || s.expires_at <= now => {
                    let bytes = s.bytes;
                    inner.slots.remove(&key);
                    inner.bytes -= bytes;
                }
                Some(_) => break,
            }
            inner.order.pop_front();
        }
    }

    /// Total bytes and entries held (for tests and metrics).
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.bytes, inner.slots.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn key(random: &str) -> ImageKey {
        ImageKey {
            random: random.into(),
            size: 300,
            format: Format::Png,
            branding: 1,
        }
    }

    async fn make(
        cache: &ImageCache,
        k: ImageKey,
        now: i64,
        renders: &AtomicUsize,
        len: usize,
    ) -> Arc<Image> {
        cache
            .get_or_render(k, now, now + 1000, || async {
                renders.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(Image::new(vec![7; len], Format::Png))
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_image_is_rendered_once_until_it_expires() {
        let cache = ImageCache::new(1 << 20, 100);
        let renders = AtomicUsize::new(0);
        let a = make(&cache, key("a"), 0, &renders, 10).await;
        let b = make(&cache, key("a"), 500, &renders, 10).await;
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        make(&cache, key("a"), 1000, &renders, 10).await;
        assert_eq!(renders.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_render() {
        let cache = Arc::new(ImageCache::new(1 << 20, 100));
        let renders = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, renders, gate) = (cache.clone(), renders.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_render(key("x"), 0, 1000, || async move {
                        renders.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        Ok::<_, ()>(Image::new(vec![1; 5], Format::Png))
                    })
                    .await
                    .unwrap()
            }));
        }
        tokio::task::yield_now().await;
        gate.notify_one();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(renders.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn memory_stays_within_the_budget() {
        let cache = ImageCache::new(1000, 10_000);
        let renders = AtomicUsize::new(0);
        for i in 0..500 {
            make(&cache, key(&format!("r{i}")), 0, &renders, 100).await;
            assert!(cache.usage().0 <= 1000, "{:?}", cache.usage());
        }
        let (_, entries) = cache.usage();
        assert!(entries <= 10, "{entries}");
        // The newest is still there; the oldest went.
        assert!(cache.peek(&key("r499"), 0).is_some());
        assert!(cache.peek(&key("r0"), 0).is_none());
    }

    #[tokio::test]
    async fn a_failed_render_is_not_kept() {
        let cache = ImageCache::new(1000, 100);
        let r = cache
            .get_or_render(key("f"), 0, 1000, || async { Err::<Image, _>("boom") })
            .await;
        assert!(r.is_err());
        assert_eq!(cache.usage(), (0, 0));
    }
}
