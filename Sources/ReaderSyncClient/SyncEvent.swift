import ReaderSyncCore

/// What a server's live stream (`GET /v1/sync/events`) tells a device.
public enum SyncEvent: Sendable, Hashable {
    /// Something after the device's cursor can be pulled now.
    case changes(ChangesEvent)
    /// The cursor is of another epoch: the device resets (as on `410 reset_required`); the
    /// server ends the stream after it.
    case reset(ResetEvent)
    /// Nothing happened; the server sends one every `--events-heartbeat` seconds (default 20).
    case heartbeat
}

/// Reads the `text/event-stream` format (WHATWG HTML, "Server-sent events", §9.2.6): lines end
/// with LF, CRLF or CR; `event:` names the event, `data:` lines are joined with LF, a blank
/// line dispatches it; a line starting with `:` is a comment (our heartbeat); `retry:` gives
/// the reconnection delay in milliseconds. A single space after the colon is not part of the value.
///
/// ```swift
/// var parser = ServerSentEventParser()
/// for event in parser.feed(bytes) { … }
/// ```
package struct ServerSentEventParser: Sendable {
    /// One dispatched event: its type (`message` when none was named) and data.
    package struct Event: Sendable, Hashable {
        package var type: String
        package var data: String
    }

    /// The last `retry:` value, in milliseconds.
    package private(set) var retryMillis: Int?
    /// Comment lines seen (heartbeats).
    package private(set) var comments = 0
    private var line: [UInt8] = []
    private var lastWasCR = false
    private var type = ""
    private var data: [String] = []

    /// Longest line kept, in bytes (1 MiB): a longer one is cut, so a broken server cannot make
    /// a device hold unbounded memory.
    package static let maxLineBytes = 1 << 20

    package init() {}

    /// Takes the next bytes of the stream; returns the events and comments they complete, in order.
    package mutating func feed(_ bytes: some Sequence<UInt8>) -> [Item] {
        var items: [Item] = []
        for byte in bytes {
            if lastWasCR {
                lastWasCR = false
                if byte == 0x0A { continue }
            }
            switch byte {
            case 0x0A, 0x0D:
                lastWasCR = byte == 0x0D
                if let item = endLine() { items.append(item) }
            default:
                if line.count < Self.maxLineBytes { line.append(byte) }
            }
        }
        return items
    }

    /// What a completed line or blank line gives.
    package enum Item: Sendable, Hashable {
        case event(Event)
        case comment(String)
    }

    private mutating func endLine() -> Item? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            defer {
                type = ""
                data = []
            }
            guard !data.isEmpty else { return nil }
            return .event(Event(type: type.isEmpty ? "message" : type, data: data.joined(separator: "\n")))
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let colon = text.firstIndex(of: ":") else {
            field(text, "")
            return nil
        }
        if colon == text.startIndex {
            comments += 1
            return .comment(String(text.dropFirst()).trimmingPrefixSpace())
        }
        var value = text[text.index(after: colon)...]
        if value.first == " " { value = value.dropFirst() }
        field(String(text[..<colon]), String(value))
        return nil
    }

    private mutating func field(_ name: String, _ value: String) {
        switch name {
        case "event": type = value
        case "data": data.append(value)
        case "retry": if let millis = Int(value), millis >= 0 { retryMillis = millis }
        default: break // `id` and unknown fields: not used by this protocol
        }
    }
}

private extension String {
    func trimmingPrefixSpace() -> String { first == " " ? String(dropFirst()) : self }
}
