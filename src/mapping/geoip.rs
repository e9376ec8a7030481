//! `source.ip` → `source.geo.*` and `source.as.*`, from MaxMind-format databases.
//!
//! The databases are the user's (`--geoip-city`, `--geoip-asn`): GeoLite2/GeoIP2 or any
//! MaxMind DB with the same record layout (DB-IP, IPinfo's compatible files). They are read
//! into memory at start, not memory-mapped: a mapped file that is replaced or truncated under
//! the reader is undefined behaviour (why `open_mmap` is unsound, RUSTSEC-2025-0132). The cost
//! is the file's size in heap, once: about 70 MB for GeoLite2-City, a few MB for an ASN file.
//! Without them the fields are simply absent, as in Elastic when its geoip processor has no
//! database.
//!
//! The field set is what Elasticsearch's geoip processor emits by default (8.11): continent,
//! country, most specific subdivision as the region, city and location; ASN number and
//! organisation, renamed as Elastic's Slack pipeline does.

use crate::units::ConfigError;
use maxminddb::{geoip2, Reader};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// Distinct addresses remembered before the cache is emptied; lookups decode several maps each.
const CACHE_CAPACITY: usize = 16_384;

/// The `source.geo` and `source.as` objects for one address as JSON text (either may be
/// absent). Kept as text: the cache hands them to the document writer without copying.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Location {
    /// `source.geo`.
    pub(crate) geo: Option<String>,
    /// `source.as`.
    pub(crate) asn: Option<String>,
}

/// The answer for an address in no database.
static NOWHERE: Location = Location {
    geo: None,
    asn: None,
};

/// The open databases and a cache of answers. The databases are shared ([`GeoIp::share`]):
/// the detections look addresses up too, without a second copy in memory.
#[derive(Default)]
pub(crate) struct GeoIp {
    city: Option<Arc<Reader<Vec<u8>>>>,
    asn: Option<Arc<Reader<Vec<u8>>>>,
    cache: HashMap<IpAddr, Location>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field(
                "city",
                &self.city.as_ref().map(|r| &r.metadata().database_type),
            )
            .field(
                "asn",
                &self.asn.as_ref().map(|r| &r.metadata().database_type),
            )
            .finish()
    }
}

impl GeoIp {
    /// Opens the databases that are named.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming the flag when a file cannot be opened, is not a MaxMind
    /// DB, or is plainly the other kind (an ASN database given as the city one, or the reverse).
    pub(crate) fn open(city: Option<&Path>, asn: Option<&Path>) -> Result<GeoIp, ConfigError> {
        Ok(GeoIp {
            city: city
                .map(|p| open_db("geoip-city", p, "ASN").map(Arc::new))
                .transpose()?,
            asn: asn
                .map(|p| open_db("geoip-asn", p, "City").map(Arc::new))
                .transpose()?,
            cache: HashMap::new(),
        })
    }

    /// The same databases, with a cache of its own.
    pub(crate) fn share(&self) -> GeoIp {
        GeoIp {
            city: self.city.clone(),
            asn: self.asn.clone(),
            cache: HashMap::new(),
        }
    }

    /// Whether a city database is open.
    pub(crate) fn has_city(&self) -> bool {
        self.city.is_some()
    }

    /// Whether an ASN database is open.
    pub(crate) fn has_asn(&self) -> bool {
        self.asn.is_some()
    }

    /// True when at least one database is open.
    pub(crate) fn is_enabled(&self) -> bool {
        self.city.is_some() || self.asn.is_some()
    }

    /// Looks `ip` up in both databases; an address in neither gives an empty [`Location`].
    pub(crate) fn lookup(&mut self, ip: IpAddr) -> &Location {
        if !self.is_enabled() {
            return &NOWHERE;
        }
        if self.cache.len() >= CACHE_CAPACITY && !self.cache.contains_key(&ip) {
            self.cache.clear();
        }
        let (city, asn) = (&self.city, &self.asn);
        self.cache.entry(ip).or_insert_with(|| Location {
            geo: city
                .as_ref()
                .and_then(|r| r.lookup(ip).ok()?.decode::<geoip2::City>().ok()?)
                .and_then(|c| to_geo(&c)),
            asn: asn
                .as_ref()
                .and_then(|r| r.lookup(ip).ok()?.decode::<geoip2::Asn>().ok()?)
                .and_then(|a| to_as(&a)),
        })
    }
}

