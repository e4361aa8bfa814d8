import Foundation
import Testing

extension ProcessTests {
    /// `reader-sync simulate --server` against a real `reader-sync serve` on this machine.
    @Suite("Load on a real server process", .serialized)
    struct LoadTests {
        struct Figures: Decodable {
            struct Invariant: Decodable {
                var name: String
                var passed: Bool
                var detail: String?
            }

            var devices: Int
            var syncs: Int
            var failedSyncs: Int
            var busyRetries: Int
            var serverErrors: Int
            var peakConcurrentSyncs: Int
            var syncLatencyP99Millis: Double
            var wallSeconds: Double
            var invariants: [Invariant]
        }

        /// Runs a simulation against a fresh server started with `serverArguments`; returns the report and the server's peak memory.
        static func simulate(_ arguments: [String], serverArguments: [String] = []) async throws -> (figures: Figures, serverPeakKB: Int) {
            let dir = try CLI.temporaryDirectory()
            let admin = "load-test-admin-token-0123"
            let server = try ServerProcess(arguments: ["--db", dir.appendingPathComponent("load.sqlite").path, "--port", "0",
                                                       "--admin-token", admin] + serverArguments)
            defer { _ = server.stop() }
            let url = try server.baseURL()
            // On a thread of its own: the run takes tens of seconds, and blocking one of the cooperative
            // pool's threads that long starves the tests running beside it (live streams time out).
            let run = try await Tool.run(CLI.binary, ["simulate", "--server", url, "--admin-token", admin,
                                                      "--data-dir", dir.appendingPathComponent("devices").path, "--json"] + arguments,
                                         timeout: .seconds(600))
            // Peak resident memory as Linux reports it; elsewhere (no /proc) the memory check is skipped.
            let status = (try? String(contentsOfFile: "/proc/\(server.process.processIdentifier)/status", encoding: .utf8)) ?? ""
            let peak = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
                .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? -1
            guard let figures = try? JSONDecoder().decode(Figures.self, from: Data(run.stdout.utf8)) else {
                throw CLIFailure("simulate exited \(run.status) without a report: \(run.stderr.suffix(2000))")
            }
            return (figures, peak)
        }

        @Test("1,000 devices (250 users × 4) sync at once against one server: every invariant passes, no 5xx, bounded server memory")
        func thousandDevices() async throws {
            let (figures, peakKB) = try await Self.simulate(["--users", "250", "--devices", "4", "--steps", "1", "--concurrency", "1000",
                                                       "--articles", "100", "--seed", "1000"])
            for invariant in figures.invariants {
                #expect(invariant.passed, "\(invariant.name): \(invariant.detail ?? "")")
            }
            #expect(figures.devices == 1000)
            #expect(figures.peakConcurrentSyncs == 1000)
            #expect(figures.serverErrors == 0)
            // A bound, not a measurement to tune against: the figure of the last run is in docs/RELIABILITY.md.
            #if os(Linux)
            #expect(peakKB > 0 && peakKB < 300 * 1024, "server peak memory \(peakKB) kB")
            #endif
            print("load: \(figures.devices) devices, \(figures.syncs) syncs, at most \(figures.peakConcurrentSyncs) at once, "
                + "5xx \(figures.serverErrors), busy retries \(figures.busyRetries), server peak \(peakKB / 1024) MB, "
                + String(format: "p99 %.0f ms, %.1f s", figures.syncLatencyP99Millis, figures.wallSeconds))
        }

        @Test("past the server's concurrency limit devices get 503 with Retry-After, wait and retry, and still converge")
        func busyServer() async throws {
            let (figures, _) = try await Self.simulate(["--users", "20", "--devices", "4", "--steps", "3", "--concurrency", "80",
                                                  "--articles", "50", "--fault-rate", "0", "--seed", "7"],
                                                 serverArguments: ["--max-concurrent-requests", "2"])
            for invariant in figures.invariants {
                #expect(invariant.passed, "\(invariant.name): \(invariant.detail ?? "")")
            }
            #expect(figures.busyRetries > 0, "the limit turned requests away")
            #expect(figures.serverErrors == 0 && figures.failedSyncs == 0)
            print("busy server: \(figures.syncs) syncs, \(figures.busyRetries) busy answers retried, 0 failed")
        }
    }
}
