//! The kernel log as the kernel keeps it: every record still in the printk ring
//! buffer, read from `/dev/kmsg` without blocking, and the clock to put its
//! timestamps on the calendar. Parsing the records is sockmedic-ingest's job (this
//! crate depends only on the model); the binary glues the two.

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::time::{clock_gettime, ClockId};
use sockmedic_model::Missing;
use std::os::fd::OwnedFd;

const KMSG: &str = "/dev/kmsg";

/// One read() returns one record; the kernel formats a record into at most
/// `CONSOLE_EXT_LOG_MAX` (8 KiB) bytes, and fails with EINVAL if the buffer is smaller.
const RECORD_BUFFER: usize = 8 * 1024;

/// At most this many records are read in one call: the ring buffer holds fewer
/// (its largest size, 32 MiB, fits about 500,000 short records), so the cap only
/// stops a reader that a kernel logging faster than we read would keep forever.
pub const MAX_RECORDS: u64 = 1 << 20;

/// Why the kernel log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KmsgError {
    /// Not allowed to read the log: `kernel.dmesg_restrict=1` (the default on most
    /// distributions) and no CAP_SYSLOG, or a container without access.
    #[error("{KMSG}: permission denied (kernel.dmesg_restrict=1?)")]
    PermissionDenied,
    /// No `/dev/kmsg` (a container without it, a kernel without printk).
    #[error("{KMSG}: {0}")]
    Open(std::io::Error),
    #[error("{KMSG}: read: {0}")]
    Read(std::io::Error),
}

impl KmsgError {
    /// The Snapshot's `missing` entry for this failure (`kernel log`: why).
    pub fn missing(&self) -> Missing {
        Missing::new("kernel log", self.to_string())
    }
}

/// Every record currently in the kernel log, oldest first, each as
/// `PRI,SEQ,USEC,FLAGS[,...];MESSAGE` (the /dev/kmsg format, see
/// Documentation/ABI/testing/dev-kmsg) without its ` KEY=VALUE` dictionary lines.
pub fn read_kmsg() -> Result<Vec<String>, KmsgError> {
    let mut records = Vec::new();
    for_each_kmsg_record(|r| records.push(r.to_string()))?;
    Ok(records)
}

/// Calls `f` with every record currently in the kernel log, oldest first (see
/// [`read_kmsg`]), without keeping them: memory stays at one record. Returns how
/// many records were read.
///
/// Never blocks: the device is opened O_NONBLOCK and EAGAIN means "no more". When
/// the kernel overwrites records faster than they are read (EPIPE), the reader
/// skips to the oldest record still there and carries on.
pub fn for_each_kmsg_record(mut f: impl FnMut(&str)) -> Result<u64, KmsgError> {
    let fd = open_kmsg()?;
    let mut buf = vec![0u8; RECORD_BUFFER];
    let mut records = 0u64;
    while records < MAX_RECORDS {
        match rustix::io::read(&fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                records += 1;
                f(&first_line(&buf[..n.min(buf.len())]));
            }
            Err(Errno::AGAIN) => break,
            Err(Errno::PIPE) | Err(Errno::INTR) => continue,
            Err(Errno::PERM) | Err(Errno::ACCESS) => return Err(KmsgError::PermissionDenied),
            Err(e) => return Err(KmsgError::Read(e.into())),
        }
    }
    Ok(records)
}

fn open_kmsg() -> Result<OwnedFd, KmsgError> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    match rustix::fs::open(KMSG, flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        // devkmsg_open() refuses readers that may not read the log (EPERM).
        Err(Errno::PERM) | Err(Errno::ACCESS) => Err(KmsgError::PermissionDenied),
        Err(e) => Err(KmsgError::Open(e.into())),
    }
}

