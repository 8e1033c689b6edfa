//! QR codes of enrollment URIs: terminal (Unicode half blocks), PNG and SVG.

use std::path::Path;

use qrcode::render::{svg, unicode};
use qrcode::{EcLevel, QrCode};

/// Modules of white border kept around the code; scanners need it.
pub const QUIET_ZONE: usize = 4;

fn encode(data: &str) -> anyhow::Result<QrCode> {
    Ok(QrCode::with_error_correction_level(
        data.as_bytes(),
        EcLevel::M,
    )?)
}

/// Side of the symbol in modules, without the quiet zone.
pub fn module_count(data: &str) -> anyhow::Result<usize> {
    Ok(encode(data)?.width())
}

/// The code drawn with half blocks, two rows of modules per text line, with a quiet zone.
/// Light modules are drawn as blocks and dark ones as blank cells; with `ansi` each line is
/// pinned to white-on-black so the code reads the same on dark and light terminal themes.
pub fn to_terminal(data: &str, ansi: bool) -> anyhow::Result<String> {
    let text = encode(data)?
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    if !ansi {
        return Ok(text);
    }
    Ok(text
        .lines()
        .map(|line| format!("\x1b[97;40m{line}\x1b[0m\n"))
        .collect())
}

pub fn to_svg(data: &str) -> anyhow::Result<String> {
    Ok(encode(data)?
        .render::<svg::Color>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

pub fn write_png(data: &str, path: &Path) -> anyhow::Result<()> {
    let image = encode(data)?
        .render::<image::Luma<u8>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build();
    let mut bytes = Vec::new();
    image.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    crate::fsutil::write_atomically(path, &bytes, 0o600)
}

pub fn write_svg(data: &str, path: &Path) -> anyhow::Result<()> {
    crate::fsutil::write_atomically(path, to_svg(data)?.as_bytes(), 0o600)
}
