//! One socket: a reader task that parses each frame once and dispatches it, and a writer task that
//! drains the session's bounded outbox, feeding every queued frame before one flush (write coalescing).
//!
//! Ending: the reader stops at close or error, leaves its rooms and drops its outbox sender; once no
//! room holds a clone either, the writer sees the channel closed, flushes and ends.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::protocol::{self, ClientFrame, JoinData};
use crate::rooms::{Outbox, Rooms};

/// The benchmark room `publish` targets, as in the JS peer servers.
const ROOM: &str = "bench";
/// 4 KiB instead of tungstenite's 128 KiB default: idle sockets must cost a few KiB (DESIGN §4 rule 7).
const READ_BUFFER_BYTES: usize = 4096;
/// Frames a session may have queued. A member that falls this far behind loses frames (counted in
/// `Rooms::dropped`) instead of growing server memory; the benchmark's bounded window never gets close.
const OUTBOX_FRAMES: usize = 4096;
const MAX_FRAME_BYTES: usize = 1 << 20;

pub async fn run(stream: TcpStream, id: u64, rooms: Arc<Rooms>) {
    let _ = stream.set_nodelay(true);
    let mut raw = false;
    let check_path = |req: &Request, resp: Response| {
        raw = req.uri().path() == "/raw";
        Ok(resp)
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, check_path, Some(config)).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (outbox, mut queued) = mpsc::channel::<Utf8Bytes>(OUTBOX_FRAMES);

    let writer = tokio::spawn(async move {
        while let Some(first) = queued.recv().await {
            if sink.feed(Message::Text(first)).await.is_err() {
                return;
            }
            while let Ok(more) = queued.try_recv() {
                if sink.feed(Message::Text(more)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });

    let mut joined: Vec<String> = Vec::new();
    while let Some(Ok(msg)) = source.next().await {
        let Message::Text(text) = msg else { continue };
        if raw {
            if outbox.try_send(text).is_err() {
                break;
            }
            continue;
        }
        if !dispatch(&text, id, &outbox, &rooms, &mut joined) {
            break;
        }
    }
    for room in &joined {
        rooms.leave(room, id);
    }
    drop(outbox);
    let _ = writer.await;
}

/// Handles one warren-protocol frame; `false` ends the session (its own outbox is full: not reading).
fn dispatch(text: &str, id: u64, outbox: &Outbox, rooms: &Rooms, joined: &mut Vec<String>) -> bool {
    let Ok(frame) = serde_json::from_str::<ClientFrame>(text) else {
        return true;
    };
    let reply = match frame.kind {
        "echo" => protocol::event("echo", frame.data),
        "ping" => Some(protocol::PONG.to_string()),
        "join" => {
            if let Some(data) = frame.data {
                if let Ok(join) = serde_json::from_str::<JoinData>(data.get()) {
                    if !joined.iter().any(|r| r == join.room) {
                        rooms.join(join.room, id, outbox.clone());
                        joined.push(join.room.to_string());
                    }
                }
            }
            None
        }
        "publish" => {
            if let Some(tick) = protocol::event("tick", frame.data) {
                rooms.publish(ROOM, id, Utf8Bytes::from(tick));
            }
            None
        }
        _ => None,
    };
    match reply {
        Some(r) => outbox.try_send(Utf8Bytes::from(r)).is_ok(),
        None => true,
    }
}
