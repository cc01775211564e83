//! Checks that span several interfaces: duplicate names, ports claimed twice, cycles.

use super::{Host, IfName, Interface, Kind, Member};
use std::collections::{BTreeMap, BTreeSet};

/// A rule about the whole set of interfaces was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The same kernel name is defined twice.
    #[error("interface '{name}' is defined twice")]
    Duplicate {
        /// The repeated name.
        name: IfName,
    },
    /// One interface is a port of two controllers.
    #[error("'{port}' is a port of both '{first}' and '{second}'; an interface can have only one controller")]
    PortOfTwo {
        /// The port.
        port: IfName,
        /// The controller seen first.
        first: IfName,
        /// The second controller.
        second: IfName,
    },
    /// Two interfaces carry the same fixed UUID (the draft's `<uuid>`).
    #[error("interface '{name}' has UUID {uuid}, which '{first}' already has; profile UUIDs must be unique")]
    DuplicateUuid {
        /// The second interface with it.
        name: IfName,
        /// The first.
        first: IfName,
        /// The UUID.
        uuid: uuid::Uuid,
    },
    /// Interfaces depend on each other in a circle (a VLAN on its own bridge, two VLANs on each other).
    #[error("dependency cycle: {}", cycle.iter().map(IfName::as_str).collect::<Vec<_>>().join(" -> "))]
    Cycle {
        /// The names around the cycle, the first repeated at the end.
        cycle: Vec<IfName>,
    },
}

impl HostError {
    /// The interface whose definition the error should point at (`None` only for an empty
    /// cycle, which validation never builds).
    pub fn subject(&self) -> Option<&IfName> {
        match self {
            HostError::Duplicate { name } | HostError::DuplicateUuid { name, .. } => Some(name),
            HostError::PortOfTwo { port, .. } => Some(port),
            HostError::Cycle { cycle } => cycle.first(),
        }
    }
}

/// Every interface a host defines, with what it needs to exist first.
struct Graph<'a> {
    /// name -> names it depends on (a VLAN's parent, a controller's ports).
    deps: BTreeMap<&'a IfName, Vec<&'a IfName>>,
}

impl Host {
    /// Checks the rules that span interfaces. Types already rule out nested bridges and VLANs
    /// inside bonds.
    pub fn validate(&self) -> Result<(), HostError> {
        Self::validate_interfaces(self.interfaces.iter())
    }

    /// [`Host::validate`] over interfaces not yet gathered into a host.
    pub fn validate_interfaces<'a>(interfaces: impl Iterator<Item = &'a Interface>) -> Result<(), HostError> {
        let mut defined = BTreeSet::new();
        let mut controller_of: BTreeMap<&IfName, &IfName> = BTreeMap::new();
        let mut graph = Graph { deps: BTreeMap::new() };
        let mut uuids: BTreeMap<uuid::Uuid, &IfName> = BTreeMap::new();
        for iface in interfaces {
            if !defined.insert(&iface.name) {
                return Err(HostError::Duplicate { name: iface.name.clone() });
            }
            if let Some(u) = iface.uuid {
                if let Some(first) = uuids.insert(u, &iface.name) {
                    return Err(HostError::DuplicateUuid { name: iface.name.clone(), first: first.clone(), uuid: u });
                }
            }
            graph.add_interface(iface, &mut |ctrl, port| {
                if let Some(first) = controller_of.insert(port, ctrl) {
                    return Err(HostError::PortOfTwo {
                        port: port.clone(),
                        first: first.clone(),
                        second: ctrl.clone(),
                    });
                }
                Ok(())
            })?;
        }
        // A port defined again at top level would be two profiles fighting over one device.
        for port in controller_of.keys() {
            if defined.contains(*port) {
                return Err(HostError::Duplicate { name: (*port).clone() });
            }
        }
        graph.find_cycle()
    }

    /// Interfaces in an order where each comes after what it depends on (VLAN parents before
    /// VLANs); ports stay inside their controllers.
    pub fn dependency_order(&self) -> Vec<&Interface> {
        let index: BTreeMap<&IfName, usize> =
            self.interfaces.iter().enumerate().map(|(i, iface)| (&iface.name, i)).collect();
        let mut done = vec![false; self.interfaces.len()];
        let mut out = Vec::with_capacity(self.interfaces.len());
        fn visit<'a>(
            i: usize,
            host: &'a Host,
            index: &BTreeMap<&IfName, usize>,
            done: &mut [bool],
            out: &mut Vec<&'a Interface>,
        ) {
            if done[i] {
                return;
            }
            done[i] = true;
            for parent in vlan_parents(&host.interfaces[i]) {
                if let Some(&j) = index.get(parent) {
                    visit(j, host, index, done, out);
                }
            }
            out.push(&host.interfaces[i]);
        }
        for i in 0..self.interfaces.len() {
            visit(i, self, &index, &mut done, &mut out);
        }
        out
    }
}

