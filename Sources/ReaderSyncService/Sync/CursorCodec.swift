import Crypto
import Foundation
import ReaderSyncCore

/// Encodes and checks pull cursors: opaque, versioned, and signed with the server's secret.
///
/// A cursor is `base64url(payload) "." base64url(HMAC-SHA256(payload)[0..<16])`, the payload
/// being `1:<epoch>:<seq>` for a position on a store ordered by sequence alone (SQLite), or
/// `2:<epoch>:<transaction>:<seq>` for one ordered by transaction then sequence (PostgreSQL,
/// see ``FeedPosition``). Both versions are accepted by every server, so cursors handed out
/// before version 2 existed stay valid. Version 3 is a first sync under way (``SnapshotCursor``):
/// `3:<epoch>:<transaction>:<seq>:<horizon seen>:<remaining|->:<since ms|->:a:<publishedAt>:<id>`
/// (text fields base64url, empty before the first article) or `…:s:<transaction>:<seq>`.
/// Versions 1 and 2 may end with `:<horizon seen>`: the tombstone horizon (``FeedPosition``'s
/// text) as the server stood when it handed the cursor out, so that only a compaction since then
/// can make it expire (``SyncService/pull(user:cursor:limit:)``); left out, it is the start. A cursor of another epoch cannot be verified (the database it was
/// signed by is gone or replaced) and gets `reset_required`; one of this epoch whose signature
/// fails, or that does not parse, gets `invalid_cursor`.
package struct CursorCodec: Sendable {
    private let secret: [UInt8]
    private let epoch: String

    package init(secret: [UInt8], epoch: String) {
        self.secret = secret
        self.epoch = epoch
    }

    package func encode(_ position: FeedPosition, horizonSeen: FeedPosition = .start) -> String {
        var text = position.transaction == 0
            ? "1:\(epoch):\(position.seq)" : "2:\(epoch):\(position.transaction):\(position.seq)"
        if horizonSeen != .start { text += ":\(horizonSeen)" }
        let payload = Array(text.utf8)
        return Self.base64url(payload) + "." + Self.base64url(mac(payload))
    }

    /// A first sync's cursor (version 3).
    package func encode(_ snapshot: SnapshotCursor) -> String {
        var fields = ["3", epoch, String(snapshot.head.transaction), String(snapshot.head.seq), snapshot.horizonSeen.description,
                      snapshot.remaining.map(String.init) ?? "-", snapshot.publishedSinceMillis.map(String.init) ?? "-"]
        switch snapshot.phase {
        case .articles(let key):
            fields += ["a", key.map { Self.base64url(Array($0.publishedAt.utf8)) } ?? "", key.map { Self.base64url(Array($0.id.utf8)) } ?? ""]
        case .states(let after):
            fields += ["s", String(after.transaction), String(after.seq)]
        }
        let payload = Array(fields.joined(separator: ":").utf8)
        return Self.base64url(payload) + "." + Self.base64url(mac(payload))
    }

    /// What a pull's cursor stands for: a feed position, or a first sync under way.
    package enum Decoded: Sendable, Hashable {
        /// A feed position, and the tombstone horizon when it was handed out.
        case feed(FeedPosition, horizonSeen: FeedPosition)
        case snapshot(SnapshotCursor)

        /// The feed position: a first sync's is the one it began at.
        package var position: FeedPosition {
            switch self {
            case .feed(let position, _): position
            case .snapshot(let snapshot): snapshot.head
            }
        }
    }

    /// The feed position a cursor stands for (a first sync's: where it began).
    ///
    /// - Throws: ``SyncError`` `invalid_cursor` or `reset_required`.
    package func decode(_ cursor: String) throws(SyncError) -> FeedPosition {
        try decodeAny(cursor).position
    }

    /// What a cursor stands for.
    ///
    /// - Throws: ``SyncError`` `invalid_cursor` or `reset_required`.
    package func decodeAny(_ cursor: String) throws(SyncError) -> Decoded {
        let invalid = SyncError(.invalidCursor, "the cursor is not one this server issued; start from the beginning or use the last cursor you received")
        let parts = cursor.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let payload = Self.unbase64url(parts[0]), let signature = Self.unbase64url(parts[1]),
              let text = String(validating: payload, as: UTF8.self)
        else { throw invalid }
        let fields = text.split(separator: ":", omittingEmptySubsequences: false)
        let decoded: Decoded
        /// The optional last field of versions 1 and 2.
        func horizonSeen(_ index: Int) throws(SyncError) -> FeedPosition {
            guard index < fields.count else { return .start }
            guard let seen = FeedPosition(String(fields[index])) else { throw invalid }
            return seen
        }
        switch (fields.first, fields.count) {
        case ("1", 3), ("1", 4):
            guard let seq = Int64(fields[2]), seq >= 0 else { throw invalid }
            decoded = .feed(FeedPosition(seq: seq), horizonSeen: try horizonSeen(3))
        case ("2", 4), ("2", 5):
            guard let transaction = UInt64(fields[2]), transaction > 0, let seq = Int64(fields[3]), seq >= 0 else { throw invalid }
            decoded = .feed(FeedPosition(transaction: transaction, seq: seq), horizonSeen: try horizonSeen(4))
        case ("3", 10):
            guard let snapshot = Self.snapshot(fields) else { throw invalid }
            decoded = .snapshot(snapshot)
        default:
            throw invalid
        }
        guard fields[1] == epoch else {
            throw SyncError(.resetRequired, "the server's database was reset or restored since this cursor was issued; drop local data and pull from the beginning")
        }
        guard signature.count == 16, Self.constantTimeEqual(signature, mac(payload)) else { throw invalid }
        return decoded
    }

    /// The fields of a version 3 payload, or `nil` when one does not parse.
    private static func snapshot(_ fields: [Substring]) -> SnapshotCursor? {
        guard let transaction = UInt64(fields[2]), let seq = Int64(fields[3]), seq >= 0,
              let seen = FeedPosition(String(fields[4])) else { return nil }
        let remaining = fields[5] == "-" ? Int?.none : Int(fields[5])
        let since = fields[6] == "-" ? Int64?.none : Int64(fields[6])
        guard fields[5] == "-" || (remaining ?? -1) >= 0, fields[6] == "-" || since != nil else { return nil }
        let phase: SnapshotCursor.Phase
        switch fields[7] {
        case "a" where fields[8].isEmpty && fields[9].isEmpty:
            phase = .articles(after: nil)
        case "a":
            guard let published = unbase64url(fields[8]).flatMap({ String(validating: $0, as: UTF8.self) }),
                  let id = unbase64url(fields[9]).flatMap({ String(validating: $0, as: UTF8.self) }) else { return nil }
            phase = .articles(after: PublicationKey(publishedAt: published, id: id))
        case "s":
            guard let afterTransaction = UInt64(fields[8]), let afterSeq = Int64(fields[9]), afterSeq >= 0 else { return nil }
            phase = .states(after: FeedPosition(transaction: afterTransaction, seq: afterSeq))
        default:
            return nil
        }
        return SnapshotCursor(head: FeedPosition(transaction: transaction, seq: seq), horizonSeen: seen, remaining: remaining,
                              publishedSinceMillis: since, phase: phase)
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
        guard text.count <= 4096, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
        else { return nil }
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).map(Array.init)
    }
}
