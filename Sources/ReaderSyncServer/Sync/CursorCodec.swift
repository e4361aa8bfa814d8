import Crypto
import Foundation
import ReaderSyncCore

/// Encodes and checks pull cursors: opaque, versioned, and signed with the server's secret.
///
/// A cursor is `base64url(payload) "." base64url(HMAC-SHA256(payload)[0..<16])`, the payload
/// being `1:<epoch>:<seq>`. A cursor of another epoch cannot be verified (the database it was
/// signed by is gone or replaced) and gets `reset_required`; one of this epoch whose signature
/// fails, or that does not parse, gets `invalid_cursor`.
package struct CursorCodec: Sendable {
    private let secret: [UInt8]
    private let epoch: String

    package init(secret: [UInt8], epoch: String) {
        self.secret = secret
        self.epoch = epoch
    }

    package func encode(seq: Int64) -> String {
        let payload = Array("1:\(epoch):\(seq)".utf8)
        return Self.base64url(payload) + "." + Self.base64url(mac(payload))
    }

    /// The sequence value a cursor stands for.
    ///
    /// - Throws: ``SyncError`` `invalid_cursor` or `reset_required`.
    package func decode(_ cursor: String) throws(SyncError) -> Int64 {
        let invalid = SyncError(.invalidCursor, "the cursor is not one this server issued; start from the beginning or use the last cursor you received")
        let parts = cursor.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let payload = Self.unbase64url(parts[0]), let signature = Self.unbase64url(parts[1]),
              let text = String(validating: payload, as: UTF8.self)
        else { throw invalid }
        let fields = text.split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count == 3, fields[0] == "1", let seq = Int64(fields[2]), seq >= 0 else { throw invalid }
        guard fields[1] == epoch else {
            throw SyncError(.resetRequired, "the server's database was reset or restored since this cursor was issued; drop local data and pull from the beginning")
        }
        guard signature.count == 16, Self.constantTimeEqual(signature, mac(payload)) else { throw invalid }
        return seq
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
