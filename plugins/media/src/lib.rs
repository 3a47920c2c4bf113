//! The media pipeline: `plan` lists the images a server offers and replaces
//! itself with a chord — one `thumbnail` per image, side by side, then
//! `totals`. Each `thumbnail` downloads its image over HTTP, decodes and
//! resizes it in the guest, and uploads the PNG thumbnail with an HTTP PUT
//! to the base URL granted as config `upload_url`.

use std::io::Cursor;

use serde::{Deserialize, Serialize};
use wfhost_guest::{Outcome, TaskError, chord, http, sig, task};

/// What `thumbnail` made of one image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Thumb {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub thumb_width: u32,
    pub thumb_height: u32,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// The totals of a batch of thumbnails.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Totals {
    pub images: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Lists the images at `index_url` (a JSON array of URLs) and becomes a
/// chord: a thumbnail of each, at most `size` pixels a side, then totals.
#[task]
pub fn plan(index_url: String, size: u32) -> Result<Outcome, TaskError> {
    let urls: Vec<String> = http::get(index_url).send()?.error_for_status()?.json()?;
    let header = urls
        .into_iter()
        .map(|url| sig("media.thumbnail").args((url, size)))
        .collect::<Vec<_>>();
    Ok(Outcome::replace(chord(header, sig("media.totals"))))
}

/// Downloads the image at `url`, makes a thumbnail at most `size` pixels a
/// side (keeping its aspect), and uploads it as PNG.
#[task]
pub fn thumbnail(url: String, size: u32) -> Result<Thumb, TaskError> {
    if size == 0 || size > 4096 {
        return Err(TaskError::fail(format!(
            "a thumbnail is 1 to 4096 pixels a side, not {size}"
        )));
    }
    let original = http::get(&url).send()?.error_for_status()?;
    let image = image::load_from_memory(&original.body)
        .map_err(|err| TaskError::fail(format!("{url}: not an image: {err}")))?;
    let small = image.thumbnail(size, size);
    let mut png = Vec::new();
    small
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|err| TaskError::fail(format!("encoding the thumbnail: {err}")))?;
    let stem = url.rsplit('/').next().unwrap_or("image");
    let name = stem
        .rsplit_once('.')
        .map_or(stem, |(stem, _)| stem)
        .to_string();
    let upload = format!(
        "{}/{name}.png",
        wfhost_guest::config::require("upload_url")?
    );
    http::put(upload)
        .header("content-type", "image/png")
        .body(png.clone())
        .send()?
        .error_for_status()?;
    Ok(Thumb {
        name,
        width: image.width(),
        height: image.height(),
        thumb_width: small.width(),
        thumb_height: small.height(),
        bytes_in: original.body.len() as u64,
        bytes_out: png.len() as u64,
    })
}

/// Adds up a batch of thumbnails.
#[task]
pub fn totals(thumbs: Vec<Thumb>) -> Totals {
    thumbs.iter().fold(Totals::default(), |mut totals, thumb| {
        totals.images += 1;
        totals.bytes_in += thumb.bytes_in;
        totals.bytes_out += thumb.bytes_out;
        totals
    })
}

wfhost_guest::export_tasks!(plan, thumbnail, totals);
