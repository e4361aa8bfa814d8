import Foundation
import HummingbirdTesting
import Logging
import NIOCore
import ReaderSyncClient
import ReaderSyncCore
import Testing
@testable import ReaderSyncServer

@Suite("HTTP transport against a real server on a loopback port")
struct HTTPSyncTransportTests {
    @Test("a device syncs over HTTP; a bad token is server_refused with the server's code; no server is transport_failed")
    func overHTTP() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(30)
        let token = try await h.createUser("alice")
        try await h.withHTTPServer { url in
            let path = h.directory.appendingPathComponent("http-device.sqlite").path
            let store = try ReaderStore(path: path, deviceId: "http-device")
            try store.setBookmarked("art-3", true)
            let engine = SyncEngine(store: store, transport: HTTPSyncTransport(baseURL: url + "/", token: token), pageSize: 7)
            let report = try await engine.sync()
            #expect(report.pulledArticles == 30 && report.pages == 5 && report.acknowledged == 1)
            #expect(report.bytesReceived > 0 && report.bytesSent > 0)
            #expect(try store.articleCount() == 30 && store.pendingChangeCount() == 0)
            #expect(try await h.serverState(user: "alice", article: "art-3")?.isBookmarked == true)

            let stranger = HTTPSyncTransport(baseURL: url, token: "rs_not-a-token")
            do {
                _ = try await stranger.pull(cursor: nil, limit: 10)
                Issue.record("a bad token was accepted")
            } catch let error as ReaderSyncError {
                #expect(error.code == .serverRefused)
                #expect(error.serverError?.code == .unauthorized)
            }
        }
        // Nothing listens on port 9 of the loopback interface: refused at once, or given up at the deadline.
        let nowhere = HTTPSyncTransport(baseURL: "http://127.0.0.1:9", token: token, timeout: .seconds(1))
        do {
            _ = try await nowhere.pull(cursor: nil, limit: 10)
            Issue.record("a pull without a server succeeded")
        } catch let error as ReaderSyncError {
            #expect(error.code == .transportFailed)
        }
    }
}
