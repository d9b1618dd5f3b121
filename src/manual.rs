//! `hvmigrate man --dir`: the manual pages, rendered by the binary from its
//! command-line definitions, written one file per page (the package's build
//! gzips them into /usr/share/man/man1).

use std::path::{Path, PathBuf};

use crate::error::{Error, InputProblem, Result};

/// One rendered manual page: `hvmigrate.1`, `hvmigrate-run.1`, …
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManPage {
    pub file_name: String,
    pub roff: Vec<u8>,
}

/// Writes every page into `dir` (created if missing), replacing older
/// versions of the same pages; returns the files written. A `dir` that is
/// not a folder is refused before anything is written.
pub fn write_pages(dir: &Path, pages: &[ManPage]) -> Result<Vec<PathBuf>> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(Error::input(InputProblem::new(dir, "--dir must be a folder, and this is not one")));
        }
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|err| Error::io(dir, err))?;
        }
        Err(err) => return Err(Error::io(dir, err)),
    }
    for page in pages {
        // The names come from the command definitions; a separator would write elsewhere.
        if page.file_name.is_empty() || page.file_name.contains('/') || page.file_name.starts_with('.') {
            return Err(Error::Usage(format!("not a manual page file name: {:?}", page.file_name)));
        }
    }
    let mut written = Vec::with_capacity(pages.len());
    for page in pages {
        let path = dir.join(&page.file_name);
        std::fs::write(&path, &page.roff).map_err(|err| Error::io(&path, err))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(name: &str) -> ManPage {
        ManPage { file_name: name.to_owned(), roff: format!(".TH {name}\n").into_bytes() }
    }

    #[test]
    fn writes_every_page_into_a_new_folder_and_replaces_old_ones() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("man/man1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hvmigrate.1"), "old").unwrap();
        let written = write_pages(&dir, &[page("hvmigrate.1"), page("hvmigrate-run.1")]).unwrap();
        assert_eq!(written, vec![dir.join("hvmigrate.1"), dir.join("hvmigrate-run.1")]);
        assert_eq!(std::fs::read_to_string(dir.join("hvmigrate.1")).unwrap(), ".TH hvmigrate.1\n");

        let fresh = temp.path().join("new/folder");
        write_pages(&fresh, &[page("hvmigrate.1")]).unwrap();
        assert!(fresh.join("hvmigrate.1").is_file());
    }

    #[test]
    fn a_file_in_place_of_the_folder_is_refused_and_nothing_is_written() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let err = write_pages(&file, &[page("hvmigrate.1")]).unwrap_err();
        assert!(err.to_string().contains("not-a-dir: --dir must be a folder"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
    }

    #[test]
    fn a_page_name_with_a_separator_is_refused_before_any_write() {
        let temp = tempfile::tempdir().unwrap();
        let err = write_pages(temp.path(), &[page("hvmigrate.1"), page("../escape.1")]).unwrap_err();
        assert!(err.to_string().contains("../escape.1"), "{err}");
        assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 0);
    }
}
