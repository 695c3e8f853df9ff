//! TEMPORARY stub (replaced by the real module on merge).
use sockmedic_model::FileNr;
use std::collections::BTreeMap;
use std::path::Path;
#[derive(Debug, thiserror::Error)]
pub enum ProcError { #[error("stub")] Stub }
pub type Sections<T> = BTreeMap<String, BTreeMap<String, T>>;
pub fn parse_sockstat(_t: &str) -> Result<Sections<u64>, ProcError> { Err(ProcError::Stub) }
pub fn parse_counter_table(_t: &str) -> Result<Sections<i64>, ProcError> { Err(ProcError::Stub) }
pub fn parse_file_nr(_t: &str) -> Result<FileNr, ProcError> { Err(ProcError::Stub) }
pub fn parse_numbers(_t: &str) -> Result<Vec<u64>, ProcError> { Err(ProcError::Stub) }
pub fn parse_port_ranges(_t: &str) -> Result<Vec<(u16, u16)>, ProcError> { Err(ProcError::Stub) }
pub fn read_text(_p: &Path) -> Result<String, ProcError> { Err(ProcError::Stub) }
pub fn read_sysctl(_r: &Path, _n: &str) -> Result<String, ProcError> { Err(ProcError::Stub) }
pub struct SysctlSpec { pub name: &'static str, pub optional: bool, pub why: &'static str }
pub const HOST_SYSCTLS: &[SysctlSpec] = &[];
pub const NETNS_SYSCTLS: &[SysctlSpec] = &[];
