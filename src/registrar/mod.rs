//! The registrar, sans-IO: the decision per request ([`Registrar::handle`]) and the binding
//! table. First cut for the registrar issue: every outcome the contract lists, the device
//! directory included; storage compaction and sharding come with the runtime.

mod core;
mod directory;
mod table;

pub use self::core::{Facts, Outcome, Registrar};
pub use self::directory::{Directory, Verdict};
pub use self::table::{Binding, BindingInfo, BindingTable, ConnId};
