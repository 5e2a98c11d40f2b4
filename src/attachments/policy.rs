//! The file policy: which files are taken, decided by the name's extension
//! and the content's magic numbers together, and how names are made safe.
//!
//! A file passes only when its extension is on the allowlist *and* its bytes
//! are what that extension promises. Content that could run or render
//! (executables, scripts, HTML, SVG/XML) is refused with 415 whatever it is
//! called; content that is merely something else than its name says is
//! refused with 422.

use crate::error::{AppError, AppResult};

/// A file type the appliance accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Jpeg,
    Png,
    Gif,
    Webp,
    Pdf,
    Text,
    Doc,
    Docx,
    Odt,
    Xlsx,
}

impl Kind {
    pub fn from_extension(ext: &str) -> Option<Kind> {
        Some(match ext {
            "jpg" | "jpeg" => Kind::Jpeg,
            "png" => Kind::Png,
            "gif" => Kind::Gif,
            "webp" => Kind::Webp,
            "pdf" => Kind::Pdf,
            "txt" => Kind::Text,
            "doc" => Kind::Doc,
            "docx" => Kind::Docx,
            "odt" => Kind::Odt,
            "xlsx" => Kind::Xlsx,
            _ => return None,
        })
    }

    /// The Content-Type the file is served with.
    pub fn mime(self) -> &'static str {
        match self {
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
            Kind::Gif => "image/gif",
            Kind::Webp => "image/webp",
            Kind::Pdf => "application/pdf",
            Kind::Text => "text/plain; charset=utf-8",
            Kind::Doc => "application/msword",
            Kind::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Kind::Odt => "application/vnd.oasis.opendocument.text",
            Kind::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    /// Raster images get a thumbnail and may be shown inline.
    pub fn is_raster(self) -> bool {
        matches!(self, Kind::Jpeg | Kind::Png | Kind::Gif | Kind::Webp)
    }
}

/// Whether a stored mime type is a raster image (served inline).
pub fn is_raster_mime(mime: &str) -> bool {
    matches!(
        mime,
        "image/jpeg" | "image/png" | "image/gif" | "image/webp"
    )
}

/// Longest stored file name, in characters.
pub const MAX_NAME_CHARS: usize = 150;

/// The client's file name made safe to store, show and send back in a
/// header: the last path component, without control or bidi-formatting
/// characters, with reserved punctuation replaced, trimmed and bounded.
pub fn sanitize_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut out = String::with_capacity(base.len());
    let mut space = false;
    for c in base.chars() {
        if c.is_control() || is_invisible(c) {
            continue;
        }
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(if r#"<>:"/\|?*"#.contains(c) { '_' } else { c });
    }
    // Trailing dots and spaces are dropped by Windows ("a.exe." is "a.exe").
    let trimmed = out.trim_matches(' ').trim_end_matches(['.', ' ']);
    let (stem, ext) = split_ext(trimmed);
    let mut stem: String = stem.trim_matches(['.', ' ']).to_owned();
    let ext: String = ext.chars().take(16).collect();
    let room = MAX_NAME_CHARS.saturating_sub(ext.chars().count() + 1);
    if stem.chars().count() > room {
        stem = stem.chars().take(room).collect();
    }
    if stem.is_empty() {
        stem = "file".to_owned();
    }
    if is_windows_device(&stem) {
        stem.insert(0, '_');
    }
    if ext.is_empty() {
        stem
    } else {
        format!("{stem}.{ext}")
    }
}

/// Zero-width and direction-changing characters, which can make
/// `photo\u{202e}gnp.exe` look like `photoexe.png`.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

fn is_windows_device(stem: &str) -> bool {
    let upper = stem
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.len() == 4
            && upper.as_bytes()[3].is_ascii_digit())
}

/// (stem, extension) of a name; the extension without its dot.
fn split_ext(name: &str) -> (&str, &str) {
    name.rsplit_once('.').unwrap_or((name, ""))
}

/// The lower-cased extension of a (sanitised) name.
pub fn extension(name: &str) -> String {
    split_ext(name).1.to_ascii_lowercase()
}

