//! Packet captures for sockmedic: reading pcap / pcapng files (memory-mapped, one pass,
//! no allocation per packet) and decoding each frame down to its TCP header.
//!
//! The teardown analysis of issue 6 sits on top of [`Capture::packets`] and
//! [`decode::tcp_segment`]; this crate does no other I/O than opening the file it is given.

pub mod conn;
pub mod decode;
pub mod filter;
pub mod read;
pub mod report;
pub mod summary;

pub use conn::{analyze, analyze_with, Analyzer, Config};
pub use decode::{flags, tcp_segment, Skip, TcpSegment, Tunnel};
pub use filter::Filter;
pub use read::{Capture, Error, Packet, Packets};
pub use report::{capture_section, findings};
pub use summary::{Aggregate, Connection, Event, EventKind, Outcome, Role, Side, Summary};