impl Host {
    /// The interfaces in waves that can each start at once: every interface comes in a later
    /// wave than the VLAN parents it depends on (controllers start with their ports, which
    /// live inside them). Within a wave, dependency order.
    pub fn start_waves(&self) -> Vec<Vec<&Interface>> {
        let mut level: BTreeMap<&IfName, usize> = BTreeMap::new();
        let mut waves: Vec<Vec<&Interface>> = Vec::new();
        for iface in self.dependency_order() {
            // Parents come first in dependency order, so their level is known (cycles are
            // refused before a host exists).
            let l = vlan_parents(iface).iter().filter_map(|p| level.get(p)).map(|l| l + 1).max().unwrap_or(0);
            level.insert(&iface.name, l);
            if waves.len() <= l {
                waves.resize_with(l + 1, Vec::new);
            }
            if let Some(w) = waves.get_mut(l) {
                w.push(iface);
            }
        }
        waves
    }
}

/// Parents of every VLAN in this interface, itself or among its ports.
fn vlan_parents(iface: &Interface) -> Vec<&IfName> {
    match &iface.kind {
        Kind::Vlan(v) => vec![&v.parent],
        Kind::Bridge(b) => b
            .ports
            .iter()
            .filter_map(|m| match m {
                Member::Vlan { vlan, .. } => Some(&vlan.parent),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

impl<'a> Graph<'a> {
    fn add_interface(
        &mut self,
        iface: &'a Interface,
        claim: &mut dyn FnMut(&'a IfName, &'a IfName) -> Result<(), HostError>,
    ) -> Result<(), HostError> {
        let name = &iface.name;
        match &iface.kind {
            Kind::Ethernet(_) => {
                self.deps.entry(name).or_default();
            }
            Kind::Vlan(v) => self.deps.entry(name).or_default().push(&v.parent),
            Kind::Bond(b) => {
                for p in &b.ports {
                    claim(name, &p.name)?;
                    self.deps.entry(name).or_default().push(&p.name);
                }
            }
            Kind::Bridge(br) => {
                for m in &br.ports {
                    claim(name, m.name())?;
                    self.deps.entry(name).or_default().push(m.name());
                    match m {
                        Member::Ethernet(_) => {}
                        Member::Vlan { name: vname, vlan } => self.deps.entry(vname).or_default().push(&vlan.parent),
                        Member::Bond { name: bname, bond } => {
                            for p in &bond.ports {
                                claim(bname, &p.name)?;
                                self.deps.entry(bname).or_default().push(&p.name);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Depth-first search with colours; returns the first cycle found, in name order.
    fn find_cycle(&self) -> Result<(), HostError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Visiting,
            Done,
        }
        let mut marks: BTreeMap<&IfName, Mark> = BTreeMap::new();
        let mut stack: Vec<&IfName> = Vec::new();
        fn dfs<'a>(
            n: &'a IfName,
            g: &Graph<'a>,
            marks: &mut BTreeMap<&'a IfName, Mark>,
            stack: &mut Vec<&'a IfName>,
        ) -> Result<(), HostError> {
            match marks.get(n) {
                Some(Mark::Done) => return Ok(()),
                Some(Mark::Visiting) => {
                    let start = stack.iter().position(|s| *s == n).unwrap_or(0);
                    let mut cycle: Vec<IfName> = stack[start..].iter().map(|s| (*s).clone()).collect();
                    cycle.push(n.clone());
                    return Err(HostError::Cycle { cycle });
                }
                None => {}
            }
            marks.insert(n, Mark::Visiting);
            stack.push(n);
            for d in g.deps.get(n).into_iter().flatten() {
                dfs(d, g, marks, stack)?;
            }
            stack.pop();
            marks.insert(n, Mark::Done);
            Ok(())
        }
        for n in self.deps.keys() {
            dfs(n, self, &mut marks, &mut stack)?;
        }
        Ok(())
    }
}