/// The kind a name promises, or 415 when its extension is not accepted.
pub fn kind_of_name(name: &str) -> AppResult<Kind> {
    let ext = extension(name);
    Kind::from_extension(&ext).ok_or_else(|| {
        let shown = if ext.is_empty() {
            "files without an extension".to_owned()
        } else {
            format!(".{ext} files")
        };
        AppError::UnsupportedMediaType(format!(
            "{shown} are not accepted; allowed: jpg, jpeg, png, webp, gif, pdf, txt, doc, docx, odt, xlsx"
        ))
    })
}

/// Checks the whole content against the kind its name promises.
pub fn verify(kind: Kind, bytes: &[u8]) -> AppResult<()> {
    if bytes.is_empty() {
        return Err(AppError::validation("the file is empty"));
    }
    if let Some(what) = dangerous(kind, bytes) {
        return Err(AppError::UnsupportedMediaType(format!(
            "{what} files are not accepted"
        )));
    }
    let matches = match kind {
        Kind::Jpeg => infer::image::is_jpeg(bytes),
        Kind::Png => infer::image::is_png(bytes),
        Kind::Gif => infer::image::is_gif(bytes),
        Kind::Webp => infer::image::is_webp(bytes),
        Kind::Pdf => infer::archive::is_pdf(bytes),
        Kind::Doc => infer::doc::is_doc(bytes),
        Kind::Odt => infer::odf::is_odt(bytes),
        Kind::Docx => ooxml_has(bytes, "word/document.xml"),
        Kind::Xlsx => ooxml_has(bytes, "xl/workbook.xml"),
        Kind::Text => is_plain_text(bytes),
    };
    if !matches {
        return Err(AppError::Unprocessable(format!(
            "the file's content is not {} as its name says",
            describe(kind)
        )));
    }
    Ok(())
}

fn describe(kind: Kind) -> &'static str {
    match kind {
        Kind::Jpeg => "a JPEG image",
        Kind::Png => "a PNG image",
        Kind::Gif => "a GIF image",
        Kind::Webp => "a WebP image",
        Kind::Pdf => "a PDF document",
        Kind::Text => "plain UTF-8 text",
        Kind::Doc => "a Word document",
        Kind::Docx => "a Word (docx) document",
        Kind::Odt => "an OpenDocument text",
        Kind::Xlsx => "an Excel (xlsx) workbook",
    }
}

/// Content that can run or render as a page, whatever the name says.
/// Plain text is exempt from the markup checks: it is served as
/// `text/plain` with `nosniff`, so markup in it stays text.
fn dangerous(kind: Kind, bytes: &[u8]) -> Option<&'static str> {
    // A bare "MZ" is only a DOS stub hint; text may start with it.
    if is_executable(bytes) || (kind != Kind::Text && infer::app::is_exe(bytes)) {
        return Some("executable");
    }
    if kind == Kind::Text {
        return None;
    }
    if bytes.starts_with(b"#!") || infer::text::is_shellscript(bytes) {
        return Some("script");
    }
    if infer::text::is_html(bytes) {
        return Some("HTML");
    }
    if infer::text::is_xml(bytes) || looks_like_svg(bytes) {
        return Some("SVG or XML");
    }
    if is_macro_document(bytes) {
        return Some("macro-enabled");
    }
    None
}

/// Program formats by their full signatures, strict enough never to match
/// plain text.
fn is_executable(b: &[u8]) -> bool {
    let pe = b.starts_with(b"MZ")
        && b.get(0x3c..0x40).is_some_and(|o| {
            let at = u32::from_le_bytes(o.try_into().expect("4 bytes")) as usize;
            b.get(at..at.saturating_add(4)) == Some(b"PE\0\0".as_slice())
        });
    pe || b.starts_with(b"\x7fELF")
        || infer::app::is_mach(b)
        || infer::app::is_wasm(b)
        || infer::app::is_dex(b)
        || infer::app::is_java(b)
}

fn looks_like_svg(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n'])
        .starts_with('<')
        && text.contains("<svg")
}

/// UTF-8 without NUL bytes: binary formats fail one or the other.
fn is_plain_text(bytes: &[u8]) -> bool {
    !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}

/// An Office Open XML package (a zip with `[Content_Types].xml`) holding
/// `part`.
fn ooxml_has(bytes: &[u8], part: &str) -> bool {
    zip_entry_names(bytes).is_some_and(|names| {
        names.iter().any(|n| n == b"[Content_Types].xml")
            && names.iter().any(|n| n == &part.as_bytes())
    })
}

