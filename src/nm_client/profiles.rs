//! Profiles through NetworkManager's Settings API: read (concurrently), look up, probe, add,
//! update, delete, and read exactly with secrets for the journal.

use super::proxies::{self, SettingsConnectionProxy};
use super::{
    from_owned, profile_from_dbus, profile_from_dbus_exact, to_dbus, NmClient, NmError, StoredProfile, CONCURRENCY,
};
use crate::nm::Profile;
use futures_util::{stream, StreamExt, TryStreamExt};
use std::collections::HashMap;
use tracing::debug;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};

impl NmClient {
    /// Every profile, fetched concurrently. Profiles that vanish meanwhile are skipped.
    pub async fn profiles(&self) -> Result<Vec<StoredProfile>, NmError> {
        debug!(call = "ListConnections");
        let paths = self.settings.list_connections().await?;
        let conn = &self.conn;
        let fetched: Vec<Option<StoredProfile>> = stream::iter(paths)
            .map(|path| async move {
                let proxy: SettingsConnectionProxy<'_> = proxies::build(conn, path.clone()).await?;
                debug!(call = "GetSettings", %path);
                match proxy.get_settings().await.map_err(NmError::from) {
                    Ok(s) => Ok(profile_from_dbus(&s).ok().map(|profile| StoredProfile { path, profile })),
                    // Deleted between the list and the read: not an error. A profile private to
                    // another user is listed to everyone but readable only by them: not ours.
                    Err(NmError::ObjectGone | NmError::PermissionDenied { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(fetched.into_iter().flatten().collect())
    }

    /// The profile with this UUID, if there is one.
    pub async fn profile_by_uuid(&self, uuid: &str) -> Result<Option<StoredProfile>, NmError> {
        debug!(call = "GetConnectionByUuid", uuid);
        let path = match self.settings.get_connection_by_uuid(uuid).await.map_err(NmError::from) {
            Ok(p) => p,
            // Not yours is not here: another user's private profile under this UUID (one that
            // squats a UUID nmiface derives) must not break this caller's lookups.
            Err(NmError::UnknownConnection | NmError::PermissionDenied { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let proxy: SettingsConnectionProxy<'_> = proxies::build(&self.conn, path.clone()).await?;
        debug!(call = "GetSettings", %path);
        let s = match proxy.get_settings().await.map_err(NmError::from) {
            Ok(s) => s,
            // Another user's private profile: invisible to this caller, so not theirs to find.
            Err(NmError::ObjectGone | NmError::PermissionDenied { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(profile_from_dbus(&s).ok().map(|profile| StoredProfile { path, profile }))
    }

    /// Asks the daemon whether it knows `setting.property`, without creating anything: the
    /// candidate has no `connection.type`, so verification fails after parsing; an "unknown
    /// property" (or setting) error means it is not known, "connection.type missing" that it is.
    /// Parse errors come before authorization, so this works unprivileged too.
    pub async fn knows_property(
        &self,
        setting: &str,
        property: &str,
        value: crate::nm::Value,
    ) -> Result<bool, NmError> {
        use crate::nm::{Key, Settings, Value};
        let mut s = Settings::new();
        s.entry(Key::Borrowed("connection"))
            .or_default()
            .insert(Key::Borrowed("id"), Value::Str("nmiface-probe".into()));
        s.entry(Key::Owned(setting.to_string())).or_default().insert(Key::Owned(property.to_string()), value);
        debug!(call = "AddConnection2 (probe)", setting, property);
        match self.settings.add_connection2(to_dbus(&s), 0x2, HashMap::new()).await {
            Ok((path, _)) => {
                // Should not happen; do not leave it behind.
                let _ = self.delete(&path).await;
                Ok(true)
            }
            Err(e) => match NmError::from(e) {
                NmError::UnknownProperty { .. } => Ok(false),
                // Parsed, then refused for the missing connection.type: the property is known.
                NmError::InvalidProperty { .. } => Ok(true),
                other => Err(other),
            },
        }
    }

    /// `stored` read again exactly (every value as NetworkManager holds it, the types nmiface
    /// never reads included) with its secrets filled in, for every setting that can hold
    /// secrets: what a journal must keep to restore the profile (GetSettings never returns
    /// secrets).
    pub async fn with_secrets(&self, stored: &StoredProfile) -> Result<Profile, NmError> {
        /// Settings that carry secrets (NM's `secret-flags` properties).
        const SECRET_SETTINGS: [&str; 10] = [
            "802-1x",
            "802-11-wireless-security",
            "vpn",
            "pppoe",
            "gsm",
            "cdma",
            "wireguard",
            "macsec",
            "adsl",
            "wifi-p2p",
        ];
        let proxy: SettingsConnectionProxy<'_> = proxies::build(&self.conn, stored.path.clone()).await?;
        debug!(call = "GetSettings", path = %stored.path);
        let raw = proxy.get_settings().await?;
        let mut p = profile_from_dbus_exact(&raw).unwrap_or_else(|_| stored.profile.clone());
        let names: Vec<&str> = SECRET_SETTINGS.into_iter().filter(|n| p.settings.contains_key(*n)).collect();
        for name in names {
            debug!(call = "GetSecrets", path = %stored.path, setting = name);
            let secrets = proxy.get_secrets(name).await?;
            for (setting, props) in secrets {
                let target = p.settings.entry(crate::nm::Key::Owned(setting)).or_default();
                for (k, v) in props {
                    if let Some(v) = from_owned(&v) {
                        target.insert(crate::nm::Key::Owned(k), v);
                    }
                }
            }
        }
        Ok(p)
    }

    /// Adds a profile; returns its object path.
    pub async fn add(&self, p: &Profile, flags: u32) -> Result<OwnedObjectPath, NmError> {
        debug!(call = "AddConnection2", id = %p.id, uuid = %p.uuid, flags);
        let args: HashMap<&str, zbus::zvariant::Value<'_>> = HashMap::new();
        let (path, _): (OwnedObjectPath, HashMap<String, zbus::zvariant::OwnedValue>) =
            self.change(self.settings.inner(), "AddConnection2", &(to_dbus(&p.settings), flags, args)).await?;
        Ok(path)
    }

    /// Replaces a profile's settings.
    pub async fn update(&self, path: &ObjectPath<'_>, p: &Profile, flags: u32) -> Result<(), NmError> {
        debug!(call = "Update2", %path, id = %p.id, flags);
        let proxy: SettingsConnectionProxy<'_> = proxies::build(&self.conn, path.clone()).await?;
        let args: HashMap<&str, zbus::zvariant::Value<'_>> = HashMap::new();
        let _: HashMap<String, zbus::zvariant::OwnedValue> =
            self.change(proxy.inner(), "Update2", &(to_dbus(&p.settings), flags, args)).await?;
        Ok(())
    }

    /// Deletes a profile.
    pub async fn delete(&self, path: &ObjectPath<'_>) -> Result<(), NmError> {
        debug!(call = "Delete", %path);
        let proxy: SettingsConnectionProxy<'_> = proxies::build(&self.conn, path.clone()).await?;
        self.change::<_, ()>(proxy.inner(), "Delete", &()).await
    }

    /// The keyfile behind a profile.
    pub async fn filename(&self, path: &ObjectPath<'_>) -> Result<String, NmError> {
        let proxy: SettingsConnectionProxy<'_> = proxies::build(&self.conn, path.clone()).await?;
        Ok(proxy.filename().await?)
    }

    /// Loads keyfiles; returns the files NetworkManager could not load.
    pub async fn load_keyfiles(&self, files: &[&str]) -> Result<Vec<String>, NmError> {
        debug!(call = "LoadConnections", count = files.len());
        let (_, failures) = self.settings.load_connections(files).await?;
        Ok(failures)
    }
}
