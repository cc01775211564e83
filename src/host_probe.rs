//! What the running kernel offers, read from `/sys/module` and `/lib/modules/RELEASE`
//! (`modules.builtin`, `modules.dep`). Reads files only: no daemon, no root needed.
//!
//! A module missing from `/sys/module` may still load on demand (NetworkManager runs
//! `modprobe` before creating a bond), so a module counts as missing only when it is neither
//! loaded, built in, nor present under `/lib/modules`.

use crate::gaps::{KernelFacts, ModuleState};
use std::path::Path;

/// The running kernel's bonding, 802.1Q and bridge support.
pub fn kernel() -> KernelFacts {
    kernel_at(Path::new("/"))
}

/// [`kernel`] with another root directory, for tests.
pub fn kernel_at(root: &Path) -> KernelFacts {
    let release =
        std::fs::read_to_string(root.join("proc/sys/kernel/osrelease")).unwrap_or_default().trim().to_string();
    let moddir = root.join("lib/modules").join(&release);
    let builtin = std::fs::read_to_string(moddir.join("modules.builtin")).unwrap_or_default();
    let dep = std::fs::read_to_string(moddir.join("modules.dep")).unwrap_or_default();
    let state = |name: &str| {
        let file = format!("/{name}.ko");
        let listed = |text: &str| {
            text.lines().any(|l| {
                let path = l.split(':').next().unwrap_or("");
                path.ends_with(&file) || [".xz", ".zst", ".gz"].iter().any(|z| path.ends_with(&format!("{file}{z}")))
            })
        };
        if listed(&builtin) {
            ModuleState::BuiltIn
        } else if root.join("sys/module").join(name).exists() {
            ModuleState::Loaded
        } else if listed(&dep) {
            ModuleState::Loadable
        } else {
            ModuleState::Missing
        }
    };
    KernelFacts { bonding: state("bonding"), vlan: state("8021q"), bridge: state("bridge"), release }
}

/// The programs NetworkManager runs for NAT sharing.
pub fn runtime() -> crate::gaps::RuntimeFacts {
    crate::gaps::RuntimeFacts {
        dnsmasq: find_program(&["dnsmasq"]),
        nft: find_program(&["nft"]),
        iptables: find_program(&["iptables"]),
    }
}

/// The first of `names` found as an executable in `PATH` or the sbin directories.
pub fn find_program(names: &[&str]) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs: Vec<&str> = path.split(':').chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"]).collect();
    for name in names {
        for d in &dirs {
            let p = Path::new(d).join(name);
            if p.is_file() {
                return Some(p.display().to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_builtin_loaded_loadable_and_missing() {
        let root = std::env::temp_dir().join(format!("nmiface-kernel-{}", std::process::id()));
        let m = root.join("lib/modules/6.1.0-test");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
        std::fs::create_dir_all(root.join("sys/module/bridge")).unwrap();
        std::fs::write(root.join("proc/sys/kernel/osrelease"), "6.1.0-test\n").unwrap();
        std::fs::write(m.join("modules.builtin"), "kernel/net/8021q/8021q.ko\n").unwrap();
        std::fs::write(m.join("modules.dep"), "kernel/drivers/net/bonding/bonding.ko.xz: kernel/net/tls/tls.ko.xz\n")
            .unwrap();
        let k = kernel_at(&root);
        assert_eq!(k.release, "6.1.0-test");
        assert_eq!((k.bonding, k.vlan, k.bridge), (ModuleState::Loadable, ModuleState::BuiltIn, ModuleState::Loaded));
        std::fs::remove_file(m.join("modules.dep")).unwrap();
        assert_eq!(kernel_at(&root).bonding, ModuleState::Missing);
        let _ = std::fs::remove_dir_all(root);
    }
}
