/// Why a token was refused, or an auth config cannot be used. Messages
/// name the failed check and never contain the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The app's auth config names a provider that cannot be used; the
    /// reason names the provider and the problem.
    #[error("the auth config is invalid: {0}")]
    InvalidConfig(String),
    #[error("Token is too large: {size} bytes, at most {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("Could not parse the token as a JWT: {0}")]
    Malformed(String),
    #[error(
        "Token algorithm {0} is not accepted: tokens must be signed with RS256, ES256 or EdDSA"
    )]
    AlgorithmNotAllowed(String),
    #[error(
        "No auth provider found matching the given token (issuer {issuer:?}, audience {audience:?}): check the providers in your auth config"
    )]
    NoAuthProvider { issuer: String, audience: String },
    #[error("Token algorithm {found} does not match the {expected} configured for issuer {issuer}")]
    AlgorithmMismatch {
        found: String,
        expected: String,
        issuer: String,
    },
    #[error("Token has no 'kid' header, which custom JWT providers require")]
    MissingKid,
    #[error(
        "No key in the JWKS of {issuer} matches the token (kid {kid:?}, algorithm {algorithm})"
    )]
    NoMatchingKey {
        issuer: String,
        kid: Option<String>,
        algorithm: String,
    },
    #[error("Several keys in the JWKS of {issuer} match the token and it names none (no 'kid')")]
    AmbiguousKey { issuer: String },
    #[error("Could not fetch the keys of {issuer}: {reason}")]
    KeysUnavailable { issuer: String, reason: String },
    #[error("Token signature is invalid")]
    InvalidSignature,
    #[error("Token expired {seconds} seconds ago")]
    Expired { seconds: u64 },
    #[error("Token is not valid yet (nbf is {seconds} seconds from now)")]
    NotYetValid { seconds: u64 },
    #[error("Token was issued in the future (iat is {seconds} seconds from now)")]
    IssuedInFuture { seconds: u64 },
    #[error("Token is missing the required claim {0:?}")]
    MissingClaim(&'static str),
    #[error("Token claim {claim:?} is invalid: {reason}")]
    InvalidClaim { claim: &'static str, reason: String },
}
