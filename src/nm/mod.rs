//! NetworkManager profiles: settings as data, the translation from the model, keyfiles, and
//! the way back. Pure: nothing here talks to a daemon.

mod bond;
pub mod carry;
pub mod compare;
pub mod device;
pub mod features;
mod ip;
mod keyfile;
mod keyfile_dir;
pub mod leases;
pub mod merge;
pub mod neigh;
mod profile;
pub mod reasons;
mod reverse;
mod scope;
pub mod tap;
mod translate;
mod value;
mod version;

pub use bond::{bond_options, BOND_CORE_KEYS};
pub use device::{vlan_flag, ActiveState, DeviceState, DeviceType};
pub use features::{needs, supports, NmFeature, Since};
pub use keyfile::to_keyfile;
pub use keyfile_dir::{write_keyfiles, KeyfileWriteError, KEYFILE_MODE};
pub use profile::{conn_type, user_key, Key, Profile, Setting, Settings, USER_DATA_VALUE_MAX};
pub use reverse::{host_from_profiles, host_from_profiles_around, Around, Recovered, ReverseError};
pub use scope::Scope;
pub use translate::{port_id, profile_uuid, translate, InterfaceProfiles, Translation, UUID_NAMESPACE};
pub use value::Value;
pub use version::{NmVersion, Target, BASELINE};
