//! Kafka's classic (non-flexible) encoding of the records of internal topics
//! (`__consumer_offsets`, `__transaction_state`): big-endian integers, strings with an i16
//! length (-1 for null), bytes with an i32 length. Readers consume from the front of a slice
//! and fail on truncated or malformed input instead of panicking.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A record that does not decode (what is wrong with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

pub(crate) fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len().min(i16::MAX as usize) as i16);
    b.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

pub(crate) fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

pub(crate) fn put_bytes(b: &mut BytesMut, bytes: &[u8]) {
    b.put_i32(bytes.len() as i32);
    b.put_slice(bytes);
}

fn need(b: &[u8], n: usize) -> Result<(), Malformed> {
    if b.len() < n {
        Err(Malformed("truncated"))
    } else {
        Ok(())
    }
}

pub(crate) fn get_i8(b: &mut &[u8]) -> Result<i8, Malformed> {
    need(b, 1)?;
    Ok(b.get_i8())
}

pub(crate) fn get_i16(b: &mut &[u8]) -> Result<i16, Malformed> {
    need(b, 2)?;
    Ok(b.get_i16())
}

pub(crate) fn get_i32(b: &mut &[u8]) -> Result<i32, Malformed> {
    need(b, 4)?;
    Ok(b.get_i32())
}

pub(crate) fn get_i64(b: &mut &[u8]) -> Result<i64, Malformed> {
    need(b, 8)?;
    Ok(b.get_i64())
}

pub(crate) fn get_nullable_str(b: &mut &[u8]) -> Result<Option<String>, Malformed> {
    let len = get_i16(b)?;
    if len < 0 {
        return Ok(None);
    }
    let len = len as usize;
    need(b, len)?;
    let s = std::str::from_utf8(&b[..len])
        .map_err(|_| Malformed("string is not UTF-8"))?
        .to_string();
    b.advance(len);
    Ok(Some(s))
}

pub(crate) fn get_str(b: &mut &[u8]) -> Result<String, Malformed> {
    get_nullable_str(b).map(Option::unwrap_or_default)
}

pub(crate) fn get_bytes(b: &mut &[u8]) -> Result<Bytes, Malformed> {
    let len = get_i32(b)?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    let len = len as usize;
    need(b, len)?;
    let out = Bytes::copy_from_slice(&b[..len]);
    b.advance(len);
    Ok(out)
}
