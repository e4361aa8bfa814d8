import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ReaderSyncCore
import Testing

extension ProcessTests {
    /// The support console in a real browser: Debian's Chromium, headless, driven through
    /// chromedriver's W3C WebDriver API, against `reader-sync serve` as a process.
    @Suite("The support console in headless Chromium", .serialized)
    struct ConsoleBrowserTests {
        static let admin = "console-admin-token-0123456789"
        static let title = "<script>alert(1)</script> Budget vote"
        static let wall: Int64 = 1_764_593_000_000  // 2025-12-01 12:43:20 UTC

        @Test("log in, find alice, open the article: both devices' writes in the timeline and the sentence; markup in a title stays text; wrong and user tokens refused")
        func supportWalkthrough() async throws {
            guard let driverPath = Tool.find("chromedriver"), let browser = ["chromium", "chromium-browser", "google-chrome"].lazy.compactMap(Tool.find).first else {
                Tool.skip("chromedriver and Chromium are not installed (Debian: apt-get install chromium chromium-driver)")
                return
            }
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("console.sqlite").path
            let aliceToken = try CLI.run(["users", "add", "alice", "--db", db]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            _ = try CLI.run(["users", "add", "bob", "--db", db])
            let file = dir.appendingPathComponent("a.jsonl")
            let lines = [
                ["id": "budget-vote", "title": Self.title, "publishedAt": "2025-12-01T08:00:00Z", "section": "Politics"],
                ["id": "weather", "title": "Rain all week", "publishedAt": "2025-12-01T07:00:00Z", "section": "World"],
            ].map { String(decoding: try! JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]), as: UTF8.self) }
            try lines.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
            #expect(try CLI.run(["ingest", file.path, "--db", db]).status == 0)

            let log = dir.appendingPathComponent("server.log")
            let server = try ServerProcess(arguments: ["--db", db, "--port", "0", "--admin-token", Self.admin, "--log-level", "trace"], stderr: log)
            defer { _ = server.stop() }
            let url = try server.baseURL()
            // The issue's story: the phone bookmarks; the laptop, having synced, removes it 5 s later;
            // and a read mark each, concurrently, so the read lane shows a lost write.
            try await Loopback.with(url) { http in
                func push(_ device: String, _ mutations: [Mutation]) async throws -> PushResponse {
                    let body = String(decoding: try JSONEncoder().encode(PushRequest(deviceId: device, mutations: mutations)), as: UTF8.self)
                    let answer = try await http.call(.POST, "/v1/sync/push", token: aliceToken, body: body)
                    #expect(answer.status == 200, "\(answer.body)")
                    return try JSONDecoder().decode(PushResponse.self, from: Data(answer.body.utf8))
                }
                let phone = try await push("phone", [
                    Mutation(id: 1, articleId: "budget-vote", field: .bookmarked, value: .bool(true), hlc: HLC(wall: Self.wall, counter: 0), baseVersion: 0),
                    Mutation(id: 2, articleId: "budget-vote", field: .read, value: .bool(true), hlc: HLC(wall: Self.wall, counter: 1), baseVersion: 0),
                ])
                let seen = try #require(phone.states.first?.version)
                _ = try await push("laptop", [
                    Mutation(id: 1, articleId: "budget-vote", field: .bookmarked, value: .bool(false), hlc: HLC(wall: Self.wall + 5_000, counter: 0), baseVersion: seen),
                    Mutation(id: 2, articleId: "weather", field: .progress, value: .number(0.4), hlc: HLC(wall: Self.wall + 6_000, counter: 0), baseVersion: 0),
                ])
                _ = try await push("tablet", [
                    Mutation(id: 1, articleId: "budget-vote", field: .read, value: .bool(false), hlc: HLC(wall: Self.wall - 60_000, counter: 0), baseVersion: 0),
                ])
            }

