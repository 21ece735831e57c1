//! A tiny writer of MaxMind DB files (format 2.0, IPv4 tree, 32-bit records), enough for
//! tests to give ScanGate a `geoip_database` with the networks and records they choose.

use std::net::Ipv4Addr;

use serde_json::Value;

/// A database of `(network, prefix length, record)`; more specific networks may sit inside
/// less specific ones if inserted after them.
pub fn write(networks: &[(Ipv4Addr, u8, Value)]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut offsets = Vec::new();
    for (_, _, record) in networks {
        offsets.push(data.len() as u32);
        encode(&mut data, record);
    }
    // Node records: a node index, `None` (no data) or a data offset.
    #[derive(Clone, Copy)]
    enum Rec {
        Node(u32),
        Empty,
        Data(u32),
    }
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty, Rec::Empty]];
    for ((ip, len, _), offset) in networks.iter().zip(&offsets) {
        let bits = u32::from(*ip);
        let mut node = 0usize;
        for depth in 0..*len {
            let bit = ((bits >> (31 - depth)) & 1) as usize;
            if depth + 1 == *len {
                nodes[node][bit] = Rec::Data(*offset);
                break;
            }
            node = match nodes[node][bit] {
                Rec::Node(n) => n as usize,
                _ => {
                    nodes.push([Rec::Empty, Rec::Empty]);
                    let n = nodes.len() - 1;
                    nodes[node][bit] = Rec::Node(n as u32);
                    n
                }
            };
        }
    }
    let count = nodes.len() as u32;
    let mut out = Vec::new();
    for node in &nodes {
        for rec in node {
            let value = match rec {
                Rec::Node(n) => *n,
                Rec::Empty => count,
                Rec::Data(offset) => count + 16 + offset,
            };
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    // The metadata map, with the integer types the format prescribes.
    control(&mut out, 7, 9);
    let key = |out: &mut Vec<u8>, k: &str| encode(out, &Value::String(k.into()));
    key(&mut out, "node_count");
    uint(&mut out, 6, u64::from(count), 4);
    key(&mut out, "record_size");
    uint(&mut out, 5, 32, 2);
    key(&mut out, "ip_version");
    uint(&mut out, 5, 4, 2);
    key(&mut out, "database_type");
    encode(&mut out, &Value::String("ScanGate-Test-City".into()));
    key(&mut out, "languages");
    encode(&mut out, &serde_json::json!(["en"]));
    key(&mut out, "binary_format_major_version");
    uint(&mut out, 5, 2, 2);
    key(&mut out, "binary_format_minor_version");
    uint(&mut out, 5, 0, 2);
    key(&mut out, "build_epoch");
    // uint64 is an extended type (9).
    out.push(8);
    out.push(9 - 7);
    out.extend_from_slice(&1_700_000_000u64.to_be_bytes());
    key(&mut out, "description");
    encode(&mut out, &serde_json::json!({ "en": "test networks" }));
    out
}

/// A control byte (and extended-type byte) for `kind` with `size`.
fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (first, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, vec![])
    } else if size < 29 + 256 {
        (29, vec![(size - 29) as u8])
    } else {
        let n = size - 285;
        (30, vec![(n >> 8) as u8, n as u8])
    };
    if kind <= 7 {
        out.push((kind << 5) | first);
    } else {
        out.push(first);
        out.push(kind - 7);
    }
    out.extend_from_slice(&extra);
}

fn uint(out: &mut Vec<u8>, kind: u8, value: u64, width: usize) {
    let bytes = value.to_be_bytes();
    let bytes = &bytes[8 - width..];
    control(out, kind, width);
    out.extend_from_slice(bytes);
}

fn encode(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => {
            control(out, 2, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bool(b) => control(out, 14, usize::from(*b)),
        Value::Number(n) => uint(out, 6, n.as_u64().expect("unsigned"), 4),
        Value::Array(items) => {
            control(out, 11, items.len());
            for item in items {
                encode(out, item);
            }
        }
        Value::Object(map) => {
            control(out, 7, map.len());
            for (k, v) in map {
                encode(out, &Value::String(k.clone()));
                encode(out, v);
            }
        }
        Value::Null => panic!("MaxMind DB has no null"),
    }
}
