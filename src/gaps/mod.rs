//! Capability gaps: what this NetworkManager, this kernel and libvirt's format can and cannot
//! do for a host, reported before anything changes. Pure: the kernel and the daemon are read
//! elsewhere ([`crate::host_probe`], [`crate::nm_client`]) and handed in as data.

pub mod knowledge;
mod report;

pub use knowledge::{needs, supports, NmFeature, Since};
pub use report::{
    assess, probe_candidates, By, CheckReport, Facts, InterfaceCheck, Item, KernelFacts, ModuleState, RuntimeFacts,
    Status,
};
