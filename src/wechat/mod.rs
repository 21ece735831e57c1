//! WeChat server APIs: the HTTP client ScanGate uses, the AES-128-CBC open-data decryption,
//! and the simulator that speaks WeChat's exact paths and JSON for tests and `scangate dev`.

pub mod client;
pub mod crypt;
pub mod simulator;

pub use client::{Credentials, PhoneInfo, Session, WechatClient, WechatError};
pub use crypt::{check_signature, decrypt, DecryptError};
pub use simulator::Simulator;
