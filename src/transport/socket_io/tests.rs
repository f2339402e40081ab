use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::*;
use crate::transport::frames::encode::frame;
use crate::transport::frames::{OP_BINARY, OP_TEXT};
use crate::transport::outbox::WireFrame;

/// A queue of frames with these payload sizes (text and binary alternating) and its wire bytes.
fn queue(sizes: &[usize]) -> (VecDeque<Queued>, Vec<u8>) {
  let mut frames = VecDeque::new();
  let mut wire = Vec::new();
  for (index, &size) in sizes.iter().enumerate() {
    let fill = b'a' + (index % 26) as u8;
    let payload = vec![fill; size];
    let (opcode, wire_frame) = if index % 2 == 0 {
      let text = String::from_utf8(payload.clone()).unwrap_or_default();
      (OP_TEXT, WireFrame::Text(Utf8Bytes::from(text)))
    } else {
      (OP_BINARY, WireFrame::Binary(Bytes::from(payload.clone())))
    };
    wire.extend_from_slice(&frame(true, opcode, &payload, None));
    frames.push_back(Queued {
      seq: index as u64,
      frame: wire_frame,
    });
  }
  (frames, wire)
}

/// What one gathered write would send, and in how many slices.
fn gathered(frames: &VecDeque<Queued>, skip: usize) -> (Vec<u8>, usize) {
  gather_frames(frames, skip, |slices| {
    (
      slices.iter().flat_map(|slice| slice.iter().copied()).collect(),
      slices.len(),
    )
  })
}

#[test]
fn a_gathered_write_is_a_prefix_of_the_wire_bytes_from_any_position() {
  let shapes: [&[usize]; 6] = [
    &[0],
    &[5, 0, 7],
    &[40; 100],
    &[200, 70_000, 3, 600, 126, 65_535, 1],
    &[1; 300],
    &[COALESCE_PART_BYTES, COALESCE_PART_BYTES + 1, 20_000, 2],
  ];
  for sizes in shapes {
    let (frames, wire) = queue(sizes);
    let front = wire_len(frames.front().map_or(0, |queued| queued.frame.len()));
    for skip in [0, 1, front / 2, front.saturating_sub(1)] {
      let (bytes, slices) = gathered(&frames, skip);
      assert!(
        slices <= MAX_WRITE_SLICES,
        "{sizes:?} skip {skip}: {slices} slices"
      );
      assert!(!bytes.is_empty(), "{sizes:?} skip {skip}: nothing gathered");
      let rest = wire.get(skip..).unwrap_or_default();
      assert!(
        rest.starts_with(&bytes),
        "{sizes:?} skip {skip}: not the next wire bytes"
      );
    }
  }
}

#[test]
fn short_frames_coalesce_into_one_slice_and_long_payloads_stay_shared() {
  let (frames, wire) = queue(&[40; 26]);
  let (bytes, slices) = gathered(&frames, 0);
  assert_eq!((bytes, slices), (wire, 1), "26 short frames go out as one slice");

  let (frames, _) = queue(&[40, 4_000, 40]);
  let (_, slices) = gathered(&frames, 0);
  // The first frame and the long payload's header, the payload, the last frame.
  assert_eq!(slices, 3);
}

#[test]
fn writing_gathered_slices_until_done_sends_every_frame_once() {
  // Writes of awkward sizes (as a full socket takes them), each resumed where the last ended.
  let (mut frames, wire) = queue(&[3, 300, 70_000, 1, 5_000, 126, 0, 2]);
  let mut position = WritePosition::default();
  let mut sent = Vec::new();
  let mut take = 1usize;
  while !frames.is_empty() {
    let (bytes, _) = gathered(&frames, position.front_written);
    let written = bytes.len().min(take);
    sent.extend_from_slice(bytes.get(..written).unwrap_or_default());
    advance(&mut frames, &mut position, written);
    take = take * 7 + 3;
  }
  assert_eq!(sent, wire);
}
