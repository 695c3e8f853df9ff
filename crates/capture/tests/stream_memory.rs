//! A stream (stdin, gzip) is read through a window: memory stays flat however long the
//! capture is. Alone in its test binary, so that the process's peak RSS is its own.

mod common;

use common::fixture;
use sockmedic_capture::{analyze, Capture, Config};
use std::io::Read;

/// lo.pcap's header, then its records again and again until `total` bytes.
struct Repeated {
    header: Vec<u8>,
    records: Vec<u8>,
    pos: usize,
    total: usize,
}

impl Read for Repeated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.total {
            return Ok(0);
        }
        let n = if self.pos < self.header.len() {
            let rest = &self.header[self.pos..];
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            n
        } else {
            let at = (self.pos - self.header.len()) % self.records.len();
            let rest = &self.records[at..];
            let n = rest.len().min(buf.len()).min(self.total - self.pos);
            buf[..n].copy_from_slice(&rest[..n]);
            n
        };
        self.pos += n;
        Ok(n)
    }
}

/// Peak resident memory of this process, in KiB.
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn memory_does_not_grow_with_a_streamed_capture() {
    let file = std::fs::read(fixture("lo.pcap")).unwrap();
    let (header, records) = file.split_at(24);
    const TOTAL: usize = 256 << 20;
    let before = vm_hwm_kib();
    let stream = Repeated {
        header: header.to_vec(),
        records: records.to_vec(),
        pos: 0,
        total: header.len() + records.len() * (TOTAL / records.len()),
    };
    let (summary, err) = analyze(
        &mut Capture::from_reader(stream).unwrap(),
        Config::default(),
    );
    assert!(err.is_none(), "{err:?}");
    let copies = (TOTAL / records.len()) as u64;
    assert_eq!(summary.packets, 60 * copies, "every packet of every copy");
    assert_eq!(summary.fin_packets, 10 * copies);
    let grew_mib = (vm_hwm_kib() - before) / 1024;
    assert!(
        grew_mib < 48,
        "peak RSS grew by {grew_mib} MiB while streaming {} MiB",
        TOTAL >> 20
    );
}
