//! Captures every tracing event of a full run (accepts, every kind of rejection, provider errors,
//! a broken codes file) at TRACE level and checks that no AppCode value appears in it.

use std::time::Duration;

use apig_appcode::provider::{FileProvider, ProviderError};
use apig_appcode::{AppCode, AppCodeAuthLayer};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tower::{service_fn, ServiceBuilder, ServiceExt};

#[path = "support/logs.rs"]
mod logs;
use logs::Logs;
#[path = "support/lookups.rs"]
mod lookups;
use lookups::{Answer, LookupsOnly};

/// A provider whose point lookups fail, to log provider errors on a miss.
fn failing_lookups() -> LookupsOnly<fn() -> Answer> {
    LookupsOnly(|| Box::pin(async { Err(ProviderError::Unavailable("backend down".into())) }))
}

async fn status(layer: &AppCodeAuthLayer, code: Option<&str>) -> StatusCode {
    let mut req = Request::builder().uri("/");
    if let Some(c) = code {
        req = req.header("x-apig-appcode", c);
    }
    ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(|_: Request<Bytes>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Bytes::new()))
        }))
        .oneshot(req.body(Bytes::new()).unwrap())
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_full_run_logs_no_appcode() {
    let capture = Logs::default();
    let _guard = capture.install();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("codes.json");
    let valid = AppCode::generate();
    let write_codes = |codes: &[&str]| {
        let list: Vec<String> = codes
            .iter()
            .enumerate()
            .map(|(i, c)| format!(r#"{{"id":"code-{i}","value":"{c}"}}"#))
            .collect();
        let doc = format!(
            r#"{{"apps":[{{"id":"app-logged","app_codes":[{}]}}]}}"#,
            list.join(",")
        );
        std::fs::write(&path, doc).unwrap();
    };
    write_codes(&[valid.expose()]);

    let layer = AppCodeAuthLayer::builder()
        .provider(FileProvider::new(&path).poll_interval(Duration::from_millis(20)))
        .build();
    layer.cache().loaded().await;

    let unknown = AppCode::generate();
    let malformed = format!("{}*", AppCode::generate().expose());
    assert_eq!(status(&layer, Some(valid.expose())).await, StatusCode::OK);
    assert_eq!(
        status(&layer, Some(unknown.expose())).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&layer, Some(&malformed)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(&layer, None).await, StatusCode::UNAUTHORIZED);

    // A broken file: one entry breaks the rules. The layer must keep the last good set and say why.
    let broken = format!("{}~", AppCode::generate().expose());
    write_codes(&[valid.expose(), &broken]);
    let mut warned = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        warned = capture.text().contains("provider data invalid");
        if warned {
            break;
        }
    }
    assert!(warned, "the broken file was not reported");
    assert_eq!(
        status(&layer, Some(valid.expose())).await,
        StatusCode::OK,
        "last good set lost"
    );

    let lookups = AppCodeAuthLayer::builder()
        .provider(failing_lookups())
        .build();
    lookups.cache().loaded().await;
    let missed = AppCode::generate();
    assert_eq!(
        status(&lookups, Some(missed.expose())).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let logs = capture.text();
    // The run was logged: outcomes and the app ID are there...
    assert!(
        logs.contains("accepted") && logs.contains("app-logged"),
        "{logs}"
    );
    assert!(
        logs.contains("reason=\"invalid\"") || logs.contains("reason=invalid"),
        "{logs}"
    );
    assert!(logs.contains("AppCode lookup failed"), "{logs}");
    // ...and no code value, nor any long piece of one.
    for secret in [
        valid.expose(),
        unknown.expose(),
        &malformed,
        &broken,
        missed.expose(),
    ] {
        for window in secret.as_bytes().windows(16) {
            let piece = std::str::from_utf8(window).unwrap();
            assert!(
                !logs.contains(piece),
                "a piece of an AppCode was logged: {piece}"
            );
        }
    }
}
