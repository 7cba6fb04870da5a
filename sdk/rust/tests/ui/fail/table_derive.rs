use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, capstan::Table)]
struct Unnamed {
    a: String,
}

#[derive(Serialize, Deserialize, capstan::Table)]
#[table(name = "things", index(by_b = [b]))]
struct UnknownField {
    a: String,
}

#[derive(Serialize, Deserialize, capstan::Table)]
#[table(name = "things", index(by_creation_time = [a]))]
struct ReservedIndex {
    a: String,
}

#[derive(Serialize, Deserialize, capstan::Table)]
#[table(name = "things", index(by_a = [a]), index(by_a = [a]))]
struct DuplicateIndex {
    a: String,
}

#[derive(Serialize, Deserialize, capstan::Table)]
#[table(name = "things", index(by_a = [a, a]))]
struct RepeatedField {
    a: String,
}

#[derive(Serialize, Deserialize, capstan::Table)]
#[table(name = "9 things")]
struct BadName {
    a: String,
}

#[derive(Serialize, Deserialize, capstan::Table)]
#[table(name = "things")]
struct Tuple(String);

#[derive(Serialize, Deserialize, capstan::Table)]
#[table(name = "things", indexes(by_a = [a]))]
struct UnknownOption {
    a: String,
}

#[derive(Serialize, Deserialize, capstan::Table)]
#[table(name = "things")]
struct NoValidator {
    a: std::time::Duration,
}

fn main() {}
