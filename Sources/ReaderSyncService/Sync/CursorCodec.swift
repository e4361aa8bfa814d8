import Crypto
import Foundation
import ReaderSyncCore

/// Encodes and checks pull cursors: opaque, versioned, and signed with the server's secret.
///
/// A cursor is `base64url(payload) "." base64url(HMAC-SHA256(payload)[0..<16])`, the payload
/// being `1:<epoch>:<seq>` for a position on a store ordered by sequence alone (SQLite), or
/// `2:<epoch>:<transaction>:<seq>` for one ordered by transaction then sequence (PostgreSQL,
/// see ``FeedPosition``). Both versions are accepted by every server, so cursors handed out
/// before version 2 existed stay valid. A cursor of another epoch cannot be verified (the database it was
/// signed by is gone or replaced) and gets `reset_required`; one of this epoch whose signature
/// fails, or that does not parse, gets `invalid_cursor`.
package struct CursorCodec: Sendable {
    private let secret: [UInt8]
    private let epoch: String

    package init(secret: [UInt8], epoch: String) {
        self.secret = secret
        self.epoch = epoch
    }

    package func encode(_ position: FeedPosition) -> String {
        let text = position.transaction == 0
            ? "1:\(epoch):\(position.seq)" : "2:\(epoch):\(position.transaction):\(position.seq)"
        let payload = Array(text.utf8)
        return Self.base64url(payload) + "." + Self.base64url(mac(payload))
    }

    /// The feed position a cursor stands for.
    ///
    /// - Throws: ``SyncError`` `invalid_cursor` or `reset_required`.
    package func decode(_ cursor: String) throws(SyncError) -> FeedPosition {
        let invalid = SyncError(.invalidCursor, "the cursor is not one this server issued; start from the beginning or use the last cursor you received")
        let parts = cursor.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let payload = Self.unbase64url(parts[0]), let signature = Self.unbase64url(parts[1]),
              let text = String(validating: payload, as: UTF8.self)
        else { throw invalid }
        let fields = text.split(separator: ":", omittingEmptySubsequences: false)
        let position: FeedPosition
        switch (fields.first, fields.count) {
        case ("1", 3):
            guard let seq = Int64(fields[2]), seq >= 0 else { throw invalid }
            position = FeedPosition(seq: seq)
        case ("2", 4):
            guard let transaction = UInt64(fields[2]), transaction > 0, let seq = Int64(fields[3]), seq >= 0 else { throw invalid }
            position = FeedPosition(transaction: transaction, seq: seq)
        default:
            throw invalid
        }
        guard fields[1] == epoch else {
            throw SyncError(.resetRequired, "the server's database was reset or restored since this cursor was issued; drop local data and pull from the beginning")
        }
        guard signature.count == 16, Self.constantTimeEqual(signature, mac(payload)) else { throw invalid }
        return position
    }

    private func mac(_ payload: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: payload, using: SymmetricKey(data: secret))).prefix(16).map { $0 }
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }

    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func unbase64url(_ text: Substring) -> [UInt8]? {
        guard text.count <= 512, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
        else { return nil }
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).map(Array.init)
    }
}
