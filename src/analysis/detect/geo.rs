//! GeoIP lookups for session rules, injected so the engine is testable without databases.
//!
//! With an ASN lookup, "a new network" means a different autonomous system; without one (or
//! for an address in no ASN record) it means a different /16 (IPv4) or /48 (IPv6). The
//! new-country rule needs a country lookup and is off without one.

use crate::mapping::geoip::GeoIp;
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;

/// What session rules ask of GeoIP.
pub trait GeoLookup: Send {
    /// Whether an ASN database is open (`--geoip-asn`).
    fn has_asn(&self) -> bool;
    /// Whether a country database is open (`--geoip-city`).
    fn has_country(&self) -> bool;
    /// The autonomous system number of `ip`.
    fn asn(&mut self, ip: IpAddr) -> Option<u64>;
    /// The ISO country code of `ip`.
    fn country(&mut self, ip: IpAddr) -> Option<String>;
}

/// No databases: networks are prefixes, and the new-country rule is off.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGeo;

impl GeoLookup for NoGeo {
    fn has_asn(&self) -> bool {
        false
    }
    fn has_country(&self) -> bool {
        false
    }
    fn asn(&mut self, _: IpAddr) -> Option<u64> {
        None
    }
    fn country(&mut self, _: IpAddr) -> Option<String> {
        None
    }
}

/// Addresses remembered by [`GeoIpLookup`] before its memo is emptied.
const MEMO_CAPACITY: usize = 16_384;

/// The mapping's [`GeoIp`] as a lookup: the same databases (shared, not copied), answers
/// remembered per address as numbers and codes, so a session's entries cost one hash lookup.
#[derive(Debug)]
pub struct GeoIpLookup {
    geo: GeoIp,
    asn: HashMap<IpAddr, Option<u64>>,
    country: HashMap<IpAddr, Option<String>>,
}

impl GeoIpLookup {
    /// A lookup over the databases `geo` opened (`--geoip-asn`, `--geoip-city`); `None` when
    /// it opened neither.
    pub(crate) fn new(geo: &GeoIp) -> Option<GeoIpLookup> {
        geo.is_enabled().then(|| GeoIpLookup {
            geo: geo.share(),
            asn: HashMap::new(),
            country: HashMap::new(),
        })
    }

    /// The lookup `geo` allows, or [`NoGeo`].
    pub(crate) fn boxed(geo: &GeoIp) -> Box<dyn GeoLookup> {
        match GeoIpLookup::new(geo) {
            Some(g) => Box::new(g),
            None => Box::new(NoGeo),
        }
    }
}

/// Reads one field of the JSON text the mapping keeps per address.
fn field(text: Option<&str>, name: &str) -> Option<Value> {
    serde_json::from_str::<Value>(text?)
        .ok()?
        .get(name)
        .cloned()
}

impl GeoLookup for GeoIpLookup {
    fn has_asn(&self) -> bool {
        self.geo.has_asn()
    }
    fn has_country(&self) -> bool {
        self.geo.has_city()
    }
    fn asn(&mut self, ip: IpAddr) -> Option<u64> {
        if let Some(known) = self.asn.get(&ip) {
            return *known;
        }
        if self.asn.len() >= MEMO_CAPACITY {
            self.asn.clear();
        }
        let n = field(self.geo.lookup(ip).asn.as_deref(), "number").and_then(|v| v.as_u64());
        self.asn.insert(ip, n);
        n
    }
    fn country(&mut self, ip: IpAddr) -> Option<String> {
        if let Some(known) = self.country.get(&ip) {
            return known.clone();
        }
        if self.country.len() >= MEMO_CAPACITY {
            self.country.clear();
        }
        let code = field(self.geo.lookup(ip).geo.as_deref(), "country_iso_code")
            .and_then(|v| v.as_str().map(str::to_string));
        self.country.insert(ip, code.clone());
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::testdb;

    #[test]
    fn the_mapping_databases_answer_asn_and_country() {
        let dir = tempfile::tempdir().unwrap();
        let (city, asn) = testdb::write_test_databases(dir.path());
        let mut g = GeoIpLookup::new(&GeoIp::open(Some(&city), Some(&asn)).unwrap()).unwrap();
        assert!(g.has_asn() && g.has_country());
        let london = "81.2.69.143".parse().unwrap();
        assert_eq!(g.asn(london), Some(20712));
        assert_eq!(g.asn(london), Some(20712), "remembered");
        assert_eq!(g.country(london), Some("GB".into()));
        assert_eq!(g.asn("192.168.1.1".parse().unwrap()), None);
        let asn_only = GeoIpLookup::new(&GeoIp::open(None, Some(&asn)).unwrap()).unwrap();
        assert!(asn_only.has_asn() && !asn_only.has_country());
        assert!(GeoIpLookup::new(&GeoIp::default()).is_none());
    }
}
