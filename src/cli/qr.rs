//! QR codes of enrollment URIs: terminal (Unicode half blocks), PNG and SVG.

use std::path::Path;

use qrcode::render::{svg, unicode};
use qrcode::{Color, EcLevel, QrCode};

/// Modules of white border kept around the code; scanners need it.
pub const QUIET_ZONE: usize = 4;

/// The PNG is at least this many pixels wide and high (whole pixels per module).
const PNG_MIN_SIDE: usize = 256;

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

/// The code as an 8-bit greyscale PNG, quiet zone included, at least `PNG_MIN_SIDE` pixels.
pub fn to_png(data: &str) -> anyhow::Result<Vec<u8>> {
    let code = encode(data)?;
    let modules = code.width();
    let scale = PNG_MIN_SIDE.div_ceil(modules + 2 * QUIET_ZONE);
    let side = (modules + 2 * QUIET_ZONE) * scale;
    let mut pixels = vec![u8::MAX; side * side];
    for (index, _) in code
        .to_colors()
        .iter()
        .enumerate()
        .filter(|(_, color)| **color == Color::Dark)
    {
        let left = (index % modules + QUIET_ZONE) * scale;
        let top = (index / modules + QUIET_ZONE) * scale;
        for row in top..top + scale {
            pixels[row * side + left..row * side + left + scale].fill(0);
        }
    }
    let side = u32::try_from(side)?;
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(bytes)
}

pub fn write_png(data: &str, path: &Path) -> anyhow::Result<()> {
    crate::fsutil::write_atomically(path, &to_png(data)?, 0o600)
}

pub fn write_svg(data: &str, path: &Path) -> anyhow::Result<()> {
    crate::fsutil::write_atomically(path, to_svg(data)?.as_bytes(), 0o600)
}