fn open_db(
    flag: &'static str,
    path: &Path,
    wrong_kind: &str,
) -> Result<Reader<Vec<u8>>, ConfigError> {
    let reader = Reader::open_readfile(path).map_err(|e| ConfigError::Invalid {
        flag,
        message: format!("cannot open {} as a MaxMind DB: {e}", path.display()),
    })?;
    let kind = &reader.metadata().database_type;
    if kind.contains(wrong_kind) {
        return Err(ConfigError::Invalid {
            flag,
            message: format!(
                "{} is a {kind:?} database, not the kind this flag needs",
                path.display()
            ),
        });
    }
    Ok(reader)
}

/// The English name of a MaxMind `names` map.
fn english<'a>(names: &geoip2::Names<'a>) -> Option<&'a str> {
    names.english
}

fn to_geo(c: &geoip2::City<'_>) -> Option<String> {
    let mut geo = Map::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            geo.insert(k.into(), v.into());
        }
    };
    put("continent_name", english(&c.continent.names));
    let country_iso = c.country.iso_code;
    put("country_iso_code", country_iso);
    put("country_name", english(&c.country.names));
    // Elasticsearch reports the most specific subdivision (the last one) as the region.
    let region = c.subdivisions.last();
    if let (Some(country), Some(sub)) = (country_iso, region.and_then(|r| r.iso_code)) {
        put("region_iso_code", Some(&format!("{country}-{sub}")));
    }
    put("region_name", region.and_then(|r| english(&r.names)));
    put("city_name", english(&c.city.names));
    if let (Some(lat), Some(lon)) = (c.location.latitude, c.location.longitude) {
        geo.insert("location".into(), json!({ "lat": lat, "lon": lon }));
    }
    (!geo.is_empty()).then(|| Value::Object(geo).to_string())
}

fn to_as(a: &geoip2::Asn<'_>) -> Option<String> {
    let mut out = Map::new();
    if let Some(n) = a.autonomous_system_number {
        out.insert("number".into(), n.into());
    }
    if let Some(org) = a.autonomous_system_organization.filter(|o| !o.is_empty()) {
        out.insert("organization".into(), json!({ "name": org }));
    }
    (!out.is_empty()).then(|| Value::Object(out).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::testdb;

    fn parsed(text: Option<String>) -> Value {
        serde_json::from_str(&text.expect("a hit")).unwrap()
    }

    #[test]
    fn london_and_its_network() {
        let dir = tempfile::tempdir().unwrap();
        let (city, asn) = testdb::write_test_databases(dir.path());
        let mut g = GeoIp::open(Some(&city), Some(&asn)).unwrap();
        let hit = g.lookup("81.2.69.143".parse().unwrap()).clone();
        assert_eq!(
            parsed(hit.geo),
            json!({"city_name": "London", "continent_name": "Europe", "country_iso_code": "GB",
                   "country_name": "United Kingdom", "location": {"lat": 51.5142, "lon": -0.0931},
                   "region_iso_code": "GB-ENG", "region_name": "England"})
        );
        assert_eq!(
            parsed(hit.asn),
            json!({"number": 20712, "organization": {"name": "Andrews & Arnold Ltd"}})
        );
    }

    #[test]
    fn private_and_ipv6_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let (city, asn) = testdb::write_test_databases(dir.path());
        let mut g = GeoIp::open(Some(&city), Some(&asn)).unwrap();
        assert_eq!(
            g.lookup("192.168.1.1".parse().unwrap()),
            &Location::default()
        );
        let v6 = g.lookup("2a02:ffc0::1".parse().unwrap()).clone();
        assert_eq!(parsed(v6.geo)["country_iso_code"], "GI");
        assert_eq!(v6.asn, None);
    }

    #[test]
    fn swapped_databases_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (city, asn) = testdb::write_test_databases(dir.path());
        let e = GeoIp::open(Some(&asn), None).unwrap_err();
        assert!(e.to_string().contains("--geoip-city"), "{e}");
        assert!(GeoIp::open(None, Some(&city)).is_err());
        assert!(GeoIp::open(Some(Path::new("/nonexistent.mmdb")), None).is_err());
    }

    #[test]
    fn without_databases_nothing_is_looked_up() {
        let mut g = GeoIp::default();
        assert_eq!(
            g.lookup("81.2.69.143".parse().unwrap()),
            &Location::default()
        );
    }
}
