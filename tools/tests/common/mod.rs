//! Helpers shared by the program's test binaries.
#![allow(dead_code)] // each binary uses its own subset

use std::path::{Path, PathBuf};

/// `dir/xdg`, created private (0700) as Mesa wants of XDG_RUNTIME_DIR, for the children.
pub fn runtime_dir_in(dir: &Path) -> PathBuf {
    let xdg = dir.join("xdg");
    std::fs::create_dir_all(&xdg).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    xdg
}

/// A PNG's width, height and RGB pixels.
pub fn png_rgb(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let mut reader = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap())).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let ch = info.color_type.samples();
    let px = buf[..info.buffer_size()].chunks(ch).map(|p| [p[0], p[1], p[2]]).collect();
    (info.width, info.height, px)
}
