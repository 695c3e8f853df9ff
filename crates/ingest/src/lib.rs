//! Parsers for captured text: what sockmedic reads from files and pasted command
//! outputs rather than from the running kernel. Pure functions of their input (the
//! only I/O is reading a caller's `BufRead`), so every parser is tested on fixtures
//! captured from real kernels and tools (`tests/fixtures/`).

pub mod kernel_log;

pub use kernel_log::{kernel_log_from_lines, kernel_log_from_reader, KernelLogBuilder};
