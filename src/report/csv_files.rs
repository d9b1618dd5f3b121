//! `--csv DIR`: one CSV file per table of the report.

use std::path::{Path, PathBuf};

use super::tables::tables;
use super::Report;
use crate::error::{Error, Result};

/// Writes every table into `dir` (created private if missing); returns the files written.
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    crate::fs_security::refuse_symlink(dir)?;
    crate::fs_security::private_dir(dir)?;
    let mut written = Vec::new();
    for table in tables(report) {
        let path = dir.join(table.file);
        let mut writer = csv::Writer::from_writer(Vec::new());
        let io = |err: csv::Error| Error::io(&path, std::io::Error::other(err.to_string()));
        writer.write_record(&table.header).map_err(io)?;
        for row in &table.rows {
            writer.write_record(row.iter().map(|cell| csv_safe(cell).into_owned())).map_err(io)?;
        }
        let bytes = writer.into_inner().map_err(|err| Error::io(&path, std::io::Error::other(err.to_string())))?;
        crate::fs_security::write_private_file(&path, &bytes)?;
        written.push(path);
    }
    Ok(written)
}

/// A cell a spreadsheet would run as a formula (text from outside, such as a
/// reason) is kept as text.
fn csv_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '@']) || (cell.starts_with('-') && cell.parse::<f64>().is_err()) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::{self, at};
    use crate::report::{build, ReportSettings};

    #[test]
    fn one_file_per_table_with_its_header() {
        let settings = ReportSettings { until: Some(at("2026-03-03T00:00:00Z")), ..Default::default() };
        let report = build(fixture::ledger(), &settings, at("2026-03-10T00:00:00Z")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("csv");
        let files = write(&report, &out).unwrap();
        assert_eq!(files.len(), tables(&report).len());
        let mut reader = csv::Reader::from_path(out.join("burn_down.csv")).unwrap();
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header[..3], ["date", "not started", "setup"]);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2, "1 and 2 March");
        assert_eq!(&rows[1][0], "2026-03-02");
        let causes = std::fs::read_to_string(out.join("hold_ups.csv")).unwrap();
        assert!(causes.contains("failed,drain,moved N of N VMs; not moved,1,hv02.example.org"), "{causes}");
        assert_eq!(csv_safe("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_safe("-1.5"), "-1.5");
    }
}