            let driver = try await ChromeDriver(executable: driverPath, directory: dir)
            defer { driver.stop() }
            try await WebDriver.with(driverURL: driver.url, browser: browser.path) { web in
                try await web.open(url + "/console/")
                #expect(try await web.currentURL() == url + "/console/login", "no session: the login form")

                // A wrong token and a reader's token are refused, and say so.
                for (token, message) in [("not-the-admin-token-at-all", "That token is not the admin token."),
                                         (aliceToken, "That is a reader's token. The console opens only with the admin token.")] {
                    try await web.type(token, into: "#token")
                    try await web.follow("#login")
                    #expect(try await web.text(of: "#error") == message)
                    #expect(try await web.cookies().isEmpty)
                }
                #expect(try await web.open(url + "/console/users").currentURL() == url + "/console/login")

                try await web.type(Self.admin, into: "#token")
                try await web.follow("#login")
                #expect(try await web.currentURL() == url + "/console/users")
                let cookie = try #require(try await web.cookies().first)
                #expect(cookie["name"] as? String == "reader_sync_console")
                #expect(cookie["httpOnly"] as? Bool == true && cookie["sameSite"] as? String == "Strict")

                try await web.type("ali", into: "#q")
                try await web.follow("#find")
                #expect(try await web.texts(of: "#users tbody tr td:first-child") == ["alice"])
                try await web.follow("#users a")
                #expect(try await web.text(of: "h1") == "alice")
                #expect(try await web.texts(of: "#devices td:first-child").sorted() == ["laptop", "phone", "tablet"])
                // Newest first: the laptop's position in weather (the tablet's read mark lost, changing nothing).
                #expect(try await web.texts(of: "#articles .id") == ["weather", "budget-vote"])
                try await web.follow("#articles a[href$='id=budget-vote']")

                // The article: its title as text, never run.
                #expect(try await web.text(of: "#title") == Self.title)
                #expect(try await web.alertText() == nil, "no script ran")
                let devices = try await web.attributes("data-device", of: "#timeline-bookmarked g.mark")
                #expect(devices == ["phone", "laptop"])
                #expect(try await web.texts(of: "#timeline-bookmarked text.device") == ["phone", "laptop", "value"])
                #expect(try await web.text(of: "#why-bookmarked") == "It is off because alice's laptop removed the bookmark at "
                    + "2025-12-01 12:43:25 UTC, after it had seen alice's phone's bookmark of 2025-12-01 12:43:20 UTC.")
                #expect(try await web.attributes("class", of: "#timeline-read g.mark") == ["mark applied", "mark lost"])
                let png = try await web.screenshot()
                #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "a PNG")
                if let path = ProcessInfo.processInfo.environment["READER_SYNC_CONSOLE_SCREENSHOT"] {
                    try Data(png).write(to: URL(fileURLWithPath: path))  // docs/console-timeline.png
                }

                // The conflict log, filtered by rule.
                try await web.open(url + "/console/conflicts")
                #expect(try await web.texts(of: "#conflicts td:nth-child(5)") == ["last_writer_wins"])
                try await web.click("#filter-rule option[value='add_wins']")
                try await web.follow("#filter")
                #expect(try await web.currentURL().hasSuffix("rule=add_wins"))
                #expect(try await web.count("#conflicts") == 0)

                try await web.follow("#logout")
                #expect(try await web.currentURL() == url + "/console/login")
                #expect(try await web.open(url + "/console/users").currentURL() == url + "/console/login")
            }
            #expect(server.stop() == 0)
            let text = try String(contentsOf: log, encoding: .utf8)
            #expect(text.contains("/console/login"), "the trace-level access log is on")
            #expect(!text.contains(Self.admin) && !text.contains(aliceToken), "no token in the log")
        }
    }
}

/// chromedriver as a process on a port of its own choosing.
final class ChromeDriver: @unchecked Sendable {
    // @unchecked: the Process is used from the test's task only.
    let process = Process()
    let url: String

    /// Starts chromedriver and waits until it says which port it listens on.
    init(executable: URL, directory: URL) async throws {
        // Its output goes to a file that is polled: chromedriver holds back what it writes to a pipe.
        let output = directory.appendingPathComponent("chromedriver.out")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        process.executableURL = executable
        process.arguments = ["--port=0"]
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = FileHandle.nullDevice
        let process = self.process
        try process.run()
        var port: Int?
        try await Tool.waitUntil("chromedriver listens") {
            // "ChromeDriver was started successfully on port 34857."
            let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
            port = text.split(separator: "\n").first { $0.contains("started successfully on port") }
                .flatMap { Int($0.split(separator: " ").last?.trimmingCharacters(in: CharacterSet(charactersIn: ".")) ?? "") }
            guard port != nil || process.isRunning else { throw CLIFailure("chromedriver ended: \(text)") }
            return port != nil
        }
        url = "http://127.0.0.1:\(port!)"
    }

    /// Kills chromedriver (it does not end on SIGTERM); the browser ended with the session.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// The few W3C WebDriver commands the console test needs (https://www.w3.org/TR/webdriver2/).
struct WebDriver {
    let http: HTTPClient
    let base: String

    static let elementKey = "element-6066-11e4-a52e-4f735466cecf"

