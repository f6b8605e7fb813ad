//! UTM coordinates and the `@`-separated image names of the VPR dataset standard
//! (gmberton's VPR-datasets-downloader `util.py::get_dst_image_name`, docs/PAPERS.md protocols §2.1, docs/PAPERS.md B.7).

/// WGS84 semi-major axis (m).
const A: f64 = 6_378_137.0;
/// WGS84 flattening.
const F: f64 = 1.0 / 298.257_223_563;
/// UTM scale factor on the central meridian.
const K0: f64 = 0.9996;

fn e2() -> f64 {
    F * (2.0 - F)
}

/// Central meridian (degrees) of a UTM zone.
fn central_meridian(zone: u8) -> f64 {
    (zone as f64 - 1.0) * 6.0 - 180.0 + 3.0
}

/// Latitude band letter of the UTM/MGRS grid for a latitude in degrees.
pub fn zone_letter(lat: f64) -> char {
    const LETTERS: &[u8] = b"CDEFGHJKLMNPQRSTUVWXX";
    let i = ((lat + 80.0) / 8.0).floor().clamp(0.0, 20.0) as usize;
    LETTERS[i] as char
}

/// UTM (east, north) in metres → (latitude, longitude) in degrees, WGS84, Snyder's series
/// (USGS Professional Paper 1395, eq. 8-18 … 8-25; sub-millimetre near the central meridian).
/// `northern` selects the hemisphere (`false` removes the 10 000 km false northing).
pub fn utm_to_latlon(east: f64, north: f64, zone: u8, northern: bool) -> (f64, f64) {
    let e2 = e2();
    let ep2 = e2 / (1.0 - e2);
    let x = east - 500_000.0;
    let y = if northern {
        north
    } else {
        north - 10_000_000.0
    };
    let m = y / K0;
    let mu = m / (A * (1.0 - e2 / 4.0 - 3.0 * e2 * e2 / 64.0 - 5.0 * e2 * e2 * e2 / 256.0));
    let s = (1.0 - e2).sqrt();
    let e1 = (1.0 - s) / (1.0 + s);
    let phi1 = mu
        + (3.0 * e1 / 2.0 - 27.0 * e1.powi(3) / 32.0) * (2.0 * mu).sin()
        + (21.0 * e1 * e1 / 16.0 - 55.0 * e1.powi(4) / 32.0) * (4.0 * mu).sin()
        + (151.0 * e1.powi(3) / 96.0) * (6.0 * mu).sin()
        + (1097.0 * e1.powi(4) / 512.0) * (8.0 * mu).sin();
    let (sp, cp) = phi1.sin_cos();
    let tp = sp / cp;
    let c1 = ep2 * cp * cp;
    let t1 = tp * tp;
    let w = 1.0 - e2 * sp * sp;
    let n1 = A / w.sqrt();
    let r1 = A * (1.0 - e2) / (w * w.sqrt());
    let d = x / (n1 * K0);
    let lat = phi1
        - (n1 * tp / r1)
            * (d * d / 2.0
                - (5.0 + 3.0 * t1 + 10.0 * c1 - 4.0 * c1 * c1 - 9.0 * ep2) * d.powi(4) / 24.0
                + (61.0 + 90.0 * t1 + 298.0 * c1 + 45.0 * t1 * t1 - 252.0 * ep2 - 3.0 * c1 * c1)
                    * d.powi(6)
                    / 720.0);
    let lon = (d - (1.0 + 2.0 * t1 + c1) * d.powi(3) / 6.0
        + (5.0 - 2.0 * c1 + 28.0 * t1 - 3.0 * c1 * c1 + 8.0 * ep2 + 24.0 * t1 * t1) * d.powi(5)
            / 120.0)
        / cp;
    (lat.to_degrees(), central_meridian(zone) + lon.to_degrees())
}

/// (latitude, longitude) in degrees → UTM (east, north) in `zone`, WGS84, Snyder's series
/// (eq. 8-9 … 8-15). Used to check [`utm_to_latlon`] by a round trip.
pub fn latlon_to_utm(lat: f64, lon: f64, zone: u8) -> (f64, f64) {
    let e2 = e2();
    let ep2 = e2 / (1.0 - e2);
    let phi = lat.to_radians();
    let (sp, cp) = phi.sin_cos();
    let tp = sp / cp;
    let n = A / (1.0 - e2 * sp * sp).sqrt();
    let t = tp * tp;
    let c = ep2 * cp * cp;
    let a = cp * (lon - central_meridian(zone)).to_radians();
    let e4 = e2 * e2;
    let e6 = e4 * e2;
    let m = A
        * ((1.0 - e2 / 4.0 - 3.0 * e4 / 64.0 - 5.0 * e6 / 256.0) * phi
            - (3.0 * e2 / 8.0 + 3.0 * e4 / 32.0 + 45.0 * e6 / 1024.0) * (2.0 * phi).sin()
            + (15.0 * e4 / 256.0 + 45.0 * e6 / 1024.0) * (4.0 * phi).sin()
            - (35.0 * e6 / 3072.0) * (6.0 * phi).sin());
    let east = K0
        * n
        * (a + (1.0 - t + c) * a.powi(3) / 6.0
            + (5.0 - 18.0 * t + t * t + 72.0 * c - 58.0 * ep2) * a.powi(5) / 120.0)
        + 500_000.0;
    let mut north = K0
        * (m + n
            * tp
            * (a * a / 2.0
                + (5.0 - t + 9.0 * c + 4.0 * c * c) * a.powi(4) / 24.0
                + (61.0 - 58.0 * t + t * t + 600.0 * c - 330.0 * ep2) * a.powi(6) / 720.0));
    if lat < 0.0 {
        north += 10_000_000.0;
    }
    (east, north)
}

