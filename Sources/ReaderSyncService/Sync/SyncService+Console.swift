import Crypto
import Foundation
import ReaderSyncCore

/// A support console session (docs/SUPPORT.md, "The console"): what its cookie holds.
package struct ConsoleSession: Sendable, Hashable {
    /// `<expiry, Unix seconds>.<HMAC-SHA256, hex>`: no token, nothing secret, meaningless once
    /// the admin token changes.
    package var value: String
    package var expiresAt: Date
}

extension SyncService {
    /// How long a console session lasts from its login: a working day of support.
    package static let consoleSessionLifetime: TimeInterval = 8 * 3600

    /// Exchanges the admin token, typed into the console's login form, for a session.
    ///
    /// The session is signed, not stored: every server on the database accepts it (stateless
    /// servers behind one balancer), it expires after ``consoleSessionLifetime``, and the signature
    /// covers the admin token's hash, so giving the server a new admin token ends every session.
    ///
    /// - Throws: ``SyncError`` `unauthorized` for an unknown token, and `forbidden` for a user's
    ///   token (a user token never opens the console).
    package func openConsoleSession(token: String) async throws -> ConsoleSession {
        let trimmed = token.trimmingCharacters(in: .whitespacesAndNewlines)
        switch try await authenticate(authorization: "Bearer " + trimmed) {
        case .user:
            throw SyncError(.forbidden, "this is a reader's token; the console needs the admin token")
        case .admin:
            // Signed under the hash of the token just checked, not one read again (which a change
            // of admin token in between would make the new one's).
            let adminHash = Tokens.hash(trimmed)
            let expiresAt = Date(timeIntervalSince1970: (now().timeIntervalSince1970 + Self.consoleSessionLifetime).rounded(.down))
            let expiry = Int64(expiresAt.timeIntervalSince1970)
            return ConsoleSession(value: "\(expiry)." + consoleSignature(expiry: expiry, adminHash: adminHash), expiresAt: expiresAt)
        }
    }

    /// Whether `value` (a console cookie) is a session this database issued that has not expired
    /// and was signed under the current admin token.
    package func isConsoleSession(_ value: String?) async throws -> Bool {
        guard let value, value.utf8.count <= 128 else { return false }
        let parts = value.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let expiry = Int64(parts[0]), Double(expiry) > now().timeIntervalSince1970,
              let adminHash = try await store.adminTokenHash()
        else { return false }
        return CursorCodec.constantTimeEqual(Array(parts[1].utf8), Array(consoleSignature(expiry: expiry, adminHash: adminHash).utf8))
    }

    /// The HMAC of the expiry and admin token hash, under the database's signing key (the one
    /// that signs Reader API tokens; the `console/` prefix keeps the two kinds apart).
    private func consoleSignature(expiry: Int64, adminHash: [UInt8]) -> String {
        let message = Array("console/\(expiry)/".utf8) + adminHash
        return Hex.string(Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: readerKey))))
    }

    // MARK: Reads for the console

    /// Devices of one user, most recently seen first.
    ///
    /// - Throws: ``SyncError`` `not_found` when no user has this name.
    package func devices(userName name: String) async throws -> [DeviceSummary] {
        return try await store.devices(userNames: [user(named: name).name])
    }

    /// Devices of the users named (unknown names have none), by user name, most recently seen first.
    package func devices(userNames: [String]) async throws -> [DeviceSummary] {
        try await store.devices(userNames: userNames)
    }

    /// The user's most recently changed article states, newest first, with titles.
    ///
    /// - Throws: ``SyncError`` `limit_out_of_range` for a limit outside 1…1000.
    package func recentStates(userId: Int64, limit: Int) async throws -> [RecentState] {
        guard (1...1000).contains(limit) else {
            throw SyncError(.limitOutOfRange, "limit must be from 1 to 1000, got \(limit)")
        }
        return try await store.recentStates(userId: userId, limit: limit)
    }
}
