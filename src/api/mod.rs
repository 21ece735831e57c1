//! Versioned JSON APIs for operators: the management API (`admin`).

pub mod admin;
