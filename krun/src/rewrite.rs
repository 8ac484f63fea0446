//! What krun changes in a container's configuration: the process runs under km
//! (bind-mounted read-only at the same path as on the host), with /dev/kvm as a
//! device the container may use. Everything else stays as it was. Each change is
//! made once: rewriting an already rewritten configuration changes nothing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    MountBuilder, Process, Spec,
};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The annotation whose value (options separated by white space) goes to km.
pub const KM_OPTIONS_ANNOTATION: &str = "app.kontain.km-options";
/// The device km opens.
pub const KVM_PATH: &str = "/dev/kvm";

/// A character device as the host has it.
#[derive(Clone, Copy, Debug)]
pub struct CharDevice {
    pub major: i64,
    pub minor: i64,
    pub mode: u32,
}

/// What the rewritten process runs: km's path (the same on the host and in the
/// container) and the options km gets before the payload.
pub struct Km<'a> {
    pub path: &'a Path,
    pub options: &'a [String],
}

/// Rewrites a config.json (`config`, checked to be an OCI runtime configuration)
/// to run its process under km with `kvm` available. Only the fields krun sets
/// change: the rest of the document, fields oci-spec does not know included, is
/// written back as it was read.
pub fn rewrite_config(config: &mut Value, km: &Km, kvm: CharDevice) -> Result<()> {
    let spec =
        Spec::deserialize(&*config).context("config.json is not an OCI runtime configuration")?;
    let options: Vec<String> = km
        .options
        .iter()
        .cloned()
        .chain(annotated_options(&spec))
        .collect();
    let process = spec
        .process()
        .as_ref()
        .context("config.json has no process to run")?;
    let args = args_under_km(
        process,
        &Km {
            path: km.path,
            options: &options,
        },
    )?;
    field(config, &["process"])?.insert("args".into(), args.into());
    mount_km(config, km.path)?;
    add_kvm_device(config, kvm)
}

/// Rewrites an `exec --process` document the same way as a configuration's process.
pub fn rewrite_process(doc: &mut Value, km: &Km) -> Result<()> {
    let process = Process::deserialize(&*doc).context("not an OCI process description")?;
    let args = args_under_km(&process, km)?;
    field(doc, &[])?.insert("args".into(), args.into());
    Ok(())
}

/// km's options from the configuration's annotation.
fn annotated_options(spec: &Spec) -> Vec<String> {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(KM_OPTIONS_ANNOTATION))
        .map(|v| v.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// `process.args` as km runs them: km, its options, then the process's own
/// arguments; unchanged when they already start with km.
fn args_under_km(process: &Process, km: &Km) -> Result<Vec<String>> {
    let args = process
        .args()
        .as_ref()
        .filter(|a| !a.is_empty())
        .context("the process has no args (process.args) to run under km")?;
    let km_path = km.path.to_str().context("km's path is not UTF-8")?;
    if args[0] == km_path {
        return Ok(args.clone());
    }
    Ok(std::iter::once(km_path.to_owned())
        .chain(km.options.iter().cloned())
        .chain(args.iter().cloned())
        .collect())
}

/// The object at `path` in `doc`, made (empty) where missing.
fn field<'a>(doc: &'a mut Value, path: &[&str]) -> Result<&'a mut Map<String, Value>> {
    let mut at = doc;
    for name in path {
        let object = at
            .as_object_mut()
            .with_context(|| format!("config.json: the parent of {name} is not an object"))?;
        at = object
            .entry(*name)
            .or_insert_with(|| Value::Object(Map::new()));
    }
    at.as_object_mut()
        .with_context(|| format!("config.json: {} is not an object", path.join(".")))
}

/// The array `name` of the object at `path` in `doc`, made (empty) where missing.
fn array<'a>(doc: &'a mut Value, path: &[&str], name: &str) -> Result<&'a mut Vec<Value>> {
    field(doc, path)?
        .entry(name)
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .with_context(|| format!("config.json: {name} is not an array"))
}

/// A read-only bind mount of km at its own path, replacing any other mount there.
fn mount_km(config: &mut Value, km: &Path) -> Result<()> {
    let mount = MountBuilder::default()
        .destination(km)
        .typ("bind")
        .source(km)
        .options(vec!["bind".to_owned(), "ro".to_owned()])
        .build()
        .context("building km's mount")?;
    let mount = serde_json::to_value(mount)?;
    let mounts = array(config, &[], "mounts")?;
    if !mounts.contains(&mount) {
        mounts.retain(|m| m.get("destination") != mount.get("destination"));
        mounts.push(mount);
    }
    Ok(())
}

/// /dev/kvm in `linux.devices` (replacing another entry for that path) and
/// allowed in the device cgroup (`linux.resources.devices`).
fn add_kvm_device(config: &mut Value, kvm: CharDevice) -> Result<()> {
    let device = serde_json::to_value(kvm_device(kvm)?)?;
    let devices = array(config, &["linux"], "devices")?;
    if !devices.contains(&device) {
        devices.retain(|d| d.get("path") != device.get("path"));
        devices.push(device);
    }
    let rule = serde_json::to_value(kvm_cgroup_rule(kvm)?)?;
    let rules = array(config, &["linux", "resources"], "devices")?;
    if !rules.contains(&rule) {
        rules.push(rule);
    }
    Ok(())
}

fn kvm_device(kvm: CharDevice) -> Result<LinuxDevice> {
    LinuxDeviceBuilder::default()
        .path(PathBuf::from(KVM_PATH))
        .typ(LinuxDeviceType::C)
        .major(kvm.major)
        .minor(kvm.minor)
        .file_mode(kvm.mode)
        .uid(0u32)
        .gid(0u32)
        .build()
        .context("building the /dev/kvm device")
}

fn kvm_cgroup_rule(kvm: CharDevice) -> Result<LinuxDeviceCgroup> {
    LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(LinuxDeviceType::C)
        .major(kvm.major)
        .minor(kvm.minor)
        .access("rwm")
        .build()
        .context("building the /dev/kvm cgroup rule")
}

/// The host's /dev/kvm: its numbers and permission bits.
pub fn host_kvm() -> Result<CharDevice> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(KVM_PATH).with_context(|| format!("{KVM_PATH} on the host"))?;
    if !meta.file_type().is_char_device() {
        bail!("{KVM_PATH} on the host is not a character device");
    }
    let dev = meta.rdev();
    // Linux's encoding of a device number (glibc's gnu_dev_major/minor).
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000);
    let minor = (dev & 0xff) | ((dev >> 12) & 0xffff_ff00);
    Ok(CharDevice {
        major: i64::try_from(major).context("/dev/kvm's major number")?,
        minor: i64::try_from(minor).context("/dev/kvm's minor number")?,
        mode: meta.mode() & 0o7777,
    })
}