/// `format_coord(num, left, right)` of the VPR-datasets-downloader: `left` integer digits
/// (zero-padded, the sign counts as one), then `right` decimals **truncated** (not rounded) from
/// the shortest round-trip representation of the number (Rust's `Display` and Python's `repr`
/// agree on it for the magnitudes used here).
pub fn format_coord(num: f64, left: usize, right: usize) -> String {
    let sign = if num < 0.0 { "-" } else { "" };
    let text = format!("{}", num.abs());
    let (int_part, dec_part) = text.split_once('.').unwrap_or((text.as_str(), ""));
    let mut dec: String = dec_part.chars().take(right).collect();
    while dec.len() < right {
        dec.push('0');
    }
    let width = left.saturating_sub(sign.len());
    let int_value: u64 = int_part.parse().unwrap_or(0);
    format!("{sign}{int_value:0width$}.{dec}")
}

/// The metadata of one image, written into its file name.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageName {
    /// UTM easting (m).
    pub east: f64,
    /// UTM northing (m).
    pub north: f64,
    /// UTM zone number.
    pub zone: u8,
    /// UTM latitude band letter.
    pub letter: char,
    /// Latitude (degrees).
    pub lat: f64,
    /// Longitude (degrees).
    pub lon: f64,
    /// Panorama / capture id (no `@`).
    pub pano_id: String,
    /// Tile number within the capture.
    pub tile: Option<u32>,
    /// Compass heading of the camera (degrees clockwise from north, `[0, 360)`).
    pub heading: Option<f64>,
    /// Camera pitch (degrees, up positive).
    pub pitch: Option<f64>,
    /// `YYYYMMDD_hhmmss` (any right part may be missing).
    pub timestamp: String,
    /// Free note (no `@`); here the condition (`day`, `sunset`, `night`).
    pub note: String,
}

impl ImageName {
    /// The file name `@east@north@zone@letter@lat@lon@pano@tile@heading@pitch@roll@height@timestamp@note@.ext`
    /// with the field formats of `get_dst_image_name`: east/north `format_coord(·, 7, 2)`,
    /// zone `%02d`, lat `(3, 5)`, lon `(4, 5)`, tile `%02d`, heading and pitch `%03d` of the value
    /// truncated toward zero; roll and height empty.
    pub fn file_name(&self, extension: &str) -> String {
        let tile = self.tile.map(|t| format!("{t:02}")).unwrap_or_default();
        let heading = self
            .heading
            .map(|h| format!("{:03}", h.trunc() as i64))
            .unwrap_or_default();
        let pitch = self
            .pitch
            .map(|p| format!("{:03}", p.trunc() as i64))
            .unwrap_or_default();
        format!(
            "@{}@{}@{:02}@{}@{}@{}@{}@{}@{}@{}@@@{}@{}@.{}",
            format_coord(self.east, 7, 2),
            format_coord(self.north, 7, 2),
            self.zone,
            self.letter,
            format_coord(self.lat, 3, 5),
            format_coord(self.lon, 4, 5),
            self.pano_id,
            tile,
            heading,
            pitch,
            self.timestamp,
            self.note,
            extension.trim_start_matches('.'),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Snyder series are accurate to well under a millimetre within a UTM zone; 1 cm leaves
    /// room for the 1e-6-scale rounding of the published reference values.
    const UTM_TOL_M: f64 = 0.01;

    #[test]
    fn forward_utm_matches_published_point() {
        // The `utm` Python package's README: from_latlon(51.2, 7.5) == (395201.3103811303, 5673135.241182375, 32, 'U')
        let (e, n) = latlon_to_utm(51.2, 7.5, 32);
        assert!((e - 395_201.310_381_130_3).abs() < UTM_TOL_M, "east {e}");
        assert!((n - 5_673_135.241_182_375).abs() < UTM_TOL_M, "north {n}");
        assert_eq!(zone_letter(51.2), 'U');
    }

    #[test]
    fn inverse_utm_round_trips_and_hits_the_closed_form_origin() {
        let (lat, lon) = utm_to_latlon(500_000.0, 0.0, 54, true);
        assert!(lat.abs() < 1e-12 && (lon - 141.0).abs() < 1e-12);
        for &(e, n) in &[
            (380_000.0, 3_950_000.0),
            (391_234.56, 3_952_000.0),
            (612_000.0, 4_100_000.0),
        ] {
            let (lat, lon) = utm_to_latlon(e, n, 54, true);
            let (e2, n2) = latlon_to_utm(lat, lon, 54);
            assert!(
                (e - e2).abs() < UTM_TOL_M && (n - n2).abs() < UTM_TOL_M,
                "{e},{n} -> {e2},{n2}"
            );
            assert_eq!(zone_letter(lat), 'S');
        }
    }

    #[test]
    fn format_coord_follows_the_downloader_doctests() {
        // the two doctests of util.py::format_coord
        assert_eq!(format_coord(1.1, 3, 3), "001.100");
        assert_eq!(format_coord(-0.123, 3, 3), "-00.123");
        // truncation, not rounding
        assert_eq!(format_coord(35.123_456_9, 3, 5), "035.12345");
        assert_eq!(format_coord(380_000.0, 7, 2), "0380000.00");
    }
}
