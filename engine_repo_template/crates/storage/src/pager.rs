//! Fixed-size pages of the database file, read and written whole.
//!
//! The pager is the only code that does file I/O. B+trees (tables and indexes) will sit on top of it,
//! and the write-ahead log will intercept `write_page` so a crash never leaves a torn database.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Bytes per page; page 0 will hold the file header and the schema root (DESIGN.md, "On-disk format").
pub const PAGE_SIZE: usize = 4096;

/// Page numbers start at 0 and are dense: page `n` lives at byte `n * PAGE_SIZE`.
pub type PageId = u32;

/// Pages either in memory only (no database file given) or backed by a file.
pub struct Pager {
    file: Option<File>,
    pages: Vec<Box<[u8; PAGE_SIZE]>>,
    dirty: Vec<bool>,
}

impl Pager {
    /// A pager whose pages vanish with the process (`engine` with no file argument).
    pub fn in_memory() -> Pager {
        Pager { file: None, pages: Vec::new(), dirty: Vec::new() }
    }

    /// Open or create a database file; every existing page is read eagerly (fine for a skeleton,
    /// a page cache with eviction is on the roadmap).
    pub fn open(path: &Path) -> io::Result<Pager> {
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let len = file.metadata()?.len() as usize;
        if !len.is_multiple_of(PAGE_SIZE) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("file is {len} bytes, not a whole number of {PAGE_SIZE}-byte pages"),
            ));
        }
        let mut pages = Vec::with_capacity(len / PAGE_SIZE);
        file.seek(SeekFrom::Start(0))?;
        for _ in 0..len / PAGE_SIZE {
            let mut page = Box::new([0u8; PAGE_SIZE]);
            file.read_exact(&mut page[..])?;
            pages.push(page);
        }
        let dirty = vec![false; pages.len()];
        Ok(Pager { file: Some(file), pages, dirty })
    }

    pub fn page_count(&self) -> u32 {
        self.pages.len() as u32
    }

    /// Append a zeroed page and return its number.
    pub fn allocate(&mut self) -> PageId {
        self.pages.push(Box::new([0u8; PAGE_SIZE]));
        self.dirty.push(true);
        (self.pages.len() - 1) as PageId
    }

    pub fn read(&self, id: PageId) -> io::Result<&[u8; PAGE_SIZE]> {
        self.pages.get(id as usize).map(|p| &**p).ok_or_else(|| out_of_range(id))
    }

    pub fn write(&mut self, id: PageId, data: &[u8; PAGE_SIZE]) -> io::Result<()> {
        let page = self.pages.get_mut(id as usize).ok_or_else(|| out_of_range(id))?;
        page.copy_from_slice(data);
        self.dirty[id as usize] = true;
        Ok(())
    }

    /// Write dirty pages back and fsync. Not atomic: a crash midway can tear the file (the WAL fixes that).
    pub fn flush(&mut self) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else { return Ok(()) };
        for (i, page) in self.pages.iter().enumerate() {
            if self.dirty[i] {
                file.seek(SeekFrom::Start((i * PAGE_SIZE) as u64))?;
                file.write_all(&page[..])?;
                self.dirty[i] = false;
            }
        }
        file.sync_all()
    }
}

fn out_of_range(id: PageId) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("page {id} does not exist"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("storage-pager-{}-{name}", std::process::id()))
    }

    #[test]
    fn pages_survive_reopen() {
        let path = temp_path("reopen");
        let _ = std::fs::remove_file(&path);
        {
            let mut pager = Pager::open(&path).unwrap();
            let a = pager.allocate();
            let b = pager.allocate();
            let mut data = [0u8; PAGE_SIZE];
            data[0] = 0xAB;
            data[PAGE_SIZE - 1] = 0xCD;
            pager.write(b, &data).unwrap();
            assert_eq!((a, b), (0, 1));
            pager.flush().unwrap();
        }
        let pager = Pager::open(&path).unwrap();
        assert_eq!(pager.page_count(), 2);
        assert_eq!(pager.read(1).unwrap()[0], 0xAB);
        assert_eq!(pager.read(1).unwrap()[PAGE_SIZE - 1], 0xCD);
        assert_eq!(pager.read(0).unwrap()[0], 0);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn missing_page_is_an_error() {
        let mut pager = Pager::in_memory();
        assert!(pager.read(0).is_err());
        assert!(pager.write(3, &[0u8; PAGE_SIZE]).is_err());
    }

    #[test]
    fn torn_file_is_rejected() {
        let path = temp_path("torn");
        std::fs::write(&path, [1u8; 100]).unwrap();
        assert!(Pager::open(&path).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