    /// A headless Chromium session for `body`, ended afterwards (also when `body` throws).
    static func with(driverURL: String, browser: String, _ body: (WebDriver) async throws -> Void) async throws {
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            // As root (CI) Chromium runs only without its sandbox.
            let capabilities: [String: Any] = ["capabilities": ["alwaysMatch": [
                "browserName": "chrome",
                "goog:chromeOptions": ["binary": browser, "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1480",
                ]],
            ]]]
            let session = try await Self.send(http, .POST, driverURL + "/session", capabilities)
            guard let id = (session as? [String: Any])?["sessionId"] as? String else {
                throw CLIFailure("chromedriver started no session: \(String(describing: session))")
            }
            let web = WebDriver(http: http, base: driverURL + "/session/" + id)
            do {
                try await body(web)
            } catch {
                _ = try? await Self.send(http, .DELETE, web.base, nil)
                throw error
            }
            _ = try await Self.send(http, .DELETE, web.base, nil)
            try await http.shutdown()
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    /// One command; its `value`, or a thrown ``WebDriverError``.
    static func send(_ http: HTTPClient, _ method: HTTPMethod, _ url: String, _ body: [String: Any]?) async throws -> Any? {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Content-Type", value: "application/json")
        if let body { request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body))) }
        else if method == .POST { request.body = .bytes(ByteBuffer(string: "{}")) }
        let response = try await http.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 32 << 20)
        let json = try JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? [String: Any]
        let value = json?["value"]
        if response.status.code >= 400 {
            let detail = value as? [String: Any]
            throw WebDriverError(error: detail?["error"] as? String ?? "\(response.status)", message: detail?["message"] as? String ?? "",
                                 command: "\(method) \(url.split(separator: "/").suffix(3).joined(separator: "/"))")
        }
        return value
    }

    func command(_ method: HTTPMethod, _ path: String, _ body: [String: Any]? = nil) async throws -> Any? {
        try await Self.send(http, method, base + path, body)
    }

    @discardableResult
    func open(_ url: String) async throws -> WebDriver {
        _ = try await command(.POST, "/url", ["url": url])
        return self
    }

    func currentURL() async throws -> String { try await command(.GET, "/url") as? String ?? "" }

    func elements(_ css: String) async throws -> [String] {
        let found = try await command(.POST, "/elements", ["using": "css selector", "value": css]) as? [[String: Any]] ?? []
        return found.compactMap { $0[Self.elementKey] as? String }
    }

    func element(_ css: String) async throws -> String {
        guard let first = try await elements(css).first else { throw CLIFailure("no element matches \(css)") }
        return first
    }

    func count(_ css: String) async throws -> Int { try await elements(css).count }

    func click(_ css: String) async throws {
        _ = try await command(.POST, "/element/\(try await element(css))/click")
    }

    /// Clicks a link or a form's button and waits until the browser has left the page: the old
    /// page's root element goes stale (polled, for at most 60 s). chromedriver's click does not
    /// always wait for the navigation it starts: with Chromium 156 the next command was answered
    /// from the old page ("Node with given id does not belong to the document"). Commands after
    /// that wait for the new page to load (the session's normal page load strategy).
    func follow(_ css: String) async throws {
        let page = try await element("html")
        try await click(css)
        let deadline = ContinuousClock.now + .seconds(60)
        while try await !isStale(page) {
            guard ContinuousClock.now < deadline else { throw CLIFailure("clicking \(css) left the page open for 60 s") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Whether `element` belongs to a page the browser has left: WebDriver's `stale element
    /// reference`, or what chromedriver answers instead while the new page replaces the old
    /// (`no such element`, or an `unknown error` saying the node "does not belong to the document"
    /// or that there is "No node with given id").
    func isStale(_ element: String) async throws -> Bool {
        do {
            _ = try await command(.GET, "/element/\(element)/name")
            return false
        } catch let error as WebDriverError
                    where ["stale element reference", "no such element"].contains(error.error)
                    || error.message.contains("does not belong to the document") || error.message.contains("No node with given id") {
            return true
        }
    }

    func type(_ text: String, into css: String) async throws {
        let id = try await element(css)
        _ = try await command(.POST, "/element/\(id)/clear")
        _ = try await command(.POST, "/element/\(id)/value", ["text": text])
    }

    func text(of css: String) async throws -> String {
        try await command(.GET, "/element/\(try await element(css))/text") as? String ?? ""
    }

    func texts(of css: String) async throws -> [String] {
        var texts: [String] = []
        for id in try await elements(css) { texts.append(try await command(.GET, "/element/\(id)/text") as? String ?? "") }
        return texts
    }

    func attributes(_ name: String, of css: String) async throws -> [String] {
        var values: [String] = []
        for id in try await elements(css) { values.append(try await command(.GET, "/element/\(id)/attribute/\(name)") as? String ?? "") }
        return values
    }

    func cookies() async throws -> [[String: Any]] { try await command(.GET, "/cookie") as? [[String: Any]] ?? [] }

    /// The open alert's text, or `nil` when none is open (WebDriver's `no such alert`).
    func alertText() async throws -> String? {
        do {
            return try await command(.GET, "/alert/text") as? String
        } catch let error as WebDriverError where error.error == "no such alert" {
            return nil
        }
    }

    /// The viewport as PNG bytes.
    func screenshot() async throws -> [UInt8] {
        guard let text = try await command(.GET, "/screenshot") as? String, let data = Data(base64Encoded: text) else {
            throw CLIFailure("no screenshot")
        }
        return Array(data)
    }
}

struct WebDriverError: Error, CustomStringConvertible {
    var error: String
    var message: String
    /// The command's method and the end of its path, e.g. `GET element/<id>/text`.
    var command: String
    var description: String { "WebDriver \(error) (\(command)): \(message)" }
}