/// The record without its dictionary (the lines after the first) and trailing
/// newline. The kernel escapes non-printable bytes as `\xNN`; anything else that is
/// not UTF-8 is replaced rather than failing the whole log.
fn first_line(record: &[u8]) -> String {
    let end = record
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(record.len());
    String::from_utf8_lossy(&record[..end]).into_owned()
}

/// When the kernel booted, in seconds since the epoch, on the clock of the kernel
/// log's timestamps: `CLOCK_REALTIME - CLOCK_MONOTONIC`, now. Add a record's
/// uptime to get its wall time.
///
/// An approximation, and why this clock: printk stamps records with `local_clock()`
/// (sched_clock), which stops during suspend, as CLOCK_MONOTONIC does, while
/// CLOCK_BOOTTIME (`/proc/uptime`) keeps counting. Using MONOTONIC puts every record
/// logged since the last resume at the right time; a record logged before a suspend
/// comes out later than it was by the time spent suspended (with BOOTTIME, every
/// record after a suspend would come out early instead, including the recent ones
/// that matter). sched_clock is also not NTP-disciplined, so on long uptimes the two
/// drift apart by the clock's error (tens of ppm: seconds per day at worst). Good
/// for "when, roughly"; not for correlating with other logs to the millisecond.
pub fn boot_time_s() -> f64 {
    seconds(clock_gettime(ClockId::Realtime)) - seconds(clock_gettime(ClockId::Monotonic))
}

/// The kernel log's clock now (seconds since boot, CLOCK_MONOTONIC; see
/// [`boot_time_s`]): the `read_uptime_s` of a log read from /dev/kmsg, so that the
/// age of a record is this minus its uptime.
pub fn kmsg_now_s() -> f64 {
    seconds(clock_gettime(ClockId::Monotonic))
}

