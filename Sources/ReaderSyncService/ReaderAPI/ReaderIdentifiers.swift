import ReaderSyncCore

/// A stream of the Google Reader API: a state of the user's, a section as a subscription
/// (`feed/<n>`) or as a label (`user/-/label/<name>`). Spellings follow Google Reader as
/// FreshRSS and Miniflux serve it (docs/GOOGLE-READER-API.md).
package enum ReaderStream: Sendable, Hashable {
    /// `user/-/state/com.google/reading-list`: every item.
    case readingList
    /// `user/-/state/com.google/read`.
    case read
    /// `user/-/state/com.google/kept-unread`: every unread item.
    case keptUnread
    /// `user/-/state/com.google/starred`: bookmarked items.
    case starred
    /// `feed/<n>`: the section numbered n.
    case feed(Int64)
    /// `user/-/label/<name>`: the section of that name.
    case label(String)

    package static let statePrefix = "user/-/state/com.google/"
    package static let labelPrefix = "user/-/label/"

    /// Parses a stream id. The user part may be `-` or any user's number, as Google Reader
    /// wrote it; it always means the authenticated user.
    ///
    /// - Throws: ``SyncError`` `invalid_request` for anything else.
    package init(parsing text: String) throws(SyncError) {
        // Reeder sends `feed/feed/<n>` (FreshRSS issue 3031): the prefix once or more.
        var feed = text[...]
        while feed.hasPrefix("feed/feed/") { feed = feed.dropFirst(5) }
        if feed.hasPrefix("feed/"), let number = Int64(feed.dropFirst(5)), number > 0 {
            self = .feed(number)
            return
        }
        let parts = text.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        if parts.count == 3, parts[0] == "user", Self.isUserPart(parts[1]) {
            let rest = parts[2]
            // An empty name is a label too: the section of articles ingested without one.
            if rest.hasPrefix("label/") {
                self = .label(String(rest.dropFirst("label/".count)))
                return
            }
            switch rest {
            case "state/com.google/reading-list": self = .readingList; return
            case "state/com.google/read": self = .read; return
            case "state/com.google/kept-unread": self = .keptUnread; return
            case "state/com.google/starred": self = .starred; return
            default: break
            }
        }
        throw SyncError(.invalidRequest, "unknown stream '\(text)': use user/-/state/com.google/reading-list, …/read, "
            + "…/kept-unread, …/starred, feed/<number> or user/-/label/<name>")
    }

    /// Whether `part` is the user part of a stream or tag id: `-` or a user's number (ASCII digits).
    static func isUserPart(_ part: Substring) -> Bool {
        part == "-" || (!part.isEmpty && part.allSatisfy { $0.isASCII && $0.isNumber })
    }

    /// The stream's id as sent to clients.
    package var id: String {
        switch self {
        case .readingList: return Self.statePrefix + "reading-list"
        case .read: return Self.statePrefix + "read"
        case .keptUnread: return Self.statePrefix + "kept-unread"
        case .starred: return Self.statePrefix + "starred"
        case .feed(let number): return "feed/\(number)"
        case .label(let name): return Self.labelPrefix + name
        }
    }
}

/// Item ids of the Google Reader API: an article's item number in the long form
/// `tag:google.com,2005:reader/item/<16 lower-case hex digits>` or the short decimal form.
package enum ReaderItemId {
    package static let longPrefix = "tag:google.com,2005:reader/item/"

    /// The long form of `number`.
    package static func long(_ number: Int64) -> String {
        let hex = String(UInt64(bitPattern: number), radix: 16)
        return longPrefix + String(repeating: "0", count: max(0, 16 - hex.count)) + hex
    }

    /// Parses the long form (its hex also unpadded), a bare 16-digit hex number (Reeder's
    /// shortening of the long form), or the short decimal form. Item numbers stay far below 10^15, so 16 characters
    /// that are all hex digits are always read as hex.
    ///
    /// - Throws: ``SyncError`` `invalid_request` for anything else, or a number that is not positive.
    package static func parse(_ text: String) throws(SyncError) -> Int64 {
        let number: Int64?
        if text.hasPrefix(longPrefix) {
            let hex = text.dropFirst(longPrefix.count)
            // Unpadded too: NetNewsWire before 7.1.3 sent the hex without its leading zeros.
            number = (1...16).contains(hex.count) && hex.allSatisfy(\.isASCII) ? UInt64(hex, radix: 16).map { Int64(bitPattern: $0) } : nil
        } else if text.count == 16, text.allSatisfy({ $0.isASCII && $0.isHexDigit }) {
            number = UInt64(text, radix: 16).map { Int64(bitPattern: $0) }
        } else if !text.isEmpty, text.count <= 19, text.allSatisfy({ $0.isASCII && $0.isNumber }) {
            number = Int64(text)
        } else {
            number = nil
        }
        guard let number, number > 0 else {
            throw SyncError(.invalidRequest, "'\(text)' is not an item id: send \(longPrefix)<16 hex digits>, "
                + "16 hex digits, or the decimal number")
        }
        return number
    }
}

/// Times the Google Reader API is sent (`ts`, `ot`, `nt`), in µs since 1970.
package enum ReaderTime {
    /// Reads a time in seconds, milliseconds, microseconds or nanoseconds since 1970, told apart
    /// by digit count (up to 11, 14, 17 and 19 digits: clients send each of these).
    ///
    /// - Throws: ``SyncError`` `invalid_request` for anything but 1 to 19 decimal digits.
    package static func micros(parsing text: String, name: String) throws(SyncError) -> Int64 {
        guard !text.isEmpty, text.count <= 19, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int64(text) else {
            throw SyncError(.invalidRequest, "\(name) must be a time since 1970 in seconds, milliseconds, microseconds or "
                + "nanoseconds (1 to 19 digits), got '\(text)'")
        }
        switch text.count {
        case ...11: return value * 1_000_000
        case ...14: return value * 1_000
        case ...17: return value
        default: return value / 1_000
        }
    }
}

/// The `continuation` of a Reader API stream page: where the next page starts, opaque to clients.
package enum ReaderContinuation {
    /// The continuation after `position`.
    package static func encode(_ position: ItemPosition) -> String {
        "\(position.arrivedAt)i\(position.itemId)"
    }

    /// - Throws: ``SyncError`` `invalid_request` for text ``encode(_:)`` did not make.
    package static func decode(_ text: String) throws(SyncError) -> ItemPosition {
        let parts = text.split(separator: "i", omittingEmptySubsequences: false)
        guard parts.count == 2, let arrivedAt = Int64(parts[0]), let itemId = Int64(parts[1]), arrivedAt >= 0, itemId > 0 else {
            throw SyncError(.invalidRequest, "c is not a continuation this server gave out: '\(text)'")
        }
        return ItemPosition(arrivedAt: arrivedAt, itemId: itemId)
    }
}
