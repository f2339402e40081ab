use super::*;

fn to_msgpack(json: &str) -> Vec<u8> {
  let mut out = Vec::new();
  json_to_msgpack(json, &mut out).expect("valid JSON");
  out
}

fn to_json(bytes: &[u8]) -> Result<String, MsgpackError> {
  let mut out = String::new();
  msgpack_to_json(bytes, &mut out).map(|()| out)
}

fn same_value(a: &str, b: &str) -> bool {
  serde_json::from_str::<serde_json::Value>(a).ok() == serde_json::from_str::<serde_json::Value>(b).ok()
}

#[test]
fn a_frame_encodes_to_its_compact_form() {
  let mut expected = vec![0x81, 0xa4];
  expected.extend_from_slice(b"type");
  expected.push(0xa4);
  expected.extend_from_slice(b"ping");
  assert_eq!(to_msgpack(r#"{"type":"ping"}"#), expected);
}

#[test]
fn numbers_take_their_smallest_form() {
  assert_eq!(to_msgpack("0"), [0x00]);
  assert_eq!(to_msgpack("127"), [0x7f]);
  assert_eq!(to_msgpack("128"), [0xcc, 0x80]);
  assert_eq!(to_msgpack("65536"), [0xce, 0, 1, 0, 0]);
  assert_eq!(to_msgpack("-1"), [0xff]);
  assert_eq!(to_msgpack("-32"), [0xe0]);
  assert_eq!(to_msgpack("-33"), [0xd0, 0xdf]);
  assert_eq!(to_msgpack("-40000"), [0xd2, 0xff, 0xff, 0x63, 0xc0]);
  assert_eq!(to_msgpack("1.5"), [0xca, 0x3f, 0xc0, 0, 0]);
  assert_eq!(to_msgpack("0.1").first(), Some(&0xcb));
  assert_eq!(to_msgpack("18446744073709551615").first(), Some(&0xcf));
  assert_eq!(to_msgpack("-9223372036854775808").first(), Some(&0xd3));
}

#[test]
fn long_containers_and_strings_get_wide_headers() {
  let array = format!("[{}]", vec!["1"; 16].join(","));
  assert_eq!(to_msgpack(&array).get(..3), Some(&[0xdc, 0, 16][..]));
  let fifteen = format!("[{}]", vec!["1"; 15].join(","));
  assert_eq!(to_msgpack(&fifteen).first(), Some(&0x9f));
  let wide = format!("[{}]", vec!["0"; 70_000].join(","));
  assert_eq!(to_msgpack(&wide).get(..5), Some(&[0xdd, 0, 1, 0x11, 0x70][..]));
  let map = format!(
    "{{{}}}",
    (0..20)
      .map(|i| format!("\"k{i}\":{i}"))
      .collect::<Vec<_>>()
      .join(",")
  );
  assert_eq!(to_msgpack(&map).get(..3), Some(&[0xde, 0, 20][..]));
  let string = format!("\"{}\"", "x".repeat(40));
  assert_eq!(to_msgpack(&string).get(..2), Some(&[0xd9, 40][..]));
  let long = format!("\"{}\"", "x".repeat(300));
  assert_eq!(to_msgpack(&long).get(..3), Some(&[0xda, 1, 44][..]));
}

#[test]
fn json_round_trips_through_msgpack() {
  for json in [
    r#"{"type":"event","channel":"default","data":{"type":"chat","text":"h\u00e9 \"q\" \\ \n ☃","n":[1,-2,3.25,null,true,false,{}],"big":12345678901},"seq":41}"#,
    r#"{"type":"call","id":7,"event":"count.get","data":{}}"#,
    "[]",
    "{}",
    r#""\u0000\u001f""#,
    "1e300",
    "-0.0",
    "9007199254740993",
  ] {
    let back = to_json(&to_msgpack(json)).expect("transcodes back");
    assert!(same_value(json, &back), "{json} came back as {back}");
  }
}

#[test]
fn invalid_json_writes_nothing() {
  let mut out = vec![1, 2];
  assert!(json_to_msgpack(r#"{"a":[1,2"#, &mut out).is_err());
  assert!(json_to_msgpack("1 2", &mut out).is_err());
  assert_eq!(out, [1, 2]);
}

#[test]
fn what_json_cannot_say_is_refused() {
  assert_eq!(to_json(&[0xc4, 1, 0]), Err(MsgpackError::Binary));
  assert_eq!(to_json(&[0x91, 0xc5, 0, 1, 0]), Err(MsgpackError::Binary));
  assert_eq!(to_json(&[0xd4, 1, 0]), Err(MsgpackError::Extension));
  assert_eq!(to_json(&[0xc7, 1, 5, 0]), Err(MsgpackError::Extension));
  assert_eq!(to_json(&[0x81, 0x01, 0xc0]), Err(MsgpackError::KeyNotString));
  assert_eq!(to_json(&[0xc1]), Err(MsgpackError::Invalid));
  assert_eq!(to_json(&[0xa2, 0xff, 0xfe]), Err(MsgpackError::Invalid));
  assert_eq!(to_json(&[]), Err(MsgpackError::Truncated));
  assert_eq!(to_json(&[0xc0, 0xc0]), Err(MsgpackError::Trailing));
  assert_eq!(to_json(&[0xcd, 1]), Err(MsgpackError::Truncated));
}

#[test]
fn a_declared_length_is_not_trusted() {
  assert_eq!(
    to_json(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]),
    Err(MsgpackError::Truncated)
  );
  assert_eq!(
    to_json(&[0xdf, 0xff, 0xff, 0xff, 0xff]),
    Err(MsgpackError::Truncated)
  );
  assert_eq!(
    to_json(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'a']),
    Err(MsgpackError::Truncated)
  );
}

#[test]
fn nesting_is_bounded() {
  let mut ok = vec![0x91; MAX_DEPTH];
  ok.push(0xc0);
  assert!(to_json(&ok).is_ok());
  let mut deep = vec![0x91; MAX_DEPTH + 1];
  deep.push(0xc0);
  assert_eq!(to_json(&deep), Err(MsgpackError::TooDeep));
  // Far deeper than any stack would take, refused without recursing further.
  let hostile = vec![0x91; 1_000_000];
  assert_eq!(to_json(&hostile), Err(MsgpackError::TooDeep));
  let maps: Vec<u8> = std::iter::repeat_n([0x81, 0xa1, b'a'], 200).flatten().collect();
  assert_eq!(to_json(&maps), Err(MsgpackError::TooDeep));
}

#[test]
fn non_finite_floats_become_null() {
  let mut nan = vec![0xcb];
  nan.extend_from_slice(&f64::NAN.to_be_bytes());
  assert_eq!(to_json(&nan).as_deref(), Ok("null"));
  let mut inf = vec![0xca];
  inf.extend_from_slice(&f32::INFINITY.to_be_bytes());
  assert_eq!(to_json(&inf).as_deref(), Ok("null"));
}

#[test]
fn every_integer_form_decodes() {
  assert_eq!(to_json(&[0xd0, 0x80]).as_deref(), Ok("-128"));
  assert_eq!(to_json(&[0xd1, 0x80, 0]).as_deref(), Ok("-32768"));
  assert_eq!(to_json(&[0xcd, 0xff, 0xff]).as_deref(), Ok("65535"));
  assert_eq!(
    to_json(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).as_deref(),
    Ok("18446744073709551615")
  );
  assert_eq!(to_json(&[0xf0]).as_deref(), Ok("-16"));
}

#[test]
fn floats_keep_every_bit() {
  for json in [
    "0.30000000000000004",
    "-1.805864247948742e-295",
    "5e-324",
    "1.7976931348623157e308",
  ] {
    let bytes = to_msgpack(json);
    assert_eq!(bytes.first(), Some(&0xcb), "{json}");
    let mut raw = [0u8; 8];
    raw.copy_from_slice(bytes.get(1..9).expect("eight bytes"));
    assert_eq!(
      f64::from_be_bytes(raw).to_string().parse::<f64>(),
      json.parse::<f64>(),
      "{json}"
    );
  }
}
