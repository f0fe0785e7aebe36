//! The decision rules, on real captures served by the loopback status server:
//! only watched components count, the severity threshold, maintenance, group
//! rows, and the parsers' tolerance of what real pages send.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/status_server.rs"]
mod status_server;

use status_server::{fixture, Reply, StatusServer};
use tower_api_guard::gate::{GateClosed, Severity, StatusGate, StatusGateBuilder};
use tower_api_guard::status_page::{
    parse_status, parse_summary, parse_webhook, ComponentStatus, Impact, IncidentStatus, Indicator,
    PageErrorKind, WebhookEvent,
};

const MAJOR: &str = "github_summary_major_outage_2020-04-02.json";
const INSTRUCTURE: &str = "atc0005_check-statuspage/instructure-summary.json";
const DOCS_MAINT: &str = "docs_example_summary_with_maintenance.json";

/// Serves `reply`, builds a gate with `configure`, waits for its first poll
/// and returns the verdict.
async fn verdict(
    reply: Reply,
    configure: impl FnOnce(StatusGateBuilder) -> StatusGateBuilder,
) -> Result<(), GateClosed> {
    let server = StatusServer::start(reply).await;
    let gate = configure(StatusGate::builder().base_url(server.base_url()))
        .build()
        .unwrap();
    gate.polled().await.unwrap();
    assert_eq!(server.hits(), 1);
    gate.check()
}

/// A summary made of a components.json capture and a given indicator.
fn with_components(components_fixture: &str, indicator: &str) -> Reply {
    let doc: serde_json::Value = serde_json::from_slice(&fixture(components_fixture)).unwrap();
    let page = serde_json::json!({
        "page": doc["page"],
        "status": {"indicator": indicator, "description": "composed for the test"},
        "components": doc["components"],
        "incidents": [],
        "scheduled_maintenances": [],
    });
    Reply::json(&page.to_string())
}

#[tokio::test(start_paused = true)]
async fn only_watched_components_count() {
    // GitHub's outage page: Pages is operational, and the one incident names
    // only the pseudo component, so watching Pages leaves the gate open...
    assert!(
        verdict(Reply::fixture(MAJOR), |b| b.watch_component("GitHub Pages"))
            .await
            .is_ok()
    );
    // ...while Git Operations is in major_outage (critical).
    let closed = verdict(Reply::fixture(MAJOR), |b| {
        b.watch_component("git operations")
    })
    .await
    .unwrap_err();
    assert_eq!(
        closed.components(),
        &[("Git Operations".to_owned(), ComponentStatus::MajorOutage)]
    );
    // Instructure: "— Chat" is operational and not named by the incident.
    assert!(
        verdict(Reply::fixture(INSTRUCTURE), |b| b.watch_component("— Chat"))
            .await
            .is_ok()
    );
    // "Canvas" (a group row and a child row, both degraded) closes, and the
    // incident that names Canvas is reported.
    let closed = verdict(Reply::fixture(INSTRUCTURE), |b| b.watch_component("Canvas"))
        .await
        .unwrap_err();
    assert_eq!(closed.components().len(), 2);
    assert_eq!(closed.incidents().len(), 1);
    assert_eq!(
        closed.incidents()[0].shortlink.as_deref(),
        Some("https://stspg.io/0vf16sb2j8xn")
    );
    // A watched name the page does not have falls back to the indicator.
    assert!(verdict(Reply::fixture(INSTRUCTURE), |b| b
        .watch_component("Claude API"))
    .await
    .is_err());
}

#[tokio::test(start_paused = true)]
async fn threshold_rules() {
    // Default threshold (minor): any incident closes, as the provider's check does.
    assert!(verdict(Reply::fixture(INSTRUCTURE), |b| b).await.is_err());
    // Instructure is minor: a major threshold lets it through.
    assert!(verdict(Reply::fixture(INSTRUCTURE), |b| b
        .threshold(Severity::Major))
    .await
    .is_ok());
    // GitHub's outage is major: closed at major, open at critical.
    assert!(
        verdict(Reply::fixture(MAJOR), |b| b.threshold(Severity::Major))
            .await
            .is_err()
    );
    assert!(
        verdict(Reply::fixture(MAJOR), |b| b.threshold(Severity::Critical))
            .await
            .is_ok()
    );
    // Watching GitHub Actions (partial_outage = major) at critical: open;
    // watching API Requests (major_outage = critical) at critical: closed.
    assert!(verdict(Reply::fixture(MAJOR), |b| b
        .threshold(Severity::Critical)
        .watch_component("GitHub Actions"))
    .await
    .is_ok());
    assert!(verdict(Reply::fixture(MAJOR), |b| b
        .threshold(Severity::Critical)
        .watch_component("API Requests"))
    .await
    .is_err());
    // The docs example: indicator major, but an unresolved critical incident
    // that names no component; watching "API" counts it (unattributed), so a
    // critical threshold closes; without unattributed incidents it does not.
    let closed = verdict(Reply::fixture(DOCS_MAINT), |b| {
        b.threshold(Severity::Critical).watch_component("API")
    })
    .await
    .unwrap_err();
    assert_eq!(closed.incidents()[0].name, "Unplanned Database Outage");
    assert!(verdict(Reply::fixture(DOCS_MAINT), |b| b
        .threshold(Severity::Critical)
        .watch_component("API")
        .unattributed_incidents(false))
    .await
    .is_ok());
}

