//! `sockmedic explain`: a finding code's page, the list of codes, the thresholds.
//! Everything comes from the catalog (`sockmedic_diagnose::CATALOG`, `THRESHOLDS`).

use super::table::{Align, Style, Table, Tone};
use sockmedic_diagnose::{CATALOG, THRESHOLDS};

/// A code's page, Markdown as written, ending with a newline.
pub fn page(page: &str) -> String {
    let mut out = page.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Every code with its summary, then every threshold.
pub fn list(style: Style) -> String {
    let mut out = format!(
        "{}\n",
        style.paint(
            Tone::Bold,
            "Finding codes (`sockmedic explain CODE` prints the page of one)"
        )
    );
    let mut t = Table::new(&[("CODE", Align::Left), ("FIRES WHEN", Align::Left)]);
    for r in CATALOG.iter() {
        t.row(vec![r.code.into(), r.summary.into()]);
    }
    out.push_str(&t.render(style));
    out.push('\n');
    out.push_str(&thresholds(style));
    out
}

/// The thresholds table: name, default, meaning.
pub fn thresholds(style: Style) -> String {
    let mut out = format!(
        "{}\n",
        style.paint(
            Tone::Bold,
            "Thresholds (change with `check` or `pcap --threshold NAME=VALUE`, or the config file's [thresholds])"
        )
    );
    let mut t = Table::new(&[
        ("NAME", Align::Left),
        ("DEFAULT", Align::Right),
        ("MEANING", Align::Left),
    ]);
    for d in THRESHOLDS {
        t.row(vec![
            d.name.into(),
            d.default.to_string().into(),
            d.doc.into(),
        ]);
    }
    out.push_str(&t.render(style));
    out
}

/// The README's thresholds table, in Markdown (checked against the README by a test).
#[cfg(test)]
pub fn thresholds_markdown() -> String {
    use std::fmt::Write;
    let mut out = String::from("| name | default | meaning |\n|---|---:|---|\n");
    for d in THRESHOLDS {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            d.name,
            d.default,
            d.doc.replace('|', "\\|")
        );
    }
    out
}

/// The known codes, for the error on an unknown one.
pub fn known_codes() -> String {
    let mut codes: Vec<&str> = CATALOG.iter().map(|r| r.code).collect();
    codes.push("thresholds");
    codes.join(", ")
}

#[cfg(test)]
mod tests {
    /// The README's "Thresholds" table is THRESHOLDS, line for line.
    #[test]
    fn readme_thresholds_table_matches_the_catalog() {
        crate::render::assert_readme_table("thresholds", &super::thresholds_markdown());
    }
}
