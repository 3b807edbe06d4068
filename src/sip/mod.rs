//! The zero-copy SIP wire layer: scanning, message and header parsing, URIs, framing and
//! response writing. No sockets, no clock, no allocation on the parse path: every view
//! borrows the caller's buffer and header array (the httparse shape).

mod addr;
mod error;
mod frame;
mod message;
mod name;
pub(crate) mod scan;
mod uri;
mod via;
mod view;
mod write;

pub use addr::{unquote, Contact, ContactValue, NameAddr, ParamIter, Params, DEVICE_NAME_PARAM};
pub use error::Error;
pub use frame::{parse_datagram, Frame, Framer};
pub use message::{
    parse, parse_lenient, Header, Limits, Message, Method, StartLine, Status, EMPTY_HEADER,
};
pub use name::HeaderName;
pub use uri::{write_aor, Aor, Host, SipUri, Uri};
pub use via::Via;
pub use view::{
    civil_from_days, parse_http_date, write_http_date, Bearer, CSeq, List, MediaType, Values,
};
pub use write::{ResponseWriter, Source};
