//! GeoIP lookups for session rules, injected so the engine is testable without databases.
//!
//! With an ASN lookup, "a new network" means a different autonomous system; without one (or
//! for an address in no ASN record) it means a different /16 (IPv4) or /48 (IPv6). The
//! new-country rule needs a country lookup and is off without one.

#[cfg(test)]
use crate::mapping::geoip::GeoIp;
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

/// The mapping's [`GeoIp`] as a lookup; the flags say which databases it was opened with.
#[cfg(test)]
#[derive(Debug)]
pub struct GeoIpLookup {
    /// The open databases.
    pub geo: GeoIp,
    /// `--geoip-asn` was given.
    pub asn: bool,
    /// `--geoip-city` was given.
    pub city: bool,
}

#[cfg(test)]
impl GeoLookup for GeoIpLookup {
    fn has_asn(&self) -> bool {
        self.asn
    }
    fn has_country(&self) -> bool {
        self.city
    }
    fn asn(&mut self, ip: IpAddr) -> Option<u64> {
        let text = self.geo.lookup(ip).asn.as_deref()?;
        serde_json::from_str::<serde_json::Value>(text)
            .ok()?
            .get("number")?
            .as_u64()
    }
    fn country(&mut self, ip: IpAddr) -> Option<String> {
        let text = self.geo.lookup(ip).geo.as_deref()?;
        serde_json::from_str::<serde_json::Value>(text)
            .ok()?
            .get("country_iso_code")?
            .as_str()
            .map(str::to_string)
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
        let mut g = GeoIpLookup {
            geo: GeoIp::open(Some(&city), Some(&asn)).unwrap(),
            asn: true,
            city: true,
        };
        let london = "81.2.69.143".parse().unwrap();
        assert_eq!(g.asn(london), Some(20712));
        assert_eq!(g.country(london), Some("GB".into()));
        assert_eq!(g.asn("192.168.1.1".parse().unwrap()), None);
    }
}
