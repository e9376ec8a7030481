//! A minimal MaxMind DB writer, for tests only: builds tiny city and ASN databases so that
//! `cargo test` needs no downloaded file and no licence-bound MaxMind data.
//!
//! Compiled into the library's unit tests (`#[cfg(test)]`) and into the integration tests (by
//! `#[path]`), so both use the same databases. It writes format 2.0 as the public spec
//! (<https://maxmind.github.io/MaxMind-DB/>) describes it: an IPv6 binary search tree with
//! 24-bit records (IPv4 networks live under `::/96`), 16 zero bytes, the data section, then the
//! metadata marker and map. No pointers or deduplication: a test database holds a handful of
//! networks. The records mirror MaxMind's public test databases for the addresses Elastic's
//! tests use (81.2.69.142/31 is London, GB).

#![allow(dead_code)] // each test binary uses a different part

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A value in the MaxMind DB data format (only the types test data needs).
#[derive(Debug, Clone)]
pub(crate) enum Data {
    /// UTF-8 string (type 2).
    Str(String),
    /// IEEE 754 double (type 3).
    Double(f64),
    /// Unsigned 16-bit integer (type 5).
    U16(u16),
    /// Unsigned 32-bit integer (type 6).
    U32(u32),
    /// Unsigned 64-bit integer (type 9).
    U64(u64),
    /// Map with string keys (type 7).
    Map(Vec<(String, Data)>),
    /// Array (type 11).
    Array(Vec<Data>),
    /// Boolean (type 14).
    Bool(bool),
}

/// Shorthand for a map value.
pub(crate) fn map(pairs: Vec<(&str, Data)>) -> Data {
    Data::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// Shorthand for a string value.
pub(crate) fn s(v: &str) -> Data {
    Data::Str(v.to_string())
}

/// `{"en": name}`, MaxMind's `names` shape.
pub(crate) fn names(en: &str) -> Data {
    map(vec![("en", s(en))])
}

/// One database under construction: networks and their records.
#[derive(Debug)]
pub(crate) struct Writer {
    database_type: String,
    networks: Vec<(u128, u8, Data)>,
}

impl Writer {
    /// An empty database of the given `database_type` (e.g. "GeoLite2-City").
    pub(crate) fn new(database_type: &str) -> Writer {
        Writer {
            database_type: database_type.to_string(),
            networks: Vec::new(),
        }
    }

    /// Adds `network/prefix` (IPv4 networks are stored under `::/96`). Networks must not
    /// overlap: this writer does not merge a wider record into a narrower one's siblings.
    pub(crate) fn insert(&mut self, network: &str, prefix: u8, data: Data) -> &mut Writer {
        let ip: IpAddr = network.parse().expect("test network is a literal address");
        let (bits, prefix) = match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), prefix + 96),
            IpAddr::V6(v6) => (u128::from(v6), prefix),
        };
        self.networks.push((bits, prefix, data));
        self
    }

    /// The database file's bytes.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut data = Vec::new();
        let mut root = Node::default();
        for (bits, prefix, record) in &self.networks {
            let offset = data.len();
            encode(record, &mut data);
            root.insert(*bits, *prefix, offset);
        }
        // Number the nodes breadth-first: the root must be node 0.
        let mut order: Vec<&Node> = vec![&root];
        let mut i = 0;
        while i < order.len() {
            for child in order[i].children.iter().flatten() {
                if let Record::Node(n) = child {
                    order.push(n);
                }
            }
            i += 1;
        }
        let node_count = order.len();
        let mut numbers = std::collections::HashMap::new();
        for (n, node) in order.iter().enumerate() {
            numbers.insert(*node as *const Node, n);
        }
        let mut out = Vec::with_capacity(node_count * 6 + data.len() + 256);
        for node in &order {
            for child in &node.children {
                let value = match child {
                    None => node_count,
                    Some(Record::Node(n)) => numbers[&(&**n as *const Node)],
                    Some(Record::Data(offset)) => node_count + 16 + offset,
                };
                let v = u32::try_from(value).expect("test databases stay far below 2^24 records");
                out.extend_from_slice(&v.to_be_bytes()[1..]);
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\xab\xcd\xefMaxMind.com");
        let metadata = map(vec![
            ("binary_format_major_version", Data::U16(2)),
            ("binary_format_minor_version", Data::U16(0)),
            ("build_epoch", Data::U64(1_700_000_000)),
            ("database_type", s(&self.database_type)),
            (
                "description",
                map(vec![("en", s("slack-audit-source test database"))]),
            ),
            ("ip_version", Data::U16(6)),
            ("languages", Data::Array(vec![s("en")])),
            ("node_count", Data::U32(node_count as u32)),
            ("record_size", Data::U16(24)),
        ]);
        encode(&metadata, &mut out);
        out
    }

    /// Writes the database to `path`.
    pub(crate) fn write(&self, path: &Path) {
        std::fs::write(path, self.to_bytes()).expect("test database is writable");
    }
}

#[derive(Default)]
struct Node {
    children: [Option<Record>; 2],
}

enum Record {
    Node(Box<Node>),
    Data(usize),
}

