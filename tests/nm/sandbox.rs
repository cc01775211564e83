//! A throwaway NetworkManager per test, started by `integration/nm-sandbox.sh` and taken down
//! when the guard drops (also when the test fails).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The sandbox launcher.
pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("integration/nm-sandbox.sh")
}

/// Why real-NM tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    if !nix_is_root() {
        return Some("not running as root".into());
    }
    if !std::path::Path::new("/usr/sbin/NetworkManager").exists() {
        return Some("NetworkManager is not installed (integration/install-deps.sh)".into());
    }
    None
}

fn nix_is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A running sandbox.
pub struct Sandbox {
    pub name: String,
    pub env: HashMap<String, String>,
}

impl Sandbox {
    /// Starts one; `dhcp` runs a DHCP server on the wire side of eth0.
    pub fn up(dhcp: bool) -> Sandbox {
        Self::up_with_macs(dhcp, &[])
    }

    /// Starts one whose NICs have the given MACs (`("eth1", "52:54:00:…")`) from the start.
    pub fn up_with_macs(dhcp: bool, macs: &[(String, String)]) -> Sandbox {
        let name = format!("t{:x}{}", std::process::id() & 0xfff, NEXT.fetch_add(1, Ordering::SeqCst));
        let mut cmd = Command::new("bash");
        cmd.arg(script()).args(["up", &name]);
        if dhcp {
            cmd.arg("--dhcp");
        }
        for (nic, mac) in macs {
            cmd.args(["--mac", &format!("{nic}={mac}")]);
        }
        let out = cmd.output().expect("run nm-sandbox.sh");
        assert!(out.status.success(), "sandbox up failed: {}", String::from_utf8_lossy(&out.stderr));
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        Sandbox { name, env }
    }

    /// The sandbox's system bus address.
    pub fn bus(&self) -> &str {
        &self.env["DBUS_SYSTEM_BUS_ADDRESS"]
    }

    /// Where NM keeps keyfiles.
    pub fn keyfile_dir(&self) -> PathBuf {
        PathBuf::from(&self.env["NMIFACE_KEYFILE_DIR"])
    }

    /// The nmiface binary set up for this sandbox: its bus, its runtime directory.
    pub fn nmiface_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nmiface"));
        cmd.args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.bus())
            .env("NMIFACE_RUNTIME_DIR", self.runtime_dir())
            .env_remove("RUST_LOG");
        cmd
    }

    /// Runs the nmiface binary against this sandbox's NetworkManager.
    pub fn nmiface(&self, args: &[&str]) -> Output {
        self.nmiface_command(args).output().expect("run nmiface")
    }

    /// nmiface started in the background, for killing it or racing it.
    pub fn spawn_nmiface(&self, args: &[&str]) -> std::process::Child {
        self.nmiface_command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn nmiface")
    }

    /// Writes `xml` into the sandbox's directory as `name`; returns its path.
    pub fn write(&self, name: &str, xml: &str) -> String {
        let f = PathBuf::from(&self.env["NMIFACE_SANDBOX_DIR"]).join(name);
        std::fs::write(&f, xml).unwrap();
        f.to_string_lossy().into_owned()
    }

    /// Where nmiface keeps this sandbox's transaction file and lock.
    pub fn runtime_dir(&self) -> PathBuf {
        PathBuf::from(&self.env["NMIFACE_SANDBOX_DIR"]).join("nmiface-run")
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to NetworkManager.
    pub fn signal_nm(&self, signal: &str) {
        let _ = Command::new("kill").args([&format!("-{signal}"), &self.nm_pid().to_string()]).status();
    }

    /// NetworkManager's pid.
    pub fn nm_pid(&self) -> i32 {
        let f = PathBuf::from(&self.env["NMIFACE_SANDBOX_DIR"]).join("nm.pid");
        std::fs::read_to_string(f).unwrap().trim().parse().unwrap()
    }

    /// Runs a command in NM's network namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("bash").arg(script()).args(["exec", &self.name, "--"]).args(args).output().expect("exec")
    }

    /// `ip -j ARGS` in NM's namespace, parsed.
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["ip", "-j"];
        full.extend_from_slice(args);
        let out = self.exec(&full);
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// A client of this sandbox's NetworkManager.
    pub async fn client(&self) -> nmiface::nm_client::NmClient {
        let conn = zbus::connection::Builder::address(self.bus()).unwrap().build().await.unwrap();
        nmiface::nm_client::NmClient::new(conn).await.unwrap()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).args(["down", &self.name]).output();
    }
}
