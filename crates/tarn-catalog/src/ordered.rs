//! Ordered values as bytes whose byte order is the values' order, for catalogs whose columns
//! have one type (PostgreSQL's `bytea`): a type byte, then a big-endian i64 with its sign bit
//! flipped, an f64 whose bits are flipped so that unsigned order is numeric order (−0.0 is
//! stored as 0.0, which it equals), or the UTF-8 bytes of a string.

use crate::error::{CatalogError, Result};
use tarn_core::value::SqlScalar;

const INTEGER: u8 = 1;
const REAL: u8 = 2;
const TEXT: u8 = 3;

pub fn encode(value: &SqlScalar) -> Vec<u8> {
    match value {
        SqlScalar::Integer(i) => {
            let mut out = Vec::with_capacity(9);
            out.push(INTEGER);
            out.extend_from_slice(&((*i as u64) ^ (1 << 63)).to_be_bytes());
            out
        }
        SqlScalar::Real(f) => {
            let f = if *f == 0.0 { 0.0 } else { *f };
            let bits = f.to_bits();
            let ordered = if bits >> 63 == 1 {
                !bits
            } else {
                bits | (1 << 63)
            };
            let mut out = Vec::with_capacity(9);
            out.push(REAL);
            out.extend_from_slice(&ordered.to_be_bytes());
            out
        }
        SqlScalar::Text(s) => {
            let mut out = Vec::with_capacity(s.len() + 1);
            out.push(TEXT);
            out.extend_from_slice(s.as_bytes());
            out
        }
    }
}

pub fn decode(bytes: &[u8]) -> Result<SqlScalar> {
    let corrupt = || CatalogError::Corrupt(format!("an ordered value of {} bytes", bytes.len()));
    let (&tag, rest) = bytes.split_first().ok_or_else(corrupt)?;
    let word =
        || -> Result<u64> { Ok(u64::from_be_bytes(rest.try_into().map_err(|_| corrupt())?)) };
    match tag {
        INTEGER => Ok(SqlScalar::Integer((word()? ^ (1 << 63)) as i64)),
        REAL => {
            let ordered = word()?;
            let bits = if ordered >> 63 == 1 {
                ordered & !(1 << 63)
            } else {
                !ordered
            };
            Ok(SqlScalar::Real(f64::from_bits(bits)))
        }
        TEXT => Ok(SqlScalar::Text(
            String::from_utf8(rest.to_vec()).map_err(|_| corrupt())?,
        )),
        _ => Err(corrupt()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cmp(a: &SqlScalar, b: &SqlScalar) -> std::cmp::Ordering {
        match (a, b) {
            (SqlScalar::Integer(x), SqlScalar::Integer(y)) => x.cmp(y),
            (SqlScalar::Real(x), SqlScalar::Real(y)) => x.partial_cmp(y).expect("no NaN"),
            (SqlScalar::Text(x), SqlScalar::Text(y)) => x.cmp(y),
            _ => unreachable!("same kinds only"),
        }
    }

    fn finite() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            Just(0.0),
            Just(-0.0),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MIN_POSITIVE),
            Just(-f64::MIN_POSITIVE),
        ]
    }

    proptest! {
        #[test]
        fn integers_order_and_round_trip(a in any::<i64>(), b in any::<i64>()) {
            let (x, y) = (SqlScalar::Integer(a), SqlScalar::Integer(b));
            prop_assert_eq!(encode(&x).cmp(&encode(&y)), cmp(&x, &y));
            prop_assert_eq!(decode(&encode(&x)).expect("decode"), x);
        }

        #[test]
        fn reals_order_and_round_trip(a in finite(), b in finite()) {
            let (x, y) = (SqlScalar::Real(a), SqlScalar::Real(b));
            prop_assert_eq!(encode(&x).cmp(&encode(&y)), cmp(&x, &y));
            let back = decode(&encode(&x)).expect("decode");
            prop_assert_eq!(cmp(&back, &x), std::cmp::Ordering::Equal);
        }

        #[test]
        fn texts_order_and_round_trip(a in ".{0,12}", b in ".{0,12}") {
            let (x, y) = (SqlScalar::Text(a), SqlScalar::Text(b));
            prop_assert_eq!(encode(&x).cmp(&encode(&y)), cmp(&x, &y));
            prop_assert_eq!(decode(&encode(&x)).expect("decode"), x);
        }
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        for bytes in [&[][..], &[9], &[INTEGER, 1, 2], &[TEXT, 0xff, 0xfe]] {
            assert!(decode(bytes).is_err(), "{bytes:?}");
        }
    }
}
