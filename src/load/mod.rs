//! The load engine. So far: what a Jabber client sends (the seed's REGISTER and body) and the
//! sans-IO device that decides when it sends what.

pub mod device;
pub mod engine;
pub mod jabber;
pub mod outbox;
pub mod plots;
pub mod profile;
pub mod results;
pub mod schedule;
pub mod summary;
pub mod tokens;
pub mod wheel;
