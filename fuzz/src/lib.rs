//! What several fuzz targets share: the hash-list targets' input split and the index target's
//! body (shared by its libFuzzer build and its plain replay harness).

pub mod hashlist;
pub mod index;
