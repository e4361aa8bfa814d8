import ReaderSyncCore

/// How a device reaches a sync server: HTTP (``HTTPSyncTransport``) or in-process (the simulator's).
///
/// Implementations throw ``ReaderSyncError`` with `serverError` set when the server answered with
/// an error body (so `reset_required` can be recognised), and `transportFailed` when no answer came.
public protocol SyncTransport: Sendable {
    /// `GET /v1/sync/pull`.
    func pull(cursor: String?, limit: Int) async throws -> Transported<PullResponse>
    /// `POST /v1/sync/push`.
    func push(_ request: PushRequest) async throws -> Transported<PushResponse>
}

/// A response with the bytes it cost on the wire.
public struct Transported<Value: Sendable>: Sendable {
    public var value: Value
    public var bytesSent: Int
    public var bytesReceived: Int

    public init(value: Value, bytesSent: Int, bytesReceived: Int) {
        self.value = value
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
    }
}
