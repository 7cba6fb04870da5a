use std::sync::Arc;

use capstan_host::{Access, Call, Failure, FunctionError, FunctionKind, FunctionPath, NestedCalls};
use serde_json::json;

use crate::common::*;

#[test]
fn every_database_operation_works_through_the_sdk() {
    let fixture = guest();
    let id = fixture.value(
        "api:send",
        json!({"channel": "general", "body": "hi", "note": "n"}),
    );
    let id = id.as_str().expect("id string").to_owned();
    fixture.value("api:send", json!({"channel": "general", "body": "second"}));
    fixture.value("api:send", json!({"channel": "other", "body": "elsewhere"}));

    let listed = fixture.value("api:list", json!({"channel": "general"}));
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert_eq!(listed[0]["_id"], json!(id));
    assert!(listed[0]["_creationTime"].is_number());

    let got = fixture.value("api:get", json!({"id": id}));
    assert_eq!(got["body"], json!("hi"));
    // A `None` field is left out of the document, and an index range on
    // it with `None` finds the documents without it.
    assert!(listed[1].get("note").is_none(), "{listed}");
    let noted = fixture.value("api:by_note", json!({"note": "n"}));
    assert_eq!(noted.as_array().map(Vec::len), Some(1), "{noted}");
    let without = fixture.value("api:by_note", json!({}));
    assert_eq!(without.as_array().map(Vec::len), Some(2), "{without}");

    let edited = fixture.value("api:edit", json!({"id": id, "body": "edited"}));
    assert_eq!(
        (edited["body"].clone(), edited["note"].clone()),
        (json!("edited"), json!("n"))
    );
    let unset = fixture.value("api:edit_unset", json!({"id": id}));
    assert!(unset.get("note").is_none(), "{unset}");

    let swapped = fixture.value(
        "api:swap",
        json!({"id": id, "message": {"channel": "general", "body": "replaced"}}),
    );
    assert_eq!(swapped["body"], json!("replaced"));

    let page = fixture.value(
        "api:page",
        json!({"channel": "general", "opts": {"numItems": 1}}),
    );
    assert_eq!(page["page"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["isDone"], json!(false));
    let next = fixture.value(
        "api:page",
        json!({"channel": "general", "opts": {"numItems": 5, "cursor": page["continueCursor"]}}),
    );
    assert_eq!(next["page"].as_array().map(Vec::len), Some(1));
    assert_eq!(next["isDone"], json!(true));

    assert_eq!(
        fixture.value("api:count_all", json!({})),
        json!(3.0),
        "a Rust integer is a float64"
    );
    assert_eq!(fixture.value("api:remove", json!({"id": id})), json!(true));
    assert_eq!(fixture.value("api:remove", json!({"id": id})), json!(false));
    assert_eq!(fixture.value("api:get", json!({"id": id})), json!(null));
    assert_eq!(
        fixture.value("api:increment", json!({"name": "c"})),
        json!({"$integer": "AQAAAAAAAAA="})
    );
    assert_eq!(
        fixture.value("api:increment", json!({"name": "c"})),
        json!({"$integer": "AgAAAAAAAAA="})
    );
}

#[test]
fn queries_and_mutations_are_deterministic() {
    let fixture = guest();
    let snapshot = fixture.store.latest_ts();
    let at = |ts| {
        let outcome = fixture.module.run(Call {
            path: "api:clock".into(),
            args: "{}".into(),
            access: Access::Query(fixture.store.begin_at(ts).expect("snapshot")),
            environment: Arc::default(),
            identity: Default::default(),
            deadline: None,
            platform: None,
        });
        serde_json::from_str::<serde_json::Value>(&outcome.result.expect("runs")).expect("json")
    };
    let first = at(snapshot);
    let second = at(snapshot);
    assert_eq!(first, second, "same call, same snapshot, same result");
    assert_eq!(
        first["now_ms"].as_f64().expect("a number"),
        (snapshot.nanos() / 1_000_000) as f64,
        "a query's clock reads its snapshot's time"
    );

    let stamp = fixture.value("api:stamp", json!({}));
    let creation = stamp["creation_time"].as_f64().expect("creation time");
    assert_eq!(
        stamp["clock"]["now_ms"].as_f64().expect("a number"),
        creation.floor(),
        "the mutation's clock is its transaction's time"
    );

    // Actions see the real clock: two calls differ in their random numbers.
    let action = |_: ()| {
        let outcome = fixture.module.run(Call {
            path: "api:action_clock".into(),
            args: "{}".into(),
            access: Access::Action(Arc::new(NoNestedCalls)),
            environment: Arc::default(),
            identity: Default::default(),
            deadline: None,
            platform: None,
        });
        serde_json::from_str::<serde_json::Value>(&outcome.result.expect("runs")).expect("json")
    };
    assert_ne!(action(())["random"], action(())["random"]);
}

/// A query's random numbers repeat for the same call, snapshot and caller
/// under one seed key, and cannot be told by anyone without the key; a
/// mutation's are the operating system's.
#[test]
fn random_numbers_are_repeatable_for_queries_and_unpredictable_for_everyone_else() {
    use capstan_host::{HostEngine, SeedKey};
    use capstan_protocol::{Identity, UserIdentity};

    let key = [7u8; 32];
    let fixture =
        guest_on(&HostEngine::with_seed_key(limits(), SeedKey::new(key)).expect("engine"));
    // The same deployment's key after a restart, and another deployment's.
    let restarted =
        guest_on(&HostEngine::with_seed_key(limits(), SeedKey::new(key)).expect("engine"));
    let other =
        guest_on(&HostEngine::with_seed_key(limits(), SeedKey::new([8; 32])).expect("engine"));
    let snapshot = fixture.store.latest_ts();
    let user = Identity::User(Arc::new(UserIdentity::new(
        "https://issuer|alice".into(),
        "https://issuer".into(),
        "alice".into(),
        Default::default(),
        None,
    )));
    // One store for all three, so that they read one snapshot.
    let run = |module: &Fixture, path: &str, identity: Identity| {
        let transaction = fixture.store.begin_at(snapshot).expect("snapshot");
        let access = match path {
            "api:clock" => Access::Query(transaction),
            _ => Access::Mutation(transaction),
        };
        let outcome = module.module.run(Call {
            path: path.into(),
            args: "{}".into(),
            access,
            environment: Arc::default(),
            identity,
            deadline: None,
            platform: None,
        });
        let value: serde_json::Value =
            serde_json::from_str(&outcome.result.expect("runs")).expect("json");
        (value["random"].clone(), value["secure"].clone())
    };
    let anonymous = run(&fixture, "api:clock", Identity::Anonymous);
    assert_eq!(anonymous, run(&fixture, "api:clock", Identity::Anonymous));
    assert_eq!(anonymous, run(&restarted, "api:clock", Identity::Anonymous));
    let alice = run(&fixture, "api:clock", user.clone());
    for (what, seen) in [
        ("another caller", alice.clone()),
        (
            "another deployment",
            run(&other, "api:clock", Identity::Anonymous),
        ),
    ] {
        assert_ne!(seen.0, anonymous.0, "{what}: a different insecure seed");
        assert_ne!(seen.1, anonymous.1, "{what}: different secure numbers");
    }
    assert_eq!(alice, run(&fixture, "api:clock", user));

    let first = run(&fixture, "api:mutation_clock", Identity::Anonymous);
    let second = run(&fixture, "api:mutation_clock", Identity::Anonymous);
    assert_ne!(first.1, second.1, "a mutation draws fresh numbers each run");
}

#[test]
fn queries_cannot_write_and_actions_have_no_database() {
    let fixture = guest();
    let outcome = fixture.run("api:write_in_query", json!({}));
    match outcome.result {
        Err(Failure::Function { message, .. }) => {
            assert!(message.contains("a query cannot write"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn log_lines_come_back_in_order_with_levels() {
    let fixture = guest();
    let outcome = fixture.run("api:logs", json!({}));
    assert!(outcome.result.is_ok());
    assert_eq!(
        outcome.log_lines,
        [
            "[LOG] printed",
            "[LOG] logged 1",
            "[ERROR] to stderr",
            "[WARN] careful"
        ]
    );
}

#[test]
fn errors_carry_their_data() {
    let fixture = guest();
    match fixture.run("api:fail", json!({})).result {
        Err(Failure::Function {
            message,
            data: Some(data),
        }) => {
            let data: serde_json::Value = serde_json::from_str(&data).expect("json");
            assert_eq!(data["code"], json!("TOO_MANY"));
            assert_eq!(data["limit"], json!(3.0), "JSON numbers are float64s");
            assert!(message.contains("TOO_MANY"));
        }
        other => panic!("expected a ConvexError, got {other:?}"),
    }
    match fixture.run("api:fail_plain", json!({})).result {
        Err(Failure::Function {
            message,
            data: None,
        }) => assert_eq!(message, "plain failure 7"),
        other => panic!("expected a plain error, got {other:?}"),
    }
    for (path, args, expected) in [
        (
            "api:list",
            json!({"channel": 5}),
            "Invalid arguments for `api:list`: invalid type: integer `5`, expected a string",
        ),
        (
            "api:list",
            json!({"channel": "c", "chanel": "typo"}),
            "Invalid arguments for `api:list`: unknown field `chanel`, expected `channel`",
        ),
        (
            "api:list",
            json!({}),
            "Invalid arguments for `api:list`: missing field `channel`",
        ),
        (
            "api:send",
            json!({"channel": "c", "body": "b", "extra": true}),
            "Invalid arguments for `api:send`: unknown field `extra`, expected one of `channel`, `body`, `note`",
        ),
        (
            "api:count_all",
            json!({"all": true}),
            "Invalid arguments for `api:count_all`: unknown field `all`; this function takes no arguments",
        ),
    ] {
        match fixture.run(path, args).result {
            Err(Failure::Function {
                message,
                data: None,
            }) => assert_eq!(message, expected),
            other => panic!("expected an argument error, got {other:?}"),
        }
    }
    match fixture.run("api:env", json!({"name": "GREETING"})).result {
        Ok(value) => assert_eq!(value, "\"hello\""),
        other => panic!("{other:?}"),
    }
}

/// An action that runs no other function.
struct NoNestedCalls;

impl NestedCalls for NoNestedCalls {
    fn call(&self, _: FunctionKind, path: &FunctionPath, _: &str) -> Result<String, FunctionError> {
        panic!("the action ran {path}")
    }
}

/// Runs nested calls against the fixture, as the server does.
struct Nested {
    fixture: Arc<Fixture>,
}

impl NestedCalls for Nested {
    fn call(
        &self,
        kind: FunctionKind,
        path: &FunctionPath,
        args: &str,
    ) -> Result<String, FunctionError> {
        assert_ne!(kind, FunctionKind::Action);
        let outcome = self.fixture.run(
            path.as_str(),
            serde_json::from_str(args).expect("json args"),
        );
        outcome.result.map_err(|failure| FunctionError {
            message: failure.to_string(),
            data: None,
        })
    }
}

#[test]
fn an_action_runs_a_mutation_then_a_query() {
    let fixture = Arc::new(guest());
    let outcome = fixture.module.run(Call {
        path: "api:send_and_list".into(),
        args: json!({"channel": "a", "body": "from an action"}).to_string(),
        access: Access::Action(Arc::new(Nested {
            fixture: fixture.clone(),
        })),
        environment: Arc::default(),
        identity: Default::default(),
        deadline: None,
        platform: None,
    });
    let value: serde_json::Value =
        serde_json::from_str(&outcome.result.expect("runs")).expect("json");
    assert_eq!(value["count"], json!(1.0));
    assert_eq!(outcome.log_lines, ["[LOG] sending to a"]);
    assert_eq!(
        fixture.value("api:list", json!({"channel": "a"}))[0]["body"],
        json!("from an action")
    );
}
