//! Answers already made from a code: the serialised bytes of a status answer, kept while the
//! code they were made from is unchanged, so that a poll of a code that has not changed since
//! the last poll is answered with the bytes already made.
//!
//! An answer is kept against the whole code it was made from and a `variant` naming everything
//! else it depends on (which endpoint, the status the caller sees, whether it may see the
//! ticket). Any change to the code — a field added to it later included — makes a different
//! code, so the bytes made from the old one are never served for the new one: the check is
//! identity of the shared copy (the near cache hands out the same one until it is invalidated)
//! or, failing that, equality of the whole code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;

use super::QrCode;

/// Most codes with answers kept; past it the memory starts over (it refills from the next
/// polls).
const CAPACITY: usize = 10_000;

struct Entry {
    qr: Arc<QrCode>,
    made: Vec<(u16, Bytes)>,
}

#[derive(Default)]
pub struct Rendered {
    entries: Mutex<HashMap<Arc<str>, Entry>>,
}

impl Rendered {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer `variant` made from `qr`: the one kept, or `make()`'s, then kept.
    pub fn get_or_make(
        &self,
        qr: &Arc<QrCode>,
        variant: u16,
        make: impl FnOnce() -> Bytes,
    ) -> Bytes {
        if let Some(entry) = self.entries().get(qr.random.as_str()) {
            if same(&entry.qr, qr) {
                if let Some((_, bytes)) = entry.made.iter().find(|(v, _)| *v == variant) {
                    return bytes.clone();
                }
            }
        }
        // Made outside the lock: concurrent polls of one code may each make it once.
        let bytes = make();
        let mut entries = self.entries();
        match entries.get_mut(qr.random.as_str()) {
            Some(entry) if same(&entry.qr, qr) => {
                if !entry.made.iter().any(|(v, _)| *v == variant) {
                    entry.made.push((variant, bytes.clone()));
                }
            }
            Some(entry) => {
                entry.qr = Arc::clone(qr);
                entry.made = vec![(variant, bytes.clone())];
            }
            None => {
                if entries.len() >= CAPACITY {
                    entries.clear();
                }
                entries.insert(
                    qr.random.as_str().into(),
                    Entry {
                        qr: Arc::clone(qr),
                        made: vec![(variant, bytes.clone())],
                    },
                );
            }
        }
        bytes
    }
}

fn same(kept: &Arc<QrCode>, qr: &Arc<QrCode>) -> bool {
    Arc::ptr_eq(kept, qr) || **kept == **qr
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::QrStatus;

    fn code(status: QrStatus) -> Arc<QrCode> {
        Arc::new(QrCode {
            random: "aaaaaaaaaaaaaaaaaaaaaaaa".into(),
            pool_id: "default".into(),
            client_id: "web".into(),
            appid: "wx0123456789abcdef".into(),
            status,
            created_at: 1,
            expires_at: 2,
            bind_hash: "b".into(),
            browser_hash: None,
            require_binding: true,
            requester_ip: "127.0.0.1".into(),
            requester_user_agent: String::new(),
            scanner: None,
            ticket: None,
            match_number: None,
            cancel_reason: None,
        })
    }

    #[test]
    fn an_unchanged_code_is_answered_with_the_bytes_made_before() {
        let rendered = Rendered::default();
        let qr = code(QrStatus::Pending);
        assert_eq!(rendered.get_or_make(&qr, 1, || "one".into()), "one");
        assert_eq!(rendered.get_or_make(&qr, 1, || "two".into()), "one");
        // An equal copy is the same code.
        let copy = Arc::new((*qr).clone());
        assert_eq!(rendered.get_or_make(&copy, 1, || "two".into()), "one");
        // Another variant is made on its own.
        assert_eq!(rendered.get_or_make(&qr, 2, || "other".into()), "other");
    }

    #[test]
    fn a_changed_code_is_made_anew() {
        let rendered = Rendered::default();
        assert_eq!(
            rendered.get_or_make(&code(QrStatus::Pending), 1, || "pending".into()),
            "pending"
        );
        let scanned = code(QrStatus::Scanned);
        assert_eq!(
            rendered.get_or_make(&scanned, 1, || "scanned".into()),
            "scanned"
        );
        assert_eq!(
            rendered.get_or_make(&scanned, 1, || "again".into()),
            "scanned"
        );
    }
}
