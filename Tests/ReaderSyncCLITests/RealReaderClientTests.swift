import Foundation
import NIOHTTP1
import ReaderSyncClient
import ReaderSyncTestSupport
import Testing

/// Another program run to completion off the cooperative thread pool (a blocking wait there
/// would starve the other tests' tasks), killed when it outlives `timeout`.
enum Tool {
    typealias Result = CLI.Result

    /// The executable `name` on `PATH`, or `nil`.
    static func find(_ name: String) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").map { URL(fileURLWithPath: String($0)).appendingPathComponent(name) }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    /// ``CLI/run(_:_:in:environment:timeout:)`` on a thread of its own.
    static func run(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
                    timeout: Duration = .seconds(120)) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Swift.Result { try CLI.run(executable, arguments, environment: environment, timeout: timeout) })
            }.start()
        }
    }

    /// Runs a shell command line with `system(3)`, for a program that leaves a daemon behind
    /// (`tmux new-session`): Foundation's `Process` would wait for the daemon too, as it inherits
    /// the descriptors `Process` watches.
    static func shell(_ command: String) async -> Int32 {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: system(command)) }.start()
        }
    }

    /// Says why a test that needs another program did not run: a printed line, or a failure
    /// where `READER_SYNC_REQUIRE_CLIENTS=1` (CI, which installs them) says they must run.
    static func skip(_ reason: String, sourceLocation: SourceLocation = #_sourceLocation) {
        if ProcessInfo.processInfo.environment["READER_SYNC_REQUIRE_CLIENTS"] == "1" {
            Issue.record("not run: \(reason)", sourceLocation: sourceLocation)
        } else {
            print("skipped: \(reason)")
        }
    }

    /// The `reader-sync` binary, off the cooperative pool.
    static func cli(_ arguments: [String]) async throws -> Result {
        try await run(CLI.binary, arguments)
    }

    /// Polls `condition` every 50 ms until it holds, failing after `timeout`: for waiting on
    /// another program's screen or a server's state, never for a fixed time.
    static func waitUntil(_ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await !condition() {
            guard ContinuousClock.now < deadline else { throw CLIFailure("timed out waiting until \(what)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// A server with alice and bob, app passwords, five articles (art-1, art-3, art-5 in World,
/// art-2, art-4 in Sports, newest published last) and an SDK device of alice's.
struct ReaderClientFixture {
    let directory: URL
    let server: ServerProcess
    let baseURL: String
    let alicePassword: String
    let device: SyncEngine
    let deviceStore: ReaderStore

    static func start() async throws -> ReaderClientFixture {
        let directory = try CLI.temporaryDirectory()
        let db = directory.appendingPathComponent("server.sqlite").path
        let token = try await Tool.cli(["users", "add", "alice", "--db", db]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        _ = try await Tool.cli(["users", "add", "bob", "--db", db])
        let password = try await Tool.cli(["users", "app-password", "alice", "--label", "newsboat", "--db", db])
        #expect(password.status == 0, "\(password.stderr)")
        let lines = (1...5).map { i in
            #"{"id":"art-\#(i)","section":"\#(i % 2 == 1 ? "World" : "Sports")","title":"Story number \#(i)","summary":"Summary \#(i)","body":"<p>Body of story \#(i)</p>","author":"Ann","url":"https://news.example/art-\#(i)","publishedAt":"2026-11-30T09:0\#(i):00Z","updatedAt":"2026-11-30T09:0\#(i):00Z"}"#
        }
        let file = directory.appendingPathComponent("articles.jsonl")
        try lines.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        let ingest = try await Tool.cli(["ingest", file.path, "--db", db])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let server = try ServerProcess(arguments: ["--db", db, "--port", "0"], stderr: directory.appendingPathComponent("server.log"))
        let baseURL = try server.baseURL()
        let store = try ReaderStore(path: directory.appendingPathComponent("phone.sqlite").path)
        let device = SyncEngine(store: store, transport: HTTPSyncTransport(baseURL: baseURL, token: token))
        _ = try await device.sync()
        return ReaderClientFixture(directory: directory, server: server, baseURL: baseURL,
                                   alicePassword: password.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                                   device: device, deviceStore: store)
    }

    /// Syncs the SDK device until `condition` holds on its store.
    func deviceEventually(_ what: String, _ condition: @escaping (ReaderStore) throws -> Bool) async throws {
        try await Tool.waitUntil("the SDK device sees \(what)") {
            _ = try await device.sync()
            return try condition(deviceStore)
        }
    }
}

extension ProcessTests {
    @Suite("Real Google Reader clients against reader-sync serve", .serialized)
    struct RealReaderClientTests {
        @Test("newsboat 2.21 in feedhq mode: the unread count; a read and a star made in its interface reach the server and an SDK device; the SDK's changes show after a reload; a wrong app password fails login")
        func newsboat() async throws {
            guard let newsboat = Tool.find("newsboat"), let tmux = Tool.find("tmux") else {
                Tool.skip("the newsboat test needs newsboat and tmux on PATH (apt-get install newsboat tmux; .ci/run installs them)")
                return
            }
            let fixture = try await ReaderClientFixture.start()
            defer { _ = fixture.server.stop() }
            let home = fixture.directory.appendingPathComponent("home")
            try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
            func configure(password: String) throws -> [String] {
                let passwordFile = fixture.directory.appendingPathComponent("password")
                try (password + "\n").write(to: passwordFile, atomically: true, encoding: .utf8)
                let config = fixture.directory.appendingPathComponent("config")
                try """
                    urls-source "feedhq"
                    feedhq-url "\(fixture.baseURL)/api/greader.php"
                    feedhq-login "alice"
                    feedhq-passwordfile "\(passwordFile.path)"
                    feedhq-show-special-feeds "no"
                    feedhq-min-items 50
                    feedhq-flag-star "s"
                    confirm-exit no
                    show-read-articles yes
                    show-read-feeds yes
                    goto-first-unread no
                    toggleitemread-jumps-to-next-unread no
                    article-sort-order date-desc
                    """.write(to: config, atomically: true, encoding: .utf8)
                let urls = fixture.directory.appendingPathComponent("urls")
                try "".write(to: urls, atomically: true, encoding: .utf8)
                return ["-C", config.path, "-c", fixture.directory.appendingPathComponent("cache.db").path, "-u", urls.path]
            }
            let environment = ["HOME": home.path, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "TERM": "xterm"]
            func unreadCount(_ options: [String]) async throws -> String {
                let run = try await Tool.run(newsboat, options + ["-x", "reload", "print-unread"], environment: environment)
                #expect(run.status == 0, "newsboat: \(run.stdout) \(run.stderr)")
                return run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            }

            let wrong = try await Tool.run(newsboat, try configure(password: "wrong-password") + ["-x", "reload", "print-unread"],
                                           environment: environment)
            #expect(wrong.status != 0)
            #expect((wrong.stdout + wrong.stderr).contains("Authentication failed"), "\(wrong.stdout) \(wrong.stderr)")

            let options = try configure(password: fixture.alicePassword)
            #expect(try await unreadCount(options) == "5 unread articles")

            // The interface, in a private tmux server.
            let socket = "readersync-\(ProcessInfo.processInfo.processIdentifier)"
            func tmuxRun(_ arguments: [String]) async throws -> String {
                try await Tool.run(tmux, ["-L", socket] + arguments, environment: environment, timeout: .seconds(20)).stdout
            }
            defer { _ = system("'\(tmux.path)' -L \(socket) kill-server >/dev/null 2>&1") }
            let exitFile = fixture.directory.appendingPathComponent("newsboat-exit")
            let command = ([newsboat.path] + options).map { "'\($0)'" }.joined(separator: " ")
            let inner = "env HOME='\(home.path)' \(command); echo $? > '\(exitFile.path)'; sleep 600"
            let started = await Tool.shell("'\(tmux.path)' -L \(socket) new-session -d -s nb -x 200 -y 50 \"\(inner)\" </dev/null >/dev/null 2>&1")
            #expect(started == 0)
            func screen() async throws -> String { try await tmuxRun(["capture-pane", "-p", "-t", "nb"]) }
            func waitForScreen(_ text: String) async throws {
                try await Tool.waitUntil("newsboat shows '\(text)'") { try await screen().contains(text) }
            }
            func keys(_ keys: String...) async throws { _ = try await tmuxRun(["send-keys", "-t", "nb"] + keys) }

            try await waitForScreen("World")
            try await keys("Enter")
            try await waitForScreen("Articles in feed 'World' (3 unread, 3 total)")
            // The story on the top row (its title names the article), which N marks read at once.
            let list = try await screen()
            let top = try #require(list.split(separator: "\n").first { $0.hasPrefix("   1 ") }?.split(separator: " ").last)
            let article = "art-\(top)"
            try await keys("N")
            try await waitForScreen("(2 unread, 3 total)")
            try await fixture.deviceEventually("\(article) read") { try $0.state(articleId: article).isRead }
            try await keys("Home", "C-e")
            try await waitForScreen("Flags:")
            try await keys("s", "Enter")
            try await fixture.deviceEventually("\(article) bookmarked") { try $0.state(articleId: article).isBookmarked }
            try await keys("q")
            try await waitForScreen("World")
            try await keys("q")
            try await Tool.waitUntil("newsboat exits") { FileManager.default.fileExists(atPath: exitFile.path) }
            #expect(try String(contentsOf: exitFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) == "0")
            #expect(try await unreadCount(options) == "4 unread articles")

            // The SDK device takes back the read newsboat made and reads two others: newsboat
            // follows after a reload.
            try fixture.deviceStore.markRead(article, false)
            _ = try await fixture.device.sync()
            #expect(try await unreadCount(options) == "5 unread articles")
            try fixture.deviceStore.markRead("art-2")
            try fixture.deviceStore.markRead(article == "art-1" ? "art-3" : "art-1")
            _ = try await fixture.device.sync()
            #expect(try await unreadCount(options) == "3 unread articles")
        }

        @Test("the google-reader package from PyPI: login, subscriptions, tags, ids with continuation, contents, edit tags, mark all as read; an SDK device pulls the same marks")
        func googleReaderPackage() async throws {
            guard let python = try await GoogleReaderPackage.python() else { return }
            let fixture = try await ReaderClientFixture.start()
            defer { _ = fixture.server.stop() }
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Clients/google_reader_check.py")
            let run = try await Tool.run(python, [script.path, fixture.baseURL + "/api/greader.php", "alice", fixture.alicePassword])
            #expect(run.status == 0, "google_reader_check.py: \(run.stdout) \(run.stderr)")
            struct Marks: Decodable { var read: [String]; var starred: [String] }
            let marks = try JSONDecoder().decode(Marks.self, from: Data((run.stdout.split(separator: "\n").last ?? "").utf8))
            #expect(marks.read == ["https://news.example/art-1", "https://news.example/art-2", "https://news.example/art-3", "https://news.example/art-5"])
            #expect(marks.starred == ["https://news.example/art-4"])
            _ = try await fixture.device.sync()
            let states = try (1...5).map { try fixture.deviceStore.state(articleId: "art-\($0)") }
            // Clients take the Date header as their next `ot`: it must be the server's clock, now.
            let answer = try await Loopback.with(fixture.baseURL) { http in
                try await http.call(.POST, "/api/greader.php/accounts/ClientLogin", token: nil,
                                    body: "Email=alice&Passwd=\(fixture.alicePassword)")
            }
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
            let date = try #require(answer.headers.first(name: "Date").flatMap(formatter.date(from:)))
            #expect(abs(date.timeIntervalSinceNow) < 60)
            #expect(states.map(\.isRead) == [true, true, true, false, true])
            #expect(states.map(\.isBookmarked) == [false, false, false, true, false])
        }
    }
}

/// The PyPI `google-reader` client (0.0.3, which needs Python 3.12 or later) in a virtual
/// environment under `.build`, made on first use.
enum GoogleReaderPackage {
    static let venv = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../.build/google-reader-venv").standardized

    /// The venv's Python with the package installed, or `nil` (with the reason printed) when
    /// this machine has no Python 3.12+ or cannot reach PyPI.
    static func python() async throws -> URL? {
        let python = venv.appendingPathComponent("bin/python")
        if FileManager.default.isExecutableFile(atPath: python.path),
           try await Tool.run(python, ["-c", "import google_reader"]).status == 0 {
            return python
        }
        var candidates = ["python3.13", "python3.12", "python3"].compactMap(Tool.find)
        let pyenv = URL(fileURLWithPath: NSHomeDirectory()).appendingPathComponent(".pyenv/versions")
        for version in (try? FileManager.default.contentsOfDirectory(atPath: pyenv.path))?.sorted().reversed() ?? [] {
            candidates.append(pyenv.appendingPathComponent("\(version)/bin/python3"))
        }
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate.path) {
            guard try await Tool.run(candidate, ["-c", "import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)"]).status == 0 else { continue }
            let made = try await Tool.run(candidate, ["-m", "venv", "--clear", venv.path])
            guard made.status == 0 else { continue }
            let installed = try await Tool.run(python, ["-m", "pip", "install", "-q", "google-reader==0.0.3"], timeout: .seconds(300))
            guard installed.status == 0 else {
                Tool.skip("pip could not install google-reader==0.0.3: \(installed.stderr.suffix(300))")
                return nil
            }
            return python
        }
        Tool.skip("the google-reader test needs Python 3.12 or later (google-reader 0.0.3 requires it)")
        return nil
    }
}
