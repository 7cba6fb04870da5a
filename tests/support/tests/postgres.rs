//! The PostgreSQL the tests start: on loopback, in a temporary directory,
//! answering queries, surviving an immediate stop and a start.

use capstan_test_support::Postgres;

#[test]
fn a_postgres_for_tests_starts_answers_and_restarts_after_a_crash() {
    let postgres = Postgres::start();
    assert_eq!(postgres.psql("select 1 + 1"), "2");
    postgres.psql("create table kept (n int primary key); insert into kept values (7)");
    postgres.kill();
    postgres.restart();
    assert_eq!(postgres.psql("select n from kept"), "7");
    assert!(postgres.url.starts_with("postgres://postgres@127.0.0.1:"));
}
