//! TEMPORARY stub of the sock_diag API (replaced by the real client on merge).
use sockmedic_model::Endpoint;
#[derive(Clone, Copy, Debug)]
pub enum Family {
    V4,
    V6,
    Both,
}
pub struct DumpRequest {
    pub family: Family,
    pub states: u32,
    pub sport: Option<(u16, u16)>,
}
#[derive(Clone, Copy, Debug, Default)]
pub struct DiagSocket {
    pub state: u8,
    pub timer: u8,
    pub retrans: u8,
    pub local: Endpoint,
    pub remote: Endpoint,
    pub expires_ms: u32,
    pub rqueue: u32,
    pub wqueue: u32,
    pub uid: u32,
    pub inode: u32,
    pub cookie: u64,
}
#[derive(Debug, Default, Clone, Copy)]
pub struct DumpStats {
    pub messages: u64,
    pub bytes: u64,
}
#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    #[error("stub")]
    Stub,
}
pub struct SockDiag;
impl SockDiag {
    pub fn open() -> Result<SockDiag, DiagError> {
        Err(DiagError::Stub)
    }
    pub fn dump(
        &mut self,
        _req: &DumpRequest,
        _f: impl FnMut(&DiagSocket),
    ) -> Result<DumpStats, DiagError> {
        Err(DiagError::Stub)
    }
}
pub fn bound_inactive_supported() -> bool {
    false
}
pub const ALL_STATES: u32 = 0xffe;
pub const BOUND_INACTIVE_BIT: u32 = 1 << 13;
