//! pcap and pcapng framing. The packet hot path is decoded by hand (a record header is a
//! few fixed fields), so that no packet allocates: pcap-parser's pcapng block types carry
//! an options `Vec`. pcap-parser still reads the file header and the rare pcapng blocks
//! whose layout is richer (section and interface descriptions).

use std::cell::Cell;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;

use pcap_parser::parse_pcap_header;
use pcap_parser::pcapng::{
    parse_interfacedescriptionblock_be, parse_interfacedescriptionblock_le,
    parse_sectionheaderblock,
};

/// Why a capture could not be read (or stopped being readable part way).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{}", not_a_capture(.0))]
    NotACapture(Vec<u8>),
    #[error("bad {what} at byte {offset}")]
    Malformed { what: &'static str, offset: usize },
    #[error("file ends inside a record at byte {offset} (cut short while being written?)")]
    Truncated { offset: usize },
    #[error("packet at byte {offset} names interface {interface}, which was not described")]
    UnknownInterface { offset: usize, interface: u32 },
}

/// "not a pcap or pcapng file (it starts with 47 45 54 20 "GET ")": the first bytes in
/// hex, and as text when they are printable.
fn not_a_capture(b: &[u8]) -> String {
    if b.is_empty() {
        return "empty: no capture in it".into();
    }
    let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    let mut start = hex.join(" ");
    if b.iter().all(|x| x.is_ascii_graphic() || *x == b' ') {
        let text: String = b.iter().map(|&x| x as char).collect();
        start = format!("{start} {text:?}");
    }
    format!("not a pcap or pcapng file (it starts with {start})")
}

/// One captured frame, borrowed from the capture's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// LINKTYPE_* value (not the DLT_ one) saying how `data` starts.
    pub linktype: u32,
    /// Length on the wire; `data` may be shorter (snaplen).
    pub orig_len: u32,
    /// pcapng interface id; 0 for pcap.
    pub interface: u32,
    pub data: &'a [u8],
}

/// Where the bytes come from.
enum Input {
    /// A plain file: parsed in place.
    Mapped(memmap2::Mmap),
    /// A pipe or a gzip file: read in chunks into a window that only ever holds the
    /// record being parsed and what follows it, so memory does not grow with the file.
    Stream {
        reader: Box<dyn Read>,
        /// Input bytes (compressed ones for gzip) read so far, for the progress bar.
        consumed: Rc<Cell<u64>>,
        chunk: usize,
    },
}

/// An open capture: a memory-mapped file, or a stream (stdin, gzip) read in chunks.
pub struct Capture {
    input: Input,
    /// The input's size in bytes when it is known (a file; compressed size for gzip).
    len: Option<u64>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The stream window grows by this much at a time.
const CHUNK: usize = 4 << 20;
/// A record longer than this in a stream is taken for damage, not waited for (pcapng
/// blocks have no smaller bound; 256 KiB is the largest snaplen tools write).
const MAX_RECORD: usize = 64 << 20;
/// How often (in bytes of input) the mapped reader reports progress.
const PROGRESS_STEP: usize = 8 << 20;

impl Capture {
    /// Opens `path`; `-` is standard input. A gzip file is decompressed as it is read.
    pub fn open(path: &Path) -> Result<Self, Error> {
        if path.as_os_str() == "-" {
            return Self::from_reader(std::io::stdin());
        }
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        let mut magic = [0u8; 2];
        let gzip = file.read_exact(&mut magic).is_ok() && magic == GZIP_MAGIC;
        if gzip {
            file.seek(SeekFrom::Start(0))?;
            let mut cap = Self::from_reader(file)?;
            cap.len = Some(len);
            return Ok(cap);
        }
        // SAFETY: the map is read-only; a capture that another process truncates while
        // we read it is the one way this can fault, as with any mmap reader (tshark's too).
        let map = unsafe { memmap2::Mmap::map(&file)? };
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Capture {
            input: Input::Mapped(map),
            len: Some(len),
        })
    }

