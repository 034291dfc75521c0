//! The bottom layer: small building blocks with no knowledge of payments,
//! merchants or HTTP (bounded maps, time, ids and hashing, sealing secrets, metrics,
//! in-process locks, the outbound address policy). Imports nothing from the crate's other layers.

pub(crate) mod bounded;
pub(crate) mod clock;
pub(crate) mod crypto;
pub(crate) mod egress;
pub(crate) mod ids;
pub(crate) mod locks;
pub(crate) mod metrics;
