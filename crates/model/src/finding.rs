//! A finding: one conclusion with its subject, evidence, explanation and remedies.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// What a finding is about, as precisely as the data allows. Fields that do not
/// apply are `null` in JSON, never omitted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    pub netns: Option<String>,
    pub state: Option<String>,
    pub local: Option<String>,
    pub remote: Option<String>,
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub container: Option<String>,
    pub pod: Option<String>,
    pub count: Option<u64>,
    pub limit: Option<u64>,
}

/// One way to fix it, with its caveat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Remedy {
    pub action: String,
    /// sysctl lines to apply, name -> value (empty when the remedy is not a sysctl).
    pub sysctl: BTreeMap<String, String>,
    pub caveat: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub code: String,
    pub severity: Severity,
    pub title: String,
    pub subject: Subject,
    pub evidence: Vec<String>,
    pub explanation: String,
    pub remedy: Vec<Remedy>,
}