    /// A capture (gzip or not) read from a stream, chunk by chunk.
    pub fn from_reader(r: impl Read + 'static) -> Result<Self, Error> {
        let consumed = Rc::new(Cell::new(0));
        let mut counted = BufReader::with_capacity(
            1 << 16,
            Counting {
                inner: r,
                count: consumed.clone(),
            },
        );
        let gzip = counted.fill_buf()?.starts_with(&GZIP_MAGIC);
        let reader: Box<dyn Read> = if gzip {
            // MultiGzDecoder: `cat a.gz b.gz` is a valid gzip file too.
            Box::new(flate2::bufread::MultiGzDecoder::new(counted))
        } else {
            Box::new(counted)
        };
        Ok(Capture {
            input: Input::Stream {
                reader,
                consumed,
                chunk: CHUNK,
            },
            len: None,
        })
    }

    /// A capture from bytes in memory (gzip or not), read as a stream.
    pub fn from_bytes(buf: Vec<u8>) -> Result<Self, Error> {
        let len = buf.len() as u64;
        let mut cap = Self::from_reader(std::io::Cursor::new(buf))?;
        cap.len = Some(len);
        Ok(cap)
    }

    /// Reads a stream `bytes` at a time instead of 4 MiB (tests use it to put record
    /// boundaries across reads).
    pub fn with_chunk_size(mut self, bytes: usize) -> Self {
        if let Input::Stream { chunk, .. } = &mut self.input {
            *chunk = bytes.max(1);
        }
        self
    }

    /// The input's size in bytes when known (for gzip, the compressed size).
    pub fn input_len(&self) -> Option<u64> {
        self.len
    }

