import Crypto
import Foundation

/// Bearer tokens: 256 random bits, shown once, stored only as their SHA-256 hash.
package enum Tokens {
    /// A new token, `rs_` followed by 64 hex digits.
    package static func generate() -> String {
        var rng = SystemRandomNumberGenerator()
        return "rs_" + (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
    }

    /// The token of an `Authorization: Bearer <token>` header value, spaces around it trimmed;
    /// `nil` when the value is absent or not of that scheme. An empty token comes back empty.
    package static func bearer(_ authorization: String?) -> String? {
        guard let authorization, authorization.hasPrefix("Bearer ") else { return nil }
        return authorization.dropFirst("Bearer ".count).trimmingCharacters(in: .whitespaces)
    }

    package static func hash(_ token: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(token.utf8)))
    }

    /// Whether `token` is the secret whose hash is `expectedHash`, in time that does not depend on
    /// where they differ: hashing first makes the lengths equal, then every byte is compared.
    /// The metrics token is checked with this; the admin token's hash goes through the same
    /// `constantTimeEqual` in `SyncService.authenticate`.
    package static func matches(_ token: String, hash expectedHash: [UInt8]) -> Bool {
        CursorCodec.constantTimeEqual(hash(token), expectedHash)
    }
}
