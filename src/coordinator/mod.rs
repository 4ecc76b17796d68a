//! The two coordinators a broker hosts: the group coordinator (`__consumer_offsets`)
//! and the transaction coordinator (`__transaction_state`). Each is a sans-IO state
//! machine; the broker appends their records and routes their requests.

pub mod group;
pub mod shared;
pub mod txn;
