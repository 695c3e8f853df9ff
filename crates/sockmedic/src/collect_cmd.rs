//! `sockmedic collect`: a bundle of the raw sources `check` reads on this host
//! (layout: `sockmedic_ingest::offline::bundle`), or, with `--script`, a POSIX sh
//! script that gathers the same sources with stock tools.

use crate::cli::{CollectArgs, Common};
use crate::options;
use anyhow::{anyhow, bail, Context, Result};
use indicatif::ProgressBar;
use sockmedic_collect::record::{Progress, Recorder};
use sockmedic_collect::{collect, kmsg, CollectOptions, DumpMode};
use sockmedic_ingest::offline::bundle::{self, BundleExtras, Uname, Who};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

/// The script `collect --script` prints.
const SCRIPT: &str = include_str!("collect_script.sh");

pub fn run(common: &Common, args: &CollectArgs) -> Result<ExitCode> {
    if args.script {
        crate::write_out(|out| out.write_all(SCRIPT.as_bytes()))?;
        return Ok(ExitCode::SUCCESS);
    }
    if common.from.is_some() {
        bail!(
            "collect --from: collect reads this host; --from is for check, stat, sockets and procs"
        );
    }
    let uname = uname();
    let started = SystemTime::now();
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| default_name(&uname.nodename, started));
    // Fails before anything is collected: one line, exit 3.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| anyhow!("cannot write the bundle {}: {e}", path.display()))?;
    let written = write_bundle(common, args, &path, file, uname);
    if written.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    written?;
    Ok(ExitCode::SUCCESS)
}

fn write_bundle(
    common: &Common,
    args: &CollectArgs,
    path: &Path,
    file: File,
    uname: Uname,
) -> Result<()> {
    let bar = crate::progress::bar(
        "{spinner} sockmedic collect [{pos}/{len} namespaces] {msg}",
        Some(0),
    );
    let recorder = Recorder::with_progress(args.max_socket_bytes, Some(progress_fn(bar.clone())));
    let opts = CollectOptions {
        mode: DumpMode::Full,
        processes: true,
        cmdline: args.include_cmdline,
        record: Some(recorder.clone()),
        ..options(common)
    };
    bar.set_message("collecting");
    let mut snap = collect(&opts)?;
    bar.set_message("reading the kernel log");
    let kmsg_records = kmsg::read_kmsg();
    let (boot, now) = (kmsg::boot_time_s(), kmsg::kmsg_now_s());
    match &kmsg_records {
        Ok(records) => {
            snap.kernel_log = Some(sockmedic_ingest::kernel_log_from_lines(
                "/dev/kmsg",
                records,
                Some(boot),
                Some(now),
            ))
        }
        Err(e) => snap.missing.push(e.missing()),
    }
    let rec = recorder.take();
    let top = top_dir(path);
    bar.set_message(format!("writing {}", path.display()));
    let extras = BundleExtras {
        uname,
        who: who(),
        top: common.top,
        pods_dir: common.pods_dir.display().to_string(),
        containers_dir: common.containers_dir.display().to_string(),
        kmsg: kmsg_records.map_err(|e| e.to_string()),
        kmsg_boot_time_s: boot,
        kmsg_now_s: now,
        live: &snap,
        proto_of: &|pid, fd| {
            sockmedic_collect::procscan::socket_proto(pid, fd)
                .ok()
                .map(|p| p.name().to_string())
        },
    };
    let mtime = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let gz = flate2::write::GzEncoder::new(
        BufWriter::with_capacity(1 << 20, file),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    let mut put = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, format!("{top}/{name}"), bytes)
    };
    let what = || format!("cannot write the bundle {}", path.display());
    let manifest = bundle::write_entries(&rec, &extras, &mut put).with_context(what)?;
    let gz = tar.into_inner().with_context(what)?;
    let mut out = gz.finish().with_context(what)?;
    out.flush().with_context(what)?;
    out.get_ref().sync_all().with_context(what)?;
    bar.finish_and_clear();

    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let collected = manifest.namespaces.iter().filter(|n| n.selected).count();
    let mut summary = format!(
        "sockmedic collect: wrote {} ({}): {collected} network namespace(s), {} process(es), {} of raw socket data",
        path.display(),
        human_bytes(size),
        manifest.process_scan.as_ref().map_or(0, |s| s.processes),
        human_bytes(manifest.socket_data.bytes),
    );
    if let Some(note) = &manifest.socket_data.note {
        summary.push_str(&format!("; {note}"));
    }
    eprintln!("{summary}");
    println!("{}", path.display());
    Ok(())
}

fn progress_fn(bar: ProgressBar) -> Box<dyn Fn(Progress) + Send + Sync> {
    let bar = Arc::new(bar);
    Box::new(move |p| match p {
        Progress::Discovered { selected, .. } => {
            bar.set_length(selected as u64);
            bar.set_message("scanning processes");
        }
        Progress::Scanned {
            processes,
            socket_fds,
        } => bar.set_message(format!(
            "{processes} processes, {socket_fds} socket fds; dumping sockets"
        )),
        Progress::NetnsDone { .. } => bar.inc(1),
        Progress::Bytes(n) => bar.set_message(format!("{} of raw socket data", human_bytes(n))),
    })
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} bytes"),
    }
}

fn uname() -> Uname {
    let u = rustix::system::uname();
    let s = |c: &std::ffi::CStr| c.to_string_lossy().into_owned();
    Uname {
        sysname: s(u.sysname()),
        nodename: s(u.nodename()),
        release: s(u.release()),
        version: s(u.version()),
        machine: s(u.machine()),
    }
}

fn who() -> Who {
    let euid = rustix::process::geteuid();
    Who {
        uid: rustix::process::getuid().as_raw(),
        euid: euid.as_raw(),
        root: euid.is_root(),
    }
}

/// `sockmedic-HOST-YYYYmmddTHHMMSSZ.tar.gz`.
fn default_name(host: &str, at: SystemTime) -> PathBuf {
    let stamp: String = humantime::format_rfc3339_seconds(at)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    PathBuf::from(format!("sockmedic-{host}-{stamp}.tar.gz"))
}

/// The bundle's top directory: its file name without `.tar.gz`.
fn top_dir(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sockmedic-bundle".into());
    let stem = name
        .strip_suffix(".tar.gz")
        .or_else(|| name.strip_suffix(".tgz"))
        .or_else(|| name.strip_suffix(".tar"))
        .unwrap_or(&name);
    let clean: String = stem
        .chars()
        .filter(|c| !c.is_control() && *c != '/')
        .collect();
    if clean.is_empty() || clean.starts_with('.') {
        "sockmedic-bundle".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn default_name_is_host_and_utc_time() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_329_480);
        let n = default_name("node-1", t);
        assert_eq!(n.to_str(), Some("sockmedic-node-1-20261122T063800Z.tar.gz"));
    }

    #[test]
    fn top_dir_is_the_stem() {
        assert_eq!(top_dir(Path::new("/tmp/x/b.tar.gz")), "b");
        assert_eq!(top_dir(Path::new("b.tgz")), "b");
        assert_eq!(top_dir(Path::new("bundle")), "bundle");
        assert_eq!(top_dir(Path::new("..")), "sockmedic-bundle");
    }
}