fn seconds(t: rustix::time::Timespec) -> f64 {
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{run, unique};
    use std::process::Command;

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// Records look like `PRI,SEQ,USEC,FLAGS;MESSAGE`, one line each.
    fn assert_record(r: &str) {
        let (prefix, _) = r
            .split_once(';')
            .unwrap_or_else(|| panic!("no ';' in record {r:?}"));
        let fields: Vec<&str> = prefix.split(',').collect();
        assert!(fields.len() >= 4, "{r:?}");
        for f in &fields[..3] {
            assert!(
                f.bytes().all(|c| c.is_ascii_digit()) && !f.is_empty(),
                "{r:?}"
            );
        }
        assert!(!r.contains('\n'), "{r:?}");
    }

    #[test]
    fn reads_every_record_without_blocking() {
        if !is_root() {
            eprintln!("skipped: needs root (kernel.dmesg_restrict)");
            return;
        }
        let records = read_kmsg().unwrap_or_else(|e| panic!("{e}"));
        assert!(!records.is_empty());
        records.iter().for_each(|r| assert_record(r));
        // Sequence numbers only grow (EPIPE may skip some).
        let seqs: Vec<u64> = records
            .iter()
            .filter_map(|r| r.split(',').nth(1)?.parse().ok())
            .collect();
        assert_eq!(seqs.len(), records.len());
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        // The streaming form sees as many (or, if the kernel logged meanwhile, more).
        let mut n = 0;
        let counted = for_each_kmsg_record(|_| n += 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(counted, n);
        assert!(n >= records.len() as u64);
    }

    #[test]
    fn a_kernel_message_logged_now_is_read_with_its_time_on_the_log_clock() {
        if !is_root() {
            eprintln!("skipped: needs root (creates a network namespace)");
            return;
        }
        // A real kernel message, made harmlessly: a same-parity port range written
        // inside a throwaway network namespace (kernel-notes §6).
        let ns = unique("smkmsg");
        let before = kmsg_now_s();
        run("ip", &["netns", "add", &ns]);
        let status = Command::new("ip")
            .args(["netns", "exec", &ns, "sysctl", "-qw"])
            .arg("net.ipv4.ip_local_port_range=40000 40100")
            .status();
        run("ip", &["netns", "del", &ns]);
        assert!(status.is_ok_and(|s| s.success()));
        let after = kmsg_now_s();
        let records = read_kmsg().unwrap_or_else(|e| panic!("{e}"));
        let ours = records.iter().rev().find_map(|r| {
            let (prefix, message) = r.split_once(';')?;
            let mut fields = prefix.split(',');
            let priority: u32 = fields.next()?.parse().ok()?;
            let usec: f64 = fields.nth(1)?.parse().ok()?;
            let uptime = usec / 1e6;
            let in_window = uptime >= before - 0.5 && uptime <= after + 0.5;
            (in_window && message.starts_with("ip_local_port_range: prefer different parity"))
                .then_some((priority, uptime))
        });
        let (priority, _) = ours.unwrap_or_else(|| {
            panic!("no parity message between {before} and {after} (rate limited?)")
        });
        assert_eq!(priority >> 3, 0, "facility kern");
    }

    #[test]
    fn boot_time_is_now_minus_the_log_clock() {
        let boot = boot_time_s();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let up = kmsg_now_s();
        assert!(up > 0.0);
        assert!((boot + up - now).abs() < 1.0, "{boot} + {up} != {now}");
        // btime of /proc/stat is the kernel's own boot time (whole seconds, on
        // CLOCK_BOOTTIME): the same unless the machine was suspended.
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let btime: Option<f64> = stat
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok());
        if let Some(btime) = btime {
            assert!(boot >= btime - 1.0, "{boot} vs btime {btime}");
        }
    }

    #[test]
    fn the_permission_error_reads_as_a_missing_entry() {
        let m = KmsgError::PermissionDenied.missing();
        assert_eq!(m.what, "kernel log");
        assert_eq!(
            m.why,
            "/dev/kmsg: permission denied (kernel.dmesg_restrict=1?)"
        );
    }

    /// Run by [`an_unprivileged_reader_gets_the_permission_error`] as `nobody`.
    #[test]
    #[ignore = "helper: run as nobody by an_unprivileged_reader_gets_the_permission_error"]
    fn helper_read_kmsg_as_nobody() {
        match read_kmsg() {
            Ok(records) => println!("KMSG-RESULT ok {}", records.len()),
            Err(e) => println!("KMSG-RESULT err {e}"),
        }
    }

    #[test]
    fn an_unprivileged_reader_gets_the_permission_error() {
        if !is_root() {
            eprintln!("skipped: needs root (to become nobody)");
            return;
        }
        let restrict = std::fs::read_to_string("/proc/sys/kernel/dmesg_restrict")
            .map(|s| s.trim() == "1")
            .unwrap_or(false);
        // The test binary may sit where nobody cannot reach it: run a copy.
        let dir = std::env::temp_dir().join(unique("sockmedic-kmsg"));
        let exe = dir.join("collect-tests");
        let copy = std::fs::create_dir_all(&dir)
            .and_then(|()| std::env::current_exe())
            .and_then(|me| std::fs::copy(me, &exe));
        if let Err(e) = copy {
            panic!("copying the test binary to {}: {e}", exe.display());
        }
        let output = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .args([
                "--ignored",
                "--exact",
                "kmsg::tests::helper_read_kmsg_as_nobody",
                "--nocapture",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&dir);
        let output = match output {
            Ok(o) => o,
            Err(e) => {
                eprintln!("skipped: setpriv: {e}");
                return;
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let result = stdout
            .lines()
            .find_map(|l| l.strip_prefix("KMSG-RESULT "))
            .unwrap_or_else(|| panic!("helper said nothing: {stdout}"));
        if restrict {
            assert_eq!(
                result,
                "err /dev/kmsg: permission denied (kernel.dmesg_restrict=1?)"
            );
        } else {
            eprintln!("kernel.dmesg_restrict=0: nobody may read the log ({result})");
            assert!(result.starts_with("ok "), "{result}");
        }
    }
}
