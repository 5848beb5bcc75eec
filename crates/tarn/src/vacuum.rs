//! `tarn vacuum` (SPEC §2): expire the versions the retention policy drops, then delete the
//! files no retained version references and the orphans (files no commit ever referenced,
//! left by failed or killed writers) older than a grace period. A file that an in-flight
//! writer may still commit is younger than the grace period, so it is never taken.

use crate::error::Result;
use crate::lake::Lake;
use std::collections::HashSet;
use std::time::Duration;
use tarn_catalog::RetentionPolicy;

#[derive(Debug, Clone)]
pub struct VacuumRequest {
    pub keep_last: Option<u64>,
    pub older_than: Option<Duration>,
    /// Orphans younger than this are kept (an in-flight writer may still commit them).
    pub grace: Duration,
    pub dry_run: bool,
}

impl Default for VacuumRequest {
    fn default() -> Self {
        Self {
            keep_last: None,
            older_than: None,
            grace: Duration::from_secs(3600),
            dry_run: false,
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VacuumReport {
    pub dry_run: bool,
    /// `dataset@branch:vN` of each expired version.
    pub expired_versions: Vec<String>,
    /// Files no retained version references.
    pub unreferenced_files: Vec<String>,
    /// Files no commit references, older than the grace period.
    pub orphan_files: Vec<String>,
    pub bytes_freed: u64,
}

impl Lake {
    pub async fn vacuum(&self, request: &VacuumRequest) -> Result<VacuumReport> {
        let now = chrono::Utc::now();
        let policy = RetentionPolicy {
            keep_last: request.keep_last,
            keep_newer_than_micros: request
                .older_than
                .map(|d| now.timestamp_micros() - d.as_micros().min(i64::MAX as u128) as i64),
        };
        // List storage before reading the catalog: a file committed in between is then seen
        // as referenced, never as an orphan.
        let listed = self.store.list_files().await?;
        let outcome = self
            .catalog
            .retention
            .expire(policy, request.dry_run)
            .await?;
        let referenced: HashSet<String> = self
            .catalog
            .retention
            .referenced_files()
            .await?
            .into_iter()
            .collect();
        let unreferenced: HashSet<&String> = outcome.unreferenced_files.iter().collect();
        let mut report = VacuumReport {
            dry_run: request.dry_run,
            expired_versions: outcome
                .expired_versions
                .iter()
                .map(|(d, b, v)| format!("{d}@{b}:v{v}"))
                .collect(),
            unreferenced_files: outcome.unreferenced_files.clone(),
            ..Default::default()
        };
        let grace = chrono::Duration::from_std(request.grace).unwrap_or(chrono::Duration::MAX);
        for meta in &listed {
            let path = meta.path.clone();
            if unreferenced.contains(&path) {
                report.bytes_freed += meta.size;
                continue;
            }
            if referenced.contains(&path) || !is_data_file(&path) {
                continue;
            }
            if now - meta.last_modified >= grace {
                report.bytes_freed += meta.size;
                report.orphan_files.push(path);
            }
        }
        report.orphan_files.sort();
        if !request.dry_run {
            for path in report.unreferenced_files.iter().chain(&report.orphan_files) {
                self.store.delete_file(path).await?;
            }
        }
        Ok(report)
    }
}

/// A data file or the temporary file (`NAME.parquet#N`) a killed put leaves behind.
fn is_data_file(path: &str) -> bool {
    path.ends_with(".parquet")
        || path
            .rsplit_once(".parquet#")
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}
