use super::*;

/// The head of a whole request given as text (tests of this module and of the admin routes).
pub(crate) fn head(text: &str) -> RequestHead {
  let rt = tokio::runtime::Builder::new_current_thread()
    .build()
    .expect("runtime");
  let mut bytes = text.as_bytes();
  match rt.block_on(read_head(&mut bytes)) {
    Ok(head) => head,
    Err(err) => panic!("{err:?}"),
  }
}

fn endpoints() -> Vec<Definition> {
  vec![Definition {
    name: "C".into(),
    path: "/ws".into(),
    authenticates: false,
    prefix: false,
    raw: false,
  }]
}

#[test]
fn routes_upgrades_health_and_unknown_paths() {
  let upgrade = head(
    "GET /ws?token=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
  );
  assert_eq!(upgrade.path(), "/ws");
  assert_eq!(
    route(&upgrade, &endpoints(), false, None),
    Route::Upgrade {
      definition: DefinitionId(0),
      accept_key: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into(),
      encoding: Encoding::Json,
    }
  );
  assert_eq!(
    route(&head("GET /healthz HTTP/1.1\r\n\r\n"), &endpoints(), false, None),
    Route::Health
  );
  assert_eq!(
    route(
      &head("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"),
      &endpoints(),
      false,
      None
    ),
    Route::Reject(UpgradeRejection::UpgradeRequired)
  );
  assert_eq!(
    route(&head("GET /nope HTTP/1.1\r\n\r\n"), &endpoints(), false, None),
    Route::Reject(UpgradeRejection::NotFound)
  );
  let delete = head("DELETE /actors/Counter/a%20b HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n");
  assert_eq!(
    route(&delete, &endpoints(), false, Some("s3cret")),
    Route::DestroyActor {
      kind: "Counter".into(),
      key: "a b".into(),
      authorized: true
    }
  );
  assert_eq!(
    route(&delete, &endpoints(), false, Some("other")),
    Route::DestroyActor {
      kind: "Counter".into(),
      key: "a b".into(),
      authorized: false
    }
  );
  assert_eq!(
    route(&delete, &endpoints(), false, None),
    Route::Reject(UpgradeRejection::NotFound)
  );
}

#[test]
fn the_query_picks_the_encoding_or_refuses_it() {
  let with_query = |query: &str, path: &str| {
    head(&format!(
      "GET {path}?{query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    ))
  };
  let mut definitions = endpoints();
  definitions.push(Definition {
    name: "R".into(),
    path: "/raw".into(),
    authenticates: false,
    prefix: false,
    raw: true,
  });
  let encoding_of = |query: &str, path: &str| match route(&with_query(query, path), &definitions, false, None)
  {
    Route::Upgrade { encoding, .. } => Ok(encoding),
    Route::Reject(rejection) => Err(rejection),
    other => panic!("{other:?}"),
  };
  assert_eq!(encoding_of("token=a", "/ws"), Ok(Encoding::Json));
  assert_eq!(encoding_of("encoding=json", "/ws"), Ok(Encoding::Json));
  assert_eq!(
    encoding_of("a=1&encoding=msgpack", "/ws"),
    Ok(Encoding::MessagePack)
  );
  assert_eq!(encoding_of("encoding=json", "/raw"), Ok(Encoding::Json));
  for (query, path) in [
    ("encoding=cbor", "/ws"),
    ("encoding=msgpack", "/raw"),
    ("encoding=%ff", "/ws"),
  ] {
    let refused = encoding_of(query, path).expect_err(query);
    assert_eq!(
      (refused.status(), refused.code()),
      (400, Some("unsupported_encoding")),
      "{query} {path}"
    );
  }
}

fn upgrade(version: &str, key: &str) -> RequestHead {
  head(&format!(
    "GET /ws HTTP/{version}\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
  ))
}

#[test]
fn refuses_upgrades_that_break_rfc_6455() {
  let good = "dGhlIHNhbXBsZSBub25jZQ==";
  assert!(matches!(
    route(&upgrade("1.1", good), &endpoints(), false, None),
    Route::Upgrade { .. }
  ));
  let bad_request = |head: &RequestHead| {
    matches!(
      route(head, &endpoints(), false, None),
      Route::Reject(UpgradeRejection::BadRequest(_))
    )
  };
  assert!(bad_request(&upgrade("1.0", good)), "HTTP/1.0");
  for key in [
    "abc",
    "dGhlIHNhbXBsZSBub25jZQ",
    "dGhlIHNhbXBsZSBub25jZSE=",
    "dGhlIHNhbXBsZSBub25jZQ==dGhl",
    "!!!!!!!!!!!!!!!!!!!!!!==",
    "",
  ] {
    assert!(bad_request(&upgrade("1.1", key)), "key {key:?}");
  }
  let no_version = head(
    "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
  );
  assert!(bad_request(&no_version));
}

#[test]
fn the_bearer_scheme_matches_in_any_case() {
  for scheme in ["Bearer", "bearer", "BEARER"] {
    let delete = head(&format!(
      "DELETE /actors/Counter/a HTTP/1.1\r\nAuthorization: {scheme} s3cret\r\n\r\n"
    ));
    assert!(
      matches!(
        route(&delete, &endpoints(), false, Some("s3cret")),
        Route::DestroyActor { authorized: true, .. }
      ),
      "{scheme}"
    );
  }
  let basic = head("DELETE /actors/Counter/a HTTP/1.1\r\nAuthorization: Basic s3cret\r\n\r\n");
  assert!(matches!(
    route(&basic, &endpoints(), false, Some("s3cret")),
    Route::DestroyActor {
      authorized: false,
      ..
    }
  ));
}

#[test]
fn reads_resume_parameters() {
  let plain = head("GET /ws?token=a HTTP/1.1\r\n\r\n");
  assert_eq!(plain.resume_request(), None);
  assert_eq!(plain.query("token").as_deref(), Some("a"));
  let fresh = head("GET /ws?_resume=&token=a HTTP/1.1\r\n\r\n");
  assert_eq!(
    fresh.resume_request(),
    Some(ResumeRequest {
      token: None,
      last_seq: 0
    })
  );
  let again = head("GET /ws?token=a&_resume=t%2D1&_lastSeq=42 HTTP/1.1\r\n\r\n");
  assert_eq!(
    again.resume_request(),
    Some(ResumeRequest {
      token: Some("t-1".into()),
      last_seq: 42
    })
  );
}

#[test]
fn merges_repeated_headers() {
  let head = head("GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\nHost: h\r\n\r\n");
  assert_eq!(
    head.merged_headers(),
    [("x-a", "1, 2".to_string()), ("host", "h".to_string())]
  );
}
