//! TEMPORARY stub (replaced by the real module on merge).
use std::path::PathBuf;
pub struct NetnsHandle { pub id: u64, pub dev: u64, pub names: Vec<String>, pub path: PathBuf, pub processes: u64, pub host: bool, pub pid: Option<u32> }
pub struct NetnsScan { pub namespaces: Vec<NetnsHandle>, pub missing: Vec<sockmedic_model::Missing> }
#[derive(Debug, thiserror::Error)]
pub enum NetnsError { #[error("stub")] Stub }
pub fn discover() -> NetnsScan { NetnsScan { namespaces: vec![], missing: vec![] } }
pub fn current_netns_id() -> std::io::Result<u64> { Ok(0) }
pub fn run_in_netns<T: Send + 'static>(_ns: &NetnsHandle, f: impl FnOnce() -> T + Send + 'static) -> Result<T, NetnsError> { Ok(f()) }
pub fn select<'a>(scan: &'a NetnsScan, _s: &str) -> Result<Vec<&'a NetnsHandle>, NetnsError> { Ok(scan.namespaces.iter().collect()) }