impl Node {
    fn insert(&mut self, bits: u128, prefix: u8, offset: usize) {
        let mut node = self;
        for depth in 0..prefix {
            let bit = ((bits >> (127 - depth)) & 1) as usize;
            if depth + 1 == prefix {
                node.children[bit] = Some(Record::Data(offset));
                return;
            }
            if !matches!(node.children[bit], Some(Record::Node(_))) {
                node.children[bit] = Some(Record::Node(Box::default()));
            }
            let Some(Record::Node(next)) = &mut node.children[bit] else {
                unreachable!("set just above")
            };
            node = next;
        }
    }
}

/// Appends a control byte (and extended-type and size bytes) for `type_num` and `size`.
fn control(type_num: u8, size: usize, out: &mut Vec<u8>) {
    let (low, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    if type_num <= 7 {
        out.push((type_num << 5) | low);
    } else {
        out.push(low);
        out.push(type_num - 7);
    }
    out.extend_from_slice(&extra);
}

/// Big-endian bytes without leading zeros, as the format stores unsigned integers.
fn minimal(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn encode(d: &Data, out: &mut Vec<u8>) {
    match d {
        Data::Str(v) => {
            control(2, v.len(), out);
            out.extend_from_slice(v.as_bytes());
        }
        Data::Double(v) => {
            control(3, 8, out);
            out.extend_from_slice(&v.to_be_bytes());
        }
        Data::U16(v) => uint(5, &v.to_be_bytes(), out),
        Data::U32(v) => uint(6, &v.to_be_bytes(), out),
        Data::U64(v) => uint(9, &v.to_be_bytes(), out),
        Data::Map(pairs) => {
            control(7, pairs.len(), out);
            for (k, v) in pairs {
                encode(&Data::Str(k.clone()), out);
                encode(v, out);
            }
        }
        Data::Array(items) => {
            control(11, items.len(), out);
            items.iter().for_each(|i| encode(i, out));
        }
        Data::Bool(b) => control(14, usize::from(*b), out),
    }
}

fn uint(type_num: u8, be: &[u8], out: &mut Vec<u8>) {
    let bytes = minimal(be);
    control(type_num, bytes.len(), out);
    out.extend_from_slice(bytes);
}

/// A GeoIP2-City-shaped record.
pub(crate) fn city_record(
    city: &str,
    continent: (&str, &str),
    country: (&str, &str),
    sub: Option<(&str, &str)>,
    lat_lon: (f64, f64),
) -> Data {
    let mut pairs = vec![
        (
            "continent",
            map(vec![
                ("code", s(continent.0)),
                ("geoname_id", Data::U32(6_255_148)),
                ("names", names(continent.1)),
            ]),
        ),
        (
            "country",
            map(vec![
                ("geoname_id", Data::U32(2_635_167)),
                ("iso_code", s(country.0)),
                ("names", names(country.1)),
            ]),
        ),
        (
            "location",
            map(vec![
                ("accuracy_radius", Data::U16(100)),
                ("latitude", Data::Double(lat_lon.0)),
                ("longitude", Data::Double(lat_lon.1)),
                ("time_zone", s("Europe/London")),
            ]),
        ),
    ];
    if !city.is_empty() {
        pairs.push((
            "city",
            map(vec![
                ("geoname_id", Data::U32(2_643_743)),
                ("names", names(city)),
            ]),
        ));
    }
    if let Some((iso, name)) = sub {
        pairs.push((
            "subdivisions",
            Data::Array(vec![map(vec![
                ("iso_code", s(iso)),
                ("names", names(name)),
            ])]),
        ));
    }
    map(pairs)
}

/// An ASN record.
pub(crate) fn asn_record(number: u32, organization: &str) -> Data {
    map(vec![
        ("autonomous_system_number", Data::U32(number)),
        ("autonomous_system_organization", s(organization)),
    ])
}

/// Writes `city.mmdb` and `asn.mmdb` into `dir` and returns their paths.
///
/// City: 81.2.69.142/31, .144/28 and .160/27 → London, England, GB (as MaxMind's test data);
/// 2a02:ffc0::/32 → Gibraltar (a country-only record). ASN: 81.2.69.0/24 → AS20712
/// "Andrews & Arnold Ltd"; 1.128.0.0/11 → AS1221 "Telstra Pty Ltd".
pub(crate) fn write_test_databases(dir: &Path) -> (PathBuf, PathBuf) {
    let london = || {
        city_record(
            "London",
            ("EU", "Europe"),
            ("GB", "United Kingdom"),
            Some(("ENG", "England")),
            (51.5142, -0.0931),
        )
    };
    let mut city = Writer::new("GeoIP2-City");
    city.insert("81.2.69.142", 31, london())
        .insert("81.2.69.144", 28, london())
        .insert("81.2.69.160", 27, london())
        .insert(
            "2a02:ffc0::",
            32,
            city_record(
                "",
                ("EU", "Europe"),
                ("GI", "Gibraltar"),
                None,
                (36.1333, -5.35),
            ),
        );
    let mut asn = Writer::new("GeoLite2-ASN");
    asn.insert("81.2.69.0", 24, asn_record(20712, "Andrews & Arnold Ltd"))
        .insert("1.128.0.0", 11, asn_record(1221, "Telstra Pty Ltd"));
    let (city_path, asn_path) = (dir.join("city.mmdb"), dir.join("asn.mmdb"));
    city.write(&city_path);
    asn.write(&asn_path);
    (city_path, asn_path)
}