    /// Calls `on_packet` for every packet in file order, and `on_progress` now and then
    /// with the input bytes read so far. An error ends the walk: the packets before a
    /// damaged or missing record have been delivered by then.
    pub fn for_each_packet(
        &mut self,
        mut on_packet: impl FnMut(Packet<'_>),
        mut on_progress: impl FnMut(u64),
    ) -> Result<(), Error> {
        match &mut self.input {
            Input::Mapped(map) => {
                let mut packets = Packets::new(map)?;
                let mut next_report = PROGRESS_STEP;
                let mut released = 0;
                while let Some(p) = packets.step() {
                    on_packet(p?);
                    if packets.off >= next_report {
                        on_progress(packets.off as u64);
                        next_report = packets.off + PROGRESS_STEP;
                        released = release(map, released, packets.off);
                    }
                }
                on_progress(map.len() as u64);
                Ok(())
            }
            Input::Stream {
                reader,
                consumed,
                chunk,
            } => {
                let consumed = consumed.clone();
                let mut report = || on_progress(consumed.get());
                stream_packets(reader, *chunk, &mut on_packet, &mut report)?;
                report();
                Ok(())
            }
        }
    }
}

/// Drops the mapped pages from `from` up to the page holding `upto` out of this
/// process's resident set: read once, they are not needed again, and otherwise a
/// 10 GB capture shows as 10 GB resident. The page cache keeps them (a second run still
/// reads from memory). Returns where the next release starts.
fn release(map: &memmap2::Mmap, from: usize, upto: usize) -> usize {
    const PAGE: usize = 4096;
    let end = upto / PAGE * PAGE;
    if end > from {
        // SAFETY: a read-only private file mapping: MADV_DONTNEED only drops this
        // process's page table entries, and a later access (there is none: the packets
        // before `upto` have been handed out and dropped) would fault them in again from
        // the file.
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, end - from)
        };
        return end;
    }
    from
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Appends up to `want` bytes to `buf`; false at the end of the stream.
fn fill(r: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> Result<bool, Error> {
    let target = buf.len() + want;
    while buf.len() < target {
        let n = (&mut *r)
            .take((target - buf.len()) as u64)
            .read_to_end(buf)?;
        if n == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The stream reader: parses what the window holds, keeps the incomplete record at its
/// end, reads more, and goes on with the same parser state.
fn stream_packets(
    r: &mut dyn Read,
    chunk: usize,
    on_packet: &mut dyn FnMut(Packet<'_>),
    on_progress: &mut dyn FnMut(),
) -> Result<(), Error> {
    let mut buf = Vec::with_capacity(chunk);
    // The file header must be whole before the first parse.
    let mut more = fill(r, &mut buf, chunk.max(4096))?;
    let mut state: Option<(Format, usize)> = None;
    loop {
        let mut p = match state.take() {
            None => match Packets::new(&buf) {
                Ok(p) => p,
                // A section header longer than the first read.
                Err(Error::Truncated { .. }) if more => {
                    more = fill(r, &mut buf, chunk)?;
                    continue;
                }
                Err(e) => return Err(e),
            },
            Some((format, base)) => Packets {
                buf: &buf,
                off: 0,
                base,
                format,
                done: false,
            },
        };
        loop {
            match p.step() {
                Some(Ok(pkt)) => on_packet(pkt),
                None if !more => return Ok(()),
                None | Some(Err(Error::Truncated { .. })) if more => break,
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
        let (used, base) = (p.off, p.base + p.off);
        state = Some((p.format, base));
        buf.drain(..used);
        if buf.len() > MAX_RECORD {
            return Err(Error::Malformed {
                what: "record length (over 64 MiB)",
                offset: base,
            });
        }
        more = fill(r, &mut buf, chunk)?;
        on_progress();
    }
}

/// A pcapng interface as far as packets need it.
#[derive(Debug, Clone, Copy)]
struct Iface {
    linktype: u32,
    /// Timestamp units per second (`if_tsresol`; 10^6 by default).
    units_per_sec: u64,
    /// `if_tsoffset`, seconds added to every timestamp.
    offset_sec: i64,
}

enum Format {
    Pcap {
        big_endian: bool,
        nanos: bool,
        linktype: u32,
    },
    /// Interfaces are per section; a new section header clears them.
    PcapNg {
        big_endian: bool,
        ifaces: Vec<Iface>,
    },
}

/// Streaming iterator over a capture's packets.
pub struct Packets<'a> {
    buf: &'a [u8],
    off: usize,
    /// Where `buf` starts in the whole input (a stream's window moves on).
    base: usize,
    format: Format,
    done: bool,
}

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;
/// The obsolete Packet Block: still written by old tools, same layout as an EPB except a
/// 16-bit interface id followed by a 16-bit drops count.
const PCAPNG_PB: u32 = 2;

impl<'a> Packets<'a> {
    /// The packets of a whole capture held in memory.
    pub fn new(buf: &'a [u8]) -> Result<Self, Error> {
        if buf.len() >= 4 && u32::from_le_bytes(buf[..4].try_into().unwrap()) == PCAPNG_SHB {
            let mut p = Packets {
                buf,
                off: 0,
                base: 0,
                format: Format::PcapNg {
                    big_endian: false,
                    ifaces: Vec::new(),
                },
                done: false,
            };
            p.section_header()?;
            return Ok(p);
        }
        let (_, h) = parse_pcap_header(buf)
            .map_err(|_| Error::NotACapture(buf[..buf.len().min(8)].to_vec()))?;
        // Wireshark's rule: any 2.x (libpcap stops at 2.4), and AIX's 543.0.
        let (major, minor) = (h.version_major, h.version_minor);
        if !(major == 2 || (major == 543 && minor == 0)) {
            return Err(Error::Malformed {
                what: "pcap version (2.x is defined)",
                offset: 0,
            });
        }
        if h.is_modified_format() {
            return Err(Error::Malformed {
                what: "pcap header (modified pcap is not supported)",
                offset: 0,
            });
        }
        Ok(Packets {
            buf,
            off: 24,
            base: 0,
            format: Format::Pcap {
                big_endian: h.is_bigendian(),
                nanos: h.is_nanosecond_precision(),
                // The upper 6 bits hold FCS flags (pcap 2.4 "linktype and additional
                // info"); libpcap's LT_LINKTYPE keeps the lower 26.
                linktype: (h.network.0 as u32) & 0x03FF_FFFF,
            },
            done: false,
        })
    }

    fn u32_at(&self, at: usize, big_endian: bool) -> Option<u32> {
        let b: [u8; 4] = self.buf.get(at..at + 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn next_pcap(
        &mut self,
        big_endian: bool,
        nanos: bool,
        linktype: u32,
    ) -> Option<Result<Packet<'a>, Error>> {
        let off = self.off;
        if off == self.buf.len() {
            return None;
        }
        let field = |i: usize| self.u32_at(off + 4 * i, big_endian);
        let (Some(sec), Some(frac), Some(caplen), Some(orig_len)) =
            (field(0), field(1), field(2), field(3))
        else {
            return Some(Err(Error::Truncated { offset: off }));
        };
        let start = off + 16;
        let Some(data) = self.buf.get(start..start + caplen as usize) else {
            return Some(Err(Error::Truncated { offset: off }));
        };
        self.off = start + caplen as usize;
        let frac_ns = if nanos {
            frac as i64
        } else {
            frac as i64 * 1000
        };
        Some(Ok(Packet {
            ts_ns: sec as i64 * 1_000_000_000 + frac_ns,
            linktype,
            orig_len,
            interface: 0,
            data,
        }))
    }

    /// Reads the section header at `self.off`, which fixes the byte order of the section.
    fn section_header(&mut self) -> Result<(), Error> {
        let off = self.off;
        let (_, shb) = parse_sectionheaderblock(&self.buf[off..]).map_err(|e| match e {
            pcap_parser::nom::Err::Incomplete(_) => Error::Truncated { offset: off },
            _ => Error::Malformed {
                what: "pcapng section header",
                offset: off,
            },
        })?;
        // libpcap's rule: 1.0, and 1.2 (written by some tools for a while).
        if !(shb.major_version == 1 && (shb.minor_version == 0 || shb.minor_version == 2)) {
            return Err(Error::Malformed {
                what: "pcapng version (1.0 is defined)",
                offset: off,
            });
        }
        if shb.block_len1 != shb.block_len2 {
            return Err(Error::Malformed {
                what: "pcapng section header (its length and its trailer disagree)",
                offset: off,
            });
        }
        let big_endian = shb.big_endian();
        self.format = Format::PcapNg {
            big_endian,
            ifaces: Vec::new(),
        };
        self.off = off + shb.block_len1 as usize;
        Ok(())
    }

    fn next_pcapng(&mut self) -> Option<Result<Packet<'a>, Error>> {
        loop {
            let off = self.off;
            if off == self.buf.len() {
                return None;
            }
            let Format::PcapNg { big_endian, .. } = self.format else {
                unreachable!()
            };
            let (Some(kind), Some(len)) = (
                self.u32_at(off, big_endian),
                self.u32_at(off + 4, big_endian),
            ) else {
                return Some(Err(Error::Truncated { offset: off }));
            };
            if kind == PCAPNG_SHB {
                if let Err(e) = self.section_header() {
                    return Some(Err(e));
                }
                continue;
            }
            let len = len as usize;
            if len < 12 || len & 3 != 0 {
                return Some(Err(Error::Malformed {
                    what: "pcapng block length",
                    offset: off,
                }));
            }
            let Some(block) = self.buf.get(off..off + len) else {
                return Some(Err(Error::Truncated { offset: off }));
            };
            if self.u32_at(off + len - 4, big_endian) != Some(len as u32) {
                return Some(Err(Error::Malformed {
                    what: "pcapng block (its length and its trailer disagree)",
                    offset: off,
                }));
            }
            self.off = off + len;
            match kind {
                PCAPNG_IDB => {
                    let parsed = if big_endian {
                        parse_interfacedescriptionblock_be(block)
                    } else {
                        parse_interfacedescriptionblock_le(block)
                    };
                    let Ok((_, idb)) = parsed else {
                        return Some(Err(Error::Malformed {
                            what: "pcapng interface description",
                            offset: off,
                        }));
                    };
                    let Some(units_per_sec) = idb.ts_resolution() else {
                        return Some(Err(Error::Malformed {
                            what: "pcapng if_tsresol",
                            offset: off,
                        }));
                    };
                    let iface = Iface {
                        linktype: idb.linktype.0 as u32,
                        units_per_sec,
                        offset_sec: idb.if_tsoffset,
                    };
                    if let Format::PcapNg { ifaces, .. } = &mut self.format {
                        ifaces.push(iface);
                    }
                }
                PCAPNG_EPB | PCAPNG_PB => {
                    return Some(self.enhanced(block, off, kind == PCAPNG_PB, big_endian))
                }
                PCAPNG_SPB => {
                    // No timestamp, always interface 0, and the captured length is implied by
                    // the snaplen; rare enough that the block length is trusted.
                    let Some(orig_len) = self.u32_at(off + 8, big_endian) else {
                        return Some(Err(Error::Truncated { offset: off }));
                    };
                    let Some(iface) = self.iface(0, off) else {
                        return Some(Err(Error::UnknownInterface {
                            offset: off,
                            interface: 0,
                        }));
                    };
                    let caplen = (orig_len as usize).min(len - 16);
                    let data = &block[12..12 + caplen];
                    return Some(Ok(Packet {
                        ts_ns: 0,
                        linktype: iface.linktype,
                        orig_len,
                        interface: 0,
                        data,
                    }));
                }
                _ => {} // statistics, name resolution, custom...: not needed
            }
        }
    }

    fn iface(&self, id: u32, _off: usize) -> Option<Iface> {
        match &self.format {
            Format::PcapNg { ifaces, .. } => ifaces.get(id as usize).copied(),
            Format::Pcap { .. } => None,
        }
    }

    fn enhanced(
        &self,
        block: &'a [u8],
        off: usize,
        obsolete: bool,
        big_endian: bool,
    ) -> Result<Packet<'a>, Error> {
        if block.len() < 32 {
            return Err(Error::Malformed {
                what: "pcapng packet block",
                offset: off,
            });
        }
        let f = |i: usize| self.u32_at(off + 8 + 4 * i, big_endian).unwrap_or(0);
        let interface = if obsolete {
            let raw = f(0);
            // The 16-bit id is the first of the two halves in the section's byte order.
            if big_endian {
                raw >> 16
            } else {
                raw & 0xFFFF
            }
        } else {
            f(0)
        };
        let (ts_high, ts_low, caplen, orig_len) = (f(1), f(2), f(3) as usize, f(4));
        let Some(data) = block
            .get(28..28 + caplen)
            .filter(|_| 28 + caplen <= block.len() - 4)
        else {
            return Err(Error::Malformed {
                what: "pcapng packet length",
                offset: off,
            });
        };
        let iface = self.iface(interface, off).ok_or(Error::UnknownInterface {
            offset: off,
            interface,
        })?;
        let units = ((ts_high as u64) << 32) | ts_low as u64;
        let per = iface.units_per_sec;
        let ns = (units / per) as i128 * 1_000_000_000
            + ((units % per) as i128 * 1_000_000_000) / per as i128;
        let ts_ns = (ns + iface.offset_sec as i128 * 1_000_000_000) as i64;
        Ok(Packet {
            ts_ns,
            linktype: iface.linktype,
            orig_len,
            interface,
            data,
        })
    }
}

impl<'a> Packets<'a> {
    /// The next packet, the end, or an error at the record that starts at `self.off`
    /// (which is left there, so that a stream can read more and try again).
    fn step(&mut self) -> Option<Result<Packet<'a>, Error>> {
        let item = match self.format {
            Format::Pcap {
                big_endian,
                nanos,
                linktype,
            } => self.next_pcap(big_endian, nanos, linktype),
            Format::PcapNg { .. } => self.next_pcapng(),
        };
        match item {
            Some(Err(e)) if self.base > 0 => Some(Err(e.moved_by(self.base))),
            other => other,
        }
    }
}

impl Error {
    /// The same error with its byte offset counted from `base` earlier.
    fn moved_by(self, base: usize) -> Error {
        match self {
            Error::Malformed { what, offset } => Error::Malformed {
                what,
                offset: offset + base,
            },
            Error::Truncated { offset } => Error::Truncated {
                offset: offset + base,
            },
            Error::UnknownInterface { offset, interface } => Error::UnknownInterface {
                offset: offset + base,
                interface,
            },
            other => other,
        }
    }
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<Packet<'a>, Error>;

    /// Yields an `Err` at most once, then ends.
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.step();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}
