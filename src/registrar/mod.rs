//! The registrar, sans-IO: the decision per request ([`Registrar::handle`]) and the binding
//! table ([`Bindings`]), one table shared by every core's registrar, lock-striped by AOR, with
//! compact storage (interned contact templates, hashed Call-IDs, bucketed expiry).

mod admission;
mod contact;
mod core;
mod directory;
mod interner;
mod stripe;
mod table;

pub use self::admission::{Admission, AdmissionConfig, AdmissionStats};
pub use self::core::{Facts, Outcome, Registrar};
pub use self::directory::{Directory, Verdict};
pub use self::stripe::{BindingInfo, ConnId};
pub use self::table::{Bindings, ContactUpdate, Interned};
