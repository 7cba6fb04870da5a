//! Logging from functions. Each line is returned with the call's result and
//! shown by clients; `println!` and `eprintln!` work too.

use crate::bindings::capstan::runtime::log as host;

#[doc(hidden)]
pub use host::Level;

#[doc(hidden)]
pub fn write(level: Level, message: &str) {
    host::log(level, message);
}

/// Logs a line at level LOG, formatted like `format!`.
///
/// ```no_run
/// capstan::log!("sent {} messages", 3);
/// ```
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::__private::log($crate::__private::Level::Log, &::std::format!($($arg)*))
    };
}

/// Logs a line at level INFO.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => {
        $crate::__private::log($crate::__private::Level::Info, &::std::format!($($arg)*))
    };
}

/// Logs a line at level WARN.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => {
        $crate::__private::log($crate::__private::Level::Warn, &::std::format!($($arg)*))
    };
}
