//! The load engine. So far: what a Jabber client sends (the seed's REGISTER and body).

pub mod jabber;
