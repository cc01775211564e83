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
        let mut args = Vec::new();
        if dhcp {
            args.push("--dhcp".to_string());
        }
        for (nic, mac) in macs {
            args.extend(["--mac".to_string(), format!("{nic}={mac}")]);
        }
        Self::start(&args)
    }

    /// Starts one fit for unprivileged callers (`up --users`): users `nmia` and `nmib`, a
    /// default-deny system bus with NetworkManager's own policy, a polkit stand-in that answers
    /// no until told otherwise ([`Sandbox::polkit`]), and logind records NetworkManager watches
    /// ([`Sandbox::login`]). With `auth_polkit` false NetworkManager runs with
    /// `auth-polkit=false` and never asks polkit.
    pub fn up_users(auth_polkit: bool) -> Sandbox {
        let mut args = vec!["--users".to_string()];
        if !auth_polkit {
            args.extend(["--auth-polkit".to_string(), "false".to_string()]);
        }
        Self::start(&args)
    }

    fn start(options: &[String]) -> Sandbox {
        let name = format!("t{:x}{}", std::process::id() & 0xfff, NEXT.fetch_add(1, Ordering::SeqCst));
        let mut cmd = Command::new("bash");
        cmd.arg(script()).args(["up", &name]).args(options);
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

    /// The sandbox's state directory.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(&self.env["NMIFACE_SANDBOX_DIR"])
    }

    /// The first unprivileged user of an [`Sandbox::up_users`] sandbox: (name, uid).
    pub fn user_a(&self) -> (String, u32) {
        self.user("A")
    }

    /// The second unprivileged user: (name, uid).
    pub fn user_b(&self) -> (String, u32) {
        self.user("B")
    }

    fn user(&self, which: &str) -> (String, u32) {
        let name = self.env.get(&format!("NMIFACE_USER_{which}")).expect("not a --users sandbox").clone();
        let uid = self.env[&format!("NMIFACE_UID_{which}")].parse().unwrap();
        (name, uid)
    }

    /// Runs one of the launcher's commands for this sandbox; panics if it fails.
    fn command(&self, cmd: &str, args: &[&str]) -> Output {
        let out = Command::new("bash").arg(script()).args([cmd, &self.name]).args(args).output().expect(cmd);
        assert!(out.status.success(), "nm-sandbox.sh {cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// Makes the polkit stand-in answer `answer` (`yes`, `no` or `auth`) when NetworkManager asks
    /// about `uid` and `action` (an fnmatch pattern, e.g. `org.freedesktop.NetworkManager.*`),
    /// replacing an earlier answer for the same pair. Takes effect at the next question.
    pub fn polkit(&self, uid: u32, action: &str, answer: &str) {
        self.command("polkit", &[&uid.to_string(), action, answer]);
    }

    /// Every question NetworkManager asked polkit so far, one line each:
    /// `UID ACTION FLAGS ANSWER` (flags 1 = the caller allows interaction).
    pub fn polkit_log(&self) -> String {
        std::fs::read_to_string(self.dir().join("polkit.log")).unwrap_or_default()
    }

    /// Logs `user` in as logind would (an online, active session): NetworkManager then shows
    /// and autoconnects the profiles whose `connection.permissions` name that user.
    pub fn login(&self, user: &str) {
        self.command("login", &[user]);
    }

    /// `user` (uid `uid`) at the desk: logged in, and polkit says yes to the two actions Debian
    /// gives a local active session (`settings.modify.own`, `network-control`).
    pub fn at_desk(&self, user: &str, uid: u32) {
        self.login(user);
        for action in ["settings.modify.own", "network-control"] {
            self.polkit(uid, &format!("org.freedesktop.NetworkManager.{action}"), "yes");
        }
    }

    /// Restarts NetworkManager (TERM, then the same configuration and profiles); returns once it
    /// is ready. Login records are gone with its mount namespace: log users in again.
    pub fn restart_nm(&self) {
        self.command("restart", &[]);
    }

    /// Logs `user` out: NetworkManager hides that user's private profiles and takes down what
    /// the user activated while logged in.
    pub fn logout(&self, user: &str) {
        self.command("logout", &[user]);
    }

    /// Starts `user`'s session bus (run as that user, only that user may connect; in
    /// NetworkManager's network namespace but not its mount namespace, like a user's processes
    /// on a real host) with `servicedir` for D-Bus activation; returns its address and the
    /// user's runtime directory (`XDG_RUNTIME_DIR`), which [`Sandbox::as_user`] also sets.
    pub fn session_bus(&self, user: &str, servicedir: &std::path::Path) -> (String, PathBuf) {
        let out = self.command("session-bus", &[user, servicedir.to_str().unwrap()]);
        assert!(out.status.success(), "session-bus: {}", String::from_utf8_lossy(&out.stderr));
        let env: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        (env["DBUS_SESSION_BUS_ADDRESS"].clone(), PathBuf::from(&env["XDG_RUNTIME_DIR"]))
    }

    /// `args` run as `user` in NetworkManager's namespace, with this sandbox's system bus, the
    /// user's `XDG_RUNTIME_DIR` and session bus (once started).
    pub fn as_user(&self, user: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(script()).args(["as", &self.name, user, "--"]).args(args);
        cmd
    }

    /// A service directory for session buses in which `org.nmiface.Interfaces1` is the built
    /// binary's `session --idle-exit IDLE_EXIT`: D-Bus activation as a desktop would do it.
    pub fn service_dir(&self, idle_exit: u32) -> PathBuf {
        let dir = self.dir().join("services");
        std::fs::create_dir_all(&dir).unwrap();
        let service = format!(
            "[D-BUS Service]\nName=org.nmiface.Interfaces1\nExec=/usr/bin/env RUST_LOG=nmiface=info {} session --idle-exit {idle_exit}\n",
            env!("CARGO_BIN_EXE_nmiface")
        );
        std::fs::write(dir.join("org.nmiface.Interfaces1.service"), service).unwrap();
        let _ = Command::new("chmod").args(["-R", "a+rX", dir.to_str().unwrap()]).status();
        dir
    }

    /// `gdbus monitor` of the session service on `user`'s bus, in the background, writing to a
    /// file, line-buffered. It runs as `user`, so killing our child may not end it: it ends with
    /// the session bus or after five minutes.
    pub fn monitor(&self, user: &str, name: &str) -> Monitor {
        let file = self.dir().join(format!("monitor-{name}.log"));
        let args =
            ["stdbuf", "-oL", "timeout", "300", "gdbus", "monitor", "--session", "--dest", "org.nmiface.Interfaces1"];
        let child = self
            .as_user(user, &args)
            .stdout(std::fs::File::create(&file).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("gdbus monitor");
        std::thread::sleep(std::time::Duration::from_millis(300));
        Monitor { child, file }
    }

    /// A client of this sandbox's NetworkManager.
    pub async fn client(&self) -> nmiface::nm_client::NmClient {
        let conn = zbus::connection::Builder::address(self.bus()).unwrap().build().await.unwrap();
        nmiface::nm_client::NmClient::new(conn).await.unwrap()
    }
}

/// A running `gdbus monitor` of the session service (see [`Sandbox::monitor`]).
pub struct Monitor {
    child: std::process::Child,
    file: PathBuf,
}

impl Monitor {
    /// What it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.file).unwrap_or_default()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).args(["down", &self.name]).output();
    }
}