#[tokio::test(start_paused = true)]
async fn maintenance_rules() {
    let maint = || {
        Reply::json(
            r#"{"status":{"indicator":"maintenance","description":"Service Under Maintenance"}}"#,
        )
    };
    // Maintenance does not close by default...
    assert!(verdict(maint(), |b| b).await.is_ok());
    // ...and does when asked.
    let closed = verdict(maint(), |b| b.maintenance_closes(true))
        .await
        .unwrap_err();
    assert_eq!(closed.indicator(), Some(&Indicator::Maintenance));
    assert_eq!(closed.description(), Some("Service Under Maintenance"));
    // Qualys: CertView is under_maintenance; watched, it closes only with the rule.
    let qualys = "atc0005_check-statuspage/qualys-components.json";
    assert!(verdict(with_components(qualys, "major"), |b| b
        .watch_component("CertView (CERT)"))
    .await
    .is_ok());
    assert!(verdict(with_components(qualys, "major"), |b| b
        .watch_component("CertView (CERT)")
        .maintenance_closes(true))
    .await
    .is_err());
    // An in-progress maintenance naming no component counts as maintenance
    // for a watched, operational component: the docs example's "Web Tier
    // Recycle" with the threshold out of reach.
    let closed = verdict(Reply::fixture(DOCS_MAINT), |b| {
        b.watch_component("API")
            .threshold(Severity::Critical)
            .unattributed_incidents(true)
            .maintenance_closes(true)
    })
    .await
    .unwrap_err();
    assert!(closed
        .incidents()
        .iter()
        .any(|i| i.name == "Web Tier Recycle"));
    // The scheduled (not begun) maintenance is never listed.
    assert!(closed
        .incidents()
        .iter()
        .all(|i| i.name != "Network Maintenance (No Interruption Expected)"));
}

#[tokio::test(start_paused = true)]
async fn group_rows_count_like_components() {
    let qualys = "atc0005_check-statuspage/qualys-components.json";
    // "EU Platform 1" is a group row in major_outage; "US Platform 1" an operational one.
    assert!(verdict(with_components(qualys, "major"), |b| b
        .watch_component("EU Platform 1"))
    .await
    .is_err());
    assert!(verdict(with_components(qualys, "major"), |b| b
        .watch_component("US Platform 1"))
    .await
    .is_ok());
}

#[test]
fn every_capture_parses_and_unknown_values_are_kept() {
    for name in [
        "github_summary_operational_2019-12-30.json",
        MAJOR,
        INSTRUCTURE,
        DOCS_MAINT,
    ] {
        let page = parse_summary(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!page.components.is_empty(), "{name}");
    }
    let docs = parse_summary(&fixture(DOCS_MAINT)).unwrap();
    assert_eq!(docs.incidents[0].impact, Some(Impact::Critical));
    assert_eq!(
        docs.incidents[0].created_at.as_deref(),
        Some("2014-05-14T14:22:39.441-06:00")
    );
    assert_eq!(
        docs.scheduled_maintenances[1].status,
        IncidentStatus::InProgress
    );
    assert_eq!(docs.components[0].description, None);
    let status = parse_status(&fixture("github_status_2026-10-09.json")).unwrap();
    assert_eq!(status.status.indicator, Indicator::None);

    let odd = br#"{"status":{"indicator":"purple","description":null},
        "components":[{"name":"X","status":"on_fire","group":null,"group_id":null}],
        "incidents":null,"scheduled_maintenances":null}"#;
    let page = parse_summary(odd).unwrap();
    assert_eq!(page.status.indicator, Indicator::Unknown("purple".into()));
    assert_eq!(
        page.components[0].status,
        ComponentStatus::Unknown("on_fire".into())
    );
    assert!(page.incidents.is_empty());

    for (body, kind) in [
        (&b""[..], PageErrorKind::Empty),
        (
            b"<html><body>502 Bad Gateway</body></html>",
            PageErrorKind::Syntax,
        ),
        (b"{\"status\":{\"indicator\":\"no", PageErrorKind::Truncated),
        (b"{\"status\":{\"indicator\":5}}", PageErrorKind::Shape),
        (b"{\"components\":[]}", PageErrorKind::Shape),
    ] {
        assert_eq!(parse_summary(body).unwrap_err().kind(), kind);
    }
}

#[test]
fn webhook_captures_parse() {
    let comp = parse_webhook(&fixture("webhooks/component_status_update.json")).unwrap();
    assert_eq!(comp.page.status_indicator, Some(Indicator::Maintenance));
    let WebhookEvent::Component { component, update } = comp.event else {
        panic!("component event");
    };
    assert_eq!(component.status, ComponentStatus::UnderMaintenance);
    assert_eq!(
        update.unwrap().old_status,
        Some(ComponentStatus::Operational)
    );
    for name in [
        "webhooks/incident_created.json",
        "webhooks/incident_update.json",
    ] {
        let hook = parse_webhook(&fixture(name)).unwrap();
        assert!(matches!(hook.event, WebhookEvent::Incident(_)), "{name}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Whatever the bytes, the parsers answer `Ok` or a typed error, never a panic.
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024)) {
        let _ = parse_summary(&bytes);
        let _ = parse_status(&bytes);
        let _ = parse_webhook(&bytes);
    }

    /// Any prefix of a real capture is either the whole page or a typed error.
    #[test]
    fn truncated_captures_are_errors(cut in 0usize..1_000_000, which in 0usize..4) {
        let name = [
            MAJOR,
            INSTRUCTURE,
            DOCS_MAINT,
            "webhooks/incident_update.json",
        ][which];
        let full = fixture(name);
        // Without trailing whitespace, every proper prefix is incomplete JSON.
        let end = full.iter().rposition(|b| !b.is_ascii_whitespace()).unwrap() + 1;
        let body = full.slice(..end);
        let cut = cut % body.len();
        let prefix = &body[..cut];
        if which == 3 {
            proptest::prop_assert!(parse_webhook(prefix).is_err());
        } else {
            proptest::prop_assert!(parse_summary(prefix).is_err());
        }
    }
}
