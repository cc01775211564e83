//! Capability gaps: what this NetworkManager, this kernel and libvirt's format can and cannot
//! do for a host, reported before anything changes. Pure: the kernel and the daemon are read
//! elsewhere ([`crate::host_probe`], [`crate::nm_client`]) and handed in as data. What a model
//! needs, and what each NetworkManager version has, is known in [`crate::nm::features`].

mod report;

pub use crate::nm::features::{needs, probe_candidates, supports, NmFeature, Since};
pub use report::{
    assess, makes_ports, By, CheckReport, Facts, HostDevice, InterfaceCheck, Item, KernelFacts, ModuleState,
    RuntimeFacts, Status,
};
