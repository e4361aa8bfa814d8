import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

extension Benchmark {
    /// Requests of each S7 kind measured (after one unmeasured warm-up).
    static let readerAPIRepeats = 20

    /// S7: the Google Reader API on the corpus, as NetNewsWire and Reeder use it: one reader
    /// (an app password made with `users app-password`) asks `stream/items/ids` for up to
    /// 10,000 ids of the reading list (and of its unread items, `xt=read`), then
    /// `stream/items/contents` for 150 items at a time (NetNewsWire's chunk), through HTTP with
    /// gzip. Figures: p50/p99 latency of each, ids per answer, bytes per content request.
    static func readerAPI(options: BenchmarkOptions, server: BenchServer, client: HTTPClient,
                         into report: inout BenchmarkReport, log: @Sendable (String) -> Void) async throws {
        log("S7: Google Reader API, stream/items/ids (10,000) and stream/items/contents (150)")
        _ = try await createUser("greader", client: client, server: server)
        let password = try appPassword(user: "greader", options: options, server: server)
        let base = server.url + "/api/greader.php"
        let login = try await send(client, .POST, base + "/accounts/ClientLogin", auth: nil,
                                   form: "Email=greader&Passwd=\(password)")
        guard let auth = String(buffer: login).split(separator: "\n").first(where: { $0.hasPrefix("Auth=") })?.dropFirst(5) else {
            throw SimulationError("S7: ClientLogin answered no Auth line")
        }
        let session = String(auth)
        let token = String(buffer: try await send(client, .GET, base + "/reader/api/0/token", auth: session))

        struct ItemRefs: Decodable {
            struct Ref: Decodable { var id: String }
            var itemRefs: [Ref]
        }
        func ids(_ query: String) async throws -> (milliseconds: [Double], ids: [String]) {
            var times: [Double] = []
            var last: [String] = []
            for round in 0...readerAPIRepeats {
                let start = ContinuousClock.now
                let body = try await send(client, .GET, base + "/reader/api/0/stream/items/ids?output=json&n=10000&s=user/-/state/com.google/reading-list" + query, auth: session)
                let refs = try JSONDecoder().decode(ItemRefs.self, from: Data(body.readableBytesView))
                if round > 0 { times.append(seconds(ContinuousClock.now - start) * 1000) }
                last = refs.itemRefs.map(\.id)
            }
            return (times, last)
        }
        let all = try await ids("")
        report.figures["S7.idsP50Milliseconds"] = percentile(all.milliseconds, 0.5)
        report.figures["S7.idsP99Milliseconds"] = percentile(all.milliseconds, 0.99)
        report.figures["S7.idsPerAnswer"] = Double(all.ids.count)
        let unread = try await ids("&xt=user/-/state/com.google/read")
        report.figures["S7.unreadIdsP50Milliseconds"] = percentile(unread.milliseconds, 0.5)
        report.figures["S7.unreadIdsP99Milliseconds"] = percentile(unread.milliseconds, 0.99)

        var times: [Double] = []
        var bytes = 0
        for round in 0...readerAPIRepeats {
            let chunk = all.ids.dropFirst((round * 150) % max(all.ids.count - 150, 1)).prefix(150)
            let form = "T=\(token)&output=json&" + chunk.map { "i=\($0)" }.joined(separator: "&")
            let start = ContinuousClock.now
            let body = try await send(client, .POST, base + "/reader/api/0/stream/items/contents", auth: session, form: form)
            _ = try JSONSerialization.jsonObject(with: Data(body.readableBytesView))
            if round > 0 {
                times.append(seconds(ContinuousClock.now - start) * 1000)
                bytes += body.readableBytes
            }
        }
        report.figures["S7.contents150P50Milliseconds"] = percentile(times, 0.5)
        report.figures["S7.contents150P99Milliseconds"] = percentile(times, 0.99)
        report.figures["S7.contents150Bytes"] = Double(bytes / readerAPIRepeats)
    }

    /// A new app password for `user`, made as an operator would (`reader-sync users app-password`).
    private static func appPassword(user: String, options: BenchmarkOptions, server: BenchServer) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: options.serverExecutable)
        process.arguments = ["users", "app-password", user, "--label", "bench"]
        process.environment = ProcessInfo.processInfo.environment.merging(["READER_SYNC_DB": server.database]) { $1 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw SimulationError("S7: users app-password exited \(process.terminationStatus)") }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// One Reader API request; the answer's body (gunzipped), or a failure for a status other than 200.
    private static func send(_ client: HTTPClient, _ method: HTTPMethod, _ url: String, auth: String?, form: String? = nil) async throws -> ByteBuffer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let auth { request.headers.add(name: "Authorization", value: "GoogleLogin auth=\(auth)") }
        if let form {
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: form))
        }
        let response = try await client.execute(request, timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 256 << 20)
        guard response.status == .ok else { throw SimulationError("S7: \(method) \(url) answered \(response.status.code): \(String(buffer: body).prefix(200))") }
        return body
    }
}
