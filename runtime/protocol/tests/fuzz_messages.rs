//! Fuzzing of the sync protocol's message parser: any text, and valid
//! messages damaged byte by byte, is read or refused with an error, never a
//! panic; what is read writes back to what reads the same. Cases:
//! `CAPSTAN_FUZZ_CASES` (CI runs the default; a soak raises it).

use capstan_protocol::sync::{ClientMessage, ServerMessage};
use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("CAPSTAN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Messages a client sends, of every type.
fn valid_message() -> impl Strategy<Value = String> {
    let args = prop_oneof![
        Just("{}".to_owned()),
        Just(r#"{"a":1,"b":[true,null,"x"],"c":{"$integer":"AQAAAAAAAAA="}}"#.to_owned()),
        Just(r#"{"bytes":{"$bytes":"AAEC"},"f":{"$float":"AAAAAAAA+H8="}}"#.to_owned()),
    ];
    (0u32..4, args, 0u32..1000).prop_map(|(kind, args, n)| match kind {
        0 => format!(
            r#"{{"type":"Connect","sessionId":"5d8f9a2e-0000-4000-8000-{n:012}","connectionCount":{n},"lastCloseReason":"InitialConnect","clientTs":{n}}}"#
        ),
        1 => format!(
            r#"{{"type":"ModifyQuerySet","baseVersion":{n},"newVersion":{},"modifications":[{{"type":"Add","queryId":{n},"udfPath":"api:list","args":[{args}]}},{{"type":"Remove","queryId":{}}}]}}"#,
            n + 1,
            n + 2
        ),
        2 => format!(
            r#"{{"type":"Mutation","requestId":{n},"udfPath":"api:send","args":[{args}]}}"#
        ),
        _ => format!(
            r#"{{"type":"Authenticate","baseVersion":{n},"tokenType":"User","value":"a.b.c"}}"#
        ),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(3000)))]

    #[test]
    fn any_text_is_read_or_refused(text in ".{0,200}") {
        let _ = ClientMessage::from_json(&text);
        let _ = ServerMessage::from_json(&text);
    }

    #[test]
    fn damaged_messages_are_read_or_refused(
        message in valid_message(),
        at in 0usize..400,
        byte in any::<u8>(),
        cut in 0usize..400,
    ) {
        let parsed = ClientMessage::from_json(&message);
        prop_assert!(parsed.is_ok(), "{message}: {parsed:?}");
        let mut damaged = message.clone().into_bytes();
        if !damaged.is_empty() {
            let at = at % damaged.len();
            damaged[at] = byte;
        }
        damaged.truncate(cut.max(1));
        if let Ok(text) = String::from_utf8(damaged) {
            let _ = ClientMessage::from_json(&text);
        }
    }

    #[test]
    fn what_is_read_writes_back_the_same(message in valid_message()) {
        let parsed = ClientMessage::from_json(&message).expect("valid");
        let written = parsed.to_json();
        let again = ClientMessage::from_json(&written).expect("reads back");
        prop_assert_eq!(again.to_json(), written);
    }
}
