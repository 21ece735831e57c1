//! Concurrency: one confirmation, one exchange, one scanner — under any race.

use futures::future::join_all;
use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, APPID};

both_backends!(
    fifty_concurrent_confirms_succeed_exactly_once,
    twenty_concurrent_exchanges_succeed_exactly_once,
    five_users_scanning_one_code_yield_exactly_one_scanner,
);

async fn fifty_concurrent_confirms_succeed_exactly_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    let token = app.mp_login(APPID, "o-race").await;
    assert_eq!(app.scan(&token, &random).await.status(), StatusCode::OK);
    let results = join_all((0..50).map(|_| app.confirm(&token, &random, None))).await;
    let statuses: Vec<StatusCode> = results.iter().map(|r| r.status()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
}

async fn twenty_concurrent_exchanges_succeed_exactly_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, ticket) = app.confirmed_ticket("o-race").await;
    let results = join_all((0..20).map(|_| app.exchange(&app.client, &ticket))).await;
    let statuses: Vec<StatusCode> = results.iter().map(|r| r.status()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
}

async fn five_users_scanning_one_code_yield_exactly_one_scanner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let random = app.create_qr().await["random"].as_str().unwrap().to_owned();
    let mut tokens = Vec::new();
    for i in 0..5 {
        tokens.push(app.mp_login(APPID, &format!("o-scanner-{i}")).await);
    }
    let results = join_all(tokens.iter().map(|t| app.scan(t, &random))).await;
    let statuses: Vec<StatusCode> = results.iter().map(|r| r.status()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        4,
        "{statuses:?}"
    );
    // The winner, and only the winner, can confirm.
    let winner = statuses.iter().position(|s| *s == StatusCode::OK).unwrap();
    for (i, t) in tokens.iter().enumerate() {
        let expected = if i == winner {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        if i != winner {
            assert_eq!(app.confirm(t, &random, None).await.status(), expected);
        }
    }
    assert_eq!(
        app.confirm(&tokens[winner], &random, None).await.status(),
        StatusCode::OK
    );
}
