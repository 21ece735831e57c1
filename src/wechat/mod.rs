//! WeChat server APIs: the HTTP client ScanGate uses, the AES-128-CBC open-data decryption,
//! the directory of served Mini Programs and their credentials (`miniprograms`), and the
//! simulator that speaks WeChat's exact paths and JSON for tests and `scangate dev`.

pub mod client;
pub mod crypt;
pub mod diagnostics;
pub mod links;
pub mod miniprograms;
pub mod simulator;

#[cfg(test)]
mod tests;

pub use client::{
    Credentials, LineColor, LinkRequest, PhoneInfo, Session, WechatClient, WechatError,
    WxaCodeRequest,
};
pub use crypt::{check_signature, decrypt, encrypt, DecryptError};
pub use diagnostics::{Diagnostics, TokenState};
pub use links::{LinkError, OpenLink, OpenLinks};
pub use miniprograms::MiniPrograms;
pub use simulator::Simulator;
