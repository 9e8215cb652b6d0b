//! AWS's event-stream encoding (`application/vnd.amazon.eventstream`), as
//! InvokeEndpointWithResponseStream answers: each message is a prelude (total and headers
//! length, and their CRC-32), typed headers, a payload and the CRC-32 of all before it. The
//! reader is `berth invoke --stream`'s.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The content type of an event-stream answer.
pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// A header value of type string (7).
const STRING: u8 = 7;

/// A `PayloadPart` event carrying `bytes`.
pub fn payload_part(bytes: &[u8]) -> Bytes {
    message(&[(":event-type", "PayloadPart"), (":content-type", "application/octet-stream"), (":message-type", "event")], bytes)
}

/// An exception event (`ModelStreamError`, `InternalStreamFailure`) with its JSON payload.
pub fn exception(kind: &str, payload: &serde_json::Value) -> Bytes {
    message(
        &[(":exception-type", kind), (":content-type", "application/json"), (":message-type", "exception")],
        payload.to_string().as_bytes(),
    )
}

/// A message read back: its string headers and payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, String)>,
    pub payload: Bytes,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The most a message may be (AWS's limit is 16 MB; berth's payload parts are far smaller).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Takes the first whole message off `buf`; `Ok(None)` while more bytes are needed.
pub fn read(buf: &mut BytesMut) -> Result<Option<Message>, String> {
    if buf.len() < 12 {
        return Ok(None);
    }
    let total = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let headers_len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) != crc32fast::hash(&buf[..8]) {
        return Err("an event's prelude fails its checksum".into());
    }
    if !(16..=MAX_MESSAGE).contains(&total) || headers_len > total - 16 {
        return Err(format!("an event's lengths are not possible (total {total}, headers {headers_len})"));
    }
    if buf.len() < total {
        return Ok(None);
    }
    let message = buf.split_to(total).freeze();
    if u32::from_be_bytes([message[total - 4], message[total - 3], message[total - 2], message[total - 1]])
        != crc32fast::hash(&message[..total - 4])
    {
        return Err("an event fails its checksum".into());
    }
    let mut raw = message.slice(12..12 + headers_len);
    let mut headers = Vec::new();
    while raw.has_remaining() {
        let name_len = raw.get_u8() as usize;
        if raw.remaining() < name_len + 1 {
            return Err("an event's header is cut short".into());
        }
        let name = String::from_utf8_lossy(&raw.split_to(name_len)).into_owned();
        let value = match raw.get_u8() {
            STRING if raw.remaining() >= 2 => {
                let len = raw.get_u16() as usize;
                if raw.remaining() < len {
                    return Err("an event's header is cut short".into());
                }
                String::from_utf8_lossy(&raw.split_to(len)).into_owned()
            }
            kind => return Err(format!("an event's header {name} has a type ({kind}) berth does not read")),
        };
        headers.push((name, value));
    }
    Ok(Some(Message { headers, payload: message.slice(12 + headers_len..total - 4) }))
}

fn message(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let headers_len: usize = headers.iter().map(|(name, value)| 1 + name.len() + 1 + 2 + value.len()).sum();
    let total = 12 + headers_len + payload.len() + 4;
    let mut out = BytesMut::with_capacity(total);
    out.put_u32(u32::try_from(total).unwrap_or(u32::MAX));
    out.put_u32(headers_len as u32);
    out.put_u32(crc32fast::hash(&out[..8]));
    for (name, value) in headers {
        out.put_u8(name.len() as u8);
        out.put_slice(name.as_bytes());
        out.put_u8(STRING);
        out.put_u16(value.len() as u16);
        out.put_slice(value.as_bytes());
    }
    out.put_slice(payload);
    out.put_u32(crc32fast::hash(&out));
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes one message as a reader does, checking both CRCs.
    fn decode(m: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
        let total = u32::from_be_bytes(m[0..4].try_into().unwrap()) as usize;
        let headers_len = u32::from_be_bytes(m[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, m.len());
        assert_eq!(u32::from_be_bytes(m[8..12].try_into().unwrap()), crc32fast::hash(&m[..8]));
        assert_eq!(u32::from_be_bytes(m[total - 4..].try_into().unwrap()), crc32fast::hash(&m[..total - 4]));
        let (mut at, mut headers) = (12, Vec::new());
        while at < 12 + headers_len {
            let n = m[at] as usize;
            let name = String::from_utf8(m[at + 1..at + 1 + n].to_vec()).unwrap();
            at += 1 + n;
            assert_eq!(m[at], STRING);
            let len = u16::from_be_bytes([m[at + 1], m[at + 2]]) as usize;
            headers.push((name, String::from_utf8(m[at + 3..at + 3 + len].to_vec()).unwrap()));
            at += 3 + len;
        }
        (headers, m[12 + headers_len..total - 4].to_vec())
    }

    #[test]
    fn the_reader_takes_messages_as_their_bytes_arrive_and_refuses_broken_ones() {
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&payload_part(b"one"));
        wire.extend_from_slice(&exception("ModelStreamError", &serde_json::json!({"Message": "m"})));
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire.iter() {
            buf.put_u8(*byte);
            while let Some(m) = read(&mut buf).unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].header(":event-type"), &got[0].payload[..]), (Some("PayloadPart"), &b"one"[..]));
        assert_eq!(got[1].header(":exception-type"), Some("ModelStreamError"));
        let mut flipped = BytesMut::from(&payload_part(b"one")[..]);
        let last = flipped.len() - 5;
        flipped[last] ^= 1;
        assert!(read(&mut flipped).is_err(), "a payload that fails its checksum");
        let mut huge = BytesMut::from(&payload_part(b"one")[..]);
        huge[0] = 0x7f;
        let crc = crc32fast::hash(&huge[..8]).to_be_bytes();
        huge[8..12].copy_from_slice(&crc);
        assert!(read(&mut huge).is_err(), "a length past the limit");
    }

    #[test]
    fn messages_carry_their_lengths_headers_and_crcs() {
        let (headers, payload) = decode(&payload_part(b"{\"token\": \"Hel\"}"));
        assert!(headers.contains(&(":event-type".into(), "PayloadPart".into())));
        assert!(headers.contains(&(":message-type".into(), "event".into())));
        assert_eq!(payload, b"{\"token\": \"Hel\"}");
        let (headers, payload) = decode(&exception("ModelStreamError", &serde_json::json!({"Message": "m", "ErrorCode": "StreamBroken"})));
        assert!(headers.contains(&(":exception-type".into(), "ModelStreamError".into())));
        assert!(headers.contains(&(":message-type".into(), "exception".into())));
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&payload).unwrap()["ErrorCode"], "StreamBroken");
        // A known vector: an empty payload part is 12 + headers + 4 bytes.
        assert_eq!(payload_part(b"").len(), 12 + (1 + 11 + 3 + 11) + (1 + 13 + 3 + 24) + (1 + 13 + 3 + 5) + 4);
    }
}