/// Office documents carrying VBA macros (a renamed .docm or .xlsm).
fn is_macro_document(bytes: &[u8]) -> bool {
    zip_entry_names(bytes).is_some_and(|names| {
        names
            .iter()
            .any(|n| n.to_ascii_lowercase().ends_with(b"vbaproject.bin"))
    })
}

/// The entry names of a zip archive, read from its central directory (the
/// authoritative list, unlike the local headers a sniffer sees first).
fn zip_entry_names(bytes: &[u8]) -> Option<Vec<&[u8]>> {
    const EOCD: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];
    const CENTRAL: [u8; 4] = [0x50, 0x4b, 0x01, 0x02];
    if !bytes.starts_with(&[0x50, 0x4b, 0x03, 0x04]) {
        return None;
    }
    let u16_at = |i: usize| -> Option<usize> {
        Some(u16::from_le_bytes(bytes.get(i..i + 2)?.try_into().ok()?) as usize)
    };
    let u32_at = |i: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?) as usize)
    };
    let last = bytes.len().checked_sub(22)?;
    let first = last.saturating_sub(u16::MAX as usize);
    let eocd = (first..=last).rev().find(|&i| bytes[i..i + 4] == EOCD)?;
    let count = u16_at(eocd + 10)?;
    let size = u32_at(eocd + 12)?;
    let offset = u32_at(eocd + 16)?;
    if offset.checked_add(size)? > eocd {
        return None;
    }
    let mut names = Vec::with_capacity(count);
    let mut at = offset;
    for _ in 0..count {
        if bytes.get(at..at + 4)? != CENTRAL {
            return None;
        }
        let name_len = u16_at(at + 28)?;
        let extra_len = u16_at(at + 30)?;
        let comment_len = u16_at(at + 32)?;
        names.push(bytes.get(at + 46..at + 46 + name_len)?);
        at += 46 + name_len + extra_len + comment_len;
    }
    Some(names)
}

