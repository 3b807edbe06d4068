//! regstorm: a thread-per-core SIP OAuth registrar for Cisco Jabber, and the load engine that
//! storms it. This crate is the library behind the `regstorm` binary.

#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod cli;
pub mod config;
pub mod gate;
pub mod lab;
pub mod load;
pub mod mix;
pub mod registrar;
pub mod rt;
pub mod run;
pub mod session;
pub mod sip;
pub mod tls;

pub use sip::{parse, Error as SipError, Framer, Message};
