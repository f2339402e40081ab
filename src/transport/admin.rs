//! The admin endpoints beside the sockets: `GET /metrics` (Prometheus text) and the inspector
//! (`/_warren/inspector`, its script, and the JSON API under `/_warren/api/` it reads).
//!
//! Every endpoint that shows or changes something asks for `Authorization: Bearer <adminToken>`
//! (`/metrics` only when a token is set). The inspector page and script are static and hold no
//! data, so they are served without it: a browser navigation cannot send a header, so the page
//! reads the token from the URL fragment (which never leaves the browser: not sent to the
//! server, not in `Referer`), drops it from the address bar, and sends it as a Bearer header on
//! each of its requests. The page forbids framing and inline scripts.
//!
//! The endpoints answer only when their option is on (`metrics`, `inspector`); otherwise the
//! path goes on to the usual routing (a socket path, a static file, 404).

use super::http::{self, RequestHead};
use super::Host;
use crate::config::ServerConfig;
use crate::error::UpgradeRejection;
use crate::inspector::{PAGE_HTML, PAGE_JS};

/// Where the inspector's page and API live.
pub const INSPECTOR_PREFIX: &str = "/_warren/";

/// What an admin request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint {
  Metrics,
  Page,
  Script,
  /// Actors, sessions and rooms in memory.
  Overview,
  /// One actor: its sessions, rooms, last shown state and recent events.
  Actor {
    kind: String,
    key: String,
  },
  Destroy {
    kind: String,
    key: String,
  },
  Hibernate {
    kind: String,
    key: String,
  },
  NotFound,
  MethodNotAllowed,
}

#[derive(Debug, PartialEq, Eq)]
pub struct AdminRequest {
  pub endpoint: Endpoint,
  pub authorized: bool,
}

/// The admin request `head` makes, or `None` when it is not one (or its option is off).
pub fn route(head: &RequestHead, config: &ServerConfig) -> Option<AdminRequest> {
  let path = head.path();
  let token = config.admin_token.as_deref();
  let bearer = token.is_some_and(|token| http::bearer_matches(head, token));
  let get = head.method == "GET";
  let post = head.method == "POST";
  if config.metrics && path == "/metrics" {
    return Some(AdminRequest {
      endpoint: if get {
        Endpoint::Metrics
      } else {
        Endpoint::MethodNotAllowed
      },
      authorized: token.is_none() || bearer,
    });
  }
  let rest = path.strip_prefix(INSPECTOR_PREFIX).filter(|_| config.inspector)?;
  let actor = || Some((head.query("kind")?, head.query("key")?));
  let endpoint = match (rest, get, post) {
    ("inspector", true, _) => Endpoint::Page,
    ("inspector.js", true, _) => Endpoint::Script,
    ("api/actors", true, _) => Endpoint::Overview,
    ("api/actor", true, _) => actor().map_or(Endpoint::NotFound, |(kind, key)| Endpoint::Actor { kind, key }),
    ("api/actor/destroy", _, true) => {
      actor().map_or(Endpoint::NotFound, |(kind, key)| Endpoint::Destroy { kind, key })
    }
    ("api/actor/hibernate", _, true) => actor().map_or(Endpoint::NotFound, |(kind, key)| {
      Endpoint::Hibernate { kind, key }
    }),
    (
      "inspector" | "inspector.js" | "api/actors" | "api/actor" | "api/actor/destroy" | "api/actor/hibernate",
      _,
      _,
    ) => Endpoint::MethodNotAllowed,
    _ => Endpoint::NotFound,
  };
  let open = matches!(endpoint, Endpoint::Page | Endpoint::Script);
  Some(AdminRequest {
    endpoint,
    authorized: open || bearer,
  })
}

/// Headers of the inspector's page and script: no framing, no inline or foreign scripts, no
/// caching, no referrer.
const PAGE_HEADERS: &str = "Content-Security-Policy: default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'\r\nX-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n";

const JSON_HEADERS: &str = "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n";

/// The complete response to an admin request.
pub fn respond<H: Host>(host: &H, request: &AdminRequest) -> Vec<u8> {
  if !request.authorized {
    return http::rejection_response(&UpgradeRejection::Unauthorized);
  }
  let json = |body: &str| http::response(200, "application/json", body, JSON_HEADERS);
  let done = |done: bool| {
    if done {
      json(r#"{"ok":true}"#)
    } else {
      http::rejection_response(&UpgradeRejection::NotFound)
    }
  };
  match &request.endpoint {
    Endpoint::Metrics => http::response(
      200,
      "text/plain; version=0.0.4; charset=utf-8",
      &host.metrics_text(),
      JSON_HEADERS,
    ),
    Endpoint::Page => http::response(200, "text/html; charset=utf-8", PAGE_HTML, PAGE_HEADERS),
    Endpoint::Script => http::response(200, "text/javascript; charset=utf-8", PAGE_JS, PAGE_HEADERS),
    Endpoint::Overview => json(&host.inspect_overview()),
    Endpoint::Actor { kind, key } => match host.inspect_actor(kind, key) {
      Some(body) => json(&body),
      None => http::rejection_response(&UpgradeRejection::NotFound),
    },
    Endpoint::Destroy { kind, key } => done(host.destroy_actor_named(kind, key)),
    Endpoint::Hibernate { kind, key } => done(host.hibernate_actor_named(kind, key)),
    Endpoint::NotFound => http::rejection_response(&UpgradeRejection::NotFound),
    Endpoint::MethodNotAllowed => http::rejection_response(&UpgradeRejection::MethodNotAllowed),
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::transport::http::tests::head;

  fn config(metrics: bool, inspector: bool, token: Option<&str>) -> ServerConfig {
    ServerConfig {
      metrics,
      inspector,
      admin_token: token.map(str::to_string),
      ..ServerConfig::default()
    }
  }

  #[test]
  fn metrics_need_the_token_only_when_one_is_set() {
    let plain = head("GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(route(&plain, &config(false, false, None)), None);
    let open = route(&plain, &config(true, false, None));
    assert!(open.is_some_and(|r| r.authorized && r.endpoint == Endpoint::Metrics));
    let refused = route(&plain, &config(true, false, Some("t")));
    assert!(refused.is_some_and(|r| !r.authorized));
    let with = head("GET /metrics HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n");
    assert!(route(&with, &config(true, false, Some("t"))).is_some_and(|r| r.authorized));
  }

  #[test]
  fn the_inspector_page_is_open_and_its_api_is_not() {
    let on = config(false, true, Some("t"));
    assert!(route(&head("GET /_warren/inspector HTTP/1.1\r\n\r\n"), &on)
      .is_some_and(|r| r.authorized && r.endpoint == Endpoint::Page));
    assert!(route(&head("GET /_warren/api/actors HTTP/1.1\r\n\r\n"), &on).is_some_and(|r| !r.authorized));
    let destroy =
      head("POST /_warren/api/actor/destroy?kind=C&key=a%20b HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n");
    assert_eq!(
      route(&destroy, &on),
      Some(AdminRequest {
        endpoint: Endpoint::Destroy {
          kind: "C".into(),
          key: "a b".into()
        },
        authorized: true
      })
    );
    let get_destroy = head("GET /_warren/api/actor/destroy?kind=C&key=a HTTP/1.1\r\n\r\n");
    assert!(route(&get_destroy, &on).is_some_and(|r| r.endpoint == Endpoint::MethodNotAllowed));
    assert_eq!(
      route(
        &head("GET /_warren/inspector HTTP/1.1\r\n\r\n"),
        &config(true, false, Some("t"))
      ),
      None
    );
  }
}
