//! The thresholds of every command that diagnoses: the defaults, then the config file's
//! `[thresholds]` table, then each `--threshold NAME=VALUE`.

use crate::cli::{ThresholdArgs, DEFAULT_CONFIG};
use anyhow::{anyhow, bail, Result};
use sockmedic_diagnose::{ThresholdError, Thresholds};
use std::path::{Path, PathBuf};

/// The thresholds a command runs with, from its `--config` and `--threshold`s. Any
/// error is one line naming the file or flag and the problem.
pub fn thresholds(args: &ThresholdArgs) -> Result<Thresholds> {
    thresholds_from(args.config.as_deref(), &args.thresholds)
}

/// The same from `--config` and the `--threshold` pairs (`pcap` has both too).
fn thresholds_from(config: Option<&Path>, pairs: &[String]) -> Result<Thresholds> {
    let mut t = Thresholds::default();
    if let Some(path) = config_path(config) {
        apply_file(&mut t, &path)?;
    }
    for pair in pairs {
        t.set_pair(pair).map_err(|e| match e {
            ThresholdError::NoEquals(_) => anyhow!("{e}"),
            e => anyhow!("--threshold {pair}: {e}"),
        })?;
    }
    Ok(t)
}

/// `--config`, or the default file when it exists.
fn config_path(config: Option<&Path>) -> Option<PathBuf> {
    config.map(Path::to_path_buf).or_else(|| {
        let default = Path::new(DEFAULT_CONFIG);
        default.exists().then(|| default.to_path_buf())
    })
}

fn apply_file(t: &mut Thresholds, path: &Path) -> Result<()> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("config {name}: {e}"))?;
    apply_text(t, &text).map_err(|e| anyhow!("config {name}: {e}"))
}

/// Applies a config file's text: only a `[thresholds]` table of NAME = number.
fn apply_text(t: &mut Thresholds, text: &str) -> Result<()> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e
            .span()
            .map(|s| {
                let (line, col) = line_col(text, s.start);
                format!("line {line}, column {col}: ")
            })
            .unwrap_or_default();
        let message: Vec<&str> = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        anyhow!("{at}{}", message.join("; "))
    })?;
    for (key, value) in &table {
        if key != "thresholds" {
            bail!("unknown key {key:?} (known: thresholds)");
        }
        let Some(values) = value.as_table() else {
            bail!(
                "thresholds: expected a table ([thresholds]), found a {}",
                value.type_str()
            );
        };
        set_all(t, "", values)?;
    }
    Ok(())
}

/// Sets every number of a table. A bare dotted key (`fd.warning = 0.5`) is a
/// nested table in TOML, so nested tables are flattened back into dotted names:
/// `"fd.warning" = 0.5`, `fd.warning = 0.5` and `[thresholds.fd] warning = 0.5`
/// all mean the same.
fn set_all(t: &mut Thresholds, prefix: &str, table: &toml::Table) -> Result<()> {
    for (key, v) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let n = match v {
            toml::Value::Integer(i) => *i as f64,
            toml::Value::Float(f) => *f,
            toml::Value::Table(inner) => {
                set_all(t, &name, inner)?;
                continue;
            }
            other => bail!(
                "thresholds.{name}: expected a number, found a {}",
                other.type_str()
            ),
        };
        t.set(&name, n)?;
    }
    Ok(())
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thresholds_table_sets_values() {
        let mut t = Thresholds::default();
        apply_text(
            &mut t,
            "[thresholds]\n\"close-wait.warning\" = 50\nfd.warning = 0.5\n[thresholds.syn]\nmin = 4\n",
        )
        .unwrap();
        assert_eq!(t.get("close-wait.warning"), 50.0);
        assert_eq!(t.get("fd.warning"), 0.5);
        assert_eq!(t.get("syn.min"), 4.0);
        assert_eq!(t.changed().len(), 3);
    }

    #[test]
    fn errors_are_one_line() {
        for bad in [
            "[thresholds\n",
            "[thresholds]\n\"nope\" = 1\n",
            "[thresholds]\n\"fd.warning\" = \"high\"\n",
            "[thresholds]\n\"fd.warning\" = -1\n",
            "threshold = 1\n",
            "thresholds = 3\n",
        ] {
            let e = apply_text(&mut Thresholds::default(), bad)
                .unwrap_err()
                .to_string();
            assert!(!e.contains('\n'), "{bad:?}: {e}");
            assert!(!e.is_empty());
        }
        let e = apply_text(&mut Thresholds::default(), "a = 1\n[thresholds\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 2, column"), "{e}");
    }
}
