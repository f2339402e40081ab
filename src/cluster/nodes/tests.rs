use super::*;

#[test]
fn raw_frames_cross_as_bytes_after_the_message() {
  let every_byte: Vec<u8> = (0..=255).collect();
  let text = raw_in("g1", 7, RawData::Binary(&every_byte));
  assert!(matches!(
    parse(&text),
    Some(NodeMessage::RawIn { from, session: 7, frames })
      if from == "g1" && frames == vec![RawData::Binary(&every_byte)]
  ));
  let sent = [
    RawData::Text("héllo \"}\n"),
    RawData::Binary(b""),
    RawData::Binary(b"{\"k\":\"close\"}"),
    RawData::Text(""),
  ];
  let message = raw_out(9, sent.iter().copied());
  assert!(matches!(
    parse(&message),
    Some(NodeMessage::RawOut { session: 9, frames }) if frames == sent
  ));
  let cut = message.get(..message.len() - 1).unwrap_or_default();
  assert!(parse(cut).is_none(), "the sizes must cover the bytes");
  let mut longer = message.clone();
  longer.push(b'!');
  assert!(parse(&longer).is_none(), "and nothing more");
  let by_hand = |kinds: &str| {
    let mut message =
      format!(r#"{{"k":"rawin","from":"g1","session":7,"kinds":"{kinds}","sizes":[1]}}"#).into_bytes();
    message.push(0xff);
    message
  };
  assert!(parse(&by_hand("b")).is_some());
  assert!(parse(&by_hand("t")).is_none(), "text must be UTF-8");
  assert!(parse(&by_hand("x")).is_none(), "a frame is text or binary");
}

#[test]
fn every_message_reads_back_as_written() {
  let text = open(
    "g1",
    7,
    "Chat",
    "ann\"",
    r#"{"userId":"ann\""}"#,
    &Resume::default(),
  );
  assert!(matches!(
    parse(text.as_bytes()),
    Some(NodeMessage::Open { from, session: 7, definition, key, meta, resume })
      if from == "g1" && definition == "Chat" && key == "ann\"" && meta.get() == r#"{"userId":"ann\""}"#
        && resume == Resume::default()
  ));
  let asked = Resume {
    resumable: true,
    token: Some(Cow::Borrowed("t\"1")),
    last_seq: 41,
  };
  let text = open("g1", 7, "Chat", "ann", "{}", &asked);
  assert!(matches!(
    parse(text.as_bytes()),
    Some(NodeMessage::Open { resume, .. }) if resume == asked
  ));
  let text = event("g1", 7, r#""say""#, Some(r#"{"n":1}"#));
  assert!(matches!(
    parse(text.as_bytes()),
    Some(NodeMessage::Event { session: 7, kind, data: Some(data), .. })
      if kind.get() == r#""say""# && data.get() == r#"{"n":1}"#
  ));
  let text = call("g1", 7, 3, r#""get""#, None);
  assert!(matches!(
    parse(text.as_bytes()),
    Some(NodeMessage::Call { id: 3, event, data: None, .. }) if event.get() == r#""get""#
  ));
  let frame = r#"{"type":"event","data":{"t":"a\nb"},"seq":4}"#;
  let text = frames(7, [frame, "{}"]);
  assert!(matches!(
    parse(text.as_bytes()),
    Some(NodeMessage::Frames { session: 7, frames }) if frames == vec![frame, "{}"]
  ));
  let text = ended("g1", 7, 1006, "", true);
  assert!(matches!(
    parse(text.as_bytes()),
    Some(NodeMessage::Ended {
      code: 1006,
      blip: true,
      ..
    })
  ));
  let text = ended("g1", 7, 1000, "bye", false);
  assert!(matches!(
    parse(text.as_bytes()),
    Some(NodeMessage::Ended {
      code: 1000,
      blip: false,
      ..
    })
  ));
  let text = ack("g1", 7, 41);
  assert!(matches!(
    parse(text.as_bytes()),
    Some(NodeMessage::Ack { from, session: 7, seq: 41 }) if from == "g1"
  ));
  let text = close(7, 1000, "Actor destroyed");
  assert!(matches!(
    parse(text.as_bytes()),
    Some(NodeMessage::Close { code: 1000, reason, .. }) if reason == "Actor destroyed"
  ));
  let text = destroy("Chat", "ann");
  assert!(matches!(
    parse(text.as_bytes()),
    Some(NodeMessage::Destroy { definition, key }) if definition == "Chat" && key == "ann"
  ));
  let text = room_join("n1", "chat:1", "ChatRoom", "ann", r#"{"role":"x"}"#);
  assert!(matches!(
    parse(text.as_bytes()),
    Some(NodeMessage::RoomJoin { from, room, handler, user, metadata })
      if from == "n1" && room == "chat:1" && handler == "ChatRoom" && user == "ann" && metadata.get() == r#"{"role":"x"}"#
  ));
  let text = room_member_metadata("chat:1", "ann", r#"{"seat":2}"#);
  assert!(matches!(
    parse(text.as_bytes()),
    Some(NodeMessage::RoomMemberMetadata { room, user, metadata })
      if room == "chat:1" && user == "ann" && metadata.get() == r#"{"seat":2}"#
  ));
  let text = room_leave("n1", "chat:1", "ann");
  assert!(matches!(
    parse(text.as_bytes()),
    Some(NodeMessage::RoomLeave { room, user, .. }) if room == "chat:1" && user == "ann"
  ));
  let text = members_ask("n1", 9, "chat:1");
  assert!(matches!(
    parse(text.as_bytes()),
    Some(NodeMessage::MembersAsk { id: 9, room, .. }) if room == "chat:1"
  ));
  let text = members(9, Some(r#"[{"userId":"ann"}]"#));
  assert!(matches!(
    parse(text.as_bytes()),
    Some(NodeMessage::Members { id: 9, members: Some(list) }) if list.get() == r#"[{"userId":"ann"}]"#
  ));
  assert!(matches!(
    parse(members(9, None).as_bytes()),
    Some(NodeMessage::Members { id: 9, members: None })
  ));
  let text = room_destroy("n1", "chat:1", "ChatRoom");
  assert!(matches!(
    parse(text.as_bytes()),
    Some(NodeMessage::RoomDestroy { from, room, handler })
      if from == "n1" && room == "chat:1" && handler == "ChatRoom"
  ));
  assert!(parse(b"{\"k\":\"nope\",\"session\":1}").is_none());
  assert!(
    parse(format!("{}x", close(7, 1000, "")).as_bytes()).is_none(),
    "only raw frames follow a message"
  );
  assert!(
    parse(b"{\"k\":\"open\",\"session\":1}").is_none(),
    "fields missing"
  );
}
