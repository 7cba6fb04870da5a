//! The smallest Capstan app: named counters that clients read and increment.

mod counter;

capstan::app! {
    tables: [counter::Counter],
    functions: [counter::{get, increment}],
}
