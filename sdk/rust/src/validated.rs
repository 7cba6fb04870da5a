//! Validators derived from Rust types.
//!
//! A type is [`Validated`] when its values have one Convex shape:
//! `#[derive(capstan::Validated)]` gives it to structs and enums (read from
//! their serde attributes), and `#[derive(capstan::Table)]` to a table's
//! document. The table's schema then validates every document the server
//! stores, whoever writes it.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use capstan_protocol::Value;

use crate::id::Id;
use crate::schema::v::{self, Validator};
use crate::table::Table;
use crate::values::{Bytes, Int64};

/// A Rust type with one Convex shape, and the validator that checks it.
///
/// ```
/// use capstan::Validated;
/// #[derive(serde::Serialize, capstan::Validated)]
/// #[serde(rename_all = "camelCase")]
/// struct Address {
///     street: String,
///     house_number: u32,
///     flat: Option<String>,
/// }
/// let validator = Address::validator();
/// # let _ = validator;
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no Convex validator",
    label = "a field of this type is in a table",
    note = "derive `capstan::Validated` for it, or store it as `capstan::Value` (any value)"
)]
pub trait Validated {
    /// The validator of this type's values.
    fn validator() -> Validator;

    /// The validator of an object field of this type: `Option<T>` makes
    /// the field optional, as a `None` field is left out.
    fn field_validator() -> Validator {
        Self::validator()
    }
}

macro_rules! validated {
    ($validator:expr => $($ty:ty),* $(,)?) => {$(
        impl Validated for $ty {
            fn validator() -> Validator {
                $validator
            }
        }
    )*};
}

validated!(v::boolean() => bool);
validated!(v::string() => String, str, char);
validated!(v::float64() => f32, f64, u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);
validated!(v::int64() => Int64);
validated!(v::bytes() => Bytes);
validated!(v::null() => ());
validated!(v::any() => Value, serde_json::Value);

impl Validated for Cow<'_, str> {
    fn validator() -> Validator {
        v::string()
    }
}

impl<T: Validated> Validated for Option<T> {
    fn validator() -> Validator {
        v::union([T::validator(), v::null()])
    }

    fn field_validator() -> Validator {
        v::optional(T::validator())
    }
}

impl<T: Table> Validated for Id<T> {
    fn validator() -> Validator {
        v::id(T::NAME)
    }
}

macro_rules! validated_array {
    ($($ty:ident),*) => {$(
        impl<T: Validated> Validated for $ty<T> {
            fn validator() -> Validator {
                v::array(T::validator())
            }
        }
    )*};
}

validated_array!(Vec, VecDeque, BTreeSet);

impl<T: Validated, S> Validated for HashSet<T, S> {
    fn validator() -> Validator {
        v::array(T::validator())
    }
}

impl<T: Validated> Validated for [T] {
    fn validator() -> Validator {
        v::array(T::validator())
    }
}

impl<T: Validated, const N: usize> Validated for [T; N] {
    fn validator() -> Validator {
        v::array(T::validator())
    }
}

impl<V: Validated> Validated for BTreeMap<String, V> {
    fn validator() -> Validator {
        v::record(v::string(), V::validator())
    }
}

impl<V: Validated, S> Validated for HashMap<String, V, S> {
    fn validator() -> Validator {
        v::record(v::string(), V::validator())
    }
}

macro_rules! validated_pointer {
    ($($ty:ident),*) => {$(
        impl<T: Validated + ?Sized> Validated for $ty<T> {
            fn validator() -> Validator {
                T::validator()
            }

            fn field_validator() -> Validator {
                T::field_validator()
            }
        }
    )*};
}

validated_pointer!(Box, Rc, Arc);

impl<T: Validated + ?Sized> Validated for &T {
    fn validator() -> Validator {
        T::validator()
    }

    fn field_validator() -> Validator {
        T::field_validator()
    }
}

macro_rules! validated_tuple {
    ($($name:ident),+) => {
        /// An array whose items are any of the tuple's types: Convex has
        /// no tuples.
        impl<$($name: Validated),+> Validated for ($($name,)+) {
            fn validator() -> Validator {
                v::array(v::union([$($name::validator()),+]))
            }
        }
    };
}

validated_tuple!(A, B);
validated_tuple!(A, B, C);
validated_tuple!(A, B, C, D);
