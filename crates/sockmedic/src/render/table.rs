//! A small aligned-column writer with optional colour. Widths are computed on the
//! plain text, colour is added after padding, so alignment survives ANSI codes.

use std::fmt::Write;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Tone {
    #[default]
    Plain,
    Dim,
    Bold,
    Warn,
    Bad,
}

impl Tone {
    /// Warn for a count that should be zero and is not, plain for zero.
    pub fn warn_if_any(n: u64) -> Tone {
        if n > 0 {
            Tone::Warn
        } else {
            Tone::Plain
        }
    }
}

/// Whether to emit ANSI colour.
#[derive(Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn paint(&self, tone: Tone, text: &str) -> String {
        let code = match tone {
            Tone::Plain => return text.to_string(),
            Tone::Dim => "2",
            Tone::Bold => "1",
            Tone::Warn => "33",
            Tone::Bad => "1;31",
        };
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

pub struct Cell {
    text: String,
    tone: Tone,
}

impl<T: Into<String>> From<T> for Cell {
    fn from(t: T) -> Cell {
        Cell {
            text: t.into(),
            tone: Tone::Plain,
        }
    }
}

pub fn cell(text: impl Into<String>, tone: Tone) -> Cell {
    Cell {
        text: text.into(),
        tone,
    }
}

pub struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<Cell>>,
    indent: usize,
}

impl Table {
    /// Columns as (header, alignment).
    pub fn new(cols: &[(&str, Align)]) -> Table {
        Table {
            header: cols.iter().map(|c| c.0.to_string()).collect(),
            align: cols.iter().map(|c| c.1).collect(),
            rows: Vec::new(),
            indent: 2,
        }
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    pub fn render(&self, style: Style) -> String {
        let n = self.header.len();
        let mut width: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                width[i] = width[i].max(c.text.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<Cell> = self
            .header
            .iter()
            .map(|h| cell(h.clone(), Tone::Dim))
            .collect();
        for r in std::iter::once(&header).chain(self.rows.iter()) {
            let mut line = " ".repeat(self.indent);
            for (i, c) in r.iter().enumerate().take(n) {
                let pad = width[i] - c.text.chars().count();
                let painted = style.paint(c.tone, &c.text);
                let last = i + 1 == n.min(r.len());
                match self.align[i] {
                    Align::Left if last => line.push_str(&painted),
                    Align::Left => {
                        let _ = write!(line, "{painted}{}", " ".repeat(pad));
                    }
                    Align::Right => {
                        let _ = write!(line, "{}{painted}", " ".repeat(pad));
                    }
                }
                if !last {
                    line.push_str("  ");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A ratio as a percentage with a tone: warn from 70%, bad from 90%.
pub fn percent(value: u64, limit: u64) -> (String, Tone) {
    if limit == 0 {
        return ("-".into(), Tone::Dim);
    }
    let p = value as f64 * 100.0 / limit as f64;
    let tone = if p >= 90.0 {
        Tone::Bad
    } else if p >= 70.0 {
        Tone::Warn
    } else {
        Tone::Plain
    };
    (format!("{p:.1}%"), tone)
}

/// A count with thousands separators: 1234567 -> 1,234,567.
pub fn num(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Bytes in binary units: 1.5 MiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_on_plain_text_even_with_colour() {
        let mut t = Table::new(&[("STATE", Align::Left), ("COUNT", Align::Right)]);
        t.row(vec!["LISTEN".into(), cell("3", Tone::Bad)]);
        t.row(vec!["ESTABLISHED".into(), "12345".into()]);
        let plain = t.render(Style { color: false });
        assert_eq!(
            plain,
            "  STATE        COUNT\n  LISTEN           3\n  ESTABLISHED  12345\n"
        );
        let coloured = t.render(Style { color: true });
        assert!(coloured.contains("\x1b[1;31m3\x1b[0m"));
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(num(0), "0");
        assert_eq!(num(1234567), "1,234,567");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(percent(95, 100), ("95.0%".to_string(), Tone::Bad));
        assert_eq!(percent(1, 0).0, "-");
    }
}