/// `Content-Disposition` for a download: `inline` only for raster images,
/// an ASCII fallback name and the exact name in RFC 5987 form.
pub fn content_disposition(name: &str, inline: bool) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() || c == ' ') && !matches!(c, '"' | '\\' | '%' | ';') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let disposition = if inline { "inline" } else { "attachment" };
    format!("{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PDF: &[u8] = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n";

    /// A zip whose central directory lists `names` (no contents needed).
    fn zip_with(names: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for name in names {
            let offset = out.len() as u32;
            out.extend_from_slice(&[0x50, 0x4b, 0x03, 0x04]);
            out.extend_from_slice(&[0; 22]);
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            central.extend_from_slice(&[0x50, 0x4b, 0x01, 0x02]);
            central.extend_from_slice(&[0; 24]);
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&[0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0]);
        out.extend_from_slice(&(names.len() as u16).to_le_bytes());
        out.extend_from_slice(&(names.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    fn status(r: AppResult<()>) -> u16 {
        r.map_or_else(|e| e.status().as_u16(), |_| 200)
    }

    #[test]
    fn names_lose_paths_controls_and_bidi_tricks() {
        assert_eq!(sanitize_name("../../etc/passwd.txt"), "passwd.txt");
        assert_eq!(sanitize_name("C:\\Users\\ann\\cv.pdf"), "cv.pdf");
        assert_eq!(sanitize_name("photo\u{202e}gnp.exe"), "photognp.exe");
        assert_eq!(sanitize_name("a\r\nb\t c.png"), "ab c.png");
        assert_eq!(sanitize_name("we\"ird<>|name?.txt"), "we_ird___name_.txt");
        assert_eq!(sanitize_name("  .hidden.  "), "file.hidden");
        assert_eq!(sanitize_name("report.exe. . "), "report.exe");
        assert_eq!(sanitize_name(""), "file");
        assert_eq!(sanitize_name(".png"), "file.png");
        assert_eq!(sanitize_name("CON.txt"), "_CON.txt");
        let long = format!("{}.pdf", "x".repeat(400));
        let safe = sanitize_name(&long);
        assert_eq!(safe.chars().count(), MAX_NAME_CHARS);
        assert!(safe.ends_with(".pdf"));
        assert_eq!(sanitize_name("Zdjęcie — ёж.JPG"), "Zdjęcie — ёж.JPG");
    }

    #[test]
    fn only_listed_extensions_pass() {
        for ok in [
            "a.jpg", "a.JPEG", "a.png", "a.webp", "a.gif", "a.pdf", "a.txt",
        ] {
            assert!(kind_of_name(ok).is_ok(), "{ok}");
        }
        for ok in ["a.doc", "a.docx", "a.odt", "a.xlsx"] {
            assert!(kind_of_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a.exe", "a.html", "a.svg", "a.js", "a.sh", "a.bat", "a.ps1", "a.php",
        ] {
            assert_eq!(
                kind_of_name(bad).unwrap_err().status().as_u16(),
                415,
                "{bad}"
            );
        }
        assert_eq!(
            kind_of_name("a.pdf.exe").unwrap_err().status().as_u16(),
            415
        );
        assert_eq!(kind_of_name("README").unwrap_err().status().as_u16(), 415);
    }

    #[test]
    fn content_must_be_what_the_name_says() {
        assert_eq!(status(verify(Kind::Pdf, PDF)), 200);
        assert_eq!(status(verify(Kind::Pdf, b"just some text")), 422);
        assert_eq!(status(verify(Kind::Png, PDF)), 422);
        assert_eq!(status(verify(Kind::Text, "zażółć\n".as_bytes())), 200);
        assert_eq!(status(verify(Kind::Text, b"<html><b>hi</b></html>")), 200);
        assert_eq!(status(verify(Kind::Text, b"a\0b")), 422);
        assert_eq!(status(verify(Kind::Text, &[0xff, 0xfe, 0x41])), 422);
        assert_eq!(status(verify(Kind::Text, b"")), 400);
        // Plain text may start like a DOS stub or LLVM bitcode.
        assert_eq!(status(verify(Kind::Text, b"MZ Corp minutes\n")), 200);
        assert_eq!(status(verify(Kind::Text, b"BC Hydro bill\n")), 200);
    }

    #[test]
    fn executables_and_markup_are_refused_whatever_the_name() {
        let mut pe = b"MZ\x90\x00".to_vec();
        pe.resize(256, 0);
        pe[0x3c] = 0x80;
        pe[0x80..0x84].copy_from_slice(b"PE\0\0");
        assert_eq!(status(verify(Kind::Png, &pe)), 415);
        let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
        elf.resize(64, 0);
        assert_eq!(status(verify(Kind::Png, &elf)), 415);
        assert_eq!(status(verify(Kind::Text, &elf)), 415);
        assert_eq!(status(verify(Kind::Pdf, b"#!/bin/sh\nrm -rf /\n")), 415);
        assert_eq!(status(verify(Kind::Jpeg, b"<html><script>x</script>")), 415);
        let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script/></svg>";
        assert_eq!(status(verify(Kind::Png, svg)), 415);
        assert_eq!(
            status(verify(Kind::Png, b"<?xml version=\"1.0\"?><a/>")),
            415
        );
    }

    #[test]
    fn office_packages_are_read_from_the_central_directory() {
        let docx = zip_with(&["[Content_Types].xml", "_rels/.rels", "word/document.xml"]);
        assert_eq!(status(verify(Kind::Docx, &docx)), 200);
        assert_eq!(status(verify(Kind::Xlsx, &docx)), 422);
        let xlsx = zip_with(&["[Content_Types].xml", "xl/workbook.xml"]);
        assert_eq!(status(verify(Kind::Xlsx, &xlsx)), 200);
        let plain_zip = zip_with(&["a.txt"]);
        assert_eq!(status(verify(Kind::Docx, &plain_zip)), 422);
        let docm = zip_with(&[
            "[Content_Types].xml",
            "word/document.xml",
            "word/vbaProject.bin",
        ]);
        assert_eq!(status(verify(Kind::Docx, &docm)), 415);
        assert_eq!(status(verify(Kind::Doc, &docx)), 422);
    }

    #[test]
    fn content_disposition_is_ascii_with_an_exact_utf8_name() {
        assert_eq!(
            content_disposition("cat.png", true),
            "inline; filename=\"cat.png\"; filename*=UTF-8''cat.png"
        );
        assert_eq!(
            content_disposition("ёж 1;2.pdf", false),
            "attachment; filename=\"__ 1_2.pdf\"; filename*=UTF-8''%D1%91%D0%B6%201%3B2.pdf"
        );
    }
}
